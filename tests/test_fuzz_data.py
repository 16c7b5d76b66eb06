"""Fuzz: dataset files (adjacency.csv, faces.csv, dataset.yaml, grid .npz) through
``predict building-parts`` and ``train``.

Each case asserts the shared contract (tests/fuzzkit.py). Memory bombs (a coordinate that
would make a 25 GiB grid, a small .npz declaring gigabytes) run in a subprocess under a
hard memory limit and must be refused by the estimate, not by running out of memory.
"""

from __future__ import annotations

import io
import shutil
import zipfile

import numpy as np
import pytest
import yaml

from fuzzkit import Sandbox, assert_refused, run, run_limited
from proc_ml.formats import adjacency_csv

HEADER = ",".join(adjacency_csv.header())


@pytest.fixture
def box(tmp_path):
    return Sandbox.make(tmp_path)


def _rows(tiny_dataset, building: int = 0) -> list[str]:
    lines = (tiny_dataset / "adjacency.csv").read_text().splitlines()[1:]
    return [line for line in lines if line.split(",", 1)[0] == str(building)]


def _mutate(rows: list[str], row: int, column: int, value: str) -> list[str]:
    fields = rows[row].split(",")
    fields[column] = value
    return rows[:row] + [",".join(fields)] + rows[row + 1:]


# (case id, function(rows) -> file bytes, words of the error)
ADJACENCY = [
    ("coordinate_3000", lambda r: _mutate(r, 1, 1, "3000"), ["line 3", "out of range", "'x'"]),
    ("coordinate_1e9", lambda r: _mutate(r, 1, 2, "1000000000"), ["out of range", "'y'"]),
    ("coordinate_negative", lambda r: _mutate(r, 0, 3, "-1"), ["line 2", "out of range"]),
    ("coordinate_fraction", lambda r: _mutate(r, 0, 1, "1.5"), ["'1.5'", "whole number"]),
    ("coordinate_exponent", lambda r: _mutate(r, 0, 1, "1e2"), ["whole number"]),
    ("coordinate_text", lambda r: _mutate(r, 0, 2, "x1"), ["'x1'", "not a number"]),
    ("coordinate_empty", lambda r: _mutate(r, 0, 2, ""), ["not a number"]),
    ("building_id_negative", lambda r: _mutate(r, 0, 0, "-1"), ["out of range"]),
    ("building_id_c_long", lambda r: _mutate(r, 0, 0, "99999999999999999999999"),
     ["building_id", "out of range"]),
    ("feature_inf", lambda r: _mutate(r, 0, 6, "inf"), ["'inf'", "finite"]),
    ("feature_nan", lambda r: _mutate(r, 0, 7, "nan"), ["'nan'", "finite"]),
    ("feature_negative_inf", lambda r: _mutate(r, 2, 20, "-inf"), ["finite"]),
    ("feature_float32_overflow", lambda r: _mutate(r, 0, 10, "1e39"), ["out of range"]),
    ("feature_text", lambda r: _mutate(r, 0, 10, "tall"), ["'tall'", "not a number"]),
    ("extra_column", lambda r: [r[0] + ",0"] + r[1:], ["line 2", "columns"]),
    ("missing_column", lambda r: [r[0].rsplit(",", 1)[0]] + r[1:], ["line 2", "columns"]),
    ("nul_bytes", lambda r: [r[0].replace(",", ",\0", 1)] + r[1:], ["not a number"]),
    ("long_line", lambda r: [r[0] + "," + "1" * 100_000] + r[1:], ["columns"]),
]


def _write_csv(path, rows, header=HEADER):
    path.write_bytes((header + "\n" + "\n".join(rows) + "\n").encode("utf-8"))


@pytest.mark.parametrize("case,mutate,words", ADJACENCY, ids=[c[0] for c in ADJACENCY])
def test_adjacency_rows(capfd, box, tiny_dataset, tiny_massing_unet_onnx, case, mutate, words):
    path = box.inp / "adjacency.csv"
    _write_csv(path, mutate(_rows(tiny_dataset)))
    result = run(capfd, box, "predict", "building-parts", "--model", tiny_massing_unet_onnx,
                 "--input", path, "--out", box.out)
    assert_refused(result, str(path), *words, command="predict")


ADJACENCY_FILES = [
    ("empty", b"", ["empty file"]),
    ("header_only", (HEADER + "\n").encode(), ["no rows"]),
    ("bad_header", b"id,x,y,z\n0,1,1,1\n", ["header column 1"]),
    ("latin1", (HEADER + "\n0,1,1,0,1,0,1,0,1,0,0,0,1,0,0,0,0,1,0,0,1,0,0,0,0,1,0,\xe9\n").encode("latin-1"),
     ["line 2", "utf-8"]),
    ("binary", bytes(range(256)) * 64, ["header column 1", "\\x00"]),
    ("binary_high", bytes(range(128, 256)) * 64, ["utf-8"]),
    ("utf16", (HEADER + "\n").encode("utf-16"), ["utf-8"]),
]


@pytest.mark.parametrize("case,data,words", ADJACENCY_FILES, ids=[c[0] for c in ADJACENCY_FILES])
def test_adjacency_files(capfd, box, tiny_massing_unet_onnx, case, data, words):
    path = box.inp / "adjacency.csv"
    path.write_bytes(data)
    result = run(capfd, box, "predict", "building-parts", "--model", tiny_massing_unet_onnx,
                 "--input", path, "--out", box.out)
    assert_refused(result, *words, command="predict")


def test_adjacency_with_bom_and_crlf_is_read(capfd, box, tiny_dataset, tiny_massing_unet_onnx):
    path = box.inp / "adjacency.csv"
    text = HEADER + "\r\n" + "\r\n".join(_rows(tiny_dataset)) + "\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    code, out, err = run(capfd, box, "predict", "building-parts", "--model",
                         tiny_massing_unet_onnx, "--input", path, "--out", box.out)
    assert code == 0 and err == "" and "labelled" in out


def test_adjacency_several_buildings_need_an_id(capfd, box, tiny_dataset, tiny_massing_unet_onnx):
    path = box.inp / "adjacency.csv"
    _write_csv(path, _rows(tiny_dataset, 0) + _rows(tiny_dataset, 1))
    result = run(capfd, box, "predict", "building-parts", "--model", tiny_massing_unet_onnx,
                 "--input", path, "--out", box.out)
    assert_refused(result, "--building-id", command="predict")
    result = run(capfd, box, "predict", "building-parts", "--model", tiny_massing_unet_onnx,
                 "--input", path, "--out", box.out, "--building-id", 7)
    assert_refused(result, "no rows for building 7", command="predict")


def test_adjacency_nan_style_for_a_style_model(capfd, box, tiny_dataset, tiny_unet_onnx):
    path = box.inp / "adjacency.csv"
    rows = [",".join(r.split(",")[:-1] + ["nan"]) for r in _rows(tiny_dataset)]
    _write_csv(path, rows)
    result = run(capfd, box, "predict", "building-parts", "--model", tiny_unet_onnx,
                 "--input", path, "--out", box.out)
    assert_refused(result, "finite", command="predict")


@pytest.mark.slow
def test_adjacency_memory_bomb_is_refused_by_the_estimate(box, tiny_dataset, tiny_massing_unet_onnx):
    """A coordinate of 255 on each axis is within the format's range: the grid is
    256^3, whose prediction the budget estimate refuses before any large array exists."""
    path = box.inp / "adjacency.csv"
    rows = _rows(tiny_dataset)
    _write_csv(path, rows + [",".join(["0", "255", "255", "255"] + rows[0].split(",")[4:])])
    code, _, err = run_limited(["predict", "building-parts", "--model", tiny_massing_unet_onnx,
                                "--input", path, "--out", box.out], cwd=box.root)
    line = err.strip()
    assert code == 1 and "\n" not in line and "memory budget" in line and "256x256x256" in line, err


# -- faces.csv beside the rows (ground truth) --------------------------------------------------
def _dataset_rows(box, tiny_dataset, faces_text: str):
    folder = box.inp / "ds"
    folder.mkdir()
    shutil.copy(tiny_dataset / "dataset.yaml", folder)
    rows = (tiny_dataset / "adjacency.csv").read_text().splitlines()
    (folder / "adjacency.csv").write_text("\n".join([rows[0]] + _rows(tiny_dataset)) + "\n")
    (folder / "faces.csv").write_text(faces_text)
    return folder / "adjacency.csv"


def _faces(tiny_dataset, row: int, column: int, value: str) -> str:
    lines = (tiny_dataset / "faces.csv").read_text().splitlines()
    fields = lines[row].split(",")
    fields[column] = value
    lines[row] = ",".join(fields)
    return "\n".join(lines) + "\n"


FACES = [
    ("c_long", 1, 6, "99999999999999999999999", ["out of range"]),
    ("two", 1, 6, "2", ["one-hot"]),
    ("nan", 1, 7, "nan", ["'nan'", "number"]),
    ("fraction", 1, 7, "0.5", ["whole number"]),
    ("coordinate_big", 1, 1, "4000", ["out of range"]),
]


@pytest.mark.parametrize("case,row,column,value,words", FACES, ids=[c[0] for c in FACES])
def test_faces_csv_truth(capfd, box, tiny_dataset, tiny_massing_unet_onnx, case, row, column,
                         value, words):
    path = _dataset_rows(box, tiny_dataset, _faces(tiny_dataset, row, column, value))
    result = run(capfd, box, "predict", "building-parts", "--model", tiny_massing_unet_onnx,
                 "--input", path, "--out", box.out)
    assert_refused(result, "faces.csv", *words, command="predict")


# -- dataset.yaml and grids through train ------------------------------------------------------
def _copy_dataset(box, tiny_dataset):
    folder = box.inp / "ds"
    shutil.copytree(tiny_dataset, folder)
    return folder


def _train(capfd, box, data):
    return run(capfd, box, "train", "building-parts", "--data", data, "--out", box.out / "run",
               "--config", "tiny_parts_unet3d", "--quiet", "--set", "training.epochs=1")


MANIFEST_CHANGES = [
    ("count_many", {"count": "many"}, ["'count'", "integer"]),
    ("count_negative", {"count": -1}, ["'count'", ">= 0"]),
    ("count_float", {"count": 16.0}, ["'count'", "integer"]),
    ("parts_number", {"parts": 3}, ["'parts'", "list"]),
    ("parts_empty", {"parts": []}, ["'parts'"]),
    ("parts_twice", {"parts": ["wall", "wall"]}, ["twice"]),
    ("parts_spaced", {"parts": ["wall", "window ", "door", "roof", "balcony", "shopfront",
                                "ground"]}, ["'parts[1]'", "one word without spaces", "'window '"]),
    ("grid_zero", {"grid_size": [0, 12, 12]}, ["grid_size"]),
    ("grid_huge", {"grid_size": [100000, 12, 12]}, ["grid_size"]),
    ("split_beyond", {"split": {"train": [0, 99], "val": [1], "test": [2]}}, ["beyond count"]),
    ("split_text", {"split": "all"}, ["'split'", "mapping"]),
    ("cell_size_text", {"cell_size": "3"}, ["'cell_size'", "number"]),
    ("cell_size_zero", {"cell_size": 0}, ["'cell_size'", "> 0"]),
    ("cell_size_nan", {"cell_size": float("nan")}, ["'cell_size'", "finite"]),
    ("directions", {"directions": ["up", "down"]}, ["directions"]),
    ("format_version_text", {"format_version": "1"}, ["format_version"]),
]


@pytest.mark.parametrize("case,change,words", MANIFEST_CHANGES, ids=[c[0] for c in MANIFEST_CHANGES])
def test_dataset_manifest(capfd, box, tiny_dataset, case, change, words):
    data = _copy_dataset(box, tiny_dataset)
    manifest = yaml.safe_load((data / "dataset.yaml").read_text())
    manifest.update(change)
    (data / "dataset.yaml").write_text(yaml.safe_dump(manifest))
    assert_refused(_train(capfd, box, data), "dataset.yaml", *words, command="train")


@pytest.mark.parametrize("case,text,words", [
    ("laughs", "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8)), ["alias"]),
    ("deep", "a: " + "[" * 5000 + "]" * 5000 + "\n", ["nested"]),
    ("latin1", None, ["utf-8"]),
], ids=["laughs", "deep", "latin1"])
def test_dataset_manifest_documents(capfd, box, tiny_dataset, case, text, words):
    data = _copy_dataset(box, tiny_dataset)
    path = data / "dataset.yaml"
    if text is None:
        path.write_bytes(path.read_bytes().replace(b"proc-ml generate", b"g\xe9n\xe9r\xe9"))
    else:
        path.write_text(text)
    assert_refused(_train(capfd, box, data), "dataset.yaml", *words, command="train")


def _grid_arrays(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _write_npz(path, arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


GRID_CHANGES = [
    ("style_nan", lambda a: {**a, "style": np.full(9, np.nan, np.float32)}, ["style", "finite"]),
    ("style_inf", lambda a: {**a, "style": np.r_[np.inf, np.zeros(8)].astype(np.float32)},
     ["style", "finite"]),
    ("style_short", lambda a: {**a, "style": np.zeros(3, np.float32)}, ["style"]),
    ("occupancy_empty", lambda a: {**a, "occupancy": np.zeros_like(a["occupancy"]),
                                   "labels": np.full_like(a["labels"], -1)}, ["empty"]),
    ("labels_wrong", lambda a: {**a, "labels": np.full_like(a["labels"], -1)}, ["exterior faces"]),
    ("labels_part_99", lambda a: {**a, "labels": np.where(a["labels"] >= 0, 99, -1).astype(np.int8)},
     ["part 99"]),
    ("object_array", lambda a: {**a, "archetype": np.array([{"x": 1}], dtype=object)}, ["objects"]),
]


@pytest.mark.parametrize("case,change,words", GRID_CHANGES, ids=[c[0] for c in GRID_CHANGES])
def test_training_grids(capfd, box, tiny_dataset, case, change, words):
    data = _copy_dataset(box, tiny_dataset)
    manifest = yaml.safe_load((data / "dataset.yaml").read_text())
    target = data / "grids" / f"b{manifest['split']['train'][0]:06d}.npz"
    arrays = change(_grid_arrays(target))
    if case == "object_array":
        buf = io.BytesIO()
        np.savez(buf, **arrays)          # allow_pickle on write: the reader must refuse it
        target.write_bytes(buf.getvalue())
    else:
        _write_npz(target, arrays)
    assert_refused(_train(capfd, box, data), target.name, *words, command="train")


def _npz_bomb(path, declared=(2048, 2048, 2048)):
    """A few bytes of zip that declare a ``declared`` uint8 array (9 MB would inflate to GBs)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": declared})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("occupancy.npy", "w", force_zip64=True) as fh:
            fh.write(header.getvalue())
            chunk = bytes(1 << 20)
            for _ in range(64):                # 64 MB of zeros, deflated to ~64 KB
                fh.write(chunk)


def test_training_grid_npz_bomb(capfd, box, tiny_dataset):
    data = _copy_dataset(box, tiny_dataset)
    manifest = yaml.safe_load((data / "dataset.yaml").read_text())
    target = data / "grids" / f"b{manifest['split']['train'][0]:06d}.npz"
    _npz_bomb(target)
    assert_refused(_train(capfd, box, data), target.name, command="train")


def test_predict_grid_npz_bomb_is_refused_before_loading(box, tiny_massing_unet_onnx):
    path = box.inp / "bomb.npz"
    _npz_bomb(path, declared=(1600, 1600, 1600))      # 4 GB declared, 1 GB data cap below
    code, _, err = run_limited(["predict", "building-parts", "--model", tiny_massing_unet_onnx,
                                "--input", path, "--out", box.out], cwd=box.root, limit=1 << 30)
    # refused from the zip's headers before inflating: the declared 4 GB do not match the
    # stored bytes (a genuine 4 GB array would meet the memory budget instead)
    assert code == 1 and "out of memory" not in err, err
    assert any(word in err for word in ("limit", "budget", "corrupt")), err


def test_predict_grid_with_nan_style_is_refused(capfd, box, tiny_dataset, tiny_massing_unet_onnx):
    target = box.inp / "b.npz"
    arrays = _grid_arrays(tiny_dataset / "grids" / "b000000.npz")
    _write_npz(target, {**arrays, "style": np.full(9, np.nan, np.float32)})
    result = run(capfd, box, "predict", "building-parts", "--model", tiny_massing_unet_onnx,
                 "--input", target, "--out", box.out)
    assert_refused(result, "style", command="predict")


def test_npz_truncated_and_not_a_zip(capfd, box, tiny_dataset, tiny_massing_unet_onnx):
    data = (tiny_dataset / "grids" / "b000000.npz").read_bytes()
    for name, content in (("half.npz", data[:len(data) // 2]), ("text.npz", b"hello\n")):
        path = box.inp / name
        path.write_bytes(content)
        result = run(capfd, box, "predict", "building-parts", "--model", tiny_massing_unet_onnx,
                     "--input", path, "--out", box.out)
        assert_refused(result, name, "npz", command="predict")



@pytest.mark.parametrize("name", ["palette.json", "facades.json"])
def test_facade_files_not_utf8(capfd, box, tiny_facades, name):
    data = box.inp / "facades"
    shutil.copytree(tiny_facades, data)
    (data / name).write_bytes(b"\xff\xfe not utf-8")
    result = run(capfd, box, "train", "pix2pix", "--data", data, "--out", box.out / "run",
                 "--config", "tiny_pix2pix", "--quiet")
    assert_refused(result, name, "utf-8", command="train")


def _png_header_only(path, width, height):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                      8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("size,words", [((60000, 60000), ["more pixels"]),
                                        ((12000, 12000), ["memory budget of 1.0 GiB"])])
def test_texture_label_map_pixel_bomb(capfd, box, monkeypatch, tiny_pix2pix_onnx, size, words):
    monkeypatch.setenv("PROC_ML_MEMORY_BUDGET", "1G")
    path = box.inp / "huge.png"
    _png_header_only(path, *size)
    result = run(capfd, box, "predict", "texture", "--model", tiny_pix2pix_onnx[0], "--input", path,
                 "--out", box.out / "t.png")
    assert_refused(result, "huge.png", *words, command="predict")


def test_texture_label_map_not_an_image(capfd, box, tiny_pix2pix_onnx):
    path = box.inp / "bad.png"
    path.write_bytes(b"not a png")
    result = run(capfd, box, "predict", "texture", "--model", tiny_pix2pix_onnx[0], "--input", path,
                 "--out", box.out / "t.png")
    assert_refused(result, "bad.png", "not a readable image", command="predict")
