"""Per-cell MLP for building parts (the SEED talk's network).

Each occupied cell's adjacency/context features (``encoding.adjacency_features``) go in;
six softmax groups come out, one per face direction, over the ``K`` parts. Logit index
``direction * K + part`` matches ``encoding.decode_cell_logits``.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class PartsMLP(nn.Module):
    """``float32[N, F]`` cell features -> ``float32[N, 6 * n_parts]`` face logits."""

    def __init__(self, in_features: int, n_parts: int, hidden: Sequence[int] = (128, 128),
                 dropout: float = 0.0):
        super().__init__()
        if in_features < 1 or n_parts < 1:
            raise ValueError(f"PartsMLP needs in_features >= 1 and n_parts >= 1, "
                             f"got {in_features} and {n_parts}")
        self.in_features = int(in_features)
        self.n_parts = int(n_parts)
        layers: list[nn.Module] = []
        width = self.in_features
        for size in hidden:
            layers += [nn.Linear(width, int(size)), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(size)
        layers.append(nn.Linear(width, 6 * self.n_parts))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
