"""Shared test configuration: hypothesis profiles and backend parametrization.

Profiles: ``ci`` (derandomized, no deadline; chosen automatically when ``CI`` is set) and
``dev`` (random, no deadline). Choose one with ``HYPOTHESIS_PROFILE=...``.
"""
import os

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


def _cupy_skip_reason():
    from tinyid.backend import BackendUnavailableError, get_backend

    try:
        get_backend("cupy")
    except BackendUnavailableError as exc:
        return str(exc)
    return None


_CUPY_REASON = None
_CUPY_CHECKED = False


def cupy_skip_reason():
    """None when the cupy backend runs here, else the reason it does not (cached)."""
    global _CUPY_REASON, _CUPY_CHECKED
    if not _CUPY_CHECKED:
        _CUPY_REASON, _CUPY_CHECKED = _cupy_skip_reason(), True
    return _CUPY_REASON


def pytest_collection_modifyitems(config, items):
    reason = None
    for item in items:
        if "cupy" in item.keywords:
            reason = reason or cupy_skip_reason()
            if reason:
                item.add_marker(pytest.mark.skip(reason=f"no GPU backend: {reason}"))


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.cupy)])
def backend_name(request):
    """Every backend tinyid has; cupy cases skip with the reason when no GPU is present."""
    return request.param
