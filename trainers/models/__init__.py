"""Model families, buildable by name from a config.

``build_model(family, **kwargs)`` constructs a network; ``FAMILIES[family].defaults`` are
the hyper-parameters a config's ``model`` section may set (the task fills in the input
and output sizes, ``inputs`` names which of those it sets). Later families (pointnet,
dgcnn, voxnet, pix2pix) register here the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .dgcnn import DGCNNSegmenter
from .parts_mlp import PartsMLP
from .parts_unet3d import PartsUNet3D
from .pointnet import PointNetClassifier, PointNetSegmenter
from .voxnet import VoxelUNet3D, VoxNet
from .pix2pix import PatchGANDiscriminator, UNetGenerator


#: Layer sizes above this are refused: a typo (width: 80000) would otherwise allocate
#: gigabytes of weights before the first step.
MAX_WIDTH = 4096


def _sizes(v) -> bool:
    return all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_WIDTH for n in v)


#: Range checks of the built-in families' hyper-parameters, by name (types are checked by
#: the config merge against the defaults).
HYPER_CHECKS = {
    "width": (lambda v: 1 <= v <= 512, "must be >= 1 and <= 512"),
    "depth": (lambda v: 0 <= v <= 5, "must be between 0 and 5"),
    "hidden": (lambda v: len(v) <= 64 and _sizes(v),
               f"must be a list of layer sizes >= 1 (at most 64 layers of {MAX_WIDTH})"),
    "dropout": (lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
    "num_downs": (lambda v: 5 <= v <= 10, "must be between 5 and 10"),
    "norm": (lambda v: v in ("batch", "instance"), "must be batch or instance"),
    "k": (lambda v: 1 <= v <= 256, "must be >= 1 and <= 256"),
    "point_widths": (lambda v: len(v) <= 64 and _sizes(v),
                     f"must be a list of layer sizes >= 1 (at most 64 layers of {MAX_WIDTH})"),
    "edge_widths": (lambda v: 1 <= len(v) <= 64 and all(
        (isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WIDTH)
        or (isinstance(w, list) and w and _sizes(w)) for w in v),
        "must list one layer size (or list of layer sizes) >= 1 per EdgeConv"),
}


@dataclass(frozen=True)
class Family:
    name: str
    factory: Callable
    defaults: dict = field(default_factory=dict)   # hyper-parameters a config may set
    inputs: tuple[str, ...] = ()                   # sizes the task fills in from the data
    checks: dict = field(default_factory=dict)     # key -> (predicate, "must be ...")


def _builtin(name: str, factory: Callable, defaults: dict, inputs: tuple[str, ...]) -> Family:
    return Family(name, factory, defaults, inputs,
                  {k: HYPER_CHECKS[k] for k in defaults if k in HYPER_CHECKS})


FAMILIES: dict[str, Family] = {
    "parts-mlp": _builtin("parts-mlp", PartsMLP, {"hidden": [128, 128], "dropout": 0.0},
                        ("in_features", "n_parts")),
    "parts-unet3d": _builtin("parts-unet3d", PartsUNet3D, {"width": 16, "depth": 2},
                           ("in_channels", "n_parts")),
    # PointNet / VoxNet shape nets (trainers/shapes.py); voxel-unet3d is the PartsUNet3D
    # network with a per-voxel class head.
    "pointnet-cls": _builtin("pointnet-cls", PointNetClassifier,
                           {"widths": [64, 128, 256], "head": [128], "dropout": 0.3,
                            "input_transform": False, "feature_transform": False,
                            "fourier_bands": 0, "fourier_period": 2.0},
                           ("in_features", "n_classes")),
    "pointnet-seg": _builtin("pointnet-seg", PointNetSegmenter,
                           {"widths": [64, 128, 256], "head": [256, 128], "dropout": 0.0,
                            "input_transform": False, "feature_transform": False,
                            "fourier_bands": 0, "fourier_period": 2.0},
                           ("in_features", "n_classes")),
    # DGCNN (EdgeConv over k nearest neighbours) for per-point segmentation: local
    # neighbourhoods (proc_ml/models/dgcnn.py); trained by the pointnet-seg task.
    "dgcnn-seg": _builtin("dgcnn-seg", DGCNNSegmenter,
                        {"k": 20, "point_widths": [], "edge_widths": [[64, 64], [64, 64], [64]],
                         "emb": 512,
                         "head": [256, 128], "dropout": 0.5, "dynamic_graph": False,
                         "fourier_bands": 0, "fourier_period": 2.0},
                        ("in_features", "n_classes")),
    "voxnet": _builtin("voxnet", VoxNet, {"width": 32, "head": [128], "dropout": 0.4},
                     ("n_classes", "resolution")),
    "voxel-unet3d": _builtin("voxel-unet3d", VoxelUNet3D, {"width": 8, "depth": 2},
                           ("n_classes", "in_channels")),
    # pix2pix (Isola et al. 2017): the generator is the model a run exports; the
    # discriminator only trains it (its settings live in the pix2pix config's gan section).
    "pix2pix-unet": _builtin("pix2pix-unet", UNetGenerator,
                           {"width": 64, "num_downs": 8, "norm": "batch", "dropout": 0.5},
                           ("in_channels", "out_channels")),
    "patchgan": _builtin("patchgan", PatchGANDiscriminator,
                       {"width": 64, "n_layers": 3, "norm": "batch"}, ("in_channels",)),
}


def register_family(family: Family) -> Family:
    """Add (or replace) a model family, e.g. from a task module of a plugin."""
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KeyError(f"unknown model family '{name}' (known: {', '.join(FAMILIES)})") from None


def build_model(family: str, **kwargs):
    """Construct the network of ``family`` with its input sizes and hyper-parameters."""
    return get_family(family).factory(**kwargs)


__all__ = ["DGCNNSegmenter", "FAMILIES", "Family", "PartsMLP", "PartsUNet3D", "PatchGANDiscriminator",
           "PointNetClassifier", "PointNetSegmenter", "UNetGenerator", "VoxNet", "VoxelUNet3D",
           "build_model", "get_family", "register_family"]
