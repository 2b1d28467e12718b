r"""The identity-initialized MLP with class channels (after Kubota, Hayashi, Hayase & Uchida, ICASSP 2021).

Kubota et al. train deep fixed-width MLPs whose every weight matrix starts as the scaled identity
:math:`\sigma I`. Because the trained weights stay close to the identity, the change a layer makes to its
input can be read as that layer's contribution; and by giving every layer ``C`` extra units, one per
class, each layer's output splits into an input-shaped feature map and a class score, which gives a
recognition accuracy for every layer.

**This architecture is a reconstruction** from the paper's abstract and poster: the paper's body and code
were not available when it was written, so details (where the loss is taken, biases, the activation of
the last layer, the input scaling) are our choices, stated here.

With ``N`` input features, ``C`` classes, depth ``L``, width :math:`N + C` and activation :math:`\phi`:

.. math::
    u^0 = [\,a\,x,\ 0_C\,], \qquad u^l = \phi(u^{l-1} W^l + b^l)\quad (l = 1, \dots, L), \\
    x^l = u^l_{[:, :N]} \ \text{(feature map)}, \qquad z^l = u^l_{[:, N:]} \ \text{(class scores)}, \qquad
    W^l \in \mathbb{R}^{(N+C) \times (N+C)},\ W^l_{\text{init}} = \sigma I,\ b^l_{\text{init}} = 0,

where :math:`a` is ``input_scale``. The activation is applied by every layer, the last included, and the
model's logits are :math:`z^L`. With :math:`\phi(0) = 0` (hard tanh, ReLU, tanh, linear) an untrained
network acts elementwise, :math:`x^l = \phi(\sigma x^{l-1})`, and its class scores are exactly zero.
Training minimizes the softmax cross-entropy of :math:`z^L` (``loss_layers="last"``) or its mean over the
layers, :math:`\frac1L \sum_l \mathrm{CE}(z^l, y)` (``loss_layers="all"``), which asks every layer to
classify.

:class:`ClassChannelMLP` is a :class:`tinyid.layers.MLP`: its :attr:`~ClassChannelMLP.layers` are the
``L`` :class:`~tinyid.layers.Dense` layers, so :class:`tinyid.train.Trainer`, :func:`tinyid.train.fit`,
:func:`tinyid.train.evaluate`, the optimizers, every backend and the checkpoints work unchanged::

    model = ClassChannelMLP(784, 10, depth=100, input_scale=input_scale_for(x_train, q0=0.5), backend="numba")
    fit(model, x_train, y_train, epochs=5, lr=0.01, batch_size=128)
    model.layer_accuracy(x_test, y_test)          # (100,): how well each layer's z^l classifies
    model.contribution_maps(x_test[:8])           # (100, 8, 784): x^l - x^{l-1}, reshape to images
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from tinyid.backend import to_numpy
from tinyid.checkpoint import CheckpointError
from tinyid.layers import MLP, Workspace
from tinyid.losses import check_labels

__all__ = ["ClassChannelMLP", "input_scale_for", "LOSS_LAYERS"]

#: Accepted values of ``loss_layers``: the loss on the last layer's class scores, or the mean over all layers.
LOSS_LAYERS = ("last", "all")


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _positive_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or float(value) <= 0:
        raise ValueError(f"{name} must be a finite real number > 0, got {value!r}")
    return float(value)


def input_scale_for(x, q0: float) -> float:
    r"""The ``input_scale`` that gives the inputs ``x`` a mean square of ``q0``.

    .. math:: a = \sqrt{\frac{q_0}{\frac{1}{nN}\sum_{i,j} x_{ij}^2}}, \qquad
              \frac{1}{nN}\sum_{i,j} (a\,x_{ij})^2 = q_0 .

    :math:`q_0` is the input variance of the identity-initialization theory (for centred inputs the mean
    square is the variance): with hard tanh, no bias and :math:`\sigma \le 1`, an input entry
    :math:`\sim N(0, q_0)` stays in the linear region with probability
    :math:`\mathrm{erf}(1/(\sigma\sqrt{2 q_0}))`, so a small :math:`q_0` keeps the network's Jacobian
    close to an isometry.

    Parameters
    ----------
    x : (n, n_features) float array (NumPy or CuPy)
        The (training) inputs, e.g. standardized images.
    q0 : float
        Target mean square, > 0.

    Returns
    -------
    float
    """
    q0 = _positive_real("q0", q0)
    host = to_numpy(x)
    if host.ndim != 2 or host.size == 0:
        raise ValueError(f"x must be a non-empty (n, n_features) array, got shape {tuple(host.shape)}")
    if host.dtype.kind not in "fiu":
        raise ValueError(f"x must hold real numbers, got dtype {host.dtype}")
    mean_square = float(np.mean(np.square(host, dtype=np.float64)))
    if not math.isfinite(mean_square) or mean_square == 0:
        raise ValueError(f"x must be finite and not all zero to be scaled, its mean square is {mean_square}")
    return math.sqrt(q0 / mean_square)


class ClassChannelMLP(MLP):
    r"""A depth-``L`` MLP of width ``N + C`` with identity-initialized weights and one class channel per class.

    See the module docstring for the architecture (a reconstruction of Kubota et al. 2021) and its math.

    Parameters
    ----------
    n_features : int
        ``N``, the input width (e.g. 784 for 28x28 images).
    n_classes : int
        ``C`` >= 2, the number of class channels appended to every layer.
    depth : int
        ``L`` >= 1, the number of layers (each with an ``(N + C, N + C)`` weight).
    sigma : float
        :math:`\sigma > 0`; every weight starts at :math:`\sigma I`. :math:`\sigma = 1` is the
        critical value of the theory (neither vanishing nor exploding signals).
    activation : str, dict or Activation
        :math:`\phi`, applied by every layer including the last; ``"hard_tanh"`` (the default), ``"relu"``,
        ``"tanh"``, ``"linear"`` or anything :func:`tinyid.activations.get` accepts. With
        :math:`\phi(0) \ne 0` (e.g. sigmoid) the untrained class scores are equal but not zero.
    bias : bool
        Whether the biases are trained. With False they stay in :attr:`params` (so the ``[W, b]`` layout that
        optimizers, checkpoints and Jacobian tools rely on holds) as arrays fixed at zero: their gradient is
        defined as zero, so every optimizer leaves them at exactly 0 (SGD with momentum, Nesterov or weight
        decay: :math:`0`; Adam: :math:`0/(0 + \epsilon) = 0`), parameters with a nonzero bias are refused,
        and :attr:`n_params` does not count them.
    input_scale : float
        :math:`a > 0`; the input enters as :math:`a x` (see :func:`input_scale_for` to choose it from
        the data's mean square).
    loss_layers : {"last", "all"}
        Training loss: cross-entropy of the last class scores :math:`z^L`, or the mean over layers
        :math:`\frac1L\sum_{l=1}^L \mathrm{CE}(z^l, y)`. (:func:`tinyid.train.evaluate` always reports the
        last layer's cross-entropy and accuracy, since :math:`z^L` are the logits.)
    seed : int, optional
        Recorded in the config like :class:`~tinyid.layers.MLP`'s; the identity initialization draws nothing.
    backend : str or Backend, optional
    dtype : {"float32", "float64"}

    Attributes
    ----------
    n_features, n_classes, depth, width : int
        ``N``, ``C``, ``L`` and ``N + C``.
    sizes : list of int
        ``[N, N + C, ..., N + C, C]`` (``L + 1`` entries): what the model takes, the width of
        :math:`u^1, \dots, u^{L-1}`, and the number of logits. (The weights are all
        ``(N + C, N + C)``: the padding and the slicing of :math:`z^L` are not layers.)
    layers : list of Dense
        The ``L`` layers, each ``Dense(N + C -> N + C, activation)``; they map :meth:`padded_input` to
        :math:`u^L` (and :meth:`~tinyid.layers.MLP.layer_outputs` returns the whole :math:`u^1, \dots, u^L`).
    """

    def __init__(self, n_features: int, n_classes: int, depth: int, sigma: float = 1.0, activation="hard_tanh", *,
                 bias: bool = True, input_scale: float = 1.0, loss_layers: str = "last",
                 seed: "int | None" = None, backend=None, dtype="float32"):
        self.n_features = _positive_int("n_features", n_features)
        self.n_classes = _positive_int("n_classes", n_classes, minimum=2)
        self.depth = _positive_int("depth", depth)
        self.sigma = _positive_real("sigma", sigma)
        self.input_scale = _positive_real("input_scale", input_scale)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self.bias = bool(bias)
        if not isinstance(loss_layers, str) or loss_layers not in LOSS_LAYERS:
            raise ValueError(f"loss_layers must be one of {', '.join(map(repr, LOSS_LAYERS))}, got {loss_layers!r}")
        self.loss_layers = loss_layers
        self.width = self.n_features + self.n_classes
        super().__init__([self.width] * (self.depth + 1), activation, ("identity", {"sigma": self.sigma}),
                         bias_init=0.0, seed=seed, backend=backend, dtype=dtype)
        self.layers[-1].activation = self.activation  # MLP makes its last layer linear; here every layer is phi
        self.sizes = [self.n_features] + [self.width] * (self.depth - 1) + [self.n_classes]

    # ------------------------------------------------------------------ forward
    def _input(self, x, workspace: "Workspace | None" = None):
        """``u^0 = [a x, 0_C]``, (n_batch, N + C), in ``workspace`` (a fresh array when omitted)."""
        x = super()._input(x)  # checks (n_batch, N), moves and casts
        ws = workspace if workspace is not None else Workspace(self.backend.xp, self.dtype, reuse=False)
        u = ws.get("padded_input", 0, (x.shape[0], self.width))
        u[:, :self.n_features] = x
        if self.input_scale != 1.0:
            u[:, :self.n_features] *= self.input_scale
        u[:, self.n_features:] = 0
        return u

    def padded_input(self, x):
        """The input of the first layer, :math:`u^0 = [a x, 0_C]`, (n_batch, N + C), a fresh array.

        :attr:`layers` map :math:`u^0` to :math:`u^L`, so this is the ``x`` to give tools that take a list
        of Dense layers, e.g. ``tinyid.jacobian.singular_values(model, model.padded_input(x))``.
        """
        return self._input(x)

    def _states(self, x):
        """Yield :math:`u^0, u^1, \\dots, u^L`, each (n_batch, N + C), fresh arrays (inference, no caches)."""
        u = self._input(x)
        yield u
        for layer in self.layers:
            u, _ = layer.forward(u, keep_derivative=False)
            yield u

    def forward_train(self, x):
        """Forward pass keeping what backward needs.

        Parameters
        ----------
        x : (n_batch, n_features) array

        Returns
        -------
        logits : (n_batch, n_classes) array
            :math:`z^L` (a contiguous copy).
        caches : list of the ``L`` layers' caches; ``caches[l][0]`` is :math:`u^l`, the input of layer ``l + 1``.

        Step buffers on the numba and cupy backends, fresh arrays on the NumPy reference (as in
        :meth:`tinyid.layers.MLP.forward_train`).
        """
        u = self._input(x, self._workspace)
        caches = []
        for i, layer in enumerate(self.layers):
            u, cache = layer.forward(u, self._workspace, i)
            caches.append(cache)
        logits = self._workspace.get("logits", self.depth, (u.shape[0], self.n_classes))
        logits[...] = u[:, self.n_features:]
        return logits, caches

    def forward(self, x):
        """The logits :math:`z^L`, (n_batch, n_classes), on the model's backend (a fresh array)."""
        for u in self._states(x):
            pass
        return self.backend.xp.ascontiguousarray(u[:, self.n_features:])

    __call__ = forward

    def layer_logits(self, x):
        r"""Every layer's class scores :math:`z^1, \dots, z^L`.

        Parameters
        ----------
        x : (n_batch, n_features) array

        Returns
        -------
        (depth, n_batch, n_classes) array on the model's backend; entry ``l - 1`` is :math:`z^l`.
        """
        scores = None
        for level, u in enumerate(self._states(x)):
            if scores is None:
                scores = self.backend.xp.empty((self.depth, u.shape[0], self.n_classes), self.dtype)
            else:
                scores[level - 1] = u[:, self.n_features:]
        return scores

    def layer_accuracy(self, x, y, batch_size: int = 1000) -> np.ndarray:
        r"""The recognition accuracy of every layer: the fraction of rows where :math:`\arg\max_k z^l_k = y`.

        ``argmax`` takes the first of equal scores, so an untrained network (all :math:`z^l = 0`)
        predicts class 0 everywhere and its accuracy is the fraction of class 0 in ``y``.

        Parameters
        ----------
        x : (n, n_features) array
        y : (n,) integer labels in ``[0, n_classes)``
        batch_size : int
            Rows per forward pass (bounds the memory).

        Returns
        -------
        (depth,) float64 numpy.ndarray
        """
        batch_size = _positive_int("batch_size", batch_size)
        xp = self.backend.xp
        labels = self.backend.asarray(y)
        n = getattr(x, "shape", (None,))[0]
        if getattr(x, "ndim", None) != 2 or n == 0:
            raise ValueError(f"x must be a non-empty (n, {self.n_features}) array, got shape "
                             f"{tuple(getattr(x, 'shape', ()))}")
        check_labels(xp.empty((n, self.n_classes)), labels)
        correct = xp.zeros(self.depth, dtype=np.int64)
        for start in range(0, n, batch_size):
            scores = self.layer_logits(x[start:start + batch_size])
            correct += (scores.argmax(axis=2) == labels[start:start + batch_size]).sum(axis=1)
        return to_numpy(correct) / n

    def feature_maps(self, x):
        r"""The input-shaped part of every layer, :math:`x^0 = a x, x^1, \dots, x^L`.

        Parameters
        ----------
        x : (n_batch, n_features) array

        Returns
        -------
        (depth + 1, n_batch, n_features) array on the model's backend; entry ``l`` is :math:`x^l`
        (entry 0 the scaled input). Reshape the last axis to the image to look at it.
        """
        maps = None
        for level, u in enumerate(self._states(x)):
            if maps is None:
                maps = self.backend.xp.empty((self.depth + 1, u.shape[0], self.n_features), self.dtype)
            maps[level] = u[:, :self.n_features]
        return maps

    def contribution_maps(self, x, cumulative: bool = False):
        r"""What every layer changed in the feature map.

        .. math:: c^l = x^l - x^{l-1} \quad\text{or, cumulative,}\quad c^l = x^l - x^0 \qquad (l = 1, \dots, L)

        With weights near :math:`\sigma = 1` times the identity, a layer that leaves an input feature alone
        contributes 0 there, so :math:`c^l` shows where layer ``l`` acted.

        Parameters
        ----------
        x : (n_batch, n_features) array
        cumulative : bool

        Returns
        -------
        (depth, n_batch, n_features) array on the model's backend; entry ``l - 1`` is :math:`c^l`.
        """
        if not isinstance(cumulative, (bool, np.bool_)):
            raise TypeError(f"cumulative must be True or False, got {cumulative!r}")
        maps = self.feature_maps(x)
        return maps[1:] - (maps[:1] if cumulative else maps[:-1])

    def identity_distance(self) -> np.ndarray:
        r"""How far every weight is from its initialization, relative to it.

        .. math:: d^l = \frac{\lVert W^l - \sigma I \rVert_F}{\lVert \sigma I \rVert_F}
                      = \frac{\lVert W^l - \sigma I \rVert_F}{\sigma \sqrt{N + C}}

        Computed in float64 (no cancellation: the difference is formed before the norm).

        Returns
        -------
        (depth,) float64 numpy.ndarray; 0 at initialization.
        """
        xp = self.backend.xp
        distances = []
        for layer in self.layers:
            difference = layer.W.astype(np.float64)  # a copy
            difference.reshape(-1)[::self.width + 1] -= self.sigma  # the diagonal
            distances.append(xp.sqrt((difference * difference).sum()))
        return to_numpy(xp.stack(distances)) / (self.sigma * math.sqrt(self.width))

    # ------------------------------------------------------------------ loss and backward
    def _forward_and_loss(self, x, y):
        """``(loss, logits, dlogits, caches)``; ``dlogits`` is (n, C) for "last", (L, n, C) for "all"."""
        if self.loss_layers == "last":
            return super()._forward_and_loss(x, y)
        logits, caches = self.forward_train(x)
        labels = self.backend.asarray(y)
        check_labels(logits, labels)
        n, n_layers = logits.shape[0], self.depth
        scores = self._workspace.get("layer_logits", n_layers, (n_layers, n, self.n_classes))
        for level in range(1, n_layers):  # z^level is in the input of layer level + 1
            scores[level - 1] = caches[level][0][:, self.n_features:]
        scores[n_layers - 1] = logits
        dscores = self._workspace.get("dlayer_logits", n_layers, scores.shape)
        cross_entropy = self.backend.kernels.softmax_cross_entropy
        total = sum(cross_entropy(scores[i], labels, dscores[i]) for i in range(n_layers))
        dscores *= 1.0 / n_layers
        return total / n_layers, logits, dscores, caches

    def backward(self, dlogits, caches, return_input_grad: bool = False):
        r"""Back-propagate the gradient of the class scores through every layer.

        Parameters
        ----------
        dlogits : (n_batch, n_classes) or (depth, n_batch, n_classes) float array
            :math:`\partial C/\partial z^L` alone (the other class scores do not enter the loss), or
            :math:`\partial C/\partial z^l` for every layer (entry ``l - 1``).
        caches : from :meth:`forward_train`
        return_input_grad : bool

        Returns
        -------
        grads : list of [dW, db], shaped like :attr:`params` (``db`` is zero when ``bias=False``)
        dx : (n_batch, n_features) array :math:`\partial C/\partial x`, only when ``return_input_grad``

        Step buffers on the numba and cupy backends (see :meth:`tinyid.layers.MLP.backward`).
        The recursion, with :math:`\delta^l = \partial C/\partial u^l` and layer ``l``'s own backward
        :math:`\delta^{l-1} = (\delta^l \odot \phi'^l) (W^l)^\top`:

        .. math::
            \delta^L = [0_N,\ \partial C/\partial z^L],\qquad
            \delta^{l-1} \mathrel{+}= [0_N,\ \partial C/\partial z^{l-1}]\ (l - 1 \ge 1),\qquad
            \frac{\partial C}{\partial x} = a\, \delta^0_{[:, :N]} .
        """
        return super().backward(dlogits, caches, return_input_grad)

    def _backward_layers(self, dlogits, caches, return_input_grad: bool, sgd_lr: "float | None" = None,
                         stop: int = 0):
        """Yield ``(i, [dW_i, db_i], d)`` from the top layer down (see :meth:`MLP._backward_layers`).

        ``d`` is :math:`\\partial C/\\partial u^i`, with the class-score gradient of :math:`z^i` added, and for
        ``i == 0`` (only when ``return_input_grad``) :math:`\\partial C/\\partial x`.
        """
        n_batch = caches[0][0].shape[0]
        n_layers, n_features = self.depth, self.n_features
        per_layer = getattr(dlogits, "ndim", None) == 3
        expected = (n_layers, n_batch, self.n_classes) if per_layer else (n_batch, self.n_classes)
        if tuple(getattr(dlogits, "shape", ())) != expected:
            raise ValueError(f"dlogits must have shape ({n_batch}, {self.n_classes}) or "
                             f"({n_layers}, {n_batch}, {self.n_classes}), got {tuple(getattr(dlogits, 'shape', ()))}")
        d = self._workspace.get("dtop", n_layers, (n_batch, self.width))
        d[:, :n_features] = 0
        d[:, n_features:] = dlogits[n_layers - 1] if per_layer else dlogits
        for i in range(n_layers - 1, stop - 1, -1):
            d, grads = self.layers[i].backward(d, caches[i], self._workspace, i,
                                               need_input_grad=i > stop or return_input_grad, sgd_lr=sgd_lr)
            if not self.bias:
                grads[1][...] = 0
            if i > stop and per_layer:
                d[:, n_features:] += dlogits[i - 1]
            elif i == 0 and d is not None:
                d = d[:, :n_features] * self.input_scale
            yield i, grads, d

    # ------------------------------------------------------------------ parameters
    def _check_params(self, host_params, what: str) -> None:
        super()._check_params(host_params, what)
        if not self.bias and any(np.any(np.asarray(b) != 0) for _, b in host_params):
            raise ValueError(f"{what} have nonzero biases, but this ClassChannelMLP has bias=False "
                             f"(its biases are fixed at zero)")

    @property
    def n_params(self) -> int:
        """Number of trained scalar parameters (the weights, plus the biases when ``bias=True``)."""
        return sum(layer.W.size + (layer.b.size if self.bias else 0) for layer in self.layers)

    # ------------------------------------------------------------------ config and checkpoints
    def config(self) -> dict[str, Any]:
        """JSON-able description of the architecture (what :meth:`load` rebuilds)."""
        return {
            "class": "ClassChannelMLP",
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "depth": self.depth,
            "sigma": self.sigma,
            "activation": self.activation.to_config(),
            "bias": self.bias,
            "input_scale": self.input_scale,
            "loss_layers": self.loss_layers,
            "sizes": list(self.sizes),
            "seed": self.seed,
            "dtype": self.dtype,
        }

    @classmethod
    def from_checkpoint(cls, header: dict, arrays: dict, backend=None,
                        source: str = "checkpoint") -> "ClassChannelMLP":
        """Rebuild a model from a checkpoint's header and arrays (see :meth:`tinyid.layers.MLP.load`)."""
        config = header.get("model")
        if not isinstance(config, dict) or config.get("class") != "ClassChannelMLP":
            held = config.get("class") if isinstance(config, dict) else None
            raise CheckpointError(f"{source} does not hold a ClassChannelMLP"
                                  + (f" (it holds a {held})" if isinstance(held, str) else ""))
        try:
            model = cls(config["n_features"], config["n_classes"], config["depth"], config["sigma"],
                        config["activation"], bias=config["bias"], input_scale=config["input_scale"],
                        loss_layers=config["loss_layers"], seed=config["seed"], backend=backend,
                        dtype=config["dtype"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source} has an unusable model config: {exc!r}") from None
        model._assign_from_arrays(arrays, source)
        return model

    def __repr__(self) -> str:
        return (f"ClassChannelMLP(n_features={self.n_features}, n_classes={self.n_classes}, depth={self.depth}, "
                f"sigma={self.sigma}, activation={self.activation.name!r}, bias={self.bias}, "
                f"loss_layers={self.loss_layers!r}, backend={self.backend.name!r}, dtype={self.dtype!r}, "
                f"n_params={self.n_params})")
