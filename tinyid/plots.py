"""Matplotlib figures shared by experiments and lessons.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state), so they work
in scripts, tests and notebooks alike and never need a display.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["learning_curves", "save_figure", "layer_trajectories", "layer_histograms", "layer_profiles", "curves",
           "running_mean"]


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


def _grid(n_panels: int, n_cols: int, panel_size=(4.2, 3.0), sharex=False, sharey=False):
    n_cols = max(1, min(n_cols, n_panels))
    n_rows = -(-n_panels // n_cols)
    fig = Figure(figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharex=sharex, sharey=sharey).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _layer_colors(n_layers: int):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(1, n_layers - 1) * 0.9) for i in range(n_layers)]


def layer_trajectories(panels: dict, title: str = "", n_cols: int = 2, ylabel: str = "activation") -> Figure:
    """Per-layer activation statistics over training, one panel per run (Glorot & Bengio's Figs. 2-3).

    Parameters
    ----------
    panels : dict of str -> dict
        Panel title -> ``{"steps": (T,), "mean": (T, L), "std": (T, L)}`` and optionally ``"p98": (T, L)``.
        Each layer is one colour: the mean as a line, mean +- std as a band, the 98th percentile as
        markers.
    """
    fig, axes = _grid(len(panels), n_cols, sharex=False)
    for ax, (name, panel) in zip(axes, panels.items()):
        steps = np.asarray(panel["steps"])
        mean, std = np.asarray(panel["mean"]), np.asarray(panel["std"])
        colors = _layer_colors(mean.shape[1])
        for layer in range(mean.shape[1]):
            c = colors[layer]
            ax.plot(steps, mean[:, layer], color=c, label=f"layer {layer + 1}")
            ax.fill_between(steps, mean[:, layer] - std[:, layer], mean[:, layer] + std[:, layer], color=c, alpha=0.15)
            if panel.get("p98") is not None:
                ax.plot(steps, np.asarray(panel["p98"])[:, layer], color=c, linestyle="none", marker=".", markersize=4)
        ax.set(title=name, xlabel="training step", ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", loc="best")
    if title:
        fig.suptitle(title)
    return fig


def layer_histograms(panels: dict, xlabel: str, title: str = "", n_cols: int = 2, log: bool = False) -> Figure:
    """Histograms of a per-layer quantity, one curve per layer and one panel per run (Figs. 4, 6-8).

    Parameters
    ----------
    panels : dict of str -> (counts, edges)
        ``counts`` (L, bins); ``edges`` (bins + 1,) shared by every layer or (L, bins + 1) per layer.
        Each curve is normalized to a density, so layers with different ranges compare.
    log : bool
        Logarithmic density axis (gradients have long tails).
    """
    fig, axes = _grid(len(panels), n_cols)
    for ax, (name, (counts, edges)) in zip(axes, panels.items()):
        counts = np.asarray(counts, dtype=np.float64)
        edges = np.asarray(edges, dtype=np.float64)
        colors = _layer_colors(counts.shape[0])
        for layer in range(counts.shape[0]):
            e = edges if edges.ndim == 1 else edges[layer]
            width = np.diff(e)
            total = counts[layer].sum()
            density = counts[layer] / (total * width) if total > 0 else counts[layer]
            ax.plot(0.5 * (e[1:] + e[:-1]), density, color=colors[layer], label=f"layer {layer + 1}")
        ax.set(title=name, xlabel=xlabel, ylabel="density")
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", loc="best")
    if title:
        fig.suptitle(title)
    return fig


def layer_profiles(measured: dict, predicted: "dict | None" = None, ylabel: str = "", title: str = "",
                   log: bool = False) -> Figure:
    """A per-layer quantity against depth: measured values as markers, theory as dashed lines of the same colour.

    Parameters
    ----------
    measured : dict of str -> (L,) array
    predicted : dict of str -> (L,) array, optional
        Theory lines: a key of ``measured`` is drawn in that curve's colour, any other key in grey
        (one prediction shared by several measured curves).
    """
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.subplots()
    predicted = dict(predicted or {})
    for i, (name, values) in enumerate(measured.items()):
        values = np.asarray(values, dtype=np.float64)
        layers = np.arange(1, len(values) + 1)
        color = f"C{i}"
        ax.plot(layers, values, marker="o", markersize=3, linestyle="-", color=color, label=f"{name} (measured)")
        if name in predicted:
            ax.plot(layers, np.asarray(predicted.pop(name)), linestyle="--", color=color, label=f"{name} (theory)")
    for j, (name, values) in enumerate(predicted.items()):  # theory lines shared by several measured curves
        layers = np.arange(1, len(values) + 1)
        ax.plot(layers, np.asarray(values), linestyle="--", color=str(0.15 + 0.3 * j), label=name)
    ax.set(xlabel="layer", ylabel=ylabel, title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def running_mean(values, window: int) -> tuple:
    """``(steps, means)``: the mean of every ``window`` consecutive values, at the (1-based) step ending it.

    Fewer values than ``window`` (or ``window < 2``) come back unsmoothed, at steps ``1..n``.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < window or window < 2:
        return np.arange(1, len(values) + 1), values
    means = np.convolve(values, np.ones(window) / window, mode="valid")
    return np.arange(window, len(values) + 1), means


def curves(series: dict, xlabel: str, ylabel: str, title: str = "", log: bool = False, ylim=None) -> Figure:
    """Several ``(x, y)`` curves on one axis, e.g. the loss of differently initialized nets."""
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.subplots()
    for name, (x, y) in series.items():
        ax.plot(np.asarray(x), np.asarray(y, dtype=np.float64), label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if log:
        ax.set_yscale("log")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
