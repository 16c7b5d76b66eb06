"""VoxNet (Maturana & Scherer, 2015) shape classification on occupancy grids, and the
3D U-Net voxel segmenter.

* ``VoxNet``: ``float32[B, 1, R, R, R]`` occupancy (R = 32 by default) -> ``[B, n_classes]``
  logits. The paper's layout (5^3 stride-2 convolution, 3^3 convolution, 2x max pooling,
  dense layers, ``head`` sizes) with BatchNorm added for steadier training. The grid size is
  fixed by the dense layer: ``resolution`` must match the input.
* ``VoxelUNet3D``: ``[B, C, X, Y, Z] -> [B, n_classes, X, Y, Z]`` per-voxel logits. The
  network is ``PartsUNet3D`` (encoders, skips, decoders) with a per-voxel class head in
  place of its six per-face heads.
"""

from __future__ import annotations

import torch
from torch import nn

from .parts_unet3d import PartsUNet3D


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(in_channels, out_channels, kernel, stride=stride, bias=False),
                         nn.BatchNorm3d(out_channels), nn.LeakyReLU(0.1, inplace=True))


class VoxNet(nn.Module):
    def __init__(self, n_classes: int, resolution: int = 32, in_channels: int = 1,
                 width: int = 32, head=(128,), dropout: float = 0.4):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        if resolution < 12:
            raise ValueError(f"VoxNet needs grids of at least 12 cells per axis, got {resolution}")
        self.n_classes, self.resolution = int(n_classes), int(resolution)
        self.features = nn.Sequential(_conv(in_channels, width, 5, 2), _conv(width, width, 3, 1),
                                      nn.MaxPool3d(2))
        side = ((self.resolution - 5) // 2 + 1 - 2) // 2
        sizes = [width * side ** 3, *[int(h) for h in head]]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Dropout(dropout), nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.head = nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(sizes[-1], self.n_classes))

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(grid))


class VoxelUNet3D(PartsUNet3D):
    """``PartsUNet3D`` with one class per voxel; sizes must be multiples of ``2**depth``."""

    def __init__(self, n_classes: int, in_channels: int = 1, width: int = 8, depth: int = 2):
        if n_classes < 2:
            raise ValueError(f"a segmenter needs at least 2 classes, got {n_classes}")
        super().__init__(in_channels, n_classes, width, depth)
        self.n_classes = int(n_classes)
        self.head = nn.Conv3d(int(width), self.n_classes, 1)
