"""The ``tinyid`` command: ``train``, ``data`` and ``run NAME``.

Every error a user can cause (a bad argument, a missing data set, an unavailable backend, an
unreadable checkpoint, a diverging run) is printed as one message ``tinyid: error: ...`` with
exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinyid.backend import BACKEND_NAMES

__all__ = ["main", "build_parser", "parse_spec"]


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum``, else one clear error naming ``what`` was expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "a non-negative integer")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _sizes(text: str) -> list:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 1024,1000,9, got {text!r}") from None
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"expected at least two positive integers like 1024,1000,9, got {text!r}")
    return sizes


def parse_spec(text: str):
    """Parse ``name`` or ``name:key=value,key=value`` into a name or a ``{"name": ..., **params}`` dict.

    Values that read as numbers become floats, ``true``/``false`` booleans, anything else stays text:
    ``leaky_relu:slope=0.2`` -> ``{"name": "leaky_relu", "slope": 0.2}``.
    """
    name, _, rest = text.partition(":")
    if not rest:
        return name
    params = {}
    for item in rest.split(","):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise argparse.ArgumentTypeError(f"expected name:key=value[,key=value], got {text!r}")
        if value.lower() in ("true", "false"):
            params[key] = value.lower() == "true"
        else:
            try:
                params[key] = float(value)
            except ValueError:
                params[key] = value
    return {"name": name, **params}


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="numpy", choices=BACKEND_NAMES,
                        help="numpy (reference), numba (fused CPU kernels) or cupy (GPU); default numpy")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed for data, weights and shuffling")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="always show the progress bar (default: only on a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show it")


def build_parser() -> argparse.ArgumentParser:
    from tinyid.experiments import EXPERIMENTS, get as get_experiment

    parser = argparse.ArgumentParser(prog="tinyid", description="Deep networks from scratch: train, inspect data "
                                     "sets and run the paper experiments.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser("train", help="train an MLP on a data set",
                           description="Train an MLP and write metrics.json, checkpoint.npz and "
                                       "learning_curves.png to --out.")
    train.add_argument("--data", default="shapeset", help="shapeset (embedded), fashion-mnist, mnist or cifar10")
    train.add_argument("--sizes", type=_sizes, required=True,
                       help="layer widths n_in,h1,...,n_classes, e.g. 1024,1000,1000,9 for shapeset")
    train.add_argument("--activation", type=parse_spec, default="tanh",
                       help="hidden activation, e.g. tanh or leaky_relu:slope=0.2 (default tanh)")
    train.add_argument("--init", type=parse_spec, default="xavier_uniform",
                       help="initializer, e.g. he_normal:mode=fan_out or identity:sigma=1 (default xavier_uniform)")
    train.add_argument("--epochs", type=_non_negative_int, default=3)
    train.add_argument("--batch-size", type=_positive_int, default=64)
    train.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    train.add_argument("--lr", type=_positive_float, default=0.05, help="learning rate (default 0.05)")
    train.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    train.add_argument("--n-train", type=_positive_int, default=None, help="use the first N training examples")
    train.add_argument("--n-test", type=_positive_int, default=None, help="use the first N test examples")
    train.add_argument("--standardize", action="store_true", help="scale inputs to mean 0, std 1")
    train.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    train.add_argument("--root", default=None, help="directory holding the data files")
    train.add_argument("--download", action="store_true", help="download missing data files (SHA-256 checked)")
    train.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.npz for --epochs more")
    train.add_argument("--out", required=True, help="output directory")
    _add_common(train)

    data = sub.add_parser("data", help="list the data sets and where each was found")
    data.add_argument("--json", action="store_true", help="print JSON instead of a table")

    run = sub.add_parser("run", help="run a named experiment", description="Run a named experiment: "
                         + "; ".join(f"{name}: {get_experiment(name).DESCRIPTION}" for name in EXPERIMENTS))
    run_sub = run.add_subparsers(dest="experiment", metavar="NAME", required=True)
    for name in EXPERIMENTS:
        module = get_experiment(name)
        exp = run_sub.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        exp.add_argument("--out", default=None, help=f"output directory (default runs/{name})")
        exp.add_argument("--quick", action="store_true", help="a small version that runs in seconds")
        exp.add_argument("--epochs", type=_non_negative_int, default=None,
                         help="override the experiment's number of epochs")
        _add_common(exp)
        module.add_arguments(exp)
    return parser


def _train(args) -> int:
    from tinyid.experiments.training import RunSpec, run_training

    spec = RunSpec(sizes=args.sizes, data=args.data, activation=args.activation, init=args.init,
                   epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                   optimizer_kwargs={"momentum": args.momentum} if args.optimizer == "sgd" else {},
                   seed=args.seed, n_train=args.n_train, n_test=args.n_test, standardize=args.standardize,
                   backend=args.backend, dtype=args.dtype, root=args.root, download=args.download)
    metrics = run_training(spec, args.out, progress=args.progress, resume=args.resume)
    _report(metrics, args.out)
    return 0


def _report(metrics: dict, out) -> None:
    acc = metrics.get("final_test_acc")
    acc_text = f"{acc:.4f}" if acc is not None else "n/a (no epochs run)"
    print(f"final test accuracy: {acc_text} ({metrics['n_test']} test examples, "
          f"{metrics['train_seconds']:.1f} s of training); results in {Path(out) / 'metrics.json'}")


def _data(args) -> int:
    from tinyid.data import dataset_status

    rows = dataset_status()
    if args.json:
        print(json.dumps([dict(row._asdict()) if hasattr(row, "_asdict") else dict(vars(row)) for row in rows],
                         indent=2))
        return 0
    width = max(len(row.name) for row in rows)
    for row in rows:
        print(f"{row.name:<{width}}  {'yes' if row.available else 'no ':<3}  {row.where}")
    return 0


def _run(args) -> int:
    from tinyid.experiments import get as get_experiment

    if args.out is None:
        args.out = str(Path("runs") / args.experiment)
    metrics = get_experiment(args.experiment).run(args)
    if "final_test_acc" in metrics:
        _report(metrics, args.out)
    else:
        print(f"results in {args.out}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``tinyid`` console script; returns the exit status."""
    from tinyid.backend import BackendUnavailableError
    from tinyid.checkpoint import CheckpointError

    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"train": _train, "data": _data, "run": _run}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, FloatingPointError, BackendUnavailableError, CheckpointError) as exc:
        parser.exit(2, f"tinyid: error: {exc or type(exc).__name__}\n")
    except KeyboardInterrupt:
        parser.exit(130, "tinyid: interrupted\n")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
