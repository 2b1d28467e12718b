"""``tinyid run isometry``: the Jacobian spectrum of identity-initialized stacks over sigma and q0.

For :math:`W^l = \\sigma I` (no bias) every layer acts elementwise, so the eigenvalues of :math:`J J^\\top`
are :math:`\\sigma^{2L}` with probability :math:`\\alpha` and 0 otherwise (:func:`tinyid.theory.identity_spectrum`;
a reconstruction from the identity initialization of Kubota et al. 2021). This sweep measures :math:`\\alpha`
and the nonzero eigenvalue on real stacks (:func:`tinyid.jacobian.identity_spectrum_measured`, exact
singular values) over a grid of :math:`\\sigma` and input variances :math:`q_0`, for hard tanh and ReLU, and
draws them as a phase diagram beside the theory. Dynamical isometry (every singular value 1) needs
:math:`\\alpha \\to 1` and :math:`\\sigma^{2L} = 1`: :math:`\\sigma = 1` and a small :math:`q_0` with hard tanh,
never with ReLU (:math:`\\alpha = 1/2`).

Depth 20, width 100, 16 inputs per grid point on a 13 x 13 grid (``--quick``: depth 8, width 32,
8 inputs, 5 x 5). Writes ``phase_diagram.png``, ``eigenvalues.png`` and ``isometry.json``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tinyid.jacobian import identity_spectrum_measured
from tinyid.plots import save_figure

DESCRIPTION = ("Jacobian spectrum of sigma*I stacks (hard tanh, ReLU) over sigma and q0: measured fraction of "
               "nonzero singular values and their value against the Bernoulli theory, as a phase diagram")

ACTIVATIONS = ("hard_tanh", "relu")


@dataclass
class Config:
    depth: int
    width: int
    n_examples: int
    sigmas: list
    q0s: list


def config_for(quick: bool) -> Config:
    n = 5 if quick else 13
    return Config(depth=8 if quick else 20, width=32 if quick else 100, n_examples=8 if quick else 16,
                  sigmas=np.linspace(0.8, 1.2, n).tolist(), q0s=np.logspace(-2, 1, n).tolist())


def add_arguments(parser) -> None:
    """``--depth``: the number of sigma*I layers (default 20; ``--quick``: 8)."""
    parser.add_argument("--depth", type=int, default=None, help="number of sigma*I layers (default 20)")


def run(args) -> dict:
    cfg = config_for(args.quick)
    if getattr(args, "depth", None) is not None:
        if args.depth < 1:
            raise ValueError(f"--depth must be a positive integer, got {args.depth}")
        cfg.depth = args.depth
    if args.epochs is not None:
        print("isometry trains nothing: --epochs is ignored")
    started = time.perf_counter()
    grids = {}
    for activation in ACTIVATIONS:
        shape = (len(cfg.sigmas), len(cfg.q0s))
        grid = {key: np.empty(shape) for key in ("alpha", "alpha_se", "predicted_alpha", "log10_eigenvalue",
                                                 "log10_predicted_eigenvalue", "eigenvalue_spread")}
        for i, sigma in enumerate(cfg.sigmas):
            for j, q0 in enumerate(cfg.q0s):
                r = identity_spectrum_measured(sigma, q0, cfg.depth, activation, width=cfg.width,
                                               n_examples=cfg.n_examples, seed=args.seed + 1000 * i + j,
                                               backend=args.backend)
                grid["alpha"][i, j], grid["alpha_se"][i, j] = r["alpha"], r["alpha_se"]
                grid["predicted_alpha"][i, j] = r["predicted_alpha"]
                grid["log10_eigenvalue"][i, j] = np.log10(r["eigenvalue"]) if r["alpha"] > 0 else np.nan
                grid["log10_predicted_eigenvalue"][i, j] = np.log10(r["predicted_eigenvalue"])
                grid["eigenvalue_spread"][i, j] = r["eigenvalue_spread"] if r["alpha"] > 0 else np.nan
        grids[activation] = grid
    z = {a: np.abs(g["alpha"] - g["predicted_alpha"]) / np.maximum(g["alpha_se"], 1.0 / (cfg.width * cfg.n_examples))
         for a, g in grids.items()}
    results = {
        "config": asdict(cfg), "backend": args.backend, "seed": args.seed,
        "grids": {a: {k: [[None if np.isnan(v) else float(v) for v in row] for row in g[k]] for k in g}
                  for a, g in grids.items()},
        "max_alpha_error": {a: float(np.max(np.abs(g["alpha"] - g["predicted_alpha"]))) for a, g in grids.items()},
        "max_alpha_z": {a: float(np.max(v)) for a, v in z.items()},
        "max_eigenvalue_spread": {a: float(np.nanmax(g["eigenvalue_spread"])) for a, g in grids.items()},
        "seconds": time.perf_counter() - started,
    }
    out = Path(args.out)
    save_figure(_phase_diagram(grids, cfg), out / "phase_diagram.png")
    save_figure(_eigenvalues(grids, cfg), out / "eigenvalues.png")
    (out / "isometry.json").write_text(json.dumps(results, indent=1) + "\n")
    for a in ACTIVATIONS:
        print(f"{a}: largest |alpha - theory| {results['max_alpha_error'][a]:.3f} "
              f"({results['max_alpha_z'][a]:.1f} standard errors); nonzero eigenvalues equal sigma^(2L) to "
              f"{results['max_eigenvalue_spread'][a]:.1e}")
    return results


def _phase_diagram(grids: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(10, 7.5), layout="constrained")
    axes = fig.subplots(len(grids), 2, squeeze=False)
    log_q0 = np.log10(cfg.q0s)
    half_q0 = (log_q0[-1] - log_q0[0]) / (2 * max(1, len(log_q0) - 1))
    half_sigma = (cfg.sigmas[-1] - cfg.sigmas[0]) / (2 * max(1, len(cfg.sigmas) - 1))
    extent = (log_q0[0] - half_q0, log_q0[-1] + half_q0, cfg.sigmas[0] - half_sigma, cfg.sigmas[-1] + half_sigma)
    for row, (activation, grid) in zip(axes, grids.items()):
        for ax, key, what in zip(row, ("alpha", "predicted_alpha"), ("measured", "theory")):
            image = ax.imshow(grid[key], origin="lower", aspect="auto", extent=extent, vmin=0, vmax=1,
                              cmap="viridis", interpolation="nearest")
            if np.ptp(grid["predicted_alpha"]) > 0:  # relu's theory is flat: no contours to draw
                contours = ax.contour(log_q0, cfg.sigmas, grid["predicted_alpha"], levels=[0.25, 0.5, 0.75, 0.95],
                                      colors="white", linewidths=0.8)
                ax.clabel(contours, fontsize="x-small")
            ax.set(title=f"{activation}: alpha {what}", xlabel="log10 q0 (input variance)", ylabel="sigma")
        fig.colorbar(image, ax=list(row), label="fraction of nonzero singular values")
    fig.suptitle(f"sigma*I stacks, depth {cfg.depth}: alpha measured vs theory (white: theory contours)")
    return fig


def _eigenvalues(grids: dict, cfg: Config) -> Figure:
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.subplots()
    for k, (activation, grid) in enumerate(grids.items()):
        measured = np.nanmean(grid["log10_eigenvalue"], axis=1)
        ax.plot(cfg.sigmas, measured, marker="o", linestyle="none", color=f"C{k}", label=f"{activation} (measured)")
    ax.plot(cfg.sigmas, 2 * cfg.depth * np.log10(cfg.sigmas), color="black", linestyle="--",
            label="theory: sigma^(2L)")
    ax.set(xlabel="sigma", ylabel="log10 nonzero eigenvalue of J J^T",
           title=f"Nonzero eigenvalues, depth {cfg.depth}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
