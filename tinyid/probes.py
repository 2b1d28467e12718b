r"""Per-layer statistics of a network, measured on a fixed probe batch while it trains.

These are the measurements behind Glorot & Bengio (2010)'s figures: the mean, spread and
percentiles of every layer's activations over training (their Figs. 2-3), activation histograms
(Fig. 4) and, at initialization, histograms of activations, back-propagated gradients and weight
gradients per layer (Figs. 6-8). Plus two distances that tell how far training moved the weights:
from their initial values, and from the scaled identity of identity initialization
(Kubota et al. 2021).

- :func:`layer_statistics` is the measurement itself, a pure function of a model and a batch;
- :class:`Probe` is the training-loop callback that records it at chosen steps into
  ``trainer.history.records["probes"]`` (so the records go into checkpoints and ``metrics.json``);
- :func:`probe_series` and :func:`histograms` read the records back as arrays for plotting::

    probe = Probe(x_test[:300], y_test[:300])            # records at step 0 and after every epoch
    trainer.fit(x_train, y_train, epochs=10, callbacks=[probe])
    steps, p98 = probe_series(trainer.history, "p98")    # (T,), (T, L)
    counts, edges = histograms(trainer.history, "act")   # last record: (L, bins), (L, bins + 1)

Notation (as in :mod:`tinyid.layers`): layer :math:`l = 1, \dots, L` computes
:math:`s^l = y^{l-1} W^l + b^l` and :math:`y^l = \phi(s^l)` with :math:`y^0 = x`. The last layer is
linear (:math:`\phi(s) = s`), so :math:`y^L` are the logits; it is measured like the others.
With labels, the cost is the mean softmax cross-entropy over the probe batch of :math:`n` examples,

.. math::
    C = -\frac1n \sum_{i=1}^n \log \mathrm{softmax}(y^L_i)_{t_i},

so every gradient below carries the factor :math:`1/n` of that mean.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from tinyid import activations as _activations
from tinyid.backend import to_numpy
from tinyid.layers import MLP
from tinyid.losses import softmax_cross_entropy
from tinyid.train import Callback, History

__all__ = [
    "layer_statistics",
    "Probe",
    "ActivationRecorder",
    "probe_series",
    "histograms",
    "max_slope",
    "SATURATION_FRACTION",
    "LAYER_QUANTITIES",
    "HISTOGRAM_QUANTITIES",
]

#: A unit counts as saturated on an example when :math:`\phi'(s)` is below this fraction of the activation's
#: largest slope :math:`\max_t \phi'(t)` (see :func:`layer_statistics`).
SATURATION_FRACTION = 0.05

#: The per-layer numbers a probe record holds, one value per layer (``"loss"`` is one number per record).
LAYER_QUANTITIES = ("mean", "std", "p2", "p98", "saturation", "grad_var", "weight_grad_var", "weight_norm",
                    "distance_from_initial", "distance_from_identity")

#: The histograms a probe record holds: activations :math:`y^l`, back-propagated gradients
#: :math:`\partial C/\partial s^l` and weight gradients :math:`\partial C/\partial W^l`.
HISTOGRAM_QUANTITIES = ("act", "grad", "weight_grad")

# Activations whose outputs lie in a fixed interval: their histograms use it as the range.
_BOUNDED_RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0), "hard_tanh": (-1.0, 1.0)}

# What needs what beyond the batch itself, for readable KeyErrors when a record lacks a quantity.
_NEEDS = {"grad_var": "labels y", "weight_grad_var": "labels y", "loss": "labels y",
          "distance_from_initial": "initial weights", "distance_from_identity": "sigma",
          "grad": "labels y", "weight_grad": "labels y"}


# ---------------------------------------------------------------------------------------------- saturation
def max_slope(activation) -> float:
    r"""The largest slope :math:`\max_t \phi'(t)` of an activation.

    Found on a float64 grid of step :math:`10^{-4}` over :math:`[-20, 20]` plus the kinks
    :math:`0, \pm 1`: 1 for tanh, softsign, hard tanh, ReLU and the linear map, 1/4 for the sigmoid,
    :math:`\max(1, a)` for leaky ReLU of slope :math:`a` and ELU of parameter :math:`a`,
    :math:`\lambda\alpha \approx 1.758` for SELU, about 1.129 for GELU (tanh form).

    Parameters
    ----------
    activation : str, dict or Activation
        Anything :func:`tinyid.activations.get` accepts.
    """
    return _max_slope(_activations.get(activation))


@functools.lru_cache(maxsize=None)
def _max_slope(activation: _activations.Activation) -> float:
    grid = np.concatenate([np.linspace(-20.0, 20.0, 400_001), [-1.0, 0.0, 1.0]])
    return float(np.max(activation.derivative(grid)))


# ---------------------------------------------------------------------------------------------- checks
def _check_model(model) -> None:
    if type(model) is not MLP:
        if isinstance(model, MLP):  # e.g. tinyid.class_channel.ClassChannelMLP: a padded input, its own loss
            raise TypeError(f"probes measure a plain tinyid.MLP (input -> Dense layers -> logits); "
                            f"{type(model).__name__} has its own input and loss, which they do not model")
        raise TypeError(f"model must be a tinyid.MLP, got {type(model).__name__}")


def _check_bins(bins) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    return int(bins)


def _check_sigma(sigma) -> "float | None":
    if sigma is None:
        return None
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(sigma)):
        raise ValueError(f"sigma must be a finite real number (the scale of the identity sigma I) or None, "
                         f"got {sigma!r}")
    return float(sigma)


def _check_flag(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _host_batch(x, y):
    """Validate a probe batch on the host: ``x`` (n, n_in) numbers, ``y`` None or (n,) non-negative integers."""
    x = to_numpy(x)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x must be a 2-D (n_examples, n_in) array with at least one example, "
                         f"got shape {tuple(x.shape)}")
    if x.dtype.kind not in "fiu":
        raise TypeError(f"x must hold real numbers, got dtype {x.dtype}")
    if y is None:
        return x, None
    y = to_numpy(y)
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y must be a 1-D array of {x.shape[0]} integer labels (one per row of x), "
                         f"got shape {tuple(y.shape)}")
    if y.dtype.kind not in "iu":
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
    if int(y.min()) < 0:
        raise ValueError(f"y must hold class labels >= 0, got {int(y.min())}")
    return x, y


def _check_batch_fits(model: MLP, x, y) -> None:
    if x.shape[1] != model.sizes[0]:
        raise ValueError(f"x has {x.shape[1]} features per example, the model takes {model.sizes[0]}")
    if y is not None and int(y.max()) >= model.sizes[-1]:
        raise ValueError(f"y must hold labels in [0, {model.sizes[-1] - 1}] for a model with {model.sizes[-1]} "
                         f"outputs, got {int(y.max())}")


def _check_initial_weights(model: MLP, initial_weights):
    """The initial weights moved to the model's backend, in their own dtype (differences are taken in float64)."""
    if initial_weights is None:
        return None
    expected = [(layer.n_in, layer.n_out) for layer in model.layers]
    try:
        weights = list(initial_weights)
        shapes = [tuple(w.shape) for w in weights]
    except (TypeError, AttributeError):
        raise ValueError("initial_weights must be a list of the L weight arrays [W1, ..., WL]") from None
    if shapes != expected:
        raise ValueError(f"initial_weights have shapes {shapes}, this model's weights have shapes {expected}")
    return [model.backend.asarray(w) for w in weights]


def _check_edges(edges, n_layers: int, histograms: bool, has_labels: bool) -> dict:
    """Caller-given histogram edges as ``{quantity: (L, B + 1) float64}``."""
    if edges is None:
        return {}
    if not histograms:
        raise ValueError("edges were given with histograms=False: pass histograms=True to use them")
    if not isinstance(edges, dict):
        raise TypeError(f"edges must be a dict like {{'act': edges_array}}, got {type(edges).__name__}")
    out = {}
    for quantity, value in edges.items():
        if quantity not in HISTOGRAM_QUANTITIES:
            raise ValueError(f"edges has an unknown key {quantity!r}; keys are {', '.join(HISTOGRAM_QUANTITIES)}")
        if quantity != "act" and not has_labels:
            raise ValueError(f"edges for {quantity!r} need labels y (gradients are only measured with labels)")
        try:
            array = np.asarray(to_numpy(value), dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"edges[{quantity!r}] must be an array of numbers") from None
        if array.ndim == 1:
            array = np.broadcast_to(array, (n_layers, array.shape[0]))
        if array.ndim != 2 or array.shape[0] != n_layers or array.shape[1] < 2:
            raise ValueError(f"edges[{quantity!r}] must have shape (bins + 1,) or ({n_layers}, bins + 1) with "
                             f"bins >= 1, got {tuple(np.shape(value))}")
        if not np.all(np.isfinite(array)) or not np.all(np.diff(array, axis=1) > 0):
            raise ValueError(f"edges[{quantity!r}] must be finite and strictly increasing along each row")
        out[quantity] = np.array(array)
    return out


# ---------------------------------------------------------------------------------------------- pieces
def _symmetric_edges(xp, values, bins: int) -> np.ndarray:
    r"""``bins + 1`` edges spanning :math:`[-m, m]`, :math:`m = \max |v|` over the finite values (1 if all are 0)."""
    m = max(float(values.max()), -float(values.min()))
    if not math.isfinite(m):
        finite = values[xp.isfinite(values)]
        m = max(float(finite.max()), -float(finite.min())) if finite.size else 0.0
    if m == 0.0:
        m = 1.0
    return np.linspace(-m, m, bins + 1)


def _histogram(xp, values, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins of ``edges`` (B + 1,); (B,) int64.

    Values below ``edges[0]`` are counted in the first bin, values above ``edges[-1]`` in the last
    (as if clipped); NaN is counted nowhere. Evenly spaced edges take the histogram's fast path
    (no sort). Comparisons are made in float64 whatever the dtype of ``values``.
    """
    lo, hi = np.float64(edges[0]), np.float64(edges[-1])
    n_bins = edges.shape[0] - 1
    if np.allclose(np.diff(edges), (hi - lo) / n_bins, rtol=1e-12, atol=0.0):
        counts, _ = xp.histogram(values, bins=n_bins, range=(lo, hi))  # float64 scalars: float64 bins
    else:
        counts, _ = xp.histogram(values, bins=xp.asarray(edges))
    counts = to_numpy(counts).astype(np.int64)
    counts[0] += int(xp.count_nonzero(values < lo))
    counts[-1] += int(xp.count_nonzero(values > hi))
    return counts


def _sum_of_squares(xp, a) -> float:
    r""":math:`\sum a^2` over every entry, accumulated in float64."""
    return float(xp.sum(xp.square(a, dtype=xp.float64)))


def _distance_from_identity(xp, W, sigma: float) -> float:
    r""":math:`\|W - \sigma I\|_F` for square ``W``, NaN otherwise (no identity of that shape)."""
    n_in, n_out = W.shape
    if n_in != n_out:
        return math.nan
    difference = W.astype(xp.float64)  # a copy
    diagonal = xp.arange(n_in)
    difference[diagonal, diagonal] -= sigma
    return math.sqrt(_sum_of_squares(xp, difference))


def _statistics(model: MLP, x, labels, *, bins: int, initial, sigma, histograms: bool, edges: dict) -> dict:
    """:func:`layer_statistics` on a batch already on the model's backend and validated."""
    xp = model.backend.xp
    layers = model.layers
    n_layers = len(layers)
    stats = {name: np.zeros(n_layers) for name in ("mean", "std", "p2", "p98", "saturation", "weight_norm")}
    act_hist, act_edges = [], []

    # Forward, layer by layer, into fresh arrays (no workspace: the model's step buffers stay untouched).
    caches = []
    out = x
    for i, layer in enumerate(layers):
        out, cache = layer.forward(out)
        caches.append(cache)
        derivative = cache[1]  # phi'(s), None for a linear layer (phi' = 1)
        stats["mean"][i] = float(xp.mean(out, dtype=xp.float64))
        stats["std"][i] = float(xp.std(out, dtype=xp.float64))
        stats["p2"][i], stats["p98"][i] = to_numpy(xp.percentile(out.astype(xp.float64, copy=False),
                                                                 xp.asarray([2.0, 98.0])))
        if derivative is not None:
            threshold = SATURATION_FRACTION * max_slope(layer.activation)
            stats["saturation"][i] = int(xp.count_nonzero(derivative < threshold)) / derivative.size
        if histograms:
            if "act" in edges:
                row = edges["act"][i]
            elif layer.activation.name in _BOUNDED_RANGES:
                row = np.linspace(*_BOUNDED_RANGES[layer.activation.name], bins + 1)
            else:
                row = _symmetric_edges(xp, out, bins)
            act_edges.append(row)
            act_hist.append(_histogram(xp, out, row))
        stats["weight_norm"][i] = math.sqrt(_sum_of_squares(xp, layer.W))
    if histograms:
        stats["act_hist"], stats["act_edges"] = np.stack(act_hist), np.stack(act_edges)

    if labels is not None:
        # Backward from dC/dlogits, again into fresh arrays: ds = dC/dy * phi'(s), then the layer's own backward.
        loss, d = softmax_cross_entropy(out, labels)
        stats["loss"] = float(loss)
        stats["grad_var"], stats["weight_grad_var"] = np.zeros(n_layers), np.zeros(n_layers)
        found = {"grad": [None] * n_layers, "weight_grad": [None] * n_layers}
        for i in range(n_layers - 1, -1, -1):
            derivative = caches[i][1]
            ds = d if derivative is None else d * derivative
            d, (dW, _) = layers[i].backward(d, caches[i], need_input_grad=i > 0)
            stats["grad_var"][i] = float(xp.var(ds, dtype=xp.float64))
            stats["weight_grad_var"][i] = float(xp.var(dW, dtype=xp.float64))
            if histograms:
                for quantity, values in (("grad", ds), ("weight_grad", dW)):
                    row = edges[quantity][i] if quantity in edges else _symmetric_edges(xp, values, bins)
                    found[quantity][i] = (_histogram(xp, values, row), row)
        if histograms:
            for quantity, pairs in found.items():
                stats[f"{quantity}_hist"] = np.stack([counts for counts, _ in pairs])
                stats[f"{quantity}_edges"] = np.stack([row for _, row in pairs])

    if initial is not None:
        stats["distance_from_initial"] = np.array([
            math.sqrt(_sum_of_squares(xp, xp.subtract(layer.W, W0, dtype=xp.float64)))
            for layer, W0 in zip(layers, initial)])
    if sigma is not None:
        stats["distance_from_identity"] = np.array([_distance_from_identity(xp, layer.W, sigma) for layer in layers])
    return stats


# ---------------------------------------------------------------------------------------------- public
def layer_statistics(model: MLP, x, y=None, *, bins: int = 50, initial_weights=None, sigma=None,
                     histograms: bool = True, edges: "dict | None" = None) -> dict:
    r"""Measure every layer of ``model`` on the batch ``x`` (and labels ``y``), without changing the model.

    The forward and backward passes are the layers' own :meth:`~tinyid.layers.Dense.forward` and
    :meth:`~tinyid.layers.Dense.backward`, run into fresh arrays: the model's training-step buffers
    (reused on the numba and cupy backends) are never written, so a probe between two training
    steps changes nothing in the run. Everything is computed on the model's backend and returned
    as NumPy float64 (counts as int64).

    For every layer :math:`l = 1..L` (the last is the linear logits layer), over all
    :math:`n` examples and :math:`d_l` units, with :math:`N_l = n d_l`:

    .. math::
        \text{mean}^l = \frac1{N_l}\sum_{i,j} y^l_{ij}, \qquad
        \text{std}^l = \Big(\frac1{N_l}\sum_{i,j} (y^l_{ij} - \text{mean}^l)^2\Big)^{1/2}, \\
        \text{saturation}^l = \frac1{N_l}\,\#\Big\{(i, j) : \phi'(s^l_{ij}) < 0.05\,\max_t \phi'(t)\Big\}.

    ``p2``, ``p98`` are the 2nd and 98th percentiles of the :math:`N_l` values :math:`y^l_{ij}`
    (linear interpolation, as :func:`numpy.percentile`). The saturation rule (slope below
    :data:`SATURATION_FRACTION` of :func:`max_slope`) counts the flat tails of the bounded
    activations (tanh: :math:`|s| > 2.18`, i.e. :math:`|y| > 0.975`; sigmoid: :math:`|s| > 4.36`;
    softsign: :math:`|s| > 3.47`; hard tanh: :math:`|s| \ge 1`), the inactive units of ReLU
    (:math:`s \le 0`, every example counted separately) and of leaky ReLU with slope below 0.05;
    it is 0 for the linear logits layer.

    With labels, for the mean cross-entropy :math:`C` of the batch (see the module notes),

    .. math::
        \frac{\partial C}{\partial s^l} = \frac{\partial C}{\partial y^l} \odot \phi'(s^l), \qquad
        \frac{\partial C}{\partial W^l} = (y^{l-1})^\top \frac{\partial C}{\partial s^l},

    ``grad_var`` is the variance of the :math:`n \times d_l` entries of :math:`\partial C/\partial s^l`
    (the back-propagated gradient, Glorot & Bengio's Fig. 7) and ``weight_grad_var`` that of the
    :math:`d_{l-1} \times d_l` entries of :math:`\partial C/\partial W^l` (Fig. 8), both with
    denominator the number of entries.

    Histograms have ``bins`` bins per layer. Their edges: the activation's range for bounded
    activations (tanh, softsign, hard tanh: :math:`[-1, 1]`; sigmoid: :math:`[0, 1]`);
    :math:`[-m, m]` with :math:`m` the layer's largest :math:`|y|` for the others and for the logits;
    :math:`[-m, m]` with :math:`m` the layer's largest :math:`|g|` for each gradient (per layer, so
    layers are not comparable bin by bin: pass ``edges`` for that). Values outside the edges are
    counted in the first or last bin (clipped), so every row of counts sums to the number of finite
    values; NaN is not counted.

    Parameters
    ----------
    model : MLP
        A plain :class:`~tinyid.layers.MLP` (subclasses with their own input or loss are refused).
    x : (n_examples, n_in) array
        The probe batch (NumPy or the model's array type; cast to the model's dtype).
    y : (n_examples,) integer array, optional
        Labels; without them no gradient is measured.
    bins : int
        Bins of every histogram whose edges are not given.
    initial_weights : list of L arrays, optional
        :math:`W_0^l`, each shaped like the layer's weight, e.g. ``[W.copy() for W, _ in model.params]``
        taken before training.
    sigma : float, optional
        Scale of the identity :math:`\sigma I` to measure the distance from.
    histograms : bool
        Compute the histograms (the rest is cheaper without them).
    edges : dict, optional
        Your own edges for ``"act"``, ``"grad"`` and/or ``"weight_grad"``: an increasing (B + 1,) array
        for every layer, or (L, B + 1) for one row per layer.

    Returns
    -------
    dict of NumPy arrays
        Always: ``"mean"``, ``"std"``, ``"p2"``, ``"p98"``, ``"saturation"``, ``"weight_norm"``
        (:math:`\|W^l\|_F`), each (L,); with histograms, ``"act_hist"`` (L, bins) int64 and
        ``"act_edges"`` (L, bins + 1).
        With ``y``: ``"loss"`` (float, the mean cross-entropy), ``"grad_var"``, ``"weight_grad_var"``
        (L,); with histograms ``"grad_hist"``, ``"grad_edges"``, ``"weight_grad_hist"``,
        ``"weight_grad_edges"``.
        With ``initial_weights``: ``"distance_from_initial"`` (L,), :math:`\|W^l - W_0^l\|_F`.
        With ``sigma``: ``"distance_from_identity"`` (L,), :math:`\|W^l - \sigma I\|_F` for square
        layers and NaN for the others.

    Raises
    ------
    TypeError
        ``model`` is not a plain MLP, ``x`` is not numeric, ``edges`` is not a dict.
    ValueError
        A batch of the wrong shape, labels out of range, bad ``bins``, ``sigma``, ``initial_weights``
        or ``edges``.
    """
    _check_model(model)
    bins = _check_bins(bins)
    histograms = _check_flag(histograms, "histograms")
    sigma = _check_sigma(sigma)
    host_x, host_y = _host_batch(x, y)
    _check_batch_fits(model, host_x, host_y)
    initial = _check_initial_weights(model, initial_weights)
    checked_edges = _check_edges(edges, len(model.layers), histograms, host_y is not None)
    x_model = model.backend.asarray(x, model.dtype)
    labels = None if y is None else model.backend.asarray(y)
    return _statistics(model, x_model, labels, bins=bins, initial=initial, sigma=sigma, histograms=histograms,
                       edges=checked_edges)


def _jsonable(value):
    """NumPy arrays and scalars as nested lists of Python ints and floats; non-finite floats become None."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iu":
            return value.tolist()
        return [_jsonable(v) for v in value] if value.ndim > 1 else [_jsonable(float(v)) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


class Probe(Callback):
    r"""Record :func:`layer_statistics` on a fixed probe batch while a :class:`~tinyid.train.Trainer` trains.

    Records go to ``trainer.history.records[key]``, a list of JSON-able dicts::

        {"step": 1500, "epoch": 3, "mean": [...L floats], "std": [...], ..., "act_hist": [[...bins]...], ...}

    with every entry of :func:`layer_statistics` as (nested) lists; NaN (the distance from the
    identity of a non-square layer) is stored as None. ``step`` counts optimizer steps; ``epoch`` is
    the epoch that step belongs to (1-based; 0 for the state before training). The history, and
    with it the records, is saved by :meth:`Trainer.save` and written into ``metrics.json``; read
    the records with :func:`probe_series` and :func:`histograms`.

    When it records:

    - at :meth:`on_train_begin`, before the first step of a ``fit`` call (step 0 for a new trainer),
      when ``at_begin``;
    - then after every ``every``-th optimizer step (``trainer.step`` a multiple of ``every``), or,
      when ``every`` is None, at the end of every epoch.

    Never twice at the same step (a ``fit`` call that starts where the previous one's last record
    was adds nothing at its beginning).

    The probe keeps :math:`W_0`, the weights it sees at its first :meth:`on_train_begin` (an extra copy
    of the weights on the model's device), for ``distance_from_initial``. A new probe on a trainer
    resumed from a checkpoint would take the resumed weights; pass ``initial_weights`` to measure
    from the true start instead. One probe watches one model.

    Cost: one forward and one backward pass over the probe batch, plus a few passes over each
    layer's activations, gradients and weights; see ``benchmarks/probes.py``.

    Parameters
    ----------
    x : (n_examples, n_in) array
        The fixed probe batch, e.g. 300 test examples (copied; moved to the model's backend once).
    y : (n_examples,) integer array, optional
        Its labels; without them no gradients are recorded.
    every : int, optional
        Record every ``every`` optimizer steps; None (default) records at the end of each epoch.
    at_begin : bool
        Also record before training starts.
    bins, sigma, histograms, edges
        As in :func:`layer_statistics`.
    key : str
        Name of the record list in ``trainer.history.records``.
    initial_weights : list of L arrays, optional
        :math:`W_0` to measure ``distance_from_initial`` from, instead of the weights at the first
        :meth:`on_train_begin`.
    """

    def __init__(self, x, y=None, *, every: "int | None" = None, at_begin: bool = True, bins: int = 50,
                 sigma: "float | None" = None, histograms: bool = True, key: str = "probes",
                 edges: "dict | None" = None, initial_weights=None):
        x, y = _host_batch(x, y)
        self.x = np.array(x)  # own copies: the batch stays fixed whatever the caller does to theirs
        self.y = None if y is None else np.array(y)
        if every is not None and (isinstance(every, bool) or not isinstance(every, (int, np.integer))
                                  or every < 1):
            raise ValueError(f"every must be a positive number of steps, or None to record once per epoch, "
                             f"got {every!r}")
        self.every = None if every is None else int(every)
        self.at_begin = _check_flag(at_begin, "at_begin")
        self.bins = _check_bins(bins)
        self.sigma = _check_sigma(sigma)
        self.histograms = _check_flag(histograms, "histograms")
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        self.key = key
        self._edges_given = edges
        try:
            self._initial_given = (None if initial_weights is None
                                   else [np.array(to_numpy(w)) for w in initial_weights])
        except TypeError:
            raise ValueError("initial_weights must be a list of the L weight arrays [W1, ..., WL]") from None
        self._model = None
        self._edges = None
        self._initial = None     # W0 on the model's backend
        self._on_device = {}     # backend name -> (x, y) on that backend

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, trainer) -> None:
        model = trainer.model
        if self._model is None:
            _check_model(model)
            _check_batch_fits(model, self.x, self.y)
            self._edges = _check_edges(self._edges_given, len(model.layers), self.histograms, self.y is not None)
            if self._initial_given is not None:
                self._initial = _check_initial_weights(model, self._initial_given)
            else:
                self._initial = [model.backend.xp.array(layer.W, copy=True) for layer in model.layers]
            self._model = model
        elif model is not self._model:
            raise ValueError("this Probe already watches another model; make a new Probe for this one")
        if self.at_begin:
            self.record(trainer, trainer.epoch)

    def on_step_end(self, trainer, loss: float) -> None:
        if self.every is not None and trainer.step % self.every == 0:
            self.record(trainer, trainer.epoch + 1)  # the epoch in progress

    def on_epoch_end(self, trainer, record: dict) -> None:
        if self.every is None:
            self.record(trainer, trainer.epoch)

    # ------------------------------------------------------------------ recording
    def record(self, trainer, epoch: int) -> "dict | None":
        """Measure now and append the record to ``trainer.history.records[key]``; None if this step has one."""
        if self._model is None:
            raise RuntimeError("Probe.record before on_train_begin: pass the probe to Trainer.fit(callbacks=...)")
        if trainer.model is not self._model:
            raise ValueError("this Probe already watches another model; make a new Probe for this one")
        records = trainer.history.records.setdefault(self.key, [])
        if records and records[-1].get("step") == trainer.step:
            return None
        model = trainer.model
        backend = model.backend
        if backend.name not in self._on_device:
            self._on_device[backend.name] = (backend.asarray(self.x, model.dtype),
                                             None if self.y is None else backend.asarray(self.y))
        x, labels = self._on_device[backend.name]
        initial = [backend.asarray(w) for w in self._initial]
        stats = _statistics(model, x, labels, bins=self.bins, initial=initial, sigma=self.sigma,
                            histograms=self.histograms, edges=self._edges)
        entry = {"step": int(trainer.step), "epoch": int(epoch)}
        entry.update({name: _jsonable(value) for name, value in stats.items()})
        records.append(entry)
        return entry


class ActivationRecorder(Callback):
    r"""Keep every layer's activations on a fixed probe set at chosen fractions of a training run.

    The raw material of representation similarity (:mod:`tinyid.similarity`): the outputs
    :math:`y^l` of every layer on the same examples at, by default, 0, 35, 75 and 100% of training,
    as in Raghu et al.'s (2017) "freeze training" heatmaps. Only those snapshots are kept, on the host
    in float32 (or ``dtype``), never the whole trajectory: memory is
    ``len(fractions) * n_examples * sum(widths) * 4`` bytes.

    A fraction :math:`f` of a ``fit`` call of :math:`T` steps that starts at step :math:`s_0` is recorded
    after step :math:`s_0 + \mathrm{round}(f T)` (fraction 0 before the first step). Recording runs the
    layers into fresh arrays (:meth:`~tinyid.layers.MLP.layer_outputs`), never the model's step buffers.

    Parameters
    ----------
    x : (n_examples, n_in) array
        The probe set (copied).
    fractions : sequence of float in [0, 1]
        When to record, as fractions of the ``fit`` call's planned steps.
    dtype : {"float32", "float64"}

    Attributes
    ----------
    activations : dict of float -> list of (n_examples, n_l) numpy arrays
        ``activations[f][l]`` is layer ``l + 1``'s output at fraction ``f`` (the last layer's is the logits).
    steps : dict of float -> int
        The global step each snapshot was taken after.
    """

    def __init__(self, x, fractions=(0.0, 0.35, 0.75, 1.0), dtype: str = "float32"):
        x, _ = _host_batch(x, None)
        self.x = np.array(x)
        try:
            fractions = sorted({float(f) for f in fractions})
        except (TypeError, ValueError):
            raise ValueError(f"fractions must be numbers in [0, 1], got {fractions!r}") from None
        if not fractions or not all(0.0 <= f <= 1.0 for f in fractions):
            raise ValueError(f"fractions must be a non-empty sequence of numbers in [0, 1], got {fractions!r}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.fractions = tuple(fractions)
        self.dtype = np.dtype(dtype)
        self.activations: dict = {}
        self.steps: dict = {}
        self._due: dict = {}

    def on_train_begin(self, trainer) -> None:
        if trainer.planned_steps is None:
            raise RuntimeError("ActivationRecorder needs Trainer.fit's planned steps: pass it to fit(callbacks=...)")
        first, last = trainer.planned_steps
        self._due = {}
        for f in self.fractions:
            self._due.setdefault(first + int(round(f * (last - first))), []).append(f)
        self._record_due(trainer)

    def on_step_end(self, trainer, loss: float) -> None:
        self._record_due(trainer)

    def _record_due(self, trainer) -> None:
        due = self._due.pop(trainer.step, None)
        if not due:
            return
        outputs = [to_numpy(y).astype(self.dtype, copy=False) for y in trainer.model.layer_outputs(self.x)]
        for f in due:
            self.activations[f] = outputs
            self.steps[f] = int(trainer.step)


# ---------------------------------------------------------------------------------------------- reading
def _records(history, key: str) -> list:
    if isinstance(history, History):
        records = history.records.get(key)
    elif isinstance(history, dict) and "records" in history:
        records = history["records"].get(key)
    elif isinstance(history, list):
        records = history
    else:
        raise TypeError(f"expected a History, a history dict (History.to_dict()) or a list of probe records, "
                        f"got {type(history).__name__}")
    if not records:
        raise ValueError(f"no probe records under {key!r}: train with a Probe(..., key={key!r}) callback first")
    return records


def _missing(quantity: str, key: str) -> KeyError:
    need = _NEEDS.get(quantity)
    why = f" (it needs {need}, which the probe was not given)" if need else ""
    return KeyError(f"the probe records under {key!r} have no {quantity!r}{why}")


def probe_series(history, quantity: str, key: str = "probes") -> tuple:
    """One per-layer quantity over training, for plotting.

    Parameters
    ----------
    history : History, dict or list
        A trainer's :class:`~tinyid.train.History`, its ``to_dict()`` (e.g. from ``metrics.json``),
        or the list of records itself.
    quantity : str
        One of :data:`LAYER_QUANTITIES`, or ``"loss"``.
    key : str
        The probe's ``key``.

    Returns
    -------
    steps : (T,) int64 array
        The optimizer step of each record.
    values : (T, L) float64 array
        One column per layer (``"loss"``: shape (T,)); NaN where the record holds None.

    Raises
    ------
    KeyError
        Unknown quantity, or one the records lack (no labels, no sigma).
    ValueError
        No records under ``key``, or a histogram quantity (use :func:`histograms`).
    TypeError
        ``history`` is none of the above.
    """
    if quantity in HISTOGRAM_QUANTITIES or (isinstance(quantity, str) and quantity.endswith(("_hist", "_edges"))):
        raise ValueError(f"{quantity!r} is a histogram: read it with tinyid.probes.histograms()")
    if quantity not in LAYER_QUANTITIES and quantity != "loss":
        raise KeyError(f"unknown probe quantity {quantity!r}; choose one of {', '.join(LAYER_QUANTITIES)}, loss")
    records = _records(history, key)
    if any(quantity not in record for record in records):
        raise _missing(quantity, key)
    steps = np.array([record["step"] for record in records], dtype=np.int64)
    values = np.array([_floats(record[quantity]) for record in records], dtype=np.float64)
    return steps, values


def _floats(value):
    """A record's number or list of numbers with None (a stored NaN) back as NaN."""
    if isinstance(value, list):
        return [math.nan if v is None else v for v in value]
    return math.nan if value is None else value


def histograms(source, quantity: str, *, index: int = -1, key: str = "probes") -> tuple:
    """The histograms of one record: counts and edges for every layer.

    Parameters
    ----------
    source : History, dict or list
        A :class:`~tinyid.train.History` or its ``to_dict()`` (the record ``index`` under ``key`` is
        used), a list of records, or one record (a probe record, or what :func:`layer_statistics`
        returns).
    quantity : {"act", "grad", "weight_grad"}
        Activations, back-propagated gradients dC/ds, weight gradients dC/dW (``"act_hist"`` etc.
        work too).
    index : int
        Which record of a history or list (default the last).

    Returns
    -------
    counts : (L, bins) int64 array
    edges : (L, bins + 1) float64 array
        Row ``l`` holds layer ``l + 1``'s bin edges.
    """
    name = quantity[:-len("_hist")] if isinstance(quantity, str) and quantity.endswith("_hist") else quantity
    if name not in HISTOGRAM_QUANTITIES:
        raise KeyError(f"unknown histogram {quantity!r}; choose one of {', '.join(HISTOGRAM_QUANTITIES)}")
    if isinstance(source, dict) and "records" not in source:
        record = source
    else:
        records = _records(source, key)
        n_records = len(records)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not -n_records <= index < n_records:
            raise ValueError(f"index must be an integer in [{-len(records)}, {len(records) - 1}], got {index!r}")
        record = records[index]
    if f"{name}_hist" not in record:
        need = _NEEDS.get(name)
        why = f"it needs {need}, or " if need else ""
        raise KeyError(f"this record has no {name!r} histogram ({why}it was recorded with histograms=False)")
    return np.asarray(record[f"{name}_hist"], dtype=np.int64), np.asarray(record[f"{name}_edges"], dtype=np.float64)
