"""Where data set files are looked for, how they are downloaded, and the errors raised.

Search order for a data set called ``<name>`` (``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``):

1. the explicit ``root`` argument, when given (the files sit directly in it);
2. ``$TINYID_DATA/<name>/``, when the environment variable is set;
3. ``~/.cache/tinyid/<name>/``;
4. system directories of that data set (Debian's ``dataset-fashion-mnist`` package installs
   Fashion-MNIST under ``/usr/share/datasets/fashion-mnist``).

MNIST and Fashion-MNIST use the same file names, hence one sub-directory per data set.

Downloads go to ``root`` when given, else to ``~/.cache/tinyid/<name>/``. Each file is streamed
into a temporary file in the destination directory, its SHA-256 is checked against the value
recorded in tinyid, and only then is it renamed into place (an atomic ``os.replace``), so a
failed or corrupted download never leaves a partial file behind nor replaces a good one.
Files found on disk are not hashed: they may be recompressed copies (Debian's gzip files
differ from the official ones in their gzip header only).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DATA_ENV_VAR",
    "ChecksumMismatchError",
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "DownloadError",
    "RemoteFile",
]

#: Environment variable naming a directory that holds one sub-directory per data set.
DATA_ENV_VAR = "TINYID_DATA"

_DOWNLOAD_CHUNK = 1 << 20
_DOWNLOAD_TIMEOUT_S = 60


class DatasetNotFoundError(FileNotFoundError):
    """The files of a data set are in none of the places searched."""


class CorruptDatasetError(ValueError):
    """A data set file exists but its content is not what the format requires."""


class ChecksumMismatchError(CorruptDatasetError):
    """A downloaded file's SHA-256 differs from the recorded one (the file was discarded)."""


class DownloadError(OSError):
    """No mirror could deliver a file."""


@dataclass(frozen=True)
class RemoteFile:
    """A file published on the data set's mirrors.

    Attributes
    ----------
    filename : str
        Name on the mirror and on disk.
    sha256 : str
        Lower-case hex SHA-256 of the published file.
    size : int
        Size in bytes of the published file (shown to the user before downloading).
    """

    filename: str
    sha256: str
    size: int


def cache_directory(name):
    """``~/.cache/tinyid/<name>`` (``~`` from ``$HOME``).

    Parameters
    ----------
    name : str
        Data set directory name.

    Returns
    -------
    pathlib.Path
    """
    return Path.home() / ".cache" / "tinyid" / name


def search_directories(name, root=None, system_directories=()):
    """The directories searched for data set ``name``, in order.

    Parameters
    ----------
    name : str
        Data set directory name (``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``).
    root : str or os.PathLike, optional
        Explicit directory, searched first.
    system_directories : sequence of str or os.PathLike
        Searched last.

    Returns
    -------
    list of pathlib.Path
        ``[root, $TINYID_DATA/<name>, ~/.cache/tinyid/<name>, *system_directories]`` without
        the entries that do not apply (no ``root``, variable unset or empty).
    """
    directories = []
    if root is not None:
        directories.append(Path(root).expanduser())
    env_base = os.environ.get(DATA_ENV_VAR, "")
    if env_base:
        directories.append(Path(env_base).expanduser() / name)
    directories.append(cache_directory(name))
    directories.extend(Path(directory) for directory in system_directories)
    return directories


def find_in_directories(directories, wanted):
    """The first directory that holds every wanted file.

    Parameters
    ----------
    directories : sequence of pathlib.Path
        Searched in order.
    wanted : sequence of sequence of str
        One entry per required file: the names it may have, tried in order
        (e.g. ``("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte")``).

    Returns
    -------
    (pathlib.Path, list of pathlib.Path) or None
        The directory and the path found for each wanted file, or ``None``.
    """
    for directory in directories:
        found = []
        for alternatives in wanted:
            path = next((directory / name for name in alternatives if (directory / name).is_file()), None)
            if path is None:
                break
            found.append(path)
        else:
            return directory, found
    return None


def not_found_message(title, wanted, directories, how_to_get):
    """Text of a :class:`DatasetNotFoundError`.

    Parameters
    ----------
    title : str
        Human name of the data set and split, e.g. ``"Fashion-MNIST (train split)"``.
    wanted : sequence of sequence of str
        The files looked for (each with its accepted names).
    directories : sequence of pathlib.Path
        Every place looked in, in order.
    how_to_get : sequence of str
        One line per way of getting the files.

    Returns
    -------
    str
    """
    files = ", ".join(" or ".join(alternatives) for alternatives in wanted)
    lines = [f"{title}: files not found. Looked for {files} in:"]
    lines += [f"  {index}. {directory}" for index, directory in enumerate(directories, start=1)]
    if not os.environ.get(DATA_ENV_VAR, ""):
        lines.append(f"  (${DATA_ENV_VAR} is not set, so no directory under it was searched)")
    lines.append("To get them:")
    lines += [f"  - {way}" for way in how_to_get]
    return "\n".join(lines)


def sha256_of_file(path):
    """Hex SHA-256 of a file's bytes.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_DOWNLOAD_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(base_urls, remote, directory):
    """Download ``remote`` into ``directory``, verified, trying each mirror in turn.

    The bytes go to a temporary file in ``directory`` while their SHA-256 is computed; a
    matching file is renamed to ``directory / remote.filename`` atomically (replacing any
    file of that name), a mismatching one is deleted. Each attempt is announced with one
    line on stderr.

    Parameters
    ----------
    base_urls : sequence of str
        Mirror prefixes; the file's URL is ``base_url + remote.filename`` (``file://`` works).
    remote : RemoteFile
    directory : str or os.PathLike
        Destination, created if needed.

    Returns
    -------
    pathlib.Path
        The verified file.

    Raises
    ------
    ChecksumMismatchError
        A mirror delivered bytes whose SHA-256 is not ``remote.sha256`` (not retried: a wrong
        file is a reason to stop, not to try elsewhere).
    DownloadError
        Every mirror failed to deliver (network or file errors), with each failure listed.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    destination = directory / remote.filename
    failures = []
    for base_url in base_urls:
        url = base_url + remote.filename
        print(f"tinyid: downloading {remote.filename} ({remote.size / 1e6:.1f} MB) from {url}",
              file=sys.stderr)
        handle, temporary_name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part",
                                                  dir=directory)
        temporary = Path(temporary_name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(handle, "wb") as out, \
                    urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
                for chunk in iter(lambda: response.read(_DOWNLOAD_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
            actual = digest.hexdigest()
            if actual != remote.sha256:
                raise ChecksumMismatchError(
                    f"downloaded {remote.filename} from {url} has the wrong SHA-256: expected "
                    f"{remote.sha256}, got {actual}; the download was discarded")
            os.replace(temporary, destination)
            return destination
        except OSError as error:  # urllib.error.URLError and HTTPError are OSErrors
            failures.append(f"{url}: {error}")
        finally:
            temporary.unlink(missing_ok=True)
    raise DownloadError(f"could not download {remote.filename}:\n  " + "\n  ".join(failures))


def uint8_statistics(raw):
    """Mean and standard deviation of ``raw / 255`` over all entries, exactly, via a histogram.

    Parameters
    ----------
    raw : uint8 array, any shape

    Returns
    -------
    (float, float)
    """
    counts = np.bincount(raw.reshape(-1), minlength=256).astype(np.float64)
    levels = np.arange(256, dtype=np.float64) / 255
    total = counts.sum()
    mean = float(counts @ levels / total)
    std = float(np.sqrt(counts @ (levels - mean) ** 2 / total))
    return mean, std


def uint8_to_float32(raw, mean=None, std=None):
    """Pixels ``0..255`` to float32 ``raw / 255``, or ``(raw / 255 - mean) / std``.

    Done with a 256-entry lookup table computed in float64, so each value is correctly
    rounded once.

    Parameters
    ----------
    raw : uint8 array, any shape
    mean, std : float, optional
        Standardize with this statistic (both or neither).

    Returns
    -------
    float32 array, the shape of ``raw``
    """
    table = np.arange(256, dtype=np.float64) / 255
    if mean is not None:
        table = (table - mean) / std
    return table.astype(np.float32)[raw]


def check_split(split):
    """``split`` must be ``"train"`` or ``"test"``."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return split


def check_flag(value, name):
    """``value`` must be a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_root(root):
    """``root`` must be ``None``, a ``str`` or an ``os.PathLike``."""
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a directory path (str or os.PathLike) or None, got {root!r}")
    return root
