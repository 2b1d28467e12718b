"""Matplotlib figures shared by experiments and lessons.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state), so they work
in scripts, tests and notebooks alike and never need a display.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["learning_curves", "save_figure"]


def learning_curves(history, title: str = "") -> Figure:
    """Loss and accuracy per epoch (train and, when recorded, test) from a :class:`tinyid.train.History`."""
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = history.series("epoch")
    for split in ("train", "test"):
        losses, accs = history.series(f"{split}_loss"), history.series(f"{split}_acc")
        if any(v is None for v in losses):
            continue
        ax_loss.plot(epochs, losses, marker="o", label=split)
        ax_acc.plot(epochs, accs, marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig: Figure, path) -> Path:
    """Write ``fig`` as PNG (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
