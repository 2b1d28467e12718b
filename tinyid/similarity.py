r"""Representation similarity: how alike are two layers' activations on the same datapoints?

Each layer is described by its activations on a fixed set of probe datapoints, an array
``X : (n_datapoints, n_neurons)`` (rows are datapoints, the orientation of the rest of tinyid; the
google/svcca code uses the transpose). Column :math:`j` is neuron :math:`j`'s response vector over
the data (the view of Raghu et al. 2017). Two layers are compared through their activations on the
*same* datapoints in the *same* order, so the numbers of rows must match; the numbers of neurons may
differ.

Two families, both computed from the centred activations :math:`X_c = X - \mathbf{1}\mu^\top`:

- **canonical correlation** (:func:`cca`, :func:`svcca`, :func:`pwcca`): find directions
  :math:`a, b` with the largest correlation between :math:`X_c a` and :math:`Y_c b`, then the next
  ones orthogonal to those, ... These measures are invariant to *every* invertible linear map of
  either side, which is also why they say nothing when a layer has about as many neurons as there
  are datapoints (every direction can then be matched exactly; a :class:`SimilarityWarning` says so).
- **centred kernel alignment** (:func:`linear_cka` and its debiased form, :func:`rbf_cka`,
  Kornblith et al. 2019): compare the datapoint-by-datapoint similarity (Gram) matrices of the two
  layers. Invariant to orthogonal maps and isotropic scaling only, and meaningful with more neurons
  than datapoints.

:func:`similarity_matrix` compares every layer of one list with every layer of another (the
layer-versus-layer heatmaps of the SVCCA paper), factoring each layer once.

Every function accepts NumPy or CuPy arrays (both arguments on the same device) of any real dtype
and returns Python floats and NumPy arrays. Where a computation runs in float64 whatever the input
dtype, its docstring says so.

References: Raghu, Gilmer, Yosinski & Sohl-Dickstein 2017 (SVCCA); Morcos, Raghu & Bengio 2018
(PWCCA); Kornblith, Norouzi, Lee & Hinton 2019 (CKA); Song, Smola, Gretton, Bedo & Borgwardt 2012
(the unbiased HSIC estimator).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyid.backend import array_module, to_numpy

__all__ = [
    "cca",
    "svcca",
    "SVCCAResult",
    "pwcca",
    "linear_cka",
    "rbf_cka",
    "similarity_matrix",
    "neuron_correlations",
    "SimilarityWarning",
    "METRICS",
    "VARIANCE_RULES",
    "GRAM_STACK_MAX_BYTES",
    "EIGEN_ROUTE_MAX_KEEP",
]

#: The ``metric`` names :func:`similarity_matrix` accepts.
METRICS = ("linear_cka", "debiased_cka", "rbf_cka", "cca", "svcca", "pwcca")

#: How :func:`svcca` measures the variance a set of singular directions explains.
VARIANCE_RULES = ("squared", "linear")

#: Most bytes :func:`similarity_matrix` spends on stacked Gram matrices at once; above it, the layers are
#: processed in chunks (and some Gram matrices recomputed).
GRAM_STACK_MAX_BYTES = 2 * 2**30

#: Largest ``keep`` for which :func:`svcca` (squared rule) reduces a layer through the eigendecomposition of
#: its Gram matrix instead of an SVD.
EIGEN_ROUTE_MAX_KEEP = 0.999

_METRIC_KEYWORDS = {
    "linear_cka": (),
    "debiased_cka": (),
    "rbf_cka": ("sigma_frac",),
    "cca": ("eps",),
    "svcca": ("keep", "variance"),
    "pwcca": (),
}


class SimilarityWarning(UserWarning):
    """A similarity was computed where it carries little or no information (see the message)."""


# ---------------------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------------------


def _activations(a: Any, name: str):
    """``a`` as a validated 2-D real array of its own module (NumPy or CuPy); not copied when possible."""
    xp = array_module(a)
    if xp is np:
        try:
            a = np.asarray(a)
        except (ValueError, TypeError) as err:
            raise TypeError(f"{name} must be a 2-D (n_datapoints, n_neurons) array, got {type(a).__name__} "
                            f"that does not convert to one ({err})") from err
    dtype = np.dtype(a.dtype)
    if dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n_datapoints, n_neurons) array, got shape {tuple(a.shape)}")
    n_datapoints, n_neurons = a.shape
    if n_datapoints < 2:
        raise ValueError(f"{name} has {n_datapoints} datapoint(s) (rows); a similarity needs at least 2")
    if n_neurons < 1:
        raise ValueError(f"{name} has no neurons (0 columns)")
    if dtype.kind in "iub":
        a = a.astype(xp.float64)
    elif dtype.itemsize < 4:  # float16: BLAS has no half-precision products on the CPU
        a = a.astype(xp.float32)
    elif dtype.itemsize > 8:  # long double: neither BLAS nor LAPACK takes it
        a = a.astype(xp.float64)
    if not bool(xp.isfinite(a).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _pair(X: Any, Y: Any):
    """Validate two activation arrays for one comparison; returns ``(X, Y, xp)``."""
    X = _activations(X, "X")
    Y = _activations(Y, "Y")
    xp = array_module(X)
    if array_module(Y) is not xp:
        raise TypeError(f"X is a {xp.__name__} array but Y is a {array_module(Y).__name__} array; "
                        "move both to the same device (tinyid.to_numpy, or cupy.asarray)")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} datapoints (rows) but Y has {Y.shape[0]}; both must hold the "
                         "activations on the same datapoints, in the same order (arrays are "
                         "(n_datapoints, n_neurons))")
    return X, Y, xp


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _real(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def _eps(eps: Any) -> float:
    eps = _real("eps", eps)
    if eps < 0.0:
        raise ValueError(f"eps (the ridge added to each covariance matrix) must be >= 0, got {eps!r}")
    return eps


def _keep(keep: Any) -> float:
    keep = _real("keep", keep)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep (the fraction of variance the kept singular directions explain) must be in "
                         f"(0, 1], got {keep!r}")
    return keep


def _variance_rule(variance: Any) -> str:
    if not isinstance(variance, str) or variance not in VARIANCE_RULES:
        raise ValueError(f"variance must be one of {', '.join(map(repr, VARIANCE_RULES))}, got {variance!r}")
    return variance


def _sigma_frac(sigma_frac: Any) -> float:
    sigma_frac = _real("sigma_frac", sigma_frac)
    if sigma_frac <= 0.0:
        raise ValueError(f"sigma_frac (the RBF width as a fraction of the median distance) must be > 0, "
                         f"got {sigma_frac!r}")
    return sigma_frac


def _needs_four(n_datapoints: int, what: str) -> None:
    if n_datapoints < 4:
        raise ValueError(f"{what} needs at least 4 datapoints (its estimator divides by n (n - 3)), "
                         f"got {n_datapoints}")


# ---------------------------------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------------------------------


def _working_dtype(*arrays) -> np.dtype:
    """float64 if any input is float64, else float32 (the precision of the products of plain CKA)."""
    return np.result_type(np.float32, *(a.dtype for a in arrays))


def _centred(X, dtype, name: str):
    r"""``X - mean(X, axis=0)`` in ``dtype``; the mean is accumulated in float64.

    .. math:: X_c = X - \mathbf{1}\,\mu^\top, \qquad \mu_j = \frac{1}{n}\sum_i X_{ij}

    A layer whose centred values are all within the rounding of the subtraction
    (:math:`\max|X_c| \le 4\varepsilon\max|\mu|`, :math:`\varepsilon` of the input dtype) is constant:
    a ValueError.
    """
    xp = array_module(X)
    mean = X.mean(axis=0, keepdims=True, dtype=xp.float64)
    centred = X.astype(dtype, copy=True)
    centred -= mean.astype(dtype)
    peak = max(float(centred.max()), -float(centred.min()))
    if peak <= 4 * _input_eps(X.dtype) * float(xp.abs(mean).max()):
        raise ValueError(f"{name} is constant over the datapoints (every neuron has zero variance, up to rounding): "
                         "its similarity to anything is undefined")
    return centred


def _input_eps(input_dtype) -> float:
    """Machine epsilon of the input's dtype (float64's for integer inputs, which are exact)."""
    input_dtype = np.dtype(input_dtype)
    return float(np.finfo(input_dtype if input_dtype.kind == "f" else np.float64).eps)


def _sum_of_products(A, B) -> float:
    r""":math:`\langle A, B\rangle_F = \sum_{ij} A_{ij} B_{ij}`, accumulated in float64."""
    xp = array_module(A)
    if A.dtype == np.float64 and B.dtype == np.float64:
        return float(xp.vdot(A.ravel(), B.ravel()))
    return float(xp.sum(A * B, dtype=xp.float64))


def _rank_tolerance(n_datapoints: int, n_neurons: int, input_dtype) -> float:
    """Relative size below which a singular value counts as zero (NumPy's ``matrix_rank`` rule)."""
    return max(n_datapoints, n_neurons) * _input_eps(input_dtype)


@dataclass
class _Subspace:
    r"""The thin SVD :math:`X_c = U S V^\top` of one layer's centred activations, null directions dropped.

    ``u : (n_datapoints, rank)`` float64 with orthonormal columns (it spans the column space of
    :math:`X_c`), ``s : (rank,)`` descending, ``vt : (rank, n_neurons)`` (None where only the span is
    needed: SVCCA's reductions); ``n_neurons`` of the layer.
    """

    u: Any
    s: Any
    vt: Any
    n_neurons: int

    @property
    def rank(self) -> int:
        return int(self.s.shape[0])

    def leading(self, k: int) -> "_Subspace":
        """The top ``k`` singular directions (the SVD reduction of SVCCA)."""
        return _Subspace(self.u[:, :k], self.s[:k], self.vt[:k], self.n_neurons)


def _subspace(X, name: str) -> _Subspace:
    r"""SVD of the centred activations in float64, keeping :math:`s_i > \tau s_1`.

    :math:`\tau = \max(n, p)\,\varepsilon` with :math:`\varepsilon` the machine epsilon of the input
    dtype (float64 for integers), the rule of ``numpy.linalg.matrix_rank``: directions below it are
    rounding noise of the input, not signal, and CCA would otherwise correlate that noise.
    """
    xp = array_module(X)
    n_datapoints, n_neurons = X.shape
    u, s, vt = xp.linalg.svd(_centred(X, xp.float64, name), full_matrices=False)
    tolerance = _rank_tolerance(n_datapoints, n_neurons, X.dtype) * float(s[0])
    rank = int(xp.count_nonzero(s > tolerance))
    if rank == 0:
        raise ValueError(f"{name} is constant over the datapoints up to rounding: its similarity to anything "
                         "is undefined")
    return _Subspace(u[:, :rank], s[:rank], vt[:rank], n_neurons)


def _kept_directions(s, keep: float, variance: str) -> int:
    r"""Fewest leading singular directions whose share of the variance reaches ``keep``.

    .. math:: k = \min\Big\{k : \frac{\sum_{i\le k} w_i}{\sum_i w_i} \ge \text{keep}\Big\},
        \qquad w_i = s_i^2 \ (\text{"squared"}) \ \text{or}\ s_i \ (\text{"linear"})
    """
    s = to_numpy(s)
    weights = s * s if variance == "squared" else s
    explained = np.cumsum(weights) / weights.sum()
    # explained[-1] can round to just below 1, hence the cap at the rank
    return min(len(s), 1 + int(np.count_nonzero(explained < keep)))


def _ridge_factors(sub: _Subspace, eps: float, n_datapoints: int):
    r""":math:`d_i = s_i / \sqrt{s_i^2 + (n-1)\epsilon}`: how much of direction :math:`i` survives the ridge."""
    if eps == 0.0:
        return None
    xp = array_module(sub.s)
    return sub.s / xp.sqrt(sub.s * sub.s + (n_datapoints - 1) * eps)


def _whitened_cross_covariance(sx: _Subspace, sy: _Subspace, eps: float, n_datapoints: int):
    r""":math:`D_x U_x^\top U_y D_y` (:math:`D = I` without ridge), its singular values the canonical correlations."""
    M = sx.u.T @ sy.u
    dx, dy = _ridge_factors(sx, eps, n_datapoints), _ridge_factors(sy, eps, n_datapoints)
    if dx is not None:
        M = dx[:, None] * M * dy[None, :]
    return M


def _singular_values(M):
    """Singular values of ``M`` descending, clipped to [0, 1] (rounding can put one a few ulps above 1)."""
    xp = array_module(M)
    return xp.clip(xp.linalg.svd(M, compute_uv=False), 0.0, 1.0)


def _mean_singular_value(M) -> float:
    r"""Mean singular value of ``M``, through the eigenvalues of the smaller Gram matrix (twice as fast as an SVD).

    .. math:: \bar\sigma = \frac{1}{k}\sum_i \sqrt{\lambda_i(M^\top M)}

    The absolute error of each :math:`\sigma_i` is about :math:`\sqrt{\varepsilon_{64}} \approx 10^{-8}` for
    correlations near 0 (an eigenvalue :math:`\sigma^2` is accurate to :math:`\varepsilon\|M\|^2`), and
    :math:`\varepsilon/\sigma` elsewhere; used where only the mean is returned.
    """
    xp = array_module(M)
    gram = M.T @ M if M.shape[1] <= M.shape[0] else M @ M.T
    eigenvalues = xp.linalg.eigvalsh(gram)
    return float(xp.sqrt(xp.clip(eigenvalues, 0.0, 1.0)).mean())


def _cca_warning(n_datapoints: int, dims: list, neurons: list, stacklevel: int, check_neurons: bool) -> None:
    """Warn when CCA cannot tell the two sides apart (see :func:`cca`, Notes)."""
    messages = []
    if check_neurons:
        too_wide = [(side, p) for side, p in zip("XY", neurons) if p >= n_datapoints]
        for side, p in too_wide:
            messages.append(f"{side} has {p} neurons but there are only {n_datapoints} datapoints")
    forced = sum(dims) - (n_datapoints - 1)
    if forced > 0:
        messages.append(f"the two activation subspaces ({dims[0]} + {dims[1]} dimensions) cannot avoid each other "
                        f"in the {n_datapoints - 1} dimensions of centred data, so {forced} canonical "
                        f"correlation(s) are 1 whatever the data")
    if messages:
        warnings.warn("CCA is meaningless here: " + "; ".join(messages) + ". Reduce each layer to far fewer "
                      "directions than datapoints first (svcca does, with an SVD) or probe with more datapoints; "
                      "activations are (n_datapoints, n_neurons), transpose them if you passed "
                      "(n_neurons, n_datapoints) as google/svcca does. CKA stays meaningful here.",
                      SimilarityWarning, stacklevel=stacklevel + 1)


# ---------------------------------------------------------------------------------------------------
# CCA, SVCCA, PWCCA
# ---------------------------------------------------------------------------------------------------


def cca(X, Y, eps: float = 0.0, directions: bool = False):
    r"""Canonical correlations between two layers' activations on the same datapoints.

    Parameters
    ----------
    X : (n_datapoints, n_neurons_x) array
    Y : (n_datapoints, n_neurons_y) array
        Activations of the two layers (NumPy or CuPy, any real dtype; computed in float64).
    eps : float, default 0
        Ridge added to both covariance matrices (in the units of a neuron's variance).
    directions : bool, default False
        Also return the canonical weights.

    Returns
    -------
    rho : (n_components,) float64 NumPy array
        The canonical correlations, descending, in [0, 1]; ``n_components = min(rank_x, rank_y)``.
    weights_x : (n_neurons_x, n_components) float64 NumPy array
        Only with ``directions=True``: column :math:`i` is :math:`a_i`; the canonical variates are
        :math:`X_c a_i`, with unit variance (:math:`a_i^\top(\Sigma_{xx} + \epsilon I)a_i = 1`).
    weights_y : (n_neurons_y, n_components) float64 NumPy array
        Only with ``directions=True``: likewise :math:`b_i`, signed so that
        :math:`a_i^\top\Sigma_{xy}b_i = \rho_i \ge 0`.

    Notes
    -----
    With :math:`\Sigma_{xx} = X_c^\top X_c/(n-1)`, :math:`\Sigma_{xy} = X_c^\top Y_c/(n-1)`, ...

    .. math::
        \rho_i = \sigma_i\!\left((\Sigma_{xx}+\epsilon I)^{-1/2}\,\Sigma_{xy}\,(\Sigma_{yy}+\epsilon I)^{-1/2}\right)

    computed without forming a covariance matrix: with the thin SVDs :math:`X_c = U_x S_x V_x^\top`,
    :math:`Y_c = U_y S_y V_y^\top`,

    .. math::
        \rho_i = \sigma_i\!\left(D_x U_x^\top U_y D_y\right), \qquad
        D = \operatorname{diag}\frac{s_j}{\sqrt{s_j^2 + (n-1)\epsilon}}, \qquad
        a_i = V_x \operatorname{diag}\frac{\sqrt{n-1}}{\sqrt{s_j^2 + (n-1)\epsilon}}\, p_i,

    :math:`p_i` the left singular vectors (:math:`q_i`, right, give :math:`b_i`). Without ridge,
    :math:`\rho_i` are the cosines of the principal angles between the column spaces of :math:`X_c` and
    :math:`Y_c`. Squaring the condition number, as whitening a covariance matrix does, never happens.

    Rank-deficient layers (dead or duplicated neurons) are handled by dropping the singular directions
    with :math:`s_j \le \max(n, p)\,\varepsilon\, s_1`, :math:`\varepsilon` the machine epsilon of the
    input dtype (``numpy.linalg.matrix_rank``'s rule); only ``min(rank_x, rank_y)`` correlations exist.

    CCA is invariant to every invertible linear map of either layer. That makes it meaningless when a
    layer has as many neurons as datapoints, and more generally when ``rank_x + rank_y > n - 1``: two
    subspaces of the :math:`n-1` dimensional space of centred data then share
    ``rank_x + rank_y - (n - 1)`` dimensions, each a correlation of exactly 1. Both cases give a
    :class:`SimilarityWarning`.
    """
    X, Y, xp = _pair(X, Y)
    eps = _eps(eps)
    directions = _flag("directions", directions)
    n_datapoints = X.shape[0]
    sx, sy = _subspace(X, "X"), _subspace(Y, "Y")
    _cca_warning(n_datapoints, [sx.rank, sy.rank], [X.shape[1], Y.shape[1]], stacklevel=2, check_neurons=True)
    M = _whitened_cross_covariance(sx, sy, eps, n_datapoints)
    if not directions:
        return to_numpy(_singular_values(M)).astype(np.float64)
    P, sigma, Qt = xp.linalg.svd(M, full_matrices=False)
    rho = xp.clip(sigma, 0.0, 1.0)
    scale_x = math.sqrt(n_datapoints - 1) / xp.sqrt(sx.s * sx.s + (n_datapoints - 1) * eps)
    scale_y = math.sqrt(n_datapoints - 1) / xp.sqrt(sy.s * sy.s + (n_datapoints - 1) * eps)
    weights_x = sx.vt.T @ (scale_x[:, None] * P)
    weights_y = sy.vt.T @ (scale_y[:, None] * Qt.T)
    return tuple(to_numpy(a).astype(np.float64) for a in (rho, weights_x, weights_y))


@dataclass(frozen=True)
class SVCCAResult:
    """What :func:`svcca` found.

    Attributes
    ----------
    mean : float
        The SVCCA similarity: the mean of ``rho``.
    rho : (min(kept_x, kept_y),) float64 NumPy array
        Canonical correlations between the two reduced layers, descending.
    kept_x, kept_y : int
        How many singular directions of each layer the reduction kept.
    """

    mean: float
    rho: np.ndarray
    kept_x: int
    kept_y: int


def svcca(X, Y, keep: float = 0.99, variance: str = "squared") -> SVCCAResult:
    r"""SVCCA (Raghu et al. 2017): reduce each layer to its top singular directions, then CCA.

    Parameters
    ----------
    X : (n_datapoints, n_neurons_x) array
    Y : (n_datapoints, n_neurons_y) array
        Activations of the two layers (NumPy or CuPy, any real dtype; computed in float64).
    keep : float in (0, 1], default 0.99
        Fraction of each layer's variance the kept directions must explain (1 keeps every direction
        above the rank tolerance of :func:`cca`, so ``svcca(X, Y, keep=1).rho`` equals ``cca(X, Y)``).
    variance : {"squared", "linear"}, default "squared"
        How the variance of the leading directions is measured: ``"squared"`` sums squared singular
        values (the variance the directions actually explain); ``"linear"`` sums singular values, the
        rule of the public SVCCA tutorial code, which keeps more directions for the same ``keep``.

    Returns
    -------
    SVCCAResult
        ``.mean`` (the SVCCA similarity), ``.rho``, ``.kept_x``, ``.kept_y``.

    Notes
    -----
    With the thin SVD :math:`X_c = U S V^\top` of the centred activations, the reduction keeps the
    first :math:`k_x` columns of :math:`U` (their span is that of the reduced activations
    :math:`U_{:k} S_{:k}`), where

    .. math:: k_x = \min\Big\{k : \sum_{i\le k} w_i \ge \text{keep}\sum_i w_i\Big\},
        \qquad w_i = s_i^2 \ (\text{squared}) \ \text{or}\ s_i \ (\text{linear}),

    and then :math:`\rho = \sigma(U_{x,:k_x}^\top U_{y,:k_y})` (CCA of the reduced layers, whose bases
    are already orthonormal). Computed in float64. With the default squared rule and
    ``keep <=`` :data:`EIGEN_ROUTE_MAX_KEEP`, the leading directions come from the eigendecomposition of
    the smaller of :math:`X_c^\top X_c` and :math:`X_c X_c^\top` (faster, and accurate for every direction
    such a rule keeps), otherwise from the SVD. A :class:`SimilarityWarning` is given when
    ``kept_x + kept_y > n - 1`` (some correlations are then 1 whatever the data, see :func:`cca`).
    """
    X, Y, _ = _pair(X, Y)
    keep = _keep(keep)
    variance = _variance_rule(variance)
    n_datapoints = X.shape[0]
    sx, sy = (_reduced_subspace(A, name, keep, variance) for A, name in ((X, "X"), (Y, "Y")))
    _cca_warning(n_datapoints, [sx.rank, sy.rank], [X.shape[1], Y.shape[1]], stacklevel=2, check_neurons=False)
    rho = to_numpy(_singular_values(sx.u.T @ sy.u)).astype(np.float64)
    return SVCCAResult(mean=float(rho.mean()), rho=rho, kept_x=sx.rank, kept_y=sy.rank)


def _reduced_subspace(X, name: str, keep: float, variance: str) -> _Subspace:
    r"""SVCCA's reduction of one layer: an orthonormal basis of its top-:math:`k` left singular directions.

    With the ``"squared"`` rule and ``keep <= EIGEN_ROUTE_MAX_KEEP``, from the eigendecomposition of the
    smaller Gram matrix, :math:`X_c^\top X_c = V S^2 V^\top` (then :math:`U_{:k} = X_c V_{:k} S_{:k}^{-1}`,
    re-orthonormalized by a QR) or :math:`X_c X_c^\top = U S^2 U^\top`: three to four times faster than an
    SVD of :math:`X_c` on 2 cores. Squaring loses nothing that matters here: every kept direction has
    :math:`s_k^2 \ge (1 - \text{keep})\, s_1^2 / p` (the variance left after :math:`k-1` directions is at least
    :math:`1-\text{keep}` of the total, spread over at most :math:`p` directions), so its eigenvalue is
    accurate to about :math:`\varepsilon\, p / (1 - \text{keep})` relative (:math:`2\cdot10^{-11}` for
    :math:`p = 1000`, keep = 0.99), and no null direction is ever kept. Otherwise (``"linear"`` rule, or
    ``keep`` close to 1) from the SVD of :func:`_subspace`.
    """
    if variance != "squared" or keep > EIGEN_ROUTE_MAX_KEEP:
        sub = _subspace(X, name)
        return sub.leading(_kept_directions(sub.s, keep, variance))
    xp = array_module(X)
    Xc = _centred(X, xp.float64, name)
    n_datapoints, n_neurons = Xc.shape
    if n_neurons <= n_datapoints:
        eigenvalues, vectors = xp.linalg.eigh(Xc.T @ Xc)
    else:
        eigenvalues, vectors = xp.linalg.eigh(Xc @ Xc.T)
    s = xp.sqrt(xp.maximum(eigenvalues[::-1], 0.0))  # descending
    k = _kept_directions(s, keep, "squared")
    leading = vectors[:, ::-1][:, :k]
    basis = Xc @ (leading / s[:k]) if n_neurons <= n_datapoints else leading
    return _Subspace(xp.linalg.qr(basis)[0], s[:k], None, n_neurons)


def _pwcca_from_subspaces(sx: _Subspace, sy: _Subspace) -> float:
    xp = array_module(sx.u)
    P, sigma, _ = xp.linalg.svd(sx.u.T @ sy.u, full_matrices=False)
    rho = xp.clip(sigma, 0.0, 1.0)
    # <h_i, z_j> for unit canonical variates h_i = U_x p_i and neurons z_j (columns of X_c = U_x S_x V_x^T)
    alpha = xp.abs(P.T @ (sx.s[:, None] * sx.vt)).sum(axis=1)
    return float((alpha * rho).sum() / alpha.sum())


def pwcca(X, Y) -> float:
    r"""Projection-weighted CCA (Morcos, Raghu & Bengio 2018): canonical correlations weighted by their share of X.

    Parameters
    ----------
    X : (n_datapoints, n_neurons_x) array
        The layer whose neurons weight the correlations.
    Y : (n_datapoints, n_neurons_y) array
        Activations on the same datapoints (NumPy or CuPy, any real dtype; computed in float64).

    Returns
    -------
    float
        In [0, 1].

    Notes
    -----
    With :math:`\rho_i` and the canonical weights :math:`a_i` of :func:`cca` (no ridge), the canonical
    variates on the data of X are :math:`h_i = X_c a_i / \|X_c a_i\|` and neuron :math:`j`'s response
    vector is :math:`z_j = X_{:,j}`:

    .. math::
        \text{PWCCA}(X, Y) = \frac{\sum_i \alpha_i \rho_i}{\sum_i \alpha_i},
        \qquad \alpha_i = \sum_j |\langle h_i, z_j\rangle|.

    Since :math:`h_i = U_x p_i` has mean 0, centring :math:`z_j` or not gives the same weights.
    The measure is **not symmetric**: the weights come from X, as in the paper (the google/svcca code
    instead takes the side with fewer neurons); ``pwcca(Y, X)`` weights by Y. The warnings of
    :func:`cca` apply.
    """
    X, Y, _ = _pair(X, Y)
    sx, sy = _subspace(X, "X"), _subspace(Y, "Y")
    _cca_warning(X.shape[0], [sx.rank, sy.rank], [X.shape[1], Y.shape[1]], stacklevel=2, check_neurons=True)
    return _pwcca_from_subspaces(sx, sy)


# ---------------------------------------------------------------------------------------------------
# CKA
# ---------------------------------------------------------------------------------------------------


@dataclass
class _LinearKernelStats:
    r"""What linear CKA needs of a pair: :math:`\langle K, L\rangle`, :math:`\|K\|^2`, :math:`\|L\|^2`,
    and for the debiased estimator the diagonals :math:`d = \operatorname{diag} K` and traces."""

    cross: float
    self_x: float
    self_y: float
    diag_x: Any = None
    diag_y: Any = None


def _debiased_hsic(cross: float, diag_dot: float, trace_x: float, trace_y: float, n: int) -> float:
    r"""Song et al.'s unbiased HSIC, times :math:`n(n-3)`, for centred linear kernels (see :func:`linear_cka`)."""
    return cross - n / (n - 2) * diag_dot + trace_x * trace_y / ((n - 1) * (n - 2))


def _undefined_self_hsic(self_hsic, plain_self, n: int):
    r"""Where the unbiased HSIC of a layer with itself is not positive beyond the rounding of its terms.

    Its three terms are each at most about :math:`2\|K\|_F^2` (``plain_self``), so anything below
    :math:`4 n \varepsilon_{64} \|K\|_F^2` is indistinguishable from 0. It is exactly 0 for some layers, e.g. a
    one-hot code with one neuron per datapoint.
    """
    return self_hsic <= 4 * n * float(np.finfo(np.float64).eps) * plain_self


_UNDEFINED_DEBIASED = ("the unbiased HSIC estimate of {what} with itself is 0 up to rounding or negative (too few "
                       "datapoints, or degenerate activations such as a one-hot code), so debiased CKA is undefined")


def _cka_from_hsic(cross: float, stats: _LinearKernelStats, self_x: float, self_y: float, n: int,
                   stacklevel: int) -> float:
    if _undefined_self_hsic(self_x, stats.self_x, n) or _undefined_self_hsic(self_y, stats.self_y, n):
        warnings.warn(_UNDEFINED_DEBIASED.format(what="X or Y") + "; returning nan", SimilarityWarning,
                      stacklevel=stacklevel + 1)
        return float("nan")
    return cross / math.sqrt(self_x * self_y)


def linear_cka(X, Y, debiased: bool = False) -> float:
    r"""Linear centred kernel alignment (Kornblith et al. 2019).

    Parameters
    ----------
    X : (n_datapoints, n_neurons_x) array
    Y : (n_datapoints, n_neurons_y) array
        Activations of the two layers (NumPy or CuPy).
    debiased : bool, default False
        Use the unbiased HSIC estimator (Song et al. 2012) instead of the plain (biased) one; needs
        at least 4 datapoints.

    Returns
    -------
    float
        In [0, 1] for the plain estimator; the debiased one can be slightly negative, and is nan (with a
        :class:`SimilarityWarning`) when the estimate for a layer with itself is 0 up to rounding (e.g. a
        one-hot code: n datapoints, each with its own neuron).

    Notes
    -----
    With centred activations, Gram matrices :math:`K = X_c X_c^\top`, :math:`L = Y_c Y_c^\top`:

    .. math::
        \text{CKA}(X, Y) = \frac{\langle K, L\rangle_F}{\|K\|_F\,\|L\|_F}
        = \frac{\|Y_c^\top X_c\|_F^2}{\|X_c^\top X_c\|_F\,\|Y_c^\top Y_c\|_F}.

    The debiased form replaces each :math:`\langle K, L\rangle` by :math:`n(n-3)` times the U-statistic
    :math:`\mathrm{HSIC}_u`, with :math:`\tilde K = K - \operatorname{diag}(K)`:

    .. math::
        n(n-3)\,\mathrm{HSIC}_u(K, L) = \operatorname{tr}(\tilde K\tilde L)
            + \frac{\mathbf 1^\top\tilde K\mathbf 1\;\mathbf 1^\top\tilde L\mathbf 1}{(n-1)(n-2)}
            - \frac{2}{n-2}\,\mathbf 1^\top\tilde K\tilde L\mathbf 1
        = \langle K, L\rangle - \frac{n}{n-2}\,d_x^\top d_y + \frac{\operatorname{tr}K\,\operatorname{tr}L}{(n-1)(n-2)},

    :math:`d = \operatorname{diag}(K)` (the second form uses :math:`K\mathbf 1 = 0` for centred
    activations; :math:`\mathrm{HSIC}_u` does not change when the features are centred).

    Computed from the :math:`(p \times q)` feature-space products when :math:`p + q \le n`, else from the
    :math:`(n \times n)` Gram matrices, whichever is cheaper. The plain estimator multiplies in the input
    precision (float32 stays float32: every term is a sum of squares, with no cancellation) and
    accumulates the sums in float64; the debiased one works in float64 throughout, because its three
    terms nearly cancel for unrelated layers.
    """
    X, Y, _ = _pair(X, Y)
    debiased = _flag("debiased", debiased)
    n_datapoints = X.shape[0]
    if debiased:
        _needs_four(n_datapoints, "debiased CKA")
    dtype = np.float64 if debiased else _working_dtype(X, Y)
    Xc, Yc = _centred(X, dtype, "X"), _centred(Y, dtype, "Y")
    stats = _linear_kernel_stats(Xc, Yc, debiased)
    if not debiased:
        return stats.cross / math.sqrt(stats.self_x * stats.self_y)
    xp = array_module(Xc)
    trace_x, trace_y = float(stats.diag_x.sum()), float(stats.diag_y.sum())
    cross = _debiased_hsic(stats.cross, float(xp.dot(stats.diag_x, stats.diag_y)), trace_x, trace_y, n_datapoints)
    self_x = _debiased_hsic(stats.self_x, float(xp.dot(stats.diag_x, stats.diag_x)), trace_x, trace_x,
                            n_datapoints)
    self_y = _debiased_hsic(stats.self_y, float(xp.dot(stats.diag_y, stats.diag_y)), trace_y, trace_y,
                            n_datapoints)
    return _cka_from_hsic(cross, stats, self_x, self_y, n_datapoints, stacklevel=2)


def _row_squared_norms(Xc):
    r""":math:`d_i = \|x_i\|^2 = K_{ii}` for every datapoint."""
    xp = array_module(Xc)
    return xp.einsum("ij,ij->i", Xc, Xc)


def _linear_kernel_stats(Xc, Yc, debiased: bool) -> _LinearKernelStats:
    n_datapoints = Xc.shape[0]
    if Xc.shape[1] + Yc.shape[1] <= n_datapoints:
        cross_product = Yc.T @ Xc
        stats = _LinearKernelStats(_sum_of_products(cross_product, cross_product),
                                   _frobenius_squared_gram(Xc), _frobenius_squared_gram(Yc))
    else:
        K, L = Xc @ Xc.T, Yc @ Yc.T
        stats = _LinearKernelStats(_sum_of_products(K, L), _sum_of_products(K, K), _sum_of_products(L, L))
    if debiased:
        stats.diag_x, stats.diag_y = _row_squared_norms(Xc), _row_squared_norms(Yc)
    return stats


def _frobenius_squared_gram(Xc) -> float:
    r""":math:`\|X_c^\top X_c\|_F^2 = \|X_c X_c^\top\|_F^2`, from the smaller of the two products."""
    gram = Xc.T @ Xc if Xc.shape[1] <= Xc.shape[0] else Xc @ Xc.T
    return _sum_of_products(gram, gram)


def _centred_rbf_gram(X, sigma_frac: float, name: str):
    r"""The doubly centred RBF Gram matrix :math:`H K H` of one layer, float64, ``(n_datapoints, n_datapoints)``.

    .. math::
        K_{ij} = \exp\!\Big(-\frac{\|x_i - x_j\|^2}{2 s^2}\Big), \qquad
        s^2 = \text{sigma\_frac}^2 \cdot \operatorname{median}_{i,j}\|x_i - x_j\|^2, \qquad
        H = I - \tfrac1n\mathbf 1\mathbf 1^\top,

    the median taken over all :math:`n^2` ordered pairs, the zero diagonal included (as the CKA
    authors' code does).
    """
    xp = array_module(X)
    Xc = _centred(X, xp.float64, name)  # distances do not change; centring keeps |x|^2 small beside x.y
    squared_norms = _row_squared_norms(Xc)
    D2 = Xc @ Xc.T
    D2 *= -2.0
    D2 += squared_norms[:, None]
    D2 += squared_norms[None, :]
    xp.maximum(D2, 0.0, out=D2)
    xp.fill_diagonal(D2, 0.0)
    median = float(xp.median(D2))
    if median <= 0.0:
        raise ValueError(f"{name}: the median squared distance between datapoints is 0 (at least half of the pairs "
                         "coincide), so the RBF width is undefined")
    D2 *= -1.0 / (2.0 * sigma_frac * sigma_frac * median)
    K = xp.exp(D2, out=D2)
    row_means = K.mean(axis=1)
    K -= row_means[:, None]
    K -= row_means[None, :]
    K += row_means.mean()
    return K


def rbf_cka(X, Y, sigma_frac: float = 0.5) -> float:
    r"""CKA with Gaussian (RBF) kernels (Kornblith et al. 2019).

    Parameters
    ----------
    X : (n_datapoints, n_neurons_x) array
    Y : (n_datapoints, n_neurons_y) array
        Activations of the two layers (NumPy or CuPy; computed in float64, with two
        (n_datapoints, n_datapoints) matrices in memory).
    sigma_frac : float, default 0.5
        Kernel width as a fraction of the median distance between datapoints (0.5 in the authors' demo).

    Returns
    -------
    float
        In [0, 1].

    Notes
    -----
    .. math::
        \text{CKA}(X, Y) = \frac{\langle HKH, HLH\rangle_F}{\|HKH\|_F\,\|HLH\|_F}

    with :math:`K, L` the RBF Gram matrices of each layer, each with its own width
    :math:`s^2 = \text{sigma\_frac}^2\cdot\operatorname{median}\|x_i - x_j\|^2` over all :math:`n^2` pairs,
    the zero diagonal included, and :math:`H = I - \mathbf 1\mathbf 1^\top/n`.
    """
    X, Y, _ = _pair(X, Y)
    sigma_frac = _sigma_frac(sigma_frac)
    K = _centred_rbf_gram(X, sigma_frac, "X")
    L = _centred_rbf_gram(Y, sigma_frac, "Y")
    return _sum_of_products(K, L) / math.sqrt(_sum_of_products(K, K) * _sum_of_products(L, L))


# ---------------------------------------------------------------------------------------------------
# Every layer against every layer
# ---------------------------------------------------------------------------------------------------


def _layer_list(acts: Any, name: str) -> list:
    if hasattr(acts, "ndim") and acts.ndim == 2:
        raise TypeError(f"{name} must be a sequence of (n_datapoints, n_neurons) arrays, one per layer; got a single "
                        "2-D array (wrap it in a list)")
    try:
        layers = list(acts)
    except TypeError as err:
        raise TypeError(f"{name} must be a sequence of (n_datapoints, n_neurons) arrays, one per layer; "
                        f"got {type(acts).__name__}") from err
    if not layers:
        raise ValueError(f"{name} is empty: give at least one layer's activations")
    return [_activations(a, f"{name}[{i}]") for i, a in enumerate(layers)]


def _metric_keywords(metric: Any, kw: dict) -> dict:
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}, got {metric!r}")
    allowed = _METRIC_KEYWORDS[metric]
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        takes = f"takes only {', '.join(allowed)}" if allowed else "takes no keyword arguments"
        raise TypeError(f"metric {metric!r} {takes}; got {', '.join(unknown)}")
    if "sigma_frac" in kw:
        kw["sigma_frac"] = _sigma_frac(kw["sigma_frac"])
    if "eps" in kw:
        kw["eps"] = _eps(kw["eps"])
    if "keep" in kw:
        kw["keep"] = _keep(kw["keep"])
    if "variance" in kw:
        kw["variance"] = _variance_rule(kw["variance"])
    return kw


def similarity_matrix(acts_a, acts_b=None, metric: str = "linear_cka", **kw) -> np.ndarray:
    r"""Similarity of every layer in ``acts_a`` to every layer in ``acts_b``.

    Parameters
    ----------
    acts_a : sequence of (n_datapoints, n_neurons_l) arrays
        One array per layer, all on the same datapoints (widths may differ; NumPy or CuPy, not mixed).
    acts_b : sequence of (n_datapoints, n_neurons_m) arrays, optional
        The layers to compare with (e.g. the same net at another point of training); ``None`` compares
        ``acts_a`` with itself, computing each symmetric pair once.
    metric : {"linear_cka", "debiased_cka", "rbf_cka", "cca", "svcca", "pwcca"}
        ``"linear_cka"``, ``"debiased_cka"``: :func:`linear_cka` plain or debiased; ``"rbf_cka"``:
        :func:`rbf_cka`; ``"cca"``: mean of :func:`cca`'s correlations; ``"svcca"``: ``svcca(...).mean``;
        ``"pwcca"``: :func:`pwcca` with weights from the layer of ``acts_a``.
    **kw
        Passed on: ``sigma_frac`` (rbf_cka), ``eps`` (cca), ``keep`` and ``variance`` (svcca).

    Returns
    -------
    (len(acts_a), len(acts_b)) float64 NumPy array
        Entry ``[i, j]`` compares ``acts_a[i]`` (as X) with ``acts_b[j]`` (as Y).

    Notes
    -----
    Each layer is factored once and every pair reuses the factors:

    - CKA: the centred Gram matrix :math:`K_l` of each layer, stored as the vector :math:`k_l` of its
      upper triangle (diagonal included), so that
      :math:`\langle K_l, K_m\rangle_F = 2\,k_l^\top k_m - \operatorname{diag}(K_l)^\top\operatorname{diag}(K_m)`;
      all pairs then come from one matrix product of the stacked vectors, accumulated in float64, in chunks
      of at most :data:`GRAM_STACK_MAX_BYTES`. When the feature-space products are cheaper (many more
      datapoints than the widths' product), linear CKA uses :math:`\|Y_c^\top X_c\|_F^2` per pair instead.
      Plain linear CKA forms and stores :math:`K_l` in the input precision (float32 halves the memory),
      debiased and RBF CKA in float64.
    - CCA family: the thin SVD of each layer (reduced for SVCCA); a pair costs one product
      :math:`U_l^\top U_m` and the singular values of that small matrix, through the eigenvalues of its
      Gram matrix for the ``"cca"`` and ``"svcca"`` means (accurate to about :math:`10^{-8}`, see the
      source), through an SVD for ``"pwcca"``. The results equal the pairwise calls up to rounding.

    Warnings of the pairwise functions are collected into one :class:`SimilarityWarning`.
    """
    kw = _metric_keywords(metric, dict(kw))
    same = acts_b is None or acts_b is acts_a
    layers_a = _layer_list(acts_a, "acts_a")
    layers_b = layers_a if same else _layer_list(acts_b, "acts_b")
    xp = array_module(layers_a[0])
    n_datapoints = layers_a[0].shape[0]
    for name, layers in (("acts_a", layers_a), ("acts_b", layers_b)):
        for i, layer in enumerate(layers):
            if array_module(layer) is not xp:
                raise TypeError(f"{name}[{i}] is a {array_module(layer).__name__} array but acts_a[0] is a "
                                f"{xp.__name__} array; put every layer on the same device")
            if layer.shape[0] != n_datapoints:
                raise ValueError(f"{name}[{i}] has {layer.shape[0]} datapoints (rows) but acts_a[0] has "
                                 f"{n_datapoints}; every layer must be probed on the same datapoints")
    if metric in ("linear_cka", "debiased_cka", "rbf_cka"):
        return _kernel_similarity_matrix(layers_a, layers_b, same, metric, kw.get("sigma_frac", 0.5))
    return _subspace_similarity_matrix(layers_a, layers_b, same, metric, kw)


def _names(same: bool, n_a: int, n_b: int):
    return [f"acts_a[{i}]" for i in range(n_a)], [f"acts_{'a' if same else 'b'}[{j}]" for j in range(n_b)]


def _subspace_similarity_matrix(layers_a: list, layers_b: list, same: bool, metric: str, kw: dict) -> np.ndarray:
    n_datapoints = layers_a[0].shape[0]
    names_a, names_b = _names(same, len(layers_a), len(layers_b))
    if metric == "svcca":
        keep, variance = kw.get("keep", 0.99), kw.get("variance", "squared")
        factor = lambda layer, name: _reduced_subspace(layer, name, keep, variance)  # noqa: E731
    else:
        factor = _subspace
    subspaces_a = [factor(layer, name) for layer, name in zip(layers_a, names_a)]
    subspaces_b = subspaces_a if same else [factor(layer, name) for layer, name in zip(layers_b, names_b)]
    eps = kw.get("eps", 0.0)
    symmetric = same and metric != "pwcca"
    result = np.empty((len(layers_a), len(layers_b)))
    degenerate = []
    for i, sa in enumerate(subspaces_a):
        for j, sb in enumerate(subspaces_b):
            if symmetric and j < i:
                result[i, j] = result[j, i]
                continue
            too_wide = metric != "svcca" and max(sa.n_neurons, sb.n_neurons) >= n_datapoints
            if too_wide or sa.rank + sb.rank > n_datapoints - 1:
                degenerate.append((names_a[i], names_b[j]))
            if metric == "pwcca":
                result[i, j] = _pwcca_from_subspaces(sa, sb)
            else:
                result[i, j] = _mean_singular_value(_whitened_cross_covariance(sa, sb, eps, n_datapoints))
    if degenerate:
        shown = ", ".join(f"({a}, {b})" for a, b in degenerate[:3]) + (", ..." if len(degenerate) > 3 else "")
        warnings.warn(f"CCA is meaningless for {len(degenerate)} pair(s) of layers, e.g. {shown}: a layer has as many "
                      "neurons as datapoints, or the two (kept) subspaces are too large to avoid each other in the "
                      f"{n_datapoints - 1} dimensions of centred data, so some canonical correlations are 1 whatever "
                      "the data. Reduce the layers first (metric='svcca') or probe with more datapoints; CKA stays "
                      "meaningful here.", SimilarityWarning, stacklevel=3)
    return result


#: Columns of the stacked float32 Gram vectors cast to float64 at a time when accumulating their products.
_PRODUCT_BLOCK = 1 << 16


class _GramStacker:
    r"""Turns layers into rows of stacked Gram vectors, with each Gram matrix's diagonal and squared norm.

    The vector of a symmetric :math:`(n \times n)` Gram matrix :math:`K` is its upper triangle, diagonal
    included, row by row (:math:`n(n+1)/2` entries, in the precision :math:`K` was computed in), so that

    .. math:: \langle K, L\rangle_F = 2\,k^\top l - \operatorname{diag}(K)^\top\operatorname{diag}(L).
    """

    def __init__(self, xp, n_datapoints: int, metric: str, dtype, sigma_frac: float):
        self.xp, self.metric, self.dtype, self.sigma_frac = xp, metric, dtype, sigma_frac
        self.gram_dtype = np.dtype(np.float64 if metric == "rbf_cka" else dtype)
        rows, cols = xp.triu_indices(n_datapoints)
        self.flat_index = rows * n_datapoints + cols  # a single index: xp.take is 3x faster than K[rows, cols]
        self.n_vector = int(rows.shape[0])
        self.vector_bytes = self.n_vector * self.gram_dtype.itemsize

    def centred_gram(self, layer, name: str):
        if self.metric == "rbf_cka":
            return _centred_rbf_gram(layer, self.sigma_frac, name)
        centred = _centred(layer, self.dtype, name)
        return centred @ centred.T

    def stack(self, layers: list, names: list):
        """``vectors (n_layers, n_vector)``, ``diagonals (n_layers, n_datapoints)`` float64 and the squared
        Frobenius norms ``(n_layers,)`` NumPy float64 of the layers' centred Gram matrices."""
        xp = self.xp
        vectors = xp.empty((len(layers), self.n_vector), dtype=self.gram_dtype)
        diagonals = xp.empty((len(layers), layers[0].shape[0]))
        squared_norms = np.empty(len(layers))
        for i, (layer, name) in enumerate(zip(layers, names)):
            K = self.centred_gram(layer, name)
            if xp is np:  # straight into the stack; NumPy's default mode="raise" would buffer through a temporary
                np.take(K, self.flat_index, out=vectors[i], mode="clip")
            else:
                xp.take(K, self.flat_index, out=vectors[i])
            diagonals[i] = xp.diagonal(K)
            squared_norms[i] = _sum_of_products(K, K)
            del K
        return vectors, diagonals, squared_norms


def _float64_products(A, B):
    r""":math:`A B^\top` of two stacks of vectors, accumulated in float64 (float32 stacks in column blocks).

    ``A is B`` computes the symmetric product (one BLAS ``syrk`` per block).
    """
    xp = array_module(A)
    if A.dtype == np.float64 and B.dtype == np.float64:
        return A @ A.T if A is B else A @ B.T
    width = min(_PRODUCT_BLOCK, A.shape[1])
    buffer_a = xp.empty((A.shape[0], width))
    buffer_b = buffer_a if A is B else xp.empty((B.shape[0], width))
    total = xp.zeros((A.shape[0], B.shape[0]))
    for start in range(0, A.shape[1], width):
        stop = min(start + width, A.shape[1])
        block_a = buffer_a[:, :stop - start]
        block_a[...] = A[:, start:stop]
        if A is B:
            total += block_a @ block_a.T
        else:
            block_b = buffer_b[:, :stop - start]
            block_b[...] = B[:, start:stop]
            total += block_a @ block_b.T
    return total


def _gram_route_products(layers_a: list, layers_b: list, same: bool, names_a: list, names_b: list,
                         stacker: _GramStacker):
    r"""All :math:`\langle K_a, K_b\rangle_F` from stacked Gram vectors, chunked to :data:`GRAM_STACK_MAX_BYTES`.

    Returns ``cross (n_a, n_b)``, ``self_a (n_a,)``, ``self_b (n_b,)`` (NumPy) and the diagonals
    ``(n_a, n_datapoints)``, ``(n_b, n_datapoints)``.
    """
    xp = stacker.xp
    if same and len(layers_b) * stacker.vector_bytes <= GRAM_STACK_MAX_BYTES:
        per_chunk = len(layers_b)
    else:
        per_chunk = max(1, GRAM_STACK_MAX_BYTES // (2 * stacker.vector_bytes))  # a chunk of each side at once
    n_datapoints = layers_a[0].shape[0]
    cross = np.zeros((len(layers_a), len(layers_b)))
    self_a, self_b = np.empty(len(layers_a)), np.empty(len(layers_b))
    diag_a = xp.empty((len(layers_a), n_datapoints))
    diag_b = diag_a if same else xp.empty((len(layers_b), n_datapoints))
    for b0 in range(0, len(layers_b), per_chunk):
        b1 = min(b0 + per_chunk, len(layers_b))
        vectors_b, diag_b[b0:b1], self_b[b0:b1] = stacker.stack(layers_b[b0:b1], names_b[b0:b1])
        for a0 in range(0, len(layers_a), per_chunk):
            a1 = min(a0 + per_chunk, len(layers_a))
            if same and a0 > b0:
                continue  # the transpose of a block already computed
            if same and a0 == b0:
                vectors_a = vectors_b
            else:
                vectors_a, diagonals_a, squared_norms_a = stacker.stack(layers_a[a0:a1], names_a[a0:a1])
                if not same and b0 == 0:
                    diag_a[a0:a1], self_a[a0:a1] = diagonals_a, squared_norms_a
            triangle_products = _float64_products(vectors_a, vectors_b)
            cross[a0:a1, b0:b1] = to_numpy(2.0 * triangle_products - diag_a[a0:a1] @ diag_b[b0:b1].T)
            del vectors_a, triangle_products
        del vectors_b
    if same:
        cross = np.triu(cross) + np.triu(cross, 1).T
        self_a = self_b
    return cross, self_a, self_b, diag_a, diag_b


def _feature_route_products(layers_a: list, layers_b: list, same: bool, names_a: list, names_b: list,
                            dtype, debiased: bool):
    r"""All :math:`\|X_b^\top X_a\|_F^2` from the centred activations, one product per pair (linear kernels only)."""
    xp = array_module(layers_a[0])
    centred_a = [_centred(layer, dtype, name) for layer, name in zip(layers_a, names_a)]
    centred_b = centred_a if same else [_centred(layer, dtype, name) for layer, name in zip(layers_b, names_b)]
    cross = np.empty((len(layers_a), len(layers_b)))
    for i, xa in enumerate(centred_a):
        for j, xb in enumerate(centred_b):
            if same and j < i:
                cross[i, j] = cross[j, i]
                continue
            product = xb.T @ xa
            cross[i, j] = _sum_of_products(product, product)
    self_a = np.array([_frobenius_squared_gram(x) for x in centred_a])
    self_b = self_a if same else np.array([_frobenius_squared_gram(x) for x in centred_b])
    diag_a = diag_b = None
    if debiased:
        diag_a = xp.stack([_row_squared_norms(x) for x in centred_a])
        diag_b = diag_a if same else xp.stack([_row_squared_norms(x) for x in centred_b])
    return cross, self_a, self_b, diag_a, diag_b


def _kernel_similarity_matrix(layers_a: list, layers_b: list, same: bool, metric: str,
                              sigma_frac: float) -> np.ndarray:
    xp = array_module(layers_a[0])
    n_datapoints = layers_a[0].shape[0]
    debiased = metric == "debiased_cka"
    if debiased:
        _needs_four(n_datapoints, "debiased CKA")
    names_a, names_b = _names(same, len(layers_a), len(layers_b))
    dtype = np.float64 if debiased or metric == "rbf_cka" else _working_dtype(*layers_a, *layers_b)
    widths_a = sum(layer.shape[1] for layer in layers_a)
    widths_b = sum(layer.shape[1] for layer in layers_b)
    n_vector = n_datapoints * (n_datapoints + 1) // 2
    # multiply-adds of the two routes: one (p x q) product per pair, or one (n x n) Gram per layer and a dot per pair
    pairs = len(layers_a) * len(layers_b) * (0.5 if same else 1.0)
    feature_cost = n_datapoints * widths_a * widths_b * (0.5 if same else 1.0)
    gram_cost = n_datapoints**2 * (widths_a + (0 if same else widths_b)) / 2 + pairs * n_vector
    use_features = metric != "rbf_cka" and (feature_cost < gram_cost or 2 * 8 * n_vector > GRAM_STACK_MAX_BYTES)
    if use_features:
        cross, self_a, self_b, diag_a, diag_b = _feature_route_products(layers_a, layers_b, same, names_a, names_b,
                                                                        dtype, debiased)
    else:
        stacker = _GramStacker(xp, n_datapoints, metric, dtype, sigma_frac)
        cross, self_a, self_b, diag_a, diag_b = _gram_route_products(layers_a, layers_b, same, names_a, names_b,
                                                                     stacker)
    if not debiased:
        return cross / np.sqrt(self_a[:, None] * self_b[None, :])
    n = n_datapoints
    trace_a, trace_b = to_numpy(diag_a.sum(axis=1)), to_numpy(diag_b.sum(axis=1))
    hsic = _debiased_hsic(cross, to_numpy(diag_a @ diag_b.T), trace_a[:, None], trace_b[None, :], n)
    hsic_a = _debiased_hsic(self_a, to_numpy((diag_a * diag_a).sum(axis=1)), trace_a, trace_a, n)
    hsic_b = hsic_a if same else _debiased_hsic(self_b, to_numpy((diag_b * diag_b).sum(axis=1)), trace_b, trace_b,
                                                n)
    undefined_a = _undefined_self_hsic(hsic_a, self_a, n)
    undefined_b = _undefined_self_hsic(hsic_b, self_b, n)
    if undefined_a.any() or undefined_b.any():
        warnings.warn(_UNDEFINED_DEBIASED.format(what="some layers") + "; their rows or columns are nan",
                      SimilarityWarning, stacklevel=3)
    scale_a = np.sqrt(np.where(undefined_a, np.nan, hsic_a))
    scale_b = np.sqrt(np.where(undefined_b, np.nan, hsic_b))
    return hsic / (scale_a[:, None] * scale_b[None, :])


def neuron_correlations(X: Any, Y: Any) -> np.ndarray:
    r"""For every neuron of X, its largest absolute correlation with any single neuron of Y.

    The naive way to compare two layers neuron by neuron, the baseline SVCCA improves on (Raghu et al.
    2017 compare the raw top neurons of two networks with their SVCCA-aligned directions): with
    :math:`x_j`, :math:`y_k` the centred response vectors of neuron :math:`j` of X and :math:`k` of Y,

    .. math:: r_j = \max_k \frac{|\langle x_j, y_k\rangle|}{\|x_j\|\,\|y_k\|} .

    Neurons that never vary get 0.

    Parameters
    ----------
    X : (n_datapoints, n_neurons_x) array
    Y : (n_datapoints, n_neurons_y) array

    Returns
    -------
    (n_neurons_x,) float64 numpy.ndarray
        In [0, 1]; not symmetric in X and Y.
    """
    X, Y, xp = _pair(X, Y)
    xc = X.astype(xp.float64) - X.mean(axis=0, dtype=xp.float64)
    yc = Y.astype(xp.float64) - Y.mean(axis=0, dtype=xp.float64)
    nx, ny = xp.sqrt((xc * xc).sum(axis=0)), xp.sqrt((yc * yc).sum(axis=0))
    corr = xp.abs(xc.T @ yc)
    scale = nx[:, None] * ny[None, :]
    corr = xp.where(scale > 0, corr / xp.where(scale > 0, scale, 1.0), 0.0)
    return np.clip(to_numpy(corr.max(axis=1)), 0.0, 1.0)
