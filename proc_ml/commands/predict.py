"""``proc-ml predict building-parts``: label a building (grid, adjacency rows or mesh)."""

from __future__ import annotations

from proc_ml.textures.palette import MATERIALS


def register(sub) -> None:
    parser = sub.add_parser("predict", help="run an exported ONNX model on a building",
                            description="Run an exported model (torch-free: numpy + onnxruntime).")
    kinds = parser.add_subparsers(dest="kind", metavar="TASK", required=True)
    p = kinds.add_parser(
        "building-parts", help="a part on every exterior face",
        description="Label every exterior face of a building. INPUT is a dataset grid .npz, "
                    "adjacency.csv rows, or a mesh (OBJ/PLY/STL/OFF/GLB/GLTF). Writes "
                    "parts.ply, parts.glb, faces.csv, parts.png, summary.json, and "
                    "accuracy.json when the input carries ground truth.")
    p.add_argument("--model", required=True, help="ONNX model from 'proc-ml export onnx'")
    p.add_argument("--input", required=True, help="grid .npz, adjacency.csv or mesh file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cell-size", type=float, default=None,
                   help="metres per cell when voxelising a mesh (default: the model's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto (CUDA when usable, else CPU; default), cpu, or cuda")
    p.add_argument("--building-id", type=int, default=None,
                   help="which building's rows to use when adjacency.csv holds several")
    p.add_argument("--up", choices=("y", "z"), default=None,
                   help="up axis of a mesh input (default: y for GLB/GLTF, z otherwise)")
    p.add_argument("--style", default=None,
                   help="9 comma-separated style values for style-aware models on inputs "
                        "without style (meshes): street:+x,street:-x,street:+y,street:-y,"
                        "window_period:1,window_period:2,window_period:3,shopfront,balconies")
    p.add_argument("--threads", type=int, default=0,
                   help="onnxruntime intra-op threads (default 0 = onnxruntime's choice)")
    p.set_defaults(func=run)
    from proc_ml.predict_shapes import register_shape_predictors  # numpy only, cheap
    register_shape_predictors(kinds)

    t = kinds.add_parser(
        "texture", help="facade textures from label maps (pix2pix), or a textured building",
        description="With --input: turn a colour-coded facade label map (PNG) into a texture PNG. "
                    "With --building: draw every facade of a building (grid .npz with parts, or any "
                    "building-parts input plus --parts-model) as a label map, texture it, pack an "
                    "atlas and write a textured GLB (plus NAME_atlas.png and NAME_labels.png).")
    t.add_argument("--model", help="pix2pix generator ONNX from 'proc-ml export onnx'")
    source = t.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="label map PNG in the model's palette")
    source.add_argument("--building", help="building to texture: grid .npz, adjacency.csv or mesh")
    t.add_argument("--out", required=True, help="output .png (--input) or .glb (--building)")
    t.add_argument("--parts-model", help="building-parts ONNX model to label the building first")
    t.add_argument("--material", choices=MATERIALS, default="plaster",
                   help="wall material the label maps ask for (default plaster)")
    t.add_argument("--module-px", type=int, default=None,
                   help="pixels per facade module (default: the model's training value)")
    t.add_argument("--procedural", action="store_true",
                   help="use the procedural texture instead of a model (no --model needed)")
    t.add_argument("--seed", type=int, default=0, help="seed of procedural textures and tiles")
    t.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    t.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    t.set_defaults(func=run_texture)


def run_texture(args) -> int:
    from proc_ml.errors import ConfigError

    if args.model is None and not (args.procedural and args.building):
        raise ConfigError("--model is required (or --procedural with --building)")
    if args.module_px is not None and args.module_px < 1:
        raise ConfigError(f"--module-px must be >= 1, got {args.module_px}")
    if args.input:
        return _texture_image(args)
    from proc_ml.runtime.textures import texture_building_file

    if not str(args.out).lower().endswith(".glb"):
        raise ConfigError(f"{args.out}: --out must name a .glb file with --building")
    summary = texture_building_file(args.model, args.building, args.out, parts_model=args.parts_model,
                                    material=args.material, module_px=args.module_px, seed=args.seed,
                                    device=args.device, threads=args.threads,
                                    procedural=args.procedural)
    print(f"textured {summary['faces']} faces on {summary['facades']} facade sheets "
          f"(atlas {summary['atlas'][0]}x{summary['atlas'][1]}, {summary['module_px']} px per module, "
          f"{summary['source']}); wrote {summary['out']}")
    return 0


def _texture_image(args) -> int:
    from proc_ml.runtime.textures import TextureGenerator
    from proc_ml.textures.images import read_rgb, write_png

    generator = TextureGenerator(args.model, args.device, args.threads)
    labels = read_rgb(args.input)
    generator.check_labels(labels, args.input)
    texture = generator.predict(labels)
    write_png(args.out, texture)
    print(f"wrote {args.out} ({texture.shape[1]}x{texture.shape[0]}, {generator.provider})")
    return 0


def run(args) -> int:
    from proc_ml.errors import ConfigError
    from proc_ml.predict_parts import parse_style, predict_building_parts

    if args.cell_size is not None and not args.cell_size > 0:
        raise ConfigError(f"--cell-size must be > 0, got {args.cell_size}")
    summary = predict_building_parts(args.model, args.input, args.out, device=args.device,
                                     cell_size=args.cell_size, building_id=args.building_id,
                                     up=args.up, style=parse_style(args.style),
                                     threads=args.threads)
    acc = "" if summary["accuracy"] is None else f", face accuracy {summary['accuracy']:.4f}"
    print(f"labelled {summary['faces']} faces of {summary['cells']} cells "
          f"(grid {summary['grid_shape']}, {summary['provider']}){acc}; wrote {args.out}")
    for note in summary["notes"]:
        print(f"note: {note}")
    return 0
