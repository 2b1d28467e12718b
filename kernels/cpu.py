r"""The CPU kernel set: fused ``numba.njit`` loops on NumPy arrays.

Same functions, signatures and results as :mod:`tinyid.kernels.reference` (the oracle), but each
one is a single compiled pass over memory instead of a chain of whole-array NumPy operations, each
of which reads and writes the full array again. Matrix products stay in BLAS (NumPy's
``matmul``), called by the layer code.

How the kernels are built
-------------------------
* **Activation math is written once**, in :mod:`tinyid.kernels.scalar`. :func:`bias_activation`
  compiles the activation's scalar ``value_and_derivative(x, p)`` with
  ``numba.njit(inline="always")`` and builds one loop per activation through a factory (a closure
  over the compiled scalar function), cached in a dict. The CUDA kernels compile the very same
  scalar functions with ``numba.cuda.jit(device=True)``.
* **Kernels compile per dtype** (float32 and float64, lazily, on first call) and write into the
  arrays they are given, so the output dtype is the caller's. Nothing is allocated on the hot path.
* ``error_model="numpy"``: a division by zero gives inf/nan instead of raising, which is what lets
  LLVM vectorize a loop with a float division. The kernels are compiled without ``fastmath``
  (except FMA contraction in the compute-bound activation loop), so results stay IEEE-exact
  where the reference is exact.
* ``NUMBA_DISABLE_JIT=1`` turns every kernel back into plain, debuggable Python (slow).

float32 exponentials without a vector math library
--------------------------------------------------
This Numba build has no SVML, so ``math.exp``/``math.expm1`` inside a loop are calls into the
C library, one element at a time, and the loop cannot vectorize. Measured on this 2-core machine
(AMD EPYC, ``OPENBLAS_CORETYPE=Haswell``; float32, in-place forward epilogue with the derivative;
medians, quiet machine; the GEMM is the layer's own ``numpy.matmul`` of (n_batch, n) by (n, n)):

===========================  ==================  ==================  ===============
activation, (n_batch, n)     C library exp       vectorized (used)   numpy.matmul
===========================  ==================  ==================  ===============
tanh, (64, 256)              132 us              15-17 us            41-56 us
tanh, (256, 1024)            2030 us             230 us              2190-2530 us
sigmoid, (64, 256)           38 us               10 us               40-56 us
===========================  ==================  ==================  ===============

So the float32 kernels compile the *same* scalar functions with their global name ``math``
bound to ``_vector_math``, whose ``exp`` and ``expm1`` come from :func:`_exp_parts`: a float64
range reduction :math:`a = n \ln 2 + r`, :math:`|r| \le \ln 2 / 2`, a degree-9 Taylor
polynomial for :math:`e^r - 1` and the exact scaling by :math:`2^n` (built from its bits).
Pure arithmetic, so LLVM vectorizes it (AVX-512 here). Its relative error, below 1e-10, is far
below float32's rounding (6e-8): the float32 results are the float64 answer correctly rounded
except where it lies within 1e-10 of a rounding midpoint: within one float32 ulp of the reference,
tails included. float64 kernels keep the C library's ``exp``/``expm1`` (a few ulps, like NumPy).
The remaining cost is the float64 arithmetic (about 55 vector instructions per 8 elements for
tanh). A prototype doing everything in float32 lanes (float32 exponential, float32 formula) took
6.8 us instead of 15 us on (64, 256), but was off by up to 2.4 ulps on tanh and 4.2 ulps on tanh'
and needs a second, float32 copy of each formula, so it is not used.

Threads: serial kernels beside OpenBLAS
---------------------------------------
The kernels are serial (``parallel=False``): a step spends most of its time in BLAS, which
already runs on both cores, and the fused loops are passes of microseconds. Measured here with
the three benchmark networks (float32 training step with plain SGD, ``parallel=True`` versions
of the epilogue, backward and update kernels using ``prange``, ``NUMBA_NUM_THREADS=2``, OpenBLAS
with its default 2 threads in the same process; step time, median of 30 steps):

===============================  ==========  =============  ===============  =========================
network                          serial      parallel, omp  parallel,        parallel, omp,
                                 (used)      (the default)  workqueue        ``OMP_WAIT_POLICY=passive``
===============================  ==========  =============  ===============  =========================
(c) 4 x 256 tanh, batch 64       0.75 ms     69-89 ms       2.0 ms           1.0-1.2 ms
(a) 8 x 1024 relu, batch 256     56 ms       223 ms         67 ms            64 ms
(b) 100 x 794 hard_tanh, b. 128  260-275 ms  1790-2740 ms   288-291 ms       272-282 ms
===============================  ==========  =============  ===============  =========================

The OpenMP pool's spinning threads also slowed OpenBLAS's own products (the GEMMs alone took
4.7 ms instead of 0.62 ms on (c) in that process). With OpenBLAS limited to one thread
(``OPENBLAS_NUM_THREADS=1``) every variant was slower still (1.3 ms on (c), 109 ms on (a)), so
the fastest combination on 2 cores is OpenBLAS's 2 threads and serial kernels.
Only serial kernels are built, so Numba's on-disk cache (``cache=True``, used for the fixed
kernels) never mixes ``parallel=True`` and ``parallel=False`` builds of one function.
"""
from __future__ import annotations

import math
import types

import numba
import numpy as np
from llvmlite import ir
from numba import types as nbtypes
from numba.extending import intrinsic

from tinyid.kernels import scalar

NAME = "cpu"

__all__ = ["NAME", "bias_activation", "activation_backward", "softmax_cross_entropy", "sgd_update", "adam_update"]

# Serial, no on-disk cache for the factory-built loops (closures share one source location, which
# the cache cannot tell apart); ``cache=True`` for the fixed kernels, each built in one variant only.
_JIT = dict(error_model="numpy", nogil=True)
_JIT_CACHED = dict(_JIT, cache=True)


# ---------------------------------------------------------------------------------------------------
# A vectorizable exponential for the float32 kernels
# ---------------------------------------------------------------------------------------------------

@intrinsic
def _float64_from_bits(typingctx, bits):
    """Reinterpret an int64 as the float64 with the same bits (a free register move)."""
    sig = nbtypes.float64(nbtypes.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


_LN2 = math.log(2.0)
_INV_LN2 = 1.0 / _LN2
#: exp(-200) = 1.4e-87: anything a float32 activation builds from it rounds to 0 (exp(200) to inf).
_EXP_CLAMP = 200.0


@numba.njit(inline="always")
def _exp_parts(a):
    r"""Return :math:`(e^a - 1, e^a)` in float64, accurate to 1e-10 relative: enough for float32 results.

    .. math::
        n = \operatorname{round}(a / \ln 2),\quad r = a - n \ln 2 \in [-\tfrac{\ln 2}{2}, \tfrac{\ln 2}{2}],\quad
        p = e^r - 1 \approx \sum_{k=1}^{9} \frac{r^k}{k!},\\
        e^a = 2^n (1 + p),\qquad e^a - 1 = (2^n - 1) + 2^n p .

    The Taylor remainder, :math:`|r|^{10}/10! < 7 \cdot 10^{-12}`, is below :math:`2 \cdot 10^{-11}`
    relative to :math:`p`; one float64 :math:`\ln 2` is accurate enough for :math:`|n| \le 289`.
    ``e^a - 1`` keeps its relative accuracy near :math:`a = 0` (:math:`n = 0` gives exactly
    :math:`p`), ``e^a`` in the tails. :math:`2^n` is built from its IEEE bits, exponent field
    :math:`n + 1023`. ``a`` is clamped to :math:`\pm 200`; NaN stays NaN.
    """
    a = -_EXP_CLAMP if a < -_EXP_CLAMP else (_EXP_CLAMP if a > _EXP_CLAMP else a)
    n = math.floor(a * _INV_LN2 + 0.5)
    r = a - n * _LN2
    p = r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
        1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880)))))))))
    two_n = _float64_from_bits((np.int64(n) + 1023) << 52)
    two_n_p = two_n * p
    return (two_n - 1.0) + two_n_p, two_n + two_n_p


@numba.njit(inline="always")
def _vector_exp(a):
    return _exp_parts(a)[1]


@numba.njit(inline="always")
def _vector_expm1(a):
    return _exp_parts(a)[0]


#: Stands in for the ``math`` module when the scalar activations are compiled for float32 kernels.
_vector_math = types.ModuleType("tinyid.kernels.cpu.vector_math")
_vector_math.exp = _vector_exp
_vector_math.expm1 = _vector_expm1


def _with_math(function, math_module):
    """A copy of the scalar ``function`` whose global name ``math`` means ``math_module``."""
    globals_ = dict(function.__globals__, math=math_module)
    return types.FunctionType(function.__code__, globals_, function.__name__, function.__defaults__,
                              function.__closure__)


# ---------------------------------------------------------------------------------------------------
# Forward epilogue: one loop per activation, built by a factory
# ---------------------------------------------------------------------------------------------------

def _make_bias_activation(value_and_derivative):
    """Compile ``value_and_derivative(x, p)`` (inlined) into a fused bias + activation loop."""
    phi = numba.njit(inline="always")(value_and_derivative)

    # FMA contraction only here, the one compute-bound loop (polynomials); it changes last bits only.
    @numba.njit(fastmath={"contract"}, **_JIT)
    def kernel(s, b, p, out, derivative):
        n_batch, n_out = s.shape
        for i in range(n_batch):
            for j in range(n_out):
                y, dy = phi(s[i, j] + b[j], p)
                if derivative is not None:  # `is None` tests are pruned at compile time
                    derivative[i, j] = dy
                if out is None:  # in place
                    s[i, j] = y
                else:
                    out[i, j] = y

    return kernel


_EPILOGUES: dict = {}


def _epilogue(name: str, vector_exp: bool):
    """The compiled loop for activation ``name`` (built on first use)."""
    key = (name, vector_exp)
    kernel = _EPILOGUES.get(key)
    if kernel is None:
        function = scalar.FUNCTIONS[name]
        if vector_exp and not numba.config.DISABLE_JIT:
            function = _with_math(function, _vector_math)
        kernel = _EPILOGUES[key] = _make_bias_activation(function)
    return kernel


def bias_activation(s, b, activation, out, derivative) -> None:
    r"""Forward epilogue of a dense layer, fused: bias, activation and its derivative in one pass.

    .. math:: \text{out}_{ij} = \phi(s_{ij} + b_j), \qquad \text{derivative}_{ij} = \phi'(s_{ij} + b_j)

    The loop (``phi`` is ``tinyid.kernels.scalar.FUNCTIONS[activation.name]``, compiled inline)::

        for i in range(n_batch):
            for j in range(n_out):
                out[i, j], derivative[i, j] = phi(s[i, j] + b[j], p)

    Parameters
    ----------
    s : (n_batch, n_out) float array
        The matrix product :math:`zW`. ``out`` may be ``s`` itself (in place).
    b : (n_out,) float array
    activation : tinyid.activations.Activation
        Its parameter (``slope``, ``alpha``; see ``scalar.PARAMETER``) is passed as ``p``.
    out : (n_batch, n_out) float array
    derivative : (n_batch, n_out) float array or None
        Skipped when None.

    Notes
    -----
    float32 outputs use the vectorized exponential of this module (within 1 ulp of the float64
    reference); float64 outputs the C library's.
    """
    name = activation.name
    parameter = scalar.PARAMETER.get(name)
    p = float(activation.params[parameter]) if parameter is not None else 0.0
    # In place, ``out`` is passed as None so the loop sees one array: LLVM vectorizes a loop over
    # two arrays only after a runtime check that they do not overlap, and falls back to scalar
    # code when they do (5x-7x slower, measured).
    _epilogue(name, out.dtype == np.float32)(s, b, p, None if out is s else out, derivative)


# ---------------------------------------------------------------------------------------------------
# Backward through the activation, fused with the bias gradient
# ---------------------------------------------------------------------------------------------------

@numba.njit(**_JIT_CACHED)
def _activation_backward(dy, derivative, ds, db):
    n_batch, n_out = dy.shape
    for j in range(n_out):
        db[j] = 0
    for i in range(n_batch):
        for j in range(n_out):  # unit stride: vectorizes, db stays in cache
            if derivative is None:  # `is None` tests are pruned at compile time
                g = dy[i, j]
            else:
                g = dy[i, j] * derivative[i, j]
            if ds is None:  # in place
                dy[i, j] = g
            else:
                ds[i, j] = g
            db[j] += g


def activation_backward(dy, derivative, ds, db) -> None:
    r"""Backward through the activation, fused with the bias gradient (column sum) in one pass.

    .. math:: \text{ds}_{ij} = \text{dy}_{ij}\,\phi'_{ij}, \qquad \text{db}_j = \sum_i \text{ds}_{ij}

    The loop (row by row, so the inner loop runs along contiguous memory)::

        db[:] = 0
        for i in range(n_batch):
            for j in range(n_out):
                ds[i, j] = dy[i, j] * derivative[i, j]
                db[j] += ds[i, j]

    Parameters
    ----------
    dy : (n_batch, n_out) float array
        :math:`\partial C/\partial y`. ``ds`` may be ``dy`` itself (in place).
    derivative : (n_batch, n_out) float array or None
        :math:`\phi'(s + b)` saved by :func:`bias_activation`; None means :math:`\phi' = 1`.
    ds : (n_batch, n_out) float array
    db : (n_out,) float array
        Accumulated in its own dtype, row after row (the reference sums pairwise; the two agree
        to rounding).
    """
    _activation_backward(dy, derivative, None if ds is dy else ds, db)  # None: in place (see bias_activation)


# ---------------------------------------------------------------------------------------------------
# Softmax cross-entropy
# ---------------------------------------------------------------------------------------------------

@numba.njit(**_JIT_CACHED)
def _softmax_cross_entropy(logits, labels, dlogits):
    n_batch, n_classes = logits.shape
    inv_batch = 1.0 / n_batch
    total = 0.0
    for i in range(n_batch):
        row_max = np.float64(logits[i, 0])
        for j in range(1, n_classes):
            row_max = max(row_max, np.float64(logits[i, j]))
        label = labels[i]
        shifted_label = np.float64(logits[i, label]) - row_max  # read before dlogits (may alias logits)
        sum_exp = 0.0
        for j in range(n_classes):
            sum_exp += math.exp(np.float64(logits[i, j]) - row_max)  # each <= 1; the sum >= 1
        total += math.log(sum_exp) - shifted_label
        scale = inv_batch / sum_exp
        for j in range(n_classes):
            # exp again rather than storing it in dlogits: a float32 dlogits would round it twice
            g = math.exp(np.float64(logits[i, j]) - row_max) * scale
            dlogits[i, j] = g - inv_batch if j == label else g
    return total * inv_batch


def softmax_cross_entropy(logits, labels, dlogits) -> float:
    r"""Mean softmax cross-entropy and its gradient, one kernel (in float64 internally).

    .. math::
        C = \frac1B \sum_i \Bigl(\log \sum_j e^{s_{ij} - m_i} - (s_{i y_i} - m_i)\Bigr),\quad m_i = \max_j s_{ij},
        \qquad \text{dlogits} = \frac{\mathrm{softmax}(s) - \mathrm{onehot}(y)}{B}

    The loop::

        for i in range(n_batch):
            m = max(logits[i, :])
            sum_exp = sum(exp(logits[i, :] - m))              # every exponent <= 0: no overflow
            loss += log(sum_exp) - (logits[i, labels[i]] - m)
            dlogits[i, :] = exp(logits[i, :] - m) / (B * sum_exp)
            dlogits[i, labels[i]] -= 1 / B                  # (before the one rounding to the dtype)
        return loss / B

    Parameters
    ----------
    logits : (n_batch, n_classes) float array
    labels : (n_batch,) integer array, values in ``[0, n_classes)`` (checked by the caller)
    dlogits : (n_batch, n_classes) float array, written (may be ``logits`` itself)

    Returns
    -------
    float
    """
    return float(_softmax_cross_entropy(logits, labels, dlogits))


# ---------------------------------------------------------------------------------------------------
# Optimizer updates
# ---------------------------------------------------------------------------------------------------

def _flat(a, name):
    """A 1-d view of the C-contiguous array ``a`` (updated in place, so a copy would be wrong)."""
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous to be updated in place")
    return a.reshape(-1)


@numba.njit(**_JIT_CACHED)
def _sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay, first_step):
    as_dtype = param.dtype.type  # the scalars in the arrays' dtype: float32 arithmetic for float32 arrays
    lr, momentum, weight_decay = as_dtype(lr), as_dtype(momentum), as_dtype(weight_decay)
    if velocity is None:  # momentum 0; pruned at compile time
        for k in range(param.size):
            g = grad[k]
            if weight_decay != 0:
                g = g + weight_decay * param[k]
            param[k] = param[k] - lr * g
    else:
        for k in range(param.size):
            g = grad[k]
            if weight_decay != 0:
                g = g + weight_decay * param[k]
            v = g if first_step else momentum * velocity[k] + g
            velocity[k] = v
            step = g + momentum * v if nesterov else v
            param[k] = param[k] - lr * step


def sgd_update(param, grad, velocity, lr, momentum, nesterov, weight_decay, first_step) -> None:
    r"""One SGD step in place (PyTorch's rule, dampening 0), one pass over the arrays.

    .. math::
        g = \nabla + \lambda\theta,\quad v \leftarrow \mu v + g\ (v = g \text{ on the first step}),\quad
        \theta \leftarrow \theta - \eta\,(g + \mu v \text{ if Nesterov else } v)

    The loop, over the flattened arrays, in the arrays' dtype (the reference's operations in the
    reference's order, so the same bits as the reference on the same dtype)::

        for k in range(param.size):
            g = grad[k] + weight_decay * param[k]            # term skipped when weight_decay == 0
            v = g if first_step else momentum * velocity[k] + g
            velocity[k] = v                                  # no velocity when momentum == 0: v = g
            param[k] -= lr * (g + momentum * v if nesterov else v)

    Parameters
    ----------
    param : float array, any shape, C-contiguous, updated in place
    grad : float array, same shape
    velocity : float array, same shape, C-contiguous, updated in place; unused (may be None) when
        ``momentum == 0``
    lr, momentum, weight_decay : float
    nesterov, first_step : bool
    """
    # Python floats in, cast in the kernel (np.float32 scalars cost ~0.1 us each to build and to dispatch)
    flat_velocity = _flat(velocity, "velocity") if momentum else None
    _sgd_update(_flat(param, "param"), np.ascontiguousarray(grad).reshape(-1), flat_velocity, float(lr),
                float(momentum), bool(nesterov), float(weight_decay), bool(first_step))


@numba.njit(**_JIT_CACHED)
def _adam_update(param, grad, m, v, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2,
                 bias_correction2, eps, weight_decay):
    as_dtype = param.dtype.type  # float32 arithmetic for float32 arrays (float64: 2x slower here, measured)
    step_size, beta1, one_minus_beta1 = as_dtype(step_size), as_dtype(beta1), as_dtype(one_minus_beta1)
    beta2, one_minus_beta2, bias_correction2 = as_dtype(beta2), as_dtype(one_minus_beta2), as_dtype(bias_correction2)
    eps, weight_decay = as_dtype(eps), as_dtype(weight_decay)
    for k in range(param.size):
        g = grad[k]
        if weight_decay != 0:
            g = g + weight_decay * param[k]
        mk = beta1 * m[k] + one_minus_beta1 * g
        vk = beta2 * v[k] + one_minus_beta2 * (g * g)
        m[k] = mk
        v[k] = vk
        param[k] = param[k] - step_size * (mk / (math.sqrt(vk / bias_correction2) + eps))


def adam_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step) -> None:
    r"""One Adam step in place, with bias correction (``step`` counts from 1), one pass over the arrays.

    .. math::
        g = \nabla + \lambda\theta,\quad m \leftarrow \beta_1 m + (1-\beta_1) g,\quad
        v \leftarrow \beta_2 v + (1-\beta_2) g^2,\quad
        \theta \leftarrow \theta - \eta\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-\beta_2^t)} + \epsilon}

    The loop, over the flattened arrays, in the arrays' dtype (the reference's operations in the
    reference's order)::

        step_size = lr / (1 - beta1**step)
        for k in range(param.size):
            g = grad[k] + weight_decay * param[k]            # term skipped when weight_decay == 0
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            param[k] -= step_size * m[k] / (sqrt(v[k] / (1 - beta2**step)) + eps)

    Parameters
    ----------
    param : float array, any shape, C-contiguous, updated in place
    grad : float array, same shape
    m, v : float arrays, same shape, C-contiguous, updated in place
    lr, beta1, beta2, eps, weight_decay : float
    step : int, the step number (from 1)
    """
    beta1, beta2 = float(beta1), float(beta2)
    _adam_update(_flat(param, "param"), np.ascontiguousarray(grad).reshape(-1), _flat(m, "m"), _flat(v, "v"),
                 lr / (1 - beta1**step), beta1, 1 - beta1, beta2, 1 - beta2, 1 - beta2**step, float(eps),
                 float(weight_decay))


# ---------------------------------------------------------------------------------------------------
# Plain SGD folded into the weight-gradient matrix product (BLAS gemm with beta = 1)
# ---------------------------------------------------------------------------------------------------

_CBLAS_ROW_MAJOR, _CBLAS_NO_TRANS, _CBLAS_TRANS = 101, 111, 112


def _find_numpy_cblas():
    """``{dtype: gemm}`` from the OpenBLAS that NumPy's own wheel bundles, or ``{}`` when there is none.

    NumPy's ``matmul`` cannot take BLAS's ``beta`` (``C <- alpha A B + beta C``), so the gemm is called
    directly with ``ctypes``: the same library (same threads, same kernels) NumPy's matmul uses. Only the
    wheels' ``scipy-openblas`` is recognized (ILP64 symbols ``scipy_cblas_?gemm64_``); with any other BLAS
    the fold is simply not used.
    """
    import ctypes
    import glob
    import os

    libraries = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "libscipy_openblas64_*"))
    if not libraries:
        return {}
    try:
        library = ctypes.CDLL(libraries[0])
        functions = {np.dtype(np.float32): (library.scipy_cblas_sgemm64_, ctypes.c_float),
                     np.dtype(np.float64): (library.scipy_cblas_dgemm64_, ctypes.c_double)}
    except (OSError, AttributeError):
        return {}
    out = {}
    for dtype, (function, scalar_type) in functions.items():
        index = ctypes.c_int64
        function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, index, index, index, scalar_type,
                             ctypes.c_void_p, index, ctypes.c_void_p, index, scalar_type, ctypes.c_void_p, index]
        function.restype = None
        out[dtype] = function
    return out


_GEMM = _find_numpy_cblas()


def sgd_weight_update(W, z, ds, lr) -> bool:
    r"""Plain SGD on a weight matrix, folded into the matrix product that makes its gradient.

    .. math:: W \leftarrow W - \eta\, z^\top \partial s \qquad \text{(one gemm: } C \leftarrow \alpha A^\top B + \beta C,
              \ \alpha = -\eta,\ \beta = 1)

    Computing :math:`\partial W = z^\top \partial s` into a buffer and then streaming :math:`W` and
    :math:`\partial W` through an update costs a write and two reads of a weight-sized array; here
    BLAS adds the product straight into :math:`W`. The result equals the two-step update up to
    rounding (the product is not rounded to the dtype before it is scaled).

    Parameters
    ----------
    W : (n_in, n_out) C-contiguous float array, updated in place
    z : (n_batch, n_in) float array with contiguous rows
    ds : (n_batch, n_out) C-contiguous float array
    lr : float

    Returns
    -------
    bool
        False (and nothing changed) when this cannot be done here: NumPy's bundled OpenBLAS was not
        found, or the arrays' dtypes or layouts do not fit; the caller then computes the gradient.
    """
    gemm = _GEMM.get(W.dtype)
    itemsize = W.dtype.itemsize
    if (gemm is None or z.dtype != W.dtype or ds.dtype != W.dtype or not W.flags.c_contiguous
            or not ds.flags.c_contiguous or z.strides[1] != itemsize or z.strides[0] % itemsize):
        return False
    n_batch, n_in = z.shape
    n_out = W.shape[1]
    gemm(_CBLAS_ROW_MAJOR, _CBLAS_TRANS, _CBLAS_NO_TRANS, n_in, n_out, n_batch, -float(lr),
         z.ctypes.data, z.strides[0] // itemsize, ds.ctypes.data, n_out, 1.0, W.ctypes.data, n_out)
    return True
