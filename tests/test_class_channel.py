"""Tests of tinyid.class_channel: the identity-initialized MLP with class channels.

The oracle is a plain float64 NumPy forward pass of the architecture written out below
(:func:`reference_states`), independent of tinyid's layers and kernels.
"""
import numpy as np
import pytest

from tinyid import MLP, SGD, Adam, Trainer, evaluate, fit
from tinyid.checkpoint import CheckpointError, save_npz
from tinyid.class_channel import ClassChannelMLP, input_scale_for
from tinyid.layers import Dense
from tinyid.losses import softmax_cross_entropy

#: phi written out in NumPy, for the oracle
PHI = {
    "hard_tanh": lambda v: np.clip(v, -1.0, 1.0),
    "relu": lambda v: np.maximum(v, 0.0),
    "tanh": np.tanh,
    "linear": lambda v: v,
}
#: where phi has a kink (a central difference across one is meaningless)
KINKS = {"hard_tanh": (-1.0, 1.0), "relu": (0.0,), "tanh": (), "linear": ()}


def blobs(n=300, n_features=10, n_classes=3, seed=0, scale=3.0):
    """Well separated Gaussian blobs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=scale, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n)
    x = centres[y] + rng.normal(size=(n, n_features))
    return x, y


def reference_states(params, x, n_classes, activation, input_scale):
    """u^0, ..., u^L and the pre-activations s^1, ..., s^L of the class-channel MLP, in float64."""
    u = np.concatenate([input_scale * np.asarray(x, np.float64), np.zeros((len(x), n_classes))], axis=1)
    states, pre = [u], []
    for W, b in params:
        s = u @ np.asarray(W, np.float64) + np.asarray(b, np.float64)
        u = PHI[activation](s)
        pre.append(s)
        states.append(u)
    return states, pre


def cross_entropy(z, y):
    shifted = z - z.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(y)), y].mean()


def reference_loss(params, x, y, n_classes, activation, input_scale, loss_layers):
    states, _ = reference_states(params, x, n_classes, activation, input_scale)
    losses = [cross_entropy(u[:, -n_classes:], y) for u in states[1:]]
    return losses[-1] if loss_layers == "last" else np.mean(losses)


def perturbed_params(model, rng, bias):
    """Weights near sigma I and small biases: a generic point, away from the untrained symmetric one."""
    width = model.width
    return [[model.sigma * np.eye(width) + 0.3 * rng.standard_normal((width, width)) / np.sqrt(width),
             0.2 * rng.standard_normal(width) if bias else np.zeros(width)] for _ in range(model.depth)]


def host_params(model):
    return [[np.array(a) for a in group] for group in model.params]


# ------------------------------------------------------------------------------ bookkeeping at initialization
@pytest.mark.parametrize("activation", ["hard_tanh", "relu", "tanh", "linear"])
@pytest.mark.parametrize("sigma", [0.8, 1.0, 1.25])
def test_untrained_feature_maps_are_the_elementwise_chain_and_class_scores_are_zero(activation, sigma):
    n_features, n_classes, depth, input_scale = 6, 3, 5, 0.9
    x = 1.5 * np.random.default_rng(0).standard_normal((7, n_features))  # some entries saturate hard tanh
    model = ClassChannelMLP(n_features, n_classes, depth, sigma, activation, input_scale=input_scale,
                            dtype="float64", seed=0)
    # x^0 = a x,  x^l = phi(sigma x^{l-1}): with W = sigma I and b = 0 every layer acts elementwise
    expected = [input_scale * x]
    for _ in range(depth):
        expected.append(PHI[activation](sigma * expected[-1]))
    maps = model.feature_maps(x)
    assert maps.shape == (depth + 1, 7, n_features)
    np.testing.assert_allclose(maps, np.stack(expected), rtol=1e-13, atol=0)
    # phi(0) = 0 for these four, so the zero class channels stay exactly zero in every layer
    assert np.array_equal(model.layer_logits(x), np.zeros((depth, 7, n_classes)))
    assert np.array_equal(model.forward(x), np.zeros((7, n_classes)))
    np.testing.assert_array_equal(model.identity_distance(), np.zeros(depth))
    # every weight is sigma I of width N + C, biases zero, the activation in every layer (the last included)
    for layer in model.layers:
        assert isinstance(layer, Dense) and layer.activation.name == activation
        assert np.array_equal(layer.W, sigma * np.eye(n_features + n_classes)) and not layer.b.any()


def test_untrained_model_predicts_class_zero_so_its_accuracy_is_the_share_of_class_zero():
    # z^l = 0 in every layer and argmax takes the first of equal scores: every prediction is class 0
    x, y = blobs(n=200, n_features=8, n_classes=4, seed=3)
    model = ClassChannelMLP(8, 4, 6, seed=0)
    share = np.mean(y == 0)
    assert 0.1 < share < 0.4  # not a degenerate label set
    accuracy = model.layer_accuracy(x, y, batch_size=64)
    assert isinstance(accuracy, np.ndarray) and accuracy.dtype == np.float64 and accuracy.shape == (6,)
    np.testing.assert_array_equal(accuracy, np.full(6, share))
    assert evaluate(model, x, y)[1] == share
    assert np.array_equal(model.predict(x), np.zeros(len(y)))


# ------------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("activation", ["hard_tanh", "relu", "tanh"])
@pytest.mark.parametrize("loss_layers", ["last", "all"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_parameter_gradients_match_central_differences_of_the_reference(activation, loss_layers, bias):
    n_features, n_classes, depth, input_scale = 3, 2, 3, 0.7
    rng = np.random.default_rng(11)
    model = ClassChannelMLP(n_features, n_classes, depth, 1.0, activation, bias=bias, input_scale=input_scale,
                            loss_layers=loss_layers, dtype="float64", seed=0)
    params = perturbed_params(model, rng, bias)
    model.params = params
    x = rng.standard_normal((5, n_features))
    y = np.array([0, 1, 1, 0, 1])
    _, pre = reference_states(params, x, n_classes, activation, input_scale)
    eps = 1e-6
    for kink in KINKS[activation]:  # every pre-activation stays on one side of a kink under +-eps
        assert min(np.abs(s - kink).min() for s in pre) > 100 * eps

    def loss_at(p):
        return reference_loss(p, x, y, n_classes, activation, input_scale, loss_layers)

    loss, grads = model.loss_and_grads(x, y)
    assert loss == pytest.approx(loss_at(params), rel=1e-13)
    for i in range(depth):
        for j in range(2 if bias else 1):  # W, and b when it is trained
            numeric = np.zeros_like(params[i][j])
            for index in np.ndindex(numeric.shape):
                plus = [[a.copy() for a in group] for group in params]
                minus = [[a.copy() for a in group] for group in params]
                plus[i][j][index] += eps
                minus[i][j][index] -= eps
                numeric[index] = (loss_at(plus) - loss_at(minus)) / (2 * eps)
            np.testing.assert_allclose(grads[i][j], numeric, rtol=1e-6, atol=1e-9, err_msg=f"layer {i} param {j}")
    if not bias:  # the biases are not trained: their gradient is defined as zero
        assert all(not grads[i][1].any() for i in range(depth))


@pytest.mark.parametrize("loss_layers", ["last", "all"])
def test_input_gradient_and_public_backward_match_central_differences(loss_layers):
    n_features, n_classes, depth, input_scale = 4, 3, 3, 0.6
    rng = np.random.default_rng(5)
    model = ClassChannelMLP(n_features, n_classes, depth, 1.0, "tanh", input_scale=input_scale,
                            loss_layers=loss_layers, dtype="float64", seed=0)
    params = perturbed_params(model, rng, bias=True)
    model.params = params
    x = rng.standard_normal((6, n_features))
    y = np.array([0, 1, 2, 2, 1, 0])
    logits, caches = model.forward_train(x)
    if loss_layers == "last":
        _, dlogits = softmax_cross_entropy(logits, y)
    else:  # d/dz^l of the mean over layers
        dlogits = np.stack([softmax_cross_entropy(z, y)[1] for z in model.layer_logits(x)]) / depth
    grads, dx = model.backward(dlogits, caches, return_input_grad=True)
    assert dx.shape == x.shape
    eps = 1e-6
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        numeric[index] = (reference_loss(params, plus, y, n_classes, "tanh", input_scale, loss_layers)
                          - reference_loss(params, minus, y, n_classes, "tanh", input_scale, loss_layers)) / (2 * eps)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-9)
    # backward is the same gradient as loss_and_grads, and calling it twice gives the same answer
    _, expected = model.loss_and_grads(x, y)
    again = model.backward(dlogits, caches)
    for (dW, db), (eW, eb), (aW, ab) in zip(grads, expected, again):
        np.testing.assert_allclose(dW, eW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, eb, rtol=1e-12, atol=1e-15)
        assert np.array_equal(dW, aW) and np.array_equal(db, ab)


def test_unbiased_model_keeps_its_biases_at_exactly_zero_under_every_optimizer():
    x, y = blobs(n=64, n_features=5, n_classes=3, seed=1)
    for make in (lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
                 lambda p: Adam(p, lr=1e-2, weight_decay=1e-2)):
        model = ClassChannelMLP(5, 3, 4, bias=False, loss_layers="all", dtype="float64", seed=0)
        with_bias = ClassChannelMLP(5, 3, 4, bias=True, dtype="float64", seed=0)
        fit(model, x, y, epochs=2, batch_size=16, optimizer=make(model.params), progress=False)
        assert all(not layer.b.any() for layer in model.layers)
        assert model.identity_distance().min() > 0  # the weights did train
        assert model.n_params == with_bias.n_params - 4 * 8 == 4 * 8 * 8
    with pytest.raises(ValueError, match="bias=False"):
        model.params = [[W, np.ones_like(b)] for W, b in host_params(model)]


# ------------------------------------------------------------------------------ shapes and maps
def test_every_method_has_the_documented_shape_and_maps_telescope():
    n, n_features, n_classes, depth = 7, 5, 3, 4
    rng = np.random.default_rng(2)
    model = ClassChannelMLP(n_features, n_classes, depth, dtype="float64", seed=0)
    model.params = perturbed_params(model, rng, bias=True)
    x = rng.standard_normal((n, n_features))
    y = rng.integers(0, n_classes, n)
    assert model.sizes == [n_features, 8, 8, 8, n_classes] and model.width == 8
    assert [(layer.n_in, layer.n_out) for layer in model.layers] == [(8, 8)] * depth
    assert model.forward(x).shape == model(x).shape == (n, n_classes)
    assert model.predict(x).shape == (n,)
    scores = model.layer_logits(x)
    maps = model.feature_maps(x)
    assert scores.shape == (depth, n, n_classes) and maps.shape == (depth + 1, n, n_features)
    assert model.layer_accuracy(x, y).shape == (depth,) and model.identity_distance().shape == (depth,)
    steps, cumulative = model.contribution_maps(x), model.contribution_maps(x, cumulative=True)
    assert steps.shape == cumulative.shape == (depth, n, n_features)
    # against the oracle: the model's logits are z^L, x^0 is the scaled input
    states, _ = reference_states(host_params(model), x, n_classes, "hard_tanh", 1.0)
    np.testing.assert_allclose(scores, np.stack([u[:, n_features:] for u in states[1:]]), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(maps, np.stack([u[:, :n_features] for u in states]), rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(model.forward(x), scores[-1])
    np.testing.assert_array_equal(steps, maps[1:] - maps[:-1])
    np.testing.assert_allclose(np.cumsum(steps, axis=0), cumulative, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(model.layer_accuracy(x, y), (scores.argmax(axis=2) == y).mean(axis=1))
    logits, _ = model.forward_train(x)
    np.testing.assert_array_equal(logits, scores[-1])
    # u^0 = [a x, 0_C] is what model.layers take (e.g. for tinyid.jacobian)
    np.testing.assert_array_equal(model.padded_input(x), states[0])


def test_identity_distance_is_zero_at_init_and_the_relative_step_after_one_sgd_step():
    x, y = blobs(n=32, n_features=6, n_classes=3, seed=4)
    sigma, lr = 0.9, 0.5
    model = ClassChannelMLP(6, 3, 5, sigma, dtype="float64", seed=0)
    assert np.array_equal(model.identity_distance(), np.zeros(5))
    _, grads = model.loss_and_grads(x, y)
    expected = [lr * np.linalg.norm(dW) / (sigma * np.sqrt(9)) for dW, _ in grads]
    model.train_step(x, y, SGD(model.params, lr=lr))
    distance = model.identity_distance()
    assert (distance > 0).all()  # the class-channel gradient reaches every layer through the identity
    np.testing.assert_allclose(distance, expected, rtol=1e-10)


def test_input_scale_for_gives_the_requested_mean_square():
    x = np.random.default_rng(0).normal(0.3, 2.0, size=(50, 12)).astype(np.float32)
    scale = input_scale_for(x, q0=0.25)
    assert np.mean((scale * x.astype(np.float64)) ** 2) == pytest.approx(0.25, rel=1e-6)
    model = ClassChannelMLP(12, 2, 1, activation="linear", input_scale=scale, dtype="float64", seed=0)
    assert np.mean(model.feature_maps(x)[0] ** 2) == pytest.approx(0.25, rel=1e-6)


# ------------------------------------------------------------------------------ backends and training
def test_backends_agree_with_the_numpy_reference_in_float64(backend_name):
    x, y = blobs(n=40, n_features=7, n_classes=3, seed=6)
    rng = np.random.default_rng(8)
    for make, loss_layers, bias in ((lambda p: SGD(p, lr=0.2), "last", True),  # plain SGD: folded on numba
                                    (lambda p: Adam(p, lr=1e-2), "all", False),
                                    (lambda p: SGD(p, lr=0.1, momentum=0.9), "all", True)):
        models = []
        for backend in ("numpy", backend_name):
            model = ClassChannelMLP(7, 3, 6, 1.0, "hard_tanh", bias=bias, input_scale=0.5, loss_layers=loss_layers,
                                    backend=backend, dtype="float64", seed=0)
            models.append(model)
        start = perturbed_params(models[0], rng, bias)
        losses = []
        for model in models:
            model.params = start
            optimizer = make(model.params)
            losses.append([model.train_step(x[i:i + 10], y[i:i + 10], optimizer)[0] for i in range(0, 40, 10)])
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-12)
        for (W, b), (W_ref, b_ref) in zip(host_params(models[1]), host_params(models[0])):
            np.testing.assert_allclose(W, W_ref, rtol=1e-11, atol=1e-13)
            np.testing.assert_allclose(b, b_ref, rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(models[1].layer_logits(x), models[0].layer_logits(x), rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(models[1].identity_distance(), models[0].identity_distance(), rtol=1e-10)


@pytest.mark.parametrize("loss_layers", ["last", "all"])
def test_short_training_run_learns_separable_blobs(backend_name, loss_layers):
    x_all, y_all = blobs(n=600, n_features=10, n_classes=3, seed=0)
    x, y, x_test, y_test = x_all[:400], y_all[:400], x_all[400:], y_all[400:]
    scale = input_scale_for(x, q0=0.1)
    model = ClassChannelMLP(10, 3, 20, input_scale=scale, loss_layers=loss_layers, backend=backend_name, seed=0)
    _, before = evaluate(model, x_test, y_test)
    history = fit(model, x.astype(np.float32), y, epochs=4, batch_size=32, lr=0.05, momentum=0.9,
                  validation=(x_test, y_test), progress=False)
    _, after = evaluate(model, x_test, y_test)
    assert before < 0.5 and after > 0.95
    assert history.epochs[-1]["test_acc"] == after
    accuracy = model.layer_accuracy(x_test, y_test)
    assert accuracy[-1] == after
    if loss_layers == "all":  # every layer is asked to classify; the upper half does
        assert accuracy[10:].min() > 0.9


# ------------------------------------------------------------------------------ checkpoints
def assert_same_model(a, b, x):
    assert type(b) is ClassChannelMLP and a.config() == b.config()
    for (W, bias), (W2, bias2) in zip(host_params(a), host_params(b)):
        assert np.array_equal(W, W2) and np.array_equal(bias, bias2)
    assert np.array_equal(np.asarray(a.layer_logits(x)), np.asarray(b.layer_logits(x)))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_model_checkpoint_round_trip_rebuilds_the_class(tmp_path, bias):
    x, y = blobs(n=48, n_features=5, n_classes=4, seed=2)
    model = ClassChannelMLP(5, 4, 3, 0.9, {"name": "leaky_relu", "slope": 0.1}, bias=bias, input_scale=0.7,
                            loss_layers="all", seed=3)
    fit(model, x, y, epochs=1, batch_size=16, lr=0.1, progress=False)
    path = model.save(tmp_path / "model")
    assert_same_model(model, ClassChannelMLP.load(path), x)
    assert_same_model(model, MLP.load(path), x)  # MLP.load dispatches on the config's class
    other = ClassChannelMLP(5, 4, 3, 0.9, {"name": "leaky_relu", "slope": 0.1}, bias=bias, input_scale=0.7,
                            loss_layers="all", seed=3)
    other.load_weights(path)
    assert_same_model(model, other, x)


def test_trainer_checkpoint_resumes_bit_exactly(tmp_path, backend_name):
    x, y = blobs(n=70, n_features=6, n_classes=3, seed=5)

    def new_trainer():
        model = ClassChannelMLP(6, 3, 5, input_scale=0.5, loss_layers="all", bias=False, backend=backend_name, seed=0)
        return Trainer(model, Adam(model.params, lr=1e-2), seed=2, batch_size=16)

    straight = new_trainer()
    straight.fit(x, y, 3, progress=False)
    first = new_trainer()
    first.fit(x, y, 1, progress=False, checkpoint_path=tmp_path / "run.npz")
    resumed = Trainer.load(tmp_path / "run.npz", backend=backend_name)
    assert type(resumed.model) is ClassChannelMLP and resumed.model.config() == straight.model.config()
    resumed.fit(x, y, 2, progress=False)
    for (W, b), (W2, b2) in zip(host_params(straight.model), host_params(resumed.model)):
        assert np.array_equal(W, W2) and np.array_equal(b, b2)
    assert resumed.history.step_loss == straight.history.step_loss


def test_checkpoints_of_another_class_or_with_biases_are_refused(tmp_path):
    mlp_path = MLP([5, 8, 3], seed=0).save(tmp_path / "mlp")
    with pytest.raises(CheckpointError, match="does not hold a ClassChannelMLP.*holds a MLP"):
        ClassChannelMLP.load(mlp_path)
    model = ClassChannelMLP(5, 3, 2, bias=False, seed=0)
    with pytest.raises(CheckpointError, match="class"):
        model.load_weights(mlp_path)
    config = model.config()
    unknown = save_npz(tmp_path / "unknown", {"kind": "model", "model": {**config, "class": "Transformer"}}, {})
    with pytest.raises(CheckpointError, match="does not know"):
        MLP.load(unknown)
    bad = save_npz(tmp_path / "bad", {"kind": "model", "model": {**config, "loss_layers": "first"}},
                   model.param_arrays())
    with pytest.raises(CheckpointError, match="unusable model config"):
        ClassChannelMLP.load(bad)
    arrays = model.param_arrays()
    arrays["param/1/b"] = np.full_like(arrays["param/1/b"], 0.5)
    with_bias = save_npz(tmp_path / "with_bias", {"kind": "model", "model": config}, arrays)
    with pytest.raises(CheckpointError, match="bias=False"):
        ClassChannelMLP.load(with_bias)
    with pytest.raises(CheckpointError, match="bias=False"):
        model.load_weights(with_bias)
    assert all(not layer.b.any() for layer in model.layers)


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs, error, message", [
    ({"n_features": 0}, ValueError, "n_features"),
    ({"n_features": 2.5}, ValueError, "n_features"),
    ({"n_features": True}, ValueError, "n_features"),
    ({"n_classes": 1}, ValueError, "n_classes must be an integer >= 2"),
    ({"n_classes": "3"}, ValueError, "n_classes"),
    ({"depth": 0}, ValueError, "depth"),
    ({"sigma": 0.0}, ValueError, "sigma"),
    ({"sigma": -1.0}, ValueError, "sigma"),
    ({"sigma": float("nan")}, ValueError, "sigma"),
    ({"sigma": "1"}, ValueError, "sigma"),
    ({"activation": "nope"}, ValueError, "nope"),
    ({"loss_layers": "first"}, ValueError, "loss_layers"),
    ({"loss_layers": None}, ValueError, "loss_layers"),
    ({"input_scale": 0.0}, ValueError, "input_scale"),
    ({"input_scale": float("inf")}, ValueError, "input_scale"),
    ({"bias": "yes"}, TypeError, "bias"),
    ({"dtype": "float16"}, ValueError, "dtype"),
    ({"seed": -1}, ValueError, "seed"),
])
def test_bad_constructor_arguments_raise(kwargs, error, message):
    args = {"n_features": 4, "n_classes": 3, "depth": 2, **kwargs}
    with pytest.raises(error, match=message):
        ClassChannelMLP(**args)


def test_bad_inputs_raise():
    model = ClassChannelMLP(4, 3, 2, dtype="float64", seed=0)
    x = np.zeros((5, 4))
    for bad in (np.zeros((5, 7)), np.zeros((5, 3)), np.zeros(4), np.zeros((2, 5, 4))):
        for method in (model.forward, model.layer_logits, model.feature_maps, model.contribution_maps,
                       model.padded_input):
            with pytest.raises(ValueError, match=r"shape \(n_batch, 4\)"):
                method(bad)
    with pytest.raises(ValueError, match="labels"):
        model.layer_accuracy(x, np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="labels must lie in"):
        model.layer_accuracy(x, np.full(5, 3))
    with pytest.raises(ValueError, match="integer class indices"):
        model.layer_accuracy(x, np.zeros(5))
    with pytest.raises(ValueError, match="batch_size"):
        model.layer_accuracy(x, np.zeros(5, dtype=int), batch_size=0)
    with pytest.raises(TypeError, match="cumulative"):
        model.contribution_maps(x, cumulative="yes")
    _, caches = model.forward_train(x)
    for bad in (np.zeros((5, 4)), np.zeros((3, 5, 3)), np.zeros((4, 3))):
        with pytest.raises(ValueError, match="dlogits must have shape"):
            model.backward(bad, caches)
    with pytest.raises(ValueError, match="labels must lie in"):
        model.loss_and_grads(x, np.full(5, 3))
    with pytest.raises(ValueError, match="x must have shape"):
        fit(model, np.zeros((5, 7)), np.zeros(5, dtype=int), progress=False)
    for bad_x, q0, message in ((x + 1, 0.0, "q0"), (x + 1, -1.0, "q0"), (x, 1.0, "not all zero"),
                               (np.ones(4), 1.0, "non-empty"), (np.full((2, 2), np.nan), 1.0, "finite")):
        with pytest.raises(ValueError, match=message):
            input_scale_for(bad_x, q0)
