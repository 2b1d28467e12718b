r"""Activation functions phi, their derivatives phi', and the properties init theory asks about.

Every activation is an :class:`Activation` value: call it for :math:`\phi(x)`, call
:meth:`Activation.derivative` for :math:`\phi'(x)`, and read ``symmetric`` (is phi odd?) and
``derivative_at_zero`` (:math:`\phi'(0)`), the two facts Glorot & Bengio's linear-regime analysis needs.
Build one by name with :func:`get`::

    act = get("leaky_relu", slope=0.2)
    y, dy = act(x), act.derivative(x)
    get(act.to_config()) == act          # a JSON-able round trip

The module-level names (``sigmoid``, ``tanh``, ``relu``, ...) are the activations with their default
parameters, so ``tinyid.activations.tanh(x)`` works too.

Conventions
-----------
* Inputs may be NumPy or CuPy arrays (or anything :func:`numpy.asarray` takes); the result lives in the
  same array module, has the same shape and keeps a floating dtype (float32 in, float32 out).
  Integer or boolean inputs are computed in float64.
* Every formula is written so that large :math:`|x|` (1e30 and beyond) raises no overflow or invalid-value
  warning: exponentials only ever see non-positive arguments, and cubes are taken of a clipped input.
  Tails are also computed without cancellation (e.g. :math:`\sigma(-30)` and :math:`\tanh'(20)` keep their
  relative accuracy), which is what lets float64 gradient checks hold to 1e-6 relative error.
* At a kink at :math:`x = 0` the derivative takes the left branch: ``relu'(0) = 0``,
  ``leaky_relu'(0) = slope``, ``elu'(0) = alpha``, ``selu'(0) = lambda * alpha``; ``hard_tanh'(x)`` is 1 for
  :math:`|x| < 1` and 0 for :math:`|x| \ge 1`. ``derivative_at_zero`` always equals ``derivative(0)``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from tinyid.backend import array_module

__all__ = [
    "Activation",
    "NAMES",
    "get",
    "linear",
    "sigmoid",
    "tanh",
    "softsign",
    "relu",
    "leaky_relu",
    "hard_tanh",
    "elu",
    "selu",
    "gelu",
    "SELU_ALPHA",
    "SELU_LAMBDA",
]

#: SELU constants from Klambauer, Unterthiner, Mayr & Hochreiter 2017, "Self-Normalizing Neural Networks":
#: the values that make mean 0 and variance 1 a fixed point for inputs z ~ N(0, 1).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715
# At |x| = 30, u = sqrt(2/pi) (x + 0.044715 x^3) is ~987 and exp(-2|u|) underflows to exactly 0 in float32 and
# float64, so the cubic can be evaluated on x clipped to [-30, 30] without changing any result or overflowing.
_GELU_CLIP = 30.0


def _prepare(x: Any):
    """Return ``(xp, x)``: the array module owning ``x`` and ``x`` as a floating array of that module."""
    xp = array_module(x)
    x = xp.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return xp, x


# ---------------------------------------------------------------------------------------------------
# The formulas: each forward function is followed by its derivative. They take an array x of any shape
# and return an array of the same shape, dtype and module. Parameters are Python floats, so they never
# promote a float32 array to float64.
# ---------------------------------------------------------------------------------------------------


def _linear(x):
    r"""Identity.

    .. math:: \phi(x) = x
    """
    _, x = _prepare(x)
    return x.copy()


def _linear_grad(x):
    r"""
    .. math:: \phi'(x) = 1
    """
    xp, x = _prepare(x)
    return xp.ones_like(x)


def _logistic_parts(xp, z):
    r"""Return :math:`\sigma(z)` and :math:`\sigma'(z) = \sigma(z)(1 - \sigma(z))` from :math:`e = e^{-|z|} \le 1`.

    .. math::

        \sigma(z) = \begin{cases} \dfrac{1}{1 + e} & z \ge 0 \\[4pt] \dfrac{e}{1 + e} & z < 0 \end{cases}, \qquad
        \sigma'(z) = \frac{e}{(1 + e)^2} .

    The exponential never overflows and nothing cancels, so both are accurate to a few ulps *relative* to
    their value, even deep in the tails where they are tiny.
    """
    e = xp.exp(-xp.abs(z))
    r = 1.0 / (1.0 + e)
    return xp.where(z >= 0, r, e * r), e * r * r


def _sigmoid(x):
    r"""Logistic sigmoid, evaluated in the stable :math:`e^{-|x|}` form of :func:`_logistic_parts`.

    .. math:: \phi(x) = \sigma(x) = \frac{1}{1 + e^{-x}}
    """
    xp, x = _prepare(x)
    return _logistic_parts(xp, x)[0]


def _sigmoid_grad(x):
    r"""
    .. math:: \phi'(x) = \sigma(x)\,(1 - \sigma(x)) = \frac{e^{-|x|}}{(1 + e^{-|x|})^2}
    """
    xp, x = _prepare(x)
    return _logistic_parts(xp, x)[1]


def _tanh(x):
    r"""
    .. math:: \phi(x) = \tanh x
    """
    xp, x = _prepare(x)
    return xp.tanh(x)


def _tanh_grad(x):
    r"""Written without the subtraction, so it keeps its relative accuracy for large :math:`|x|`.

    .. math:: \phi'(x) = 1 - \tanh^2 x = \frac{4 e^{-2|x|}}{(1 + e^{-2|x|})^2}
    """
    xp, x = _prepare(x)
    e = xp.exp(-xp.abs(x))
    e2 = e * e
    return 4.0 * e2 / ((1.0 + e2) * (1.0 + e2))


def _softsign(x):
    r"""Softsign (Glorot & Bengio 2010).

    .. math:: \phi(x) = \frac{x}{1 + |x|}
    """
    xp, x = _prepare(x)
    return x / (1.0 + xp.abs(x))


def _softsign_grad(x):
    r"""Squared after the division, so it cannot overflow.

    .. math:: \phi'(x) = \frac{1}{(1 + |x|)^2}
    """
    xp, x = _prepare(x)
    r = 1.0 / (1.0 + xp.abs(x))
    return r * r


def _relu(x):
    r"""
    .. math:: \phi(x) = \max(x, 0)
    """
    xp, x = _prepare(x)
    return xp.maximum(x, 0.0).astype(x.dtype, copy=False)


def _relu_grad(x):
    r"""Left branch at the kink: :math:`\phi'(0) = 0`.

    .. math:: \phi'(x) = \begin{cases} 1 & x > 0 \\ 0 & x \le 0 \end{cases}
    """
    _, x = _prepare(x)
    return (x > 0).astype(x.dtype)


def _leaky_relu(x, slope=0.01):
    r"""Leaky ReLU with negative slope :math:`a` = ``slope``.

    .. math:: \phi(x) = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}
    """
    xp, x = _prepare(x)
    return xp.where(x > 0, x, slope * x).astype(x.dtype, copy=False)


def _leaky_relu_grad(x, slope=0.01):
    r"""Left branch at the kink: :math:`\phi'(0) = a`.

    .. math:: \phi'(x) = \begin{cases} 1 & x > 0 \\ a & x \le 0 \end{cases}
    """
    xp, x = _prepare(x)
    return xp.where(x > 0, xp.ones_like(x), xp.full_like(x, slope))


def _hard_tanh(x):
    r"""
    .. math:: \phi(x) = \min(\max(x, -1), 1)
    """
    xp, x = _prepare(x)
    return xp.clip(x, -1.0, 1.0).astype(x.dtype, copy=False)


def _hard_tanh_grad(x):
    r"""0 at the kinks :math:`x = \pm 1`.

    .. math:: \phi'(x) = \begin{cases} 1 & |x| < 1 \\ 0 & |x| \ge 1 \end{cases}
    """
    xp, x = _prepare(x)
    return (xp.abs(x) < 1).astype(x.dtype)


def _elu(x, alpha=1.0):
    r"""ELU (Clevert et al. 2015); the negative branch uses ``expm1(min(x, 0))``: no overflow, no cancellation.

    .. math:: \phi(x) = \begin{cases} x & x > 0 \\ \alpha (e^x - 1) & x \le 0 \end{cases}
    """
    xp, x = _prepare(x)
    return xp.where(x > 0, x, alpha * xp.expm1(xp.minimum(x, 0.0))).astype(x.dtype, copy=False)


def _elu_grad(x, alpha=1.0):
    r"""Left branch at the kink: :math:`\phi'(0) = \alpha` (continuous only for :math:`\alpha = 1`).

    .. math:: \phi'(x) = \begin{cases} 1 & x > 0 \\ \alpha e^x & x \le 0 \end{cases}
    """
    xp, x = _prepare(x)
    return xp.where(x > 0, xp.ones_like(x), alpha * xp.exp(xp.minimum(x, 0.0))).astype(x.dtype, copy=False)


def _selu(x):
    r"""SELU (Klambauer et al. 2017), with the fixed :data:`SELU_ALPHA` and :data:`SELU_LAMBDA`.

    .. math:: \phi(x) = \lambda \begin{cases} x & x > 0 \\ \alpha (e^x - 1) & x \le 0 \end{cases}
    """
    return SELU_LAMBDA * _elu(x, alpha=SELU_ALPHA)


def _selu_grad(x):
    r"""Left branch at the kink: :math:`\phi'(0) = \lambda \alpha`.

    .. math:: \phi'(x) = \lambda \begin{cases} 1 & x > 0 \\ \alpha e^x & x \le 0 \end{cases}
    """
    return SELU_LAMBDA * _elu_grad(x, alpha=SELU_ALPHA)


def _gelu_parts(x):
    """Shared by GELU and its derivative: ``(x, clipped x, sigma(2u), sigma'(2u))``."""
    xp, x = _prepare(x)
    xc = xp.clip(x, -_GELU_CLIP, _GELU_CLIP)
    u = _SQRT_2_OVER_PI * (xc + _GELU_K * xc * xc * xc)
    s, ds = _logistic_parts(xp, 2.0 * u)  # (1 + tanh u) / 2 = sigma(2u), (1 - tanh^2 u) / 4 = sigma'(2u)
    return x, xc, s, ds


def _gelu(x):
    r"""GELU, **tanh approximation** (Hendrycks & Gimpel 2016), not the exact :math:`x\,\Phi(x)`.

    .. math::

        \phi(x) = \tfrac12 x\,(1 + \tanh u) = x\,\sigma(2u), \qquad u = \sqrt{2/\pi}\,(x + 0.044715\,x^3) .

    Evaluated as :math:`x\,\sigma(2u)` with the stable logistic, so the negative tail keeps its relative
    accuracy. The cubic uses :math:`x` clipped to :math:`[-30, 30]`; beyond that :math:`e^{-2|u|}` is already
    exactly 0 in float32 and float64, so the clip changes no result and :math:`x^3` cannot overflow.
    """
    x, _, s, _ = _gelu_parts(x)
    return x * s


def _gelu_grad(x):
    r"""Exact derivative of the tanh approximation.

    .. math::

        \phi'(x) &= \tfrac12 (1 + \tanh u) + \tfrac12 x\,(1 - \tanh^2 u)\,\sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2) \\
                 &= \sigma(2u) + 2 x\,\sigma'(2u)\,\sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2)
    """
    _, xc, s, ds = _gelu_parts(x)
    # The second term uses the clipped x: where the clip acts, sigma'(2u) is exactly 0 anyway.
    return s + 2.0 * xc * ds * (_SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_K * xc * xc))


# ---------------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    forward: Callable
    derivative: Callable
    defaults: tuple[tuple[str, float], ...]
    symmetric: Callable[..., bool]
    derivative_at_zero: Callable[..., float]


_REGISTRY: dict[str, _Entry] = {
    "linear": _Entry(_linear, _linear_grad, (), lambda: True, lambda: 1.0),
    "sigmoid": _Entry(_sigmoid, _sigmoid_grad, (), lambda: False, lambda: 0.25),
    "tanh": _Entry(_tanh, _tanh_grad, (), lambda: True, lambda: 1.0),
    "softsign": _Entry(_softsign, _softsign_grad, (), lambda: True, lambda: 1.0),
    "relu": _Entry(_relu, _relu_grad, (), lambda: False, lambda: 0.0),
    # slope = 1 makes leaky_relu the identity, which is odd.
    "leaky_relu": _Entry(
        _leaky_relu, _leaky_relu_grad, (("slope", 0.01),), lambda slope: slope == 1.0, lambda slope: slope
    ),
    "hard_tanh": _Entry(_hard_tanh, _hard_tanh_grad, (), lambda: True, lambda: 1.0),
    "elu": _Entry(_elu, _elu_grad, (("alpha", 1.0),), lambda alpha: False, lambda alpha: alpha),
    "selu": _Entry(_selu, _selu_grad, (), lambda: False, lambda: SELU_LAMBDA * SELU_ALPHA),
    "gelu": _Entry(_gelu, _gelu_grad, (), lambda: False, lambda: 0.5),
}

#: Every registry name :func:`get` accepts.
NAMES: tuple[str, ...] = tuple(_REGISTRY)


class _FrozenParams(Mapping):
    """A read-only, hashable ``{name: float}`` mapping (keeps :class:`Activation` hashable)."""

    __slots__ = ("_items",)

    def __init__(self, items: Any = ()):
        object.__setattr__(self, "_items", tuple(sorted(dict(items).items())))

    def __getitem__(self, key: str) -> float:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __setattr__(self, name, value):
        raise AttributeError("activation parameters are read-only")

    def __reduce__(self):
        return (_FrozenParams, (self._items,))

    def __repr__(self) -> str:
        return repr(dict(self._items))


@dataclass(frozen=True)
class Activation:
    r"""One activation function :math:`\phi` with its parameters.

    Build it with :func:`get` rather than by hand. Instances are immutable, hashable and compare equal when
    name and parameters agree.

    Attributes
    ----------
    name : str
        Registry name, one of :data:`NAMES`, e.g. ``"leaky_relu"``.
    params : Mapping[str, float]
        Read-only parameters, e.g. ``{"slope": 0.01}``; empty for parameter-free activations.
    symmetric : bool
        True when :math:`\phi` is odd, :math:`\phi(-x) = -\phi(x)` (Glorot & Bengio's "symmetric").
    derivative_at_zero : float
        :math:`\phi'(0)` with the parameters applied (left branch at a kink, see the module notes).
    """

    name: str
    params: Mapping[str, float]
    symmetric: bool
    derivative_at_zero: float

    def __post_init__(self) -> None:
        if self.name not in _REGISTRY:
            raise ValueError(f"unknown activation {self.name!r}; valid names: {', '.join(NAMES)}")
        if not isinstance(self.params, _FrozenParams):
            object.__setattr__(self, "params", _FrozenParams(self.params))
        # A hand-built Activation must tell the truth about its properties; get() always does.
        entry = _REGISTRY[self.name]
        if set(self.params) != {k for k, _ in entry.defaults}:
            raise ValueError(f"activation {self.name!r} needs exactly the parameters {[k for k, _ in entry.defaults]}")
        expected = (bool(entry.symmetric(**self.params)), float(entry.derivative_at_zero(**self.params)))
        if (self.symmetric, self.derivative_at_zero) != expected:
            raise ValueError(
                f"activation {self.name!r} with {dict(self.params)} has symmetric={expected[0]} and "
                f"derivative_at_zero={expected[1]}; build it with activations.get()"
            )

    def __call__(self, x):
        r""":math:`\phi(x)` elementwise.

        Parameters
        ----------
        x : array of any shape (NumPy or CuPy)

        Returns
        -------
        array, same shape, floating dtype and array module as ``x``
        """
        return _REGISTRY[self.name].forward(x, **self.params)

    def derivative(self, x):
        r""":math:`\phi'(x)` elementwise; same shape, dtype and array module as ``x``."""
        return _REGISTRY[self.name].derivative(x, **self.params)

    def to_config(self) -> dict:
        """A JSON-able ``{"name": ..., **params}``; ``get(config)`` rebuilds an equal activation."""
        return {"name": self.name, **{k: float(v) for k, v in self.params.items()}}

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"activations.get({self.name!r}{args})"


def _build(name: str, params: Mapping[str, Any]) -> Activation:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(NAMES)}")
    entry = _REGISTRY[name]
    defaults = dict(entry.defaults)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        takes = f"takes only {', '.join(defaults)}" if defaults else "takes no parameters"
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for activation {name!r}: it {takes}")
    values = {}
    for key, default in defaults.items():
        value = params.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"parameter {key!r} of activation {name!r} must be a real number, got {value!r}")
        value = float(value)
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"parameter {key!r} of activation {name!r} must be finite and >= 0, got {value!r}")
        values[key] = value
    return Activation(
        name=name,
        params=_FrozenParams(values),
        symmetric=bool(entry.symmetric(**values)),
        derivative_at_zero=float(entry.derivative_at_zero(**values)),
    )


def get(spec: "str | Activation | Mapping[str, Any]", **params: float) -> Activation:
    """Return the :class:`Activation` that ``spec`` names.

    Parameters
    ----------
    spec : str, Activation or dict
        A registry name (``"leaky_relu"``), an :class:`Activation` (returned as is when no ``params`` are
        given), or a config dict ``{"name": "leaky_relu", "slope": 0.2}`` as made by :meth:`Activation.to_config`.
    **params : float
        Parameters, e.g. ``slope`` for ``leaky_relu`` (default 0.01) or ``alpha`` for ``elu`` (default 1).
        They override those in a dict or an :class:`Activation`. Both must be finite and >= 0.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones), a parameter the activation does not take,
        or an invalid parameter value.
    """
    if isinstance(spec, Activation):
        if not params:
            return spec
        return _build(spec.name, {**spec.params, **params})
    if isinstance(spec, Mapping):
        config = dict(spec)
        if "name" not in config:
            raise ValueError(f"an activation config needs a 'name' key, got {spec!r}")
        name = config.pop("name")
        return _build(name, {**config, **params})
    if isinstance(spec, str):
        return _build(spec, params)
    raise ValueError(
        f"cannot make an activation from {spec!r}: pass a name ({', '.join(NAMES)}), an Activation or a config dict"
    )


linear = get("linear")
sigmoid = get("sigmoid")
tanh = get("tanh")
softsign = get("softsign")
relu = get("relu")
leaky_relu = get("leaky_relu")
hard_tanh = get("hard_tanh")
elu = get("elu")
selu = get("selu")
gelu = get("gelu")
