"""GPU backend: ``@cuda.jit`` twins of :mod:`rankseg.kernels` and their host driver.

Nothing here imports ``numba.cuda`` at import time of :mod:`rankseg`: the CPU path
never touches CUDA.  :func:`load` imports it on first use and raises an error that
names what is missing (the ``numba-cuda`` package, or a CUDA driver and GPU).
Under ``NUMBA_ENABLE_CUDASIM=1`` (set before numba is imported) numba's CUDA
simulator runs the same kernels on the CPU; the tests in ``tests/cuda`` use it.

Modules mirror ``rankseg/kernels`` file for file: ``_dtype.py`` (reading inputs as
float64), ``rma.py`` (device twins of the RMA objective and screening bounds),
``stats.py`` (row statistics and setup, the tiling and the per-row record),
``rma_passes.py`` (band count/gather, band sort, objective scan, cut), ``masks.py``
(mask writers), ``assign.py`` (multiclass resolution, argmax), ``solver_passes.py`` (the
other solvers' candidate bound; the exact solver's candidate sort and certified
range), ``exact.py`` (the whole-row summary and the exact quadrature), ``_block.py``
(block-wide reductions shared by the kernels); ``_config.py`` holds the launch
configuration, ``driver.py`` launches and ``_memory.py`` owns the device buffers and
every transfer.
"""

from __future__ import annotations

from typing import Any

__all__ = ["as_device_array", "backend", "is_simulator", "load"]


def load() -> Any:
    """Import ``numba.cuda`` and check that it can run kernels.

    Returns
    -------
    module
        ``numba.cuda`` (the real target, or the simulator under
        ``NUMBA_ENABLE_CUDASIM=1``).

    Raises
    ------
    ImportError
        If ``numba.cuda`` cannot be imported (the ``numba-cuda`` package is missing).
    RuntimeError
        If no CUDA driver or GPU is available.
    """
    try:
        import numba.cuda as cuda
    except ImportError as exc:
        raise ImportError(
            "device='cuda' needs the numba-cuda package (pip install 'rankseg-numba[cuda]', i.e. "
            f"numba-cuda>=0.10); importing numba.cuda failed: {exc}"
        ) from exc
    if not cuda.is_available():
        reason = cuda.cuda_error() if hasattr(cuda, "cuda_error") else None
        advice = (
            "Use device='cpu', or set NUMBA_ENABLE_CUDASIM=1 before importing numba to run "
            "the kernels in numba's CUDA simulator (slow; for tests)"
        )
        if reason is None and not _nvvm_available():
            # the driver works (no error), but numba-cuda cannot compile kernels
            raise RuntimeError(
                "device='cuda' needs NVVM, the CUDA compiler library that numba-cuda "
                "compiles kernels with, and it was not found (the CUDA driver itself "
                "works); install it with pip install nvidia-cuda-nvcc nvidia-cuda-nvrtc (or "
                "numba-cuda[cu12] / [cu13]), or a CUDA toolkit. " + advice
            )
        found = str(reason).strip() if reason is not None else ""
        raise RuntimeError(
            "device='cuda' needs an NVIDIA GPU with a working CUDA driver, and numba-cuda "
            f"found none ({found or 'no CUDA device'}). " + advice
        )
    return cuda


def _nvvm_available() -> bool:
    """Whether numba-cuda finds NVVM (True when it cannot tell)."""
    try:
        from numba.cuda.cudadrv import nvvm

        return bool(nvvm.is_available())
    except Exception:  # another numba-cuda layout, or the simulator
        return True


def backend() -> Any:
    """Return the host driver module, after :func:`load` checked that CUDA works.

    Returns
    -------
    module
        :mod:`rankseg.cuda.driver`.
    """
    load()
    from rankseg.cuda import driver

    return driver


def is_simulator() -> bool:
    """Whether numba runs CUDA kernels in its simulator (``NUMBA_ENABLE_CUDASIM=1``).

    Returns
    -------
    bool
        The flag numba read when it was imported.
    """
    from numba.core import config

    # numba.core.config sets its settings at run time (from the environment), unseen by mypy
    return bool(config.ENABLE_CUDASIM)  # type: ignore[attr-defined]


def _is_simulated(obj: Any) -> bool:
    return bool(getattr(type(obj), "__cuda_ndarray__", False)) and not hasattr(
        obj, "__cuda_array_interface__"
    )


def as_device_array(obj: Any) -> Any:
    """View a CUDA array (``__cuda_array_interface__``) as a numba device array, zero-copy.

    Parameters
    ----------
    obj : object
        A CuPy array, torch CUDA tensor, numba device array, or (simulator only)
        a simulated numba device array.

    Returns
    -------
    numba device array
        A view of the same memory.

    Raises
    ------
    ImportError, RuntimeError
        See :func:`load`.
    TypeError
        If the simulator is active and ``obj`` is a real CUDA array (or vice versa).
    """
    cuda = load()
    simulator = is_simulator()
    if _is_simulated(obj):
        if not simulator:
            raise TypeError(
                "probs is a simulated numba device array but NUMBA_ENABLE_CUDASIM is not set"
            )
        return obj
    if simulator:
        raise TypeError(
            f"probs is a CUDA array ({type(obj).__name__}) but numba runs in its CUDA "
            "simulator (NUMBA_ENABLE_CUDASIM=1), which only takes simulated numba device "
            "arrays (numba.cuda.to_device)"
        )
    return cuda.as_cuda_array(obj)
