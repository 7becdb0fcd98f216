"""A layout that is not given and not in the file's metadata is refused, naming the file
and the flag to pass (issue: a command line that never writes a wrong file, part 1)."""

import numpy as np
import pytest

import rankseg
from rankseg.cli import main
from rankseg.io import load_probabilities


def softmax(rng, shape, axis):
    z = rng.normal(size=shape) * 2
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_a_5d_array_needs_batch_or_class_axis(tmp_path, capsys):
    rng = np.random.default_rng(0)
    # sigmoid maps (B, C, Z, Y, X): no class-sum check could catch a wrong reading
    p = rng.random((3, 2, 4, 5, 6))
    np.save(tmp_path / "p.npy", p)
    why = (
        r"the 5-D array \(3, 2, 4, 5, 6\) of p\.npy .*batch=True \(--batch\).*"
        r"class_axis=0 \(--class-axis 0\)"
    )
    with pytest.raises(ValueError, match=why):
        load_probabilities(tmp_path / "p.npy")
    code = main(["predict", str(tmp_path / "p.npy"), "-o", str(tmp_path / "o"),
                 "--output-mode", "multilabel"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and f"error: {tmp_path / 'p.npy'}: " in err and "--batch" in err
    assert not (tmp_path / "o" / "p.npy").exists()
    # told: a batch of three 3-D cases, or one case with four spatial axes
    code = main(["predict", str(tmp_path / "p.npy"), "-o", str(tmp_path / "o"),
                 "--output-mode", "multilabel", "--batch", "-q"])  # fmt: skip
    assert code == 0
    got = np.load(tmp_path / "o" / "p.npy")
    np.testing.assert_array_equal(got, rankseg.predict(p, output_mode="multilabel"))
    pm = load_probabilities(tmp_path / "p.npy", class_axis=0)
    assert pm.probs.shape == (1, 3, 2, 4, 5, 6)
    # 4-D stays (C, Z, Y, X) as documented (nnU-Net's layout; multiclass is checked by sums)
    np.save(tmp_path / "q.npy", softmax(rng, (3, 4, 5, 6), axis=0))
    assert load_probabilities(tmp_path / "q.npy").probs.shape == (1, 3, 4, 5, 6)


@pytest.fixture
def store(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("zarr")

    def write(name, p, dims):
        path = tmp_path / name
        xr.DataArray(p, dims=dims, name="probabilities").to_dataset().to_zarr(
            path, consolidated=False
        )
        return path

    return write


def test_a_store_without_a_class_dim_name_needs_class_axis(store, tmp_path, capsys):
    xr = pytest.importorskip("xarray")
    rng = np.random.default_rng(1)
    p = softmax(rng, (3, 5, 6), axis=0)
    path = store("a.zarr", p, ("c", "h", "w"))
    code = main(["predict", str(path), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and f"error: {path}: " in err
    assert "no dim of ('c', 'h', 'w') is named class/channel/label" in err
    assert "--class-axis N" in err and not (tmp_path / "o" / "a.zarr").exists()
    code = main(["predict", str(path), "-o", str(tmp_path / "o"), "--class-axis", "0", "-q"])
    assert code == 0
    got = xr.open_zarr(tmp_path / "o" / "a.zarr", consolidated=False)["labels"].values
    np.testing.assert_array_equal(got, rankseg.predict(p[None])[0])
    # with --batch the layout is (B, C, ...): the class dim is the second
    code = main(["predict", str(path), "-o", str(tmp_path / "b"), "--batch", "-q",
                 "--output-mode", "multilabel"])  # fmt: skip
    assert code == 0


def test_a_store_of_cases_without_a_case_dim_name_needs_batch(store, tmp_path, capsys):
    xr = pytest.importorskip("xarray")
    rng = np.random.default_rng(2)
    p = rng.random((3, 2, 4, 5, 6))  # sigmoid maps: no class-sum check to catch it
    path = store("s.zarr", p, ("n", "class", "z", "y", "x"))
    args = ["predict", str(path), "-o", str(tmp_path / "o"), "--output-mode", "multilabel"]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 1 and f"error: {path}: " in err
    assert "'n' may hold cases or be a spatial axis: pass --batch" in err
    assert main([*args, "--batch", "-q"]) == 0
    got = xr.open_zarr(tmp_path / "o" / "s.zarr", consolidated=False)["masks"]
    np.testing.assert_array_equal(got.values, rankseg.predict(p, output_mode="multilabel"))
    # dims named as spatial / time axes: one 4-D volume, as named
    path = store("t.zarr", p[0], ("class", "t", "z", "y"))
    assert main(["predict", str(path), "-o", str(tmp_path / "t"), "-q",
                 "--output-mode", "multilabel"]) == 0  # fmt: skip
    # calibrate reads stores the same way: the same refusal, naming the store
    np.save(tmp_path / "y.npy", (p[:, 0] > 0.5).astype(np.uint8))
    code = main(["calibrate", str(tmp_path / "s.zarr"), "--target", str(tmp_path / "y.npy"),
                 "--output-mode", "multilabel", "-o", str(tmp_path / "c.json")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and str(tmp_path / "s.zarr") in err and "pass --batch" in err
