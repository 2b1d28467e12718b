"""Softmax cross-entropy from logits, with its fused gradient, and accuracy.

Every function works on NumPy and CuPy arrays (the module of ``logits`` is used).
"""
from __future__ import annotations

from tinyid.backend import array_module
from tinyid.kernels import reference

__all__ = ["check_labels", "log_softmax", "softmax", "softmax_cross_entropy", "cross_entropy", "accuracy"]


def check_labels(logits, labels) -> None:
    """Raise ValueError unless ``labels`` are (n_batch,) integers in ``[0, n_classes)`` for ``logits``."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be a 2-D (n_batch, n_classes) array, got shape {tuple(logits.shape)}")
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"labels must be a 1-D array of {logits.shape[0]} integer class indices (one per row of logits), "
            f"got shape {tuple(labels.shape)}"
        )
    if logits.shape[0] == 0:
        raise ValueError("logits is an empty batch: need at least one row")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    n_classes = logits.shape[1]
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes - 1}] for {n_classes} classes, "
                         f"got values in [{int(labels.min())}, {int(labels.max())}]")


def log_softmax(logits):
    r"""Log-probabilities, stable for logits of any magnitude.

    .. math:: \log \mathrm{softmax}(s)_k = s_k - m - \log \sum_j e^{s_j - m},\quad m = \max_j s_j

    Parameters
    ----------
    logits : (n_batch, n_classes) float array

    Returns
    -------
    (n_batch, n_classes) float array, same dtype and array module
    """
    xp = array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits):
    """Class probabilities ``exp(log_softmax(logits))``; rows sum to 1. Shape (n_batch, n_classes)."""
    xp = array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    unnormalized = xp.exp(shifted)
    return unnormalized / unnormalized.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits, labels):
    r"""Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    .. math::
        C = -\frac{1}{B}\sum_{i=1}^{B} \log \mathrm{softmax}(s_i)_{y_i},\qquad
        \frac{\partial C}{\partial s} = \frac{\mathrm{softmax}(s) - \mathrm{onehot}(y)}{B}

    Parameters
    ----------
    logits : (n_batch, n_classes) float array
    labels : (n_batch,) integer array of class indices in ``[0, n_classes)``

    Returns
    -------
    loss : float
    dlogits : (n_batch, n_classes) float array, same dtype and module as ``logits``
    """
    xp = array_module(logits)
    labels = xp.asarray(labels)
    check_labels(logits, labels)
    dlogits = xp.empty_like(logits)
    loss = reference.softmax_cross_entropy(logits, labels, dlogits)
    return loss, dlogits


def cross_entropy(logits, labels) -> float:
    """The loss of :func:`softmax_cross_entropy` without the gradient."""
    xp = array_module(logits)
    labels = xp.asarray(labels)
    check_labels(logits, labels)
    return -float(log_softmax(logits)[xp.arange(logits.shape[0]), labels].mean())


def accuracy(logits, labels) -> float:
    """Fraction of rows whose largest logit is at the true label.

    Parameters
    ----------
    logits : (n_batch, n_classes) float array (probabilities work too)
    labels : (n_batch,) integer array
    """
    xp = array_module(logits)
    labels = xp.asarray(labels)
    check_labels(logits, labels)
    return float((logits.argmax(axis=1) == labels).mean())
