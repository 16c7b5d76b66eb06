"""Fully convolutional 3D U-Net for building parts on voxel grids.

Input ``float32[B, C, X, Y, Z]`` (``encoding.grid_channels``, padded to ``model.stride``),
output ``float32[B, 6 * K, X, Y, Z]`` with channel ``direction * K + part`` as
``encoding.decode_grid_logits`` reads it. Only local ops (3x3x3 convolutions, 2x pooling
and 2x transposed convolutions), so one network runs on any grid size that is a multiple
of the stride, larger grids than it was trained on included, and exports cleanly to ONNX.

BatchNorm (not GroupNorm) on purpose: in eval mode it is a fixed per-channel affine map,
so a cell's output never depends on how much empty space surrounds the building.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


class PartsUNet3D(nn.Module):
    """``depth`` 2x poolings, so spatial sizes must be multiples of ``stride = 2**depth``."""

    def __init__(self, in_channels: int, n_parts: int, width: int = 16, depth: int = 2):
        super().__init__()
        if in_channels < 1 or n_parts < 1 or width < 1 or depth < 0:
            raise ValueError(f"PartsUNet3D needs in_channels, n_parts, width >= 1 and depth >= 0, "
                             f"got {in_channels}, {n_parts}, {width}, {depth}")
        self.in_channels = int(in_channels)
        self.n_parts = int(n_parts)
        self.depth = int(depth)
        self.stride = 2 ** self.depth
        widths = [int(width) * 2 ** level for level in range(self.depth + 1)]
        self.encoders = nn.ModuleList(
            [_conv_block(self.in_channels, widths[0])]
            + [_conv_block(widths[level - 1], widths[level]) for level in range(1, self.depth + 1)])
        self.pool = nn.MaxPool3d(2)
        self.upsamplers = nn.ModuleList(
            [nn.ConvTranspose3d(widths[level], widths[level - 1], 2, stride=2)
             for level in range(self.depth, 0, -1)])
        self.decoders = nn.ModuleList(
            [_conv_block(2 * widths[level - 1], widths[level - 1])
             for level in range(self.depth, 0, -1)])
        self.head = nn.Conv3d(widths[0], 6 * self.n_parts, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, encoder in enumerate(self.encoders):
            if level:
                x = self.pool(x)
            x = encoder(x)
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself
        for upsample, decoder in zip(self.upsamplers, self.decoders):
            x = decoder(torch.cat([upsample(x), skips.pop()], dim=1))
        return self.head(x)
