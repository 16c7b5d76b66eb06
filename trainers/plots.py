"""PNG plots of a run (matplotlib, Agg backend), written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from proc_ml.fileio import atomic_path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")


def plot_curves(history: list[dict], path: Path, metric_names) -> None:
    """Losses (left) and validation metrics (right) per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    for key in sorted(k for k in history[-1] if k.endswith("loss") or k.startswith("train_loss_")):
        ax_loss.plot(epochs, [h.get(key, np.nan) for h in history], marker="o", label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    ax_loss.legend()
    for name in metric_names:
        key = f"val_{name}"
        if name != "loss" and key in history[-1]:
            ax_metric.plot(epochs, [h.get(key, np.nan) for h in history], marker="o", label=key)
    ax_metric.set(xlabel="epoch", title="validation metrics")
    ax_metric.legend()
    ax_metric.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def plot_confusion(confusion, names, path: Path, title: str) -> None:
    """Row-normalised confusion matrix with counts."""
    plt = _pyplot()
    counts = np.asarray(confusion, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(names), 0.8 + 0.7 * len(names)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    for i in range(len(names)):
        for j in range(len(names)):
            if counts[i, j]:
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    _save(fig, path)
    plt.close(fig)
