"""zarr stores and netCDF files, through xarray and :mod:`rankseg.xarray`."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from rankseg.io._atomic import atomic_write, check_folder
from rankseg.io._naming import detect_format


def _xarray_adapter() -> Any:
    try:
        import rankseg.xarray as rxr
    except ImportError as exc:
        raise ImportError(
            "zarr/netCDF input needs the xarray adapter rankseg.xarray (and xarray installed: "
            "pip install 'rankseg-numba[xarray]'); it is not available in this installation"
        ) from exc
    return rxr


def load_dataarray(
    path: str | os.PathLike[str], *, format: str = "auto", key: str | None = None
) -> Any:
    """Open a zarr store or netCDF file lazily as an :class:`xarray.DataArray`.

    Parameters
    ----------
    path : str or path-like
        A ``.zarr`` store or a netCDF file.
    format : {'auto', 'zarr', 'netcdf'}
        The format (``'auto'``: from the name).
    key : str, optional
        The variable (default: ``probabilities``, else the only data variable).

    Returns
    -------
    xarray.DataArray
        The variable, not loaded (zarr stores are dask-backed); predict it with
        :func:`rankseg.xarray.predict`.

    Raises
    ------
    ImportError
        If xarray or the adapter :mod:`rankseg.xarray` is missing.
    KeyError
        If the variable is missing.
    ValueError
        If the format is not zarr or netCDF.
    """
    _xarray_adapter()
    import xarray as xr

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    fmt = detect_format(p) if format == "auto" else format
    if fmt not in ("zarr", "netcdf"):
        raise ValueError(f"load_dataarray reads zarr or netCDF; got format {fmt!r}")
    if fmt == "zarr":
        try:  # explicit, so xarray does not warn about the fallback
            ds = xr.open_zarr(p, consolidated=True)
        except Exception:
            ds = xr.open_zarr(p, consolidated=False)
    else:
        ds = xr.open_dataset(p)
    names = [str(n) for n in ds.data_vars]
    if key is None:
        if "probabilities" in names:
            key = "probabilities"
        elif len(names) == 1:
            key = names[0]
    if key is None or key not in names:
        raise KeyError(
            f"no {'probabilities' if key is None else repr(key)} variable in the dataset; it "
            f"holds {', '.join(repr(n) for n in names) or 'nothing'} (name one with --key)"
        )
    return ds[key]


def _netcdf4_writer() -> bool:
    """Whether xarray can write netCDF4 (netCDF4 or h5netcdf installed); else netCDF3 (scipy)."""
    import importlib.util

    return any(importlib.util.find_spec(m) is not None for m in ("netCDF4", "h5netcdf"))


#: netCDF3 has no unsigned integers: each is stored as the next wider signed type
_NC3_SIGNED = {"u1": "i2", "u2": "i4", "u4": "i8", "u8": "i8"}


def _netcdf3_compatible(ds: Any) -> Any:
    """Widen unsigned label data (and their ``flag_values``) for a netCDF3 file.

    netCDF3 (xarray's scipy writer, the only one without netCDF4 or h5netcdf) holds
    byte, short and int but no unsigned types: xarray would cast uint8 to int8 and
    fail on labels from 128 up (a ``void_index`` of 255, 128+ classes).  Labels are
    widened to the next signed type instead, which holds every value exactly.
    """
    import numpy as np

    def widen(a: Any) -> Any:
        key = f"{a.dtype.kind}{a.dtype.itemsize}"
        return a.astype(_NC3_SIGNED[key]) if key in _NC3_SIGNED else a

    out = ds.copy()
    for name in list(out.variables):
        var = out[name]
        attrs = dict(var.attrs)
        fv = attrs.get("flag_values")
        if fv is not None:
            attrs["flag_values"] = widen(np.asarray(fv))
        if var.dtype.kind == "u":
            out[name] = widen(var).assign_attrs(attrs)
        else:
            out[name].attrs = attrs
    return out


def _write_zarr(ds: Any, tmp: Path) -> None:
    """Write ``ds`` to the store ``tmp``; when this raises, no chunk write is still running.

    A dask-backed dataset is written by dask's threaded scheduler on a pool of our
    own, which is shut down (waiting for the running chunk writes) before an error
    propagates -- dask's shared pool would keep writing chunks into the store while
    the caller removes it.  A distributed client or another configured scheduler is
    used as it is, and after an error the partial store is removed until it stays
    gone (:func:`_remove_store`).
    """
    from concurrent.futures import ThreadPoolExecutor

    # not consolidated: zarr 3 warns that consolidated metadata is outside its spec
    if not ds.chunks:
        ds.to_zarr(tmp, mode="w", consolidated=False)
        return
    import dask

    writes = ds.to_zarr(tmp, mode="w", consolidated=False, compute=False)
    if _default_client() is not None or dask.config.get("scheduler", None) not in (
        None,
        "threads",
        "threading",
    ):
        try:
            dask.compute(writes)
        except BaseException:
            _remove_store(tmp)  # chunk writes may still be running elsewhere
            raise
        return
    workers = dask.config.get("num_workers", None) or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:  # exit waits for running writes
        dask.compute(writes, scheduler="threads", pool=pool)


def _default_client() -> Any:
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # no client
        return None


def _remove_store(tmp: Path, settle: float = 0.5, limit: float = 10.0) -> None:
    """Remove a partial store, again until it has stayed gone for ``settle`` seconds."""
    import shutil
    import time

    end = time.monotonic() + limit
    gone_since = None
    while time.monotonic() < end:
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp.exists():
            gone_since = None
        elif gone_since is None:
            gone_since = time.monotonic()
        elif time.monotonic() - gone_since >= settle:
            return
        time.sleep(0.05)


def save_dataarray(path: str | os.PathLike[str], da: Any, *, format: str = "auto") -> Path:
    """Write a DataArray (labels or masks) to a zarr store or netCDF file atomically.

    Parameters
    ----------
    path : str or path-like
        ``.zarr`` store or ``.nc`` file.
    da : xarray.DataArray
        The result of :func:`rankseg.xarray.predict` (lazy input is computed while
        writing, chunk by chunk).
    format : {'auto', 'zarr', 'netcdf'}
        The format (``'auto'``: from the name).

    Returns
    -------
    Path
        The store or file written.

    Notes
    -----
    netCDF is written as netCDF4 when the ``netCDF4`` or ``h5netcdf`` package is
    installed; otherwise xarray writes netCDF3, which has no unsigned integers, and
    unsigned labels are stored as the next wider signed type (uint8 as int16).
    A zarr store is a folder: it is written under a temporary name and renamed;
    an existing store of the same name is first renamed aside and removed after
    the new one is in place.
    """
    import shutil

    p = Path(path)
    fmt = detect_format(p) if format == "auto" else format
    ds = da.to_dataset(name=da.name or "labels")
    if fmt == "netcdf":
        if not _netcdf4_writer():
            ds = _netcdf3_compatible(ds)
        return atomic_write(p, lambda tmp: ds.to_netcdf(tmp))
    if fmt != "zarr":
        raise ValueError(f"save_dataarray writes zarr or netCDF; got format {fmt!r}")
    check_folder(p)  # as atomic_write: never create folders on the way
    token = uuid.uuid4().hex[:12]
    tmp = p.with_name(f".{p.name}.rankseg-tmp-{token}")
    old = p.with_name(f".{p.name}.rankseg-old-{token}")
    moved = False
    try:
        _write_zarr(ds, tmp)
        if p.exists() or p.is_symlink():
            os.replace(p, old)
            moved = True
        os.replace(tmp, p)
    except BaseException:
        if moved and not p.exists():
            os.replace(old, p)  # the old store back under its name
        shutil.rmtree(tmp, ignore_errors=True)  # no chunk write is running any more
        raise
    if moved:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:  # a file (or link) of the same name
            old.unlink(missing_ok=True)
    return p
