"""CIFAR-10 from the official binary version (no pickle).

Format (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images"): each
``.bin`` file is a sequence of 3073-byte records, one label byte (``0..9``) followed by the
32x32 image as 1024 red, 1024 green and 1024 blue bytes, each plane in row-major order.
The training split is ``data_batch_1.bin`` .. ``data_batch_5.bin`` (10,000 records each, in
that order), the test split ``test_batch.bin``.

The files are searched with the rules of :mod:`tinyid.data._files` (sub-directory
``cifar10``); in each searched directory ``d`` both ``d`` and ``d/cifar-10-batches-bin`` are
tried, so ``root`` may be the folder holding the ``.bin`` files or the one holding the
``cifar-10-batches-bin`` folder that the archive unpacks to.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import tempfile
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

__all__ = ["CIFAR10_CLASSES", "cifar10"]

#: CIFAR-10 class names (``batches.meta.txt``); index = label.
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

NAME = "cifar10"
ARCHIVE_FOLDER = "cifar-10-batches-bin"
IMAGE_SHAPE = (3, 32, 32)
RECORD_BYTES = 1 + 3 * 32 * 32

SPLIT_FILES = {
    "train": tuple(f"data_batch_{index}.bin" for index in range(1, 6)),
    "test": ("test_batch.bin",),
}

#: Mirrors of the archive: its URL is ``mirror + filename``. Tried in order.
MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)

#: The published archive with its SHA-256 and size, as listed by TensorFlow Datasets
#: (``tensorflow_datasets/url_checksums/cifar10.txt``).
REMOTE_ARCHIVE = RemoteFile(
    "cifar-10-binary.tar.gz", "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", 170052171)

# Training-split statistic per file set: {file identities: (mean, std)}.
_TRAIN_STATISTICS = {}


def read_cifar_batch(path):
    """Read one CIFAR-10 binary batch file.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    images : (n, 3, 32, 32) uint8 array
        Channels red, green, blue.
    labels : (n,) uint8 array

    Raises
    ------
    CorruptDatasetError
        Empty file, size not a multiple of the 3073-byte record, or a label above 9.
    """
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0 or data.size % RECORD_BYTES:
        raise CorruptDatasetError(
            f"{path}: wrong record size: {data.size} bytes is not a positive multiple of the "
            f"{RECORD_BYTES}-byte CIFAR-10 record (1 label byte + 3072 pixel bytes)")
    records = data.reshape(-1, RECORD_BYTES)
    labels = records[:, 0]
    bad = np.flatnonzero(labels >= len(CIFAR10_CLASSES))
    if bad.size:
        raise CorruptDatasetError(
            f"{path}: label {int(labels[bad[0]])} of record {int(bad[0])} out of range 0..{len(CIFAR10_CLASSES) - 1}")
    return records[:, 1:].reshape(-1, *IMAGE_SHAPE), labels


def _directories(root):
    """Every searched directory, each followed by its ``cifar-10-batches-bin`` sub-folder."""
    return [candidate for directory in search_directories(NAME, root)
            for candidate in (directory, directory / ARCHIVE_FOLDER)]


def _how_to_get():
    return [
        f"pass download=True (fetches {REMOTE_ARCHIVE.filename}, {REMOTE_ARCHIVE.size / 1e6:.0f} MB, into "
        f"{cache_directory(NAME)}, or into root when given)",
        f"download {MIRRORS[0]}{REMOTE_ARCHIVE.filename} yourself, unpack it and pass root=<the folder "
        f"holding {ARCHIVE_FOLDER}>, or set ${DATA_ENV_VAR} to a directory holding a '{NAME}' "
        f"sub-directory with it",
    ]


def _locate_split(split, root):
    """``(directory, paths)`` of the split's batch files, or raise DatasetNotFoundError."""
    wanted = [(filename,) for filename in SPLIT_FILES[split]]
    directories = _directories(root)
    found = find_in_directories(directories, wanted)
    if found is None:
        raise DatasetNotFoundError(not_found_message(
            f"CIFAR-10 binary version ({split} split)", wanted, directories, _how_to_get()))
    return found


def _split_is_present(split, root):
    return find_in_directories(_directories(root), [(f,) for f in SPLIT_FILES[split]]) is not None


def extract_archive(archive, destination):
    """Unpack the ``.bin`` and text files of the CIFAR-10 binary archive, safely.

    Only regular files directly inside ``cifar-10-batches-bin/`` are written, each to a
    temporary file then renamed; any member whose name is absolute, contains ``..`` or lies
    elsewhere, and any link or device, makes the archive rejected before anything is written.

    Parameters
    ----------
    archive : str or os.PathLike
        ``cifar-10-binary.tar.gz``.
    destination : str or os.PathLike
        Directory that receives ``cifar-10-batches-bin/``.

    Returns
    -------
    pathlib.Path
        ``destination / "cifar-10-batches-bin"``.

    Raises
    ------
    CorruptDatasetError
        An unsafe or unexpected member, or an unreadable archive.
    """
    folder = Path(destination) / ARCHIVE_FOLDER
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            files = []
            for member in members:
                name = member.name
                parent, base = posixpath.split(posixpath.normpath(name))
                safe_name = not (name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/"))
                if member.isdir() and safe_name and posixpath.normpath(name) == ARCHIVE_FOLDER:
                    continue
                if not (member.isfile() and safe_name and parent == ARCHIVE_FOLDER and base):
                    raise CorruptDatasetError(
                        f"{archive}: unexpected or unsafe archive member {name!r} (only regular "
                        f"files directly inside {ARCHIVE_FOLDER}/ are accepted)")
                files.append((member, base))
            folder.mkdir(parents=True, exist_ok=True)
            for member, base in files:
                handle, temporary = tempfile.mkstemp(prefix=f".{base}.", suffix=".part", dir=folder)
                try:
                    with os.fdopen(handle, "wb") as out, tar.extractfile(member) as source:
                        shutil.copyfileobj(source, out)
                    os.replace(temporary, folder / base)
                finally:
                    Path(temporary).unlink(missing_ok=True)
    except (tarfile.TarError, EOFError) as error:
        raise CorruptDatasetError(f"{archive}: unreadable archive ({error})") from error
    return folder


def _download(root):
    """Fetch, verify and unpack the archive into ``root`` (or the cache); the archive is then deleted."""
    destination = Path(root).expanduser() if root is not None else cache_directory(NAME)
    archive = download_file(MIRRORS, REMOTE_ARCHIVE, destination)
    extract_archive(archive, destination)
    archive.unlink()


def _read_split(paths):
    """Raw ``(n, 3, 32, 32)`` uint8 images and ``(n,)`` uint8 labels of the batch files, in order."""
    batches = [read_cifar_batch(path) for path in paths]
    if len(batches) == 1:
        return batches[0]
    return (np.concatenate([images for images, _ in batches]),
            np.concatenate([labels for _, labels in batches]))


def _train_statistics(root):
    """Mean and std of the training images' ``pixel / 255``, cached per file set."""
    _, paths = _locate_split("train", root)
    key = tuple((str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns) for path in paths)
    if key not in _TRAIN_STATISTICS:
        images, _ = _read_split(paths)
        _TRAIN_STATISTICS[key] = uint8_statistics(images)
    return _TRAIN_STATISTICS[key]


def cifar10(split="train", root=None, download=False, *, flatten=True, standardize=False):
    """Load CIFAR-10 (50,000 train / 10,000 test colour images), one split.

    Parameters
    ----------
    split : {"train", "test"}, default "train"
    root : str or os.PathLike, optional
        Directory holding the ``.bin`` files or the ``cifar-10-batches-bin`` folder; searched
        first (then ``$TINYID_DATA/cifar10/`` and ``~/.cache/tinyid/cifar10/``), and the
        download destination.
    download : bool, default False
        When the files are not found, fetch ``cifar-10-binary.tar.gz`` from :data:`MIRRORS`
        into ``root`` (or ``~/.cache/tinyid/cifar10/``), verify its SHA-256, unpack it safely
        and delete the archive.
    flatten : bool, default True
        Return ``(n, 3072)`` rows (red plane, green plane, blue plane) instead of
        ``(n, 3, 32, 32)`` images.
    standardize : bool, default False
        Return ``(x - mean) / std`` where ``mean`` and ``std`` are the scalar statistics (over
        all pixels and channels) of the **training** split's ``pixel / 255`` (cached), so both
        splits get the same transform.

    Returns
    -------
    x : (n, 3072) or (n, 3, 32, 32) float32 array
        ``pixel / 255`` in ``[0, 1]`` (or standardized).
    y : (n,) int64 array
        Labels ``0..9``, index into :data:`CIFAR10_CLASSES`.

    Raises
    ------
    DatasetNotFoundError
        The files are missing (and ``download`` is False); the message lists every place
        searched and how to get the files.
    CorruptDatasetError
        A batch file has the wrong size or a label out of range.
    ValueError, TypeError
        A bad argument.
    """
    check_split(split)
    check_root(root)
    download = check_flag(download, "download")
    flatten = check_flag(flatten, "flatten")
    standardize = check_flag(standardize, "standardize")
    needed_splits = {split, "train"} if standardize else {split}
    if download and not all(_split_is_present(s, root) for s in needed_splits):
        _download(root)
    _, paths = _locate_split(split, root)
    images, labels = _read_split(paths)
    if standardize:
        x = uint8_to_float32(images, *_train_statistics(root))
    else:
        x = uint8_to_float32(images)
    if flatten:
        x = x.reshape(x.shape[0], -1)
    return x, labels.astype(np.int64)


def dataset_location(root=None):
    """Where both splits of CIFAR-10 are found, for ``tinyid data``.

    Parameters
    ----------
    root : str or os.PathLike, optional

    Returns
    -------
    (bool, str)
        ``(True, directory)`` when both splits are found (both directories, when they
        differ), else ``(False, "not found (looked in: ...)")``.
    """
    try:
        train_directory, _ = _locate_split("train", root)
        test_directory, _ = _locate_split("test", root)
    except DatasetNotFoundError:
        looked_in = ", ".join(str(d) for d in _directories(root))
        return False, f"not found (looked in: {looked_in})"
    if train_directory == test_directory:
        return True, str(train_directory)
    return True, f"train: {train_directory}; test: {test_directory}"
