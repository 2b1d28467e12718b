"""The training loop: seeded minibatches, epochs, evaluation, progress bar, callbacks, checkpoints.

A :class:`Trainer` owns a model, an optimizer and the random generator that shuffles the
data. Its whole state (parameters, optimizer buffers, generator state, counters, history) goes
into one checkpoint, so training resumed from a checkpoint continues bit for bit as an
uninterrupted run would on the same backend::

    trainer = Trainer(model, SGD(model.params, lr=0.05, momentum=0.9), seed=0)
    history = trainer.fit(x_train, y_train, epochs=5, validation=(x_test, y_test))
    trainer.save("run.npz")
    trainer = Trainer.load("run.npz")        # ... and go on with trainer.fit(...)

:func:`fit` is the one-call shortcut.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from tinyid import optim as _optim
from tinyid.checkpoint import CheckpointError, load_npz, save_npz
from tinyid.layers import MLP
from tinyid.losses import softmax_cross_entropy

__all__ = ["Trainer", "History", "Callback", "EpochLogger", "FreezeTraining", "NonFiniteLossError", "fit", "evaluate",
           "format_epoch"]


class NonFiniteLossError(FloatingPointError):
    """Training produced a non-finite loss.

    Attributes
    ----------
    step : int
        Global step (1-based) whose loss was non-finite.
    epoch : int
        Epoch (1-based) it happened in.
    where : str
        Where non-finite values first appear (a parameter, or a layer's output on that batch).
    checkpoint : str or None
        The last checkpoint written with finite values, kept untouched.
    """

    def __init__(self, step: int, epoch: int, loss: float, where: "str | None", checkpoint: "str | None"):
        self.step, self.epoch, self.loss, self.where, self.checkpoint = step, epoch, loss, where, checkpoint
        message = f"loss became {loss} at step {step} (epoch {epoch})"
        message += f"; non-finite values first appear in {where}" if where else "; every layer output was finite"
        message += (f"; the last finite checkpoint is kept at {checkpoint}" if checkpoint
                    else "; no checkpoint was written (pass checkpoint_path to keep one)")
        message += ". Lower the learning rate or use an initialization that keeps variances near 1."
        super().__init__(message)


@dataclass
class History:
    """What happened during training, JSON-able.

    Attributes
    ----------
    epochs : list of dict
        One record per epoch: ``epoch``, ``step``, ``train_loss``, ``train_acc`` (means over the
        epoch's minibatches), ``test_loss``, ``test_acc`` (None without validation data), ``seconds``.
    step_loss : list of float
        The loss of every minibatch.
    records : dict of str -> list
        Free space for callbacks (probes store their measurements here).
    """

    epochs: list = field(default_factory=list)
    step_loss: list = field(default_factory=list)
    records: dict = field(default_factory=dict)

    def series(self, key: str) -> list:
        """One column of :attr:`epochs`, e.g. ``history.series("test_acc")``."""
        if self.epochs and key not in self.epochs[0]:
            raise KeyError(f"no {key!r} in the epoch records; they hold {sorted(self.epochs[0])}")
        return [record[key] for record in self.epochs]

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "step_loss": self.step_loss, "records": self.records}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(epochs=list(d.get("epochs", [])), step_loss=list(d.get("step_loss", [])),
                   records=dict(d.get("records", {})))


class Callback:
    """Base class for things that watch training. Override any of the hooks; each gets the trainer.

    ``trainer.model``, ``trainer.step``, ``trainer.epoch`` and ``trainer.history`` are what a callback
    reads; it must not change the model.
    """

    def on_train_begin(self, trainer: "Trainer") -> None:
        """Before the first step of a :meth:`Trainer.fit` call."""

    def on_step_end(self, trainer: "Trainer", loss: float) -> None:
        """After every optimizer step; ``loss`` is that minibatch's loss before the step."""

    def on_epoch_end(self, trainer: "Trainer", record: dict) -> None:
        """After every epoch, with the epoch's record (already appended to the history)."""

    def on_train_end(self, trainer: "Trainer") -> None:
        """After the last epoch of a :meth:`Trainer.fit` call."""


def format_epoch(record: dict) -> str:
    """One readable line for an epoch record, e.g. ``epoch 3: train_loss 0.41, train_acc 0.86, ...``."""
    shown = ", ".join(f"{key} {value:.4g}" for key, value in record.items()
                      if key not in ("epoch", "step") and value is not None)
    return f"epoch {record['epoch']}: {shown}"


class EpochLogger(Callback):
    """Print :func:`format_epoch` after every epoch (for logs, where no progress bar is shown)."""

    def __init__(self, stream=None):
        self.stream = stream

    def on_epoch_end(self, trainer: "Trainer", record: dict) -> None:
        print(format_epoch(record), file=self.stream or sys.stdout, flush=True)


class FreezeTraining(Callback):
    r"""Freeze training (Raghu et al. 2017): stop updating the lowest layers once their representation settles.

    After every epoch, each layer's outputs on the fixed examples ``x`` are compared with the same layer's
    outputs one epoch earlier (linear CKA, :func:`tinyid.similarity.linear_cka`, or ``metric="svcca"``).
    Going up from the lowest layer not yet frozen, each layer whose similarity reaches ``threshold`` is
    frozen, until the first that does not: lowest layers first, never the top layer. Frozen layers are
    skipped by the backward pass of every later step (:attr:`tinyid.layers.MLP.frozen_layers`), which is
    the compute this saves.

    Each epoch appends ``{"epoch", "similarity": [per layer], "frozen_layers"}`` to
    ``trainer.history.records["freeze"]``; :attr:`backward_flops_saved` is the fraction of the backward
    pass's matrix-product work (weight gradients :math:`z^\top \delta`, input gradients :math:`\delta W^\top`)
    skipped so far.

    Parameters
    ----------
    x : (n_examples, n_in) array
        Fixed examples the representations are compared on (e.g. 500 test images).
    threshold : float in (0, 1]
    metric : {"linear_cka", "svcca"}
    """

    def __init__(self, x, threshold: float = 0.99, metric: str = "linear_cka"):
        from tinyid.backend import to_numpy

        self.x = np.array(to_numpy(x))
        if self.x.ndim != 2 or self.x.shape[0] < 2:
            raise ValueError(f"x must be a 2-D (n_examples, n_in) array with at least 2 examples, "
                             f"got shape {self.x.shape}")
        threshold = float(threshold)
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
        if metric not in ("linear_cka", "svcca"):
            raise ValueError(f"metric must be 'linear_cka' or 'svcca', got {metric!r}")
        self.threshold, self.metric = threshold, metric
        self._previous = None
        self._flops_saved = 0.0
        self._flops_total = 0.0

    @property
    def backward_flops_saved(self) -> float:
        """Fraction of the backward matrix-product work skipped by freezing, over the steps seen so far."""
        return self._flops_saved / self._flops_total if self._flops_total else 0.0

    def _outputs(self, model):
        from tinyid.backend import to_numpy

        return [to_numpy(y).astype(np.float64) for y in model.layer_outputs(self.x)]

    def on_train_begin(self, trainer) -> None:
        self._previous = self._outputs(trainer.model)
        self._per_layer = [layer.n_in * layer.n_out for layer in trainer.model.layers]

    def on_step_end(self, trainer, loss: float) -> None:
        per_layer, k = self._per_layer, trainer.model.frozen_layers
        # weight gradients of every layer, input gradients of every layer but the first
        self._flops_total += 2.0 * sum(per_layer) - per_layer[0]
        if k:  # frozen layers skip both products (layer 0 has no input gradient); layer k skips its input gradient
            self._flops_saved += 2.0 * sum(per_layer[:k]) - per_layer[0] + per_layer[k]

    def on_epoch_end(self, trainer, record: dict) -> None:
        from tinyid import similarity

        model = trainer.model
        current = self._outputs(model)
        measure = similarity.linear_cka if self.metric == "linear_cka" else (lambda a, b: similarity.svcca(a, b).mean)
        scores = [float(measure(a, b)) for a, b in zip(self._previous, current)]
        k = model.frozen_layers
        while k < len(model.layers) - 1 and scores[k] >= self.threshold:
            k += 1
        model.frozen_layers = k
        trainer.history.records.setdefault("freeze", []).append(
            {"epoch": trainer.epoch, "similarity": scores, "frozen_layers": k,
             "backward_flops_saved": self.backward_flops_saved})
        self._previous = current


def _batches(n: int, batch_size: int) -> Iterable[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def evaluate(model: MLP, x, y, batch_size: int = 1000) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)``, computed in batches.

    Parameters
    ----------
    x : (n, n_in) array
    y : (n,) integer labels

    Returns
    -------
    loss, accuracy : float, float
    """
    x, y = _check_xy(x, y, model, "evaluation data")
    total_loss, correct = 0.0, 0
    for batch in _batches(len(y), batch_size):
        logits = model.forward(x[batch])
        yb = model.backend.asarray(y[batch])
        loss, _ = softmax_cross_entropy(logits, yb)
        total_loss += loss * len(yb)
        correct += int((logits.argmax(axis=1) == yb).sum())
    return total_loss / len(y), correct / len(y)


def _check_xy(x, y, model: MLP, what: str):
    x, y = np.asarray(x) if isinstance(x, (list, tuple)) else x, np.asarray(y) if isinstance(y, (list, tuple)) else y
    if getattr(x, "ndim", None) != 2 or x.shape[1] != model.sizes[0]:
        raise ValueError(f"{what}: x must have shape (n, {model.sizes[0]}), got {tuple(getattr(x, 'shape', ()))}")
    if getattr(y, "ndim", None) != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{what}: y must be a 1-D array of {x.shape[0]} labels, got shape "
                         f"{tuple(getattr(y, 'shape', ()))}")
    if x.shape[0] == 0:
        raise ValueError(f"{what}: no examples")
    if y.dtype.kind not in "iu":
        raise ValueError(f"{what}: labels must be integers, got dtype {y.dtype}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= model.sizes[-1]:
        raise ValueError(f"{what}: labels must lie in [0, {model.sizes[-1] - 1}] for a model with "
                         f"{model.sizes[-1]} outputs, got [{lo}, {hi}]")
    return x, y


class Trainer:
    """Trains a model with an optimizer on seeded minibatches.

    Parameters
    ----------
    model : MLP
    optimizer : Optimizer
        Built on ``model.params`` (after any ``model.to``).
    seed : int
        Seeds the generator that shuffles the training set each epoch.
    batch_size : int

    Attributes
    ----------
    step, epoch : int
        Optimizer steps and epochs completed so far.
    history : History
    rng : numpy.random.Generator
    last_checkpoint : str or None
        The file the latest :meth:`save` wrote.
    planned_steps : (int, int) or None
        ``(first, last)`` global step of the :meth:`fit` call in progress (``first`` is the step count at its
        start), so callbacks can act at fractions of the run; None outside :meth:`fit`.
    """

    def __init__(self, model: MLP, optimizer: "_optim.Optimizer", seed: int = 0, batch_size: int = 64):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        model.check_optimizer(optimizer)
        self.model = model
        self.optimizer = optimizer
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.step = 0
        self.epoch = 0
        self.history = History()
        self.last_checkpoint: "str | None" = None
        self.planned_steps: "tuple[int, int] | None" = None

    def fit(self, x, y, epochs: int = 1, *, validation=None, callbacks: Sequence[Callback] = (),
            progress: "bool | None" = None, checkpoint_path=None) -> History:
        """Train for ``epochs`` more epochs.

        Parameters
        ----------
        x : (n, n_in) array, y : (n,) integer labels
            Training set (NumPy arrays are fine for any backend: each minibatch is moved).
        epochs : int
            Epochs to run in this call (the counters continue across calls and resumes).
        validation : (x_test, y_test), optional
            Evaluated at the end of every epoch.
        callbacks : sequence of Callback
        progress : bool, optional
            Show a tqdm bar with loss and accuracy; by default only when stderr is a terminal.
        checkpoint_path : path-like, optional
            Write the trainer checkpoint there after every epoch (atomically).

        Returns
        -------
        History
            ``self.history``.

        Raises
        ------
        NonFiniteLossError
            When a minibatch loss is NaN or infinite; names the step and the first layer with
            non-finite values. The checkpoint at ``checkpoint_path`` keeps the last finite state.
        """
        x, y = _check_xy(x, y, self.model, "training data")
        if validation is not None:
            try:
                x_val, y_val = validation
            except (TypeError, ValueError):
                raise ValueError("validation must be a pair (x_test, y_test)") from None
            x_val, y_val = _check_xy(x_val, y_val, self.model, "validation data")
        if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be tinyid.train.Callback instances, got {type(cb).__name__}")
        if progress is None:
            progress = sys.stderr.isatty()
        if progress:  # tqdm.auto picks the notebook widget, and warns in a notebook without ipywidgets
            from tqdm.auto import tqdm
        else:  # a disabled plain bar: no widget lookup, no warning
            from tqdm import tqdm
        backend = self.model.backend
        n = x.shape[0]
        n_batches = math.ceil(n / self.batch_size)
        self.planned_steps = (self.step, self.step + int(epochs) * n_batches)
        for cb in callbacks:
            cb.on_train_begin(self)
        for _ in range(int(epochs)):
            epoch = self.epoch + 1
            started = time.perf_counter()
            order = self.rng.permutation(n)
            loss_sum, correct, seen = 0.0, 0, 0
            bar = tqdm(total=n_batches, desc=f"epoch {epoch}", disable=not progress, leave=False,
                       unit="batch", mininterval=0.5)
            try:
                for batch in _batches(n, self.batch_size):
                    idx = order[batch]
                    xb = backend.asarray(x[idx], self.model.dtype)
                    yb = backend.asarray(y[idx])
                    loss, logits = self.model.train_step(xb, yb, self.optimizer)
                    if not math.isfinite(loss):
                        raise NonFiniteLossError(self.step + 1, epoch, loss, self.model.first_nonfinite(xb),
                                                 self.last_checkpoint)
                    self.step += 1
                    m = len(idx)
                    loss_sum += loss * m
                    correct += int((logits.argmax(axis=1) == yb).sum())
                    seen += m
                    self.history.step_loss.append(loss)
                    for cb in callbacks:
                        cb.on_step_end(self, loss)
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
            finally:
                bar.close()
            self.epoch = epoch
            record = {"epoch": epoch, "step": self.step, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                      "test_loss": None, "test_acc": None}
            if validation is not None:
                record["test_loss"], record["test_acc"] = evaluate(self.model, x_val, y_val)
            record["seconds"] = time.perf_counter() - started
            self.history.epochs.append(record)
            if progress:
                tqdm.write(format_epoch(record), file=sys.stderr)
            for cb in callbacks:
                cb.on_epoch_end(self, record)
            if checkpoint_path is not None:
                self.save(checkpoint_path)
        for cb in callbacks:
            cb.on_train_end(self)
        self.planned_steps = None
        return self.history

    # ------------------------------------------------------------------ checkpoints
    def save(self, path) -> Path:
        """Write model, optimizer state, shuffle-generator state, counters and history to ``path`` (.npz)."""
        optim_state = self.optimizer.state_dict()
        arrays = self.model.param_arrays()
        for name, buffers in optim_state["buffers"].items():
            for i, buf in enumerate(buffers):
                arrays[f"optim/{name}/{i}"] = buf
        header = {
            "kind": "trainer",
            "model": self.model.config(),
            "optimizer": {"name": optim_state["name"], "hyperparameters": optim_state["hyperparameters"],
                          "step_count": optim_state["step_count"], "buffers": sorted(optim_state["buffers"])},
            "trainer": {"seed": self.seed, "batch_size": self.batch_size, "step": self.step, "epoch": self.epoch,
                        "rng_state": self.rng.bit_generator.state},
            "history": self.history.to_dict(),
        }
        written = save_npz(path, header, arrays)
        self.last_checkpoint = str(written)
        return written

    @classmethod
    def load(cls, path, backend=None) -> "Trainer":
        """Rebuild a trainer saved with :meth:`save`, on ``backend`` (default: the current default)."""
        header, arrays = load_npz(path, kind="trainer")
        source = repr(str(path))
        model = MLP.from_checkpoint(header, arrays, backend, source=source)
        try:
            opt = header["optimizer"]
            optimizer = _optim.get(opt["name"], model.params, **opt["hyperparameters"])
            n_params = len(optimizer.params)
            buffers = {name: [arrays[f"optim/{name}/{i}"] for i in range(n_params)] for name in opt["buffers"]}
            optimizer.load_state_dict({"name": opt["name"], "step_count": opt["step_count"], "buffers": buffers})
            state = header["trainer"]
            trainer = cls(model, optimizer, seed=state["seed"], batch_size=state["batch_size"])
            trainer.rng.bit_generator.state = state["rng_state"]
            trainer.step, trainer.epoch = int(state["step"]), int(state["epoch"])
            trainer.history = History.from_dict(header.get("history", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source} has an unusable trainer state: {exc!r}") from None
        return trainer


def fit(model: MLP, x, y, *, epochs: int = 1, batch_size: int = 64, optimizer="sgd", lr: float = 0.01,
        validation=None, seed: int = 0, callbacks: Sequence[Callback] = (), progress: "bool | None" = None,
        checkpoint_path=None, **optimizer_kwargs) -> History:
    """Train ``model`` in one call: builds the optimizer and a :class:`Trainer`, runs :meth:`Trainer.fit`.

    Parameters
    ----------
    optimizer : {"sgd", "adam"} or Optimizer
        A name (built with ``lr`` and ``optimizer_kwargs``, e.g. ``momentum=0.9``) or a ready optimizer.
    Other parameters as in :class:`Trainer` and :meth:`Trainer.fit`.
    """
    if isinstance(optimizer, str):
        optimizer = _optim.get(optimizer, model.params, lr=lr, **optimizer_kwargs)
    elif optimizer_kwargs:
        raise ValueError("optimizer keyword arguments only apply when optimizer is given by name")
    trainer = Trainer(model, optimizer, seed=seed, batch_size=batch_size)
    return trainer.fit(x, y, epochs, validation=validation, callbacks=callbacks, progress=progress,
                       checkpoint_path=checkpoint_path)
