"""``tinyid run baseline``: a 3-hidden-layer tanh MLP with Xavier init on Shapeset-3x2.

The embedded data set needs no download, so this is the run the README starts with. Full
mode: 1024-500-500-500-9 on 150,000 generated training images (standardized with the training
set's mean and std) and 2,000 test images, 10 epochs of SGD with momentum 0.9, batch 64,
learning rate 0.01: about 43% test accuracy (chance is 11%) in under 2 minutes on 2 CPU cores.
Shapeset is hard for an MLP: Glorot & Bengio (2010) report 15-27% test *error* only after
training on a stream of millions of examples. ``--quick``: a 100-unit net on 3,000 images for 2
epochs (seconds).
"""
from __future__ import annotations

from tinyid.experiments.training import RunSpec, run_training

DESCRIPTION = "3-hidden-layer tanh/Xavier MLP on the embedded Shapeset-3x2 (learning curves, metrics, checkpoint)"


def add_arguments(parser) -> None:
    """No options beyond the common ones (``--out``, ``--quick``, ``--epochs``, ``--backend``, ``--seed``)."""


def spec_for(quick: bool, epochs: "int | None" = None, backend: str = "numpy", seed: int = 0) -> RunSpec:
    """The run this experiment makes (``quick`` shrinks it to seconds)."""
    hidden = [100] * 3 if quick else [500] * 3
    return RunSpec(
        sizes=[1024, *hidden, 9], data="shapeset", activation="tanh", init="xavier_uniform",
        epochs=epochs if epochs is not None else (2 if quick else 10),
        batch_size=64, optimizer="sgd", lr=0.01, optimizer_kwargs={"momentum": 0.9}, standardize=True,
        seed=seed, n_train=3000 if quick else 150_000, n_test=500 if quick else 2000, backend=backend,
    )


def run(args) -> dict:
    return run_training(spec_for(args.quick, args.epochs, args.backend, args.seed), args.out,
                        progress=args.progress)
