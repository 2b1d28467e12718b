r"""Weight initializers as pure functions, and PyTorch's gain table.

Every initializer has the call shape ``f(fan_in, fan_out, rng, **kwargs)`` and returns a float64 NumPy array of
shape ``(fan_in, fan_out)`` on the host: tinyid stores a Dense weight as (n_in, n_out) and computes
:math:`s = z W + b`, as in Glorot & Bengio (PyTorch stores the transpose). The layer moves the array to its
backend afterwards, so one seed gives the same network on every backend.

``rng`` must be a :class:`numpy.random.Generator`; pass ``numpy.random.default_rng(seed)``. There is no global
random state anywhere.

Variances, with :math:`n_{in}` = ``fan_in`` and :math:`n_{out}` = ``fan_out``:

==================  ==========================================================  =======================
initializer         distribution                                                :math:`\mathrm{Var}[W]`
==================  ==========================================================  =======================
``uniform_fanin``   :math:`U(-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}})`                :math:`1/(3 n_{in})`
``xavier_uniform``  :math:`U(-a, a)`, :math:`a = g\sqrt{6/(n_{in}+n_{out})}`    :math:`2 g^2/(n_{in}+n_{out})`
``xavier_normal``   :math:`N(0, 2 g^2/(n_{in}+n_{out}))`                        :math:`2 g^2/(n_{in}+n_{out})`
``he_uniform``      :math:`U(-\sqrt3\,\sigma, \sqrt3\,\sigma)`                  :math:`2/((1+a^2)\,n)`
``he_normal``       :math:`N(0, \sigma^2)`                                      :math:`2/((1+a^2)\,n)`
``lecun_normal``    :math:`N(0, 1/n_{in})`                                      :math:`1/n_{in}`
``orthogonal``      Haar-random orthonormal columns (or rows), times ``gain``   :math:`g^2/\max(n_{in}, n_{out})`
``identity``        :math:`\sigma I` (deterministic)                            --
==================  ==========================================================  =======================

(For He, :math:`n` is ``fan_in`` or ``fan_out`` by ``mode``.) Use :func:`get` to turn a JSON-able spec such as
``"he_normal"``, ``("he_normal", {"mode": "fan_out"})`` or ``{"name": "he_normal", "mode": "fan_out"}`` into a
callable ``f(fan_in, fan_out, rng)``, and :func:`to_config` for the way back.
"""
from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

__all__ = [
    "NAMES",
    "uniform_fanin",
    "xavier_uniform",
    "xavier_normal",
    "he_uniform",
    "he_normal",
    "lecun_normal",
    "orthogonal",
    "identity",
    "gain",
    "get",
    "to_config",
]

HE_MODES = ("fan_in", "fan_out")


# ---------------------------------------------------------------------------------------------------
# Argument checks, shared by the initializers and by get(), so a bad spec fails when it is made.
# ---------------------------------------------------------------------------------------------------


def _check_fans(fan_in: Any, fan_out: Any) -> tuple[int, int]:
    for label, fan in (("fan_in", fan_in), ("fan_out", fan_out)):
        if isinstance(fan, bool) or not isinstance(fan, numbers.Integral) or fan < 1:
            raise ValueError(f"{label} must be a positive int, got {fan!r}")
    return int(fan_in), int(fan_out)


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}: "
            "pass numpy.random.default_rng(seed)"
        )
    return rng


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def _positive(name: str, value: Any) -> float:
    value = _real(name, value)
    if value <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def _mode(name: str, value: Any) -> str:
    if value not in HE_MODES:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, HE_MODES))}, got {value!r}")
    return value


# Keyword -> check; every initializer keyword means the same thing wherever it appears.
_KWARG_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "gain": _positive,
    "sigma": _positive,
    "a": _real,
    "mode": _mode,
}


# ---------------------------------------------------------------------------------------------------
# Initializers
# ---------------------------------------------------------------------------------------------------


def uniform_fanin(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    r"""Glorot & Bengio's "standard" heuristic, :math:`W \sim U(-1/\sqrt{n_{in}}, 1/\sqrt{n_{in}})`.

    This is also PyTorch's default ``nn.Linear`` weight init. Its variance is a third of what keeps the
    forward signal's variance constant, so in the linear regime activations shrink about 3x per layer:

    .. math::

        \mathrm{Var}[W] = \frac{1}{3 n_{in}}, \qquad n_{in} \mathrm{Var}[W] = \frac13 .

    Parameters
    ----------
    fan_in, fan_out : int
        Positive layer widths :math:`n_{in}, n_{out}`.
    rng : numpy.random.Generator

    Returns
    -------
    W : (fan_in, fan_out) float64 numpy.ndarray
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out)
    _check_rng(rng)
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=(fan_in, fan_out))


def xavier_uniform(fan_in: int, fan_out: int, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    r"""Glorot & Bengio's normalized ("Xavier") init, uniform: :math:`W \sim U(-a, a)`.

    A compromise between keeping the forward variance (:math:`n_{in}\mathrm{Var}[W] = 1`) and the
    back-propagated one (:math:`n_{out}\mathrm{Var}[W] = 1`):

    .. math::

        a = g \sqrt{\frac{6}{n_{in} + n_{out}}}, \qquad \mathrm{Var}[W] = \frac{a^2}{3} = \frac{2 g^2}{n_{in} + n_{out}} .

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator
    gain : float, default 1
        Scale factor :math:`g` > 0, e.g. :func:`gain` of the activation.

    Returns
    -------
    W : (fan_in, fan_out) float64 numpy.ndarray
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out)
    _check_rng(rng)
    g = _positive("gain", gain)
    bound = g * math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=(fan_in, fan_out))


def xavier_normal(fan_in: int, fan_out: int, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    r"""Glorot & Bengio's normalized ("Xavier") variance with a normal distribution.

    .. math::

        W \sim N\!\left(0, \frac{2 g^2}{n_{in} + n_{out}}\right) .

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator
    gain : float, default 1
        Scale factor :math:`g` > 0.

    Returns
    -------
    W : (fan_in, fan_out) float64 numpy.ndarray
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out)
    _check_rng(rng)
    g = _positive("gain", gain)
    std = g * math.sqrt(2.0 / (fan_in + fan_out))
    return rng.normal(0.0, std, size=(fan_in, fan_out))


def _he_std(fan_in: int, fan_out: int, mode: str, a: float) -> float:
    mode = _mode("mode", mode)
    a = _real("a", a)
    fan = fan_in if mode == "fan_in" else fan_out
    return math.sqrt(2.0 / (1.0 + a * a)) / math.sqrt(fan)


def he_uniform(
    fan_in: int, fan_out: int, rng: np.random.Generator, mode: str = "fan_in", a: float = 0.0
) -> np.ndarray:
    r"""He et al.'s init for (leaky) ReLU networks, uniform: :math:`W \sim U(-\sqrt3\,\sigma, \sqrt3\,\sigma)`.

    .. math::

        \sigma^2 = \mathrm{Var}[W] = \frac{2}{(1 + a^2)\, n}, \qquad n = n_{in} \text{ or } n_{out} .

    ``mode="fan_in"`` keeps the forward variance constant (:math:`\tfrac12 (1 + a^2) n_{in} \mathrm{Var}[W] = 1`),
    ``mode="fan_out"`` the back-propagated one; He et al. show either one suffices.

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator
    mode : {"fan_in", "fan_out"}, default "fan_in"
    a : float, default 0
        Negative slope of the rectifier (0 for ReLU, as PyTorch's ``kaiming_*``).

    Returns
    -------
    W : (fan_in, fan_out) float64 numpy.ndarray
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out)
    _check_rng(rng)
    bound = math.sqrt(3.0) * _he_std(fan_in, fan_out, mode, a)
    return rng.uniform(-bound, bound, size=(fan_in, fan_out))


def he_normal(
    fan_in: int, fan_out: int, rng: np.random.Generator, mode: str = "fan_in", a: float = 0.0
) -> np.ndarray:
    r"""He et al.'s init for (leaky) ReLU networks, normal: :math:`W \sim N(0, \sigma^2)`.

    .. math::

        \sigma^2 = \frac{2}{(1 + a^2)\, n}, \qquad n = n_{in} \text{ (mode="fan_in") or } n_{out} \text{ (mode="fan_out")} .

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator
    mode : {"fan_in", "fan_out"}, default "fan_in"
        Which variance to keep: the forward one (fan_in) or the back-propagated one (fan_out).
    a : float, default 0
        Negative slope of the rectifier (0 for ReLU).

    Returns
    -------
    W : (fan_in, fan_out) float64 numpy.ndarray
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out)
    _check_rng(rng)
    return rng.normal(0.0, _he_std(fan_in, fan_out, mode, a), size=(fan_in, fan_out))


def lecun_normal(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    r"""LeCun's init, :math:`W \sim N(0, 1/n_{in})`, the usual partner of SELU.

    A plain normal, **not** truncated (some libraries truncate at two standard deviations and rescale):

    .. math::

        \mathrm{Var}[W] = \frac{1}{n_{in}} .

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator

    Returns
    -------
    W : (fan_in, fan_out) float64 numpy.ndarray
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out)
    _check_rng(rng)
    return rng.normal(0.0, 1.0 / math.sqrt(fan_in), size=(fan_in, fan_out))


def orthogonal(fan_in: int, fan_out: int, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    r"""A Haar-random (uniformly distributed) orthogonal matrix, times ``gain``.

    Draw a Gaussian matrix :math:`A` of shape :math:`(\max, \min)` of the fans, take the reduced QR
    decomposition :math:`A = QR`, and multiply each column of :math:`Q` by the sign of the matching diagonal
    entry of :math:`R`. Without that sign correction :math:`Q` is *not* Haar-distributed (LAPACK's
    Householder QR makes :math:`R_{ii}` and hence the diagonal of :math:`Q` biased). The result has
    orthonormal columns when :math:`n_{in} \ge n_{out}` and orthonormal rows otherwise:

    .. math::

        W^\top W = g^2 I_{n_{out}} \quad (n_{in} \ge n_{out}), \qquad
        W W^\top = g^2 I_{n_{in}} \quad (n_{in} < n_{out}), \qquad
        \mathrm{Var}[W] = \frac{g^2}{\max(n_{in}, n_{out})} .

    Parameters
    ----------
    fan_in, fan_out : int
    rng : numpy.random.Generator
    gain : float, default 1
        Scale factor :math:`g` > 0.

    Returns
    -------
    W : (fan_in, fan_out) float64 numpy.ndarray
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out)
    _check_rng(rng)
    g = _positive("gain", gain)
    rows, cols = max(fan_in, fan_out), min(fan_in, fan_out)
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    signs = np.where(np.diag(r) < 0.0, -1.0, 1.0)  # R_ii = 0 has probability 0; count it as +1
    q = q * signs  # column j times sign(R_jj)
    w = q if fan_in >= fan_out else q.T
    return np.ascontiguousarray(g * w)


def identity(fan_in: int, fan_out: int, rng: Any = None, sigma: float = 1.0) -> np.ndarray:
    r"""The scaled identity :math:`W = \sigma I` (Kubota et al. 2021's identity initialization).

    For non-square shapes it is the rectangular identity ``numpy.eye(fan_in, fan_out)``: ones on the main
    diagonal, zeros elsewhere. Deterministic: ``rng`` is accepted (and ignored) so that every initializer has
    the same call shape.

    .. math::

        W_{ij} = \sigma\, \delta_{ij} .

    Parameters
    ----------
    fan_in, fan_out : int
    rng : ignored
    sigma : float, default 1
        Scale :math:`\sigma` > 0.

    Returns
    -------
    W : (fan_in, fan_out) float64 numpy.ndarray
    """
    fan_in, fan_out = _check_fans(fan_in, fan_out)
    s = _positive("sigma", sigma)
    return s * np.eye(fan_in, fan_out, dtype=np.float64)


_REGISTRY: dict[str, Callable[..., np.ndarray]] = {
    f.__name__: f
    for f in (uniform_fanin, xavier_uniform, xavier_normal, he_uniform, he_normal, lecun_normal, orthogonal, identity)
}

#: Every initializer name :func:`get` accepts.
NAMES: tuple[str, ...] = tuple(_REGISTRY)


# ---------------------------------------------------------------------------------------------------
# Gains
# ---------------------------------------------------------------------------------------------------

_GAIN_NAMES = ("linear", "identity", "sigmoid", "tanh", "relu", "leaky_relu", "selu")


def gain(name: Any, param: "float | None" = None) -> float:
    r"""PyTorch's ``calculate_gain`` table: the factor to multiply a unit-gain init's std by.

    =========================================  =============================
    ``name``                                   gain
    =========================================  =============================
    ``linear``, ``identity``, ``sigmoid``      1
    ``tanh``                                   5/3
    ``relu``                                   :math:`\sqrt{2}`
    ``leaky_relu``                             :math:`\sqrt{2 / (1 + a^2)}`, :math:`a` = ``param`` (default 0.01)
    ``selu``                                   3/4
    =========================================  =============================

    These are PyTorch's conventions, not all derived from theory (e.g. 5/3 for tanh is empirical). Other
    activations are not in the table and raise rather than get a made-up value.

    Parameters
    ----------
    name : str or tinyid.activations.Activation
        An activation name; an ``Activation`` gives its name, and for ``leaky_relu`` its ``slope`` as ``param``.
    param : float, optional
        The negative slope :math:`a` for ``leaky_relu``; no other name takes one.

    Raises
    ------
    ValueError
        For a name not in PyTorch's table, or a ``param`` the name does not take or that is not a finite number.
    """
    from tinyid.activations import Activation

    if isinstance(name, Activation):
        if name.name == "leaky_relu" and param is None:
            param = name.params["slope"]
        name = name.name
    if name not in _GAIN_NAMES:
        raise ValueError(
            f"no gain for {name!r}: it is not in PyTorch's calculate_gain table ({', '.join(_GAIN_NAMES)})"
        )
    if name == "leaky_relu":
        a = 0.01 if param is None else _real("leaky_relu's param (negative slope)", param)
        return math.sqrt(2.0 / (1.0 + a * a))
    if param is not None:
        raise ValueError(f"gain({name!r}) takes no param (only leaky_relu does), got {param!r}")
    return {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0), "selu": 0.75}[
        name
    ]


# ---------------------------------------------------------------------------------------------------
# Specs: names, (name, kwargs) pairs, config dicts, callables
# ---------------------------------------------------------------------------------------------------


def _keywords(f: Callable) -> tuple[str, ...]:
    """The keyword arguments an initializer takes beyond (fan_in, fan_out, rng)."""
    return tuple(list(inspect.signature(f).parameters)[3:])


def _parse(spec: Any) -> tuple[str, dict]:
    """Split a name / pair / dict spec into (name, kwargs), checking both."""
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, Mapping):
        kwargs = dict(spec)
        if "name" not in kwargs:
            raise ValueError(f"an initializer config dict needs a 'name' key, got {spec!r}")
        name = kwargs.pop("name")
    elif isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], Mapping):
        name, kwargs = spec[0], dict(spec[1])
    else:
        raise ValueError(
            f"cannot make an initializer from {spec!r}: pass a name, a (name, {{kwargs}}) pair, "
            "a {'name': ..., **kwargs} dict or a callable f(fan_in, fan_out, rng)"
        )
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown initializer {name!r}; valid names: {', '.join(NAMES)}")
    allowed = _keywords(_REGISTRY[name])
    for key, value in kwargs.items():
        if key not in allowed:
            takes = f"takes only {', '.join(allowed)}" if allowed else "takes no keyword arguments"
            raise ValueError(f"unknown keyword {key!r} for initializer {name!r}: it {takes}")
        _KWARG_CHECKS[key](key, value)
    return name, kwargs


def get(spec: Any) -> Callable[..., np.ndarray]:
    """Turn ``spec`` into a callable ``f(fan_in, fan_out, rng)``.

    Parameters
    ----------
    spec : str, (str, dict), dict or callable
        ``"he_normal"`` gives the function itself; ``("he_normal", {"mode": "fan_out"})`` or
        ``{"name": "he_normal", "mode": "fan_out"}`` give a :func:`functools.partial` with those keywords
        (both forms survive JSON; a pair read back from JSON as a list works too); a callable is returned as is.

    Raises
    ------
    ValueError
        For an unknown name (the message lists :data:`NAMES`), a keyword the initializer does not take, or an
        invalid keyword value (checked here, not at the first draw).
    """
    if callable(spec) and not isinstance(spec, (str, Mapping)):
        return spec
    name, kwargs = _parse(spec)
    f = _REGISTRY[name]
    return functools.partial(f, **kwargs) if kwargs else f


def to_config(spec: Any) -> "dict | None":
    """The JSON-able ``{"name": ..., **kwargs}`` of a spec, or None for a callable that is not one of ours.

    Name, pair and dict specs are checked like :func:`get` does. A registered initializer function (what
    ``get(name)`` returns) and a :func:`functools.partial` of one with keyword arguments only (what ``get(pair)``
    returns) are recognized too, so ``to_config(get(spec))`` works for every non-callable spec.
    """
    if isinstance(spec, functools.partial):
        if spec.func in _REGISTRY.values() and not spec.args:
            return to_config({"name": spec.func.__name__, **spec.keywords})
        return None
    if callable(spec) and not isinstance(spec, (str, Mapping)):
        if _REGISTRY.get(getattr(spec, "__name__", None)) is spec:
            return {"name": spec.__name__}
        return None
    name, kwargs = _parse(spec)
    return {"name": name, **{k: (v if k == "mode" else float(v)) for k, v in kwargs.items()}}
