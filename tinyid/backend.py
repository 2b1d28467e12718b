"""Backends: which array module (NumPy or CuPy) and which kernel set a model computes with.

- ``"numpy"``: NumPy arrays, :mod:`tinyid.kernels.reference` (plain NumPy, the oracle; always there);
- ``"numba"``: NumPy arrays, :mod:`tinyid.kernels.cpu` (``numba.njit``; ``pip install 'tinyid[fast]'``);
- ``"cupy"``: CuPy arrays on a GPU, :mod:`tinyid.kernels.gpu` (``numba.cuda``; ``pip install 'tinyid[gpu]'``).

Matrix products always go to BLAS (NumPy) or cuBLAS (CuPy); the kernel set does the rest of a
step (bias + activation, activation backward + bias gradient, loss, optimizer update). The numba
and cupy backends also reuse their step buffers from one training step to the next.

A backend is a value, not a hidden global. Every model holds its own :class:`Backend`;
:func:`use` only chooses the *default* for models created afterwards, either as a plain
call or as a context manager::

    tinyid.use("cupy")            # from now on
    with tinyid.use("numpy"):     # only inside the block
        ...

Random numbers are always drawn on the host with :class:`numpy.random.Generator` and then
moved with :meth:`Backend.asarray`, so one seed gives the same network on every backend.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "BACKEND_NAMES",
    "get_backend",
    "default_backend",
    "use",
    "array_module",
    "to_numpy",
    "cupy_available",
]

#: Names accepted wherever a backend is asked for.
BACKEND_NAMES = ("numpy", "numba", "cupy")

_NUMBA_INSTALL_HINT = "install Numba with `pip install 'tinyid[fast]'`, or use backend='numpy'"

_CUPY_INSTALL_HINT = (
    "install CuPy on a machine with an NVIDIA GPU: `pip install 'tinyid[gpu]'` for CUDA 12 "
    "or `pip install 'tinyid[gpu-cuda13]'` for CUDA 13 (see https://docs.cupy.dev/en/stable/install.html); "
    "use backend='numpy' to stay on the CPU"
)


class BackendUnavailableError(RuntimeError):
    """A backend was asked for that cannot run here (library missing or no GPU)."""


@dataclass(frozen=True)
class Backend:
    """One array backend.

    Attributes
    ----------
    name : str
        ``"numpy"``, ``"numba"`` or ``"cupy"``.
    xp : module
        The array module (``numpy`` or ``cupy``); layer code calls ``backend.xp.matmul`` etc.
    kernels : module
        The kernel set (see :mod:`tinyid.kernels`).
    reuse_buffers : bool
        Whether a model's training step writes into buffers kept from the previous step (fast
        backends) or into fresh arrays (the reference, whose results are never overwritten).
    """

    name: str
    xp: ModuleType
    kernels: ModuleType
    reuse_buffers: bool

    def asarray(self, a: Any, dtype: Any = None):
        """Move ``a`` (host or device array, or scalar) to this backend, optionally casting."""
        if self.xp is np:
            return np.asarray(to_numpy(a), dtype=dtype)
        return self.xp.asarray(a, dtype=dtype)

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"


def _load_cupy() -> ModuleType:
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        raise BackendUnavailableError(
            f"backend 'cupy' is not available: CuPy could not be imported ({exc}); {_CUPY_INSTALL_HINT}"
        ) from exc
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise BackendUnavailableError(
            f"backend 'cupy' is not available: CuPy is installed but found no usable CUDA device ({exc}); "
            f"{_CUPY_INSTALL_HINT}"
        ) from exc
    if n_devices < 1:
        raise BackendUnavailableError(
            f"backend 'cupy' is not available: CuPy is installed but no CUDA GPU is present; {_CUPY_INSTALL_HINT}"
        )
    return cupy


def _load_numba_kernels() -> ModuleType:
    try:
        import numba  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(f"backend 'numba' is not available: {exc}; {_NUMBA_INSTALL_HINT}") from exc
    from tinyid import kernels

    return kernels.load("cpu")


def _load_gpu_kernels() -> ModuleType:
    """numba-cuda kernels when numba-cuda imports, else the reference set (which runs on CuPy arrays too)."""
    from tinyid import kernels

    try:
        return kernels.load("gpu")
    except ImportError:
        return kernels.load("reference")


def _make_backend(name: str) -> Backend:
    from tinyid import kernels

    if name == "numpy":
        return Backend("numpy", np, kernels.load("reference"), reuse_buffers=False)
    if name == "numba":
        return Backend("numba", np, _load_numba_kernels(), reuse_buffers=True)
    return Backend("cupy", _load_cupy(), _load_gpu_kernels(), reuse_buffers=True)


_BACKENDS: dict[str, Backend] = {}
_state = threading.local()


def get_backend(backend: "str | Backend | None" = None) -> Backend:
    """Return the :class:`Backend` for a name (``None`` means the current default).

    Raises
    ------
    ValueError
        For an unknown name.
    BackendUnavailableError
        For ``"cupy"`` when CuPy is not installed or no GPU is present, for ``"numba"`` when Numba is
        not installed; the message says how to install it.
    """
    if backend is None:
        return default_backend()
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str) or backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if backend not in _BACKENDS:
        _BACKENDS[backend] = _make_backend(backend)
    return _BACKENDS[backend]


def cupy_available() -> bool:
    """True when the ``"cupy"`` backend can run here (CuPy imports and a GPU is present)."""
    try:
        get_backend("cupy")
    except BackendUnavailableError:
        return False
    return True


def default_backend() -> Backend:
    """The backend new models use when none is given (``"numpy"`` unless :func:`use` chose another)."""
    return getattr(_state, "default", None) or get_backend("numpy")


class _Use(contextlib.AbstractContextManager):
    def __init__(self, previous: Backend):
        self._previous = previous

    def __exit__(self, *exc_info) -> None:
        _state.default = self._previous


def use(backend: "str | Backend") -> contextlib.AbstractContextManager:
    """Make ``backend`` the default for new models.

    Works as a plain call (the choice stays) and as a context manager (the previous default
    comes back when the block ends). The backend is checked at once, so an unavailable one
    raises here and changes nothing.
    """
    chosen = get_backend(backend)
    previous = default_backend()
    _state.default = chosen
    return _Use(previous)


def array_module(a: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) that owns array ``a``; NumPy for anything else."""
    module = type(a).__module__
    if module.startswith("cupy"):
        return get_backend("cupy").xp
    return np


def to_numpy(a: Any) -> np.ndarray:
    """Return ``a`` as a NumPy array on the host (a CuPy array is copied from the device)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


