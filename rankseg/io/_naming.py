"""Formats, case names and input discovery (no array is read here)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

#: every input format, ``auto`` aside
FORMATS = ("npy", "npz", "nnunet", "nifti", "zarr", "netcdf")
#: arrays looked up in an ``.npz`` when no key is given, in this order
NPZ_KEYS = ("probabilities", "softmax")

NIFTI_SUFFIXES = (".nii.gz", ".nii")
_NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
_NNUNET_MARKERS = ("dataset.json", "plans.json", "predict_from_raw_data_args.json")
#: single-file endings of nnU-Net datasets (SimpleITKIO) that rankseg writes through
#: SimpleITK (``.nhdr``/``.mhd`` are left out: their data sit in a second file, which
#: an atomic rename of one file cannot cover)
ITK_SUFFIXES = (".mha", ".nrrd", ".gipl")
#: segmentation endings that make a ``CASE.npz`` beside ``CASE`` + ending an nnU-Net case
_SEGMENTATION_SUFFIXES = (*NIFTI_SUFFIXES, *ITK_SUFFIXES)


def file_suffix(path: Path) -> str:
    """Return the format suffix of a file name (``.nii.gz`` counts as one)."""
    name = path.name.lower()
    for s in NIFTI_SUFFIXES:
        if name.endswith(s):
            return s
    return path.suffix.lower()


def case_name(path: str | os.PathLike[str]) -> str:
    """Return the case name of a file: its name without the format suffix.

    Parameters
    ----------
    path : str or path-like
        A file such as ``case_001.nii.gz``.

    Returns
    -------
    str
        The name without its format suffix (``case_001``).

    Examples
    --------
    >>> from rankseg.io import case_name
    >>> case_name("out/case_001.nii.gz"), case_name("a.b.npy")
    ('case_001', 'a.b')
    """
    p = Path(path)
    suffix = file_suffix(p)
    return p.name[: len(p.name) - len(suffix)] if suffix else p.name


def segmentation_beside(npz: Path) -> Path | None:
    """nnU-Net's segmentation ``CASE`` + ending beside ``CASE.npz``, if there is one."""
    stem = npz.name[: -len(".npz")]
    for s in _SEGMENTATION_SUFFIXES:
        seg = npz.with_name(stem + s)
        if seg.is_file():
            return seg
    return None


def _is_nnunet_folder(folder: Path) -> bool:
    """Tell an nnU-Net output folder by its json files or its case files.

    A ``CASE.npz`` with ``CASE.pkl`` or nnU-Net's segmentation ``CASE.nii.gz`` (or
    ``.mha``, ...) beside it makes the folder an nnU-Net folder.

    The last rule covers folders copied without their json files: nnU-Net writes
    each case's segmentation next to its probabilities, so such a pair is a case.
    """
    if any((folder / m).is_file() for m in _NNUNET_MARKERS):
        return True
    return any(
        f.with_suffix(".pkl").is_file() or segmentation_beside(f) is not None
        for f in folder.glob("*.npz")
    )


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess the input format of a file or store from its name and folder.

    Parameters
    ----------
    path : str or path-like
        An input file (or a ``.zarr`` store folder).

    Returns
    -------
    str
        One of :data:`FORMATS`.  An ``.npz`` inside an nnU-Net output folder
        (``dataset.json``, ``plans.json``, or a ``CASE.pkl`` or segmentation
        ``CASE.nii.gz`` beside a ``CASE.npz``) is ``nnunet``.

    Raises
    ------
    ValueError
        If the name has no known suffix.
    """
    p = Path(path)
    suffix = file_suffix(p)
    if suffix == ".npy":
        return "npy"
    if suffix == ".npz":
        return "nnunet" if _is_nnunet_folder(p.parent) else "npz"
    if suffix in NIFTI_SUFFIXES:
        return "nifti"
    if suffix == ".zarr":
        return "zarr"
    if suffix in _NETCDF_SUFFIXES:
        return "netcdf"
    raise ValueError(
        f"unrecognized file type {suffix or '(no suffix)'!r}; expected .npy, .npz, .nii, "
        ".nii.gz, .zarr or .nc (or name the format with --format)"
    )


_FORMAT_SUFFIXES = {
    "npy": (".npy",),
    "npz": (".npz",),
    "nnunet": (".npz",),
    "nifti": NIFTI_SUFFIXES,
    "zarr": (".zarr",),
    "netcdf": _NETCDF_SUFFIXES,
}


def find_inputs(
    inputs: Iterable[str | os.PathLike[str]], format: str = "auto"
) -> list[tuple[Path, str]]:
    """Expand input files and folders into ``(case file, format)`` pairs.

    Parameters
    ----------
    inputs : iterable of path-like
        Files, ``.zarr`` stores, or folders.  A folder is not searched recursively:
        an nnU-Net output folder yields its ``CASE.npz`` files; any other folder
        yields its files with a known suffix (``.npy``, ``.npz``, ``.nii``,
        ``.nii.gz``, ``.zarr``, ``.nc``), sorted by name.
    format : str
        ``'auto'`` (detect per file) or one of :data:`FORMATS` (then a folder yields
        only the files of that format).

    Returns
    -------
    list of (Path, str)
        The case files in input order (folders sorted), without duplicates.  A
        path that does not exist is kept, with format ``'auto'`` or the requested
        one, so that loading it reports the problem for that case.
    """
    cases: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def add(p: Path, fmt: str) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            cases.append((p, fmt))

    for item in inputs:
        p = Path(item)
        if p.is_dir() and file_suffix(p) != ".zarr":
            nnunet = _is_nnunet_folder(p)
            for f in sorted(p.iterdir()):
                if f.name.startswith("."):
                    continue  # hidden files, including our own temporary files
                suffix = file_suffix(f)
                if format == "auto":
                    if nnunet:
                        if suffix == ".npz" and f.is_file():
                            add(f, "nnunet")
                        continue
                    try:
                        fmt = detect_format(f)
                    except ValueError:
                        continue
                    if fmt == "zarr" or f.is_file():
                        add(f, fmt)
                elif suffix in _FORMAT_SUFFIXES[format]:
                    add(f, format)
        else:
            add(p, format)
    return cases
