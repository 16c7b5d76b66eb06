"""Models installed with proc-ml: the default ``--model`` of each task that ships one.

``default_model("building-parts")`` is the street-aware building-parts model
(``proc_ml/models/building_parts.onnx``; how it was made and how it scores on real
buildings: docs/model-card.md). The CLI, the Houdini SOP, the Blender operator and batch
jobs use it when no model is given.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ModelError

#: task -> file name under proc_ml/models/
DEFAULT_MODELS = {"building-parts": "building_parts.onnx"}


def default_model(task: str = "building-parts") -> Path:
    """Path of the model installed for ``task``; ``ModelError`` when proc-ml ships none
    for it or the file is missing from this install."""
    name = DEFAULT_MODELS.get(task)
    if name is None:
        raise ModelError(f"proc-ml installs no default model for {task}; pass --model "
                         f"(one from 'proc-ml export onnx')")
    path = Path(str(resources.files("proc_ml") / "models" / name))
    if not path.is_file():
        raise ModelError(f"{path}: the default {task} model is missing from this install "
                         f"(reinstall proc-ml, or pass --model)")
    return path
