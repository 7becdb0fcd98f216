"""Numba kernels over NumPy buffers: no validation, no Python objects, no I/O."""
