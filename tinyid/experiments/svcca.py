"""``tinyid run svcca``: comparing representations across layers, networks and training time (Raghu et al. 2017).

Three comparisons on the embedded Shapeset-3x2 (``--data fashion-mnist`` when installed), each layer's
activations on 500 fixed test images (``--quick``: 200), recorded by :class:`tinyid.probes.ActivationRecorder`:

(a) ``training.png``: one tanh MLP (6 hidden layers of 256) at 0, 35, 75 and 100% of training, every layer
    against every layer of the final network (linear CKA and SVCCA heatmaps). The diagonal shows how far
    each layer still is from where it ends; the seed post's observation is that lower layers get there first.
(b) ``two_networks.png``: the same architecture trained from two seeds, layer by layer: the raw neurons
    (each neuron's best absolute correlation with any single neuron of the other net,
    :func:`tinyid.similarity.neuron_correlations`) against SVCCA's aligned directions and linear CKA.
(c) ``identity_vs_xavier.png``: a depth-20 identity-initialized class-channel net
    (:class:`tinyid.class_channel.ClassChannelMLP`) against a plain hard-tanh MLP with Xavier init of the same
    depth and width: after training, the linear CKA of every layer with the network's input and with the
    same layer at initialization.

(d) freeze training (:class:`tinyid.train.FreezeTraining`): network (a) again, its lowest layers frozen once
    their linear CKA with the previous epoch reaches 0.95; ``svcca.json`` reports the share of the backward
    pass's matrix products saved and the test accuracy against the unfrozen run.

Writes those figures and ``svcca.json``.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tinyid.class_channel import ClassChannelMLP, input_scale_for
from tinyid.data import load_dataset
from tinyid.experiments.training import fit_or_diverge, scaled_inputs
from tinyid.layers import MLP
from tinyid.optim import SGD
from tinyid.plots import save_figure
from tinyid.probes import ActivationRecorder
from tinyid.similarity import linear_cka, neuron_correlations, similarity_matrix, svcca
from tinyid.train import FreezeTraining, Trainer

DESCRIPTION = ("SVCCA and CKA (Raghu et al. 2017): layers against the final network during training, two seeds "
               "layer by layer (raw neurons vs SVCCA), identity vs Xavier init: distance from input and init")

FRACTIONS = (0.0, 0.35, 0.75, 1.0)


@dataclass
class Config:
    hidden: list
    n_train: int
    n_test: int
    n_probe: int
    epochs: int
    batch_size: int
    lr: float
    deep_depth: int
    freeze_threshold: float = 0.95


def config_for(quick: bool, epochs: "int | None" = None) -> Config:
    if quick:
        cfg = Config(hidden=[64] * 4, n_train=1500, n_test=300, n_probe=200, epochs=2, batch_size=32, lr=0.02,
                     deep_depth=6)
    else:
        cfg = Config(hidden=[256] * 6, n_train=20_000, n_test=1000, n_probe=500, epochs=5, batch_size=32, lr=0.02,
                     deep_depth=20)
    if epochs is not None:
        cfg.epochs = epochs
    return cfg


def add_arguments(parser) -> None:
    """``--data``: shapeset (default) or fashion-mnist."""
    parser.add_argument("--data", default="shapeset", help="shapeset (embedded, default) or fashion-mnist")


def _train_mlp(data, sizes, cfg: Config, seed: int, args, x_probe, label: str, **model_kwargs):
    model = MLP(sizes, seed=seed, backend=args.backend, **model_kwargs)
    recorder = ActivationRecorder(x_probe, fractions=FRACTIONS)
    trainer = Trainer(model, SGD(model.params, lr=cfg.lr, momentum=0.9), seed=seed, batch_size=cfg.batch_size)
    diverged = fit_or_diverge(trainer, data, cfg.epochs, callbacks=[recorder], progress=args.progress, label=label)
    return trainer, recorder, diverged


def run(args) -> dict:
    cfg = config_for(args.quick, args.epochs)
    data = load_dataset(getattr(args, "data", "shapeset"), n_train=cfg.n_train, n_test=cfg.n_test, seed=args.seed,
                        standardize=True)
    x_probe = data.x_test[:cfg.n_probe]
    sizes = [data.n_features, *cfg.hidden, data.n_classes]
    started = time.perf_counter()

    # (a) one network over training
    trainer_a, rec_a, diverged_a = _train_mlp(data, sizes, cfg, args.seed, args, x_probe, "network A",
                                              activation="tanh", init="xavier_uniform")
    hidden = len(cfg.hidden)
    final = rec_a.activations[1.0][:hidden]
    over_training = {}
    for f in FRACTIONS:
        acts = rec_a.activations[f][:hidden]
        over_training[f] = {"linear_cka": similarity_matrix(acts, final, metric="linear_cka"),
                            "svcca": similarity_matrix(acts, final, metric="svcca")}
    diagonal = {metric: {str(f): np.diag(over_training[f][metric]).tolist() for f in FRACTIONS}
                for metric in ("linear_cka", "svcca")}

    # (d) freeze training: the same network and seed, lowest layers frozen once they stop moving
    model_f = MLP(sizes, seed=args.seed, backend=args.backend, activation="tanh", init="xavier_uniform")
    freeze = FreezeTraining(x_probe, threshold=cfg.freeze_threshold)
    trainer_f = Trainer(model_f, SGD(model_f.params, lr=cfg.lr, momentum=0.9), seed=args.seed,
                        batch_size=cfg.batch_size)
    diverged_f = fit_or_diverge(trainer_f, data, cfg.epochs, callbacks=[freeze], progress=args.progress,
                                label="network A, freeze training")
    freezing = {
        "threshold": cfg.freeze_threshold,
        "per_epoch": trainer_f.history.records.get("freeze", []),
        "backward_flops_saved": freeze.backward_flops_saved,
        "test_acc_frozen": trainer_f.history.epochs[-1]["test_acc"] if trainer_f.history.epochs else None,
        "test_acc_normal": trainer_a.history.epochs[-1]["test_acc"] if trainer_a.history.epochs else None,
        "diverged": diverged_f,
    }

    # (b) two seeds, layer by layer
    trainer_b, rec_b, diverged_b = _train_mlp(data, sizes, cfg, args.seed + 1, args, x_probe, "network B",
                                              activation="tanh", init="xavier_uniform")
    final_b = rec_b.activations[1.0][:hidden]
    two = {"raw_neurons": [], "svcca": [], "linear_cka": []}
    for a, b in zip(final, final_b):
        two["raw_neurons"].append(float(neuron_correlations(a, b).mean()))
        two["svcca"].append(svcca(a, b).mean)
        two["linear_cka"].append(linear_cka(a, b))

    # (c) identity (class channels) vs Xavier, same depth and width
    n, c = data.n_features, data.n_classes
    scale = input_scale_for(data.x_train, 0.1)
    identity = ClassChannelMLP(n, c, cfg.deep_depth, sigma=1.0, input_scale=scale, seed=args.seed,
                               backend=args.backend)
    xavier = MLP([n, *[n + c] * (cfg.deep_depth - 1), c], activation="hard_tanh", init="xavier_normal",
                 seed=args.seed, backend=args.backend)
    deep = {}
    for name, model, inputs in (("identity", identity, data), ("Xavier", xavier, None)):
        if inputs is None:  # the plain MLP sees the same scaled input as the class-channel net
            inputs = scaled_inputs(data, scale)
        probe = inputs.x_test[:cfg.n_probe]
        recorder = ActivationRecorder(probe, fractions=(0.0, 1.0))
        trainer = Trainer(model, SGD(model.params, lr=0.01), seed=args.seed, batch_size=128)
        diverged = fit_or_diverge(trainer, inputs, cfg.epochs, callbacks=[recorder], progress=args.progress,
                                  label=name)
        x_in = np.asarray(data.x_test[:cfg.n_probe], dtype=np.float64)
        layers = range(cfg.deep_depth - 1)  # hidden layers (the plain MLP's last layer is its logits)
        deep[name] = {
            "to_input": [linear_cka(recorder.activations[1.0][l], x_in) for l in layers],
            "to_init": [linear_cka(recorder.activations[1.0][l], recorder.activations[0.0][l]) for l in layers],
            "final_test_acc": trainer.history.epochs[-1]["test_acc"] if trainer.history.epochs else None,
            "diverged": diverged,
        }

    results = {
        "config": asdict(cfg), "data": data.name, "backend": args.backend, "seed": args.seed,
        "fractions": list(FRACTIONS), "recorded_steps": {str(f): s for f, s in rec_a.steps.items()},
        "over_training": {str(f): {m: v.tolist() for m, v in d.items()} for f, d in over_training.items()},
        "over_training_diagonal": diagonal,
        "two_networks": two,
        "identity_vs_xavier": deep,
        "freeze_training": freezing,
        "test_acc": {"A": trainer_a.history.epochs[-1]["test_acc"] if trainer_a.history.epochs else None,
                     "B": trainer_b.history.epochs[-1]["test_acc"] if trainer_b.history.epochs else None},
        "diverged": {"A": diverged_a, "B": diverged_b},
        "seconds": time.perf_counter() - started,
    }
    out = Path(args.out)
    save_figure(_training_figure(over_training, rec_a.steps), out / "training.png")
    save_figure(_two_networks_figure(two), out / "two_networks.png")
    save_figure(_deep_figure(deep), out / "identity_vs_xavier.png")
    (out / "svcca.json").write_text(json.dumps(results, indent=1) + "\n")
    at35 = diagonal["linear_cka"]["0.35"]
    print("linear CKA of each hidden layer at 35% of training with its final state: "
          + ", ".join(f"{v:.3f}" for v in at35))
    print(f"freeze training (threshold {cfg.freeze_threshold}): {100 * freeze.backward_flops_saved:.1f}% of the "
          f"backward products saved, test accuracy {freezing['test_acc_frozen']} vs {freezing['test_acc_normal']}")
    return results


def _training_figure(over_training: dict, steps: dict) -> Figure:
    fig = Figure(figsize=(3.2 * len(FRACTIONS), 6.2), layout="constrained")
    axes = fig.subplots(2, len(FRACTIONS), squeeze=False)
    for row, metric in enumerate(("linear_cka", "svcca")):
        for col, f in enumerate(FRACTIONS):
            ax = axes[row, col]
            m = over_training[f][metric]
            image = ax.imshow(m, origin="lower", vmin=0, vmax=1, cmap="magma")
            ticks = np.arange(m.shape[0])
            ax.set_xticks(ticks, [str(t + 1) for t in ticks])
            ax.set_yticks(ticks, [str(t + 1) for t in ticks])
            ax.set(title=f"{int(round(100 * f))}% (step {steps[f]}), {metric}", xlabel="final network: layer",
                   ylabel="layer at this time")
        fig.colorbar(image, ax=list(axes[row]), shrink=0.8)
    fig.suptitle("Every layer during training against every layer of the final network")
    return fig


def _two_networks_figure(two: dict) -> Figure:
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.subplots()
    layers = np.arange(1, len(two["svcca"]) + 1)
    labels = {"raw_neurons": "raw neurons: mean best |corr|", "svcca": "SVCCA: mean canonical corr",
              "linear_cka": "linear CKA"}
    for key, label in labels.items():
        ax.plot(layers, two[key], marker="o", label=label)
    ax.set(xlabel="hidden layer", ylabel="similarity of the two networks", ylim=(0, 1.02),
           title="Two seeds, same architecture, layer by layer")
    ax.set_xticks(layers)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def _deep_figure(deep: dict) -> Figure:
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for key, ax, title in (("to_input", axes[0], "linear CKA with the input"),
                           ("to_init", axes[1], "linear CKA with the same layer at init")):
        for name, r in deep.items():
            ax.plot(np.arange(1, len(r[key]) + 1), r[key], marker=".", label=name)
        ax.set(xlabel="layer", ylabel="linear CKA", ylim=(0, 1.02), title=title)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("After training: how far each layer moved from its input and from its initialization")
    return fig
