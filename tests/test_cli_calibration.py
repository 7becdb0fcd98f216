"""``rankseg calibrate``, ``predict --calibration`` and ``evaluate --probs`` end to end.

The probability maps are made from known ones with a known distortion: a model whose
probabilities are ``p`` draws the ground truths, and the files hold ``softmax(2 log p)``
(over-confident by a temperature of 2) or ``σ(2 logit p)``.  The fitted temperature
must come back within a few percent of 2.  nnU-Net cross-validation folders are
written by nnU-Net's own exporter and writer (skipped without nnU-Net).
"""

import json
import math

import numpy as np
import pytest

from rankseg import predict
from rankseg.__main__ import main

from _nnunet_plans import nnunet_plans
from _optional import import_or_skip

cal = import_or_skip("rankseg.calibration")
nib = pytest.importorskip("nibabel")

T_TRUE = 2.0


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def softmax(x, axis=0):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def draw_labels(rng, p):
    """A label map drawn from the class probabilities ``p`` (C, *spatial)."""
    u = rng.random(p.shape[1:])
    return np.minimum((u[None] > np.cumsum(p, axis=0)).sum(0), p.shape[0] - 1).astype(np.uint8)


@pytest.fixture
def val(rng, tmp_path):
    """Five over-confident multiclass cases (.npy) and their drawn ground truths."""
    vd, gd = tmp_path / "val", tmp_path / "gt"
    vd.mkdir()
    gd.mkdir()
    cases = {}
    for k in range(5):
        p = softmax(rng.standard_normal((3, 6, 32, 32)) * 1.5)
        y = draw_labels(rng, p)
        q = softmax(T_TRUE * np.log(p)).astype(np.float32)
        np.save(vd / f"case{k}.npy", q)
        np.save(gd / f"case{k}.npy", y)
        cases[f"case{k}"] = (q, y)
    return vd, gd, cases


def table(out):
    """The before/after rows printed by calibrate: {metric: (before, after)}."""
    rows = {}
    for line in out.splitlines():
        for name in ("NLL", "Brier", "ECE"):
            if line.startswith(name):
                rows[name] = tuple(float(v) for v in line.split()[-2:])
    return rows


def test_calibrate_recovers_the_temperature(val, tmp_path, capsys):
    vd, gd, cases = val
    code, out, err = run(capsys, "calibrate", vd, "--target", gd, "-o", tmp_path / "c.json")
    assert code == 0, err
    model = cal.load(tmp_path / "c.json")
    assert isinstance(model, cal.TemperatureScaling)
    assert model.temperature_ == pytest.approx(T_TRUE, rel=0.05)
    assert f"temperature T = {model.temperature_:.4f}" in out
    # before -> after are the metrics of all cases' pixels together
    pairs = [(q[None], y[None]) for q, y in cases.values()]
    after = [(model.transform(q), y) for q, y in pairs]
    rows = table(out)
    assert rows["NLL"][0] == pytest.approx(cal.nll(pairs), abs=5e-5)
    assert rows["NLL"][1] == pytest.approx(cal.nll(after), abs=5e-5)
    assert rows["Brier"][1] == pytest.approx(cal.brier(after), abs=5e-5)
    assert rows["ECE"][0] == pytest.approx(cal.ece(pairs), abs=5e-5)
    assert rows["ECE"][1] == pytest.approx(cal.ece(after), abs=5e-5)
    assert rows["ECE"][1] < rows["ECE"][0] / 3 and rows["NLL"][1] < rows["NLL"][0]
    # vector scaling: one weight per class, each near 1 / T
    code, out, err = run(
        capsys, "calibrate", vd, "--target", gd, "-o", tmp_path / "v.json", "--method", "vector"
    )
    assert code == 0, err
    vec = cal.load(tmp_path / "v.json")
    np.testing.assert_allclose(vec.weights_, 1 / T_TRUE, rtol=0.1)


def test_calibrate_multilabel_sigmoid(rng, tmp_path, capsys):
    (tmp_path / "val").mkdir()
    (tmp_path / "gt").mkdir()
    for k in range(4):
        logit = rng.standard_normal((2, 8, 24, 24)) * 2
        p = 1 / (1 + np.exp(-logit))
        masks = rng.random(p.shape) < p
        np.save(tmp_path / "val" / f"c{k}.npy", (1 / (1 + np.exp(-T_TRUE * logit))).astype("f4"))
        np.save(tmp_path / "gt" / f"c{k}.npy", masks)  # bool masks (C, *spatial)
    code, out, err = run(
        capsys, "calibrate", tmp_path / "val", "--target", tmp_path / "gt",
        "-o", tmp_path / "m.json", "--output-mode", "multilabel",
    )  # fmt: skip
    assert code == 0, err
    model = cal.load(tmp_path / "m.json")
    assert model.mode == "multilabel" and model.n_classes_ == 2
    assert model.temperature_ == pytest.approx(T_TRUE, rel=0.05)
    # masks cannot calibrate softmax classes
    code, _, err = run(
        capsys,
        "calibrate",
        tmp_path / "val",
        "--target",
        tmp_path / "gt",
        "-o",
        tmp_path / "x.json",
    )
    assert code == 1 and "holds masks; a multiclass calibration needs a label map" in err
    assert not (tmp_path / "x.json").exists()


def test_calibrate_failures_write_nothing(val, tmp_path, capsys):
    vd, gd, cases = val
    out = tmp_path / "c.json"
    # a case without a target: named, before any case is read
    (gd / "case4.npy").rename(tmp_path / "elsewhere.npy")
    code, _, err = run(capsys, "calibrate", vd, "--target", gd, "-o", out)
    assert code == 1 and "case4.npy: no target named case4.* in --target" in err
    assert "nothing written" in err and not out.exists()
    (tmp_path / "elsewhere.npy").rename(gd / "case4.npy")
    # the same case twice (two folders of the same cases are not cross-validation folds)
    (tmp_path / "again").mkdir()
    np.save(tmp_path / "again" / "case3.npy", cases["case3"][0])
    code, _, err = run(capsys, "calibrate", vd, tmp_path / "again", "--target", gd, "-o", out)
    assert code == 1 and "again/case3.npy: the case case3 is also" in err and not out.exists()
    # a target of another shape, a label out of range: the case is named, nothing written
    np.save(gd / "case2.npy", np.zeros((6, 32, 31), np.uint8))
    code, _, err = run(capsys, "calibrate", vd, "--target", gd, "-o", out)
    assert code == 1 and "case2.npy: the target" in err and "does not fit" in err
    assert not out.exists()
    np.save(gd / "case2.npy", np.full((6, 32, 32), 7, np.uint8))
    code, _, err = run(capsys, "calibrate", vd, "--target", gd, "-o", out)
    assert code == 1 and "case2.npy: labels hold 7" in err and not out.exists()
    # ... unless 7 is the void label (left out; a case of only void is an error)
    code, _, err = run(capsys, "calibrate", vd, "--target", gd, "-o", out, "--ignore-index", 7)
    assert code == 1 and "case2.npy: the case has no counted pixel" in err and not out.exists()
    y = cases["case2"][1].copy()
    y[:3] = 7
    np.save(gd / "case2.npy", y)
    code, _, err = run(capsys, "calibrate", vd, "--target", gd, "-o", out, "--ignore-index", 7)
    assert code == 0, err
    model = cal.load(out)
    assert model.ignore_index == 7 and model.n_seen_ == 5 * 6 * 32 * 32 - 3 * 32 * 32
    # probabilities that are not probabilities
    np.save(vd / "case1.npy", np.full((3, 6, 32, 32), 2.0, np.float32))
    out.unlink()
    code, _, err = run(capsys, "calibrate", vd, "--target", gd, "-o", out)
    assert code == 1 and "case1.npy" in err and not out.exists()
    # usage errors: exit 2
    for args, why in (
        (("-o", tmp_path / "no" / "c.json"), "does not exist"),
        (("-o", out, "--max-pixels", 0), "--max-pixels must be >= 1"),
    ):
        with pytest.raises(SystemExit) as exc:
            run(capsys, "calibrate", vd, "--target", gd, *args)
        assert exc.value.code == 2 and why in capsys.readouterr().err


def test_predict_with_calibration(val, tmp_path, capsys):
    vd, gd, cases = val
    code, _, err = run(capsys, "calibrate", vd, "--target", gd, "-o", tmp_path / "c.json")
    assert code == 0, err
    model = cal.load(tmp_path / "c.json")
    code, _, err = run(
        capsys, "predict", vd, "-o", tmp_path / "out", "--calibration", tmp_path / "c.json"
    )
    assert code == 0, err
    changed = 0
    for name, (q, _) in cases.items():
        got = np.load(tmp_path / "out" / f"{name}.npy")
        want = predict(model.transform(q[None]))[0]
        np.testing.assert_array_equal(got, want)
        changed += int((got != predict(q[None])[0]).sum())
    assert changed > 0  # the calibration changed decisions
    # -j 2: the calibration travels to the worker processes
    code, _, err = run(
        capsys, "predict", vd, "-o", tmp_path / "par", "-j", 2, "--calibration", tmp_path / "c.json"
    )
    assert code == 0, err
    for name in cases:
        np.testing.assert_array_equal(
            np.load(tmp_path / "par" / f"{name}.npy"), np.load(tmp_path / "out" / f"{name}.npy")
        )
    # a case with another class count: an error line for that case, naming the file
    np.save(tmp_path / "four.npy", softmax(np.ones((4, 3, 3))).astype(np.float32))
    code, _, err = run(
        capsys, "predict", vd / "case0.npy", tmp_path / "four.npy", "-o", tmp_path / "o2",
        "--calibration", tmp_path / "c.json",
    )  # fmt: skip
    assert code == 1
    assert f"four.npy: --calibration {tmp_path / 'c.json'} was fitted for 3 class(es)" in err
    assert "1 written, 0 skipped (output exists), 1 failed" in err
    # a file that is not a calibration: usage error, before any output
    (tmp_path / "bad.json").write_text(json.dumps({"temperature": 2}))
    for bad, why in (
        (tmp_path / "bad.json", "not a rankseg calibration"),
        (tmp_path / "no.json", "no such file"),
    ):
        with pytest.raises(SystemExit) as exc:
            run(capsys, "predict", vd, "-o", tmp_path / "o3", "--calibration", bad)
        assert exc.value.code == 2 and why in capsys.readouterr().err
        assert not (tmp_path / "o3").exists()
    with pytest.raises(SystemExit) as exc:
        run(capsys, "predict", vd, "-o", tmp_path / "o3", "--calibration", tmp_path / "c.json",
            "--output-mode", "multilabel")  # fmt: skip
    assert exc.value.code == 2 and "fitted for --output-mode multiclass" in capsys.readouterr().err


def test_predict_ensemble_with_calibration(val, tmp_path, capsys):
    vd, gd, cases = val
    code, _, err = run(capsys, "calibrate", vd, "--target", gd, "-o", tmp_path / "c.json")
    assert code == 0, err
    model = cal.load(tmp_path / "c.json")
    folds = [tmp_path / "f0", tmp_path / "f1"]
    for k, f in enumerate(folds):
        f.mkdir()
        for name, (q, _) in cases.items():
            np.savez(f / f"{name}.npz", probabilities=np.roll(q, k, axis=-1))
    code, _, err = run(
        capsys, "predict", *folds, "--ensemble", "-o", tmp_path / "out",
        "--calibration", tmp_path / "c.json",
    )  # fmt: skip
    assert code == 0, err
    for name, (q, _) in cases.items():
        avg = q.copy()
        avg += np.roll(q, 1, axis=-1)
        avg /= 2
        with np.load(tmp_path / "out" / f"{name}.npz") as f:
            np.testing.assert_array_equal(f["labels"], predict(model.transform(avg[None]))[0])


def test_evaluate_probs_and_reliability(val, tmp_path, capsys):
    vd, gd, cases = val
    code, _, err = run(capsys, "predict", vd, "-o", tmp_path / "out")
    assert code == 0, err
    code, out, err = run(
        capsys, "evaluate", tmp_path / "out", "--target", gd, "--probs", vd, "--n-bins", 10,
        "--report", tmp_path / "r.md",
    )  # fmt: skip
    assert code == 0, err
    pairs = [(q[None], y[None]) for q, y in cases.values()]
    lines = {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.strip()}
    assert float(lines["NLL"]) == pytest.approx(cal.nll(pairs), abs=5e-5)
    assert float(lines["ECE"]) == pytest.approx(cal.ece(pairs, n_bins=10), abs=5e-5)
    report = (tmp_path / "r.md").read_text()
    assert "## Calibration of the probabilities" in report
    assert f"{cal.ece(pairs, n_bins=10):.4f}" in report
    # the reliability diagram (needs matplotlib and rankseg.plot.plot_reliability)
    pytest.importorskip("matplotlib")
    if not hasattr(pytest.importorskip("rankseg.plot"), "plot_reliability"):
        pytest.skip("rankseg.plot.plot_reliability is not there yet")
    code, out, err = run(
        capsys, "evaluate", tmp_path / "out", "--target", gd, "--probs", vd,
        "--reliability", tmp_path / "rel.png", "--report", tmp_path / "r.html",
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "rel.png").read_bytes()[:4] == b"\x89PNG"
    assert '<img src="rel.png"' in (tmp_path / "r.html").read_text()


def test_reliability_without_matplotlib(val, tmp_path, capsys, monkeypatch):
    import builtins

    vd, gd, _ = val
    real_import = builtins.__import__

    def no_mpl(name, *args, **kw):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(SystemExit) as exc:
        run(
            capsys,
            "evaluate",
            gd,
            "--target",
            gd,
            "--probs",
            vd,
            "--reliability",
            tmp_path / "r.png",
        )
    err = capsys.readouterr().err
    assert (
        exc.value.code == 2
        and "--reliability needs matplotlib (pip install 'rankseg-numba[plot]')" in err
    )


# ------------------------------------------------- nnU-Net cross-validation folders


SHAPE = (10, 14, 12)  # voxel axes (X, Y, Z) of the image files


def _nnunet_plans(io_name, spacing):
    return nnunet_plans(io_name, spacing, SHAPE, "Dataset998_Calib")


@pytest.mark.parametrize("io_name", ["SimpleITKIO", "NibabelIOWithReorient"])
def test_calibrate_nnunet_cross_validation_folders(rng, tmp_path, capsys, io_name):
    """Two fold_k/validation folders written by nnU-Net, ground truths by nnU-Net's writer.

    The images have a permuted, flipped orientation, so a ground truth read in the
    wrong axis order would not fit (or would not match its probabilities, and the
    temperature would run off).
    """
    import_or_skip("torch")
    import_or_skip("SimpleITK")
    import_or_skip("nnunetv2")
    import torch
    from nnunetv2.imageio.nibabel_reader_writer import NibabelIOWithReorient
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from nnunetv2.inference.export_prediction import export_prediction_from_logits
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    rw = {"SimpleITKIO": SimpleITKIO, "NibabelIOWithReorient": NibabelIOWithReorient}[io_name]()
    spacing = (0.8, 1.5, 1.2)
    affine = np.zeros((4, 4))
    affine[:3, :3] = np.array([[0, 0, -1.0], [-1.0, 0, 0], [0, 1.0, 0]]) * spacing  # a 3-cycle
    affine[:3, 3] = (-20.0, 10.0, 5.0)
    affine[3, 3] = 1
    ds = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "a": 1, "b": 2},
        "numTraining": 6,
        "file_ending": ".nii.gz",
    }
    raw, gt = tmp_path / "raw", tmp_path / "gt"
    raw.mkdir()
    gt.mkdir()
    folds = []
    for k in range(2):
        f = tmp_path / f"fold_{k}" / "validation"
        f.mkdir(parents=True)
        (f / "dataset.json").write_text(json.dumps(ds))
        (f / "plans.json").write_text(json.dumps(_nnunet_plans(io_name, spacing)))
        folds.append(f)
    for i in range(6):
        case = f"case_{i:02d}"
        img = nib.Nifti1Image(np.zeros(SHAPE, np.float32), affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        nib.save(img, raw / f"{case}_0000.nii.gz")
        data, props = rw.read_images([str(raw / f"{case}_0000.nii.gz")])
        shape = data.shape[1:]
        props.update(
            shape_before_cropping=shape,
            bbox_used_for_cropping=[[0, s] for s in shape],
            shape_after_cropping_and_before_resampling=shape,
        )
        # a smooth-ish field so that the orientation matters
        logits = rng.standard_normal((3, *shape)) * 1.5
        logits[1] += np.linspace(-2, 2, shape[0])[:, None, None]
        logits[2] += np.linspace(-2, 2, shape[2])[None, None, :]
        p = softmax(logits)
        rw.write_seg(draw_labels(rng, p), str(gt / f"{case}.nii.gz"), props)
        pm = PlansManager(_nnunet_plans(io_name, props["spacing"]))
        export_prediction_from_logits(
            torch.from_numpy((T_TRUE * logits).astype(np.float32)),
            props,
            pm.get_configuration("3d_fullres"),
            pm,
            ds,
            str(folds[i % 2] / case),
            save_probabilities=True,
            num_threads_torch=1,
        )
    code, out, err = run(capsys, "calibrate", *folds, "--target", gt, "-o", tmp_path / "c.json")
    assert code == 0, err
    model = cal.load(tmp_path / "c.json")
    assert model.n_seen_ == 6 * math.prod(SHAPE)
    assert model.temperature_ == pytest.approx(T_TRUE, rel=0.1)
    # predict with it: the labels are those of the calibrated probabilities
    code, _, err = run(
        capsys, "predict", folds[0], "-o", tmp_path / "out", "--calibration", tmp_path / "c.json"
    )
    assert code == 0, err
    # and evaluate pairs the label maps with the same ground truths
    code, out, err = run(
        capsys, "evaluate", tmp_path / "out", "--target", gt, "--probs", folds[0],
        "--json", tmp_path / "summary.json",
    )  # fmt: skip
    assert code == 0, err
    assert len(json.loads((tmp_path / "summary.json").read_text())["metric_per_case"]) == 3


def test_calibrate_progress_and_help(val, tmp_path, capsys, monkeypatch):
    pytest.importorskip("tqdm")
    import sys

    vd, gd, _ = val
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    code, _, err = run(capsys, "calibrate", vd, "--target", gd, "-o", tmp_path / "c.json")
    assert code == 0 and "5/5" in err  # one bar for the fit, one for the check
    code, _, err = run(
        capsys, "calibrate", vd, "--target", gd, "-o", tmp_path / "d.json", "--no-progress"
    )
    assert code == 0 and "5/5" not in err
    for cmd, example in (
        ("calibrate", "Example: rankseg calibrate fold_0/validation"),
        ("predict", "--calibration calibration.json"),
        ("evaluate", "--json summary.json"),
    ):
        with pytest.raises(SystemExit):
            run(capsys, cmd, "-h")
        assert example in " ".join(capsys.readouterr().out.split())


def test_calibrate_region_based_nnunet_defaults_to_multilabel(rng, tmp_path, capsys):
    """A region-based dataset: one sigmoid per region, the regions of dataset.json as masks."""
    nn, gt = tmp_path / "nn", tmp_path / "gt"
    nn.mkdir()
    gt.mkdir()
    ds = {"labels": {"background": 0, "whole": [1, 2], "core": 2}, "regions_class_order": [1, 2]}
    (nn / "dataset.json").write_text(json.dumps(ds))
    for k in range(3):
        seg = rng.integers(0, 3, (6, 20, 20))  # nnU-Net's (Z, Y, X)
        regions = np.stack([seg >= 1, seg == 2]).astype(float)
        logit = (regions * 2 - 1) * 1.2 + rng.standard_normal(regions.shape)
        p = 1 / (1 + np.exp(-logit))
        # the truth: whole ~ p[0], core inside whole ~ p[1], so P(core) = p[0] p[1]
        whole = rng.random(p.shape[1:]) < p[0]
        core = whole & (rng.random(p.shape[1:]) < p[1])
        true = np.stack([p[0], p[0] * p[1]])
        lt = np.log(true) - np.log1p(-true)
        stored = 1 / (1 + np.exp(-T_TRUE * lt))  # the model: over-confident by T_TRUE
        np.savez(nn / f"r{k}.npz", probabilities=stored.astype("f4"))
        nib.save(nib.Nifti1Image(np.zeros((20, 20, 6), np.uint8), np.eye(4)), nn / f"r{k}.nii.gz")
        lab = np.where(core, 2, np.where(whole, 1, 0)).astype(np.uint8)
        nib.save(nib.Nifti1Image(lab.transpose(2, 1, 0), np.eye(4)), gt / f"r{k}.nii.gz")
    code, out, err = run(capsys, "calibrate", nn, "--target", gt, "-o", tmp_path / "c.json")
    assert code == 0, err
    model = cal.load(tmp_path / "c.json")
    assert model.mode == "multilabel" and model.n_classes_ == 2
    assert "(multilabel, 2 class(es)" in out
    assert model.temperature_ == pytest.approx(T_TRUE, rel=0.1)


def test_calibrate_nifti_and_batch_npz(val, tmp_path, capsys):
    """The same cases as 4-D NIfTI maps (X, Y, Z, C) and as one --batch .npz."""
    vd, gd, cases = val
    (tmp_path / "nii").mkdir()
    (tmp_path / "niigt").mkdir()
    for name, (q, y) in cases.items():
        nib.save(
            nib.Nifti1Image(np.moveaxis(q, 0, -1), np.eye(4)), tmp_path / "nii" / f"{name}.nii.gz"
        )
        nib.save(nib.Nifti1Image(y, np.eye(4)), tmp_path / "niigt" / f"{name}.nii.gz")
    code, _, err = run(
        capsys, "calibrate", tmp_path / "nii", "--target", tmp_path / "niigt",
        "-o", tmp_path / "n.json",
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, "calibrate", vd, "--target", gd, "-o", tmp_path / "c.json")
    assert code == 0, err
    t_npy = cal.load(tmp_path / "c.json").temperature_
    assert cal.load(tmp_path / "n.json").temperature_ == pytest.approx(t_npy, rel=1e-6)
    # one batch file and one batch target, paired whatever their names
    np.savez(tmp_path / "all.npz", probabilities=np.stack([q for q, _ in cases.values()]))
    np.save(tmp_path / "all_gt.npy", np.stack([y for _, y in cases.values()]))
    code, _, err = run(
        capsys, "calibrate", tmp_path / "all.npz", "--batch", "--target", tmp_path / "all_gt.npy",
        "-o", tmp_path / "b.json",
    )  # fmt: skip
    assert code == 0, err
    assert cal.load(tmp_path / "b.json").temperature_ == pytest.approx(t_npy, rel=1e-6)
    # a map with one class cannot be multiclass: the option to use is named
    np.save(tmp_path / "one.npy", np.full((1, 4, 4), 0.3, np.float32))
    np.save(tmp_path / "one_gt.npy", np.zeros((4, 4), np.uint8))
    code, _, err = run(
        capsys, "calibrate", tmp_path / "one.npy", "--target", tmp_path / "one_gt.npy",
        "-o", tmp_path / "o.json",
    )  # fmt: skip
    assert code == 1 and "one.npy" in err and "--output-mode multilabel" in err
