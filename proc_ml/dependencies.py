"""Which pip extra brings each optional dependency, so a missing one is one line naming the
install command instead of a ``ModuleNotFoundError`` traceback (``proc_ml.cli``)."""

from __future__ import annotations

#: Top-level module -> the proc-ml extra that installs it (pyproject.toml).
EXTRAS = {
    "torch": "train", "onnx": "train", "onnxscript": "train", "ml_dtypes": "train",
    "matplotlib": "train", "mpl_toolkits": "train", "tensorboard": "train",
    "open3d": "points",
    "ray": "ray",
    "bpy": "blender",
}
#: Top-level module -> pip package, for the base dependencies (a broken or partial install).
BASE = {"numpy": "numpy", "yaml": "pyyaml", "trimesh": "trimesh", "onnxruntime": "onnxruntime",
        "tqdm": "tqdm", "PIL": "pillow", "scipy": "scipy", "lxml": "lxml"}
#: What each extra is for, in the message.
PURPOSE = {"train": "training, ONNX export and pictures", "points": "point clouds",
           "ray": "Ray batch runs", "blender": "Blender as a Python module"}


def missing_module_message(name: str | None) -> str | None:
    """One line saying what to install for the missing module ``name``; ``None`` when it is
    not a dependency proc-ml knows (a real bug: let the traceback show)."""
    top = (name or "").split(".")[0]
    if top in EXTRAS:
        extra = EXTRAS[top]
        return (f"this needs {top}, which is not installed here ({PURPOSE[extra]}): "
                f'pip install "proc-ml[{extra}]"')
    if top in BASE:
        return (f"this needs {top}, a proc-ml dependency that is not installed here: "
                f"pip install {BASE[top]} (or reinstall proc-ml)")
    return None
