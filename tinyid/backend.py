"""Array backends: which array module (NumPy or CuPy) a model computes with.

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
BACKEND_NAMES = ("numpy", "cupy")

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
        ``"numpy"`` or ``"cupy"``.
    xp : module
        The array module (``numpy`` or ``cupy``); layer code calls ``backend.xp.tanh`` etc.
    """

    name: str
    xp: ModuleType

    def asarray(self, a: Any, dtype: Any = None):
        """Move ``a`` (host or device array, or scalar) to this backend, optionally casting."""
        if self.name == "numpy":
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


_BACKENDS: dict[str, Backend] = {"numpy": Backend("numpy", np)}
_state = threading.local()


def get_backend(backend: "str | Backend | None" = None) -> Backend:
    """Return the :class:`Backend` for a name (``None`` means the current default).

    Raises
    ------
    ValueError
        For an unknown name.
    BackendUnavailableError
        For ``"cupy"`` when CuPy is not installed or no GPU is present; the message says how to install it.
    """
    if backend is None:
        return default_backend()
    if isinstance(backend, Backend):
        return backend
    if not isinstance(backend, str) or backend not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if backend not in _BACKENDS:
        _BACKENDS[backend] = Backend(backend, _load_cupy())
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
    return getattr(_state, "default", None) or _BACKENDS["numpy"]


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


