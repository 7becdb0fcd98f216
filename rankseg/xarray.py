"""xarray adapter: labeled probability maps in, labeled masks or label maps out.

Importing this module registers the ``.rankseg`` accessor on ``xarray.DataArray``::

    import rankseg.xarray  # noqa: F401  (registers da.rankseg)

    labels = da.rankseg.predict(class_dim="class", sample_dims="case")

The adapter is a thin layer over :func:`rankseg.predict`: it moves the class and
spatial dims to the end (lazily), folds the sample dims into the batch axis, calls
the NumPy API and rebuilds a DataArray with the input's dims, coords and attrs.
dask-backed input stays lazy (``xr.apply_ufunc(..., dask="parallelized")``).

What one dask task runs (the threading policy included) is in
:mod:`rankseg._xarray_task`.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from typing import Any, Literal, overload

import numpy as np

try:
    import xarray as xr
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rankseg.xarray needs xarray; install it with pip install 'rankseg-numba[xarray]' "
        "(or 'rankseg-numba[dask]' to scale out with dask)"
    ) from exc

import rankseg
from rankseg._api import RankSEG
from rankseg._config import MAX_BAND_BYTES
from rankseg._policies import (
    CLASS_DIM_NAMES,
    FLOAT_DTYPES,
    SAMPLE_DIM_NAMES,
    label_values,
    void_label,
)
from rankseg._validation import BadValuesError, check_band_bytes, check_name, check_threads
from rankseg._xarray_task import _INFO_FIELDS, _predict_block, _Where

__all__ = ["RankSEGAccessor", "predict"]

_INFO_DTYPES = (np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.float64), np.dtype(bool))
#: attributes that describe the *probability values* and would be wrong on labels/masks
_VALUE_ATTRS = frozenset(
    {
        "units",
        "standard_name",
        "long_name",
        "valid_min",
        "valid_max",
        "valid_range",
        "actual_range",
        "flag_values",
        "flag_masks",
        "flag_meanings",
        "_FillValue",
        "missing_value",
        "scale_factor",
        "add_offset",
    }
)
_WHITESPACE = re.compile(r"\s+")


# -- argument checks ----------------------------------------------------------------
def _as_dim_tuple(value: Any, param: str) -> tuple[Hashable, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        return (value,)
    dims = tuple(value)
    if len(set(dims)) != len(dims):
        raise ValueError(f"{param} lists a dimension more than once: {dims!r}")
    return dims


def _check_dataarray(da: Any) -> xr.DataArray:
    if isinstance(da, xr.Dataset):
        described = [
            f"{name!r} ({var.dtype}, dims {tuple(var.dims)!r})"
            for name, var in da.data_vars.items()
        ]
        floats = [name for name, var in da.data_vars.items() if var.dtype in FLOAT_DTYPES]
        hint = f"ds[{floats[0]!r}]" if floats else "ds['<variable>']"
        raise TypeError(
            "predict needs a DataArray of probabilities, got a Dataset; pick the probability "
            f"variable, e.g. {hint}. Data variables: "
            + (", ".join(described) if described else "none")
        )
    if not isinstance(da, xr.DataArray):
        raise TypeError(
            "predict needs an xarray.DataArray of probabilities; got "
            f"{type(da).__name__} (use rankseg.predict for NumPy arrays)"
        )
    if da.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        label = f"DataArray {da.name!r}" if da.name is not None else "the DataArray"
        raise TypeError(
            f"{label} has dtype {da.dtype}; expected float16, float32 or float64 probabilities"
            + (
                " (integer or boolean data: convert label maps to probabilities first)"
                if da.dtype.kind in "iub"
                else ""
            )
        )
    return da


def named_dims(
    dims: tuple[Hashable, ...],
    class_dim: Hashable | None,
    sample_dims: Any,
    spatial_dims: Any = None,
) -> tuple[Hashable, Any]:
    """Fill in the class and sample dims that were not given, from the dims' names.

    Parameters
    ----------
    dims : tuple of hashable
        The DataArray's dims.
    class_dim : hashable or None
        None: ``class``, else the one dim named as in :data:`CLASS_DIM_NAMES`.
    sample_dims : hashable, sequence or None
        None: the dims named as in :data:`SAMPLE_DIM_NAMES` (none when
        ``spatial_dims`` is given).
    spatial_dims : hashable, sequence or None
        As given to :func:`predict`.

    Returns
    -------
    tuple
        ``(class_dim, sample_dims)``.

    Raises
    ------
    ValueError
        If ``class_dim`` is None and no dim, or several, are named like a class dim.

    Examples
    --------
    >>> from rankseg.xarray import named_dims
    >>> named_dims(("case", "channel", "z", "y", "x"), None, None)
    ('channel', ('case',))
    """
    if class_dim is None:
        named = [d for d in dims if isinstance(d, str) and d.lower() in CLASS_DIM_NAMES]
        if "class" in dims:
            class_dim = "class"
        elif len(named) == 1:
            class_dim = named[0]
        else:
            raise ValueError(
                f"cannot tell the class dim of dims {dims!r}: "
                + (
                    "several are named like one"
                    if named
                    else "none is named " + "/".join(CLASS_DIM_NAMES[:4])
                )
                + "; pass class_dim=<the dim that holds the classes>"
            )
    if sample_dims is None:
        sample_dims = (
            ()
            if spatial_dims is not None
            else tuple(
                d
                for d in dims
                if d != class_dim and isinstance(d, str) and d.lower() in SAMPLE_DIM_NAMES
            )
        )
    return class_dim, sample_dims


def _resolve_dims(
    da: xr.DataArray,
    class_dim: Hashable,
    sample_dims: Any,
    spatial_dims: Any,
) -> tuple[tuple[Hashable, ...], tuple[Hashable, ...]]:
    """Return ``(sample_dims, spatial_dims)``, each in the input's dim order."""
    dims = tuple(da.dims)
    if class_dim not in dims:
        raise ValueError(
            f"class_dim {class_dim!r} is not a dimension of the DataArray; its dims are {dims!r}. "
            "Pass class_dim=<the dimension that holds the classes>"
        )
    samples = _as_dim_tuple(sample_dims, "sample_dims") or ()
    spatial = _as_dim_tuple(spatial_dims, "spatial_dims")
    for param, given in (("sample_dims", samples), ("spatial_dims", spatial or ())):
        unknown = [d for d in given if d not in dims]
        if unknown:
            raise ValueError(
                f"{param} names {', '.join(repr(d) for d in unknown)}, not a dimension of the "
                f"DataArray; its dims are {dims!r}"
            )
        if class_dim in given:
            raise ValueError(f"class_dim {class_dim!r} cannot also be one of the {param} {given!r}")
    if spatial is None:
        spatial = tuple(d for d in dims if d != class_dim and d not in samples)
    else:
        both = [d for d in samples if d in spatial]
        if both:
            raise ValueError(
                f"dims {', '.join(repr(d) for d in both)} are both in sample_dims {samples!r} and "
                f"in spatial_dims {spatial!r}; a dim is either a sample dim or a spatial dim"
            )
        rest = tuple(d for d in dims if d != class_dim and d not in spatial)
        if sample_dims is not None and samples and set(rest) != set(samples):
            missing = [d for d in rest if d not in samples]
            raise ValueError(
                f"dims {', '.join(repr(d) for d in missing)} are neither the class dim, nor in "
                f"sample_dims {samples!r}, nor in spatial_dims {spatial!r}; give only one of "
                "sample_dims and spatial_dims, or list every dim"
            )
        samples = rest
    if not spatial:
        raise ValueError(
            f"no spatial dims left: dims {dims!r} with class_dim {class_dim!r} and sample_dims "
            f"{samples!r}; the metric is computed over at least one spatial dim"
        )
    return (
        tuple(d for d in dims if d in samples),
        tuple(d for d in dims if d in spatial),
    )


# -- output attributes ------------------------------------------------------------
def _class_names(da: xr.DataArray, class_dim: Hashable) -> list[str]:
    nc = da.sizes[class_dim]
    if class_dim in da.coords:
        raw = [str(v) for v in np.asarray(da.coords[class_dim].values).tolist()]
    else:
        raw = [f"{class_dim}_{i}" for i in range(nc)]
    names = []
    for i, name in enumerate(raw):
        name = _WHITESPACE.sub("_", name.strip())
        names.append(name or f"{class_dim}_{i}")
    return names


def _param_attrs(model: RankSEG, solver_params: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "rankseg_metric": model.metric,
        "rankseg_solver": model.solver,
        "rankseg_output_mode": model.output_mode,
    }
    if model.metric != "acc":
        attrs["rankseg_smooth"] = model.smooth
        attrs["rankseg_pruning_prob"] = model.pruning_prob
        if model.empty != "zero":
            attrs["rankseg_empty"] = model.empty
        if model.output_mode == "multiclass":
            attrs["rankseg_unassigned_policy"] = model.unassigned_policy
            if void_label(model) is not None:
                attrs["rankseg_void_index"] = model.void_index
    for key, value in sorted(solver_params.items()):
        attrs.setdefault(f"rankseg_{key}", getattr(model, key, value))
    attrs["rankseg_version"] = rankseg.__version__
    return attrs


_OBJECTIVE = {"dice": "Dice", "iou": "IoU", "acc": "accuracy"}


# -- public API -------------------------------------------------------------------
@overload
def predict(
    da: xr.DataArray,
    *,
    class_dim: Hashable | None = ...,
    sample_dims: Hashable | Iterable[Hashable] | None = ...,
    spatial_dims: Hashable | Iterable[Hashable] | None = ...,
    metric: str = ...,
    smooth: float = ...,
    output_mode: str = ...,
    solver: str | None = ...,
    pruning_prob: float | None = ...,
    return_info: Literal[False] = ...,
    dtype: Any = ...,
    threads_per_task: int = ...,
    spatial_chunks: str = ...,
    max_band_bytes: int = ...,
    **solver_params: Any,
) -> xr.DataArray: ...


@overload
def predict(
    da: xr.DataArray,
    *,
    class_dim: Hashable | None = ...,
    sample_dims: Hashable | Iterable[Hashable] | None = ...,
    spatial_dims: Hashable | Iterable[Hashable] | None = ...,
    metric: str = ...,
    smooth: float = ...,
    output_mode: str = ...,
    solver: str | None = ...,
    pruning_prob: float | None = ...,
    return_info: Literal[True],
    dtype: Any = ...,
    threads_per_task: int = ...,
    spatial_chunks: str = ...,
    max_band_bytes: int = ...,
    **solver_params: Any,
) -> tuple[xr.DataArray, xr.Dataset]: ...


@overload
def predict(
    da: xr.DataArray,
    *,
    class_dim: Hashable | None = ...,
    sample_dims: Hashable | Iterable[Hashable] | None = ...,
    spatial_dims: Hashable | Iterable[Hashable] | None = ...,
    metric: str = ...,
    smooth: float = ...,
    output_mode: str = ...,
    solver: str | None = ...,
    pruning_prob: float | None = ...,
    return_info: bool = ...,
    dtype: Any = ...,
    threads_per_task: int = ...,
    spatial_chunks: str = ...,
    max_band_bytes: int = ...,
    **solver_params: Any,
) -> xr.DataArray | tuple[xr.DataArray, xr.Dataset]: ...


def predict(
    da: xr.DataArray,
    *,
    class_dim: Hashable | None = None,
    sample_dims: Hashable | Iterable[Hashable] | None = None,
    spatial_dims: Hashable | Iterable[Hashable] | None = None,
    metric: str = "dice",
    smooth: float = 0.0,
    output_mode: str = "multiclass",
    solver: str | None = None,
    pruning_prob: float | None = None,
    return_info: bool = False,
    dtype: Any = None,
    threads_per_task: int = 1,
    spatial_chunks: str = "auto",
    max_band_bytes: int = MAX_BAND_BYTES,
    **solver_params: Any,
) -> xr.DataArray | tuple[xr.DataArray, xr.Dataset]:
    """RankSEG prediction for a labeled (xarray) probability map.

    The metric is computed **per sample over the spatial dims**: every combination
    of the sample dims is one image/volume, and its class masks maximize the
    expected Dice/IoU over all of its spatial dims together.  Which dims are
    spatial therefore changes the result (see the tutorial, "Choosing the dims").

    Parameters
    ----------
    da : xarray.DataArray
        float16/float32/float64 probabilities in [0, 1] with a class dim, any dims
        in any order (channel-first ``("case", "class", "z", "y", "x")`` or
        channel-last ``("x", "y", "z", "class")``).  NumPy- or dask-backed.
    class_dim : hashable, optional
        The dim that holds the classes; its coordinate labels (if any) name the
        classes in ``flag_meanings``.  Default: the dim named ``class``, else the one
        dim named ``classes``, ``channel(s)`` or ``label(s)``.
    sample_dims : hashable or sequence of hashable, optional
        Dims over which samples (cases, time steps) are batched; each combination
        is solved independently.  Default (None): the dims named ``case(s)``,
        ``sample(s)``, ``batch``, ``subject(s)`` or ``patient(s)`` when
        ``spatial_dims`` is not given -- a store of several cases is never decided as
        one volume -- else none.  ``()`` makes the whole array one sample.
    spatial_dims : hashable or sequence of hashable, optional
        The dims the metric is computed over.  ``None`` (default) means every dim
        that is neither ``class_dim`` nor in ``sample_dims``.  Giving
        ``spatial_dims`` instead makes the remaining dims sample dims.  Pixels are
        flattened in the input's dim order (this fixes the tie order, SPEC §6).
    metric, smooth, output_mode, solver, pruning_prob, **solver_params
        As for :func:`rankseg.predict` (``unassigned_policy``, ``void_index``,
        ``eps``).  They are checked when ``predict`` is called, also for dask input.
    return_info : bool
        Also return an :class:`xarray.Dataset` with ``tau``, ``threshold``,
        ``score`` and ``pruned`` over ``(*sample_dims, class_dim)`` (Dice/IoU only).
    dtype : integer dtype, optional
        Label dtype (multiclass only); default int64.
    threads_per_task : int
        Threads used by each dask task (dask-backed input only; default 1, dask
        supplies the parallelism).  Raise it when a few big samples run on a
        machine with many cores and few dask threads.
    spatial_chunks : {'auto', 'keep', 'merge'}
        dask-backed input only.  ``'keep'``: decide each sample from its chunks
        (:func:`rankseg.dask.predict`; memory per task is a chunk, not a sample;
        the statistics passes run when ``predict`` is called and the result is a
        lazy write pass).  ``'merge'``: merge the class and spatial chunks so that
        one task holds whole samples (fully lazy).  ``'auto'`` (default): ``'keep'``
        when a spatial dim has more than one chunk, else ``'merge'``.
    max_band_bytes : int
        Chunks kept only: the memory the calling process may spend on the values it
        gathers, default 2 GiB (:func:`rankseg.dask.predict`; the ``'exact'``, BA
        and TRNA solvers gather each row's candidate band and raise a ValueError
        naming the band and the memory it needs past this budget).  Checked always,
        unused by the other paths, which hold whole samples anyway.

    Returns
    -------
    labels : xarray.DataArray
        ``output_mode="multiclass"``: integer labels named ``"labels"`` over the
        sample and spatial dims in the input's order, with their coords, the input's
        attrs (minus those describing probability values, such as ``units``) and
        CF categorical attrs ``flag_values``, ``flag_meanings`` (class labels with
        whitespace replaced by ``_``; ``void`` appended for
        ``unassigned_policy="void"``), ``long_name``, plus the parameters used as
        ``rankseg_*`` attrs.  ``output_mode="multilabel"``: boolean masks named
        ``"masks"`` with the input's dims and coords.
    info : xarray.Dataset
        Only with ``return_info=True``: ``tau`` (int64), ``threshold``,
        ``score`` (float64) and ``pruned`` (bool) over ``(*sample_dims, class_dim)``.

    Raises
    ------
    TypeError
        For a Dataset (the message lists its data variables), a non-DataArray, a
        non-float dtype, or ``out=`` (not supported: write the result with
        ``to_zarr``/``to_netcdf``).
    ValueError
        For unknown dim names, a missing class dim, a dim in both ``sample_dims``
        and ``spatial_dims`` (or the class dim in either), no spatial dim left, and
        every parameter error of :func:`rankseg.predict`.  Invalid values (NaN,
        outside [0, 1]) of dask-backed input raise when the result is computed.

    Notes
    -----
    **dask, chunks kept** (``spatial_chunks='keep'``, the default when a spatial dim
    is chunked): the sample dims are folded into one batch axis and the data goes
    through :func:`rankseg.dask.predict`, whose passes read one chunk per task; the
    info is computed at the call (NumPy-backed).  Invalid values raise at the call,
    naming the sample by its coordinates and the chunk.  Labels, masks, ``tau``,
    ``threshold`` and ``pruned`` equal the in-memory result; ``score`` to rounding.

    **dask, chunks merged** (``spatial_chunks='merge'``): the computation is
    ``xr.apply_ufunc(..., dask="parallelized")`` with the class and spatial dims as
    core dims.  Sample dims may be chunked freely; chunks along the class and
    spatial dims are merged.  One task therefore holds
    ``n x C x prod(spatial)`` input values, where ``n`` is the number of samples in
    its chunk, plus (when the dims must be reordered, e.g. channel-last input) one
    copy of that block in its own dtype, plus the output block (8 bytes per pixel
    for int64 labels, ``C`` bytes per pixel for masks) and about one byte per pixel
    of scratch.  Choose the sample chunks so this fits a worker's memory per thread.
    The result stays lazy until computed and is identical to the in-memory result.
    With ``return_info=True`` the labels and the info come from the same tasks:
    compute them together (``dask.compute(labels, info)``), not one after the other.

    **Threads.** Inside dask tasks the kernels run with ``threads_per_task``
    threads (:func:`rankseg.num_threads`: thread-local, restored after the task),
    under every numba threading layer.  See :mod:`rankseg._xarray_task`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> import rankseg.xarray
    >>> p = np.array([[[0.9, 0.6, 0.2]], [[0.1, 0.4, 0.8]]])   # (class, y, x)
    >>> da = xr.DataArray(p, dims=("class", "y", "x"),
    ...                   coords={"class": ["background", "left lung"]})
    >>> labels = rankseg.xarray.predict(da)
    >>> labels.values
    array([[0, 0, 1]])
    >>> labels.attrs["flag_meanings"]
    'background left_lung'
    """
    da = _check_dataarray(da)
    if "out" in solver_params:
        raise TypeError(
            "out= is not supported by rankseg.xarray.predict; the result is a new DataArray "
            "(write it with .to_zarr()/.to_netcdf(), or np.copyto(out, labels.values))"
        )
    threads_per_task = check_threads(threads_per_task, "threads_per_task")
    class_dim, sample_dims = named_dims(tuple(da.dims), class_dim, sample_dims, spatial_dims)
    samples, spatial = _resolve_dims(da, class_dim, sample_dims, spatial_dims)
    spatial_chunks = check_name(spatial_chunks, "spatial_chunks", ("auto", "keep", "merge"))
    max_band_bytes = check_band_bytes(max_band_bytes)
    params = {
        "metric": metric,
        "smooth": smooth,
        "output_mode": output_mode,
        "solver": solver,
        "pruning_prob": pruning_prob,
        **solver_params,
    }
    model = RankSEG(**params)
    out_dtype = _output_dtype(model, da, class_dim, spatial, return_info, dtype)
    if _keeps_chunks(da, spatial, spatial_chunks):
        params = {**params, "max_band_bytes": max_band_bytes}
        result = _predict_chunked(da, class_dim, spatial, params, return_info, dtype)
    else:
        kw = {"params": params, "return_info": return_info, "dtype": dtype}
        result = _predict_merged(
            da, class_dim, spatial, model, out_dtype, threads_per_task, return_info, kw
        )
    outputs = result if return_info else (result,)
    base = {k: v for k, v in da.attrs.items() if k not in _VALUE_ATTRS}
    run = _param_attrs(model, solver_params)
    preds = _labeled_output(outputs[0], da, class_dim, model, out_dtype, base, run)
    if not return_info:
        return preds
    return preds, _info_dataset(outputs[1:], samples, class_dim, model, base, run)


def _output_dtype(
    model: RankSEG,
    da: xr.DataArray,
    class_dim: Hashable,
    spatial: tuple[Hashable, ...],
    return_info: bool,
    dtype: Any,
) -> np.dtype:
    """Check every remaining parameter now (also for lazy input); the output dtype.

    From the plan of a batch of the same class/spatial shape (no data read).
    """
    shape = (0, da.sizes[class_dim], *(da.sizes[d] for d in spatial))
    return model.plan(shape, da.dtype, return_info=return_info, out_dtype=dtype).out_dtype


def _keeps_chunks(da: xr.DataArray, spatial: tuple[Hashable, ...], spatial_chunks: str) -> bool:
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


def _labeled_output(
    preds: xr.DataArray,
    da: xr.DataArray,
    class_dim: Hashable,
    model: RankSEG,
    out_dtype: np.dtype,
    base: dict[Hashable, Any],
    run: dict[str, Any],
) -> xr.DataArray:
    """Name the labels (CF categorical attrs) or masks; put them in the input's dim order."""
    objective = _OBJECTIVE[model.metric]
    if model.output_mode != "multiclass":
        preds = preds.transpose(*da.dims)
        preds.attrs = {
            **base,
            "long_name": f"class masks maximizing the expected {objective} (RankSEG)",
            **run,
        }
        preds.name = "masks"
        return preds
    names = _class_names(da, class_dim)
    values = label_values(da.sizes[class_dim], model)
    if void_label(model) is not None:
        names.append("void")
    preds = preds.transpose(*(d for d in da.dims if d != class_dim))
    preds.attrs = {
        **base,
        "long_name": f"class labels maximizing the expected {objective} (RankSEG)",
        "flag_values": np.array(values, dtype=out_dtype),
        "flag_meanings": " ".join(names),
        **run,
    }
    preds.name = "labels"
    return preds


def _info_dataset(
    fields: Iterable[xr.DataArray],
    samples: tuple[Hashable, ...],
    class_dim: Hashable,
    model: RankSEG,
    base: dict[Hashable, Any],
    run: dict[str, Any],
) -> xr.Dataset:
    """Gather the per-(sample, class) info into a Dataset of described variables."""
    objective = _OBJECTIVE[model.metric]
    descriptions = {
        "tau": "selected volume (pixels) of the class mask before multiclass resolution",
        "threshold": "smallest selected probability (NaN for an empty mask)",
        "score": f"solver objective at the selected volume: estimated expected {objective}",
        "pruned": "class skipped because its largest probability is <= pruning_prob",
    }
    info_vars = {}
    for field, arr in zip(_INFO_FIELDS, fields, strict=True):
        arr = arr.transpose(*samples, class_dim)
        arr.attrs = {"long_name": descriptions[field]}
        info_vars[field] = arr.rename(field)
    return xr.Dataset(info_vars, attrs={**base, **run})


def _predict_merged(
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
        out_core += [[class_dim]] * len(_INFO_FIELDS)
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
        _predict_block,
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
            "where": _Where(da, loop, class_dim),
            **kw,
        },
    )


def _predict_chunked(
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
    where = _Where(da, loop, class_dim)
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
    for f in _INFO_FIELDS:
        field = per_row.copy(data=getattr(info, f).reshape(per_row.shape)).compute()
        field.encoding = {}
        fields.append(field)
    return (out, *fields)


@xr.register_dataarray_accessor("rankseg")
class RankSEGAccessor:
    """The ``da.rankseg`` accessor, registered when :mod:`rankseg.xarray` is imported.

    Parameters
    ----------
    da : xarray.DataArray
        The probability map.
    """

    def __init__(self, da: xr.DataArray) -> None:
        self._obj = da

    def predict(self, **kwargs: Any) -> xr.DataArray | tuple[xr.DataArray, xr.Dataset]:
        """Forward to :func:`rankseg.xarray.predict` with this DataArray.

        Parameters
        ----------
        **kwargs
            Every keyword of :func:`rankseg.xarray.predict`.

        Returns
        -------
        xarray.DataArray or (xarray.DataArray, xarray.Dataset)
            As :func:`rankseg.xarray.predict`.
        """
        return predict(self._obj, **kwargs)


@xr.register_dataset_accessor("rankseg")
class _DatasetAccessor:
    """``ds.rankseg.predict`` raises a TypeError naming the variables to pick from."""

    def __init__(self, ds: xr.Dataset) -> None:
        self._obj = ds

    def predict(self, **kwargs: Any) -> xr.DataArray | tuple[xr.DataArray, xr.Dataset]:
        """Raise: a Dataset holds several variables, pick the probabilities first."""
        ds: Any = self._obj  # predict's own check raises the TypeError for a Dataset
        return predict(ds, **kwargs)
