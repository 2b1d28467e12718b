"""Optimizers that update a model's parameters in place: SGD (momentum, Nesterov) and Adam.

An optimizer holds references to the parameter arrays (``model.params``, a list of
``[W, b]`` pairs) and updates them in place in :meth:`step`, with the update kernel of the
backend the parameters live on (:mod:`tinyid.kernels`). Its state (step count and
buffers) is exposed by :meth:`state_dict` and restored by :meth:`load_state_dict`, which is
how checkpoints resume a run exactly.

Create the optimizer after ``model.to(...)``: moving a model replaces its arrays.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyid.backend import array_module, get_backend, to_numpy

__all__ = ["Optimizer", "SGD", "Adam", "get"]


def _flatten(params) -> list:
    try:
        flat = [p for group in params for p in group]
    except TypeError:
        raise TypeError("params must be a list of [W, b] groups, e.g. model.params") from None
    if not flat:
        raise ValueError("params is empty: the optimizer has nothing to update")
    return flat


def _check_positive(name: str, value: float, allow_zero: bool = False) -> float:
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not math.isfinite(value) or not ok:
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


class Optimizer:
    """Base class: keeps ``params`` (flattened) and the per-parameter state buffers."""

    #: registry name, also written to checkpoints
    name = "optimizer"
    #: names of the per-parameter buffers in the state
    buffer_names: tuple[str, ...] = ()

    def __init__(self, params):
        backend = getattr(params, "backend", None)  # model.params says where it lives
        self.params = _flatten(params)
        if backend is None:
            backend = get_backend("cupy" if type(self.params[0]).__module__.startswith("cupy") else "numpy")
        self.kernels = backend.kernels
        self.step_count = 0
        self.buffers: dict[str, list] = {
            name: [array_module(p).zeros_like(p) for p in self.params] for name in self.buffer_names
        }

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor's keyword arguments, JSON-able."""
        raise NotImplementedError

    def step(self, grads) -> None:
        """Update every parameter in place from ``grads`` (shaped like ``params``)."""
        flat = _flatten(grads)
        if len(flat) != len(self.params):
            raise ValueError(f"got {len(flat)} gradient arrays for {len(self.params)} parameters")
        for i, (p, g) in enumerate(zip(self.params, flat)):
            self._check_grad(i, p, g)
        self.start_step()
        for i, (p, g) in enumerate(zip(self.params, flat)):
            self._update(i, p, g)

    def start_step(self) -> None:
        """Begin a step that updates parameters one at a time with :meth:`update_param`.

        ``start_step(); update_param(0, g0); update_param(1, g1); ...`` is the same as ``step([g0, g1, ...])``;
        :meth:`tinyid.MLP.train_step` uses it to update each layer right after its gradients are computed,
        while its weights are still in cache.
        """
        self.step_count += 1

    def update_param(self, i: int, grad) -> None:
        """Update parameter ``i`` (in the flattened order of ``params``) from ``grad``, within a started step."""
        p = self.params[i]
        if grad.shape != p.shape:
            self._check_grad(i, p, grad)
        self._update(i, p, grad)

    @staticmethod
    def _check_grad(i: int, p, g) -> None:
        if g.shape != p.shape:
            raise ValueError(f"gradient {i} has shape {tuple(g.shape)}, its parameter {tuple(p.shape)}")
        if array_module(g) is not array_module(p):
            raise TypeError(
                "gradients and parameters live on different backends: the model was probably moved with "
                ".to() after this optimizer was created; create the optimizer after moving the model"
            )

    def _update(self, i: int, p, g) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: name, hyperparameters, step count, host copies of buffers."""
        return {
            "name": self.name,
            "hyperparameters": self.hyperparameters(),
            "step_count": self.step_count,
            "buffers": {name: [to_numpy(b).copy() for b in bufs] for name, bufs in self.buffers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`. Checks everything first, so a mismatch changes nothing."""
        if state.get("name") != self.name:
            raise ValueError(f"optimizer state is for {state.get('name')!r}, this optimizer is {self.name!r}")
        buffers = state.get("buffers", {})
        if set(buffers) != set(self.buffers):
            raise ValueError(f"optimizer state has buffers {sorted(buffers)}, expected {sorted(self.buffers)}")
        for name, bufs in buffers.items():
            if len(bufs) != len(self.params):
                raise ValueError(f"optimizer state has {len(bufs)} {name!r} buffers for {len(self.params)} parameters")
            for b, p in zip(bufs, self.params):
                if tuple(b.shape) != tuple(p.shape):
                    raise ValueError(f"optimizer buffer of shape {tuple(b.shape)} does not fit parameter "
                                     f"of shape {tuple(p.shape)}")
        step_count = state.get("step_count")
        if isinstance(step_count, bool) or not isinstance(step_count, (int, np.integer)) or step_count < 0:
            raise ValueError(f"optimizer state needs a non-negative integer step_count, got {step_count!r}")
        xp = array_module(self.params[0])
        for name, bufs in buffers.items():
            self.buffers[name] = [xp.asarray(b, dtype=p.dtype).copy() for b, p in zip(bufs, self.params)]
        self.step_count = int(step_count)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    r"""Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    Follows PyTorch's update (dampening 0):

    .. math::
        g_t = \nabla_\theta + \lambda\theta,\quad
        v_t = \mu v_{t-1} + g_t\ (v_1 = g_1),\quad
        \theta \leftarrow \theta - \eta\,(g_t + \mu v_t \text{ if Nesterov else } v_t)

    Parameters
    ----------
    params : list of [W, b]
        ``model.params``.
    lr : float
        Learning rate :math:`\eta > 0`.
    momentum : float
        :math:`\mu \in [0, 1)`.
    nesterov : bool
        Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float
        L2 coefficient :math:`\lambda \ge 0`, applied to every parameter.
    """

    name = "sgd"

    def __init__(self, params, lr: float, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        self.lr = _check_positive("lr", lr)
        self.momentum = _check_positive("momentum", momentum, allow_zero=True)
        if self.momentum >= 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")
        self.nesterov = bool(nesterov)
        self.weight_decay = _check_positive("weight_decay", weight_decay, allow_zero=True)
        self.buffer_names = ("momentum",) if self.momentum else ()
        super().__init__(params)

    @property
    def is_plain_sgd(self) -> bool:
        """No momentum and no weight decay: the update is ``theta -= lr * grad`` alone."""
        return not self.momentum and not self.weight_decay

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _update(self, i, p, g):
        velocity = self.buffers["momentum"][i] if self.momentum else None
        self.kernels.sgd_update(p, g, velocity, self.lr, self.momentum, self.nesterov, self.weight_decay,
                                self.step_count == 1)


class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015) with bias correction and optional L2 weight decay (PyTorch's ``Adam``).

    .. math::
        g_t = \nabla_\theta + \lambda\theta,\quad
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\\
        \theta \leftarrow \theta - \eta\,\frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)} + \epsilon}

    Parameters
    ----------
    params : list of [W, b]
    lr : float
        :math:`\eta > 0` (default 1e-3).
    betas : (float, float)
        :math:`(\beta_1, \beta_2)`, each in [0, 1).
    eps : float
        :math:`\epsilon > 0`.
    weight_decay : float
        :math:`\lambda \ge 0`.
    """

    name = "adam"
    buffer_names = ("m", "v")

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        self.lr = _check_positive("lr", lr)
        try:
            beta1, beta2 = (float(b) for b in betas)
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair of floats, got {betas!r}") from None
        if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
            raise ValueError(f"betas must each lie in [0, 1), got {betas!r}")
        self.betas = (beta1, beta2)
        self.eps = _check_positive("eps", eps)
        self.weight_decay = _check_positive("weight_decay", weight_decay, allow_zero=True)
        super().__init__(params)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def _update(self, i, p, g):
        self.kernels.adam_update(p, g, self.buffers["m"][i], self.buffers["v"][i], self.lr, *self.betas, self.eps,
                                 self.weight_decay, self.step_count)


_OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def get(name: str, params, **hyperparameters) -> Optimizer:
    """Build an optimizer by name (``"sgd"`` or ``"adam"``) — how checkpoints and the CLI make one."""
    try:
        cls = _OPTIMIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(_OPTIMIZERS)}") from None
    try:
        return cls(params, **hyperparameters)
    except TypeError as exc:
        raise ValueError(f"bad arguments for optimizer {name!r}: {exc}") from None
