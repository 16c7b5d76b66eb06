"""Command-line options that more than one command defines, written once: where an ONNX
model runs, and how a building-parts prediction reads a building (up axis, street sides,
symmetry averaging, the entrance rule). ``proc-ml predict building-parts`` and ``proc-ml
batch`` both take them; docs/onnx.md describes what each does."""

from __future__ import annotations

from proc_ml.symmetry import SYMMETRIES

#: The largest ``--seed`` (numpy seeds are unsigned 32-bit; a dataset's seed is recorded).
MAX_SEED = 2 ** 32 - 1

DEVICE_HELP = ("where the model runs: auto (the best usable provider; default), cpu, cuda, "
               "tensorrt, directml or coreml (see docs/install.md)")


def add_device_option(p) -> None:
    """``--device``: the onnxruntime provider (``proc_ml.runtime.providers.DEVICES``)."""
    from proc_ml.runtime.providers import DEVICES

    p.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)


def add_up_option(p) -> None:
    """``--up``: the up axis of mesh inputs (``proc_ml.voxelize.detect_up`` when not given)."""
    p.add_argument("--up", choices=("y", "z"), default=None,
                   help="up axis of mesh inputs (default: y for GLB/GLTF, else detected from the "
                        "geometry; see docs/onnx.md)")


#: Where ``--buildings`` takes the buildings of a mesh from (``proc_ml.predict.parts.label_building``).
BUILDING_SOURCES = ("masses", "objects")


def add_parts_options(p, scope: str = "", recorded_by: str = "the input") -> None:
    """``--street``, ``--symmetry``, ``--buildings`` and ``--no-entrance-rule`` of a building-parts
    prediction. ``scope`` starts each help line (``"parts task: "`` where the command has
    other tasks); ``recorded_by`` names what carries the street sides when none are given."""
    p.add_argument("--street", default=None, metavar="SIDES",
                   help=f"{scope}the sides facing the street, e.g. +x,-y, in the input's z-up "
                        f"frame (default: what {recorded_by} records; a model that cannot use "
                        f"them says so)")
    p.add_argument("--symmetry", choices=SYMMETRIES, default=None,
                   help=f"{scope}average the model's probabilities over the building's quarter "
                        f"turns (rotate) and their mirror images (dihedral), or not (none); "
                        f"default: the model's own (the installed model: dihedral; docs/onnx.md)")
    p.add_argument("--buildings", choices=BUILDING_SOURCES, default=None,
                   help=f"{scope}which cells of a mesh are which building: masses (default: the "
                        f"masses standing apart) or objects (each object of the file, a glTF "
                        f"node or an OBJ 'o', is a building, objects over the same ground being "
                        f"one: row houses that touch each get their own entrance; docs/onnx.md)")
    p.add_argument("--no-entrance-rule", dest="entrance", action="store_false", default=None,
                   help=f"{scope}do not apply the model's entrance rule (a building whose street "
                        f"ground floor got no door gets one on its most door-like face; "
                        f"docs/onnx.md)")


def check_seed(seed: int, name: str = "--seed", most: int = MAX_SEED) -> None:
    """A seed every command takes the same way, checked before anything is read or removed:
    0 to ``most`` (2^32 - 1; less where the command derives further seeds from it)."""
    from proc_ml.errors import ConfigError

    if seed < 0:
        raise ConfigError(f"{name} must be >= 0, got {seed}")
    if seed > most:
        raise ConfigError(f"{name} must be <= {most}, got {seed}")
