"""``tinyid run baseline``: a 3-hidden-layer tanh MLP with Xavier init on Shapeset-3x2.

The embedded data set needs no download, so this is the run the README starts with. Full
mode: 1024-1000-1000-1000-9, 10,000 training and 2,000 test images, plain SGD with momentum;
``--quick``: a 100-unit net on 2,000 images for 2 epochs (seconds).
"""
from __future__ import annotations

from tinyid.experiments.training import RunSpec, run_training

DESCRIPTION = "3-hidden-layer tanh/Xavier MLP on the embedded Shapeset-3x2 (learning curves, metrics, checkpoint)"


def add_arguments(parser) -> None:
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default 10; 2 with --quick)")


def spec_for(quick: bool, epochs: "int | None" = None, backend: str = "numpy", seed: int = 0) -> RunSpec:
    """The run this experiment makes (``quick`` shrinks it to seconds)."""
    hidden = [100] * 3 if quick else [1000] * 3
    return RunSpec(
        sizes=[1024, *hidden, 9], data="shapeset", activation="tanh", init="xavier_uniform",
        epochs=epochs if epochs is not None else (2 if quick else 10),
        batch_size=32, optimizer="sgd", lr=0.02, optimizer_kwargs={"momentum": 0.9},
        seed=seed, n_train=2000 if quick else 10000, n_test=500 if quick else 2000, backend=backend,
    )


def run(args) -> dict:
    return run_training(spec_for(args.quick, args.epochs, args.backend, args.seed), args.out,
                        progress=args.progress)
