"""``tinyid run he``: deep ReLU MLPs, Xavier vs He initialization (He et al. 2015), and 100-layer contrasts.

Four ReLU networks on the embedded Shapeset-3x2 (or ``--data fashion-mnist``):

* 30 layers, Xavier (normalized) init: :math:`n \\mathrm{Var}[W] = 1` but ReLU halves the second
  moment at every layer, so signals and gradients shrink like :math:`2^{-L}` and training stalls;
* 30 layers, He init (:math:`\\mathrm{Var}[W] = 2 / n_{in}`): the halving is undone, and it trains;
* 100 layers, orthogonal init with gain :math:`\\sqrt 2`: the same variance as He, from orthogonal matrices;
* 100 layers, identity init (:math:`W = I` for the square hidden layers; He for the first, Xavier for
  the last): every unit keeps its sign after layer 1, so ReLU masks one half once instead of
  halving at every layer.

Widths 256 (``--quick``: 48), SGD with momentum 0.9. Written to ``--out``: ``loss.png`` (the
training loss of every net over steps), ``gradient_variance.png`` (the measured variance of the
back-propagated gradient dC/ds of every layer at initialization, log scale, beside
:func:`tinyid.theory.backward_variances` started from the measured top layer) and ``he.json``.

The independence assumption behind the theory holds for Gaussian/uniform and (nearly) for orthogonal
weights; it fails for the identity init, whose layers reuse one ReLU mask, so no theory line is drawn
for it.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinyid import init as _init
from tinyid import optim, theory
from tinyid.data import load_dataset
from tinyid.experiments.training import fit_or_diverge
from tinyid.layers import MLP
from tinyid.plots import curves, layer_profiles, running_mean, save_figure
from tinyid.probes import layer_statistics
from tinyid.train import Trainer

DESCRIPTION = ("He et al. 2015: 30-layer ReLU MLPs with Xavier (stalls) vs He (trains) init, and 100-layer "
               "orthogonal/identity nets; loss curves and per-layer gradient variance against theory")


@dataclass
class Net:
    """One network of the comparison: its depth (weight layers) and initializers."""

    label: str
    depth: int
    init: object
    first_init: object = None
    last_init: object = None


NETS = (
    Net("Xavier, 30 layers", 30, "xavier_normal"),
    Net("He, 30 layers", 30, "he_normal"),
    Net("orthogonal (gain sqrt 2), 100 layers", 100, ("orthogonal", {"gain": math.sqrt(2.0)})),
    Net("identity, 100 layers", 100, ("identity", {"sigma": 1.0}), first_init="he_normal", last_init="xavier_normal"),
)


@dataclass
class Config:
    width: int
    n_train: int
    n_test: int
    n_probe: int
    epochs: int
    batch_size: int
    lr: float
    momentum: float


def config_for(quick: bool, epochs: "int | None" = None, lr: "float | None" = None) -> Config:
    if quick:
        cfg = Config(width=48, n_train=1500, n_test=300, n_probe=200, epochs=2, batch_size=32, lr=0.01,
                     momentum=0.9)
    else:
        cfg = Config(width=256, n_train=20_000, n_test=2000, n_probe=500, epochs=5, batch_size=64, lr=0.01,
                     momentum=0.9)
    if epochs is not None:
        cfg.epochs = epochs
    if lr is not None:
        cfg.lr = lr
    return cfg


def add_arguments(parser) -> None:
    """``--data`` (shapeset or fashion-mnist) and ``--lr``."""
    parser.add_argument("--data", default="shapeset", help="shapeset (embedded, default) or fashion-mnist")
    parser.add_argument("--lr", type=float, default=None, help="SGD learning rate (default 0.01, momentum 0.9)")


def run(args) -> dict:
    cfg = config_for(args.quick, args.epochs, getattr(args, "lr", None))
    if not cfg.lr > 0:
        raise ValueError(f"--lr must be positive, got {cfg.lr}")
    out = Path(args.out)
    data = load_dataset(getattr(args, "data", "shapeset"), n_train=cfg.n_train, n_test=cfg.n_test, seed=args.seed,
                        standardize=True)
    x_probe, y_probe = data.x_test[:cfg.n_probe], data.y_test[:cfg.n_probe]
    runs = {}
    started = time.perf_counter()
    for net in NETS:
        sizes = [data.n_features, *[cfg.width] * (net.depth - 1), data.n_classes]
        model = MLP(sizes, activation="relu", init=net.init, first_init=net.first_init, last_init=net.last_init,
                    seed=args.seed, backend=args.backend)
        at_init = layer_statistics(model, x_probe, y_probe, histograms=False)
        grad_var = np.asarray(at_init["grad_var"])
        predicted = None
        if net.first_init is None and net.last_init is None:
            predicted = theory.backward_variances(sizes, net.init, "relu", output_grad_var=float(grad_var[-1]))
        trainer = Trainer(model, optim.SGD(model.params, lr=cfg.lr, momentum=cfg.momentum), seed=args.seed,
                          batch_size=cfg.batch_size)
        run_started = time.perf_counter()
        diverged = fit_or_diverge(trainer, data, cfg.epochs, progress=args.progress, label=net.label)
        history = trainer.history
        runs[net.label] = {
            "depth": net.depth, "sizes": sizes,
            "init": _init.to_config(net.init),
            "first_init": None if net.first_init is None else _init.to_config(net.first_init),
            "last_init": None if net.last_init is None else _init.to_config(net.last_init),
            "grad_var_at_init": grad_var.tolist(),
            "predicted_grad_var_at_init": None if predicted is None else predicted.tolist(),
            "step_loss": history.step_loss,
            "epochs": history.epochs,
            "final_test_acc": history.epochs[-1]["test_acc"] if history.epochs else None,
            "diverged": diverged,
            "seconds": time.perf_counter() - run_started,
        }
    results = {"config": asdict(cfg), "data": data.name, "backend": args.backend, "seed": args.seed,
               "runs": runs, "seconds": time.perf_counter() - started}
    _write_figures(out, runs, cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "he.json").write_text(json.dumps(results, indent=1) + "\n")
    for label, r in runs.items():
        acc = "diverged" if r["diverged"] else f"test accuracy {r['final_test_acc']:.3f}"
        print(f"{label}: {acc}, first/last layer gradient variance at init "
              f"{r['grad_var_at_init'][0]:.3g} / {r['grad_var_at_init'][-1]:.3g}")
    return results


def _write_figures(out: Path, runs: dict, cfg: Config) -> None:
    window = max(1, cfg.n_train // cfg.batch_size // 10)
    loss = {label: running_mean(r["step_loss"], window) for label, r in runs.items()}
    save_figure(curves(loss, "training step", f"training loss (running mean of {window} steps)",
                       "Deep ReLU MLPs: loss by initialization"), out / "loss.png")
    measured = {label: r["grad_var_at_init"] for label, r in runs.items()}
    predicted = {label: r["predicted_grad_var_at_init"] for label, r in runs.items()
                 if r["predicted_grad_var_at_init"] is not None}
    save_figure(layer_profiles(measured, predicted, ylabel="Var[dC/ds] at initialization", log=True,
                               title="Back-propagated gradient variance per layer (dashed: theory)"),
                out / "gradient_variance.png")
