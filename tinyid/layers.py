"""Dense layers and the multilayer perceptron, forward and backward written by hand.

Notation follows Glorot & Bengio (2010): a layer maps its input :math:`z` to

.. math:: s = z W + b, \\qquad y = \\phi(s),

with ``W`` of shape ``(n_in, n_out)`` and ``z`` of shape ``(n_batch, n_in)``. Backward, given
:math:`\\partial C/\\partial y`,

.. math::
    \\frac{\\partial C}{\\partial s} = \\frac{\\partial C}{\\partial y} \\odot \\phi'(s),\\quad
    \\frac{\\partial C}{\\partial W} = z^\\top \\frac{\\partial C}{\\partial s},\\quad
    \\frac{\\partial C}{\\partial b} = \\sum_{\\text{batch}} \\frac{\\partial C}{\\partial s},\\quad
    \\frac{\\partial C}{\\partial z} = \\frac{\\partial C}{\\partial s} W^\\top .

No autograd: every derivative is written here. Gradients are returned, never accumulated into
hidden state, so calling ``backward`` twice gives the same answer.
"""
from __future__ import annotations

import importlib
import math
import os
from typing import Any, Sequence

import numpy as np

from tinyid import activations as _activations
from tinyid import init as _init
from tinyid.backend import Backend, get_backend, to_numpy
from tinyid.checkpoint import CheckpointError, load_npz, save_npz
from tinyid.losses import check_labels

__all__ = ["Dense", "MLP", "Parameters", "Workspace", "MODEL_CLASSES", "model_class"]

_DTYPES = {"float32": np.float32, "float64": np.float64}


def _dtype_name(dtype) -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in _DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return name


class Workspace:
    """The arrays one training step writes, by role, layer index and shape.

    With ``reuse=True`` (the numba and cupy backends) the same buffer comes back for the same key,
    so after the first step a training step allocates no new arrays; with ``reuse=False`` (the
    NumPy reference, and every inference call) each request is a fresh array, so results are never
    overwritten behind the caller's back.
    """

    def __init__(self, xp, dtype, reuse: bool):
        self.xp, self.dtype, self.reuse = xp, dtype, reuse
        self._buffers: dict = {}

    def get(self, role: str, index: int, shape: tuple):
        """An uninitialized array of ``shape`` for ``(role, index)``."""
        if not self.reuse:
            return self.xp.empty(shape, self.dtype)
        key = (role, index, shape)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = self.xp.empty(shape, self.dtype)
        return buffer

    @property
    def nbytes(self) -> int:
        """Bytes held by reused buffers."""
        return sum(buffer.nbytes for buffer in self._buffers.values())


class Dense:
    """One fully connected layer ``y = phi(z W + b)``.

    The matrix products go to BLAS/cuBLAS (``xp.matmul``); what surrounds them (bias, activation,
    activation backward, bias gradient) goes to the backend's kernel set, so this one piece of code
    runs the NumPy reference, the Numba CPU kernels and the CUDA kernels alike.

    Parameters
    ----------
    W : (n_in, n_out) float array
    b : (n_out,) float array
    activation : str, dict or Activation
        Anything :func:`tinyid.activations.get` accepts; ``"linear"`` for a logits layer.
    backend : str or Backend, optional
        Whose kernels run; by default ``"cupy"`` for CuPy arrays and ``"numpy"`` otherwise.
    """

    def __init__(self, W, b, activation="linear", backend=None):
        if W.ndim != 2 or b.shape != (W.shape[1],):
            raise ValueError(f"Dense needs W of shape (n_in, n_out) and b of shape (n_out,), "
                             f"got {tuple(W.shape)} and {tuple(b.shape)}")
        self.W = W
        self.b = b
        self.activation = _activations.get(activation)
        if backend is None:
            backend = "cupy" if type(W).__module__.startswith("cupy") else "numpy"
        self.backend = get_backend(backend)

    @property
    def n_in(self) -> int:
        return self.W.shape[0]

    @property
    def n_out(self) -> int:
        return self.W.shape[1]

    def _workspace(self, workspace):
        return workspace if workspace is not None else Workspace(self.backend.xp, self.W.dtype, reuse=False)

    def forward(self, z, workspace: "Workspace | None" = None, index: int = 0, keep_derivative: bool = True):
        """Compute the layer.

        Parameters
        ----------
        z : (n_batch, n_in) float array
        workspace, index : where the outputs go (fresh arrays when omitted)
        keep_derivative : bool
            Also store :math:`\\phi'(s)` for :meth:`backward` (not needed for inference).

        Returns
        -------
        y : (n_batch, n_out) float array
            :math:`\\phi(zW + b)`.
        cache : tuple
            ``(z, phi'(zW + b))``, what :meth:`backward` needs (the derivative is None for a
            linear layer, whose derivative is 1).
        """
        ws = self._workspace(workspace)
        s = self.backend.xp.matmul(z, self.W, out=ws.get("s", index, (z.shape[0], self.n_out)))
        needs_derivative = keep_derivative and self.activation.name != "linear"
        derivative = ws.get("derivative", index, s.shape) if needs_derivative else None
        self.backend.kernels.bias_activation(s, self.b, self.activation, s, derivative)
        return s, (z, derivative)

    def backward(self, dy, cache, workspace: "Workspace | None" = None, index: int = 0,
                 need_input_grad: bool = True, sgd_lr: "float | None" = None):
        """Back-propagate ``dy = dC/dy`` through the layer.

        Parameters
        ----------
        dy : (n_batch, n_out) float array (not modified)
        cache : the tuple returned by :meth:`forward`
        workspace, index : where the outputs go (fresh arrays when omitted)
        need_input_grad : bool
            Skip the product :math:`\\partial C/\\partial s\\, W^\\top` when False (first layer).
        sgd_lr : float, optional
            Apply plain SGD to ``W`` inside the weight-gradient product,
            :math:`W \\leftarrow W - \\eta z^\\top \\partial s`, when the kernel set can
            (``sgd_weight_update``); ``dW`` is then returned as None. The input gradient is computed
            first, with the old weights.

        Returns
        -------
        dz : (n_batch, n_in) float array or None
        grads : [dW (n_in, n_out) or None, db (n_out,)]
        """
        z, derivative = cache
        ws = self._workspace(workspace)
        xp = self.backend.xp
        kernels = self.backend.kernels
        ds = ws.get("ds", index, dy.shape)
        db = ws.get("db", index, (self.n_out,))
        kernels.activation_backward(dy, derivative, ds, db)
        dz = xp.matmul(ds, self.W.T, out=ws.get("dz", index, z.shape)) if need_input_grad else None
        fold = getattr(kernels, "sgd_weight_update", None)
        if sgd_lr is not None and fold is not None and fold(self.W, z, ds, sgd_lr):
            return dz, [None, db]
        dW = xp.matmul(z.T, ds, out=ws.get("dW", index, (self.n_in, self.n_out)))
        return dz, [dW, db]

    def __repr__(self) -> str:
        return f"Dense({self.n_in} -> {self.n_out}, {self.activation.name})"


class Parameters(list):
    """``[[W1, b1], ..., [WL, bL]]`` plus the :attr:`backend` the arrays live on (optimizers read it)."""

    def __init__(self, groups, backend: Backend):
        super().__init__(groups)
        self.backend = backend


def _sizes(sizes) -> list[int]:
    try:
        out = [int(n) for n in sizes]
    except (TypeError, ValueError):
        raise ValueError(f"sizes must be a list of positive integers [n_in, h1, ..., n_out], got {sizes!r}") from None
    if len(out) < 2 or any(n < 1 for n in out) or any(int(n) != n for n in sizes):
        raise ValueError(f"sizes must hold at least two positive integers [n_in, ..., n_out], got {sizes!r}")
    return out


class MLP:
    """A multilayer perceptron ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with linear logits on top.

    Hidden layers apply ``activation``; the last layer is linear (its output are the logits fed
    to :func:`tinyid.losses.softmax_cross_entropy`).

    Parameters
    ----------
    sizes : sequence of int
        ``[n_in, h1, ..., n_classes]``; at least two entries.
    activation : str, dict or Activation
        Hidden activation, anything :func:`tinyid.activations.get` accepts (e.g. ``"tanh"``,
        ``{"name": "leaky_relu", "slope": 0.2}``).
    init : str, (str, dict), dict or callable
        Weight initializer for every layer, anything :func:`tinyid.init.get` accepts, e.g.
        ``"he_normal"`` or ``("identity", {"sigma": 1.0})``. Called as ``f(n_in, n_out, rng)``.
    first_init, last_init : same as ``init``, optional
        A different initializer for the first or the last (logits) layer.
    bias_init : float
        Constant every bias starts at.
    seed : int, optional
        Seed of the host :class:`numpy.random.Generator` the weights are drawn from, layer by
        layer, in float64 and then cast, so a seed gives the same network on every backend and
        dtype. ``None`` draws a fresh seed and records it in :attr:`seed`.
    backend : str or Backend, optional
        ``"numpy"`` (the reference), ``"numba"`` (fused CPU kernels) or ``"cupy"`` (GPU); the default
        of :func:`tinyid.use` when omitted.
    dtype : {"float32", "float64"}

    Attributes
    ----------
    layers : list of Dense
    backend : Backend
    params : list of [W, b]
        The live parameter arrays (assigning copies new values into them).
    """

    def __init__(self, sizes: Sequence[int], activation="tanh", init="xavier_uniform", *, first_init=None,
                 last_init=None, bias_init: float = 0.0, seed: "int | None" = None, backend=None,
                 dtype="float32"):
        self.sizes = _sizes(sizes)
        self.activation = _activations.get(activation)
        self.dtype = _dtype_name(dtype)
        self.backend: Backend = get_backend(backend)
        bias_init = float(bias_init)
        if not math.isfinite(bias_init):
            raise ValueError(f"bias_init must be a finite number, got {bias_init}")
        self.bias_init = bias_init
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = int(seed)
        self._init_specs = {"init": init, "first_init": first_init, "last_init": last_init}
        initializers = self._layer_initializers()  # validates every spec before drawing
        rng = np.random.default_rng(self.seed)
        n_layers = len(self.sizes) - 1
        self.layers = []
        for i, (n_in, n_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            W = np.asarray(initializers[i](n_in, n_out, rng), dtype=np.float64)
            if W.shape != (n_in, n_out):
                raise ValueError(f"initializer for layer {i} returned shape {W.shape}, expected {(n_in, n_out)}")
            b = np.full(n_out, self.bias_init)
            act = self.activation if i < n_layers - 1 else "linear"
            self.layers.append(Dense(self.backend.asarray(W, self.dtype), self.backend.asarray(b, self.dtype), act,
                                     backend=self.backend))
        self._workspace = Workspace(self.backend.xp, self.dtype, reuse=self.backend.reuse_buffers)

    def _layer_initializers(self) -> list:
        specs = self._init_specs
        main = _init.get(specs["init"])
        out = [main] * (len(self.sizes) - 1)
        if specs["first_init"] is not None:
            out[0] = _init.get(specs["first_init"])
        if specs["last_init"] is not None:
            out[-1] = _init.get(specs["last_init"])
        return out

    # ------------------------------------------------------------------ forward / backward
    def _input(self, x):
        x = self.backend.asarray(x, self.dtype)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"input must have shape (n_batch, {self.sizes[0]}), got {tuple(x.shape)}")
        return x

    def forward_train(self, x):
        """Forward pass keeping what backward needs.

        Parameters
        ----------
        x : (n_batch, n_in) array (NumPy input is moved to the model's backend and dtype)

        Returns
        -------
        logits : (n_batch, n_out) array
        caches : list with one cache per layer

        On the numba and cupy backends both live in step buffers that the next training call
        overwrites; on the NumPy reference they are fresh arrays.
        """
        out = self._input(x)
        caches = []
        for i, layer in enumerate(self.layers):
            out, cache = layer.forward(out, self._workspace, i)
            caches.append(cache)
        return out, caches

    def forward(self, x):
        """Logits, shape (n_batch, n_out), on the model's backend (a fresh array)."""
        return self.layer_outputs(x)[-1]

    __call__ = forward

    def layer_outputs(self, x) -> list:
        """Every layer's output ``[y^1, ..., y^L]`` (the last is the logits); each (n_batch, sizes[l+1]), fresh."""
        out = self._input(x)
        outputs = []
        for layer in self.layers:
            out, _ = layer.forward(out, keep_derivative=False)
            outputs.append(out)
        return outputs

    def backward(self, dlogits, caches, return_input_grad: bool = False):
        """Back-propagate ``dC/dlogits`` through every layer.

        Returns
        -------
        grads : list of [dW, db], shaped like :attr:`params`
        dx : (n_batch, n_in) array, only when ``return_input_grad``

        On the numba and cupy backends the gradients live in step buffers that the next training
        call overwrites (copy them to keep them); on the NumPy reference they are fresh arrays.
        """
        grads = [None] * len(self.layers)
        dx = None
        for i, layer_grads, dx in self._backward_layers(dlogits, caches, return_input_grad):
            grads[i] = layer_grads
        return (grads, dx) if return_input_grad else grads

    def _backward_layers(self, dlogits, caches, return_input_grad: bool, sgd_lr: "float | None" = None,
                         stop: int = 0):
        """Back-propagate from the top, yielding ``(i, [dW_i, db_i], dC/dz_i)`` as soon as layer ``i`` is done.

        With ``sgd_lr``, weights may be updated inside the backward pass (see :meth:`Dense.backward`).
        Layers below ``stop`` are skipped, and layer ``stop`` computes no input gradient (frozen layers).
        """
        d = dlogits
        for i in range(len(self.layers) - 1, stop - 1, -1):
            d, grads = self.layers[i].backward(d, caches[i], self._workspace, i,
                                               need_input_grad=i > stop or return_input_grad, sgd_lr=sgd_lr)
            yield i, grads, d

    @property
    def frozen_layers(self) -> int:
        """How many of the lowest layers :meth:`train_step` leaves unchanged (0: train all; "freeze training").

        Frozen layers get no gradient at all: the backward pass of a training step stops above them, which
        is the compute freezing saves. :meth:`backward` and :meth:`loss_and_grads` still return every
        gradient. The top layer always trains. Not saved in checkpoints.
        """
        return getattr(self, "_frozen_layers", 0)

    @frozen_layers.setter
    def frozen_layers(self, k: int) -> None:
        n = len(self.layers)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < n:
            raise ValueError(f"frozen_layers must be an integer in [0, {n - 1}] (the top layer always trains), "
                             f"got {k!r}")
        self._frozen_layers = int(k)

    def _forward_and_loss(self, x, y):
        """Forward pass, loss and ``dC/dlogits``: ``(loss, logits, dlogits, caches)``."""
        logits, caches = self.forward_train(x)
        labels = self.backend.asarray(y)
        check_labels(logits, labels)
        dlogits = self._workspace.get("dlogits", len(self.layers), logits.shape)
        loss = self.backend.kernels.softmax_cross_entropy(logits, labels, dlogits)
        return loss, logits, dlogits, caches

    def loss_and_grads(self, x, y, return_logits: bool = False):
        """Mean softmax cross-entropy on ``(x, y)`` and its gradient for every parameter.

        Parameters
        ----------
        x : (n_batch, n_in) array
        y : (n_batch,) integer labels

        Returns
        -------
        loss : float
        grads : list of [dW, db], shaped like :attr:`params` (step buffers on numba and cupy, see
            :meth:`backward`)
        logits : (n_batch, n_out) array, only when ``return_logits``
        """
        loss, logits, dlogits, caches = self._forward_and_loss(x, y)
        grads = self.backward(dlogits, caches)
        return (loss, grads, logits) if return_logits else (loss, grads)

    def check_optimizer(self, optimizer) -> None:
        """Raise ValueError unless ``optimizer`` updates exactly this model's live parameters, in order."""
        params = optimizer.params
        if len(params) != 2 * len(self.layers) or any(
                params[2 * i] is not layer.W or params[2 * i + 1] is not layer.b for i, layer in enumerate(self.layers)):
            raise ValueError("the optimizer does not hold this model's parameters: build it on model.params "
                             "(after any model.to(...))")

    def train_step(self, x, y, optimizer) -> tuple:
        """One training step: forward, loss, backward, and the optimizer update of every parameter.

        The same as ``optimizer.step(self.loss_and_grads(x, y)[1])``, but each layer is updated right
        after its gradients (and the input gradient, which needs the old weights) are computed, while
        its weights are still in cache; on the fast backends nothing is allocated. On the numba
        backend, plain SGD (no momentum, no weight decay) is folded into the weight-gradient product,
        which changes the weights' rounding, not the update.

        Parameters
        ----------
        x : (n_batch, n_in) array
        y : (n_batch,) integer labels
        optimizer : tinyid.optim.Optimizer
            Built on this model's :attr:`params`.

        Returns
        -------
        loss : float
            The minibatch loss before the update. When it is not finite, nothing is updated.
        logits : (n_batch, n_out) array
            Before the update (a step buffer on the fast backends).
        """
        self.check_optimizer(optimizer)
        loss, logits, dlogits, caches = self._forward_and_loss(x, y)
        if not math.isfinite(loss):
            return loss, logits
        optimizer.start_step()
        # Plain SGD can go inside the weight-gradient product (one BLAS call instead of a product and
        # an update pass) where the kernel set offers it.
        plain_sgd = getattr(optimizer, "is_plain_sgd", False)
        for i, (dW, db), _ in self._backward_layers(dlogits, caches, return_input_grad=False,
                                                    sgd_lr=optimizer.lr if plain_sgd else None,
                                                    stop=self.frozen_layers):
            if dW is not None:
                optimizer.update_param(2 * i, dW)
            optimizer.update_param(2 * i + 1, db)
        return loss, logits

    def predict(self, x):
        """Predicted class indices, shape (n_batch,), on the model's backend."""
        return self.forward(x).argmax(axis=1)

    # ------------------------------------------------------------------ parameters
    @property
    def params(self) -> Parameters:
        """``[[W1, b1], ..., [WL, bL]]``, the live arrays (optimizers update them in place)."""
        return Parameters([[layer.W, layer.b] for layer in self.layers], self.backend)

    @params.setter
    def params(self, new_params) -> None:
        self._check_params([[to_numpy(a) for a in group] for group in new_params], "new params")
        for layer, (W, b) in zip(self.layers, new_params):
            layer.W[...] = self.backend.asarray(W, self.dtype)
            layer.b[...] = self.backend.asarray(b, self.dtype)

    def _check_params(self, host_params, what: str) -> None:
        expected = [[(layer.n_in, layer.n_out), (layer.n_out,)] for layer in self.layers]
        try:
            got = [[tuple(a.shape) for a in group] for group in host_params]
        except (TypeError, AttributeError):
            raise ValueError(f"{what} must be a list of [W, b] arrays like model.params") from None
        if got != expected:
            raise ValueError(f"{what} have shapes {got}, this model needs {expected}")
        for group in host_params:
            for a in group:
                if a.dtype.kind != "f":
                    raise ValueError(f"{what} must be float arrays, got dtype {a.dtype}")

    @property
    def n_params(self) -> int:
        """Number of scalar parameters."""
        return sum(layer.W.size + layer.b.size for layer in self.layers)

    def to(self, backend) -> "MLP":
        """Move every parameter to ``backend`` (``"numpy"``, ``"numba"`` or ``"cupy"``) in place; returns self.

        Create optimizers after moving: the parameter arrays are replaced.
        """
        target = get_backend(backend)
        for layer in self.layers:
            layer.W = target.asarray(layer.W, self.dtype)
            layer.b = target.asarray(layer.b, self.dtype)
            layer.backend = target
        self.backend = target
        self._workspace = Workspace(target.xp, self.dtype, reuse=target.reuse_buffers)
        return self

    # ------------------------------------------------------------------ diagnosis
    def first_nonfinite(self, x) -> "str | None":
        """Where non-finite values first appear: a parameter, or a layer's output on input ``x``.

        Returns a readable description such as ``"layer 3 (Dense(100 -> 100, tanh)) output"``,
        or None when everything is finite.
        """
        xp = self.backend.xp
        for i, layer in enumerate(self.layers):
            for name, a in (("W", layer.W), ("b", layer.b)):
                if not bool(xp.isfinite(a).all()):
                    return f"layer {i + 1} ({layer!r}) parameter {name}"
        out = self._input(x)
        if not bool(xp.isfinite(out).all()):
            return "the input batch"
        with np.errstate(all="ignore"):  # overflow is what we are looking for, not a reason to warn
            for i, layer in enumerate(self.layers):
                out, _ = layer.forward(out, keep_derivative=False)
                if not bool(xp.isfinite(out).all()):
                    return f"layer {i + 1} ({layer!r}) output"
        return None

    # ------------------------------------------------------------------ config and checkpoints
    def config(self) -> dict[str, Any]:
        """JSON-able description of the architecture (what :meth:`load` rebuilds)."""
        return {
            "class": "MLP",
            "sizes": list(self.sizes),
            "activation": self.activation.to_config(),
            **{key: None if spec is None else _init.to_config(spec) for key, spec in self._init_specs.items()},
            "bias_init": self.bias_init,
            "seed": self.seed,
            "dtype": self.dtype,
        }

    def param_arrays(self) -> dict[str, np.ndarray]:
        """Host copies of the parameters named ``param/<layer>/W`` and ``param/<layer>/b``."""
        arrays = {}
        for i, layer in enumerate(self.layers):
            arrays[f"param/{i}/W"] = to_numpy(layer.W)
            arrays[f"param/{i}/b"] = to_numpy(layer.b)
        return arrays

    def save(self, path) -> "os.PathLike":
        """Write config and parameters to ``path`` (``.npz``, no pickle); returns the path written."""
        return save_npz(path, {"kind": "model", "model": self.config()}, self.param_arrays())

    @classmethod
    def from_checkpoint(cls, header: dict, arrays: dict, backend=None, source: str = "checkpoint") -> "MLP":
        """Rebuild a model from a checkpoint's header and arrays (see :meth:`load`).

        The config's ``"class"`` picks the class (:data:`MODEL_CLASSES`): ``MLP.from_checkpoint`` of a
        subclass's checkpoint (e.g. a :class:`tinyid.class_channel.ClassChannelMLP`) returns that
        subclass; a subclass refuses a checkpoint of a class that is not itself or one of its subclasses.
        """
        config = header.get("model")
        if not isinstance(config, dict) or not isinstance(config.get("class"), str):
            raise CheckpointError(f"{source} does not hold an MLP")
        if config["class"] != "MLP":
            target = model_class(config["class"], source)
            if not issubclass(target, cls):
                raise CheckpointError(f"{source} holds a {config['class']}, not a {cls.__name__}")
            return target.from_checkpoint(header, arrays, backend, source)
        try:
            model = cls(config["sizes"], activation=config["activation"], init=("identity", {}),
                        bias_init=config["bias_init"], seed=config["seed"], backend=backend,
                        dtype=config["dtype"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source} has an unusable model config: {exc}") from None
        # the weights are overwritten below; keep the init that made them for the record
        model._init_specs = {k: config.get(k) for k in ("init", "first_init", "last_init")}
        model._assign_from_arrays(arrays, source)
        return model

    @classmethod
    def load(cls, path, backend=None) -> "MLP":
        """Rebuild a model saved with :meth:`save` (or a trainer checkpoint) on ``backend``."""
        header, arrays = load_npz(path)
        return cls.from_checkpoint(header, arrays, backend, source=repr(str(path)))

    def load_weights(self, path) -> None:
        """Copy the parameters stored in ``path`` into this model.

        Raises :class:`~tinyid.checkpoint.CheckpointError` and changes nothing when the file is
        unreadable or holds another architecture.
        """
        header, arrays = load_npz(path)
        config = header.get("model")
        if not isinstance(config, dict):
            raise CheckpointError(f"{str(path)!r} does not hold a model")
        mine = self.config()
        for key in ("class", "sizes", "activation"):
            if config.get(key) != mine[key]:
                raise CheckpointError(f"{str(path)!r} holds a model with {key} {config.get(key)!r}, "
                                      f"this model has {mine[key]!r}")
        self._assign_from_arrays(arrays, repr(str(path)))

    def _assign_from_arrays(self, arrays: dict, source: str) -> None:
        try:
            host = [[arrays[f"param/{i}/W"], arrays[f"param/{i}/b"]] for i in range(len(self.layers))]
        except KeyError as exc:
            raise CheckpointError(f"{source} lacks parameter {exc.args[0]!r}") from None
        try:
            self._check_params(host, f"parameters in {source}")
        except ValueError as exc:
            raise CheckpointError(str(exc)) from None
        self.params = host

    def __repr__(self) -> str:
        return (f"MLP(sizes={self.sizes}, activation={self.activation.name!r}, "
                f"backend={self.backend.name!r}, dtype={self.dtype!r}, n_params={self.n_params})")


#: The model classes a checkpoint's config ``"class"`` may name, as ``"module:attribute"``; imported on
#: first use, so loading a checkpoint never depends on which tinyid modules the caller imported.
MODEL_CLASSES: dict[str, str] = {
    "MLP": "tinyid.layers:MLP",
    "ClassChannelMLP": "tinyid.class_channel:ClassChannelMLP",
}


def model_class(name: str, source: str = "checkpoint") -> type:
    """The model class registered under ``name`` in :data:`MODEL_CLASSES`.

    Raises :class:`~tinyid.checkpoint.CheckpointError` naming ``source`` when ``name`` is unknown.
    """
    location = MODEL_CLASSES.get(name)
    if location is None:
        raise CheckpointError(f"{source} holds a model of class {name!r}, which tinyid does not know; "
                              f"known classes: {', '.join(MODEL_CLASSES)}")
    module_name, attribute = location.split(":")
    return getattr(importlib.import_module(module_name), attribute)
