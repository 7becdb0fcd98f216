"""The two ways :func:`rankseg.xarray.predict` runs the NumPy API on a DataArray.

Whole samples (:func:`predict_merged`): NumPy-backed input, or dask-backed input with
its class and spatial chunks merged, through ``xr.apply_ufunc`` and
:func:`rankseg.xarray._blocks.predict_block`.  Chunks kept (:func:`predict_chunked`):
dask-backed input through :func:`rankseg.dask.predict`, imported here lazily so that
NumPy-backed input needs no dask.  :func:`keeps_chunks` chooses.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from rankseg._api import RankSEG
from rankseg._validation import BadValuesError
from rankseg.xarray._blocks import INFO_FIELDS, Where, predict_block

_INFO_DTYPES = (np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.float64), np.dtype(bool))


def keeps_chunks(da: xr.DataArray, spatial: tuple[Hashable, ...], spatial_chunks: str) -> bool:
    """Whether a dask-backed ``da`` is decided from its chunks (``rankseg.dask``)."""
    da_chunks = da.chunks
    if da_chunks is not None and any(c != c for chunks in da_chunks for c in chunks):  # NaN
        raise ValueError(
            f"the DataArray {da.name or ''!s} has unknown chunk sizes {da.chunks}; call "
            "compute_chunk_sizes() on its dask array first (da.copy(data=da.data."
            "compute_chunk_sizes()))"
        )
    return da_chunks is not None and (
        spatial_chunks == "keep"
        or (
            spatial_chunks == "auto"
            and any(len(da_chunks[da.get_axis_num(d)]) > 1 for d in spatial)
        )
    )


def predict_merged(
    da: xr.DataArray,
    class_dim: Hashable,
    spatial: tuple[Hashable, ...],
    model: RankSEG,
    out_dtype: np.dtype,
    threads_per_task: int,
    return_info: bool,
    kw: dict[str, Any],
) -> Any:
    """Run the NumPy API on whole samples through ``xr.apply_ufunc``."""
    core = [class_dim, *spatial]
    out_core = [list(spatial) if model.output_mode == "multiclass" else core]
    out_dtypes = [out_dtype]
    if return_info:
        out_core += [[class_dim]] * len(INFO_FIELDS)
        out_dtypes += list(_INFO_DTYPES)
    lazy = da.chunks is not None
    if lazy:
        # one chunk per sample along the class and spatial dims (the rule needs the
        # whole volume); sample chunks are left as they are.  Only the data is
        # rechunked: DataArray.chunk would also turn the coords into dask arrays.
        axes = {da.get_axis_num(d): -1 for d in core}
        da = da.copy(data=da.data.rechunk(axes))
    loop = [d for d in da.dims if d not in core]
    index = xr.DataArray(
        np.arange(int(np.prod([da.sizes[d] for d in loop]))).reshape([da.sizes[d] for d in loop]),
        dims=loop,
    )
    if lazy:
        index = index.chunk({d: da.chunksizes[d] for d in loop})
    return xr.apply_ufunc(
        predict_block,
        da,
        index,
        input_core_dims=[core, []],
        output_core_dims=out_core,
        dask="parallelized",
        output_dtypes=out_dtypes,
        keep_attrs=True,
        kwargs={
            "nspatial": len(core) - 1,
            "task_threads": threads_per_task if lazy else None,
            "where": Where(da, loop, class_dim),
            **kw,
        },
    )


def predict_chunked(
    da: xr.DataArray,
    class_dim: Hashable,
    spatial: tuple[Hashable, ...],
    params: dict[str, Any],
    return_info: bool,
    dtype: Any,
) -> Any:
    """Run :func:`rankseg.dask.predict`; return its outputs as apply_ufunc would."""
    import rankseg.dask

    loop = [d for d in da.dims if d != class_dim and d not in spatial]
    src = da.transpose(*loop, class_dim, *spatial)
    data = src.data
    nloop = len(loop)
    if nloop != 1:  # fold the sample dims into one batch axis (chunks of one sample)
        data = data.rechunk({a: 1 for a in range(nloop)}).reshape((-1, *data.shape[nloop:]))
    where = Where(da, loop, class_dim)
    try:
        res = rankseg.dask.predict(data, return_info=return_info, dtype=dtype, **params)
    except BadValuesError as exc:
        raise where(exc, np.arange(data.shape[0])) from None
    preds, info = res if isinstance(res, tuple) else (res, None)  # a tuple: return_info
    lead = tuple(src.shape[:nloop])
    preds = preds.reshape(lead + preds.shape[1:])
    multiclass = params.get("output_mode", "multiclass") == "multiclass"
    template = src.isel({class_dim: 0}, drop=True) if multiclass else src
    out = template.copy(data=preds)
    out.encoding = {}  # the probabilities' encoding (float dtype, fill value) is not ours
    if info is None:
        return out
    per_row = src.isel({d: 0 for d in spatial}, drop=True)
    fields = []
    for f in INFO_FIELDS:
        field = per_row.copy(data=getattr(info, f).reshape(per_row.shape)).compute()
        field.encoding = {}
        fields.append(field)
    return (out, *fields)
