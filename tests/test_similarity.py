"""tinyid.similarity against plain float64 formulas, its invariances, and its behaviour on unrelated data.

The oracles below are written the slow, obvious way (explicit covariance matrices, eigendecomposition
whitening, explicit n x n centring matrices) and are used on well-conditioned data only. The statistical
tests use fixed seeds and tolerances of Z standard deviations of the statistic, each standard deviation
derived in the test's docstring.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinyid import similarity
from tinyid.similarity import SimilarityWarning, cca, linear_cka, pwcca, rbf_cka, similarity_matrix, svcca

Z = 6.0  # standard deviations allowed in the statistical tests

seeds = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------------------------------------------
# Data and plain float64 oracles
# ---------------------------------------------------------------------------------------------------


def well_conditioned(rng, n, p, offset=True):
    """(n, p) data with singular values between 1 and 1/3 of the largest, shifted by a random mean."""
    Q1 = np.linalg.qr(rng.standard_normal((n, p)))[0]
    Q2 = np.linalg.qr(rng.standard_normal((p, p)))[0]
    spectrum = np.linspace(1.0, 1.0 / 3.0, p) * math.sqrt(n)
    X = (Q1 * spectrum) @ Q2
    return X + (rng.standard_normal(p) * 3.0 if offset else 0.0)


def related_pair(rng, n, p, q, noise=1.0):
    """X and Y = (part of X) mixed + noise: partly correlated layers."""
    X = well_conditioned(rng, n, p)
    Y = X @ rng.standard_normal((p, q)) + noise * well_conditioned(rng, n, q)
    return X, Y


def covariances(X, Y):
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    n = X.shape[0]
    return Xc.T @ Xc / (n - 1), Xc.T @ Yc / (n - 1), Yc.T @ Yc / (n - 1)


def inverse_sqrt(S):
    """S^{-1/2} of a symmetric positive definite matrix, by eigendecomposition."""
    values, vectors = np.linalg.eigh(S)
    return (vectors / np.sqrt(values)) @ vectors.T


def textbook_cca(X, Y, eps=0.0):
    """rho_i^2 = eigenvalues of (Sxx + eps I)^-1 Sxy (Syy + eps I)^-1 Syx, the largest min(p, q)."""
    Sxx, Sxy, Syy = covariances(X, Y)
    Sxx = Sxx + eps * np.eye(len(Sxx))
    Syy = Syy + eps * np.eye(len(Syy))
    product = np.linalg.solve(Sxx, Sxy) @ np.linalg.solve(Syy, Sxy.T)
    values = np.sort(np.linalg.eigvals(product).real)[::-1][:min(X.shape[1], Y.shape[1])]
    return np.sqrt(np.clip(values, 0.0, None))


def whitened_cca(Xr, Yr):
    """CCA by covariance whitening: U, rho, V of Sxx^-1/2 Sxy Syy^-1/2, and the weights Sxx^-1/2 U."""
    Sxx, Sxy, Syy = covariances(Xr, Yr)
    Wx, Wy = inverse_sqrt(Sxx), inverse_sqrt(Syy)
    U, rho, Vt = np.linalg.svd(Wx @ Sxy @ Wy)
    return rho, Wx @ U


def plain_kept(eigenvalues, keep, variance):
    """Loop over the covariance eigenvalues (descending) until the kept share reaches keep."""
    weights = eigenvalues if variance == "squared" else np.sqrt(eigenvalues)
    total, running = weights.sum(), 0.0
    for k, w in enumerate(weights, start=1):
        running += w
        if running >= keep * total:
            return k
    return len(weights)


def plain_svcca(X, Y, keep, variance):
    """Explicit covariance, eigendecomposition, projection on the kept eigenvectors, whitened CCA."""
    reduced, kept = [], []
    for A in (X, Y):
        Ac = A - A.mean(0)
        values, vectors = np.linalg.eigh(Ac.T @ Ac / (len(A) - 1))
        values, vectors = values[::-1], vectors[:, ::-1]
        k = plain_kept(values, keep, variance)
        reduced.append(Ac @ vectors[:, :k])
        kept.append(k)
    rho, _ = whitened_cca(*reduced)
    return rho, kept


def plain_pwcca(X, Y):
    """Morcos et al.: h_i = X_c a_i / |X_c a_i|, alpha_i = sum_j |<h_i, X[:, j]>|, sum alpha rho / sum alpha."""
    rho, A = whitened_cca(X, Y)
    k = min(X.shape[1], Y.shape[1])
    H = (X - X.mean(0)) @ A[:, :k]
    H /= np.linalg.norm(H, axis=0)
    alpha = np.abs(H.T @ X).sum(axis=1)  # uncentred neurons: H has zero mean, so it makes no difference
    return float((alpha * rho[:k]).sum() / alpha.sum())


def centring_matrix(n):
    return np.eye(n) - np.ones((n, n)) / n


def plain_cka_from_grams(K, L):
    H = centring_matrix(len(K))
    hsic = lambda A, B: np.trace(A @ H @ B @ H)  # noqa: E731
    return hsic(K, L) / math.sqrt(hsic(K, K) * hsic(L, L))


def plain_linear_cka(X, Y):
    return plain_cka_from_grams(X @ X.T, Y @ Y.T)


def song_hsic(K, L):
    """Song et al. 2012, eq. (5), on the uncentred Gram matrices."""
    n = len(K)
    Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    return (np.trace(Kt @ Lt) + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * one @ Kt @ Lt @ one) / (n * (n - 3))


def song_debiased_cka(X, Y):
    K, L = X @ X.T, Y @ Y.T
    return song_hsic(K, L) / math.sqrt(song_hsic(K, K) * song_hsic(L, L))


def plain_rbf_gram(X, frac):
    differences = X[:, None, :] - X[None, :, :]
    D2 = (differences**2).sum(axis=2)
    return np.exp(-D2 / (2.0 * frac**2 * np.median(D2)))  # median over all n^2 pairs, the diagonal included


def plain_rbf_cka(X, Y, frac=0.5):
    return plain_cka_from_grams(plain_rbf_gram(X, frac), plain_rbf_gram(Y, frac))


def random_orthogonal(rng, p):
    return np.linalg.qr(rng.standard_normal((p, p)))[0]


def random_invertible(rng, p):
    """Q1 diag(e^u) Q2 with u in [-1.5, 1.5]: condition number at most e^3 ~ 20."""
    return (random_orthogonal(rng, p) * np.exp(rng.uniform(-1.5, 1.5, p))) @ random_orthogonal(rng, p)


# ---------------------------------------------------------------------------------------------------
# CCA
# ---------------------------------------------------------------------------------------------------


@given(seed=seeds, n=st.integers(30, 70), p=st.integers(1, 6), q=st.integers(1, 6), eps=st.sampled_from([0.0, 0.3]))
def test_cca_matches_textbook_formula(seed, n, p, q, eps):
    rng = np.random.default_rng(seed)
    X, Y = related_pair(rng, n, p, q)
    rho = cca(X, Y, eps=eps)
    assert isinstance(rho, np.ndarray) and rho.dtype == np.float64 and rho.shape == (min(p, q),)
    np.testing.assert_allclose(rho, textbook_cca(X, Y, eps), rtol=1e-8, atol=1e-9)
    assert np.all(np.diff(rho) <= 0.0)


@given(seed=seeds, p=st.integers(1, 5), q=st.integers(1, 5), eps=st.sampled_from([0.0, 0.5]))
def test_cca_weights_are_canonical(seed, p, q, eps):
    """a^T (Sxx + eps I) a = I, b^T (Syy + eps I) b = I and a^T Sxy b = diag(rho)."""
    rng = np.random.default_rng(seed)
    X, Y = related_pair(rng, 40, p, q)
    rho, a, b = cca(X, Y, eps=eps, directions=True)
    k = min(p, q)
    assert a.shape == (p, k) and b.shape == (q, k)
    Sxx, Sxy, Syy = covariances(X, Y)
    np.testing.assert_allclose(a.T @ (Sxx + eps * np.eye(p)) @ a, np.eye(k), atol=1e-9)
    np.testing.assert_allclose(b.T @ (Syy + eps * np.eye(q)) @ b, np.eye(k), atol=1e-9)
    np.testing.assert_allclose(a.T @ Sxy @ b, np.diag(rho), atol=1e-9)


@given(seed=seeds, n=st.integers(25, 60), p=st.integers(1, 5), q=st.integers(1, 5))
def test_cca_invariant_to_invertible_maps_and_translation(seed, n, p, q):
    rng = np.random.default_rng(seed)
    X, Y = related_pair(rng, n, p, q)
    X2 = X @ random_invertible(rng, p) + rng.standard_normal(p) * 10.0
    Y2 = Y @ random_invertible(rng, q) - rng.standard_normal(q) * 10.0
    np.testing.assert_allclose(cca(X2, Y2), cca(X, Y), atol=1e-9)
    assert svcca(X2, Y2, keep=1.0).mean == pytest.approx(svcca(X, Y, keep=1.0).mean, abs=1e-9)


def test_cca_drops_null_directions():
    """Duplicated, dependent and dead neurons add no canonical correlations (rank tolerance of cca)."""
    rng = np.random.default_rng(3)
    A, Y = related_pair(rng, 50, 3, 4)
    X = np.column_stack([A, A @ rng.standard_normal((3, 2)), np.full(50, 7.0), A[:, 0]])
    np.testing.assert_allclose(cca(X, Y), cca(A, Y), atol=1e-9)
    rho, a, _ = cca(X, Y, directions=True)
    assert a.shape == (7, 3)
    Sxx, _, _ = covariances(X, Y)
    np.testing.assert_allclose(a.T @ Sxx @ a, np.eye(3), atol=1e-9)
    # in float32 a dependent neuron carries rounding noise of relative size ~1e-7: the float32 tolerance drops it
    A32 = A.astype(np.float32)
    X32 = np.column_stack([A32, A32[:, 0] * np.float32(0.3) + A32[:, 1] * np.float32(1.7)])
    assert cca(X32, Y).shape == (3,)
    np.testing.assert_allclose(cca(X32, Y), cca(A, Y), atol=1e-5)


# ---------------------------------------------------------------------------------------------------
# SVCCA and PWCCA
# ---------------------------------------------------------------------------------------------------


@given(seed=seeds, n=st.integers(40, 80), p=st.integers(1, 8), q=st.integers(1, 8),
       keep=st.sampled_from([0.3, 0.6, 0.9, 0.99, 1.0]), variance=st.sampled_from(["squared", "linear"]))
def test_svcca_matches_plain_implementation(seed, n, p, q, keep, variance):
    rng = np.random.default_rng(seed)
    X, Y = related_pair(rng, n, p, q)
    for A in (X, Y):  # keep the test away from ties of the variance share with keep
        values = np.linalg.svd(A - A.mean(0), compute_uv=False)
        weights = values**2 if variance == "squared" else values
        assume(np.all(np.abs(np.cumsum(weights)[:-1] / weights.sum() - keep) > 1e-9))
    result = svcca(X, Y, keep=keep, variance=variance)
    rho, (kept_x, kept_y) = plain_svcca(X, Y, keep, variance)
    assert (result.kept_x, result.kept_y) == (kept_x, kept_y)
    assert result.rho.shape == (min(kept_x, kept_y),)
    np.testing.assert_allclose(result.rho, rho, rtol=1e-8, atol=1e-9)
    assert isinstance(result.mean, float) and result.mean == pytest.approx(rho.mean(), abs=1e-9)


def exact_spectrum(rng, n, singular_values):
    """Centred data whose singular values are exactly ``singular_values``."""
    p = len(singular_values)
    U = np.linalg.qr(np.column_stack([np.ones(n), rng.standard_normal((n, p))]))[0][:, 1:]  # columns orthogonal to 1
    return (U * singular_values) @ random_orthogonal(rng, p)


def test_svcca_variance_rules():
    """s = (4, 2, 1, 1): squared shares 16/22, 20/22 = 0.91 -> 2 directions for keep 0.9; linear shares
    4/8, 6/8, 7/8, 1 -> 4 directions."""
    rng = np.random.default_rng(5)
    X = exact_spectrum(rng, 30, [4.0, 2.0, 1.0, 1.0])
    Y = rng.standard_normal((30, 3))
    assert svcca(X, Y, keep=0.9).kept_x == 2
    assert svcca(X, Y, keep=0.9, variance="linear").kept_x == 4
    assert svcca(X, Y, keep=0.5).kept_x == 1
    assert svcca(X, Y, keep=0.95).kept_x == 3  # 21/22 = 0.9545
    assert svcca(X, Y, keep=1.0).kept_x == 4
    np.testing.assert_allclose(svcca(X, Y, keep=1.0).rho, cca(X, Y), atol=1e-12)


@pytest.mark.parametrize("n, p, q", [(60, 7, 5), (25, 40, 30)])  # Gram route through X^T X, and through X X^T
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_svcca_eigen_route_equals_svd_route(n, p, q, dtype, monkeypatch):
    """The squared rule's fast reduction (Gram eigendecomposition) against the SVD, rank-deficient layers too."""
    rng = np.random.default_rng(6)
    base = rng.standard_normal((n, 6))
    X = (np.tanh(base @ rng.standard_normal((6, p))) + 0.1 * rng.standard_normal((n, p))).astype(dtype)
    X[:, -1] = X[:, 0]  # a duplicated neuron
    Y = (base @ rng.standard_normal((6, q)) + 0.3 * rng.standard_normal((n, q))).astype(dtype)
    fast = [svcca(X, Y, keep=keep) for keep in (0.5, 0.9, 0.99)]
    monkeypatch.setattr(similarity, "EIGEN_ROUTE_MAX_KEEP", -1.0)
    slow = [svcca(X, Y, keep=keep) for keep in (0.5, 0.9, 0.99)]
    for a, b in zip(fast, slow):
        assert (a.kept_x, a.kept_y) == (b.kept_x, b.kept_y)
        np.testing.assert_allclose(a.rho, b.rho, atol=1e-10)


@given(seed=seeds, n=st.integers(30, 60), p=st.integers(1, 6), q=st.integers(1, 6))
def test_pwcca_matches_plain_implementation(seed, n, p, q):
    rng = np.random.default_rng(seed)
    X, Y = related_pair(rng, n, p, q)
    value = pwcca(X, Y)
    assert isinstance(value, float)
    assert value == pytest.approx(plain_pwcca(X, Y), abs=1e-9)
    assert pwcca(Y, X) == pytest.approx(plain_pwcca(Y, X), abs=1e-9)


def test_pwcca_weights_by_the_first_argument():
    """PWCCA is asymmetric by definition: the weights come from X's neurons. X = [s, 5u] carries mostly the
    unshared u, so its weights favour the small correlation; Y carries mostly the shared s."""
    rng = np.random.default_rng(11)
    n = 60
    shared = rng.standard_normal(n)
    X = np.column_stack([shared, 5.0 * rng.standard_normal(n)])
    Y = np.column_stack([shared + 0.3 * rng.standard_normal(n), 0.2 * rng.standard_normal((n, 3))])
    assert pwcca(X, Y) < 0.5 < 0.7 < pwcca(Y, X)
    # a neuron-space rotation changes the weights alpha_i = sum_j |<h_i, z_j>|, not the correlations
    assert pwcca(X @ random_orthogonal(rng, 2), Y) != pytest.approx(pwcca(X, Y), abs=1e-6)
    np.testing.assert_allclose(cca(X @ random_orthogonal(rng, 2), Y), cca(X, Y), atol=1e-10)


# ---------------------------------------------------------------------------------------------------
# CKA
# ---------------------------------------------------------------------------------------------------


@given(seed=seeds, n=st.integers(5, 40), p=st.integers(1, 45), q=st.integers(1, 45))
def test_linear_cka_matches_plain_formulas(seed, n, p, q):
    """Both routes (feature space when p + q <= n, Gram matrices otherwise) against the n x n formulas."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) + 2.0
    Y = np.tanh(X[:, :1] * rng.standard_normal(q)) + rng.standard_normal((n, q))
    value = linear_cka(X, Y)
    assert isinstance(value, float)
    assert value == pytest.approx(plain_linear_cka(X, Y), rel=1e-9, abs=1e-12)
    debiased = linear_cka(X, Y, debiased=True)
    assume(song_hsic(X @ X.T, X @ X.T) > 0.0 and song_hsic(Y @ Y.T, Y @ Y.T) > 0.0)
    assert debiased == pytest.approx(song_debiased_cka(X, Y), rel=1e-7, abs=1e-9)


@given(seed=seeds, n=st.integers(4, 30), p=st.integers(1, 6), q=st.integers(1, 6),
       frac=st.sampled_from([0.25, 0.5, 1.0, 2.0]))
def test_rbf_cka_matches_plain_formula(seed, n, p, q, frac):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) * 3.0 + 1.0
    Y = np.sin(X[:, :1] * rng.standard_normal(q)) + 0.5 * rng.standard_normal((n, q))
    value = rbf_cka(X, Y, sigma_frac=frac)
    assert isinstance(value, float)
    assert value == pytest.approx(plain_rbf_cka(X, Y, frac), rel=1e-9, abs=1e-12)


CKA_MEASURES = {
    "linear": linear_cka,
    "debiased": lambda X, Y: linear_cka(X, Y, debiased=True),
    "rbf": rbf_cka,
}


@pytest.mark.parametrize("name", list(CKA_MEASURES))
@given(seed=seeds, n=st.integers(8, 40), p=st.integers(1, 12), q=st.integers(1, 12))
@settings(max_examples=15)
def test_cka_invariant_to_orthogonal_maps_isotropic_scaling_and_translation(name, seed, n, p, q):
    measure = CKA_MEASURES[name]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X @ rng.standard_normal((p, q)) + rng.standard_normal((n, q))
    reference = measure(X, Y)
    X2 = 7.5 * X @ random_orthogonal(rng, p) + rng.standard_normal(p)
    Y2 = 0.02 * Y @ random_orthogonal(rng, q) - 5.0
    assert measure(X2, Y2) == pytest.approx(reference, rel=1e-8, abs=1e-10)
    assert measure(X, 3.0 * X @ random_orthogonal(rng, p) + 1.0) == pytest.approx(1.0, abs=1e-10)


def test_cka_not_invariant_to_general_invertible_maps():
    """Stretching one neuron by 10 (an invertible map) changes CKA; CCA does not notice it."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((200, 3))
    Y = X + 0.5 * rng.standard_normal((200, 3))
    stretch = np.diag([10.0, 1.0, 1.0])
    for measure in CKA_MEASURES.values():
        assert abs(measure(X @ stretch, Y) - measure(X, Y)) > 0.1
        assert measure(X @ stretch, X) < 0.9
    np.testing.assert_allclose(cca(X @ stretch, Y), cca(X, Y), atol=1e-10)


# ---------------------------------------------------------------------------------------------------
# Properties every measure shares
# ---------------------------------------------------------------------------------------------------

MEASURES = {
    "cca": lambda X, Y: float(cca(X, Y).mean()),
    "cca_ridge": lambda X, Y: float(cca(X, Y, eps=0.1).mean()),
    "svcca": lambda X, Y: svcca(X, Y).mean,
    "svcca_linear": lambda X, Y: svcca(X, Y, keep=0.8, variance="linear").mean,
    "pwcca": pwcca,
    **CKA_MEASURES,
}


@pytest.mark.parametrize("name", list(MEASURES))
@given(seed=seeds, n=st.integers(20, 50), p=st.integers(1, 6), q=st.integers(1, 6))
@settings(max_examples=15)
def test_symmetric_self_similar_and_bounded(name, seed, n, p, q):
    measure = MEASURES[name]
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) + 1.0
    Y = np.tanh(X @ rng.standard_normal((p, q))) + rng.standard_normal((n, q))
    value = measure(X, Y)
    if name != "pwcca":  # PWCCA weights by its first argument
        assert measure(Y, X) == pytest.approx(value, abs=1e-10)
    if name != "cca_ridge":  # the ridge shrinks every correlation below 1
        assert measure(X, X) == pytest.approx(1.0, abs=1e-10)
    if name != "debiased":  # the debiased estimator can be negative
        assert -1e-12 <= value <= 1.0 + 1e-12


def test_ridge_shrinks_correlations_of_a_layer_with_itself():
    """rho_i = s_i^2 / (s_i^2 + (n - 1) eps) for X against itself (D_x U^T U D_x = D_x^2)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 4))
    s = np.linalg.svd(X - X.mean(0), compute_uv=False)
    np.testing.assert_allclose(cca(X, X, eps=0.2), s**2 / (s**2 + 29 * 0.2), rtol=1e-12)


# ---------------------------------------------------------------------------------------------------
# Unrelated layers: near 0, with bounds from the sampling distribution
# ---------------------------------------------------------------------------------------------------


def principal_angle_bounds(p, q, n):
    """Sum of squared canonical correlations of a fixed p-dim and a uniformly random q-dim subspace of the
    N = n - 1 dimensional centred space: tr(P_x P_y) has mean p q / N and variance
    2 p q (N - p)(N - q) / (N^2 (N - 1)(N + 2)). Returns (mean, standard deviation)."""
    N = n - 1
    return p * q / N, math.sqrt(2.0 * p * q * (N - p) * (N - q) / (N**2 * (N - 1) * (N + 2)))


def test_cca_svcca_pwcca_of_independent_data():
    """Gaussian Y with iid rows spans a uniformly random subspace of the centred space (and so does its SVD
    reduction, whatever the number of directions kept), whatever X is: sum rho^2 follows principal_angle_bounds;
    mean rho <= sqrt(sum rho^2 / k) and PWCCA <= |alpha|_2 |rho|_2 <= sqrt(sum rho^2)."""
    rng = np.random.default_rng(2026)
    n, p, q = 3000, 30, 20  # mean / sd = sqrt(p q / 2) ~ 17: a wrong formula cannot hide in the tolerance
    X = rng.standard_normal((n, p)) @ random_invertible(rng, p) + 4.0
    Y = rng.standard_normal((n, q))
    mean, sd = principal_angle_bounds(p, q, n)
    rho = cca(X, Y)
    assert abs((rho**2).sum() - mean) <= Z * sd
    assert rho.mean() <= math.sqrt((mean + Z * sd) / q) < 0.15

    result = svcca(X, Y, keep=0.9)
    mean_r, sd_r = principal_angle_bounds(result.kept_x, result.kept_y, n)
    assert abs((result.rho**2).sum() - mean_r) <= Z * sd_r
    assert result.mean <= math.sqrt((mean_r + Z * sd_r) / len(result.rho)) < 0.15

    mean_w, sd_w = principal_angle_bounds(4, 3, n)  # fewer neurons: a bound near 0
    assert pwcca(X[:, :4], Y[:, :3]) <= math.sqrt(mean_w + Z * sd_w) < 0.15


def test_linear_cka_of_independent_data():
    """Given X, with Y iid standard normal: <K, L> = sum_j y_j^T K y_j (K = X_c X_c^T, H K H = K), a sum of q
    independent quadratic forms with mean tr K and variance 2 tr K^2 each. So CKA * |K| |L| lies within
    Z sqrt(2 q) |K| of q tr K, and CKA itself is about sqrt(p q) / n. The relative tolerance is
    Z sqrt(2 / q) |K| / tr K ~ Z sqrt(2 / (p q)) ~ 0.12 here."""
    rng = np.random.default_rng(17)
    n, p, q = 2000, 50, 100
    X = rng.standard_normal((n, p)) * np.linspace(1.0, 2.0, p) + 1.0
    Y = rng.standard_normal((n, q)) - 3.0
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    norm_K, norm_L = np.linalg.norm(Xc.T @ Xc), np.linalg.norm(Yc.T @ Yc)
    trace_K = (Xc**2).sum()
    value = linear_cka(X, Y)
    assert abs(value * norm_K * norm_L - q * trace_K) <= Z * math.sqrt(2.0 * q) * norm_K
    assert value <= (q * trace_K + Z * math.sqrt(2.0 * q) * norm_K) / (norm_K * norm_L) < 0.05


def test_debiased_cka_is_centred_on_zero_for_independent_data():
    """For independent X and Y with exchangeable rows E[debiased CKA] = 0 exactly: averaging L over row
    permutations gives a I + b 11^T, whose unbiased HSIC with any K is 0, and the denominator is
    permutation-invariant. The plain estimator is biased upwards. Means over R replicates, tolerance Z
    standard errors estimated from the replicates; few datapoints and many neurons make a wrong coefficient
    show (its bias grows like sqrt(p q) / n^2 while the standard error shrinks like 1 / (n sqrt(R)))."""
    rng = np.random.default_rng(99)
    R, n, p, q = 1000, 8, 20, 20
    debiased, plain = np.empty(R), np.empty(R)
    for r in range(R):
        X = rng.standard_normal((n, p)) + 1.0
        Y = rng.standard_normal((n, q))
        debiased[r] = linear_cka(X, Y, debiased=True)
        plain[r] = linear_cka(X, Y)
    se_debiased = debiased.std(ddof=1) / math.sqrt(R)
    se_plain = plain.std(ddof=1) / math.sqrt(R)
    assert abs(debiased.mean()) <= Z * se_debiased
    assert plain.mean() > Z * se_plain


def test_rbf_cka_of_independent_data():
    """Under independence (X, Y) is distributed as (X, Y permuted by rows), and for any permutation P,
    E_P <K_c, P L_c P^T> = tr(K_c) tr(L_c) / (n - 1) exactly (K_c, L_c doubly centred). The observed CKA must
    lie within Z permutation standard deviations of that mean, and the permutations' average within Z
    standard errors of it."""
    rng = np.random.default_rng(4)
    n = 300
    X = rng.standard_normal((n, 5))
    Y = rng.standard_normal((n, 3)) ** 2
    H = centring_matrix(n)
    Kc, Lc = H @ plain_rbf_gram(X, 0.5) @ H, H @ plain_rbf_gram(Y, 0.5) @ H
    null_mean = np.trace(Kc) * np.trace(Lc) / (n - 1) / (np.linalg.norm(Kc) * np.linalg.norm(Lc))
    permuted = np.array([rbf_cka(X, Y[rng.permutation(n)]) for _ in range(40)])
    sd = permuted.std(ddof=1)
    assert abs(permuted.mean() - null_mean) <= Z * sd / math.sqrt(len(permuted))
    value = rbf_cka(X, Y)
    assert abs(value - null_mean) <= Z * sd
    assert value < 0.1


# ---------------------------------------------------------------------------------------------------
# similarity_matrix
# ---------------------------------------------------------------------------------------------------

PAIRWISE = {
    "linear_cka": lambda X, Y, **kw: linear_cka(X, Y),
    "debiased_cka": lambda X, Y, **kw: linear_cka(X, Y, debiased=True),
    "rbf_cka": lambda X, Y, **kw: rbf_cka(X, Y, **kw),
    "cca": lambda X, Y, **kw: float(cca(X, Y, **kw).mean()),
    "svcca": lambda X, Y, **kw: svcca(X, Y, **kw).mean,
    "pwcca": lambda X, Y, **kw: pwcca(X, Y),
}

KEYWORDS = {"rbf_cka": {"sigma_frac": 0.7}, "cca": {"eps": 0.05}, "svcca": {"keep": 0.9, "variance": "linear"}}


def layers(rng, n, widths):
    base = rng.standard_normal((n, 3))
    return [np.tanh(base @ rng.standard_normal((3, w)) + 0.7 * rng.standard_normal((n, w))) for w in widths]


def pairwise(acts_a, acts_b, metric, **kw):
    return np.array([[PAIRWISE[metric](a, b, **kw) for b in acts_b] for a in acts_a])


@pytest.mark.parametrize("metric", similarity.METRICS)
@pytest.mark.parametrize("n, widths_a, widths_b", [(60, (3, 5, 2, 6), (4, 1, 5)),  # feature-space CKA route
                                                   (12, (9, 10, 4), (11, 8))])  # Gram route
def test_similarity_matrix_equals_pairwise_calls(metric, n, widths_a, widths_b):
    rng = np.random.default_rng(8)
    acts_a, acts_b = layers(rng, n, widths_a), layers(rng, n, widths_b)
    kw = KEYWORDS.get(metric, {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SimilarityWarning)  # n = 12: CCA of wide layers is degenerate
        matrix = similarity_matrix(acts_a, acts_b, metric=metric, **kw)
        square = similarity_matrix(acts_a, metric=metric, **kw)
        expected = pairwise(acts_a, acts_b, metric, **kw)
        expected_square = pairwise(acts_a, acts_a, metric, **kw)
        same_list = similarity_matrix(acts_a, acts_a, metric=metric, **kw)
    assert isinstance(matrix, np.ndarray) and matrix.dtype == np.float64
    assert matrix.shape == (len(widths_a), len(widths_b))
    np.testing.assert_allclose(matrix, expected, rtol=1e-9, atol=1e-8)  # 1e-8: eigenvalue route of the CCA means
    np.testing.assert_allclose(square, expected_square, rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(same_list, square, atol=1e-12)


@pytest.mark.parametrize("metric", ["linear_cka", "debiased_cka", "rbf_cka"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_similarity_matrix_in_chunks(metric, dtype, monkeypatch):
    """With room for one Gram vector per side every block is computed separately, and with float32 Gram
    vectors cast to float64 7 columns at a time, the products still agree with the pairwise calls."""
    rng = np.random.default_rng(9)
    n = 10
    acts_a, acts_b = layers(rng, n, (12, 9, 10)), layers(rng, n, (11, 14))
    expected = pairwise(acts_a, acts_b, metric), pairwise(acts_a, acts_a, metric)
    acts_a, acts_b = [a.astype(dtype) for a in acts_a], [b.astype(dtype) for b in acts_b]
    monkeypatch.setattr(similarity, "GRAM_STACK_MAX_BYTES", 2 * 8 * n * (n + 1) // 2)
    monkeypatch.setattr(similarity, "_PRODUCT_BLOCK", 7)
    chunked = similarity_matrix(acts_a, acts_b, metric=metric), similarity_matrix(acts_a, metric=metric)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    for a, b in zip(expected, chunked):
        np.testing.assert_allclose(b, a, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(chunked[1], chunked[1].T, atol=1e-15)


def test_similarity_matrix_accepts_a_stack_and_float32():
    rng = np.random.default_rng(10)
    stack = np.stack(layers(rng, 50, (6, 6, 6))).astype(np.float32)
    matrix = similarity_matrix(stack)
    assert matrix.dtype == np.float64
    np.testing.assert_allclose(matrix, similarity_matrix(list(stack.astype(np.float64))), rtol=1e-5)
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# Input handling: dtypes, layouts, warnings, errors
# ---------------------------------------------------------------------------------------------------


def test_float32_and_integer_inputs_agree_with_float64():
    rng = np.random.default_rng(12)
    X, Y = related_pair(rng, 300, 5, 4)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    for name, measure in MEASURES.items():
        value32, value64 = measure(X32, Y32), measure(X, Y)
        assert isinstance(value32, float)
        assert value32 == pytest.approx(value64, abs=1e-4), name
    integers = rng.integers(-5, 6, size=(40, 3))
    assert linear_cka(integers, integers[:, :2]) == pytest.approx(linear_cka(integers.astype(float),
                                                                             integers[:, :2].astype(float)))
    assert cca(integers, integers[:, :2]).dtype == np.float64


def test_non_contiguous_inputs():
    rng = np.random.default_rng(13)
    wide = rng.standard_normal((80, 10))
    X, Y = wide[:, ::2], np.asfortranarray(wide[:, 1::3] ** 2)
    Xc, Yc = np.ascontiguousarray(X), np.ascontiguousarray(Y)
    for name, measure in MEASURES.items():
        assert measure(X, Y) == pytest.approx(measure(Xc, Yc), abs=1e-12), name
    assert pwcca(X[::-1], Y[::-1]) == pytest.approx(pwcca(Xc, Yc), abs=1e-10)  # same datapoints, reversed order


def test_warning_when_neurons_reach_datapoints():
    rng = np.random.default_rng(14)
    X, Y = rng.standard_normal((20, 20)), rng.standard_normal((20, 3))
    for call in (lambda: cca(X, Y), lambda: cca(Y, X), lambda: pwcca(X, Y)):
        with pytest.warns(SimilarityWarning, match="20 neurons but there are only 20 datapoints.*transpose"):
            call()
    with pytest.warns(SimilarityWarning, match="2 pair\\(s\\) of layers"):
        similarity_matrix([X, Y], metric="cca")  # (X, X) and (X, Y); (Y, X) is the same pair
    # subspaces of 12 + 10 dimensions in 19 centred dimensions: 3 correlations are forced to 1
    A, B = rng.standard_normal((20, 12)), rng.standard_normal((20, 10))
    with pytest.warns(SimilarityWarning, match="3 canonical correlation"):
        rho = cca(A, B)
    np.testing.assert_allclose(rho[:3], 1.0, atol=1e-10)
    with pytest.warns(SimilarityWarning, match="12 \\+ 10 dimensions"):
        svcca(A, B, keep=1.0)


def test_no_warning_where_measures_are_meaningful():
    rng = np.random.default_rng(15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X, Y = rng.standard_normal((30, 8)), rng.standard_normal((30, 6))
        cca(X, Y), svcca(X, Y), pwcca(X, Y)
        wide = rng.standard_normal((10, 50))  # CKA is fine with more neurons than datapoints
        linear_cka(wide, wide[:, :20] ** 2), rbf_cka(wide, wide), similarity_matrix([wide, wide ** 2])
        svcca(wide, wide[:, ::-1], keep=0.5)  # reduced to few directions first


def test_debiased_cka_undefined_gives_nan_and_warning():
    """A one-hot code (each datapoint its own neuron): the unbiased HSIC of the layer with itself is 0."""
    X = np.eye(6)
    Y = np.random.default_rng(1).standard_normal((6, 2))
    assert song_hsic(X @ X.T, X @ X.T) == pytest.approx(0.0, abs=1e-15)
    with pytest.warns(SimilarityWarning, match="undefined"):
        assert math.isnan(linear_cka(X, Y, debiased=True))
    with pytest.warns(SimilarityWarning, match="nan"):
        matrix = similarity_matrix([X, Y], metric="debiased_cka")
    assert np.isnan(matrix[0]).all() and np.isnan(matrix[:, 0]).all() and matrix[1, 1] == pytest.approx(1.0)


GOOD = np.random.default_rng(0).standard_normal((6, 2))

BAD_PAIRS = [
    (np.ones(6), GOOD, ValueError, "2-D"),
    (np.ones((6, 2, 1)), GOOD, ValueError, "2-D"),
    (GOOD, GOOD[:5], ValueError, "6 datapoints .* but Y has 5"),
    (GOOD[:1], GOOD[:1], ValueError, "at least 2"),
    (np.ones((6, 0)), GOOD, ValueError, "no neurons"),
    (np.where(np.eye(6, 2) > 0, np.nan, GOOD), GOOD, ValueError, "NaN or infinite"),
    (GOOD, np.where(np.eye(6, 2) > 0, np.inf, GOOD), ValueError, "NaN or infinite"),
    (GOOD.astype(complex), GOOD, TypeError, "real numbers"),
    (np.array([["a", "b"]] * 6), GOOD, TypeError, "real numbers"),
    ([[1.0, 2.0], [3.0]], GOOD, TypeError, "does not convert"),
    (np.ones((6, 2)), GOOD, ValueError, "constant over the datapoints"),
    (GOOD, np.full((6, 2), 0.1), ValueError, "Y is constant"),  # the mean 0.1 * 6 / 6 is not exactly 0.1
]

ALL_CALLS = {
    "cca": cca, "svcca": svcca, "pwcca": pwcca, "linear_cka": linear_cka, "rbf_cka": rbf_cka,
    "debiased": lambda X, Y: linear_cka(X, Y, debiased=True),
    "matrix": lambda X, Y: similarity_matrix([X], [Y]),
    "matrix_svcca": lambda X, Y: similarity_matrix([X], [Y], metric="svcca"),
}


@pytest.mark.parametrize("call", list(ALL_CALLS))
@pytest.mark.parametrize("X, Y, error, message", BAD_PAIRS, ids=[case[-1] for case in BAD_PAIRS])
def test_bad_activations(call, X, Y, error, message):
    if call.startswith("matrix"):  # similarity_matrix names the layers
        message = {"6 datapoints .* but Y has 5": "acts_b\\[0\\] has 5 datapoints",
                   "Y is constant": "acts_b\\[0\\] is constant"}.get(message, message)
    with pytest.raises(error, match=message):
        ALL_CALLS[call](X, Y)


@pytest.mark.parametrize("call, error, message", [
    (lambda: cca(GOOD, GOOD, eps=-1.0), ValueError, "eps .* >= 0"),
    (lambda: cca(GOOD, GOOD, eps=float("nan")), ValueError, "finite"),
    (lambda: cca(GOOD, GOOD, eps="1"), TypeError, "real number"),
    (lambda: cca(GOOD, GOOD, directions="yes"), TypeError, "directions must be True or False"),
    (lambda: svcca(GOOD, GOOD, keep=0.0), ValueError, "keep .* in \\(0, 1\\]"),
    (lambda: svcca(GOOD, GOOD, keep=1.5), ValueError, "keep"),
    (lambda: svcca(GOOD, GOOD, keep=True), TypeError, "keep must be a real number"),
    (lambda: svcca(GOOD, GOOD, variance="cubic"), ValueError, "variance must be one of"),
    (lambda: linear_cka(GOOD, GOOD, debiased=1), TypeError, "debiased must be True or False"),
    (lambda: linear_cka(GOOD[:3], GOOD[:3], debiased=True), ValueError, "at least 4 datapoints"),
    (lambda: rbf_cka(GOOD, GOOD, sigma_frac=0.0), ValueError, "sigma_frac .* > 0"),
    (lambda: rbf_cka(np.array([[0.0]] * 4 + [[1.0]] * 2), GOOD), ValueError, "median squared distance"),
    (lambda: similarity_matrix([GOOD], metric="cka"), ValueError, "metric must be one of"),
    (lambda: similarity_matrix([GOOD], metric="linear_cka", eps=0.1), TypeError, "takes no keyword"),
    (lambda: similarity_matrix([GOOD], metric="svcca", sigma_frac=0.1), TypeError, "takes only keep, variance"),
    (lambda: similarity_matrix([GOOD], metric="svcca", keep=2.0), ValueError, "keep"),
    (lambda: similarity_matrix(GOOD), TypeError, "single 2-D array"),
    (lambda: similarity_matrix([]), ValueError, "acts_a is empty"),
    (lambda: similarity_matrix(3), TypeError, "sequence of"),
    (lambda: similarity_matrix([GOOD, GOOD[:4]]), ValueError, "acts_a\\[1\\] has 4 datapoints"),
    (lambda: similarity_matrix([GOOD], [GOOD[:, 0]]), ValueError, "acts_b\\[0\\] must be a 2-D"),
    (lambda: similarity_matrix([GOOD[:3]], metric="debiased_cka"), ValueError, "at least 4 datapoints"),
])
def test_bad_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------------------------------------------
# CuPy
# ---------------------------------------------------------------------------------------------------


@pytest.mark.cupy
def test_cupy_matches_numpy():
    import cupy

    rng = np.random.default_rng(16)
    X, Y = related_pair(rng, 120, 6, 5)
    for dtype in (np.float64, np.float32):
        Xd, Yd = cupy.asarray(X, dtype=dtype), cupy.asarray(Y, dtype=dtype)
        for name, measure in MEASURES.items():
            value = measure(Xd, Yd)
            assert isinstance(value, float)
            assert value == pytest.approx(measure(X.astype(dtype), Y.astype(dtype)), abs=1e-6), name
        rho, a, b = cca(Xd, Yd, directions=True)
        assert all(isinstance(r, np.ndarray) for r in (rho, a, b))
        result = svcca(Xd, Yd)
        assert isinstance(result.rho, np.ndarray)
        for metric in similarity.METRICS:
            acts = [Xd, Yd, Xd[:, :3]]
            host = [X.astype(dtype), Y.astype(dtype), X[:, :3].astype(dtype)]
            matrix = similarity_matrix(acts, metric=metric)
            assert isinstance(matrix, np.ndarray)
            np.testing.assert_allclose(matrix, similarity_matrix(host, metric=metric), atol=1e-6)
    with pytest.raises(TypeError, match="same device"):
        linear_cka(cupy.asarray(X), Y)


def test_neuron_correlations_against_numpy_corrcoef():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 4))
    Y = np.column_stack([X[:, 2] * -3.0 + 1.0, rng.normal(size=50), rng.normal(size=50)])
    r = similarity.neuron_correlations(X, Y)
    full = np.abs(np.corrcoef(X.T, Y.T)[:4, 4:])
    np.testing.assert_allclose(r, full.max(axis=1), rtol=1e-12)
    assert r[2] == pytest.approx(1.0)  # an affine copy of neuron 2 sits in Y
    # a constant neuron gets 0, not NaN
    X[:, 0] = 7.0
    assert similarity.neuron_correlations(X, Y)[0] == 0.0
    with pytest.raises(ValueError):
        similarity.neuron_correlations(X, Y[:10])
