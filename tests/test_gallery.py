"""docs/gallery.py: its figures on small synthetic arrays laid out like the real data."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.colors import to_rgba  # noqa: E402

from rankseg.plot import DIFF_COLORS, class_color  # noqa: E402

GALLERY = Path(__file__).resolve().parents[1] / "docs" / "gallery.py"


@pytest.fixture(scope="module")
def gallery():
    spec = importlib.util.spec_from_file_location("rankseg_docs_gallery", GALLERY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def smooth_probs(rng, n, c, h, w, sharp=1.5):
    x = rng.standard_normal((n, c, h, w))
    x = np.cumsum(np.cumsum(x, axis=2), axis=3) / 4 * sharp
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def em_data(rng, h=48):
    out = {}
    for split, n in (("val", 4), ("test", 3)):
        p = smooth_probs(rng, n, 2, h, h)
        out[f"{split}_probs"] = p.astype(np.float16)
        out[f"{split}_labels"] = (rng.random((n, h, h)) < p[:, 1]).astype(np.uint8)
        out[f"{split}_images"] = (255 * p[:, 0]).astype(np.uint8)
        out[f"{split}_ids"] = np.arange(n, dtype=np.int64) + 10
    return out


def camvid_data(rng, h=18, w=24):
    out = {}
    for split, n in (("val", 2), ("test", 3)):
        p = smooth_probs(rng, n, 11, h, w, sharp=0.6)
        out[f"{split}_probs"] = p.astype(np.float16)
        lab = p.argmax(1).astype(np.uint8)
        lab[:, :2] = 11  # void
        out[f"{split}_labels"] = lab
        out[f"{split}_ids"] = np.array([f"frame{k:03d}.png" for k in range(n)])
    return out


def test_em_figure(gallery, rng, tmp_path):
    data = em_data(rng)
    fig = gallery.em_figure(data, crop=32)
    overview, case = fig.subfigs
    assert overview.axes[0].patches[0].get_width() == 32  # the enlarged window's box
    titles = [ax.get_title() for ax in case.axes[:4]]
    assert titles[0] == "image" and titles[1] == "p > 0.5"
    assert titles[2].startswith("RankSEG (tuned)\nE[Dice]: membrane 0.")
    assert titles[3] == "RankSEG (tuned) − p > 0.5"
    assert [ax.images[0].get_array().shape for ax in case.axes[:4]] == [(32, 32)] * 4
    key = [t.get_text() for t in case.axes[4].get_legend().get_texts()]
    assert key[0] == "membrane" and key[1].startswith("added: ")
    assert "test slice 1" in fig.get_suptitle() and "mean of the 3 test slices" in (
        fig.get_suptitle()
    )
    fig.savefig(tmp_path / "em.png", dpi=40)


def test_camvid_figure(gallery, rng, tmp_path):
    data = camvid_data(rng)
    fig = gallery.camvid_figure(data, index=1)
    case, bottom = fig.subfigs
    assert case.axes[1].get_title() == "argmax"
    assert case.axes[2].get_title().startswith("RankSEG\nE[Dice]: ")
    key = case.axes[4].get_legend()
    names = [t.get_text() for t in key.get_texts()]
    assert set(names[:-3]) <= set(gallery.CAMVID_CLASSES) and names[-1].startswith("relabelled")
    for name, handle in zip(names, key.legend_handles, strict=True):
        if name in gallery.CAMVID_CLASSES:  # class c drawn as c + 1, in that colour
            c = gallery.CAMVID_CLASSES.index(name)
            assert tuple(handle.get_facecolor()[:3]) == pytest.approx(class_color(c + 1)[:3])
    assert key.legend_handles[-1].get_facecolor() == to_rgba(DIFF_COLORS["relabelled"])
    truth_ax, bars_ax = bottom.axes
    assert truth_ax.images[1].get_array()[0, 0, 3] == 0  # void: not filled
    assert [t.get_text() for t in bars_ax.get_xticklabels()] == list(gallery.CAMVID_CLASSES)
    assert len(bars_ax.patches) == 22  # gained and lost per class
    assert "frame001.png" in fig.get_suptitle()
    fig.savefig(tmp_path / "camvid.png", dpi=40)


def test_main_writes_the_pngs(gallery, rng, tmp_path):
    np.savez(tmp_path / gallery.EM_FILE, **em_data(rng, h=40))
    np.savez(tmp_path / gallery.CAMVID_FILE, **camvid_data(rng))
    written = gallery.main(tmp_path, tmp_path / "out")
    assert [p.name for p in written] == [gallery.EM_PNG, gallery.CAMVID_PNG]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_committed_pngs_are_small():
    for name in ("em_membrane.png", "camvid_street.png"):
        path = GALLERY.parent / "_static" / "gallery" / name
        assert path.exists() and path.stat().st_size < 300_000


@pytest.mark.skipif(
    not os.environ.get("RANKSEG_REALDATA"), reason="RANKSEG_REALDATA names no real data"
)
def test_gallery_on_the_real_data(gallery, tmp_path):  # pragma: no cover - not in CI
    folder = Path(os.environ["RANKSEG_REALDATA"])
    if not (folder / gallery.EM_FILE).exists():
        pytest.skip(f"no {gallery.EM_FILE} in {folder}")
    assert len(gallery.main(folder, tmp_path)) == 2
