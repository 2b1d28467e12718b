"""The CPU kernel set (tinyid.kernels.cpu, numba.njit) against the float64 reference kernels.

Every comparison is with :mod:`tinyid.kernels.reference` run in float64 on the same inputs (for
float32, on the float32 values). Tolerances are stated in units of the arrays' own rounding:

* float64 results are held to a few ulps of the reference (both sides are float64 code, which may
  differ in the last bits: the C library's ``exp`` against NumPy's, FMA contraction);
* float32 results are held to **one float32 ulp of the exact float64 answer**: the kernels compute
  in float64 registers (with a vectorized exponential accurate to 1e-10 relative) and round once
  when storing, so each stored value is the float64 answer correctly rounded, or one step off where
  that answer lies within 1e-10 of a rounding midpoint.

Compiling dominates the run time, so each test is parametrized over the few compiled variants it
needs (activation name x dtype x in-place / no derivative) and hypothesis varies only the data.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip(
    "numba", reason="numba is not installed (pip install 'tinyid[fast]'), so the CPU kernels are not tested"
)

from tinyid import activations  # noqa: E402
from tinyid.kernels import cpu  # noqa: E402
from tinyid.kernels import reference as ref  # noqa: E402

pytestmark = pytest.mark.numba

DTYPES = [np.float32, np.float64]
EPS64 = np.finfo(np.float64).eps
#: Every registry activation with its defaults, and leaky_relu and elu with other parameters.
ACTIVATIONS = [activations.get(name) for name in activations.NAMES] + [
    activations.get("leaky_relu", slope=0.2),
    activations.get("elu", alpha=0.5),
]
ACTIVATION_IDS = [f"{a.name}{dict(a.params) or ''}" for a in ACTIVATIONS]
#: Placed among the random values: the kinks (0, +-1), just beside them, and the tails.
SPECIAL = np.array([0.0, 1.0, -1.0, 1 + 2**-20, 1 - 2**-20, -(1 + 2**-20), 2**-30, -(2**-30), 30.0, -30.0,
                    1e4, -1e4])


def seeds():
    return st.integers(0, 2**32 - 1)


def sizes():
    """1 to 67, often 1 or a prime (never a multiple of a vector width)."""
    return st.one_of(st.sampled_from([1, 2, 3, 7, 31, 61, 67]), st.integers(1, 67))


def data(rng, shape, dtype, scale=1.0, special=0.1):
    """Normal values times ``scale``, a fraction ``special`` of them replaced by :data:`SPECIAL` values."""
    a = rng.normal(0.0, scale, shape)
    mask = rng.random(shape) < special
    a[mask] = rng.choice(SPECIAL, int(mask.sum()))
    return a.astype(dtype)


def ulps32(got, want):
    """|got - want| in units of the float32 spacing at ``want`` (``want`` exact, in float64)."""
    spacing = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - want) / spacing


# ---------------------------------------------------------------------------------------------------
# bias_activation


def gelu_exponent(x):
    """|2u| of the tanh-approximation GELU, the argument its exponential sees."""
    xc = np.clip(x, -30.0, 30.0)
    return np.abs(2.0 * math.sqrt(2.0 / math.pi) * (xc + 0.044715 * xc**3))


def check_against_reference(act, pre, out, derivative):
    """``out`` and ``derivative`` (kernel, any float dtype) against the float64 reference at ``pre``."""
    want_out, want_der = np.empty(pre.shape), np.empty(pre.shape)
    ref.bias_activation(pre.astype(np.float64), np.zeros(pre.shape[1]), act, want_out, want_der)
    pairs = [(out, want_out, "value")] + ([(derivative, want_der, "derivative")] if derivative is not None else [])
    for got, want, what in pairs:
        if got.dtype == np.float32:
            # one float32 ulp of the exact answer (see the module docstring)
            bad = ulps32(got, want) > 1.0
        else:
            # 8 ulps (np.spacing: also right for subnormal results). GELU's exponent
            # 2u = 2 sqrt(2/pi) (x + 0.044715 x^3) is itself rounded (differently with FMA), and e^-|2u|
            # turns that absolute error, ~|2u| ulps, into a relative one; its derivative is a sum of O(1)
            # terms that cancels near x = -0.75: allow 8 ulps of 1 there.
            ulps = 8 * (1.0 + (gelu_exponent(pre) if act.name == "gelu" else 0.0))
            atol = 8 * EPS64 if (act.name == "gelu" and what == "derivative") else 0.0
            bad = np.abs(got - want) > ulps * np.spacing(np.abs(want)) + atol
        assert not bad.any(), (
            f"{act.name} {what} ({got.dtype}) at x = {pre[bad][:5]}: got {got[bad][:5]}, want {want[bad][:5]}")


MODES = ["separate", "in place", "in place, no derivative"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ACTIVATIONS, ids=ACTIVATION_IDS)
@settings(max_examples=4)
@given(n=sizes(), m=sizes(), seed=seeds(), scale=st.sampled_from([1.0, 4.0, 30.0]), zero_bias=st.booleans())
def test_bias_activation_matches_reference(act, dtype, mode, n, m, seed, scale, zero_bias):
    rng = np.random.default_rng(seed)
    s = data(rng, (n, m), dtype, scale)
    b = np.zeros(m, dtype) if zero_bias else data(rng, (m,), dtype)  # a zero bias keeps the kinks exact
    pre = s + b  # rounded to the dtype, exactly as the kernel adds (the reference then sees the same x)
    out = s if mode.startswith("in place") else np.full((n, m), np.nan, dtype)
    derivative = None if mode.endswith("no derivative") else np.full((n, m), np.nan, dtype)

    cpu.bias_activation(s, b, act, out, derivative)

    assert out.dtype == dtype and (derivative is None or derivative.dtype == dtype)
    check_against_reference(act, pre, out, derivative)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", [activations.tanh, activations.relu], ids=["tanh", "relu"])
def test_bias_activation_non_contiguous(act, dtype):
    """Strided and transposed views in, a Fortran-ordered derivative out."""
    rng = np.random.default_rng(7)
    s = data(rng, (40, 61), dtype, 4.0)[::2, 1::3].T  # (21, 20), strided both ways
    b = data(rng, (40,), dtype)[::2]
    out = np.full(s.shape, np.nan, dtype)[:, ::-1]
    derivative = np.full(s.shape, np.nan, dtype, order="F")
    pre = s + b
    cpu.bias_activation(s, b, act, out, derivative)
    check_against_reference(act, pre, out, derivative)


def test_vector_exponential_accuracy():
    """The float32 kernels' exp and expm1: 1e-10 relative over the whole clamp range, exact at 0."""
    a = np.concatenate([np.linspace(-200.0, 200.0, 40001), np.geomspace(1e-300, 1.0, 500),
                        -np.geomspace(1e-300, 1.0, 500)])
    got = np.array([cpu._exp_parts(x) for x in a])
    want_m, want_e = np.expm1(a), np.exp(a)
    assert np.all(np.abs(got[:, 0] - want_m) <= 1e-10 * np.abs(want_m))
    assert np.all(np.abs(got[:, 1] - want_e) <= 1e-10 * want_e)
    assert tuple(cpu._exp_parts(0.0)) == (0.0, 1.0)
    assert np.isnan(cpu._exp_parts(np.nan)[1])
    assert cpu._exp_parts(-1e30)[1] < 1e-80 and cpu._exp_parts(1e30)[1] > 1e80  # clamped: no inf, no nan


# ---------------------------------------------------------------------------------------------------
# activation_backward


@pytest.mark.parametrize("mode", ["separate", "in place", "no derivative"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=10)
@given(n=sizes(), m=sizes(), seed=seeds(), scale=st.sampled_from([1.0, 30.0]))
def test_activation_backward_matches_reference(dtype, mode, n, m, seed, scale):
    rng = np.random.default_rng(seed)
    dy, derivative = data(rng, (n, m), dtype, scale), data(rng, (n, m), dtype)
    if mode == "no derivative":
        derivative = None
    want_ds, want_db = np.empty((n, m)), np.empty(m)
    ref.activation_backward(dy.astype(np.float64), None if derivative is None else derivative.astype(np.float64),
                            want_ds, want_db)

    ds = dy if mode == "in place" else np.full((n, m), np.nan, dtype)
    db = np.full(m, np.nan, dtype)
    cpu.activation_backward(dy, derivative, ds, db)

    # ds: one product, correctly rounded (exact in float64, so the float64 reference is the exact answer)
    np.testing.assert_array_equal(ds, want_ds.astype(dtype))
    # db: n rounded terms summed in the dtype; the standard bound n u sum|ds| (u = eps / 2)
    u = np.finfo(dtype).eps / 2
    assert np.all(np.abs(db - want_db) <= n * u * np.abs(want_ds).sum(axis=0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_backward_non_contiguous(dtype):
    rng = np.random.default_rng(8)
    dy = data(rng, (23, 30), dtype).T  # (30, 23)
    derivative = data(rng, (60, 23), dtype)[::2]
    ds, db = np.empty((30, 23), dtype, order="F"), np.empty(46, dtype)[::2]
    want_ds, want_db = np.empty((30, 23)), np.empty(23)
    ref.activation_backward(dy.astype(np.float64), derivative.astype(np.float64), want_ds, want_db)
    cpu.activation_backward(dy, derivative, ds, db)
    np.testing.assert_array_equal(ds, want_ds.astype(dtype))
    np.testing.assert_allclose(db, want_db, rtol=30 * np.finfo(dtype).eps, atol=30 * np.finfo(dtype).eps)


# ---------------------------------------------------------------------------------------------------
# softmax_cross_entropy


def check_softmax_cross_entropy(logits, labels, in_place):
    n = logits.shape[0]
    want_grad = np.empty(logits.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither side may overflow or divide by zero
        want_loss = ref.softmax_cross_entropy(logits.astype(np.float64), labels, want_grad)
        grad = logits if in_place else np.full(logits.shape, np.nan, logits.dtype)
        loss = cpu.softmax_cross_entropy(logits, labels, grad)

    assert isinstance(loss, float) and grad.dtype == logits.dtype
    # float64 inside for both dtypes; the loss is a mean of n non-negative terms: n eps relative
    assert loss == pytest.approx(want_loss, rel=8 * n * EPS64, abs=1e-300)
    # each entry: a few float64 roundings (absolute eps / n where p - 1 cancels), then one rounding to the dtype
    tol = np.spacing(np.abs(want_grad).astype(logits.dtype)).astype(np.float64) + 8 * EPS64 / n
    assert np.all(np.abs(grad - want_grad) <= tol)
    return loss


@pytest.mark.parametrize("in_place", [False, True], ids=["separate", "in place"])
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=15)
@given(n=sizes(), n_classes=sizes(), seed=seeds(), scale=st.sampled_from([0.1, 1.0, 30.0, 1e4]))
def test_softmax_cross_entropy_matches_reference(dtype, in_place, n, n_classes, seed, scale):
    rng = np.random.default_rng(seed)
    logits = data(rng, (n, n_classes), dtype, scale)
    labels = rng.integers(0, n_classes, n)
    check_softmax_cross_entropy(logits, labels, in_place)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_at_extreme_logits(dtype):
    """Logits of 1e4 (e^1e4 overflows every float) and near the largest float: no warning, the exact losses."""
    logits = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4], [-1e4, 1e4, 0.0]], dtype=dtype)
    loss = check_softmax_cross_entropy(logits, np.array([0, 1, 2, 0]), in_place=False)
    assert loss == pytest.approx((0.0 + np.log(2) + np.log(3) + 2e4) / 4, rel=1e-15)

    big = float(np.finfo(dtype).max) / 4
    logits = np.array([[big, -big, 0.0], [-big, big, 0.0]], dtype=dtype)
    loss = check_softmax_cross_entropy(logits, np.array([0, 2]), in_place=True)  # certain and right / and wrong
    assert loss == pytest.approx(big / 2, rel=1e-15)


# ---------------------------------------------------------------------------------------------------
# Optimizers


def param_shapes():
    """Any shape: a scalar, vectors, matrices with 1 and prime sides, small 3-d blocks."""
    return st.one_of(st.lists(sizes(), max_size=2).map(tuple),
                     st.lists(st.integers(1, 7), min_size=3, max_size=3).map(tuple))


def assert_close_after_steps(got, want, dtype, steps, scale):
    # a handful of roundings per step, each of at most eps times the largest quantity in play
    atol = 16 * steps * np.finfo(dtype).eps * scale
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=30)
@given(shape=param_shapes(), seed=seeds(), steps=st.integers(1, 4), lr=st.sampled_from([0.01, 0.5]),
       momentum=st.sampled_from([0.0, 0.9]), nesterov=st.booleans(), weight_decay=st.sampled_from([0.0, 0.1]))
def test_sgd_update_matches_reference_over_steps(dtype, shape, seed, steps, lr, momentum, nesterov, weight_decay):
    rng = np.random.default_rng(seed)
    param = data(rng, shape, dtype, special=0.0)
    grads = [data(rng, shape, dtype, special=0.0) for _ in range(steps)]
    velocity = np.full(shape, np.nan, dtype) if momentum else None  # overwritten on the first step
    want_param, want_velocity = param.astype(np.float64), np.zeros(shape)
    for step, grad in enumerate(grads):
        ref.sgd_update(want_param, grad.astype(np.float64), want_velocity if momentum else None, lr, momentum,
                       nesterov, weight_decay, step == 0)
        cpu.sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay, step == 0)

    assert param.dtype == dtype
    scale = 1 + np.abs(want_param).max() + 20 * max(np.abs(g).max() for g in grads)  # |v| <= |g| / (1 - momentum)
    assert_close_after_steps(param, want_param, dtype, steps, scale)
    if momentum:
        assert_close_after_steps(velocity, want_velocity, dtype, steps, scale)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25)
@given(shape=param_shapes(), seed=seeds(), steps=st.integers(1, 5), lr=st.sampled_from([1e-3, 0.1]),
       weight_decay=st.sampled_from([0.0, 0.1]))
def test_adam_update_matches_reference_over_steps(dtype, shape, seed, steps, lr, weight_decay):
    rng = np.random.default_rng(seed)
    param = data(rng, shape, dtype, special=0.0)
    grads = [data(rng, shape, dtype, special=0.0) for _ in range(steps)]
    m, v = np.zeros(shape, dtype), np.zeros(shape, dtype)
    want_param, want_m, want_v = param.astype(np.float64), np.zeros(shape), np.zeros(shape)
    for step, grad in enumerate(grads, start=1):
        ref.adam_update(want_param, grad.astype(np.float64), want_m, want_v, lr, 0.9, 0.999, 1e-8, weight_decay, step)
        cpu.adam_update(param, grad, m, v, lr, 0.9, 0.999, 1e-8, weight_decay, step)

    scale = 1 + np.abs(want_param).max() + max(np.abs(g).max() for g in grads) ** 2
    for got, want in [(param, want_param), (m, want_m), (v, want_v)]:
        assert got.dtype == dtype
        assert_close_after_steps(got, want, dtype, steps, scale)


def test_optimizers_take_non_contiguous_gradients_and_refuse_non_contiguous_state():
    rng = np.random.default_rng(4)
    param, grad = rng.normal(size=(4, 3)), rng.normal(size=(3, 4)).T  # grad: a transposed view
    want = param.copy()
    ref.sgd_update(want, grad, None, 0.1, 0.0, False, 0.0, True)
    cpu.sgd_update(param, grad, None, 0.1, 0.0, False, 0.0, True)
    np.testing.assert_array_equal(param, want)

    strided = np.zeros((4, 6))[:, ::2]  # updating a copy would silently lose the step
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.sgd_update(strided, grad, None, 0.1, 0.0, False, 0.0, True)
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.sgd_update(param, grad, strided, 0.1, 0.9, False, 0.0, True)
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.adam_update(param, grad, np.zeros((4, 3)), strided, 0.1, 0.9, 0.999, 1e-8, 0.0, 1)


def test_interface_matches_the_reference_set():
    assert cpu.NAME == "cpu"
    assert cpu.__all__ == ref.__all__


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_batch, n_in, n_out", [(1, 1, 1), (7, 13, 5), (31, 2, 61)])
def test_sgd_weight_update_is_w_minus_lr_z_t_ds(dtype, n_batch, n_in, n_out):
    if not cpu._GEMM:
        pytest.skip("NumPy's bundled OpenBLAS was not found: sgd_weight_update always declines here")
    rng = np.random.default_rng(n_batch * 100 + n_in)
    wide = rng.normal(size=(n_batch, n_in + 3)).astype(dtype)
    for z in (wide[:, :n_in].copy(), wide[:, :n_in]):  # contiguous, and rows with a longer stride
        ds = rng.normal(size=(n_batch, n_out)).astype(dtype)
        W = rng.normal(size=(n_in, n_out)).astype(dtype)
        expected = W.astype(np.float64) - 0.1 * (z.astype(np.float64).T @ ds.astype(np.float64))
        assert cpu.sgd_weight_update(W, z, ds, 0.1) is True
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(W, expected, rtol=0, atol=8 * eps * (1 + n_batch) * max(1.0, np.abs(expected).max()))


def test_sgd_weight_update_declines_what_it_cannot_do_and_changes_nothing():
    rng = np.random.default_rng(0)
    z, ds = rng.normal(size=(4, 6)), rng.normal(size=(4, 3))
    W = rng.normal(size=(6, 3))
    before = W.copy()
    assert cpu.sgd_weight_update(W, z, ds[:, ::-1], 0.1) is False             # ds not C-contiguous
    assert cpu.sgd_weight_update(W, rng.normal(size=(4, 12))[:, ::2], ds, 0.1) is False  # z rows strided
    assert cpu.sgd_weight_update(W, z.astype(np.float32), ds, 0.1) is False   # dtype mismatch
    assert cpu.sgd_weight_update(W.T.copy().T, z, ds, 0.1) is False           # W not C-contiguous
    np.testing.assert_array_equal(W, before)
