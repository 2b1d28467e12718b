"""Named experiments run by ``tinyid run NAME``; one module each.

An experiment module provides ``DESCRIPTION`` (one line), ``add_arguments(parser)`` for its own
options, and ``run(args) -> dict`` which writes figures and a JSON of numbers under ``args.out``
and returns the numbers. Every experiment gets the common options ``--out``, ``--quick``,
``--epochs`` (None: the experiment's default), ``--backend``, ``--seed`` and ``--progress``.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXPERIMENTS", "get"]

#: experiment name -> module path
EXPERIMENTS = {
    "baseline": "tinyid.experiments.baseline",
    "glorot": "tinyid.experiments.glorot",
    "he": "tinyid.experiments.he",
    "isometry": "tinyid.experiments.isometry",
    "identity": "tinyid.experiments.identity",
    "svcca": "tinyid.experiments.svcca",
}


def get(name: str) -> ModuleType:
    """The module of experiment ``name``; ValueError listing the names when unknown."""
    try:
        return importlib.import_module(EXPERIMENTS[name])
    except KeyError:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}") from None
