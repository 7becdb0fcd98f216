"""nnU-Net output folders: case properties, dataset.json, geometry and regions."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

from rankseg.io._arrays import ProbabilityMap, _check_float, _npz_array
from rankseg.io._naming import _NIFTI_SUFFIXES, case_name, detect_format
from rankseg.io._nifti import _nib, _PklReference


class _SafeUnpickler(pickle.Unpickler):
    """Unpickle nnU-Net's ``CASE.pkl`` (dicts, lists, numbers, NumPy arrays) and nothing else."""

    _BUILTINS = frozenset(
        {
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "int",
            "float",
            "complex",
            "str",
            "bytes",
            "bool",
            "slice",
        }
    )
    _NUMPY = frozenset({"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"})

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in self._BUILTINS:
            return super().find_class(module, name)
        if module == "collections" and name == "OrderedDict":
            return super().find_class(module, name)
        if module.split(".")[0] == "numpy" and (name in self._NUMPY or name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a properties file (only plain data is read)"
        )


def _read_properties(pkl: Path) -> dict[str, Any]:
    with open(pkl, "rb") as f:
        props = _SafeUnpickler(f).load()
    if not isinstance(props, dict):
        raise ValueError(f"{pkl.name} does not hold nnU-Net case properties (a dict)")
    return props


def _nnunet_info(path: Path) -> tuple[str, dict[str, Any] | None]:
    ds_file = path.parent / "dataset.json"
    if not ds_file.is_file():
        return ".nii.gz", None
    with open(ds_file) as f:
        ds = json.load(f)
    return str(ds.get("file_ending", ".nii.gz")), ds


def _nnunet_regions(ds: dict[str, Any] | None) -> tuple[int, ...] | None:
    if not ds:
        return None
    labels = ds.get("labels", {})
    if not any(isinstance(val, (list, tuple)) for val in labels.values()):
        return None
    order = ds.get("regions_class_order")
    if not order:
        raise ValueError(
            "dataset.json defines regions (labels with lists) but no regions_class_order"
        )
    return tuple(int(c) for c in order)


def _nnunet_geometry(path: Path) -> tuple[str, Path | None, Path | None]:
    """(file ending, segmentation file, properties file) usable for geometry."""
    ending, _ = _nnunet_info(path)
    stem = case_name(path)
    seg = path.with_name(stem + ending)
    pkl = path.with_name(stem + ".pkl")
    nifti = ending.lower() in _NIFTI_SUFFIXES
    seg_ok = seg if nifti and seg.is_file() else None
    pkl_ok = pkl if nifti and pkl.is_file() else None
    return ending, seg_ok, pkl_ok


def output_name(path: str | os.PathLike[str], format: str = "auto") -> str:
    """File name of the label map that mirrors an input (cheap: reads no array).

    Parameters
    ----------
    path : str or path-like
        The input file.
    format : str
        Its format (``'auto'`` detects it).

    Returns
    -------
    str
        The input's own file name, except for an nnU-Net case with known geometry
        (its segmentation ``CASE.nii.gz`` or ``CASE.pkl`` beside it), whose label
        map is ``CASE`` + the dataset's file ending (NIfTI).

    Raises
    ------
    ValueError
        If the format cannot be detected.
    """
    p = Path(path)
    fmt = detect_format(p) if format == "auto" else format
    if fmt == "nnunet":
        ending, seg, pkl = _nnunet_geometry(p)
        if seg is not None or pkl is not None:
            return case_name(p) + ending
    return p.name


def sources_of(path: str | os.PathLike[str], format: str = "auto") -> tuple[Path, ...]:
    """Every file read for one input (outputs must never replace them).

    Parameters
    ----------
    path : str or path-like
        The input file.
    format : str
        Its format (``'auto'`` detects it).

    Returns
    -------
    tuple of Path
        The input and, for nnU-Net cases, the segmentation and properties files
        that give the geometry.
    """
    p = Path(path)
    fmt = detect_format(p) if format == "auto" else format
    out = [p]
    if fmt == "nnunet":
        _, seg, pkl = _nnunet_geometry(p)
        out += [f for f in (seg, pkl) if f is not None]
    return tuple(out)


def _load_nnunet(path: Path, key: str | None) -> ProbabilityMap:
    arr, _ = _npz_array(path, key)
    _check_float(arr, "the probabilities")
    if arr.ndim < 3:
        raise ValueError(
            f"nnU-Net probabilities must have shape (C, Z, Y, X) or (C, Y, X); got {arr.shape}"
        )
    ending, ds = _nnunet_info(path)
    regions = _nnunet_regions(ds)
    if regions is not None and len(regions) != arr.shape[0]:
        raise ValueError(
            f"dataset.json lists {len(regions)} regions but the probabilities have "
            f"{arr.shape[0]} channels"
        )
    _, seg, pkl = _nnunet_geometry(path)
    reference: Any = None
    props = _read_properties(pkl) if pkl is not None else None
    reoriented = props is not None and "reoriented_affine" in props.get("nibabel_stuff", {})
    spatial = arr.shape[1:][::-1]
    if seg is not None and not reoriented:
        reference = _nib().load(seg)
        if tuple(reference.shape[: len(spatial)]) != spatial:
            raise ValueError(
                f"the probabilities {arr.shape} do not match nnU-Net's segmentation "
                f"{seg.name} of shape {reference.shape} (expected (C, *reversed {spatial}))"
            )
    elif props is not None:
        reference = _PklReference(props)
    name = case_name(path) + ending if reference is not None else path.name
    return ProbabilityMap(
        probs=arr[None],
        path=path,
        format="nnunet",
        batch=False,
        class_axis=0,
        output_name=name,
        reference=reference,
        reverse_spatial=reference is not None,  # only a NIfTI output takes (X, Y, Z)
        regions=regions,
        sources=sources_of(path, "nnunet"),
    )
