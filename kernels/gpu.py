r"""The GPU kernel set: ``numba.cuda`` kernels on CuPy arrays, one pass over memory per step.

Same five functions, signatures and semantics as :mod:`tinyid.kernels.reference` (read that module
first: each kernel here computes what the reference computes with whole-array expressions, written
as the loop one CUDA thread runs). The matrix products of a layer stay in cuBLAS (CuPy's ``@``);
these kernels fuse what surrounds them:

==========================  ===============================================  =========================
kernel                      one thread computes                              threads x blocks
==========================  ===============================================  =========================
``bias_activation``         ``(r, c)``, then a stride of columns / rows on   (32, 8) x (ceil(m / 32),
                            (2-D grid-stride loop)                           ceil(n / 8))
``activation_backward``     one column, rows ``lane, lane + 8, ...``; the 8  (32, 8) x ceil(m / 32)
                            partial column sums meet in shared memory
``softmax_cross_entropy``   one row (max, sum of exp, gradient)              256 x ceil(n / 256)
``sgd_update``              ``i, i + stride, ...`` of the flattened arrays   256 x ceil(size / 256)
``adam_update``             ``i, i + stride, ...`` of the flattened arrays   256 x ceil(size / 256)
``matmul_bias_activation``  one element of ``out`` (the lesson, below)       (16, 16) x (ceil(m / 16),
                                                                             ceil(n / 16))
==========================  ===============================================  =========================

(``n`` rows, ``m`` columns.) Grids of the grid-stride kernels are capped at :data:`MAX_BLOCKS`
(32 blocks per multiprocessor by default), so any size works with one launch; small arrays get
smaller blocks (whole warps, or power-of-two tiles no wider than the matrix) instead of idle
threads. Every call is one kernel launch, plus, for the loss, one copy of 8 bytes per row to the
host (a Python float needs the value on the host anyway).

Plus one lesson, :func:`matmul_bias_activation`: a tiled shared-memory matrix product with the
bias + activation epilogue fused in. It is correct and readable, and slower than cuBLAS; the layer
code keeps calling cuBLAS and then :func:`bias_activation`.

Activation math is not written here: each scalar function of :mod:`tinyid.kernels.scalar` is
compiled with ``numba.cuda.jit(device=True)``, and :func:`_activation_kernel` builds one kernel per
activation around it (the CPU kernels compile the same functions with ``numba.njit``). The scalar
math runs in float64 registers (its constants are Python floats) and is rounded once when stored,
so float32 results are at least as accurate as the float32 reference.

Arrays: CuPy arrays (the ``"cupy"`` backend), Numba device arrays, or NumPy arrays (Numba copies
those to the device and back on each launch; that is how the Numba CUDA simulator,
``NUMBA_ENABLE_CUDASIM=1``, runs these kernels on a machine without a GPU). With CuPy arrays every
kernel is launched on CuPy's current stream, so it is ordered with the cuBLAS products CuPy queues
there and nobody has to synchronize. One device is assumed (the current one of both CuPy and Numba).
"""
from __future__ import annotations

import math
import warnings

import numba
import numpy as np
from numba import cuda

from tinyid.kernels import scalar

NAME = "gpu"

__all__ = [
    "NAME", "bias_activation", "activation_backward", "softmax_cross_entropy", "sgd_update", "adam_update",
    "matmul_bias_activation", "BLOCK", "BACKWARD_BLOCK", "TILE", "MAX_BLOCKS", "SIMULATOR",
]

try:  # numba-cuda's own configuration: the one ``numba.cuda`` was loaded with
    from numba.cuda.core.config import ENABLE_CUDASIM as _ENABLE_CUDASIM
except ImportError:  # older Numba with CUDA built in
    _ENABLE_CUDASIM = numba.config.ENABLE_CUDASIM

#: True when Numba runs CUDA kernels in its Python simulator (``NUMBA_ENABLE_CUDASIM=1``).
SIMULATOR: bool = bool(_ENABLE_CUDASIM)

#: Threads per block of the one-dimensional kernels (elementwise, per-row loss, optimizers).
BLOCK = 256
#: ``(columns, row lanes)`` per block of :func:`activation_backward`: 32 columns so that a warp reads
#: 32 neighbouring floats of one row (a coalesced 128-byte access), 8 lanes walking the rows.
BACKWARD_BLOCK = (32, 8)
_BACKWARD_COLS, _BACKWARD_LANES = BACKWARD_BLOCK
#: Side of the square tiles of :func:`matmul_bias_activation` (TILE x TILE threads per block).
TILE = 16
#: Cap on the blocks of a grid-stride launch; None means 32 per multiprocessor of the current device
#: (enough to fill it several times over). Tests set a small value to exercise the stride loop.
MAX_BLOCKS: "int | None" = None

_device_max_blocks: "int | None" = None


# ---------------------------------------------------------------------------------------------------
# Launch helpers


def _max_blocks() -> int:
    global _device_max_blocks
    if MAX_BLOCKS is not None:
        return MAX_BLOCKS
    if _device_max_blocks is None:
        try:
            _device_max_blocks = 32 * int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
        except Exception:  # the simulator's fake device has no multiprocessors
            _device_max_blocks = 1024
    return _device_max_blocks


def _threads_and_blocks(size: int) -> tuple[int, int]:
    """``(threads, blocks)`` of a 1-D launch covering ``size`` items, grid-stride loops doing the rest."""
    threads = min(BLOCK, 32 * -(-size // 32))  # a small array gets one block of whole warps
    return threads, min(-(-size // threads), _max_blocks())


def _threads_and_blocks_2d(n_rows: int, n_cols: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((tx, ty), (bx, by))`` of a 2-D launch over a matrix, x along the columns.

    At most :data:`BLOCK` threads: 32 columns (a warp per row) by 8 rows, or fewer, rounded to powers of
    two, when the matrix is narrower or shorter; grid-stride loops cover what the capped grid does not.
    """
    tx = min(32, 1 << (n_cols - 1).bit_length())
    ty = min(BLOCK // tx, 1 << (n_rows - 1).bit_length())
    bx = min(-(-n_cols // tx), _max_blocks())
    by = min(-(-n_rows // ty), max(1, _max_blocks() // bx))
    return (tx, ty), (bx, by)


def _is_cupy(a) -> bool:
    return type(a).__module__.startswith("cupy")


_external_streams: dict = {}


def _stream_of(a):
    """``(key, stream)`` to launch on: CuPy's current stream for a CuPy array, else the default (0)."""
    if not _is_cupy(a):
        return 0, 0
    import cupy

    ptr = cupy.cuda.get_current_stream().ptr
    if ptr == 0:  # CuPy's null stream is the legacy default stream, Numba's stream 0
        return 0, 0
    stream = _external_streams.get(ptr)
    if stream is None:
        stream = _external_streams[ptr] = cuda.external_stream(ptr)
    return ptr, stream


_configured: dict = {}


def _launch(kernel, blocks, threads, like, *args) -> None:
    """``kernel[blocks, threads, stream](*args)`` on the stream :func:`_stream_of` picks for ``like``.

    On a GPU the launch configuration object is kept per (kernel, grid, block, stream): a training
    step makes the same few launches again and again, and Numba's low-occupancy warning, raised when
    the configuration is made, is silenced (a tiny layer launches a tiny grid on purpose).
    """
    if SIMULATOR:  # the simulator's kernel object holds its configuration: configure it each time
        kernel[blocks, threads](*args)
        return
    key_stream, stream = _stream_of(like)
    key = (kernel, blocks, threads, key_stream)
    configured = _configured.get(key)
    if configured is None:
        if len(_configured) > 4096:
            _configured.clear()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU under-utilization")
            configured = _configured[key] = kernel[blocks, threads, stream]
    configured(*args)


def _flat(a, name: str):
    """A 1-D view of a C-contiguous array (the optimizer kernels update ``param`` etc. in place)."""
    if a.ndim == 1:
        return a
    if not a.flags["C_CONTIGUOUS"]:
        raise ValueError(f"{name} must be C-contiguous for the gpu optimizer kernels")
    return a.reshape(a.size)


# ---------------------------------------------------------------------------------------------------
# Forward epilogue: out = phi(s + b), derivative = phi'(s + b)

_device_functions: dict = {}


def _device_function(name: str):
    """``scalar.FUNCTIONS[name]`` compiled as a CUDA device function (once)."""
    fn = _device_functions.get(name)
    if fn is None:
        fn = _device_functions[name] = cuda.jit(device=True)(scalar.FUNCTIONS[name])
    return fn


def _parameter(activation) -> float:
    key = scalar.PARAMETER.get(activation.name)
    return float(activation.params[key]) if key is not None else 0.0


def _make_bias_activation_kernel(phi):
    """A :func:`bias_activation` kernel around the device function ``phi(x, p) -> (value, derivative)``.

    ``phi`` is a closure variable, so Numba compiles it into the kernel (and inlines it). Without a
    ``derivative`` array the caller passes ``out`` in its place with ``write_derivative=False``: one
    kernel per activation serves both cases, and the flag is the same for every thread (no divergence).
    """

    @cuda.jit
    def kernel(s, b, p, out, derivative, write_derivative):
        n_rows, n_cols = s.shape
        c0, r0 = cuda.grid(2)  # x runs along a row: neighbouring threads, neighbouring addresses
        c_step, r_step = cuda.gridsize(2)
        for r in range(r0, n_rows, r_step):
            for c in range(c0, n_cols, c_step):
                value, slope = phi(float(s[r, c]) + float(b[c]), p)
                if write_derivative:
                    derivative[r, c] = slope
                out[r, c] = value

    return kernel


_bias_activation_kernels: dict = {}


def _activation_kernel(name: str):
    """The :func:`bias_activation` kernel of activation ``name``, built around its device function (cached)."""
    kernel = _bias_activation_kernels.get(name)
    if kernel is None:
        kernel = _bias_activation_kernels[name] = _make_bias_activation_kernel(_device_function(name))
    return kernel


def bias_activation(s, b, activation, out, derivative) -> None:
    r"""Forward epilogue of a dense layer in one pass: add the bias, apply :math:`\phi`, keep :math:`\phi'`.

    .. math:: \text{out}_{ij} = \phi(s_{ij} + b_j), \qquad \text{derivative}_{ij} = \phi'(s_{ij} + b_j)

    A 2-D grid covers the matrix, x along the columns; thread ``(x, y)`` runs a grid-stride loop::

        for r in range(y, n_batch, grid_height):
            for c in range(x, n_out, grid_width):
                out[r, c], derivative[r, c] = phi_and_derivative(s[r, c] + b[c], p)

    Neighbouring threads of a warp touch neighbouring elements of a row, so every load and store
    is coalesced; and no thread divides a flat index by ``n_out`` (a 64-bit integer division is a
    long instruction sequence on a GPU, as costly here as the activation itself).

    Parameters
    ----------
    s : (n_batch, n_out) array
        The matrix product :math:`zW`. ``out`` may be ``s`` itself (each element is read before the
        same thread overwrites it).
    b : (n_out,) array
    activation : tinyid.activations.Activation
    out : (n_batch, n_out) array
    derivative : (n_batch, n_out) array or None
        Skipped when None (a linear logits layer needs nothing for backward).
    """
    n_rows, n_cols = s.shape
    if n_rows == 0 or n_cols == 0:
        return
    kernel = _activation_kernel(activation.name)
    threads, blocks = _threads_and_blocks_2d(n_rows, n_cols)
    write = derivative is not None
    _launch(kernel, blocks, threads, s, s, b, _parameter(activation), out, derivative if write else out, write)


# ---------------------------------------------------------------------------------------------------
# Backward: ds = dy * derivative, db = column sums of ds


@cuda.jit
def _activation_backward_kernel(dy, derivative, has_derivative, ds, db):
    partial = cuda.shared.array((_BACKWARD_LANES, _BACKWARD_COLS), numba.float64)  # [row lane, column]
    lane_col = cuda.threadIdx.x
    lane_row = cuda.threadIdx.y
    c = cuda.blockIdx.x * _BACKWARD_COLS + lane_col
    n_rows, n_cols = dy.shape
    total = 0.0
    if c < n_cols:
        for r in range(lane_row, n_rows, _BACKWARD_LANES):
            v = dy[r, c]
            if has_derivative:
                v = v * derivative[r, c]
            ds[r, c] = v
            total += float(v)
    partial[lane_row, lane_col] = total
    cuda.syncthreads()  # every lane has written its partial sum
    if lane_row == 0 and c < n_cols:
        column = 0.0
        for j in range(_BACKWARD_LANES):
            column += partial[j, lane_col]
        db[c] = column


def activation_backward(dy, derivative, ds, db) -> None:
    r"""Backward through the activation, fused with the bias gradient (one pass, one launch).

    .. math:: \text{ds}_{ij} = \text{dy}_{ij}\,\phi'_{ij}, \qquad \text{db}_j = \sum_i \text{ds}_{ij}

    A block owns 32 columns and has 8 row lanes; thread ``(c, lane)`` computes::

        partial[lane, c] = 0
        for r in range(lane, n_batch, 8):
            ds[r, c] = dy[r, c] * derivative[r, c]
            partial[lane, c] += ds[r, c]
        # syncthreads, then lane 0:
        db[c] = partial[0, c] + ... + partial[7, c]

    A warp is 32 consecutive columns of one row, so reads and writes are coalesced; the sum is
    accumulated in float64 in a fixed order (deterministic, no atomics).

    Parameters
    ----------
    dy : (n_batch, n_out) array
        :math:`\partial C/\partial y`. ``ds`` may be ``dy`` itself (in place).
    derivative : (n_batch, n_out) array or None
        :math:`\phi'(s + b)` saved by :func:`bias_activation`; None means :math:`\phi' = 1`.
    ds : (n_batch, n_out) array
    db : (n_out,) array
    """
    n_cols = dy.shape[1]
    if n_cols == 0:
        return
    blocks = -(-n_cols // _BACKWARD_COLS)
    has = derivative is not None
    _launch(_activation_backward_kernel, blocks, BACKWARD_BLOCK, dy, dy, derivative if has else dy, has, ds, db)


# ---------------------------------------------------------------------------------------------------
# Loss: softmax cross-entropy, one thread per row


@cuda.jit
def _softmax_cross_entropy_kernel(logits, labels, dlogits, row_loss):
    r = cuda.grid(1)
    n_rows, n_classes = logits.shape
    if r < n_rows:
        top = float(logits[r, 0])
        for k in range(1, n_classes):
            top = max(top, float(logits[r, k]))
        total = 0.0
        for k in range(n_classes):
            total += math.exp(float(logits[r, k]) - top)
        log_total = math.log(total)  # total >= 1: the largest logit contributes exp(0)
        label = labels[r]
        row_loss[r] = log_total - (float(logits[r, label]) - top)  # read before dlogits may overwrite it
        for k in range(n_classes):
            p = math.exp(float(logits[r, k]) - top - log_total)
            if k == label:
                p -= 1.0
            dlogits[r, k] = p / n_rows


_loss_buffers: dict = {}


def _row_loss_buffers(like, n: int):
    """A cached ``(device, host)`` pair of float64 buffers of length ``n`` for the per-row losses."""
    if _is_cupy(like):
        import cupy

        key = ("cupy", cupy.cuda.Device().id, n)
    else:
        key = ("numpy" if isinstance(like, np.ndarray) else "numba", 0, n)
    buffers = _loss_buffers.get(key)
    if buffers is None:
        if len(_loss_buffers) > 64:
            _loss_buffers.clear()
        if key[0] == "cupy":
            device = cupy.empty(n, np.float64)
        elif key[0] == "numba":
            device = cuda.device_array(n, np.float64)
        else:
            device = np.empty(n, np.float64)
        buffers = _loss_buffers[key] = (device, np.empty(n, np.float64))
    return buffers


def softmax_cross_entropy(logits, labels, dlogits) -> float:
    r"""Mean softmax cross-entropy and its gradient, one thread per row.

    .. math::
        C = -\frac1B \sum_i \log \mathrm{softmax}(s_i)_{y_i},\qquad
        \text{dlogits} = \frac{\mathrm{softmax}(s) - \mathrm{onehot}(y)}{B}

    Thread ``i`` computes (in float64)::

        top = max_k s[i, k]
        lse = log(sum_k exp(s[i, k] - top))          # exponents <= 0: no overflow
        row_loss[i] = lse - (s[i, y[i]] - top)
        dlogits[i, k] = (exp(s[i, k] - top - lse) - [k == y[i]]) / B

    The ``B`` row losses go to a small cached buffer, are copied to the host (the one
    synchronization a Python float needs) and summed there.

    Parameters
    ----------
    logits : (n_batch, n_classes) array
    labels : (n_batch,) integer array, values in ``[0, n_classes)`` (checked by the caller)
    dlogits : (n_batch, n_classes) array, written; may be ``logits`` itself

    Returns
    -------
    float
    """
    n = logits.shape[0]
    if n == 0:
        return float("nan")  # the mean of nothing, as in the reference
    device, host = _row_loss_buffers(logits, n)
    threads, _ = _threads_and_blocks(n)  # one thread per row: no cap, no stride loop
    _launch(_softmax_cross_entropy_kernel, -(-n // threads), threads, logits, logits, labels, dlogits, device)
    if _is_cupy(device):
        device.get(out=host)  # on the current stream, after the kernel; blocks until copied
    elif device is not host and not isinstance(device, np.ndarray):
        device.copy_to_host(host)
    else:
        host = device
    return float(np.sum(host)) / n


# ---------------------------------------------------------------------------------------------------
# Optimizers: flattened, grid-stride, in place


@cuda.jit
def _sgd_kernel(param, grad, velocity, lr, momentum, nesterov, weight_decay, first_step):
    for i in range(cuda.grid(1), param.shape[0], cuda.gridsize(1)):
        theta = float(param[i])
        g = float(grad[i])
        if weight_decay != 0.0:
            g += weight_decay * theta
        if momentum != 0.0:
            if first_step:
                v = g
            else:
                v = momentum * float(velocity[i]) + g
            velocity[i] = v
            if nesterov:
                g = g + momentum * v
            else:
                g = v
        param[i] = theta - lr * g


def sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay, first_step) -> None:
    r"""One SGD step in place (PyTorch's rule, dampening 0), one launch over the flattened parameter.

    .. math::
        g = \nabla + \lambda\theta,\quad v \leftarrow \mu v + g\ (v = g \text{ on the first step}),\quad
        \theta \leftarrow \theta - \eta\,(g + \mu v \text{ if Nesterov else } v)

    Each thread runs, in float64 registers::

        for i in range(thread_index, size, n_threads):
            g = grad[i] + weight_decay * param[i]
            if momentum:
                velocity[i] = g if first_step else momentum * velocity[i] + g
                g = g + momentum * velocity[i] if nesterov else velocity[i]
            param[i] -= lr * g

    ``param``, ``velocity`` (unused, may be None, when ``momentum == 0``) and ``grad`` must be C-contiguous.
    """
    param_flat = _flat(param, "param")
    size = param_flat.shape[0]
    if size == 0:
        return
    momentum = float(momentum)
    velocity_flat = _flat(velocity, "velocity") if momentum else param_flat
    threads, blocks = _threads_and_blocks(size)
    _launch(_sgd_kernel, blocks, threads, param, param_flat, _flat(grad, "grad"), velocity_flat, float(lr),
            momentum, bool(nesterov), float(weight_decay), bool(first_step))


@cuda.jit
def _adam_kernel(param, grad, m, v, step_size, beta1, beta2, eps, weight_decay, correction2):
    for i in range(cuda.grid(1), param.shape[0], cuda.gridsize(1)):
        theta = float(param[i])
        g = float(grad[i])
        if weight_decay != 0.0:
            g += weight_decay * theta
        mi = beta1 * float(m[i]) + (1.0 - beta1) * g
        vi = beta2 * float(v[i]) + (1.0 - beta2) * (g * g)
        m[i] = mi
        v[i] = vi
        param[i] = theta - step_size * (mi / (math.sqrt(vi / correction2) + eps))


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step) -> None:
    r"""One Adam step in place, with bias correction (``step`` counts from 1), one launch.

    .. math::
        g = \nabla + \lambda\theta,\quad m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        \theta \leftarrow \theta - \eta\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon}

    The two corrections are computed once on the host; each thread then runs, in float64 registers::

        for i in range(thread_index, size, n_threads):
            g = grad[i] + weight_decay * param[i]
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            param[i] -= lr / (1 - beta1**t) * m[i] / (sqrt(v[i] / (1 - beta2**t)) + eps)

    ``param``, ``grad``, ``m`` and ``v`` must be C-contiguous.
    """
    param_flat = _flat(param, "param")
    size = param_flat.shape[0]
    if size == 0:
        return
    beta1, beta2 = float(beta1), float(beta2)
    threads, blocks = _threads_and_blocks(size)
    _launch(_adam_kernel, blocks, threads, param, param_flat, _flat(grad, "grad"), _flat(m, "m"), _flat(v, "v"),
            float(lr) / (1.0 - beta1**step), beta1, beta2, float(eps), float(weight_decay), 1.0 - beta2**step)


# ---------------------------------------------------------------------------------------------------
# The lesson: a tiled shared-memory matrix product with the epilogue fused in


def _make_matmul_kernel(phi, dtype):
    """The :func:`matmul_bias_activation` kernel for the device function ``phi`` and the Numba ``dtype``
    of the operands (shared-memory tiles and the accumulator are declared with it)."""

    @cuda.jit
    def kernel(z, W, b, p, out, derivative, write_derivative):
        z_tile = cuda.shared.array((TILE, TILE), dtype)
        w_tile = cuda.shared.array((TILE, TILE), dtype)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        row = cuda.blockIdx.y * TILE + ty
        col = cuda.blockIdx.x * TILE + tx
        n_rows, n_inner = z.shape
        n_cols = W.shape[1]
        acc = dtype(0.0)
        for start in range(0, n_inner, TILE):
            # Every thread loads one element of each tile (zero outside the matrices), even a thread
            # whose (row, col) lies outside ``out``: its loads are needed by the others.
            k = start + tx
            if row < n_rows and k < n_inner:
                z_tile[ty, tx] = z[row, k]
            else:
                z_tile[ty, tx] = 0.0
            k = start + ty
            if k < n_inner and col < n_cols:
                w_tile[ty, tx] = W[k, col]
            else:
                w_tile[ty, tx] = 0.0
            cuda.syncthreads()  # both tiles complete
            for kk in range(TILE):
                acc += z_tile[ty, kk] * w_tile[kk, tx]
            cuda.syncthreads()  # everyone done reading before the next tiles overwrite them
        if row < n_rows and col < n_cols:
            value, slope = phi(float(acc) + float(b[col]), p)
            if write_derivative:
                derivative[row, col] = slope
            out[row, col] = value

    return kernel


_matmul_kernels: dict = {}


def matmul_bias_activation(z, W, b, activation, out, derivative) -> None:
    r"""A lesson: ``out = phi(z @ W + b)`` (and ``derivative = phi'(z @ W + b)``) by a tiled GEMM in one kernel.

    .. math:: \text{out}_{ij} = \phi\Big(\sum_k z_{ik} W_{kj} + b_j\Big)

    **The tiling.** A block of ``TILE x TILE`` threads computes a ``TILE x TILE`` tile of ``out``, one
    element per thread. The inner dimension is walked ``TILE`` at a time: the block copies a
    ``TILE x TILE`` tile of ``z`` and one of ``W`` into shared memory (each thread loads one element
    of each, neighbouring threads neighbouring addresses, so the loads are coalesced), waits at
    ``cuda.syncthreads()``, and every thread accumulates ``TILE`` products from the fast on-chip
    tiles::

        for start in range(0, n_inner, TILE):
            z_tile[ty, tx] = z[row, start + tx]          # 0 past the edge
            w_tile[ty, tx] = W[start + ty, col]          # 0 past the edge
            syncthreads()
            for kk in range(TILE):
                acc += z_tile[ty, kk] * w_tile[kk, tx]
            syncthreads()
        out[row, col], derivative[row, col] = phi_and_derivative(acc + b[col], p)

    Each element of ``z`` and ``W`` is read from global memory ``n_cols / TILE`` and ``n_rows / TILE``
    times instead of ``n_cols`` and ``n_rows`` times: the tile size divides the memory traffic.
    Shapes that are not multiples of ``TILE`` are handled by loading zeros past the edges (they add
    nothing to ``acc``) and by skipping the store of threads outside ``out``; no thread may return
    early, because every thread must reach both ``syncthreads()``. The epilogue (bias, activation,
    derivative) is applied while ``acc`` is still in a register, so ``z @ W`` never goes to memory.
    The accumulation is in the arrays' dtype, as cuBLAS does for float32.

    **Why cuBLAS stays the default.** This kernel keeps one accumulator per thread and reads two
    shared-memory values per multiply-add, so shared-memory bandwidth, not arithmetic, bounds it.
    cuBLAS computes a register tile of many outputs per thread, double-buffers its tile loads,
    vectorizes memory access, uses tensor cores where the dtype allows, and picks among many
    kernels by shape; it is typically several times faster. The fused epilogue saves one read and
    write of ``z @ W``, which is small next to that, so the layer code calls cuBLAS and then
    :func:`bias_activation`. The benchmark shows both rows.

    Parameters
    ----------
    z : (n_batch, n_in) array
    W : (n_in, n_out) array, same dtype as ``z``
    b : (n_out,) array
    activation : tinyid.activations.Activation
    out : (n_batch, n_out) array; must not overlap ``z`` or ``W``
    derivative : (n_batch, n_out) array or None
    """
    n_rows, n_cols = z.shape[0], W.shape[1]
    if z.shape[1] != W.shape[0]:
        raise ValueError(f"shapes {tuple(z.shape)} and {tuple(W.shape)} do not multiply")
    if n_rows == 0 or n_cols == 0:
        return
    dtype = np.dtype(z.dtype)
    key = (activation.name, dtype.name)
    kernel = _matmul_kernels.get(key)
    if kernel is None:
        kernel = _matmul_kernels[key] = _make_matmul_kernel(
            _device_function(activation.name), numba.from_dtype(dtype)
        )
    blocks = (-(-n_cols // TILE), -(-n_rows // TILE))
    write = derivative is not None
    _launch(kernel, blocks, (TILE, TILE), z, z, W, b, _parameter(activation), out,
            derivative if write else out, write)
