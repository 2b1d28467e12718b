"""The reference kernel set: plain array code (NumPy or CuPy), the oracle every fused kernel is tested against.

Each function is one step of a layer or optimizer, written the obvious way with whole-array
operations. The fused kernels in :mod:`tinyid.kernels.cpu` (Numba) and
:mod:`tinyid.kernels.gpu` (Numba CUDA) compute exactly the same thing in one pass over memory.
All functions write into output arrays the caller provides, so one piece of layer code serves
every kernel set (the caller decides whether those buffers are fresh or reused).
"""
from __future__ import annotations

from tinyid.backend import array_module

NAME = "reference"

__all__ = ["NAME", "bias_activation", "activation_backward", "softmax_cross_entropy", "sgd_update", "adam_update"]


def bias_activation(s, b, activation, out, derivative) -> None:
    r"""Forward epilogue of a dense layer: add the bias, apply :math:`\phi`, keep :math:`\phi'` for backward.

    .. math:: \text{out}_{ij} = \phi(s_{ij} + b_j), \qquad \text{derivative}_{ij} = \phi'(s_{ij} + b_j)

    Parameters
    ----------
    s : (n_batch, n_out) array
        The matrix product :math:`zW`. ``out`` may be ``s`` itself (in place).
    b : (n_out,) array
    activation : tinyid.activations.Activation
    out : (n_batch, n_out) array
    derivative : (n_batch, n_out) array or None
        Skipped when None (a linear logits layer needs nothing for backward).
    """
    pre = s + b
    if derivative is not None:
        derivative[...] = activation.derivative(pre)
    out[...] = activation(pre)


def activation_backward(dy, derivative, ds, db) -> None:
    r"""Backward through the activation, fused with the bias gradient.

    .. math:: \text{ds}_{ij} = \text{dy}_{ij}\,\phi'_{ij}, \qquad \text{db}_j = \sum_i \text{ds}_{ij}

    Parameters
    ----------
    dy : (n_batch, n_out) array
        :math:`\partial C/\partial y`. ``ds`` may be ``dy`` itself (in place).
    derivative : (n_batch, n_out) array or None
        :math:`\phi'(s + b)` saved by :func:`bias_activation`; None means :math:`\phi' = 1`.
    ds : (n_batch, n_out) array
    db : (n_out,) array
    """
    if derivative is None:
        ds[...] = dy
    else:
        ds[...] = dy * derivative
    db[...] = ds.sum(axis=0)


def softmax_cross_entropy(logits, labels, dlogits) -> float:
    r"""Mean softmax cross-entropy and its gradient with respect to the logits.

    .. math::
        C = -\frac1B \sum_i \log \mathrm{softmax}(s_i)_{y_i},\qquad
        \text{dlogits} = \frac{\mathrm{softmax}(s) - \mathrm{onehot}(y)}{B}

    Parameters
    ----------
    logits : (n_batch, n_classes) array
    labels : (n_batch,) integer array, values in ``[0, n_classes)`` (checked by the caller)
    dlogits : (n_batch, n_classes) array, written

    Returns
    -------
    float
    """
    from tinyid.losses import log_softmax

    xp = array_module(logits)
    n_batch = logits.shape[0]
    log_probs = log_softmax(logits)
    rows = xp.arange(n_batch)
    loss = -float(log_probs[rows, labels].mean())
    dlogits[...] = xp.exp(log_probs)
    dlogits[rows, labels] -= 1
    dlogits /= n_batch
    return loss


def sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay, first_step) -> None:
    r"""One SGD step in place (PyTorch's rule, dampening 0).

    .. math::
        g = \nabla + \lambda\theta,\quad v \leftarrow \mu v + g\ (v = g \text{ on the first step}),\quad
        \theta \leftarrow \theta - \eta\,(g + \mu v \text{ if Nesterov else } v)

    ``velocity`` is unused (may be None) when ``momentum == 0``.
    """
    g = grad + weight_decay * param if weight_decay else grad
    if momentum:
        if first_step:
            velocity[...] = g
        else:
            velocity *= momentum
            velocity += g
        g = g + momentum * velocity if nesterov else velocity
    param -= lr * g


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step) -> None:
    r"""One Adam step in place, with bias correction (``step`` counts from 1).

    .. math::
        g = \nabla + \lambda\theta,\quad m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        \theta \leftarrow \theta - \eta\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon}
    """
    xp = array_module(param)
    g = grad + weight_decay * param if weight_decay else grad
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    denom = xp.sqrt(v / (1 - beta2**step))
    denom += eps
    param -= (lr / (1 - beta1**step)) * (m / denom)
