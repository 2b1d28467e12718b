"""``tinyid run identity``: a 100-layer identity-initialized class-channel MLP (after Kubota et al. 2021).

Trains :class:`tinyid.class_channel.ClassChannelMLP` (hard tanh, :math:`W^l = \\sigma I` at init, one class
channel per class; a reconstruction from the paper's abstract and poster) on Fashion-MNIST when it is
installed (else on the embedded Shapeset-3x2; ``--data`` chooses), and the same depth and width as a plain
MLP from Xavier, He and orthogonal init for contrast. Written to ``--out``:

``layer_accuracy.png``
    the test accuracy of every layer's class scores :math:`z^l` after training;
``identity_distance.png``
    :math:`\\|W^l - \\sigma I\\|_F / \\|\\sigma I\\|_F` per layer after training;
``contribution_maps.png``, ``class_contributions.png``
    what the layers changed, :math:`x^l - x^0`, for a grid of test images at a few depths, and averaged
    per class at the last layer;
``jacobian_spectrum.png``
    singular values of the input-output Jacobian at init and after training, beside the Bernoulli
    prediction of :func:`tinyid.theory.identity_spectrum` (mass :math:`\\alpha` at :math:`\\sigma^L`);
``curves.png``, ``loss.png``
    test accuracy per epoch and training loss per step of the identity net and the three contrasts;
``identity.json``
    every number above.

Full mode: depth 100, plain SGD (lr 0.01, batch 128), 5 epochs for the identity net and 1 for each
contrast, inputs standardized and scaled to mean square ``q0 = 0.1``. ``--quick``: depth 12, 2,000
training images, 2 epochs each.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tinyid import theory
from tinyid.backend import to_numpy
from tinyid.class_channel import ClassChannelMLP, input_scale_for
from tinyid.data import dataset_status, load_dataset
from tinyid.experiments.training import fit_or_diverge, scaled_inputs
from tinyid.jacobian import singular_values
from tinyid.layers import MLP
from tinyid.optim import SGD
from tinyid.plots import curves, running_mean, save_figure
from tinyid.train import Trainer

DESCRIPTION = ("100-layer identity-initialized class-channel MLP (Kubota et al. 2021, reconstructed): per-layer "
               "accuracy, identity distance, contribution maps, Jacobian spectrum; Xavier/He/orthogonal contrasts")

CONTRASTS = {"Xavier": "xavier_normal", "He": "he_normal", "orthogonal": "orthogonal"}


@dataclass
class Config:
    depth: int
    n_train: "int | None"
    n_test: "int | None"
    epochs: int
    contrast_epochs: int
    batch_size: int
    lr: float
    sigma: float
    q0: float
    n_jacobian: int


def config_for(quick: bool, epochs: "int | None" = None) -> Config:
    if quick:
        cfg = Config(depth=12, n_train=2000, n_test=500, epochs=2, contrast_epochs=2, batch_size=64, lr=0.01,
                     sigma=1.0, q0=0.1, n_jacobian=2)
    else:
        cfg = Config(depth=100, n_train=None, n_test=None, epochs=5, contrast_epochs=1, batch_size=128, lr=0.01,
                     sigma=1.0, q0=0.1, n_jacobian=3)
    if epochs is not None:
        cfg.epochs = cfg.contrast_epochs = epochs
    return cfg


def add_arguments(parser) -> None:
    """``--data`` (auto: Fashion-MNIST when installed, else Shapeset), ``--depth``, ``--no-contrasts``, ``--q0``,
    ``--lr``."""
    parser.add_argument("--data", default="auto", help="fashion-mnist, shapeset, or auto (default: Fashion-MNIST "
                                                       "when installed, else the embedded Shapeset-3x2)")
    parser.add_argument("--depth", type=int, default=None, help="number of layers (default 100; --quick: 12)")
    parser.add_argument("--no-contrasts", dest="contrasts", action="store_false",
                        help="skip the Xavier/He/orthogonal networks")
    parser.add_argument("--q0", type=float, default=None, help="mean square of the scaled input (default 0.1)")
    parser.add_argument("--lr", type=float, default=None, help="SGD learning rate (default 0.01)")


def _data_name(requested: str) -> str:
    if requested != "auto":
        return requested
    available = {row.name: row.available for row in dataset_status()}
    return "fashion-mnist" if available.get("fashion-mnist") else "shapeset"


def run(args) -> dict:
    cfg = config_for(args.quick, args.epochs)
    if getattr(args, "depth", None) is not None:
        if args.depth < 1:
            raise ValueError(f"--depth must be a positive integer, got {args.depth}")
        cfg.depth = args.depth
    for name in ("q0", "lr"):
        value = getattr(args, name, None)
        if value is not None:
            if not value > 0:
                raise ValueError(f"--{name} must be positive, got {value}")
            setattr(cfg, name, float(value))
    data_name = _data_name(getattr(args, "data", "auto"))
    data = load_dataset(data_name, n_train=cfg.n_train, n_test=cfg.n_test, seed=args.seed, standardize=True)
    print(f"identity: {data.name}, {len(data.y_train):,} training images, depth {cfg.depth}", flush=True)
    n, c = data.n_features, data.n_classes
    scale = input_scale_for(data.x_train, cfg.q0)
    model = ClassChannelMLP(n, c, cfg.depth, sigma=cfg.sigma, activation="hard_tanh", input_scale=scale,
                            seed=args.seed, backend=args.backend)
    x_jac = data.x_test[:cfg.n_jacobian]
    sv_init = singular_values(model, model.padded_input(x_jac))
    trainer = Trainer(model, SGD(model.params, lr=cfg.lr), seed=args.seed, batch_size=cfg.batch_size)
    started = time.perf_counter()
    diverged = fit_or_diverge(trainer, data, cfg.epochs, progress=args.progress, label="identity")
    seconds = time.perf_counter() - started
    sv_end = singular_values(model, model.padded_input(x_jac))
    layer_acc = model.layer_accuracy(data.x_test, data.y_test)
    distance = model.identity_distance()
    scaled_inputs = scale * np.asarray(x_jac, dtype=np.float64)
    predicted_alpha, predicted_eig = theory.identity_spectrum(cfg.sigma, cfg.q0, cfg.depth, "hard_tanh")
    # the Gaussian theory against the data: at sigma = 1 a feature unit stays linear iff |a x| < 1 (exact, on the
    # images whose Jacobian is measured)
    data_alpha = float(np.mean(np.abs(scaled_inputs) < 1.0)) if cfg.sigma == 1.0 else None
    features = slice(0, n)  # the class channels start at 0 and never saturate: they add C singular values of 1

    identity_run = {
        "history": trainer.history.epochs, "step_loss": trainer.history.step_loss, "diverged": diverged,
        "seconds": seconds, "seconds_per_epoch": seconds / cfg.epochs if cfg.epochs else None,
        "final_test_acc": trainer.history.epochs[-1]["test_acc"] if trainer.history.epochs else None,
    }
    contrasts = {}
    if getattr(args, "contrasts", True):
        for name, init in CONTRASTS.items():
            contrasts[name] = _train_contrast(name, init, data, scale, cfg, args)

    results = {
        "config": asdict(cfg), "data": data.name, "backend": args.backend, "seed": args.seed,
        "input_scale": scale, "n_train": int(len(data.y_train)), "n_test": int(len(data.y_test)),
        "identity": identity_run,
        "layer_accuracy": layer_acc.tolist(),
        "identity_distance": distance.tolist(),
        "mean_identity_distance": float(distance.mean()),
        "jacobian": {
            "singular_values_init": sv_init.tolist(), "singular_values_end": sv_end.tolist(),
            "alpha_init_measured": float(np.mean(sv_init > 1e-6)),
            "alpha_features_init_measured": _feature_alpha(sv_init, c),
            "alpha_predicted_gaussian": predicted_alpha, "alpha_predicted_from_data": data_alpha,
            "eigenvalue_predicted": predicted_eig, "n_class_channels": c,
        },
        "contrasts": contrasts,
    }
    out = Path(args.out)
    _write_figures(out, model, data, results, cfg, features)
    (out / "identity.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"identity: test accuracy {identity_run['final_test_acc']}, last-layer accuracy {layer_acc[-1]:.4f}, "
          f"mean relative identity distance {results['mean_identity_distance']:.4g}, "
          f"{identity_run['seconds_per_epoch'] or 0:.1f} s per epoch")
    for name, r in contrasts.items():
        print(f"{name}: " + ("diverged" if r["diverged"] else f"test accuracy {r['final_test_acc']:.4f}"))
    return results


def _feature_alpha(sv: np.ndarray, n_classes: int) -> float:
    """Fraction of nonzero singular values among the feature units (the C class channels always give 1)."""
    nonzero = (sv > 1e-6).sum(axis=1) - n_classes
    return float(np.mean(nonzero / (sv.shape[1] - n_classes)))


def _train_contrast(name: str, init, data, scale: float, cfg: Config, args) -> dict:
    width = data.n_features + data.n_classes
    sizes = [data.n_features, *[width] * (cfg.depth - 1), data.n_classes]
    model = MLP(sizes, activation="hard_tanh", init=init, seed=args.seed, backend=args.backend)

    scaled = scaled_inputs(data, scale)  # the input the identity net sees after its own scaling
    trainer = Trainer(model, SGD(model.params, lr=cfg.lr), seed=args.seed, batch_size=cfg.batch_size)
    started = time.perf_counter()
    diverged = fit_or_diverge(trainer, scaled, cfg.contrast_epochs, progress=args.progress, label=name)
    return {"init": init, "history": trainer.history.epochs, "step_loss": trainer.history.step_loss,
            "diverged": diverged, "seconds": time.perf_counter() - started,
            "final_test_acc": trainer.history.epochs[-1]["test_acc"] if trainer.history.epochs else None}


def _image_shape(n_features: int) -> tuple:
    side = int(round(math.sqrt(n_features)))
    return (side, side) if side * side == n_features else (1, n_features)


def _write_figures(out: Path, model, data, results: dict, cfg: Config, features: slice) -> None:
    depth = cfg.depth
    layers = np.arange(1, depth + 1)
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(layers, results["layer_accuracy"], marker=".", label="layer l's class scores z^l")
    ax.axhline(1.0 / data.n_classes, color="grey", linestyle=":", label="chance")
    ax.set(xlabel="layer", ylabel="test accuracy", ylim=(0, 1),
           title=f"{data.name}: accuracy of every layer, identity init, depth {depth}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    save_figure(fig, out / "layer_accuracy.png")

    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.subplots()
    ax.plot(layers, results["identity_distance"], marker=".")
    ax.set(xlabel="layer", ylabel="||W - sigma I||_F / ||sigma I||_F", title="Distance from the identity after training")
    ax.grid(alpha=0.3)
    save_figure(fig, out / "identity_distance.png")

    shape = _image_shape(data.n_features)
    x = data.x_test[:6]
    maps = to_numpy(model.contribution_maps(x, cumulative=True))  # (L, 6, N)
    shown = sorted({max(1, depth // 4), max(1, depth // 2), max(1, 3 * depth // 4), depth})
    fig = Figure(figsize=(1.7 * (len(shown) + 1), 1.8 * len(x)), layout="constrained")
    axes = fig.subplots(len(x), len(shown) + 1, squeeze=False)
    limit = float(np.abs(maps[[s - 1 for s in shown]]).max()) or 1.0
    for row, image in enumerate(x):
        axes[row, 0].imshow(np.asarray(image).reshape(shape), cmap="gray")
        axes[row, 0].set_title(f"class {data.classes[data.y_test[row]]}"[:22], fontsize="x-small")
        for col, layer in enumerate(shown, start=1):
            axes[row, col].imshow(maps[layer - 1, row].reshape(shape), cmap="RdBu_r", vmin=-limit, vmax=limit)
            if row == 0:
                axes[row, col].set_title(f"x^{layer} - x^0", fontsize="small")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("What the layers added to the input (red +, blue -)")
    save_figure(fig, out / "contribution_maps.png")

    n_per_class = 50
    fig = Figure(figsize=(1.6 * data.n_classes, 2.2), layout="constrained")
    axes = fig.subplots(1, data.n_classes, squeeze=False)[0]
    per_class = []
    for k in range(data.n_classes):
        xs = data.x_test[data.y_test == k][:n_per_class]
        per_class.append(to_numpy(model.contribution_maps(xs, cumulative=True))[-1].mean(axis=0) if len(xs) else
                         np.zeros(data.n_features))
    limit = float(np.abs(np.asarray(per_class)).max()) or 1.0
    for k, ax in enumerate(axes):
        ax.imshow(per_class[k].reshape(shape), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(str(data.classes[k])[:14], fontsize="x-small")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"x^L - x^0 averaged over {n_per_class} test images per class")
    save_figure(fig, out / "class_contributions.png")

    jac = results["jacobian"]
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    ax = fig.subplots()
    sv_init, sv_end = np.ravel(jac["singular_values_init"]), np.ravel(jac["singular_values_end"])
    top = max(sv_init.max(), sv_end.max(), 1.0) * 1.05
    bins = np.linspace(0.0, top, 60)
    ax.hist(sv_init, bins=bins, alpha=0.6, label="at init (measured)")
    ax.hist(sv_end, bins=bins, alpha=0.6, label="after training (measured)")
    eig = math.sqrt(jac["eigenvalue_predicted"])
    alpha = jac["alpha_predicted_gaussian"]
    ax.axvline(eig, color="black", linestyle="--", label=f"theory: mass {alpha:.2f} at sigma^L = {eig:.3g} (Gaussian x)")
    if jac["alpha_predicted_from_data"] is not None:
        ax.axvline(0.0, color="black", linestyle=":",
                   label=f"|a x| < 1 on the data: alpha = {jac['alpha_predicted_from_data']:.2f}; "
                         f"measured {jac['alpha_features_init_measured']:.2f}")
    ax.set(xlabel="singular value of the input-output Jacobian", ylabel="count", yscale="log",
           title=f"Jacobian spectrum, {len(jac['singular_values_init'])} test images")
    ax.legend(fontsize="x-small")
    save_figure(fig, out / "jacobian_spectrum.png")

    acc_series = {"identity (class channels)": (np.arange(1, len(results["identity"]["history"]) + 1),
                                                [r["test_acc"] for r in results["identity"]["history"]])}
    for name, r in results["contrasts"].items():
        acc_series[f"{name} (plain MLP)"] = (np.arange(1, len(r["history"]) + 1), [e["test_acc"] for e in r["history"]])
    save_figure(curves(acc_series, "epoch", "test accuracy", f"depth {depth}: identity init vs the others",
                       ylim=(0, 1)), out / "curves.png")
    window = 50
    loss_series = {name: running_mean(r["step_loss"], window)
                   for name, r in [("identity (class channels)", results["identity"]),
                                   *((f"{k} (plain MLP)", v) for k, v in results["contrasts"].items())]}
    save_figure(curves(loss_series, "training step", f"training loss (running mean of {window} steps)",
                       f"depth {depth}: training loss"), out / "loss.png")
