"""rankseg.plot: smoke tests that render PNGs with the Agg backend and check them."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rankseg import predict  # noqa: E402
from rankseg.plot import plot_gains, plot_overlay, plot_score_curve, score_curve  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_png(path, min_size=(200, 150)):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    img = matplotlib.image.imread(path)
    assert img.shape[1] >= min_size[0] and img.shape[0] >= min_size[1]
    assert img[..., :3].std() > 0.01  # not blank
    return img


def probs_slice(rng, c=3, h=24, w=24):
    x = rng.standard_normal((c, h, w))
    x = np.cumsum(np.cumsum(x, axis=1), axis=2) / 6  # smooth-ish regions
    e = np.exp(x - x.max(0))
    return e / e.sum(0)


def test_plot_overlay_label_maps(rng, tmp_path):
    p = probs_slice(rng)
    a = p.argmax(0)
    b = predict(p[None, :, :, :], pruning_prob=0.0)[0]
    ax = plot_overlay(p, a, b, names=("argmax", "RankSEG"), title="slice")
    assert isinstance(ax, Axes) and isinstance(ax.figure, Figure)
    assert ax.get_title() == "slice"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["argmax", "RankSEG"]
    ax.figure.savefig(tmp_path / "overlay.png")
    check_png(tmp_path / "overlay.png")


def test_plot_overlay_masks_on_given_axes(rng, tmp_path):
    p = probs_slice(rng, c=2)
    fig = Figure(figsize=(6, 3))
    ax1, ax2 = fig.subplots(1, 2)
    out = plot_overlay(p[0], p > 0.5, ax=ax2)  # grayscale image, masks, one segmentation
    assert out is ax2 and len(fig.axes) == 2  # no colorbar for a plain image
    fig.savefig(tmp_path / "masks.png")
    check_png(tmp_path / "masks.png")


@pytest.mark.parametrize("shape", [(1, 30), (30, 1)])
def test_plot_overlay_one_pixel_wide(rng, tmp_path, shape):
    """A 1-D signal shown as one row (the demo's --shape N): contours at the class edges."""
    p = rng.dirichlet([1, 1, 1], shape).transpose(2, 0, 1)
    a = p.argmax(0)
    ax = plot_overlay(p, a, a)
    paths = [path for coll in ax.collections for path in getattr(coll, "get_paths", list)()]
    assert any(len(path.vertices) for path in paths)  # the class boundaries were drawn
    ax.figure.savefig(tmp_path / "row.png")
    check_png(tmp_path / "row.png")


def test_plot_overlay_errors(rng):
    p = probs_slice(rng)
    with pytest.raises(ValueError, match="image must be"):
        plot_overlay(p[None], p.argmax(0))
    with pytest.raises(ValueError, match="2-D integer label map"):
        plot_overlay(p, p)
    with pytest.raises(ValueError, match="expected \\(24, 24\\)"):
        plot_overlay(p, p.argmax(0)[:5])
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plot_overlay(p, p.argmax(0), ax="left")


@pytest.mark.parametrize("metric", ["dice", "iou"])
@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_score_curve_rma_matches_predict(rng, metric, gamma):
    row = rng.random(60) ** 3
    curve = score_curve(row, metric, "rma", gamma)
    assert curve.shape == (61,)
    _, info = predict(
        row[None, None],
        metric=metric,
        smooth=gamma,
        output_mode="multilabel",
        pruning_prob=0.0,
        return_info=True,
    )
    assert int(np.argmax(curve)) == info.tau[0, 0]  # tau* = first maximizer
    assert curve.max() == pytest.approx(info.score[0, 0], rel=1e-12)


@pytest.mark.parametrize(
    ("metric", "solver"),
    [("dice", "exact"), ("iou", "exact"), ("dice", "ba"), ("dice", "trna"), ("dice", "ba+trna")],
)
def test_score_curve_other_solvers_match_predict(rng, metric, solver):
    from rankseg._api import AVAILABLE

    if solver not in AVAILABLE:
        pytest.skip(f"solver {solver!r} is not available in this version")
    row = rng.random(80) ** 3
    curve = score_curve(row, metric, solver)
    _, info = predict(
        row[None, None],
        metric=metric,
        solver=solver,
        output_mode="multilabel",
        pruning_prob=0.0,
        return_info=True,
    )
    tau = info.tau[0, 0]
    assert curve[tau] == pytest.approx(info.score[0, 0], rel=1e-9, abs=1e-12)
    assert curve[tau] == pytest.approx(curve.max(), rel=1e-9)  # tau* maximizes the curve


def test_score_curve_exact_agrees_with_dp(rng):
    from rankseg.kernels.poisson_binomial import exact_dice_objective_dp

    row = rng.random(30) ** 2
    got = score_curve(row, "dice", "exact")
    ref = exact_dice_objective_dp(np.sort(row)[::-1].copy(), 0.0, 30)
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_score_curve_errors():
    with pytest.raises(ValueError, match="solver 'ba' is not supported for metric 'iou'"):
        score_curve(np.ones(3) / 2, "iou", "ba")
    with pytest.raises(ValueError, match="unknown solver 'magic'"):
        score_curve(np.ones(3) / 2, "iou", "magic")
    with pytest.raises(ValueError, match="eps must be in"):
        score_curve(np.ones(3) / 2, "dice", "trna", eps=0.0)
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        score_curve(np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="unknown metric"):
        score_curve(np.ones(3) / 2, "acc")


def test_plot_score_curve(rng, tmp_path):
    row = rng.random((20, 20)) ** 4
    ax = plot_score_curve(row, "iou", "rma", smooth=0.1)
    tau_star = int(np.argmax(score_curve(row, "iou", "rma", 0.1)))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lab.startswith(f"τ* = {tau_star},") for lab in labels)
    assert ax.get_xlabel() == "mask volume τ" and ax.get_ylabel() == "expected IoU"
    ax.figure.savefig(tmp_path / "curve.png")
    check_png(tmp_path / "curve.png")
    ax2 = plot_score_curve(row, "dice", "exact", tau_max=50)
    assert ax2.lines[0].get_xdata().max() == 50
    with pytest.raises(ValueError, match="tau_max must be >= 0"):
        plot_score_curve(row, tau_max=-1)


def test_plot_gains(rng, tmp_path):
    a = rng.random((10, 4))
    b = a + np.array([0.05, -0.02, 0.0, 0.1])
    b[0, 3] = np.nan  # an empty class in one draw is left out
    ax = plot_gains(a, b, class_names=["bg", "liver", "kidney", "tumour"], metric="IoU")
    heights = [r.get_height() for r in ax.patches]
    np.testing.assert_allclose(heights, [0.05, -0.02, 0.0, 0.1], atol=1e-12)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["bg", "liver", "kidney", "tumour"]
    assert ax.get_ylabel() == "IoU: RankSEG − argmax"
    ax.figure.savefig(tmp_path / "gains.png")
    check_png(tmp_path / "gains.png")
    # one row of scores (C,) works too
    assert len(plot_gains([0.5, 0.6], [0.6, 0.6]).patches) == 2
    with pytest.raises(ValueError, match="same \\(N, C\\) shape"):
        plot_gains(a, b[:, :2])
    with pytest.raises(ValueError, match="class_names has 1 names for 4 classes"):
        plot_gains(a, b, class_names=["x"])


def test_demo_plot(tmp_path):
    from rankseg.cli import demo

    report = demo((6, 24, 24), 3, draws=2, repeat=1, plot=tmp_path / "demo.png")
    assert f"plot written to {tmp_path / 'demo.png'}" in report
    img = check_png(tmp_path / "demo.png", min_size=(800, 300))
    assert img.shape[1] > img.shape[0]  # two panels side by side
    assert [f.name for f in tmp_path.iterdir()] == ["demo.png"]  # no temporary left
