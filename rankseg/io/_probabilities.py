"""Reading probability maps: :func:`load_probabilities` dispatches on the format."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rankseg.io._arrays import ProbabilityMap, check_float, load_npy, npz_array, to_layout
from rankseg.io._naming import FORMATS, detect_format
from rankseg.io._nifti import load_nifti
from rankseg.io._nnunet import load_nnunet

_LOG = logging.getLogger(__name__)  # no handler here: `rankseg -v` shows these


def _read(pm: ProbabilityMap) -> ProbabilityMap:
    """Log how a file was read (DEBUG) and return its map."""
    _LOG.debug(
        "%s: read as %s, class axis %s%s -> probabilities %s %s",
        pm.path,
        pm.format,
        pm.class_axis,
        ", a batch" if pm.batch else "",
        tuple(pm.probs.shape),
        pm.probs.dtype,
    )
    return pm


def load_probabilities(
    path: str | os.PathLike[str],
    *,
    format: str = "auto",
    key: str | None = None,
    class_axis: int | None = None,
    batch: bool = False,
) -> ProbabilityMap:
    """Read a probability map from a file.

    Parameters
    ----------
    path : str or path-like
        The file (see the module docstring for the formats).
    format : str
        ``'auto'`` (from the name and folder, see :func:`detect_format`) or one of
        :data:`FORMATS`.
    key : str, optional
        Array name in an ``.npz`` (default: ``probabilities``, then ``softmax``).
    class_axis : int, optional
        Class axis of the stored array (default: 0 for a case, 1 for a batch,
        the last axis for NIfTI; fixed for nnU-Net).  Negative values count from
        the end.
    batch : bool
        The stored ``.npy``/``.npz`` array is a batch ``(B, C, *spatial)`` (never
        guessed from the number of dimensions).  An array of 5 or more dimensions
        needs ``batch=True`` or an explicit ``class_axis``: ``(B, C, Z, Y, X)`` and one
        case with four spatial axes look the same.

    Returns
    -------
    ProbabilityMap
        ``.probs`` has shape ``(B, C, *spatial)``; pass it to :func:`rankseg.predict`
        and the result to :func:`save_labels` with ``like=`` this object.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    TypeError
        If the data are not float16/32/64.
    ValueError
        If the format is unknown, the shape does not fit the layout, or the layout of
        an array of 5 or more dimensions is not given.
    KeyError
        If an ``.npz`` lacks the array.
    ImportError
        If the format needs an optional package that is missing.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from rankseg import predict
    >>> from rankseg.io import load_probabilities, save_labels
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "case.npy"), np.array([[0.9, 0.2], [0.1, 0.8]]))
    >>> pm = load_probabilities(os.path.join(d, "case.npy"))
    >>> pm.probs.shape
    (1, 2, 2)
    >>> out = save_labels(os.path.join(d, "labels.npy"), predict(pm.probs), like=pm)
    >>> np.load(out)
    array([0, 1], dtype=uint8)
    """
    p = Path(path)
    if format != "auto" and format not in FORMATS:
        raise ValueError(
            f"unknown format {format!r}; expected 'auto' or one of {', '.join(FORMATS)}"
        )
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    fmt = detect_format(p) if format == "auto" else format
    if batch and fmt not in ("npy", "npz", "zarr", "netcdf"):
        raise ValueError(f"batch applies to .npy/.npz (and zarr/netCDF) input, not {fmt}")
    if fmt == "nnunet":
        if class_axis is not None:
            raise ValueError("class_axis does not apply to nnU-Net output (always (C, Z, Y, X))")
        return _read(load_nnunet(p, key))
    if fmt == "nifti":
        return _read(load_nifti(p, class_axis))
    if fmt in ("zarr", "netcdf"):
        raise ValueError(
            f"{fmt} input is read lazily: use rankseg.io.load_dataarray and "
            "rankseg.xarray.predict (the command line does)"
        )
    if fmt == "npy":
        arr = load_npy(p, mmap_mode="c")
    else:
        arr, _ = npz_array(p, key)
    if not isinstance(arr, np.ndarray):
        raise ValueError("expected one array in the file")
    check_float(arr, "the array")
    if arr.ndim >= 5 and not batch and class_axis is None:
        # (B, C, Z, Y, X) or one case (C, *4 spatial axes): nothing in the file says which
        raise ValueError(
            f"the {arr.ndim}-D array {arr.shape} of {p.name} is a batch (B, C, *spatial) or "
            f"one case (C, *spatial) with {arr.ndim - 1} spatial axes, and the file does not "
            "say which: pass batch=True (--batch) for a batch, or class_axis=0 (--class-axis 0) "
            "for one case"
        )
    probs, ca = to_layout(arr, class_axis, batch)
    return _read(
        ProbabilityMap(
            probs=probs,
            path=p,
            format=fmt,
            batch=batch,
            class_axis=ca,
            output_name=p.name,
            sources=(p,),
        )
    )


def average_probabilities(
    paths: Sequence[str | os.PathLike[str]], *, key: str | None = None
) -> np.ndarray:
    """Average the probabilities of one case over several ``.npz`` files (an ensemble).

    This is nnU-Net's ``nnUNetv2_ensemble`` average
    (``nnunetv2.ensembling.ensemble.average_probabilities``), bit for bit: the first
    array is converted to float32, the others are added to it in the given order,
    and the sum is divided by their number.  One array and the running sum are held
    at a time.

    Parameters
    ----------
    paths : sequence of path-like
        ``.npz`` files of the same case (one per fold or model), each holding its
        probabilities in the same layout.
    key : str, optional
        Array name (default: ``probabilities``, then ``softmax``).

    Returns
    -------
    ndarray
        float32, the shape of each input.

    Raises
    ------
    ValueError
        If ``paths`` is empty or the arrays differ in shape (the file is named).
    TypeError
        If an array is not float16/32/64.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from rankseg.io import average_probabilities
    >>> d = tempfile.mkdtemp()
    >>> for i, p in enumerate(([0.2, 0.8], [0.6, 0.4])):
    ...     np.savez(os.path.join(d, f"fold{i}.npz"), probabilities=np.array(p))
    >>> average_probabilities([os.path.join(d, "fold0.npz"), os.path.join(d, "fold1.npz")])
    array([0.4, 0.6], dtype=float32)
    """
    files = [Path(p) for p in paths]
    if not files:
        raise ValueError("an ensemble needs at least one probability file; got none")
    avg: np.ndarray | None = None
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"no such file: {f}")
        try:
            arr, _ = npz_array(f, key)
        except KeyError as exc:
            raise KeyError(f"{f}: {exc.args[0]}") from None
        check_float(arr, f"the probabilities in {f}")
        if avg is None:
            avg = arr.astype(np.float32) if arr.dtype != np.float32 else arr
        elif arr.shape != avg.shape:
            raise ValueError(
                f"{f} holds probabilities of shape {arr.shape}, but {files[0]} holds "
                f"{avg.shape}: an ensemble averages maps of the same case and layout"
            )
        else:
            avg += arr
    assert avg is not None
    avg /= len(files)
    return avg
