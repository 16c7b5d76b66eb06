"""``proc-ml predict building-parts|classify|segment|texture``: run an exported ONNX model
on a file (torch-free: numpy + onnxruntime). Every subcommand is parsed here; the work is
done by ``proc_ml.predict``."""

from __future__ import annotations

import sys
from pathlib import Path

from proc_ml.textures.palette import MATERIALS

from .options import add_device_option, add_parts_options, add_up_option, check_seed


def _common(p, seed_help: str | None = None) -> None:
    add_device_option(p)
    p.add_argument("--threads", type=int, default=0,
                   help="onnxruntime intra-op threads (default 0 = onnxruntime's choice)")
    if seed_help:
        p.add_argument("--seed", type=int, default=0, help=seed_help)


def register(sub) -> None:
    parser = sub.add_parser("predict", help="run an exported ONNX model on a building or shape",
                            description="Run an exported model (torch-free: numpy + onnxruntime).")
    kinds = parser.add_subparsers(dest="kind", metavar="TASK", required=True)

    p = kinds.add_parser(
        "building-parts", help="a part on every exterior face",
        description="Label every exterior face of a building. INPUT is a dataset grid .npz, "
                    "adjacency.csv rows, or a mesh (OBJ/PLY/STL/OFF/GLB/GLTF). Writes "
                    "parts.ply, parts.glb, faces.csv, parts.png, summary.json, and "
                    "accuracy.json when the input carries ground truth.")
    p.add_argument("--model", default=None,
                   help="ONNX model from 'proc-ml export onnx' (default: the model installed "
                        "with proc-ml: massing + street sides, docs/model-card.md)")
    p.add_argument("--input", required=True, help="grid .npz, adjacency.csv or mesh file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cell-size", type=float, default=None,
                   help="metres per cell when voxelising a mesh (default: the model's)")
    p.add_argument("--building-id", type=int, default=None,
                   help="which building's rows to use when adjacency.csv holds several")
    add_up_option(p)
    p.add_argument("--style", default=None,
                   help="9 comma-separated style values for style-aware models on inputs "
                        "without style (meshes): street:+x,street:-x,street:+y,street:-y,"
                        "window_period:1,window_period:2,window_period:3,shopfront,balconies")
    add_parts_options(p)
    _common(p)
    p.set_defaults(func=run_parts)

    p = kinds.add_parser(
        "classify", help="the class of a mesh or point cloud (PointNet / VoxNet)",
        description="Classify a shape with an exported pointnet-cls or voxnet model. INPUT is "
                    "a mesh (OBJ/OFF/STL/PLY/GLB/GLTF) or a point cloud (PCD, PLY without faces).")
    p.add_argument("--model", required=True, help="ONNX model from 'proc-ml export onnx'")
    p.add_argument("--input", required=True, help="mesh or point-cloud file")
    p.add_argument("--top-k", type=int, default=5, help="how many classes to list (default 5)")
    p.add_argument("--out", default=None, help="folder for classes.json (optional)")
    _common(p, "seed of the surface point sampling")
    p.set_defaults(func=run_classify)

    p = kinds.add_parser(
        "segment", help="a part for every point of a mesh or point cloud (PointNet)",
        description="Segment a shape with an exported pointnet-seg model: writes segments.ply "
                    "(coloured, with a 'part' property), segments.png and summary.json.")
    p.add_argument("--model", required=True, help="ONNX model from 'proc-ml export onnx'")
    p.add_argument("--input", required=True, help="mesh or point-cloud file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--points", type=int, default=None,
                   help="points to sample (default: the number the model was trained with)")
    p.add_argument("--style", default=None,
                   help="9 comma-separated style values for style-aware building models")
    _common(p, "seed of the surface point sampling")
    p.set_defaults(func=run_segment)

    t = kinds.add_parser(
        "texture", help="facade textures from label maps (pix2pix), or a textured building",
        description="With --input: turn a colour-coded facade label map (PNG) into a texture PNG "
                    "(--input FOLDER: every label map in it, into the --out folder, with one "
                    "model load). With --building: draw every facade of a building (grid .npz with parts, or any "
                    "building-parts input plus --parts-model) as a label map, texture it, pack an "
                    "atlas and write a textured GLB (plus NAME_atlas.png and NAME_labels.png).")
    t.add_argument("--model", help="pix2pix generator ONNX from 'proc-ml export onnx'")
    source = t.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="label map PNG in the model's palette, or a folder of them")
    source.add_argument("--building", help="building to texture: grid .npz, adjacency.csv or mesh")
    t.add_argument("--out", required=True,
                   help="output .png (--input FILE), folder (--input FOLDER) or .glb (--building)")
    t.add_argument("--parts-model", help="building-parts ONNX model to label the building first")
    t.add_argument("--cell-size", type=float, default=None,
                   help="metres per cell when voxelising a mesh (default: the parts model's)")
    t.add_argument("--material", choices=MATERIALS, default=None,
                   help="wall material the label maps ask for (default plaster)")
    t.add_argument("--module-px", type=int, default=None,
                   help="pixels per facade module (default: the model's training value)")
    t.add_argument("--procedural", action="store_true",
                   help="use the procedural texture instead of a model (no --model needed)")
    _common(t, "seed of procedural textures and tiles (--building)")
    t.set_defaults(func=run_texture)


def parse_style(text: str | None):
    """``--style``: 9 comma-separated numbers in ``STYLE_FEATURES`` order (checked)."""
    from proc_ml.encoding import STYLE_FEATURES, style_vector
    from proc_ml.errors import DatasetError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise DatasetError(f"--style: '{text}' is not a comma-separated list of numbers "
                           f"({', '.join(STYLE_FEATURES)})") from None
    return style_vector(values, "--style")


def _cell_size(args) -> float | None:
    from proc_ml.units import check_cell_size

    return None if args.cell_size is None else check_cell_size(args.cell_size, "--cell-size")


def _check_common(args, out_folder: bool = True) -> None:
    """Values every predict command shares, checked before the model is loaded: the thread
    count, the seed and the output location (a writable folder, or a file in one)."""
    from proc_ml.errors import ConfigError
    from proc_ml.fileio import check_output_file, check_output_folder

    if not 0 <= args.threads <= 1024:
        raise ConfigError(f"--threads must be between 0 and 1024, got {args.threads}")
    if getattr(args, "seed", None) is not None:
        check_seed(args.seed)
    if getattr(args, "out", None) is not None:
        (check_output_folder if out_folder else check_output_file)(args.out)


def run_parts(args) -> int:
    from proc_ml.encoding import parse_street
    from proc_ml.fileio import check_replaceable
    from proc_ml.predict.parts import OUTPUT_FILES, label_building
    from proc_ml.runtime import PartsPredictor, default_model

    _check_common(args)
    check_replaceable(args.out, OUTPUT_FILES, [args.input])
    cell_size = _cell_size(args)
    style = parse_style(args.style)
    model = args.model or default_model("building-parts")
    predictor = PartsPredictor.open(model, device=args.device, intra_op_threads=args.threads)
    street = parse_street(args.street) if args.street is not None else None
    summary = label_building(predictor, args.input, args.out, cell_size=cell_size,
                             building_id=args.building_id, up=args.up, style=style, street=street,
                             symmetry=args.symmetry, entrance=args.entrance,
                             buildings=args.buildings or "masses")
    acc = "" if summary["accuracy"] is None else f", face accuracy {summary['accuracy']:.4f}"
    print(f"labelled {summary['faces']} faces of {summary['cells']} cells "
          f"(grid {summary['grid_shape']}, {summary['provider']}){acc}; wrote {args.out}")
    if args.model is None:
        print(f"note: model: the one installed with proc-ml ({model}; docs/model-card.md)")
    for note in summary["notes"]:
        print(f"note: {note}")
    return 0


def run_classify(args) -> int:
    from proc_ml.errors import ConfigError
    from proc_ml.fileio import check_replaceable
    from proc_ml.predict.shapes import CLASSIFY_FILES, classify_shape
    from proc_ml.runtime.shapes import ShapePredictor

    if not 1 <= args.top_k <= 10_000:
        raise ConfigError(f"--top-k must be between 1 and 10000, got {args.top_k}")
    _check_common(args)
    if args.out:
        check_replaceable(args.out, CLASSIFY_FILES, [args.input], record="classes.json")
    predictor = ShapePredictor.open(args.model, device=args.device, intra_op_threads=args.threads)
    result = classify_shape(predictor, args.input, args.out, args.top_k, args.seed)
    for entry in result["top_k"]:
        print(f"{entry['class']:<20}{entry['probability']:8.4f}")
    if args.out:
        print(f"wrote {Path(args.out) / 'classes.json'}")
    return 0


def run_segment(args) -> int:
    from proc_ml.errors import ConfigError
    from proc_ml.fileio import check_replaceable
    from proc_ml.predict.shapes import SEGMENT_FILES, segment_shape
    from proc_ml.runtime.shapes import ShapePredictor

    if args.points is not None and args.points < 1:
        raise ConfigError(f"--points must be >= 1, got {args.points}")
    _check_common(args)
    check_replaceable(args.out, SEGMENT_FILES, [args.input])
    style = parse_style(args.style)
    predictor = ShapePredictor.open(args.model, device=args.device, intra_op_threads=args.threads)
    summary = segment_shape(predictor, args.input, args.out, style, args.points, args.seed)
    shown = ", ".join(f"{p} {c}" for p, c in summary["points_per_part"].items() if c)
    print(f"segmented {summary['points']} points ({shown}); wrote {args.out}")
    if style is not None and not predictor.info.with_style:
        print("note: --style is not used: this model was trained without the style features")
    return 0


def run_texture(args) -> int:
    from proc_ml.errors import ConfigError
    from proc_ml.fileio import check_not_input
    from proc_ml.predict.texture import building_outputs, texture_building_file, texture_image_file
    from proc_ml.runtime import PartsPredictor
    from proc_ml.runtime.textures import TextureGenerator

    if args.model is None and not (args.procedural and args.building):
        raise ConfigError("--model is required (or --procedural with --building)")
    if args.module_px is not None and args.module_px < 1:
        raise ConfigError(f"--module-px must be >= 1, got {args.module_px}")
    if args.input:
        # a label map is turned into a texture as it is: what builds the label maps of a
        # building would be dropped without a word
        given = [flag for flag, value in (("--parts-model", args.parts_model),
                                          ("--cell-size", args.cell_size),
                                          ("--material", args.material),
                                          ("--module-px", args.module_px),
                                          ("--procedural", args.procedural)) if value]
        if given:
            raise ConfigError(f"{' '.join(given)}: for --building only (--input textures the "
                              f"label maps as they are)")
    folder_input = bool(args.input) and Path(args.input).is_dir()
    if not (folder_input and Path(args.out).resolve() == Path(args.input).resolve()):
        _check_common(args, out_folder=folder_input)   # (the input folder itself: below)
    cell_size = _cell_size(args)
    if folder_input:
        from proc_ml.predict.texture import texture_image_folder

        if Path(args.out).suffix.lower() == ".png":
            raise ConfigError(f"{args.out}: with a folder --input, --out names a folder (got a .png)")
        generator = TextureGenerator.open(args.model, args.device, args.threads)
        result = texture_image_folder(generator, args.input, args.out)
        failed = result["failed"]
        print(f"wrote {result['count']} textures to {args.out} ({result['provider']})"
              + (f"; {len(failed)} label maps failed (below)" if failed else ""))
        for line in result["notes"][:3]:
            print(f"note: {line}")
        for failure in failed:
            print(f"failed: {failure['error']}", file=sys.stderr)
        return 2 if failed else 0
    if args.input:
        if Path(args.out).suffix.lower() != ".png":
            raise ConfigError(f"--out {args.out}: with a label map --input, --out names the texture "
                              f"PNG to write (a .png file)")
        check_not_input([args.out], [args.input])
        generator = TextureGenerator.open(args.model, args.device, args.threads)
        result = texture_image_file(generator, args.input, args.out)
        print(f"wrote {args.out} ({result['size'][0]}x{result['size'][1]}, {result['provider']})")
        if "note" in result:
            print(f"note: {result['note']}")
        return 0
    if not str(args.out).lower().endswith(".glb"):
        raise ConfigError(f"{args.out}: --out must name a .glb file with --building")
    check_not_input(building_outputs(args.out), [args.building])
    generator = None if args.procedural else TextureGenerator.open(args.model, args.device, args.threads)
    parts = (PartsPredictor.open(args.parts_model, args.device, args.threads)
             if args.parts_model else None)
    summary = texture_building_file(generator, args.building, args.out, parts_model=parts,
                                    material=args.material or "plaster", module_px=args.module_px,
                                    seed=args.seed, cell_size=cell_size)
    print(f"textured {summary['faces']} faces on {summary['facades']} facade sheets of a grid "
          f"{summary['grid_shape']} at {summary['cell_size']:g} per cell (atlas "
          f"{summary['atlas'][0]}x{summary['atlas'][1]}, {summary['module_px']} px per module, "
          f"{summary['source']}); wrote {summary['out']}")
    return 0
