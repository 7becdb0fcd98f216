"""rankseg.io: readers, writers, layouts, geometry and atomic writes."""

import json
import os
import pickle

import numpy as np
import pytest

from rankseg import io as rio
from rankseg import predict

nib = pytest.importorskip("nibabel")


def softmax(rng, shape, axis=0, dtype=np.float32):
    x = rng.standard_normal(shape) * 3
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(dtype)


# ------------------------------------------------------------------------ naming


def test_case_name_and_detect_format(tmp_path):
    assert rio.case_name("a/b/case_01.nii.gz") == "case_01"
    assert rio.case_name("x.y.npy") == "x.y"
    assert rio.case_name("store.zarr") == "store"
    assert rio.detect_format("a.npy") == "npy"
    assert rio.detect_format(tmp_path / "a.npz") == "npz"
    assert rio.detect_format("a.NII.GZ") == "nifti"
    assert rio.detect_format("a.nii") == "nifti"
    assert rio.detect_format("a.zarr") == "zarr"
    assert rio.detect_format("a.nc") == "netcdf"
    (tmp_path / "dataset.json").write_text("{}")
    assert rio.detect_format(tmp_path / "a.npz") == "nnunet"
    with pytest.raises(ValueError, match=r"unrecognized file type '\.txt'.*--format"):
        rio.detect_format("a.txt")


def test_find_inputs(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("b.npy", "a.npz", "c.nii.gz", "notes.txt", ".a.rankseg-tmp-1.npy"):
        (plain / name).write_bytes(b"")
    (plain / "s.zarr").mkdir()
    got = rio.find_inputs([plain])
    assert [(p.name, f) for p, f in got] == [
        ("a.npz", "npz"),
        ("b.npy", "npy"),
        ("c.nii.gz", "nifti"),
        ("s.zarr", "zarr"),
    ]
    assert [p.name for p, _ in rio.find_inputs([plain], "npy")] == ["b.npy"]
    # nnU-Net folder: only the CASE.npz files; duplicates removed; missing paths kept
    nn = tmp_path / "nn"
    nn.mkdir()
    for name in ("c1.npz", "c1.pkl", "c1.nii.gz", "c2.npz", "plans.json"):
        (nn / name).write_bytes(b"")
    got = rio.find_inputs([nn, nn / "c1.npz", tmp_path / "missing.npy"])
    assert [(p.name, f) for p, f in got] == [
        ("c1.npz", "nnunet"),
        ("c2.npz", "nnunet"),
        ("missing.npy", "auto"),
    ]


# ------------------------------------------------------------------ npy and npz


def test_npy_case_layouts(rng, tmp_path):
    p = softmax(rng, (3, 4, 5))
    np.save(tmp_path / "case.npy", p)
    pm = rio.load_probabilities(tmp_path / "case.npy")
    assert pm.probs.shape == (1, 3, 4, 5) and isinstance(pm.probs, np.memmap)
    assert pm.name == "case" and pm.output_name == "case.npy" and not pm.batch
    np.testing.assert_array_equal(pm.probs[0], p)
    # class axis last
    np.save(tmp_path / "last.npy", np.moveaxis(p, 0, -1))
    pm2 = rio.load_probabilities(tmp_path / "last.npy", class_axis=-1)
    assert pm2.class_axis == 2
    np.testing.assert_array_equal(pm2.probs, pm.probs)
    # a batch is never guessed from ndim
    batch = softmax(rng, (2, 3, 4, 5), axis=1)
    np.save(tmp_path / "batch.npy", batch)
    assert rio.load_probabilities(tmp_path / "batch.npy").probs.shape == (1, 2, 3, 4, 5)
    pb = rio.load_probabilities(tmp_path / "batch.npy", batch=True)
    assert pb.probs.shape == (2, 3, 4, 5) and pb.batch and pb.class_axis == 1


def test_npz_keys(rng, tmp_path):
    p = softmax(rng, (2, 6), dtype=np.float16)
    np.savez(tmp_path / "v2.npz", probabilities=p, other=p)
    np.savez(tmp_path / "v1.npz", softmax=p)
    np.savez(tmp_path / "mine.npz", x=p)
    for name in ("v2", "v1"):
        pm = rio.load_probabilities(tmp_path / f"{name}.npz")
        assert pm.probs.dtype == np.float16 and pm.probs.shape == (1, 2, 6)
    assert rio.load_probabilities(tmp_path / "mine.npz", key="x").probs.shape == (1, 2, 6)
    with pytest.raises(KeyError, match=r"no 'probabilities' or 'softmax' array.*'x'.*--key"):
        rio.load_probabilities(tmp_path / "mine.npz")
    with pytest.raises(KeyError, match="no array 'y'"):
        rio.load_probabilities(tmp_path / "mine.npz", key="y")


def test_load_errors(tmp_path):
    np.save(tmp_path / "labels.npy", np.zeros((2, 3), np.uint8))
    np.save(tmp_path / "flat.npy", np.zeros(3, np.float32))
    np.save(tmp_path / "b.npy", np.zeros((2, 3, 4), np.float32))
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    with pytest.raises(TypeError, match=r"dtype uint8.*label map rather than probabilities"):
        rio.load_probabilities(tmp_path / "labels.npy")
    with pytest.raises(ValueError, match=r"shape \(C, \*spatial\).*\(3,\)"):
        rio.load_probabilities(tmp_path / "flat.npy")
    with pytest.raises(ValueError, match="batch axis"):
        rio.load_probabilities(tmp_path / "b.npy", batch=True, class_axis=0)
    with pytest.raises(ValueError, match="out of range"):
        rio.load_probabilities(tmp_path / "b.npy", class_axis=3)
    with pytest.raises(ValueError, match="cannot read the .npy"):
        rio.load_probabilities(tmp_path / "junk.npy")
    with pytest.raises(FileNotFoundError, match="no such file"):
        rio.load_probabilities(tmp_path / "none.npy")
    with pytest.raises(ValueError, match="unknown format 'tiff'"):
        rio.load_probabilities(tmp_path / "b.npy", format="tiff")
    with pytest.raises(ValueError, match="batch applies"):
        rio.load_probabilities(tmp_path / "b.npy", format="nifti", batch=True)
    with pytest.raises(ValueError, match="load_dataarray"):
        rio.load_probabilities(tmp_path / "b.npy", format="zarr")


def test_input_is_not_modified(rng, tmp_path):
    p = softmax(rng, (3, 5, 5))
    np.save(tmp_path / "case.npy", p)
    before = (tmp_path / "case.npy").read_bytes()
    pm = rio.load_probabilities(tmp_path / "case.npy")
    rio.save_labels(tmp_path / "out.npy", predict(pm.probs), like=pm)
    assert (tmp_path / "case.npy").read_bytes() == before


# ------------------------------------------------------------------------ writing


def test_save_labels_npy_npz_round_trip(rng, tmp_path):
    p = softmax(rng, (3, 4, 5))
    np.save(tmp_path / "case.npy", np.moveaxis(p, 0, 1))  # class axis 1
    pm = rio.load_probabilities(tmp_path / "case.npy", class_axis=1)
    labels = predict(pm.probs)
    out = rio.save_labels(tmp_path / "lab.npy", labels, like=pm)
    got = np.load(out)
    assert got.dtype == np.uint8 and got.shape == (4, 5)
    np.testing.assert_array_equal(got, labels[0])
    # masks go back to the stored class axis; npz key "masks"
    masks = predict(pm.probs, output_mode="multilabel")
    rio.save_labels(tmp_path / "m.npz", masks, like=pm)
    with np.load(tmp_path / "m.npz") as f:
        assert f.files == ["masks"] and f["masks"].dtype == bool
        np.testing.assert_array_equal(f["masks"], np.moveaxis(masks[0], 0, 1))
    # explicit dtype; too small a dtype is an error; no like: stored as is
    rio.save_labels(tmp_path / "l16.npz", labels, like=pm, dtype="uint16")
    assert rio.load_labels(tmp_path / "l16.npz").dtype == np.uint16
    with pytest.raises(ValueError, match="cannot hold the labels 0..300"):
        rio.save_labels(tmp_path / "x.npy", np.array([0, 300]), dtype=np.uint8)
    with pytest.raises(TypeError, match="integer dtype"):
        rio.save_labels(tmp_path / "x.npy", np.array([0, 3]), dtype=np.float32)
    with pytest.raises(TypeError, match="integer label maps or boolean masks"):
        rio.save_labels(tmp_path / "x.npy", np.array([0.5]))
    with pytest.raises(ValueError, match="unknown suffix '.png'"):
        rio.save_labels(tmp_path / "x.png", np.array([0, 3]))
    with pytest.raises(ValueError, match="labels have shape"):
        rio.save_labels(tmp_path / "x.npy", labels[:, :2], like=pm)
    rio.save_labels(tmp_path / "raw.npy", np.array([[0, 1000]], dtype=np.int64))
    assert np.load(tmp_path / "raw.npy").dtype == np.uint16
    assert sorted(f.name for f in tmp_path.iterdir() if f.name.startswith(".")) == []


def test_smallest_label_dtype():
    assert rio.smallest_label_dtype(1) == np.uint8
    assert rio.smallest_label_dtype(255) == np.uint8
    assert rio.smallest_label_dtype(65535) == np.uint16
    assert rio.smallest_label_dtype(65536) == np.uint32
    assert rio.smallest_label_dtype(127, -1) == np.int8
    assert rio.smallest_label_dtype(255, -1) == np.int16


def test_atomic_write_failure_leaves_nothing(tmp_path):
    def bad(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        rio.atomic_write(tmp_path / "out.npy", bad)
    assert list(tmp_path.iterdir()) == []
    # an existing file is kept intact by a failed write, and replaced by a good one
    (tmp_path / "out.npy").write_bytes(b"old")
    with pytest.raises(OSError):
        rio.atomic_write(tmp_path / "out.npy", bad)
    assert (tmp_path / "out.npy").read_bytes() == b"old"
    seen = []
    rio.atomic_write(
        tmp_path / "out.nii.gz", lambda tmp: seen.append(tmp.name) or tmp.write_bytes(b"x")
    )
    assert seen[0].startswith(".out.rankseg-tmp-") and seen[0].endswith(".nii.gz")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out.nii.gz", "out.npy"]


# -------------------------------------------------------------------------- NIfTI


def nifti_probs(rng, tmp_path, name="p.nii.gz", shape=(5, 4, 3, 3)):
    p = softmax(rng, shape, axis=-1)
    aff = np.array([[0.0, -2.0, 0, 10], [1.5, 0, 0, -5], [0, 0, 3.0, 7], [0, 0, 0, 1]])
    img = nib.Nifti1Image(p, aff)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(aff, code=1)
    img.header.set_sform(aff, code=2)
    img.header["descrip"] = b"probabilities"
    nib.save(img, tmp_path / name)
    return p, img


def test_nifti_geometry_kept(rng, tmp_path):
    p, img = nifti_probs(rng, tmp_path)
    pm = rio.load_probabilities(tmp_path / "p.nii.gz")
    assert pm.format == "nifti" and pm.probs.shape == (1, 3, 5, 4, 3) and pm.class_axis == 3
    labels = predict(pm.probs)
    rio.save_labels(tmp_path / "out.nii.gz", labels, like=pm)
    out = nib.load(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(out.affine, img.affine)
    assert out.header.get_qform(coded=True)[1] == 1 and out.header.get_sform(coded=True)[1] == 2
    assert out.header.get_zooms() == img.header.get_zooms()[:3]
    assert out.header.get_xyzt_units() == ("mm", "sec")
    assert out.header["descrip"] == b"probabilities"
    assert out.get_data_dtype() == np.uint8 and out.header.get_intent()[0] == "label"
    assert out.dataobj.slope == 1 and out.dataobj.inter == 0
    assert float(out.header["cal_max"]) == labels.max()
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), labels[0])
    np.testing.assert_array_equal(labels[0], predict(np.moveaxis(p, -1, 0)[None])[0])
    # masks: a 4-D (X, Y, Z, C) uint8 image, read back as class-first masks
    masks = predict(pm.probs, output_mode="multilabel")
    rio.save_labels(tmp_path / "m.nii", masks, like=pm)
    m = nib.load(tmp_path / "m.nii")
    assert m.shape == (5, 4, 3, 3) and m.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(rio.load_labels(tmp_path / "m.nii"), masks[0])


def test_nifti_variants_and_errors(rng, tmp_path):
    p = softmax(rng, (4, 3, 2, 1, 2), axis=-1)  # (X, Y, Z, 1, C) vector layout
    nib.save(nib.Nifti1Image(p, np.eye(4)), tmp_path / "v.nii")
    assert rio.load_probabilities(tmp_path / "v.nii").probs.shape == (1, 2, 4, 3, 2)
    nib.save(nib.Nifti1Image(np.zeros((4, 3, 2), np.float32), np.eye(4)), tmp_path / "3d.nii")
    with pytest.raises(ValueError, match="expected a 4-D"):
        rio.load_probabilities(tmp_path / "3d.nii")
    nib.save(nib.Nifti1Image(np.zeros((4, 3, 2, 2), np.int16), np.eye(4)), tmp_path / "i.nii")
    with pytest.raises(TypeError, match="int16"):
        rio.load_probabilities(tmp_path / "i.nii")
    # NIfTI-2 in, NIfTI-2 out
    q = softmax(rng, (3, 3, 2, 2), axis=-1)
    nib.save(nib.Nifti2Image(q, np.diag([2.0, 2, 2, 1])), tmp_path / "n2.nii")
    pm = rio.load_probabilities(tmp_path / "n2.nii")
    rio.save_labels(tmp_path / "o2.nii", predict(pm.probs), like=pm)
    assert isinstance(nib.load(tmp_path / "o2.nii"), nib.Nifti2Image)


# ------------------------------------------------------------------------ nnU-Net


def nnunet_folder(rng, folder, *, seg=True, pkl=None, dataset=None, c=3, zyx=(3, 4, 5)):
    folder.mkdir(exist_ok=True)
    p = softmax(rng, (c, *zyx)) if dataset is None else rng.random((c, *zyx)).astype(np.float32)
    np.savez_compressed(folder / "case.npz", probabilities=p)
    aff = np.diag([0.8, 0.8, 2.5, 1.0])
    aff[:3, 3] = [-100, 20, 5]
    if seg:
        s = nib.Nifti1Image(np.zeros(zyx[::-1], np.uint8), aff)
        s.header.set_xyzt_units("mm")
        nib.save(s, folder / "case.nii.gz")
    if pkl is not None:
        with open(folder / "case.pkl", "wb") as f:
            pickle.dump(pkl, f)
    (folder / "dataset.json").write_text(json.dumps(dataset or {"file_ending": ".nii.gz"}))
    return p, aff


def test_nnunet_with_segmentation(rng, tmp_path):
    p, aff = nnunet_folder(rng, tmp_path / "nn")
    pm = rio.load_probabilities(tmp_path / "nn" / "case.npz")
    assert pm.format == "nnunet" and pm.output_name == "case.nii.gz"
    assert {s.name for s in pm.sources} == {"case.npz", "case.nii.gz"}
    labels = predict(pm.probs)
    rio.save_labels(tmp_path / "case.nii.gz", labels, like=pm)
    out = nib.load(tmp_path / "case.nii.gz")
    np.testing.assert_array_equal(out.affine, nib.load(tmp_path / "nn" / "case.nii.gz").affine)
    np.testing.assert_allclose(out.affine, aff, rtol=1e-7)
    assert out.shape == (5, 4, 3) and out.header.get_xyzt_units()[0] == "mm"
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), labels[0].transpose(2, 1, 0))
    np.testing.assert_array_equal(labels, predict(p[None]))


def test_nnunet_geometry_from_pkl(rng, tmp_path):
    props = {
        "sitk_stuff": {
            "spacing": (0.5, 0.75, 2.0),
            "origin": (10.0, -20.0, 30.0),
            "direction": (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0),
        },
        "spacing": [2.0, 0.75, 0.5],
        "shape_before_cropping": np.array([3, 4, 5]),
    }
    nnunet_folder(rng, tmp_path / "nn", seg=False, pkl=props)
    assert rio.output_name(tmp_path / "nn" / "case.npz") == "case.nii.gz"
    pm = rio.load_probabilities(tmp_path / "nn" / "case.npz")
    rio.save_labels(tmp_path / "case.nii.gz", predict(pm.probs), like=pm)
    out = nib.load(tmp_path / "case.nii.gz")
    # ITK (LPS) -> nibabel (RAS): x and y flip sign
    expected = np.diag([-0.5, -0.75, 2.0, 1.0])
    expected[:3, 3] = [-10.0, 20.0, 30.0]
    np.testing.assert_allclose(out.affine, expected)
    assert out.shape == (5, 4, 3)


def test_nnunet_nibabel_reoriented_pkl(rng, tmp_path):
    original = np.diag([-1.0, 1.0, 1.0, 1.0])  # LAS on disk
    reoriented = np.diag([1.0, 1.0, 1.0, 1.0])
    reoriented[0, 3] = -4.0
    props = {"nibabel_stuff": {"original_affine": original, "reoriented_affine": reoriented}}
    nnunet_folder(rng, tmp_path / "nn", seg=True, pkl=props)
    pm = rio.load_probabilities(tmp_path / "nn" / "case.npz")
    labels = predict(pm.probs)
    rio.save_labels(tmp_path / "case.nii.gz", labels, like=pm)
    out = nib.load(tmp_path / "case.nii.gz")
    np.testing.assert_allclose(out.affine, original)
    # x was flipped by the reorientation
    np.testing.assert_array_equal(np.asanyarray(out.dataobj), labels[0].transpose(2, 1, 0)[::-1])


def test_nnunet_regions(rng, tmp_path):
    ds = {
        "file_ending": ".nii.gz",
        "labels": {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enhancing": 3},
        "regions_class_order": [1, 2, 3],
    }
    p, _ = nnunet_folder(rng, tmp_path / "nn", dataset=ds)
    pm = rio.load_probabilities(tmp_path / "nn" / "case.npz")
    assert pm.regions == (1, 2, 3)
    masks = predict(pm.probs, output_mode="multilabel", pruning_prob=0.0)
    rio.save_labels(tmp_path / "case.nii.gz", masks, like=pm)
    got = np.asanyarray(nib.load(tmp_path / "case.nii.gz").dataobj).transpose(2, 1, 0)
    want = np.zeros(p.shape[1:], np.uint8)
    for i, c in enumerate((1, 2, 3)):  # later regions win, as in nnU-Net
        want[masks[0, i]] = c
    np.testing.assert_array_equal(got, want)
    bad = dict(ds, regions_class_order=None)
    (tmp_path / "nn" / "dataset.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="no regions_class_order"):
        rio.load_probabilities(tmp_path / "nn" / "case.npz")


def test_nnunet_errors(rng, tmp_path):
    nnunet_folder(rng, tmp_path / "nn", seg=False)
    (tmp_path / "nn" / "case.pkl").write_bytes(pickle.dumps({"x": print}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        rio.load_probabilities(tmp_path / "nn" / "case.npz")
    (tmp_path / "nn" / "case.pkl").unlink()
    # no geometry at all for a NIfTI dataset: an error naming what is missing (a .npz
    # label map among .nii.gz files would be skipped by nnU-Net's evaluation)
    with pytest.raises(ValueError, match=r"neither case\.pkl nor nnU-Net's segmentation case"):
        rio.load_probabilities(tmp_path / "nn" / "case.npz")
    s = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    nib.save(s, tmp_path / "nn" / "case.nii.gz")
    with pytest.raises(ValueError, match="do not match nnU-Net's segmentation"):
        rio.load_probabilities(tmp_path / "nn" / "case.npz")
    with pytest.raises(ValueError, match="class_axis does not apply"):
        rio.load_probabilities(tmp_path / "nn" / "case.npz", class_axis=0)


# ------------------------------------------------------------------------- labels


def test_load_labels(tmp_path):
    lab = np.array([[0, 1], [2, 1]], np.uint8)
    np.save(tmp_path / "a.npy", lab)
    np.savez(tmp_path / "b.npz", seg=lab)
    np.savez(tmp_path / "c.npz", whatever=lab)
    nib.save(nib.Nifti1Image(lab.astype(np.float32)[..., None], np.eye(4)), tmp_path / "d.nii")
    for name in ("a.npy", "b.npz", "c.npz"):
        np.testing.assert_array_equal(rio.load_labels(tmp_path / name), lab)
    got = rio.load_labels(tmp_path / "d.nii")  # float-stored whole numbers
    assert got.dtype == np.int64 and got.shape == (2, 2, 1)
    nib.save(nib.Nifti1Image(np.full((2, 2, 1), 0.5, np.float32), np.eye(4)), tmp_path / "e.nii")
    with pytest.raises(ValueError, match="non-integer values"):
        rio.load_labels(tmp_path / "e.nii")
    nib.save(nib.Nifti1Image(np.full((2, 2, 1, 2), 2, np.uint8), np.eye(4)), tmp_path / "f.nii")
    with pytest.raises(ValueError, match="0/1 masks"):
        rio.load_labels(tmp_path / "f.nii")
    with pytest.raises(FileNotFoundError):
        rio.load_labels(tmp_path / "none.npy")
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(ValueError, match="unrecognized label file type"):
        rio.load_labels(tmp_path / "x.png")


# ------------------------------------------------------------------ zarr, netCDF


def test_dataarray_round_trip(rng, tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("zarr")
    rxr = pytest.importorskip("rankseg.xarray")
    p = softmax(rng, (3, 4, 5))
    da = xr.DataArray(p, dims=("class", "y", "x"), name="probabilities")
    da.to_dataset().to_zarr(tmp_path / "p.zarr", consolidated=False)
    back = rio.load_dataarray(tmp_path / "p.zarr")
    assert back.dims == ("class", "y", "x") and back.chunks is not None
    labels = rxr.predict(back, class_dim="class")
    rio.save_dataarray(tmp_path / "o.zarr", labels)
    rio.save_dataarray(tmp_path / "o.zarr", labels)  # replaces an existing store
    got = xr.open_zarr(tmp_path / "o.zarr", consolidated=False)["labels"].values
    np.testing.assert_array_equal(got, predict(p[None])[0])
    assert sorted(f.name for f in tmp_path.iterdir()) == ["o.zarr", "p.zarr"]
    with pytest.raises(KeyError, match="no 'nope' variable"):
        rio.load_dataarray(tmp_path / "p.zarr", key="nope")
    with pytest.raises(ValueError, match="zarr or netCDF"):
        rio.load_dataarray(tmp_path / "p.zarr", format="npy")


def test_zarr_store_replacement(tmp_path, monkeypatch):
    """No folder created on the way; a file of the store's name and a failed rename."""
    xr = pytest.importorskip("xarray")
    pytest.importorskip("zarr")
    from rankseg.io import _xarray as iox

    da = xr.DataArray(np.arange(6, dtype=np.uint8).reshape(2, 3), dims=("y", "x"), name="l")
    with pytest.raises(FileNotFoundError, match=r"the folder .*/no' does not exist"):
        rio.save_dataarray(tmp_path / "no" / "o.zarr", da)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "o.zarr").write_text("a file in the way")
    rio.save_dataarray(tmp_path / "o.zarr", da)
    assert [f.name for f in tmp_path.iterdir()] == ["o.zarr"]  # nothing hidden left
    real_replace = os.replace

    def failing_replace(src, dst):
        if ".rankseg-tmp-" in str(src):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(iox.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        rio.save_dataarray(tmp_path / "o.zarr", da + 1)
    assert [f.name for f in tmp_path.iterdir()] == ["o.zarr"]  # the old store is back
    back = xr.open_zarr(tmp_path / "o.zarr", consolidated=False)["l"].values
    np.testing.assert_array_equal(back, da.values)


def test_failed_zarr_write_leaves_nothing(tmp_path, monkeypatch):
    """A chunk failing while another chunk is being written leaves no partial store."""
    import os
    import time

    xr = pytest.importorskip("xarray")
    da = pytest.importorskip("dask.array")
    pytest.importorskip("zarr")
    zlocal = pytest.importorskip("zarr.storage._local")
    if not hasattr(zlocal, "_put"):
        pytest.skip("this zarr writes chunks elsewhere")
    put = zlocal._put

    def slow_put(path, value, *args, **kwargs):  # a chunk write takes a while
        if "/c/" in str(path).replace(os.sep, "/"):
            time.sleep(0.3)
        return put(path, value, *args, **kwargs)

    monkeypatch.setattr(zlocal, "_put", slow_put)

    def block(x, block_info=None):
        if block_info[0]["chunk-location"][0] == 4:
            time.sleep(0.1)  # fails while the chunks before it are being written
            raise ValueError("chunk 4 fails")
        return x

    data = da.ones((8, 16), chunks=(1, 16), dtype=np.uint8).map_blocks(block, dtype=np.uint8)
    with pytest.raises(ValueError, match="chunk 4 fails"):
        rio.save_dataarray(tmp_path / "o.zarr", xr.DataArray(data, dims=("z", "x"), name="l"))
    time.sleep(0.6)  # a chunk write still running would have recreated the store by now
    assert list(tmp_path.iterdir()) == []


def test_write_into_missing_folder_names_the_folder(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match=r"the folder .*such' does not exist"):
        rio.atomic_write(missing / "out.npy", lambda p: np.save(p, np.zeros(2)))
    assert not (tmp_path / "no").exists()


def test_nnunet_pair_without_json_is_a_case(rng, tmp_path):
    # nnU-Net's CASE.nii.gz beside CASE.npz, no json, no pkl: the .nii.gz gives the
    # geometry and is not read as a probability input
    d = tmp_path / "pair"
    d.mkdir()
    p = softmax(rng, (3, 2, 4, 5))
    np.savez(d / "c.npz", probabilities=p)
    aff = np.diag([0.5, 0.6, 2.0, 1.0])
    nib.save(nib.Nifti1Image(np.zeros((5, 4, 2), np.uint8), aff), d / "c.nii.gz")
    assert rio.find_inputs([d]) == [(d / "c.npz", "nnunet")]
    assert rio.detect_format(d / "c.npz") == "nnunet"
    pm = rio.load_probabilities(d / "c.npz")
    assert pm.output_name == "c.nii.gz" and pm.reverse_spatial
    rio.save_labels(tmp_path / "c.nii.gz", predict(pm.probs), like=pm)
    np.testing.assert_array_equal(
        nib.load(tmp_path / "c.nii.gz").affine, nib.load(d / "c.nii.gz").affine
    )


def test_nnunet_sitk_pkl_header_is_itks(rng, tmp_path):
    # SimpleITKIO writes through ITK: qform and sform codes 1, units mm and sec
    props = {
        "sitk_stuff": {
            "spacing": (0.5, 0.75, 2.0),
            "origin": (1.0, 2.0, 3.0),
            "direction": (0, 1.0, 0, 0, 0, 1.0, 1.0, 0, 0),
        }
    }
    nnunet_folder(rng, tmp_path / "nn", seg=False, pkl=props)
    pm = rio.load_probabilities(tmp_path / "nn" / "case.npz")
    rio.save_labels(tmp_path / "case.nii.gz", predict(pm.probs), like=pm)
    hdr = nib.load(tmp_path / "case.nii.gz").header
    assert int(hdr["qform_code"]) == 1 and int(hdr["sform_code"]) == 1
    assert hdr.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_allclose(hdr.get_qform(), hdr.get_sform(), atol=1e-6)


def test_nnunet_reorient_three_cycle(rng, tmp_path):
    # the issue's affine: a 3-cycle of the axes, which io_orientation(A) alone
    # does not undo (it is not its own inverse)
    from nibabel.orientations import io_orientation

    original = np.array([[0, 0, -0.8, -30], [-3, 0, 0, 12], [0, 0.9, 0, 8], [0, 0, 0, 1.0]])
    img = nib.Nifti1Image(np.zeros((16, 50, 52), np.float32), original)
    ras = img.as_reoriented(io_orientation(original))
    props = {"nibabel_stuff": {"original_affine": original, "reoriented_affine": ras.affine}}
    d = tmp_path / "nn"
    d.mkdir()
    zyx = ras.shape[::-1]
    p = softmax(rng, (2, *zyx))
    np.savez(d / "case.npz", probabilities=p)
    (d / "case.pkl").write_bytes(pickle.dumps(props))
    pm = rio.load_probabilities(d / "case.npz")
    labels = predict(pm.probs)
    rio.save_labels(tmp_path / "case.nii.gz", labels, like=pm)
    out = nib.load(tmp_path / "case.nii.gz")
    assert out.shape == (16, 50, 52)
    np.testing.assert_allclose(out.affine, original, atol=1e-6)
    # back in RAS, the voxels are the labels as decided
    back = out.as_reoriented(io_orientation(out.affine))
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), labels[0].transpose(2, 1, 0))


def test_average_probabilities(rng, tmp_path):
    a, b = softmax(rng, (2, 3, 4)), softmax(rng, (2, 3, 4), dtype=np.float16)
    np.savez(tmp_path / "a.npz", probabilities=a)
    np.savez(tmp_path / "b.npz", probabilities=b)
    got = rio.average_probabilities([tmp_path / "a.npz", tmp_path / "b.npz"])
    want = a.astype(np.float32).copy()
    want += b
    want /= 2
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.savez(tmp_path / "c.npz", probabilities=a[:, :2])
    with pytest.raises(ValueError, match=r"c\.npz holds probabilities of shape \(2, 2, 4\)"):
        rio.average_probabilities([tmp_path / "a.npz", tmp_path / "c.npz"])
    with pytest.raises(ValueError, match="at least one"):
        rio.average_probabilities([])
    with pytest.raises(FileNotFoundError, match="no such file"):
        rio.average_probabilities([tmp_path / "a.npz", tmp_path / "missing.npz"])


def test_itk_suffix_needs_nnunet_geometry(tmp_path):
    with pytest.raises(ValueError, match=r"\.mha/\.nrrd/\.gipl outputs are label maps"):
        rio.save_labels(tmp_path / "x.mha", np.zeros((2, 3), np.uint8))


def test_nnunet_malformed_geometry_names_the_problem(rng, tmp_path):
    nnunet_folder(rng, tmp_path / "nn", seg=False, pkl={"sitk_stuff": {"spacing": (1.0,) * 3}})
    with pytest.raises(ValueError, match="lacks 'origin' in its image geometry"):
        rio.load_probabilities(tmp_path / "nn" / "case.npz")
    bad = {"nibabel_stuff": {"original_affine": np.eye(3)}}
    nnunet_folder(rng, tmp_path / "nn", seg=False, pkl=bad)
    with pytest.raises(ValueError, match="holds an affine that is not 4 x 4"):
        rio.load_probabilities(tmp_path / "nn" / "case.npz")
    nnunet_folder(
        rng,
        tmp_path / "nn",
        seg=False,
        pkl={"sitk_stuff": {"spacing": 1.0, "origin": 0.0, "direction": 1.0}},
    )
    with pytest.raises(ValueError, match="malformed image geometry"):
        rio.load_probabilities(tmp_path / "nn" / "case.npz")


def test_nnunet_layout_checks(rng, tmp_path):
    # dataset.json lists 3 labels, the case has 4 channels: an error, not a label 3
    labels = {"background": 0, "liver": 1, "tumour": 2}
    nnunet_folder(rng, tmp_path / "a", c=4, dataset={"file_ending": ".nii.gz", "labels": labels})
    with pytest.raises(ValueError, match=r"dataset.json lists 3 labels .* 4 channels"):
        rio.load_probabilities(tmp_path / "a" / "case.npz")
    # the 'ignore' label has no channel
    nnunet_folder(
        rng,
        tmp_path / "b",
        c=3,
        dataset={"file_ending": ".nii.gz", "labels": {**labels, "ignore": 3}},
    )
    assert rio.load_probabilities(tmp_path / "b" / "case.npz").probs.shape[1] == 3
    # 2-D spacing on a 3-D case: an error (it gave the third axis 1 mm)
    props = {
        "sitk_stuff": {"spacing": (0.5, 0.75), "origin": (1.0, 2.0), "direction": (1.0, 0, 0, 1.0)}
    }
    nnunet_folder(rng, tmp_path / "c", seg=False, pkl=props, zyx=(3, 4, 5))
    with pytest.raises(ValueError, match=r"2-D image .* probabilities are 3-D"):
        rio.load_probabilities(tmp_path / "c" / "case.npz")
    # ... but it fits a 2-D case, stored (1, Y, X)
    nnunet_folder(rng, tmp_path / "d", seg=False, pkl=props, zyx=(1, 4, 5))
    assert rio.load_probabilities(tmp_path / "d" / "case.npz").reference is not None
