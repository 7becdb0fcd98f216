"""Inputs that used to be loaded or misread silently: dask collections, unknown chunk
sizes, masked arrays (issue: a command line that never writes a wrong file, part 4)."""

import numpy as np
import pytest

import rankseg


def probs(seed=0, shape=(2, 8, 8)):
    p = np.random.default_rng(seed).dirichlet(np.ones(3), size=shape)
    return np.moveaxis(p, -1, 1)  # (B, C, Y, X)


def test_predict_refuses_a_dask_array_naming_the_dask_api():
    da = pytest.importorskip("dask.array")
    x = da.from_array(probs(), chunks=(1, 3, 4, 8))
    with pytest.raises(TypeError, match=r"lazy dask collection.*rankseg\.dask\.predict"):
        rankseg.predict(x)
    # the same array, computed, is fine; rankseg.dask.predict gives the same labels
    from rankseg import dask as rdask

    want = rankseg.predict(x.compute())
    np.testing.assert_array_equal(rdask.predict(x).compute(), want)


def test_predict_refuses_a_dask_backed_dataarray_naming_the_xarray_api():
    xr = pytest.importorskip("xarray")
    pytest.importorskip("dask.array")
    arr = xr.DataArray(probs(), dims=("b", "class", "y", "x")).chunk({"b": 1})
    with pytest.raises(TypeError, match=r"rankseg\.xarray\.predict"):
        rankseg.predict(arr)
    # a DataArray in memory is an array like any other
    np.testing.assert_array_equal(rankseg.predict(arr.compute()), rankseg.predict(probs()))


def test_unknown_chunk_sizes_name_compute_chunk_sizes():
    da = pytest.importorskip("dask.array")
    xr = pytest.importorskip("xarray")
    from rankseg import dask as rdask
    from rankseg import xarray as rxr

    x = da.from_array(probs(), chunks=(1, 3, 4, 8))
    y = x[x[:, 0, 0, 0] >= 0]  # boolean indexing: the sizes along axis 0 are unknown
    assert any(c != c for c in y.chunks[0])
    with pytest.raises(ValueError, match=r"compute_chunk_sizes\(\)"):
        rdask.predict(y)
    arr = xr.DataArray(y, dims=("b", "class", "y", "x"))
    with pytest.raises(ValueError, match=r"unknown chunk sizes.*compute_chunk_sizes\(\)"):
        rxr.predict(arr, class_dim="class", sample_dims="b")


def test_masked_arrays():
    p = probs()
    masked = np.ma.masked_array(p, mask=p < 0.1)
    with pytest.raises(ValueError, match=r"masked array with masked values.*filled"):
        rankseg.predict(masked)
    # no masked value: the data are used as they are
    unmasked = np.ma.masked_array(p, mask=np.zeros_like(p, dtype=bool))
    np.testing.assert_array_equal(rankseg.predict(unmasked), rankseg.predict(p))
    np.testing.assert_array_equal(rankseg.predict(np.ma.masked_array(p)), rankseg.predict(p))
