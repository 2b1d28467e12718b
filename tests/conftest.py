"""Shared test configuration: hypothesis profiles and backend parametrization.

Profiles: ``ci`` (derandomized, no deadline; chosen automatically when ``CI`` is set) and
``dev`` (random, no deadline). Choose one with ``HYPOTHESIS_PROFILE=...``.
"""
import functools
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


@functools.lru_cache(maxsize=None)
def cupy_skip_reason():
    """None when the cupy backend runs here, else why not (the first clause of the backend's error)."""
    from tinyid.backend import BackendUnavailableError, get_backend

    try:
        get_backend("cupy")
    except BackendUnavailableError as exc:
        return str(exc).split(";")[0]
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "cupy" in item.keywords and cupy_skip_reason():
            item.add_marker(pytest.mark.skip(reason=cupy_skip_reason()))


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.cupy)])
def backend_name(request):
    """Every backend tinyid has; cupy cases skip with the reason when no GPU is present."""
    return request.param
