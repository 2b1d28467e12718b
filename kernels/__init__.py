"""Kernel sets: the few array operations around the matrix products of a training step.

Every kernel set (a module) provides the same functions, documented in :mod:`tinyid.kernels.reference`:

=========================  ==========================================================================
``bias_activation``        forward epilogue: ``out = phi(s + b)``, ``derivative = phi'(s + b)``
``activation_backward``    ``ds = dy * derivative`` fused with the bias gradient ``db = sum_i ds``
``softmax_cross_entropy``  mean loss and ``dlogits = (softmax - onehot) / B``
``sgd_update``             SGD (momentum, Nesterov, weight decay) in place
``adam_update``            Adam in place
=========================  ==========================================================================

Matrix products are not kernels: they stay in BLAS (NumPy) or cuBLAS (CuPy), called by the layer
code. Which set runs is decided by the backend (:func:`tinyid.backend.get_backend`):

- ``"numpy"``: :mod:`tinyid.kernels.reference`, plain NumPy, the oracle;
- ``"numba"``: :mod:`tinyid.kernels.cpu`, ``numba.njit`` loops on NumPy arrays;
- ``"cupy"``: :mod:`tinyid.kernels.gpu`, ``numba.cuda`` kernels on CuPy arrays (the reference set on
  CuPy arrays when numba-cuda is not installed).

Each activation's scalar math is written once, in :mod:`tinyid.kernels.scalar`, and compiled for
both targets.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["load"]

_MODULES = {"reference": "tinyid.kernels.reference", "cpu": "tinyid.kernels.cpu", "gpu": "tinyid.kernels.gpu"}


def load(name: str) -> ModuleType:
    """Import the kernel set ``name`` (``"reference"``, ``"cpu"`` or ``"gpu"``)."""
    try:
        return importlib.import_module(_MODULES[name])
    except KeyError:
        raise ValueError(f"unknown kernel set {name!r}; choose one of {', '.join(_MODULES)}") from None
