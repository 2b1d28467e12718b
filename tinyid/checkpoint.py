"""Checkpoint files: one ``.npz`` holding named arrays plus a JSON header, never a pickle.

Layout of a file written by :func:`save_npz`::

    tinyid.json      0-d unicode array: {"format": "tinyid", "version": 1, "kind": ..., ...}
    <name>           one array per entry of ``arrays`` (e.g. "param/0/W", "optim/m/3")

Writing goes to a temporary file beside the target and is renamed over it only when complete,
so an interrupted save never leaves a half-written checkpoint where a good one was.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CheckpointError", "save_npz", "load_npz", "FORMAT", "VERSION"]

FORMAT = "tinyid"
VERSION = 1
_HEADER = "tinyid.json"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, of another format, or does not fit the model."""


def save_npz(path: "str | os.PathLike", header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``header`` (JSON-able dict) and host ``arrays`` to ``path`` atomically.

    Returns the path written (``.npz`` is appended when missing, as NumPy does).
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if _HEADER in arrays:
        raise ValueError(f"array name {_HEADER!r} is reserved for the header")
    if {"format", "version"} & set(header):
        raise ValueError("header keys 'format' and 'version' are written by save_npz itself")
    full_header = {"format": FORMAT, "version": VERSION, **header}
    payload = {_HEADER: np.array(json.dumps(full_header))}
    payload.update({name: np.asarray(a) for name, a in arrays.items()})
    for name, a in payload.items():
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object, which would need pickle")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return path


def load_npz(path: "str | os.PathLike", kind: "str | None" = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a checkpoint written by :func:`save_npz`: ``(header, arrays)``, everything loaded in memory.

    Parameters
    ----------
    path : path-like
    kind : str, optional
        When given, the header's ``kind`` must equal it (e.g. ``"trainer"``).

    Raises
    ------
    CheckpointError
        The file is missing, not a zip/npz (another format), truncated or corrupt, has no tinyid
        header, has a newer version, or is of another kind. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise CheckpointError(f"{str(path)!r} is a single .npy array, not a tinyid checkpoint (.npz)")
        with loaded as npz:
            names = list(npz.files)
            if _HEADER not in names:
                raise CheckpointError(
                    f"{str(path)!r} is an .npz file but not a tinyid checkpoint (no {_HEADER!r} entry)")
            arrays = {name: npz[name] for name in names}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, NotImplementedError,
            RuntimeError) as exc:
        raise CheckpointError(
            f"{str(path)!r} is not a readable tinyid checkpoint (truncated, corrupt or another format: {exc})"
        ) from None
    try:
        header = json.loads(str(arrays.pop(_HEADER)))
    except ValueError as exc:
        raise CheckpointError(f"{str(path)!r} has a corrupt header: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a tinyid checkpoint (header format is not {FORMAT!r})")
    if not isinstance(header.get("version"), int) or header["version"] > VERSION:
        raise CheckpointError(f"{str(path)!r} has checkpoint version {header.get('version')!r}; "
                              f"this tinyid reads versions up to {VERSION}: upgrade tinyid")
    if kind is not None and header.get("kind") != kind:
        raise CheckpointError(f"{str(path)!r} holds a {header.get('kind')!r} checkpoint, expected {kind!r}")
    return header, arrays
