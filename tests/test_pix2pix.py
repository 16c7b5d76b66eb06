"""pix2pix: networks as in the reference, the GAN step in the one loop, schedule, metrics,
baseline, training through the CLI, ONNX parity at several sizes and texture inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from proc_ml.trainers.models.pix2pix import PatchGANDiscriminator, UNetGenerator, receptive_field
from proc_ml.trainers.loop import constant_then_linear
from proc_ml.trainers.pix2pix import (ImageEvaluation, MeanColourBaseline, Pix2PixTask, psnr, ssim,
                              to_unit)


# -- networks ------------------------------------------------------------------------------------
def test_reference_sizes_and_patch_field():
    # parameter counts of the reference unet_256 / basic (n_layers=3) networks
    assert sum(p.numel() for p in UNetGenerator(3, 3, 64, 8).parameters()) == 54_413_955
    assert sum(p.numel() for p in PatchGANDiscriminator(6, 64, 3).parameters()) == 2_768_705
    assert receptive_field(3) == 70


def test_generator_shapes_stride_and_init():
    torch.manual_seed(0)
    g = UNetGenerator(3, 3, width=4, num_downs=5)
    assert g.stride == 32
    for h, w in ((32, 32), (64, 96)):
        out = g(torch.rand(2, 3, h, w) * 2 - 1)
        assert out.shape == (2, 3, h, w) and out.abs().max() <= 1.0
    weights = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(float(weights.detach().std()) - 0.02) < 0.004
    d = PatchGANDiscriminator(6, 4, 3)
    assert d(torch.zeros(1, 6, 64, 64)).shape == (1, 1, 6, 6)
    with pytest.raises(ValueError, match="num_downs"):
        UNetGenerator(3, 3, 4, 4)


def test_eval_mode_is_deterministic_and_batch_independent():
    torch.manual_seed(0)
    g = UNetGenerator(3, 3, width=4, num_downs=5)
    g.train()
    for _ in range(3):                       # give BatchNorm some running statistics
        g(torch.rand(4, 3, 32, 32) * 2 - 1)
    g.eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        batch, single, again = g(x), g(x[1:2]), g(x[1:2])
    assert torch.equal(single, again)
    torch.testing.assert_close(batch[1:2], single, atol=1e-6, rtol=0)


def test_linear_schedule_is_constant_then_decays_to_zero():
    f = constant_then_linear(100, 0.5)
    assert f(0) == f(50) == 1.0
    assert f(75) == pytest.approx(1 - 25 / 51)
    assert 0.0 < f(100) < 0.05
    assert all(f(i) >= f(i + 1) for i in range(100))


# -- metrics and baseline --------------------------------------------------------------------
def test_psnr_ssim_l1():
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert float(psnr(x, x)[0]) == 100.0
    assert float(psnr(x, (x + 0.1).clamp(max=10))[0]) == pytest.approx(20.0, abs=1e-3)
    assert float(ssim(x, torch.rand(2, 3, 32, 32)).max()) < 0.2
    ev = ImageEvaluation()
    target = torch.zeros(1, 3, 16, 16) - 1.0               # black
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8] = 1.0
    out = target.clone()
    out[..., :8] = 0.0                                       # half the image at 0.5 grey
    ev.add(out, target, mask)
    m = ev.metrics()
    assert m["l1"] == pytest.approx(0.25) and m["l1_facade"] == pytest.approx(0.5)


def test_mean_colour_baseline_learns_the_colour_of_each_class():
    from proc_ml.textures.palette import Palette

    palette = Palette(("background", "wall"), ((0, 0, 0), (200, 100, 50)))
    labels = np.zeros((8, 8, 3), dtype=np.uint8)
    labels[:, 4:] = (200, 100, 50)
    target = np.zeros((8, 8, 3), dtype=np.uint8)
    target[:, 4:] = (10, 20, 30)
    other = target.copy()
    other[:, 4:] = (30, 40, 50)
    baseline = MeanColourBaseline.fit(palette, [to_unit(labels)] * 2, [to_unit(target), to_unit(other)])
    out = baseline(to_unit(labels)[None])[0]
    assert np.allclose(((out[:, 0, 6] + 1) * 127.5).numpy(), (20, 30, 40), atol=1e-3)
    assert np.allclose(out[:, 0, 0].numpy(), -1.0)


# -- the GAN step through the task ------------------------------------------------------------
@pytest.fixture(scope="module")
def facades(tiny_facades):
    return tiny_facades


def _tiny_config():
    from proc_ml.trainers.config import load_train_config, resolve_config_path
    return load_train_config("pix2pix", resolve_config_path("tiny_pix2pix"))


def test_training_step_updates_discriminator_then_generator(facades):
    task = Pix2PixTask(_tiny_config(), facades)
    torch.manual_seed(0)
    models = task.build_models()
    batch = task.collate([task.dataset("train")[i] for i in range(2)])
    steps = task.training_step(models, batch)
    name, loss_d = next(steps)
    assert name == "discriminator" and loss_d.requires_grad
    loss_d.backward()
    assert all(p.grad is not None for p in models["discriminator"].parameters())
    assert all(p.grad is None for p in models["model"].parameters())
    for p in models["discriminator"].parameters():
        p.grad = None
    name, loss_g = steps.send(None)
    assert name == "generator"
    assert not any(p.requires_grad for p in models["discriminator"].parameters())
    loss_g.backward()
    assert all(p.grad is None for p in models["discriminator"].parameters())
    assert all(p.grad is not None for p in models["model"].parameters())
    with pytest.raises(StopIteration) as stop:
        steps.send(None)
    assert set(stop.value.value) == {"g_gan", "l1"}
    assert all(p.requires_grad for p in models["discriminator"].parameters())


def test_jitter_crops_and_mirrors_label_and_target_together(facades):
    task = Pix2PixTask(_tiny_config(), facades)
    train = task.dataset("train")
    np.random.seed(3)
    for i in range(len(train)):
        a, b, mask = train[i]
        assert a.shape == b.shape == (3, 32, 32) and mask.shape == (1, 32, 32)
        background = (a == -1).all(dim=0)
        assert torch.equal(background, mask[0] == 0)
        if background.any():   # black where no facade (the bicubic resize blurs its edges)
            assert float((b[:, background] + 1).abs().mean()) < 0.05


# -- train, export, infer ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tiny_pix2pix_run):
    return tiny_pix2pix_run


@pytest.fixture(scope="module")
def tiny_onnx(tiny_pix2pix_onnx):
    return tiny_pix2pix_onnx


def test_cli_training_writes_metrics_checkpoints_and_epoch_grids(tiny_run):
    lines = [json.loads(x) for x in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2
    for key in ("train_loss_generator", "train_loss_discriminator", "val_l1", "val_psnr", "val_ssim"):
        assert np.isfinite(lines[-1][key])
    assert lines[0]["lr"] == pytest.approx(2e-4)            # constant half, then decaying
    assert lines[1]["lr"] < 2e-4
    from proc_ml.textures.images import read_rgb
    grid = read_rgb(tiny_run / "images" / "epoch_002.png")
    assert grid.shape == (2 * 32 + 2, 3 * 32 + 4, 3)       # 2 rows of input | output | target
    assert (tiny_run / "checkpoints" / "best.pt").is_file()


def test_resume_is_refused_without_flag_and_runs_with_it(tiny_run, facades):
    from proc_ml.cli import main

    assert main(["train", "pix2pix", "--data", str(facades), "--out", str(tiny_run),
                 "--config", "tiny_pix2pix", "--quiet"]) == 1
    assert main(["train", "pix2pix", "--data", str(facades), "--out", str(tiny_run), "--resume",
                 "--quiet"]) == 0


def test_onnx_parity_at_several_sizes(tiny_onnx):
    _, report = tiny_onnx
    assert report["max_abs_diff"] <= 1e-4
    sizes = {name for name in report["parity"]}
    assert any("32x64" in n for n in sizes) and any("64x32" in n for n in sizes)
    assert report["input_shape"][2:] == ["32*height_div32", "32*width_div32"]


def test_runtime_generator_matches_torch_and_pads_any_size(tiny_run, tiny_onnx):
    from proc_ml.runtime.textures import TextureGenerator
    from proc_ml.trainers import load_run

    path, _ = tiny_onnx
    gen = TextureGenerator(path, device="cpu")
    assert gen.stride == 32 and gen.palette.names[0] == "background"
    model, _ = load_run(tiny_run)
    rng = np.random.default_rng(0)
    labels = gen.palette.rgb(rng.integers(0, len(gen.palette), size=(64, 96)))
    with torch.no_grad():
        expected = model(to_unit(labels)[None])[0]
    got = gen.predict(labels)
    want = ((expected.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
    assert np.abs(got.astype(float) - want).max() <= 1.0
    odd = gen.predict(labels[:40, :50])                      # padded to 64x64 and cropped back
    assert odd.shape == (40, 50, 3)


def test_predict_texture_cli_image_building_and_bad_colour(tiny_onnx, tmp_path, facades, capsys):
    import trimesh
    from proc_ml.cli import main
    from proc_ml.textures.images import read_rgb, write_png

    path, _ = tiny_onnx
    label_png = sorted((facades / "labels").glob("*.png"))[0]
    assert main(["predict", "texture", "--model", str(path), "--input", str(label_png),
                 "--out", str(tmp_path / "t.png")]) == 0
    assert read_rgb(tmp_path / "t.png").shape == (128, 128, 3)
    bad = read_rgb(label_png).copy()
    bad[5, 7] = (1, 2, 3)
    write_png(tmp_path / "bad.png", bad)
    assert main(["predict", "texture", "--model", str(path), "--input", str(tmp_path / "bad.png"),
                 "--out", str(tmp_path / "u.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert "bad.png: label colour (1, 2, 3) at pixel (x=7, y=5) is not in the palette" in err
    assert len(err.splitlines()) == 1
    # what builds a building's label maps means nothing for a label map given as it is
    assert main(["predict", "texture", "--model", str(path), "--input", str(label_png),
                 "--out", str(tmp_path / "v.png"), "--material", "brick", "--module-px", "8"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--material --module-px: for --building only" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "v.png").exists()
    assert main(["generate", "buildings", "--count", "2", "--seed", "2", "--out", str(tmp_path / "ds"),
                 "--formats", "grids", "--quiet"]) == 0
    glb = tmp_path / "house.glb"
    assert main(["predict", "texture", "--model", str(path), "--building",
                 str(tmp_path / "ds" / "grids" / "b000000.npz"), "--out", str(glb)]) == 0
    mesh = trimesh.load(glb, force="mesh")
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
    assert mesh.visual.material.baseColorTexture.size[0] >= 64


def test_pad_jitter_shifts_without_rescaling(facades):
    from proc_ml.trainers.config import load_train_config, resolve_config_path

    cfg = load_train_config("pix2pix", resolve_config_path("tiny_pix2pix"),
                            ["dataset.jitter=pad", "dataset.size=128", "dataset.load_size=136",
                             "model.num_downs=7"])
    task = Pix2PixTask(cfg, facades)
    originals, targets, _ = task.load_split("train", 128)
    train = task.dataset("train")
    np.random.seed(1)
    for i in range(len(train)):
        a, b, _ = train[i]
        padded_a = torch.nn.functional.pad(originals[i], (4, 4, 4, 4), value=-1.0)
        padded_b = torch.nn.functional.pad(targets[i], (4, 4, 4, 4), value=-1.0)
        found = [(y, x, f) for y in range(9) for x in range(9) for f in (False, True)
                 if torch.equal((padded_a.flip(-1) if f else padded_a)[:, y:y + 128, x:x + 128], a)
                 and torch.equal((padded_b.flip(-1) if f else padded_b)[:, y:y + 128, x:x + 128], b)]
        assert found, "a training pair is not a shifted (and maybe mirrored) window of its images"
    with pytest.raises(Exception, match="dataset.jitter"):
        Pix2PixTask(load_train_config("pix2pix", resolve_config_path("tiny_pix2pix"),
                                      ["dataset.jitter=zoom"]), facades)


def test_texture_inference_never_imports_torch(tiny_onnx, facades, tmp_path, no_torch_source):
    import subprocess
    import sys
    import textwrap

    path, _ = tiny_onnx
    label_png = sorted((facades / "labels").glob("*.png"))[0]
    script = no_torch_source + textwrap.dedent(f"""
        import sys
        from proc_ml.cli import main
        assert main(["predict", "texture", "--model", r"{path}", "--input", r"{label_png}",
                     "--out", r"{tmp_path / 'x.png'}"]) == 0
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "x.png").is_file()


def test_batch_texture_task_writes_textured_glbs_and_resumes(tiny_onnx, tiny_massing_unet_onnx,
                                                            tiny_dataset, tmp_path, capsys):
    """``proc-ml batch --task texture``: mesh -> voxelise -> parts model -> pix2pix atlas ->
    textured GLB per asset; grids use their own labels; reruns skip; meshes need a parts model."""
    import shutil
    from pathlib import Path

    import trimesh
    from proc_ml.batch import FAILED, OK, SKIPPED, read_records
    from proc_ml.cli import main
    from proc_ml.textures.images import read_rgb

    path, _ = tiny_onnx
    assets = tmp_path / "assets"
    (assets / "sub").mkdir(parents=True)
    meshes = sorted((tiny_dataset / "meshes").glob("*.obj"))[:2]
    for mesh in meshes:
        shutil.copy(mesh, assets / mesh.name)
    grid = sorted((tiny_dataset / "grids").glob("*.npz"))[0]
    shutil.copy(grid, assets / "sub" / grid.name)
    (assets / "broken.obj").write_text("v 0 0 0\nf 1 2 3\n")
    out = tmp_path / "out"

    def batch(*extra):
        return main(["batch", str(assets), "--task", "texture", "--model", str(path), "--out", str(out),
                     "--quiet", *extra])

    assert batch("--parts-model", str(tiny_massing_unet_onnx), "--material", "brick") == 2
    records, _ = read_records(out / "manifest.jsonl")
    good = [m.name for m in meshes] + [f"sub/{grid.name}"]
    assert sorted(records) == sorted(good + ["broken.obj"])
    assert records["broken.obj"]["status"] == FAILED and "\n" not in records["broken.obj"]["error"]
    for rel in good:
        record = records[rel]
        assert record["status"] == OK, record
        assert record["summary"]["faces"] > 0 and record["summary"]["material"] == "brick"
        assert sorted(Path(o).name for o in record["outputs"]) == [
            "textured.glb", "textured_atlas.png", "textured_labels.png"]
        mesh = trimesh.load(out / rel / "textured.glb", force="mesh")
        assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
        atlas = read_rgb(out / rel / "textured_atlas.png")
        assert mesh.visual.material.baseColorTexture.size == (atlas.shape[1], atlas.shape[0])
    assert records[meshes[0].name]["summary"]["parts_from"] == "model"
    assert records[f"sub/{grid.name}"]["summary"]["parts_from"] == "model"

    # Unchanged assets and settings: skipped. Without a parts model the settings differ:
    # grids are textured from their own labels and meshes fail with one line.
    assert batch("--parts-model", str(tiny_massing_unet_onnx), "--material", "brick") == 2
    records, _ = read_records(out / "manifest.jsonl")
    assert {records[rel]["status"] for rel in good} == {SKIPPED}
    assert batch() == 2
    records, _ = read_records(out / "manifest.jsonl")
    assert records[f"sub/{grid.name}"]["status"] == OK
    assert records[f"sub/{grid.name}"]["summary"]["parts_from"] == "file"
    assert records[meshes[0].name]["status"] == FAILED
    assert "--parts-model" in records[meshes[0].name]["error"]
    capsys.readouterr()

    # A model that is not a pix2pix generator is refused with one line.
    assert main(["batch", str(assets), "--task", "texture", "--model", str(tiny_massing_unet_onnx),
                 "--out", str(tmp_path / "out2"), "--quiet"]) != 0


# -- real-photo layouts: palettes, splits, resampling, caches ---------------------------------------
def test_text_palette_forms_and_one_line_errors(tmp_path):
    from proc_ml.errors import DatasetError
    from proc_ml.formats.facades import read_palette

    (tmp_path / "p.txt").write_text("# classes of the set\nbackground = 0:0:0\n"
                                    "window frame = 10, 20, 30   # a name with a space\n"
                                    "\ndoor 150 80 40\nsky=1 2 3\n")
    palette = read_palette(tmp_path / "p.txt")
    assert palette.names == ("background", "window frame", "door", "sky")
    assert palette.colours == ((0, 0, 0), (10, 20, 30), (150, 80, 40), (1, 2, 3))
    (tmp_path / "bad.txt").write_text("wall = 1:2:3\nroof = 1:2:300\n")
    with pytest.raises(DatasetError, match=r"bad.txt: line 2 'roof = 1:2:300' is not") as err:
        read_palette(tmp_path / "bad.txt")
    assert "\n" not in str(err.value)
    (tmp_path / "dup.txt").write_text("wall = 1:2:3\nroof = 1:2:3\n")
    with pytest.raises(DatasetError, match="dup.txt: .*share a colour"):
        read_palette(tmp_path / "dup.txt")


def _photo_labels(root, count=10, size=(72, 48)):
    from proc_ml.textures.photos import write_synthetic_photos

    write_synthetic_photos(root, count, *size, layout="labels", seed=3)
    return root


def test_split_lists_ratio_and_val_carved_from_train(tmp_path):
    from proc_ml.datasets.pix2pix import open_pairs
    from proc_ml.errors import DatasetError

    root = _photo_labels(tmp_path / "d", 10)
    names = sorted(p.stem for p in (root / "labels").glob("*.png"))
    data = open_pairs(root)                                   # no lists: the name hash
    assert data.split_source.startswith("name hash") and len(data.names()) == 10
    data = open_pairs(root, split=[0.6, 0.2, 0.2])            # exact counts
    assert data.counts() == {"train": 6, "val": 2, "test": 2}
    assert open_pairs(root, split=[0.6, 0.2, 0.2]).split_of == data.split_of
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("\n".join(names[:7]) + "\n")
    (root / "splits" / "test.txt").write_text(f"# held out\n{names[7]}.png\n{names[8]}\n")
    data = open_pairs(root, val_fraction=0.3)                 # unlisted names[9] is left out
    assert data.counts() == {"train": 5, "val": 2, "test": 2} and names[9] not in data.items
    assert "val carved from train (2 pairs" in data.split_source
    (root / "splits" / "test.txt").write_text(f"{names[0]}\n")
    with pytest.raises(DatasetError, match=r"test.txt: line 1: pair '.*' is already listed in splits/train.txt line 1"):
        open_pairs(root)
    (root / "splits" / "test.txt").write_text("nosuchpair\n")
    with pytest.raises(DatasetError, match="test.txt: line 1: no pair 'nosuchpair'"):
        open_pairs(root)
    with pytest.raises(Exception, match="dataset.split"):
        open_pairs(root, split=[0.5, 0.5, 0.5])


def test_photo_resampling_by_kind_on_a_gradient(tmp_path):
    """Labels stay nearest (only palette colours, the label at each sample point); photos
    are area/bicubic filtered: a ramp carrying a 1 px checker shrinks to the ramp's block
    means, where nearest-neighbour would keep the checker's +-40 as aliasing."""
    from PIL import Image

    from proc_ml.datasets.pix2pix import open_pairs
    from proc_ml.textures.images import write_png

    root = tmp_path / "g"
    (root / "labels").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "palette.txt").write_text("background = 0:0:0\nwall = 200:100:50\nwindow = 20:40:220\n")
    h, w, s = 128, 256, 32
    ramp = np.linspace(40, 215, w)[None, :].repeat(h, 0)
    checker = np.where((np.arange(h)[:, None] + np.arange(w)[None, :]) % 2, 40.0, -40.0)
    photo = np.clip(ramp + checker, 0, 255).round().astype(np.uint8)[..., None].repeat(3, 2)
    labels = np.zeros((h, w, 3), np.uint8)
    labels[:, 1::2] = (200, 100, 50)                         # 1 px label stripes
    labels[40:90, 60:200] = (20, 40, 220)
    rgba = np.concatenate([labels, np.full((h, w, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(root / "labels" / "a.png")
    write_png(root / "images" / "a.png", photo)
    data = open_pairs(root)
    block_mean = photo[..., 0].astype(float).reshape(s, h // s, s, w // s).mean(axis=(1, 3))
    for name, tol in (("area", 0.6), ("bicubic", 3.0)):
        item = data.prepare("a", s, "squash", name)
        got = item[..., 3].astype(float)
        assert np.abs(got - block_mean).max() <= tol, name
        assert np.array_equal(item[..., 3:6], np.asarray(Image.fromarray(photo).resize(
            (s, s), {"area": Image.Resampling.BOX, "bicubic": Image.Resampling.BICUBIC}[name])))
    aliased = data.prepare("a", s, "squash", "nearest")[..., 3].astype(float)
    assert np.abs(aliased - block_mean).max() >= 35           # what the filters above remove
    item = data.prepare("a", s, "squash", "bicubic")
    colours = {tuple(c) for c in item[..., :3].reshape(-1, 3)}
    assert colours <= {(0, 0, 0), (200, 100, 50), (20, 40, 220)} and len(colours) >= 2
    ys, xs = ((np.arange(s) + 0.5) * h / s).astype(int), ((np.arange(s) + 0.5) * w / s).astype(int)
    assert np.array_equal(item[..., :3], labels[ys][:, xs])   # the label at each sample point
    assert np.array_equal(item[..., 6] == 1, np.any(item[..., :3] != 0, axis=2))


def test_aspect_squash_pad_and_crop():
    from PIL import Image

    from proc_ml.datasets.pix2pix import fit_square

    wide = Image.fromarray(np.full((40, 80, 3), 200, np.uint8))
    out, box = fit_square(wide, 32, "pad", "bicubic", (1, 2, 3))
    arr = np.asarray(out)
    assert box == (0, 8, 32, 24) and arr.shape == (32, 32, 3)
    assert (arr[:8] == (1, 2, 3)).all() and (arr[24:] == (1, 2, 3)).all() and (arr[8:24] == 200).all()
    ramp = Image.fromarray(np.linspace(0, 255, 80).astype(np.uint8)[None, :, None].repeat(40, 0).repeat(3, 2))
    out, box = fit_square(ramp, 20, "crop", "area")
    centre = np.asarray(out)[..., 0].astype(float)
    assert box == (0, 0, 20, 20) and 60 <= centre[:, 0].mean() <= 70 and 185 <= centre[:, -1].mean() <= 195
    out, _ = fit_square(ramp, 20, "squash", "area")
    assert np.asarray(out)[0, 0, 0] < 10 and np.asarray(out)[0, -1, 0] > 245


def test_pairs_decode_once_into_a_run_cache_read_pair_by_pair(tmp_path):
    from proc_ml.datasets.pix2pix import PreparedPairs

    root = _photo_labels(tmp_path / "d", 10)
    cfg = _tiny_config()
    cfg["dataset"]["split"] = [0.6, 0.2, 0.2]
    task = Pix2PixTask(cfg, root)
    task.use_run_dir(tmp_path / "run")
    pairs = task.prepared("train", 36)
    files = sorted((tmp_path / "run" / "cache").glob("pairs_train_36px_*.npy"))
    assert pairs.source == "file" and len(files) == 1
    assert files[0].stat().st_size == 128 + 6 * 36 * 36 * 7           # npy header + uint8 pairs
    decoded = PreparedPairs(task.data, pairs.names, 36, "squash", "bicubic")
    assert all(np.array_equal(pairs[i], decoded[i]) for i in range(len(pairs)))
    mtime = files[0].stat().st_mtime_ns
    again = Pix2PixTask(cfg, root)
    again.use_run_dir(tmp_path / "run")
    assert again.prepared("train", 36).path == files[0] and files[0].stat().st_mtime_ns == mtime
    (root / "images" / f"{pairs.names[0]}.jpg").write_bytes((root / "images" / f"{pairs.names[1]}.jpg").read_bytes())
    third = Pix2PixTask(cfg, root)                          # a changed image: rebuilt, old file gone
    third.use_run_dir(tmp_path / "run")
    rebuilt = third.prepared("train", 36)
    assert rebuilt.path != files[0] and not files[0].exists()
    assert np.array_equal(rebuilt[0][..., 3:6], rebuilt[1][..., 3:6])
    cfg["dataset"]["cache"] = "memory"
    memory = Pix2PixTask(cfg, root)
    memory.use_run_dir(tmp_path / "run2")
    assert memory.prepared("train", 36).source == "memory" and not (tmp_path / "run2").exists()


def test_side_by_side_without_val_trains_and_evaluates_with_the_palette_free_baseline(tmp_path, capsys):
    from proc_ml.cli import main
    from proc_ml.textures.photos import write_synthetic_photos

    data = tmp_path / "sbs"
    write_synthetic_photos(data, 16, 60, 40, layout="side-by-side", seed=1, test_fraction=0.25)
    assert not (data / "val").exists() and any((data / "test").iterdir())
    run = tmp_path / "run"
    assert main(["train", "pix2pix", "--data", str(data), "--out", str(run), "--config", "tiny_pix2pix",
                 "--set", "dataset.aspect=pad", "--set", "training.epochs=1", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "baseline (mean colour of the training set) / model L1" in printed
    result = json.loads((run / "eval.json").read_text())
    assert result["layout"] == "side-by-side" and result["pairs"] >= 1
    assert 0 < result["baseline"]["l1"] < 1 and np.isfinite(result["model"]["psnr"])
    # the same data without its test/ folder: evaluate says how to score it instead
    import shutil

    shutil.move(data / "test", tmp_path / "held_test")
    assert main(["evaluate", str(run), "--data", str(data)]) == 1
    assert "no test pairs: score another split (proc-ml evaluate --split val)" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--data", str(data), "--split", "val"]) == 0


def test_label_folders_with_a_text_palette_train(tmp_path):
    from proc_ml.cli import main
    from proc_ml.trainers import load_run

    data = _photo_labels(tmp_path / "d", 12)
    assert not (data / "palette.json").exists() and (data / "palette.txt").is_file()
    run = tmp_path / "run"
    assert main(["train", "pix2pix", "--data", str(data), "--out", str(run), "--config", "tiny_pix2pix",
                 "--set", "dataset.split=[0.5, 0.25, 0.25]", "--set", "training.epochs=1",
                 "--set", "dataset.photo_filter=area", "--quiet"]) == 0
    _, loaded = load_run(run)
    assert loaded.info.parts == ["background", "wall", "window", "door"]
    assert loaded.info.layout == "labels"


def test_mean_colour_baseline_without_a_palette_is_the_training_mean():
    target = torch.zeros(3, 4, 4)
    target[0] = 0.5
    mask = torch.ones(1, 4, 4)
    mask[..., :2] = 0                                          # padding: left out
    padded = target.clone()
    padded[:, :, :2] = -1.0
    baseline = MeanColourBaseline.fit(None, [torch.zeros(3, 4, 4)] * 2, [target, padded], [mask, mask])
    out = baseline(torch.zeros(1, 3, 4, 4))
    assert baseline.kind == "mean colour of the training set"
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.5, 0.0, 0.0]))


# -- the reference's schedule and test mode ---------------------------------------------------------
def test_per_epoch_linear_decay_follows_the_reference():
    from proc_ml.trainers.loop import per_epoch_linear

    f = per_epoch_linear(200, 0.5, steps_per_epoch=10)       # n_epochs 100 + n_epochs_decay 100
    # epoch k (from 1): 1 - max(0, k + 1 - 100) / 101, the same for every step of the epoch
    for k in (1, 50, 99, 100, 150, 200):
        expected = 1.0 - max(0, k + 1 - 100) / 101.0
        assert f((k - 1) * 10) == f((k - 1) * 10 + 9) == pytest.approx(expected)
    assert f(99 * 10) < 1.0 and f(199 * 10) == 0.0           # decays from epoch 100, last epoch at 0


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_per_epoch_decay_steps_the_lr_once_per_epoch(facades, tmp_path):
    from proc_ml.trainers import distributed
    from proc_ml.trainers.config import load_train_config, resolve_config_path
    from proc_ml.trainers.loop import Trainer

    cfg = load_train_config("pix2pix", resolve_config_path("tiny_pix2pix"),
                            ["training.epochs=4", "training.linear_decay=epoch", "dataset.max_pairs=6",
                             "training.batch_size=2"])
    trainer = Trainer(cfg, facades, tmp_path / "run", distributed.setup("cpu", 1), progress=False)
    steps = len(trainer.train_loader)
    assert steps == 3
    scheduler = trainer.schedulers["generator"]
    lrs = []
    for _ in range(4 * steps):
        lrs.append(scheduler.get_last_lr()[0])
        scheduler.step()
    # n_epochs 2, n_epochs_decay 2: epoch k trains at 1 - max(0, k + 1 - 2) / 3 of the lr
    expected = [2e-4 * f for f in (1.0, 2 / 3, 1 / 3, 0.0) for _ in range(steps)]
    assert lrs == pytest.approx(expected)


def test_train_mode_generator_computes_like_torch_train_mode():
    from proc_ml.trainers.pix2pix import SampledDropout, train_mode_generator

    torch.manual_seed(0)
    g = UNetGenerator(3, 3, width=4, num_downs=6)
    g.train()
    for _ in range(2):                                   # running statistics that differ from any batch
        g(torch.rand(2, 3, 64, 64) * 2 - 1)
    copy = train_mode_generator(g)
    drops = [m for m in copy.modules() if isinstance(m, SampledDropout)]
    assert len(drops) == 1 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in copy.modules())
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        for m in g.modules():                            # dropout aside, torch's train mode...
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        drops[0].p = 0.0
        torch.testing.assert_close(copy(x), g.train()(x), atol=2e-5, rtol=0)   # ...is what we export
        assert (copy(x[:1]) - copy(x)[:1]).abs().max() > 1e-3                  # batch statistics
        drop = SampledDropout(0.5)
        y = torch.ones(200, 100)
        assert abs(float((drop(y) == 0).float().mean()) - 0.5) < 0.02 and float(drop(y).max()) == 2.0
        drop.keep_all = True
        assert torch.equal(drop(y), 2 * y)


def test_train_mode_export_records_the_mode_and_uses_batch_statistics(tiny_run, tiny_unet_run, tmp_path):
    from proc_ml.exporters.onnx_export import export_run
    from proc_ml.runtime.session import ModelSession
    from proc_ml.runtime.textures import TextureGenerator

    out = tmp_path / "train_mode.onnx"
    report = export_run(tiny_run, out, exporter="legacy", inference_mode="train", log=lambda line: None)
    assert report["inference_mode"] == "train" and report["max_abs_diff"] <= 1e-4
    gen = TextureGenerator(out, device="cpu")
    assert gen.info.inference_mode == "train"
    session = ModelSession(out, device="cpu")
    x = (np.random.default_rng(0).random((2, 3, 32, 32)) * 2 - 1).astype(np.float32)
    both, alone = session.run(x), session.run(x[:1])
    assert np.abs(both[:1] - alone).max() > 1e-3                 # each batch normalises itself
    with pytest.raises(Exception, match="inference mode 'train' is for image"):
        export_run(tiny_unet_run, tmp_path / "x.onnx", inference_mode="train", log=lambda line: None)
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_train_mode_export_samples_dropout_in_onnx(facades, tmp_path):
    from proc_ml.cli import main
    from proc_ml.exporters.onnx_export import export_run
    from proc_ml.runtime.session import ModelSession

    run = tmp_path / "run"
    assert main(["train", "pix2pix", "--data", str(facades), "--out", str(run), "--config", "tiny_pix2pix",
                 "--set", "model.num_downs=6", "--set", "dataset.size=64", "--set", "dataset.load_size=72",
                 "--set", "training.epochs=1", "--set", "dataset.max_pairs=2", "--quiet"]) == 0
    lines = []
    report = export_run(run, tmp_path / "m.onnx", inference_mode="train", log=lines.append)
    assert report["max_abs_diff"] <= 1e-4 and any("dropout: 1 layers sample" in x for x in lines)
    session = ModelSession(tmp_path / "m.onnx", device="cpu")
    x = (np.random.default_rng(0).random((1, 3, 64, 64)) * 2 - 1).astype(np.float32)
    assert np.abs(session.run(x) - session.run(x)).max() > 1e-3


# -- inference over folders ------------------------------------------------------------------------
def test_predict_texture_folder_loads_the_model_once(tiny_onnx, tmp_path, monkeypatch, capsys):
    from proc_ml.cli import main
    from proc_ml.runtime import session as sessions
    from proc_ml.textures.images import read_rgb, write_png

    path, _ = tiny_onnx
    from proc_ml.runtime.textures import TextureGenerator

    colours = TextureGenerator(path, device="cpu").palette
    rng = np.random.default_rng(1)
    folder = tmp_path / "labels"
    for i in range(100):
        write_png(folder / f"f{i:03d}.png", colours.rgb(rng.integers(0, len(colours), size=(24, 40))))
    created = []
    real_init = sessions.ModelSession.__init__

    def counting(self, *args, **kwargs):
        created.append(args[0] if args else kwargs.get("path"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(sessions.ModelSession, "__init__", counting)
    sessions.clear_cache()
    out = tmp_path / "textures"
    assert main(["predict", "texture", "--model", str(path), "--input", str(folder), "--out", str(out)]) == 0
    assert len(created) == 1                                      # one model load for 100 maps
    assert sorted(p.name for p in out.iterdir()) == [f"f{i:03d}.png" for i in range(100)]
    assert read_rgb(out / "f007.png").shape == (24, 40, 3)
    assert "wrote 100 textures" in capsys.readouterr().out
    bad = read_rgb(folder / "f003.png").copy()
    bad[2, 3] = (1, 2, 3)
    write_png(folder / "f003.png", bad)
    # one bad label map: its one line on stderr, every other map textured, exit status 2
    assert main(["predict", "texture", "--model", str(path), "--input", str(folder),
                 "--out", str(tmp_path / "t2")]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "f003.png: label colour (1, 2, 3) at pixel (x=3, y=2)" in err and len(err.splitlines()) == 1
    assert "wrote 99 textures" in captured.out and "1 label maps failed" in captured.out
    assert sorted(p.name for p in (tmp_path / "t2").iterdir()) == [
        f"f{i:03d}.png" for i in range(100) if i != 3]
    assert main(["predict", "texture", "--model", str(path), "--input", str(folder), "--out", str(folder)]) == 1
    assert "would replace the label maps" in capsys.readouterr().err


def test_batch_texture_task_turns_label_images_into_textures(tiny_onnx, tmp_path, capsys):
    from proc_ml.batch import FAILED, OK, read_records
    from proc_ml.cli import main
    from proc_ml.runtime.textures import TextureGenerator
    from proc_ml.textures.images import read_rgb, write_png

    path, _ = tiny_onnx
    colours = TextureGenerator(path, device="cpu").palette
    assets = tmp_path / "assets"
    write_png(assets / "a.png", colours.rgb(np.arange(48).reshape(6, 8) % len(colours)))
    write_png(assets / "sub" / "b.png", colours.rgb(np.zeros((20, 30), int)))
    write_png(assets / "bad.png", np.full((4, 4, 3), 7, np.uint8))
    out = tmp_path / "out"
    assert main(["batch", str(assets), "--task", "texture", "--model", str(path), "--out", str(out),
                 "--quiet"]) == 2
    records, _ = read_records(out / "manifest.jsonl")
    assert records["a.png"]["status"] == OK and records["sub/b.png"]["status"] == OK
    assert read_rgb(out / "a.png" / "texture.png").shape == (6, 8, 3)
    assert read_rgb(out / "sub/b.png" / "texture.png").shape == (20, 30, 3)
    assert records["bad.png"]["status"] == FAILED
    assert "label colour (7, 7, 7)" in records["bad.png"]["error"] and "\n" not in records["bad.png"]["error"]


def test_a_bad_image_stops_with_one_line_even_from_a_worker(tmp_path, capsys):
    from proc_ml.cli import main

    data = _photo_labels(tmp_path / "d", 8)
    bad = sorted((data / "images").glob("*.jpg"))[3]
    bad.write_bytes(b"not a jpeg")
    for cache in ("disk", "none"):
        assert main(["train", "pix2pix", "--data", str(data), "--out", str(tmp_path / f"run_{cache}"),
                     "--config", "tiny_pix2pix", "--set", "dataset.workers=1", "--set", f"dataset.cache={cache}",
                     "--set", "dataset.split=[0.5, 0.5, 0.0]",
                     "--set", "dataset.max_pairs=0", "--quiet"]) == 1
        err = capsys.readouterr().err.strip()
        assert f"{bad}: not a readable image" in err and len(err.splitlines()) == 1, err


# -- what real photo sets hold (a survey of public facade sets, session 7) ----------------------
def test_cmp_layout_photo_and_label_map_in_one_folder_pair_the_right_way(tmp_path):
    """The CMP facade database unpacks x.jpg (photo), x.png (label map) and x.xml into one
    folder: with labels/ and images/ both that folder, the PNG is the label map, the JPEG the
    photo (the label map used to win both roles); two images of one name elsewhere are one
    line, never one of them taken in silence."""
    import os
    import shutil

    from proc_ml.datasets.pix2pix import open_pairs
    from proc_ml.errors import DatasetError

    src = _photo_labels(tmp_path / "src", 4)
    base = tmp_path / "cmp" / "base"
    base.mkdir(parents=True)
    for p in list((src / "labels").iterdir()) + list((src / "images").iterdir()):
        shutil.copy(p, base / p.name)
    (base / "p000000.xml").write_text("<annotation/>")
    shutil.copy(src / "palette.txt", tmp_path / "cmp" / "palette.txt")
    os.symlink("base", tmp_path / "cmp" / "labels")
    os.symlink("base", tmp_path / "cmp" / "images")
    data = open_pairs(tmp_path / "cmp")
    label, photo = data.files("p000001")
    assert (label.suffix, photo.suffix) == (".png", ".jpg")
    a, b = data.pair("p000001")
    np.testing.assert_array_equal(a, np.asarray(__import__("PIL.Image").Image.open(src / "labels" / "p000001.png").convert("RGB")))
    assert not np.array_equal(a, b)
    shutil.copy(src / "labels" / "p000002.png", src / "images" / "p000002.png")
    with pytest.raises(DatasetError, match=r"p000002.jpg and p000002.png share the name 'p000002'"):
        open_pairs(src)


def test_photos_are_read_upright_and_16_bit_photos_scaled(tmp_path):
    from PIL import Image

    from proc_ml.datasets.pix2pix import open_rgb
    from proc_ml.errors import DatasetError
    from proc_ml.textures.images import read_rgb

    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 32).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")                     # 16-bit grey, 0..65504
    photo = np.asarray(open_rgb(tmp_path / "deep.png"))
    assert photo.dtype == np.uint8 and photo.shape == (32, 64, 3)
    assert photo.min() == 0 and (photo == 255).mean() < 0.01               # not clipped white
    np.testing.assert_allclose(photo[..., 0], ramp / 257.0, atol=0.5)     # scaled to 8 bits
    with pytest.raises(DatasetError, match="label maps hold colours or class indices 0..255"):
        open_rgb(tmp_path / "deep.png", "labels")
    Image.fromarray((ramp // 4096).astype(np.uint16)).save(tmp_path / "classes16.png")   # 0..15
    labels = read_rgb(tmp_path / "classes16.png")
    assert labels.max() == 15 and labels[0, 0, 0] == 0                    # values kept, not scaled
    # a camera JPEG: pixels stored landscape, EXIF orientation 6 (turn 90 degrees clockwise)
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:, :10] = 255                                                   # left edge white
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    upright = np.asarray(open_rgb(tmp_path / "phone.jpg"))
    assert upright.shape == (60, 40, 3)                                    # as viewers show it
    assert upright[:10].mean() > 200 and upright[-10:].mean() < 50         # left edge is now the top


def test_jpeg_label_maps_train_with_a_palette_tolerance_and_predict_the_same_way(tmp_path, capsys):
    """The pix2pix facades set stores its label maps as JPEG (hundreds of thousands of
    colours near its 12): exact palette matching refuses every pair; with
    dataset.palette_tolerance they snap to the nearest class, and the exported model snaps
    the label maps it paints the same way."""
    from PIL import Image

    from proc_ml.cli import main
    from proc_ml.datasets.pix2pix import open_pairs
    from proc_ml.errors import DatasetError
    from proc_ml.formats.facades import read_palette

    root = _photo_labels(tmp_path / "d", 6, size=(64, 64))
    palette = read_palette(root / "palette.txt")
    clean = {}
    for path in sorted((root / "labels").glob("*.png")):
        clean[path.stem] = np.asarray(Image.open(path).convert("RGB"))
        Image.open(path).convert("RGB").save(path.with_suffix(".jpg"), quality=90, subsampling=0)
        path.unlink()
    with pytest.raises(DatasetError, match="is not in the palette"):
        open_pairs(root).pair(next(iter(clean)))
    data = open_pairs(root, palette_tolerance=60)
    name = next(iter(clean))
    labels, _ = data.pair(name)
    assert {tuple(c) for c in labels.reshape(-1, 3)} <= set(palette.colours)
    assert (labels == clean[name]).all(axis=2).mean() > 0.9       # the JPEG noise snapped back
    with pytest.raises(DatasetError, match=r"from the nearest palette colour .* more than the palette tolerance 1"):
        open_pairs(root, palette_tolerance=1).pair(name)
    code = main(["train", "pix2pix", "--data", str(root), "--out", str(tmp_path / "run"),
                 "--config", "tiny_pix2pix", "--quiet", "--set", "dataset.palette_tolerance=60",
                 "--set", "dataset.size=64", "--set", "dataset.load_size=64",
                 "--set", "dataset.split=[0.5,0.25,0.25]", "--set", "training.epochs=1"])
    assert code == 0
    assert main(["export", "onnx", str(tmp_path / "run"), "--out", str(tmp_path / "m.onnx")]) == 0
    jpeg = next((root / "labels").glob("*.jpg"))
    assert main(["predict", "texture", "--model", str(tmp_path / "m.onnx"), "--input", str(jpeg),
                 "--out", str(tmp_path / "t.png")]) == 0
    assert np.asarray(Image.open(tmp_path / "t.png")).shape[:2] == (64, 64)
    assert "note:" not in capsys.readouterr().out               # the training size: no note
    Image.open(jpeg).resize((256, 256), Image.NEAREST).save(tmp_path / "big.png")
    assert main(["predict", "texture", "--model", str(tmp_path / "m.onnx"), "--input",
                 str(tmp_path / "big.png"), "--out", str(tmp_path / "t2.png")]) == 0
    assert ("note: the model learnt from pairs resized to 64 px; this 256x256 map is painted at "
            "4.0x that scale") in capsys.readouterr().out
