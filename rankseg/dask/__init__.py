"""Spatially chunked RankSEG on dask arrays: images larger than one machine.

``rankseg.dask.predict(darr)`` decides a dask array of probabilities
``(B, C, *spatial)`` **without merging its spatial chunks**: the decision of one
(sample, class) needs only global quantities of its row, so it is computed as a
few map-reduce passes over the blocks (docs/xarray.rst, "Images larger than
memory"), every solver included:

1. *histogram*: per block and row, a histogram of the values' bit patterns with
   exact per-bin counts and sums (:mod:`rankseg.kernels.dask_blocks`), tree-reduced.
   It gives μ, the maximum (pruning), the forced set and the order of every other
   pixel up to its bin; for the exact and RNA solvers also the whole-row summary
   (moments and power sums, the sum of the blocks' summaries);
2. *refinement* (usually one small pass, sometimes none): RMA scans the bins
   (:func:`rankseg.kernels.dask_blocks.scan_nodes`) and names the few it cannot
   cross, whose values are gathered (or the bins split); the exact and RNA solvers
   gather their candidate band (the values above the bound of
   :func:`rankseg.kernels.solver_passes.candidate_bound`) and solve it as the in-memory
   path does, with a further gather when the exact solver asks for a longer
   prefix.  When the cut splits a run of equal values, the flat index of the last
   selected one is found by counting ties per flat-index range;
3. *safe sums* (multiclass only): per class, the sum and count of the pixels that
   class alone selects;
4. *write*: a lazy ``map_blocks`` writing masks or labels block by block.

Passes 1-3 run when :func:`predict` is called; the returned array is lazy and is
the last pass.  The passes live in :mod:`rankseg.dask._passes`, the cut search
driving them in :mod:`rankseg.dask._cuts` (RMA) and :mod:`rankseg.dask._search`
(the other solvers).
"""

from __future__ import annotations

from typing import Any, Literal, overload

import dask.array as da
import numpy as np

from rankseg._api import PredictInfo, RankSEG
from rankseg._config import MAX_BAND_BYTES
from rankseg._policies import FLOAT_DTYPES, metric_code, void_label
from rankseg._records import empty_info
from rankseg._validation import check_band_bytes
from rankseg.dask._cuts import find_cuts
from rankseg.dask._passes import Blocks, Layout, acc_block, safe_sums, write_block

__all__ = ["predict"]


# -- public API ------------------------------------------------------------------------------
def _check_dask(probs: Any) -> da.Array:
    if not isinstance(probs, da.Array):
        raise TypeError(
            "rankseg.dask.predict needs a dask array of shape (B, C, *spatial); got "
            f"{type(probs).__name__} (use rankseg.predict for NumPy arrays, "
            "rankseg.xarray.predict for DataArrays)"
        )
    if probs.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(f"probs must have dtype float16, float32 or float64; got {probs.dtype}")
    if not probs.dtype.isnative:
        probs = probs.astype(probs.dtype.newbyteorder("="))
    if probs.ndim < 3:
        raise ValueError(
            "probs must have shape (B, C, *spatial) with at least one spatial axis; "
            f"got shape {probs.shape} ({probs.ndim} dimensions)"
        )
    if any(np.isnan(c) for chunks in probs.chunks for c in chunks):
        raise ValueError("probs has unknown chunk sizes; call probs.compute_chunk_sizes() first")
    if probs.shape[1] == 0:
        raise ValueError(f"probs has zero classes (shape {probs.shape}); expected C >= 1 on axis 1")
    if any(s == 0 for s in probs.shape[2:]):
        raise ValueError(
            f"probs has an empty spatial axis (shape {probs.shape}); every spatial size must "
            "be >= 1"
        )
    return probs


@overload
def predict(
    probs: da.Array,
    metric: str = ...,
    smooth: float = ...,
    output_mode: str = ...,
    solver: str | None = ...,
    pruning_prob: float | None = ...,
    *,
    return_info: Literal[False] = ...,
    dtype: Any = ...,
    max_band_bytes: int = ...,
    **solver_params: Any,
) -> da.Array: ...


@overload
def predict(
    probs: da.Array,
    metric: str = ...,
    smooth: float = ...,
    output_mode: str = ...,
    solver: str | None = ...,
    pruning_prob: float | None = ...,
    *,
    return_info: Literal[True],
    dtype: Any = ...,
    max_band_bytes: int = ...,
    **solver_params: Any,
) -> tuple[da.Array, PredictInfo]: ...


@overload
def predict(
    probs: da.Array,
    metric: str = ...,
    smooth: float = ...,
    output_mode: str = ...,
    solver: str | None = ...,
    pruning_prob: float | None = ...,
    *,
    return_info: bool = ...,
    dtype: Any = ...,
    max_band_bytes: int = ...,
    **solver_params: Any,
) -> da.Array | tuple[da.Array, PredictInfo]: ...


def predict(
    probs: da.Array,
    metric: str = "dice",
    smooth: float = 0.0,
    output_mode: str = "multiclass",
    solver: str | None = None,
    pruning_prob: float | None = None,
    *,
    return_info: bool = False,
    dtype: Any = None,
    max_band_bytes: int = MAX_BAND_BYTES,
    **solver_params: Any,
) -> da.Array | tuple[da.Array, PredictInfo]:
    """RankSEG on a dask array whose spatial dims may be chunked (images larger than RAM).

    Parameters
    ----------
    probs : dask.array.Array, shape (B, C, *spatial)
        float16/float32/float64 probabilities in [0, 1], chunked along any axis.
        Spatial chunks are kept; for multiclass output the class axis is merged
        into one chunk (the labels of a pixel read every class).
    metric, smooth, output_mode, solver, pruning_prob, **solver_params
        As for :func:`rankseg.predict`; every solver keeps the spatial chunks.
    return_info : bool
        Also return a :class:`rankseg.PredictInfo` (NumPy arrays; Dice/IoU only).
    dtype : integer dtype, optional
        Label dtype (multiclass only); default int64.
    max_band_bytes : int
        Memory the calling process may spend on gathered values, default 2 GiB.
        The ``'exact'``, ``'ba'``, ``'trna'`` and ``'ba+trna'`` solvers gather the
        candidate band of a (sample, class), the pixels above a safe value bound,
        and sort and solve it in this process: a band needing more (32 bytes per
        value) raises ValueError.  The rows of one pass gather no more than this
        together; the rows beyond it wait for the next pass.

    Returns
    -------
    dask.array.Array, or (dask.array.Array, PredictInfo)
        Lazy labels ``(B, *spatial)`` or masks ``(B, C, *spatial)`` with the input's
        spatial chunks, and the info when requested.

    Raises
    ------
    TypeError
        For input that is not a dask array of a float dtype, a ``max_band_bytes``
        that is not an integer, and every type error of :func:`rankseg.predict`.
    ValueError
        For a bad shape, ``max_band_bytes < 1`` and every parameter error of
        :func:`rankseg.predict`; for a NaN, an infinity or a value outside [0, 1],
        naming the sample, the class and the chunk (raised while the statistics are
        computed, inside ``predict``); for a candidate band larger than
        ``max_band_bytes``, naming the sample, the class, the band's size and the
        memory it needs.

    Notes
    -----
    For Dice/IoU, ``predict`` computes the cuts at once, in two to four passes over
    the input (a histogram of every row, usually one small gathering pass, a pass
    for the per-class safe sums of multiclass output), each holding one block plus
    a few hundred kilobytes per row in a task; the returned array is lazy and
    writes the output block by block.

    RMA gathers the values of a few histogram bins around the cut.  The other
    solvers gather each row's candidate band (the values above the bound of
    :func:`rankseg.kernels.solver_passes.candidate_bound`: about ``p > p_max/d``, or above
    the mean of the pixels ``p >= 1/2`` spread over the row) into the calling
    process, once, plus one pass per longer prefix the exact solver asks for (rare;
    up to the whole row).  Their band is the part of a row that must fit in memory.

    Masks, labels, ``tau``, ``threshold`` and ``pruned`` equal those of
    :func:`rankseg.predict` on the computed array; ``score`` agrees to rounding.
    For RMA the only difference is μ, summed exactly here and in float64 there, so
    the result does not depend on the chunking.  The exact and RNA solvers sum the
    blocks' float64 row summaries, so their objective differs from the in-memory
    one (and between chunkings) by rounding, ~1e-16 relative: a volume is chosen
    differently only where two volumes' objectives agree to that precision.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> import rankseg.dask
    >>> p = np.array([[[[0.9, 0.6, 0.2, 0.7]], [[0.1, 0.4, 0.8, 0.3]]]])
    >>> labels = rankseg.dask.predict(da.from_array(p, chunks=(1, 2, 1, 2)))
    >>> labels.compute()
    array([[[0, 0, 1, 0]]])
    """
    model = RankSEG(metric, smooth, output_mode, solver, pruning_prob, **solver_params)
    model.check_pruning_rule("the chunked dask path")
    x = _check_dask(probs)
    max_band_bytes = check_band_bytes(max_band_bytes)
    # every remaining check (return_info, dtype, void_index against C, C = 1 with
    # multiclass) by the plan of the NumPy API for this shape (no data read)
    plan = model.plan(x.shape, x.dtype, return_info=return_info, out_dtype=dtype)
    out_dtype = plan.out_dtype
    multiclass = model.output_mode == "multiclass"
    layout = Layout(x.dtype)
    nb, nc = x.shape[:2]
    if multiclass and len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})
    if nb == 0:
        out = da.from_array(np.empty(plan.out_shape, dtype=out_dtype))
        return (out, empty_info(nc)) if return_info else out
    if model.metric == "acc":
        drop = (1,) if multiclass else ()
        meta = np.empty((0,) * (x.ndim - len(drop)), out_dtype)
        # da.map_blocks(f, x, ...) is what x.map_blocks(f, ...) calls; typeshed's
        # functools.wraps loses the method's self, so mypy cannot check the method form
        return da.map_blocks(
            acc_block, x, layout, multiclass, out_dtype, dtype=out_dtype, drop_axis=drop, meta=meta
        )
    blk = Blocks(x)
    cuts = find_cuts(blk, layout, model, int(max_band_bytes))
    kw: dict[str, Any] = {
        "layout": layout,
        "shape": x.shape,
        "cuts": cuts,
        "multiclass": multiclass,
        "out_dtype": out_dtype,
    }
    if multiclass:
        kw["m"], kw["n"] = safe_sums(blk, layout, cuts)
        code = metric_code(model.metric)
        void = void_label(model)
        kw["policy"] = (code, model.smooth, void is not None, np.int64(void or 0))
        meta = np.empty((0,) * (x.ndim - 1), out_dtype)
        out = da.map_blocks(write_block, x, dtype=out_dtype, drop_axis=1, meta=meta, **kw)
    else:
        out = da.map_blocks(write_block, x, dtype=bool, meta=np.empty((0,) * x.ndim, bool), **kw)
    if not return_info:
        return out
    tau = cuts["tau"]
    info = PredictInfo(
        tau=tau.reshape(nb, nc),
        threshold=np.where(tau > 0, cuts["t"], np.nan).reshape(nb, nc),
        score=cuts["score"].reshape(nb, nc),
        pruned=cuts["pruned"].reshape(nb, nc),
    )
    return out, info
