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

from rankseg.io._arrays import ProbabilityMap
from rankseg.io._atomic import atomic_write
from rankseg.io._labels import load_labels, save_labels, smallest_label_dtype
from rankseg.io._naming import (
    FORMATS,
    NPZ_KEYS,
    case_name,
    detect_format,
    find_inputs,
)
from rankseg.io._nnunet import output_name, sources_of
from rankseg.io._probabilities import average_probabilities, load_probabilities
from rankseg.io._xarray import load_dataarray, save_dataarray

__all__ = [
    "FORMATS",
    "NPZ_KEYS",
    "ProbabilityMap",
    "atomic_write",
    "average_probabilities",
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
