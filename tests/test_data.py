"""Tests of tinyid.data: Shapeset-3x2 generator, IDX and CIFAR-10 readers, search path, downloads.

Every file-based test writes its own small IDX / CIFAR files into ``tmp_path``; downloads go
through ``file://`` URLs (the mirror lists are monkeypatched), never the network. The real
Fashion-MNIST test runs only where Debian's ``dataset-fashion-mnist`` package is installed.
"""
import gzip
import hashlib
import io
import math
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyid.data as data
from tinyid.data import _files, cifar, idx
from tinyid.data.shapeset import (
    _CLASS_SHAPES,
    _draw_poses,
    _rasterize,
    _shapeset_masks,
    min_object_pixels,
)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IDX_TYPE_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
                  np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


# ----------------------------------------------------------------------------- helpers
def idx_bytes(array, magic=None):
    """IDX encoding of ``array`` (written here independently of the reader)."""
    array = np.asarray(array)
    big_endian = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if magic is None:
        magic = (IDX_TYPE_CODES[big_endian] << 8) | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(big_endian).tobytes()


def write_file(path, payload, compress):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def random_split(seed, n=7, rows=5, columns=4):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, rows, columns), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def write_idx_split(directory, split, images, labels, compress=True):
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if compress else ""
    write_file(directory / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images), compress)
    write_file(directory / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels), compress)


def write_idx_dataset(directory, seed=0, compress=True):
    """Both splits; returns {split: (images, labels)}."""
    splits = {"train": random_split(seed, n=9), "test": random_split(seed + 100, n=6)}
    for split, (images, labels) in splits.items():
        write_idx_split(directory, split, images, labels, compress)
    return splits


def cifar_records(seed, n):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    records = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1)
    return images, labels, records.tobytes()


def write_cifar(folder):
    """Five training batches of 2 records and a test batch of 3; returns {split: (images, labels)}."""
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = [], []
    for index in range(1, 6):
        images, labels, payload = cifar_records(index, 2)
        (folder / f"data_batch_{index}.bin").write_bytes(payload)
        train_images.append(images)
        train_labels.append(labels)
    test_images, test_labels, payload = cifar_records(99, 3)
    (folder / "test_batch.bin").write_bytes(payload)
    return {"train": (np.concatenate(train_images), np.concatenate(train_labels)),
            "test": (test_images, test_labels)}


def sha256(payload):
    return hashlib.sha256(payload).hexdigest()


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $TINYID_DATA, HOME in tmp_path, no system directories, empty statistic caches."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(_files.DATA_ENV_VAR, raising=False)
    monkeypatch.setitem(idx.SYSTEM_DIRECTORIES, "fashion-mnist", ())
    monkeypatch.setattr(idx, "_TRAIN_STATISTICS", {})
    monkeypatch.setattr(cifar, "_TRAIN_STATISTICS", {})
    return home


def assert_pixels(x, raw):
    """``x`` is float32 and equal to ``raw / 255`` up to rounding to float32."""
    assert x.dtype == np.float32
    np.testing.assert_array_equal(np.rint(x.astype(np.float64) * 255).astype(np.uint8), raw)
    np.testing.assert_allclose(x, raw.astype(np.float64) / 255, rtol=1e-7, atol=0)


# ----------------------------------------------------------------------------- shapeset
def test_shapeset_shapes_dtypes_and_range():
    x, y = data.shapeset(40, seed=1)
    assert x.shape == (40, 32 * 32) and x.dtype == np.float32
    assert y.shape == (40,) and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) <= set(range(9))
    images, labels = data.shapeset(40, seed=1, flatten=False)
    assert images.shape == (40, 32, 32)
    np.testing.assert_array_equal(images.reshape(40, -1), x)
    np.testing.assert_array_equal(labels, y)


def test_shapeset_is_deterministic_per_seed():
    x1, y1 = data.shapeset(30, seed=7)
    x2, y2 = data.shapeset(30, seed=7)
    x3, _ = data.shapeset(30, seed=8)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)


def test_shapeset_classes_all_occur_and_are_balanced():
    n = 4500
    _, y = data.shapeset(n, seed=2, size=16)
    counts = np.bincount(y, minlength=9)
    assert counts.size == 9 and np.all(counts > 0)
    p = 1 / 9
    standard_error = math.sqrt(n * p * (1 - p))  # binomial count of one class
    assert np.all(np.abs(counts - n * p) < 4.5 * standard_error), counts
    assert len(data.SHAPESET_CLASSES) == 9 and len(set(data.SHAPESET_CLASSES)) == 9


def test_shapeset_images_are_painted_from_their_object_masks():
    n, size = 300, 32
    draw = _shapeset_masks(n, seed=3, size=size)
    x, y = data.shapeset(n, seed=3, size=size, flatten=False)
    np.testing.assert_array_equal(draw.images(), x)
    np.testing.assert_array_equal(draw.labels, y)
    objects = draw.masks.any(axis=1)
    # Foreground > 0.5 > background by construction, and every image shows an object.
    assert np.all(x[objects] > 0.5) and np.all(x[~objects] < 0.5)
    assert np.all(objects.sum(axis=(1, 2)) >= min_object_pixels(size))


def test_shapeset_objects_follow_area_overlap_and_label_rules():
    n, size = 400, 32
    draw = _shapeset_masks(n, seed=4, size=size)
    first, second = draw.masks[:, 0], draw.masks[:, 1]
    has_second = draw.shapes[:, 1] >= 0
    area_first = first.sum(axis=(1, 2))
    area_second = second.sum(axis=(1, 2))
    overlap = (first & second).sum(axis=(1, 2))
    assert np.all(area_first >= min_object_pixels(size))
    assert np.all(area_second[has_second] >= min_object_pixels(size))
    assert np.all(area_second[~has_second] == 0)
    assert np.all(overlap <= 0.5 * np.minimum(area_first, area_second))
    assert np.any(overlap[has_second] > 0), "overlaps should happen, only bounded"
    # The label is the unordered multiset of shapes present.
    for label, shapes in zip(draw.labels, draw.shapes):
        present = tuple(sorted(int(s) for s in shapes if s >= 0))
        assert _CLASS_SHAPES[label] == present
    assert np.all(draw.object_grey[:, 0] >= 0.55) and np.all(draw.background_grey <= 0.45)


@given(seed=st.integers(0, 2**32), size=st.integers(8, 48))
def test_shapeset_objects_lie_inside_the_image(seed, size):
    rng = np.random.default_rng(seed)
    poses = _draw_poses(rng, rng.integers(0, 3, size=64), size)
    low = poses.center - poses.radius[:, None]
    high = poses.center + poses.radius[:, None]
    assert np.all(low >= -1e-9) and np.all(high <= size + 1e-9)
    assert np.all(2 * poses.radius >= 0.2 * size - 1e-9) and np.all(2 * poses.radius <= 0.8 * size + 1e-9)


def analytic_area_and_perimeter(poses, row):
    r = poses.radius[row]
    shape = poses.shape[row]
    if shape == 0:
        angles = poses.triangle_angles[row]
        arcs = np.diff(np.append(angles, angles[0] + 2 * np.pi))
        return 0.5 * r**2 * np.sin(arcs).sum(), 2 * r * np.sin(arcs / 2).sum()
    if shape == 1:
        rho, phi = poses.diagonal_ratio[row], poses.diagonal_angle[row]
        a = np.array([1 + rho * np.cos(phi), rho * np.sin(phi)]) / 2 * r
        b = np.array([1 - rho * np.cos(phi), -rho * np.sin(phi)]) / 2 * r
        return 4 * abs(a[0] * b[1] - a[1] * b[0]), 4 * (np.hypot(*a) + np.hypot(*b))
    minor = poses.axis_ratio[row]
    return np.pi * r * r * minor, 2 * np.pi * r  # perimeter bounded by the circle's


def test_rasterized_objects_match_their_geometry():
    size = 96
    rng = np.random.default_rng(5)
    poses = _draw_poses(rng, np.repeat([0, 1, 2], 20), size)
    masks = _rasterize(poses, size)
    rows_idx, cols_idx = np.mgrid[0:size, 0:size] + 0.5
    for row in range(masks.shape[0]):
        area, perimeter = analytic_area_and_perimeter(poses, row)
        count = masks[row].sum()
        # Pixels misclassified by centre sampling lie within half a diagonal of the boundary.
        assert abs(count - area) <= perimeter * math.sqrt(2) / 2 + 2, (row, count, area)
        if poses.shape[row] in (1, 2):  # centrally symmetric shapes: centroid = centre
            centroid = np.array([cols_idx[masks[row]].mean(), rows_idx[masks[row]].mean()])
            np.testing.assert_allclose(centroid, poses.center[row], atol=0.5)
        if poses.shape[row] == 2 and poses.axis_ratio[row] < 0.8:  # the major axis direction
            dx = cols_idx[masks[row]] - poses.center[row, 0]
            dy = rows_idx[masks[row]] - poses.center[row, 1]
            eigenvalues, eigenvectors = np.linalg.eigh(np.cov(np.stack([dx, dy])))
            major = eigenvectors[:, 1]
            angle_error = abs(math.sin(math.atan2(major[1], major[0]) - poses.rotation[row]))
            assert angle_error < 0.1, row


@pytest.mark.parametrize("size", [8, 20])
def test_shapeset_size_argument(size):
    x, y = data.shapeset(25, seed=0, size=size)
    assert x.shape == (25, size * size)
    draw = _shapeset_masks(25, seed=0, size=size)
    assert draw.masks.shape == (25, 2, size, size)
    assert np.all(draw.masks[:, 0].sum(axis=(1, 2)) >= min_object_pixels(size))


def test_shapeset_standardize_uses_the_generated_arrays_statistic():
    raw, _ = data.shapeset(60, seed=9)
    x, _ = data.shapeset(60, seed=9, standardize=True)
    expected = (raw.astype(np.float64) - raw.mean(dtype=np.float64)) / raw.std(dtype=np.float64)
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)
    assert x.dtype == np.float32


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(n=0), ValueError, "n must be"),
    (dict(n=2.5), TypeError, "n must be"),
    (dict(n=True), TypeError, "n must be"),
    (dict(n=5, size=7), ValueError, "size must be"),
    (dict(n=5, size="32"), TypeError, "size must be"),
    (dict(n=5, seed=-1), ValueError, "seed must be"),
    (dict(n=5, seed="a"), ValueError, "seed must be"),
    (dict(n=5, seed=[]), ValueError, "seed must be"),
    (dict(n=5, flatten="yes"), TypeError, "flatten must be"),
    (dict(n=5, standardize=None), TypeError, "standardize must be"),
])
def test_shapeset_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        data.shapeset(**kwargs)


# ----------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("loader, name", [(data.fashion_mnist, "fashion-mnist"), (data.mnist, "mnist")])
@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(isolated, tmp_path, loader, name, compress):
    root = tmp_path / "files"
    splits = write_idx_dataset(root, seed=1, compress=compress)
    for split, (images, labels) in splits.items():
        x, y = loader(split, root=root)
        assert x.shape == (images.shape[0], 20)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, labels)
        assert_pixels(x, images.reshape(images.shape[0], -1))
        x_images, _ = loader(split, root=root, flatten=False)
        assert x_images.shape == images.shape
        assert_pixels(x_images, images)


def test_idx_compression_is_detected_by_magic_bytes_not_name(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    gzip_without_suffix = write_file(tmp_path / "a-idx3-ubyte", idx_bytes(array), compress=True)
    raw_with_suffix = write_file(tmp_path / "b-idx3-ubyte.gz", idx_bytes(array), compress=False)
    np.testing.assert_array_equal(data.read_idx(gzip_without_suffix), array)
    np.testing.assert_array_equal(data.read_idx(raw_with_suffix), array)


@given(
    dtype=st.sampled_from(sorted(IDX_TYPE_CODES, key=str)),
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=3),
    compress=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_read_idx_round_trips_every_type(tmp_path_factory, dtype, shape, compress, seed):
    rng = np.random.default_rng(seed)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = write_file(tmp_path_factory.mktemp("idx") / "x.idx", idx_bytes(array), compress)
    result = data.read_idx(path)
    assert result.shape == tuple(shape) and result.dtype == dtype.newbyteorder("=")
    np.testing.assert_array_equal(result, array)


def test_search_order_root_then_env_then_cache_then_system(isolated, tmp_path, monkeypatch):
    places = {
        "root": tmp_path / "root",
        "env": tmp_path / "env" / "fashion-mnist",
        "cache": isolated / ".cache" / "tinyid" / "fashion-mnist",
        "system": tmp_path / "system",
    }
    first_label = {}
    for seed, (place, directory) in enumerate(places.items()):
        images, labels = random_split(seed)
        labels[0] = seed  # tells the places apart
        write_idx_split(directory, "train", images, labels)
        first_label[place] = seed
    monkeypatch.setenv(_files.DATA_ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setitem(idx.SYSTEM_DIRECTORIES, "fashion-mnist", (str(places["system"]),))

    assert data.fashion_mnist(root=places["root"])[1][0] == first_label["root"]
    assert data.fashion_mnist()[1][0] == first_label["env"]
    monkeypatch.delenv(_files.DATA_ENV_VAR)
    assert data.fashion_mnist()[1][0] == first_label["cache"]
    for path in places["cache"].iterdir():
        path.unlink()
    assert data.fashion_mnist()[1][0] == first_label["system"]
    # An explicit root without the files falls through to the later places.
    assert data.fashion_mnist(root=tmp_path / "empty")[1][0] == first_label["system"]


def test_a_split_needs_both_of_its_files_in_one_directory(isolated, tmp_path):
    images, labels = random_split(0)
    write_idx_split(tmp_path / "a", "train", images, labels)
    (tmp_path / "a" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.DatasetNotFoundError, match="train-labels-idx1-ubyte"):
        data.mnist(root=tmp_path / "a")


def test_missing_files_error_lists_every_place_and_remedy(isolated, tmp_path, monkeypatch):
    monkeypatch.setenv(_files.DATA_ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setitem(idx.SYSTEM_DIRECTORIES, "fashion-mnist", ("/nonexistent/fashion",))
    with pytest.raises(data.DatasetNotFoundError) as caught:
        data.fashion_mnist("test", root=tmp_path / "given")
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    for place in (tmp_path / "given", tmp_path / "env" / "fashion-mnist",
                  isolated / ".cache" / "tinyid" / "fashion-mnist", "/nonexistent/fashion"):
        assert str(place) in message
    for hint in ("t10k-images-idx3-ubyte.gz", "apt install dataset-fashion-mnist", "download=True",
                 "TINYID_DATA"):
        assert hint in message
    with pytest.raises(data.DatasetNotFoundError) as caught:
        data.mnist()
    assert "apt" not in str(caught.value) and "TINYID_DATA is not set" not in str(caught.value)


def test_missing_files_error_says_when_the_variable_is_unset(isolated):
    with pytest.raises(data.DatasetNotFoundError, match=r"\$TINYID_DATA is not set"):
        data.mnist()


# ----------------------------------------------------------------------------- corrupt IDX
def corrupt_cases():
    images, labels = random_split(3, n=4)
    good_images, good_labels = idx_bytes(images), idx_bytes(labels)
    bad_labels = labels.copy()
    bad_labels[2] = 10
    return {
        "bad magic": (idx_bytes(images, magic=0x00000801), good_labels, "images", "bad magic number"),
        "bad type byte": (b"\x00\x00\x07\x03" + good_images[4:], good_labels, "images", "bad magic number"),
        "truncated data": (good_images[:-5], good_labels, "images", "truncated data"),
        "truncated header": (good_images[:10], good_labels, "images", "truncated IDX header"),
        "no header": (b"\x00\x00", good_labels, "images", "truncated IDX file"),
        "trailing bytes": (good_images + b"xx", good_labels, "images", "unexpected bytes"),
        "count mismatch": (good_images, idx_bytes(labels[:3]), "images", "count mismatch"),
        "label out of range": (good_images, idx_bytes(bad_labels), "labels", "out of range"),
    }


@pytest.mark.parametrize("case", list(corrupt_cases()))
@pytest.mark.parametrize("compress", [True, False])
def test_corrupt_idx_files_raise_naming_file_and_problem(isolated, tmp_path, case, compress):
    images_payload, labels_payload, named_file, problem = corrupt_cases()[case]
    suffix = ".gz" if compress else ""
    write_file(tmp_path / f"train-images-idx3-ubyte{suffix}", images_payload, compress)
    write_file(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels_payload, compress)
    with pytest.raises(data.CorruptDatasetError) as caught:
        data.mnist(root=tmp_path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert problem in message
    assert f"train-{named_file}-idx" in message


def test_broken_gzip_stream_is_a_corrupt_file(isolated, tmp_path):
    images, labels = random_split(0)
    write_idx_split(tmp_path, "train", images, labels)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(data.CorruptDatasetError, match="broken gzip stream"):
        data.mnist(root=tmp_path)


# ----------------------------------------------------------------------------- standardize
def test_idx_standardize_uses_the_training_split_for_both_splits(isolated, tmp_path):
    splits = write_idx_dataset(tmp_path, seed=4)
    train_pixels = splits["train"][0].astype(np.float64) / 255
    mean, std = train_pixels.mean(), train_pixels.std()
    x_train, _ = data.fashion_mnist("train", root=tmp_path, standardize=True)
    x_test, _ = data.fashion_mnist("test", root=tmp_path, standardize=True)
    assert x_train.dtype == x_test.dtype == np.float32
    np.testing.assert_allclose(x_train.mean(dtype=np.float64), 0, atol=1e-6)
    np.testing.assert_allclose(x_train.std(dtype=np.float64), 1, rtol=1e-6)
    test_pixels = splits["test"][0].reshape(6, -1).astype(np.float64) / 255
    np.testing.assert_allclose(x_test, (test_pixels - mean) / std, rtol=1e-6, atol=1e-6)
    assert len(idx._TRAIN_STATISTICS) == 1


def test_standardizing_the_test_split_needs_the_training_split(isolated, tmp_path):
    images, labels = random_split(0)
    write_idx_split(tmp_path, "test", images, labels)
    assert data.mnist("test", root=tmp_path)[0].shape == (7, 20)
    with pytest.raises(data.DatasetNotFoundError, match="train split"):
        data.mnist("test", root=tmp_path, standardize=True)


# ----------------------------------------------------------------------------- downloads
@pytest.fixture
def idx_mirror(tmp_path, monkeypatch):
    """A file:// mirror of 'mnist' holding small gzip IDX files, hashes registered."""
    mirror = tmp_path / "mirror"
    splits = write_idx_dataset(mirror, seed=11, compress=True)
    remotes = tuple(
        _files.RemoteFile(path.name, sha256(path.read_bytes()), path.stat().st_size)
        for path in sorted(mirror.iterdir()))
    monkeypatch.setitem(idx.MIRRORS, "mnist", (mirror.as_uri() + "/",))
    monkeypatch.setitem(idx.REMOTE_FILES, "mnist", remotes)
    return mirror, splits


def test_download_into_the_cache_through_a_file_url(isolated, idx_mirror):
    _, splits = idx_mirror
    x, y = data.mnist("test", download=True)
    np.testing.assert_array_equal(y, splits["test"][1])
    cache = isolated / ".cache" / "tinyid" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(r.filename for r in idx.REMOTE_FILES["mnist"])
    x_again, _ = data.mnist("test")  # found in the cache without downloading
    np.testing.assert_array_equal(x_again, x)


def test_download_into_root(isolated, idx_mirror, tmp_path):
    root = tmp_path / "chosen"
    x, y = data.mnist("train", root=root, download=True)
    np.testing.assert_array_equal(y, idx_mirror[1]["train"][1])
    assert len(list(root.iterdir())) == 4
    assert not (isolated / ".cache").exists()


def test_download_with_a_wrong_hash_keeps_nothing_and_destroys_nothing(isolated, idx_mirror, tmp_path,
                                                                       monkeypatch):
    mirror, _ = idx_mirror
    root = tmp_path / "dest"
    root.mkdir()
    good = (mirror / "train-images-idx3-ubyte.gz").read_bytes()
    (root / "train-images-idx3-ubyte.gz").write_bytes(good)
    wrong = "0" * 64
    remotes = tuple(_files.RemoteFile(r.filename, wrong, r.size) for r in idx.REMOTE_FILES["mnist"])
    monkeypatch.setitem(idx.REMOTE_FILES, "mnist", remotes)
    with pytest.raises(data.ChecksumMismatchError) as caught:
        data.mnist("train", root=root, download=True)
    message = str(caught.value)
    named = [r.filename for r in remotes if r.filename in message]
    assert len(named) == 1 and named[0] != "train-images-idx3-ubyte.gz"  # the file present is kept
    assert f"expected {wrong}, got {sha256((mirror / named[0]).read_bytes())}" in message
    assert [p.name for p in root.iterdir()] == ["train-images-idx3-ubyte.gz"]  # no temp file left
    assert (root / "train-images-idx3-ubyte.gz").read_bytes() == good


def test_download_file_never_replaces_a_good_file_with_a_bad_one(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "f.bin").write_bytes(b"tampered")
    destination = tmp_path / "dest"
    destination.mkdir()
    (destination / "f.bin").write_bytes(b"good")
    remote = _files.RemoteFile("f.bin", sha256(b"good"), 4)
    with pytest.raises(data.ChecksumMismatchError, match=sha256(b"tampered")):
        _files.download_file([mirror.as_uri() + "/"], remote, destination)
    assert [p.name for p in destination.iterdir()] == ["f.bin"]
    assert (destination / "f.bin").read_bytes() == b"good"


def test_download_tries_the_next_mirror_and_reports_every_failure(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "f.bin").write_bytes(b"content")
    remote = _files.RemoteFile("f.bin", sha256(b"content"), 7)
    dead = (tmp_path / "nowhere").as_uri() + "/"
    path = _files.download_file([dead, mirror.as_uri() + "/"], remote, tmp_path / "dest")
    assert path.read_bytes() == b"content"
    with pytest.raises(data.DownloadError) as caught:
        _files.download_file([dead, dead.replace("nowhere", "elsewhere")], remote, tmp_path / "dest2")
    assert "nowhere/f.bin" in str(caught.value) and "elsewhere/f.bin" in str(caught.value)
    assert list((tmp_path / "dest2").iterdir()) == []


# ----------------------------------------------------------------------------- CIFAR-10
@pytest.mark.parametrize("root_is_parent", [True, False])
def test_cifar10_round_trip(isolated, tmp_path, root_is_parent):
    splits = write_cifar(tmp_path / "cifar-10-batches-bin")
    root = tmp_path if root_is_parent else tmp_path / "cifar-10-batches-bin"
    for split, (images, labels) in splits.items():
        x, y = data.cifar10(split, root=root)
        assert x.shape == (images.shape[0], 3072)
        np.testing.assert_array_equal(y, labels)
        assert y.dtype == np.int64
        assert_pixels(x, images.reshape(images.shape[0], -1))
        x_images, _ = data.cifar10(split, root=root, flatten=False)
        assert x_images.shape == (images.shape[0], 3, 32, 32)
        assert_pixels(x_images, images)


def test_cifar10_layout_is_label_then_red_green_blue_planes(isolated, tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    record = np.zeros(3073, dtype=np.uint8)
    record[0] = 7
    record[1 + 0 * 1024 + 2 * 32 + 3] = 255   # red, row 2, column 3
    record[1 + 2 * 1024 + 31 * 32 + 0] = 51   # blue, row 31, column 0
    (folder / "test_batch.bin").write_bytes(record.tobytes())
    x, y = data.cifar10("test", root=tmp_path, flatten=False)
    assert y.tolist() == [7]
    assert x[0, 0, 2, 3] == 1.0 and x[0, 2, 31, 0] == np.float32(0.2)
    assert np.count_nonzero(x) == 2


@pytest.mark.parametrize("payload, problem", [
    (b"", "wrong record size"),
    (bytes(3073 * 2 - 1), "wrong record size"),
    (bytes([10]) + bytes(3072), "out of range"),
])
def test_corrupt_cifar10_files(isolated, tmp_path, payload, problem):
    (tmp_path / "test_batch.bin").write_bytes(payload)
    with pytest.raises(data.CorruptDatasetError, match=problem) as caught:
        data.cifar10("test", root=tmp_path)
    assert "test_batch.bin" in str(caught.value)


def test_cifar10_missing_files_error(isolated, tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as caught:
        data.cifar10(root=tmp_path)
    message = str(caught.value)
    for text in (str(tmp_path), str(tmp_path / "cifar-10-batches-bin"), "data_batch_5.bin",
                 str(isolated / ".cache" / "tinyid" / "cifar10"), "download=True", "TINYID_DATA"):
        assert text in message


def make_tarball(path, members):
    """``members``: list of (name, bytes or None for a directory, or ('symlink', target))."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


@pytest.fixture
def cifar_mirror(tmp_path, monkeypatch):
    """Returns a function building a file:// mirror archive from members and registering it."""
    def build(members):
        mirror = tmp_path / "mirror"
        mirror.mkdir(exist_ok=True)
        archive = make_tarball(mirror / "cifar-10-binary.tar.gz", members)
        payload = archive.read_bytes()
        monkeypatch.setattr(cifar, "MIRRORS", (mirror.as_uri() + "/",))
        monkeypatch.setattr(cifar, "REMOTE_ARCHIVE",
                            _files.RemoteFile(archive.name, sha256(payload), len(payload)))
    return build


def test_cifar10_download_verifies_and_unpacks(isolated, tmp_path, cifar_mirror):
    source = tmp_path / "source"
    splits = write_cifar(source)
    members = [("cifar-10-batches-bin", None)] + [
        (f"cifar-10-batches-bin/{p.name}", p.read_bytes()) for p in sorted(source.iterdir())]
    members.append(("cifar-10-batches-bin/batches.meta.txt", b"airplane\n"))
    cifar_mirror(members)
    x, y = data.cifar10("train", download=True)
    np.testing.assert_array_equal(y, splits["train"][1])
    cache = isolated / ".cache" / "tinyid" / "cifar10"
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-bin"]  # archive deleted
    assert len(list((cache / "cifar-10-batches-bin").iterdir())) == 7
    assert data.dataset_status()[3] == data.DatasetStatus("cifar10", True, str(cache / "cifar-10-batches-bin"))


@pytest.mark.parametrize("bad_member", [
    ("../evil.bin", b"x"),
    ("/tmp/evil.bin", b"x"),
    ("cifar-10-batches-bin/../../evil.bin", b"x"),
    ("cifar-10-batches-bin/link.bin", ("symlink", "/etc/passwd")),
    ("elsewhere/data_batch_1.bin", b"x"),
])
def test_cifar10_archive_with_unsafe_member_is_rejected(isolated, tmp_path, cifar_mirror, bad_member):
    cifar_mirror([("cifar-10-batches-bin/test_batch.bin", bytes(3073)), bad_member])
    root = tmp_path / "dest" / "inner"
    with pytest.raises(data.CorruptDatasetError, match="unsafe archive member"):
        data.cifar10("test", root=root, download=True)
    assert not (tmp_path / "dest" / "evil.bin").exists() and not (root / "evil.bin").exists()
    assert not (root / "cifar-10-batches-bin").exists()


def test_cifar10_download_with_wrong_hash(isolated, tmp_path, cifar_mirror, monkeypatch):
    cifar_mirror([("cifar-10-batches-bin/test_batch.bin", bytes(3073))])
    monkeypatch.setattr(cifar, "REMOTE_ARCHIVE", _files.RemoteFile("cifar-10-binary.tar.gz", "f" * 64, 1))
    with pytest.raises(data.ChecksumMismatchError, match="cifar-10-binary.tar.gz"):
        data.cifar10("test", root=tmp_path / "dest", download=True)
    assert list((tmp_path / "dest").iterdir()) == []


def test_cifar10_standardize_uses_the_training_split(isolated, tmp_path):
    splits = write_cifar(tmp_path)
    train_pixels = splits["train"][0].astype(np.float64) / 255
    x_test, _ = data.cifar10("test", root=tmp_path, standardize=True)
    expected = (splits["test"][0].reshape(3, -1) / 255 - train_pixels.mean()) / train_pixels.std()
    np.testing.assert_allclose(x_test, expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("loader", [data.fashion_mnist, data.mnist, data.cifar10])
@pytest.mark.parametrize("kwargs, error, words", [
    (dict(split="validation"), ValueError, "split must be 'train' or 'test'"),
    (dict(split="Train"), ValueError, "split must be"),
    (dict(root=3), TypeError, "root must be"),
    (dict(download="yes"), TypeError, "download must be"),
    (dict(flatten=1), TypeError, "flatten must be"),
    (dict(standardize="no"), TypeError, "standardize must be"),
])
def test_loader_bad_arguments(isolated, loader, kwargs, error, words):
    with pytest.raises(error, match=words):
        loader(**kwargs)


# ----------------------------------------------------------------------------- registry
def test_load_dataset_shapeset_uses_two_independent_streams_of_the_seed():
    dataset = data.load_dataset("shapeset", n_train=30, n_test=12, seed=5)
    x_train, y_train = data.shapeset(30, seed=[5, 0])
    x_test, y_test = data.shapeset(12, seed=[5, 1])
    np.testing.assert_array_equal(dataset.x_train, x_train)
    np.testing.assert_array_equal(dataset.y_train, y_train)
    np.testing.assert_array_equal(dataset.x_test, x_test)
    np.testing.assert_array_equal(dataset.y_test, y_test)
    assert dataset.name == "shapeset" and dataset.classes == data.SHAPESET_CLASSES
    assert dataset.n_features == 1024 and dataset.n_classes == 9


def test_load_dataset_shapeset_standardizes_with_the_training_statistic():
    raw = data.load_dataset("shapeset", n_train=40, n_test=20, seed=1)
    scaled = data.load_dataset("shapeset", n_train=40, n_test=20, seed=1, standardize=True)
    mean = raw.x_train.mean(dtype=np.float64)
    std = raw.x_train.std(dtype=np.float64)
    np.testing.assert_allclose(scaled.x_test, (raw.x_test - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scaled.x_train.mean(dtype=np.float64), 0, atol=1e-6)


def test_load_dataset_from_files(isolated, tmp_path):
    splits = write_idx_dataset(tmp_path, seed=2)
    dataset = data.load_dataset("fashion_mnist", root=tmp_path, n_train=5)
    assert dataset.name == "fashion-mnist" and dataset.classes == data.FASHION_MNIST_CLASSES
    assert dataset.x_train.shape == (5, 20) and dataset.x_test.shape == (6, 20)
    np.testing.assert_array_equal(dataset.y_train, splits["train"][1][:5])
    assert dataset.n_features == 20 and dataset.n_classes == 10
    with pytest.raises(ValueError, match="has 6 test examples, fewer than the 7"):
        data.load_dataset("fashion-mnist", root=tmp_path, n_test=7)


@pytest.mark.parametrize("kwargs, words", [
    (dict(name="imagenet"), "known data sets: shapeset, fashion-mnist, mnist, cifar10"),
    (dict(name="shapeset", n_train=0), "n_train must be"),
    (dict(name="shapeset", n_test=1.5), "n_test must be"),
    (dict(name="shapeset", seed=-3), "seed must be"),
])
def test_load_dataset_bad_arguments(kwargs, words):
    with pytest.raises(ValueError, match=words):
        data.load_dataset(**kwargs)


def test_dataset_status_reports_each_data_set(isolated, tmp_path):
    write_idx_dataset(isolated / ".cache" / "tinyid" / "mnist")
    records = data.dataset_status()
    assert [r.name for r in records] == list(data.DATASET_NAMES)
    by_name = {r.name: r for r in records}
    assert by_name["shapeset"] == data.DatasetStatus("shapeset", True, "generated")
    assert by_name["mnist"] == data.DatasetStatus("mnist", True, str(isolated / ".cache" / "tinyid" / "mnist"))
    assert not by_name["fashion-mnist"].available
    assert by_name["fashion-mnist"].where.startswith("not found (looked in: ")
    assert str(isolated / ".cache" / "tinyid" / "fashion-mnist") in by_name["fashion-mnist"].where
    assert not by_name["cifar10"].available
    # Only the training split present: not available.
    write_idx_split(tmp_path / "half", "train", *random_split(0))
    assert not data.dataset_status(root=tmp_path / "half")[1].available


# ----------------------------------------------------------------------------- real data
@pytest.mark.data
@pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST not installed (sudo apt install dataset-fashion-mnist)")
def test_real_fashion_mnist():
    dataset = data.load_dataset("fashion-mnist", root=DEBIAN_FASHION_MNIST)
    assert dataset.x_train.shape == (60000, 784) and dataset.x_test.shape == (10000, 784)
    assert dataset.n_features == 784 and dataset.n_classes == 10
    assert dataset.y_train[0] == 9 and dataset.classes[9] == "Ankle boot"
    assert dataset.y_test[:3].tolist() == [9, 2, 1]
    np.testing.assert_array_equal(np.bincount(dataset.y_test), np.full(10, 1000))
    assert dataset.x_train.min() == 0.0 and dataset.x_train.max() == 1.0
