"""The command line end to end, in temporary folders: every format, parity with the API."""

import csv
import json
import math

import numpy as np
import pytest

from rankseg import cli, predict
from rankseg import io as rio
from rankseg.__main__ import main
from rankseg.metrics import dice_score, iou_score

from _cli_helpers import run, softmax

nib = pytest.importorskip("nibabel")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def cases(rng, tmp_path):
    """Three single-case .npy files (C=3) in tmp_path/in."""
    d = tmp_path / "in"
    d.mkdir()
    probs = {}
    for name in ("a", "b", "c"):
        probs[name] = softmax(rng, (3, 4, 6, 5))
        np.save(d / f"{name}.npy", probs[name])
    return d, probs


# ---------------------------------------------------------------------- predict


def test_predict_npy_parity_and_info(cases, tmp_path, capsys):
    d, probs = cases
    code, out, err = run(capsys, "predict", d, "-o", tmp_path / "out", "--info", tmp_path / "i.csv")
    assert code == 0, err
    assert "3 written, 0 skipped (output exists), 0 failed, of 3 case(s)" in err
    rows = read_csv(tmp_path / "i.csv")
    assert list(rows[0]) == ["case", "class", "tau", "threshold", "score", "pruned"]
    assert len(rows) == 9
    for name, p in probs.items():
        got = np.load(tmp_path / "out" / f"{name}.npy")
        labels, info = predict(p[None], return_info=True)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, labels[0])
        mine = [r for r in rows if r["case"] == name]
        for c, r in enumerate(mine):
            assert int(r["class"]) == c and int(r["tau"]) == info.tau[0, c]
            assert float(r["score"]) == info.score[0, c]
            thr = float(r["threshold"])
            assert (math.isnan(thr) and math.isnan(info.threshold[0, c])) or thr == info.threshold[
                0, c
            ]
            assert r["pruned"] == str(bool(info.pruned[0, c]))
    assert "%|" not in err  # no progress bar when stderr is not a terminal


def test_predict_options_parity(cases, tmp_path, capsys):
    d, probs = cases
    p = probs["a"]
    np.save(tmp_path / "last.npy", np.moveaxis(p, 0, -1))
    opts = [
        "--metric", "iou", "--smooth", "0.5", "--pruning-prob", "0.2",
        "--unassigned-policy", "void", "--void-index", "9", "--dtype", "int64",
    ]  # fmt: skip
    code, _, err = run(
        capsys, "predict", tmp_path / "last.npy", "--class-axis", "-1", "-o", tmp_path / "o", *opts
    )
    assert code == 0, err
    want = predict(p[None], "iou", 0.5, pruning_prob=0.2, unassigned_policy="void", void_index=9)[0]
    got = np.load(tmp_path / "o" / "last.npy")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    # multilabel masks keep the stored class axis; accuracy solvers work too
    code, _, err = run(
        capsys, "predict", d / "a.npy", "-o", tmp_path / "ml", "--output-mode", "multilabel"
    )
    assert code == 0, err
    masks = np.load(tmp_path / "ml" / "a.npy")
    assert masks.dtype == bool
    np.testing.assert_array_equal(masks, predict(p[None], output_mode="multilabel")[0])
    code, _, _ = run(capsys, "predict", d / "a.npy", "-o", tmp_path / "acc", "--metric", "acc")
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "acc" / "a.npy"), p.argmax(0))


@pytest.mark.parametrize(
    ("metric", "solver"), [(m, s) for m in ("dice", "iou") for s in cli.available_solvers(m)]
)
def test_every_available_solver(cases, tmp_path, capsys, metric, solver):
    d, probs = cases
    code, _, err = run(
        capsys, "predict", d / "a.npy", "-o", tmp_path / "o", "--metric", metric,
        "--solver", solver.upper(), "--info", tmp_path / "i.csv",
    )  # fmt: skip
    assert code == 0, err
    labels, info = predict(probs["a"][None], metric, solver=solver, return_info=True)
    np.testing.assert_array_equal(np.load(tmp_path / "o" / "a.npy"), labels[0])
    assert [float(r["score"]) for r in read_csv(tmp_path / "i.csv")] == list(info.score[0])


def test_predict_batch_npz_float16(rng, tmp_path, capsys):
    batch = softmax(rng, (2, 3, 5, 4), axis=1, dtype=np.float16)
    np.savez(tmp_path / "v1.npz", softmax=batch)
    np.savez(tmp_path / "mine.npz", x=batch)
    code, _, err = run(
        capsys, "predict", tmp_path / "v1.npz", "--batch", "-o", tmp_path / "o",
        "--info", tmp_path / "i.csv",
    )  # fmt: skip
    assert code == 0, err
    with np.load(tmp_path / "o" / "v1.npz") as f:
        np.testing.assert_array_equal(f["labels"], predict(batch))
    assert [r["case"] for r in read_csv(tmp_path / "i.csv")][::3] == ["v1[0]", "v1[1]"]
    code, _, err = run(capsys, "predict", tmp_path / "mine.npz", "--batch", "-o", tmp_path / "o")
    assert code == 1 and "mine.npz: no 'probabilities' or 'softmax' array" in err
    code, _, err = run(
        capsys, "predict", tmp_path / "mine.npz", "--batch", "--key", "x", "-o", tmp_path / "o"
    )
    assert code == 0, err


def test_predict_nifti_keeps_geometry(rng, tmp_path, capsys):
    p = softmax(rng, (6, 5, 4, 3), axis=-1)
    aff = np.array([[0, 0, 2.0, -30], [0, -1.0, 0, 12], [0.5, 0, 0, 4], [0, 0, 0, 1]])
    img = nib.Nifti1Image(p, aff)
    img.header.set_xyzt_units("mm")
    nib.save(img, tmp_path / "case.nii.gz")
    before = (tmp_path / "case.nii.gz").read_bytes()
    code, _, err = run(capsys, "predict", tmp_path / "case.nii.gz", "-o", tmp_path / "out")
    assert code == 0, err
    out = nib.load(tmp_path / "out" / "case.nii.gz")
    ref = nib.load(tmp_path / "case.nii.gz")
    np.testing.assert_array_equal(out.affine, ref.affine)
    assert out.header.get_zooms() == ref.header.get_zooms()[:3]
    assert out.get_data_dtype() == np.uint8 and out.header.get_intent()[0] == "label"
    np.testing.assert_array_equal(
        np.asanyarray(out.dataobj), predict(np.moveaxis(p, -1, 0)[None])[0]
    )
    assert (tmp_path / "case.nii.gz").read_bytes() == before


def test_predict_nnunet_folder(rng, tmp_path, capsys):
    nn = tmp_path / "nnunet_out"
    nn.mkdir()
    (nn / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz"}))
    (nn / "plans.json").write_text("{}")
    aff = np.diag([0.7, 0.7, 3.0, 1.0])
    probs = {}
    for name in ("case_0", "case_1"):
        probs[name] = softmax(rng, (3, 2, 5, 4))  # (C, Z, Y, X)
        np.savez_compressed(nn / f"{name}.npz", probabilities=probs[name])
        nib.save(nib.Nifti1Image(np.zeros((4, 5, 2), np.uint8), aff), nn / f"{name}.nii.gz")
    code, _, err = run(capsys, "predict", nn, "-o", tmp_path / "out")
    assert code == 0, err
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == [
        "case_0.nii.gz",
        "case_1.nii.gz",
    ]
    for name, p in probs.items():
        out = nib.load(tmp_path / "out" / f"{name}.nii.gz")
        np.testing.assert_array_equal(out.affine, nib.load(nn / f"{name}.nii.gz").affine)
        want = predict(p[None])[0].transpose(2, 1, 0)  # (Z, Y, X) -> (X, Y, Z)
        np.testing.assert_array_equal(np.asanyarray(out.dataobj), want)
    # writing into the nnU-Net folder itself would replace nnU-Net's segmentations
    code, _, err = run(capsys, "predict", nn, "-o", nn)
    assert code == 1 and "would overwrite an input" in err
    assert np.asanyarray(nib.load(nn / "case_0.nii.gz").dataobj).max() == 0


def test_predict_nnunet_regions(rng, tmp_path, capsys):
    nn = tmp_path / "nn"
    nn.mkdir()
    ds = {"labels": {"background": 0, "whole": [1, 2], "core": 2}, "regions_class_order": [1, 2]}
    (nn / "dataset.json").write_text(json.dumps(ds))
    p = rng.random((2, 3, 4, 5)).astype(np.float32)  # sigmoid regions
    np.savez(nn / "r.npz", probabilities=p)
    nib.save(nib.Nifti1Image(np.zeros((5, 4, 3), np.uint8), np.eye(4)), nn / "r.nii.gz")
    code, _, err = run(capsys, "predict", nn, "-o", tmp_path / "out", "--pruning-prob", "0")
    assert code == 0, err
    masks = predict(p[None], output_mode="multilabel", pruning_prob=0.0)[0]
    want = np.zeros(p.shape[1:], np.uint8)
    want[masks[0]] = 1
    want[masks[1]] = 2
    got = np.asanyarray(nib.load(tmp_path / "out" / "r.nii.gz").dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(got, want)
    code, _, err = run(capsys, "predict", nn, "-o", tmp_path / "o2", "--output-mode", "multiclass")
    assert code == 1 and "region-based nnU-Net" in err and "--output-mode multilabel" in err


def test_bad_inputs_do_not_stop_the_others(cases, tmp_path, capsys):
    d, probs = cases
    np.save(d / "logits.npy", np.log(probs["a"]))
    np.save(d / "nan.npy", np.full((2, 3, 3), np.nan, np.float32))
    np.save(d / "labels.npy", np.zeros((3, 3), np.uint8))
    np.save(d / "one.npy", np.full((1, 3, 3), 0.7, np.float32))
    (d / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    (d / "random.npy").write_bytes(bytes(range(7, 107)))
    np.save(d / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    code, _, err = run(capsys, "predict", d, tmp_path / "missing.npy", "-o", tmp_path / "out")
    assert code == 1
    written = sorted(f.name for f in (tmp_path / "out").iterdir())
    assert written == ["a.npy", "b.npy", "c.npy"]
    lines = [x for x in err.splitlines() if x.startswith("error: ")]
    by_file = {x.split(": ")[1].rsplit("/", 1)[-1]: x for x in lines}
    assert "apply softmax (multiclass) or sigmoid (multilabel)" in by_file["logits.npy"]
    assert "NaN" in by_file["nan.npy"]
    assert "label map rather than probabilities" in by_file["labels.npy"]
    assert "--output-mode multilabel" in by_file["one.npy"]
    assert "cannot read the .npy: a damaged file" in by_file["broken.npy"]
    assert "not a .npy file (no NumPy header)" in by_file["random.npy"]
    assert "holds Python objects" in by_file["objects.npy"]
    assert "pickled (object) data" not in err
    assert "no such file" in by_file["missing.npy"]
    assert all(x.count("\n") == 0 for x in lines)
    assert "3 written, 0 skipped (output exists), 8 failed, of 11 case(s)" in err


def test_failed_write_leaves_no_partial_file(cases, tmp_path, capsys, monkeypatch):
    d, _ = cases
    real_save = np.save
    calls = []

    def flaky_save(f, arr, **kw):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"\x93NUMPY partial")
            raise OSError(28, "No space left on device")
        return real_save(f, arr, **kw)

    monkeypatch.setattr(np, "save", flaky_save)
    code, _, err = run(capsys, "predict", d, "-o", tmp_path / "out")
    assert code == 1 and "b.npy: cannot read or write (No space left on device)" in err
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == ["a.npy", "c.npy"]


def test_continue_skips_existing_and_merges_info(cases, tmp_path, capsys):
    d, _ = cases
    out, info = tmp_path / "out", tmp_path / "info.csv"
    code, _, _ = run(capsys, "predict", d / "a.npy", "-o", out, "--info", info)
    assert code == 0
    (out / "a.npy").write_bytes(b"sentinel")  # a finished output is never redone
    code, _, err = run(capsys, "predict", d, "-o", out, "--continue", "--info", info)
    assert code == 0
    assert "2 written, 1 skipped (output exists)" in err
    assert (out / "a.npy").read_bytes() == b"sentinel"
    assert sorted(r["case"] for r in read_csv(info)) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    code, _, err = run(capsys, "predict", d, "-o", out, "--continue", "--quiet")
    assert code == 0 and err == ""


def test_sharding(cases, tmp_path, capsys):
    d, _ = cases
    parts = []
    for i in range(2):
        out = tmp_path / f"part{i}"
        code, _, _ = run(capsys, "predict", d, "-o", out, "--num-parts", 2, "--part-id", i)
        assert code == 0
        parts.append({f.name for f in out.iterdir()})
    assert parts[0] == {"a.npy", "c.npy"} and parts[1] == {"b.npy"}  # like nnU-Net: [i::k]


def test_parallel_workers_match_serial(cases, tmp_path, capsys):
    d, _ = cases
    files = [d / "a.npy", d / "b.npy"]
    code, _, err = run(capsys, "predict", *files, "-o", tmp_path / "j2", "-j", 2, "--info",
                       tmp_path / "j2.csv")  # fmt: skip
    assert code == 0, err
    code, _, _ = run(
        capsys, "predict", *files, "-o", tmp_path / "j1", "--info", tmp_path / "j1.csv"
    )
    assert code == 0
    for name in ("a.npy", "b.npy"):
        np.testing.assert_array_equal(
            np.load(tmp_path / "j2" / name), np.load(tmp_path / "j1" / name)
        )
    assert (tmp_path / "j2.csv").read_text() == (tmp_path / "j1.csv").read_text()


def test_same_output_name_twice(rng, tmp_path, capsys):
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        np.save(tmp_path / sub / "case.npy", softmax(rng, (2, 3, 3)))
    code, _, err = run(capsys, "predict", tmp_path / "x", tmp_path / "y", "-o", tmp_path / "o")
    assert code == 1 and "is also the output of" in err


def test_zarr_and_netcdf(rng, tmp_path, capsys):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("zarr")
    pytest.importorskip("rankseg.xarray")
    p = softmax(rng, (2, 3, 4, 5), axis=1)  # (case, class, y, x)
    da = xr.DataArray(p, dims=("case", "class", "y", "x"), name="probabilities")
    da.to_dataset().to_zarr(tmp_path / "p.zarr", consolidated=False)
    da[0].to_dataset().to_netcdf(tmp_path / "q.nc")
    code, _, err = run(
        capsys, "predict", tmp_path / "p.zarr", "--batch", "-o", tmp_path / "o",
        "--info", tmp_path / "i.csv",
    )  # fmt: skip
    assert code == 0, err
    got = xr.open_zarr(tmp_path / "o" / "p.zarr", consolidated=False)["labels"]
    assert got.dims == ("case", "y", "x")
    np.testing.assert_array_equal(got.values, predict(p))
    assert [r["case"] for r in read_csv(tmp_path / "i.csv")][::3] == ["p[0]", "p[1]"]
    code, _, err = run(capsys, "predict", tmp_path / "q.nc", "-o", tmp_path / "o")
    assert code == 0, err
    back = xr.open_dataset(tmp_path / "o" / "q.nc")["labels"].values
    np.testing.assert_array_equal(back, predict(p[:1])[0])


@pytest.mark.parametrize("netcdf4", [False, True])
def test_netcdf_unsigned_labels(rng, tmp_path, capsys, monkeypatch, netcdf4):
    """A void label of 255 (uint8 labels) survives a netCDF file, netCDF3 included."""
    xr = pytest.importorskip("xarray")
    pytest.importorskip("rankseg.xarray")
    from rankseg.io import _xarray as iox

    if netcdf4 and not iox._netcdf4_writer():
        pytest.skip("neither netCDF4 nor h5netcdf is installed")
    monkeypatch.setattr(iox, "_netcdf4_writer", lambda: netcdf4)
    p = softmax(rng, (3, 4, 5), axis=0)  # (class, y, x)
    xr.DataArray(p, dims=("class", "y", "x"), name="probabilities").to_dataset().to_netcdf(
        tmp_path / "q.nc"
    )
    args = ("--unassigned-policy", "void", "--pruning-prob", "0.99")
    code, _, err = run(capsys, "predict", tmp_path / "q.nc", "-o", tmp_path / "o", *args)
    assert code == 0, err
    back = xr.open_dataset(tmp_path / "o" / "q.nc")["labels"]
    want = predict(p[None], unassigned_policy="void", pruning_prob=0.99)[0]
    assert (want == 255).any()  # the case this test is about
    np.testing.assert_array_equal(back.values, want)
    assert 255 in np.asarray(back.attrs["flag_values"]).tolist()


def test_zarr_without_adapter(rng, tmp_path, capsys, monkeypatch):
    import builtins

    (tmp_path / "p.zarr").mkdir()
    real_import = builtins.__import__

    def no_adapter(name, *args, **kw):
        if name == "rankseg.xarray":
            raise ImportError("simulated")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_adapter)
    code, _, err = run(capsys, "predict", tmp_path / "p.zarr", "-o", tmp_path / "o")
    assert code == 1 and "needs the xarray adapter rankseg.xarray" in err


def test_usage_errors(cases, tmp_path, capsys):
    d, _ = cases

    def usage(*args):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        assert exc.value.code == 2
        return capsys.readouterr().err

    assert "--info needs --metric dice or iou" in usage(
        "predict", d, "-o", tmp_path, "--metric", "acc", "--info", "x.csv"
    )
    assert "--part-id must be in [0, --num-parts)" in usage(
        "predict", d, "-o", tmp_path, "--num-parts", 2, "--part-id", 2
    )
    err = usage("predict", d, "-o", tmp_path, "--solver", "magic")
    assert "unknown solver 'magic'" in err and "'rma'" in err
    err = usage("predict", d, "-o", tmp_path, "--metric", "iou", "--solver", "ba")
    assert "not supported for metric 'iou'" in err
    assert "eps does not apply" in usage("predict", d, "-o", tmp_path, "--eps", "0.01")
    assert "-j must be >= 1" in usage("predict", d, "-o", tmp_path, "-j", 0)
    assert "invalid choice" in usage("predict", d, "-o", tmp_path, "--format", "tiff")
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "predict", tmp_path / "empty", "-o", tmp_path / "o")
    assert code == 2 and "no input cases found" in err
    # output paths are checked before any case is solved: one line, exit status 2
    (tmp_path / "afile").write_text("x")
    assert "cannot use -o" in usage("predict", d, "-o", tmp_path / "afile")
    assert "cannot use -o" in usage("predict", d, "-o", tmp_path / "afile" / "sub")
    err = usage("predict", d, "-o", tmp_path / "o3", "--info", tmp_path / "no" / "i.csv")
    assert "--info" in err and "does not exist" in err and not any((tmp_path / "o3").iterdir())
    assert "is a folder" in usage("predict", d, "-o", tmp_path / "o3", "--info", tmp_path)
    lab = tmp_path / "lab.npy"
    np.save(lab, np.zeros((3, 3), np.uint8))
    err = usage("evaluate", lab, "--target", lab, "--csv", tmp_path / "no" / "e.csv")
    assert "--csv" in err and "does not exist" in err
    assert "is a folder" in usage("evaluate", lab, "--target", lab, "--csv", tmp_path)
    assert "does not exist" in usage("demo", "--plot", tmp_path / "no" / "d.png")
    assert "unknown image type 'txt'" in usage("demo", "--plot", tmp_path / "d.txt")
    # a missing target is named as the target, not as the prediction
    code, _, err = run(capsys, "evaluate", lab, "--target", tmp_path / "nonexist.npy")
    assert code == 1 and f"error: {tmp_path / 'nonexist.npy'}: no such file" in err


def test_interrupt_keeps_the_info_of_finished_cases(cases, tmp_path, capsys, monkeypatch):
    d, _ = cases
    out, info = tmp_path / "out", tmp_path / "info.csv"
    real_save = rio.save_labels
    calls = []

    def interrupted_save(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(rio, "save_labels", interrupted_save)
    code, _, err = run(capsys, "predict", d, "-o", out, "--info", info)
    assert code == 130 and "interrupted" in err
    assert sorted(f.name for f in out.iterdir()) == ["a.npy"]
    assert {r["case"] for r in read_csv(info)} == {"a"}
    code, _, err = run(capsys, "predict", d, "-o", out, "--continue", "--info", info)
    assert code == 0 and "2 written, 1 skipped" in err
    assert sorted(r["case"] for r in read_csv(info)) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3


def test_solver_help_lists_available_solvers(monkeypatch):
    monkeypatch.setattr(cli, "AVAILABLE", ("rma", "exact", "argmax", "tr"))
    text = cli._solver_help()
    assert "dice: rma, exact" in text and "iou: rma, exact" in text and "acc: argmax, tr" in text


def test_progress_bar_on_a_terminal(cases, tmp_path, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    d, _ = cases
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: True, raising=False)
    code, _, err = run(capsys, "predict", d, "-o", tmp_path / "o")
    assert code == 0 and "3/3" in err
    code, _, err = run(capsys, "predict", d, "-o", tmp_path / "p", "--no-progress")
    assert code == 0 and "3/3" not in err


# --------------------------------------------------------------------- evaluate


def test_evaluate(rng, tmp_path, capsys):
    pred_dir, tgt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    tgt_dir.mkdir()
    preds, tgts = {}, {}
    for name in ("c1", "c2"):
        preds[name] = rng.integers(0, 3, (4, 5, 6)).astype(np.uint8)
        tgts[name] = rng.integers(0, 3, (4, 5, 6)).astype(np.uint8)
        nib.save(nib.Nifti1Image(preds[name], np.eye(4)), pred_dir / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(tgts[name], np.eye(4)), tgt_dir / f"{name}.nii.gz")
    tgts["c2"][tgts["c2"] == 2] = 0  # class 2 absent from the c2 target...
    preds["c2"][preds["c2"] == 2] = 0  # ...and from the prediction: empty -> nan
    nib.save(nib.Nifti1Image(tgts["c2"], np.eye(4)), tgt_dir / "c2.nii.gz")
    nib.save(nib.Nifti1Image(preds["c2"], np.eye(4)), pred_dir / "c2.nii.gz")
    code, out, err = run(
        capsys, "evaluate", pred_dir, "--target", tgt_dir, "--csv", tmp_path / "s.csv"
    )
    assert code == 0, err
    rows = read_csv(tmp_path / "s.csv")
    assert list(rows[0]) == ["case", "class", "dice", "pred_volume", "target_volume"]
    for r in rows:
        name, c = r["case"], int(r["class"])
        want = dice_score(preds[name][None], tgts[name][None], num_classes=3)[0, c]
        got = float(r["dice"])
        assert (math.isnan(want) and math.isnan(got)) or got == want
        assert int(r["target_volume"]) == (tgts[name] == c).sum()
    assert math.isnan(float(rows[5]["dice"]))
    assert out.splitlines()[0].split() == ["class", "mean", "dice", "s.e.", "cases"]
    # IoU without the background, one-to-one pairing of differently named files
    np.save(tmp_path / "p.npy", preds["c1"])
    np.save(tmp_path / "t.npy", tgts["c1"])
    code, out, _ = run(
        capsys, "evaluate", tmp_path / "p.npy", "--target", tmp_path / "t.npy",
        "--metric", "iou", "--exclude-background",
    )  # fmt: skip
    assert code == 0
    want = iou_score(preds["c1"][None], tgts["c1"][None], num_classes=3)[0, 1:]
    assert f"{want.mean():.4f}" in out.splitlines()[-1]


def test_evaluate_problems(rng, tmp_path, capsys):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    np.save(tmp_path / "pred" / "a.npy", np.zeros((3, 3), np.uint8))
    np.save(tmp_path / "pred" / "b.npy", np.zeros((3, 3), np.uint8))
    np.save(tmp_path / "pred" / "c.npy", np.zeros((3, 3), np.uint8))
    np.save(tmp_path / "gt" / "a.npy", np.ones((3, 3), np.uint8))
    np.save(tmp_path / "gt" / "c.npy", np.ones((4, 3), np.uint8))
    np.save(tmp_path / "gt" / "d.npy", np.ones((3, 3), np.uint8))
    code, out, err = run(capsys, "evaluate", tmp_path / "pred", "--target", tmp_path / "gt")
    assert code == 1
    assert "b.npy: no target named b.*" in err
    assert "c.npy: shape (3, 3) differs from the target's (4, 3)" in err
    assert "1 target(s) without a prediction" in err
    assert "1 case(s) evaluated, 2 failed" in err
    # masks against masks work; masks against a label map do not
    np.save(tmp_path / "m.npy", np.ones((2, 3, 3), bool))
    np.save(tmp_path / "mt.npy", np.ones((2, 3, 3), bool))
    code, out, _ = run(capsys, "evaluate", tmp_path / "m.npy", "--target", tmp_path / "mt.npy")
    assert code == 0 and out.splitlines()[-1].split() == ["mean", "1.0000"]
    code, _, err = run(
        capsys, "evaluate", tmp_path / "m.npy", "--target", tmp_path / "gt" / "a.npy"
    )
    assert code == 1 and "cannot compare masks with a label map" in err
    # a void label 255: the 252 classes absent from every case are not listed
    np.save(tmp_path / "v.npy", np.array([[0, 1, 255], [2, 1, 0]], np.uint8))
    np.save(tmp_path / "vt.npy", np.array([[0, 1, 2], [2, 1, 0]], np.uint8))
    code, out, _ = run(capsys, "evaluate", tmp_path / "v.npy", "--target", tmp_path / "vt.npy")
    rows = [line.split()[0] for line in out.splitlines()[1:-2]]
    assert code == 0 and rows == ["0", "1", "2", "255"]
    assert "252 class(es) with no case counted not shown" in out.splitlines()[-1]
    code, out, _ = run(
        capsys, "evaluate", tmp_path / "v.npy", "--target", tmp_path / "vt.npy",
        "--num-classes", 3,
    )  # fmt: skip
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == ["0", "1", "2"]


def test_demo_command(tmp_path, capsys):
    code, out, _ = run(
        capsys, "demo", "--shape", 4, 10, 10, "--classes", 3, "--draws", 2, "--repeat", 1,
        "--plot", tmp_path / "d.png",
    )  # fmt: skip
    assert code == 0
    assert "rankseg dice (rma)" in out and (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_ensemble_npz_folders(rng, tmp_path, capsys):
    folds = []
    probs = {}
    for k in range(2):
        f = tmp_path / f"fold{k}"
        f.mkdir()
        folds.append(f)
        for name in ("a", "b"):
            probs[k, name] = softmax(rng, (3, 4, 5))
            np.savez(f / f"{name}.npz", probabilities=probs[k, name])
    np.savez(folds[1] / "extra.npz", probabilities=softmax(rng, (3, 4, 5)))
    code, _, err = run(capsys, "predict", *folds, "--ensemble", "-o", tmp_path / "out")
    assert code == 1 and "extra.npz: the case is missing from" in err
    assert "2 written, 0 skipped (output exists), 1 failed, of 3 case(s)" in err
    for name in ("a", "b"):
        avg = probs[0, name].copy()
        avg += probs[1, name]
        avg /= 2
        with np.load(tmp_path / "out" / f"{name}.npz") as f:
            np.testing.assert_array_equal(f["labels"], predict(avg[None])[0])
    for args, why in (
        ((folds[0],), "at least two prediction folders"),
        ((folds[0], folds[0] / "a.npz"), "is not a folder"),
    ):
        with pytest.raises(SystemExit) as exc:
            run(capsys, "predict", *args, "--ensemble", "-o", tmp_path / "o")
        assert exc.value.code == 2 and why in capsys.readouterr().err


# ------------------------------------------- evaluate: summary.json, --info, --report


def _label_folders(rng, tmp_path, names=("c1", "c2", "c3"), shape=(5, 6, 4)):
    """Prediction and target NIfTI label maps (classes 0..2; class 2 absent from c2)."""
    pred_dir, tgt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    tgt_dir.mkdir()
    preds, tgts = {}, {}
    for name in names:
        preds[name] = rng.integers(0, 3, shape).astype(np.uint8)
        tgts[name] = rng.integers(0, 3, shape).astype(np.uint8)
    preds["c2"][preds["c2"] == 2] = 0
    tgts["c2"][tgts["c2"] == 2] = 1
    for name in names:
        nib.save(nib.Nifti1Image(preds[name], np.eye(4)), pred_dir / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(tgts[name], np.eye(4)), tgt_dir / f"{name}.nii.gz")
    return pred_dir, tgt_dir, preds, tgts


def _same(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12)
    return a == b


def test_evaluate_json_is_nnunets_summary(rng, tmp_path, capsys):
    pred_dir, tgt_dir, preds, tgts = _label_folders(rng, tmp_path)
    code, _, err = run(
        capsys, "evaluate", pred_dir, "--target", tgt_dir, "--json", tmp_path / "s.json",
        "--num-classes", 4, "--exclude-background",
    )  # fmt: skip
    assert code == 0, err
    text = (tmp_path / "s.json").read_text()
    ours = json.loads(text)
    assert sorted(ours) == ["foreground_mean", "mean", "metric_per_case"]
    assert sorted(ours["mean"]) == ["1", "2", "3"]  # class 3: absent everywhere
    names = sorted(preds)
    for name, case in zip(names, ours["metric_per_case"], strict=True):
        assert case["prediction_file"] == str(pred_dir / f"{name}.nii.gz")
        assert case["reference_file"] == str(tgt_dir / f"{name}.nii.gz")
        dice = dice_score(preds[name][None], tgts[name][None], num_classes=4)[0]
        iou = iou_score(preds[name][None], tgts[name][None], num_classes=4)[0]
        for c in (1, 2, 3):
            m = case["metrics"][str(c)]
            assert _same(m["Dice"], float(dice[c])) and _same(m["IoU"], float(iou[c]))
            p, t = preds[name] == c, tgts[name] == c
            assert (m["TP"], m["FP"], m["FN"], m["TN"]) == (
                (p & t).sum(), (p & ~t).sum(), (~p & t).sum(), (~p & ~t).sum(),
            )  # fmt: skip
            assert (m["n_pred"], m["n_ref"]) == (p.sum(), t.sum())
    # class 2 is absent from both sides of c2: NaN, left out of the mean
    assert math.isnan(ours["metric_per_case"][1]["metrics"]["2"]["Dice"])
    d2 = [dice_score(preds[n][None], tgts[n][None], num_classes=3)[0, 2] for n in ("c1", "c3")]
    assert ours["mean"]["2"]["Dice"] == pytest.approx(np.mean(d2))
    assert math.isnan(ours["mean"]["3"]["Dice"]) and math.isnan(ours["foreground_mean"]["Dice"])
    assert ours["mean"]["3"]["TN"] == 5 * 6 * 4
    # nnU-Net's own evaluation of the same folders is the oracle
    pytest.importorskip("nnunetv2")
    import warnings

    from nnunetv2.evaluation.evaluate_predictions import (
        compute_metrics_on_folder,
        load_summary_json,
    )
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of the all-NaN class 3
        compute_metrics_on_folder(
            str(tgt_dir), str(pred_dir), str(tmp_path / "nn.json"), SimpleITKIO(), ".nii.gz",
            [1, 2, 3], num_processes=1,
        )  # fmt: skip
    theirs = load_summary_json(str(tmp_path / "nn.json"))
    mine = load_summary_json(str(tmp_path / "s.json"))
    assert mine.keys() == theirs.keys() and mine["mean"].keys() == theirs["mean"].keys()
    for key in ("mean", "foreground_mean"):
        flat_m = mine[key] if key == "foreground_mean" else {}
        if key == "mean":
            for c in theirs["mean"]:
                for m, v in theirs["mean"][c].items():
                    assert _same(mine["mean"][c][m], v), (c, m)
        else:
            for m, v in theirs[key].items():
                assert _same(flat_m[m], v), m
    for a, b in zip(mine["metric_per_case"], theirs["metric_per_case"], strict=True):
        assert a["prediction_file"] == b["prediction_file"]
        assert a["reference_file"] == b["reference_file"]
        assert a["metrics"].keys() == b["metrics"].keys()
        for c in b["metrics"]:
            assert a["metrics"][c].keys() == b["metrics"][c].keys()
            for m, v in b["metrics"][c].items():
                assert _same(a["metrics"][c][m], v), (c, m)


def test_evaluate_expected_vs_realized(rng, tmp_path, capsys):
    d = tmp_path / "probs"
    d.mkdir()
    truth = {}
    for name in ("a", "b", "c", "d"):
        p = softmax(rng, (3, 6, 7, 5))
        np.save(d / f"{name}.npy", p)
        # a ground truth drawn from the probabilities (a calibrated model)
        u = rng.random(p.shape[1:])
        truth[name] = (u[None] > np.cumsum(p, axis=0)).sum(0).astype(np.uint8)
        np.save(tmp_path / f"{name}_gt.npy", truth[name])
    (tmp_path / "gt").mkdir()
    for name in truth:
        (tmp_path / f"{name}_gt.npy").rename(tmp_path / "gt" / f"{name}.npy")
    code, _, err = run(capsys, "predict", d, "-o", tmp_path / "out", "--info", tmp_path / "i.csv")
    assert code == 0, err
    (tmp_path / "out" / "d.npy").unlink()  # a case with info but no prediction
    code, out, err = run(
        capsys, "evaluate", tmp_path / "out", "--target", tmp_path / "gt", "--exclude-background",
        "--info", tmp_path / "i.csv", "--csv", tmp_path / "s.csv", "--report", tmp_path / "r.md",
    )  # fmt: skip
    assert code == 0, err
    info = {(r["case"], int(r["class"])): float(r["score"]) for r in read_csv(tmp_path / "i.csv")}
    exp, real = [], []
    for name in ("a", "b", "c"):
        labels = np.load(tmp_path / "out" / f"{name}.npy")
        dice = dice_score(labels[None], truth[name][None], num_classes=3)[0]
        for c in (1, 2):
            if not math.isnan(dice[c]):
                exp.append(info[name, c])
                real.append(dice[c])
    exp, real = np.array(exp), np.array(real)
    mae = np.abs(exp - real).mean()
    corr = np.corrcoef(exp, real)[0, 1]
    lines = out.splitlines()
    allrow = next(line for line in lines if line.split()[:1] == ["all"]).split()
    assert int(allrow[1]) == len(exp)
    assert float(allrow[4]) == pytest.approx(mae, abs=5e-5)
    assert float(allrow[6]) == pytest.approx(corr, abs=5e-4)
    assert "1 case(s) of --info were not evaluated" in err
    rows = read_csv(tmp_path / "s.csv")
    assert list(rows[0])[-1] == "expected"
    assert [float(r["expected"]) for r in rows] == [info[r["case"], int(r["class"])] for r in rows]
    report = (tmp_path / "r.md").read_text()
    assert "## Expected vs realized Dice" in report and f"{mae:.4f}" in report
    assert "## Worst cases" in report
    # a file that is not an --info table is a usage error naming it, before any work
    (tmp_path / "bad.csv").write_text("case,class,dice\n")
    with pytest.raises(SystemExit) as exc:
        run(capsys, "evaluate", tmp_path / "out", "--target", tmp_path / "gt",
            "--info", tmp_path / "bad.csv", "--json", tmp_path / "x.json")  # fmt: skip
    assert exc.value.code == 2
    assert "bad.csv: not a `rankseg predict --info` table" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_evaluate_report_html_and_usage_errors(rng, tmp_path, capsys):
    pred_dir, tgt_dir, preds, tgts = _label_folders(rng, tmp_path)
    code, out, err = run(
        capsys, "evaluate", pred_dir, "--target", tgt_dir, "--report", tmp_path / "r.html"
    )
    assert code == 0, err
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<h2>Scores per class</h2>" in page
    fg = [
        np.nanmean([dice_score(preds[n][None], tgts[n][None], num_classes=3)[0, c] for n in preds])
        for c in (1, 2)
    ]
    assert f"{np.mean(fg):.4f}" in page  # the foreground mean Dice
    for args, why in (
        (("--report", tmp_path / "r.txt"), "unknown report type"),
        (("--reliability", tmp_path / "r.png"), "--reliability needs --probs"),
        (("--json", tmp_path / "nofolder" / "s.json"), "does not exist"),
        (("--info", tmp_path / "missing.csv"), "missing.csv: no such file"),
    ):
        with pytest.raises(SystemExit) as exc:
            run(capsys, "evaluate", pred_dir, "--target", tgt_dir, *args)
        assert exc.value.code == 2 and why in capsys.readouterr().err


def test_evaluate_json_empty_ignore(rng, tmp_path, capsys):
    # 'ignore' leaves out every pair whose target is empty, also where the prediction
    # is not: the scores equal rankseg.metrics' with empty='ignore'
    pred_dir, tgt_dir, preds, tgts = _label_folders(rng, tmp_path)
    preds["c2"][0, 0, 0] = 2  # a prediction of class 2, absent from c2's target
    nib.save(nib.Nifti1Image(preds["c2"], np.eye(4)), pred_dir / "c2.nii.gz")
    code, _, err = run(
        capsys, "evaluate", pred_dir, "--target", tgt_dir, "--json", tmp_path / "s.json",
        "--num-classes", 4, "--empty", "ignore",
    )  # fmt: skip
    assert code == 0, err
    ours = json.loads((tmp_path / "s.json").read_text())
    left_out = 0
    for name, case in zip(sorted(preds), ours["metric_per_case"], strict=True):
        want = dice_score(preds[name][None], tgts[name][None], num_classes=4, empty="ignore")[0]
        for c in range(4):
            assert _same(case["metrics"][str(c)]["Dice"], float(want[c]))
            if (tgts[name] == c).sum() == 0 and (preds[name] == c).any():
                left_out += 1
                assert math.isnan(case["metrics"][str(c)]["Dice"])
    assert left_out  # the folders hold a prediction on an empty target


def test_evaluate_pairs_an_nnunet_folder_with_its_segmentations(rng, tmp_path, capsys):
    # an nnU-Net output folder holds CASE.nii.gz (segmentation) beside CASE.npz
    # (probabilities) and CASE.pkl: the target is the segmentation
    pred_dir, tgt_dir, preds, tgts = _label_folders(rng, tmp_path)
    for name in preds:
        np.savez(tgt_dir / f"{name}.npz", probabilities=softmax(rng, (3, 4, 6, 5), axis=0))
        (tgt_dir / f"{name}.pkl").write_bytes(b"")
    code, _, err = run(
        capsys, "evaluate", pred_dir, "--target", tgt_dir, "--json", tmp_path / "s.json",
        "--num-classes", 3,
    )  # fmt: skip
    assert code == 0, err
    ours = json.loads((tmp_path / "s.json").read_text())
    for name, case in zip(sorted(preds), ours["metric_per_case"], strict=True):
        assert case["reference_file"] == str(tgt_dir / f"{name}.nii.gz")
        want = dice_score(preds[name][None], tgts[name][None], num_classes=3)[0]
        assert all(_same(case["metrics"][str(c)]["Dice"], float(want[c])) for c in range(3))
