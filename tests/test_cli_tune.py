"""``rankseg tune``, ``predict --tuned`` and ``predict --empty`` end to end."""

import json

import numpy as np
import pytest

from rankseg import TunedRankSEG, predict
from rankseg.__main__ import main

T_MODEL = 0.6  # the files' probabilities are under-confident: sigmoid(0.6 logit p)


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def binary_val(tmp_path):
    """Eight cases of different sizes: (2, Y, X) softmax maps of an under-confident model
    and label maps drawn from the true probabilities."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    vd, gd = tmp_path / "val", tmp_path / "gt"
    vd.mkdir()
    gd.mkdir()
    cases = {}
    for k in range(8):
        size = 24 + 4 * (k % 3)
        z = gaussian_filter(rng.normal(size=(size, size)), 2.5)
        z = 4 * z / z.std() - 1
        y = (rng.uniform(size=z.shape) < 1 / (1 + np.exp(-z))).astype(np.uint8)
        fg = 1 / (1 + np.exp(-T_MODEL * z))
        q = np.stack([1 - fg, fg]).astype(np.float32)
        np.save(vd / f"case{k}.npy", q)
        np.save(gd / f"case{k}.npy", y)
        cases[f"case{k}"] = (q, y)
    return vd, gd, cases


def test_tune_writes_a_rule_predict_uses(binary_val, tmp_path, capsys):
    vd, gd, cases = binary_val
    rule_path = tmp_path / "tuned.json"
    code, out, err = run(
        capsys, "tune", vd, "--target", gd, "-o", rule_path, "--exclude-background",
        "--folds", "4", "--empty", "ignore",
    )  # fmt: skip
    assert code == 0, err
    assert "| argmax |" in out and "RankSEG tuned on the other folds" in out
    rule = TunedRankSEG.load(rule_path)
    assert rule.empty == "ignore" and rule.output_mode == "multiclass"
    assert rule.temperature is not None and 0.45 < rule.temperature < 0.8
    od = tmp_path / "out"
    code, _, err = run(capsys, "predict", vd, "-o", od, "--tuned", rule_path)
    assert code == 0, err
    for name, (q, _) in cases.items():
        got = np.load(od / f"{name}.npy")
        np.testing.assert_array_equal(got, rule.predict(q[None])[0])
        assert not np.array_equal(got, predict(q[None])[0]) or name == "case0"


def test_tune_failures_write_nothing(binary_val, tmp_path, capsys):
    vd, gd, cases = binary_val
    out = tmp_path / "tuned.json"
    y = cases["case3"][1].copy()
    y[0, 0] = 5
    np.save(gd / "case3.npy", y)
    code, _, err = run(capsys, "tune", vd, "--target", gd, "-o", out)
    assert code == 1
    assert "case3.npy: label 5 outside [0, 2)" in err and "nothing written" in err
    assert not out.exists()
    (gd / "case3.npy").unlink()
    code, _, err = run(capsys, "tune", vd, "--target", gd, "-o", out)
    assert code == 1 and "no target named case3" in err and not out.exists()
    with pytest.raises(SystemExit) as exc:
        run(capsys, "tune", vd, "--target", tmp_path / "nothere", "-o", out)
    assert exc.value.code == 2
    assert "--target" in (err := capsys.readouterr().err) and "no such file or folder" in err
    with pytest.raises(SystemExit) as exc:
        run(capsys, "tune", vd, "--target", gd, "-o", out, "--folds", "1")
    assert exc.value.code == 2
    assert "--folds must be >= 2" in capsys.readouterr().err


def test_predict_tuned_refuses_other_decision_options(binary_val, tmp_path, capsys):
    vd, gd, _ = binary_val
    rule_path = tmp_path / "tuned.json"
    assert run(capsys, "tune", vd, "--target", gd, "-o", rule_path, "--folds", "2")[0] == 0
    for extra in (["--metric", "iou"], ["--pruning-prob", "0.2"], ["--empty", "one"]):
        with pytest.raises(SystemExit) as exc:
            run(capsys, "predict", vd, "-o", tmp_path / "o", "--tuned", rule_path, *extra)
        assert exc.value.code == 2
        assert f"--tuned sets the decision; drop {extra[0]}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(capsys, "predict", vd, "-o", tmp_path / "o", "--tuned", rule_path,
            "--output-mode", "multilabel")  # fmt: skip
    assert "was tuned for --output-mode multiclass" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "rankseg-calibration"}))
    with pytest.raises(SystemExit):
        run(capsys, "predict", vd, "-o", tmp_path / "o", "--tuned", bad)
    assert "not a tuned RankSEG rule" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_predict_empty_option(tmp_path, capsys):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3, 16, 16)) * 2
    p = np.empty((4, 16, 16))
    p[:3] = 0.99 * np.exp(z) / np.exp(z).sum(0)
    p[3] = 0.01
    p[:, :2, :2] = np.array([0.2, 0.2, 0.2, 0.4])[:, None, None]  # a weak class wins here
    assert p[3].max() <= 0.5 and (p.argmax(0) == 3).any()
    np.save(tmp_path / "c.npy", p)
    for empty in ("zero", "one", "ignore"):
        od = tmp_path / empty
        code, _, err = run(capsys, "predict", tmp_path / "c.npy", "-o", od, "--empty", empty)
        assert code == 0, err
        np.testing.assert_array_equal(np.load(od / "c.npy"), predict(p[None], empty=empty)[0])
    one, zero = np.load(tmp_path / "one" / "c.npy"), np.load(tmp_path / "zero" / "c.npy")
    assert (one == 3).any() and not (zero == 3).any()
    with pytest.raises(SystemExit):
        run(capsys, "predict", tmp_path / "c.npy", "-o", tmp_path / "x", "--empty", "one",
            "--smooth", "1")  # fmt: skip
    assert "smooth" in capsys.readouterr().err


def test_calibrate_and_tune_read_zarr_stores(binary_val, tmp_path, capsys):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("zarr")
    from rankseg import calibration as cal

    _, _, cases = binary_val
    same = [c for c in cases.values() if c[0].shape[1:] == (24, 24)]  # one size: a batch
    probs = np.stack([q for q, _ in same])
    labels = np.stack([y for _, y in same])
    store = tmp_path / "val.zarr"
    da = xr.DataArray(probs, dims=("case", "class", "y", "x"), name="probabilities")
    da.to_dataset().to_zarr(store, consolidated=False)
    np.save(tmp_path / "val.npy", labels)
    code, out, err = run(
        capsys, "calibrate", store, "--target", tmp_path / "val.npy", "--batch",
        "-o", tmp_path / "c.json",
    )  # fmt: skip
    assert code == 0, err
    want = cal.TemperatureScaling().fit(probs, labels)
    assert cal.load(tmp_path / "c.json").temperature_ == pytest.approx(want.temperature_)
    code, out, err = run(
        capsys, "tune", store, "--target", tmp_path / "val.npy", "--batch", "--folds", "2",
        "-o", tmp_path / "t.json",
    )  # fmt: skip
    assert code == 0, err
    assert TunedRankSEG.load(tmp_path / "t.json").report.n_cases == len(same)
    np.save(tmp_path / "val.npy", labels[:, :20])  # the wrong shape: an error naming it
    code, _, err = run(
        capsys, "calibrate", store, "--target", tmp_path / "val.npy", "--batch",
        "-o", tmp_path / "d.json",
    )  # fmt: skip
    assert code == 1 and "val.zarr" in err and "does not fit" in err
    assert not (tmp_path / "d.json").exists()


def test_a_channel_first_nifti_is_an_error_not_wrong_labels(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(5)
    z = rng.normal(size=(3, 6, 5, 7)) * 2  # (C, X, Y, Z): channel first
    p = (np.exp(z) / np.exp(z).sum(0)).astype(np.float32)
    nib.save(nib.Nifti1Image(p, np.eye(4)), tmp_path / "c.nii.gz")
    code, _, err = run(capsys, "predict", tmp_path / "c.nii.gz", "-o", tmp_path / "o")
    assert code == 1
    assert "c.nii.gz" in err and "--class-axis" in err and "--accept-class-sums" in err
    assert not list((tmp_path / "o").glob("*.nii.gz"))  # nothing written for the case
    code, _, err = run(
        capsys, "predict", tmp_path / "c.nii.gz", "-o", tmp_path / "o", "--class-axis", "0"
    )
    assert code == 0, err
    got = np.asarray(nib.load(tmp_path / "o" / "c.nii.gz").dataobj)
    np.testing.assert_array_equal(got, predict(p[None])[0])
    code, _, err = run(
        capsys, "predict", tmp_path / "c.nii.gz", "-o", tmp_path / "o2", "--accept-class-sums"
    )
    assert code == 0, err
    assert (tmp_path / "o2" / "c.nii.gz").exists()
