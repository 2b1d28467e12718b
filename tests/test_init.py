"""Tests for tinyid.init.

The statistical tests use fixed seeds and tolerances derived from the sampling distribution of each estimate:
with N i.i.d. entries of variance sigma^2 and fourth moment mu4,

* the sample mean has standard error sigma / sqrt(N);
* the sample variance has standard error sqrt((mu4 - sigma^4) / N), with mu4 = 9/5 sigma^4 (uniform)
  or 3 sigma^4 (normal);
* the sample fourth moment has standard error sqrt((mu8 - mu4^2) / N), mu8 = 9 sigma^8 (uniform) or 105 sigma^8
  (normal), which tells the two distributions apart;

and every check allows Z = 5 standard errors (a false alarm about once in 1.7 million runs per check; with fixed
seeds the outcome is deterministic anyway).
"""
import functools
import json
import math

import numpy as np
import pytest

from tinyid import activations
from tinyid import init
from tinyid.init import NAMES, gain, get, to_config

Z = 5.0
FAN_IN, FAN_OUT = 300, 700  # unequal, so fan_in / fan_out / their mean give clearly different variances
RANDOM = [n for n in NAMES if n != "identity"]

# Standardized moments: mu4 / sigma^4 and mu8 / sigma^8.
MOMENTS = {"uniform": (9 / 5, 9.0), "normal": (3.0, 105.0)}


def rng(seed=0):
    return np.random.default_rng(seed)


def assert_mean_var(w, var, dist):
    """Sample mean ~ 0 and sample variance ~ var, within Z standard errors of their sampling distributions."""
    n = w.size
    k4, k8 = MOMENTS[dist]
    se_mean = math.sqrt(var / n)
    se_var = math.sqrt((k4 - 1.0) * var**2 / n)
    assert abs(w.mean()) <= Z * se_mean, (w.mean(), se_mean)
    assert abs(w.var(ddof=1) - var) <= Z * se_var, (w.var(ddof=1), var, se_var)
    # The fourth moment pins the distribution's shape (uniform 1.8 sigma^4 vs normal 3 sigma^4).
    se_m4 = math.sqrt((k8 - k4**2) * var**4 / n)
    assert abs(np.mean(w**4) - k4 * var**2) <= Z * se_m4, (np.mean(w**4) / var**2, k4)


def assert_uniform_bound(w, bound):
    """Never beyond the bound, and close to it: P(max|W| < (1 - 1e-4) bound) = (1 - 1e-4)^N ~ e^-21 here."""
    assert np.max(np.abs(w)) <= bound
    assert np.max(np.abs(w)) >= (1 - 1e-4) * bound


def assert_not_truncated(w, var):
    """A plain normal puts 4.55% of its mass beyond 2 sigma (a 2-sigma truncated one puts none)."""
    p = math.erfc(2 / math.sqrt(2))
    frac = np.mean(np.abs(w) > 2 * math.sqrt(var))
    assert abs(frac - p) <= Z * math.sqrt(p * (1 - p) / w.size), (frac, p)


# (initializer, kwargs, Var[W] as a function of (fan_in, fan_out), distribution)
CASES = [
    ("uniform_fanin", {}, lambda fi, fo: 1 / (3 * fi), "uniform"),
    ("xavier_uniform", {}, lambda fi, fo: 2 / (fi + fo), "uniform"),
    ("xavier_uniform", {"gain": 5 / 3}, lambda fi, fo: (5 / 3) ** 2 * 2 / (fi + fo), "uniform"),
    ("xavier_normal", {}, lambda fi, fo: 2 / (fi + fo), "normal"),
    ("xavier_normal", {"gain": 2.0}, lambda fi, fo: 4 * 2 / (fi + fo), "normal"),
    ("he_uniform", {}, lambda fi, fo: 2 / fi, "uniform"),
    ("he_uniform", {"mode": "fan_out"}, lambda fi, fo: 2 / fo, "uniform"),
    ("he_uniform", {"a": 0.5}, lambda fi, fo: 2 / (1.25 * fi), "uniform"),
    ("he_uniform", {"mode": "fan_out", "a": -0.5}, lambda fi, fo: 2 / (1.25 * fo), "uniform"),
    ("he_normal", {}, lambda fi, fo: 2 / fi, "normal"),
    ("he_normal", {"mode": "fan_out"}, lambda fi, fo: 2 / fo, "normal"),
    ("he_normal", {"a": 0.5}, lambda fi, fo: 2 / (1.25 * fi), "normal"),
    ("he_normal", {"mode": "fan_out", "a": 1.0}, lambda fi, fo: 1 / fo, "normal"),
    ("lecun_normal", {}, lambda fi, fo: 1 / fi, "normal"),
]


@pytest.mark.parametrize("name, kwargs, var, dist", CASES, ids=[f"{c[0]}{c[1] or ''}" for c in CASES])
def test_mean_and_variance_match_the_formula(name, kwargs, var, dist):
    w = getattr(init, name)(FAN_IN, FAN_OUT, rng(1234), **kwargs)
    v = var(FAN_IN, FAN_OUT)
    assert_mean_var(w, v, dist)
    if dist == "uniform":
        assert_uniform_bound(w, math.sqrt(3 * v))
    else:
        assert_not_truncated(w, v)


def test_uniform_fanin_is_the_standard_heuristic():
    w = init.uniform_fanin(FAN_IN, FAN_OUT, rng(7))
    assert_uniform_bound(w, 1 / math.sqrt(FAN_IN))
    n_var = FAN_IN * w.var(ddof=1)  # n Var[W] = 1/3
    se = FAN_IN * math.sqrt((9 / 5 - 1) / w.size) / (3 * FAN_IN)
    assert abs(n_var - 1 / 3) <= Z * se


def test_xavier_uniform_bound():
    w = init.xavier_uniform(FAN_IN, FAN_OUT, rng(8), gain=2.0)
    assert_uniform_bound(w, 2.0 * math.sqrt(6 / (FAN_IN + FAN_OUT)))


def test_he_modes_differ_and_slope_shrinks():
    # The two modes keep different variances when fans differ: ratio fan_out / fan_in = 7/3.
    v_in = init.he_normal(FAN_IN, FAN_OUT, rng(3), mode="fan_in").var()
    v_out = init.he_normal(FAN_IN, FAN_OUT, rng(3), mode="fan_out").var()
    assert v_in / v_out == pytest.approx(FAN_OUT / FAN_IN, rel=1e-12)  # same seed: exactly the scale ratio
    v_a = init.he_uniform(FAN_IN, FAN_OUT, rng(3), a=0.2).var()
    assert v_a / init.he_uniform(FAN_IN, FAN_OUT, rng(3)).var() == pytest.approx(1 / 1.04, rel=1e-12)
    # He's condition (1 + a^2) n Var[W] / 2 = 1 through the gain table: std = gain(leaky_relu, a) / sqrt(n).
    w = init.he_normal(FAN_IN, FAN_OUT, rng(4), a=0.2)
    assert_mean_var(w, (gain("leaky_relu", 0.2) / math.sqrt(FAN_IN)) ** 2, "normal")


# ------------------------------------------------------------------------------------------------
# Orthogonal
# ------------------------------------------------------------------------------------------------

SHAPES = [(64, 64), (100, 30), (30, 100), (1, 5), (5, 1), (1, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("g", [1.0, 2.5])
def test_orthogonal_is_orthonormal(shape, g):
    w = init.orthogonal(*shape, rng(11), gain=g)
    assert w.shape == shape and w.dtype == np.float64
    fan_in, fan_out = shape
    gram = w.T @ w if fan_in >= fan_out else w @ w.T
    np.testing.assert_allclose(gram, g**2 * np.eye(min(shape)), rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(6, 6), (9, 4), (4, 9)])
def test_orthogonal_is_haar(shape):
    """The diagonal of a Haar matrix is symmetric about 0; LAPACK's QR without the sign fix makes it negative.

    For Haar O(n) the diagonal entries have mean 0, variance 1/n and are uncorrelated, so with k = min(shape),
    n = max(shape), the sum of the first k diagonal entries has variance k/n.
    """
    m = 400
    r = rng(5)
    ws = [init.orthogonal(*shape, r) for _ in range(m)]
    k, n = min(shape), max(shape)
    diag_sums = np.array([np.trace(w[:k, :k]) for w in ws])
    assert abs(diag_sums.mean()) <= Z * math.sqrt(k / n / m)
    # Standard error of a sample variance with the Gaussian fourth moment; the bounded Haar entries have lighter
    # tails than a Gaussian, so this tolerance is conservative.
    assert diag_sums.var() == pytest.approx(k / n, abs=Z * (k / n) * math.sqrt(2 / m))
    positive = np.mean([w[0, 0] > 0 for w in ws])
    assert abs(positive - 0.5) <= Z * math.sqrt(0.25 / m)
    # Second moment of an entry: E[W_ij^2] = 1/n exactly (by orthonormality), a sanity check on the scale.
    assert np.mean([np.mean(w**2) for w in ws]) == pytest.approx(1 / n, rel=1e-12)


# ------------------------------------------------------------------------------------------------
# Identity
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3)])
def test_identity_is_exact(shape):
    np.testing.assert_array_equal(init.identity(*shape), np.eye(*shape))
    np.testing.assert_array_equal(init.identity(*shape, rng(0), sigma=0.5), 0.5 * np.eye(*shape))
    np.testing.assert_array_equal(init.identity(*shape, rng(1), sigma=0.5), init.identity(*shape, None, sigma=0.5))


# ------------------------------------------------------------------------------------------------
# Common contract
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (7, 3), (13, 13)])
def test_shape_dtype_host(name, shape):
    w = get(name)(*shape, rng(0))
    assert type(w) is np.ndarray and w.shape == shape and w.dtype == np.float64 and w.flags.c_contiguous


@pytest.mark.parametrize("name", RANDOM)
def test_same_seed_same_array(name):
    f = get(name)
    np.testing.assert_array_equal(f(9, 11, rng(42)), f(9, 11, rng(42)))
    assert not np.array_equal(f(9, 11, rng(42)), f(9, 11, rng(43)))


@pytest.mark.parametrize("name", RANDOM)
@pytest.mark.parametrize("bad_rng", [None, 42, np.random.RandomState(0)])
def test_rng_must_be_a_generator(name, bad_rng):
    with pytest.raises(TypeError, match=r"numpy\.random\.default_rng\(seed\)"):
        get(name)(3, 4, bad_rng)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("fans", [(0, 3), (3, 0), (-1, 3), (2.0, 3), (3, "4"), (True, 3)])
def test_fans_must_be_positive_ints(name, fans):
    with pytest.raises(ValueError, match="fan_in|fan_out"):
        get(name)(*fans, rng(0))


def test_numpy_integer_fans_are_fine():
    assert init.xavier_uniform(np.int64(3), np.int32(4), rng(0)).shape == (3, 4)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: init.he_normal(3, 3, rng(), mode="fanin"), "mode"),
        (lambda: init.he_uniform(3, 3, rng(), a=float("nan")), "a must be"),
        (lambda: init.xavier_normal(3, 3, rng(), gain=0.0), "gain must be > 0"),
        (lambda: init.orthogonal(3, 3, rng(), gain=-1.0), "gain must be > 0"),
        (lambda: init.identity(3, 3, sigma=float("inf")), "sigma"),
    ],
)
def test_bad_keyword_values(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------------------
# get / to_config
# ------------------------------------------------------------------------------------------------


def test_get_forms():
    assert get("he_normal") is init.he_normal
    for spec in [("he_normal", {"mode": "fan_out"}), ["he_normal", {"mode": "fan_out"}], {"name": "he_normal", "mode": "fan_out"}]:
        f = get(spec)
        assert isinstance(f, functools.partial) and f.func is init.he_normal and f.keywords == {"mode": "fan_out"}
        np.testing.assert_array_equal(f(4, 6, rng(0)), init.he_normal(4, 6, rng(0), mode="fan_out"))
    assert get(("orthogonal", {})) is init.orthogonal

    def mine(fan_in, fan_out, rng):
        return np.zeros((fan_in, fan_out))

    assert get(mine) is mine


@pytest.mark.parametrize(
    "spec, match",
    [
        ("kaiming", "unknown initializer 'kaiming'; valid names: uniform_fanin, xavier_uniform"),
        (("identity", {"gain": 2}), "'gain'.*'identity'"),
        ({"name": "lecun_normal", "gain": 2}, "'gain'.*'lecun_normal'.*no keyword"),
        (("he_normal", {"mode": "fanin"}), "mode"),
        (("xavier_uniform", {"gain": -1}), "gain must be > 0"),
        (("he_uniform", {"a": "0.1"}), "a must be"),
        ({"mode": "fan_in"}, "'name'"),
        (("he_normal",), "cannot make an initializer"),
        (42, "cannot make an initializer"),
        ((1, {}), "unknown initializer 1"),
    ],
)
def test_get_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        get(spec)
    with pytest.raises(ValueError, match=match):
        to_config(spec)


@pytest.mark.parametrize(
    "spec, config",
    [
        ("xavier_uniform", {"name": "xavier_uniform"}),
        (("xavier_normal", {"gain": 2}), {"name": "xavier_normal", "gain": 2.0}),
        ({"name": "he_uniform", "mode": "fan_out", "a": 0.1}, {"name": "he_uniform", "mode": "fan_out", "a": 0.1}),
        (("identity", {"sigma": np.float32(0.5)}), {"name": "identity", "sigma": 0.5}),
    ],
)
def test_to_config_round_trip(spec, config):
    assert to_config(spec) == config
    assert to_config(get(spec)) == config
    back = json.loads(json.dumps(to_config(spec)))
    np.testing.assert_array_equal(get(back)(5, 3, rng(2)), get(spec)(5, 3, rng(2)))


def test_to_config_of_a_foreign_callable_is_none():
    assert to_config(lambda fan_in, fan_out, rng: np.ones((fan_in, fan_out))) is None
    assert to_config(functools.partial(init.he_normal, 3)) is None  # positional args: not a spec


# ------------------------------------------------------------------------------------------------
# Gain
# ------------------------------------------------------------------------------------------------


def test_gain_table():
    assert gain("linear") == gain("identity") == gain("sigmoid") == 1.0
    assert gain("tanh") == pytest.approx(5 / 3)
    assert gain("relu") == pytest.approx(math.sqrt(2))
    assert gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert gain("leaky_relu", 0) == pytest.approx(gain("relu"))
    assert gain("selu") == 0.75
    assert gain(activations.get("leaky_relu", slope=0.2)) == pytest.approx(math.sqrt(2 / 1.04))
    assert gain(activations.tanh) == pytest.approx(5 / 3)


@pytest.mark.parametrize("name, param", [("gelu", None), ("softsign", None), ("elu", None), ("Tanh", None), (None, None)])
def test_gain_outside_the_table_raises(name, param):
    with pytest.raises(ValueError, match="PyTorch"):
        gain(name, param)


def test_gain_param_errors():
    with pytest.raises(ValueError, match="takes no param"):
        gain("tanh", 1.0)
    with pytest.raises(ValueError, match="finite"):
        gain("leaky_relu", float("nan"))
