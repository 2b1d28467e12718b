"""Memory of a training run on the host: peak, parameters, saved activations, and what each step allocates.

NumPy reports every array's data buffer to :mod:`tracemalloc`, so tracing from before the model is
built sees its parameters, the step buffers a fast backend keeps, and every temporary a step makes.
Two things tracemalloc does not see, reported separately: memory that Numba-compiled code allocates
itself (Numba's runtime, NRT, counts those allocations) and PyTorch's CPU allocator (no torch row here).
"""
from __future__ import annotations

import gc
import tracemalloc
from dataclasses import dataclass

import numpy as np

import tinyid
from bench_rows import LEARNING_RATE, Config, make_batch


@dataclass
class MemoryReport:
    """Bytes measured for one backend; ``note`` says why there are none."""

    label: str
    params: int = 0
    saved_activations: int = 0
    peak: int = 0                 # tracemalloc peak over the steps after the first (parameters included)
    kept_between_steps: int = 0   # live bytes added by the first step and still held after it
    new_per_step: int = 0         # largest peak above the between-step level, over the steps after the first
    growth_per_step: int = 0      # change of live bytes from one step to the next (leaks)
    nrt_allocations_per_step: "float | None" = None
    note: "str | None" = None


def saved_activation_bytes(model, x) -> int:
    """Bytes of the arrays ``forward_train`` keeps for backward (every cache entry but the input batch)."""
    logits, caches = model.forward_train(x)
    seen, total = set(), 0
    stack = list(caches)
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, np.ndarray) and id(item) not in seen and not np.shares_memory(item, x):
            seen.add(id(item))
            total += item.nbytes
    return total


def _nrt_allocations() -> "int | None":
    """Allocations made so far by Numba's runtime, counting from the first call (None without Numba)."""
    try:
        from numba.core.runtime import _nrt_python, rtsys

        if not _nrt_python.memsys_stats_enabled():  # off unless NUMBA_NRT_STATS=1; counting starts here
            _nrt_python.memsys_enable_stats()
        return rtsys.get_allocation_stats().alloc
    except Exception:  # noqa: BLE001 - Numba absent or its runtime not initialized
        return None


def _train_step(model, optimizer, x, y) -> None:
    """One step in a function of its own, so its gradients are freed when it returns."""
    model.train_step(x, y, optimizer)


def _compile_kernels(config: Config, backend: str) -> None:
    """One step of a tiny model with the same activation, so JIT compilation is not traced as step memory."""
    tiny = Config("tiny", (config.sizes[0], 8, config.sizes[-1]), config.activation, config.init, 4)
    x, y = make_batch(tiny)
    model = tinyid.MLP(tiny.sizes, tiny.activation, tiny.init, seed=0, backend=backend, dtype="float32")
    _train_step(model, tinyid.SGD(model.params, lr=LEARNING_RATE), x, y)


def measure_memory(config: Config, backend: str, steps: int, seed: int = 0) -> MemoryReport:
    """Trace a run of ``1 + steps`` training steps of ``config`` on a NumPy-array backend."""
    label = f"tinyid {backend}"
    x, y = make_batch(config, seed)
    try:
        _compile_kernels(config, backend)
    except Exception as exc:  # noqa: BLE001 - a missing backend is a line of the report
        return MemoryReport(label, note=f"n/a ({type(exc).__name__}: {exc})"[:140])
    gc.collect()
    tracemalloc.start()
    try:
        model = tinyid.MLP(config.sizes, config.activation, config.init, seed=seed, backend=backend,
                           dtype="float32")
        optimizer = tinyid.SGD(model.params, lr=LEARNING_RATE)
    except Exception as exc:  # noqa: BLE001 - a missing backend is a line of the report
        tracemalloc.stop()
        return MemoryReport(label, note=f"n/a ({type(exc).__name__}: {exc})"[:140])
    try:
        before_first = tracemalloc.get_traced_memory()[0]
        _train_step(model, optimizer, x, y)
        level = tracemalloc.get_traced_memory()[0]
        report = MemoryReport(label, kept_between_steps=level - before_first)
        count_nrt = backend == "numba"
        nrt_start = _nrt_allocations() if count_nrt else None
        start_level = level
        for _ in range(steps):
            tracemalloc.reset_peak()
            _train_step(model, optimizer, x, y)
            current, peak = tracemalloc.get_traced_memory()
            report.peak = max(report.peak, peak)
            report.new_per_step = max(report.new_per_step, peak - level)
            level = current
        report.growth_per_step = (level - start_level) // max(steps, 1)
        nrt_end = _nrt_allocations() if count_nrt else None
        if nrt_start is not None and nrt_end is not None:
            report.nrt_allocations_per_step = (nrt_end - nrt_start) / max(steps, 1)
    finally:
        tracemalloc.stop()
    report.params = sum(a.nbytes for group in model.params for a in group)
    report.saved_activations = saved_activation_bytes(model, x)
    return report


def format_bytes(n: float) -> str:
    """``n`` bytes in B, kB or MB (decimal units)."""
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def format_reports(config: Config, reports: list, steps: int) -> list:
    """The memory section as text lines."""
    done = [r for r in reports if r.note is None]
    lines = [f"Memory of a training run, config {config.describe()}: "
             f"{len(config.sizes) - 1} weight layers, steps 2-{steps + 1} traced (tracemalloc)"]
    if done:
        lines.append(f"  parameters (W and b): {format_bytes(done[0].params)}; saved activations (layer inputs"
                     f" and phi'(s) kept for backward): {format_bytes(done[0].saved_activations)}")
    lines.append(f"  {'row':<14} {'peak':>10} {'kept':>10} {'new/step':>10} {'growth/step':>12}"
                 f" {'NRT allocs/step':>16}")
    for r in reports:
        if r.note is not None:
            lines.append(f"  {r.label:<14} {r.note}")
            continue
        nrt = "-" if r.nrt_allocations_per_step is None else f"{r.nrt_allocations_per_step:g}"
        lines.append(f"  {r.label:<14} {format_bytes(r.peak):>10} {format_bytes(r.kept_between_steps):>10}"
                     f" {format_bytes(r.new_per_step):>10} {format_bytes(r.growth_per_step):>12} {nrt:>16}")
    lines += [
        "  peak: largest traced memory during steps 2.. (parameters included: tracing began before the model"
        " was built)",
        "  kept: bytes the first step allocated and still holds afterwards (reused step buffers)",
        "  new/step: largest rise above the between-step level inside one step after the first (temporaries"
        " and fresh outputs; a peak, not a sum)",
        "  growth/step: change of live bytes per step (a leak if not ~0)",
        "  NRT allocs: allocations by Numba's runtime, invisible to tracemalloc: arrays compiled code creates, and"
        " one small wrapper per NumPy array passed into a compiled function (so never 0 for the numba backend)",
        "  PyTorch: not traced (its CPU allocator does not report to tracemalloc)",
    ]
    return lines
