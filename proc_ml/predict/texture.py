"""Facade textures from files (torch-free): the library behind ``proc-ml predict texture``
and the batch ``texture`` task.

* ``texture_image_file``: a colour-coded facade label map (PNG) -> a texture PNG;
* ``texture_image_folder``: every label map of a folder -> a texture PNG of the same name
  in an output folder, with one loaded model;
* ``texture_building_file``: a building (a grid ``.npz`` with parts, or any input
  ``predict building-parts`` reads plus a parts model to label it) -> every facade drawn as
  a label map, textured by the generator, packed into one atlas, written as a textured GLB
  with ``NAME_atlas.png`` and ``NAME_labels.png`` beside it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, DatasetError, ModelError, ProcMLError
from ..procedural.parts import DEFAULT_PARTS, Vocabulary
from ..runtime import PartsPredictor
from ..runtime.textures import TextureGenerator
from ..textures.building import texture_building
from ..textures.glb import write_textured_glb
from ..textures.images import read_rgb, write_png
from ..textures.pairs import DEFAULT_MODULE_PX
from .inputs import read_input


def texture_image_file(generator: TextureGenerator, input_path, out_path) -> dict:
    """Texture one label map PNG into ``out_path`` (PNG)."""
    labels = read_rgb(input_path)
    labels = generator.check_labels(labels, str(input_path))
    texture = generator.predict(labels)
    write_png(out_path, texture)
    result = {"out": str(out_path), "size": [int(texture.shape[1]), int(texture.shape[0])],
              "provider": generator.provider}
    note = generator.scale_note(*texture.shape[:2])
    if note:
        result["note"] = note
    return result


def label_maps_in(folder) -> list[Path]:
    """The image files directly inside ``folder`` (hidden files skipped), sorted by name."""
    from ..textures.images import IMAGE_SUFFIXES

    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def texture_image_folder(generator: TextureGenerator, input_dir, out_dir, progress=None) -> dict:
    """Texture every label map directly inside ``input_dir`` into ``out_dir/STEM.png``
    (atomic writes) with the one ``generator``. A bad label map does not stop the others:
    its one-line error is returned in ``failed`` (``[{"input", "error"}]``) and the rest are
    textured. ``progress(done, total, path)`` is called after each file."""
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    if not input_dir.is_dir():
        raise ModelError(f"{input_dir}: input folder not found")
    if out_dir.exists() and not out_dir.is_dir():
        raise ModelError(f"{out_dir}: --out must be a folder with a folder --input (it is a file)")
    if out_dir.resolve() == input_dir.resolve():
        raise ModelError(f"{out_dir}: the output folder is the input folder; the textures would "
                         f"replace the label maps")
    files = label_maps_in(input_dir)
    if not files:
        raise ModelError(f"{input_dir}: no label maps (.png, .jpg, ...) in this folder")
    stems = {}
    for path in files:
        if path.stem in stems:
            raise ModelError(f"{path}: same name as {stems[path.stem].name}; both would be written "
                             f"to {out_dir / (path.stem + '.png')}")
        stems[path.stem] = path
    written, failed, notes = [], [], {}
    for i, path in enumerate(files):
        out = out_dir / f"{path.stem}.png"
        try:
            result = texture_image_file(generator, path, out)
        except ProcMLError as exc:
            failed.append({"input": str(path), "error": str(exc)})
        else:
            written.append(str(out))
            if "note" in result:
                notes.setdefault(result["note"], str(path))
        if progress is not None:
            progress(i + 1, len(files), path)
    return {"out": str(out_dir), "files": written, "count": len(written), "failed": failed,
            "provider": generator.provider,
            "notes": [f"{path}: {note}" for note, path in notes.items()]}


def building_outputs(out_path) -> tuple[Path, Path, Path]:
    """The files ``texture_building_file`` writes for ``out_path``: the GLB, its atlas and
    its label atlas (``NAME.glb``, ``NAME_atlas.png``, ``NAME_labels.png``)."""
    out_path = Path(out_path)
    return (out_path, out_path.with_name(f"{out_path.stem}_atlas.png"),
            out_path.with_name(f"{out_path.stem}_labels.png"))


def texture_building_file(generator: TextureGenerator | None, building_path, out_path, *,
                          parts_model: PartsPredictor | None = None, material: str = "plaster",
                          module_px: int | None = None, seed: int = 0,
                          cell_size: float | None = None, up: str | None = None) -> dict:
    """Texture the building in ``building_path`` and write ``out_path`` (.glb) plus its
    atlas and label atlas. ``generator`` None draws the procedural texture; ``parts_model``
    labels the building (meshes need one; grids carry their labels). ``cell_size``: the
    given voxel size (resolved with the parts model's, ``proc_ml.units``)."""
    item = read_input(building_path, cell_size=cell_size, up=up,
                      model_cell_size=parts_model.cell_size if parts_model else None)
    labels, parts = item.truth, item.truth_parts
    if parts_model is not None:
        labels, _ = parts_model.predict(item.occupancy, item.style, item.street)
        parts = parts_model.parts
    if labels is None:
        raise ModelError(f"{building_path}: no part labels in this file; pass --parts-model "
                         f"to predict them with a building-parts model")
    parts = list(parts or DEFAULT_PARTS)
    try:
        Vocabulary(tuple(parts))          # the roles texturing needs (roof, ground, ...)
    except ConfigError as exc:
        if parts_model is not None:
            raise ModelError(f"{parts_model.model.path}: {exc}; texturing needs them") from None
        raise DatasetError(f"{building_path}: {exc}; texturing needs them") from None
    px = int(module_px or (generator.module_px if generator else None) or DEFAULT_MODULE_PX)
    built = texture_building(item.occupancy, labels, parts, generator, module_px=px, material=material,
                             cell_size=item.cell_size, seed=seed,
                             palette=generator.palette if generator else None)
    out_path, atlas_path, labels_path = building_outputs(out_path)
    write_textured_glb(out_path, built.vertices, built.triangles, built.uv, built.atlas.image,
                       name=out_path.stem)
    write_png(atlas_path, built.atlas.image)
    write_png(labels_path, built.label_atlas.image)
    return {"out": str(out_path), "faces": int(len(built.parts)), "facades": len(built.sheets),
            "atlas": list(built.atlas.size), "module_px": px, "material": material,
            "grid_shape": list(item.occupancy.shape), "cells": int(item.occupancy.sum()),
            "cell_size": item.cell_size,
            "source": "procedural" if generator is None else generator.provider,
            "parts_from": "model" if parts_model is not None else "file"}
