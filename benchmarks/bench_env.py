"""The environment header of the benchmark: what a timing depends on besides the code.

Date, CPU, cores, load, library versions, the BLAS NumPy calls (build and, when it can be asked,
the running core type and threads) and the environment variables that change the speed of a step:
``OPENBLAS_CORETYPE`` picks OpenBLAS's GEMM kernels (up to 1.8x on this project's machines), the
thread variables pick how many threads BLAS, OpenMP and Numba start.
"""
from __future__ import annotations

import ctypes
import datetime
import os
import platform
import subprocess
import warnings
from pathlib import Path

import numpy as np

#: Environment variables printed in the header ("(unset)" when absent).
ENV_VARS = ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
            "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER")

REPO = Path(__file__).resolve().parents[1]


def cpu_model() -> str:
    """The ``model name`` line of ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def vector_isa() -> str:
    """The widest x86 vector extensions the CPU reports (OpenBLAS's core type may choose to use fewer)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    found = [name for name in ("avx2", "fma", "avx512f", "avx512_bf16") if name in flags]
    return " ".join(found) or "none of avx2/fma/avx512f"


def cores() -> str:
    """Logical CPUs, and how many this process may run on."""
    total = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = total
    return f"{total} logical CPUs ({usable} usable by this process)"


def load_average() -> str:
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def _version(module_name: str) -> str:
    try:
        module = __import__(module_name)
    except Exception as exc:  # noqa: BLE001 - an optional library that fails to import is just "absent"
        return f"not available ({type(exc).__name__})"
    return getattr(module, "__version__", "unknown")


def tinyid_revision() -> str:
    """tinyid's version and the git commit of this checkout (with a mark for uncommitted changes)."""
    import tinyid

    text = tinyid.__version__
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return text
    if commit:
        text += f", commit {commit}" + (" + uncommitted changes" if dirty else "")
    return text


def numpy_blas_build() -> str:
    """The BLAS NumPy was built against, from ``numpy.show_config``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # noqa: BLE001 - older NumPy: no dict mode
        return "unknown (numpy.show_config has no dict mode)"
    details = blas.get("openblas configuration") or blas.get("version", "")
    return f"{blas.get('name', '?')} {details}".strip()


def _loaded_openblas() -> "str | None":
    """Path of the OpenBLAS shared library loaded in this process (from ``/proc/self/maps``)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "openblas" in os.path.basename(path).lower() and ".so" in path:
                    return path
    except OSError:
        pass
    return None


def openblas_runtime() -> str:
    """Core type and threads of the running OpenBLAS: threadpoolctl when installed, else ``ctypes``."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        pools = [f"{p.get('internal_api')} {p.get('version')} core {p.get('architecture')}, "
                 f"{p.get('num_threads')} threads" for p in threadpool_info()]
        return "; ".join(pools) + " (threadpoolctl)" if pools else "none found by threadpoolctl"
    path = _loaded_openblas()
    if path is None:
        return "unknown (no OpenBLAS library loaded; install threadpoolctl for details)"
    lib = ctypes.CDLL(path)
    for prefix in ("scipy_openblas_", "openblas_"):  # NumPy wheels prefix OpenBLAS's symbols
        for suffix in ("64_", "_64", ""):
            corename = getattr(lib, f"{prefix}get_corename{suffix}", None)
            threads = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
            if corename is not None and threads is not None:
                corename.restype = ctypes.c_char_p
                return f"OpenBLAS core {corename().decode()}, {threads()} threads (asked with ctypes)"
    return "unknown (OpenBLAS loaded but its query functions were not found)"


def torch_blas() -> str:
    """Which BLAS and how many threads PyTorch uses (its build configuration)."""
    try:
        import torch
    except ImportError:
        return "n/a"
    config = torch.__config__.show()
    blas = next((part.split("=", 1)[1] for part in config.replace(",", " ").split()
                 if part.startswith("BLAS_INFO=")), "unknown")
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        capability = "unknown"
    return f"{blas} (CPU capability {capability}), {torch.get_num_threads()} intra-op threads"


def numba_threading() -> str:
    """Numba's configured threading layer and thread count (the layer in use, once a parallel kernel ran)."""
    try:
        import numba
    except ImportError:
        return "n/a"
    try:
        active = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        active = "none used yet"
    return (f"threading layer configured {numba.config.THREADING_LAYER!r}, in use: {active}; "
            f"{numba.config.NUMBA_NUM_THREADS} threads")


def header_lines() -> list:
    """The environment header, one ``name: value`` line each."""
    lines = [
        ("date", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")),
        ("CPU", cpu_model()),
        ("CPU vector ISA", vector_isa()),
        ("cores", cores()),
        ("load average (1, 5, 15 min)", load_average()),
        ("python", platform.python_version()),
        ("tinyid", tinyid_revision()),
        ("numpy / numba / torch", " / ".join(_version(m) for m in ("numpy", "numba", "torch"))),
        ("BLAS (numpy build)", numpy_blas_build()),
        ("BLAS (numpy, running)", openblas_runtime()),
        ("BLAS (torch)", torch_blas()),
        ("numba", numba_threading()),
    ]
    lines += [(name, os.environ.get(name, "(unset)")) for name in ENV_VARS]
    width = max(len(name) for name, _ in lines)
    return [f"{name:<{width}}  {value}" for name, value in lines]
