"""nnU-Net output folders: case properties, dataset.json, geometry and regions."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

from rankseg.io._arrays import ProbabilityMap, check_float, npz_array
from rankseg.io._itk import SitkReference
from rankseg.io._naming import (
    ITK_SUFFIXES,
    NIFTI_SUFFIXES,
    case_name,
    detect_format,
    segmentation_beside,
)
from rankseg.io._nifti import PklReference, import_nibabel


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


def nnunet_info(path: Path) -> tuple[str, dict[str, Any] | None]:
    """(file ending, dataset.json) of an nnU-Net case.

    Without ``dataset.json`` the ending is that of nnU-Net's segmentation beside the
    case (``CASE.nii.gz``, ``CASE.mha``, ...), else ``.nii.gz``.
    """
    ds_file = path.parent / "dataset.json"
    if not ds_file.is_file():
        seg = segmentation_beside(path)
        return (seg.name[len(case_name(path)) :] if seg is not None else ".nii.gz"), None
    with open(ds_file) as f:
        ds = json.load(f)
    return str(ds.get("file_ending", ".nii.gz")), ds


def _plans_reader(path: Path) -> str | None:
    """Return the ``image_reader_writer`` named by the ``plans.json`` beside a case."""
    plans = path.parent / "plans.json"
    if not plans.is_file():
        return None
    try:
        with open(plans) as f:
            name = json.load(f).get("image_reader_writer")
    except (OSError, ValueError, AttributeError):
        return None  # not nnU-Net's plans: no reader named
    return name if isinstance(name, str) else None


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
    """(file ending, segmentation file, properties file) usable for geometry.

    Both are usable for NIfTI endings and for the SimpleITK ones (``.mha``,
    ``.nrrd``, ``.gipl``); other endings (2-D PNG/TIFF datasets) have no geometry
    rankseg writes, and their label maps mirror the ``.npz``.
    """
    ending, _ = nnunet_info(path)
    stem = case_name(path)
    seg = path.with_name(stem + ending)
    pkl = path.with_name(stem + ".pkl")
    known = ending.lower() in NIFTI_SUFFIXES or ending.lower() in ITK_SUFFIXES
    seg_ok = seg if known and seg.is_file() else None
    pkl_ok = pkl if known and pkl.is_file() else None
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
        map is ``CASE`` + the dataset's file ending (NIfTI, or ``.mha``/``.nrrd``/
        ``.gipl`` written through SimpleITK).

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


def load_nnunet(path: Path, key: str | None) -> ProbabilityMap:
    arr, _ = npz_array(path, key)
    check_float(arr, "the probabilities")
    if arr.ndim < 3:
        raise ValueError(
            f"nnU-Net probabilities must have shape (C, Z, Y, X) or (C, Y, X); got {arr.shape}"
        )
    ending, ds = nnunet_info(path)
    regions = _nnunet_regions(ds)
    if regions is not None and len(regions) != arr.shape[0]:
        raise ValueError(
            f"dataset.json lists {len(regions)} regions but the probabilities have "
            f"{arr.shape[0]} channels"
        )
    if regions is None and ds is not None and isinstance(ds.get("labels"), dict):
        # nnU-Net's probabilities have a channel per label, the 'ignore' label excepted
        names = [k for k in ds["labels"] if k != "ignore"]
        if len(names) != arr.shape[0]:
            raise ValueError(
                f"dataset.json lists {len(names)} labels ({', '.join(map(str, names))}) but "
                f"the probabilities have {arr.shape[0]} channels: the folder's dataset.json "
                "is not the one of this prediction (copy the right one beside the .npz files)"
            )
    _, seg, pkl = _nnunet_geometry(path)
    known = ending.lower() in NIFTI_SUFFIXES or ending.lower() in ITK_SUFFIXES
    if known and seg is None and pkl is None:
        stem = case_name(path)
        raise ValueError(
            f"neither {stem}.pkl nor nnU-Net's segmentation {stem}{ending} is beside "
            f"{path.name}: the case's geometry (spacing, origin, direction) is unknown, so "
            f"no {ending} label map can be written. Copy the .pkl files (nnUNetv2_predict "
            "--save_probabilities writes them) along with the .npz"
        )
    props = _read_properties(pkl) if pkl is not None else None
    spatial = tuple(arr.shape[1:])
    if ending.lower() in ITK_SUFFIXES:
        reference = _itk_reference(path, spatial, seg, props)
        reverse = False  # SimpleITK takes nnU-Net's (Z, Y, X) array as it is
    else:
        reference = _nifti_reference(path, spatial, seg, props)
        reverse = reference is not None  # only a NIfTI output takes (X, Y, Z)
    name = case_name(path) + ending if reference is not None else path.name
    return ProbabilityMap(
        probs=arr[None],
        path=path,
        format="nnunet",
        batch=False,
        class_axis=0,
        output_name=name,
        reference=reference,
        reverse_spatial=reverse,
        regions=regions,
        sources=sources_of(path, "nnunet"),
    )


def _checked_geometry(build: Any) -> Any:
    """Build a geometry from case properties; a missing or malformed entry is a ValueError."""
    try:
        return build()
    except KeyError as exc:
        raise ValueError(
            f"the properties file lacks {exc.args[0]!r} in its image geometry (expected "
            "nnU-Net's sitk_stuff: spacing, origin, direction; or nibabel_stuff: "
            "original_affine)"
        ) from None
    except TypeError as exc:  # e.g. a number where a sequence belongs
        raise ValueError(f"the properties file holds a malformed image geometry ({exc})") from None


def _check_geometry_dims(ndim: int, spatial: tuple[int, ...]) -> None:
    """Refuse a properties file whose geometry lacks the case's dimensions.

    A 2-D geometry fits a 2-D case, which nnU-Net stores as ``(1, Y, X)``; on a 3-D
    case (``Z > 1``) it would give the third axis a made-up 1 mm spacing.
    """
    two_d = len(spatial) == 3 and spatial[0] == 1
    if ndim != len(spatial) and not (ndim == 2 and two_d):
        raise ValueError(
            f"the properties file describes a {ndim}-D image (spacing of {ndim} values) but "
            f"the probabilities are {len(spatial)}-D (spatial shape {spatial}): they do not "
            "belong together"
        )


def _fits(size: tuple[int, ...], spatial: tuple[int, ...]) -> bool:
    """Whether an image of ``size`` (X, Y[, Z]) holds nnU-Net's ``spatial`` (Z, Y, X).

    A 2-D image (X, Y) holds a 2-D case, which nnU-Net stores as (1, Y, X).
    """
    rev = spatial[::-1]
    if len(size) == 2 and len(rev) == 3 and rev[2] == 1:
        rev = rev[:2]
    return tuple(size[: len(rev)]) == rev


def _nifti_reference(
    path: Path, spatial: tuple[int, ...], seg: Path | None, props: dict[str, Any] | None
) -> Any:
    """Return the nibabel image or properties whose geometry a NIfTI label map takes."""
    if props is None and seg is not None and _plans_reader(path) == "NibabelIOWithReorient":
        # no CASE.pkl: recompute the reorientation from nnU-Net's segmentation (which
        # keeps the original axes) exactly as NibabelIOWithReorient.read_images does
        from nibabel.orientations import io_orientation

        img = import_nibabel().load(seg)
        props = {
            "nibabel_stuff": {
                "original_affine": img.affine,
                "reoriented_affine": img.as_reoriented(io_orientation(img.affine)).affine,
            }
        }
    reoriented = props is not None and "reoriented_affine" in props.get("nibabel_stuff", {})
    if seg is not None and not reoriented:
        reference = import_nibabel().load(seg)
        if not _fits(tuple(reference.shape), spatial):
            raise ValueError(
                f"the probabilities (spatial shape {spatial}, nnU-Net's (Z, Y, X)) do not "
                f"match nnU-Net's segmentation {seg.name} of shape {tuple(reference.shape)} "
                "(X, Y, Z): expected the reversed shape"
            )
        return reference
    if props is not None:
        ref = _checked_geometry(lambda: PklReference(props))
        _check_geometry_dims(ref.ndim, spatial)
        return ref
    return None


def _itk_reference(
    path: Path, spatial: tuple[int, ...], seg: Path | None, props: dict[str, Any] | None
) -> SitkReference | None:
    """Return the ITK geometry (properties, else segmentation) of an .mha/.nrrd label map."""
    if props is not None and "sitk_stuff" in props:
        st = props["sitk_stuff"]
        _check_geometry_dims(len(st.get("spacing", ())), spatial)
        return _checked_geometry(
            lambda: SitkReference(st["spacing"], st["origin"], st["direction"])
        )
    if seg is None:
        return None
    reference, size = SitkReference.from_file(seg)
    if not _fits(size, spatial):
        raise ValueError(
            f"the probabilities (spatial shape {spatial}, nnU-Net's (Z, Y, X)) do not match "
            f"nnU-Net's segmentation {seg.name} of size {size} (X, Y, Z): expected the "
            "reversed size"
        )
    return reference
