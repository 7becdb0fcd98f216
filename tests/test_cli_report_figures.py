"""``rankseg evaluate --report --probs``: the per-case figures of the cases where the
decision changed most (issue: pictures people look at, part 3)."""

import csv
import re

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from rankseg import predict  # noqa: E402
from rankseg.cli import main  # noqa: E402
from rankseg.datasets import ct3d, sample_truth  # noqa: E402


@pytest.fixture
def evaluated(tmp_path):
    """Four 3-D cases: probabilities, RankSEG labels (with --info) and drawn truths."""
    rng = np.random.default_rng(5)
    (tmp_path / "probs").mkdir()
    (tmp_path / "gt").mkdir()
    probs = {}
    for i in range(4):
        p = ct3d(seed=10 + i, shape=(1, 3, 6, 20, 16))
        probs[f"case_{i}"] = p[0]
        np.save(tmp_path / "probs" / f"case_{i}.npy", p[0])
        truth = sample_truth(p, rng, kind="softmax")[0].astype(np.uint8)
        np.save(tmp_path / "gt" / f"case_{i}.npy", truth)
    code = main(["predict", str(tmp_path / "probs"), "-o", str(tmp_path / "labels"),
                 "--info", str(tmp_path / "info.csv"), "-q"])  # fmt: skip
    assert code == 0
    return tmp_path, probs


def _changed(tmp_path, probs):
    return {
        name: int((np.load(tmp_path / "labels" / f"{name}.npy") != p.argmax(0)).sum())
        for name, p in probs.items()
    }


def test_report_draws_the_cases_that_changed_most(evaluated, capsys, monkeypatch):
    tmp_path, probs = evaluated
    import rankseg.plot

    drawn = []
    real = rankseg.plot.plot_case

    def spy(p, **kw):
        fig = real(p, **kw)
        drawn.append((p, kw, fig))
        return fig

    monkeypatch.setattr(rankseg.plot, "plot_case", spy)
    code = main([
        "evaluate", str(tmp_path / "labels"), "--target", str(tmp_path / "gt"),
        "--probs", str(tmp_path / "probs"), "--info", str(tmp_path / "info.csv"),
        "--report", str(tmp_path / "r.md"), "--report-cases", "2",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    changed = _changed(tmp_path, probs)
    assert all(changed.values())  # RankSEG changed every case here
    want = sorted(changed, key=lambda n: (-changed[n], n))[:2]
    pngs = sorted(p.name for p in (tmp_path / "r_cases").iterdir())
    assert pngs == sorted(f"{n}.png" for n in want)
    for n in want:
        assert (tmp_path / "r_cases" / f"{n}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "r.md").read_text()
    links = re.findall(r"!\[([^]]*)\]\(([^)]*)\)", report)
    assert [link for _, link in links] == [f"r_cases/{n}.png" for n in want]  # in order
    for n in want:
        assert f"{n}: {changed[n]:,} of {6 * 20 * 16:,} voxels changed" in report
    # the drawn artists: argmax, the evaluated labels, --info's expected Dice
    info = {}
    with open(tmp_path / "info.csv", newline="") as f:
        for row in csv.DictReader(f):
            info[row["case"], int(row["class"])] = float(row["score"])
    assert len(drawn) == 2
    for name, (p, kw, fig) in zip(want, drawn, strict=True):
        np.testing.assert_array_equal(p, probs[name])
        labels = np.load(tmp_path / "labels" / f"{name}.npy")
        argmax = probs[name].argmax(0)
        np.testing.assert_array_equal(kw["labels_a"], argmax)
        np.testing.assert_array_equal(kw["labels_b"], labels)
        # the slice with the most changed voxels, and its index in the suptitle
        per_slice = (labels != argmax).reshape(6, -1).sum(1)
        z = int(np.argmax(per_slice))
        assert fig.get_suptitle() == (
            f"{name} ({changed[name]:,} voxels changed): axis 0, index {z} of 6"
        )
        titles = [ax.get_title() for ax in fig.axes[:4]]
        assert titles[0] == "max probability" and titles[1] == "argmax"
        assert titles[3].startswith("prediction − argmax")
        np.testing.assert_allclose(fig.axes[0].images[0].get_array(), probs[name][:, z].max(0))
        shown = [c for c in (1, 2) if (labels[z] == c).any()]  # plot_case: no background
        sizes = {c: int((labels[z] == c).sum()) for c in shown}
        top = sorted(sorted(shown, key=lambda c: -sizes[c])[:4])
        items = [f"class {c} {info[name, c]:.2f}" for c in top]
        pairs = [", ".join(items[i : i + 2]) for i in range(0, len(items), 2)]
        assert titles[2] == "prediction\nE[Dice]: " + ",\n".join(pairs)
        # the panels are filled where the decisions have a foreground class
        fill_a = np.asarray(fig.axes[1].images[1].get_array())
        fill_b = np.asarray(fig.axes[2].images[1].get_array())
        assert (fill_a[..., 3] > 0).sum() == (argmax[z] > 0).sum()
        assert (fill_b[..., 3] > 0).sum() == (labels[z] > 0).sum()
        legend = [t.get_text() for t in fig.axes[4].get_legend().get_texts()]
        added = ((labels[z] > 0) & (argmax[z] == 0)).sum()
        assert any(t.startswith(f"added: {added} voxel") for t in legend), legend


def test_report_figures_without_info_use_the_rma_estimate(evaluated, capsys):
    from rankseg.cli._casefigs import rma_expected

    tmp_path, probs = evaluated
    code = main([
        "evaluate", str(tmp_path / "labels"), "--target", str(tmp_path / "gt"),
        "--probs", str(tmp_path / "probs"), "--report", str(tmp_path / "r.html"), "-q",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    page = (tmp_path / "r.html").read_text()
    assert page.count('<img src="r_cases/') == 4  # default: up to 6; four cases changed
    assert "(from RMA estimate)" in page
    # the RMA estimate is SPEC's F(tau) at the mask's own volume
    p = probs["case_0"]
    labels = np.load(tmp_path / "labels" / "case_0.npy")
    est = rma_expected(p, labels, "dice", masks=False)
    for c in range(3):
        sel = labels == c
        mu, s, tau = p[c].sum(), p[c][sel].sum(), sel.sum()
        assert est[c] == pytest.approx(2 * s / (mu + tau + 1))
    # argmax labels: nothing changed, nothing drawn, and the report says so
    (tmp_path / "am").mkdir()
    for name, q in probs.items():
        np.save(tmp_path / "am" / f"{name}.npy", q.argmax(0).astype(np.uint8))
    code = main([
        "evaluate", str(tmp_path / "am"), "--target", str(tmp_path / "gt"),
        "--probs", str(tmp_path / "probs"), "--report", str(tmp_path / "a.md"), "-q",
    ])  # fmt: skip
    assert code == 0
    assert "nothing to draw" in (tmp_path / "a.md").read_text()
    assert not (tmp_path / "a_cases").exists()


def test_report_cases_usage_errors(evaluated, capsys):
    tmp_path, _ = evaluated
    base = ["evaluate", str(tmp_path / "labels"), "--target", str(tmp_path / "gt")]
    for extra, why in (
        (["--report-cases", "2"], "--report-cases needs --report REPORT and --probs"),
        (["--report", str(tmp_path / "r.md"), "--report-cases", "2"], "needs --report"),
        (["--report", str(tmp_path / "r.md"), "--probs", str(tmp_path / "probs"),
          "--report-cases", "-1"], "--report-cases must be >= 0"),
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exc:
            main([*base, *extra])
        assert exc.value.code == 2 and why in capsys.readouterr().err
    # 0: the report without figures
    code = main([*base, "--report", str(tmp_path / "z.md"), "--probs", str(tmp_path / "probs"),
                 "--report-cases", "0", "-q"])  # fmt: skip
    assert code == 0 and "Where the decision" not in (tmp_path / "z.md").read_text()


def test_report_figure_of_a_multilabel_nifti_case(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(1)
    p = ct3d(seed=3, shape=(1, 2, 10, 12, 8))[0]  # (C, X, Y, Z): two sigmoid-like maps
    affine = np.diag([-1.0, 1.0, 2.0, 1.0])
    (tmp_path / "probs").mkdir()
    nib.save(nib.Nifti1Image(np.moveaxis(p, 0, -1), affine), tmp_path / "probs" / "k.nii.gz")
    masks = predict(p[None], output_mode="multilabel")[0]
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(np.moveaxis(masks, 0, -1).astype(np.uint8), affine),
             tmp_path / "pred" / "k.nii.gz")  # fmt: skip
    truth = rng.random(p.shape) < p
    (tmp_path / "gt").mkdir()
    nib.save(nib.Nifti1Image(np.moveaxis(truth, 0, -1).astype(np.uint8), affine),
             tmp_path / "gt" / "k.nii.gz")  # fmt: skip
    code = main([
        "evaluate", str(tmp_path / "pred"), "--target", str(tmp_path / "gt"),
        "--probs", str(tmp_path / "probs"), "--report", str(tmp_path / "r.md"), "-q",
    ])  # fmt: skip
    err = capsys.readouterr().err
    changed = int(((p > 0.5) != masks).sum())
    if changed == 0:
        pytest.skip("RankSEG kept p > 0.5 here")
    assert code == 0, err
    assert (tmp_path / "r_cases" / "k.png").is_file()
    assert f"k: {changed:,} of" in (tmp_path / "r.md").read_text()


def test_report_figure_of_an_nnunet_case_is_axial_with_the_label_names(tmp_path, capsys):
    import json
    import pickle

    nib = pytest.importorskip("nibabel")
    nn, gt = tmp_path / "nnunet_out", tmp_path / "gt"
    nn.mkdir()
    gt.mkdir()
    labels = {"background": 0, "liver": 1, "tumour": 2}
    (nn / "dataset.json").write_text(json.dumps({"file_ending": ".nii.gz", "labels": labels}))
    affine = np.diag([-0.8, -0.8, 2.5, 1.0])
    probs = ct3d(seed=0, shape=(1, 3, 8, 20, 16))[0]  # nnU-Net's (C, Z, Y, X)
    np.savez_compressed(nn / "case_000.npz", probabilities=probs)
    props = {"sitk_stuff": {"spacing": (0.8, 0.8, 2.5), "origin": (0.0, 0.0, 0.0),
                            "direction": (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)}}  # fmt: skip
    (nn / "case_000.pkl").write_bytes(pickle.dumps(props))
    seg = nib.Nifti1Image(probs.argmax(0).T.astype(np.uint8), affine)  # (X, Y, Z)
    nib.save(seg, nn / "case_000.nii.gz")
    nib.save(seg, gt / "case_000.nii.gz")
    assert main(["predict", str(nn), "-o", str(tmp_path / "rs"), "-q"]) == 0
    import rankseg.plot

    drawn = []
    real = rankseg.plot.plot_case

    def spy(p, **kw):
        drawn.append(real(p, **kw))
        return drawn[-1]

    mp = pytest.MonkeyPatch()
    mp.setattr(rankseg.plot, "plot_case", spy)
    try:
        code = main(["evaluate", str(tmp_path / "rs"), "--target", str(gt), "--probs", str(nn),
                     "--report", str(tmp_path / "r.md"), "-q"])  # fmt: skip
    finally:
        mp.undo()
    assert code == 0, capsys.readouterr().err
    ours = np.asarray(nib.load(tmp_path / "rs" / "case_000.nii.gz").dataobj).T  # (Z, Y, X)
    changed = int((ours != probs.argmax(0)).sum())
    assert changed and len(drawn) == 1
    fig = drawn[0]
    # nnU-Net's array axis 0 is Z: the axial plane, oriented by the case's geometry
    assert fig.get_suptitle().startswith(f"case_000 ({changed:,} voxels changed): axial slice")
    assert "axis 0" in fig.get_suptitle()
    assert "liver" in fig.axes[2].get_title() or "tumour" in fig.axes[2].get_title()
    key = [t.get_text() for t in fig.axes[4].get_legend().get_texts()]
    assert key[:2] == ["liver", "tumour"]
    assert (tmp_path / "r_cases" / "case_000.png").is_file()
