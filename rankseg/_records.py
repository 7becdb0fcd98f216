"""What the NumPy API and the backends share: the result record and the solver table.

This is the bottom of the package: it imports nothing of :mod:`rankseg`, so the
kernels, the GPU driver and the API can all import it and the imports still run one
way (docs/design.rst, ``tests/test_layers.py``).  It holds the vocabulary of the
parameters (metrics, output modes, solver names per metric, solver parameters), the
integer codes the kernels dispatch on, and :class:`PredictInfo`, the per-row result
both the CPU and the GPU paths return.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "AVAILABLE",
    "BA",
    "BA_TRNA",
    "DEVICES",
    "CLASS_DIM_NAMES",
    "EMPTY_CONVENTIONS",
    "EMPTY_PRUNING_PROB",
    "EPS_SOLVERS",
    "EXACT",
    "METRICS",
    "MIN_SMOOTH",
    "OUTPUT_MODES",
    "POLICIES",
    "SOLVERS",
    "SOLVER_CODE",
    "SAMPLE_DIM_NAMES",
    "SOLVER_PARAMS",
    "TRNA",
    "PredictInfo",
]

#: solver codes of the kernels of the non-RMA solvers (``rankseg.kernels.search``)
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


@dataclass(frozen=True)
class PredictInfo:
    """Per-(sample, class) results of a Dice/IoU prediction (SPEC §7).

    Attributes
    ----------
    tau : ndarray of int64, shape (B, C)
        Selected volume τ* of each class mask (before multiclass resolution).
    threshold : ndarray of float64, shape (B, C)
        Smallest selected probability, NaN for an empty mask.
    score : ndarray of float64, shape (B, C)
        The solver's objective at τ*: an estimate of the expected Dice/IoU of the
        class mask (for a pruned row, the objective of the empty mask).
    pruned : ndarray of bool, shape (B, C)
        Whether the row got the empty mask without its solver's cut: its max
        probability is ``<= pruning_prob``, or the presence rule (``empty='one'``,
        ``presence=``) judged the class absent.
    """

    tau: np.ndarray
    threshold: np.ndarray
    score: np.ndarray
    pruned: np.ndarray
