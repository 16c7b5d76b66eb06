"""Model families: output shapes and layout, any grid size, registry, masked loss."""

import numpy as np
import pytest
import torch

from proc_ml.encoding import GRID_STRIDE, decode_grid_logits, grid_channel_names
from proc_ml.trainers.models import FAMILIES, PartsMLP, PartsUNet3D, build_model, get_family
from proc_ml.trainers.building_parts import masked_cross_entropy, predict_parts


def test_unet_stride_matches_encoding_and_depth():
    assert PartsUNet3D(3, 7).stride == GRID_STRIDE
    assert PartsUNet3D(3, 7, depth=3).stride == 8


@pytest.mark.parametrize("shape", [(4, 8, 12), (8, 8, 8), (12, 4, 20), (32, 32, 32)])
def test_unet_runs_on_any_multiple_of_its_stride(shape):
    torch.manual_seed(0)
    model = PartsUNet3D(in_channels=16, n_parts=7, width=4).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 16, *shape))
    assert out.shape == (2, 42) + shape
    assert torch.isfinite(out).all()


def test_unet_channel_layout_is_direction_major_as_decode_expects():
    """Bias the head so that part p wins on direction d: decode must read it back."""
    k = 3
    model = PartsUNet3D(in_channels=1, n_parts=k, width=2).eval()
    with torch.no_grad():
        model.head.weight.zero_()
        bias = torch.zeros(6, k)
        winners = [d % k for d in range(6)]
        for d, p in enumerate(winners):
            bias[d, p] = 5.0
        model.head.bias.copy_(bias.reshape(-1))
        logits = model(torch.zeros(1, 1, 4, 4, 4))[0].numpy()
    occ = np.zeros((4, 4, 4), dtype=np.uint8)
    occ[1, 1, 1] = 1
    labels, _ = decode_grid_logits(logits, occ, k)
    assert labels[1, 1, 1].tolist() == winners
    assert predict_parts(torch.from_numpy(logits)[None], k)[0, :, 1, 1, 1].tolist() == winners


def test_mlp_shapes_and_dropout_only_in_training():
    torch.manual_seed(0)
    model = PartsMLP(in_features=24, n_parts=7, hidden=(32, 16), dropout=0.5)
    x = torch.rand(11, 24)
    assert model(x).shape == (11, 42)
    model.eval()
    torch.testing.assert_close(model(x), model(x))


def test_registry_builds_each_family_and_names_unknown_ones():
    assert set(FAMILIES) >= {"parts-mlp", "parts-unet3d"}
    assert isinstance(build_model("parts-mlp", in_features=5, n_parts=2), PartsMLP)
    net = build_model("parts-unet3d", in_channels=len(grid_channel_names(False)), n_parts=7, width=2)
    assert isinstance(net, PartsUNet3D)
    with pytest.raises(KeyError, match="parts-unet3d"):
        get_family("voxnet-typo")


def test_masked_loss_ignores_missing_faces_and_equals_cross_entropy_on_existing_ones():
    torch.manual_seed(0)
    k = 4
    logits = torch.randn(2, 6 * k, 4, 4, 4)
    targets = torch.full((2, 6, 4, 4, 4), -1, dtype=torch.int64)
    targets[0, 2, 1, 1, 1] = 3
    targets[1, 4, 0, 2, 3] = 1
    loss = masked_cross_entropy(logits, targets, k)
    by_face = logits.reshape(2, 6, k, 4, 4, 4)
    expected = torch.nn.functional.cross_entropy(
        torch.stack([by_face[0, 2, :, 1, 1, 1], by_face[1, 4, :, 0, 2, 3]]), torch.tensor([3, 1]))
    torch.testing.assert_close(loss, expected)
    # logits of faces that do not exist have no influence
    changed = logits.clone()
    changed[0, :, 3, 3, 3] += 100.0
    torch.testing.assert_close(masked_cross_entropy(changed, targets, k), loss)


def test_masked_loss_on_cells_and_without_faces():
    k = 2
    logits = torch.zeros(3, 6 * k, requires_grad=True)
    targets = torch.full((3, 6), -1, dtype=torch.int64)
    empty = masked_cross_entropy(logits, targets, k)
    assert empty.item() == 0.0
    empty.backward()  # still differentiable: a batch without faces must not break a step
    targets[1, 5] = 0
    assert masked_cross_entropy(logits, targets, k).item() == pytest.approx(np.log(2))


def test_inverse_sqrt_class_weights_favour_rare_parts_and_keep_the_loss_scale():
    from proc_ml.trainers.building_parts import inverse_sqrt_weights

    counts = np.array([900, 100, 0])
    weights = inverse_sqrt_weights(counts)
    assert weights[1] == pytest.approx(3 * weights[0])
    assert (counts[:2] / counts.sum() * weights[:2]).sum() == pytest.approx(1.0)
    assert weights[2] == weights.max()  # an unseen part is not ignored


def test_validation_scores_match_a_per_face_reference():
    """``PartsEvaluation`` scores only the existing faces (``face_logits``): its confusion,
    loss, calibration bins and exact-building count equal a face-by-face loop over the grid."""
    from proc_ml.metrics import ECE_BINS
    from proc_ml.trainers.building_parts import PartsEvaluation, face_logits

    rng = np.random.default_rng(4)
    k, batch = 4, 3
    logits = torch.from_numpy(rng.normal(0, 2, (batch, 6 * k, 4, 4, 4)).astype(np.float32))
    targets = np.full((batch, 6, 4, 4, 4), -1, dtype=np.int64)
    mask = rng.random(targets.shape) < 0.1
    targets[mask] = rng.integers(0, k, int(mask.sum()))
    exact = logits.reshape(batch, 6, k, 4, 4, 4).argmax(dim=2).numpy()
    targets[2][targets[2] >= 0] = exact[2][targets[2] >= 0]          # building 2 all right
    targets = torch.from_numpy(targets)

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits

    ev = PartsEvaluation([f"p{i}" for i in range(k)])
    ev.update(Fixed(), {"inputs": torch.zeros(1), "targets": targets,
                        "building": torch.tensor([0, 1, 2]), "count": 3})
    confusion = np.zeros((k, k), dtype=np.int64)
    bins = np.zeros((3, ECE_BINS))
    loss, faces, wrong = 0.0, 0, set()
    z = logits.numpy().reshape(batch, 6, k, 4, 4, 4)
    for b, d, x, y, w in zip(*np.nonzero(targets.numpy() >= 0)):
        t = int(targets[b, d, x, y, w])
        row = z[b, d, :, x, y, w].astype(np.float64)
        p = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        guess = int(row.argmax())
        confusion[t, guess] += 1
        loss -= np.log(p[t])
        faces += 1
        i = min(int(p.max() * ECE_BINS), ECE_BINS - 1)
        bins[:, i] += (1, p.max(), guess == t)
        if guess != t:
            wrong.add(int(b))
    assert np.array_equal(ev.confusion.numpy().reshape(k, k), confusion)
    assert ev.loss[1].item() == faces and ev.loss[0].item() == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(ev.calibration.numpy(), bins, rtol=1e-5)
    assert ev.counts.tolist() == [3, 3 - len(wrong)] and 2 not in wrong and len(wrong) == 2
    f_logits, f_targets, sample = face_logits(logits, targets, k)
    assert f_logits.shape == (faces, k) and sample.tolist() == sorted(sample.tolist())
