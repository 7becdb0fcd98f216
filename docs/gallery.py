"""Make the figures of the docs gallery from the real probability maps.

Usage::

    python docs/gallery.py ../shared/realdata     # or RANKSEG_REALDATA=... python docs/gallery.py
    RANKSEG_REALDATA=../shared/realdata make html # the docs build runs it (docs/conf.py)

The folder holds ``isbi_em_unet.npz`` (a U-Net's membrane probabilities on ISBI 2012
EM slices, with the images and the manual truth) and ``camvid_rf.npz`` (a random
forest's 11-class probabilities on CamVid street scenes, with the truth); its README
describes them.  The data never enters the repository: only the PNGs written to
``docs/_static/gallery/`` are committed.  Plain matplotlib (no pyplot, no display).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.patches
import numpy as np
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's rankseg

from rankseg import RankSEG, tune  # noqa: E402
from rankseg.plot import class_color, plot_case  # noqa: E402

OUT = Path(__file__).resolve().parent / "_static" / "gallery"
EM_FILE, CAMVID_FILE = "isbi_em_unet.npz", "camvid_rf.npz"
EM_PNG, CAMVID_PNG = "em_membrane.png", "camvid_street.png"
CAMVID_CLASSES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
CAMVID_VOID = 11


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    inter = np.count_nonzero(pred & truth)
    total = np.count_nonzero(pred) + np.count_nonzero(truth)
    return 2.0 * inter / total if total else np.nan


def _busiest_window(changed: np.ndarray, size: int, step: int = 16) -> tuple[int, int]:
    """Top-left corner of the ``size`` x ``size`` window holding the most changed pixels."""
    h, w = changed.shape
    size = min(size, h, w)
    csum = np.pad(changed.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best, corner = -1, (0, 0)
    for y in range(0, h - size + 1, step):
        for x in range(0, w - size + 1, step):
            n = csum[y + size, x + size] - csum[y, x + size] - csum[y + size, x] + csum[y, x]
            if n > best:
                best, corner = n, (y, x)
    return corner


def em_figure(data: Mapping[str, Any], index: int | None = None, crop: int = 128) -> Figure:
    """Draw the membrane pixels a calibrated RankSEG adds to ``p > 0.5`` on one EM slice.

    RankSEG is tuned on the validation slices (:func:`rankseg.tune`, multilabel: the
    membrane channel alone), then decides the test slice ``index`` (default: the one
    whose decision changes most).  Left: the whole slice with the added pixels and the
    ``crop`` x ``crop`` window holding most of them; right: :func:`plot_case` of that
    window (E[Dice] of the whole slice).  The title gives the Dice against the manual
    truth.
    """
    val = np.asarray(data["val_probs"][:, 1:2], dtype=np.float32)
    test = np.asarray(data["test_probs"][:, 1:2], dtype=np.float32)
    truth = np.asarray(data["test_labels"]) > 0
    rule = tune(val, (np.asarray(data["val_labels"]) > 0)[:, None], output_mode="multilabel")
    masks, info = rule.predict(test, return_info=True)
    base = test > 0.5
    if index is None:
        index = int(np.argmax((masks != base).reshape(len(test), -1).sum(axis=1)))
    d_a = np.nanmean([_dice(base[k, 0], truth[k]) for k in range(len(test))])
    d_b = np.nanmean([_dice(masks[k, 0], truth[k]) for k in range(len(test))])
    k = index
    image = np.asarray(data["test_images"][k], dtype=np.float64)
    changed = masks[k, 0] != base[k, 0]
    y, x = _busiest_window(changed, crop)
    c = min(crop, *image.shape)
    win = (slice(y, y + c), slice(x, x + c))

    fig = Figure(figsize=(15.0, 3.9), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=(1.0, 4.4))
    ax = left.subplots()
    lo, hi = np.percentile(image, [1, 99])
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="antialiased")
    added = np.zeros(image.shape + (4,))
    added[changed] = (0.0, 0.78, 1.0, 1.0)  # plot.DIFF_COLORS["added"]
    ax.imshow(added, interpolation="antialiased")
    ax.add_patch(
        matplotlib.patches.Rectangle(
            (x - 0.5, y - 0.5), c, c, fill=False, edgecolor="#ffe600", linewidth=1.5
        )
    )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(
        f"whole slice ({image.shape[0]} × {image.shape[1]}):\n"
        f"{int(changed.sum()):,} px added, the box enlarged",
        fontsize="medium",
    )
    plot_case(
        test[k][(slice(None), *win)],
        labels_a=base[k][(slice(None), *win)],
        labels_b=masks[k][(slice(None), *win)],
        info=info.score[k],
        image=image[win],
        output_mode="multilabel",
        class_names=["membrane"],
        names=("p > 0.5", "RankSEG (tuned)"),
        fig=right,
    )
    right.axes[2].set_title(right.axes[2].get_title() + " (slice)", fontsize="medium")
    slice_id = int(data["test_ids"][k]) if "test_ids" in data else k
    fig.suptitle(
        f"ISBI 2012 EM, U-Net membrane probabilities, test slice {slice_id}; RankSEG tuned "
        "on the validation slices\nDice against the manual truth: this slice "
        f"{_dice(base[k, 0], truth[k]):.3f} (p > 0.5) → {_dice(masks[k, 0], truth[k]):.3f} "
        f"(RankSEG), mean of the {len(test)} test slices {d_a:.3f} → {d_b:.3f}"
    )
    return fig


def _fill(labels: np.ndarray) -> np.ndarray:
    """RGBA image of a label map in the plot module's class colours (0: transparent)."""
    out = np.zeros(labels.shape + (4,))
    for c in np.unique(labels):
        if c:
            out[labels == c] = class_color(int(c))
    return out


def camvid_figure(data: Mapping[str, Any], index: int | None = None) -> Figure:
    """Draw the per-class changes of ``RankSEG(empty='ignore')`` against argmax on a street scene.

    Top: :func:`plot_case` with the 11 CamVid classes drawn as its classes 1-11 (its
    class 0 is an unfilled background; here every pixel has a class, so each change is
    a relabelling).  Bottom: the truth, and the pixels each class gains and loses.
    Default ``index``: the test image whose decision changes most.  The title gives the
    mean Dice over the classes present in the truth (void pixels left out), the score
    ``empty='ignore'`` optimizes.
    """
    probs = np.asarray(data["test_probs"], dtype=np.float32)
    truth = np.asarray(data["test_labels"])
    argmax = probs.argmax(axis=1)
    if index is None:
        ranked_all = RankSEG(empty="ignore").predict(probs)
        index = int(np.argmax((ranked_all != argmax).reshape(len(probs), -1).sum(axis=1)))
    k = index
    ranked, info = RankSEG(empty="ignore").predict(probs[k : k + 1], return_info=True)
    ranked, a = ranked[0], argmax[k]
    valid = truth[k] != CAMVID_VOID
    nc = len(CAMVID_CLASSES)
    present = [c for c in range(nc) if (truth[k][valid] == c).any()]

    def mdice(lab: np.ndarray) -> float:
        return float(np.mean([_dice((lab == c) & valid, truth[k] == c) for c in present]))

    fig = Figure(figsize=(15.0, 7.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=(1.15, 1.0))
    # class c -> c + 1, below them an empty channel 0: plot_case leaves class 0 unfilled
    shifted = np.concatenate([np.zeros_like(probs[k, :1]), probs[k]], axis=0)
    plot_case(
        shifted,
        labels_a=a + 1,
        labels_b=ranked + 1,
        info=np.concatenate([[np.nan], info.score[0]]),
        class_names=["none", *CAMVID_CLASSES],
        names=("argmax", "RankSEG"),
        top=4,
        fig=top,
    )
    ax_t, ax_g = bottom.subplots(1, 2, width_ratios=(1.0, 2.6))
    ax_t.imshow(np.full(truth[k].shape, 0.2), cmap="gray", vmin=0, vmax=1)
    ax_t.imshow(_fill(np.where(valid, truth[k] + 1, 0)), interpolation="nearest")
    ax_t.set_xticks([])
    ax_t.set_yticks([])
    ax_t.set_title("truth (void: dark)", fontsize="medium")
    x = np.arange(nc)
    gained = np.array([np.count_nonzero((ranked == c) & (a != c)) for c in range(nc)])
    lost = np.array([np.count_nonzero((a == c) & (ranked != c)) for c in range(nc)])
    colors = [class_color(c + 1) for c in range(nc)]
    ax_g.bar(x, gained, color=colors, label="pixels gained")
    ax_g.bar(x, -lost, color=colors, hatch="///", edgecolor="white", label="pixels lost")
    ax_g.axhline(0, color="black", linewidth=0.8)
    ax_g.set_xticks(x, CAMVID_CLASSES, rotation=30, ha="right")
    ax_g.set_ylabel("pixels (RankSEG − argmax)")
    ax_g.legend(
        handles=[
            matplotlib.patches.Patch(facecolor="0.5", label="pixels gained"),
            matplotlib.patches.Patch(
                facecolor="0.5", hatch="///", edgecolor="white", label="pixels lost"
            ),
        ],
        loc="lower right",
        fontsize="small",
    )
    ax_g.set_title(
        "per class: pixels RankSEG gives it (up) and takes from it (down, hatched)",
        fontsize="medium",
    )
    name = str(data["test_ids"][k]) if "test_ids" in data else str(k)
    fig.suptitle(
        f"CamVid test image {name} (random-forest probabilities, 90 × 120): "
        f"RankSEG(empty='ignore') vs argmax; mean Dice over the {len(present)} classes "
        f"present {mdice(a):.3f} → {mdice(ranked):.3f}"
    )
    return fig


def main(folder: str | os.PathLike[str], out: str | os.PathLike[str] = OUT) -> list[Path]:
    """Write the gallery's PNGs from ``folder`` into ``out``; return their paths."""
    folder, out = Path(folder), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for file, png, make in ((EM_FILE, EM_PNG, em_figure), (CAMVID_FILE, CAMVID_PNG, camvid_figure)):
        with np.load(folder / file) as data:
            fig = make({key: data[key] for key in data.files})
        fig.savefig(out / png, dpi=80)
        written.append(out / png)
    return written


if __name__ == "__main__":
    where = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RANKSEG_REALDATA")
    if not where:
        sys.exit("usage: python docs/gallery.py REALDATA_FOLDER (or set RANKSEG_REALDATA)")
    for path in main(where):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
