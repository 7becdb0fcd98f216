"""Read saved probability maps and write label maps next to them.

Formats (see ``docs/cli.rst`` for every convention):

``npy``
    One case ``(C, *spatial)`` per file (class axis 0, like nnU-Net; ``class_axis``
    moves it), or a batch ``(B, C, *spatial)`` with ``batch=True``.  Read as a
    memory map: a volume is not loaded before the solver streams over it.
``npz``
    The array ``probabilities``, else ``softmax`` (nnU-Net v1), or ``key``; same
    layouts as ``npy``.
``nnunet``
    A ``CASE.npz`` in an nnU-Net output folder (``--save_probabilities``): float
    ``(C, Z, Y, X)`` probabilities whose label map is written as NIfTI with the
    geometry of nnU-Net's own ``CASE.nii.gz`` (or of ``CASE.pkl``).  Region-based
    datasets (``dataset.json`` labels that are lists) hold one sigmoid per region;
    their masks become a label map through ``regions_class_order``, as nnU-Net does.
``nifti``
    A 4-D ``(X, Y, Z, C)`` probability map (``.nii`` / ``.nii.gz``); the output keeps
    its affine and header, with the label dtype and intent set.
``zarr`` / ``netcdf``
    Opened lazily by :func:`load_dataarray` for :func:`rankseg.xarray.predict`;
    written by :func:`save_dataarray` (needs xarray, and zarr for stores).

Every write is atomic: the data go to a temporary file in the destination folder,
which is then renamed over the final name, so an interrupted or failed write never
leaves a partial file under the final name.
"""

from __future__ import annotations

import json
import os
import pickle
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMATS",
    "NPZ_KEYS",
    "ProbabilityMap",
    "atomic_write",
    "case_name",
    "detect_format",
    "find_inputs",
    "load_labels",
    "load_dataarray",
    "load_probabilities",
    "output_name",
    "save_dataarray",
    "save_labels",
    "smallest_label_dtype",
    "sources_of",
]

#: every input format, ``auto`` aside
FORMATS = ("npy", "npz", "nnunet", "nifti", "zarr", "netcdf")
#: arrays looked up in an ``.npz`` when no key is given, in this order
NPZ_KEYS = ("probabilities", "softmax")

_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf")
_NNUNET_MARKERS = ("dataset.json", "plans.json", "predict_from_raw_data_args.json")
_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


# ------------------------------------------------------------------------ naming


def _suffix(path: Path) -> str:
    """Return the format suffix of a file name (``.nii.gz`` counts as one)."""
    name = path.name.lower()
    for s in _NIFTI_SUFFIXES:
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
    suffix = _suffix(p)
    return p.name[: len(p.name) - len(suffix)] if suffix else p.name


def _is_nnunet_folder(folder: Path) -> bool:
    if any((folder / m).is_file() for m in _NNUNET_MARKERS):
        return True
    return any(f.with_suffix(".pkl").is_file() for f in folder.glob("*.npz"))


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
        (``dataset.json``, ``plans.json`` or a ``CASE.pkl`` beside it) is ``nnunet``.

    Raises
    ------
    ValueError
        If the name has no known suffix.
    """
    p = Path(path)
    suffix = _suffix(p)
    if suffix == ".npy":
        return "npy"
    if suffix == ".npz":
        return "nnunet" if _is_nnunet_folder(p.parent) else "npz"
    if suffix in _NIFTI_SUFFIXES:
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
    "nifti": _NIFTI_SUFFIXES,
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
        if p.is_dir() and _suffix(p) != ".zarr":
            nnunet = _is_nnunet_folder(p)
            for f in sorted(p.iterdir()):
                if f.name.startswith("."):
                    continue  # hidden files, including our own temporary files
                suffix = _suffix(f)
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


# ---------------------------------------------------------------- probabilities


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
        A nibabel image whose affine and header the NIfTI output takes.
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


def _check_float(arr: np.ndarray, what: str) -> None:
    if arr.dtype.newbyteorder("=") in _FLOATS:
        return
    hint = ""
    if arr.dtype.kind in "iub":
        hint = " (integers: is this a label map rather than probabilities?)"
    raise TypeError(
        f"{what} has dtype {arr.dtype}; expected float16, float32 or float64 probabilities{hint}"
    )


def _to_layout(arr: np.ndarray, class_axis: int | None, batch: bool) -> tuple[np.ndarray, int]:
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


def _npz_array(
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


def _nib() -> Any:
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - nibabel is in the test extra
        raise ImportError(
            "reading or writing NIfTI needs nibabel: pip install 'rankseg[nifti]'"
        ) from exc
    return nibabel


# -- nnU-Net -------------------------------------------------------------------


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


def _sitk_affine(spacing: Any, origin: Any, direction: Any) -> np.ndarray:
    """RAS affine (nibabel) of an ITK image geometry (LPS, direction row-major)."""
    sp = np.asarray(spacing, dtype=np.float64).ravel()
    n = sp.size
    org = np.asarray(origin, dtype=np.float64).ravel()
    dirs = np.asarray(direction, dtype=np.float64).reshape(n, n)
    m = np.eye(3)
    m[:n, :n] = dirs * sp  # columns scaled by the spacing
    t = np.zeros(3)
    t[:n] = org
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    aff = np.eye(4)
    aff[:3, :3] = lps_to_ras @ m
    aff[:3, 3] = lps_to_ras @ t
    return aff


class _PklReference:
    """Geometry of an nnU-Net case taken from its properties file."""

    def __init__(self, props: dict[str, Any]) -> None:
        self.reoriented: np.ndarray | None = None
        if "nibabel_stuff" in props:
            nb = props["nibabel_stuff"]
            self.affine = np.asarray(nb["original_affine"], dtype=np.float64)
            if "reoriented_affine" in nb:
                self.reoriented = np.asarray(nb["reoriented_affine"], dtype=np.float64)
        elif "sitk_stuff" in props:
            s = props["sitk_stuff"]
            self.affine = _sitk_affine(s["spacing"], s["origin"], s["direction"])
        elif "itk_spacing" in props:  # nnU-Net v1
            self.affine = _sitk_affine(
                props["itk_spacing"], props["itk_origin"], props["itk_direction"]
            )
        else:
            raise ValueError("the properties file has no image geometry (sitk_stuff/nibabel_stuff)")


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
        reverse_spatial=True,
        regions=regions,
        sources=sources_of(path, "nnunet"),
    )


def _load_nifti(path: Path, class_axis: int | None) -> ProbabilityMap:
    nib = _nib()
    img = nib.load(path)
    arr = np.asanyarray(img.dataobj)
    _check_float(arr, "the NIfTI data")
    if arr.ndim == 5 and arr.shape[3] == 1:
        arr = arr[:, :, :, 0]  # (X, Y, Z, 1, C): NIfTI's vector layout
    if class_axis is None:
        if arr.ndim != 4:
            raise ValueError(
                f"expected a 4-D (X, Y, Z, C) NIfTI probability map; got shape {arr.shape} "
                "(a 3-D NIfTI is a single volume: is it a label map or one class?)"
            )
        class_axis = 3
    probs, ca = _to_layout(arr, class_axis, batch=False)
    return ProbabilityMap(
        probs=probs,
        path=path,
        format="nifti",
        batch=False,
        class_axis=ca,
        output_name=path.name,
        reference=img,
        sources=(path,),
    )


def _xarray_adapter() -> Any:
    try:
        import rankseg.xarray as rxr
    except ImportError as exc:
        raise ImportError(
            "zarr/netCDF input needs the xarray adapter rankseg.xarray (and xarray installed: "
            "pip install 'rankseg[xarray]'); it is not available in this installation"
        ) from exc
    return rxr


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
        guessed from the number of dimensions).

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
        If the format is unknown or the shape does not fit the layout.
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
        return _load_nnunet(p, key)
    if fmt == "nifti":
        return _load_nifti(p, class_axis)
    if fmt in ("zarr", "netcdf"):
        raise ValueError(
            f"{fmt} input is read lazily: use rankseg.io.load_dataarray and "
            "rankseg.xarray.predict (the command line does)"
        )
    if fmt == "npy":
        try:
            arr = np.load(p, mmap_mode="c", allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"cannot read the .npy ({exc})") from exc
    else:
        arr, _ = _npz_array(p, key)
    if not isinstance(arr, np.ndarray):
        raise ValueError("expected one array in the file")
    _check_float(arr, "the array")
    probs, ca = _to_layout(arr, class_axis, batch)
    return ProbabilityMap(
        probs=probs,
        path=p,
        format=fmt,
        batch=batch,
        class_axis=ca,
        output_name=p.name,
        sources=(p,),
    )


def load_dataarray(
    path: str | os.PathLike[str], *, format: str = "auto", key: str | None = None
) -> Any:
    """Open a zarr store or netCDF file lazily as an :class:`xarray.DataArray`.

    Parameters
    ----------
    path : str or path-like
        A ``.zarr`` store or a netCDF file.
    format : {'auto', 'zarr', 'netcdf'}
        The format (``'auto'``: from the name).
    key : str, optional
        The variable (default: ``probabilities``, else the only data variable).

    Returns
    -------
    xarray.DataArray
        The variable, not loaded (zarr stores are dask-backed); predict it with
        :func:`rankseg.xarray.predict`.

    Raises
    ------
    ImportError
        If xarray or the adapter :mod:`rankseg.xarray` is missing.
    KeyError
        If the variable is missing.
    ValueError
        If the format is not zarr or netCDF.
    """
    _xarray_adapter()
    import xarray as xr

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    fmt = detect_format(p) if format == "auto" else format
    if fmt not in ("zarr", "netcdf"):
        raise ValueError(f"load_dataarray reads zarr or netCDF; got format {fmt!r}")
    if fmt == "zarr":
        try:  # explicit, so xarray does not warn about the fallback
            ds = xr.open_zarr(p, consolidated=True)
        except Exception:
            ds = xr.open_zarr(p, consolidated=False)
    else:
        ds = xr.open_dataset(p)
    names = [str(n) for n in ds.data_vars]
    if key is None:
        if "probabilities" in names:
            key = "probabilities"
        elif len(names) == 1:
            key = names[0]
    if key is None or key not in names:
        raise KeyError(
            f"no {'probabilities' if key is None else repr(key)} variable in the dataset; it "
            f"holds {', '.join(repr(n) for n in names) or 'nothing'} (name one with --key)"
        )
    return ds[key]


def save_dataarray(path: str | os.PathLike[str], da: Any, *, format: str = "auto") -> Path:
    """Write a DataArray (labels or masks) to a zarr store or netCDF file atomically.

    Parameters
    ----------
    path : str or path-like
        ``.zarr`` store or ``.nc`` file.
    da : xarray.DataArray
        The result of :func:`rankseg.xarray.predict` (lazy input is computed while
        writing, chunk by chunk).
    format : {'auto', 'zarr', 'netcdf'}
        The format (``'auto'``: from the name).

    Returns
    -------
    Path
        The store or file written.

    Notes
    -----
    A zarr store is a folder: it is written under a temporary name and renamed;
    an existing store of the same name is first renamed aside and removed after
    the new one is in place.
    """
    import shutil

    p = Path(path)
    fmt = detect_format(p) if format == "auto" else format
    ds = da.to_dataset(name=da.name or "labels")
    if fmt == "netcdf":
        return atomic_write(p, lambda tmp: ds.to_netcdf(tmp))
    if fmt != "zarr":
        raise ValueError(f"save_dataarray writes zarr or netCDF; got format {fmt!r}")
    token = uuid.uuid4().hex[:12]
    tmp = p.with_name(f".{p.name}.rankseg-tmp-{token}")
    old = p.with_name(f".{p.name}.rankseg-old-{token}")
    try:
        # not consolidated: zarr 3 warns that consolidated metadata is outside its spec
        ds.to_zarr(tmp, mode="w", consolidated=False)
        if p.exists():
            os.replace(p, old)
        os.replace(tmp, p)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return p


# ------------------------------------------------------------------------ labels


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


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Write a file atomically: ``write(tmp)`` then rename ``tmp`` to ``path``.

    Parameters
    ----------
    path : str or path-like
        The final file name.
    write : callable
        Called with a temporary path in the same folder, ending with the same
        suffix as ``path`` (so writers that choose a format from the name work).

    Returns
    -------
    Path
        ``path``.

    Notes
    -----
    If ``write`` raises (or the rename fails), the temporary file is removed and
    the exception propagates: the final name is either absent, its previous
    content, or the complete new file.  A process killed mid-write may leave a
    hidden ``.NAME.rankseg-tmp-*`` file, never a partial file under the final name.
    """
    final = Path(path)
    suffix = _suffix(final)
    stem = final.name[: len(final.name) - len(suffix)] if suffix else final.name
    tmp = final.with_name(f".{stem}.rankseg-tmp-{uuid.uuid4().hex[:12]}{suffix}")
    try:
        write(tmp)
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    return final


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


def _write_nifti(tmp: Path, data: np.ndarray, reference: Any, labelmap: bool) -> None:
    nib = _nib()
    if reference is None:
        img = nib.Nifti1Image(data, np.eye(4))
    elif isinstance(reference, _PklReference):
        img = nib.Nifti1Image(
            data, reference.reoriented if reference.reoriented is not None else reference.affine
        )
        if reference.reoriented is not None:
            from nibabel.orientations import io_orientation

            img = img.as_reoriented(io_orientation(reference.affine))
    else:
        cls = type(reference) if isinstance(reference, nib.Nifti1Image) else nib.Nifti1Image
        hdr = reference.header.copy() if isinstance(reference, nib.Nifti1Image) else None
        img = cls(data, reference.affine, hdr)
    img.header.set_data_dtype(data.dtype)
    img.header.set_intent("label" if labelmap else "none")
    if data.size:
        img.header["cal_min"] = float(data.min())
        img.header["cal_max"] = float(data.max())
    nib.save(img, tmp)


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
        ``labels``, or ``masks`` for boolean masks), ``.nii`` / ``.nii.gz``.
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
    suffix = _suffix(p)
    if suffix == ".npy":

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
    elif suffix == ".npz":
        name = "masks" if masks_in and not labelmap else "labels"

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **{name: arr})
    elif suffix in _NIFTI_SUFFIXES:
        data = arr.astype(np.uint8) if arr.dtype == bool else arr
        ref = like.reference if like is not None else None
        if ref is not None and not isinstance(ref, _PklReference) and not hasattr(ref, "affine"):
            ref = None

        def write(tmp: Path) -> None:
            _write_nifti(tmp, np.asarray(data), ref, labelmap)
    else:
        raise ValueError(
            f"cannot write labels to {p.name!r}: unknown suffix {suffix!r}; expected .npy, .npz, "
            ".nii or .nii.gz"
        )
    return atomic_write(p, write)


def load_labels(path: str | os.PathLike[str], *, key: str | None = None) -> np.ndarray:
    """Read a label map or masks (a prediction or a ground truth).

    Parameters
    ----------
    path : str or path-like
        ``.npy``, ``.npz`` (array ``key``, else ``labels``, ``masks``, ``seg``,
        ``segmentation`` or the only array) or NIfTI.
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
    suffix = _suffix(p)
    if suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(p, allow_pickle=False) as f:
            names = list(f.files)
        if key is None and len(names) == 1:
            key = names[0]
        arr, _ = _npz_array(p, key, ("labels", "masks", "seg", "segmentation"))
    elif suffix in _NIFTI_SUFFIXES:
        arr = np.asanyarray(_nib().load(p).dataobj)
        if arr.ndim == 4:
            arr = np.moveaxis(arr, 3, 0)
            if arr.dtype.kind in "iuf":
                if not np.isin(arr, (0, 1)).all():
                    raise ValueError("a 4-D NIfTI must hold 0/1 masks (X, Y, Z, C)")
                arr = arr.astype(bool)
    else:
        raise ValueError(
            f"unrecognized label file type {suffix or '(no suffix)'!r}; expected .npy, .npz, "
            ".nii or .nii.gz"
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
