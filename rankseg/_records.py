"""The records the NumPy API and both drivers return: the per-row info and the plan.

:class:`PredictInfo` (what ``return_info=True`` gives, from the CPU and the GPU
driver alike), :func:`empty_info` (that of an empty batch) and :class:`PredictPlan`
(what :meth:`rankseg.RankSEG.plan` makes of a shape and dtype).  Like
:mod:`rankseg._policies` it imports nothing of :mod:`rankseg`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PredictInfo", "PredictPlan", "empty_info"]


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


def empty_info(nc: int) -> PredictInfo:
    """Return the :class:`PredictInfo` of an empty batch (``B = 0``) of ``nc`` classes.

    Parameters
    ----------
    nc : int
        Number of classes C.

    Returns
    -------
    PredictInfo
        Arrays of shape ``(0, nc)`` of each field's dtype.
    """
    return PredictInfo(
        tau=np.zeros((0, nc), dtype=np.int64),
        threshold=np.zeros((0, nc)),
        score=np.zeros((0, nc)),
        pruned=np.zeros((0, nc), dtype=bool),
    )


@dataclass(frozen=True)
class PredictPlan:
    """What :meth:`rankseg.RankSEG.predict` makes of an input of one shape and dtype.

    Returned by :meth:`rankseg.RankSEG.plan`, which validates the parameters against
    the shape and dtype without reading any data.

    Attributes
    ----------
    shape : tuple of int
        The input's shape ``(B, C, *spatial)``.
    dtype : numpy.dtype
        The input's dtype (float16, float32 or float64, native byte order: the
        kernels read the input in this dtype).
    out_shape : tuple of int
        Shape of the predictions: ``(B, *spatial)`` (multiclass) or
        ``(B, C, *spatial)`` (multilabel).
    out_dtype : numpy.dtype
        Dtype of the predictions: the label dtype (multiclass), or bool.
    multiclass : bool
        Whether the predictions are a label map.
    void : bool
        Whether pixels no class selects get ``void_index`` (multiclass Dice/IoU with
        ``unassigned_policy='void'``).
    return_info : bool
        Whether a :class:`PredictInfo` of shape ``(B, C)`` comes with the predictions.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    out_shape: tuple[int, ...]
    out_dtype: np.dtype
    multiclass: bool
    void: bool
    return_info: bool
