"""The dims of :func:`rankseg.xarray.predict`: the input check, dim naming and resolution.

Which dim holds the classes, which are samples and which are spatial: named by the
caller, or recognized by their names (:data:`rankseg._policies.CLASS_DIM_NAMES`,
:data:`rankseg._policies.SAMPLE_DIM_NAMES`), and checked against the DataArray.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import xarray as xr

from rankseg._policies import CLASS_DIM_NAMES, FLOAT_DTYPES, SAMPLE_DIM_NAMES


def _as_dim_tuple(value: Any, param: str) -> tuple[Hashable, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        return (value,)
    dims = tuple(value)
    if len(set(dims)) != len(dims):
        raise ValueError(f"{param} lists a dimension more than once: {dims!r}")
    return dims


def check_dataarray(da: Any) -> xr.DataArray:
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


def resolve_dims(
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
