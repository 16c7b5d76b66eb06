"""DGCNN (Wang et al., 2019, "Dynamic Graph CNN for Learning on Point Clouds") for per-point
segmentation.

Input ``float32[B, N, C]``: N points with C features each (``x, y, z`` first, then any
per-point extras such as normals or a per-shape condition repeated on every point), as for
``PointNetSegmenter``; output ``logits[B, N, n_classes]``.

PointNet sees each point alone (a shared per-point MLP) plus one max-pooled global feature,
so it cannot tell what lies *next to* a point. An **edge convolution** (EdgeConv) adds
that: for every point ``i`` and each of its ``k`` nearest neighbours ``j`` it applies a
shared MLP to the edge feature ``[x_i, x_j - x_i]`` and keeps the channel-wise maximum over
the neighbours::

    x_i' = max_{j in kNN(i)} h([x_i, x_j - x_i])

The first layer of ``h`` is linear, so it is computed per point and gathered
(``W [x_i, x_j - x_i] = (W_c - W_d) x_i + W_d x_j``, identical to the paper's 1x1
convolution over the ``[B, 2C, N, k]`` edge tensor at a fraction of the cost); batch norm
and LeakyReLU(0.2) follow, as in the paper. Several EdgeConvs are stacked; their outputs
are concatenated into the local feature, a shared MLP + max-pool over the points gives the
global feature, and the segmentation head classifies every point from ``[local, global]``.

Graph: by default (``dynamic_graph=False``) the k nearest neighbours are found once, in
``x, y, z``, and every EdgeConv uses that spatial graph (the neighbourhoods of building
parts are spatial); ``dynamic_graph=True`` recomputes them in each layer's input feature
space, as the paper's DGCNN does.

kNN (``knn``) is a pairwise squared distance matrix (``O(N^2)`` memory per cloud, fine up
to a few thousand points) and ``torch.topk``, with an exact re-ranking of the candidates so
PyTorch and onnxruntime pick the same neighbours, and sentinel points that make it valid
for any ``N >= 1`` with no branch on ``N``. So the network exports to ONNX with a dynamic
point axis.

``fourier_bands`` / ``fourier_period`` add the harmonics of the coordinates as per-point
inputs, as in ``proc_ml.trainers.models.pointnet`` (the grid rhythms of building parts).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def knn(points: torch.Tensor, k: int, margin: int = 8) -> torch.Tensor:
    """Indices ``int64[B, N, k]`` of the ``k`` nearest points (the point itself included)
    of each of the ``[B, N, D]`` points; when ``N < k`` the missing neighbours are the
    point itself.

    Two stages: ``k + margin`` candidates by the fast GEMM expansion
    ``|a|^2 - 2 a.b + |b|^2`` (centred coordinates), then the exact squared distances of
    those candidates from coordinate differences, summed in a fixed order, and the ``k``
    nearest of them. The expansion's rounding (which differs between PyTorch and
    onnxruntime) can only reorder near-ties, far inside the candidate set; the final
    ranking uses bit-identical arithmetic in both, so an exported model picks the same
    neighbours as PyTorch. ``k + margin`` sentinel points far away pad the cloud so
    ``topk`` is valid for any ``N``; they are mapped back to the point itself.
    """
    b, n, d = points.shape
    m = k + margin
    centred = points - points.mean(dim=1, keepdim=True)
    sentinel = torch.full_like(centred[:, :1], 1.0e6).expand(-1, m, -1)
    padded = torch.cat([centred, sentinel], dim=1)                         # [B, N + m, D]
    square = (padded * padded).sum(dim=2)
    approx = (square[:, :n].unsqueeze(2) + square.unsqueeze(1)
              - 2.0 * torch.bmm(centred, padded.transpose(1, 2)))       # [B, N, N + m]
    candidates = torch.topk(approx, m, dim=2, largest=False).indices       # [B, N, m]
    flat = candidates.reshape(b, n * m, 1).expand(-1, -1, d)
    near = torch.gather(padded, 1, flat).reshape(b, n, m, d)
    exact = None
    for axis in range(d):                                                  # fixed summation order
        delta = near[..., axis] - centred[:, :, axis].unsqueeze(2)
        exact = delta * delta if exact is None else exact + delta * delta
    order = torch.topk(exact, k, dim=2, largest=False).indices
    idx = torch.gather(candidates, 2, order)
    own = torch.arange(n, device=points.device).reshape(1, -1, 1)
    return torch.where(idx < n, idx, own)


def gather_neighbours(features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``[B, C, N]`` features of the ``[B, N, k]`` neighbours: ``[B, C, N, k]``."""
    b, c = features.shape[:2]
    flat = idx.reshape(b, 1, -1).expand(-1, c, -1)
    return torch.gather(features, 2, flat).reshape(b, c, idx.shape[1], idx.shape[2])


class EdgeConv(nn.Module):
    """``[B, C, N]`` features and ``[B, N, k]`` neighbours -> ``[B, widths[-1], N]``:
    ``max_j h([x_i, x_j - x_i])`` with ``h`` = (linear, BN, LeakyReLU) x len(widths)."""

    def __init__(self, in_channels: int, widths=(64,), negative_slope: float = 0.2):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"EdgeConv widths must list layer sizes >= 1, got {widths}")
        self.width = widths[0]
        # one 1x1 convolution gives both halves of W = [W_c | W_d] applied per point
        self.project = nn.Conv1d(in_channels, 2 * widths[0], 1, bias=False)
        layers: list[nn.Module] = [nn.BatchNorm2d(widths[0]), nn.LeakyReLU(negative_slope, inplace=True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 1, bias=False), nn.BatchNorm2d(b),
                       nn.LeakyReLU(negative_slope, inplace=True)]
        self.mlp = nn.Sequential(*layers)
        self.out_channels = widths[-1]

    def forward(self, features: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        centre, delta = self.project(features).split(self.width, dim=1)   # W_c x, W_d x
        edges = (centre - delta).unsqueeze(3) + gather_neighbours(delta, idx)
        return self.mlp(edges).amax(dim=3)


def _shared_mlp(widths: list[int], negative_slope: float = 0.2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Conv1d(a, b, 1, bias=False), nn.BatchNorm1d(b),
                   nn.LeakyReLU(negative_slope, inplace=True)]
    return nn.Sequential(*layers)


class DGCNNSegmenter(nn.Module):
    """``[B, N, C] -> [B, N, n_classes]`` per-point logits from stacked EdgeConvs.

    ``point_widths``: an optional shared per-point MLP applied to the inputs before the
    first EdgeConv (an input embedding; cheap, N rather than N x k);
    ``edge_widths``: one list of MLP widths per EdgeConv (an int is a one-layer MLP);
    ``emb``: width of the global feature; ``head``: the segmentation head's hidden widths.
    """

    def __init__(self, in_features: int, n_classes: int, k: int = 20,
                 edge_widths=((64, 64), (64, 64), (64,)), emb: int = 512,
                 point_widths=(),
                 head=(256, 128), dropout: float = 0.5, dynamic_graph: bool = False,
                 fourier_bands: int = 0, fourier_period: float = 2.0):
        super().__init__()
        if in_features < 3:
            raise ValueError(f"DGCNN needs at least the 3 coordinates per point, got {in_features}")
        if n_classes < 2:
            raise ValueError(f"a segmenter needs at least 2 classes, got {n_classes}")
        if k < 1:
            raise ValueError(f"DGCNN needs k >= 1 neighbours, got {k}")
        if fourier_bands < 0 or not fourier_period > 0:
            raise ValueError(f"DGCNN needs fourier_bands >= 0 and fourier_period > 0, got "
                             f"{fourier_bands}, {fourier_period}")
        edge_widths = [[w] if isinstance(w, int) else list(w) for w in edge_widths]
        if not edge_widths:
            raise ValueError("DGCNN needs at least one EdgeConv (edge_widths)")
        self.in_features, self.n_classes, self.k = int(in_features), int(n_classes), int(k)
        self.dynamic_graph = bool(dynamic_graph)
        self.fourier_bands = int(fourier_bands)
        harmonics = torch.arange(1, self.fourier_bands + 1, dtype=torch.float32)
        self.register_buffer("frequencies", 2.0 * math.pi * harmonics / float(fourier_period),
                             persistent=False)
        channels = self.in_features + 6 * self.fourier_bands
        point_widths = [int(w) for w in point_widths]
        if point_widths and min(point_widths) < 1:
            raise ValueError(f"DGCNN point_widths must be layer sizes >= 1, got {point_widths}")
        self.embed_points = _shared_mlp([channels, *point_widths])
        channels = point_widths[-1] if point_widths else channels
        self.edges = nn.ModuleList()
        for widths in edge_widths:
            self.edges.append(EdgeConv(channels, widths))
            channels = self.edges[-1].out_channels
        local = sum(edge.out_channels for edge in self.edges)
        self.embed = _shared_mlp([local, int(emb)])
        sizes = [local + int(emb), *[int(h) for h in head]]
        layers: list[nn.Module] = [_shared_mlp(sizes)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Conv1d(sizes[-1], self.n_classes, 1))
        self.head = nn.Sequential(*layers)

    def _inputs(self, points: torch.Tensor) -> torch.Tensor:
        x = points.transpose(1, 2)                                   # [B, C, N]
        parts = [x]
        if self.fourier_bands:
            phase = (x[:, :3].unsqueeze(2) * self.frequencies.reshape(1, 1, -1, 1)).flatten(1, 2)
            parts += [torch.sin(phase), torch.cos(phase)]
        return torch.cat(parts, dim=1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x = self.embed_points(self._inputs(points))
        idx = knn(points[:, :, :3], self.k)
        features = []
        for i, edge in enumerate(self.edges):
            if self.dynamic_graph and i > 0:
                idx = knn(x.transpose(1, 2), self.k)
            x = edge(x, idx)
            features.append(x)
        local = torch.cat(features, dim=1)
        pooled = self.embed(local).amax(dim=2, keepdim=True)
        expanded = pooled.expand(-1, -1, local.shape[2])
        return self.head(torch.cat([local, expanded], dim=1)).transpose(1, 2)
