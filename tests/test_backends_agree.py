"""Every backend trains the same network as the NumPy reference, to floating-point tolerance."""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyid
from tinyid import MLP, SGD, Adam
from tinyid.activations import NAMES
from tinyid.backend import to_numpy

from conftest import backend_skip_reason

FAST = [pytest.param("numba", marks=pytest.mark.numba), pytest.param("cupy", marks=pytest.mark.cupy)]


def host(arrays):
    return [to_numpy(a).copy() for group in arrays for a in group]


def train_steps(backend, sizes, activation, optimizer, n_steps, seed, dtype="float64"):
    """Run ``n_steps`` training steps; return the losses, the last gradients and the final parameters (host)."""
    model = MLP(sizes, activation=activation, init="xavier_normal", bias_init=0.1, seed=seed, dtype=dtype,
                backend=backend)
    opt = optimizer(model.params)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(n_steps):
        x = rng.normal(scale=2.0, size=(7, sizes[0]))
        y = rng.integers(0, sizes[-1], size=7)
        loss, grads = model.loss_and_grads(x, y)
        losses.append(loss)
        last_grads = host(grads)
        opt.step(grads)
    return losses, last_grads, host(model.params)


OPTIMIZERS = {
    "sgd-nesterov-decay": lambda p: SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "sgd": lambda p: SGD(p, lr=0.1),
    "adam": lambda p: Adam(p, lr=1e-2, weight_decay=1e-3),
}


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("activation", NAMES)
def test_training_steps_agree_with_the_reference_in_float64(backend, activation):
    sizes = [5, 13, 7, 3]  # primes and odd widths
    for name, optimizer in OPTIMIZERS.items():
        expected = train_steps("numpy", sizes, activation, optimizer, 3, seed=1)
        got = train_steps(backend, sizes, activation, optimizer, 3, seed=1)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-12, err_msg=f"{name} losses")
        for a, b in zip(got[1] + got[2], expected[1] + expected[2]):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("backend", FAST)
@settings(max_examples=15)
@given(widths=st.lists(st.sampled_from([1, 2, 3, 17, 31, 64]), min_size=1, max_size=3),
       n_batch=st.sampled_from([1, 3, 29]), activation=st.sampled_from(NAMES), seed=st.integers(0, 1000))
def test_float32_steps_agree_with_the_float64_reference(backend, widths, n_batch, activation, seed):
    sizes = [11, *widths, 4]
    model32 = MLP(sizes, activation=activation, seed=seed, dtype="float32", backend=backend)
    model64 = MLP(sizes, activation=activation, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n_batch, 11)), rng.integers(0, 4, n_batch)
    loss32, grads32 = model32.loss_and_grads(x, y)
    loss64, grads64 = model64.loss_and_grads(x, y)
    # float32 rounding of inputs, weights and every intermediate: a few 1e-7 relative, amplified by depth
    assert loss32 == pytest.approx(loss64, rel=1e-5, abs=1e-6)
    for a, b in zip(host(grads32), host(grads64)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5 * max(1.0, np.abs(b).max()))


@pytest.mark.numba
def test_numba_step_allocates_nothing_after_the_first():
    model = MLP([64, 48, 48, 10], activation="tanh", seed=0, backend="numba")
    opt = SGD(model.params, lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 64)).astype(np.float32)
    y = rng.integers(0, 10, 32)
    for _ in range(2):  # the first step compiles kernels and fills the step buffers
        opt.step(model.loss_and_grads(x, y)[1])
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(5):
            opt.step(model.loss_and_grads(x, y)[1])
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    smallest_array = 32 * 10 * 4  # the logits buffer
    assert peak - before < smallest_array, f"a step allocated {peak - before} bytes"
    assert after - before < smallest_array


@pytest.mark.numba
def test_reference_step_allocates_and_numba_returns_reused_buffers():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 6)), rng.integers(0, 3, 4)
    fast = MLP([6, 5, 3], seed=0, backend="numba", dtype="float64")
    reference = MLP([6, 5, 3], seed=0, dtype="float64")
    g1, g2 = fast.loss_and_grads(x, y)[1], fast.loss_and_grads(x, y)[1]
    assert g1[0][0] is g2[0][0]  # documented: the next step overwrites them
    r1, r2 = reference.loss_and_grads(x, y)[1], reference.loss_and_grads(x, y)[1]
    assert r1[0][0] is not r2[0][0]
    np.testing.assert_array_equal(r1[0][0], r2[0][0])
    a, b = fast.forward(x), fast.forward(x)
    assert a is not b  # inference always returns fresh arrays


@pytest.mark.numba
def test_use_switches_the_default_backend():
    with tinyid.use("numba"):
        assert MLP([3, 2], seed=0).backend.name == "numba"
    assert MLP([3, 2], seed=0).backend.name == "numpy"


@pytest.mark.numba
def test_models_move_between_numpy_and_numba():
    model = MLP([4, 3, 2], seed=0, dtype="float64")
    x = np.random.default_rng(0).normal(size=(5, 4))
    expected = model.forward(x)
    model.to("numba")
    assert model.backend.name == "numba" and model.params.backend.name == "numba"
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-14)


def test_missing_numba_says_how_to_install(library_missing):
    library_missing("numba")
    with pytest.raises(tinyid.BackendUnavailableError, match=r"pip install 'tinyid\[fast\]'"):
        MLP([3, 2], backend="numba")


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=pytest.mark.numba)])
@pytest.mark.parametrize("make_optimizer", [lambda p: SGD(p, lr=0.1, momentum=0.9), lambda p: Adam(p, lr=1e-2)],
                         ids=["sgd-momentum", "adam"])
def test_train_step_is_loss_and_grads_then_step(backend, make_optimizer):
    """Updating each layer during backward (train_step) gives bit for bit the separate step's result."""
    rng = np.random.default_rng(3)
    fused = MLP([6, 9, 7, 4], activation="tanh", seed=3, dtype="float64", backend=backend)
    separate = MLP([6, 9, 7, 4], activation="tanh", seed=3, dtype="float64", backend=backend)
    fused_opt, separate_opt = make_optimizer(fused.params), make_optimizer(separate.params)
    for _ in range(3):
        x, y = rng.normal(size=(5, 6)), rng.integers(0, 4, 5)
        loss_fused, logits = fused.train_step(x, y, fused_opt)
        loss, grads = separate.loss_and_grads(x, y)
        separate_opt.step(grads)
        assert loss_fused == loss and logits.shape == (5, 4)
    for a, b in zip(host(fused.params), host(separate.params)):
        np.testing.assert_array_equal(a, b)
    assert fused_opt.step_count == separate_opt.step_count == 3


def test_train_step_checks_its_optimizer_and_skips_non_finite_losses():
    model = MLP([3, 4, 2], seed=0, dtype="float64")
    other = MLP([3, 4, 2], seed=0, dtype="float64")
    with pytest.raises(ValueError, match="model.params"):
        model.train_step(np.zeros((2, 3)), np.array([0, 1]), SGD(other.params, lr=0.1))
    optimizer = SGD(model.params, lr=0.1)
    before = host(model.params)
    loss, _ = model.train_step(np.full((2, 3), np.nan), np.array([0, 1]), optimizer)
    assert not np.isfinite(loss)
    assert optimizer.step_count == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, host(model.params)))


@pytest.mark.numba
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 2e-5)])
def test_plain_sgd_folded_into_the_gemm_matches_the_reference(dtype, rtol):
    """numba's train_step puts plain SGD inside the weight-gradient gemm: same update, other rounding."""
    from tinyid.kernels import cpu

    if not cpu._GEMM:
        pytest.skip("NumPy's bundled OpenBLAS was not found, so the fold is not used here")
    rng = np.random.default_rng(5)
    models = [MLP([9, 13, 11, 4], activation="relu", init="he_normal", seed=5, dtype=dtype, backend=b)
              for b in ("numpy", "numba")]
    optimizers = [SGD(m.params, lr=0.05) for m in models]
    for _ in range(4):
        x, y = rng.normal(size=(6, 9)), rng.integers(0, 4, 6)
        losses = [m.train_step(x, y, o)[0] for m, o in zip(models, optimizers)]
        assert losses[1] == pytest.approx(losses[0], rel=rtol)
    for a, b in zip(host(models[1].params), host(models[0].params)):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
