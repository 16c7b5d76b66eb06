"""PointNet (Qi et al., 2017) for point-cloud classification and per-point segmentation.

Input ``float32[B, N, C]``: N points with C features each (``x, y, z`` first, then any
per-point extras such as normals or a per-shape condition repeated on every point).
Every layer is a shared per-point MLP (1x1 convolutions) or acts on the max-pooled
global feature, so one network runs on any number of points and exports to ONNX with a
dynamic point axis.

* ``PointNetClassifier``: ``[B, N, C] -> [B, n_classes]`` logits.
* ``PointNetSegmenter``:  ``[B, N, C] -> [B, N, n_classes]`` logits, per point from the
  concatenation of its local feature and the global feature (the paper's segmentation
  head).

The optional transform nets (T-Net) predict a 3x3 alignment of the coordinates
(``input_transform``) and a ``k x k`` alignment of the first-layer features
(``feature_transform``); ``feature_transform_loss`` is the paper's orthogonality
regulariser for the latter, which training adds to the loss with the paper's weight
(``FEATURE_TRANSFORM_WEIGHT``, through each network's ``regularisation_loss``).

``fourier_bands`` = B > 0 adds ``sin/cos(2 pi k x / fourier_period)`` of the (aligned)
coordinates, ``k = 1 .. B``, as extra per-point inputs: the harmonics of one period, which
can express any function of position that repeats every ``fourier_period``. Plain MLPs on
raw coordinates learn such high-frequency functions very slowly (spectral bias), and labels
that follow a grid rhythm are exactly such functions: with coordinates in cells, windows
every 1, 2 or 3 cells and balconies on even floors all repeat every 6 cells.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _shared_mlp(widths: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv1d(a, b, 1, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _dense(widths: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class TNet(nn.Module):
    """Predicts a ``k x k`` matrix from ``[B, k, N]`` features, initialised to identity."""

    def __init__(self, k: int, width: int = 64):
        super().__init__()
        self.k = k
        self.features = _shared_mlp([k, width, 2 * width, 4 * width])
        self.head = nn.Sequential(_dense([4 * width, 2 * width, width]), nn.Linear(width, k * k))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        self.register_buffer("identity", torch.eye(k).reshape(1, k * k), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x).amax(dim=2)
        return (self.head(pooled) + self.identity).reshape(-1, self.k, self.k)


#: Weight of the feature-transform regulariser in the training loss (Qi et al., 2017, 0.001).
FEATURE_TRANSFORM_WEIGHT = 0.001


def feature_transform_loss(matrix: torch.Tensor) -> torch.Tensor:
    """``|| I - A A^T ||_F^2`` averaged over the batch (keeps the feature transform near-orthogonal)."""
    k = matrix.shape[1]
    eye = torch.eye(k, device=matrix.device, dtype=matrix.dtype)
    return ((eye - matrix @ matrix.transpose(1, 2)) ** 2).sum(dim=(1, 2)).mean()


class PointNetEncoder(nn.Module):
    """Per-point local features ``[B, w0, N]`` and the max-pooled global feature ``[B, wL]``."""

    def __init__(self, in_features: int, widths=(64, 128, 256), input_transform: bool = False,
                 feature_transform: bool = False, fourier_bands: int = 0,
                 fourier_period: float = 2.0):
        super().__init__()
        if in_features < 3:
            raise ValueError(f"PointNet needs at least the 3 coordinates per point, got {in_features}")
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"PointNet widths must list at least 2 layer sizes >= 1, got {widths}")
        self.in_features = int(in_features)
        if fourier_bands < 0 or not fourier_period > 0:
            raise ValueError(f"PointNet needs fourier_bands >= 0 and fourier_period > 0, got "
                             f"{fourier_bands}, {fourier_period}")
        self.fourier_bands = int(fourier_bands)
        harmonics = torch.arange(1, self.fourier_bands + 1, dtype=torch.float32)
        self.register_buffer("frequencies", 2.0 * math.pi * harmonics / float(fourier_period),
                             persistent=False)
        channels = self.in_features + 6 * self.fourier_bands
        self.input_tnet = TNet(3, min(widths[0], 64)) if input_transform else None
        self.local = _shared_mlp([channels, widths[0], widths[0]])
        self.feature_tnet = TNet(widths[0], min(widths[0], 64)) if feature_transform else None
        self.deep = _shared_mlp(widths)
        self.local_width, self.global_width = widths[0], widths[-1]
        #: The feature transform of the last forward pass (None without a feature T-Net).
        self.last_feature_matrix: torch.Tensor | None = None

    def regularisation_loss(self) -> torch.Tensor | None:
        """``FEATURE_TRANSFORM_WEIGHT * feature_transform_loss`` of the last forward pass's
        feature transform; None without a feature T-Net (nothing to add to the loss)."""
        if self.last_feature_matrix is None:
            return None
        return FEATURE_TRANSFORM_WEIGHT * feature_transform_loss(self.last_feature_matrix)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = points.transpose(1, 2)                                   # [B, C, N]
        xyz, extra = x[:, :3], x[:, 3:]
        if self.input_tnet is not None:
            xyz = torch.bmm(self.input_tnet(xyz).transpose(1, 2), xyz)
        parts = [xyz, extra]
        if self.fourier_bands:
            phase = (xyz.unsqueeze(2) * self.frequencies.reshape(1, 1, -1, 1)).flatten(1, 2)
            parts += [torch.sin(phase), torch.cos(phase)]
        local = self.local(torch.cat(parts, dim=1))
        if self.feature_tnet is not None:
            matrix = self.feature_tnet(local)
            self.last_feature_matrix = matrix
            local = torch.bmm(matrix.transpose(1, 2), local)
        return local, self.deep(local).amax(dim=2)


class PointNetClassifier(nn.Module):
    """``[B, N, C] -> [B, n_classes]`` class logits."""

    def __init__(self, in_features: int, n_classes: int, widths=(64, 128, 256),
                 head=(128,), dropout: float = 0.3, input_transform: bool = False,
                 feature_transform: bool = False, fourier_bands: int = 0,
                 fourier_period: float = 2.0):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        self.n_classes = int(n_classes)
        self.encoder = PointNetEncoder(in_features, widths, input_transform, feature_transform,
                                       fourier_bands, fourier_period)
        sizes = [self.encoder.global_width, *[int(h) for h in head]]
        self.head = nn.Sequential(_dense(sizes, dropout), nn.Linear(sizes[-1], self.n_classes))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(points)[1])

    def regularisation_loss(self) -> torch.Tensor | None:
        """The encoder's feature-transform regulariser for the last forward pass, or None."""
        return self.encoder.regularisation_loss()


class PointNetSegmenter(nn.Module):
    """``[B, N, C] -> [B, N, n_classes]`` per-point logits."""

    def __init__(self, in_features: int, n_classes: int, widths=(64, 128, 256),
                 head=(256, 128), dropout: float = 0.0, input_transform: bool = False,
                 feature_transform: bool = False, fourier_bands: int = 0,
                 fourier_period: float = 2.0):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a segmenter needs at least 2 classes, got {n_classes}")
        self.n_classes = int(n_classes)
        self.encoder = PointNetEncoder(in_features, widths, input_transform, feature_transform,
                                       fourier_bands, fourier_period)
        sizes = [self.encoder.local_width + self.encoder.global_width, *[int(h) for h in head]]
        layers = [_shared_mlp(sizes)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Conv1d(sizes[-1], self.n_classes, 1))
        self.head = nn.Sequential(*layers)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        local, pooled = self.encoder(points)
        expanded = pooled.unsqueeze(2).expand(-1, -1, local.shape[2])
        return self.head(torch.cat([local, expanded], dim=1)).transpose(1, 2)

    def regularisation_loss(self) -> torch.Tensor | None:
        """The encoder's feature-transform regulariser for the last forward pass, or None."""
        return self.encoder.regularisation_loss()
