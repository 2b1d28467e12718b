"""Time training epochs with and without a Probe, to check that probes are cheap enough to leave on.

Run from the repository root::

    python benchmarks/probes.py            # the full benchmark (about 2.5 minutes on 2 cores, 4+ when busy)
    python benchmarks/probes.py --quick    # a smoke run (about 10 s); its numbers mean nothing

On a machine that other jobs keep busy, run it with ``OPENBLAS_NUM_THREADS=1``: measured here under
a load average of 7 on 2 cores, a batch-10 training step took 160 ms with OpenBLAS's two threads
(they wait on each other) and 8 ms with one.

The setup follows Glorot & Bengio (2010): Shapeset-3x2 (``tinyid.data.load_dataset("shapeset")``),
a 1024 -> 5 x 1000 -> 9 tanh network, ``xavier_uniform``, float32, plain SGD (lr 0.01) on
minibatches of 10, with a fixed probe batch of 300 test examples. One row per backend; in each,
two trainers start from the same weights: one trains plain, the other with a
``tinyid.probes.Probe(x_probe, y_probe, at_begin=False)`` (histograms on, 50 bins) that records
once at the end of every epoch. Their epochs are timed interleaved, in a fresh random order each
round, in one process. The table gives the median epoch time (wall clock) of each and three
estimates of the probe's overhead (the issue's target: below 10%):

- **wall**: median over rounds of (probed epoch / plain epoch) - 1, wall-clock time;
- **CPU**: the same with the process's CPU time (all its threads), which a busy machine disturbs
  less than wall time: another process's load stretches wall time, not the CPU time this one uses;
- **in-run**: the time spent inside the probe's records during the probed epochs, over the rest of
  those epochs (a paired measurement inside each epoch, immune to drift between epochs).

On a shared machine the epoch-to-epoch spread of the first two can exceed the overhead itself
(see the per-round ratios); the in-run share is then the figure to read, and the one the target
column checks. Also shown: one probe record (``layer_statistics`` on the probe batch, with
histograms) timed on its own, median of ``--probe-repeats``.
"""
from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the bench_* helpers beside this file

import bench_env  # noqa: E402

import tinyid  # noqa: E402
from tinyid.backend import BackendUnavailableError, get_backend  # noqa: E402
from tinyid.data import load_dataset  # noqa: E402
from tinyid.probes import Probe, layer_statistics  # noqa: E402

TARGET = 0.10          # the bound on the overhead of one probe per epoch
LEARNING_RATE = 0.01
SEED = 0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=5000, help="training examples, i.e. epoch length (5000)")
    parser.add_argument("--probe-examples", type=int, default=300, help="examples in the probe batch (300)")
    parser.add_argument("--batch-size", type=int, default=10, help="minibatch size (10)")
    parser.add_argument("--width", type=int, default=1000, help="hidden width (1000)")
    parser.add_argument("--depth", type=int, default=5, help="hidden layers (5)")
    parser.add_argument("--bins", type=int, default=50, help="histogram bins (50)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, one epoch of each trainer each (5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (1)")
    parser.add_argument("--probe-repeats", type=int, default=5, help="timed probe records on their own (5)")
    parser.add_argument("--backends", default="numpy,numba", help="comma-separated subset of numpy,numba,cupy")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 500 training examples, 1 round, no warm-up (numbers mean nothing)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.rounds, args.warmup, args.probe_repeats = 500, 1, 0, 1
    args.backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = [name for name in args.backends if name not in tinyid.backend.BACKEND_NAMES]
    if unknown or not args.backends:
        parser.error(f"--backends takes a comma-separated subset of numpy,numba,cupy, got {unknown or 'nothing'}")
    if min(args.n_train, args.probe_examples, args.batch_size, args.width, args.depth, args.bins, args.rounds,
           args.probe_repeats) < 1 or args.warmup < 0:
        parser.error("sizes, --bins, --rounds and --probe-repeats must be >= 1, --warmup >= 0")
    return args


def make_trainer(args, backend: str):
    model = tinyid.MLP([1024] + [args.width] * args.depth + [9], activation="tanh", init="xavier_uniform",
                       seed=SEED, backend=backend, dtype="float32")
    return tinyid.Trainer(model, tinyid.SGD(model.params, lr=LEARNING_RATE), seed=SEED, batch_size=args.batch_size)


class TimedProbe(Probe):
    """A :class:`~tinyid.probes.Probe` that adds up the wall time of its records."""

    def __init__(self, *args, sync=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds = 0.0
        self._sync = sync

    def record(self, trainer, epoch):
        self._sync()
        start = time.perf_counter()
        result = super().record(trainer, epoch)
        self._sync()
        self.seconds += time.perf_counter() - start
        return result


def synchronize(backend: str) -> None:
    """Wait for the GPU (cupy) so that wall time covers the work; nothing to do on the CPU."""
    if backend == "cupy":
        get_backend("cupy").xp.cuda.Device().synchronize()


def time_backend(args, backend: str, data) -> dict:
    """Interleaved epochs of a plain trainer and a probed one; then the probe record on its own."""
    x_probe, y_probe = data.x_test[:args.probe_examples], data.y_test[:args.probe_examples]
    probe = TimedProbe(x_probe, y_probe, at_begin=False, bins=args.bins, sync=lambda: synchronize(backend))
    rows = {"plain": (make_trainer(args, backend), []), "probed": (make_trainer(args, backend), [probe])}
    times = {name: [] for name in rows}
    ratios, cpu_ratios, shares = [], [], []
    order = list(rows)
    rng = random.Random(SEED)
    for round_index in range(args.warmup + args.rounds):
        rng.shuffle(order)
        seconds, cpu_seconds = {}, {}
        probe.seconds = 0.0
        for name in order:
            trainer, callbacks = rows[name]
            gc.collect()
            synchronize(backend)
            start, cpu_start = time.perf_counter(), time.process_time()
            trainer.fit(data.x_train, data.y_train, 1, callbacks=callbacks, progress=False)
            synchronize(backend)
            seconds[name] = time.perf_counter() - start
            cpu_seconds[name] = time.process_time() - cpu_start
        if round_index >= args.warmup:
            for name in rows:
                times[name].append(seconds[name])
            ratios.append(seconds["probed"] / seconds["plain"])
            cpu_ratios.append(cpu_seconds["probed"] / cpu_seconds["plain"])
            shares.append(probe.seconds / (seconds["probed"] - probe.seconds))
        note = "" if round_index >= args.warmup else " (warm-up)"
        print(f"    {backend} round {round_index + 1}: plain {seconds['plain']:.2f} s, probed {seconds['probed']:.2f} "
              f"s (of which probe {probe.seconds:.3f} s){note}", flush=True)

    probed_trainer = rows["probed"][0]
    records = probed_trainer.history.records["probes"]
    assert [r["step"] for r in records] == [e["step"] for e in probed_trainer.history.epochs], "one record an epoch"
    model = probed_trainer.model
    initial = [layer.W.copy() for layer in model.layers]
    probe_times = []
    for _ in range(args.probe_repeats):
        gc.collect()
        synchronize(backend)
        start = time.perf_counter()
        layer_statistics(model, x_probe, y_probe, bins=args.bins, initial_weights=initial)
        synchronize(backend)
        probe_times.append(time.perf_counter() - start)
    return {"plain": statistics.median(times["plain"]), "probed": statistics.median(times["probed"]),
            "overhead": statistics.median(ratios) - 1.0, "ratios": ratios,
            "cpu_overhead": statistics.median(cpu_ratios) - 1.0, "in_run": statistics.median(shares),
            "probe": statistics.median(probe_times), "steps": probed_trainer.history.epochs[-1]["step"]
            // probed_trainer.epoch}


def main(argv=None) -> int:
    args = parse_args(argv)
    print("# tinyid probe overhead benchmark\n")
    print("\n".join(bench_env.header_lines()))
    sizes = f"1024 -> {args.depth} x {args.width} -> 9"
    print(f"\nnetwork {sizes} tanh, xavier_uniform, float32, plain SGD lr {LEARNING_RATE}, batch {args.batch_size}; "
          f"Shapeset-3x2, {args.n_train} training examples an epoch; probe: {args.probe_examples} test examples "
          f"with labels, {args.bins}-bin histograms, once an epoch")
    print(f"protocol: {args.warmup} warm-up + {args.rounds} timed rounds, each one epoch of the plain and of the "
          f"probed trainer in random order; overhead = median over rounds of (probed / plain) - 1")
    if args.quick:
        print("NOTE: --quick is a smoke run; its numbers mean nothing")
    data = load_dataset("shapeset", n_train=args.n_train, n_test=args.probe_examples, seed=SEED)

    results = {}
    for backend in args.backends:
        try:
            get_backend(backend)
        except BackendUnavailableError as exc:
            results[backend] = str(exc).split(";")[0]
            continue
        print(f"\ntiming backend {backend} ...", flush=True)
        results[backend] = time_backend(args, backend, data)

    print("\n| backend | steps/epoch | epoch, plain (s) | epoch, with probe (s) | overhead, wall | per-round ratios "
          "| overhead, CPU | overhead, in-run | one probe record (s) | target < 10% (in-run) |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |")
    for backend, result in results.items():
        if isinstance(result, str):
            print(f"| {backend} | n/a ({result}) | | | | | | | | |")
            continue
        ratios = ", ".join(f"{r:.3f}" for r in result["ratios"])
        met = "met" if result["in_run"] < TARGET else "NOT MET"
        print(f"| {backend} | {result['steps']} | {result['plain']:.2f} | {result['probed']:.2f} "
              f"| {100 * result['overhead']:+.1f}% | {ratios} | {100 * result['cpu_overhead']:+.1f}% "
              f"| {100 * result['in_run']:.1f}% | {result['probe']:.3f} | {met} |")
    print(f"\nload average after the run: {bench_env.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
