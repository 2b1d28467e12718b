"""Fused layer kernels (Numba on the CPU, Numba CUDA on the GPU), imported as ``tinyid.kernels``.

Empty until the kernels issue: every layer currently runs the plain NumPy/CuPy reference in
:mod:`tinyid.layers`, which stays as the oracle the kernels are tested against.
"""
