"""pix2pix networks (Isola et al. 2017), as in the reference implementation
(junyanz/pytorch-CycleGAN-and-pix2pix, ``models/networks.py``).

* ``UNetGenerator``: ``num_downs`` stride-2 4x4 convolutions down and as many 4x4 transposed
  convolutions up, each decoder level concatenated with its encoder level (skip
  connections). Width ``width * 2**level`` capped at ``8 * width``; the levels between the
  innermost and the ``8 * width`` cap use dropout 0.5 while training. Tanh output in
  [-1, 1]. Image sizes must be multiples of ``stride = 2**num_downs``.
* ``PatchGANDiscriminator``: ``n_layers = 3`` gives the 70x70 PatchGAN; it scores
  overlapping patches of (input, output) pairs as logits (no sigmoid; the loss applies it).

Normalisation is BatchNorm by default ("batch", the reference's default for pix2pix) or
InstanceNorm ("instance"); convolutions before a BatchNorm have no bias, exactly as the
reference. ``init_weights`` draws conv weights from N(0, 0.02) and norm scales from
N(1, 0.02). Activations are not in-place; the reference's in-place LeakyReLU changes the
skip tensor only where a ReLU follows, which gives the same result.
"""

from __future__ import annotations

import torch
from torch import nn

NORMS = ("batch", "instance")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class _SkipBlock(nn.Module):
    """One U-Net level: down, the inner levels, up; concatenated with its input."""

    def __init__(self, outer: int, inner: int, submodule: nn.Module | None, *, in_channels: int | None = None,
                 outermost: bool = False, norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        self.outermost = outermost
        bias = norm == "instance"
        in_channels = outer if in_channels is None else in_channels
        down_conv = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1)
            layers = [down_conv, submodule, nn.ReLU(), up, nn.Tanh()]
        elif submodule is None:   # innermost: no norm on the 1x1 bottleneck
            up = nn.ConvTranspose2d(inner, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), down_conv, nn.ReLU(), up, _norm(norm, outer)]
        else:
            up = nn.ConvTranspose2d(inner * 2, outer, 4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2), down_conv, _norm(norm, inner), submodule,
                      nn.ReLU(), up, _norm(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], dim=1)


class UNetGenerator(nn.Module):
    """``[B, in_channels, H, W]`` in [-1, 1] -> ``[B, out_channels, H, W]`` in [-1, 1]."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: int = 64, num_downs: int = 8,
                 norm: str = "batch", dropout: float = 0.5):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"UNetGenerator num_downs must be >= 5 (the reference's outer levels "
                             f"width, 2x, 4x, 8x plus an innermost), got {num_downs}")
        if width < 1 or in_channels < 1 or out_channels < 1 or norm not in NORMS:
            raise ValueError(f"UNetGenerator needs width, channels >= 1 and norm in {NORMS}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.num_downs, self.stride = int(num_downs), 2 ** int(num_downs)
        w = int(width)
        block = _SkipBlock(w * 8, w * 8, None, norm=norm)
        for _ in range(self.num_downs - 5):
            block = _SkipBlock(w * 8, w * 8, block, norm=norm, dropout=dropout)
        block = _SkipBlock(w * 4, w * 8, block, norm=norm)
        block = _SkipBlock(w * 2, w * 4, block, norm=norm)
        block = _SkipBlock(w, w * 2, block, norm=norm)
        self.model = _SkipBlock(self.out_channels, w, block, in_channels=self.in_channels,
                                outermost=True, norm=norm)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PatchGANDiscriminator(nn.Module):
    """Logit per overlapping patch of the concatenated (condition, image) pair."""

    def __init__(self, in_channels: int = 6, width: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if n_layers < 1 or width < 1 or norm not in NORMS:
            raise ValueError(f"PatchGANDiscriminator needs n_layers, width >= 1 and norm in {NORMS}")
        bias = norm == "instance"
        layers = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(width * prev, width * mult, 4, stride=stride, padding=1, bias=bias),
                       _norm(norm, width * mult), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(width * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def receptive_field(n_layers: int) -> int:
    """Input pixels one output logit sees (70 for n_layers = 3)."""
    field = 1
    strides = [2] * n_layers + [1, 1]
    for s in reversed(strides):
        field = (field - 1) * s + 4
    return field


def init_weights(model: nn.Module, gain: float = 0.02) -> None:
    """The reference's ``init_type='normal'``: conv N(0, gain), norm scale N(1, gain), biases 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
