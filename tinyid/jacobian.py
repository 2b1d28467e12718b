r"""The input-output Jacobian of an MLP, written by hand: products, exact matrices, spectra.

A net of :math:`L` dense layers maps an example :math:`x = z^0` (a row vector, as everywhere in tinyid) to

.. math:: s^l = z^{l-1} W^l + b^l, \qquad z^l = \phi_l(s^l), \qquad l = 1, \dots, L,

with :math:`W^l` of shape :math:`(n_{l-1}, n_l)`. Written for one example in *column* convention (the
usual way to write a Jacobian, :math:`dz^l = J^l\, dz^{l-1}` with :math:`dz` a column), layer :math:`l`
has the Jacobian

.. math::

    J^l = \frac{\partial z^l}{\partial z^{l-1}} = D^l W^{l\top} \in \mathbb{R}^{n_l \times n_{l-1}},
    \qquad D^l = \operatorname{diag}\big(\phi_l'(s^l)\big),

and the whole net the product

.. math:: J = \frac{\partial z^L}{\partial x} = D^L W^{L\top} D^{L-1} W^{L-1\top} \cdots D^1 W^{1\top}
    \in \mathbb{R}^{n_L \times n_0} .

(The logits layer of an :class:`~tinyid.layers.MLP` is linear: :math:`D^L = I`.) Nothing here uses
autograd: one forward pass stores every :math:`D^l` as the array ``phi'(s^l)`` of shape
``(n_batch, n_l)``, and then

* :func:`jvp` pushes tangents forward, :math:`t \mapsto (t W^l) \odot \phi'(s^l)` (forward mode, :math:`Jv`);
* :func:`vjp` pulls cotangents back, :math:`g \mapsto (g \odot \phi'(s^l))\, W^{l\top}` (reverse mode,
  :math:`J^\top u`), exactly what :meth:`~tinyid.layers.Dense.backward` does to :math:`\partial C/\partial y`;
* :func:`input_output_jacobian` forms :math:`J` for every example with batched matrix products, from the
  narrower end of the net;
* :func:`singular_values`, :func:`spectrum_moments` (Hutchinson) and :func:`top_singular_values`
  (randomized block Krylov) read its spectrum, the last two with :func:`jvp`/:func:`vjp` only, so they
  scale to 100-layer nets of width 794 where forming :math:`J` is too costly;
* :func:`layer_singular_values` and :func:`mean_layer_singular_values` give the spectrum of each layer's own
  :math:`J^l`, the quantity behind Glorot & Bengio's (2010) observation that the mean singular value of the
  layer Jacobian is about 0.5 with the standard init and about 0.8 with the normalized init.

Every function takes ``model``, an :class:`~tinyid.layers.MLP`, any object whose ``layers`` attribute is a
list of :class:`~tinyid.layers.Dense`, a list or tuple of :class:`~tinyid.layers.Dense`, or a single one,
and an input batch ``x`` of shape ``(n_batch, n_in)`` that is moved to the layers' backend and dtype and
given to the first layer as it is: for a model that transforms its input before the first layer (e.g.
:class:`tinyid.class_channel.ClassChannelMLP` pads it), pass the transformed input
(``model.padded_input(x)``), and the Jacobian is taken with respect to it.
Array products run on the model's array module (NumPy or CuPy); the small dense factorizations (SVD, QR)
run on the host in float64. The forward passes here use fresh arrays, never a model's training buffers.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from tinyid.backend import array_module, to_numpy
from tinyid.layers import Dense

__all__ = [
    "jvp",
    "vjp",
    "input_output_jacobian",
    "singular_values",
    "spectrum_moments",
    "top_singular_values",
    "layer_singular_values",
    "mean_layer_singular_values",
    "identity_stack",
    "identity_spectrum_measured",
    "PROBES",
]

#: Probe distributions :func:`spectrum_moments` accepts.
PROBES = ("rademacher", "gaussian")

# Tangent blocks of at most this many entries are pushed through the net at once (bounds the memory of
# spectrum_moments and layer_singular_values for large batches; 2**22 float64 entries are 32 MiB).
_BLOCK_ENTRIES = 2**22


# ---------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------


def _layers(model: Any) -> list:
    """The list of :class:`Dense` layers of ``model``, checked to chain and to share one backend and dtype."""
    if isinstance(model, Dense):
        layers = [model]
    else:
        candidate = getattr(model, "layers", model)
        if isinstance(candidate, (str, bytes)) or not isinstance(candidate, (list, tuple)):
            raise TypeError(f"model must be an MLP, a model with a .layers list of Dense, or a list of Dense layers, "
                            f"got {type(model).__name__}")
        layers = list(candidate)
    if not layers:
        raise ValueError("model has no layers: the Jacobian needs at least one Dense layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Dense):
            raise TypeError(f"every layer must be a tinyid.layers.Dense, layer {i} is {type(layer).__name__}")
    first = layers[0]
    for i, (below, above) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        if below.n_out != above.n_in:
            raise ValueError(f"layers do not chain: layer {i - 1} has {below.n_out} outputs but layer {i} takes "
                             f"{above.n_in} inputs")
        if above.W.dtype != first.W.dtype or above.backend.xp is not first.backend.xp:
            raise ValueError(f"layer {i} lives on {above.backend.name}/{above.W.dtype} but layer 0 on "
                             f"{first.backend.name}/{first.W.dtype}: move the whole model to one backend and dtype")
    return layers


def _batch(layers: list, x: Any, name: str = "x", width: "int | None" = None):
    """``x`` moved to the layers' backend and dtype, checked to be ``(n_batch, width)`` with n_batch >= 1."""
    width = layers[0].n_in if width is None else width
    backend = layers[0].backend
    a = backend.asarray(x, layers[0].W.dtype)
    if a.ndim != 2 or a.shape[1] != width or a.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n_batch, {width}) with n_batch >= 1, got {tuple(a.shape)}")
    return a


def _count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _max_examples(max_examples: Any) -> "int | None":
    return None if max_examples is None else _count("max_examples", max_examples)


# ---------------------------------------------------------------------------------------------------
# The linearization: one forward pass, then products with J and J^T
# ---------------------------------------------------------------------------------------------------


def _linearize(layers: list, x) -> list:
    r"""Run the net on ``x`` and return ``[phi_1'(s^1), ..., phi_L'(s^L)]``, each ``(n_batch, n_l)``.

    An entry is None for a linear layer (:math:`D^l = I`). The layers write into fresh arrays (no workspace),
    so a model's training buffers are never touched.
    """
    derivatives = []
    z = x
    for layer in layers:
        z, (_, derivative) = layer.forward(z, keep_derivative=True)
        derivatives.append(derivative)
    return derivatives


def _times(rows, matrix):
    """``rows @ matrix`` for rows stacked as ``(..., n)``: one 2-D BLAS product, not one per stacked block."""
    xp = array_module(matrix)
    flat = xp.ascontiguousarray(rows).reshape(-1, rows.shape[-1])
    return xp.matmul(flat, matrix).reshape(rows.shape[:-1] + (matrix.shape[1],))


def _push_forward(layers: list, derivatives: list, tangents):
    r"""Forward mode: ``tangents`` ``(..., n_batch, n_0)`` -> ``(..., n_batch, n_L)``, each row times :math:`J^\top`.

    .. math:: t^l = (t^{l-1} W^l) \odot \phi_l'(s^l), \qquad t^0 = v
    """
    t = tangents
    for layer, derivative in zip(layers, derivatives):
        t = _times(t, layer.W)
        if derivative is not None:
            t *= derivative
    return t


def _pull_back(layers: list, derivatives: list, cotangents):
    r"""Reverse mode: ``cotangents`` ``(..., n_batch, n_L)`` -> ``(..., n_batch, n_0)``, each row times :math:`J`.

    .. math:: g^{l-1} = (g^l \odot \phi_l'(s^l))\, W^{l\top}, \qquad g^L = u
    """
    g = cotangents
    for layer, derivative in zip(reversed(layers), reversed(derivatives)):
        if derivative is not None:
            g = g * derivative
        g = _times(g, layer.W.T)
    return g


def jvp(model: Any, x: Any, v: Any):
    r"""Jacobian-vector products, forward mode: :math:`J(x_b)\, v_b` for every example :math:`b`.

    .. math::

        t^0 = v_b, \qquad t^l = (t^{l-1} W^l) \odot \phi_l'(s^l_b), \qquad J(x_b) v_b = t^L .

    Parameters
    ----------
    model : MLP, model with ``.layers``, list of Dense, or Dense
    x : (n_batch, n_in) float array
        Points the Jacobian is taken at.
    v : (n_batch, n_in) float array
        One tangent (input direction) per example.

    Returns
    -------
    (n_batch, n_out) array on the model's backend and dtype
        Row ``b`` is :math:`J(x_b) v_b`, the directional derivative of the output at :math:`x_b` along
        :math:`v_b`.
    """
    layers = _layers(model)
    x = _batch(layers, x)
    v = _batch(layers, v, "v")
    if v.shape[0] != x.shape[0]:
        raise ValueError(f"v must have one row per example of x: x has {x.shape[0]} rows, v has {v.shape[0]}")
    return _push_forward(layers, _linearize(layers, x), v)


def vjp(model: Any, x: Any, u: Any):
    r"""Vector-Jacobian products, reverse mode: :math:`J(x_b)^\top u_b` for every example :math:`b`.

    .. math::

        g^L = u_b, \qquad g^{l-1} = \big(g^l \odot \phi_l'(s^l_b)\big)\, W^{l\top}, \qquad J(x_b)^\top u_b = g^0 .

    This is back-propagation with :math:`\partial C/\partial z^L = u_b`.

    Parameters
    ----------
    model : MLP, model with ``.layers``, list of Dense, or Dense
    x : (n_batch, n_in) float array
    u : (n_batch, n_out) float array
        One cotangent (output direction) per example.

    Returns
    -------
    (n_batch, n_in) array on the model's backend and dtype
    """
    layers = _layers(model)
    x = _batch(layers, x)
    u = _batch(layers, u, "u", layers[-1].n_out)
    if u.shape[0] != x.shape[0]:
        raise ValueError(f"u must have one row per example of x: x has {x.shape[0]} rows, u has {u.shape[0]}")
    return _pull_back(layers, _linearize(layers, x), u)


# ---------------------------------------------------------------------------------------------------
# The exact Jacobian and its singular values (small nets)
# ---------------------------------------------------------------------------------------------------


def _jacobian(layers: list, derivatives: list, n_batch: int):
    r"""The stacked Jacobians ``(n_batch, n_out, n_in)`` of a linearization; see :func:`input_output_jacobian`."""
    xp = layers[0].backend.xp
    acc = None  # (n_batch, rows, cols), or (rows, cols) while every layer met so far is linear
    if layers[0].n_in <= layers[-1].n_out:
        # forward accumulation, A^l = D^l W^l^T A^{l-1}: n_l n_{l-1} n_in multiply-adds per example and layer
        for layer, derivative in zip(layers, derivatives):
            acc = layer.W.T if acc is None else xp.matmul(layer.W.T, acc)
            if derivative is not None:
                acc = derivative[:, :, None] * acc
    else:
        # reverse accumulation, G^{l-1} = G^l D^l W^l^T: n_l n_{l-1} n_out multiply-adds per example and layer
        for layer, derivative in zip(reversed(layers), reversed(derivatives)):
            if acc is None:
                acc = layer.W.T if derivative is None else derivative[:, :, None] * layer.W.T
            else:
                if derivative is not None:
                    acc = acc * derivative[:, None, :]
                acc = xp.matmul(acc, layer.W.T)
    if acc.ndim == 2:  # every layer is linear: one matrix serves the whole batch
        acc = xp.broadcast_to(acc, (n_batch,) + acc.shape)
    return xp.ascontiguousarray(acc)


def input_output_jacobian(model: Any, x: Any):
    r"""The exact Jacobian :math:`\partial z^L / \partial x` of the network output at every example.

    .. math::

        J(x_b) = D^L_b W^{L\top} D^{L-1}_b W^{L-1\top} \cdots D^1_b W^{1\top}, \qquad
        D^l_b = \operatorname{diag}\big(\phi_l'(s^l_b)\big),

    in column convention: ``J[b] @ dx`` is the change of the output of example ``b`` for a small input
    change ``dx``. The product is accumulated with batched matrix products from the narrower end: from the
    input (:math:`A^l = D^l W^{l\top} A^{l-1}`) when :math:`n_{in} \le n_{out}`, else from the output
    (:math:`G^{l-1} = G^l D^l W^{l\top}`), costing :math:`n_\text{batch} \min(n_{in}, n_{out})
    \sum_l n_{l-1} n_l` multiply-adds. Meant for small nets; use :func:`jvp`, :func:`vjp`,
    :func:`spectrum_moments` or :func:`top_singular_values` for big ones.

    Parameters
    ----------
    model : MLP, model with ``.layers``, list of Dense, or Dense
    x : (n_batch, n_in) float array

    Returns
    -------
    J : (n_batch, n_out, n_in) array on the model's backend and dtype
    """
    layers = _layers(model)
    x = _batch(layers, x)
    return _jacobian(layers, _linearize(layers, x), x.shape[0])


def singular_values(model: Any, x: Any) -> np.ndarray:
    r"""The singular values of the exact input-output Jacobian :math:`J(x_b)` of every example.

    .. math:: J(x_b) = U_b \operatorname{diag}(\sigma_{b,1} \ge \dots \ge \sigma_{b,k}) V_b^\top,
        \qquad k = \min(n_{in}, n_{out})

    The squares :math:`\sigma_{b,j}^2` are the eigenvalues of :math:`J J^\top`; when :math:`n_{out} > n_{in}`,
    :math:`J J^\top` has :math:`n_{out} - n_{in}` more eigenvalues, all 0.

    Parameters
    ----------
    model : MLP, model with ``.layers``, list of Dense, or Dense
    x : (n_batch, n_in) float array

    Returns
    -------
    (n_batch, min(n_in, n_out)) float64 numpy.ndarray
        Descending along each row; computed on the host in float64 from :func:`input_output_jacobian`.
    """
    jac = to_numpy(input_output_jacobian(model, x)).astype(np.float64)
    return np.linalg.svd(jac, compute_uv=False)


# ---------------------------------------------------------------------------------------------------
# Randomized spectra (deep and wide nets): jvp and vjp only, J is never formed
# ---------------------------------------------------------------------------------------------------


def _generator(seed: Any) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(_count("seed", seed, 0))


def _probe_block(layers: list, n_probes: int, n_batch: int) -> int:
    """How many probes to push through the net at once so a tangent block holds at most ``_BLOCK_ENTRIES``."""
    widest = max(max(layer.n_in, layer.n_out) for layer in layers)
    return max(1, min(n_probes, _BLOCK_ENTRIES // (n_batch * widest)))


def spectrum_moments(model: Any, x: Any, n_probes: int = 32, seed: Any = 0, probe: str = "rademacher") -> dict:
    r"""Hutchinson estimates of the first two moments of the eigenvalues of :math:`J J^\top`, with standard errors.

    For every example :math:`b` the :math:`n = n_{out}` eigenvalues :math:`\lambda_{b,1..n}` of the
    :math:`n_{out} \times n_{out}` matrix :math:`J_b J_b^\top` (the squared singular values of :math:`J_b`,
    plus zeros when :math:`n_{out} > n_{in}`) are pooled over the batch; their moments are

    .. math::

        m_1 = \frac{1}{B} \sum_b \frac{\operatorname{tr}(J_b J_b^\top)}{n}, \qquad
        m_2 = \frac{1}{B} \sum_b \frac{\operatorname{tr}\big((J_b J_b^\top)^2\big)}{n}, \qquad
        \sigma^2 = m_2 - m_1^2 .

    This normalisation by :math:`n = n_{out}` is the one of
    :func:`tinyid.theory.jacobian_spectrum_moments`, whose ``(mean, variance)`` are :math:`(m_1, \sigma^2)`
    of a wide square net (mean 1 at criticality). Neither trace needs :math:`J`: with probes
    :math:`r \in \mathbb{R}^{n_{out}}`, :math:`E[r r^\top] = I` (Rademacher :math:`\pm 1`, or standard
    Gaussian), one :func:`vjp` and one :func:`jvp` give :math:`a = J^\top r` and :math:`c = J a = J J^\top r`, and

    .. math::

        E\big[\|a\|^2\big] = E\big[r^\top J J^\top r\big] = \operatorname{tr}(J J^\top), \qquad
        E\big[\|c\|^2\big] = E\big[r^\top (J J^\top)^2 r\big] = \operatorname{tr}\big((J J^\top)^2\big) .

    Each probe ``k`` (an independent :math:`r` for every example) gives one batch-averaged sample
    :math:`m_1^{(k)}, m_2^{(k)}`; the estimates are their means over the ``n_probes`` probes and the standard
    errors their sample standard deviations over :math:`\sqrt{n_\text{probes}}`. They measure the probe noise
    only (the batch ``x`` is held fixed). Rademacher probes are exact when :math:`J J^\top` is diagonal, e.g.
    an isometry. ``variance`` carries a bias of about ``mean_se**2`` from squaring :math:`m_1`.

    Parameters
    ----------
    model : MLP, model with ``.layers``, list of Dense, or Dense
    x : (n_batch, n_in) float array
    n_probes : int, default 32
        Probe vectors per example, >= 1 (standard errors need >= 2; they are nan for 1).
    seed : int >= 0 or numpy.random.Generator
        The probes are drawn on the host, so a seed gives the same probes on every backend.
    probe : {"rademacher", "gaussian"}

    Returns
    -------
    dict of float
        ``mean`` (:math:`m_1`), ``second`` (:math:`m_2`), ``variance`` (:math:`m_2 - m_1^2`), ``mean_se``,
        ``second_se``, ``variance_se`` (delta method from the per-probe samples), ``n_probes``,
        ``n_eigenvalues`` (:math:`n = n_{out}`).
    """
    layers = _layers(model)
    x = _batch(layers, x)
    n_probes = _count("n_probes", n_probes)
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    rng = _generator(seed)
    backend, dtype = layers[0].backend, layers[0].W.dtype
    xp = backend.xp
    derivatives = _linearize(layers, x)
    n_batch, n_out = x.shape[0], layers[-1].n_out
    first, second = np.empty(n_probes), np.empty(n_probes)
    block = _probe_block(layers, n_probes, n_batch)
    for start in range(0, n_probes, block):
        stop = min(start + block, n_probes)
        shape = (stop - start, n_batch, n_out)
        r = rng.integers(0, 2, size=shape) * 2.0 - 1.0 if probe == "rademacher" else rng.standard_normal(shape)
        a = _pull_back(layers, derivatives, backend.asarray(r, dtype))  # J^T r, (probes, n_batch, n_in)
        c = _push_forward(layers, derivatives, a)  # J J^T r, (probes, n_batch, n_out)
        first[start:stop] = to_numpy(xp.sum(a * a, axis=-1, dtype=xp.float64)).mean(axis=1) / n_out
        second[start:stop] = to_numpy(xp.sum(c * c, axis=-1, dtype=xp.float64)).mean(axis=1) / n_out
    m1, m2 = float(first.mean()), float(second.mean())
    if n_probes > 1:
        cov = np.cov(np.stack([first, second]), ddof=1) / n_probes
        mean_se, second_se = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
        # d(m2 - m1^2) = dm2 - 2 m1 dm1
        variance_se = math.sqrt(max(cov[1, 1] + 4.0 * m1 * m1 * cov[0, 0] - 4.0 * m1 * cov[0, 1], 0.0))
    else:
        mean_se = second_se = variance_se = math.nan
    return {
        "mean": m1,
        "second": m2,
        "variance": m2 - m1 * m1,
        "mean_se": mean_se,
        "second_se": second_se,
        "variance_se": variance_se,
        "n_probes": n_probes,
        "n_eigenvalues": n_out,
    }


def _orthonormal_columns(block, backend, dtype):
    r"""Orthonormalize, per example, the vectors of a ``(width, n_batch, n)`` block: reduced QR on the host.

    Example ``b``'s vectors ``block[:, b, :]`` are the columns of an ``(n, width)`` matrix :math:`Y_b`;
    :math:`Y_b = Q_b R_b` and the columns of :math:`Q_b` come back in the same layout. The QR runs in
    float64 on the host: the matrices are thin and small next to the products with :math:`J`.
    """
    host = np.ascontiguousarray(to_numpy(block).astype(np.float64).transpose(1, 2, 0))  # (n_batch, n, width)
    q, _ = np.linalg.qr(host)
    return backend.asarray(np.ascontiguousarray(q.transpose(2, 0, 1)), dtype)


def top_singular_values(model: Any, x: Any, k: "int | None" = None, n_iter: int = 4, seed: Any = 0,
                        oversample: int = 8, method: str = "krylov") -> np.ndarray:
    r"""The ``k`` largest singular values of :math:`J(x_b)` for every example, by randomized block iterations.

    The randomized range finders of Halko, Martinsson & Tropp (2011), with :func:`jvp` and :func:`vjp` in place
    of products with a stored matrix, for every example at once. With :math:`p = \min(k + \text{oversample},
    n_{in}, n_{out})` Gaussian start vectors :math:`\Omega \in \mathbb{R}^{n_{in} \times p}`:

    .. math::

        Q_0 = \operatorname{qr}(J \Omega), \qquad
        Q_i = \operatorname{qr}\big(J\, \operatorname{qr}(J^\top Q_{i-1})\big), \quad i = 1, \dots, n_\text{iter},

    and a basis :math:`Q` of the left singular subspace:

    * ``"subspace"``: :math:`Q = Q_{n_\text{iter}}`, subspace (power) iteration, Halko et al. algorithm 4.4;
      the error falls like :math:`(\sigma_{p+1}/\sigma_j)^{2 n_\text{iter} + 1}`, slowly when the spectrum is
      flat (near isometry).
    * ``"krylov"`` (default): :math:`Q = \operatorname{qr}([Q_0, Q_1, \dots, Q_{n_\text{iter}}])`, the whole
      block Krylov space :math:`\operatorname{span}\{J\Omega, (JJ^\top) J\Omega, \dots\}` (Musco & Musco 2015),
      which converges much faster on flat spectra: on a 30-layer width-200 orthogonal tanh net with
      ``n_iter=4`` the relative error of the top 6 is 1e-3, against 2e-2 for ``"subspace"``.

    Then :math:`\hat\sigma_{1..k}` are the top :math:`k` singular values of :math:`Q^\top J` (rows
    :math:`(J^\top q_j)^\top`, one :func:`vjp` each). By Rayleigh-Ritz each estimate is a lower bound,
    :math:`\hat\sigma_j \le \sigma_j`. Cost per example, in products with :math:`J` or :math:`J^\top` (each
    as cheap as a forward pass): :math:`p(2 n_\text{iter} + 2)` for ``"subspace"``,
    :math:`p(3 n_\text{iter} + 2)` for ``"krylov"``. The QRs and the final SVD run on the host in float64.

    Parameters
    ----------
    model : MLP, model with ``.layers``, list of Dense, or Dense
    x : (n_batch, n_in) float array
    k : int, optional
        How many singular values, ``1 <= k <= min(n_in, n_out)``; by default ``min(6, n_in, n_out)``.
    n_iter : int, default 4
        Iterations, >= 1.
    seed : int >= 0 or numpy.random.Generator
        Start vectors are drawn on the host, the same on every backend.
    oversample : int, default 8
        Extra start vectors beyond ``k``, >= 0.
    method : {"krylov", "subspace"}

    Returns
    -------
    (n_batch, k) float64 numpy.ndarray
        Descending along each row.
    """
    layers = _layers(model)
    x = _batch(layers, x)
    n_in, n_out = layers[0].n_in, layers[-1].n_out
    k = min(6, n_in, n_out) if k is None else _count("k", k)
    if k > min(n_in, n_out):
        raise ValueError(f"k must be at most min(n_in, n_out) = {min(n_in, n_out)}, got {k}")
    n_iter = _count("n_iter", n_iter)
    oversample = _count("oversample", oversample, 0)
    if method not in ("krylov", "subspace"):
        raise ValueError(f"method must be 'krylov' or 'subspace', got {method!r}")
    rng = _generator(seed)
    backend, dtype = layers[0].backend, layers[0].W.dtype
    derivatives = _linearize(layers, x)
    width = min(k + oversample, n_in, n_out)
    omega = backend.asarray(rng.standard_normal((width, x.shape[0], n_in)), dtype)
    q = _orthonormal_columns(_push_forward(layers, derivatives, omega), backend, dtype)
    blocks = [q]
    for _ in range(n_iter):
        q = _orthonormal_columns(_pull_back(layers, derivatives, q), backend, dtype)
        q = _orthonormal_columns(_push_forward(layers, derivatives, q), backend, dtype)
        blocks.append(q)
    if method == "krylov":  # one orthonormal basis of the whole Krylov space (at most n_out columns)
        q = _orthonormal_columns(backend.xp.concatenate(blocks, axis=0), backend, dtype)
    # rows of Q_b^T J_b are (J_b^T q_j)^T: (columns, n_batch, n_in) -> (n_batch, columns, n_in)
    projected = to_numpy(_pull_back(layers, derivatives, q)).astype(np.float64).transpose(1, 0, 2)
    return np.linalg.svd(projected, compute_uv=False)[:, :k]


# ---------------------------------------------------------------------------------------------------
# Each layer's own Jacobian (Glorot & Bengio 2010)
# ---------------------------------------------------------------------------------------------------


def layer_singular_values(model: Any, x: Any, max_examples: "int | None" = None) -> list:
    r"""Singular values of every layer's own Jacobian :math:`J^l_b = D^l_b W^{l\top}` at every example.

    .. math::

        J^l_b = \frac{\partial z^l}{\partial z^{l-1}}\Big|_{x_b} = \operatorname{diag}\big(\phi_l'(s^l_b)\big)
        W^{l\top} \in \mathbb{R}^{n_l \times n_{l-1}}

    (for a linear layer, such as an MLP's logits layer, :math:`J^l = W^{l\top}` at every example). Glorot &
    Bengio (2010) look at the mean of these singular values at initialization (see
    :func:`mean_layer_singular_values`). SVDs run on the host in float64.

    Parameters
    ----------
    model : MLP, model with ``.layers``, list of Dense, or Dense
    x : (n_batch, n_in) float array
    max_examples : int, optional
        Use only the first ``max_examples`` rows of ``x`` (each example costs one SVD per layer).

    Returns
    -------
    list of L float64 numpy.ndarray
        Entry ``l - 1`` has shape ``(n_examples, min(n_{l-1}, n_l))``, descending along each row.
    """
    layers = _layers(model)
    x = _batch(layers, x)
    limit = _max_examples(max_examples)
    if limit is not None:
        x = x[:limit]
    n_examples = x.shape[0]
    out = []
    for layer, derivative in zip(layers, _linearize(layers, x)):
        w_t = to_numpy(layer.W).astype(np.float64).T  # (n_l, n_{l-1})
        if derivative is None:
            out.append(np.tile(np.linalg.svd(w_t, compute_uv=False), (n_examples, 1)))
            continue
        d = to_numpy(derivative).astype(np.float64)
        block = max(1, _BLOCK_ENTRIES // w_t.size)
        out.append(np.concatenate([np.linalg.svd(d[i:i + block, :, None] * w_t, compute_uv=False)
                                   for i in range(0, n_examples, block)]))
    return out


def mean_layer_singular_values(model: Any, x: Any, max_examples: "int | None" = None) -> np.ndarray:
    r"""The mean singular value of each layer's Jacobian :math:`D^l W^{l\top}`, averaged over examples.

    .. math:: \bar\sigma^l = \frac{1}{B\,k_l} \sum_{b=1}^{B} \sum_{j=1}^{k_l} \sigma_j\big(D^l_b W^{l\top}\big),
        \qquad k_l = \min(n_{l-1}, n_l)

    Glorot & Bengio (2010) report about 0.5 for the standard init :math:`U[-1/\sqrt n, 1/\sqrt n]` and about
    0.8 for the normalized init (tanh, 5 hidden layers of 1000 units, at initialization).

    Parameters
    ----------
    model, x, max_examples
        As in :func:`layer_singular_values`.

    Returns
    -------
    (L,) float64 numpy.ndarray
    """
    return np.array([values.mean() for values in layer_singular_values(model, x, max_examples)])


# ---------------------------------------------------------------------------------------------------
# Identity-initialized stacks: the Bernoulli spectrum, measured
# ---------------------------------------------------------------------------------------------------


def identity_stack(width: int, depth: int, sigma: float, activation: Any, backend: Any = None,
                   dtype: str = "float64") -> list:
    r"""``depth`` Dense layers :math:`z \mapsto \phi(z\, \sigma I)`, square, no bias, every one with ``activation``.

    The network of :func:`tinyid.theory.identity_spectrum`: unlike an :class:`~tinyid.layers.MLP`, whose
    last layer is linear, every layer here applies :math:`\phi`, so :math:`J = \sigma^L \prod_l D^l`.
    """
    from tinyid.backend import get_backend

    width, depth = _count("width", width), _count("depth", depth)
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    be = get_backend(backend)
    W = be.asarray(sigma * np.eye(width), dtype)
    b = be.asarray(np.zeros(width), dtype)
    return [Dense(W, b, activation, backend=be) for _ in range(depth)]


def identity_spectrum_measured(sigma: float, q0: float, depth: int, activation: Any, width: int = 64,
                               n_examples: int = 16, seed: Any = 0, backend: Any = None) -> dict:
    r"""Measure the spectrum that :func:`tinyid.theory.identity_spectrum` predicts, on a real identity stack.

    Draws ``n_examples`` inputs :math:`x \sim N(0, q_0 I)` of width ``width``, takes the exact singular
    values :math:`\sigma_j` of :math:`J = \partial z^L / \partial x` of :func:`identity_stack` (float64) and
    counts as nonzero those above :math:`10^{-6} \sigma^L`: the theory says every :math:`\sigma_j^2` is
    :math:`\sigma^{2L}` or 0 when :math:`\phi'` takes only the values 0 and 1.

    Returns
    -------
    dict
        ``alpha`` (fraction of nonzero singular values over all examples and units), ``alpha_se`` (its binomial
        standard error, :math:`\sqrt{\alpha(1-\alpha)/N}` over the :math:`N` = ``n_examples * width`` values;
        the units are independent because the stack acts elementwise), ``eigenvalue`` (the mean nonzero
        eigenvalue :math:`\sigma_j^2` of :math:`J J^\top`, NaN when all are 0), ``eigenvalue_spread`` (the
        largest relative deviation of a nonzero eigenvalue from :math:`\sigma^{2L}`), and the theory's
        ``predicted_alpha``, ``predicted_eigenvalue``.
    """
    from tinyid import theory

    predicted_alpha, predicted_eigenvalue = theory.identity_spectrum(sigma, q0, depth, activation)
    n_examples = _count("n_examples", n_examples)
    x = _generator(seed).normal(0.0, math.sqrt(q0), size=(n_examples, _count("width", width)))
    values = singular_values(identity_stack(width, depth, sigma, activation, backend), x).ravel()
    scale = float(sigma) ** depth
    nonzero = values[values > 1e-6 * scale]
    alpha = nonzero.size / values.size
    eigen = nonzero**2
    return {
        "alpha": alpha,
        "alpha_se": math.sqrt(alpha * (1.0 - alpha) / values.size),
        "eigenvalue": float(eigen.mean()) if eigen.size else math.nan,
        "eigenvalue_spread": float(np.max(np.abs(eigen / predicted_eigenvalue - 1.0))) if eigen.size else math.nan,
        "predicted_alpha": predicted_alpha,
        "predicted_eigenvalue": predicted_eigenvalue,
    }
