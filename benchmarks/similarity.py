"""Time tinyid.similarity: linear CKA of two big layers, and every-layer-against-every-layer matrices.

Run from the repository root::

    python benchmarks/similarity.py            # the full benchmark (a few minutes on 2 cores)
    python benchmarks/similarity.py --quick    # a smoke run (seconds); its numbers mean nothing

Two sections, each a Markdown table of wall-clock seconds:

1. **One pair**: ``linear_cka`` of two independent standard normal float32 matrices of 10,000 datapoints x
   1,024 neurons (target: under 1 s), its debiased form (float64 inside), and, as the floor any
   implementation pays, the three float32 matrix products ``X^T X``, ``Y^T Y``, ``Y^T X`` alone. The rows
   are timed interleaved, round-robin, after one untimed round; the table gives the median of
   ``--repeats`` rounds and the ratio to the floor (which a busy machine disturbs less than the seconds).
2. **A 100-layer similarity matrix**: the activations of the 100 hidden layers of a 794 -> 100 x 794 -> 10
   MLP (hard tanh, orthogonal init, float32: a deep net whose layers all differ) on 2,000 probe points
   (the first Fashion-MNIST test images, standardized and padded with 10 zero pixels to 794, when the data
   set is on disk; standard normal inputs otherwise), compared layer against layer: ``similarity_matrix``
   with ``linear_cka`` (target: the whole 100 x 100 matrix in under 60 s; median of ``--matrix-repeats``
   calls) and with ``svcca`` (reported, one call; its cost depends on how many directions each layer
   keeps, printed with it). Each call factors every layer afresh.

On 2 cores, a machine busy with other work slows LAPACK calls (SVD, eigendecompositions) far more than
the load suggests: OpenBLAS's threads wait for each other at every step. Read the load averages printed
in the header and at the end before trusting a number.

The exit status is 1 when a result is not finite or a self-similarity is not 1.
"""
from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the bench_* helpers beside this file

import bench_env  # noqa: E402

from tinyid import similarity  # noqa: E402
from tinyid.layers import MLP  # noqa: E402

#: (datapoints, neurons) of the one-pair section, full and quick.
PAIR_SHAPE, QUICK_PAIR_SHAPE = (10_000, 1_024), (2_000, 256)
#: (layers, probe points, width) of the matrix section, full and quick.
MATRIX_SHAPE, QUICK_MATRIX_SHAPE = (100, 2_000, 794), (6, 1_000, 794)
#: The issue's targets: {row label: seconds}.
TARGETS = {"linear_cka float32": 1.0, "similarity_matrix linear_cka": 60.0}
FLOOR = "floor: X^T X, Y^T Y, Y^T X (float32 BLAS)"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs per row of the pair section, median taken (default 5)")
    parser.add_argument("--matrix-repeats", type=int, default=3,
                        help="timed runs of the linear-CKA matrix (default 3; the SVCCA matrix runs once)")
    parser.add_argument("--matrix-metrics", default="linear_cka,svcca",
                        help=f"comma-separated subset of {','.join(similarity.METRICS)} (default linear_cka,svcca)")
    parser.add_argument("--svcca-layers", type=int, default=None,
                        help="compare only the first N layers in the CCA-family matrices (default all; the SVCCA "
                             "matrix of 100 layers takes minutes on 2 cores)")
    parser.add_argument("--no-matrix", action="store_true", help="skip the matrix section")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: pair {QUICK_PAIR_SHAPE}, matrix {QUICK_MATRIX_SHAPE}, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.matrix_repeats = 1, 1
    metrics = [m.strip() for m in args.matrix_metrics.split(",") if m.strip()]
    if not metrics or any(m not in similarity.METRICS for m in metrics):
        parser.error(f"--matrix-metrics takes a comma-separated subset of {','.join(similarity.METRICS)}, "
                     f"got {args.matrix_metrics!r}")
    args.matrix_metrics = metrics
    if args.repeats < 1 or args.matrix_repeats < 1 or (args.svcca_layers is not None and args.svcca_layers < 1):
        parser.error("--repeats, --matrix-repeats and --svcca-layers must be >= 1")
    return args


def timed(function, repeats: int):
    """``(median seconds, min seconds, last result)`` of ``repeats`` calls, the collector paused."""
    times, result = [], None
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter()
            result = function()
            times.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return statistics.median(times), min(times), result


def timed_interleaved(calls: list, repeats: int) -> list:
    """Time ``[(label, function), ...]`` round-robin (one warm-up round first), so that load from elsewhere on
    the machine hits every row alike; ``[(label, median s, min s, last result), ...]``."""
    for _, function in calls:
        function()
    times = {label: [] for label, _ in calls}
    results = {}
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeats):
            for label, function in calls:
                start = time.perf_counter()
                results[label] = function()
                times[label].append(time.perf_counter() - start)
    finally:
        gc.enable()
    return [(label, statistics.median(times[label]), min(times[label]), results[label]) for label, _ in calls]


def pair_section(args) -> tuple:
    n, p = QUICK_PAIR_SHAPE if args.quick else PAIR_SHAPE
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, p), dtype=np.float32)
    Y = rng.standard_normal((n, p), dtype=np.float32)
    shape = f"2 x ({n:,} x {p:,}) float32"

    def products():
        return X.T @ X, Y.T @ Y, Y.T @ X

    calls = [("linear_cka float32", lambda: similarity.linear_cka(X, Y)),
             ("linear_cka debiased (float64 inside)", lambda: similarity.linear_cka(X, Y, debiased=True)),
             (FLOOR, products)]
    rows, ok = [], True
    measured = timed_interleaved(calls, args.repeats)
    floor = next(median for label, median, _, _ in measured if label == FLOOR)
    for label, median, fastest, result in measured:
        value = "" if isinstance(result, tuple) else f"{result:.5f}"
        if value and not np.isfinite(result):
            ok = False
        rows.append((label, shape, median, fastest, f"{median / floor:.2f}", value))
        print(f"    {label}: {median:.3f} s", flush=True)
    expected = f"about sqrt(p q) / n = {p / n:.4f}"
    return rows, ok, expected


def probe_activations(n_layers: int, n_points: int, width: int) -> tuple:
    """The hidden-layer outputs of a (width -> n_layers x width -> 10) hard-tanh MLP on ``n_points`` inputs."""
    inputs, source = None, "standard normal inputs (Fashion-MNIST not found)"
    try:
        from tinyid.data import load_dataset

        data = load_dataset("fashion-mnist", n_train=1, n_test=n_points, standardize=True)
        images = data.x_test
        if images.shape[0] == n_points and images.shape[1] <= width:
            inputs = np.zeros((n_points, width), dtype=np.float32)
            inputs[:, :images.shape[1]] = images
            source = f"the first {n_points:,} Fashion-MNIST test images, standardized, padded to {width}"
    except Exception as exc:  # noqa: BLE001 - any missing or unreadable data set falls back to Gaussian inputs
        source = f"standard normal inputs (Fashion-MNIST not loaded: {type(exc).__name__})"
    if inputs is None:
        inputs = np.random.default_rng(1).standard_normal((n_points, width), dtype=np.float32)
    model = MLP((width,) * (n_layers + 1) + (10,), activation="hard_tanh", init="orthogonal", seed=0,
                backend="numpy", dtype="float32")
    return model.layer_outputs(inputs)[:n_layers], source


def matrix_section(args) -> tuple:
    n_layers, n_points, width = QUICK_MATRIX_SHAPE if args.quick else MATRIX_SHAPE
    print(f"    computing the activations of {n_layers} layers ...", flush=True)
    acts, source = probe_activations(n_layers, n_points, width)
    rows, ok, notes = [], True, [f"probe points: {source}"]
    for metric in args.matrix_metrics:
        kernel = metric in ("linear_cka", "debiased_cka", "rbf_cka")
        layers = acts if kernel or args.svcca_layers is None else acts[:args.svcca_layers]
        repeats = args.matrix_repeats if kernel else 1
        median, fastest, matrix = timed(lambda: similarity.similarity_matrix(layers, metric=metric), repeats)
        diagonal_error = float(np.max(np.abs(np.diag(matrix) - 1.0)))
        if not np.all(np.isfinite(matrix)) or diagonal_error > 1e-6:
            ok = False
        value = f"mean {matrix.mean():.4f}, min {matrix.min():.4f}"
        shape = f"{len(layers)} x {len(layers)} layers, {n_points:,} x {width} float32 each"
        rows.append((f"similarity_matrix {metric}", shape, median, fastest, "-", value))
        print(f"    similarity_matrix {metric}: {median:.2f} s", flush=True)
        if metric == "svcca":
            kept = [similarity.svcca(a, a).kept_x for a in layers[:: max(1, len(layers) // 10)]]
            notes.append(f"svcca (keep 0.99, squared rule) keeps {min(kept)}-{max(kept)} of {width} directions "
                         f"({len(kept)} layers sampled); a pair costs a ({n_points} x k) x (k x k) product and a "
                         "k x k symmetric eigenvalue problem")
    return rows, ok, notes


def format_rows(rows: list) -> list:
    lines = ["| measurement | shape | s (median) | s (min) | x floor | target | result |",
             "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for label, shape, median, fastest, ratio, value in rows:
        target = TARGETS.get(label)
        verdict = "-" if target is None else f"< {target:g} s: {'met' if median < target else 'NOT MET'}"
        lines.append(f"| {label} | {shape} | {median:.3f} | {fastest:.3f} | {ratio} | {verdict} | {value} |")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    print("# tinyid similarity benchmark\n")
    print("\n".join(bench_env.header_lines()))
    if args.quick:
        print("\nNOTE: --quick: small shapes, 1 repeat; a smoke run, not a measurement")
    print(f"\nprotocol: wall-clock seconds; pair section: rows interleaved round-robin, one untimed warm-up round, "
          f"median of {args.repeats} rounds;\n          matrices: the CKA ones {args.matrix_repeats} time(s), the "
          "CCA-family ones once, cold (each includes factoring every layer)\n")

    print("timing one pair ...", flush=True)
    pair_rows, pair_ok, expected = pair_section(args)
    print("\n## One pair\n")
    print("\n".join(format_rows(pair_rows)))
    print(f"\nindependent data: linear CKA is {expected}")
    ok = pair_ok
    if not args.no_matrix:
        print("\ntiming the similarity matrices ...", flush=True)
        matrix_rows, matrix_ok, notes = matrix_section(args)
        print("\n## Every layer against every layer\n")
        print("\n".join(format_rows(matrix_rows)))
        print("\n" + "\n".join(notes))
        ok = ok and matrix_ok
    print(f"\nload average at the end: {bench_env.load_average()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
