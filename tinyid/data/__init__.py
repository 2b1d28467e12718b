"""Data sets for tinyid: the generated Shapeset-3x2 and the file-based (Fashion-)MNIST and CIFAR-10.

Every loader returns ``(x, y)``: ``x`` float32 in ``[0, 1]`` (or standardized with the
training split's scalar mean and standard deviation), one row per example by default, and
``y`` int64 labels. :func:`load_dataset` puts both splits of one data set together in a
:class:`Dataset`, and :func:`dataset_status` says which data sets are on this machine.

=================  ==========================  ==============  ========
name               loader                      features        classes
=================  ==========================  ==============  ========
``shapeset``       :func:`shapeset`            ``size ** 2``   9
``fashion-mnist``  :func:`fashion_mnist`       784             10
``mnist``          :func:`mnist`               784             10
``cifar10``        :func:`cifar10`             3072            10
=================  ==========================  ==============  ========
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from tinyid.data import cifar as _cifar
from tinyid.data import idx as _idx
from tinyid.data._files import (
    DATA_ENV_VAR,
    ChecksumMismatchError,
    CorruptDatasetError,
    DatasetNotFoundError,
    DownloadError,
    check_flag,
    check_root,
)
from tinyid.data.cifar import CIFAR10_CLASSES, cifar10
from tinyid.data.idx import FASHION_MNIST_CLASSES, MNIST_CLASSES, fashion_mnist, mnist, read_idx
# Note: the function ``shapeset`` shadows the sub-module of the same name as an attribute of
# this package; ``from tinyid.data.shapeset import ...`` still reaches the module.
from tinyid.data.shapeset import SHAPESET_CLASSES, _check_seed, _mean_std, _standardize, shapeset

__all__ = [
    "CIFAR10_CLASSES",
    "DATASET_NAMES",
    "DATA_ENV_VAR",
    "ChecksumMismatchError",
    "CorruptDatasetError",
    "Dataset",
    "DatasetNotFoundError",
    "DatasetStatus",
    "DownloadError",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "SHAPESET_CLASSES",
    "cifar10",
    "dataset_status",
    "fashion_mnist",
    "load_dataset",
    "mnist",
    "read_idx",
    "shapeset",
]

#: Names accepted by :func:`load_dataset` (``"fashion_mnist"`` is accepted as an alias).
DATASET_NAMES = ("shapeset", "fashion-mnist", "mnist", "cifar10")
_ALIASES = {"fashion_mnist": "fashion-mnist"}

#: Shapeset split sizes used by :func:`load_dataset` when none are given.
SHAPESET_DEFAULT_N_TRAIN = 10_000
SHAPESET_DEFAULT_N_TEST = 2_000

_FILE_LOADERS = {"fashion-mnist": fashion_mnist, "mnist": mnist, "cifar10": cifar10}
_CLASSES = {
    "shapeset": SHAPESET_CLASSES,
    "fashion-mnist": FASHION_MNIST_CLASSES,
    "mnist": MNIST_CLASSES,
    "cifar10": CIFAR10_CLASSES,
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Both splits of one data set, flattened.

    Attributes
    ----------
    x_train : (n_train, n_features) float32 array
    y_train : (n_train,) int64 array
    x_test : (n_test, n_features) float32 array
    y_test : (n_test,) int64 array
    classes : tuple of str
        Class names; label ``k`` is ``classes[k]``.
    name : str
        Canonical data set name, one of :data:`DATASET_NAMES`.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    name: str

    @property
    def n_features(self):
        """Length of one input row."""
        return int(self.x_train.shape[1])

    @property
    def n_classes(self):
        """Number of classes (output units of a classifier)."""
        return len(self.classes)


@dataclass(frozen=True)
class DatasetStatus:
    """Whether a data set can be loaded here, for ``tinyid data``.

    Attributes
    ----------
    name : str
        One of :data:`DATASET_NAMES`.
    available : bool
        Both splits can be loaded without downloading.
    where : str
        The directory holding the files, ``"generated"`` for Shapeset, or
        ``"not found (looked in: ...)"``.
    """

    name: str
    available: bool
    where: str


def canonical_name(name):
    """The canonical spelling of a data set name.

    Parameters
    ----------
    name : str
        One of :data:`DATASET_NAMES` or ``"fashion_mnist"``.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        Unknown name; the message lists the known ones.
    """
    canonical = _ALIASES.get(name, name) if isinstance(name, str) else name
    if canonical not in DATASET_NAMES:
        raise ValueError(
            f"unknown data set {name!r}; known data sets: {', '.join(DATASET_NAMES)} "
            f"(also 'fashion_mnist')")
    return canonical


def _check_size(value, name):
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be None or an int >= 1, got {value!r}")
    return int(value)


def _first(x, y, n, split, name):
    """The first ``n`` examples (all when ``n`` is None)."""
    if n is None:
        return x, y
    if n > x.shape[0]:
        raise ValueError(f"{name} has {x.shape[0]} {split} examples, fewer than the {n} asked for")
    return x[:n], y[:n]


def load_dataset(name, *, n_train=None, n_test=None, seed=0, root=None, download=False,
                 standardize=False):
    """Load both splits of a data set by name, flattened to rows.

    Parameters
    ----------
    name : {"shapeset", "fashion-mnist", "mnist", "cifar10"}
        ``"fashion_mnist"`` is accepted too.
    n_train, n_test : int, optional
        Shapeset: how many images to generate (default 10,000 and 2,000). File data sets:
        keep the first ``n`` examples of the split (default all; asking for more than the
        split holds is an error).
    seed : int, default 0
        Shapeset only: the training images are ``shapeset(n_train, seed=[seed, 0])`` and the
        test images ``shapeset(n_test, seed=[seed, 1])``, two independent streams.
    root : str or os.PathLike, optional
        File data sets: the directory searched first and the download destination.
    download : bool, default False
        File data sets: fetch missing files (see the loaders).
    standardize : bool, default False
        Apply ``(x - mean) / std`` to both splits with the scalar statistic of the training
        split (for Shapeset, of the generated training images; for file data sets, of the
        whole training split even when ``n_train`` keeps fewer examples).

    Returns
    -------
    Dataset
        ``x_train`` is ``(n_train, n_features)`` float32, ``y_train`` ``(n_train,)`` int64,
        and likewise for the test split.

    Raises
    ------
    ValueError
        Unknown name or bad argument.
    DatasetNotFoundError, CorruptDatasetError
        From the file loaders.
    """
    name = canonical_name(name)
    n_train = _check_size(n_train, "n_train")
    n_test = _check_size(n_test, "n_test")
    standardize = check_flag(standardize, "standardize")
    download = check_flag(download, "download")
    check_root(root)
    if name == "shapeset":
        seed = _check_seed(seed)
        entropy = seed if isinstance(seed, list) else [seed]
        x_train, y_train = shapeset(n_train or SHAPESET_DEFAULT_N_TRAIN, seed=[*entropy, 0])
        x_test, y_test = shapeset(n_test or SHAPESET_DEFAULT_N_TEST, seed=[*entropy, 1])
        if standardize:
            mean, std = _mean_std(x_train)
            x_train = _standardize(x_train, mean, std)
            x_test = _standardize(x_test, mean, std)
    else:
        load = _FILE_LOADERS[name]
        x_train, y_train = _first(*load("train", root, download, standardize=standardize), n_train, "train", name)
        x_test, y_test = _first(*load("test", root, download, standardize=standardize), n_test, "test", name)
    return Dataset(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   classes=_CLASSES[name], name=name)


def dataset_status(root=None):
    """Which data sets can be loaded here and from where.

    Parameters
    ----------
    root : str or os.PathLike, optional
        Also search this directory first (as the loaders' ``root``).

    Returns
    -------
    list of DatasetStatus
        One record per name in :data:`DATASET_NAMES`, in that order.
    """
    check_root(root)
    records = [DatasetStatus("shapeset", True, "generated")]
    for name in ("fashion-mnist", "mnist"):
        records.append(DatasetStatus(name, *_idx.dataset_location(name, root)))
    records.append(DatasetStatus("cifar10", *_cifar.dataset_location(root)))
    return records
