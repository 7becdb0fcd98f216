"""Device memory of the GPU backend: the work buffers kept between calls, and transfers.

The host driver (:mod:`rankseg.cuda.driver`) decides what runs; this module owns
what it runs on: :class:`_Buffers` (one named, reusable device buffer per use, per
device, guarded by :data:`_LOCK`), the output allocation through the input's own
library (:func:`_alloc_output`), and the copies :func:`to_host` / :func:`to_device`.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

from rankseg.cuda import load

__all__ = ["release_buffers", "to_device", "to_host"]


class Buffers:
    """Device work buffers kept between calls, one named buffer per use.

    Allocating and freeing device memory costs far more than the small kernels of a
    call, so the per-row record, the per-tile partial results, the band buffers and
    the multiclass status bytes are reused (grown when a call needs more); only the
    output is allocated per call.  Calls hold :data:`_LOCK`, so two threads never
    share a buffer; the GPU runs their kernels one after the other anyway.
    """

    def __init__(self, cuda: Any) -> None:
        self.cuda = cuda
        self.bufs: dict[str, Any] = {}
        self.index: dict[tuple[int, int], tuple[Any, Any, Any]] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any = np.float64) -> Any:
        """Return a device array of ``shape`` (uninitialized) backed by buffer ``name``."""
        n = int(np.prod(shape))
        dt = np.dtype(dtype)
        buf = self.bufs.get(name)
        if buf is None or buf.dtype != dt or buf.size < n:
            self.bufs.pop(name, None)  # free the old one first
            buf = self.cuda.device_array(max(1, n), dtype=dt)
            self.bufs[name] = buf
        return buf[:n].reshape(shape)

    def put(self, name: str, host: np.ndarray) -> Any:
        """Copy ``host`` into buffer ``name``; returns the device view."""
        host = np.ascontiguousarray(host)
        dev = self.get(name, host.shape, host.dtype)
        if host.size:
            dev.copy_to_device(host)
        return dev

    def rows(self, nrow: int, cap: int) -> tuple[Any, Any, Any]:
        """Device ``(rows, start, cap)`` of the first band gather: every row, ``cap`` each."""
        key = (nrow, cap)
        if key not in self.index:
            if len(self.index) >= 4:  # a few layouts (RMA and the solvers alternate)
                self.index.clear()
            rows = np.arange(nrow, dtype=np.int64)
            self.index[key] = (
                self.cuda.to_device(rows),
                self.cuda.to_device(rows * cap),
                self.cuda.to_device(np.full(nrow, cap, dtype=np.int64)),
            )
        return self.index[key]


LOCK = threading.Lock()


BUFFERS: dict[Any, Buffers] = {}


def buffers(cuda: Any) -> Buffers:
    try:
        key = cuda.get_current_device().id
    except Exception:  # the simulator's fake device
        key = None
    if key not in BUFFERS:
        BUFFERS[key] = Buffers(cuda)
    return BUFFERS[key]


def release_buffers() -> None:
    """Free the device work buffers kept between calls (see :class:`_Buffers`)."""
    with LOCK:
        BUFFERS.clear()


def to_host(arr: Any) -> np.ndarray:
    """Copy a numba device array to a new NumPy array."""
    return arr.copy_to_host()


def to_device(arr: np.ndarray) -> Any:
    """Copy a NumPy array to a new numba device array."""
    return load().to_device(np.ascontiguousarray(arr))


def alloc_output(cuda: Any, arr: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """Allocate the output on the device, with the input's library's allocator if known.

    CuPy and PyTorch keep freed memory in a pool, so their allocations cost
    microseconds where numba's ``device_array`` calls the driver; the result is a
    numba view that keeps the library's array alive.
    """
    owner: Any = getattr(getattr(arr, "gpu_data", None), "owner", None)
    lib = type(owner).__module__.split(".")[0]
    mod = sys.modules.get(lib) if lib in ("cupy", "torch") else None  # loaded by the caller
    try:
        if lib == "cupy" and mod is not None:
            with mod.cuda.Device(owner.device.id):
                return cuda.as_cuda_array(mod.empty(shape, dtype=dtype), sync=False)
        if lib == "torch" and mod is not None:
            tdt = mod.from_numpy(np.empty(0, dtype=dtype)).dtype
            out = mod.empty(shape, dtype=tdt, device=owner.device)
            return cuda.as_cuda_array(out, sync=False)
    except Exception:  # an unsupported dtype or version: numba's allocator below
        pass
    return cuda.device_array(shape, dtype=dtype)
