"""The one home of the policies and the vocabulary every layer shares.

This is the bottom of the package with :mod:`rankseg._records`: it imports nothing
of :mod:`rankseg`, so the kernels, the GPU driver and the API can all import it and the
imports still run one way (docs/design.rst, ``tests/test_layers.py``).  It holds the
vocabulary of the parameters (metrics, output modes, solver names per metric, solver
parameters, dim names), the integer codes the kernels dispatch on, and the policies
every layer shares (docs/design.rst, "One home per policy";
``tests/test_decide_once.py`` fails on a second definition): the accepted
probability dtypes (:data:`FLOAT_DTYPES`), the metric codes of the kernels
(:data:`DICE`, :data:`IOU`, :func:`metric_code`), the label values of a multiclass map
(:func:`label_values`, :func:`label_range`, :func:`void_label`) and the
float16-as-uint16 view the CPU kernels read (:func:`bits_view`, :func:`kernel_view`).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = [
    "ACC",
    "AVAILABLE",
    "BA",
    "BA_TRNA",
    "BITS_DTYPES",
    "CLASS_DIM_NAMES",
    "DEVICES",
    "DICE",
    "EMPTY_CONVENTIONS",
    "EMPTY_PRUNING_PROB",
    "EPS_SOLVERS",
    "EXACT",
    "FLOAT_DTYPES",
    "FLOAT_DTYPE_NAMES",
    "IOU",
    "LabelParams",
    "METRICS",
    "MIN_SMOOTH",
    "OUTPUT_MODES",
    "POLICIES",
    "SAMPLE_DIM_NAMES",
    "SOLVERS",
    "SOLVER_CODE",
    "SOLVER_PARAMS",
    "TRNA",
    "bits_view",
    "kernel_view",
    "one_bits",
    "label_range",
    "label_values",
    "metric_code",
    "void_label",
]

#: the probability dtypes every entry point accepts (any byte order; the checks compare
#: ``dtype.newbyteorder("=")``)
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
#: their names, for front ends (CLI choices, the ahead-of-time build)
FLOAT_DTYPE_NAMES = tuple(dt.name for dt in FLOAT_DTYPES)
#: the unsigned integer dtype of each float width: the bit patterns of the floats
BITS_DTYPES = {dt.itemsize: np.dtype(f"u{dt.itemsize}") for dt in FLOAT_DTYPES}

#: metric codes of the kernels (CPU and GPU; numba freezes them as constants): Dice,
#: IoU, and accuracy, which has no cut (argmax or threshold; the GPU row setup's ``metric < 0``)
DICE = 0
IOU = 1
ACC = -1


def metric_code(metric: str) -> int:
    """Return the kernels' code of a metric name.

    Parameters
    ----------
    metric : {'dice', 'iou', 'acc'}
        A normalized metric name (``RankSEG.metric``).

    Returns
    -------
    int
        :data:`DICE`, :data:`IOU` or :data:`ACC`.

    Raises
    ------
    ValueError
        For any other name.
    """
    codes = {"dice": DICE, "iou": IOU, "acc": ACC}
    if metric not in codes:
        raise ValueError(
            f"unknown metric {metric!r}; expected one of {', '.join(map(repr, codes))}"
        )
    return codes[metric]


class LabelParams(Protocol):
    """The parameters that decide the labels of a multiclass map (a ``RankSEG`` has them)."""

    metric: str
    output_mode: str
    unassigned_policy: str
    void_index: int


def void_label(params: LabelParams) -> int | None:
    """Return the void label a map may hold, or None.

    Parameters
    ----------
    params : RankSEG or any object with ``metric``, ``output_mode``,
        ``unassigned_policy`` and ``void_index``
        Normalized parameters.

    Returns
    -------
    int or None
        ``void_index`` for multiclass Dice/IoU output with ``unassigned_policy='void'``
        (pixels no class selects get it), else None.
    """
    void = (
        params.output_mode == "multiclass"
        and params.metric != "acc"
        and params.unassigned_policy == "void"
    )
    return int(params.void_index) if void else None


def label_values(n_classes: int, params: LabelParams) -> list[int]:
    """Return every label a multiclass map of ``n_classes`` classes may hold.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C``: the labels ``0 .. C - 1``.
    params : RankSEG or any object with the attributes of :func:`void_label`
        Normalized parameters.

    Returns
    -------
    list of int
        ``[0, 1, ..., C - 1]``, followed by the void label (:func:`void_label`) when
        the map may hold one.
    """
    void = void_label(params)
    return list(range(n_classes)) + ([] if void is None else [void])


def label_range(n_classes: int, params: LabelParams) -> tuple[int, int]:
    """Return the smallest and largest label of :func:`label_values` (0 for none).

    Parameters
    ----------
    n_classes : int
        Number of classes ``C``.
    params : RankSEG or any object with the attributes of :func:`void_label`
        Normalized parameters.

    Returns
    -------
    (int, int)
        ``(min, max)`` of the labels.
    """
    values = label_values(n_classes, params)
    return min(values, default=0), max(values, default=0)


def bits_view(x: np.ndarray) -> np.ndarray:
    """Return float probabilities viewed as their bit patterns (``uint16/32/64``, zero-copy).

    Parameters
    ----------
    x : ndarray of float16, float32 or float64

    Returns
    -------
    ndarray
        ``x.view`` of the unsigned integer dtype of the same width.
    """
    return x.view(BITS_DTYPES[x.dtype.itemsize])


def one_bits(dtype: np.dtype) -> np.unsignedinteger:
    """Return the bit pattern of 1.0 in a float dtype, as its unsigned integer.

    Valid probabilities ([+0, 1]) have patterns at most this one; NaN, infinities,
    negatives (-0.0 too) and values above 1 have larger ones.

    Parameters
    ----------
    dtype : numpy.dtype
        float16, float32 or float64.

    Returns
    -------
    numpy unsigned integer
        Of the width of ``dtype`` (``BITS_DTYPES``).
    """
    return _ONE_BITS[np.dtype(dtype).itemsize]


#: one_bits by width in bytes
_ONE_BITS: dict[int, Any] = {n: np.array(1.0, dtype=f"f{n}").view(f"u{n}")[()] for n in BITS_DTYPES}


def kernel_view(x: np.ndarray) -> np.ndarray:
    """Return the view of probabilities the CPU kernels read: float16 as its uint16 bits.

    Numba on the CPU has no float16 arithmetic: the kernels decode the bits
    (``rankseg.kernels._dtype.as_f64``).  float32 and float64 are returned as they are.

    Parameters
    ----------
    x : ndarray of float16, float32 or float64

    Returns
    -------
    ndarray
        ``x`` itself, or for float16 its zero-copy ``uint16`` view.
    """
    return bits_view(x) if x.dtype == np.float16 else x


#: solver codes of the kernels of the non-RMA solvers (``rankseg.kernels.solver_passes``)
EXACT = 0
BA = 1
TRNA = 2
BA_TRNA = 3

METRICS = ("dice", "iou", "acc")
OUTPUT_MODES = ("multiclass", "multilabel")
#: every solver name of SPEC §3, per metric
SOLVERS = {
    "dice": ("rma", "ba", "trna", "ba+trna", "exact"),
    "iou": ("rma", "exact"),
    "acc": ("argmax", "tr"),
}
#: the solvers implemented in this build (every solver of SPEC §3); front ends such as
#: the CLI list their choices from it
AVAILABLE = ("rma", "exact", "ba", "trna", "ba+trna", "argmax", "tr")
#: the kernels' code of each non-RMA Dice/IoU solver
SOLVER_CODE = {"exact": EXACT, "ba": BA, "trna": TRNA, "ba+trna": BA_TRNA}
SOLVER_PARAMS = ("unassigned_policy", "void_index", "eps")
POLICIES = ("max_score", "void")
DEVICES = ("cpu", "cuda")
#: smallest positive ``smooth``: the exact solver's integral of the empty mask's score
#: spans ``s`` up to ~40/smooth, and its lattice ends at s = exp(700) ~ 1e304
MIN_SMOOTH = 1e-300
#: dim names (lower case) that say "this dim holds the cases": a labelled array
#: (xarray, zarr, netCDF) with such a dim is decided per case without being told
SAMPLE_DIM_NAMES = (
    "case",
    "cases",
    "sample",
    "samples",
    "batch",
    "subject",
    "subjects",
    "patient",
    "patients",
)
#: dim names (lower case) that say "this dim holds the classes"
CLASS_DIM_NAMES = ("class", "classes", "channel", "channels", "label", "labels")
#: how a benchmark scores an (image, class) whose truth is empty (SPEC §8): ``empty=``
EMPTY_CONVENTIONS = ("zero", "one", "ignore")
#: the default ``pruning_prob`` of each convention that decides presence by it
#: (``"one"`` decides by the presence rule: ``rankseg._api.RankSEG``)
EMPTY_PRUNING_PROB = {"zero": 0.5, "ignore": 0.0}
#: the solvers that take ``eps`` (the refined-normal ones)
EPS_SOLVERS = ("ba", "trna", "ba+trna")
