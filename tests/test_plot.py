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
    from poisson_binomial import exact_dice_objective_dp

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
    colors = ["red", "blue", "green", "black"]
    bars = plot_gains(a, b, colors=colors).patches
    assert [b.get_facecolor() for b in bars] == [to_rgba(c) for c in colors]
    with pytest.raises(ValueError, match="colors has 1 colours for 4 classes"):
        plot_gains(a, b, colors=["red"])
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
    assert img.shape[1] > img.shape[0]  # the case panels above the gains
    assert [f.name for f in tmp_path.iterdir()] == ["demo.png"]  # no temporary left


def test_demo_plot_shows_where_the_decision_changed(tmp_path):
    from rankseg import RankSEG
    from rankseg.cli._demo import _demo_plot
    from rankseg.datasets import make_probs
    from rankseg.plot import class_color

    probs = make_probs((1, 4, 6, 3, 20, 20), kind="softmax", smoothness=3.0, seed=1)
    a = probs.argmax(1)
    b, info = RankSEG(pruning_prob=0.0).predict(probs, return_info=True)
    b[0, 3, 1, 0, :5] = 1  # 5 voxels more in the middle of axis 0, slice 1 of axis 1
    gains = np.random.default_rng(0).random((3, 3)) * 0.01
    fig = _demo_plot(
        tmp_path / "d.png", probs, a, b, info.score[0], "rankseg dice (rma)", 0 * gains, gains
    )
    case, bottom = fig.subfigs
    title = case.get_suptitle()
    assert title.startswith("demo volume (6, 3, 20, 20), rankseg dice (rma) vs argmax")
    assert title.endswith("(axis 0 index 3 of 6): axis 0, index 1 of 3")  # the most changed
    assert "index 1 of 3" in case.axes[3].get_title()
    shown = [c for c in (1, 2, 3) if (b[0, 3, 1] == c).any()]
    assert case.axes[2].get_title().startswith("RankSEG\nE[Dice]: ")
    for c in shown[:2]:
        assert f"class {c} {info.score[0, c]:.2f}" in case.axes[2].get_title()
    bars = [ax for ax in bottom.axes if ax.patches][0].patches
    assert [tuple(p.get_facecolor()) for p in bars] == [class_color(c) for c in (1, 2, 3)]
    key = case.axes[4].get_legend()
    colors = {
        t.get_text(): h.get_facecolor()
        for t, h in zip(key.get_texts(), key.legend_handles, strict=True)
    }
    for c in shown:
        assert tuple(colors[f"class {c}"]) == class_color(c)  # bars match the panels' key
    check_png(tmp_path / "d.png", min_size=(800, 500))


# -- plot_difference / oriented_slice ------------------------------------------------

from matplotlib.colors import to_rgba  # noqa: E402

from rankseg.plot import DIFF_COLORS, WINDOWS, oriented_slice, plot_difference  # noqa: E402

nib = pytest.importorskip("nibabel")


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def two_maps():
    a = np.zeros((10, 12), dtype=np.int64)
    a[2:7, 3:9] = 1
    a[7:9, 3:9] = 2
    b = a.copy()
    b[1, 3:9] = 1  # 6 added (background -> class 1)
    b[2:7, 8] = 0  # 5 removed (class 1 -> background)
    b[7, 3:5] = 1  # 2 relabelled (class 2 -> class 1)
    return a, b


def test_plot_difference_2d_counts_colours_legend(tmp_path):
    a, b = two_maps()
    image = np.linspace(0.0, 1.0, a.size).reshape(a.shape)
    ax = plot_difference(a, b, image=image, class_names=["bg", "liver", "spleen"])
    assert legend_texts(ax) == [
        "liver",
        "spleen",
        "added: 6 px",
        "removed: 5 px",
        "relabelled: 2 px",
    ]
    handles = ax.get_legend().legend_handles
    added, removed, relabelled = (h.get_facecolor() for h in handles[2:])
    assert added == to_rgba(DIFF_COLORS["added"]) and removed == to_rgba(DIFF_COLORS["removed"])
    assert len({added, removed, relabelled}) == 3
    assert ax.get_legend().get_title().get_text() == "RankSEG vs argmax"
    np.testing.assert_array_equal(ax.images[0].get_array(), image)  # the image underneath
    diff = np.asarray(ax.images[-1].get_array())  # the change layer: RGBA per pixel
    assert tuple(diff[1, 4, :3]) == pytest.approx(to_rgba(DIFF_COLORS["added"])[:3])
    assert tuple(diff[3, 8, :3]) == pytest.approx(to_rgba(DIFF_COLORS["removed"])[:3])
    assert diff[5, 5, 3] == 0  # unchanged pixels are not covered
    assert ax.get_title() == "RankSEG − argmax"
    ax.figure.savefig(tmp_path / "diff.png")
    check_png(tmp_path / "diff.png")


def test_plot_difference_spacing_gives_area_and_aspect():
    a, b = two_maps()
    ax = plot_difference(a, b, spacing=(2.0, 0.5), names=("old", "new"))
    assert legend_texts(ax)[2] == "added: 6 px, 6.0 mm²"  # 6 px of 1 mm²
    assert ax.get_aspect() == pytest.approx(4.0)
    assert legend_texts(ax)[0] == "class 1"
    assert ax.get_legend().get_title().get_text() == "new vs old"


def test_plot_difference_volume_slice_title_and_ml():
    a = np.zeros((6, 8, 8), dtype=np.uint8)
    a[1:5, 2:6, 2:6] = 1
    b = a.copy()
    b[3, 1, 2:6] = 1  # 4 voxels added in slice 3
    b[1, 6, 2:4] = 1  # 2 more elsewhere
    ax = plot_difference(a, b, spacing=(2.0, 1.0, 1.0))  # 2 mm³ voxels
    assert "axis 0, index 3 of 6" in ax.get_title()  # default: the busiest slice
    texts = legend_texts(ax)
    assert texts[1] == "added: 4 voxels, 0.01 mL\n  volume: 6 voxels, 0.01 mL"
    ax = plot_difference(a, b, axis=2, index=-4, title="case 7")
    assert ax.get_title() == "case 7\naxis 2, index 4 of 8"
    assert ax.images[0].get_array().shape == (6, 8)
    ax = plot_difference(a[None], b[None])  # B = 1 as predict returns it
    assert "index 3 of 6" in ax.get_title()


def test_plot_difference_multilabel():
    a = np.zeros((2, 8, 8), dtype=bool)
    a[0, 2:5, 2:5] = True
    b = a.copy()
    b[0, 5, 2:5] = True  # 3 added
    b[1, 0, 0] = True  # 1 added in channel 1
    a[1, 7, 7] = True  # 1 removed in channel 1
    ax = plot_difference(a, b, output_mode="multilabel", class_names=["tumour", "edema"])
    assert legend_texts(ax) == ["tumour", "edema", "added: 4 px", "removed: 1 px"]
    # the channels keep the multiclass colours of classes 1, 2 (channel 0 is not blue)
    colors = [h.get_facecolor()[:3] for h in ax.get_legend().legend_handles[:2]]
    assert colors[0] == pytest.approx(matplotlib.colormaps["tab10"](1)[:3])


def test_plot_difference_windows():
    a, b = two_maps()
    hu = np.linspace(-1000.0, 1000.0, a.size).reshape(a.shape)
    for name, (level, width) in WINDOWS.items():
        ax = plot_difference(a, b, image=hu, window=name)
        assert ax.images[0].get_clim() == (level - width / 2, level + width / 2)
    ax = plot_difference(a, b, image=hu, window=(-600, 1500))
    assert ax.images[0].get_clim() == (-1350.0, 150.0)
    ax = plot_difference(a, b, image=hu, percentiles=(0, 100))
    assert ax.images[0].get_clim() == (-1000.0, 1000.0)


def test_plot_difference_errors():
    a, b = two_maps()
    with pytest.raises(ValueError, match="unknown window 'liver'"):
        plot_difference(a, b, image=a, window="liver")
    with pytest.raises(ValueError, match="width > 0"):
        plot_difference(a, b, image=a, window=(40, 0))
    with pytest.raises(ValueError, match="percentiles must satisfy"):
        plot_difference(a, b, image=a, percentiles=(99, 1))
    with pytest.raises(ValueError, match="same shape"):
        plot_difference(a, b[:5])
    with pytest.raises(ValueError, match="image has shape"):
        plot_difference(a, b, image=a[:5])
    with pytest.raises(ValueError, match="integer label maps"):
        plot_difference(a.astype(float), b.astype(float))
    with pytest.raises(ValueError, match="class_names has 2 names; the labels need 3"):
        plot_difference(a, b, class_names=["bg", "x"])
    with pytest.raises(ValueError, match="spacing must hold 2"):
        plot_difference(a, b, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(TypeError, match="not both"):
        plot_difference(a[None], b[None], spacing=(1, 1, 1), affine=np.eye(4))
    with pytest.raises(ValueError, match="needs an affine"):
        plot_difference(a[None], b[None], axis="axial")
    with pytest.raises(ValueError, match="out of range"):
        plot_difference(a[None], b[None], index=1)
    with pytest.raises(ValueError, match="orients 3-D volumes"):
        plot_difference(a, b, affine=np.eye(4))
    with pytest.raises(ValueError, match="decision"):
        plot_difference(a, b, decision="dots")


# A phantom in the patient's frame: a blob in the left-anterior-superior region.  In a
# RAS+ array (axes toward Right, Anterior, Superior) "left" is a low first index.
def las_phantom():
    vol = np.zeros((20, 24, 16), dtype=np.int16)  # (R, A, S)
    vol[2:7, 16:22, 10:14] = 1
    return vol


# reorientations of the RAS array: nibabel orientation rows (new axis -> old axis, flip)
ORIENTATIONS = {
    "RAS": [[0, 1], [1, 1], [2, 1]],
    "LPS": [[0, -1], [1, -1], [2, 1]],
    "LAS": [[0, -1], [1, 1], [2, 1]],
    "PIR": [[1, -1], [2, -1], [0, 1]],  # axes: P, I, R
    "SRA": [[2, 1], [0, 1], [1, 1]],  # (Z, X, Y)-like order
}


def where_blob(data):
    rows, cols = np.nonzero(np.asarray(data) > 0)
    h, w = np.asarray(data).shape
    return ("top" if rows.mean() < h / 2 else "bottom"), (
        "left" if cols.mean() < w / 2 else "right"
    )


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_radiological_orientation_through_nibabel(tmp_path, name):
    spacing = np.array([0.7, 0.8, 3.0])  # R, A, S voxel sizes
    img = nib.Nifti1Image(las_phantom(), np.diag([*spacing, 1.0]))
    # nibabel's ornt rows are per *input* axis: [new axis, flip]; build from our rows
    inv = np.zeros((3, 2))
    for new, (old, flip) in enumerate(ORIENTATIONS[name]):
        inv[old] = [new, flip]
    img = img.as_reoriented(inv)
    assert "".join(nib.aff2axcodes(img.affine)) == name
    nib.save(img, tmp_path / "phantom.nii.gz")
    img = nib.load(tmp_path / "phantom.nii.gz")
    vol = np.asarray(img.dataobj)
    # the radiologist's view: patient's left on the image's right, anterior/superior up
    expect = {"axial": ("top", "right"), "coronal": ("top", "right"), "sagittal": ("top", "left")}
    edges = {
        "axial": ("R", "L", "A", "P"),
        "coronal": ("R", "L", "S", "I"),
        "sagittal": ("A", "P", "S", "I"),
    }
    index_ras = {"axial": 12, "coronal": 18, "sagittal": 4}
    ras_axis = {"axial": 2, "coronal": 1, "sagittal": 0}
    for plane, want in expect.items():
        axis = next(i for i, (old, _) in enumerate(ORIENTATIONS[name]) if old == ras_axis[plane])
        n = vol.shape[axis]
        index = index_ras[plane] if ORIENTATIONS[name][axis][1] > 0 else n - 1 - index_ras[plane]
        s = oriented_slice(vol, plane, index, affine=img)
        assert (s.plane, s.axis, s.index, s.edges) == (plane, axis, index, edges[plane])
        assert where_blob(s.data) == want, (name, plane)
        ax = plot_difference(
            np.zeros_like(vol), vol, image=vol, affine=img.affine, axis=plane, index=index
        )
        shown = ax.images[0].get_array()
        np.testing.assert_array_equal(shown, s.data)
        assert where_blob(shown) == want
        assert f"{plane} slice, axis {axis}, index {index}" in ax.get_title()
        letters = [t.get_text() for t in ax.texts]
        assert letters == list(edges[plane])
        # aspect: height / width of a displayed pixel from the voxel sizes
        sp = {"axial": (0.8, 0.7), "coronal": (3.0, 0.7), "sagittal": (3.0, 0.8)}[plane]
        assert ax.get_aspect() == pytest.approx(sp[0] / sp[1])
    added = [t for t in legend_texts(ax) if t.startswith("added")][0]
    n_blob = int(vol.sum())
    assert f"volume: {n_blob} voxels, {n_blob * 0.7 * 0.8 * 3.0 / 1000:.2f} mL" in added


def test_oriented_slice_itk_geometry():
    """An ITK geometry (LPS, identity direction) with the array in (Z, Y, X) order."""

    class Geometry:
        spacing = (0.7, 0.8, 3.0)  # x, y, z
        origin = (0.0, 0.0, 0.0)
        direction = (1, 0, 0, 0, 1, 0, 0, 0, 1)

    vol = np.zeros((16, 24, 20))  # (Z: toward S, Y: toward P, X: toward L)
    vol[10:14, 2:8, 13:18] = 1  # superior, anterior (low Y), left (high X)
    s = oriented_slice(vol, "axial", 12, affine=Geometry())
    assert (s.axis, s.edges) == (0, ("R", "L", "A", "P"))
    assert where_blob(s.data) == ("top", "right")
    assert s.aspect == pytest.approx(0.8 / 0.7)
    s = oriented_slice(vol, 2, 15, affine=Geometry())  # across X: sagittal
    assert s.plane == "sagittal" and where_blob(s.data) == ("top", "left")


def test_oriented_slice_without_affine_keeps_array_order():
    vol = np.arange(24).reshape(2, 3, 4)
    s = oriented_slice(vol, 1, 2, spacing=(2.0, 1.0, 0.5))
    np.testing.assert_array_equal(s.data, vol[:, 2, :])
    assert (s.plane, s.edges, s.aspect) == (None, None, 4.0)
    assert oriented_slice(vol[0]).data is not None and oriented_slice(vol).index == 1
    masks = np.stack([vol, -vol])  # (C, Z, Y, X): the class axis is kept
    s = oriented_slice(masks, 2, 1)
    np.testing.assert_array_equal(s.data, masks[:, :, :, 1])


def test_plot_difference_ct3d_example(tmp_path):
    """The realistic case: ct3d argmax vs RankSEG over a windowed image, both styles."""
    from rankseg.datasets import ct3d

    probs = ct3d(shape=(1, 4, 24, 48, 48))
    a, b = probs.argmax(1), predict(probs)
    hu = np.where(a[0] > 0, 60.0, -100.0)
    ax = plot_difference(a, b, image=hu, window="soft-tissue", spacing=(2.5, 0.8, 0.8))
    assert ax.collections  # the decision's contours
    ax.figure.savefig(tmp_path / "ct.png")
    check_png(tmp_path / "ct.png")
    ax = plot_difference(a, b, axis=1, decision="fill")
    ax.figure.savefig(tmp_path / "fill.png")
    check_png(tmp_path / "fill.png")


def test_plot_overlay_class_key(rng):
    p = probs_slice(rng)
    a = p.argmax(0)
    ax = plot_overlay(p, a, a, class_names=["bg", "liver", "spleen"])
    drawn = [f"{n}" for c, n in enumerate(["bg", "liver", "spleen"]) if (a == c).any() and c]
    assert legend_texts(ax) == ["argmax", "RankSEG", *drawn]
    colors = [h.get_facecolor() for h in ax.get_legend().legend_handles[2:]]
    assert len(set(colors)) == len(drawn)
    with pytest.raises(ValueError, match="class 2 is drawn"):
        plot_overlay(p, a, class_names=["bg", "liver"])


def test_itk_geometry_matches_the_io_affine(rng):
    """The ITK path of plot agrees with rankseg.io's ITK -> RAS conversion."""
    from rankseg.io._nifti import _sitk_affine

    class Geometry:
        spacing = (0.7, 0.9, 2.0)
        origin = (10.0, -5.0, 3.0)
        direction = (0, -1, 0, 0, 0, 1, 1, 0, 0)  # a permutation with a flip

    vol = rng.random((7, 8, 9))
    aff = _sitk_affine(Geometry.spacing, Geometry.origin, Geometry.direction)[:, [2, 1, 0, 3]]
    for axis in range(3):
        s_itk = oriented_slice(vol, axis, 3, affine=Geometry())
        s_aff = oriented_slice(vol, axis, 3, affine=aff)
        np.testing.assert_array_equal(s_itk.data, s_aff.data)
        assert (s_itk.plane, s_itk.edges, s_itk.aspect) == (s_aff.plane, s_aff.edges, s_aff.aspect)


# -- plot_case ------------------------------------------------------------------------

from rankseg.plot import plot_case  # noqa: E402


def test_plot_case_panels_and_expected_dice_titles(rng, tmp_path):
    p = probs_slice(rng, c=3, h=20, w=24)
    fig = plot_case(p, class_names=["bg", "liver", "tumour"])
    labels, info = predict(p[None], return_info=True)
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles[0] == "max probability" and titles[1] == "argmax"
    assert titles[3] == "RankSEG − argmax"
    shown = [c for c in (1, 2) if (labels[0] == c).any()]
    expected = ", ".join(f"{['bg', 'liver', 'tumour'][c]} {info.score[0, c]:.2f}" for c in shown)
    assert titles[2] == f"RankSEG\nE[Dice]: {expected}"
    # every panel shows the whole 2-D slice; the background panel is the max probability
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), p.max(0))
    for ax in fig.axes[:4]:
        assert ax.images[0].get_array().shape == (20, 24)
    # the decisions are filled with the class colours of plot_difference's key
    key = fig.axes[4].get_legend()
    names = [t.get_text() for t in key.get_texts()]
    for c in shown:
        color = key.legend_handles[names.index(["bg", "liver", "tumour"][c])].get_facecolor()
        fill = np.asarray(fig.axes[2].images[1].get_array())
        y, x = np.argwhere(labels[0] == c)[0]
        assert tuple(fill[y, x, :3]) == pytest.approx(color[:3])
    fill_a = np.asarray(fig.axes[1].images[1].get_array())
    assert (fill_a[..., 3] > 0).sum() == (p.argmax(0) > 0).sum()
    assert fig.axes[3].get_legend() is None  # moved to the key column
    fig.savefig(tmp_path / "case.png")
    check_png(tmp_path / "case.png", min_size=(800, 200))


def test_plot_case_volume_same_slice_everywhere():
    p = np.full((2, 5, 6, 7), 0.1)
    p[1, 1:4, 1:5, 1:6] = 0.8  # a block; argmax gets it
    p[0] = 1.0 - p[1]
    a = p.argmax(0)
    b = a.copy()
    b[3, 0, 1:6] = 1  # slice 3 gains 5 voxels
    b[1, 0, 1:3] = 1  # slice 1 gains 2
    image = np.arange(a.size, dtype=float).reshape(a.shape)
    fig = plot_case(p, labels_a=a, labels_b=b, info=[0.5, 0.75], image=image, title="case 7")
    assert fig.get_suptitle() == "case 7: axis 0, index 3 of 5"
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), image[3])
    for ax in fig.axes[1:4]:
        np.testing.assert_array_equal(ax.images[0].get_array(), image[3])
    assert "index 3 of 5" in fig.axes[3].get_title()
    assert fig.axes[2].get_title() == "RankSEG\nE[Dice]: class 1 0.75"
    fig = plot_case(p, labels_a=a, labels_b=b, axis=2, index=-1, names=("p>0.5", "tuned"))
    assert fig.get_suptitle() == "axis 2, index 6 of 7"
    assert fig.axes[1].get_title() == "p>0.5" and fig.axes[2].get_title() == "tuned"  # no info
    assert "index 6 of 7" in fig.axes[3].get_title()
    assert fig.axes[0].images[0].get_array().shape == (5, 6)


def test_plot_case_multilabel_top_classes():
    rng = np.random.default_rng(3)
    p = rng.random((6, 12, 12)) ** 2
    fig = plot_case(p, output_mode="multilabel", top=2, metric="IoU")
    title = fig.axes[2].get_title()
    assert fig.axes[1].get_title() == "p > 0.5"  # the multilabel default labels_a
    assert title.startswith("RankSEG\nE[IoU]: class ") and title.endswith("more")
    assert title.count(" 0.") == 2  # the two largest masks
    masks = predict(p[None], output_mode="multilabel")[0]
    assert (np.asarray(fig.axes[2].images[1].get_array())[..., 3] > 0).sum() == masks.any(0).sum()


def test_plot_case_errors(rng):
    p = probs_slice(rng, c=3, h=8, w=8)
    with pytest.raises(ValueError, match="probabilities of one sample"):
        plot_case(p[0])
    with pytest.raises(ValueError, match="probabilities of one sample"):
        plot_case(p[None, :, None])
    with pytest.raises(ValueError, match="the decisions have shape"):
        plot_case(p, labels_a=p.argmax(0)[:4], labels_b=p.argmax(0)[:4])
    with pytest.raises(ValueError, match="same shape"):
        plot_case(p, labels_b=p.argmax(0)[:4])
    with pytest.raises(ValueError, match="info must be the PredictInfo"):
        plot_case(p, labels_b=p.argmax(0), info=[0.5, 0.5])
    with pytest.raises(ValueError, match="top must be >= 1"):
        plot_case(p, top=0)
    with pytest.raises(ValueError, match="image has shape"):
        plot_case(p, image=p[0, :4])
    with pytest.raises(ValueError, match="class_names has 2 names for 3 classes"):
        plot_case(p, class_names=["a", "b"])
    with pytest.raises(TypeError, match="fig must be a matplotlib Figure"):
        plot_case(p, fig="fig")
    fig = Figure()
    fig.add_subplot()
    with pytest.raises(ValueError, match="fig must be empty"):
        plot_case(p, fig=fig)


def test_class_color():
    from rankseg.plot import class_color

    assert class_color(1) == tuple(matplotlib.colormaps["tab10"](1))
    assert class_color(0, "multilabel") == class_color(1) and class_color(21) == class_color(1)
    assert len({class_color(c) for c in range(20)}) == 20  # 11 CamVid classes stay apart
    with pytest.raises(ValueError, match="must be >= 0"):
        class_color(-1)
    with pytest.raises(ValueError, match="output_mode"):
        class_color(1, "binary")
