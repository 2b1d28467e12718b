"""Each activation's math once, as scalar functions that both kernel targets compile.

``value_and_derivative(x, p) -> (phi(x), phi'(x))`` for one number ``x``; ``p`` is the
activation's parameter (the slope of leaky ReLU, the alpha of ELU, ignored elsewhere). The
CPU kernels compile these with ``numba.njit(inline="always")`` and the GPU kernels with
``numba.cuda.jit(device=True)``, so the two targets cannot drift apart. They are also plain
Python: ``tanh(0.5, 0.0)`` works without Numba, which is how the tests compare them with
:mod:`tinyid.activations` (the vectorized NumPy reference).

The formulas are the stable forms of :mod:`tinyid.activations`: exponentials only see
non-positive arguments, and each derivative reuses what the value computed (``1 - y^2`` for
tanh would lose relative accuracy in the tails, so tanh uses ``e = exp(-2|x|)`` for both).
Kinks take the left branch: relu'(0) = 0, leaky'(0) = slope, hard_tanh'(+-1) = 0.
"""
import math

__all__ = ["FUNCTIONS", "PARAMETER"]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715
_GELU_CLIP = 30.0
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946


def linear(x, p):
    return x, 1.0


def sigmoid(x, p):
    """sigma(x) = 1 / (1 + e^-x) from e = exp(-|x|); sigma' = e / (1 + e)^2."""
    e = math.exp(-abs(x))
    r = 1.0 / (1.0 + e)
    y = r if x >= 0 else e * r
    return y, e * r * r


def tanh(x, p):
    """tanh x = sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) (1 - e by expm1: exact near 0); tanh' = 4e / (1 + e)^2."""
    a = -2.0 * abs(x)
    m = math.expm1(a)  # e - 1, accurate near 0
    e = math.exp(a)  # not m + 1, which rounds to 0 once e < 1e-16 (|x| > 18.4) and loses tanh' in the tails
    r = 1.0 / (1.0 + e)
    y = -m * r
    return (y if x >= 0 else -y), 4.0 * e * r * r


def softsign(x, p):
    """x / (1 + |x|); derivative 1 / (1 + |x|)^2."""
    r = 1.0 / (1.0 + abs(x))
    return x * r, r * r


def relu(x, p):
    """max(x, 0); derivative 1 for x > 0, else 0."""
    if x > 0:
        return x, 1.0
    return 0.0 * x, 0.0


def leaky_relu(x, p):
    """x for x > 0, else p x (p = slope)."""
    if x > 0:
        return x, 1.0
    return p * x, p


def hard_tanh(x, p):
    """clip(x, -1, 1); derivative 1 for |x| < 1, else 0."""
    if x >= 1.0:
        return 1.0, 0.0
    if x <= -1.0:
        return -1.0, 0.0
    return x, 1.0


def elu(x, p):
    """x for x > 0, else p (e^x - 1) (p = alpha); derivative 1 or p e^x."""
    if x > 0:
        return x, 1.0
    return p * math.expm1(x), p * math.exp(x)


def selu(x, p):
    """lambda * elu(x) with alpha fixed (Klambauer et al. 2017)."""
    if x > 0:
        return SELU_LAMBDA * x, SELU_LAMBDA
    return SELU_LAMBDA * SELU_ALPHA * math.expm1(x), SELU_LAMBDA * SELU_ALPHA * math.exp(x)


def gelu(x, p):
    """tanh-approximation GELU, x sigma(2u) with u = sqrt(2/pi)(x + 0.044715 x^3), and its exact derivative."""
    xc = min(max(x, -_GELU_CLIP), _GELU_CLIP)
    u2 = 2.0 * _SQRT_2_OVER_PI * (xc + _GELU_K * xc * xc * xc)
    e = math.exp(-abs(u2))
    r = 1.0 / (1.0 + e)
    s = r if u2 >= 0 else e * r
    ds = e * r * r
    return x * s, s + 2.0 * xc * ds * (_SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_K * xc * xc))


#: activation name -> scalar ``value_and_derivative(x, p)``
FUNCTIONS = {
    "linear": linear, "sigmoid": sigmoid, "tanh": tanh, "softsign": softsign, "relu": relu,
    "leaky_relu": leaky_relu, "hard_tanh": hard_tanh, "elu": elu, "selu": selu, "gelu": gelu,
}

#: activation name -> the name of its one parameter (passed to the scalar function as ``p``)
PARAMETER = {"leaky_relu": "slope", "elu": "alpha"}
