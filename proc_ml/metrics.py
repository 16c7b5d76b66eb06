"""Classification metrics from a confusion matrix (plain numpy in, plain floats out)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """``int64[K, K]``: rows are true classes, columns predicted classes."""
    flat = np.asarray(targets, np.int64) * n_classes + np.asarray(predictions, np.int64)
    return np.bincount(flat.ravel(), minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def per_class_scores(confusion: np.ndarray, names) -> dict[str, dict]:
    """Precision, recall, F1 and support per class (0 where a class never occurs)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_pos = np.diag(confusion)
    precision = _ratio(true_pos, confusion.sum(axis=0))
    recall = _ratio(true_pos, confusion.sum(axis=1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    support = confusion.sum(axis=1)
    return {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(names, precision, recall, f1, support)}


def classification_metrics(confusion: np.ndarray, names) -> dict:
    """Accuracy, macro F1 over classes present, and per-class scores."""
    confusion = np.asarray(confusion)
    total = confusion.sum()
    classes = per_class_scores(confusion, names)
    present = [c["f1"] for c in classes.values() if c["support"] > 0]
    return {"accuracy": float(np.trace(confusion) / total) if total else 0.0,
            "macro_f1": float(np.mean(present)) if present else 0.0,
            "per_class": classes}


def per_class_table(per_class: dict, label: str = "class", columns=("precision", "recall", "f1")) -> list[str]:
    """Fixed-width lines: a header, then one row per class of ``per_class`` (as
    ``per_class_scores`` returns it, plus any extra float columns) and its support."""
    width = max([len(label), *(len(n) for n in per_class)]) + 2
    lines = [f"{label:<{width}}" + "".join(f"{c:>10}" for c in columns) + f"{'support':>10}"]
    for name, scores in per_class.items():
        lines.append(f"{name:<{width}}" + "".join(f"{scores[c]:>10.4f}" for c in columns)
                     + f"{scores['support']:>10d}")
    return lines


#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 15


def calibration_bins(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """``float64[bins, 3]``: per equal-width confidence bin, (count, sum of confidence, sum of
    correct). Sums of these over buildings give the whole set's calibration."""
    confidence = np.asarray(confidence, dtype=np.float64).ravel()
    correct = np.asarray(correct, dtype=np.float64).ravel()
    index = np.clip((confidence * bins).astype(np.int64), 0, bins - 1)
    out = np.zeros((bins, 3))
    np.add.at(out, index, np.stack([np.ones_like(confidence), confidence, correct], axis=1))
    return out


def expected_calibration_error(table: np.ndarray) -> float:
    """ECE from :func:`calibration_bins`: sum over bins of |accuracy - mean confidence|
    weighted by the share of samples in the bin (0: perfectly calibrated)."""
    count = table[:, 0]
    total = count.sum()
    if total == 0:
        return 0.0
    seen = count > 0
    gap = np.abs(table[seen, 2] - table[seen, 1]) / count[seen]
    return float((gap * count[seen]).sum() / total)
