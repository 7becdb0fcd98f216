"""NIfTI: nibabel access, image geometry, 4-D probability maps in, label maps out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rankseg.io._arrays import ProbabilityMap, check_float, to_layout


def import_nibabel() -> Any:
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - nibabel is in the test extra
        raise ImportError(
            "reading or writing NIfTI needs nibabel: pip install 'rankseg-numba[nifti]'"
        ) from exc
    return nibabel


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


class PklReference:
    """Geometry of an nnU-Net case taken from its properties file.

    ``itk_header`` is set for SimpleITKIO's ``sitk_stuff``: nnU-Net writes those cases
    through ITK, whose NIfTI header has qform and sform codes 1 (scanner) and units
    mm / sec; NibabelIO's cases (``nibabel_stuff``) get nibabel's defaults, as
    ``nibabel.Nifti1Image(seg, affine)`` in nnU-Net's writer does.
    """

    def __init__(self, props: dict[str, Any]) -> None:
        self.reoriented: np.ndarray | None = None
        self.itk_header = False
        self.ndim = 3
        if "nibabel_stuff" in props:
            nb = props["nibabel_stuff"]
            self.affine = np.asarray(nb["original_affine"], dtype=np.float64)
            if "reoriented_affine" in nb:
                self.reoriented = np.asarray(nb["reoriented_affine"], dtype=np.float64)
        elif "sitk_stuff" in props:
            s = props["sitk_stuff"]
            self.affine = _sitk_affine(s["spacing"], s["origin"], s["direction"])
            self.itk_header = True
            self.ndim = len(s["spacing"])
        elif "itk_spacing" in props:  # nnU-Net v1
            self.affine = _sitk_affine(
                props["itk_spacing"], props["itk_origin"], props["itk_direction"]
            )
            self.itk_header = True
            self.ndim = len(props["itk_spacing"])
        else:
            raise ValueError("the properties file has no image geometry (sitk_stuff/nibabel_stuff)")
        if self.affine.shape != (4, 4) or (
            self.reoriented is not None and self.reoriented.shape != (4, 4)
        ):
            raise ValueError("the properties file holds an affine that is not 4 x 4")


def load_nifti(path: Path, class_axis: int | None) -> ProbabilityMap:
    nib = import_nibabel()
    img = nib.load(path)
    arr = np.asanyarray(img.dataobj)
    check_float(arr, "the NIfTI data")
    if arr.ndim == 5 and arr.shape[3] == 1:
        arr = arr[:, :, :, 0]  # (X, Y, Z, 1, C): NIfTI's vector layout
    if class_axis is None:
        if arr.ndim != 4:
            raise ValueError(
                f"expected a 4-D (X, Y, Z, C) NIfTI probability map; got shape {arr.shape} "
                "(a 3-D NIfTI is a single volume: is it a label map or one class?)"
            )
        class_axis = 3
    probs, ca = to_layout(arr, class_axis, batch=False)
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


def _from_canonical(affine: np.ndarray) -> np.ndarray:
    """Return the orientation transform from RAS back to the axes of ``affine``.

    This is what nnU-Net's ``NibabelIOWithReorient.write_seg`` applies (nibabel issue
    1063): ``ornt_transform(axcodes2ornt("RAS"), io_orientation(affine))``.  Applying
    ``io_orientation(affine)`` itself, the transform *to* RAS, is only its own inverse
    for flips and two-axis swaps; a 3-cycle of the axes needs the inverse transform.
    """
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    return ornt_transform(axcodes2ornt("RAS"), io_orientation(affine))


def write_nifti(tmp: Path, data: np.ndarray, reference: Any, labelmap: bool) -> None:
    nib = import_nibabel()
    ndim = getattr(reference, "ndim", None)
    if labelmap and ndim == 2 and data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]  # a 2-D case: nnU-Net's (1, Y, X) reversed is (X, Y, 1)
    if reference is None:
        img = nib.Nifti1Image(data, np.eye(4))
    elif isinstance(reference, PklReference):
        if reference.reoriented is not None:
            img = nib.Nifti1Image(data, reference.reoriented)
            img = img.as_reoriented(_from_canonical(reference.affine))
        else:
            img = nib.Nifti1Image(data, reference.affine)
        if reference.itk_header:
            img.set_qform(img.affine, code=1)
            img.set_sform(img.affine, code=1)
            img.header.set_xyzt_units("mm", "sec")
            pixdim = img.header["pixdim"]
            pixdim[4:] = 0.0  # ITK leaves the time step and the unused zooms at 0
            img.header["pixdim"] = pixdim
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
