"""xarray adapter: labeled probability maps in, labeled masks or label maps out.

Importing this package registers the ``.rankseg`` accessor on ``xarray.DataArray``::

    import rankseg.xarray  # noqa: F401  (registers da.rankseg)

    labels = da.rankseg.predict(class_dim="class", sample_dims="case")

The adapter is a thin layer over :func:`rankseg.predict`: it moves the class and
spatial dims to the end (lazily), folds the sample dims into the batch axis, calls
the NumPy API and rebuilds a DataArray with the input's dims, coords and attrs.
dask-backed input stays lazy (``xr.apply_ufunc(..., dask="parallelized")``).

The package's rooms: this module holds :func:`predict` (checks, then route, then
labels) and the accessors; :mod:`rankseg.xarray._dims` the input check and which dim
is which; :mod:`rankseg.xarray._routes` the two ways the data reaches the NumPy API
(whole samples through ``apply_ufunc``, or the chunks kept through
:func:`rankseg.dask.predict`); :mod:`rankseg.xarray._blocks` what one ``apply_ufunc``
block (one dask task) runs, the threading policy included; and
:mod:`rankseg.xarray._attrs` the outputs' names and attributes.  What a dask task runs
lives here, not under :mod:`rankseg.dask`, because importing :mod:`rankseg.dask`
imports dask, which NumPy-backed DataArrays (the ``xarray`` extra) do not need.
"""

from __future__ import annotations

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

from rankseg._api import RankSEG
from rankseg._config import MAX_BAND_BYTES
from rankseg._validation import check_band_bytes, check_name, check_threads
from rankseg.xarray._attrs import VALUE_ATTRS, info_dataset, labeled_output, param_attrs
from rankseg.xarray._dims import check_dataarray, named_dims, resolve_dims
from rankseg.xarray._routes import keeps_chunks, predict_chunked, predict_merged

__all__ = ["RankSEGAccessor", "predict"]


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
    under every numba threading layer.  See :mod:`rankseg.xarray._blocks`.

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
    da = check_dataarray(da)
    if "out" in solver_params:
        raise TypeError(
            "out= is not supported by rankseg.xarray.predict; the result is a new DataArray "
            "(write it with .to_zarr()/.to_netcdf(), or np.copyto(out, labels.values))"
        )
    threads_per_task = check_threads(threads_per_task, "threads_per_task")
    class_dim, sample_dims = named_dims(tuple(da.dims), class_dim, sample_dims, spatial_dims)
    samples, spatial = resolve_dims(da, class_dim, sample_dims, spatial_dims)
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
    if keeps_chunks(da, spatial, spatial_chunks):
        params = {**params, "max_band_bytes": max_band_bytes}
        result = predict_chunked(da, class_dim, spatial, params, return_info, dtype)
    else:
        kw = {"params": params, "return_info": return_info, "dtype": dtype}
        result = predict_merged(
            da, class_dim, spatial, model, out_dtype, threads_per_task, return_info, kw
        )
    outputs = result if return_info else (result,)
    base = {k: v for k, v in da.attrs.items() if k not in VALUE_ATTRS}
    run = param_attrs(model, solver_params)
    preds = labeled_output(outputs[0], da, class_dim, model, out_dtype, base, run)
    if not return_info:
        return preds
    return preds, info_dataset(outputs[1:], samples, class_dim, model, base, run)


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
