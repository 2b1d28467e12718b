"""tinyid.jacobian: the hand-written input-output Jacobian against finite differences, NumPy's SVD and theory.

The float64 NumPy path is the oracle. Statistical checks use fixed seeds and a tolerance of a few standard
errors estimated from the samples themselves (Hutchinson probes, binomial fractions, layers of a net).
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyid import jacobian, theory
from tinyid.backend import to_numpy
from tinyid.layers import MLP, Dense

Z = 5.0  # standard errors allowed in the statistical tests

# kinks of phi or phi' (where a central difference straddles a jump of phi')
KINKS = {"relu": (0.0,), "leaky_relu": (0.0,), "hard_tanh": (-1.0, 1.0), "selu": (0.0,), "elu": (0.0,)}
ACTIVATIONS = ["linear", "sigmoid", "tanh", "softsign", "relu", "leaky_relu", "hard_tanh", "elu", "selu", "gelu"]


def pre_activations(layers, x):
    """Every layer's pre-activation s^l (float64 NumPy), recomputed here independently of the library."""
    out, z = [], np.asarray(x, dtype=np.float64)
    for layer in layers:
        s = z @ to_numpy(layer.W) + to_numpy(layer.b)
        out.append(s)
        z = layer.activation(s)
    return out


def inputs_away_from_kinks(model, n_rows, rng, scale=1.0, margin=1e-3):
    """``n_rows`` N(0, scale^2) inputs, keeping only rows where no unit's pre-activation is within ``margin``
    of a kink of its activation, so that central differences of step 1e-6 never straddle one."""
    rows = []
    while len(rows) < n_rows:
        x = scale * rng.standard_normal((4 * n_rows, model.sizes[0]))
        ok = np.ones(len(x), dtype=bool)
        for layer, s in zip(model.layers, pre_activations(model.layers, x)):
            for kink in KINKS.get(layer.activation.name, ()):
                ok &= (np.abs(s - kink) > margin).all(axis=1)
        rows.extend(x[ok])
    return np.array(rows[:n_rows])


def central_difference_jacobian(model, x, h=1e-6):
    """(n_batch, n_out, n_in) by central differences of ``model.forward``, one input coordinate at a time."""
    n_batch, n_in = x.shape
    jac = np.empty((n_batch, model.sizes[-1], n_in))
    for j in range(n_in):
        step = np.zeros_like(x)
        step[:, j] = h
        jac[:, :, j] = (to_numpy(model.forward(x + step)) - to_numpy(model.forward(x - step))) / (2 * h)
    return jac


def exact_moments(model, x):
    """Mean, second moment and variance of the pooled eigenvalues of J J^T (n_out per example)."""
    eig = jacobian.singular_values(model, x) ** 2  # the remaining n_out - min(n_in, n_out) eigenvalues are 0
    n = model.sizes[-1]
    mean = (eig.sum(axis=1) / n).mean()
    second = ((eig**2).sum(axis=1) / n).mean()
    return {"mean": mean, "second": second, "variance": second - mean**2}


# ---------------------------------------------------------------------------------------------------
# The exact Jacobian against finite differences
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(7, 9, 6, 4), (3, 8, 5, 6)], ids=["narrowing", "widening"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_jacobian_matches_central_differences(activation, sizes):
    """Every entry of J against float64 central differences; both accumulation orders (n_in > n_out or not)."""
    model = MLP(list(sizes), activation=activation, init="xavier_normal", bias_init=0.1, seed=11, dtype="float64")
    x = inputs_away_from_kinks(model, 5, np.random.default_rng(5), scale=0.8)
    exact = to_numpy(jacobian.input_output_jacobian(model, x))
    assert exact.shape == (5, sizes[-1], sizes[0])
    np.testing.assert_allclose(exact, central_difference_jacobian(model, x), rtol=1e-6, atol=1e-8)


def test_jacobian_of_a_saturated_hard_tanh_net_has_zero_rows():
    """Units held at +-1 pass no derivative: J has exactly those rows zero (and FD agrees)."""
    model = MLP([4, 6, 3], activation="hard_tanh", init="xavier_normal", seed=2, dtype="float64")
    x = inputs_away_from_kinks(model, 6, np.random.default_rng(0), scale=3.0)
    saturated = np.abs(pre_activations(model.layers, x)[0]) > 1.0
    assert saturated.any() and not saturated.all()
    exact = to_numpy(jacobian.input_output_jacobian(model, x))
    np.testing.assert_allclose(exact, central_difference_jacobian(model, x), rtol=1e-6, atol=1e-8)
    # J = W2^T D1 W1^T: saturated hidden units contribute nothing
    w1, w2 = (to_numpy(layer.W) for layer in model.layers)
    by_hand = np.einsum("ko,bk,ik->boi", w2, (~saturated).astype(float), w1)
    np.testing.assert_allclose(exact, by_hand, rtol=1e-12, atol=1e-14)


def test_single_linear_layer_jacobian_is_w_transposed():
    W = np.arange(6.0).reshape(2, 3)
    layer = Dense(W, np.zeros(3))
    jac = jacobian.input_output_jacobian(layer, np.ones((4, 2)))
    assert jac.shape == (4, 3, 2)
    np.testing.assert_array_equal(jac, np.broadcast_to(W.T, (4, 3, 2)))


@pytest.mark.parametrize("sizes", [(5, 6, 3), (3, 6, 5)])
def test_all_linear_net_jacobian_is_the_product_of_weights(sizes):
    model = MLP(list(sizes), activation="linear", seed=0, dtype="float64")
    jac = to_numpy(jacobian.input_output_jacobian(model, np.zeros((2, sizes[0]))))
    product = (to_numpy(model.layers[0].W) @ to_numpy(model.layers[1].W)).T
    np.testing.assert_allclose(jac, np.broadcast_to(product, jac.shape), rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------------------------------------
# jvp and vjp
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu"])
def test_jvp_and_vjp_match_the_exact_jacobian(activation):
    model = MLP([6, 10, 8, 4], activation=activation, bias_init=-0.05, seed=4, dtype="float64")
    rng = np.random.default_rng(8)
    x, v, u = rng.standard_normal((7, 6)), rng.standard_normal((7, 6)), rng.standard_normal((7, 4))
    jac = to_numpy(jacobian.input_output_jacobian(model, x))
    np.testing.assert_allclose(to_numpy(jacobian.jvp(model, x, v)), np.einsum("boi,bi->bo", jac, v),
                               rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(to_numpy(jacobian.vjp(model, x, u)), np.einsum("boi,bo->bi", jac, u),
                               rtol=1e-12, atol=1e-13)


def test_vjp_is_backpropagation():
    """J^T u is the input gradient MLP.backward returns for dC/dlogits = u."""
    model = MLP([5, 7, 3], activation="softsign", seed=1, dtype="float64")
    rng = np.random.default_rng(2)
    x, u = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
    _, caches = model.forward_train(x)
    _, dx = model.backward(u, caches, return_input_grad=True)
    np.testing.assert_allclose(to_numpy(jacobian.vjp(model, x, u)), to_numpy(dx), rtol=1e-13, atol=1e-15)


@settings(max_examples=20)
@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=5), n_batch=st.integers(1, 5),
       activation=st.sampled_from(ACTIVATIONS), seed=st.integers(0, 2**16))
def test_adjoint_identity(sizes, n_batch, activation, seed):
    """<J v, u> = <v, J^T u> for every example, any widths (odd and prime ones included)."""
    model = MLP(sizes, activation=activation, bias_init=0.1, seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_batch, sizes[0]))
    v, u = rng.standard_normal((n_batch, sizes[0])), rng.standard_normal((n_batch, sizes[-1]))
    left = (to_numpy(jacobian.jvp(model, x, v)) * u).sum(axis=1)
    right = (v * to_numpy(jacobian.vjp(model, x, u))).sum(axis=1)
    scale = np.abs(to_numpy(jacobian.jvp(model, x, v))).sum(axis=1) * np.abs(u).sum(axis=1) + 1e-300
    assert np.all(np.abs(left - right) <= 1e-12 * scale + 1e-300)


def test_non_contiguous_inputs_give_the_same_products():
    model = MLP([4, 6, 3], activation="tanh", seed=0, dtype="float64")
    rng = np.random.default_rng(1)
    x_wide, v_wide = rng.standard_normal((5, 8)), rng.standard_normal((5, 8))
    x, v = x_wide[:, ::2], v_wide[:, 1::2]
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(to_numpy(jacobian.jvp(model, x, v)),
                                  to_numpy(jacobian.jvp(model, x.copy(), v.copy())))


# ---------------------------------------------------------------------------------------------------
# Spectra
# ---------------------------------------------------------------------------------------------------


def test_singular_values_match_numpy_svd():
    model = MLP([6, 9, 5], activation="tanh", bias_init=0.2, seed=3, dtype="float64")
    x = np.random.default_rng(0).standard_normal((4, 6))
    sv = jacobian.singular_values(model, x)
    assert sv.shape == (4, 5) and sv.dtype == np.float64
    assert np.all(np.diff(sv, axis=1) <= 0)
    jac = central_difference_jacobian(model, x)
    for b in range(4):
        np.testing.assert_allclose(sv[b], np.linalg.svd(jac[b], compute_uv=False), rtol=1e-7)


@pytest.mark.parametrize("probe", jacobian.PROBES)
@pytest.mark.parametrize("sizes", [(6, 9, 7, 5), (4, 8, 7)], ids=["narrowing", "widening"])
def test_randomized_moments_match_exact(probe, sizes):
    """Hutchinson estimates within Z of their own standard errors of the exact moments; the widening net checks
    the normalisation by n_out (J J^T then has zero eigenvalues that count)."""
    model = MLP(list(sizes), activation="tanh", bias_init=0.1, seed=3, dtype="float64")
    x = np.random.default_rng(1).standard_normal((4, sizes[0]))
    estimate = jacobian.spectrum_moments(model, x, n_probes=64, seed=7, probe=probe)
    exact = exact_moments(model, x)
    assert estimate["n_eigenvalues"] == sizes[-1] and estimate["n_probes"] == 64
    for key in ("mean", "second", "variance"):
        se = estimate[key + "_se"]
        assert 0 < se < 0.5 * abs(exact[key])
        assert abs(estimate[key] - exact[key]) < Z * se, (key, estimate[key], exact[key], se)


def test_moment_standard_errors_are_calibrated():
    """Over 40 seeds the errors divided by their standard errors have a root mean square near 1: about
    sqrt(15/13) = 1.07 for a t with 15 degrees of freedom, a little more since the per-probe samples are skewed
    (measured over 400 seeds: 1.08, 1.06). A standard error off by sqrt(n_probes) = 4 would give 0.27 or 4.3."""
    model = MLP([5, 8, 6], activation="tanh", seed=0, dtype="float64")
    x = np.random.default_rng(2).standard_normal((20, 5))
    exact = exact_moments(model, x)
    z = [[(est[k] - exact[k]) / est[k + "_se"] for k in ("mean", "second")]
         for est in (jacobian.spectrum_moments(model, x, n_probes=16, seed=seed) for seed in range(40))]
    rms = np.sqrt(np.mean(np.square(z), axis=0))
    assert np.all((rms > 0.6) & (rms < 1.7)), rms


def test_one_probe_has_no_standard_error():
    model = MLP([3, 4], seed=0, dtype="float64")
    estimate = jacobian.spectrum_moments(model, np.ones((2, 3)), n_probes=1)
    assert math.isfinite(estimate["mean"]) and math.isnan(estimate["mean_se"])


def test_probes_are_split_into_blocks_without_changing_the_estimate(monkeypatch):
    model = MLP([4, 6, 5], activation="tanh", seed=0, dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 4))
    whole = jacobian.spectrum_moments(model, x, n_probes=5, seed=1)
    monkeypatch.setattr(jacobian, "_BLOCK_ENTRIES", 1)  # one probe at a time
    pieces = jacobian.spectrum_moments(model, x, n_probes=5, seed=1)
    for key in ("mean", "second", "mean_se"):
        assert pieces[key] == pytest.approx(whole[key], rel=1e-12)


@pytest.mark.parametrize("method", ["krylov", "subspace"])
@pytest.mark.parametrize("sizes, k, n_iter, oversample", [((40, 50, 30), 3, 8, 4), ((9, 12, 8), 4, 1, 8)])
def test_top_singular_values_match_exact(sizes, k, n_iter, oversample, method):
    """Both iterations converge to the exact top k (exactly when the basis spans everything), and each
    estimate is a Rayleigh-Ritz lower bound."""
    model = MLP(list(sizes), activation="tanh", bias_init=0.1, seed=0, dtype="float64")
    x = np.random.default_rng(1).standard_normal((3, sizes[0]))
    exact = jacobian.singular_values(model, x)[:, :k]
    top = jacobian.top_singular_values(model, x, k=k, n_iter=n_iter, oversample=oversample, seed=3, method=method)
    assert top.shape == (3, k) and top.dtype == np.float64
    assert np.all(top <= exact * (1 + 1e-12))
    np.testing.assert_allclose(top, exact, rtol=1e-4)


def test_block_krylov_beats_subspace_iteration_on_a_flat_spectrum():
    """A deep orthogonal tanh net is nearly isometric: tiny gaps between the top singular values. With the same
    start vectors and iterations the Krylov basis contains the subspace-iteration basis, so it is never worse
    (Rayleigh-Ritz on a larger subspace) and here it is much better."""
    model = MLP([24] * 9, activation="tanh", init="orthogonal", seed=0, dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 24))
    exact = jacobian.singular_values(model, x)[:, :2]
    errors = {method: np.abs(jacobian.top_singular_values(model, x, k=2, n_iter=2, oversample=2, method=method)
                             / exact - 1).max() for method in ("krylov", "subspace")}
    assert errors["krylov"] < 0.5 * errors["subspace"], errors


def test_deep_orthogonal_linear_net_is_exactly_isometric():
    """Saxe et al.: a product of orthogonal matrices is orthogonal, every singular value is 1; Rademacher
    probes of J J^T = I are exact, so both moments are 1 with zero standard error."""
    model = MLP([8] * 13, activation="linear", init="orthogonal", seed=5, dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 8))
    np.testing.assert_allclose(jacobian.singular_values(model, x), 1.0, rtol=1e-12)
    np.testing.assert_allclose(jacobian.top_singular_values(model, x, k=3, n_iter=1), 1.0, rtol=1e-12)
    moments = jacobian.spectrum_moments(model, x, n_probes=8)
    for key in ("mean", "second"):
        assert moments[key] == pytest.approx(1.0, rel=1e-12)
        assert moments[key + "_se"] < 1e-12
    assert abs(moments["variance"]) < 1e-12


@pytest.mark.parametrize("sigma", [0.9, 1.05])
def test_identity_initialized_hard_tanh_net_has_a_bernoulli_spectrum(sigma):
    """W = sigma I, no bias: J = sigma^L prod_l D^l is diagonal, so every singular value is sigma^L or 0.

    The MLP's L - 1 hidden layers can saturate, its linear logits layer cannot: the fraction of nonzero
    singular values is tinyid.theory.identity_spectrum(sigma, q0, L - 1)'s alpha (within Z binomial standard
    errors) and the nonzero eigenvalue of J J^T is that function's sigma^(2(L-1)) times sigma^2."""
    n, n_layers, q0, n_batch = 30, 6, 0.8, 40
    model = MLP([n] * (n_layers + 1), activation="hard_tanh", init=("identity", {"sigma": sigma}), seed=0,
                dtype="float64")
    x = math.sqrt(q0) * np.random.default_rng(4).standard_normal((n_batch, n))
    sv = jacobian.singular_values(model, x)
    alpha, eigenvalue = theory.identity_spectrum(sigma, q0, n_layers - 1, "hard_tanh")
    nonzero = sv > 0.5 * sigma**n_layers
    np.testing.assert_allclose(sv[nonzero] ** 2, eigenvalue * sigma**2, rtol=1e-12)
    assert np.all(sv[~nonzero] == 0.0)
    # unit j of example b passes iff |sigma^l x_bj| < 1 for l = 1..L-1
    powers = sigma ** np.arange(1, n_layers)
    unsaturated = (np.abs(x[:, :, None] * powers) < 1.0).all(axis=2)
    np.testing.assert_array_equal(nonzero.sum(axis=1), unsaturated.sum(axis=1))
    fraction = nonzero.mean()
    assert abs(fraction - alpha) < Z * math.sqrt(alpha * (1 - alpha) / nonzero.size)


# ---------------------------------------------------------------------------------------------------
# Each layer's Jacobian
# ---------------------------------------------------------------------------------------------------


def test_layer_singular_values_are_those_of_d_w_transposed():
    model = MLP([5, 7, 6, 3], activation="tanh", bias_init=0.1, seed=2, dtype="float64")
    x = np.random.default_rng(3).standard_normal((4, 5))
    per_layer = jacobian.layer_singular_values(model, x)
    assert [a.shape for a in per_layer] == [(4, 5), (4, 6), (4, 3)]
    for layer, s, values in zip(model.layers, pre_activations(model.layers, x), per_layer):
        d = layer.activation.derivative(s)
        for b in range(4):
            expected = np.linalg.svd(d[b][:, None] * to_numpy(layer.W).T, compute_uv=False)
            np.testing.assert_allclose(values[b], expected, rtol=1e-12)
    np.testing.assert_allclose(per_layer[-1], np.broadcast_to(np.linalg.svd(to_numpy(model.layers[-1].W),
                                                                            compute_uv=False), (4, 3)))
    means = jacobian.mean_layer_singular_values(model, x)
    np.testing.assert_allclose(means, [a.mean() for a in per_layer])
    first_two = jacobian.layer_singular_values(model, x, max_examples=2)
    np.testing.assert_array_equal(first_two[1], per_layer[1][:2])


@pytest.mark.parametrize("init, n_var_w", [("uniform_fanin", 1 / 3), ("xavier_uniform", 1.0)])
def test_mean_layer_singular_value_of_square_random_layers(init, n_var_w):
    """Why Glorot & Bengio see ~0.5 vs ~0.8: singular values of a square n x n matrix with iid entries of
    variance v follow the quarter-circle law on [0, 2 sqrt(n v)], whose mean is 8 sqrt(n v) / (3 pi): 0.490 for
    the standard init (n v = 1/3) and 0.849 for the normalized one (n v = 1). Linear layers (D = I); the
    standard error comes from the spread over the 12 independent layers (the finite-size bias at n = 80,
    measured over 200 layers, is below 0.1% and below that run's own standard error)."""
    model = MLP([80] * 13, activation="linear", init=init, seed=0, dtype="float64")
    means = jacobian.mean_layer_singular_values(model, np.zeros((1, 80)))
    predicted = 8.0 * math.sqrt(n_var_w) / (3.0 * math.pi)
    se = means.std(ddof=1) / math.sqrt(len(means))
    assert abs(means.mean() - predicted) < Z * se


# ---------------------------------------------------------------------------------------------------
# Backends, inputs
# ---------------------------------------------------------------------------------------------------


def test_backends_agree_with_float64_numpy(backend_name):
    reference = MLP([6, 9, 7, 4], activation="tanh", bias_init=0.1, seed=9, dtype="float64")
    model = MLP([6, 9, 7, 4], activation="tanh", bias_init=0.1, seed=9, dtype="float64", backend=backend_name)
    rng = np.random.default_rng(0)
    x, v, u = rng.standard_normal((5, 6)), rng.standard_normal((5, 6)), rng.standard_normal((5, 4))
    for f, args in ((jacobian.jvp, (x, v)), (jacobian.vjp, (x, u)), (jacobian.input_output_jacobian, (x,))):
        np.testing.assert_allclose(to_numpy(f(model, *args)), to_numpy(f(reference, *args)), rtol=1e-12, atol=1e-14)
    for f in (jacobian.singular_values, jacobian.top_singular_values, jacobian.mean_layer_singular_values):
        np.testing.assert_allclose(f(model, x), f(reference, x), rtol=1e-10)
    ours, theirs = jacobian.spectrum_moments(model, x, seed=2), jacobian.spectrum_moments(reference, x, seed=2)
    for key in ("mean", "second", "mean_se"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-10)
    assert model._workspace.nbytes == 0  # the training step buffers were never touched


def test_float32_model_agrees_with_float64():
    model64 = MLP([6, 9, 4], activation="tanh", seed=1, dtype="float64")
    model32 = MLP([6, 9, 4], activation="tanh", seed=1, dtype="float32")
    x = np.random.default_rng(0).standard_normal((3, 6))
    jac32 = jacobian.input_output_jacobian(model32, x)
    assert jac32.dtype == np.float32
    np.testing.assert_allclose(jac32, jacobian.input_output_jacobian(model64, x), rtol=1e-4, atol=1e-6)


def test_accepts_a_list_of_layers_a_dense_or_any_model_with_layers():
    model = MLP([4, 5, 3], activation="tanh", seed=0, dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 4))
    expected = jacobian.input_output_jacobian(model, x)

    class Wrapper:
        layers = model.layers

    for spec in (list(model.layers), tuple(model.layers), Wrapper()):
        np.testing.assert_array_equal(jacobian.input_output_jacobian(spec, x), expected)
    one = jacobian.input_output_jacobian(model.layers[0], x)
    assert one.shape == (2, 5, 4)


def test_bad_arguments_raise_one_clear_error():
    model = MLP([4, 5, 3], seed=0, dtype="float64")
    x = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"x must have shape \(n_batch, 4\)"):
        jacobian.input_output_jacobian(model, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="x must have shape"):
        jacobian.singular_values(model, np.zeros(4))
    with pytest.raises(ValueError, match="n_batch >= 1"):
        jacobian.spectrum_moments(model, np.zeros((0, 4)))
    with pytest.raises(ValueError, match=r"v must have shape \(n_batch, 4\)"):
        jacobian.jvp(model, x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="one row per example"):
        jacobian.jvp(model, x, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"u must have shape \(n_batch, 3\)"):
        jacobian.vjp(model, x, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="one row per example"):
        jacobian.vjp(model, x, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="n_probes must be an integer >= 1"):
        jacobian.spectrum_moments(model, x, n_probes=0)
    with pytest.raises(ValueError, match="probe must be one of"):
        jacobian.spectrum_moments(model, x, probe="uniform")
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        jacobian.spectrum_moments(model, x, seed=-1)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        jacobian.top_singular_values(model, x, k=0)
    with pytest.raises(ValueError, match=r"k must be at most min\(n_in, n_out\) = 3"):
        jacobian.top_singular_values(model, x, k=4)
    with pytest.raises(ValueError, match="n_iter must be an integer >= 1"):
        jacobian.top_singular_values(model, x, n_iter=0)
    with pytest.raises(ValueError, match="oversample must be an integer >= 0"):
        jacobian.top_singular_values(model, x, k=1, oversample=-1)
    with pytest.raises(ValueError, match="method must be 'krylov' or 'subspace'"):
        jacobian.top_singular_values(model, x, k=1, method="lanczos")
    with pytest.raises(ValueError, match="max_examples must be an integer >= 1"):
        jacobian.layer_singular_values(model, x, max_examples=0)
    with pytest.raises(TypeError, match="model must be an MLP"):
        jacobian.jvp("mlp", x, x)
    with pytest.raises(TypeError, match="model must be an MLP"):
        jacobian.singular_values(np.eye(4), x)
    with pytest.raises(TypeError, match="layer 1 is ndarray"):
        jacobian.singular_values([model.layers[0], np.eye(5)], x)
    with pytest.raises(ValueError, match="no layers"):
        jacobian.singular_values([], x)
    with pytest.raises(ValueError, match="layers do not chain"):
        jacobian.singular_values([model.layers[0], model.layers[0]], x)
    mixed = [model.layers[0], MLP([5, 3], seed=0, dtype="float32").layers[0]]
    with pytest.raises(ValueError, match="one backend and dtype"):
        jacobian.singular_values(mixed, x)


def test_exported_names():
    assert set(jacobian.__all__) >= {"jvp", "vjp", "input_output_jacobian", "singular_values", "spectrum_moments",
                                     "top_singular_values", "layer_singular_values", "mean_layer_singular_values"}


# ---------------------------------------------------------------------------------------------------
# identity stacks: the measured Bernoulli spectrum
# ---------------------------------------------------------------------------------------------------


def test_identity_stack_is_elementwise():
    layers = jacobian.identity_stack(5, 3, 0.5, "hard_tanh")
    assert len(layers) == 3 and all(layer.activation.name == "hard_tanh" for layer in layers)
    x = np.array([[0.1, -4.0, 2.0, 0.0, 3.0]])
    expected = x
    for _ in range(3):
        expected = np.clip(0.5 * expected, -1.0, 1.0)
    out = x
    for layer in layers:
        out, _ = layer.forward(out)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("activation", ["hard_tanh", "relu"])
@pytest.mark.parametrize("sigma, q0, depth", [(0.8, 1.0, 6), (1.0, 0.5, 4), (1.15, 0.2, 8), (1.0, 3.0, 3)])
def test_identity_spectrum_measured_matches_theory(activation, sigma, q0, depth):
    r = jacobian.identity_spectrum_measured(sigma, q0, depth, activation, width=48, n_examples=12, seed=3)
    # every nonzero eigenvalue is exactly sigma^(2L): the spread is rounding only
    assert r["eigenvalue_spread"] < 1e-12
    assert r["eigenvalue"] == pytest.approx(sigma ** (2 * depth), rel=1e-12)
    # alpha is a binomial fraction of 576 independent units: 5 standard errors of the predicted alpha
    n = 48 * 12
    se = math.sqrt(r["predicted_alpha"] * (1 - r["predicted_alpha"]) / n)
    assert abs(r["alpha"] - r["predicted_alpha"]) < 5 * se + 1.0 / n


@pytest.mark.parametrize("call", [
    lambda: jacobian.identity_stack(0, 3, 1.0, "relu"),
    lambda: jacobian.identity_stack(4, 0, 1.0, "relu"),
    lambda: jacobian.identity_stack(4, 2, 0.0, "relu"),
    lambda: jacobian.identity_stack(4, 2, float("nan"), "relu"),
    lambda: jacobian.identity_spectrum_measured(1.0, 1.0, 3, "tanh"),
    lambda: jacobian.identity_spectrum_measured(1.0, -1.0, 3, "relu"),
    lambda: jacobian.identity_spectrum_measured(1.0, 1.0, 3, "relu", n_examples=0),
])
def test_identity_errors(call):
    with pytest.raises(ValueError):
        call()
