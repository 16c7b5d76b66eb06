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
