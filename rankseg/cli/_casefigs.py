"""``rankseg evaluate --report --probs``: the cases where the decision changed most, drawn.

For every evaluated case with a probability map (``--probs``, paired by case name as
in ``rankseg calibrate``), the evaluated prediction is brought into the layout of the
probabilities (:func:`rankseg.cli._cases.target_like`) and compared with the argmax of
the probabilities (``p > 0.5`` per channel for masks).  The ``--report-cases`` cases
with the most changed voxels are drawn by :func:`rankseg.plot.plot_case` -- the largest
class probability (evaluate reads no images), argmax, the prediction with the expected
score of each class in its title, and the difference -- and written as PNG files in
the folder ``<report name>_cases/`` beside the report, which links them.

The expected score of a class is the ``score`` of the ``--info`` table when one is
given (the solver's estimate for that class mask), else the RMA estimate of the
expected Dice (IoU) of the prediction's class mask under the probabilities (SPEC §2:
``2 S / (mu + tau + 1)``, ``S / (mu - S + tau)``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankseg import io as rio
from rankseg.cli._common import Log, one_line

#: the figures' folder beside the report: ``report.html`` -> ``report_cases/``
FOLDER_SUFFIX = "_cases"


@dataclass
class CaseFigure:
    """One drawn case: its PNG and how much the decision changed."""

    name: str
    png: Path
    changed: int
    voxels: int
    source: str  # where the expected scores come from


def figures_folder(report: str | Path) -> Path:
    """Return the folder of the case figures of ``report`` (``r.html`` -> ``r_cases``)."""
    p = Path(report)
    return p.with_name(p.stem + FOLDER_SUFFIX)


def rma_expected(probs: np.ndarray, decision: np.ndarray, metric: str, masks: bool) -> np.ndarray:
    """RMA estimate of the expected score of each class mask of one sample's decision.

    Parameters
    ----------
    probs : ndarray, shape (C, *spatial)
        The probabilities.
    decision : ndarray
        A label map ``(*spatial)`` or masks ``(C, *spatial)`` (``masks=True``).
    metric : {'dice', 'iou'}
        The score.
    masks : bool
        Whether ``decision`` holds masks.

    Returns
    -------
    ndarray, shape (C,)
        NaN for a class with an empty mask (nothing to score in the title).
    """
    nc = probs.shape[0]
    out = np.full(nc, np.nan)
    for c in range(nc):
        p = np.asarray(probs[c], dtype=np.float64)
        sel = decision[c] > 0 if masks else decision == c
        tau = int(sel.sum())
        if tau == 0:
            continue
        mu, s = float(p.sum()), float(p[sel].sum())
        out[c] = 2.0 * s / (mu + tau + 1.0) if metric == "dice" else s / (mu - s + tau)
    return out


def _pairs(probs: Sequence[str], preds: dict[str, Path]) -> list[tuple[str, Path, str, Path]]:
    found = rio.find_inputs(list(probs))
    out = [
        (rio.case_name(p), p, fmt, preds[rio.case_name(p)])
        for p, fmt in found
        if rio.case_name(p) in preds
    ]
    if not out and len(found) == 1 and len(preds) == 1:  # one file each: paired anyway
        name, pred = next(iter(preds.items()))
        out = [(name, found[0][0], found[0][1], pred)]
    return out


def _decisions(path: Path, fmt: str, pred: Path) -> tuple[Any, str, np.ndarray, np.ndarray]:
    """Read a case: its ProbabilityMap, mode, argmax (or p > 0.5) and the prediction."""
    from rankseg.cli._cases import target_like
    from rankseg.cli._reliability import mode_of

    pm = rio.load_probabilities(path, format=fmt)
    masks = rio.load_labels(pred).dtype == bool
    mode = mode_of(pm, masks)
    decided = target_like(pm, pred, mode)  # the prediction in the layout of the probabilities
    nc = pm.probs.shape[1]
    if mode == "multiclass":
        if decided.size and (decided.min() < 0 or decided.max() >= nc):
            raise ValueError(
                f"the prediction {pred} holds labels outside 0..{nc - 1} (a void label?): "
                "the figure shows the classes of the probabilities only"
            )
        argmax = np.asarray(pm.probs).argmax(axis=1)
    else:
        argmax = (np.asarray(pm.probs) > 0.5).astype(np.uint8)
        decided = (decided > 0).astype(np.uint8)
    return pm, mode, argmax, decided


def _plot_affine(pm: Any) -> Any:
    """Return the affine (or ITK geometry) of the probabilities' array axes, or None."""
    ref = pm.reference
    if ref is None or pm.probs.ndim != 5:
        return None
    if pm.format == "nifti":
        return ref
    if pm.format == "nnunet":
        if not getattr(pm, "reverse_spatial", False):
            return ref  # ITK geometry: in nnU-Net's array order already
        aff = getattr(ref, "reoriented", None)
        aff = np.asarray(ref.affine if aff is None else aff, dtype=np.float64)
        return aff[:, [2, 1, 0, 3]]  # (X, Y, Z) voxel columns -> the (Z, Y, X) array
    return None


def _class_names(pm: Any, nc: int) -> list[str] | None:
    """Return the label names of an nnU-Net case's ``dataset.json`` (by value), else None."""
    if pm.format != "nnunet" or pm.regions is not None:
        return None
    from rankseg.io._nnunet import nnunet_info

    _, ds = nnunet_info(pm.path)
    labels = (ds or {}).get("labels")
    if not isinstance(labels, dict):
        return None
    try:
        by_value = {int(v): str(k) for k, v in labels.items() if k != "ignore"}
    except (TypeError, ValueError):
        return None
    if sorted(by_value) != list(range(nc)):
        return None
    return [by_value[c] for c in range(nc)]


def case_figures(
    args: argparse.Namespace,
    preds: dict[str, Path],
    info: dict[tuple[str, int], tuple[float, bool]] | None,
    failed: list[str],
    log: Log,
) -> list[CaseFigure]:
    """Draw the ``args.report_cases`` cases whose decision changed most from argmax.

    Parameters
    ----------
    args : argparse.Namespace
        ``probs``, ``report``, ``report_cases``, ``metric``.
    preds : dict
        Case name -> the evaluated prediction file.
    info : dict, optional
        The ``--info`` scores, ``(case, class) -> (score, pruned)``.
    failed : list of str
        Problems are appended (one line each) and logged.
    log : _Log
        Where notes and errors go.

    Returns
    -------
    list of CaseFigure
        In order of decreasing change; the PNGs are written.
    """
    pairs = _pairs(args.probs, preds)
    changes: list[tuple[int, str, int, Path, str, Path]] = []
    for name, path, fmt, pred in pairs:  # first pass: how much changed, nothing kept
        try:
            pm, _, argmax, decided = _decisions(path, fmt, pred)
        except Exception as exc:
            failed.append(f"{path}: --report figure: {one_line(exc)}")
            log.error(f"error: {failed[-1]}")
            continue
        for b in range(pm.probs.shape[0]):
            changed = int(np.count_nonzero(argmax[b] != decided[b]))
            case = f"{name}[{b}]" if pm.batch else name
            changes.append((changed, case, b, path, fmt, pred))
        del pm, argmax, decided
    changes.sort(key=lambda t: (-t[0], t[1]))
    top = [t for t in changes if t[0] > 0][: args.report_cases]
    log.debug(
        f"--report: {len(changes)} case(s) compared with argmax, {len(top)} drawn "
        f"({sum(t[0] > 0 for t in changes)} changed)"
    )
    if not top:
        return []
    from rankseg.plot import plot_case

    folder = figures_folder(args.report)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        failed.append(f"{folder}: --report figures: {one_line(exc)}")
        log.error(f"error: {failed[-1]}")
        return []
    metric = {"dice": "Dice", "iou": "IoU"}[args.metric]
    out: list[CaseFigure] = []
    for changed, case, b, path, fmt, pred in top:
        try:
            pm, mode, argmax, decided = _decisions(path, fmt, pred)
            probs = np.asarray(pm.probs[b])
            nc = probs.shape[0]
            masks = mode == "multilabel"
            if info is not None and any((case, c) in info for c in range(nc)):
                scores = np.array([info.get((case, c), (math.nan, False))[0] for c in range(nc)])
                source = "--info"
            else:
                scores = rma_expected(probs, decided[b], args.metric, masks)
                source = "RMA estimate"
            kwargs: dict[str, Any] = {}
            affine = _plot_affine(pm)
            if affine is not None:
                kwargs = {"affine": affine, "axis": "axial"}
            common = dict(
                labels_a=argmax[b],
                labels_b=decided[b],
                info=scores,
                output_mode=mode,
                names=("argmax", "prediction"),
                class_names=_class_names(pm, nc),
                metric=metric,
                title=f"{case} ({changed:,} voxels changed)",
            )
            try:
                fig = plot_case(probs, **common, **kwargs)
            except ValueError:
                if not kwargs:
                    raise
                fig = plot_case(probs, **common)  # a geometry the plot cannot orient
            png = folder / f"{case}.png"

            def write(tmp: Path, fig: Any = fig) -> None:
                fig.savefig(tmp, format="png", dpi=100)

            rio.atomic_write(png, write)
            voxels = int(np.prod(probs.shape[1:]))
            out.append(CaseFigure(case, png, changed, voxels, source))
        except Exception as exc:
            failed.append(f"{path}: --report figure: {one_line(exc)}")
            log.error(f"error: {failed[-1]}")
    return out
