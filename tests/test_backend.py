import numpy as np
import pytest

import tinyid
from tinyid.backend import BackendUnavailableError, array_module, default_backend, get_backend, to_numpy, use


def test_numpy_backend_and_default():
    backend = get_backend("numpy")
    assert backend.xp is np and backend.name == "numpy"
    assert get_backend(None) is default_backend()
    assert get_backend(backend) is backend


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="choose one of numpy, numba, cupy"):
        get_backend("tensorflow")


def test_cupy_unavailable_says_how_to_install(library_missing):
    library_missing("cupy")
    with pytest.raises(BackendUnavailableError, match=r"pip install 'tinyid\[gpu\]'"):
        get_backend("cupy")
    with pytest.raises(BackendUnavailableError):
        tinyid.MLP([3, 2], backend="cupy")
    before = default_backend()
    with pytest.raises(BackendUnavailableError):
        use("cupy")
    assert default_backend() is before  # a failed switch changes nothing


def test_use_as_setter_and_context_manager():
    numpy_backend = get_backend("numpy")
    with use("numpy") as ctx:
        assert default_backend() is numpy_backend
        assert ctx is not None
    assert default_backend() is numpy_backend
    use("numpy")
    assert tinyid.MLP([3, 2], seed=0).backend is numpy_backend


def test_to_numpy_and_array_module():
    a = np.arange(3.0)
    assert to_numpy(a) is a
    assert np.array_equal(to_numpy([1, 2]), [1, 2])
    assert array_module(a) is np
    assert array_module(3.0) is np


@pytest.mark.cupy
def test_same_seed_same_weights_on_cupy():
    host = tinyid.MLP([7, 5, 3], seed=3)
    device = tinyid.MLP([7, 5, 3], seed=3, backend="cupy")
    for (W_h, b_h), (W_d, b_d) in zip(host.params, device.params):
        assert type(W_d).__module__.startswith("cupy")
        assert np.array_equal(W_h, to_numpy(W_d)) and np.array_equal(b_h, to_numpy(b_d))
    assert array_module(device.params[0][0]) is get_backend("cupy").xp
