"""The rows of the step benchmark and the round-robin timer that measures them side by side.

A *row* is anything with a ``label`` and a ``step()`` method that runs one training step (or, for
the lower bound, just the matrix products of one) and returns the loss, or None. Rows:

- :class:`TinyidRow`: ``tinyid.MLP`` on one backend (``"numpy"``, ``"numba"`` or ``"cupy"``) with
  ``tinyid.SGD``;
- :class:`TorchRow`: the same network in PyTorch eager (``nn.Linear`` stack, ``F.cross_entropy``,
  ``loss.backward()``, ``torch.optim.SGD``), its weights copied from a tinyid model;
- :class:`BoundRow`: the three matrix products per layer that one step cannot avoid, timed with the
  same BLAS (``xp.matmul`` into preallocated ``out=`` arrays).

Nothing here re-implements tinyid: the models are built with ``tinyid.MLP`` and trained with its
public ``train_step`` and ``SGD``.
"""
from __future__ import annotations

import gc
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

import tinyid

#: Learning rate of every row (plain SGD, momentum 0). Small, so that thousands of steps on one fixed
#: batch stay far from overflow (non-finite numbers would change the speed of the arithmetic); the
#: table's last column shows each row's loss at the end.
LEARNING_RATE = 0.01

#: Seconds of untimed steps (on the fastest row) right before each timed step (see :func:`settle_steps`).
SETTLE_SECONDS = 0.2

#: PyTorch CPU intra-op threads (the issue compares against PyTorch on 2 threads).
TORCH_CPU_THREADS = 2

#: Relative difference allowed between a row's first-step loss and the NumPy reference's (float32).
LOSS_RTOL = 1e-4


@dataclass(frozen=True)
class Config:
    """One network of the benchmark: ``sizes = [n_in, hidden..., n_classes]``, activation, init, batch."""

    key: str
    sizes: tuple
    activation: str
    init: object
    batch: int

    @property
    def n_hidden(self) -> int:
        return len(self.sizes) - 2

    def describe(self) -> str:
        hidden = self.sizes[1]
        return (f"({self.key}) {self.n_hidden} hidden x {hidden} {self.activation}, init {self.init!r}, "
                f"batch {self.batch}, {self.sizes[0]} inputs, {self.sizes[-1]} classes")


#: The three configurations of issue 3. (b) uses 794 inputs, the hidden width, so that every weight
#: matrix but the logits layer is square and the identity init is a true identity.
CONFIGS = {
    "a": Config("a", (784,) + (1024,) * 8 + (10,), "relu", "he_normal", 256),
    "b": Config("b", (794,) + (794,) * 100 + (10,), "hard_tanh", ("identity", {"sigma": 1.0}), 128),
    "c": Config("c", (784,) + (256,) * 4 + (10,), "tanh", "xavier_uniform", 64),
}


def make_batch(config: Config, seed: int = 0):
    """A fixed float32 input batch (standard normal) and integer labels, on the host."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((config.batch, config.sizes[0]), dtype=np.float32)
    y = rng.integers(0, config.sizes[-1], config.batch)
    return x, y


class RowUnavailable(Exception):
    """A row that cannot run here (library or device missing); the message says why."""


# ---------------------------------------------------------------------------------------------- rows
class TinyidRow:
    """One training step of ``tinyid.MLP`` on ``backend``: ``model.train_step`` (what ``Trainer.fit`` runs)."""

    def __init__(self, config: Config, backend: str, x, y, seed: int = 0):
        self.label = f"tinyid {backend}"
        self.model = tinyid.MLP(config.sizes, config.activation, config.init, seed=seed, backend=backend,
                                dtype="float32")
        self.optimizer = tinyid.SGD(self.model.params, lr=LEARNING_RATE)
        self.x = self.model.backend.asarray(x, "float32")  # moved once, outside the timed step
        self.y = self.model.backend.asarray(y)

    def step(self) -> float:
        return self.model.train_step(self.x, self.y, self.optimizer)[0]


_TORCH_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "hard_tanh": "Hardtanh"}


def import_torch():
    """``torch``, or :class:`RowUnavailable` when it is not installed (it is not a tinyid dependency)."""
    try:
        import torch
    except ImportError as exc:
        raise RowUnavailable(f"PyTorch not installed ({exc})") from None
    return torch


class TorchRow:
    """The same network in PyTorch eager mode, starting from the same weights as the tinyid rows.

    ``params`` is a tinyid model's ``[[W, b], ...]`` on the host, ``W`` of shape (n_in, n_out);
    ``nn.Linear`` keeps the transpose.
    """

    def __init__(self, config: Config, params, x, y, device: str = "cpu"):
        torch = import_torch()
        from torch import nn
        from torch.nn import functional

        name = tinyid.activations.get(config.activation).name
        if name not in _TORCH_ACTIVATIONS:
            raise RowUnavailable(f"no PyTorch module mapped for activation {name!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise RowUnavailable("PyTorch sees no CUDA device")
        if device == "cpu":
            torch.set_num_threads(TORCH_CPU_THREADS)
        self.label = "PyTorch " + ("CPU" if device == "cpu" else "CUDA") + " eager"
        modules = []
        for i, (W, b) in enumerate(params):
            linear = nn.Linear(*W.shape)
            with torch.no_grad():
                linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                linear.bias.copy_(torch.from_numpy(np.asarray(b)))
            modules.append(linear)
            if i < len(params) - 1:
                modules.append(getattr(nn, _TORCH_ACTIVATIONS[name])())
        self.model = nn.Sequential(*modules).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE, momentum=0.0)
        self.cross_entropy = functional.cross_entropy
        self.x = torch.from_numpy(x).to(device)
        self.y = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)

    def step(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        return loss  # a tensor; float() it outside the timed region


class BoundRow:
    """The matrix products one step needs, nothing else: the lower bound of a step with this BLAS.

    Per layer ``l`` with input ``z`` (B, n_in), weights ``W`` (n_in, n_out) and ``ds`` (B, n_out):
    forward ``z @ W``; backward ``z.T @ ds`` (weight gradient) and ``ds @ W.T`` (input gradient, not
    for the first layer). Each product writes into a preallocated ``out=`` array, so the row times
    BLAS alone. Forward runs first to last, backward last to first, like a real step.
    """

    def __init__(self, config: Config, xp=np, seed: int = 1):
        self.label = "lower bound"
        self.xp = xp
        rng = np.random.default_rng(seed)

        def normal(*shape):  # values do not matter to GEMM speed; made on the host, moved once
            return xp.asarray(rng.standard_normal(shape, dtype=np.float32))

        self.layers = []
        for i, (n_in, n_out) in enumerate(zip(config.sizes[:-1], config.sizes[1:])):
            self.layers.append({
                "z": normal(config.batch, n_in), "W": normal(n_in, n_out), "ds": normal(config.batch, n_out),
                "s": xp.empty((config.batch, n_out), np.float32), "dW": xp.empty((n_in, n_out), np.float32),
                "dz": xp.empty((config.batch, n_in), np.float32) if i > 0 else None,
            })

    def step(self) -> None:
        matmul = self.xp.matmul
        for layer in self.layers:
            matmul(layer["z"], layer["W"], out=layer["s"])
        for layer in reversed(self.layers):
            matmul(layer["z"].T, layer["ds"], out=layer["dW"])
            if layer["dz"] is not None:
                matmul(layer["ds"], layer["W"].T, out=layer["dz"])
        return None


def build_row(factory: Callable[[], object]):
    """``factory()``, or the reason it failed as a string (a missing backend is a table entry, not a crash)."""
    try:
        return factory()
    except Exception as exc:  # noqa: BLE001 - any failure to build a row is reported, never fatal
        message = " ".join(str(exc).split())
        if len(message) > 110:
            message = message[:107] + "..."
        return f"{type(exc).__name__}: {message}"


# ---------------------------------------------------------------------------------------------- checks
def reference_loss(config: Config, x, y, seed: int = 0) -> float:
    """First-step loss of the NumPy reference (a throwaway ``tinyid.MLP(backend="numpy")``)."""
    model = tinyid.MLP(config.sizes, config.activation, config.init, seed=seed, backend="numpy", dtype="float32")
    return float(model.loss_and_grads(x, y)[0])


def as_float(loss) -> "float | None":
    """A step's loss (a float, a 0-d array or a PyTorch tensor) as a Python float; None stays None."""
    if loss is None:
        return None
    if hasattr(loss, "detach"):
        loss = loss.detach()
    return float(loss)


def check_first_step(row, expected: float) -> "str | None":
    """Run the row's first step; None when its loss matches ``expected`` (rel. ``LOSS_RTOL``), else why not."""
    loss = as_float(row.step())
    if loss is None:
        return None
    rel = abs(loss - expected) / max(abs(expected), 1e-30)
    if np.isfinite(loss) and rel <= LOSS_RTOL:
        return None
    return f"WRONG first-step loss {loss:.7g}, NumPy reference {expected:.7g} (rel. diff {rel:.1e})"


# ---------------------------------------------------------------------------------------------- timing
@dataclass
class Measurement:
    """Step times of one row (seconds), or why it has none; ``last_loss`` is its loss at the last timed step."""

    label: str
    times: list = field(default_factory=list)
    note: "str | None" = None
    last_loss: "float | None" = None

    @property
    def median(self) -> "float | None":
        return statistics.median(self.times) if self.times else None

    @property
    def iqr(self) -> "float | None":
        if len(self.times) < 2:
            return None
        q1, _, q3 = statistics.quantiles(self.times, n=4, method="inclusive")
        return q3 - q1


def time_step(step: Callable[[], object], sync: "Callable[[], None] | None" = None):
    """Seconds one call of ``step`` takes (``sync`` before and after for asynchronous devices), and its result."""
    if sync is not None:
        sync()
    start = time.perf_counter()
    result = step()
    if sync is not None:
        sync()
    return time.perf_counter() - start, result


def settle_steps(rows: Sequence, seconds: float, sync: "Callable[[], None] | None" = None) -> int:
    """How many untimed steps each row runs before each timed step: enough for ``seconds`` on the fastest row.

    Why: rows of different libraries bring their own thread pools (OpenBLAS, PyTorch's OpenMP), whose
    idle threads spin for a while after their last job before they sleep. On 2 cores a step timed
    right after another library's step shares the cores with those spinning threads; measured here,
    PyTorch's step on config (c) went from 1.4 ms to 4.6 ms right after an OpenBLAS row, and the
    matrix-product bound from 0.8 ms to 3.3 ms right after PyTorch. About 0.2 s of a row's own
    steps lets the other pools fall asleep and leaves the row's own pool as hot as in a training
    loop. Every row runs the same number of steps, so their losses stay comparable.
    """
    if seconds <= 0:
        return 0
    fastest = min(time_step(row.step, sync)[0] for row in rows)
    return max(1, math.ceil(seconds / max(fastest, 1e-6)))


def measure_round_robin(rows: Sequence, steps: int, warmup: int, sync: "Callable[[], None] | None" = None,
                        settle_s: float = SETTLE_SECONDS, seed: int = 0) -> tuple:
    """Time ``warmup + steps`` rounds; each round times one step of every row, keep the last ``steps``.

    In each round the rows run in a fresh random order (seeded), so every row follows every other
    equally often, and each row runs :func:`settle_steps` untimed steps right before its timed one.
    The cyclic garbage collector is off while timing (as in :mod:`timeit`).
    Returns ``({label: Measurement}, untimed steps per timed step)``.
    """
    results = {row.label: Measurement(row.label) for row in rows}
    last = {}
    order = list(rows)
    rng = random.Random(seed)
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        n_settle = settle_steps(rows, settle_s, sync)
        for round_index in range(warmup + steps):
            rng.shuffle(order)
            for row in order:
                for _ in range(n_settle):
                    row.step()
                seconds, last[row.label] = time_step(row.step, sync)
                if round_index >= warmup:
                    results[row.label].times.append(seconds)
    finally:
        if gc_was_enabled:
            gc.enable()
    for label, value in last.items():
        results[label].last_loss = as_float(value)
    return results, n_settle


def benchmark_config(config: Config, factories: Sequence, steps: int, warmup: int,
                     sync: "Callable[[], None] | None" = None, settle_s: float = SETTLE_SECONDS,
                     seed: int = 0) -> tuple:
    """Build, check and time the rows of one configuration.

    ``factories`` is a list of ``(label, factory(config, x, y, host_params))``; ``host_params`` are
    the initial ``[[W, b], ...]`` of a tinyid model with this seed, for rows that copy weights.
    Every row's first step is checked against the NumPy reference's loss; a row that cannot be
    built or computes a different loss gets a note instead of times. The other rows are timed
    together, round-robin (:func:`measure_round_robin`).

    Returns one :class:`Measurement` per factory, in order, and the untimed steps per timed step.
    """
    x, y = make_batch(config, seed)
    reference = tinyid.MLP(config.sizes, config.activation, config.init, seed=seed, backend="numpy",
                           dtype="float32")
    host_params = [[np.array(W), np.array(b)] for W, b in reference.params]
    expected = float(reference.loss_and_grads(x, y)[0])
    del reference

    results, rows, n_settle = {}, [], 0
    for label, factory in factories:
        row = build_row(lambda: factory(config, x, y, host_params))
        problem = row if isinstance(row, str) else check_first_step(row, expected)
        if problem is not None:
            results[label] = Measurement(label, note=problem)
            continue
        row.label = label
        rows.append(row)
    if rows:
        timed, n_settle = measure_round_robin(rows, steps, warmup, sync, settle_s)
        results.update(timed)
    return [results[label] for label, _ in factories], n_settle
