"""Samplewise Dice and IoU for evaluating label maps or masks against a truth.

Scores are per (sample, class), like TorchMetrics' ``aggregation_level="samplewise"``
with ``average="none"``: ``Dice = 2|P∩T| / (|P| + |T|)``, ``IoU = |P∩T| / |P∪T|``.

* :func:`dice_score` / :func:`iou_score` are the evaluation functions: a class absent
  from both prediction and target gets the ``empty=`` policy (``"nan"`` by default,
  like TorchMetrics' samplewise ``DiceScore`` and nnU-Net's evaluation; ``"one"``;
  ``"zero"``; ``"ignore"``: every pair with an empty target is NaN, MONAI's
  ``ignore_empty=True``), and ``include_background=False`` drops class 0.
* :func:`samplewise_score` is the SPEC §1 metric with smoothing γ and ``0/0 := 0``
  (what RankSEG optimizes); :func:`samplewise_counts` gives the raw counts.

See ``docs/cli.rst`` for the comparison with TorchMetrics and MONAI.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import prange

from rankseg import _validation as v
from rankseg._config import pjit

#: the default num_classes (largest label + 1) stops here: a stray huge label would
#: otherwise allocate counts for every class below it
_MAX_DEFAULT_CLASSES = 65536

__all__ = [
    "EMPTY_POLICIES",
    "dice_score",
    "iou_score",
    "samplewise_counts",
    "samplewise_score",
    "score_from_counts",
]

#: accepted values of ``empty=`` in :func:`dice_score` and :func:`iou_score`
EMPTY_POLICIES = ("nan", "one", "zero", "ignore")


@pjit
def _label_counts(pred, target, ncls):
    nb, d = pred.shape
    out = np.zeros((nb, ncls, 3), dtype=np.int64)
    for b in prange(nb):
        for j in range(d):
            p = pred[b, j]
            t = target[b, j]
            if 0 <= p < ncls:
                out[b, p, 0] += 1
                if p == t:
                    out[b, p, 2] += 1
            if 0 <= t < ncls:
                out[b, t, 1] += 1
    return out


def samplewise_counts(pred: Any, target: Any, num_classes: int | None = None) -> np.ndarray:
    """Count ``|P|``, ``|T|`` and ``|P∩T|`` per (sample, class).

    Parameters
    ----------
    pred, target : array-like
        Either integer label maps of shape ``(B, *spatial)`` (labels outside
        ``[0, num_classes)``, such as a void label, count for no class), or boolean
        masks of shape ``(B, C, *spatial)``; both of the same kind and shape.  Masks
        must be bool: an integer or float one-hot array (MONAI, torch) is read as a
        label map -- pass ``onehot.astype(bool)``.
    num_classes : int, optional
        Number of classes for label maps (default: largest label + 1, so a void label
        such as 255 counts as a class unless ``num_classes`` is given; a largest label
        of 65536 or more needs it).  Ignored for masks, whose class axis gives it.

    Returns
    -------
    ndarray of int64, shape (B, C, 3)
        ``[..., 0] = |P|``, ``[..., 1] = |T|``, ``[..., 2] = |P∩T|``.

    Raises
    ------
    ValueError
        If the shapes differ or the inputs are neither label maps nor masks.
    TypeError
        If ``num_classes`` is not an integer.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.metrics import samplewise_counts
    >>> samplewise_counts(np.array([[0, 1, 1]]), np.array([[0, 1, 0]]))[0]
    array([[1, 2, 1],
           [2, 1, 1]])
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred has shape {pred.shape} but target has {target.shape}; expected equal shapes"
        )
    if pred.ndim < 2:
        raise ValueError(
            f"expected (B, *spatial) label maps or (B, C, *spatial) masks; got shape {pred.shape}"
        )
    if pred.dtype == bool and target.dtype == bool:
        if pred.ndim < 3:
            raise ValueError(f"boolean masks must have shape (B, C, *spatial); got {pred.shape}")
        nb, nc = pred.shape[:2]
        size = math.prod(pred.shape[2:])  # explicit: -1 is ambiguous for an empty batch
        p = pred.reshape(nb, nc, size)
        t = target.reshape(nb, nc, size)
        return np.stack([p.sum(-1), t.sum(-1), (p & t).sum(-1)], axis=-1).astype(np.int64)
    if pred.dtype.kind not in "iu" or target.dtype.kind not in "iu":
        raise ValueError(
            f"pred and target must both be integer label maps or both boolean masks; got "
            f"{pred.dtype} and {target.dtype}"
        )
    if num_classes is None:
        largest = int(max(pred.max(initial=0), target.max(initial=0)))
        if largest >= _MAX_DEFAULT_CLASSES:
            raise ValueError(
                f"the largest label is {largest}: counting every class up to it would take "
                f"{largest + 1} classes; pass num_classes (labels outside [0, num_classes), "
                "such as a void label, count for no class)"
            )
        num_classes = largest + 1
    num_classes = v.check_int(num_classes, "num_classes")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    nb = pred.shape[0]
    size = math.prod(pred.shape[1:])
    return _label_counts(
        pred.reshape(nb, size).astype(np.int64, copy=False),
        target.reshape(nb, size).astype(np.int64, copy=False),
        num_classes,
    )


def samplewise_score(
    pred: Any,
    target: Any,
    metric: str = "dice",
    smooth: float = 0.0,
    num_classes: int | None = None,
) -> np.ndarray:
    """Dice or IoU of each (sample, class) as RankSEG defines them (SPEC §1).

    Parameters
    ----------
    pred, target : array-like
        Label maps ``(B, *spatial)`` or boolean masks ``(B, C, *spatial)``.
    metric : {'dice', 'iou'}
        The score.
    smooth : float
        Smoothing ``γ >= 0``.
    num_classes : int, optional
        Number of classes for label maps.

    Returns
    -------
    ndarray of float64, shape (B, C)
        The scores, with ``0/0 := 0`` (use :func:`dice_score` / :func:`iou_score`
        for an explicit policy on empty classes).

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.metrics import samplewise_score
    >>> samplewise_score(np.array([[0, 1, 1]]), np.array([[0, 1, 0]]))
    array([[0.66666667, 0.66666667]])
    """
    metric = v.check_name(metric, "metric", ("dice", "iou"))
    gamma = v.check_real(smooth, "smooth", lo=0.0, hi=np.inf, hi_open=True)
    counts = samplewise_counts(pred, target, num_classes).astype(np.float64)
    num, den = _num_den(counts, metric, gamma)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _num_den(counts: np.ndarray, metric: str, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    npred, ntrue, inter = counts[..., 0], counts[..., 1], counts[..., 2]
    if metric == "dice":
        return 2.0 * inter + gamma, npred + ntrue + gamma
    return inter + gamma, npred + ntrue - inter + gamma


def score_from_counts(counts: Any, metric: str = "dice", empty: str = "nan") -> np.ndarray:
    """Dice or IoU from the counts of :func:`samplewise_counts`.

    Useful to accumulate counts over many files first (e.g. padding the class
    axis with zeros to a common number of classes) and score once.

    Parameters
    ----------
    counts : array-like, shape (..., 3)
        ``|P|``, ``|T|``, ``|P∩T|`` in the last axis.
    metric : {'dice', 'iou'}
        The score.
    empty : {'nan', 'one', 'zero', 'ignore'}
        Score where ``|P| = |T| = 0``; ``'ignore'``: NaN wherever ``|T| = 0`` (see
        :func:`dice_score`).

    Returns
    -------
    ndarray of float64, shape counts.shape[:-1]
        The scores.

    Raises
    ------
    ValueError
        If the last axis is not of length 3, or ``metric``/``empty`` is unknown.

    Examples
    --------
    >>> from rankseg.metrics import score_from_counts
    >>> score_from_counts([[2, 1, 1], [0, 0, 0]], "iou")
    array([0.5, nan])
    """
    metric = v.check_name(metric, "metric", ("dice", "iou"))
    empty = v.check_name(empty, "empty", EMPTY_POLICIES)
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim < 1 or c.shape[-1] != 3:
        raise ValueError(f"counts must have shape (..., 3); got {c.shape}")
    num, den = _num_den(c, metric, 0.0)
    fill = {"nan": np.nan, "one": 1.0, "zero": 0.0, "ignore": np.nan}[empty]
    score = np.divide(num, den, out=np.full_like(num, fill), where=den > 0)
    if empty == "ignore":
        score[c[..., 1] == 0] = np.nan
    return score


def _score(
    metric: str,
    pred: Any,
    target: Any,
    num_classes: int | None,
    include_background: bool,
    empty: str,
) -> np.ndarray:
    empty = v.check_name(empty, "empty", EMPTY_POLICIES)
    if not isinstance(include_background, (bool, np.bool_)):
        raise TypeError(
            f"include_background must be a bool; got {type(include_background).__name__}"
        )
    scores = score_from_counts(samplewise_counts(pred, target, num_classes), metric, empty)
    return scores if include_background else scores[:, 1:]


def dice_score(
    pred: Any,
    target: Any,
    *,
    num_classes: int | None = None,
    include_background: bool = True,
    empty: str = "nan",
) -> np.ndarray:
    """Samplewise Dice ``2|P∩T| / (|P| + |T|)`` of each (sample, class).

    Parameters
    ----------
    pred, target : array-like
        Integer label maps ``(B, *spatial)`` or boolean masks ``(B, C, *spatial)``,
        both of the same kind and shape.  In label maps, labels outside
        ``[0, num_classes)`` (e.g. a void label 255) count for no class.
    num_classes : int, optional
        Number of classes of label maps (default: the largest label + 1).
    include_background : bool
        Keep class 0; ``False`` drops it (column 0 of the result), like
        TorchMetrics' and MONAI's ``include_background=False``.
    empty : {'nan', 'one', 'zero', 'ignore'}
        Score of a (sample, class) absent from both prediction and target:
        ``'nan'`` (default; TorchMetrics' samplewise ``DiceScore``, nnU-Net's
        evaluation; average with :func:`numpy.nanmean`), ``'one'`` (a correct
        empty prediction is perfect; MONAI's ``ignore_empty=False``) or ``'zero'``
        (the RankSEG papers' ``0/0 := 0``); ``'ignore'``: NaN for every pair whose
        target is empty, whatever the prediction (MONAI's ``ignore_empty=True``;
        the ``empty='ignore'`` convention of :class:`rankseg.RankSEG`).

    Returns
    -------
    ndarray of float64, shape (B, C) or (B, C - 1)
        One score per (sample, class); without class 0 when ``include_background``
        is False.

    Raises
    ------
    ValueError
        If the shapes differ, the inputs are neither label maps nor masks, or
        ``empty`` is unknown.
    TypeError
        If ``empty`` is not a string, ``include_background`` not a bool or
        ``num_classes`` not an integer.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.metrics import dice_score
    >>> pred = np.array([[0, 1, 1, 0]])
    >>> target = np.array([[0, 1, 0, 0]])
    >>> dice_score(pred, target, num_classes=3)
    array([[0.8       , 0.66666667,        nan]])
    >>> dice_score(pred, target, num_classes=3, empty="one", include_background=False)
    array([[0.66666667, 1.        ]])
    """
    return _score("dice", pred, target, num_classes, include_background, empty)


def iou_score(
    pred: Any,
    target: Any,
    *,
    num_classes: int | None = None,
    include_background: bool = True,
    empty: str = "nan",
) -> np.ndarray:
    """Samplewise IoU (Jaccard index) ``|P∩T| / |P∪T|`` of each (sample, class).

    Parameters
    ----------
    pred, target : array-like
        Integer label maps ``(B, *spatial)`` or boolean masks ``(B, C, *spatial)``,
        both of the same kind and shape.  In label maps, labels outside
        ``[0, num_classes)`` (e.g. a void label 255) count for no class.
    num_classes : int, optional
        Number of classes of label maps (default: the largest label + 1).
    include_background : bool
        Keep class 0; ``False`` drops it (column 0 of the result), like
        TorchMetrics' and MONAI's ``include_background=False``.
    empty : {'nan', 'one', 'zero', 'ignore'}
        Score of a (sample, class) absent from both prediction and target:
        ``'nan'`` (default; nnU-Net's evaluation -- TorchMetrics' ``MeanIoU`` gives
        -1 there; average with :func:`numpy.nanmean`), ``'one'`` (a correct empty
        prediction is perfect; MONAI's ``ignore_empty=False``) or ``'zero'`` (the
        RankSEG papers' ``0/0 := 0``); ``'ignore'``: NaN for every pair whose
        target is empty (see :func:`dice_score`).

    Returns
    -------
    ndarray of float64, shape (B, C) or (B, C - 1)
        One score per (sample, class); without class 0 when ``include_background``
        is False.

    Raises
    ------
    ValueError
        If the shapes differ, the inputs are neither label maps nor masks, or
        ``empty`` is unknown.
    TypeError
        If ``empty`` is not a string, ``include_background`` not a bool or
        ``num_classes`` not an integer.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.metrics import iou_score
    >>> pred = np.array([[0, 1, 1, 0]])
    >>> target = np.array([[0, 1, 0, 0]])
    >>> iou_score(pred, target, num_classes=3)
    array([[0.66666667, 0.5       ,        nan]])
    """
    return _score("iou", pred, target, num_classes, include_background, empty)
