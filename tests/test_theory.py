"""tinyid.theory: closed forms against tiny exact cases, and predictions against NumPy measurements.

Every statistical check uses fixed seeds and a tolerance of a few standard errors estimated from the
samples themselves (or the binomial standard error for fractions).
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyid import activations, init, theory

Z = 6.0  # standard errors allowed in the statistical tests


# ---------------------------------------------------------------------------------------------------
# weight_variance
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, fan_in, fan_out, expected",
    [
        ("uniform_fanin", 3, 5, 1 / 9),
        (("xavier_uniform", {"gain": 2.0}), 3, 5, 1.0),
        ({"name": "xavier_normal"}, 4, 6, 0.2),
        ("he_normal", 4, 8, 0.5),
        (("he_uniform", {"mode": "fan_out", "a": 1.0}), 4, 8, 1 / 8),
        ("lecun_normal", 4, 9, 0.25),
        (("orthogonal", {"gain": 2.0}), 3, 6, 4 / 6),
        ("orthogonal", 6, 3, 1 / 6),
        (("identity", {"sigma": 2.0}), 2, 3, 4 * 2 / 6),
        ("identity", 5, 5, 1 / 5),
    ],
)
def test_weight_variance_exact(spec, fan_in, fan_out, expected):
    assert theory.weight_variance(spec, fan_in, fan_out) == pytest.approx(expected, rel=1e-14)


SAMPLED_SPECS = [
    "uniform_fanin",
    ("xavier_uniform", {"gain": 1.5}),
    "xavier_normal",
    "he_uniform",
    ("he_normal", {"mode": "fan_out", "a": 0.3}),
    "lecun_normal",
]


@pytest.mark.parametrize("spec", SAMPLED_SPECS, ids=str)
def test_weight_variance_matches_samples(spec):
    """Entries are iid with mean 0: the sample mean of W^2 estimates Var[W], SE = std(W^2)/sqrt(N)."""
    rng = np.random.default_rng(1234)
    w = init.get(spec)(300, 200, rng)
    w2 = (w * w).ravel()
    se = w2.std(ddof=1) / math.sqrt(w2.size)
    predicted = theory.weight_variance(spec, 300, 200)
    assert abs(w2.mean() - predicted) < Z * se
    assert abs(w.mean()) < Z * w.std() / math.sqrt(w.size)


@pytest.mark.parametrize("spec", [("orthogonal", {"gain": 1.3}), ("identity", {"sigma": 0.7})], ids=str)
@pytest.mark.parametrize("shape", [(30, 20), (20, 30), (25, 25)])
def test_weight_variance_mean_square_exact(spec, shape):
    """Orthogonal and identity have a deterministic sum of squares: the mean square equals the formula."""
    w = init.get(spec)(*shape, np.random.default_rng(0))
    assert np.mean(w * w) == pytest.approx(theory.weight_variance(spec, *shape), rel=1e-12)


def test_every_initializer_has_a_variance():
    for name in init.NAMES:
        assert theory.weight_variance(name, 7, 11) > 0


# ---------------------------------------------------------------------------------------------------
# Linear-regime products: exact small cases
# ---------------------------------------------------------------------------------------------------


def test_products_equal_widths_standard_init():
    # n Var[W] = 1/3 for uniform_fanin: the forward variance shrinks 3x a layer, the backward one too.
    L = 4
    fwd = theory.forward_variances([50] * (L + 1), "uniform_fanin", "tanh", input_var=2.0)
    bwd = theory.backward_variances([50] * (L + 1), "uniform_fanin", "tanh", output_grad_var=5.0)
    np.testing.assert_allclose(fwd, 2.0 * (1 / 3) ** np.arange(1, L + 1), rtol=1e-14)
    np.testing.assert_allclose(bwd, 5.0 * (1 / 3) ** (L - np.arange(1, L + 1)), rtol=1e-14)
    wg = theory.weight_gradient_variances([50] * (L + 1), "uniform_fanin", "tanh", 2.0, 5.0)
    np.testing.assert_allclose(wg, 10.0 * (1 / 3) ** (L - 1), rtol=1e-14)


def test_products_unequal_widths_by_hand():
    sizes = [2, 4, 8]  # lecun: Var W^1 = 1/2, Var W^2 = 1/4
    np.testing.assert_allclose(theory.forward_variances(sizes, "lecun_normal", "linear"), [1.0, 1.0])
    # backward: layer 1 gets n_2 Var[W^2] = 8/4 = 2 times the top
    np.testing.assert_allclose(theory.backward_variances(sizes, "lecun_normal", "linear"), [2.0, 1.0])
    np.testing.assert_allclose(theory.weight_gradient_variances(sizes, "lecun_normal", "linear"), [2.0, 1.0])
    # relu halves each step between layers; leaky relu multiplies by (1 + a^2)/2
    np.testing.assert_allclose(theory.forward_variances(sizes, "lecun_normal", "relu"), [1.0, 0.5])
    np.testing.assert_allclose(theory.backward_variances(sizes, "lecun_normal", "relu"), [1.0, 1.0])
    leaky = activations.get("leaky_relu", slope=0.5)
    np.testing.assert_allclose(theory.forward_variances(sizes, "lecun_normal", leaky), [1.0, 0.625])


def test_he_keeps_relu_variance_constant_and_xavier_is_equal_width_constant():
    np.testing.assert_allclose(theory.forward_variances([100] * 31, "he_normal", "relu"), 2.0, rtol=1e-12)
    np.testing.assert_allclose(theory.backward_variances([100] * 31, "he_normal", "relu"), 1.0, rtol=1e-12)
    np.testing.assert_allclose(theory.forward_variances([100] * 6, "xavier_uniform", "tanh"), 1.0, rtol=1e-12)
    # Xavier with relu vanishes like 2^-(i-1)
    np.testing.assert_allclose(
        theory.forward_variances([100] * 6, "xavier_normal", "relu"), 0.5 ** np.arange(5), rtol=1e-12
    )


def test_weight_gradient_variance_is_the_product():
    sizes = [30, 70, 20, 50]
    for act in ("tanh", "relu"):
        f = theory.forward_variances(sizes, "xavier_normal", act, 1.5)
        b = theory.backward_variances(sizes, "xavier_normal", act, 0.5)
        c = theory.activation_factor(act)
        expected = np.concatenate([[1.5], c * f[:-1]]) * b
        np.testing.assert_allclose(theory.weight_gradient_variances(sizes, "xavier_normal", act, 1.5, 0.5), expected)


@pytest.mark.parametrize("name", ["sigmoid", "elu", "selu", "gelu"])
def test_linear_regime_refuses_other_activations(name):
    with pytest.raises(ValueError, match="qmap"):
        theory.forward_variances([10, 10], "xavier_normal", name)


# ---------------------------------------------------------------------------------------------------
# Linear-regime products against a Monte-Carlo pass through real networks
# ---------------------------------------------------------------------------------------------------


def _measure(sizes, spec, act_name, input_var, nets=8, samples=1000, seed=0):
    """Per-layer mean of s^2 (forward) and of (dC/ds)^2 (backward, unit-variance top gradient).

    Each network gives one estimate per layer (an average over its samples and units); the estimates of
    independent networks are iid, so their spread gives the standard error of the overall mean.
    """
    act = activations.get(act_name)
    f = init.get(spec)
    rng = np.random.default_rng(seed)
    fwd, bwd = [], []
    for _ in range(nets):
        ws = [f(sizes[i], sizes[i + 1], rng) for i in range(len(sizes) - 1)]
        z = rng.normal(0.0, math.sqrt(input_var), size=(samples, sizes[0]))
        ss = []
        for i, w in enumerate(ws):
            s = z @ w
            ss.append(s)
            z = act(s)
        delta = rng.normal(size=ss[-1].shape)
        ds = [delta]
        for i in range(len(ws) - 1, 0, -1):
            delta = (delta @ ws[i].T) * act.derivative(ss[i - 1])
            ds.append(delta)
        fwd.append([np.mean(s * s) for s in ss])
        bwd.append([np.mean(d * d) for d in ds[::-1]])
    fwd, bwd = np.array(fwd), np.array(bwd)
    se = lambda a: a.std(axis=0, ddof=1) / math.sqrt(len(a))  # noqa: E731
    return fwd.mean(axis=0), se(fwd), bwd.mean(axis=0), se(bwd)


@pytest.mark.parametrize(
    "sizes, spec",
    [([200, 150, 250, 200], "xavier_normal"), ([200, 200, 200, 200], "uniform_fanin"), ([150, 250, 100], "orthogonal")],
)
def test_forward_backward_match_linear_network(sizes, spec):
    fwd, fwd_se, bwd, bwd_se = _measure(sizes, spec, "linear", input_var=2.0)
    pf = theory.forward_variances(sizes, spec, "linear", input_var=2.0)
    pb = theory.backward_variances(sizes, spec, "linear")
    assert np.all(np.abs(fwd - pf) < Z * fwd_se + 1e-12), (fwd, pf, fwd_se)
    assert np.all(np.abs(bwd - pb) < Z * bwd_se + 1e-12), (bwd, pb, bwd_se)


def test_relu_he_keeps_preactivation_variance_constant():
    sizes = [200] * 6
    fwd, fwd_se, bwd, bwd_se = _measure(sizes, "he_normal", "relu", input_var=1.0, nets=8, samples=600)
    pf = theory.forward_variances(sizes, "he_normal", "relu")
    pb = theory.backward_variances(sizes, "he_normal", "relu")
    np.testing.assert_allclose(pf, 2.0)
    assert np.all(np.abs(fwd - pf) < Z * fwd_se), (fwd, fwd_se)
    # the backward pass of fan-in He with equal widths is constant too
    assert np.all(np.abs(bwd - pb) < Z * bwd_se), (bwd, bwd_se)


def test_relu_xavier_measured_decay():
    sizes = [200] * 5
    fwd, fwd_se, _, _ = _measure(sizes, "xavier_normal", "relu", input_var=1.0, nets=8, samples=600, seed=3)
    pf = theory.forward_variances(sizes, "xavier_normal", "relu")
    assert np.all(np.abs(fwd - pf) < Z * fwd_se), (fwd, pf, fwd_se)


def test_mean_singular_value_closed_forms():
    """Square matrices follow the quarter-circle law: E[s] = 8/(3 pi) sqrt(n Var[W])."""
    quarter_circle = 8.0 / (3.0 * math.pi)
    assert theory.mean_singular_value("xavier_uniform", 500, 500) == pytest.approx(quarter_circle, rel=1e-12)
    assert theory.mean_singular_value("uniform_fanin", 1000, 1000) == pytest.approx(quarter_circle / math.sqrt(3),
                                                                                    rel=1e-12)
    assert theory.mean_singular_value(("orthogonal", {"gain": 2.0}), 30, 50) == pytest.approx(2.0, rel=1e-14)
    assert theory.mean_singular_value(("identity", {"sigma": 0.5}), 30, 30) == pytest.approx(0.5, rel=1e-14)
    # transposing the shape changes Var[W] for fan-dependent inits only, never the Marchenko-Pastur integral
    assert theory.mean_singular_value("xavier_normal", 200, 600) == pytest.approx(
        theory.mean_singular_value("xavier_normal", 600, 200), rel=1e-12)


@pytest.mark.parametrize("shape", [(400, 400), (600, 200), (200, 600)])
@pytest.mark.parametrize("spec", ["uniform_fanin", "xavier_normal", "he_uniform"])
def test_mean_singular_value_matches_samples(spec, shape):
    """Against numpy's SVD of drawn matrices: the spread between draws is ~1e-3 and the finite-width
    correction O(1/n); both are far below the 1% allowed, while dropping the 8/(3 pi) factor of the
    square case (or using the wrong fan) is off by 15% or more."""
    rng = np.random.default_rng(7)
    measured = [np.linalg.svd(init.get(spec)(*shape, rng), compute_uv=False).mean() for _ in range(3)]
    assert np.mean(measured) == pytest.approx(theory.mean_singular_value(spec, *shape), rel=0.01)


# ---------------------------------------------------------------------------------------------------
# Mean field
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("q0", [0.8, 40.0])
@pytest.mark.parametrize("name", activations.NAMES)
def test_qmap_one_step_matches_monte_carlo(name, q0):
    """q^1 = sw^2 E[phi(sqrt(q0) z)^2] + sb^2 against a direct Monte-Carlo average of the same expectation."""
    sw, sb = 1.3, 0.2
    act = activations.get(name)
    z = np.random.default_rng(7).standard_normal(400_000)
    v = sw * sw * act(math.sqrt(q0) * z) ** 2
    q1 = theory.qmap(name, sw, sb, q0, 1)
    assert q1[0] == q0
    assert abs(q1[1] - (v.mean() + sb * sb)) < Z * v.std() / math.sqrt(v.size)


def test_qmap_tanh_matches_a_wide_network():
    """Propagate N(0, q0) inputs through a wide random tanh network: the mean square pre-activations follow qmap."""
    sw, sb, q0, depth, n, samples = 1.5, 0.3, 1.0, 5, 1000, 300
    rng = np.random.default_rng(11)
    predicted = theory.qmap("tanh", sw, sb, q0, depth)
    x = rng.normal(0.0, math.sqrt(q0), size=(samples, n))
    h, measured = x, [np.mean(x * x)]  # h^0 ~ N(0, q0) plays the pre-activation of layer 0
    for _ in range(depth):
        w = rng.normal(0.0, sw / math.sqrt(n), size=(n, n))
        b = rng.normal(0.0, sb, size=n)
        h = np.tanh(h) @ w + b
        measured.append(np.mean(h * h))
    # finite width: O(1/n) corrections, and the one bias draw per layer adds O(sb^2 / sqrt(n)) noise
    np.testing.assert_allclose(measured, predicted, rtol=0.02)
    assert predicted.shape == (depth + 1,)


def test_quadrature_against_closed_forms():
    """hard_tanh has kinks at +-1: E[phi^2] and E[phi'^2] in closed form, for small and large q."""
    act = activations.hard_tanh
    for q in (0.01, 0.3, 1.0, 50.0):
        c = 1.0 / math.sqrt(q)
        inside = math.erf(c / math.sqrt(2.0))  # P(|z| < c)
        density = math.exp(-0.5 * c * c) / math.sqrt(2.0 * math.pi)
        e_phi2 = q * (inside - 2.0 * c * density) + (1.0 - inside)
        assert theory._expect(lambda x: act(x) ** 2, q) == pytest.approx(e_phi2, rel=1e-10)
        assert theory._expect(lambda x: act.derivative(x) ** 2, q) == pytest.approx(inside, rel=1e-10)
    relu = activations.relu
    for q in (1e-6, 1.0, 1e4):
        assert theory._expect(lambda x: relu(x) ** 2, q) == pytest.approx(q / 2, rel=1e-10)


def test_qmap_closed_forms():
    np.testing.assert_allclose(theory.qmap("relu", 2.0, 0.0, 1.0, 3), [1, 2, 4, 8])
    np.testing.assert_allclose(theory.qmap("linear", 1.0, 1.0, 0.0, 3), [0, 1, 2, 3])
    # the quadrature for relu (not used by qmap) agrees with the exact 1/2 to the kink's slow convergence
    act = activations.get("relu")
    assert theory._expect(lambda x: act(x) ** 2, 1.0) == pytest.approx(0.5, rel=1e-3)
    assert theory.qmap("tanh", 1.0, 0.0, 0.5, 0).tolist() == [0.5]


def test_fixed_point_cases():
    # a line of fixed points: linear with sw = 1, sb = 0 keeps any q0 (and so does relu with He's sqrt 2)
    for q0 in (0.0, 0.3, 7.0):
        assert theory.fixed_point("linear", 1.0, 0.0, q0=q0) == q0
        assert theory.fixed_point("relu", math.sqrt(2.0), 0.0, q0=q0) == q0
    assert theory.fixed_point("tanh", 0.8, 0.0) == 0.0
    assert theory.fixed_point("tanh", 1.0, 0.0) == 0.0
    assert theory.fixed_point("relu", 1.0, 0.5) == pytest.approx(0.5)  # sb^2 / (1 - 1/2)
    assert theory.fixed_point("linear", 0.5, 1.0) == pytest.approx(1 / 0.75)
    cases = (("tanh", 1.5, 0.0), ("tanh", 1.2, 0.3), ("tanh", 1.001, 0.0), ("sigmoid", 2.0, 0.1), ("gelu", 1.0, 0.5))
    for name, sw, sb in cases:
        q = theory.fixed_point(name, sw, sb)
        assert q > 0
        assert theory.qmap(name, sw, sb, q, 1)[1] == pytest.approx(q, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(
    "name, sw, sb", [("linear", 1.1, 0.0), ("linear", 1.0, 0.1), ("relu", 2.0, 0.0), ("elu", 3.0, 0.0)]
)
def test_fixed_point_divergence_raises(name, sw, sb):
    with pytest.raises(ValueError, match="diverge|grows"):
        theory.fixed_point(name, sw, sb)


def test_fixed_point_not_converged_raises():
    with pytest.raises(ValueError, match="did not converge"):
        theory.fixed_point("tanh", 1.5, 0.0, max_iter=2)


def test_chi1():
    for sw in (0.5, 1.0, math.sqrt(2.0), 2.0):
        assert theory.chi1("relu", sw, 0.3) == pytest.approx(sw * sw / 2, rel=1e-15)
        assert theory.chi1("linear", sw, 0.0) == pytest.approx(sw * sw, rel=1e-15)
    assert theory.chi1(activations.get("leaky_relu", slope=0.5), 1.0, 0.0) == pytest.approx(0.625)
    for sw in (0.3, 0.9, 1.0):
        assert theory.chi1("tanh", sw, 0.0) == pytest.approx(sw * sw)
    # off the shortcuts: the quadrature value against Monte Carlo at the fixed point
    q = theory.fixed_point("tanh", 1.5, 0.2)
    z = np.random.default_rng(3).standard_normal(400_000)
    v = 1.5**2 * activations.tanh.derivative(math.sqrt(q) * z) ** 2
    assert abs(theory.chi1("tanh", 1.5, 0.2) - v.mean()) < Z * v.std() / math.sqrt(v.size)


def test_critical_sw_phase_and_depth_scale():
    assert theory.critical_sw("relu") == pytest.approx(math.sqrt(2.0), rel=1e-15)
    assert theory.critical_sw("tanh", 0.0) == 1.0
    assert theory.critical_sw("linear") == 1.0
    a = 0.2
    assert theory.critical_sw(activations.get("leaky_relu", slope=a)) == pytest.approx(math.sqrt(2 / (1 + a * a)))
    for name in ("tanh", "hard_tanh", "sigmoid"):
        sw = theory.critical_sw(name, sb=0.05)
        assert theory.chi1(name, sw, 0.05) == pytest.approx(1.0, abs=1e-6)
        assert theory.phase(name, sw, 0.05) == "critical"
        assert theory.phase(name, 0.9 * sw, 0.05) == "ordered"
        assert theory.phase(name, 1.1 * sw, 0.05) == "chaotic"
    assert theory.critical_sw("tanh", sb=0.05) > 1.0
    # tanh at sb = 0: ordered (q* = 0, chi1 = sw^2) below 1, chaotic above
    assert [theory.phase("tanh", sw, 0.0) for sw in (0.9, 1.0, 1.01, 1.1, 2.0)] == [
        "ordered", "critical", "chaotic", "chaotic", "chaotic"
    ]
    with pytest.raises(ValueError, match="no critical sw"):
        theory.critical_sw("gelu", 0.0)
    assert theory.depth_scale("relu", math.sqrt(2.0), 0.0) == math.inf
    assert theory.depth_scale("relu", 1.0, 0.0) == pytest.approx(1 / math.log(2.0))
    assert theory.depth_scale("tanh", 2.0, 0.0) < 0  # chaotic: growth
    with pytest.raises(ValueError, match="sign"):
        theory.critical_sw("sigmoid", lo=0.1, hi=0.2)


def test_gain_table():
    table = {name: (mf, torch) for name, mf, torch in theory.gain_table()}
    assert set(table) == set(activations.NAMES)
    assert table["linear"] == (1.0, 1.0)
    assert table["relu"][0] == pytest.approx(math.sqrt(2.0)) and table["relu"][1] == pytest.approx(math.sqrt(2.0))
    assert table["leaky_relu"][0] == pytest.approx(table["leaky_relu"][1])
    assert table["tanh"] == (1.0, 5.0 / 3.0)  # PyTorch's 5/3 is a heuristic: the mean-field value is 1
    assert table["softsign"][1] is None and table["gelu"][1] is None
    assert theory.phase("tanh", 5.0 / 3.0, 0.0) == "chaotic"
    assert table["gelu"][0] is None  # q* = 0 with chi1 < 0.6, then the map diverges: no critical point
    assert table["sigmoid"][0] == pytest.approx(10.15, abs=0.01)
    # selu: criticality where q* leaves 0, sw^2 (lambda^2 + (lambda alpha)^2) / 2 = 1
    lam, alpha = activations.SELU_LAMBDA, activations.SELU_ALPHA
    assert table["selu"][0] == pytest.approx(math.sqrt(2 / (lam**2 + (lam * alpha) ** 2)), rel=1e-3)
    for name, (mf, _) in table.items():
        if mf is not None and name != "selu":
            assert theory.chi1(name, mf, 0.0) == pytest.approx(1.0, abs=1e-6), name


# ---------------------------------------------------------------------------------------------------
# Spectra
# ---------------------------------------------------------------------------------------------------


def _identity_net_alpha(sigma, q0, depth, act_name, samples, seed):
    act = activations.get(act_name)
    x = np.random.default_rng(seed).normal(0.0, math.sqrt(q0), size=samples)
    z, jac = x, np.ones(samples)
    for _ in range(depth):
        s = sigma * z  # W = sigma I acts elementwise
        jac = jac * sigma * act.derivative(s)
        z = act(s)
    eig = jac * jac  # J is diagonal: eigenvalues of J J^T
    return eig


@settings(max_examples=25)
@given(
    sigma=st.floats(0.5, 1.5),
    q0=st.floats(0.05, 2.0),
    depth=st.integers(1, 6),
    act_name=st.sampled_from(["hard_tanh", "relu"]),
)
def test_identity_spectrum_matches_measurement(sigma, q0, depth, act_name):
    n = 20_000
    eig = _identity_net_alpha(sigma, q0, depth, act_name, n, seed=depth)
    alpha, value = theory.identity_spectrum(sigma, q0, depth, act_name)
    assert value == pytest.approx(sigma ** (2 * depth))
    nonzero = eig > 0
    np.testing.assert_allclose(eig[nonzero], value, rtol=1e-9)
    se = math.sqrt(alpha * (1 - alpha) / n)
    assert abs(nonzero.mean() - alpha) <= Z * se + 1.0 / n


def test_identity_spectrum_cases():
    assert theory.identity_spectrum(0.5, 1.0, 3, "relu") == (0.5, 0.5**6)
    assert theory.identity_spectrum(1.0, 1.0, 4, "hard_tanh") == (pytest.approx(math.erf(1 / math.sqrt(2))), 1.0)
    assert theory.identity_spectrum(2.0, 0.5, 2, "hard_tanh")[0] == pytest.approx(math.erf(1 / 4))
    assert theory.identity_spectrum(2.0, 0.5, 0, "hard_tanh") == (1.0, 1.0)
    with pytest.raises(ValueError, match="0 or 1"):
        theory.identity_spectrum(1.0, 1.0, 2, "tanh")


def test_jacobian_spectrum_moments():
    r2 = math.sqrt(2.0)
    assert theory.jacobian_spectrum_moments("relu", r2, 0.0, 10) == (1.0, 20.0)
    assert theory.jacobian_spectrum_moments("relu", r2, 0.0, 10, "orthogonal") == (1.0, 10.0)
    # hard tanh at sb = 0, sw = 1: q* = 0, every unit linear (p = 1): orthogonal weights are isometric
    assert theory.jacobian_spectrum_moments("hard_tanh", 1.0, 0.0, 7) == (1.0, 7.0)
    assert theory.jacobian_spectrum_moments("hard_tanh", 1.0, 0.0, 7, "orthogonal") == (1.0, 0.0)
    sw = theory.critical_sw("hard_tanh", 0.05)
    p = math.erf(1 / math.sqrt(2 * theory.fixed_point("hard_tanh", sw, 0.05)))
    mean, var = theory.jacobian_spectrum_moments("hard_tanh", sw, 0.05, 5, "orthogonal")
    assert mean == 1.0 and var == pytest.approx(5 * (1 - p) / p)
    with pytest.raises(ValueError, match="not critical"):
        theory.jacobian_spectrum_moments("relu", 1.0, 0.0, 10)
    with pytest.raises(ValueError, match="Bernoulli"):
        theory.jacobian_spectrum_moments("tanh", 1.0, 0.0, 10)
    with pytest.raises(ValueError, match="weights"):
        theory.jacobian_spectrum_moments("relu", r2, 0.0, 10, "uniform")


# ---------------------------------------------------------------------------------------------------
# Argument validation
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: theory.weight_variance("nope", 3, 3),
        lambda: theory.weight_variance(("he_normal", {"gain": 2.0}), 3, 3),
        lambda: theory.weight_variance(lambda i, o, r: None, 3, 3),
        lambda: theory.weight_variance("he_normal", 0, 3),
        lambda: theory.forward_variances([10], "he_normal", "relu"),
        lambda: theory.forward_variances([10, 0], "he_normal", "relu"),
        lambda: theory.forward_variances([10, 10], "he_normal", "relu", input_var=-1.0),
        lambda: theory.backward_variances([10, 10], "he_normal", "relu", output_grad_var=-1.0),
        lambda: theory.forward_variances([10, 10], "he_normal", "nope"),
        lambda: theory.qmap("tanh", -1.0, 0.0, 1.0, 3),
        lambda: theory.qmap("tanh", 1.0, -0.1, 1.0, 3),
        lambda: theory.qmap("tanh", 1.0, 0.0, -1.0, 3),
        lambda: theory.qmap("tanh", 1.0, 0.0, 1.0, -1),
        lambda: theory.qmap("tanh", 1.0, 0.0, 1.0, 2.5),
        lambda: theory.qmap("tanh", float("nan"), 0.0, 1.0, 2),
        lambda: theory.fixed_point("tanh", 1.0, 0.0, tol=0.0),
        lambda: theory.phase("tanh", 1.0, 0.0, tol=-1.0),
        lambda: theory.identity_spectrum(0.0, 1.0, 2, "relu"),
        lambda: theory.identity_spectrum(1.0, 0.0, 2, "relu"),
        lambda: theory.identity_spectrum(1.0, 1.0, -1, "relu"),
        lambda: theory.jacobian_spectrum_moments("relu", 1.0, 0.0, -1),
        lambda: theory.critical_sw("tanh", sb=-1.0),
        lambda: theory.mean_singular_value("nope", 3, 3),
        lambda: theory.mean_singular_value("xavier_normal", 0, 3),
    ],
)
def test_value_errors(call):
    with pytest.raises(ValueError):
        call()
