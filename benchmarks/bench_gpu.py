"""The GPU section: tinyid on CuPy, PyTorch CUDA eager and the cuBLAS-only lower bound, plus the fused
epilogue kernel's memory bandwidth as a fraction of the device's peak.

Runs only when ``tinyid.backend.cupy_available()``; CuPy and PyTorch are imported inside the
functions, so this module imports on any machine. Step times are wall-clock times between two
device synchronizations (every stream of the device, whichever library queued the work); the
epilogue kernel, whose single launch is tens of microseconds, is timed with CUDA events around a
batch of back-to-back launches.
"""
from __future__ import annotations

import statistics

import numpy as np

import tinyid
from bench_report import format_table, format_targets
from bench_rows import CONFIGS, BoundRow, TinyidRow, TorchRow, benchmark_config, make_batch

GPU_ROWS = [
    ("tinyid cupy", lambda config, x, y, params: TinyidRow(config, "cupy", x, y)),
    ("PyTorch CUDA eager", lambda config, x, y, params: TorchRow(config, params, x, y, "cuda")),
    ("cuBLAS bound", lambda config, x, y, params: BoundRow(config, xp=_cupy())),
]
BOUND, TORCH = "cuBLAS bound", "PyTorch CUDA eager"

#: Issue 3's GPU target for step times: tinyid cupy no slower than PyTorch CUDA eager.
GPU_TARGETS = [("tinyid cupy", TORCH, "abc", 1.00)]

#: Issue 3's target for the epilogue kernel: at least this fraction of peak memory bandwidth.
BANDWIDTH_TARGET = 0.70

# cudaDeviceAttr values (CUDA runtime API), for CuPy builds whose device properties lack the memory clock
_ATTR_MEMORY_CLOCK_RATE_KHZ = 36
_ATTR_MEMORY_BUS_WIDTH_BITS = 37


def _cupy():
    import cupy

    return cupy


def _synchronize() -> None:
    _cupy().cuda.Device().synchronize()


def device_name() -> str:
    cupy = _cupy()
    device = cupy.cuda.Device()
    name = cupy.cuda.runtime.getDeviceProperties(device.id)["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    total = device.mem_info[1] / 2**30
    return f"{name} (device {device.id}, {total:.0f} GiB), CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}"


def peak_bandwidth() -> "tuple[float | None, str]":
    """Theoretical peak memory bandwidth in bytes/s (2 transfers per memory clock x bus width), and its source.

    Tries CuPy's device properties, then the runtime's device attributes, then Numba CUDA's.
    """
    cupy = _cupy()
    device_id = cupy.cuda.Device().id
    sources = []
    try:
        props = cupy.cuda.runtime.getDeviceProperties(device_id)
        sources.append(("cupy device properties", props.get("memoryClockRate"), props.get("memoryBusWidth")))
    except Exception:  # noqa: BLE001
        pass
    try:
        get = cupy.cuda.runtime.deviceGetAttribute
        sources.append(("cupy device attributes", get(_ATTR_MEMORY_CLOCK_RATE_KHZ, device_id),
                        get(_ATTR_MEMORY_BUS_WIDTH_BITS, device_id)))
    except Exception:  # noqa: BLE001
        pass
    try:
        from numba import cuda

        device = cuda.get_current_device()
        sources.append(("numba.cuda device attributes", device.MEMORY_CLOCK_RATE, device.GLOBAL_MEMORY_BUS_WIDTH))
    except Exception:  # noqa: BLE001
        pass
    for source, clock_khz, bus_bits in sources:
        if clock_khz and bus_bits:
            peak = 2 * clock_khz * 1e3 * bus_bits / 8
            return peak, f"{source}: memory clock {clock_khz / 1e6:.3f} GHz x {bus_bits}-bit bus x 2"
    return None, "device reports no memory clock or bus width"


def epilogue_bandwidth(n: int = 4096, launches: int = 20, repeats: int = 30) -> dict:
    """Achieved bandwidth of ``bias_activation`` (ReLU, keeping phi') on an n x n float32 array.

    Bytes moved per call: read ``s`` and ``b``, write ``out`` and ``derivative``. Timed with CUDA
    events around ``launches`` back-to-back calls, median over ``repeats``.
    """
    cupy = _cupy()
    kernels = tinyid.get_backend("cupy").kernels
    activation = tinyid.activations.get("relu")
    rng = np.random.default_rng(0)
    s = cupy.asarray(rng.standard_normal((n, n), dtype=np.float32))
    b = cupy.asarray(rng.standard_normal(n, dtype=np.float32))
    out, derivative = cupy.empty_like(s), cupy.empty_like(s)
    for _ in range(3):  # compile and warm up
        kernels.bias_activation(s, b, activation, out, derivative)
    _synchronize()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    seconds = []
    for _ in range(repeats):
        start.record()
        for _ in range(launches):
            kernels.bias_activation(s, b, activation, out, derivative)
        end.record()
        end.synchronize()
        seconds.append(cupy.cuda.get_elapsed_time(start, end) / 1e3 / launches)
    moved = s.nbytes + b.nbytes + out.nbytes + derivative.nbytes
    time = statistics.median(seconds)
    return {"kernel set": getattr(kernels, "__name__", "?"), "bytes": moved, "seconds": time,
            "bandwidth": moved / time}


def _event_seconds(call, repeats: int = 20) -> float:
    """Median seconds of ``call()`` between two CUDA events (after one untimed call)."""
    cupy = _cupy()
    call()
    _synchronize()
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    seconds = []
    for _ in range(repeats):
        start.record()
        call()
        end.record()
        end.synchronize()
        seconds.append(cupy.cuda.get_elapsed_time(start, end) / 1e3)
    return statistics.median(seconds)


def tiled_gemm_lesson(shapes=((256, 1024, 1024), (4096, 4096, 4096))) -> list:
    """The educational tiled GEMM with fused epilogue (``matmul_bias_activation``) against cuBLAS + epilogue.

    For each ``(n_batch, n_in, n_out)``: ReLU forward with phi' kept, float32; both results must agree.
    """
    cupy = _cupy()
    kernels = tinyid.get_backend("cupy").kernels
    fused = getattr(kernels, "matmul_bias_activation", None)
    if fused is None:
        return [f"tiled GEMM lesson: n/a ({getattr(kernels, '__name__', '?')} has no matmul_bias_activation)"]
    activation = tinyid.activations.get("relu")
    rng = np.random.default_rng(0)
    lines = []
    for n_batch, n_in, n_out in shapes:
        z = cupy.asarray(rng.standard_normal((n_batch, n_in), dtype=np.float32))
        W = cupy.asarray(rng.standard_normal((n_in, n_out), dtype=np.float32) / np.sqrt(n_in))
        b = cupy.asarray(rng.standard_normal(n_out, dtype=np.float32))
        out_t, der_t, out_c, der_c = (cupy.empty((n_batch, n_out), np.float32) for _ in range(4))

        def cublas():
            cupy.matmul(z, W, out=out_c)
            kernels.bias_activation(out_c, b, activation, out_c, der_c)

        tiled = _event_seconds(lambda: fused(z, W, b, activation, out_t, der_t))
        reference = _event_seconds(cublas)
        error = float(cupy.abs(out_t - out_c).max() / max(float(cupy.abs(out_c).max()), 1e-30))
        flops = 2 * n_batch * n_in * n_out
        lines.append(f"tiled GEMM lesson ({n_batch}x{n_in} @ {n_in}x{n_out}, ReLU epilogue): "
                     f"{tiled * 1e3:.3f} ms ({flops / tiled / 1e12:.1f} TFLOP/s) vs cuBLAS + epilogue "
                     f"{reference * 1e3:.3f} ms ({flops / reference / 1e12:.1f} TFLOP/s): "
                     f"{tiled / reference:.1f}x; max rel. difference {error:.1e}")
    return lines


def cupy_allocations_per_step(config_key: str, steps: int) -> str:
    """Memory-pool allocations (count and bytes) per tinyid cupy training step after the first."""
    cupy = _cupy()

    class AllocationCounter(cupy.cuda.MemoryHook):
        name = "tinyid_benchmark_allocation_counter"

        def __init__(self):
            super().__init__()
            self.count, self.bytes = 0, 0

        def malloc_postprocess(self, **kwargs):
            self.count += 1
            self.bytes += kwargs.get("mem_size", 0)

    config = CONFIGS[config_key]
    x, y = make_batch(config)
    row = TinyidRow(config, "cupy", x, y)
    row.step()
    _synchronize()
    pool = cupy.get_default_memory_pool()
    counter = AllocationCounter()
    with counter:
        for _ in range(steps):
            row.step()
    _synchronize()
    params = sum(a.nbytes for group in row.model.params for a in group)
    return (f"tinyid cupy, config ({config_key}): {counter.count / steps:g} pool allocations "
            f"({counter.bytes / steps / 1e6:.3f} MB) per step after the first; memory pool holds "
            f"{pool.total_bytes() / 1e6:.1f} MB (parameters {params / 1e6:.1f} MB)")


def gpu_section(config_keys, steps: int, warmup: int, memory_steps: int, settle_s: float) -> dict:
    """Print the GPU section (or why it is skipped); return ``{config key: [Measurement]}`` for the exit status."""
    if not tinyid.backend.cupy_available():
        try:
            tinyid.get_backend("cupy")
        except tinyid.BackendUnavailableError as exc:
            reason = str(exc).split(";")[0]
        else:
            reason = "unknown"
        print(f"skipped: {reason}")
        return {}
    print(f"device: {device_name()}")
    results = {}
    for key in config_keys:
        print(f"timing {CONFIGS[key].describe()} on the GPU ...", flush=True)
        results[key], _ = benchmark_config(CONFIGS[key], GPU_ROWS, steps, warmup, sync=_synchronize,
                                           settle_s=settle_s)
    print()
    print("\n".join(format_table(results, BOUND, TORCH)))
    print("\nIssue 3 GPU targets (ratios of median step times):")
    print("\n".join(format_targets(results, GPU_TARGETS)))
    print()
    _print_guarded("epilogue bandwidth", _bandwidth_lines)
    _print_guarded("allocations per step", lambda: [cupy_allocations_per_step("b", memory_steps)])
    _print_guarded("tiled GEMM lesson", tiled_gemm_lesson)
    return results


def _bandwidth_lines() -> list:
    result = epilogue_bandwidth()
    peak, source = peak_bandwidth()
    lines = [f"fused epilogue ({result['kernel set']}.bias_activation, ReLU + phi', 4096x4096 float32): "
             f"{result['bytes'] / 1e6:.1f} MB moved in {result['seconds'] * 1e6:.1f} us = "
             f"{result['bandwidth'] / 1e9:.0f} GB/s"]
    if peak is None:
        lines.append(f"peak bandwidth: n/a ({source})")
    else:
        fraction = result["bandwidth"] / peak
        verdict = "met" if fraction >= BANDWIDTH_TARGET else "NOT MET"
        lines.append(f"peak bandwidth {peak / 1e9:.0f} GB/s ({source}); achieved {fraction:.0%} "
                     f"(target >= {BANDWIDTH_TARGET:.0%}: {verdict})")
    return lines


def _print_guarded(what: str, make_lines) -> None:
    """Print ``make_lines()``, or one line saying why that part failed (the rest of the report stands)."""
    try:
        lines = make_lines()
    except Exception as exc:  # noqa: BLE001 - one failing measurement must not hide the others
        lines = [f"{what}: n/a ({type(exc).__name__}: {exc})"]
    print("\n".join(lines))
