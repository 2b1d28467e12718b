r"""Closed-form predictions of initialization theory: how variances travel through depth.

Three layers of theory, from the simplest to the most general:

1. **Linear regime** (Glorot & Bengio 2010; He et al. 2015): :func:`weight_variance` of every initializer,
   and the per-layer products :func:`forward_variances`, :func:`backward_variances`,
   :func:`weight_gradient_variances`.
2. **Mean field** (Poole et al. 2016; Schoenholz et al. 2017): the length map :func:`qmap` for *any*
   activation, its fixed point :func:`fixed_point`, the slope :func:`chi1`, :func:`phase`, :func:`depth_scale`,
   the critical weight scale :func:`critical_sw` and the :func:`mean_field_gain` it implies, tabulated beside
   PyTorch's gains by :func:`gain_table`.
3. **Jacobian spectra**: the Bernoulli spectrum of identity-initialized nets (:func:`identity_spectrum`,
   following the identity initialization of Kubota et al. 2021) and the first two moments of the spectrum of
   :math:`J J^\top` at criticality for Gaussian vs orthogonal weights (:func:`jacobian_spectrum_moments`,
   Pennington, Schoenholz & Ganguli 2017).

Conventions
-----------
Widths are ``sizes = (n_0, n_1, ..., n_L)``: ``L = len(sizes) - 1`` weight layers; layer :math:`i = 1..L` has
weights :math:`W^i` of shape :math:`(n_{i-1}, n_i)` (tinyid stores weights as (in, out)), computes the
pre-activation :math:`s^i = z^{i-1} W^i + b^i` and the output :math:`z^i = \phi(s^i)`; :math:`z^0 = x`.
Biases are taken to be 0, weights zero-mean and independent of the inputs. Every function returns NumPy
float64 values; everything is computed in closed form or by deterministic quadrature, never by sampling.

Activations are given as anything :func:`tinyid.activations.get` accepts (a name, an
:class:`~tinyid.activations.Activation`, a config dict); initializers as anything :func:`tinyid.init.get`
accepts except arbitrary callables (a name, a ``(name, kwargs)`` pair, a config dict).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyid import activations as _act
from tinyid import init as _init

__all__ = [
    "weight_variance",
    "activation_factor",
    "forward_variances",
    "backward_variances",
    "weight_gradient_variances",
    "mean_singular_value",
    "qmap",
    "fixed_point",
    "chi1",
    "phase",
    "depth_scale",
    "critical_sw",
    "mean_field_gain",
    "gain_table",
    "identity_spectrum",
    "jacobian_spectrum_moments",
    "QUADRATURE_POINTS",
]

#: Gauss-Legendre points per segment of the composite rule behind every mean-field expectation.
QUADRATURE_POINTS = 48

# Why not plain Gauss-Hermite (numpy.polynomial.hermite_e.hermegauss)? It is the textbook rule for E_z[f(z)],
# but it converges fast only for integrands that are smooth on the scale of its nodes. Here the integrand is
# phi(sqrt(q) z)^2: kinks (relu, hard_tanh, elu, selu, and softsign's phi') make convergence algebraic, and for
# large q the features sit within 1/sqrt(q) of z = 0, between the nodes. With 101 Hermite nodes the error is
# 0.5% for E[hard_tanh(z)^2], 10% for softsign' at q = 1 and 55% for tanh' at q = 43. So the real line is cut
# at the kinks and at x = +-1, 2, 4, 8 (in units of the pre-activation, z = x / sqrt(q)) and at z = +-_Z_MAX,
# and each piece gets Gauss-Legendre: every piece is smooth, so the rule converges spectrally (to ~1e-12 here).
_Z_MAX = 12.0  # the normal density beyond 12 is below 1e-31
_BREAKS = (-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0)  # includes every kink of the registry (0, +-1)
_LEG_NODES, _LEG_WEIGHTS = np.polynomial.legendre.leggauss(QUADRATURE_POINTS)

# Activations for which the linear-regime factor is 1: odd, phi'(0) = 1, so phi(s) ~ s for small s.
_LINEAR_REGIME = ("linear", "tanh", "softsign", "hard_tanh")
# Positively homogeneous activations: phi(c s) = c phi(s) for c > 0, so E[phi(sqrt(q) z)^2] = kappa q exactly.
_HOMOGENEOUS = ("linear", "relu", "leaky_relu")
# phi'(0) = 1 and |phi(x)| <= |x|, strictly on one side of 0: for sb = 0, sw <= 1 the length map contracts to q* = 0.
_CONTRACTING = ("tanh", "softsign", "hard_tanh")


def _contracting(act) -> bool:
    return act.name in _CONTRACTING or (act.name == "elu" and act.params["alpha"] == 1.0)


# ---------------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------------


def _activation(spec: Any) -> _act.Activation:
    try:
        return _act.get(spec)
    except (TypeError, KeyError) as err:  # pragma: no cover - activations.get raises ValueError itself
        raise ValueError(f"unknown activation {spec!r}") from err


def _number(name: str, value: Any, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and value <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if nonneg and value < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def _int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _sizes(sizes: Any) -> tuple[int, ...]:
    try:
        sizes = tuple(sizes)
    except TypeError as err:
        raise ValueError(f"sizes must be a sequence of positive ints (n_0, ..., n_L), got {sizes!r}") from err
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least two widths (n_0, n_1), got {sizes!r}")
    return tuple(_int("every width in sizes", n, 1) for n in sizes)


# ---------------------------------------------------------------------------------------------------
# 1. Linear regime
# ---------------------------------------------------------------------------------------------------


def weight_variance(init: Any, fan_in: int, fan_out: int) -> float:
    r"""The variance :math:`\mathrm{Var}[W]` of one entry of a ``(fan_in, fan_out)`` matrix from ``init``.

    With :math:`n_{in}` = ``fan_in``, :math:`n_{out}` = ``fan_out``, gain :math:`g`, He slope :math:`a`:

    =====================================  ===========================================================================
    initializer                            :math:`\mathrm{Var}[W]`
    =====================================  ===========================================================================
    ``uniform_fanin``                      :math:`1 / (3 n_{in})` (Glorot & Bengio's "standard" heuristic)
    ``xavier_uniform``, ``xavier_normal``  :math:`2 g^2 / (n_{in} + n_{out})` (Glorot & Bengio's normalized init)
    ``he_uniform``, ``he_normal``          :math:`2 / ((1 + a^2)\, n)`, :math:`n` = the fan ``mode`` picks (He et al.)
    ``lecun_normal``                       :math:`1 / n_{in}`
    ``orthogonal``                         :math:`g^2 / \max(n_{in}, n_{out})` (unit rows or columns, times :math:`g`)
    ``identity``                           :math:`\sigma^2 \min(n_{in}, n_{out}) / (n_{in} n_{out})`
    =====================================  ===========================================================================

    ``identity`` is deterministic (:math:`W = \sigma I`): there is no random draw, and what is returned is the
    mean square of the entries, :math:`\frac{1}{n_{in} n_{out}} \sum_{jk} W_{jk}^2`, the quantity that plays
    the role of the variance in the products of :func:`forward_variances` (e.g. :math:`n\,\mathrm{Var}[W]
    = \sigma^2` for a square identity).

    Parameters
    ----------
    init : str, (str, dict) or dict
        An initializer spec as :func:`tinyid.init.get` takes it (not an arbitrary callable).
    fan_in, fan_out : int
        :math:`n_{in}, n_{out} \ge 1`.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        For an unknown initializer, bad keyword arguments, a callable, or non-positive fans.
    """
    n_in = _int("fan_in", fan_in, 1)
    n_out = _int("fan_out", fan_out, 1)
    if callable(init) and not isinstance(init, (str, dict)):
        config = _init.to_config(init)
        if config is None:
            raise ValueError(f"no closed-form variance for the callable {init!r}: pass a registered name or spec")
    else:
        config = _init.to_config(init)  # validates name and keywords, raises ValueError
    name = config.pop("name")
    if name == "uniform_fanin":
        return 1.0 / (3.0 * n_in)
    if name in ("xavier_uniform", "xavier_normal"):
        g = config.get("gain", 1.0)
        return 2.0 * g * g / (n_in + n_out)
    if name in ("he_uniform", "he_normal"):
        a = config.get("a", 0.0)
        fan = n_in if config.get("mode", "fan_in") == "fan_in" else n_out
        return 2.0 / ((1.0 + a * a) * fan)
    if name == "lecun_normal":
        return 1.0 / n_in
    if name == "orthogonal":
        g = config.get("gain", 1.0)
        return g * g / max(n_in, n_out)
    if name == "identity":
        s = config.get("sigma", 1.0)
        return s * s * min(n_in, n_out) / (n_in * n_out)
    raise ValueError(f"no closed-form variance for initializer {name!r}")  # pragma: no cover - registry in sync


def activation_factor(activation: Any) -> float:
    r"""The factor :math:`c` one layer of ``activation`` multiplies a second moment by, in the linear regime.

    * ``linear``, ``tanh``, ``softsign``, ``hard_tanh`` (odd, :math:`\phi'(0) = 1`): :math:`c = 1`. Exact for
      ``linear``; for the others valid only while pre-activations stay small (Glorot & Bengio's linear regime).
      How small differs: tanh deviates at second order (:math:`E[\tanh(s)^2]/q = 0.98` at :math:`q = 0.01`),
      softsign at first order, :math:`\approx 3.2\sqrt q` (0.97 at :math:`q = 10^{-4}`, 0.75 at :math:`q = 0.01`,
      0.47 at :math:`q = 0.1`). Outside that range use :func:`qmap`.
    * ``relu``: :math:`c = 1/2`, exact (He et al.): for a symmetric zero-mean :math:`s`,
      :math:`E[\mathrm{relu}(s)^2] = \mathrm{Var}[s]/2` and :math:`E[\mathrm{relu}'(s)^2] = 1/2`.
    * ``leaky_relu`` with slope :math:`a`: :math:`c = (1 + a^2)/2`, exact.

    Raises
    ------
    ValueError
        For every other activation (sigmoid, elu, selu, gelu): the linear-regime products do not apply; use
        the mean-field map :func:`qmap` instead.
    """
    act = _activation(activation)
    if act.name in _LINEAR_REGIME:
        return 1.0
    if act.name == "relu":
        return 0.5
    if act.name == "leaky_relu":
        a = act.params["slope"]
        return (1.0 + a * a) / 2.0
    raise ValueError(
        f"the linear-regime variance formula does not apply to {act.name!r} (it needs an odd activation with "
        "phi'(0) = 1, or a (leaky) ReLU); use the mean-field length map tinyid.theory.qmap instead"
    )


def _layer_gains(sizes, init, activation):
    sizes = _sizes(sizes)
    c = activation_factor(activation)
    # a_i = n_{i-1} Var[W^i] (forward), b_i = n_i Var[W^i] (backward), i = 1..L
    var_w = np.array([weight_variance(init, sizes[i - 1], sizes[i]) for i in range(1, len(sizes))])
    fwd = np.asarray(sizes[:-1], dtype=np.float64) * var_w
    bwd = np.asarray(sizes[1:], dtype=np.float64) * var_w
    return fwd, bwd, c


def forward_variances(sizes: Any, init: Any, activation: Any, input_var: float = 1.0) -> np.ndarray:
    r"""Predicted :math:`\mathrm{Var}[s^i]` of the pre-activations of layers :math:`i = 1, \dots, L`.

    Glorot & Bengio's linear-regime product, with He et al.'s correction for rectifiers: each layer multiplies
    the second moment by :math:`n_{i-1} \mathrm{Var}[W^i]` (the matrix product) and each activation in between
    by the factor :math:`c` of :func:`activation_factor` (1, 1/2 for ReLU, :math:`(1+a^2)/2` for leaky ReLU):

    .. math::

        \mathrm{Var}[s^i] = E[x^2] \; c^{\,i-1} \prod_{i'=1}^{i} n_{i'-1} \mathrm{Var}[W^{i'}] .

    With :math:`c = 1` this is the paper's :math:`\mathrm{Var}[z^i] = \mathrm{Var}[x] \prod_{i' < i} n_{i'}
    \mathrm{Var}[W^{i'}]` (in their 0-based indexing), so Xavier keeps it near 1 and the "standard" init shrinks
    it by 3 a layer; with ReLU and He (fan-in) init every layer keeps :math:`\mathrm{Var}[s^i] = 2 E[x^2]`.

    Parameters
    ----------
    sizes : sequence of int, length L + 1
        Widths :math:`(n_0, \dots, n_L)`.
    init : initializer spec
        Used for every layer (see :func:`weight_variance`).
    activation : activation spec
        Applied after every layer but the last (its output is :math:`s^L` itself).
    input_var : float, default 1
        :math:`E[x^2]` of every input coordinate (the variance for zero-mean inputs), >= 0.

    Returns
    -------
    (L,) float64 numpy.ndarray
        Entry ``i - 1`` is :math:`\mathrm{Var}[s^i]`, the variance of a unit's pre-activation in layer :math:`i`
        over random weights and inputs (biases 0).

    Raises
    ------
    ValueError
        For bad sizes, init, a negative ``input_var``, or an activation outside the linear regime
        (see :func:`activation_factor`).
    """
    v = _number("input_var", input_var, nonneg=True)
    fwd, _, c = _layer_gains(sizes, init, activation)
    powers = c ** np.arange(len(fwd), dtype=np.float64)
    return v * np.cumprod(fwd) * powers


def backward_variances(sizes: Any, init: Any, activation: Any, output_grad_var: float = 1.0) -> np.ndarray:
    r"""Predicted :math:`\mathrm{Var}[\partial C / \partial s^i]` of the back-propagated gradients, :math:`i = 1..L`.

    The chain rule :math:`\partial C/\partial s^i = \phi'(s^i) \odot (\partial C/\partial s^{i+1}\, W^{i+1\top})`
    sums over the :math:`n_{i+1}` units of the next layer, so each step down multiplies the variance by
    :math:`n_{i+1} \mathrm{Var}[W^{i+1}]` and by :math:`c = E[\phi'(s)^2]` (1, 1/2 for ReLU, :math:`(1+a^2)/2`
    for leaky ReLU; :func:`activation_factor`):

    .. math::

        \mathrm{Var}\Big[\frac{\partial C}{\partial s^i}\Big] = \mathrm{Var}\Big[\frac{\partial C}{\partial s^L}\Big]
        \; c^{\,L-i} \prod_{i'=i+1}^{L} n_{i'} \mathrm{Var}[W^{i'}] .

    For equal widths this scales like :math:`(c\, n \mathrm{Var}[W])^{L-i}`. (Glorot & Bengio write the
    product from :math:`i' = i`; the exact chain rule in the indexing above starts at the layer above.)

    Parameters
    ----------
    sizes, init, activation
        As in :func:`forward_variances`.
    output_grad_var : float, default 1
        :math:`\mathrm{Var}[\partial C/\partial s^L]` of the gradient at the top pre-activation, >= 0.

    Returns
    -------
    (L,) float64 numpy.ndarray
        Entry ``i - 1`` is :math:`\mathrm{Var}[\partial C/\partial s^i]`; the last entry is ``output_grad_var``.
    """
    g = _number("output_grad_var", output_grad_var, nonneg=True)
    _, bwd, c = _layer_gains(sizes, init, activation)
    L = len(bwd)
    out = np.empty(L)
    acc = g
    out[L - 1] = acc
    for i in range(L - 1, 0, -1):  # 0-based: entry i-1 from entry i, through W of layer i+1 (bwd[i])
        acc = acc * bwd[i] * c
        out[i - 1] = acc
    return out


def weight_gradient_variances(
    sizes: Any, init: Any, activation: Any, input_var: float = 1.0, output_grad_var: float = 1.0
) -> np.ndarray:
    r"""Predicted :math:`\mathrm{Var}[\partial C / \partial W^i]` for one example, :math:`i = 1..L`.

    :math:`\partial C/\partial W^i_{jk} = z^{i-1}_j \, \partial C/\partial s^i_k`, and the two factors are
    (to this order) independent, so

    .. math::

        \mathrm{Var}\Big[\frac{\partial C}{\partial W^i}\Big] = E[(z^{i-1})^2]\;
        \mathrm{Var}\Big[\frac{\partial C}{\partial s^i}\Big],
        \qquad E[(z^{i-1})^2] = \begin{cases} E[x^2] & i = 1 \\ c\,\mathrm{Var}[s^{i-1}] & i > 1 \end{cases}

    the product of :func:`forward_variances` and :func:`backward_variances` (Glorot & Bengio's weight-gradient
    formula). For equal widths every layer gets the same value :math:`E[x^2]\,
    \mathrm{Var}[\partial C/\partial s^L] \,(c\, n \mathrm{Var}[W])^{L-1}`, whatever the init: the
    weight gradients do not vanish with depth even when the back-propagated ones do.

    Returns
    -------
    (L,) float64 numpy.ndarray
    """
    fwd_s = forward_variances(sizes, init, activation, input_var)
    back = backward_variances(sizes, init, activation, output_grad_var)
    c = activation_factor(activation)
    z2 = np.concatenate([[float(input_var)], c * fwd_s[:-1]])
    return z2 * back


def mean_singular_value(init: Any, fan_in: int, fan_out: int) -> float:
    r"""The mean singular value of a wide random ``(fan_in, fan_out)`` weight matrix drawn by ``init``.

    This is the mean singular value of a layer's Jacobian :math:`D W^\top` in the linear regime
    (:math:`D = I`), the quantity behind Glorot & Bengio's observation that the standard init gives layer
    Jacobians with mean singular value about 0.5 and the normalized init about 0.8. For iid zero-mean entries
    of variance :math:`v` and :math:`n_< = \min(n_{in}, n_{out})`, :math:`n_> = \max(n_{in}, n_{out})`, the
    eigenvalues :math:`x` of :math:`W W^\top / (n_> v)` (the :math:`n_<` nonzero ones) follow the
    Marchenko-Pastur law of ratio :math:`\lambda = n_< / n_>` as the widths grow,

    .. math::

        \rho(x) = \frac{\sqrt{(b - x)(x - a)}}{2 \pi \lambda x}, \qquad a, b = (1 \mp \sqrt{\lambda})^2,
        \qquad E[s] = \sqrt{n_> v} \int_a^b \sqrt{x}\, \rho(x)\, dx .

    For a square matrix this is the quarter-circle law, :math:`E[s] = \frac{8}{3\pi}\sqrt{n v}`: 0.49 for
    the standard init (:math:`n v = 1/3`) and 0.85 for Xavier (:math:`n v = 1`). The activation's slopes
    :math:`\phi'(s) \le 1` in :math:`D` pull a tanh network's measured values a little below these. An
    orthogonal matrix has every singular value equal to its gain, and ``identity`` to :math:`\sigma`: both
    are returned exactly.

    Parameters
    ----------
    init : initializer spec
        As in :func:`weight_variance`.
    fan_in, fan_out : int
        Shape of the weight matrix.

    Returns
    -------
    float
        The large-width limit of the mean of the :math:`n_<` singular values.
    """
    v = weight_variance(init, fan_in, fan_out)  # validates init and fans
    n_small, n_big = min(fan_in, fan_out), max(fan_in, fan_out)
    if _init.to_config(init)["name"] in ("orthogonal", "identity"):
        return math.sqrt(n_big * v)  # every singular value is the gain (sigma): v = g^2 / n_big
    lam = n_small / n_big
    a, b = (1.0 - math.sqrt(lam)) ** 2, (1.0 + math.sqrt(lam)) ** 2
    # x = (a + b)/2 - (b - a)/2 cos(theta) removes the square-root endpoints: dx sqrt((b-x)(x-a)) = ((b-a)/2)^2
    # sin(theta)^2 dtheta, and the integrand sqrt(x) rho(x) dx becomes smooth in theta on [0, pi].
    theta = (_LEG_NODES + 1.0) * (math.pi / 2.0)
    weights = _LEG_WEIGHTS * (math.pi / 2.0)
    x = (a + b) / 2.0 - (b - a) / 2.0 * np.cos(theta)
    half = (b - a) / 2.0
    integrand = half * half * np.sin(theta) ** 2 / (2.0 * math.pi * lam * np.sqrt(x))
    return math.sqrt(n_big * v) * float(weights @ integrand)


# ---------------------------------------------------------------------------------------------------
# 2. Mean field
# ---------------------------------------------------------------------------------------------------


def _expect(f, q: float) -> float:
    r""":math:`E_{z \sim N(0,1)}[f(\sqrt{q} z)]` by composite Gauss-Legendre quadrature (see the note at
    :data:`QUADRATURE_POINTS`); :math:`f(0)` for :math:`q = 0`."""
    if q == 0.0:
        return float(f(np.zeros(1))[0])
    r = math.sqrt(q)
    cuts = np.unique(np.concatenate([[-_Z_MAX, _Z_MAX], [b / r for b in _BREAKS if abs(b / r) < _Z_MAX]]))
    a, b = cuts[:-1, None], cuts[1:, None]
    z = 0.5 * (b - a) * _LEG_NODES + 0.5 * (a + b)  # (segments, points)
    w = 0.5 * (b - a) * _LEG_WEIGHTS * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return float(np.sum(w * f(r * z)))


def _kappa(act: _act.Activation) -> float:
    """E[phi(z)^2] = E[phi'(z)^2] for a positively homogeneous activation (exact)."""
    if act.name == "linear":
        return 1.0
    if act.name == "relu":
        return 0.5
    a = act.params["slope"]
    return (1.0 + a * a) / 2.0


def _check_sw_sb(sw, sb):
    return _number("sw", sw, nonneg=True), _number("sb", sb, nonneg=True)


def _length_map(act, sw, sb, q):
    if act.name in _HOMOGENEOUS:
        return sw * sw * _kappa(act) * q + sb * sb
    return sw * sw * _expect(lambda x: act(x) ** 2, q) + sb * sb


def qmap(activation: Any, sw: float, sb: float, q0: float, depth: int) -> np.ndarray:
    r"""Iterate the mean-field length map ``depth`` times from ``q0``.

    For a wide network with weights :math:`W_{jk} \sim N(0, \sigma_w^2 / n)` and biases
    :math:`b \sim N(0, \sigma_b^2)`, the mean square pre-activation :math:`q^l` of layer :math:`l` follows
    (Poole et al. 2016; Schoenholz et al. 2017)

    .. math::

        q^l = \sigma_w^2 \, E_{z \sim N(0,1)}\big[\phi(\sqrt{q^{l-1}}\, z)^2\big] + \sigma_b^2 .

    The expectation is a deterministic quadrature: composite Gauss-Legendre on :math:`|z| \le 12`, cut at the
    activations' kinks and at a few multiples of :math:`1/\sqrt q` (see :data:`QUADRATURE_POINTS` for why not
    Gauss-Hermite: kinks, and the narrow features of large :math:`q`, make Hermite converge slowly or not at
    all with a fixed number of nodes). linear, relu and leaky_relu are positively homogeneous and use the exact
    :math:`E[\phi(\sqrt q z)^2] = \kappa q` with :math:`\kappa = 1, 1/2, (1+a^2)/2`. Xavier (linear) and He
    (ReLU) are this map with :math:`\sigma_w^2 \kappa = 1`, :math:`\sigma_b = 0`.

    Parameters
    ----------
    activation : activation spec
    sw, sb : float
        :math:`\sigma_w, \sigma_b \ge 0` (standard deviations: ``Var[W] = sw**2 / fan_in``).
    q0 : float
        :math:`q^0 \ge 0`, the mean square of the inputs' pre-activations.
    depth : int
        Number of layers, >= 0.

    Returns
    -------
    (depth + 1,) float64 numpy.ndarray
        :math:`(q^0, q^1, \dots, q^{depth})`.
    """
    act = _activation(activation)
    sw, sb = _check_sw_sb(sw, sb)
    q = _number("q0", q0, nonneg=True)
    depth = _int("depth", depth, 0)
    out = np.empty(depth + 1)
    out[0] = q
    for l in range(1, depth + 1):
        q = _length_map(act, sw, sb, q)
        out[l] = q
    return out


def fixed_point(
    activation: Any, sw: float, sb: float, q0: float = 1.0, tol: float = 1e-12, max_iter: int = 10_000
) -> float:
    r"""The fixed point :math:`q^*` of the length map :func:`qmap` reached from ``q0``.

    .. math:: q^* = \sigma_w^2\, E_z\big[\phi(\sqrt{q^*} z)^2\big] + \sigma_b^2 .

    Found by iterating the map until two iterates differ by at most ``tol * max(1, q)``; whenever two steps
    shrink geometrically (linear convergence, slow near a phase transition) the limit is extrapolated with
    Aitken's :math:`\Delta^2` (the jump is capped at a factor 2 in :math:`q`). Two exact shortcuts where
    iteration would crawl:

    * linear, relu, leaky_relu: the map is the line :math:`q \mapsto m q + \sigma_b^2`, :math:`m =
      \sigma_w^2 \kappa`, solved exactly: :math:`q^* = \sigma_b^2 / (1 - m)` for :math:`m < 1`. For :math:`m = 1`
      (to 1e-12) and :math:`\sigma_b = 0` **every** :math:`q` is a fixed point and ``q0`` itself is returned
      (e.g. linear with :math:`\sigma_w = 1`, ReLU with :math:`\sigma_w = \sqrt 2`: He's init); otherwise
      (:math:`m \ge 1`, or :math:`m > 1` with :math:`q_0 > 0`) the map diverges and ValueError is raised.
    * tanh, softsign, hard_tanh, elu with :math:`\alpha = 1`, all with :math:`\sigma_b = 0` and
      :math:`\sigma_w \le 1`: since :math:`|\phi(x)| \le |x|`, strictly for :math:`x < 0`,
      :math:`q^l < \sigma_w^2 q^{l-1} \le q^{l-1}` and :math:`q^* = 0` exactly
      (convergence is only algebraic at :math:`\sigma_w = 1`, so it is not iterated).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the iterates diverge (overflow) or do not settle within ``max_iter`` steps, or for bad arguments.
    """
    act = _activation(activation)
    sw, sb = _check_sw_sb(sw, sb)
    q = _number("q0", q0, nonneg=True)
    tol = _number("tol", tol, positive=True)
    max_iter = _int("max_iter", max_iter, 1)
    if act.name in _HOMOGENEOUS:
        m = sw * sw * _kappa(act)
        if abs(m - 1.0) <= 1e-12:
            if sb == 0.0:
                return q  # a line of fixed points: every q is one
            raise ValueError(
                f"the length map of {act.name!r} with sw={sw}, sb={sb} is q -> q + sb^2: it grows without bound "
                "(no fixed point)"
            )
        if m < 1.0:
            return sb * sb / (1.0 - m)
        if q == 0.0 and sb == 0.0:
            return 0.0  # the unstable fixed point, reached only from 0
        raise ValueError(
            f"the length map of {act.name!r} diverges for sw={sw} (slope sw^2 * E[phi(z)^2] = {m:.6g} > 1): "
            "no finite attracting fixed point"
        )
    if _contracting(act) and sb == 0.0 and sw <= 1.0:
        return 0.0
    prev_step = 0.0
    for _ in range(max_iter):
        new = _length_map(act, sw, sb, q)
        if not math.isfinite(new) or new > 1e300:
            raise ValueError(f"the length map of {act.name!r} with sw={sw}, sb={sb} diverges from q0={q0}")
        step = new - q
        if abs(step) <= tol * max(1.0, q):
            return new
        r = step / prev_step if prev_step != 0.0 else 0.0
        if 0.0 < r < 1.0:
            # Two steps shrinking geometrically: Aitken's extrapolation of the limit, new + step r / (1 - r),
            # moved at most by a factor 2 so that it cannot leap across a fixed point to another basin.
            jump = new + step * r / (1.0 - r)
            q, prev_step = min(max(jump, 0.5 * new), 2.0 * new), 0.0
        else:
            q, prev_step = new, step
    raise ValueError(
        f"the length map of {act.name!r} with sw={sw}, sb={sb} did not converge to tol={tol} in {max_iter} "
        f"iterations (last q = {q:.6g}); near a phase transition convergence is slow: raise max_iter or tol"
    )


def chi1(activation: Any, sw: float, sb: float, **fixed_point_kwargs: Any) -> float:
    r"""The slope :math:`\chi_1` that multiplies back-propagated gradient variances at each layer.

    .. math:: \chi_1 = \sigma_w^2 \, E_z\big[\phi'(\sqrt{q^*} z)^2\big]

    at the fixed point :math:`q^*` of :func:`fixed_point` (Schoenholz et al. 2017). Gradient variances scale
    like :math:`\chi_1^{L-l}`: :math:`\chi_1 < 1` ordered (vanishing), :math:`> 1` chaotic (exploding),
    :math:`= 1` critical. For linear, relu and leaky_relu :math:`\phi'^2` is scale-free, so
    :math:`\chi_1 = \sigma_w^2 \kappa` exactly (:math:`\sigma_w^2`, :math:`\sigma_w^2/2`,
    :math:`\sigma_w^2 (1+a^2)/2`) and :math:`q^*` is not needed. ``fixed_point_kwargs`` (``q0``, ``tol``,
    ``max_iter``) go to :func:`fixed_point`.
    """
    act = _activation(activation)
    sw, sb = _check_sw_sb(sw, sb)
    if act.name in _HOMOGENEOUS:
        return sw * sw * _kappa(act)
    q = fixed_point(act, sw, sb, **fixed_point_kwargs)
    if q == 0.0:
        d0 = float(act.derivative(np.float64(0.0)))
        return sw * sw * d0 * d0
    return sw * sw * _expect(lambda x: act.derivative(x) ** 2, q)


def phase(activation: Any, sw: float, sb: float, tol: float = 1e-6) -> str:
    r"""``"ordered"`` (:math:`\chi_1 < 1 - tol`), ``"chaotic"`` (:math:`\chi_1 > 1 + tol`) or ``"critical"``."""
    tol = _number("tol", tol, nonneg=True)
    c = chi1(activation, sw, sb)
    if c < 1.0 - tol:
        return "ordered"
    if c > 1.0 + tol:
        return "chaotic"
    return "critical"


def depth_scale(activation: Any, sw: float, sb: float, tol: float = 1e-12) -> float:
    r"""The gradient depth scale :math:`\xi = -1 / \log \chi_1`: back-propagated gradient variances change by a
    factor *e* every :math:`|\xi|` layers.

    .. math:: \xi = -\frac{1}{\log \chi_1}

    Positive in the ordered phase (decay), negative in the chaotic phase (growth), ``inf`` at criticality
    (:math:`|\chi_1 - 1| \le` ``tol``, so that the rounding of e.g. :math:`\sqrt 2^2 / 2` does not give
    :math:`\pm 10^{15}`), 0 when :math:`\chi_1 = 0`.
    """
    tol = _number("tol", tol, nonneg=True)
    c = chi1(activation, sw, sb)
    if abs(c - 1.0) <= tol:
        return math.inf
    if c == 0.0:
        return 0.0
    return -1.0 / math.log(c)


def critical_sw(activation: Any, sb: float = 0.0, lo: float = 1e-3, hi: float = 30.0, tol: float = 1e-10) -> float:
    r"""The weight scale :math:`\sigma_w` at which :math:`\chi_1 = 1` (the order-to-chaos transition).

    Exact where known: :math:`1/\sqrt{\kappa}` for linear (1), relu (:math:`\sqrt 2`, He's init) and leaky_relu
    (:math:`\sqrt{2/(1+a^2)}`); 1 for tanh, softsign, hard_tanh and elu (:math:`\alpha = 1`) at
    :math:`\sigma_b = 0`: for :math:`\sigma_w \le 1`, :math:`q^* = 0` and :math:`\chi_1 = \sigma_w^2
    \phi'(0)^2 = \sigma_w^2`, and above 1, :math:`q^* > 0` and :math:`\chi_1 > 1` (the chaotic side; checked numerically, up to the
    slow convergence of :math:`q^*` within ~1e-3 of 1). Otherwise
    the first sign change of :math:`\chi_1(\sigma_w) - 1` on a geometric grid over ``[lo, hi]``, refined by
    bisection to ``tol``. :math:`q^*` is the fixed point reached from :math:`q_0 = 1`; where the length map
    diverges (e.g. elu, selu, gelu with large :math:`\sigma_w`, whose positive branch is linear) the point
    counts as chaotic.

    Near a bifurcation of :math:`q^*` (e.g. selu at :math:`\sigma_b = 0`, where :math:`q^*` leaves 0) the fixed
    point converges slowly and :math:`\chi_1` at the returned value is 1 only to about 1e-3.

    Raises
    ------
    ValueError
        If :math:`\chi_1 - 1` does not change sign on ``[lo, hi]``, or if it changes sign only by the length map
        starting to diverge (gelu at :math:`\sigma_b = 0`: :math:`q^* = 0` with :math:`\chi_1 < 0.6` up to
        :math:`\sigma_w \approx 1.53`, then no finite fixed point).
    """
    act = _activation(activation)
    sb = _number("sb", sb, nonneg=True)
    if act.name in _HOMOGENEOUS:
        return 1.0 / math.sqrt(_kappa(act))
    if _contracting(act) and sb == 0.0:
        return 1.0
    lo = _number("lo", lo, positive=True)
    hi = _number("hi", hi, positive=True)
    if not lo < hi:
        raise ValueError(f"need lo < hi, got lo={lo}, hi={hi}")

    def f(sw):
        try:
            return chi1(act, sw, sb) - 1.0
        except ValueError:
            # The length map diverges (activations blow up) or converges too slowly to tell (right next to a
            # transition of q*): count it as the chaotic side; the check after the bisection sorts out which.
            return math.inf

    # Scan a geometric grid for the first sign change, then bisect it.
    grid = np.geomspace(lo, hi, 65)
    values = [f(sw) for sw in grid]
    for k in range(len(grid) - 1):
        if values[k] == 0.0:
            return float(grid[k])
        if (values[k] < 0) != (values[k + 1] < 0):
            break
    else:
        raise ValueError(
            f"chi1 - 1 does not change sign for sw in [{lo}, {hi}] for {act.name!r}, sb={sb}: "
            "no critical sw bracketed"
        )
    lo, hi, f_lo = float(grid[k]), float(grid[k + 1]), values[k]
    while hi - lo > tol * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        f_mid = f(mid)
        if f_mid == 0.0:
            return mid
        if (f_mid < 0) == (f_lo < 0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
    sw = 0.5 * (lo + hi)
    c = f_lo + 1.0  # the lower end always has a finite chi1 (the scan starts on the ordered side)
    if not abs(c - 1.0) <= 1e-3:
        raise ValueError(
            f"{act.name!r} with sb={sb} has no critical sw: chi1 does not pass through 1 but jumps at sw={sw:.6g} "
            f"from {c:.4g} to a diverging length map (no finite q*); choose sb > 0"
        )
    return sw


def mean_field_gain(activation: Any, sb: float = 0.0) -> float:
    r"""The gain that keeps back-propagated gradients stable in the mean-field sense: the critical
    :math:`\sigma_w` of :func:`critical_sw`, to use as ``Var[W] = gain**2 / fan_in``."""
    return critical_sw(activation, sb)


def gain_table() -> list[tuple[str, "float | None", "float | None"]]:
    r"""``[(name, mean-field gain at sb = 0 or None, PyTorch's gain or None), ...]`` for every activation in
    :data:`tinyid.activations.NAMES` (default parameters). The mean-field gain is None where
    :func:`critical_sw` finds no critical point (gelu at :math:`\sigma_b = 0`).

    The two agree where PyTorch's value is derived (linear 1, relu :math:`\sqrt 2`, leaky_relu
    :math:`\sqrt{2/(1+a^2)}`). They differ for tanh: PyTorch's 5/3 is a heuristic chosen to keep activations
    away from zero, while the mean-field critical :math:`\sigma_w` at :math:`\sigma_b = 0` is exactly 1
    (:math:`q^* = 0`, :math:`\chi_1 = \sigma_w^2`); with 5/3 a deep tanh net is in the chaotic phase. For
    sigmoid (PyTorch 1; mean field about 10.1, since sigmoid's nonzero mean pushes :math:`q^*` far out where
    :math:`\phi'` is small) and selu (PyTorch 3/4, chosen for self-normalization, not criticality; mean field
    about 0.69, where :math:`q^*` leaves 0) they differ too.
    """
    rows = []
    for name in _act.NAMES:
        try:
            torch = _init.gain(name)
        except ValueError:
            torch = None
        try:
            mf = mean_field_gain(name)
        except ValueError:
            mf = None
        rows.append((name, mf, torch))
    return rows


# ---------------------------------------------------------------------------------------------------
# 3. Jacobian spectra
# ---------------------------------------------------------------------------------------------------


def identity_spectrum(sigma: float, q0: float, depth: int, activation: Any) -> tuple[float, float]:
    r"""The Bernoulli spectrum of :math:`J J^\top` for a depth-``depth`` net with :math:`W^l = \sigma I`, no bias.

    Every layer then acts elementwise, :math:`J = \sigma^L \prod_l D^l` is diagonal with :math:`D^l =
    \mathrm{diag}(\phi'(s^l))`, and when :math:`\phi'` only takes the values 0 and 1 each eigenvalue of
    :math:`J J^\top` is :math:`\sigma^{2L}` with probability :math:`\alpha` (the unit was never saturated)
    and 0 otherwise. For inputs :math:`x \sim N(0, q_0)`:

    * hard_tanh: a unit is unsaturated iff :math:`|\sigma^l x| < 1` for every layer; the binding layer is the
      first for :math:`\sigma \le 1` and the last for :math:`\sigma > 1`:

      .. math::

          \alpha = \operatorname{erf}\!\Big(\frac{1}{\sigma \sqrt{2 q_0}}\Big) \;(\sigma \le 1), \qquad
          \alpha = \operatorname{erf}\!\Big(\frac{1}{\sigma^L \sqrt{2 q_0}}\Big) \;(\sigma > 1)

    * relu: :math:`\alpha = 1/2` whatever :math:`\sigma, q_0` (the sign never changes after layer 1).

    (A reconstruction from the identity initialization of Kubota et al. 2021; with ``depth = 0``, :math:`J = I`.)

    Parameters
    ----------
    sigma : float
        :math:`\sigma > 0`.
    q0 : float
        Input variance :math:`q_0 > 0`.
    depth : int
        :math:`L \ge 0`.
    activation : activation spec
        ``"hard_tanh"`` or ``"relu"``.

    Returns
    -------
    (alpha, eigenvalue) : (float, float)
        :math:`(\alpha, \sigma^{2L})`.
    """
    s = _number("sigma", sigma, positive=True)
    q0 = _number("q0", q0, positive=True)
    depth = _int("depth", depth, 0)
    act = _activation(activation)
    eig = s ** (2 * depth)
    if depth == 0:
        return 1.0, 1.0
    if act.name == "relu":
        return 0.5, eig
    if act.name == "hard_tanh":
        scale = s if s <= 1.0 else s**depth
        return math.erf(1.0 / (scale * math.sqrt(2.0 * q0))), eig
    raise ValueError(
        f"identity_spectrum needs an activation whose derivative is 0 or 1 (relu, hard_tanh), got {act.name!r}"
    )


def jacobian_spectrum_moments(
    activation: Any, sw: float, sb: float, depth: int, weights: str = "gaussian", tol: float = 1e-6
) -> tuple[float, float]:
    r"""Mean and variance of the eigenvalues of :math:`J J^\top` for a wide, critical net (:math:`\chi_1 = 1`).

    For relu and hard_tanh, :math:`D^2` has a Bernoulli spectrum with :math:`p` the fraction of units in the
    linear regime (relu: 1/2; hard_tanh: :math:`\operatorname{erf}(1/\sqrt{2 q^*})`). At criticality the mean
    eigenvalue is 1 and, by free probability (Pennington, Schoenholz & Ganguli 2017),

    .. math::

        \sigma^2_{JJ^\top} = \frac{L}{p} \;\text{(Gaussian weights)}, \qquad
        \sigma^2_{JJ^\top} = L\,\frac{1 - p}{p} \;\text{(orthogonal weights)} .

    So relu nets are never isometric (:math:`p = 1/2`: variance :math:`L` even with orthogonal weights), while
    orthogonal hard-tanh nets approach dynamical isometry as :math:`q^* \to 0` (:math:`p \to 1`).

    Parameters
    ----------
    activation : "relu" or "hard_tanh"
    sw, sb : float
        Must be critical: :math:`|\chi_1 - 1| \le` ``tol``.
    depth : int
        :math:`L \ge 0`.
    weights : {"gaussian", "orthogonal"}

    Returns
    -------
    (mean, variance) : (float, float)
    """
    act = _activation(activation)
    depth = _int("depth", depth, 0)
    if weights not in ("gaussian", "orthogonal"):
        raise ValueError(f"weights must be 'gaussian' or 'orthogonal', got {weights!r}")
    if act.name not in ("relu", "hard_tanh"):
        raise ValueError(
            f"jacobian_spectrum_moments needs an activation with a Bernoulli D^2 (relu, hard_tanh), got {act.name!r}"
        )
    c = chi1(act, sw, sb)
    if abs(c - 1.0) > tol:
        raise ValueError(f"({act.name}, sw={sw}, sb={sb}) is not critical: chi1 = {c:.6g}, not 1 (tol {tol})")
    if act.name == "relu":
        p = 0.5
    else:
        q = fixed_point(act, sw, sb)
        p = 1.0 if q == 0.0 else math.erf(1.0 / math.sqrt(2.0 * q))
    var = depth / p if weights == "gaussian" else depth * (1.0 - p) / p
    return 1.0, var
