"""Time one training step of tinyid against PyTorch and against the matrix-product lower bound.

Run from the repository root::

    python benchmarks/step.py            # the full benchmark (a few minutes on 2 cores)
    python benchmarks/step.py --quick    # a smoke run (about half a minute); its numbers mean nothing

One step = forward + backward + plain SGD update (momentum 0), softmax cross-entropy, float32, on
one fixed batch, for the three configurations of issue 3 (see ``bench_rows.CONFIGS``). Rows:
tinyid numpy (the reference), tinyid numba (fused kernels), PyTorch CPU eager with the same weights
(2 threads; skipped when torch is not installed) and the lower bound: the three matrix products
per layer one step needs, with the same BLAS. All rows of a configuration are timed in one process,
interleaved round-robin, and the table gives the median step time with the ratios to the bound and
to PyTorch. Then the memory of the 100-layer run (config b), and, when CuPy finds a GPU, the same
rows on the GPU plus the fused epilogue kernel's memory bandwidth. See ``benchmarks/README.md``.

The exit status is 1 when a row computed a different first-step loss than the NumPy reference.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the bench_* helpers beside this file

import bench_env  # noqa: E402
import bench_gpu  # noqa: E402
import bench_memory  # noqa: E402
from bench_report import format_table, format_targets, has_wrong_row  # noqa: E402
from bench_rows import (CONFIGS, LEARNING_RATE, LOSS_RTOL, SETTLE_SECONDS, TORCH_CPU_THREADS,  # noqa: E402
                        BoundRow, TinyidRow, TorchRow, benchmark_config)

#: The CPU rows, by the name ``--rows`` uses: (label in the table, factory(config, x, y, host_params)).
CPU_ROWS = {
    "numpy": ("tinyid numpy", lambda config, x, y, params: TinyidRow(config, "numpy", x, y)),
    "numba": ("tinyid numba", lambda config, x, y, params: TinyidRow(config, "numba", x, y)),
    "torch": ("PyTorch CPU eager", lambda config, x, y, params: TorchRow(config, params, x, y, "cpu")),
    "bound": ("lower bound", lambda config, x, y, params: BoundRow(config)),
}
BOUND, TORCH = CPU_ROWS["bound"][0], CPU_ROWS["torch"][0]

#: Issue 3's CPU targets: (row, reference row, configs, largest allowed ratio of median step times).
CPU_TARGETS = [
    ("tinyid numba", BOUND, "ab", 1.10),
    ("tinyid numba", BOUND, "c", 1.25),
    ("tinyid numba", TORCH, "abc", 0.85),
    ("tinyid numpy", BOUND, "ab", 1.50),
]

MIN_STEPS = 30  # the protocol: the median of at least 30 steps


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per row (median taken; default 40)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds before timing (default 2)")
    parser.add_argument("--settle", type=float, default=SETTLE_SECONDS,
                        help=f"seconds of untimed steps before each timed step (default {SETTLE_SECONDS})")
    parser.add_argument("--configs", default="a,b,c", help="comma-separated subset of a,b,c (default all)")
    parser.add_argument("--rows", default=",".join(CPU_ROWS),
                        help=f"comma-separated subset of {','.join(CPU_ROWS)} (default all)")
    parser.add_argument("--memory-steps", type=int, default=5,
                        help="traced steps after the first in the memory section (default 5)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory section")
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU section")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 timed steps, no warm-up, 1 traced memory step (numbers mean nothing)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.memory_steps = 3, 0, 1
    args.configs = _subset(parser, "configs", args.configs, CONFIGS)
    args.rows = _subset(parser, "rows", args.rows, CPU_ROWS)
    if args.steps < 1 or args.warmup < 0 or args.memory_steps < 1 or args.settle < 0:
        parser.error("--steps and --memory-steps must be >= 1, --warmup and --settle >= 0")
    return args


def _subset(parser, option: str, text: str, known) -> list:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in chosen if part not in known]
    if unknown or not chosen:
        parser.error(f"--{option} takes a comma-separated subset of {','.join(known)}, got {text!r}")
    return chosen


# ---------------------------------------------------------------------------------------------- sections
def cpu_section(args) -> dict:
    """Time the chosen CPU rows on each chosen configuration; print progress; ``{key: [Measurement]}``."""
    factories = [CPU_ROWS[name] for name in args.rows]
    results = {}
    for key in args.configs:
        config = CONFIGS[key]
        print(f"timing {config.describe()} ...", flush=True)
        results[key], n_settle = benchmark_config(config, factories, args.steps, args.warmup,
                                                  settle_s=args.settle)
        print(f"    {n_settle} untimed steps of each row before each of its timed steps", flush=True)
    return results


def memory_section(args) -> list:
    """The memory report of the 100-layer run (config b), for the NumPy-array backends chosen."""
    config = CONFIGS["b"]
    backends = [name for name in ("numpy", "numba") if name in args.rows] or ["numpy"]
    reports = [bench_memory.measure_memory(config, backend, args.memory_steps) for backend in backends]
    return bench_memory.format_reports(config, reports, args.memory_steps)


def main(argv=None) -> int:
    args = parse_args(argv)
    print("# tinyid training-step benchmark\n")
    print("\n".join(bench_env.header_lines()))
    print(f"\nstep: forward + backward + SGD update (plain SGD, momentum 0, lr {LEARNING_RATE}), softmax cross-entropy,"
          f" float32, one fixed batch; PyTorch CPU on {TORCH_CPU_THREADS} threads, same initial weights")
    print(f"protocol: rows interleaved round-robin (random order each round), {args.warmup} warm-up rounds, "
          f"median of {args.steps} timed steps, each right after {args.settle:g} s of the row's own untimed steps\n"
          f"          (so other libraries' thread pools are asleep); first-step loss checked against tinyid numpy "
          f"(rel. {LOSS_RTOL:g})")
    if args.steps < MIN_STEPS:
        print(f"NOTE: {args.steps} timed steps is below the issue's {MIN_STEPS}: a smoke run, not a measurement")
    print()

    results = cpu_section(args)
    print("\n## CPU\n")
    print("\n".join(format_table(results, BOUND, TORCH)))
    print("\nIssue 3 CPU targets (ratios of median step times):")
    print("\n".join(format_targets(results, CPU_TARGETS)))
    print(f"\nload average after the CPU section: {bench_env.load_average()}; {bench_env.numba_threading()}")

    if not args.no_memory and "b" in args.configs:
        print("\n## Memory\n")
        print("\n".join(memory_section(args)))

    gpu_results = {}
    if not args.no_gpu:
        print("\n## GPU\n")
        gpu_results = bench_gpu.gpu_section(args.configs, args.steps, args.warmup, args.memory_steps, args.settle)
    return 1 if has_wrong_row(results) or has_wrong_row(gpu_results) else 0


if __name__ == "__main__":
    sys.exit(main())
