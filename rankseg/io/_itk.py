"""SimpleITK: the geometry and writer of nnU-Net's ``SimpleITKIO`` (``.mha``, ``.nrrd``).

nnU-Net datasets whose ``file_ending`` is not NIfTI are read and written through
SimpleITK.  Their label maps are written here exactly as ``SimpleITKIO.write_seg``
does: the array in nnU-Net's ``(Z, Y, X)`` order, spacing, origin and direction of
the case, compressed.  SimpleITK is the optional extra ``rankseg-numba[itk]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def import_sitk() -> Any:
    try:
        import SimpleITK
    except ImportError as exc:
        raise ImportError(
            "writing nnU-Net's .mha/.nrrd/.gipl label maps needs SimpleITK: "
            "pip install 'rankseg-numba[itk]'"
        ) from exc
    return SimpleITK


class SitkReference:
    """ITK geometry of an nnU-Net case: spacing, origin, direction (ITK's LPS, row-major)."""

    def __init__(self, spacing: Any, origin: Any, direction: Any) -> None:
        self.spacing = tuple(float(v) for v in spacing)
        self.origin = tuple(float(v) for v in origin)
        self.direction = tuple(float(v) for v in np.asarray(direction, dtype=np.float64).ravel())
        n = len(self.spacing)
        if n not in (2, 3) or len(self.origin) != n or len(self.direction) != n * n:
            raise ValueError(
                f"the case geometry is inconsistent: spacing {self.spacing}, origin "
                f"{self.origin}, direction of {len(self.direction)} values (expected a 2-D "
                "or 3-D image)"
            )

    @property
    def ndim(self) -> int:
        """Number of image axes (2 or 3)."""
        return len(self.spacing)

    @classmethod
    def from_file(cls, path: Path) -> tuple[SitkReference, tuple[int, ...]]:
        """Geometry and size ``(X, Y[, Z])`` of an image file (its voxels are not read)."""
        sitk = import_sitk()
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        ref = cls(reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
        return ref, tuple(int(v) for v in reader.GetSize())


def write_itk(tmp: Path, data: np.ndarray, reference: SitkReference | None) -> None:
    """Write ``data`` in nnU-Net's array order ``(Z, Y, X)`` as SimpleITKIO does."""
    sitk = import_sitk()
    if reference is None:
        raise ValueError(
            "an .mha/.nrrd/.gipl label map needs the case geometry (an nnU-Net case with "
            "its CASE.pkl or segmentation beside it)"
        )
    if reference.ndim == 2 and data.ndim == 3 and data.shape[0] == 1:
        data = data[0]  # a 2-D case is stored by nnU-Net as (1, Y, X)
    if data.ndim != reference.ndim:
        raise ValueError(
            f"labels of shape {data.shape} do not fit a {reference.ndim}-D image geometry"
        )
    img = sitk.GetImageFromArray(np.ascontiguousarray(data))
    img.SetSpacing(reference.spacing)
    img.SetOrigin(reference.origin)
    img.SetDirection(reference.direction)
    sitk.WriteImage(img, str(tmp), True)
