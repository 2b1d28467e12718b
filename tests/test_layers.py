"""The MLP's hand-written backprop against float64 central differences, and its contracts."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyid
from tinyid import activations
from tinyid.layers import MLP, Dense
from tinyid.backend import to_numpy

SMOOTH = ["linear", "sigmoid", "tanh", "softsign", "elu", "selu", "gelu"]
KINKED = ["relu", "leaky_relu", "hard_tanh"]
INITS = ["uniform_fanin", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "lecun_normal",
         "orthogonal"]


def numerical_grads(model, x, y, h=1e-6):
    """Central differences of the loss for every parameter entry (float64)."""
    out = []
    for W, b in model.params:
        group = []
        for P in (W, b):
            G = np.zeros_like(P)
            for idx in np.ndindex(P.shape):
                old = P[idx]
                P[idx] = old + h
                loss_plus, _ = model.loss_and_grads(x, y)
                P[idx] = old - h
                loss_minus, _ = model.loss_and_grads(x, y)
                P[idx] = old
                G[idx] = (loss_plus - loss_minus) / (2 * h)
            group.append(G)
        out.append(group)
    return out


def assert_grads_close(analytic, numeric, rtol=1e-6, atol=1e-8):
    for layer, (ga, gn) in enumerate(zip(analytic, numeric)):
        for name, a, n in zip("Wb", ga, gn):
            err = np.abs(a - n)
            bound = rtol * np.maximum(np.abs(a), np.abs(n)) + atol
            assert np.all(err <= bound), (
                f"layer {layer} {name}: max error {err.max():.3g}, worst relative "
                f"{(err / (np.maximum(np.abs(a), np.abs(n)) + 1e-300)).max():.3g}")


@settings(max_examples=25)
@given(
    widths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    n_in=st.integers(1, 5),
    n_classes=st.integers(2, 4),
    n_batch=st.integers(1, 5),
    activation=st.sampled_from(SMOOTH + KINKED),
    init=st.sampled_from(INITS),
    bias=st.sampled_from([0.0, 0.1]),
    seed=st.integers(0, 2**16),
)
def test_gradients_match_central_differences(widths, n_in, n_classes, n_batch, activation, init, bias, seed):
    model = MLP([n_in, *widths, n_classes], activation=activation, init=init, bias_init=bias, seed=seed,
                dtype="float64")
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_batch, n_in))
    y = rng.integers(0, n_classes, size=n_batch)
    if activation in KINKED:
        # keep every pre-activation away from the kinks (0, and +-1 for hard tanh) by more than h
        _, caches = model.forward_train(x)
        kinks = [-1.0, 0.0, 1.0] if activation == "hard_tanh" else [0.0]
        for layer, (z, _) in zip(model.layers[:-1], caches[:-1]):  # a cache holds the layer's input z
            s = z @ layer.W + layer.b
            if min(np.abs(s - k).min() for k in kinks) < 1e-4:
                return
    _, grads = model.loss_and_grads(x, y)
    assert_grads_close(grads, numerical_grads(model, x, y))


def test_gradient_check_catches_a_wrong_derivative(monkeypatch):
    """The check above can fail: a backward pass off by 1% is caught."""
    from tinyid.kernels import reference

    model = MLP([4, 5, 3], activation="tanh", seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 4)), np.array([0, 1, 2])
    right = reference.activation_backward

    def off_by_one_percent(dy, derivative, ds, db):
        right(dy, None if derivative is None else 1.01 * derivative, ds, db)

    monkeypatch.setattr(reference, "activation_backward", off_by_one_percent)
    _, grads = model.loss_and_grads(x, y)
    with pytest.raises(AssertionError):
        assert_grads_close(grads, numerical_grads(model, x, y))


def test_input_gradient_matches_central_differences():
    model = MLP([3, 4, 2], activation="sigmoid", seed=1, dtype="float64")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 3)), np.array([1, 0])
    logits, caches = model.forward_train(x)
    _, dlogits = tinyid.losses.softmax_cross_entropy(logits, y)
    _, dx = model.backward(dlogits, caches, return_input_grad=True)
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += 1e-6
        xm[idx] -= 1e-6
        numeric[idx] = (model.loss_and_grads(xp, y)[0] - model.loss_and_grads(xm, y)[0]) / 2e-6
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-9)


def test_dense_forward_backward_contract():
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    layer = Dense(W, b, "relu")
    z = rng.normal(size=(5, 4))
    y, cache = layer.forward(z)
    np.testing.assert_array_equal(y, np.maximum(z @ W + b, 0))
    dy = rng.normal(size=(5, 3))
    dz1, grads1 = layer.backward(dy, cache)
    dz2, grads2 = layer.backward(dy, cache)  # no hidden accumulation
    np.testing.assert_array_equal(dz1, dz2)
    for g1, g2 in zip(grads1, grads2):
        np.testing.assert_array_equal(g1, g2)
    ds = dy * (z @ W + b > 0)
    np.testing.assert_allclose(grads1[0], z.T @ ds)
    np.testing.assert_allclose(grads1[1], ds.sum(axis=0))
    np.testing.assert_allclose(dz1, ds @ W.T)
    assert (layer.n_in, layer.n_out) == (4, 3)
    with pytest.raises(ValueError, match="shape"):
        Dense(W, np.zeros(4))


def test_mlp_structure_and_shapes():
    model = MLP([6, 5, 4, 3], activation="relu", init="he_normal", seed=0)
    assert [layer.activation.name for layer in model.layers] == ["relu", "relu", "linear"]
    assert [tuple(W.shape) for W, _ in model.params] == [(6, 5), (5, 4), (4, 3)]
    assert model.n_params == 6 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3
    x = np.random.default_rng(0).normal(size=(7, 6))
    assert model.forward(x).shape == (7, 3) and model.forward(x).dtype == np.float32
    assert model.predict(x).shape == (7,)
    outputs = model.layer_outputs(x)
    assert [o.shape for o in outputs] == [(7, 5), (7, 4), (7, 3)]
    np.testing.assert_array_equal(outputs[-1], model(x))
    assert "n_params=" in repr(model)


def test_same_seed_same_weights_across_dtypes_and_different_seeds_differ():
    a = MLP([8, 6, 3], seed=5, dtype="float64")
    b = MLP([8, 6, 3], seed=5, dtype="float32")
    c = MLP([8, 6, 3], seed=6, dtype="float64")
    np.testing.assert_array_equal(a.params[0][0].astype(np.float32), b.params[0][0])
    assert not np.array_equal(a.params[0][0], c.params[0][0])
    assert MLP([3, 2]).seed != MLP([3, 2]).seed  # seed=None draws a fresh one and records it


def test_init_specs_and_first_last_override():
    model = MLP([4, 4, 4, 2], init=("identity", {"sigma": 2.0}), first_init="orthogonal", last_init="uniform_fanin",
                seed=0, dtype="float64")
    W0, W1, W2 = (W for W, _ in model.params)
    np.testing.assert_allclose(W0.T @ W0, np.eye(4), atol=1e-12)
    np.testing.assert_array_equal(W1, 2.0 * np.eye(4))
    assert np.abs(W2).max() <= 0.5
    config = model.config()
    assert config["init"] == {"name": "identity", "sigma": 2.0} and config["first_init"] == {"name": "orthogonal"}
    model = MLP([3, 3], init=lambda fan_in, fan_out, rng: np.ones((fan_in, fan_out)), bias_init=0.5)
    assert np.all(model.params[0][0] == 1) and np.all(model.params[0][1] == 0.5)
    assert model.config()["init"] is None


def test_params_assignment_copies_in_place_and_checks_shapes():
    model = MLP([3, 4, 2], seed=0)
    arrays = [W for W, _ in model.params]
    new = [[np.full((3, 4), 0.5), np.zeros(4)], [np.ones((4, 2)), np.ones(2)]]
    model.params = new
    assert model.params[0][0] is arrays[0]  # same arrays, so optimizers keep working
    np.testing.assert_array_equal(model.params[0][0], 0.5)
    before = [to_numpy(a).copy() for group in model.params for a in group]
    with pytest.raises(ValueError, match="shapes"):
        model.params = [[np.zeros((3, 4)), np.zeros(4)], [np.zeros((4, 3)), np.zeros(3)]]
    with pytest.raises(ValueError, match="shapes"):
        model.params = [[np.zeros((3, 4)), np.zeros(4)]]
    after = [a for group in model.params for a in group]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize("bad, message", [
    (dict(sizes=[3]), "at least two"),
    (dict(sizes=[3, 0, 2]), "positive"),
    (dict(sizes=[3, 2.5]), "integers"),
    (dict(sizes="abc"), "positive integers"),
    (dict(sizes=[3, 2], dtype="float16"), "float32 or float64"),
    (dict(sizes=[3, 2], activation="swish"), "swish"),
    (dict(sizes=[3, 2], init="kaiming_magic"), "kaiming_magic"),
    (dict(sizes=[3, 2], seed=-1), "seed"),
    (dict(sizes=[3, 2], bias_init=float("nan")), "bias_init"),
    (dict(sizes=[3, 2], init=lambda fi, fo, rng: np.zeros((fo, fi + 1))), "shape"),
])
def test_bad_model_arguments(bad, message):
    with pytest.raises(ValueError, match=message):
        MLP(**bad)


def test_bad_inputs_to_the_model():
    model = MLP([3, 2], seed=0)
    with pytest.raises(ValueError, match=r"\(n_batch, 3\)"):
        model.forward(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\(n_batch, 3\)"):
        model.forward(np.zeros(3))
    with pytest.raises(ValueError, match="labels must lie in"):
        model.loss_and_grads(np.zeros((2, 3)), np.array([0, 2]))


def test_first_nonfinite_names_the_layer():
    model = MLP([3, 4, 4, 2], activation="relu", seed=0, dtype="float64")
    x = np.ones((2, 3))
    assert model.first_nonfinite(x) is None
    model.params[1][1][0] = np.inf
    assert model.first_nonfinite(x).startswith("layer 2 ") and "parameter b" in model.first_nonfinite(x)
    model.params[1][1][0] = 0.0
    model.params[0][0][...] = 1e308  # s = zW overflows to inf, and relu(inf) = inf
    assert model.first_nonfinite(x).startswith("layer 1 ") and model.first_nonfinite(x).endswith("output")
    assert model.first_nonfinite(np.full((2, 3), np.nan)) is not None


@pytest.mark.cupy
def test_cupy_model_matches_numpy_in_float64():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(9, 7)), rng.integers(0, 3, 9)
    host = MLP([7, 11, 5, 3], activation="gelu", seed=2, dtype="float64")
    device = MLP([7, 11, 5, 3], activation="gelu", seed=2, dtype="float64", backend="cupy")
    loss_h, grads_h = host.loss_and_grads(x, y)
    loss_d, grads_d = device.loss_and_grads(x, y)
    assert loss_d == pytest.approx(loss_h, rel=1e-12)
    for gh, gd in zip(grads_h, grads_d):
        for a, b in zip(gh, gd):
            np.testing.assert_allclose(to_numpy(b), a, rtol=1e-10, atol=1e-13)
    moved = host.to("cupy")
    assert moved is host and host.backend.name == "cupy"
    np.testing.assert_allclose(to_numpy(host.forward(x)), to_numpy(device.forward(x)), rtol=1e-12)
    host.to("numpy")
    assert isinstance(host.params[0][0], np.ndarray)
