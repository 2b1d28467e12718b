r"""Hypothesis property tests of tinyid.theory against measurements on real tinyid networks.

``tests/test_theory.py`` checks the formulas on exact cases and a few fixed Monte-Carlo runs; here hypothesis
draws the networks: widths 16..512, depths 1..20, every initializer with a closed-form variance, every
activation the linear-regime products accept. Every measurement is made on a real :class:`tinyid.MLP` (NumPy
backend, float64, biases 0) through its layers' ``forward`` and ``backward``, and every tolerance is a number
of standard errors estimated from the samples. Seeds are drawn by hypothesis, so the ``ci`` profile
(derandomized) fixes them.

What is compared, and why it is exact
-------------------------------------
For one network and a batch of ``BATCH`` inputs, the per-network estimates are the mean squares over the batch
and the units of a layer: :math:`m^l = \overline{(s^l)^2}` (pre-activations :math:`s^l = z^{l-1} W^l + b^l`),
:math:`d^l = \overline{(\partial C/\partial s^l)^2}` for a top gradient :math:`g \sim N(0, 1)`, and
:math:`w^l = \overline{(\partial C/\partial W^l)^2} / B` (the layer's ``dW`` sums B independent
zero-mean per-example gradients). Everything is zero-mean by symmetry, so these estimate the variances the
theory predicts; sample *variances* inside one network would be biased (a ReLU network's units have
nonzero means over inputs for a fixed network; the theory's variance is over weights and inputs together).

For linear, relu and leaky_relu these expectations are exactly the theory's products at *every* width, not
only in the wide limit: given the layer below, :math:`E[(s^l_j)^2] = \mathrm{Var}[W] \lVert z \rVert^2`
(also for Haar-orthogonal columns or rows), and flipping the sign of a column of :math:`W^l` (a symmetry of
every initializer here) swaps :math:`\phi(s)^2` between its two branches, so :math:`E[\overline{\phi(s)^2}
/ \overline{s^2}] = (1 + a^2)/2` exactly; the same sign flips, applied from the top layer down, make the
back-propagated and weight-gradient second moments exact too (checked on 20 000 width-16 ReLU networks:
within 1.5% and 2 standard errors at every layer). tanh, softsign and hard_tanh are run in their linear
regime: the input variance is chosen so that no layer's predicted variance exceeds ``TINY_VARIANCE`` =
1e-24. Their relative deviation from linear per layer is then about :math:`3.2\sqrt q` (softsign) or
:math:`2q` (tanh), below the 1e-9 rounding slack; it has to be, because square orthogonal layers make a
gain nearly deterministic (1e-12 was not small enough: softsign on such a net was 150 standard errors off).

Heavy tails, and the estimator
------------------------------
The per-network estimate of a deep layer is a product of one random gain per layer. Its log-variance grows
like :math:`\sum_l k / n_l` (k about 3 for ReLU, with 16 inputs), so for a 20-layer width-16 ReLU net
:math:`m^L` is roughly log-normal with :math:`\sigma^2 \approx 4`: the mean of 24 such numbers usually lies
far *below* the expectation, and a t-test of it gives :math:`|t| > 4` in 5-20% of groups at the deep layers
(24 000 networks, groups of 24), down to t = -35. The remedy has two parts:

1. **Per-layer gains, at every layer.** :math:`m^l / m^{l-1}` (with :math:`m^0` = the input variance) has
   expectation exactly ``pred[l] / pred[l-1]`` by the argument above, and its fluctuations do not compound
   with depth: it carries one layer's worth of noise. The backward gain :math:`d^l / d^{l+1}` is the same up
   to an O(1/n) bias (the mask of layer l+1 and :math:`W^{l+1}` are not independent inside one network),
   measured at -0.7% for width 16, where its standard error here is about 6%. If the first layer and every
   gain agree, the whole predicted vector agrees, since it is their product.
2. **Absolute values where the compounding is bounded.** The forward, backward and weight-gradient variances
   themselves are compared at the layers whose accumulated :math:`\sum 1/n_i` between them and the exact end
   (the input, the top gradient) is at most ``COMPOUNDING_BUDGET`` = 1/4, decided from the widths alone
   (deciding from the sampled spread would keep exactly the samples that lack the rare large values, and bias
   the test). For the forward pass that is every layer of a width-80 net and the first four of a width-16 one.

Both are compared in log space: for per-network ratios :math:`r` = measured / predicted with :math:`E[r] = 1`
and :math:`y = \log r`, :math:`\log E[r] = \bar y + s_y^2 / 2` for a log-normal, with standard error
:math:`\sqrt{s_y^2 / R + s_y^4 / (2(R - 1))}`; the check is :math:`|\bar y + s_y^2/2| \le Z\,SE`, R =
``REPLICATES`` = 24 networks. Calibration (correct formulas): 400 checks each of width-16 ReLU and leaky-ReLU
nets (depth 4, 5, 20, and widths mixing 16 and 300) and 200 each of width-16 depth-20 linear, tanh and
softsign nets and width-512 ReLU nets; the largest statistic of a check over all its layers and quantities
was 5.6 (99% of checks below 4.2). ``Z`` = 6.

A network whose signal dies (every unit of some layer inactive for every input of the batch, probability
about :math:`2^{-n}` per layer) is redrawn, since its ratios are 0/0; this conditions on an event of
probability below 1e-4 even for width-16, depth-20 ReLU nets.

He's factor on one layer
------------------------
:math:`E[\phi(y)^2] = \frac{1 + a^2}{2} E[y^2]` and :math:`E[\phi'(y)^2] = \frac{1 + a^2}{2}` (a = 0: ReLU)
are checked on a real :class:`~tinyid.layers.Dense` layer for y = zW with symmetric inputs z of several
laws (normal, uniform, Rademacher, Laplace, Student-t with 3 degrees of freedom) and only 1..4 inputs per
unit, so that y is far from Gaussian. For any fixed W the per-input difference :math:`e_b` has mean 0 and
changes sign with :math:`z_b`, so the self-normalized mean has sub-Gaussian tails even where the fourth
moment is infinite (Student-t).

Mean field
----------
:func:`tinyid.theory.qmap` is compared with the mean square pre-activations of ``MF_REPLICATES`` wide
(``MF_WIDTH``) real networks with :math:`W \sim N(0, \sigma_w^2/n)` (``xavier_normal`` with gain
:math:`\sigma_w` on square layers) and biases of root mean square :math:`\sigma_b`, inputs :math:`\phi(x)`,
:math:`x \sim N(0, q_0)`. Layer 1 is exact in expectation; each later layer adds an O(1/n) finite-width bias
(the variance of a layer's pre-activations differs from input to input by O(1/sqrt n), and
:math:`E[\phi^2]` is curved in it). Over a grid of every activation, :math:`\sigma_w \in \{0.5, 1.5, 3\}`,
:math:`\sigma_b \in \{0, 1\}`, :math:`q_0 \in \{0.05, 10\}`, at widths 32 and 64, the measured relative bias
was at most about 0.6 (l - 1) / n at layer l (hard_tanh, tanh and gelu the worst), so ``MF_BIAS`` (l - 1) / n
with ``MF_BIAS`` = 2 is allowed on top of ``Z`` standard errors; 400 checks of the worst corners at width
256 passed even with Z = 4 and ``MF_BIAS`` = 0.7. The bias vector is scaled to mean square exactly
:math:`\sigma_b^2` (in a uniformly random direction): this removes an O(1/sqrt n) network-to-network
fluctuation of the bias term and changes the distribution of one unit's bias only by O(1/n).

Power
-----
Each check is also run with a deliberately wrong formula (``test_*_detects_*``): the He factor 1 instead of
1/2, weight variances 10% too large, fan-in instead of fan-out in the backward product, an off-by-one
forward factor in the weight gradient, the leaky-ReLU factor :math:`(1 + a)/2`, and a length map that
adds :math:`\sigma_b` instead of :math:`\sigma_b^2`. Each must fail on networks on which the correct
formulas pass.
"""
import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import tinyid
from tinyid import activations, theory
from tinyid.layers import Dense

Z = 6.0  # standard errors allowed (see the module docstring for the calibration)
REPLICATES = 24  # independent networks per linear-regime check
BATCH = 16  # inputs per network
COMPOUNDING_BUDGET = 0.25  # max sum of 1/width along the path for an absolute (non-gain) comparison
TINY_VARIANCE = 1e-24  # largest predicted pre-activation variance for tanh, softsign, hard_tanh
MAX_WEIGHTS = 1 << 21  # per network, to bound the runtime of the deepest wide draws
LOG_SLACK = 1e-9  # rounding: some gains are exactly 1 (square orthogonal linear layers), with s_y ~ 1e-16

HOMOGENEOUS = ("linear", "relu", "leaky_relu")


# ---------------------------------------------------------------------------------------------------
# Shared statistics
# ---------------------------------------------------------------------------------------------------


def _log_mean_z(ratios):
    r"""``(log-mean estimate, its standard error)`` per column of positive ``(R, k)`` ratios whose expectation
    is 1 under the hypothesis: :math:`\bar y + s^2/2` and :math:`\sqrt{s^2/R + s^4/(2(R-1))}`, y = log r."""
    y = np.log(ratios)
    n = y.shape[0]
    s2 = y.var(axis=0, ddof=1)
    return y.mean(axis=0) + s2 / 2.0, np.sqrt(s2 / n + s2 * s2 / (2.0 * (n - 1)))


def _failures(label, ratios, layers):
    """Messages for the columns of ``ratios`` (R, k) whose log-mean is more than Z standard errors from 0."""
    est, se = _log_mean_z(ratios)
    bad = np.abs(est) > Z * se + LOG_SLACK
    return [
        f"{label} layer {layer}: measured/predicted = {math.exp(e):.4g}, log-mean {e:+.3g} = {e / s:+.1f} SE"
        if s > 0 else f"{label} layer {layer}: measured/predicted = {math.exp(e):.4g}"
        for layer, e, s, b in zip(layers, est, se, bad) if b
    ]


# ---------------------------------------------------------------------------------------------------
# 1. Linear-regime products against real networks
# ---------------------------------------------------------------------------------------------------


def _measure_network(sizes, act, init, input_var, seed_seq):
    """One real network and batch: per-layer mean squares of s, dC/ds and dC/dW (per example), each (L,)."""
    net_seq, data_seq = seed_seq.spawn(2)
    model = tinyid.MLP(sizes, act, init, seed=int(net_seq.generate_state(1)[0]), backend="numpy",
                       dtype="float64")
    rng = np.random.default_rng(data_seq)
    x = rng.normal(0.0, math.sqrt(input_var), size=(BATCH, sizes[0]))
    out, caches = model.forward_train(x)
    L = len(model.layers)
    fwd = np.array([np.mean((z @ layer.W + layer.b) ** 2) for layer, (z, _) in zip(model.layers, caches)])
    bwd, wgrad = np.empty(L), np.empty(L)
    dy = rng.standard_normal(out.shape)  # dC/ds^L = dC/dlogits: the top layer is linear
    for i in range(L - 1, -1, -1):
        derivative = caches[i][1]
        ds = dy if derivative is None else dy * derivative  # dC/ds^i, what Dense.backward computes inside
        dy, (dW, db) = model.layers[i].backward(dy, caches[i], need_input_grad=i > 0)
        assert np.all(np.abs(db - ds.sum(axis=0)) <= 1e-12 * np.abs(ds).sum(axis=0))  # the layer used this ds
        bwd[i] = np.mean(ds * ds)
        wgrad[i] = np.mean(dW * dW) / BATCH
    return fwd, bwd, wgrad


def _measure(sizes, act, init, input_var, seed):
    """``REPLICATES`` independent networks: three (R, L) arrays (forward, backward, weight gradient)."""
    rows = []
    for k in itertools.count():
        if len(rows) == REPLICATES:
            break
        assert k < 2 * REPLICATES, "more than half of the networks died: not the regime these tests are about"
        row = _measure_network(sizes, act, init, input_var, np.random.SeedSequence([seed, k]))
        if np.all(np.stack(row) > 0):  # a dead network gives 0/0 gains: redraw (probability < 1e-4)
            rows.append(row)
    return tuple(np.array([row[q] for row in rows]) for q in range(3))


def _compounding(sizes):
    """A-priori log-variance proxies sum(1/n) of the forward, backward and weight-gradient estimates, (L,) each."""
    inv = 1.0 / np.asarray(sizes[1:], dtype=np.float64)  # 1/n_1 .. 1/n_L
    L = len(inv)
    fwd = np.cumsum(inv)  # s^l averages over n_1..n_l
    hidden = inv[:-1]  # the back-propagated gradient of layer l passes the layers l..L-1
    bwd = np.array([hidden[l:].sum() for l in range(L)])
    wgrad = np.full(L, hidden.sum())  # z^{l-1} and dC/ds^l together span every hidden layer
    return fwd, bwd, wgrad


def linear_regime_failures(sizes, activation, init, seed, input_var=1.0):
    """Every disagreement between real networks and forward/backward/weight_gradient_variances (list of str).

    ``input_var`` is used for linear, relu and leaky_relu; the saturating activations get the input variance
    that puts the largest predicted variance at ``TINY_VARIANCE``.
    """
    act = activations.get(activation)
    L = len(sizes) - 1
    if act.name not in HOMOGENEOUS:
        input_var = TINY_VARIANCE / float(np.max(theory.forward_variances(sizes, init, act, 1.0)))
    pf = theory.forward_variances(sizes, init, act, input_var)
    pb = theory.backward_variances(sizes, init, act, 1.0)
    pw = theory.weight_gradient_variances(sizes, init, act, input_var, 1.0)
    fwd, bwd, wgrad = _measure(sizes, act, init, input_var, seed)
    layers = np.arange(1, L + 1)

    failures = []
    # 1. gains: layer l against layer l - 1 (forward; layer 0 = the input variance) and l + 1 (backward)
    below = np.concatenate([np.full((REPLICATES, 1), input_var), fwd[:, :-1]], axis=1)
    pred_below = np.concatenate([[input_var], pf[:-1]])
    failures += _failures("forward gain", (fwd / below) / (pf / pred_below), layers)
    if L > 1:
        failures += _failures("backward gain", (bwd[:, :-1] / bwd[:, 1:]) / (pb[:-1] / pb[1:]), layers[:-1])
    # 2. absolute values where the compounding is bounded
    for label, measured, predicted, budget in zip(
        ("forward", "backward", "weight gradient"), (fwd, bwd, wgrad), (pf, pb, pw), _compounding(sizes)
    ):
        keep = budget <= COMPOUNDING_BUDGET
        failures += _failures(label, measured[:, keep] / predicted[keep], layers[keep])
    return failures


_width = st.integers(4, 8).flatmap(lambda k: st.integers(2**k, 2 ** (k + 1)))  # 16..512, log-uniform octaves

_linear_regime_activation = st.sampled_from(["linear", "relu", "leaky_relu", "tanh", "softsign", "hard_tanh"]).flatmap(
    lambda name: st.floats(0.0, 1.0).map(lambda a: activations.get(name, slope=a)) if name == "leaky_relu"
    else st.just(activations.get(name))
)

_init_spec = st.one_of(
    st.sampled_from(["uniform_fanin", "lecun_normal", "xavier_uniform", "xavier_normal", "orthogonal"]),
    st.tuples(st.sampled_from(["xavier_uniform", "xavier_normal", "orthogonal"]),
              st.fixed_dictionaries({"gain": st.floats(0.5, 2.0)})),
    st.tuples(st.sampled_from(["he_uniform", "he_normal"]),
              st.fixed_dictionaries({"mode": st.sampled_from(["fan_in", "fan_out"]), "a": st.floats(0.0, 1.0)})),
)


@st.composite
def _networks(draw):
    depth = draw(st.integers(1, 20))
    sizes = draw(st.lists(_width, min_size=depth + 1, max_size=depth + 1))
    assume(sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) <= MAX_WEIGHTS)
    return sizes


# Explicit cases besides hypothesis's draws: the heaviest tails (deep, width-16 ReLU), a nearly deterministic
# net (square-ish orthogonal layers with softsign: the saturating activation's residual nonlinearity is all
# there is to see), and widths that jump by 20x with He's fan-out mode.
@example(sizes=[16] * 21, activation=activations.relu, init="he_normal", input_var=1.0, seed=0)
@example(sizes=[64, 96, 128, 80, 112, 64], activation=activations.softsign, init=("orthogonal", {"gain": 1.7}),
         input_var=1.0, seed=1)
@example(sizes=[300, 20, 500, 16, 256], activation=activations.get("leaky_relu", slope=0.2),
         init=("he_uniform", {"mode": "fan_out", "a": 0.2}), input_var=3.0, seed=2)
@given(
    sizes=_networks(),
    activation=_linear_regime_activation,
    init=_init_spec,
    input_var=st.floats(0.1, 10.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_linear_regime_variances_match_real_networks(sizes, activation, init, input_var, seed):
    """Per-layer forward, back-propagated and weight-gradient variances of real MLPs match the products."""
    failures = linear_regime_failures(sizes, activation, init, seed, input_var)
    assert not failures, "\n".join(failures)


# The same check with a deliberately wrong formula: it must fail where the right one passes.
_POWER_SIZES = [64, 96, 128, 80, 112, 64]


def _he_factor_one(real):
    def factor(activation):
        return 1.0 if activations.get(activation).name == "relu" else real(activation)
    return factor


def _backward_with_fan_in(real):
    def gains(sizes, init, activation):
        fwd, _, c = real(sizes, init, activation)
        return fwd, fwd, c  # n_{i-1} Var[W^i] where the chain rule needs n_i Var[W^i]
    return gains


def _weight_gradient_off_by_one(sizes, init, activation, input_var=1.0, output_grad_var=1.0):
    # E[(z^{l})^2] in place of E[(z^{l-1})^2]
    fwd_s = theory.forward_variances(sizes, init, activation, input_var)
    c = theory.activation_factor(activation)
    return c * fwd_s * theory.backward_variances(sizes, init, activation, output_grad_var)


_BROKEN = {
    "relu factor 1": ("activation_factor", _he_factor_one, "relu", "he_normal"),
    "weight variance x1.1": ("weight_variance", lambda real: lambda *a: 1.1 * real(*a), "tanh", "xavier_uniform"),
    "backward fan-in": ("_layer_gains", _backward_with_fan_in, "linear", "orthogonal"),
    "weight gradient off by one": ("weight_gradient_variances", lambda real: _weight_gradient_off_by_one,
                                   activations.get("leaky_relu", slope=0.3), "xavier_normal"),
}


@pytest.mark.parametrize("broken", [None, *_BROKEN])
def test_linear_regime_check_detects_wrong_formulas(broken, monkeypatch):
    """The check passes with theory as written and fails with each wrong formula on the same networks."""
    if broken is None:
        for _, _, act, init in _BROKEN.values():
            assert linear_regime_failures(_POWER_SIZES, act, init, seed=5) == []
        return
    attr, wrap, act, init = _BROKEN[broken]
    monkeypatch.setattr(theory, attr, wrap(getattr(theory, attr)))
    assert linear_regime_failures(_POWER_SIZES, act, init, seed=5)


# ---------------------------------------------------------------------------------------------------
# 2. He et al.: E[phi(y)^2] = (1 + a^2)/2 Var[y] for symmetric zero-mean y, on a real layer
# ---------------------------------------------------------------------------------------------------

_SYMMETRIC_INPUTS = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "uniform": lambda rng, shape: rng.uniform(-1.0, 1.0, shape),
    "rademacher": lambda rng, shape: rng.choice([-1.0, 1.0], size=shape),
    "laplace": lambda rng, shape: rng.laplace(size=shape),
    "student_t3": lambda rng, shape: rng.standard_t(3, size=shape),
}


def rectifier_failures(activation, distribution, n_in, scale, seed, samples=4000, n_out=32):
    r"""Disagreements of a real Dense layer's :math:`E[\phi(y)^2]` and :math:`E[\phi'(y)^2]` with
    ``activation_factor(activation) * E[y^2]`` and ``activation_factor(activation)``.

    With symmetric inputs and bias 0, :math:`y = zW` is symmetric for any fixed W, so per input b the
    difference :math:`e_b = \overline{\phi(y_b)^2 - c\, y_b^2}` has mean 0 exactly, and the inputs are
    independent: the standard error is the sample standard deviation of :math:`e_b` over :math:`\sqrt N`.
    ``n_in`` small makes y far from Gaussian (a sum of 1..4 Rademacher or Student-t terms).
    """
    act = activations.get(activation)
    c = theory.activation_factor(act)
    rng = np.random.default_rng(seed)
    layer = Dense(rng.standard_normal((n_in, n_out)), np.zeros(n_out), act)
    z = scale * _SYMMETRIC_INPUTS[distribution](rng, (samples, n_in))
    x, (_, derivative) = layer.forward(z)
    y = z @ layer.W
    failures = []
    for label, e, scale in (
        ("E[phi(y)^2] - c E[y^2]", np.mean(x * x - c * y * y, axis=1), c * np.mean(y * y)),
        ("E[phi'(y)^2] - c", np.mean(derivative * derivative - c, axis=1), c),
    ):
        mean, se = e.mean(), e.std(ddof=1) / math.sqrt(samples)
        # the slack covers rounding: with n_in = 1, e_b can be exactly 0 but for the last bit
        if abs(mean) > Z * se + 1e-12 * scale:
            failures.append(f"{label} = {mean:.4g} ({mean / se:+.1f} SE), c = {c}")
    return failures


@given(
    slope=st.one_of(st.just(None), st.floats(0.0, 1.0)),
    distribution=st.sampled_from(sorted(_SYMMETRIC_INPUTS)),
    n_in=st.integers(1, 4),
    scale=st.floats(1e-3, 1e3),
    seed=st.integers(0, 2**32 - 1),
)
def test_he_rectifier_factor_on_a_real_layer(slope, distribution, n_in, scale, seed):
    """He et al.: E[relu(y)^2] = Var[y]/2 and E[leaky(y)^2] = (1 + a^2)/2 Var[y] for symmetric y, any law."""
    act = activations.get("relu") if slope is None else activations.get("leaky_relu", slope=slope)
    failures = rectifier_failures(act, distribution, n_in, scale, seed)
    assert not failures, "\n".join(failures)


def test_rectifier_check_detects_a_wrong_factor(monkeypatch):
    leaky = activations.get("leaky_relu", slope=0.3)
    assert rectifier_failures("relu", "laplace", 2, 1.0, seed=3) == []
    assert rectifier_failures(leaky, "laplace", 2, 1.0, seed=3) == []
    real = theory.activation_factor
    # a classic slip: (1 + a)/2, the slope not squared
    monkeypatch.setattr(theory, "activation_factor",
                        lambda a: (1 + a.params["slope"]) / 2 if a.name == "leaky_relu" else real(a))
    assert rectifier_failures(leaky, "laplace", 2, 1.0, seed=3)
    monkeypatch.setattr(theory, "activation_factor", lambda a: 0.55 if a.name == "relu" else real(a))
    assert rectifier_failures("relu", "laplace", 2, 1.0, seed=3)


# ---------------------------------------------------------------------------------------------------
# 3. The mean-field length map against a wide real network, for every activation
# ---------------------------------------------------------------------------------------------------

MF_WIDTH = 256
MF_REPLICATES = 16
MF_BATCH = 128
MF_BIAS = 2.0  # allowed finite-width bias: MF_BIAS * (l - 1) / MF_WIDTH relative, at layer l


def mean_field_failures(activation, sw, sb, q0, depth, seed):
    """Disagreements of ``theory.qmap`` with the mean square pre-activations of real wide networks."""
    act = activations.get(activation)
    n = MF_WIDTH
    predicted = theory.qmap(act, sw, sb, q0, depth)[1:]
    measured = np.empty((MF_REPLICATES, depth))
    for r in range(MF_REPLICATES):
        net_seq, data_seq = np.random.SeedSequence([seed, r]).spawn(2)
        model = tinyid.MLP([n] * (depth + 1), act, ("xavier_normal", {"gain": sw}),  # Var[W] = sw^2 / n
                           seed=int(net_seq.generate_state(1)[0]), backend="numpy", dtype="float64")
        rng = np.random.default_rng(data_seq)
        for layer in model.layers:
            b = rng.standard_normal(n)
            layer.b[...] = sb * math.sqrt(n) * b / np.linalg.norm(b)  # mean square exactly sb^2
        x = act(rng.normal(0.0, math.sqrt(q0), size=(MF_BATCH, n)))  # phi of layer-0 pre-activations
        _, caches = model.forward_train(x)
        measured[r] = [np.mean((z @ layer.W + layer.b) ** 2) for layer, (z, _) in zip(model.layers, caches)]
    mean = measured.mean(axis=0)
    se = measured.std(axis=0, ddof=1) / math.sqrt(MF_REPLICATES)
    allowed = Z * se + MF_BIAS * np.arange(depth) / n * predicted  # layer 1 is exact in expectation
    return [
        f"layer {layer}: measured {m:.6g}, qmap {p:.6g} (SE {s:.2g}, allowed {a:.2g})"
        for layer, m, p, s, a in zip(range(1, depth + 1), mean, predicted, se, allowed) if abs(m - p) > a
    ]


def _with_parameter(name, u):
    """The activation ``name``; ``u`` in [0, 1] sets leaky_relu's slope (u) or elu's alpha (0.1 + 1.9 u)."""
    if name == "leaky_relu":
        return activations.get(name, slope=u)
    if name == "elu":
        return activations.get(name, alpha=0.1 + 1.9 * u)
    return activations.get(name)


# One explicit case per activation, so that every one runs whatever hypothesis draws; the corners with the
# largest finite-width bias found in the calibration among them.
_MF_CORNERS = [
    ("linear", 0.0, 3.0, 1.0, 10.0, 4), ("sigmoid", 0.0, 3.0, 1.0, 10.0, 4), ("tanh", 0.0, 1.5, 0.0, 0.05, 4),
    ("softsign", 0.0, 3.0, 0.3, 10.0, 4), ("relu", 0.0, 3.0, 1.0, 0.05, 4), ("leaky_relu", 0.2, 2.0, 0.5, 1.0, 4),
    ("hard_tanh", 0.0, 1.5, 0.0, 0.05, 4), ("elu", 0.2, 0.5, 1.0, 0.05, 4), ("selu", 0.0, 3.0, 0.0, 10.0, 4),
    ("gelu", 0.0, 3.0, 0.0, 0.05, 4),
]
assert sorted(c[0] for c in _MF_CORNERS) == sorted(activations.NAMES)


def _mf_examples(test):
    for name, u, sw, sb, q0, depth in _MF_CORNERS:
        test = example(name=name, u=u, sw=sw, sb=sb, q0=q0, depth=depth, seed=1)(test)
    return test


@settings(max_examples=20)
@given(
    name=st.sampled_from(activations.NAMES),
    u=st.floats(0.0, 1.0),
    sw=st.floats(0.5, 3.0),
    sb=st.floats(0.0, 1.0),
    q0=st.floats(0.05, 10.0),
    depth=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
@_mf_examples
def test_qmap_matches_wide_real_network(name, u, sw, sb, q0, depth, seed):
    """The mean-field length map q^l = sw^2 E[phi(sqrt(q^{l-1}) z)^2] + sb^2, through several real layers."""
    failures = mean_field_failures(_with_parameter(name, u), sw, sb, q0, depth, seed)
    assert not failures, "\n".join(failures)


def test_mean_field_check_detects_a_wrong_map(monkeypatch):
    args = ("tanh", 1.5, 0.5, 1.0, 3)
    assert mean_field_failures(*args, seed=2) == []
    real = theory._length_map
    monkeypatch.setattr(theory, "_length_map", lambda act, sw, sb, q: real(act, sw, 0.0, q) + sb)
    assert mean_field_failures(*args, seed=2)
