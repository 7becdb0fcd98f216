"""What one task of :func:`rankseg.xarray.predict` runs: a block through the NumPy API.

``xr.apply_ufunc`` hands :func:`predict_block` a block ``(*loop, C, *spatial)``
and the flat sample numbers of its samples; the block is folded into a batch,
predicted, and unfolded.  A value error names its sample in the whole DataArray
(:class:`Where`).

Threads inside dask tasks
-------------------------
Each dask task runs the kernels with ``threads_per_task`` threads (default 1: dask
provides the parallelism), through the thread-local :func:`rankseg.num_threads`
(restored when the task ends), so *n* dask threads run *n* x ``threads_per_task``
kernel threads.  The kernels are serial ``nogil`` numba functions run on Python
threads (:mod:`rankseg.cpu.tasks`), never numba parallel regions, so any
number of dask threads may call them at once under every numba threading layer
(``workqueue`` included: ``tests/test_xarray.py``).  The in-memory (NumPy-backed)
path calls the NumPy API directly, which decides its threads itself
(:mod:`rankseg._threads`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from rankseg._api import RankSEG
from rankseg._threads import num_threads
from rankseg._validation import BadValuesError

#: the per-(sample, class) info fields, in the order of the block's outputs
INFO_FIELDS = ("tau", "threshold", "score", "pruned")


class Where:
    """Names a row of the DataArray by its dims and coordinates, for the value errors.

    The NumPy API counts samples within the batch it is given, which for dask input
    is one block; each block also gets the flat sample numbers of its samples (an
    index input of :func:`predict`), so the error names the sample of the whole
    DataArray, by coordinate label where the dim has one (``case='p5'``), else by
    position (``case[5]``).
    """

    def __init__(self, da: Any, loop: list[Hashable], class_dim: Hashable) -> None:
        self.dims = [*loop, class_dim]
        self.shape = tuple(int(da.sizes[d]) for d in loop)
        self.labels = [np.asarray(da[d].values) if d in da.coords else None for d in self.dims]

    def __call__(self, exc: BadValuesError, index: np.ndarray) -> BadValuesError:
        """Return ``exc`` naming its row in the DataArray (``index``: the block's samples)."""
        flat = int(np.asarray(index).reshape(-1)[exc.sample])
        pos: list[int | np.integer[Any]] = [*np.unravel_index(flat, self.shape), exc.class_]
        parts = []
        for dim, labels, i in zip(self.dims, self.labels, pos, strict=True):
            if labels is None:
                parts.append(f"{dim}[{int(i)}]")
            else:
                value = labels[int(i)]
                parts.append(f"{dim}={value.item() if hasattr(value, 'item') else value!r}")
        return exc.relocated(flat, ", ".join(parts))


def predict_block(
    x: np.ndarray,
    index: np.ndarray,
    *,
    nspatial: int,
    params: dict[str, Any],
    return_info: bool,
    dtype: Any,
    task_threads: int | None,
    where: Where,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Predict one block of shape ``(*loop, C, *spatial)`` (the layout apply_ufunc gives).

    ``index`` holds the flat sample numbers of the block's samples (shape ``loop``),
    by which a value error names its sample in the whole DataArray.
    """
    nloop = x.ndim - 1 - nspatial
    loop, core = x.shape[:nloop], x.shape[nloop:]
    batch = x.reshape((-1, *core))
    model = RankSEG(**params)
    try:
        if task_threads is None:
            res = model.predict(batch, return_info=return_info, dtype=dtype)
        else:
            with num_threads(task_threads):
                res = model.predict(batch, return_info=return_info, dtype=dtype)
    except BadValuesError as exc:
        raise where(exc, index) from None
    preds, info = res if return_info else (res, None)
    preds = preds.reshape(loop + preds.shape[1:])
    if info is None:
        return preds
    return (preds, *(getattr(info, f).reshape(loop + (core[0],)) for f in INFO_FIELDS))
