"""Fine-tuning (``train building-parts --init``): every source, the vocabulary mapping,
exact weights from an exported model, frozen normalisation, corrected faces in the loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from proc_ml.cli import main
from proc_ml.fileio import file_sha256
from proc_ml.runtime import default_model


def _train(dataset, out, *args):
    return main(["train", "building-parts", "--data", str(dataset), "--out", str(out),
                 "--quiet", "--set", "training.epochs=1", "--set", "training.threads=1",
                 "--set", "dataset.max_buildings=4", *map(str, args)])


@pytest.fixture(scope="module")
def custom_vocab_dataset(tmp_path_factory):
    """12^3 grammar buildings in a studio vocabulary: no balcony, an extra chimney part."""
    from proc_ml.exporters.dataset import generate_dataset
    from proc_ml.procedural import load_generator_config

    out = tmp_path_factory.mktemp("vocab_ds")
    cfg = load_generator_config(None, ["grid.size=[12,12,12]",
                                       "parts=[wall, window, door, roof, shopfront, ground, chimney]"])
    generate_dataset(cfg, 6, 2, out, ("grids",), workers=1, progress=False)
    return out


# -- the vocabulary mapping ---------------------------------------------------------------
def test_vocabulary_mapping_keeps_adds_and_drops_by_name():
    from proc_ml.trainers.finetune import vocabulary_mapping

    source = ["wall", "window", "door", "roof", "balcony", "ground"]
    target = ["roof", "wall", "window", "cornice", "ground", "sill"]
    mapping = vocabulary_mapping(source, target, {"cornice": "roof", "sill": "nonexistent"})
    assert mapping["kept"] == ["roof", "wall", "window", "ground"]
    assert mapping["added"] == {"cornice": "roof", "sill": "wall"}    # unknown parent: wall
    assert mapping["dropped"] == ["door", "balcony"]
    assert vocabulary_mapping(["a", "b"], ["c"])["added"] == {"c": "a"}   # no wall: the first


def test_silent_parts_are_restarted_from_their_parent():
    """A part both vocabularies have that the source never gives more than
    SILENT_PROBABILITY on the training faces (while the data labels some) starts from its
    parent like a new part; a part the data never labels, or one the source does predict,
    keeps its channels."""
    from proc_ml.trainers.finetune import SILENT_PROBABILITY, survey, vocabulary_mapping

    source = ["wall", "window", "door", "balcony"]
    target = ["wall", "window", "door", "balcony", "cornice"]
    counts = np.array([[50, 2, 0, 0],          # wall faces: predicted wall mostly
                       [5, 30, 0, 0],          # window
                       [3, 1, 2, 0],           # door: predicted on 2 of its faces
                       [4, 9, 0, 0],           # balcony: never predicted, mostly window
                       [6, 0, 0, 0]])          # cornice (new): wall
    top = np.array([0.99, 0.97, 0.41, SILENT_PROBABILITY / 10])
    parents, silent = survey(counts, top, source, target)
    assert silent == {"balcony"} and parents["balcony"] == "window" and parents["cornice"] == "wall"
    mapping = vocabulary_mapping(source, target, parents, silent)
    assert mapping["kept"] == ["wall", "window", "door"]
    assert mapping["restarted"] == {"balcony": "window"} and mapping["added"] == {"cornice": "wall"}
    # a door the source rarely predicts but gives real probability to is not silent
    assert "door" not in survey(counts, np.array([0.99, 0.97, SILENT_PROBABILITY * 2, 0.0]),
                                source, target)[1]
    # the data labels no balcony: nothing to restart it for
    counts[3] = 0
    assert survey(counts, top, source, target)[1] == set()


def test_output_channels_follow_the_names(tiny_unet_run, tmp_path):
    """Kept parts keep their channels in every direction (whatever their new index); a new
    part copies its parent's channels with NEW_PART_BIAS on the bias; dropped ones go."""
    from proc_ml.trainers import load_run
    from proc_ml.trainers.finetune import NEW_PART_BIAS, load_init, load_into, vocabulary_mapping
    from proc_ml.trainers.models import build_model

    source_model, run = load_run(tiny_unet_run)
    init = load_init(str(tiny_unet_run))
    assert init.kind == "run" and init.parts == list(run.info.parts)
    target = ["ground", "wall", "cornice", "window", "roof", "door"]
    mapping = vocabulary_mapping(init.parts, target, {"cornice": "roof", "door": "wall"}, {"door"})
    assert mapping["restarted"] == {"door": "wall"}
    model = build_model("parts-unet3d", in_channels=len(run.info.input_names),
                        n_parts=len(target), **init.hyper)
    load_into(model, init, target, mapping)
    k_src, k_new = len(init.parts), len(target)
    w_src = source_model.head.weight.detach().reshape(6, k_src, -1)
    b_src = source_model.head.bias.detach().reshape(6, k_src)
    w_new = model.head.weight.detach().reshape(6, k_new, -1)
    b_new = model.head.bias.detach().reshape(6, k_new)
    parent = {"cornice": "roof", "door": "wall"}
    for j, part in enumerate(target):
        i = init.parts.index(parent.get(part, part))
        torch.testing.assert_close(w_new[:, j], w_src[:, i])
        offset = NEW_PART_BIAS if part in parent else 0.0
        torch.testing.assert_close(b_new[:, j], b_src[:, i] + offset)
    # everything below the head is the source's
    for key, value in source_model.state_dict().items():
        if not key.startswith("head."):
            torch.testing.assert_close(model.state_dict()[key], value)


# -- an exported model as the source ------------------------------------------------------
def test_init_from_the_installed_onnx_model_is_exact():
    """The installed model's folded BatchNorm comes back as an identity norm plus shift: the
    torch network gives onnxruntime's logits (eval mode, statistics frozen)."""
    from proc_ml.encoding import grid_inputs
    from proc_ml.runtime import PartsPredictor, default_model
    from proc_ml.trainers.finetune import load_init, load_into, vocabulary_mapping
    from proc_ml.trainers.models import build_model

    init = load_init("default")
    assert init.kind == "onnx" and init.hyper == {"width": 12, "depth": 2}
    model = build_model("parts-unet3d", in_channels=len(init.info.input_names),
                        n_parts=len(init.parts), **init.hyper)
    load_into(model, init, init.parts, vocabulary_mapping(init.parts, init.parts))
    model.eval()
    occupancy = np.zeros((8, 8, 8), np.uint8)
    occupancy[1:6, 2:7, :5] = 1
    occupancy[1:3, 2:4, 5:7] = 1
    x = grid_inputs(init.info.input_names, occupancy, None, ("+x",), None)
    with torch.no_grad():
        ours = model(torch.from_numpy(x)[None]).numpy()
    session = PartsPredictor(default_model("building-parts"), device="cpu").model
    theirs = session.run(x[None].astype(np.float32))
    assert np.abs(ours - theirs).max() < 1e-4


def test_added_input_channels_start_with_zero_weights():
    """A run whose inputs hold the source's and more (``street_bays`` from the installed
    ``street`` model) starts as the same function: the source's first-layer weights on
    their channels, wherever the new set puts them, and zeros on the added ones, so the
    logits do not depend on the new channels until training moves them."""
    from proc_ml.encoding import GRID_INPUT_SETS, grid_inputs
    from proc_ml.trainers.finetune import input_mapping, load_init, load_into, vocabulary_mapping
    from proc_ml.trainers.models import build_model

    init = load_init("default")
    names = list(GRID_INPUT_SETS["street_bays"])
    added = input_mapping(list(init.info.input_names), names)
    assert added and all(n.startswith("bay") for n in added)
    assert input_mapping(list(init.info.input_names), list(GRID_INPUT_SETS["massing"])) is None
    source = build_model("parts-unet3d", in_channels=len(init.info.input_names),
                         n_parts=len(init.parts), **init.hyper)
    load_into(source, init, init.parts, vocabulary_mapping(init.parts, init.parts))
    wider = build_model("parts-unet3d", in_channels=len(names), n_parts=len(init.parts),
                        **init.hyper)
    load_into(wider, init, init.parts, vocabulary_mapping(init.parts, init.parts), names)
    first = wider.state_dict()["encoders.0.0.weight"]
    for j, name in enumerate(init.info.input_names):
        torch.testing.assert_close(first[:, names.index(name)],
                                   source.state_dict()["encoders.0.0.weight"][:, j])
    assert all(float(first[:, names.index(n)].abs().max()) == 0.0 for n in added)
    source.eval(), wider.eval()
    occupancy = np.zeros((8, 8, 8), np.uint8)
    occupancy[1:7, 2:7, :5] = 1
    occupancy[1:3, 2:4, 5:7] = 1
    x_source = grid_inputs(init.info.input_names, occupancy, None, ("+x",), None)
    x_wider = grid_inputs(names, occupancy, None, ("+x",), None)
    assert x_wider[[names.index(n) for n in added]].any()     # the new channels say something
    with torch.no_grad():
        torch.testing.assert_close(wider(torch.from_numpy(x_wider)[None]),
                                   source(torch.from_numpy(x_source)[None]), atol=1e-5, rtol=1e-5)


def test_fine_tuning_with_added_inputs_records_them(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "ft"
    assert _train(tiny_dataset, out, "--init", "default", "--config", "parts_unet3d_street",
                  "--set", "dataset.inputs=street_bays") == 0
    printed = capsys.readouterr().out
    assert "init: inputs added (16, zero weights at the start): bay2_low:+x, " in printed
    record = json.loads((out / "init.json").read_text())
    assert record["inputs"] == ["occupancy", "ground_floor", "street:+x", "street:-x",
                                "street:+y", "street:-y"]
    assert len(record["mapping"]["inputs_added"]) == 16
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["dataset"]["inputs"] == "street_bays"
    from proc_ml.trainers import load_run
    model, run = load_run(out)
    assert run.info.input_names[-16:] == record["mapping"]["inputs_added"]
    # exported, it predicts through the runtime, which computes the bay channels itself
    onnx_path = tmp_path / "ft.onnx"
    assert main(["export", "onnx", str(out), "--out", str(onnx_path)]) == 0
    from proc_ml.runtime import PartsPredictor
    occupancy = np.zeros((10, 8, 6), np.uint8)
    occupancy[1:9, 1:6, :4] = 1
    labels = PartsPredictor(onnx_path, device="cpu").predict(occupancy, street=("+x",))[0]
    assert labels.shape == (10, 8, 6, 6) and (labels[1:9, 1:6, :4] >= 0).any()


# -- --init from each source through the CLI ------------------------------------------------
@pytest.mark.parametrize("source", ["run", "checkpoint", "onnx", "default"])
def test_train_init_from_each_source(source, tiny_unet_run, tiny_unet_onnx, tiny_dataset, tmp_path,
                                     capsys):
    given = {"run": tiny_unet_run, "checkpoint": tiny_unet_run / "checkpoints" / "last.pt",
             "onnx": tiny_unet_onnx, "default": "default"}[source]
    out = tmp_path / "ft"
    assert _train(tiny_dataset, out, "--init", given, "--config", "parts_finetune") == 0
    printed = capsys.readouterr().out
    assert "init: parts kept (7)" in printed
    record = json.loads((out / "init.json").read_text())
    assert record["kind"] == {"run": "run", "checkpoint": "checkpoint"}.get(source, "onnx")
    # which network it started from, by content: the file the weights were read from
    assert record["sha256"] == file_sha256(record["path"])
    if source == "default":
        assert record["sha256"] == file_sha256(default_model("building-parts"))
    config = yaml.safe_load((out / "config.yaml").read_text())
    # the network is the source's, whatever parts_finetune says; so are the inputs, but for
    # the bay and storey channels parts_finetune adds to a street model's
    if source in ("run", "checkpoint", "onnx"):
        assert config["model"] == {"family": "parts-unet3d", "width": 4, "depth": 2}
        assert config["dataset"]["inputs"] == "style"
        assert record["mapping"]["inputs_added"] == []
    else:
        assert config["model"] == {"family": "parts-unet3d", "width": 12, "depth": 2}
        assert config["dataset"]["inputs"] == "street_rhythm"
        assert record["mapping"]["inputs_added"][-2:] == ["storey2", "storey3"]
        assert len(record["mapping"]["inputs_added"]) == 18
    assert config["training"]["init"] == str(given)
    # the fine-tuned run exports like any other, and --resume does not start it again
    assert main(["export", "onnx", str(out), "--out", str(tmp_path / "ft.onnx")]) == 0
    assert main(["train", "building-parts", "--data", str(tiny_dataset), "--out", str(out),
                 "--resume", "--quiet"]) == 0
    assert "training already finished" in capsys.readouterr().out


def test_init_with_another_vocabulary_prints_and_records_the_mapping(custom_vocab_dataset, tmp_path,
                                                                      capsys):
    out = tmp_path / "ft"
    assert _train(custom_vocab_dataset, out, "--init", "default", "--config", "parts_finetune") == 0
    printed = capsys.readouterr().out
    assert "init: parts added: chimney (from " in printed
    assert "init: parts dropped: balcony" in printed
    mapping = json.loads((out / "init.json").read_text())["mapping"]
    assert mapping["dropped"] == ["balcony"] and list(mapping["added"]) == ["chimney"]
    from proc_ml.trainers import load_run
    model, run = load_run(out)
    assert run.info.parts == ["wall", "window", "door", "roof", "shopfront", "ground", "chimney"]
    assert model.head.out_channels == 6 * 7


@pytest.mark.parametrize("args, message", [
    (["--init", "{tmp}/nothing.onnx"], "not found"),
    (["--init", "{tmp}"], "needs checkpoints/best.pt"),
    (["--init", "default", "--resume"], "--init cannot be combined with --resume"),
    (["--init", "{pix}"], "fine-tuning from an .onnx file needs a parts-unet3d"),
    # keys the source model decides were silently replaced by its own
    (["--init", "default", "--set", "model.width=32"], "--set model.width: fine-tuning (--init) takes"),
    # inputs may be added to the source's, never taken away
    (["--config", "parts_finetune", "--set", "dataset.inputs=massing"],
     "--set dataset.inputs=massing: fine-tuning (--init) keeps the source model's inputs (street)"),
    (["--init", "default", "--set", "dataset.inputs=bays"],
     "--set dataset.inputs=bays: not an input set (one of style, massing, street, "),
    (["--init", "default", "--set", "dataset.use_style=true"],
     "--set dataset.use_style: fine-tuning (--init) takes"),
    # two sources: --init won silently
    (["--init", "default", "--set", "training.init={tmp}/other.onnx"],
     "--init and --set training.init both name the model"),
    # a resumed run keeps its weights: the new init was recorded in config.yaml, never used
    (["--resume", "--set", "training.init=default"],
     "--set training.init cannot be combined with --resume"),
])
def test_init_errors_are_one_line(args, message, tiny_dataset, tiny_pix2pix_onnx, tmp_path, capsys):
    args = [a.format(tmp=tmp_path, pix=tiny_pix2pix_onnx[0]) for a in args]
    assert _train(tiny_dataset, tmp_path / "out", *args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


# -- frozen normalisation and corrected faces ---------------------------------------------
def test_freeze_norm_keeps_the_normalisation_statistics(tiny_unet_run, tiny_dataset, tmp_path):
    from proc_ml.trainers import load_run

    source, _ = load_run(tiny_unet_run)
    out = tmp_path / "ft"
    assert _train(tiny_dataset, out, "--init", tiny_unet_run, "--config", "parts_finetune",
                  "--set", "training.epochs=2", "--set", "training.freeze_norm=true") == 0
    tuned, _ = load_run(out, "last")
    stats = [k for k in source.state_dict() if k.endswith(("running_mean", "running_var"))]
    assert stats
    for key in stats:
        torch.testing.assert_close(tuned.state_dict()[key], source.state_dict()[key])
    changed = [k for k in stats if k.replace("running_mean", "weight") in source.state_dict()]
    assert any(not torch.equal(tuned.state_dict()[k.replace("running_mean", "bias")],
                               source.state_dict()[k.replace("running_mean", "bias")])
               for k in changed if k.endswith("running_mean"))      # shifts still train


def test_masked_cross_entropy_weighs_faces():
    from proc_ml.trainers.building_parts import masked_cross_entropy

    torch.manual_seed(0)
    k = 3
    logits = torch.randn(1, 6 * k, 2, 2, 2)
    targets = torch.randint(-1, k, (1, 6, 2, 2, 2))
    targets[0, 0, 0, 0, 0] = 1
    weights = torch.ones(1, 6, 2, 2, 2)
    weights[0, 0, 0, 0, 0] = 4.0
    per_face = torch.nn.functional.cross_entropy(
        logits.reshape(1, 6, k, 2, 2, 2).transpose(1, 2), targets, ignore_index=-1,
        reduction="none")
    valid = targets >= 0
    expected = (per_face * weights)[valid].sum() / weights[valid].sum()
    got = masked_cross_entropy(logits, targets, k, face_weight=weights)
    torch.testing.assert_close(got, expected)
    # all-ones face weights are the plain loss
    torch.testing.assert_close(masked_cross_entropy(logits, targets, k, face_weight=torch.ones_like(weights)),
                               masked_cross_entropy(logits, targets, k))


@pytest.mark.parametrize("config_name", ["tiny_parts_unet3d", "tiny_parts_mlp"])
def test_corrected_faces_reach_the_loss(tiny_dataset, tmp_path, config_name):
    """A grid with label_fixed: its marked faces weigh training.fix_weight in the batch the
    loop trains on, and the step's loss is the weighted mean; for the 3D U-Net (a grid per
    building) and for the per-cell MLP (a row per occupied cell) alike."""
    import shutil

    from proc_ml.formats import grid_npz
    from proc_ml.trainers.building_parts import masked_cross_entropy
    from proc_ml.trainers.config import load_train_config, resolve_config_path
    from proc_ml.trainers.loop import make_task

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    path = data / "grids" / "b000000.npz"
    record = grid_npz.read(path)
    fixed = np.zeros(record.labels.shape, bool)
    faces = np.argwhere(record.labels >= 0)[:5]
    fixed[tuple(faces.T)] = True
    grid_npz.write(path, record.building_id, record.archetype, record.occupancy, record.labels,
                   record.style, **{**record.extras, "label_fixed": fixed})
    config = load_train_config("building-parts", resolve_config_path(config_name),
                               ["training.fix_weight=6.0"])
    task = make_task(config, data)
    example = task.encode(task.data.building(0))
    assert len(example) == 3 and example[2].max() == 6.0 and (example[2] == 6.0).sum() == 5
    batch = task.collate([example, task.encode(task.data.building(1))])
    first = batch["building"] == 0 if "building" in batch else 0      # the MLP's rows of building 0
    assert batch["weights"][~first if "building" in batch else 1].eq(1.0).all()
    assert batch["weights"][first].eq(6.0).sum() == 5
    model = task.build_models()["model"]
    step = task.training_step({"model": model}, batch)
    _, loss = next(step)
    logits = model(batch["inputs"])
    torch.testing.assert_close(loss, masked_cross_entropy(logits, batch["targets"], task.n_parts,
                                                          face_weight=batch["weights"]))
    assert not torch.isclose(loss, masked_cross_entropy(logits, batch["targets"], task.n_parts))
    # training.unfixed_weight: the other faces of a corrected grid (not of other grids)
    config = load_train_config("building-parts", resolve_config_path(config_name),
                               ["training.fix_weight=6.0", "training.unfixed_weight=0.5"])
    task = make_task(config, data)
    batch = task.collate([task.encode(task.data.building(0)), task.encode(task.data.building(1))])
    weights = batch["weights"]
    ours, other = ((weights[batch["building"] == 0], weights[batch["building"] == 1])
                   if "building" in batch else (weights[0], weights[1]))
    assert ours.eq(6.0).sum() == 5 and ours.eq(0.5).sum() == ours.numel() - 5
    assert other.eq(1.0).all()


@pytest.mark.parametrize("config_name", ["tiny_parts_unet3d", "tiny_parts_mlp"])
def test_unknown_faces_weigh_training_unknown_weight(tiny_dataset, tmp_path, config_name):
    """A grid with label_known (an imported real building: the sides the street scan never
    saw are labelled wall but unknown): with training.unknown_weight those faces weigh that
    factor in the loss, a corrected face among them stays fully weighted; the default (1)
    trains them as labelled; a value outside 0-1 is refused naming the key."""
    import shutil

    from proc_ml.errors import ConfigError
    from proc_ml.formats import grid_npz
    from proc_ml.trainers.config import load_train_config, resolve_config_path
    from proc_ml.trainers.loop import make_task

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    path = data / "grids" / "b000000.npz"
    record = grid_npz.read(path)
    faces = record.labels >= 0
    known = faces.copy()
    known[..., 0] = False                 # every +x face unknown
    unknown = faces & ~known
    fixed = np.zeros(faces.shape, bool)
    fixed[tuple(np.argwhere(unknown)[0])] = True       # one of them corrected by an artist
    grid_npz.write(path, record.building_id, record.archetype, record.occupancy, record.labels,
                   record.style, **{**record.extras, "label_known": known, "label_fixed": fixed})
    n_unknown = int(unknown.sum())
    assert n_unknown > 1

    def weights(*overrides):
        config = load_train_config("building-parts", resolve_config_path(config_name),
                                   ["training.fix_weight=4.0", *overrides])
        task = make_task(config, data)
        batch = task.collate([task.encode(task.data.building(0)), task.encode(task.data.building(1))])
        w, t = batch["weights"], batch["targets"]          # faces: targets >= 0
        if "building" in batch:            # the MLP: a row per occupied cell
            cells = batch["building"] == 0
            return w[cells][t[cells] >= 0], w[~cells][t[~cells] >= 0]
        return w[0][t[0] >= 0], w[1][t[1] >= 0]

    ours, other = weights("training.unknown_weight=0.0")
    assert int(ours.eq(0.0).sum()) == n_unknown - 1        # the corrected one is known
    assert int(ours.eq(4.0).sum()) == 1 and other.eq(1.0).all()
    ours, _ = weights("training.unknown_weight=0.25")
    assert int(ours.eq(0.25).sum()) == n_unknown - 1
    ours, _ = weights()                                       # default: trained as labelled
    assert int(ours.eq(1.0).sum()) == ours.numel() - 1
    with pytest.raises(ConfigError, match="training.unknown_weight"):
        weights("training.unknown_weight=2.0")


def test_patience_stops_early_and_resume_keeps_it_stopped(tiny_dataset, tmp_path):
    """training.patience: the fit ends once that many epochs bring no better best_metric
    (here lr ~ 0: nothing improves after epoch 1); --resume does not train on."""
    out = tmp_path / "run"
    args = ["--config", "tiny_parts_unet3d", "--set", "training.epochs=6",
            "--set", "training.patience=2", "--set", "training.lr=0.000000000001",
            "--set", "training.scheduler=none"]
    assert main(["train", "building-parts", "--data", str(tiny_dataset), "--out", str(out),
                 "--quiet", "--set", "training.threads=1", *args]) == 0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3                      # best at epoch 1, then 2 epochs without better
    assert main(["train", "building-parts", "--data", str(tiny_dataset), "--out", str(out),
                 "--quiet", "--resume"]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_finetune_one_liner_trains_exports_and_times(tiny_unet_run, tiny_dataset, tmp_path, capsys):
    """`proc-ml finetune`: train --init then export onnx in one command; with --json one start
    and one done event (what proc_ml.pdg.run_cli reads), the model loads in the runtime."""
    from proc_ml.runtime import PartsPredictor

    out, model = tmp_path / "run", tmp_path / "tuned.onnx"
    assert main(["finetune", "--data", str(tiny_dataset), "--out", str(out), "--export", str(model),
                 "--init", str(tiny_unet_run), "--set", "training.epochs=1", "--set",
                 "training.threads=1", "--set", "dataset.max_buildings=4", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events if e["event"] != "progress"] == ["start", "done"]
    done = events[-1]
    assert done["outputs"] == [str(out), str(model)]
    assert {"train_s", "export_s", "total_s"} <= set(done) and done["total_s"] >= done["train_s"]
    assert done["mapping"]["kept"] and done["max_abs_diff"] <= 1e-4
    assert PartsPredictor(model, device="cpu").parts == json.loads(
        (out / "init.json").read_text())["source_parts"]
    # a second run into the same folder is refused before any work
    assert main(["finetune", "--data", str(tiny_dataset), "--out", str(out), "--export",
                 str(tmp_path / "again.onnx"), "--init", str(tiny_unet_run)]) == 1
    err = capsys.readouterr().err
    assert "already holds a training run" in err and f"proc-ml export onnx {out}" in err


def test_fine_tuning_a_dataset_without_a_validation_split(tiny_dataset, tmp_path, capsys):
    """A few exported buildings with none set aside: fine-tuning validates on the training
    split and says so; training from scratch still refuses the empty split."""
    import shutil

    from proc_ml.formats import manifest

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    path = data / "dataset.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["split"] = {"train": doc["split"]["train"][:3], "val": [], "test": []}
    path.write_text(yaml.safe_dump(doc))
    manifest.read(data)                                  # still a valid dataset
    assert _train(data, tmp_path / "ft", "--init", "default", "--config", "parts_finetune") == 0
    assert "split 'val' holds no buildings; validating on the 'train' split" in capsys.readouterr().out
    assert _train(data, tmp_path / "scratch", "--config", "tiny_parts_unet3d") == 1
    assert "split 'val' holds no buildings" in capsys.readouterr().err


def test_a_truncated_checkpoint_is_named_as_such(tiny_unet_run, tiny_dataset, tmp_path, capsys):
    """A .pt cut short in a copy: one line saying so, not torch's "[Errno 22] Invalid
    argument" or its miniz advice."""
    data = (tiny_unet_run / "checkpoints" / "best.pt").read_bytes()
    for size in (100, len(data) // 3, len(data) - 10):
        cut = tmp_path / f"cut{size}.pt"
        cut.write_bytes(data[:size])
        assert _train(tiny_dataset, tmp_path / "out", "--init", cut) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not a readable checkpoint (the file is cut short" in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_run_that_fails_before_training_leaves_no_run_folder(tiny_dataset, tmp_path, capsys):
    """init.json is written with the first checkpoint: a fine-tuning run that stops before
    training (here a validation grid is missing) leaves no folder behind, as a run from
    scratch does, for the train command and the finetune one-liner alike (whose --export
    folder is made by the export, not before training)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    val = yaml.safe_load((data / "dataset.yaml").read_text())["split"]["val"][0]
    (data / "grids" / f"b{val:06d}.npz").unlink()
    assert _train(data, tmp_path / "ft", "--init", "default", "--config", "parts_finetune") == 1
    assert "missing grid file" in capsys.readouterr().err
    assert not (tmp_path / "ft").exists()
    # nor does the one-liner leave the folder it would have exported the model into
    assert main(["finetune", "--data", str(data), "--out", str(tmp_path / "ft2"), "--export",
                 str(tmp_path / "models" / "v2" / "ft2.onnx"), "--quiet", "--set",
                 "training.epochs=1", "--set", "training.threads=1", "--set",
                 "dataset.max_buildings=4"]) == 1
    assert not (tmp_path / "ft2").exists() and not (tmp_path / "models").exists()


def test_finetune_refuses_keys_it_would_ignore(tiny_dataset, tmp_path, capsys):
    """`proc-ml finetune` takes the source with --init: --set training.init, model.* and the
    inputs would be replaced silently; refused in one line before any work."""
    for item, message in (("training.init=other.onnx", "name the model to start from with --init"),
                          ("model.depth=3", "--set model.depth: fine-tuning (--init) takes")):
        assert main(["finetune", "--data", str(tiny_dataset), "--out", str(tmp_path / "ft"),
                     "--export", str(tmp_path / "ft.onnx"), "--set", item]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "ft").exists()


def test_init_from_an_mlp_run_with_the_default_config(tiny_mlp_run, tiny_dataset, tmp_path, capsys,
                                                      monkeypatch):
    """The default config's street dropout is the config's, not the source's: an MLP source
    (no street inputs) fine-tunes with it turned off and a note, instead of stopping on a
    key the user never set."""
    out = tmp_path / "ft"
    monkeypatch.chdir(tiny_mlp_run.parent)            # --init given relative to the cwd
    assert _train(tiny_dataset, out, "--init", tiny_mlp_run.name) == 0
    assert "note: dataset.street_dropout 0.15 set to 0" in capsys.readouterr().out
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["family"] == "parts-mlp" and config["dataset"]["street_dropout"] == 0.0
    # init.json names the source file wherever it is read from
    record = json.loads((out / "init.json").read_text())
    assert record["path"] == str((tiny_mlp_run / "checkpoints" / "best.pt").resolve())


def test_a_part_differing_only_in_case_is_noted():
    """Parts match by exact name; a studio's `Window` starts as a new part, and the mapping
    says why, in one line."""
    from proc_ml.runinfo import PartsInfo
    from proc_ml.trainers.finetune import InitSource, mapping_lines, vocabulary_mapping

    source = ["wall", "window", "door", "roof", "ground"]
    target = ["wall", "Window", "door", "roof", "ground", "cornice"]
    info = PartsInfo(task="building-parts", family="parts-unet3d", input_kind="grid",
                     input_names=["occupancy"], parts=source, with_style=False, stride=4)
    init = InitSource("default", "m.onnx", "onnx", info, {"width": 4, "depth": 2})
    lines = mapping_lines(init, vocabulary_mapping(source, target, {"Window": "window"}))
    notes = [line for line in lines if line.startswith("init: note:")]
    assert notes == ["init: note: parts are matched by exact name: 'Window' is new, not the "
                     "source's 'window' (rename the part in the dataset to reuse the source's)"]
    assert not [line for line in mapping_lines(init, vocabulary_mapping(source, source))
                if "note" in line]


def test_grid_vocab_is_mapped_to_the_dataset_parts_by_name(tiny_dataset, tmp_path):
    """A grid's `vocab` names the parts its labels index (docs/formats.md): a dataset.yaml
    listing them in another order is read by name (read by index, window and wall would
    swap); a labelled part the dataset does not list is one line."""
    import shutil

    from proc_ml.datasets import open_dataset
    from proc_ml.errors import DatasetError
    from proc_ml.formats import grid_npz

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    original = open_dataset(tiny_dataset)
    parts = list(original.parts)
    for i in original.ids():
        path = data / "grids" / f"b{i:06d}.npz"
        record = grid_npz.read(path)
        grid_npz.write(path, record.building_id, record.archetype, record.occupancy,
                       record.labels, record.style, **{**record.extras, "vocab": parts})
    reordered = [parts[1], parts[0], *parts[2:]]
    doc = yaml.safe_load((data / "dataset.yaml").read_text())
    doc["parts"] = reordered
    (data / "dataset.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    names = lambda labels, vocab: np.array(list(vocab) + ["-"])[labels]   # noqa: E731
    before, after = original.building(0), open_dataset(data).building(0)
    assert (names(after.labels, reordered) == names(before.labels, parts)).all()
    assert list(after.extras["vocab"]) == reordered
    doc["parts"] = ["glazing" if p == "window" else p for p in parts]     # renamed only here
    (data / "dataset.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DatasetError, match=r"b000000.npz: labels part 'window' .* do not list"):
        open_dataset(data).building(0)


def test_a_dataset_on_another_cell_size_is_noted(tiny_dataset, tmp_path, capsys):
    """A studio's export at 1.5 m cells fine-tuned from the 3 m installed model: it trains,
    and the mapping says the cell sizes differ (a storey is two cells here, not one)."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    doc = yaml.safe_load((data / "dataset.yaml").read_text())
    doc["cell_size"] = 1.5
    (data / "dataset.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    assert _train(data, tmp_path / "ft", "--init", "default", "--config", "parts_finetune") == 0
    assert ("init: note: the source model was trained on 3 m cells, this dataset has 1.5 m "
            "cells" in capsys.readouterr().out)
    assert _train(tiny_dataset, tmp_path / "same", "--init", "default", "--config",
                  "parts_finetune") == 0
    assert "cells" not in capsys.readouterr().out
