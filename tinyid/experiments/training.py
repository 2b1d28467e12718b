"""One supervised training run from a plain description: what ``tinyid train`` and experiments share."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from tinyid import optim
from tinyid.data import load_dataset
from tinyid.layers import MLP
from tinyid.plots import learning_curves, save_figure
from tinyid.train import EpochLogger, NonFiniteLossError, Trainer, format_epoch

__all__ = ["RunSpec", "run_training", "fit_or_diverge", "scaled_inputs"]


@dataclass
class RunSpec:
    """Everything that defines a training run (all JSON-able; written into ``metrics.json``).

    ``sizes`` is ``[n_features, hidden..., n_classes]``; ``activation`` and ``init`` take the specs
    of :func:`tinyid.activations.get` and :func:`tinyid.init.get`; ``optimizer_kwargs`` go to the
    optimizer (e.g. ``{"momentum": 0.9}``).
    """

    sizes: list
    data: str = "shapeset"
    activation: Any = "tanh"
    init: Any = "xavier_uniform"
    epochs: int = 3
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    optimizer_kwargs: dict = field(default_factory=dict)
    seed: int = 0
    n_train: "int | None" = None
    n_test: "int | None" = None
    standardize: bool = False
    backend: str = "numpy"
    dtype: str = "float32"
    root: "str | None" = None
    download: bool = False


def run_training(spec: RunSpec, out, *, progress: "bool | None" = None, resume: bool = False) -> dict:
    """Load the data, build (or resume) the model, train, and write the results to ``out``.

    Writes ``out/metrics.json`` (the spec, the history, final test accuracy, timings),
    ``out/checkpoint.npz`` (the trainer, after every epoch) and ``out/learning_curves.png``.
    Progress: a bar on a terminal (or when ``progress=True``), else one line per epoch on stdout.
    With ``resume=True`` the trainer continues from ``out/checkpoint.npz`` for ``spec.epochs``
    more epochs.

    Returns
    -------
    dict
        What ``metrics.json`` holds.
    """
    out = Path(out)
    checkpoint = out / "checkpoint.npz"
    data = load_dataset(spec.data, n_train=spec.n_train, n_test=spec.n_test, seed=spec.seed, root=spec.root,
                        download=spec.download, standardize=spec.standardize)
    sizes = [int(n) for n in spec.sizes]
    if sizes[0] != data.n_features or sizes[-1] != data.n_classes:
        raise ValueError(f"{data.name} has {data.n_features} features and {data.n_classes} classes, so sizes must "
                         f"start with {data.n_features} and end with {data.n_classes}, got {sizes}")
    if resume:
        trainer = Trainer.load(checkpoint, backend=spec.backend)
        if trainer.model.sizes != sizes:
            raise ValueError(f"{checkpoint} holds a model with sizes {trainer.model.sizes}, not {sizes}")
    else:
        model = MLP(sizes, activation=spec.activation, init=spec.init, seed=spec.seed, backend=spec.backend,
                    dtype=spec.dtype)
        optimizer = optim.get(spec.optimizer, model.params, lr=spec.lr, **spec.optimizer_kwargs)
        trainer = Trainer(model, optimizer, seed=spec.seed, batch_size=spec.batch_size)
    if progress is None:
        progress = sys.stderr.isatty()
    started = time.perf_counter()
    history = trainer.fit(data.x_train, data.y_train, spec.epochs, validation=(data.x_test, data.y_test),
                          progress=progress, checkpoint_path=checkpoint,
                          callbacks=[] if progress else [EpochLogger()])
    seconds = time.perf_counter() - started
    metrics = {
        "spec": asdict(spec),
        "model": trainer.model.config(),
        "n_params": trainer.model.n_params,
        "n_train": int(len(data.y_train)),
        "n_test": int(len(data.y_test)),
        "final_test_acc": history.epochs[-1]["test_acc"] if history.epochs else None,
        "final_test_loss": history.epochs[-1]["test_loss"] if history.epochs else None,
        "train_seconds": seconds,
        "seconds_per_epoch": seconds / spec.epochs if spec.epochs else None,
        "history": {"epochs": history.epochs},
        "checkpoint": checkpoint.name,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if history.epochs:
        title = f"{data.name}: {trainer.model.activation.name} MLP {sizes}"
        save_figure(learning_curves(history, title), out / "learning_curves.png")
    return metrics


def scaled_inputs(data, factor: float) -> SimpleNamespace:
    """``data`` with its inputs multiplied by ``factor`` (float32), labels shared: what ``fit_or_diverge`` takes.

    Lets a plain MLP see the same input as a :class:`~tinyid.class_channel.ClassChannelMLP` with
    ``input_scale=factor``.
    """
    factor = np.float32(factor)
    return SimpleNamespace(x_train=data.x_train * factor, y_train=data.y_train,
                           x_test=data.x_test * factor, y_test=data.y_test)


class _LabelledEpochLogger(EpochLogger):
    def __init__(self, label: str):
        super().__init__()
        self.label = label

    def on_epoch_end(self, trainer: Trainer, record: dict) -> None:
        print(f"{self.label}: {format_epoch(record)}" if self.label else format_epoch(record), flush=True)


def fit_or_diverge(trainer: Trainer, data, epochs: int, *, callbacks=(), progress: "bool | None" = None,
                   label: str = "") -> "str | None":
    """Train ``trainer`` on ``data`` for ``epochs``; return None, or the reason when the loss diverged.

    Experiments compare initializations, and some of them are *meant* to fail: a run whose loss
    becomes non-finite is reported (the history up to that step is kept), not raised.
    Progress: a bar on a terminal (or ``progress=True``), else one line per epoch prefixed by ``label``.
    """
    if progress is None:
        progress = sys.stderr.isatty()
    logger = [] if progress else [_LabelledEpochLogger(label)]
    try:
        trainer.fit(data.x_train, data.y_train, epochs, validation=(data.x_test, data.y_test),
                    callbacks=[*callbacks, *logger], progress=progress)
    except NonFiniteLossError as exc:
        print(f"{label}: {exc}" if label else str(exc), flush=True)
        return str(exc)
    return None
