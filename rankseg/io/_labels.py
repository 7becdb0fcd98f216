"""Label maps and masks: label dtypes, stored layouts, writing and reading."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from rankseg.io._arrays import ProbabilityMap, load_npy, npz_array
from rankseg.io._atomic import atomic_write
from rankseg.io._itk import SitkReference, import_sitk, write_itk
from rankseg.io._naming import ITK_SUFFIXES, NIFTI_SUFFIXES, file_suffix
from rankseg.io._nifti import PklReference, import_nibabel, write_nifti


def smallest_label_dtype(max_label: int, min_label: int = 0) -> np.dtype:
    """Return the smallest integer dtype holding every label in ``[min_label, max_label]``.

    Parameters
    ----------
    max_label, min_label : int
        The label range.

    Returns
    -------
    numpy.dtype
        uint8, uint16, uint32 or uint64 for non-negative labels; int8 ... int64 when
        a label is negative.

    Examples
    --------
    >>> from rankseg.io import smallest_label_dtype
    >>> smallest_label_dtype(255), smallest_label_dtype(256), smallest_label_dtype(3, -1)
    (dtype('uint8'), dtype('uint16'), dtype('int8'))
    """
    kinds = (
        (np.uint8, np.uint16, np.uint32, np.uint64)
        if min_label >= 0
        else (np.int8, np.int16, np.int32, np.int64)
    )
    for t in kinds:
        info = np.iinfo(t)
        if info.min <= min_label and max_label <= info.max:
            return np.dtype(t)
    raise ValueError(f"no integer dtype holds labels {min_label}..{max_label}")


def _cast_labels(labels: np.ndarray, dtype: Any) -> np.ndarray:
    if labels.dtype == bool and dtype is None:
        return labels
    if dtype is None:
        if labels.size == 0:
            return labels.astype(np.uint8)
        return labels.astype(
            smallest_label_dtype(int(labels.max()), min(int(labels.min()), 0)), copy=False
        )
    dt = np.dtype(dtype)
    if dt.kind not in "iub":
        raise TypeError(f"dtype must be an integer dtype for label maps; got {dt}")
    if dt.kind != "b" and labels.size and labels.dtype != bool:
        info = np.iinfo(dt)
        lo, hi = int(labels.min()), int(labels.max())
        if lo < info.min or hi > info.max:
            raise ValueError(f"dtype {dt} cannot hold the labels {lo}..{hi}")
    return labels.astype(dt, copy=False)


def _to_stored(labels: np.ndarray, like: ProbabilityMap) -> np.ndarray:
    """Turn predict()'s output on ``like.probs`` back into the input's stored layout."""
    nb, nc = like.probs.shape[:2]
    spatial = like.probs.shape[2:]
    masks = labels.dtype == bool
    expected = (nb, nc, *spatial) if masks else (nb, *spatial)
    if labels.shape != expected:
        raise ValueError(
            f"labels have shape {labels.shape}; expected {expected} for probabilities of shape "
            f"{like.probs.shape} ({'masks' if masks else 'label map'})"
        )
    if masks and like.regions is not None:
        # nnU-Net region-based: later regions overwrite earlier ones (regions_class_order)
        lab = np.zeros((nb, *spatial), dtype=smallest_label_dtype(max(like.regions, default=0)))
        for i, c in enumerate(like.regions):
            lab[labels[:, i]] = c
        labels, masks = lab, False
    out = labels
    if masks:
        out = np.moveaxis(out, 1, like.class_axis + (0 if like.batch else 1))
    if not like.batch:
        out = out[0]
    if like.reverse_spatial:
        # nnU-Net (Z, Y, X) -> NIfTI (X, Y, Z); masks (C, Z, Y, X) -> (X, Y, Z, C)
        out = out.transpose(tuple(range(out.ndim))[::-1])
    return out


def save_labels(
    path: str | os.PathLike[str],
    labels: Any,
    *,
    like: ProbabilityMap | None = None,
    dtype: Any = None,
) -> Path:
    """Write a label map (or masks) atomically, in the layout and geometry of its input.

    Parameters
    ----------
    path : str or path-like
        Output file; the format follows the suffix: ``.npy``, ``.npz`` (array
        ``labels``, or ``masks`` for boolean masks), ``.nii`` / ``.nii.gz``, and for
        nnU-Net cases of a SimpleITK dataset ``.mha`` / ``.nrrd`` / ``.gipl``
        (written through SimpleITK with the case's spacing, origin and direction,
        as nnU-Net's ``SimpleITKIO`` does; needs ``rankseg-numba[itk]``).
    labels : array-like
        With ``like``: exactly what :func:`rankseg.predict` returned for
        ``like.probs`` -- a label map ``(B, *spatial)`` or boolean masks
        ``(B, C, *spatial)``.  Without ``like``: the array to store as is.
    like : ProbabilityMap, optional
        The input: the output gets its stored layout (no batch axis for a single
        case, the class axis of masks back in place, nnU-Net's axes reversed for
        NIfTI) and, for NIfTI, its affine and header (dtype, intent ``label``,
        ``cal_min/cal_max`` set; scaling reset).  nnU-Net region masks become a
        label map through ``regions_class_order``.
    dtype : integer dtype, optional
        Output dtype.  Default: the smallest integer dtype holding the labels
        (:func:`smallest_label_dtype`); boolean masks stay bool (uint8 in NIfTI).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        If the suffix is unknown, the shape does not fit ``like`` or the dtype
        cannot hold the labels.
    TypeError
        If ``dtype`` is not an integer dtype.
    """
    p = Path(path)
    arr = np.asarray(labels)
    if arr.dtype != bool and arr.dtype.kind not in "iu":
        raise TypeError(
            f"labels must be integer label maps or boolean masks; got dtype {arr.dtype}"
        )
    masks_in = arr.dtype == bool
    if like is not None:
        arr = _to_stored(arr, like)
    labelmap = arr.dtype != bool
    arr = _cast_labels(arr, dtype)
    suffix = file_suffix(p)
    if suffix == ".npy":

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
    elif suffix == ".npz":
        name = "masks" if masks_in and not labelmap else "labels"

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                arrays: dict[str, Any] = {name: arr}  # a str key could be allow_pickle
                np.savez_compressed(f, **arrays)
    elif suffix in NIFTI_SUFFIXES:
        data = arr.astype(np.uint8) if arr.dtype == bool else arr
        ref = like.reference if like is not None else None
        if ref is not None and not isinstance(ref, PklReference) and not hasattr(ref, "affine"):
            ref = None

        def write(tmp: Path) -> None:
            write_nifti(tmp, np.asarray(data), ref, labelmap)
    elif suffix in ITK_SUFFIXES:
        ref = like.reference if like is not None else None
        if not labelmap or not isinstance(ref, SitkReference):
            raise ValueError(
                f"cannot write {p.name!r}: .mha/.nrrd/.gipl outputs are label maps of nnU-Net "
                "cases with known geometry (a CASE.pkl or segmentation beside the CASE.npz)"
            )

        def write(tmp: Path) -> None:
            write_itk(tmp, np.asarray(arr), ref)
    else:
        raise ValueError(
            f"cannot write labels to {p.name!r}: unknown suffix {suffix!r}; expected .npy, .npz, "
            ".nii, .nii.gz (or .mha, .nrrd, .gipl for nnU-Net cases)"
        )
    return atomic_write(p, write)


def load_labels(path: str | os.PathLike[str], *, key: str | None = None) -> np.ndarray:
    """Read a label map or masks (a prediction or a ground truth).

    Parameters
    ----------
    path : str or path-like
        ``.npy``, ``.npz`` (array ``key``, else ``labels``, ``masks``, ``seg``,
        ``segmentation`` or the only array), NIfTI, or ``.mha`` / ``.nrrd`` /
        ``.gipl`` (through SimpleITK, axes reversed to ``(X, Y, Z)`` as NIfTI's).
    key : str, optional
        Array name in an ``.npz``.

    Returns
    -------
    ndarray
        An integer label map ``(*spatial)``, or boolean masks ``(C, *spatial)``
        (a boolean ``.npy``/``.npz`` array is masks as stored, class axis first; a
        4-D NIfTI is ``(X, Y, Z, C)`` masks, returned class first).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the suffix is unknown or the data are neither integers nor booleans
        (float data are accepted when every value is a whole number).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    suffix = file_suffix(p)
    if suffix == ".npy":
        arr = load_npy(p)
    elif suffix == ".npz":
        with np.load(p, allow_pickle=False) as f:
            names = list(f.files)
        if key is None and len(names) == 1:
            key = names[0]
        arr, _ = npz_array(p, key, ("labels", "masks", "seg", "segmentation"))
    elif suffix in NIFTI_SUFFIXES:
        arr = np.asanyarray(import_nibabel().load(p).dataobj)
        if arr.ndim == 4:
            arr = np.moveaxis(arr, 3, 0)
            if arr.dtype.kind in "iuf":
                if not np.isin(arr, (0, 1)).all():
                    raise ValueError("a 4-D NIfTI must hold 0/1 masks (X, Y, Z, C)")
                arr = arr.astype(bool)
    elif suffix in ITK_SUFFIXES:
        # SimpleITK's (Z, Y, X) array reversed: voxel axes (X, Y, Z), as nibabel gives
        # them, so an .mha prediction pairs with a NIfTI target of the same image
        arr = import_sitk().GetArrayFromImage(import_sitk().ReadImage(str(p)))
        arr = arr.transpose(tuple(range(arr.ndim))[::-1])
    else:
        raise ValueError(
            f"unrecognized label file type {suffix or '(no suffix)'!r}; expected .npy, .npz, "
            ".nii, .nii.gz (or .mha, .nrrd, .gipl with SimpleITK)"
        )
    if arr.dtype == bool or arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise ValueError(
        f"expected an integer label map or boolean masks; got dtype {arr.dtype}"
        + (
            " with non-integer values (probabilities? run `rankseg predict` first)"
            if arr.dtype.kind == "f"
            else ""
        )
    )
