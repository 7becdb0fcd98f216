"""Probability maps paired with their ground truths (``calibrate``, ``evaluate --probs``).

A ground-truth file is read by :func:`rankseg.io.load_labels` and brought into the
layout of its probability map, ``(B, *spatial)`` labels or ``(B, C, *spatial)`` masks:

* nnU-Net cases: the probabilities are in nnU-Net's array order ``(Z, Y, X)``; a
  NIfTI or ITK ground truth is read in voxel order ``(X, Y, Z)`` and reversed (after
  the reorientation to RAS that ``NibabelIOWithReorient`` applies, when the case says
  it was reoriented); a 2-D case ``(1, Y, X)`` takes a 2-D image.  ``.npy``/``.npz``
  ground truths are taken in nnU-Net's array order.  Region-based datasets get one
  mask per region of ``dataset.json`` (the label lists), as nnU-Net's training does.
* every other format: the ground truth has the spatial axes of the probabilities
  (NIfTI ``(X, Y, Z)`` for a 4-D NIfTI map, the stored order for ``.npy``/``.npz``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rankseg import io as rio
from rankseg.io._naming import ITK_SUFFIXES, NIFTI_SUFFIXES, file_suffix


def pair_cases(
    cases: Sequence[tuple[Path, str]], targets: Sequence[Path]
) -> tuple[list[tuple[Path, str, Path]], list[str]]:
    """Pair probability files with ground truths by case name, as ``rankseg evaluate``.

    One file on each side is a pair whatever the names.

    Returns
    -------
    pairs, problems
        ``(probability file, format, target)`` and one message per unpaired case.
    """
    if len(cases) == 1 and len(targets) == 1:
        return [(cases[0][0], cases[0][1], targets[0])], []
    by_name = {rio.case_name(t): t for t in targets}
    pairs, problems = [], []
    for path, fmt in cases:
        t = by_name.get(rio.case_name(path))
        if t is None:
            problems.append(f"{path}: no target named {rio.case_name(path)}.* in --target")
        else:
            pairs.append((path, fmt, t))
    return pairs, problems


def nnunet_regions(path: Path) -> list[tuple[int, ...]] | None:
    """Return the foreground regions of a region-based nnU-Net dataset (label lists), else None."""
    from rankseg.io._nnunet import nnunet_info

    _, ds = nnunet_info(path)
    labels = (ds or {}).get("labels", {})
    if not any(isinstance(v, (list, tuple)) for v in labels.values()):
        return None
    regions = []
    for k, r in labels.items():
        if k in ("background", "ignore"):
            continue
        region = tuple(int(i) for i in r) if isinstance(r, (list, tuple)) else (int(r),)
        if region != (0,):
            regions.append(region)
    return regions


def _reoriented(pm: rio.ProbabilityMap) -> np.ndarray | None:
    """Return the original affine of a case that ``NibabelIOWithReorient`` reoriented."""
    ref = pm.reference
    if getattr(ref, "reoriented", None) is not None:
        return np.asarray(ref.affine)
    return None


def target_like(
    pm: rio.ProbabilityMap, target: Path, mode: str, ignore_index: int | None = None
) -> np.ndarray:
    """Read ``target`` and bring it into the layout of ``pm.probs``.

    Parameters
    ----------
    pm : ProbabilityMap
        The probabilities of the case.
    target : Path
        Its ground truth (label map, or masks for multilabel).
    mode : {'multiclass', 'multilabel'}
        Multiclass: labels ``(B, *spatial)``; multilabel: 0/1 masks ``(B, C, *spatial)``
        (a label map becomes one mask per class, or per nnU-Net region).
    ignore_index : int, optional
        The void label: with a label map and multilabel, its pixels get this value in
        every channel (left out by the calibration).

    Raises
    ------
    ValueError
        If the shapes do not match (both are named) or masks are given for multiclass.
    """
    y = rio.load_labels(target)
    nb, nc = pm.probs.shape[:2]
    spatial = tuple(pm.probs.shape[2:])
    masks = y.dtype == bool
    image = file_suffix(target) in (*NIFTI_SUFFIXES, *ITK_SUFFIXES)
    if pm.format == "nnunet" and image:
        affine = _reoriented(pm)
        if affine is not None and not masks:
            from nibabel.orientations import apply_orientation, io_orientation

            y = apply_orientation(y, io_orientation(affine))
        axes = tuple(range(y.ndim))
        y = y.transpose(axes[:1] + axes[1:][::-1]) if masks else y.transpose(axes[::-1])
        sp = y.shape[1:] if masks else y.shape
        if len(sp) == len(spatial) - 1 and spatial[0] == 1:  # a 2-D case, stored (1, Y, X)
            y = y[:, None] if masks else y[None]
    if masks:
        if mode == "multiclass":
            raise ValueError(
                f"the target {target} holds masks; a multiclass calibration needs a label map "
                "(use --output-mode multilabel for masks)"
            )
        y = y.astype(np.uint8)
        if not pm.batch:
            y = y[None]
        want: tuple[int, ...] = (nb, nc, *spatial)
    else:
        if not pm.batch:
            y = y[None]
        want = (nb, *spatial)
    if y.shape != want:
        stored = y.shape if pm.batch else y.shape[1:]
        raise ValueError(
            f"the target {target} has shape {stored}; it does not fit the probabilities of "
            f"shape {pm.probs.shape} (B, C, *spatial)"
            + (
                " (nnU-Net stores (Z, Y, X); the target's (X, Y, Z) was reversed)"
                if pm.format == "nnunet" and image
                else ""
            )
        )
    if mode == "multilabel" and not masks:
        regions = nnunet_regions(pm.path) if pm.regions is not None else None
        if regions is not None and len(regions) != nc:
            raise ValueError(
                f"dataset.json defines {len(regions)} regions; the probabilities have {nc}"
            )
        groups = regions if regions is not None else [(c,) for c in range(nc)]
        onehot = np.stack([np.isin(y, g) for g in groups], axis=1)
        if ignore_index is not None and ignore_index not in (0, 1):
            # the void pixels stay void in every channel (calibration leaves them out)
            out = onehot.astype(np.min_scalar_type(ignore_index) if ignore_index > 0 else np.int64)
            out[np.broadcast_to((y == ignore_index)[:, None], out.shape)] = ignore_index
            return out
        y = onehot.astype(np.uint8)
    return y
