"""MNIST and Fashion-MNIST from their IDX files (gzip-compressed or raw).

IDX format (LeCun et al.): a 4-byte magic number ``0x00 0x00 <type> <ndim>``, then ``ndim``
big-endian uint32 dimensions, then the values in C order. The image files have type
``0x08`` (uint8) and 3 dimensions (magic 2051), the label files type ``0x08`` and 1
dimension (magic 2049). A file whose first two bytes are ``1f 8b`` is gzip-compressed,
whatever its name.

Each split is two files, found with the search rules of :mod:`tinyid.data._files` under the
names ``<prefix>-images-idx3-ubyte[.gz]`` and ``<prefix>-labels-idx1-ubyte[.gz]``, with
``prefix`` ``train`` or ``t10k``.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from tinyid.data._files import (
    CorruptDatasetError,
    DATA_ENV_VAR,
    DatasetNotFoundError,
    RemoteFile,
    cache_directory,
    check_flag,
    check_root,
    check_split,
    download_file,
    find_in_directories,
    not_found_message,
    search_directories,
    uint8_statistics,
    uint8_to_float32,
)

__all__ = [
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "fashion_mnist",
    "mnist",
    "read_idx",
]

#: Fashion-MNIST class names (Xiao, Rasul & Vollgraf 2017); index = label.
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
#: MNIST class names: the digits; index = label.
MNIST_CLASSES = tuple(str(digit) for digit in range(10))

IDX_IMAGES_MAGIC = 0x00000803  # uint8, 3 dimensions: (n, rows, columns)
IDX_LABELS_MAGIC = 0x00000801  # uint8, 1 dimension: (n,)

_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_FILE_STEMS = ("images-idx3-ubyte", "labels-idx1-ubyte")

#: Mirrors of each data set: the URL of a file is ``mirror + filename``. Tried in order.
MIRRORS = {
    "fashion-mnist": (
        "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    "mnist": (
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
}

#: The published gzip files with their SHA-256 and size, as listed by TensorFlow Datasets
#: (``tensorflow_datasets/url_checksums/fashion_mnist.txt`` and ``mnist.txt``).
REMOTE_FILES = {
    "fashion-mnist": (
        RemoteFile("train-images-idx3-ubyte.gz",
                   "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        RemoteFile("train-labels-idx1-ubyte.gz",
                   "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        RemoteFile("t10k-images-idx3-ubyte.gz",
                   "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        RemoteFile("t10k-labels-idx1-ubyte.gz",
                   "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
    ),
    "mnist": (
        RemoteFile("train-images-idx3-ubyte.gz",
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        RemoteFile("train-labels-idx1-ubyte.gz",
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        RemoteFile("t10k-images-idx3-ubyte.gz",
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        RemoteFile("t10k-labels-idx1-ubyte.gz",
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    ),
}

#: Directories searched after ``root``, ``$TINYID_DATA`` and the cache.
SYSTEM_DIRECTORIES = {
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
    "mnist": (),
}

_TITLES = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST"}
_CLASSES = {"fashion-mnist": FASHION_MNIST_CLASSES, "mnist": MNIST_CLASSES}

# Training-split statistic per file set: {(name, file identities): (mean, std)}.
_TRAIN_STATISTICS = {}


def _read_file_bytes(path):
    """The bytes of ``path``, decompressed when the file starts with the gzip magic."""
    with open(path, "rb") as stream:
        data = stream.read()
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptDatasetError(f"{path}: broken gzip stream ({error})") from error


def read_idx(path, expected_magic=None):
    """Read one IDX file (gzip-compressed or raw).

    Parameters
    ----------
    path : str or os.PathLike
    expected_magic : int, optional
        Required magic number, e.g. ``2051`` for image files and ``2049`` for label files.

    Returns
    -------
    (d_1, ..., d_ndim) array
        Dtype given by the type byte (``uint8`` for (Fashion-)MNIST), native byte order.

    Raises
    ------
    CorruptDatasetError
        Bad magic number, unknown type, header or data shorter than announced, or bytes
        left over after the data.
    """
    data = _read_file_bytes(path)
    if len(data) < 4:
        raise CorruptDatasetError(f"{path}: truncated IDX file ({len(data)} bytes, no header)")
    magic = int.from_bytes(data[:4], "big")
    type_code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or type_code not in _IDX_DTYPES or ndim == 0 or (
            expected_magic is not None and magic != expected_magic):
        wanted = f"{expected_magic} (0x{expected_magic:08x})" if expected_magic is not None else "an IDX header"
        raise CorruptDatasetError(f"{path}: bad magic number {magic} (0x{magic:08x}), expected {wanted}")
    header_bytes = 4 + 4 * ndim
    if len(data) < header_bytes:
        raise CorruptDatasetError(
            f"{path}: truncated IDX header ({len(data)} bytes, {header_bytes} needed for {ndim} dimensions)")
    shape = tuple(int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected_bytes = header_bytes + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) < expected_bytes:
        raise CorruptDatasetError(
            f"{path}: truncated data: the header announces shape {shape} ({expected_bytes} bytes "
            f"with the header) but the file holds {len(data)} bytes")
    if len(data) > expected_bytes:
        raise CorruptDatasetError(
            f"{path}: {len(data) - expected_bytes} unexpected bytes after the data of shape {shape}")
    values = np.frombuffer(data, dtype=dtype, offset=header_bytes).reshape(shape)
    return values.astype(dtype.newbyteorder("="), copy=False)


def _wanted_files(split):
    """Accepted names of the image and label files of ``split``."""
    prefix = _SPLIT_PREFIX[split]
    return [(f"{prefix}-{stem}.gz", f"{prefix}-{stem}") for stem in _FILE_STEMS]


def _how_to_get(name):
    ways = []
    if name == "fashion-mnist":
        ways.append("install Debian's package: sudo apt install dataset-fashion-mnist")
    ways += [
        f"pass download=True (saves to {cache_directory(name)}, or to root when given)",
        f"put the files in a directory and pass root=<that directory>, or set ${DATA_ENV_VAR} "
        f"to a directory holding a '{name}' sub-directory with the files",
    ]
    return ways


def _locate_split(name, split, root):
    """``(directory, [images_path, labels_path])`` of a split, or raise DatasetNotFoundError."""
    wanted = _wanted_files(split)
    directories = search_directories(name, root, SYSTEM_DIRECTORIES[name])
    found = find_in_directories(directories, wanted)
    if found is None:
        raise DatasetNotFoundError(not_found_message(
            f"{_TITLES[name]} ({split} split)", wanted, directories, _how_to_get(name)))
    return found


def _download(name, root):
    """Download every published file of ``name`` that the destination lacks."""
    destination = Path(root).expanduser() if root is not None else cache_directory(name)
    for remote in REMOTE_FILES[name]:
        if not (destination / remote.filename).is_file():
            download_file(MIRRORS[name], remote, destination)


def _read_split(images_path, labels_path, n_classes):
    """Raw ``(n, rows, columns)`` uint8 images and ``(n,)`` uint8 labels, validated."""
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise CorruptDatasetError(
            f"count mismatch: {images_path} holds {images.shape[0]} images but {labels_path} "
            f"holds {labels.shape[0]} labels")
    if labels.size and int(labels.max()) >= n_classes:
        raise CorruptDatasetError(
            f"{labels_path}: label {int(labels.max())} out of range 0..{n_classes - 1}")
    return images, labels


def _train_statistics(name, root):
    """Mean and std of the training images' ``pixel / 255``, cached per file set."""
    _, (images_path, labels_path) = _locate_split(name, "train", root)
    key = (name, *((str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns)
                   for path in (images_path, labels_path)))
    if key not in _TRAIN_STATISTICS:
        images, _ = _read_split(images_path, labels_path, len(_CLASSES[name]))
        _TRAIN_STATISTICS[key] = uint8_statistics(images)
    return _TRAIN_STATISTICS[key]


def _split_is_present(name, split, root):
    directories = search_directories(name, root, SYSTEM_DIRECTORIES[name])
    return find_in_directories(directories, _wanted_files(split)) is not None


def _load_idx_dataset(name, split, root, download, flatten, standardize):
    """Shared body of :func:`fashion_mnist` and :func:`mnist` (same parameters and returns)."""
    check_split(split)
    check_root(root)
    download = check_flag(download, "download")
    flatten = check_flag(flatten, "flatten")
    standardize = check_flag(standardize, "standardize")
    needed_splits = {split, "train"} if standardize else {split}
    if download and not all(_split_is_present(name, s, root) for s in needed_splits):
        _download(name, root)
    _, (images_path, labels_path) = _locate_split(name, split, root)
    images, labels = _read_split(images_path, labels_path, len(_CLASSES[name]))
    if standardize:
        x = uint8_to_float32(images, *_train_statistics(name, root))
    else:
        x = uint8_to_float32(images)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    return x, labels.astype(np.int64)


_LOADER_DOC = """Load {title} ({split_sizes}), one split.

    Files are searched in ``root``, ``$TINYID_DATA/{name}/``, ``~/.cache/tinyid/{name}/``{system}
    (see :mod:`tinyid.data._files`); each split needs its images and labels file, named like
    the published ones with or without ``.gz``.

    Parameters
    ----------
    split : {{"train", "test"}}, default "train"
    root : str or os.PathLike, optional
        Directory holding the IDX files directly; searched first, and the download destination.
    download : bool, default False
        When the files are not found, fetch the published files from the mirrors in
        ``MIRRORS[{name!r}]`` into ``root`` (or ``~/.cache/tinyid/{name}/``), verifying each
        SHA-256 before keeping it.
    flatten : bool, default True
        Return ``(n, rows * columns)`` rows instead of ``(n, rows, columns)`` images.
    standardize : bool, default False
        Return ``(x - mean) / std`` where ``mean`` and ``std`` are the scalar statistics of the
        **training** split's ``pixel / 255`` (cached), so both splits get the same transform.

    Returns
    -------
    x : (n, 784) or (n, 28, 28) float32 array
        ``pixel / 255`` in ``[0, 1]`` (or standardized).
    y : (n,) int64 array
        Labels ``0..9``, index into :data:`{classes}`.

    Raises
    ------
    DatasetNotFoundError
        The files are missing (and ``download`` is False); the message lists every place
        searched and how to get the files.
    CorruptDatasetError
        A file is not valid IDX, is truncated, or images and labels disagree.
    ValueError, TypeError
        A bad argument.
    """


def fashion_mnist(split="train", root=None, download=False, *, flatten=True, standardize=False):
    return _load_idx_dataset("fashion-mnist", split, root, download, flatten, standardize)


def mnist(split="train", root=None, download=False, *, flatten=True, standardize=False):
    return _load_idx_dataset("mnist", split, root, download, flatten, standardize)


# One docstring for both loaders, so that they cannot drift apart.
fashion_mnist.__doc__ = _LOADER_DOC.format(
    title="Fashion-MNIST (Xiao, Rasul & Vollgraf 2017)", split_sizes="60,000 train / 10,000 test",
    name="fashion-mnist", classes="FASHION_MNIST_CLASSES",
    system=",\n    then ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``)")
mnist.__doc__ = _LOADER_DOC.format(
    title="MNIST (LeCun et al. 1998)", split_sizes="60,000 train / 10,000 test",
    name="mnist", classes="MNIST_CLASSES", system="")


def dataset_location(name, root=None):
    """Where both splits of ``name`` are found, for ``tinyid data``.

    Parameters
    ----------
    name : {"fashion-mnist", "mnist"}
    root : str or os.PathLike, optional

    Returns
    -------
    (bool, str)
        ``(True, directory)`` when both splits are found (both directories, when they
        differ), else ``(False, "not found (looked in: ...)")``.
    """
    try:
        train_directory, _ = _locate_split(name, "train", root)
        test_directory, _ = _locate_split(name, "test", root)
    except DatasetNotFoundError:
        looked_in = ", ".join(str(d) for d in search_directories(name, root, SYSTEM_DIRECTORIES[name]))
        return False, f"not found (looked in: {looked_in})"
    if train_directory == test_directory:
        return True, str(train_directory)
    return True, f"train: {train_directory}; test: {test_directory}"
