"""The in-memory layout of a probability map: :class:`ProbabilityMap` and its checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rankseg._policies import FLOAT_DTYPES
from rankseg.io._naming import NPZ_KEYS, case_name


@dataclass(frozen=True)
class ProbabilityMap:
    """Probabilities read from a file, in rankseg's ``(B, C, *spatial)`` layout.

    Attributes
    ----------
    probs : ndarray, shape (B, C, *spatial)
        float16/32/64 probabilities (often a read-only memory map or a view of one);
        ``B = 1`` for a single-case file.
    path : Path
        The file read.
    format : str
        One of :data:`FORMATS`.
    batch : bool
        Whether the stored array had a batch axis (otherwise ``B = 1`` was added).
    class_axis : int
        Position of the class axis in the stored array.
    output_name : str
        File name of the label map that mirrors this input (see :func:`output_name`).
    reference : object, optional
        The geometry of the output: a nibabel image whose affine and header a NIfTI
        output takes, the geometry read from an nnU-Net ``CASE.pkl``, or an ITK
        geometry (spacing, origin, direction) for ``.mha``/``.nrrd`` outputs.
    reverse_spatial : bool
        The stored spatial axes are in the reverse order of the NIfTI voxel axes
        (nnU-Net's ``(Z, Y, X)``).
    regions : tuple of int, optional
        nnU-Net ``regions_class_order`` of a region-based dataset (sigmoid regions).
    sources : tuple of Path
        Every file read for this case (never overwritten by an output).
    """

    probs: np.ndarray
    path: Path
    format: str
    batch: bool = False
    class_axis: int = 0
    output_name: str = ""
    reference: Any = None
    reverse_spatial: bool = False
    regions: tuple[int, ...] | None = None
    sources: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        """The case name (file name without its format suffix)."""
        return case_name(self.path)


def check_float(arr: np.ndarray, what: str) -> None:
    if arr.dtype.newbyteorder("=") in FLOAT_DTYPES:
        return
    hint = ""
    if arr.dtype.kind in "iub":
        hint = " (integers: is this a label map rather than probabilities?)"
    raise TypeError(
        f"{what} has dtype {arr.dtype}; expected float16, float32 or float64 probabilities{hint}"
    )


def to_layout(arr: np.ndarray, class_axis: int | None, batch: bool) -> tuple[np.ndarray, int]:
    """Move the class axis to 1 (batch) or 0 then add B = 1 (single case)."""
    if batch:
        if arr.ndim < 3:
            raise ValueError(
                f"a batch must have shape (B, C, *spatial) with at least one spatial axis; "
                f"got shape {arr.shape}"
            )
        ca = 1 if class_axis is None else class_axis
        if not -arr.ndim <= ca < arr.ndim:
            raise ValueError(f"class axis {ca} is out of range for shape {arr.shape}")
        ca %= arr.ndim
        if ca == 0:
            raise ValueError("class axis 0 is the batch axis of a batch; choose another class axis")
        return np.moveaxis(arr, ca, 1), ca
    if arr.ndim < 2:
        raise ValueError(
            f"a case must have shape (C, *spatial) with at least one spatial axis; "
            f"got shape {arr.shape}"
        )
    ca = 0 if class_axis is None else class_axis
    if not -arr.ndim <= ca < arr.ndim:
        raise ValueError(f"class axis {ca} is out of range for shape {arr.shape}")
    ca %= arr.ndim
    return np.moveaxis(arr, ca, 0)[None], ca


def load_npy(path: Path, mmap_mode: Literal["r+", "r", "w+", "c"] | None = None) -> np.ndarray:
    """``np.load`` of a ``.npy`` file, with errors that say what the file is not.

    Without NumPy's magic header, ``np.load`` would try the file as a pickle and
    report "pickled (object) data"; a real object array is refused as such.
    """
    with open(path, "rb") as f:
        head = f.read(6)
    if head != b"\x93NUMPY":
        raise ValueError(
            "cannot read the .npy: not a .npy file (no NumPy header); expected an array "
            "saved with numpy.save"
        )
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise ValueError(
                "cannot read the .npy: it holds Python objects (an object array), which are "
                "never unpickled; expected a numeric array"
            ) from exc
        raise ValueError(f"cannot read the .npy: a damaged file ({exc})") from exc


def npz_array(
    path: Path, key: str | None, keys: Sequence[str] = NPZ_KEYS
) -> tuple[np.ndarray, str]:
    with np.load(path, allow_pickle=False) as f:
        names = list(f.files)
        if key is not None:
            if key not in names:
                raise KeyError(
                    f"no array {key!r} in the .npz; it holds {', '.join(names) or 'nothing'}"
                )
            return f[key], key
        for k in keys:
            if k in names:
                return f[k], k
    raise KeyError(
        f"no {' or '.join(repr(k) for k in keys)} array in the .npz; it holds "
        f"{', '.join(repr(n) for n in names) or 'nothing'} (name one with --key)"
    )
