"""Shared test configuration: hypothesis profiles and backend parametrization.

Profiles: ``ci`` (derandomized, no deadline; chosen automatically when ``CI`` is set) and
``dev`` (random, no deadline). Choose one with ``HYPOTHESIS_PROFILE=...``.
"""
import os
import shutil

# The CUDA kernels (tinyid.kernels.gpu) are tested in the Numba CUDA simulator when no NVIDIA GPU is
# visible. The switch is read when numba is first imported, so it must be set here, before any test
# module (or tinyid) imports numba. An explicit NUMBA_ENABLE_CUDASIM=0 or =1 from the caller wins.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import functools

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, derandomize=True, max_examples=30, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@functools.lru_cache(maxsize=None)
def backend_skip_reason(name: str):
    """None when backend ``name`` runs here, else why not (the first clause of the backend's error)."""
    from tinyid.backend import BackendUnavailableError, get_backend

    try:
        get_backend(name)
    except BackendUnavailableError as exc:
        return str(exc).split(";")[0]
    return None


def cupy_skip_reason():
    return backend_skip_reason("cupy")


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in ("cupy", "numba"):
            if name in item.keywords and backend_skip_reason(name):
                item.add_marker(pytest.mark.skip(reason=backend_skip_reason(name)))


@pytest.fixture(params=["numpy", pytest.param("numba", marks=pytest.mark.numba),
                        pytest.param("cupy", marks=pytest.mark.cupy)])
def backend_name(request):
    """Every backend tinyid has; numba and cupy cases skip with the reason when they cannot run here."""
    return request.param


@pytest.fixture
def library_missing(monkeypatch):
    """``library_missing("cupy")``: imports of that module fail and its cached backend is forgotten."""
    import builtins

    import tinyid.backend as backend_module

    real_import = builtins.__import__

    def hide(module: str) -> None:
        def failing_import(name, *args, **kwargs):
            if name == module:
                raise ImportError(f"No module named {module!r}")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", failing_import)
        monkeypatch.delitem(backend_module._BACKENDS, module, raising=False)

    return hide
