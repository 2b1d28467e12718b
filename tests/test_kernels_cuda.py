"""The CUDA kernel set (tinyid.kernels.gpu) against the float64 reference kernels.

Without an NVIDIA GPU these run in the Numba CUDA simulator (tests/conftest.py sets
``NUMBA_ENABLE_CUDASIM=1`` before numba is imported): one Python thread per CUDA thread, so shapes
stay small (up to about 20 x 40, primes and 1 included, rarely a multiple of a block or tile) and
hypothesis examples are few. The simulator proves indexing, synchronization and the math; on a real
GPU (simulator off, CuPy importable) the same tests run on CuPy arrays, on CuPy's current stream.

Every comparison is with :mod:`tinyid.kernels.reference` run in float64 on the same (rounded) inputs.
The kernels compute in float64 registers and round once when storing, so float32 results are held to
about one float32 rounding of the float64 answer.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip(
    "numba.cuda", reason="numba-cuda is not installed (pip install 'tinyid[gpu]'), so the CUDA kernels are not tested"
)

from numba import cuda  # noqa: E402

from tinyid import activations  # noqa: E402
from tinyid.kernels import gpu  # noqa: E402
from tinyid.kernels import reference as ref  # noqa: E402

if not gpu.SIMULATOR and not cuda.is_available():
    pytest.skip("no CUDA GPU is usable and the Numba CUDA simulator is off (NUMBA_ENABLE_CUDASIM=0)",
                allow_module_level=True)

try:
    import cupy
except Exception:  # not installed, or a broken CUDA install
    cupy = None
if gpu.SIMULATOR:
    cupy = None

pytestmark = pytest.mark.cuda

DTYPES = [np.float32, np.float64]
#: Every registry activation with its defaults, plus leaky_relu and elu with other parameters.
ACTIVATIONS = [activations.get(name) for name in activations.NAMES] + [
    activations.get("leaky_relu", slope=0.2),
    activations.get("elu", alpha=0.5),
]
ACTIVATION_IDS = [repr(a) for a in ACTIVATIONS]
#: Values placed among the random ones: the kinks (0, +-1) and large magnitudes.
SPECIAL = np.array([0.0, 1.0, -1.0, 0.5, -30.0, 30.0, -1e4, 1e4])


def to_device(a):
    """The array as the kernels get it: a CuPy array on a real GPU, a simulated device array otherwise.

    (In the simulator, a NumPy argument is copied for each launch, so ``out=s`` would not really alias;
    a simulated device array is passed as it is.)
    """
    if cupy is not None:
        return cupy.asarray(a)
    return cuda.to_device(np.ascontiguousarray(a))


def to_host(a):
    if isinstance(a, np.ndarray):
        return a
    if cupy is not None and isinstance(a, cupy.ndarray):
        return cupy.asnumpy(a)
    return a.copy_to_host()


def data(rng, shape, dtype, scale=1.0, special=0.15):
    """Normal values times ``scale``, with a fraction ``special`` replaced by :data:`SPECIAL` values."""
    a = rng.normal(0.0, scale, shape)
    mask = rng.random(shape) < special
    a[mask] = rng.choice(SPECIAL, int(mask.sum()))
    return a.astype(dtype)


def tolerance(dtype):
    return {np.float32: 1e-6, np.float64: 1e-12}[dtype]


def seeds():
    return st.integers(0, 2**32 - 1)


def rows():
    return st.integers(1, 20)


def columns():
    return st.integers(1, 40)


# ---------------------------------------------------------------------------------------------------
# bias_activation


def check_bias_activation(act, dtype, n, m, seed, with_derivative, in_place):
    rng = np.random.default_rng(seed)
    s, b = data(rng, (n, m), dtype, scale=3.0), data(rng, (m,), dtype)
    want_out, want_der = np.empty((n, m)), np.empty((n, m))
    ref.bias_activation(s.astype(np.float64), b.astype(np.float64), act, want_out, want_der)

    s_dev = to_device(s)
    out = s_dev if in_place else to_device(np.full((n, m), np.nan, dtype))
    der = to_device(np.full((n, m), np.nan, dtype)) if with_derivative else None
    gpu.bias_activation(s_dev, to_device(b), act, out, der)

    tol = tolerance(dtype)
    got = to_host(out)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want_out, rtol=tol, atol=tol)
    if with_derivative:
        np.testing.assert_allclose(to_host(der), want_der, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTIVATIONS, ids=ACTIVATION_IDS)
@settings(max_examples=3)
@given(n=rows(), m=columns(), seed=seeds(), with_derivative=st.booleans(), in_place=st.booleans())
def test_bias_activation_matches_reference(act, dtype, n, m, seed, with_derivative, in_place):
    check_bias_activation(act, dtype, n, m, seed, with_derivative, in_place)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=ACTIVATION_IDS)
def test_bias_activation_at_the_kinks_exactly(act):
    """Pre-activations exactly 0 and +-1 take the reference's branch (relu'(0) = 0, hard_tanh'(1) = 0)."""
    s = np.array([[0.0, 1.0, -1.0, 2.0], [-0.0, 1e-300, -2.0, 0.5]])
    b = np.zeros(4)
    out, der = to_device(np.empty_like(s)), to_device(np.empty_like(s))
    gpu.bias_activation(to_device(s), to_device(b), act, out, der)
    want_out, want_der = np.empty_like(s), np.empty_like(s)
    ref.bias_activation(s, b, act, want_out, want_der)
    np.testing.assert_allclose(to_host(out), want_out, rtol=1e-12, atol=0)
    np.testing.assert_allclose(to_host(der), want_der, rtol=1e-12, atol=0)


def test_bias_activation_grid_stride_loops(monkeypatch):
    """A grid capped at one block still covers the whole matrix, both directions of the 2-D loop."""
    monkeypatch.setattr(gpu, "MAX_BLOCKS", 1)
    check_bias_activation(activations.tanh, np.float32, 19, 37, seed=5, with_derivative=True, in_place=False)
    check_bias_activation(activations.relu, np.float64, 17, 3, seed=6, with_derivative=True, in_place=True)


def test_bias_activation_accepts_numpy_arrays():
    """Host (NumPy) arrays work too: Numba copies them to the device and back."""
    rng = np.random.default_rng(0)
    s, b = rng.normal(size=(5, 7)), rng.normal(size=7)
    out, der = np.empty_like(s), np.empty_like(s)
    gpu.bias_activation(s, b, activations.gelu, out, der)
    want_out, want_der = np.empty_like(s), np.empty_like(s)
    ref.bias_activation(s, b, activations.gelu, want_out, want_der)
    np.testing.assert_allclose(out, want_out, rtol=1e-12)
    np.testing.assert_allclose(der, want_der, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------
# activation_backward


@settings(max_examples=25)
@given(dtype=st.sampled_from(DTYPES), n=rows(), m=st.integers(1, 70), seed=seeds(),
       with_derivative=st.booleans(), in_place=st.booleans())
def test_activation_backward_matches_reference(dtype, n, m, seed, with_derivative, in_place):
    rng = np.random.default_rng(seed)
    dy, derivative = data(rng, (n, m), dtype), data(rng, (n, m), dtype, special=0.0)
    want_ds, want_db = np.empty((n, m)), np.empty(m)
    ref.activation_backward(dy.astype(np.float64), derivative.astype(np.float64) if with_derivative else None,
                            want_ds, want_db)

    dy_dev = to_device(dy)
    ds = dy_dev if in_place else to_device(np.full((n, m), np.nan, dtype))
    db = to_device(np.full(m, np.nan, dtype))
    gpu.activation_backward(dy_dev, to_device(derivative) if with_derivative else None, ds, db)

    tol = tolerance(dtype)
    np.testing.assert_allclose(to_host(ds), want_ds, rtol=tol, atol=tol)
    # each ds is rounded once before it is summed: bound the sum's error by the sum of magnitudes
    bound = tol * np.abs(want_ds).sum(axis=0) + tol
    assert np.all(np.abs(to_host(db) - want_db) <= bound)


def test_activation_backward_many_rows_per_lane():
    """More rows than lanes and columns over several blocks; the column sums are exact on integers."""
    n, m = 45, 67
    dy = np.arange(n * m, dtype=np.float64).reshape(n, m) % 7 - 3
    derivative = np.arange(n * m, dtype=np.float64).reshape(n, m) % 5
    ds, db = to_device(np.empty((n, m))), to_device(np.empty(m))
    gpu.activation_backward(to_device(dy), to_device(derivative), ds, db)
    np.testing.assert_array_equal(to_host(ds), dy * derivative)
    np.testing.assert_array_equal(to_host(db), (dy * derivative).sum(axis=0))


# ---------------------------------------------------------------------------------------------------
# softmax_cross_entropy


def check_softmax_cross_entropy(logits, labels, in_place=False):
    dtype = logits.dtype.type
    n = logits.shape[0]
    want_grad = np.empty(logits.shape)
    want_loss = ref.softmax_cross_entropy(logits.astype(np.float64), labels, want_grad)

    logits_dev = to_device(logits)
    grad = logits_dev if in_place else to_device(np.full(logits.shape, np.nan, dtype))
    loss = gpu.softmax_cross_entropy(logits_dev, to_device(labels), grad)

    assert isinstance(loss, float)
    assert loss == pytest.approx(want_loss, rel=1e-12, abs=1e-12)  # float64 inside, on the same inputs
    tol = tolerance(dtype)
    np.testing.assert_allclose(to_host(grad), want_grad, rtol=tol, atol=tol / n)
    return loss


@settings(max_examples=25)
@given(dtype=st.sampled_from(DTYPES), n=rows(), n_classes=st.integers(1, 12), seed=seeds(),
       scale=st.sampled_from([0.1, 1.0, 10.0, 1e3]), in_place=st.booleans(), labels_dtype=st.sampled_from(["i8", "i4"]))
def test_softmax_cross_entropy_matches_reference(dtype, n, n_classes, seed, scale, in_place, labels_dtype):
    rng = np.random.default_rng(seed)
    logits = data(rng, (n, n_classes), dtype, scale=scale)
    labels = rng.integers(0, n_classes, n).astype(labels_dtype)
    check_softmax_cross_entropy(logits, labels, in_place)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_at_extreme_logits(dtype):
    """Logits near the dtype's largest value and far from 0: no overflow, the exact losses."""
    big = float(np.finfo(dtype).max) / 4
    logits = np.array([[big, -big, 0.0], [-big, big, 0.0]], dtype=dtype)
    loss = check_softmax_cross_entropy(logits, np.array([0, 2]))  # certain and right; certain and wrong
    assert loss == pytest.approx(float(logits[1, 1]) / 2, rel=1e-12)

    logits = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4], [-1e4, 1e4, 0.0]], dtype=dtype)
    loss = check_softmax_cross_entropy(logits, np.array([0, 1, 2, 0]), in_place=True)
    assert loss == pytest.approx((0.0 + np.log(2) + np.log(3) + 2e4) / 4, rel=1e-12)


def test_softmax_cross_entropy_two_blocks_and_the_empty_batch():
    rng = np.random.default_rng(3)
    n = 257  # one row more than a block
    check_softmax_cross_entropy(rng.normal(size=(n, 3)), rng.integers(0, 3, n))
    assert np.isnan(gpu.softmax_cross_entropy(np.empty((0, 3)), np.empty(0, np.int64), np.empty((0, 3))))


# ---------------------------------------------------------------------------------------------------
# Optimizers


def shapes():
    return st.one_of(st.tuples(st.integers(1, 300)), st.tuples(rows(), rows()))


@settings(max_examples=15)
@given(dtype=st.sampled_from(DTYPES), shape=shapes(), seed=seeds(), momentum=st.sampled_from([0.0, 0.9]),
       nesterov=st.booleans(), weight_decay=st.sampled_from([0.0, 0.01]))
def test_sgd_update_matches_reference_over_steps(dtype, shape, seed, momentum, nesterov, weight_decay):
    rng = np.random.default_rng(seed)
    param = data(rng, shape, dtype, special=0.0)
    grads = [data(rng, shape, dtype, special=0.0) for _ in range(3)]
    velocity = data(rng, shape, dtype, special=0.0)  # stale: the first step must overwrite it, not decay it
    want_param, want_velocity = param.astype(np.float64), velocity.astype(np.float64)
    param_dev = to_device(param)
    velocity_dev = to_device(velocity) if momentum else None
    for step, grad in enumerate(grads):
        ref.sgd_update(want_param, grad.astype(np.float64), want_velocity if momentum else None, 0.1, momentum,
                       nesterov, weight_decay, step == 0)
        gpu.sgd_update(param_dev, to_device(grad), velocity_dev, 0.1, momentum, nesterov, weight_decay, step == 0)
    tol = 10 * tolerance(dtype)
    np.testing.assert_allclose(to_host(param_dev), want_param, rtol=tol, atol=tol)
    if momentum:
        np.testing.assert_allclose(to_host(velocity_dev), want_velocity, rtol=tol, atol=tol)


@settings(max_examples=12)
@given(dtype=st.sampled_from(DTYPES), shape=shapes(), seed=seeds(), weight_decay=st.sampled_from([0.0, 0.01]),
       lr=st.sampled_from([1e-3, 0.1]), fresh=st.booleans())
def test_adam_update_matches_reference_over_steps(dtype, shape, seed, weight_decay, lr, fresh):
    rng = np.random.default_rng(seed)
    param = data(rng, shape, dtype, special=0.0)
    grads = [data(rng, shape, dtype, special=0.1) for _ in range(3)]  # exact zeros: m = v = 0 on a fresh start
    if fresh:
        m, v = np.zeros(shape, dtype), np.zeros(shape, dtype)
    else:  # a run already under way
        m, v = data(rng, shape, dtype, scale=0.1, special=0.0), np.abs(data(rng, shape, dtype, scale=0.01, special=0.0))
    want_param, want_m, want_v = param.astype(np.float64), m.astype(np.float64), v.astype(np.float64)
    got_param, got_m, got_v = to_device(param), to_device(m), to_device(v)
    for step, grad in enumerate(grads, start=1):
        ref.adam_update(want_param, grad.astype(np.float64), want_m, want_v, lr, 0.9, 0.999, 1e-8, weight_decay, step)
        gpu.adam_update(got_param, to_device(grad), got_m, got_v, lr, 0.9, 0.999, 1e-8, weight_decay, step)
    tol = 10 * tolerance(dtype)
    for got, want in [(got_param, want_param), (got_m, want_m), (got_v, want_v)]:
        np.testing.assert_allclose(to_host(got), want, rtol=tol, atol=tol)


def test_optimizer_grid_stride_loops(monkeypatch):
    """With the grid capped at one block, every element past the first block is still updated."""
    monkeypatch.setattr(gpu, "MAX_BLOCKS", 1)
    shape = (3, 211)  # 633 = 2 blocks of 256 and a remainder
    rng = np.random.default_rng(2)
    param, grad = rng.normal(size=shape), rng.normal(size=shape)
    want, velocity = param.copy(), np.zeros(shape)
    ref.sgd_update(want, grad, velocity, 0.1, 0.9, False, 0.0, True)
    got = to_device(param)
    gpu.sgd_update(got, to_device(grad), to_device(np.zeros(shape)), 0.1, 0.9, False, 0.0, True)
    np.testing.assert_allclose(to_host(got), want, rtol=1e-12)

    want_adam, m, v = param.copy(), np.zeros(shape), np.zeros(shape)
    ref.adam_update(want_adam, grad, m, v, 0.1, 0.9, 0.999, 1e-8, 0.0, 1)
    got = to_device(param)
    gpu.adam_update(got, to_device(grad), to_device(np.zeros(shape)), to_device(np.zeros(shape)),
                    0.1, 0.9, 0.999, 1e-8, 0.0, 1)
    np.testing.assert_allclose(to_host(got), want_adam, rtol=1e-12)


def test_optimizers_refuse_non_contiguous_parameters():
    param = np.zeros((4, 6))[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        gpu.sgd_update(param, np.zeros((4, 3)), None, 0.1, 0.0, False, 0.0, True)


# ---------------------------------------------------------------------------------------------------
# The tiled GEMM with the fused epilogue


KINKS = {"relu": [0.0], "leaky_relu": [0.0], "elu": [0.0], "selu": [0.0], "hard_tanh": [-1.0, 1.0]}


def check_matmul_bias_activation(act, dtype, n, k, m, seed, with_derivative):
    rng = np.random.default_rng(seed)
    z, w, b = data(rng, (n, k), dtype, special=0.0), data(rng, (k, m), dtype, special=0.0), data(rng, (m,), dtype)
    z64, w64, b64 = z.astype(np.float64), w.astype(np.float64), b.astype(np.float64)
    pre = z64 @ w64 + b64
    want_out, want_der = np.empty((n, m)), np.empty((n, m))
    ref.bias_activation(z64 @ w64, b64, act, want_out, want_der)

    out = to_device(np.full((n, m), np.nan, dtype))
    der = to_device(np.full((n, m), np.nan, dtype)) if with_derivative else None
    gpu.matmul_bias_activation(to_device(z), to_device(w), to_device(b), act, out, der)

    # the products are summed in the arrays' dtype, in another order than BLAS: bound that error,
    # then allow for phi and phi' (Lipschitz constants below 2 for every activation here)
    eps = np.finfo(dtype).eps
    err = (k + 2) * eps * (np.abs(z64) @ np.abs(w64) + np.abs(b64)) + np.finfo(dtype).tiny
    assert np.all(np.abs(to_host(out) - want_out) <= 2 * err + eps * np.abs(want_out))
    if with_derivative:
        near_kink = np.zeros(pre.shape, bool)
        for x in KINKS.get(act.name, []):
            near_kink |= np.abs(pre - x) <= err  # a rounding may cross a kink: phi' jumps there
        got_der = to_host(der)
        assert np.all((np.abs(got_der - want_der) <= 2 * err + eps * np.abs(want_der)) | near_kink)


@settings(max_examples=15)
@given(act=st.sampled_from(ACTIVATIONS), dtype=st.sampled_from(DTYPES), n=st.integers(1, 20),
       k=st.integers(1, 40), m=st.integers(1, 20), seed=seeds(), with_derivative=st.booleans())
def test_matmul_bias_activation_matches_matmul_then_reference(act, dtype, n, k, m, seed, with_derivative):
    check_matmul_bias_activation(act, dtype, n, k, m, seed, with_derivative)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTIVATIONS, ids=ACTIVATION_IDS)
def test_matmul_bias_activation_every_activation(act, dtype):
    check_matmul_bias_activation(act, dtype, 5, 19, 3, seed=11, with_derivative=True)


def test_matmul_bias_activation_tiles_are_exact_on_integers():
    """Several tiles in every direction (shapes 33 x 35 @ 35 x 17): small integers make every sum exact."""
    n, k, m = 33, 35, 17
    z = (np.arange(n * k).reshape(n, k) % 5 - 2).astype(np.float32)
    w = (np.arange(k * m).reshape(k, m) % 3 - 1).astype(np.float32)
    b = np.arange(m, dtype=np.float32) - 8
    out = to_device(np.empty((n, m), np.float32))
    gpu.matmul_bias_activation(to_device(z), to_device(w), to_device(b), activations.linear, out, None)
    np.testing.assert_array_equal(to_host(out), z @ w + b)


def test_matmul_bias_activation_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="do not multiply"):
        gpu.matmul_bias_activation(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros(5), activations.relu,
                                   np.zeros((2, 5)), None)


# ---------------------------------------------------------------------------------------------------
# Real GPU only: launches follow CuPy's current stream


@pytest.mark.skipif(cupy is None, reason="needs CuPy and a real CUDA GPU (the simulator has no streams)")
def test_kernels_run_on_cupys_current_stream():
    rng = np.random.default_rng(0)
    z, w, b = (cupy.asarray(rng.normal(size=shape).astype(np.float32)) for shape in [(512, 256), (256, 384), (384,)])
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        assert int(gpu._stream_of(z)[1]) == stream.ptr  # the Numba stream wraps CuPy's
        s = z @ w  # cuBLAS on `stream`; the kernel must come after it without any synchronize
        out, der = cupy.empty_like(s), cupy.empty_like(s)
        gpu.bias_activation(s, b, activations.tanh, out, der)
    stream.synchronize()
    want_out, want_der = np.empty(s.shape), np.empty(s.shape)
    ref.bias_activation(cupy.asnumpy(s).astype(np.float64), cupy.asnumpy(b).astype(np.float64), activations.tanh,
                        want_out, want_der)
    np.testing.assert_allclose(cupy.asnumpy(out), want_out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(cupy.asnumpy(der), want_der, rtol=1e-6, atol=1e-6)
