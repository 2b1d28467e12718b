"""Checkpoint files: the npz round trip, atomic writes, no pickle, one clear CheckpointError per kind of
bad file, and MLP / Trainer save and load on top of them (a failed load changes nothing)."""
import json
import os

import numpy as np
import pytest

from tinyid import activations
from tinyid.checkpoint import FORMAT, VERSION, CheckpointError, load_npz, save_npz
from tinyid.layers import MLP
from tinyid.optim import SGD
from tinyid.train import Trainer

HEADER = {"kind": "test", "nested": {"a": [1, 2.5, None, "x"], "b": True}, "note": "größe ∂"}


def some_arrays():
    rng = np.random.default_rng(0)
    return {
        "param/0/W": rng.standard_normal((3, 5)).astype(np.float32),
        "param/0/b": rng.standard_normal(5),
        "optim/m/3": np.arange(7, dtype=np.int64),
        "mask": np.array([True, False, True]),
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 4)),
        "fortran": np.asfortranarray(rng.standard_normal((4, 3))),
    }


def write_good(path):
    return save_npz(path, HEADER, some_arrays())


def snapshot(model):
    return [[a.copy() for a in group] for group in model.params]


def assert_params_identical(model, saved):
    for group, group0 in zip(model.params, saved):
        for a, a0 in zip(group, group0):
            assert a.dtype == a0.dtype
            np.testing.assert_array_equal(a, a0)


# ------------------------------------------------------------------------------ save_npz / load_npz
def test_round_trip_of_header_and_arrays(tmp_path):
    arrays = some_arrays()
    written = save_npz(tmp_path / "ckpt.npz", HEADER, arrays)
    assert written == tmp_path / "ckpt.npz"
    header, loaded = load_npz(written)
    assert header == {"format": FORMAT, "version": VERSION, **HEADER}
    assert set(loaded) == set(arrays)
    for name, a in arrays.items():
        assert loaded[name].dtype == a.dtype and loaded[name].shape == a.shape, name
        np.testing.assert_array_equal(loaded[name], a)
    # everything is in memory: the file can go away
    os.remove(written)
    assert loaded["param/0/W"].sum() == arrays["param/0/W"].sum()
    # kind is checked only when asked for
    assert load_npz(write_good(tmp_path / "again"), kind="test")[0]["kind"] == "test"


def test_file_is_a_plain_npz_that_needs_no_pickle(tmp_path):
    written = write_good(tmp_path / "ckpt")
    with np.load(written, allow_pickle=False) as npz:
        assert set(npz.files) == {"tinyid.json", *some_arrays()}
        header = json.loads(str(npz["tinyid.json"]))
        np.testing.assert_array_equal(npz["optim/m/3"], np.arange(7))
    assert header["format"] == "tinyid" and header["version"] == VERSION and header["kind"] == "test"


@pytest.mark.parametrize("given, expected", [
    ("ckpt", "ckpt.npz"),
    ("model.v1", "model.v1.npz"),
    ("ckpt.npz", "ckpt.npz"),
    ("deeper/dir/ckpt", "deeper/dir/ckpt.npz"),
])
def test_npz_suffix_is_added_and_directories_created(tmp_path, given, expected):
    written = save_npz(str(tmp_path / given), {"kind": "test"}, {"x": np.ones(2)})
    assert written == tmp_path / expected
    assert written.is_file()
    assert load_npz(written)[0]["kind"] == "test"
    assert sorted(p.name for p in written.parent.iterdir()) == [written.name]  # no temp file left behind


def test_bad_arrays_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_npz(tmp_path / "a", {}, {"tinyid.json": np.ones(1)})
    with pytest.raises(TypeError, match="pickle"):
        save_npz(tmp_path / "b", {}, {"objects": np.array([{"a": 1}], dtype=object)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_a_failed_save_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, monkeypatch, error):
    good = write_good(tmp_path / "ckpt")
    good_bytes = good.read_bytes()

    def savez_then_fail(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise error

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(type(error)):
        save_npz(tmp_path / "ckpt", {"kind": "new"}, {"x": np.zeros(3)})
    monkeypatch.undo()
    assert good.read_bytes() == good_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]
    assert load_npz(good)[0]["kind"] == "test"


# ------------------------------------------------------------------------------ bad files
def _truncate(fraction):
    def make(path):
        data = write_good(path).read_bytes()
        path.write_bytes(data[:int(len(data) * fraction)])
    return make


def _plain_npz(path):
    np.savez(path, W=np.ones((2, 2)))


def _npz_with_header(header):
    def make(path):
        np.savez(path, **{"tinyid.json": np.array(json.dumps(header)), "W": np.ones(2)})
    return make


def _npy_file(path):
    """A single-array .npy file (not a zip) under an .npz name."""
    with open(path, "wb") as f:
        np.save(f, np.arange(3.0))


def _corrupt_compression_method(path):
    """A zip whose entries claim an unknown compression method (a corrupt directory entry)."""
    data = bytearray(write_good(path).read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (start := data.find(signature, start)) != -1:
            data[start + offset:start + offset + 2] = (99).to_bytes(2, "little")
            start += 4
    path.write_bytes(bytes(data))


def _flip_a_data_byte(path):
    data = bytearray(write_good(path).read_bytes())
    data[data.find(b"\x93NUMPY") + 200] ^= 0xFF  # inside the first array's stored bytes: a CRC error
    path.write_bytes(bytes(data))


BAD_FILES = [
    pytest.param(lambda p: None, "does not exist", id="missing"),
    pytest.param(_truncate(0.0), "truncated", id="empty-file"),
    pytest.param(_truncate(0.01), "truncated", id="truncated-1pc"),
    pytest.param(_truncate(0.5), "truncated", id="truncated-half"),
    pytest.param(_truncate(0.999), "truncated", id="truncated-end"),
    pytest.param(lambda p: p.write_text("epoch,loss\n1,0.5\n"), "another format", id="text-file"),
    pytest.param(_npy_file, None, id="npy-file"),
    pytest.param(_corrupt_compression_method, None, id="corrupt-zip-entry"),
    pytest.param(_flip_a_data_byte, "corrupt", id="crc-error"),
    pytest.param(_plain_npz, "not a tinyid checkpoint", id="plain-npz"),
    pytest.param(_npz_with_header({"format": "other", "version": 1}), "not a tinyid checkpoint", id="other-format"),
    pytest.param(_npz_with_header([1, 2]), "not a tinyid checkpoint", id="header-not-a-dict"),
    pytest.param(lambda p: np.savez(p, **{"tinyid.json": np.array("{not json")}), "corrupt header",
                 id="header-not-json"),
    pytest.param(_npz_with_header({"format": "tinyid", "version": VERSION + 1, "kind": "model"}),
                 f"version {VERSION + 1}.*upgrade", id="newer-version"),
    pytest.param(_npz_with_header({"format": "tinyid", "version": "1", "kind": "model"}), "version '1'",
                 id="version-not-int"),
    pytest.param(_npz_with_header({"format": "tinyid", "kind": "model"}), "version None", id="no-version"),
]


@pytest.mark.parametrize("make, message", BAD_FILES)
def test_bad_files_raise_checkpoint_error_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    with pytest.raises(CheckpointError, match=message) as info:
        load_npz(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_wrong_kind_raises_checkpoint_error(tmp_path):
    path = save_npz(tmp_path / "m", {"kind": "model"}, {})
    with pytest.raises(CheckpointError, match="holds a 'model' checkpoint, expected 'trainer'") as info:
        load_npz(path, kind="trainer")
    assert str(path) in str(info.value)
    path = save_npz(tmp_path / "nokind", {}, {})
    with pytest.raises(CheckpointError, match="holds a None checkpoint"):
        load_npz(path, kind="model")


# ------------------------------------------------------------------------------ MLP save / load
ACTIVATIONS = [*activations.NAMES, {"name": "leaky_relu", "slope": 0.2}, {"name": "elu", "alpha": 0.5}]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=lambda a: a if isinstance(a, str) else "-".join(
    str(v) for v in a.values()))
def test_mlp_save_load_round_trip_is_exact(tmp_path, activation, dtype):
    model = MLP([4, 6, 5, 3], activation=activation, init="he_normal", last_init="xavier_uniform",
                bias_init=0.1, seed=11, dtype=dtype)
    # make the weights something no initializer would give, so nothing can be re-drawn from the seed
    for W, b in model.params:
        W *= 1.7
        b += np.linspace(-1, 1, b.size).astype(dtype)
    written = model.save(tmp_path / "model")
    assert written == tmp_path / "model.npz"
    loaded = MLP.load(written)
    assert loaded.config() == model.config()
    assert loaded.activation == model.activation
    assert loaded.activation.to_config() == activations.get(activation).to_config()
    assert loaded.dtype == dtype
    assert_params_identical(loaded, model.params)
    x = np.random.default_rng(1).standard_normal((5, 4))
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert load_npz(written, kind="model")[0]["model"] == model.config()


def test_mlp_load_reads_a_trainer_checkpoint(tmp_path):
    model = MLP([3, 4, 2], seed=0, dtype="float64")
    trainer = Trainer(model, SGD(model.params, lr=0.1, momentum=0.9), batch_size=4)
    rng = np.random.default_rng(0)
    trainer.fit(rng.standard_normal((10, 3)), rng.integers(0, 2, 10), epochs=1, progress=False)
    path = trainer.save(tmp_path / "run")
    loaded = MLP.load(path)
    assert_params_identical(loaded, model.params)


@pytest.mark.parametrize("other", [
    pytest.param(dict(sizes=[4, 7, 5, 3]), id="wider"),
    pytest.param(dict(sizes=[4, 6, 3]), id="fewer-layers"),
    pytest.param(dict(sizes=[4, 6, 5, 2]), id="fewer-classes"),
    pytest.param(dict(activation="relu"), id="other-activation"),
    pytest.param(dict(activation={"name": "leaky_relu", "slope": 0.1}), id="other-slope"),
])
def test_load_weights_from_another_architecture_raises_and_changes_nothing(tmp_path, other):
    spec = dict(sizes=[4, 6, 5, 3], activation={"name": "leaky_relu", "slope": 0.2})
    model = MLP(**spec, seed=0)
    path = MLP(**{**spec, **other}, seed=1).save(tmp_path / "other")
    before = snapshot(model)
    objects = [id(a) for group in model.params for a in group]
    with pytest.raises(CheckpointError) as info:
        model.load_weights(path)
    assert str(path) in str(info.value)
    assert_params_identical(model, before)
    assert [id(a) for group in model.params for a in group] == objects


def test_load_weights_copies_into_the_live_arrays(tmp_path):
    spec = dict(sizes=[4, 6, 3], activation={"name": "leaky_relu", "slope": 0.2})
    source = MLP(**spec, seed=1)
    path = source.save(tmp_path / "source")
    model = MLP(**spec, seed=0)
    live = [a for group in model.params for a in group]
    model.load_weights(path)
    assert all(a is b for a, b in zip((a for group in model.params for a in group), live))
    assert_params_identical(model, source.params)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.95])
def test_loading_a_truncated_file_changes_nothing(tmp_path, fraction):
    spec = dict(sizes=[4, 6, 3], activation="tanh")
    path = MLP(**spec, seed=1).save(tmp_path / "model")
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    model = MLP(**spec, seed=0)
    before = snapshot(model)
    with pytest.raises(CheckpointError, match="truncated"):
        model.load_weights(path)
    assert_params_identical(model, before)
    with pytest.raises(CheckpointError, match="truncated"):
        MLP.load(path)


def _edit_arrays(model, edit):
    arrays = model.param_arrays()
    edit(arrays)
    return arrays


@pytest.mark.parametrize("edit, message", [
    pytest.param(lambda a: a.pop("param/1/b"), "lacks parameter 'param/1/b'", id="missing-last-bias"),
    pytest.param(lambda a: a.update({"param/1/b": np.zeros(4)}), "shapes", id="last-bias-wrong-shape"),
    pytest.param(lambda a: a.update({"param/1/W": np.zeros((3, 6))}), "shapes", id="transposed-W"),
    pytest.param(lambda a: a.update({"param/1/b": np.zeros(3, dtype=np.int64)}), "float", id="int-bias"),
])
def test_a_file_with_bad_parameters_raises_and_changes_nothing(tmp_path, edit, message):
    spec = dict(sizes=[4, 6, 3], activation="tanh", dtype="float64")
    source = MLP(**spec, seed=1)
    path = save_npz(tmp_path / "bad", {"kind": "model", "model": source.config()}, _edit_arrays(source, edit))
    model = MLP(**spec, seed=0)
    before = snapshot(model)
    with pytest.raises(CheckpointError, match=message):
        model.load_weights(path)
    assert_params_identical(model, before)  # the first layer was not written before the last was checked
    with pytest.raises(CheckpointError, match=message):
        MLP.load(path)


@pytest.mark.parametrize("header", [
    pytest.param({"kind": "other"}, id="no-model-entry"),
    pytest.param({"kind": "model", "model": "an MLP"}, id="model-entry-not-a-dict"),
    pytest.param({"kind": "model", "model": ["MLP"]}, id="model-entry-a-list"),
])
def test_load_weights_from_a_checkpoint_without_a_model_config_raises(tmp_path, header):
    model = MLP([4, 6, 3], seed=0)
    path = save_npz(tmp_path / "odd", header, MLP([4, 6, 3], seed=1).param_arrays())
    before = snapshot(model)
    with pytest.raises(CheckpointError):
        model.load_weights(path)
    assert_params_identical(model, before)
    with pytest.raises(CheckpointError, match="does not hold an MLP"):
        MLP.load(path)


def test_mlp_load_of_an_unusable_config_raises_checkpoint_error(tmp_path):
    config = MLP([4, 6, 3], seed=0).config()
    for bad in ({"activation": {"name": "nope"}}, {"sizes": [4, -1, 3]}, {"dtype": "float16"}):
        path = save_npz(tmp_path / "cfg", {"kind": "model", "model": {**config, **bad}}, {})
        with pytest.raises(CheckpointError, match="unusable model config"):
            MLP.load(path)


# ------------------------------------------------------------------------------ Trainer
def test_trainer_load_of_a_model_only_checkpoint_raises(tmp_path):
    path = MLP([3, 4, 2], seed=0).save(tmp_path / "model")
    with pytest.raises(CheckpointError, match="expected 'trainer'") as info:
        Trainer.load(path)
    assert str(path) in str(info.value)


def test_trainer_load_of_a_missing_or_truncated_file_raises(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Trainer.load(tmp_path / "nothing.npz")
    model = MLP([3, 4, 2], seed=0)
    path = Trainer(model, SGD(model.params, lr=0.1)).save(tmp_path / "run")
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(CheckpointError, match="truncated"):
        Trainer.load(path)
