import numpy as np
import pytest

from tinyid import MLP, SGD, Adam, Callback, NonFiniteLossError, Trainer, evaluate, fit, optim, to_numpy
from tinyid.checkpoint import load_npz


def blobs(n=300, n_features=10, n_classes=3, seed=0):
    """Well separated Gaussian blobs: a net that trains gets them right."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_classes, n_features))
    y = rng.integers(0, n_classes, size=n)
    x = (centres[y] + rng.normal(size=(n, n_features))).astype(np.float32)
    return x, y


def params_of(model):
    return [a.copy() for group in model.params for a in group]


def test_fit_learns_and_records_history():
    x, y = blobs()
    model = MLP([10, 16, 3], activation="tanh", seed=0)
    before, _ = evaluate(model, x, y)
    history = fit(model, x, y, epochs=5, batch_size=32, lr=0.05, momentum=0.9, validation=(x, y), progress=False)
    loss, acc = evaluate(model, x, y)
    assert loss < before and acc > 0.95
    assert history.series("epoch") == [1, 2, 3, 4, 5]
    assert history.series("step")[-1] == 5 * 10 == len(history.step_loss)
    assert history.epochs[-1]["test_acc"] == pytest.approx(acc)
    with pytest.raises(KeyError, match="train_loss"):
        history.series("nope")


def test_same_seed_same_run_and_seed_changes_the_shuffle():
    x, y = blobs()

    def run(seed):
        model = MLP([10, 8, 3], seed=0)
        Trainer(model, SGD(model.params, lr=0.1), seed=seed, batch_size=16).fit(x, y, 2, progress=False)
        return params_of(model)

    a, b, c = run(1), run(1), run(2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))


@pytest.mark.parametrize("make_optimizer", [
    lambda params: SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4),
    lambda params: Adam(params, lr=1e-2),
], ids=["sgd-nesterov", "adam"])
def test_resume_from_checkpoint_is_bit_exact(tmp_path, make_optimizer):
    x, y = blobs(n=130)  # 130 is not a multiple of the batch size: a partial last batch
    straight_model = MLP([10, 12, 7, 3], activation="relu", init="he_normal", seed=4)
    straight = Trainer(straight_model, make_optimizer(straight_model.params), seed=9, batch_size=32)
    straight.fit(x, y, 4, progress=False)

    model = MLP([10, 12, 7, 3], activation="relu", init="he_normal", seed=4)
    first = Trainer(model, make_optimizer(model.params), seed=9, batch_size=32)
    first.fit(x, y, 2, progress=False, checkpoint_path=tmp_path / "run.npz")
    resumed = Trainer.load(tmp_path / "run.npz")
    assert (resumed.epoch, resumed.step) == (2, 2 * 5)
    resumed.fit(x, y, 2, progress=False)

    for p, q in zip(params_of(straight.model), params_of(resumed.model)):
        assert p.dtype == q.dtype and np.array_equal(p, q)
    assert resumed.history.step_loss == straight.history.step_loss
    assert resumed.history.series("train_loss") == straight.history.series("train_loss")
    for a, b in zip(straight.optimizer.state_dict()["buffers"].values(),
                    resumed.optimizer.state_dict()["buffers"].values()):
        assert all(np.array_equal(p, q) for p, q in zip(a, b))


def test_non_finite_loss_names_step_and_layer_and_keeps_last_checkpoint(tmp_path):
    x, y = blobs(n=64)
    model = MLP([10, 8, 8, 3], seed=0, dtype="float64")
    trainer = Trainer(model, SGD(model.params, lr=0.01), seed=0, batch_size=16)
    path = tmp_path / "run.npz"
    trainer.fit(x, y, 1, progress=False, checkpoint_path=path)
    saved = path.read_bytes()

    class Poison(Callback):
        def on_step_end(self, trainer, loss):
            if trainer.step == 6:
                trainer.model.params[1][0][0, 0] = np.nan

    with pytest.raises(NonFiniteLossError) as info:
        trainer.fit(x, y, 1, progress=False, checkpoint_path=path, callbacks=[Poison()])
    err = info.value
    assert (err.step, err.epoch) == (7, 2)
    assert err.where.startswith("layer 2 ") and "parameter W" in err.where
    assert "step 7" in str(err) and "layer 2" in str(err) and str(path) in str(err)
    assert err.checkpoint == str(path)
    assert path.read_bytes() == saved  # the last finite checkpoint is untouched
    header, _ = load_npz(path)
    assert header["trainer"]["step"] == 4


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_from_a_huge_learning_rate_is_reported():
    x, y = blobs(n=64)
    x = x * 1e3
    model = MLP([10, 8, 3], activation="relu", seed=0)
    with pytest.raises(NonFiniteLossError, match="step") as info:
        fit(model, x, y, epochs=50, lr=1e30, progress=False)
    assert info.value.where is not None
    assert "no checkpoint was written" in str(info.value)


def test_callbacks_see_every_event_in_order():
    x, y = blobs(n=40)
    events = []

    class Recorder(Callback):
        def on_train_begin(self, trainer):
            events.append(("begin", trainer.step))

        def on_step_end(self, trainer, loss):
            events.append(("step", trainer.step))
            assert np.isfinite(loss)

        def on_epoch_end(self, trainer, record):
            events.append(("epoch", record["epoch"]))
            assert trainer.history.epochs[-1] is record
            trainer.history.records.setdefault("seen", []).append(trainer.step)

        def on_train_end(self, trainer):
            events.append(("end", trainer.epoch))

    model = MLP([10, 4, 3], seed=0)
    history = fit(model, x, y, epochs=2, batch_size=20, callbacks=[Recorder()], progress=False)
    assert events == [("begin", 0), ("step", 1), ("step", 2), ("epoch", 1), ("step", 3), ("step", 4),
                      ("epoch", 2), ("end", 2)]
    assert history.records["seen"] == [2, 4]


def test_progress_bar_shows_loss_and_accuracy_when_asked(capsys):
    x, y = blobs(n=40)
    fit(MLP([10, 4, 3], seed=0), x, y, epochs=1, batch_size=10, validation=(x, y), progress=True)
    err = capsys.readouterr().err
    assert "epoch 1" in err and "train_acc" in err and "test_acc" in err
    fit(MLP([10, 4, 3], seed=0), x, y, epochs=1, batch_size=10, progress=None)  # stderr is no terminal here
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: fit(m, x[:, :5], y), r"shape \(n, 10\)"),
    (lambda m, x, y: fit(m, x, y[:-1]), "labels"),
    (lambda m, x, y: fit(m, x, y + 5), r"labels must lie in \[0, 2\]"),
    (lambda m, x, y: fit(m, x, y.astype(float)), "integers"),
    (lambda m, x, y: fit(m, x[:0], y[:0]), "no examples"),
    (lambda m, x, y: fit(m, x, y, epochs=-1), "epochs"),
    (lambda m, x, y: fit(m, x, y, batch_size=0), "batch_size"),
    (lambda m, x, y: fit(m, x, y, validation=x), "pair"),
    (lambda m, x, y: fit(m, x, y, optimizer="rmsprop"), "rmsprop"),
    (lambda m, x, y: fit(m, x, y, lr=-1.0), "lr"),
    (lambda m, x, y: Trainer(m, SGD(MLP([10, 3]).params, lr=0.1)), "model.params"),
])
def test_bad_training_arguments_raise_one_clear_error(call, message):
    x, y = blobs(n=20)
    model = MLP([10, 4, 3], seed=0)
    before = params_of(model)
    with pytest.raises(ValueError, match=message):
        call(model, x, y)
    assert all(np.array_equal(p, q) for p, q in zip(before, params_of(model)))


def test_callbacks_must_be_callbacks():
    x, y = blobs(n=20)
    with pytest.raises(TypeError, match="Callback"):
        fit(MLP([10, 3], seed=0), x, y, callbacks=[print])


@pytest.mark.cupy
def test_training_on_cupy_matches_numpy_in_float64():
    from tinyid.backend import to_numpy

    x, y = blobs(n=50)
    models = []
    for backend in ("numpy", "cupy"):
        model = MLP([10, 6, 3], seed=0, dtype="float64", backend=backend)
        fit(model, x, y, epochs=2, batch_size=16, optimizer="adam", lr=1e-2, progress=False)
        models.append(model)
    for p, q in zip(params_of(models[0]), [to_numpy(a) for g in models[1].params for a in g]):
        np.testing.assert_allclose(q, p, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------------
# freezing layers
# ---------------------------------------------------------------------------------------------------


def _frozen_pair(backend, model_kind):
    from tinyid.class_channel import ClassChannelMLP

    if model_kind == "mlp":
        make = lambda: MLP([4, 5, 6, 7, 3], activation="tanh", seed=3, backend=backend, dtype="float64")  # noqa: E731
    else:
        make = lambda: ClassChannelMLP(4, 3, 4, sigma=0.9, activation="tanh", seed=3, backend=backend,  # noqa: E731
                                       dtype="float64", loss_layers="all")
    return make(), make()


@pytest.mark.parametrize("model_kind", ["mlp", "class_channel"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_frozen_layers_keep_their_weights_and_the_rest_trains_as_usual(backend_name, model_kind, optimizer):
    frozen, free = _frozen_pair(backend_name, model_kind)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    before = [[to_numpy(p).copy() for p in layer] for layer in frozen.params]
    frozen.frozen_layers = 2
    opt_frozen = optim.get(optimizer, frozen.params, lr=0.1)
    opt_free = optim.get(optimizer, free.params, lr=0.1)
    frozen.train_step(x, y, opt_frozen)
    free.train_step(x, y, opt_free)
    for i, (a, b) in enumerate(zip(frozen.params, free.params)):
        for p_frozen, p_free, p_before in zip(a, b, before[i]):
            if i < 2:
                np.testing.assert_array_equal(to_numpy(p_frozen), p_before)
            else:  # one step: the upper layers' gradients do not depend on the lower layers' update
                np.testing.assert_allclose(to_numpy(p_frozen), to_numpy(p_free), rtol=1e-12, atol=1e-14)


def test_frozen_layers_validation():
    model = MLP([4, 5, 3], seed=0)
    with pytest.raises(ValueError, match="frozen_layers"):
        model.frozen_layers = 2
    with pytest.raises(ValueError, match="frozen_layers"):
        model.frozen_layers = -1
    model.frozen_layers = 1
    assert model.frozen_layers == 1


def test_freeze_training_freezes_bottom_up_and_counts_the_saved_work():
    from tinyid.train import FreezeTraining

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 4)), rng.integers(0, 3, size=40)
    model = MLP([4, 5, 6, 3], activation="tanh", seed=0, dtype="float64")
    freeze = FreezeTraining(x[:20], threshold=1e-9)  # everything that can freeze does, after epoch 1
    history = fit(model, x, y, epochs=2, batch_size=10, lr=0.1, callbacks=[freeze])
    records = history.records["freeze"]
    assert [r["frozen_layers"] for r in records] == [2, 2]  # never the top layer
    assert len(records[0]["similarity"]) == 3
    # epoch 1 saves nothing; in epoch 2 layers 0 and 1 skip both products and layer 2 its input gradient:
    # saved 2*(20 + 30) - 20 + 18 = 98 of 2*(20 + 30 + 18) - 20 = 116 per step, over half of the steps
    assert freeze.backward_flops_saved == pytest.approx(98 / 232, rel=1e-12)

    model2 = MLP([4, 5, 6, 3], activation="tanh", seed=0, dtype="float64")
    strict = FreezeTraining(x[:20], threshold=1.0)
    fit(model2, x, y, epochs=2, batch_size=10, lr=0.1, callbacks=[strict])
    assert model2.frozen_layers == 0 and strict.backward_flops_saved == 0.0


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": 1.5}, {"metric": "cca"}])
def test_freeze_training_errors(kwargs):
    from tinyid.train import FreezeTraining

    with pytest.raises(ValueError):
        FreezeTraining(np.zeros((5, 3)), **kwargs)
