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


def test_xarray_takes_sample_and_class_dims_from_their_names():
    xr = pytest.importorskip("xarray")
    from rankseg import xarray as rxr

    p = probs(seed=1, shape=(3, 4, 5))  # (case, class, y, x) after the move
    arr = xr.DataArray(p, dims=("case", "channel", "y", "x"))
    got = rxr.predict(arr)  # no class_dim, no sample_dims: taken from the names
    np.testing.assert_array_equal(got.values, rankseg.predict(p))
    assert got.dims == ("case", "y", "x")
    whole = rxr.predict(arr, sample_dims=())  # explicitly one sample: the old reading
    np.testing.assert_array_equal(whole.values, rankseg.predict(np.moveaxis(p, 1, 0)[None])[0])
    with pytest.raises(ValueError, match=r"cannot tell the class dim.*pass class_dim"):
        rxr.predict(xr.DataArray(p, dims=("a", "b", "y", "x")))


def test_cli_takes_the_case_dim_of_a_store_without_batch(tmp_path, capsys):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("zarr")
    from rankseg.__main__ import main

    rng = np.random.default_rng(2)
    z = rng.normal(size=(3, 4, 2, 5, 6)) * 2  # (case, class, z, y, x)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    da = xr.DataArray(p, dims=("case", "class", "z", "y", "x"), name="probabilities")
    da.to_dataset().to_zarr(tmp_path / "p.zarr", consolidated=False)
    code = main(["predict", str(tmp_path / "p.zarr"), "-o", str(tmp_path / "o")])
    assert code == 0, capsys.readouterr().err
    got = xr.open_zarr(tmp_path / "o" / "p.zarr", consolidated=False)["labels"]
    assert got.dims == ("case", "z", "y", "x")
    np.testing.assert_array_equal(got.values, rankseg.predict(p))
