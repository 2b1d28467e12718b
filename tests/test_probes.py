"""Training probes: per-layer statistics against a direct float64 NumPy computation, and the callback."""
import json
import math

import numpy as np
import pytest

from tinyid import MLP, SGD, History, Trainer, activations
from tinyid.backend import to_numpy
from tinyid.probes import (HISTOGRAM_QUANTITIES, LAYER_QUANTITIES, SATURATION_FRACTION, ActivationRecorder, Probe,
                           _histogram, histograms, layer_statistics, max_slope, probe_series)


def blobs(n=40, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n)
    return (centres[y] + rng.normal(size=(n, n_features))), y


def host_params(model):
    return [[to_numpy(a).copy() for a in group] for group in model.params]


def direct_statistics(params, activation, x, y, bins):
    """What layer_statistics must return, written out in float64 NumPy from the formulas."""
    act = activations.get(activation)
    n_layers = len(params)
    z, outputs, pre = np.asarray(x, np.float64), [], []
    for i, (W, b) in enumerate(params):
        s = z @ W + b
        z = act(s) if i < n_layers - 1 else s
        pre.append(s)
        outputs.append(z)
    logits = outputs[-1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(y)
    loss = -log_p[np.arange(n), y].mean()
    d = np.exp(log_p)
    d[np.arange(n), y] -= 1
    d /= n
    grads, weight_grads = [None] * n_layers, [None] * n_layers
    for i in range(n_layers - 1, -1, -1):
        ds = d * act.derivative(pre[i]) if i < n_layers - 1 else d
        inputs = outputs[i - 1] if i > 0 else np.asarray(x, np.float64)
        grads[i], weight_grads[i] = ds, inputs.T @ ds
        d = ds @ params[i][0].T

    def hist(values, lo, hi):
        return np.histogram(values, bins=bins, range=(lo, hi))[0]

    expected = {"mean": [], "std": [], "p2": [], "p98": [], "saturation": [], "act_hist": [], "grad_var": [],
                "weight_grad_var": [], "grad_hist": [], "weight_grad_hist": [], "weight_norm": [], "loss": loss}
    for i, out in enumerate(outputs):
        expected["mean"].append(out.mean())
        expected["std"].append(out.std())
        expected["p2"].append(np.percentile(out, 2))
        expected["p98"].append(np.percentile(out, 98))
        last = i == n_layers - 1
        slope = 1.0 if last else act.derivative(pre[i])
        expected["saturation"].append(0.0 if last else np.mean(slope < 0.05 * max_slope(act)))
        m = np.abs(out).max()
        expected["act_hist"].append(hist(out, -m, m) if last else hist(out, -1.0, 1.0))  # tanh: its range
        expected["grad_var"].append(grads[i].var())
        expected["weight_grad_var"].append(weight_grads[i].var())
        expected["grad_hist"].append(hist(grads[i], -np.abs(grads[i]).max(), np.abs(grads[i]).max()))
        g = np.abs(weight_grads[i]).max()
        expected["weight_grad_hist"].append(hist(weight_grads[i], -g, g))
        expected["weight_norm"].append(np.sqrt((params[i][0] ** 2).sum()))
    return expected, weight_grads


# ---------------------------------------------------------------------------------------------- the measurement
def test_statistics_match_a_direct_float64_computation(backend_name):
    x, y = blobs(n=37)
    x = 2.0 * x  # large enough inputs that some tanh units saturate
    model = MLP([6, 7, 7, 5, 3], activation="tanh", bias_init=0.1, seed=3, backend=backend_name, dtype="float64")
    params = host_params(model)
    rng = np.random.default_rng(1)
    initial = [W + 0.01 * rng.normal(size=W.shape) for W, _ in params]
    stats = layer_statistics(model, x, y, bins=17, initial_weights=initial, sigma=0.7)
    expected, weight_grads = direct_statistics(params, "tanh", x, y, bins=17)

    for name in ("mean", "std", "p2", "p98", "grad_var", "weight_grad_var", "weight_norm"):
        assert stats[name].dtype == np.float64 and stats[name].shape == (4,)
        np.testing.assert_allclose(stats[name], expected[name], rtol=1e-10, atol=0, err_msg=name)
    assert stats["loss"] == pytest.approx(expected["loss"], rel=1e-12)
    np.testing.assert_array_equal(stats["saturation"], expected["saturation"])
    assert 0 < stats["saturation"][0] < 1 and stats["saturation"][-1] == 0.0
    for name in ("act_hist", "grad_hist", "weight_grad_hist"):
        assert stats[name].dtype == np.int64 and stats[name].shape == (4, 17)
        np.testing.assert_array_equal(stats[name], np.stack(expected[name]), err_msg=name)
    np.testing.assert_array_equal(stats["act_edges"][0], np.linspace(-1, 1, 18))
    np.testing.assert_allclose(stats["distance_from_initial"],
                               [np.sqrt(((W - W0) ** 2).sum()) for (W, _), W0 in zip(params, initial)], rtol=1e-12)
    identity_distance = [np.sqrt(((W - 0.7 * np.eye(W.shape[0])) ** 2).sum()) if W.shape[0] == W.shape[1]
                         else np.nan for W, _ in params]
    np.testing.assert_allclose(stats["distance_from_identity"], identity_distance, rtol=1e-12)
    assert np.isnan(stats["distance_from_identity"]).tolist() == [True, False, True, True]

    # The weight gradients are the model's own: MLP.loss_and_grads gives the same dC/dW and loss.
    loss, grads = model.loss_and_grads(x, y)
    assert stats["loss"] == pytest.approx(loss, rel=1e-12)
    for i, (dW, _) in enumerate(grads):
        np.testing.assert_allclose(to_numpy(dW), weight_grads[i], rtol=1e-10, atol=1e-15)
        assert stats["weight_grad_var"][i] == pytest.approx(np.var(to_numpy(dW)), rel=1e-10)


def test_float32_models_are_measured_in_float64_and_match_float64_models():
    x, y = blobs(n=30)
    wide = layer_statistics(MLP([6, 8, 3], seed=2, dtype="float64"), x, y)
    narrow = layer_statistics(MLP([6, 8, 3], seed=2, dtype="float32"), x, y)
    for name in ("mean", "std", "grad_var", "weight_grad_var", "weight_norm"):
        assert narrow[name].dtype == np.float64
        np.testing.assert_allclose(narrow[name], wide[name], rtol=1e-5, err_msg=name)


def test_without_labels_only_the_forward_quantities_are_measured():
    x, _ = blobs(n=10)
    stats = layer_statistics(MLP([6, 5, 3], seed=0), x, histograms=False)
    assert set(stats) == {"mean", "std", "p2", "p98", "saturation", "weight_norm"}


@pytest.mark.parametrize("activation, row, n_saturated", [
    ("tanh", [0.0, 1.0, 2.5, -3.0], 2),          # 1 - tanh^2: 1, 0.42, 0.027, 0.0099 against 0.05
    ("sigmoid", [0.0, 4.0, 5.0, -6.0], 2),       # sigma': 0.25, 0.0177, 0.0066, 0.0025 against 0.0125
    ("softsign", [0.0, 3.0, 4.0, -10.0], 2),     # 1/(1+|s|)^2: 1, 0.0625, 0.04, 0.008 against 0.05
    ("hard_tanh", [0.5, -0.99, 1.0, -2.0], 2),   # flat at |s| >= 1
    ("relu", [-1.0, 0.0, 0.5, 2.0], 2),          # inactive at s <= 0
    ({"name": "leaky_relu", "slope": 0.01}, [-1.0, -0.5, 0.5, 2.0], 2),  # slope 0.01 < 0.05
    ({"name": "leaky_relu", "slope": 0.2}, [-1.0, -0.5, 0.5, 2.0], 0),
    ("linear", [-100.0, 0.0, 5.0, 100.0], 0),
])
def test_saturation_counts_units_whose_slope_is_below_five_percent_of_the_maximum(activation, row, n_saturated):
    # Identity weights and zero biases: the hidden pre-activations are the inputs themselves.
    model = MLP([4, 4, 2], activation=activation, init=("identity", {"sigma": 1.0}), seed=0, dtype="float64")
    x = np.array([row, row[::-1], row[1:] + row[:1]])
    stats = layer_statistics(model, x)
    assert stats["saturation"][0] == n_saturated / 4
    assert stats["saturation"][1] == 0.0  # the linear logits layer never saturates
    assert SATURATION_FRACTION == 0.05


def test_max_slope_matches_the_closed_forms():
    assert max_slope("tanh") == 1.0 and max_slope("sigmoid") == 0.25 and max_slope("relu") == 1.0
    assert max_slope({"name": "leaky_relu", "slope": 2.0}) == 2.0
    assert max_slope({"name": "elu", "alpha": 1.5}) == 1.5
    assert max_slope("selu") == pytest.approx(activations.SELU_LAMBDA * activations.SELU_ALPHA, rel=1e-12)
    # GELU (tanh form): the maximum of phi' lies near s = 1.5; a fine grid brackets it.
    fine = activations.gelu.derivative(np.linspace(1.0, 2.0, 1_000_001)).max()
    assert max_slope("gelu") == pytest.approx(fine, rel=1e-9)


def test_histograms_count_every_value_and_clip_those_outside_the_edges():
    x, y = blobs(n=23)
    model = MLP([6, 9, 4, 3], activation="relu", seed=1, dtype="float64")
    stats = layer_statistics(model, x, y, bins=11)
    np.testing.assert_array_equal(stats["act_hist"].sum(axis=1), [23 * 9, 23 * 4, 23 * 3])
    np.testing.assert_array_equal(stats["grad_hist"].sum(axis=1), [23 * 9, 23 * 4, 23 * 3])
    np.testing.assert_array_equal(stats["weight_grad_hist"].sum(axis=1), [6 * 9, 9 * 4, 4 * 3])
    # ReLU is unbounded: the range is symmetric, [-m, m] with m the largest |value| of the layer.
    outputs = [to_numpy(a) for a in model.layer_outputs(x)]
    for i, out in enumerate(outputs):
        m = np.abs(out).max()
        np.testing.assert_array_equal(stats["act_edges"][i], np.linspace(-m, m, 12))

    # Caller-given edges narrower than the data: what lies outside lands in the end bins.
    edges = np.array([-0.5, -0.25, 0.0, 0.25, 0.5])
    narrow = layer_statistics(model, x, y, edges={"act": edges})
    for i, out in enumerate(outputs):
        clipped = np.clip(out, -0.5, 0.5)
        np.testing.assert_array_equal(narrow["act_hist"][i], np.histogram(clipped, bins=edges)[0])
        assert narrow["act_hist"][i].sum() == out.size
        np.testing.assert_array_equal(narrow["act_edges"][i], edges)
    # Uneven edges (one row per layer) take the general path, with the same clipping rule.
    uneven = np.array([-1.0, -0.1, 0.0, 0.3, 2.0])
    values = np.array([-5.0, -1.0, -0.5, -0.1, 0.0, 0.1, 0.3, 2.0, 7.0, np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(_histogram(np, values, uneven), [4, 1, 2, 4])  # NaN counted nowhere
    np.testing.assert_array_equal(_histogram(np, values, np.linspace(-1, 1, 5)), [3, 2, 3, 3])
    per_layer = layer_statistics(model, x, y, edges={"grad": np.tile(uneven, (3, 1))})
    np.testing.assert_array_equal(per_layer["grad_hist"].sum(axis=1), [23 * 9, 23 * 4, 23 * 3])


@pytest.mark.parametrize("dtype, sigma", [("float64", 0.8), ("float32", 0.5)])  # sigma exact in the dtype
def test_distance_from_identity_is_zero_for_an_identity_initialized_net(dtype, sigma):
    model = MLP([5, 5, 5, 3], activation="hard_tanh", init=("identity", {"sigma": sigma}), seed=0, dtype=dtype)
    x, _ = blobs(n=8, n_features=5)
    at_sigma = layer_statistics(model, x, sigma=sigma)["distance_from_identity"]
    assert at_sigma[0] == 0.0 and at_sigma[1] == 0.0 and np.isnan(at_sigma[2])  # the logits layer is 5 x 3
    off = layer_statistics(model, x, sigma=sigma + 0.25)["distance_from_identity"]
    np.testing.assert_allclose(off[:2], 0.25 * np.sqrt(5), rtol=1e-12)


def test_layer_statistics_leaves_the_model_and_its_step_buffers_alone(backend_name):
    x, y = blobs(n=16)
    model = MLP([6, 8, 8, 3], activation="tanh", seed=0, backend=backend_name)
    optimizer = SGD(model.params, lr=0.1)
    model.train_step(x[:8], y[:8], optimizer)  # creates the step buffers of the fast backends
    buffers = {key: to_numpy(a).copy() for key, a in model._workspace._buffers.items()}
    before = host_params(model)
    layer_statistics(model, x, y, sigma=1.0, initial_weights=[W for W, _ in before])
    for key, a in model._workspace._buffers.items():
        np.testing.assert_array_equal(to_numpy(a), buffers[key], err_msg=str(key))
    for group, saved in zip(model.params, before):
        for a, b in zip(group, saved):
            np.testing.assert_array_equal(to_numpy(a), b)


# ---------------------------------------------------------------------------------------------- the callback
def train(model, x, y, epochs, callbacks=(), batch_size=10, trainer=None):
    trainer = trainer or Trainer(model, SGD(model.params, lr=0.1), seed=0, batch_size=batch_size)
    trainer.fit(x, y, epochs, callbacks=list(callbacks), progress=False)
    return trainer


def test_probe_records_at_step_zero_and_after_every_epoch():
    x, y = blobs(n=40)  # 4 steps an epoch
    model = MLP([6, 8, 3], seed=0, dtype="float64")
    initial = layer_statistics(model, x[:12], y[:12])
    probe = Probe(x[:12], y[:12])
    trainer = train(model, x, y, 3, [probe])
    records = trainer.history.records["probes"]
    assert [(r["step"], r["epoch"]) for r in records] == [(0, 0), (4, 1), (8, 2), (12, 3)]
    assert records[0]["mean"] == initial["mean"].tolist()
    assert records[0]["act_hist"] == initial["act_hist"].tolist()
    assert records[-1]["mean"] == layer_statistics(model, x[:12], y[:12])["mean"].tolist()
    # A second fit starts where the last record is: nothing is recorded twice at step 12.
    train(model, x, y, 1, [probe], trainer=trainer)
    assert [r["step"] for r in records] == [0, 4, 8, 12, 16]


def test_probe_every_k_steps_records_the_epoch_each_step_belongs_to():
    x, y = blobs(n=40)
    model = MLP([6, 8, 3], seed=0)
    trainer = train(model, x, y, 3, [Probe(x, y, every=3, at_begin=False)])
    records = trainer.history.records["probes"]
    assert [(r["step"], r["epoch"]) for r in records] == [(3, 1), (6, 2), (9, 3), (12, 3)]
    trainer = train(MLP([6, 8, 3], seed=0), x, y, 2, [Probe(x, every=4, key="mine")])
    assert [(r["step"], r["epoch"]) for r in trainer.history.records["mine"]] == [(0, 0), (4, 1), (8, 2)]
    assert "grad_var" not in trainer.history.records["mine"][0]


def test_training_with_a_probe_gives_bit_identical_weights(backend_name):
    x, y = blobs(n=30)
    runs = []
    for callbacks in ([], [Probe(x[:9], y[:9], every=1, sigma=1.0)]):
        model = MLP([6, 8, 8, 3], activation="tanh", seed=5, backend=backend_name)
        trainer = train(model, x, y, 2, callbacks, batch_size=7)
        runs.append((host_params(model), trainer.history.step_loss))
    (plain, plain_loss), (probed, probed_loss) = runs
    assert probed_loss == plain_loss
    for group, other in zip(plain, probed):
        for a, b in zip(group, other):
            assert np.array_equal(a, b)


def test_distance_from_initial_is_zero_at_step_zero_and_grows():
    x, y = blobs(n=40)
    model = MLP([6, 8, 8, 3], seed=0)
    trainer = train(model, x, y, 4, [Probe(x, y)])
    steps, distance = probe_series(trainer.history, "distance_from_initial")
    assert steps.tolist() == [0, 4, 8, 12, 16] and distance.shape == (5, 3)
    assert np.all(distance[0] == 0.0)
    assert np.all(np.diff(distance, axis=0) > 0)


def test_probe_keeps_given_initial_weights():
    x, y = blobs(n=20)
    model = MLP([6, 8, 3], seed=0)
    start = [np.zeros((6, 8)), np.zeros((8, 3))]
    trainer = train(model, x, y, 1, [Probe(x, y, initial_weights=start)])
    _, distance = probe_series(trainer.history, "distance_from_initial")
    _, norm = probe_series(trainer.history, "weight_norm")
    np.testing.assert_allclose(distance, norm, rtol=1e-12)


def test_probe_records_survive_save_and_load_and_are_strict_json(tmp_path):
    x, y = blobs(n=20, n_features=5)
    model = MLP([5, 5, 5, 3], activation="hard_tanh", init=("identity", {"sigma": 1.0}), seed=0)
    trainer = train(model, x, y, 2, [Probe(x, y, sigma=1.0, bins=7)])
    records = trainer.history.records["probes"]
    assert records[0]["distance_from_identity"] == [0.0, 0.0, None]  # NaN (not square) is stored as None
    json.dumps(records, allow_nan=False)  # metrics.json stays standard JSON
    trainer.save(tmp_path / "run.npz")
    loaded = Trainer.load(tmp_path / "run.npz")
    assert loaded.history.records == trainer.history.records
    steps, identity = probe_series(loaded.history, "distance_from_identity")
    assert np.isnan(identity[:, 2]).all() and identity[0, 0] == 0.0
    counts, edges = histograms(loaded.history, "act")
    assert counts.shape == (3, 7) and edges.shape == (3, 8)
    # And the history dict (what metrics.json holds) reads the same.
    np.testing.assert_array_equal(probe_series(json.loads(json.dumps(trainer.history.to_dict())), "p98")[1],
                                  probe_series(trainer.history, "p98")[1])


def test_series_and_histogram_accessors():
    x, y = blobs(n=20)
    model = MLP([6, 8, 7, 3], seed=0)
    trainer = train(model, x, y, 2, [Probe(x, y, bins=9)])
    history = trainer.history
    for quantity in ("mean", "std", "p2", "p98", "saturation", "grad_var", "weight_grad_var", "weight_norm"):
        steps, values = probe_series(history, quantity)
        assert steps.dtype == np.int64 and values.dtype == np.float64 and values.shape == (3, 3)
    steps, loss = probe_series(history.records["probes"], "loss")
    assert loss.shape == (3,) and loss[-1] < loss[0]
    for quantity in HISTOGRAM_QUANTITIES:
        counts, edges = histograms(history, quantity, index=0)
        assert counts.shape == (3, 9) and edges.shape == (3, 10) and counts.dtype == np.int64
        assert np.array_equal(counts, histograms(history.records["probes"][0], quantity + "_hist")[0])
    stats = layer_statistics(model, x, y, bins=9)
    counts, edges = histograms(stats, "grad")
    np.testing.assert_array_equal(counts, stats["grad_hist"])
    np.testing.assert_array_equal(counts, histograms(history, "grad")[0])  # the last record is now
    assert set(LAYER_QUANTITIES) >= {"distance_from_initial", "distance_from_identity"}


# ---------------------------------------------------------------------------------------------- errors
class OwnLoss(MLP):
    """A subclass that could change the input or the loss: probes refuse it rather than guess."""


@pytest.mark.parametrize("call, error, match", [
    (lambda m, x, y: layer_statistics(m, x[0], y), ValueError, "2-D"),
    (lambda m, x, y: layer_statistics(m, x[:0], y[:0]), ValueError, "at least one example"),
    (lambda m, x, y: layer_statistics(m, x[:, :4], y), ValueError, "4 features per example, the model takes 6"),
    (lambda m, x, y: layer_statistics(m, x.astype(str), y), TypeError, "real numbers"),
    (lambda m, x, y: layer_statistics(m, x, y[:-1]), ValueError, "1-D array of 12 integer labels"),
    (lambda m, x, y: layer_statistics(m, x, y.astype(float)), ValueError, "integer class labels"),
    (lambda m, x, y: layer_statistics(m, x, y + 3), ValueError, r"labels in \[0, 2\]"),
    (lambda m, x, y: layer_statistics(m, x, y - 3), ValueError, ">= 0"),
    (lambda m, x, y: layer_statistics(m, x, y, bins=0), ValueError, "bins"),
    (lambda m, x, y: layer_statistics(m, x, y, bins=True), ValueError, "bins"),
    (lambda m, x, y: layer_statistics(m, x, y, sigma=math.nan), ValueError, "sigma"),
    (lambda m, x, y: layer_statistics(m, x, y, sigma="1"), ValueError, "sigma"),
    (lambda m, x, y: layer_statistics(m, x, y, histograms=1), TypeError, "histograms"),
    (lambda m, x, y: layer_statistics(m, x, y, initial_weights=[np.zeros((6, 8))]), ValueError, "shapes"),
    (lambda m, x, y: layer_statistics(m, x, y, initial_weights=3), ValueError, "list of the L weight arrays"),
    (lambda m, x, y: layer_statistics(m, x, y, edges={"act": [1.0, 0.0]}), ValueError, "increasing"),
    (lambda m, x, y: layer_statistics(m, x, y, edges={"act": [0.0]}), ValueError, "shape"),
    (lambda m, x, y: layer_statistics(m, x, y, edges={"bias": [0.0, 1.0]}), ValueError, "unknown key"),
    (lambda m, x, y: layer_statistics(m, x, edges={"grad": [0.0, 1.0]}), ValueError, "need labels"),
    (lambda m, x, y: layer_statistics(m, x, y, edges=[0.0, 1.0]), TypeError, "dict"),
    (lambda m, x, y: layer_statistics(m, x, y, histograms=False, edges={"act": [0.0, 1.0]}), ValueError,
     "histograms=False"),
    (lambda m, x, y: layer_statistics("model", x, y), TypeError, "tinyid.MLP"),
    (lambda m, x, y: layer_statistics(OwnLoss([6, 8, 3], seed=0), x, y), TypeError, "OwnLoss has its own input"),
])
def test_layer_statistics_rejects_bad_input(call, error, match):
    x, y = blobs(n=12)
    with pytest.raises(error, match=match):
        call(MLP([6, 8, 3], seed=0), x, y)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"every": 0}, ValueError, "every"),
    ({"every": -2}, ValueError, "every"),
    ({"every": 1.5}, ValueError, "every"),
    ({"every": True}, ValueError, "every"),
    ({"bins": 0}, ValueError, "bins"),
    ({"key": ""}, ValueError, "key"),
    ({"at_begin": "yes"}, TypeError, "at_begin"),
    ({"initial_weights": 5}, ValueError, "initial_weights"),
])
def test_probe_rejects_bad_arguments(kwargs, error, match):
    x, y = blobs(n=12)
    with pytest.raises(error, match=match):
        Probe(x, y, **kwargs)


def test_probe_checks_its_batch_against_the_model_and_watches_one_model():
    x, y = blobs(n=20)
    with pytest.raises(ValueError, match="5 features per example, the model takes 6"):
        train(MLP([6, 8, 3], seed=0), x, y, 1, [Probe(x[:, :5], y)])
    with pytest.raises(ValueError, match=r"labels in \[0, 1\]"):
        train(MLP([6, 8, 2], seed=0), x, y % 2, 1, [Probe(x, y + 1)])
    with pytest.raises(ValueError, match="shapes"):
        train(MLP([6, 8, 3], seed=0), x, y, 1, [Probe(x, y, initial_weights=[np.zeros((6, 8))])])
    with pytest.raises(TypeError, match="plain tinyid.MLP"):
        train(OwnLoss([6, 8, 3], seed=0), x, y, 1, [Probe(x, y)])
    probe = Probe(x, y)
    train(MLP([6, 8, 3], seed=0), x, y, 1, [probe])
    with pytest.raises(ValueError, match="another model"):
        train(MLP([6, 8, 3], seed=1), x, y, 1, [probe])
    with pytest.raises(RuntimeError, match="on_train_begin"):
        other = MLP([6, 8, 3], seed=0)
        Probe(x, y).record(Trainer(other, SGD(other.params, lr=0.1)), 0)


def test_reading_records_rejects_bad_requests():
    x, y = blobs(n=20)
    with_labels = train(MLP([6, 8, 3], seed=0), x, y, 1, [Probe(x, y)]).history
    without = train(MLP([6, 8, 3], seed=0), x, y, 1, [Probe(x, histograms=False)]).history
    with pytest.raises(KeyError, match="unknown probe quantity 'nope'"):
        probe_series(with_labels, "nope")
    with pytest.raises(ValueError, match="histograms()"):
        probe_series(with_labels, "act_hist")
    with pytest.raises(KeyError, match="labels y"):
        probe_series(without, "grad_var")
    with pytest.raises(KeyError, match="sigma"):
        probe_series(with_labels, "distance_from_identity")
    with pytest.raises(ValueError, match="no probe records under 'other'"):
        probe_series(with_labels, "mean", key="other")
    with pytest.raises(ValueError, match="no probe records"):
        probe_series(History(), "mean")
    with pytest.raises(TypeError, match="History"):
        probe_series("history", "mean")
    with pytest.raises(KeyError, match="unknown histogram"):
        histograms(with_labels, "weights")
    with pytest.raises(KeyError, match="histograms=False"):
        histograms(without, "act")
    with pytest.raises(ValueError, match="index"):
        histograms(with_labels, "act", index=5)


# ---------------------------------------------------------------------------------------------------
# ActivationRecorder
# ---------------------------------------------------------------------------------------------------


def _recorder_setup(backend="numpy", seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(40, 6)), rng.integers(0, 3, size=40)
    model = MLP([6, 7, 5, 3], activation="tanh", seed=seed, backend=backend, dtype="float64")
    return x, y, model, Trainer(model, SGD(model.params, lr=0.1), seed=seed, batch_size=8)


def test_recorder_snapshots_at_fractions_match_layer_outputs():
    from tinyid.train import Callback

    x, y, model, trainer = _recorder_setup()
    probe_x = x[:9]
    expected = {}

    class Spy(Callback):  # what the layers output after every step, computed independently
        def on_train_begin(self, trainer):
            expected[trainer.step] = [np.array(a) for a in trainer.model.layer_outputs(probe_x)]

        def on_step_end(self, trainer, loss):
            expected[trainer.step] = [np.array(a) for a in trainer.model.layer_outputs(probe_x)]

    recorder = ActivationRecorder(probe_x)
    trainer.fit(x, y, epochs=4, callbacks=[Spy(), recorder])  # 5 steps per epoch: 20 steps
    assert recorder.steps == {0.0: 0, 0.35: 7, 0.75: 15, 1.0: 20}
    for f, step in recorder.steps.items():
        snapshot = recorder.activations[f]
        assert [a.shape for a in snapshot] == [(9, 7), (9, 5), (9, 3)]
        assert all(a.dtype == np.float32 for a in snapshot)
        for got, want in zip(snapshot, expected[step]):
            np.testing.assert_array_equal(got, want.astype(np.float32))
    assert trainer.planned_steps is None


def test_recorder_counts_from_the_start_of_each_fit_call_and_leaves_training_unchanged(backend_name):
    x, y, model, trainer = _recorder_setup(backend_name)
    _, _, model2, trainer2 = _recorder_setup(backend_name)
    trainer.fit(x, y, epochs=1)
    trainer2.fit(x, y, epochs=1)
    recorder = ActivationRecorder(x[:4], fractions=[0.5, 1.0], dtype="float64")
    trainer.fit(x, y, epochs=2, callbacks=[recorder])
    trainer2.fit(x, y, epochs=2)
    assert recorder.steps == {0.5: 10, 1.0: 15}
    assert recorder.activations[1.0][0].dtype == np.float64
    for (w1, _), (w2, _) in zip(model.params, model2.params):
        np.testing.assert_array_equal(to_numpy(w1), to_numpy(w2))


@pytest.mark.parametrize("kwargs", [{"fractions": []}, {"fractions": [0.5, 1.5]}, {"fractions": ["a"]},
                                    {"dtype": "int32"}])
def test_recorder_errors(kwargs):
    with pytest.raises(ValueError):
        ActivationRecorder(np.zeros((3, 2)), **kwargs)
