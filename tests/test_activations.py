"""Tests for tinyid.activations: derivatives, stability, dtypes, properties, the registry."""
import json
import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinyid import activations
from tinyid.activations import NAMES, SELU_ALPHA, SELU_LAMBDA, Activation, get
from tinyid.backend import get_backend, to_numpy

# Every activation with its defaults, plus parameter values that change the shape of the function.
ACTS = [get(name) for name in NAMES] + [
    get("leaky_relu", slope=0.0),
    get("leaky_relu", slope=0.2),
    get("leaky_relu", slope=1.0),
    get("elu", alpha=0.5),
    get("elu", alpha=2.0),
]
IDS = [repr(a).removeprefix("activations.get") for a in ACTS]

# Points where phi or phi' has a kink (softsign's |x| and elu's branch leave phi'' discontinuous at 0):
# a high-order finite difference is only accurate away from them.
KINKS = {
    "relu": (0.0,), "leaky_relu": (0.0,), "elu": (0.0,), "selu": (0.0,), "hard_tanh": (-1.0, 1.0), "softsign": (0.0,),
}

acts = pytest.mark.parametrize("act", ACTS, ids=IDS)
dtypes = pytest.mark.parametrize("dtype", [np.float32, np.float64])


def central_difference(f, x, h=1e-3):
    """Five-point central difference, error O(h^4): keeps float64 round-off and truncation both below 1e-9."""
    return (-f(x + 2 * h) + 8 * f(x + h) - 8 * f(x - h) + f(x - 2 * h)) / (12 * h)


# ------------------------------------------------------------------------------------------------
# Derivatives
# ------------------------------------------------------------------------------------------------


@acts
@given(x=arrays(np.float64, st.integers(1, 23), elements=st.floats(-6.0, 6.0)))
def test_derivative_matches_central_difference(act, x):
    # |x| <= 6 keeps phi' large enough (>= ~2e-5 for sigmoid/tanh) for a relative error to mean something.
    away = np.ones(x.shape, dtype=bool)
    for k in KINKS.get(act.name, ()):
        away &= np.abs(x - k) > 1e-2
    x = x[away]
    analytic = act.derivative(x)
    numeric = central_difference(act, x)
    err = np.abs(analytic - numeric)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    assert np.all(err <= 1e-6 * scale), (x[err > 1e-6 * scale], analytic, numeric)


@acts
def test_derivative_on_a_dense_grid(act):
    x = np.linspace(-6.0, 6.0, 2401) + 1e-3 * np.pi  # offset so no grid point sits on a kink
    for k in KINKS.get(act.name, ()):
        x = x[np.abs(x - k) > 1e-2]
    analytic, numeric = act.derivative(x), central_difference(act, x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=0)


def test_kink_conventions():
    x = np.array([-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(get("relu").derivative(x), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(get("leaky_relu", slope=0.3).derivative(x), [0.3, 0.3, 1.0])
    np.testing.assert_array_equal(get("hard_tanh").derivative([-1.0, -0.999, 0.0, 0.999, 1.0, 2.0]), [0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(get("elu", alpha=2.0).derivative([0.0]), [2.0])


def test_gelu_is_the_tanh_approximation():
    # 0.5 * (1 + tanh(sqrt(2/pi) * (1 + 0.044715))) = 0.84119199...; the erf form gives 0.84134474...
    assert get("gelu")(1.0) == pytest.approx(0.8411919906082768, abs=1e-13)
    assert abs(get("gelu")(1.0) - 0.8413447460685429) > 1e-4
    x = np.linspace(-4, 4, 81)
    ref = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(get("gelu")(x), ref, rtol=1e-14, atol=1e-15)


def test_selu_constants_give_the_self_normalizing_fixed_point():
    # For z ~ N(0, 1): E[selu(z)] = 0 and E[selu(z)^2] = 1 (Klambauer et al. 2017).
    z = np.linspace(-12.0, 12.0, 240_001)  # 0 lies on the grid, so trapezoid error stays O(dz^2)
    w = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    s = get("selu")(z)
    assert abs(np.trapezoid(s * w, z)) < 1e-8
    assert abs(np.trapezoid(s * s * w, z) - 1.0) < 1e-8
    assert (SELU_ALPHA, SELU_LAMBDA) == (pytest.approx(1.6732632423543772), pytest.approx(1.0507009873554805))


def test_tails_keep_relative_accuracy():
    """Tiny values deep in the tails are computed without cancellation (40-digit Decimal references)."""
    from decimal import Decimal, getcontext

    getcontext().prec = 40
    one = Decimal(1)

    def sig(z):
        return one / (one + (-z).exp())

    c, k = (Decimal(2) / Decimal(math.pi)).sqrt(), Decimal("0.044715")

    def gelu_and_grad(x):
        x = Decimal(x)
        s2u = sig(2 * c * (x + k * x**3))
        return x * s2u, s2u + 2 * x * s2u * (one - s2u) * c * (1 + 3 * k * x**2)

    checks = [
        (get("sigmoid")(-30.0), sig(Decimal(-30))),
        (get("sigmoid").derivative(30.0), sig(Decimal(30)) * (one - sig(Decimal(30)))),
        (get("tanh").derivative(20.0), 4 / (Decimal(20).exp() + Decimal(-20).exp()) ** 2),
        (get("elu")(-1e-10), Decimal(-1e-10).exp() - one),
    ]
    for x in (-6.0, -20.0):  # gelu(-20) ~ -1e-261: the clip of the cubic must not cut the tail short
        value, slope = gelu_and_grad(x)
        checks += [(get("gelu")(x), value), (get("gelu").derivative(x), slope)]
    for got, want in checks:
        assert float(got) == pytest.approx(float(want), rel=1e-12, abs=0)


# ------------------------------------------------------------------------------------------------
# Stability and dtypes
# ------------------------------------------------------------------------------------------------

LARGE = [-1e30, -1000.0, 1000.0, 1e30]


def _limits(act, x):
    """Asymptotic value and slope of phi at large |x| (x of one sign)."""
    a = dict(act.params)
    lam = SELU_LAMBDA
    pos = x > 0
    value = {
        "linear": x,
        "sigmoid": np.where(pos, 1.0, 0.0),
        "tanh": np.sign(x),
        "softsign": np.sign(x),
        "relu": np.where(pos, x, 0.0),
        "leaky_relu": np.where(pos, x, a.get("slope", 0) * x),
        "hard_tanh": np.sign(x),
        "elu": np.where(pos, x, -a.get("alpha", 0)),
        "selu": np.where(pos, lam * x, -lam * SELU_ALPHA),
        "gelu": np.where(pos, x, 0.0),
    }[act.name]
    slope = {
        "linear": np.ones_like(x),
        "relu": np.where(pos, 1.0, 0.0),
        "leaky_relu": np.where(pos, 1.0, a.get("slope", 0)),
        "elu": np.where(pos, 1.0, 0.0),
        "selu": np.where(pos, lam, 0.0),
        "gelu": np.where(pos, 1.0, 0.0),
    }.get(act.name, np.zeros_like(x))
    return value, slope


@acts
@dtypes
def test_large_inputs_are_finite_without_warnings_and_at_their_limits(act, dtype):
    x = np.array(LARGE, dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        y, dy = act(x), act.derivative(x)
    assert y.dtype == dtype and dy.dtype == dtype
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dy))
    value, slope = _limits(act, x.astype(np.float64))
    # softsign approaches +-1 like 1/|x|: 1e-3 away at |x| = 1000.
    np.testing.assert_allclose(y, value, rtol=2e-3, atol=0)
    np.testing.assert_allclose(dy, slope, rtol=1e-6, atol=1e-5)


@acts
@dtypes
def test_dtype_shape_and_array_kind_preserved(act, dtype):
    rng = np.random.default_rng(0)
    base = rng.normal(0, 3, size=(7, 10)).astype(dtype)
    x = base[:, ::3]  # non-contiguous
    for out in (act(x), act.derivative(x)):
        assert type(out) is np.ndarray and out.dtype == dtype and out.shape == x.shape
    assert np.shares_memory(act(x), base) is False  # never a view of the input (linear copies)


@acts
def test_float32_agrees_with_float64(act):
    x = np.random.default_rng(1).normal(0, 3, size=500)
    x32 = x.astype(np.float32)
    np.testing.assert_allclose(act(x32), act(x32.astype(np.float64)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(act.derivative(x32), act.derivative(x32.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_scalars_lists_and_integers_become_float64():
    assert activations.relu(3).dtype == np.float64
    np.testing.assert_allclose(activations.tanh([0, 1]), [0.0, math.tanh(1.0)])
    assert activations.sigmoid.derivative(np.arange(3)).dtype == np.float64


@acts
def test_matches_numpy_on_every_backend(act, backend_name):
    xp = get_backend(backend_name).xp
    x = np.random.default_rng(2).normal(0, 3, size=(5, 13))
    for dtype in (np.float32, np.float64):
        xd = xp.asarray(x.astype(dtype))
        y, dy = act(xd), act.derivative(xd)
        assert type(y) is type(xd) and y.dtype == dtype and dy.dtype == dtype
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(to_numpy(y), act(x.astype(dtype)), rtol=rtol, atol=1e-6 * rtol)
        np.testing.assert_allclose(to_numpy(dy), act.derivative(x.astype(dtype)), rtol=rtol, atol=1e-6 * rtol)


# ------------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------------

GRID = np.concatenate([np.linspace(-5, 5, 1001), [-1e3, -1.0, -0.5, 0.5, 1.0, 1e3]])


@acts
def test_symmetric_flag_is_true_exactly_for_odd_functions(act):
    odd_error = np.max(np.abs(act(-GRID) + act(GRID)))
    if act.symmetric:
        assert odd_error <= 1e-15
    else:
        assert odd_error > 1e-3


@acts
def test_derivative_at_zero(act):
    assert act.derivative(0.0) == pytest.approx(act.derivative_at_zero, abs=1e-15)
    h = 1e-7
    left = (act(0.0) - act(-h)) / h  # kinks take the left branch
    assert left == pytest.approx(act.derivative_at_zero, abs=1e-5)
    if 0.0 not in KINKS.get(act.name, ()):
        assert central_difference(act, 0.0) == pytest.approx(act.derivative_at_zero, abs=1e-9)


def test_property_values():
    expected = {
        "linear": (True, 1.0), "sigmoid": (False, 0.25), "tanh": (True, 1.0), "softsign": (True, 1.0),
        "relu": (False, 0.0), "leaky_relu": (False, 0.01), "hard_tanh": (True, 1.0), "elu": (False, 1.0),
        "selu": (False, SELU_LAMBDA * SELU_ALPHA), "gelu": (False, 0.5),
    }
    assert set(expected) == set(NAMES)
    for name, (sym, d0) in expected.items():
        assert (get(name).symmetric, get(name).derivative_at_zero) == (sym, pytest.approx(d0))


# ------------------------------------------------------------------------------------------------
# Registry
# ------------------------------------------------------------------------------------------------


def test_names_and_module_level_defaults():
    assert NAMES == ("linear", "sigmoid", "tanh", "softsign", "relu", "leaky_relu", "hard_tanh", "elu", "selu", "gelu")
    for name in NAMES:
        assert getattr(activations, name) == get(name)
    assert dict(get("leaky_relu").params) == {"slope": 0.01}
    assert dict(get("elu").params) == {"alpha": 1.0}
    assert dict(get("tanh").params) == {}


@acts
def test_config_round_trip(act):
    config = json.loads(json.dumps(act.to_config()))
    assert config["name"] == act.name
    again = get(config)
    assert again == act and hash(again) == hash(act)
    assert pickle.loads(pickle.dumps(act)) == act
    assert get(act) is act


def test_get_forms_and_overrides():
    a = get("leaky_relu", slope=0.2)
    assert get({"name": "leaky_relu", "slope": 0.2}) == a
    assert get(get("leaky_relu"), slope=0.2) == a
    assert get({"name": "leaky_relu", "slope": 0.5}, slope=0.2) == a
    assert get("leaky_relu", slope=1).params["slope"] == 1.0 and isinstance(get("leaky_relu", slope=1).params["slope"], float)
    assert get("leaky_relu", slope=np.float32(0.25))(np.float32([-4.0])).dtype == np.float32
    assert len({get("elu"), get("elu", alpha=1), get("elu", alpha=2)}) == 2
    with pytest.raises(TypeError):
        a.params["slope"] = 3  # read-only


@pytest.mark.parametrize(
    "spec, params, match",
    [
        ("softplus", {}, "unknown activation 'softplus'; valid names: linear, sigmoid"),
        ("tanh", {"slope": 1}, "'slope'.*'tanh'.*takes no parameters"),
        ("leaky_relu", {"alpha": 1}, "'alpha'.*'leaky_relu'.*takes only slope"),
        ("elu", {"alpha": -1.0}, "'alpha'.*'elu'.*>= 0"),
        ("leaky_relu", {"slope": -0.1}, "'slope'.*>= 0"),
        ("leaky_relu", {"slope": float("nan")}, "'slope'.*finite"),
        ("elu", {"alpha": float("inf")}, "'alpha'.*finite"),
        ("elu", {"alpha": "1"}, "real number"),
        ("elu", {"alpha": True}, "real number"),
        ({"slope": 0.1}, {}, "'name'"),
        ({"name": "relu", "slope": 0.1}, {}, "'slope'.*'relu'"),
        (3, {}, "cannot make an activation"),
        (None, {}, "cannot make an activation"),
    ],
)
def test_get_errors(spec, params, match):
    with pytest.raises(ValueError, match=match):
        get(spec, **params)


def test_activation_constructor_checks_name_and_properties():
    with pytest.raises(ValueError, match="unknown activation"):
        Activation("swish", {}, False, 0.5)
    with pytest.raises(ValueError, match="derivative_at_zero=0.25"):
        Activation("sigmoid", {}, False, 1.0)
    with pytest.raises(ValueError, match="parameters"):
        Activation("leaky_relu", {}, False, 0.01)
    assert Activation("leaky_relu", {"slope": 0.2}, False, 0.2) == get("leaky_relu", slope=0.2)
