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
from rankseg._compile.jit import pjit
from rankseg._validation import VolumeAsBatchWarning

#: the default num_classes (largest label + 1) stops here: a stray huge label would
#: otherwise allocate counts for every class below it
_MAX_DEFAULT_CLASSES = 65536

__all__ = [
    "EMPTY_POLICIES",
    "VolumeAsBatchWarning",
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


_BATCH_DOC = """batch : bool, optional
        Whether the first axis is a batch.  ``None`` (default): it is, and 3-D integer
        label maps ``(B, H, W)`` that look like the slices of one volume (see Notes)
        raise a :class:`VolumeAsBatchWarning`; ``True``: it is, no check; ``False``:
        ``pred`` and ``target`` are one sample without a batch axis (a label map
        ``(*spatial)`` or masks ``(C, *spatial)``), scored as ``pred[None]``."""

_VOLUME_NOTES = """A ``(Z, Y, X)`` label volume has the shape of a batch of ``Z`` 2-D label
    maps; read as one, it is scored slice by slice.  With ``batch=None``, a 3-D integer
    input of at least 8 items warns when neighbouring items differ on at most half as
    many pixels as items ``B // 2`` apart do (the target is read): slices of a volume
    change little from one to the next, independent images do not (measured ratios
    0.05-0.23 against 0.96-1.09, see ``rankseg._validation.check_volume_as_batch``).
    Consecutive video frames look like a volume too: pass ``batch=True``."""


def samplewise_counts(
    pred: Any,
    target: Any,
    num_classes: int | None = None,
    *,
    batch: bool | None = None,
) -> np.ndarray:
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
    %(batch)s

    Returns
    -------
    ndarray of int64, shape (B, C, 3)
        ``[..., 0] = |P|``, ``[..., 1] = |T|``, ``[..., 2] = |P∩T|``.

    Raises
    ------
    ValueError
        If the shapes differ or the inputs are neither label maps nor masks.
    TypeError
        If ``num_classes`` is not an integer, or ``batch`` not a bool or None.

    Warns
    -----
    VolumeAsBatchWarning
        When ``(B, H, W)`` label maps look like one volume (``batch=None``).

    Notes
    -----
    %(notes)s

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.metrics import samplewise_counts
    >>> samplewise_counts(np.array([[0, 1, 1]]), np.array([[0, 1, 0]]))[0]
    array([[1, 2, 1],
           [2, 1, 1]])
    """
    return _counts(pred, target, num_classes, batch, 2)


def _counts(
    pred: Any, target: Any, num_classes: int | None, batch: bool | None, stacklevel: int
) -> np.ndarray:
    """:func:`samplewise_counts`; ``stacklevel`` counts the frames above this one."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    if batch is not None and not isinstance(batch, (bool, np.bool_)):
        raise TypeError(f"batch must be True, False or None; got {type(batch).__name__}")
    if batch is False:
        pred, target = pred[None], target[None]
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
    if batch is None:
        v.check_volume_as_batch(target, stacklevel + 1)
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
    *,
    batch: bool | None = None,
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
    %(batch)s

    Returns
    -------
    ndarray of float64, shape (B, C)
        The scores, with ``0/0 := 0`` (use :func:`dice_score` / :func:`iou_score`
        for an explicit policy on empty classes).

    Warns
    -----
    VolumeAsBatchWarning
        When ``(B, H, W)`` label maps look like one volume (see
        :func:`samplewise_counts`).

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.metrics import samplewise_score
    >>> samplewise_score(np.array([[0, 1, 1]]), np.array([[0, 1, 0]]))
    array([[0.66666667, 0.66666667]])
    """
    metric = v.check_name(metric, "metric", ("dice", "iou"))
    gamma = v.check_real(smooth, "smooth", lo=0.0, hi=np.inf, hi_open=True)
    counts = _counts(pred, target, num_classes, batch, 2).astype(np.float64)
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
    batch: bool | None,
) -> np.ndarray:
    empty = v.check_name(empty, "empty", EMPTY_POLICIES)
    if not isinstance(include_background, (bool, np.bool_)):
        raise TypeError(
            f"include_background must be a bool; got {type(include_background).__name__}"
        )
    scores = score_from_counts(_counts(pred, target, num_classes, batch, 3), metric, empty)
    return scores if include_background else scores[:, 1:]


def dice_score(
    pred: Any,
    target: Any,
    *,
    num_classes: int | None = None,
    include_background: bool = True,
    empty: str = "nan",
    batch: bool | None = None,
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

    %(batch)s

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
        If ``empty`` is not a string, ``include_background`` not a bool,
        ``num_classes`` not an integer or ``batch`` not a bool or None.

    Warns
    -----
    VolumeAsBatchWarning
        When ``(B, H, W)`` label maps look like the slices of one volume.

    Notes
    -----
    %(notes)s

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
    return _score("dice", pred, target, num_classes, include_background, empty, batch)


def iou_score(
    pred: Any,
    target: Any,
    *,
    num_classes: int | None = None,
    include_background: bool = True,
    empty: str = "nan",
    batch: bool | None = None,
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

    %(batch)s

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
        If ``empty`` is not a string, ``include_background`` not a bool,
        ``num_classes`` not an integer or ``batch`` not a bool or None.

    Warns
    -----
    VolumeAsBatchWarning
        When ``(B, H, W)`` label maps look like the slices of one volume.

    Notes
    -----
    %(notes)s

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.metrics import iou_score
    >>> pred = np.array([[0, 1, 1, 0]])
    >>> target = np.array([[0, 1, 0, 0]])
    >>> iou_score(pred, target, num_classes=3)
    array([[0.66666667, 0.5       ,        nan]])
    """
    return _score("iou", pred, target, num_classes, include_background, empty, batch)


for _fn in (samplewise_counts, samplewise_score, dice_score, iou_score):
    if _fn.__doc__:  # None under python -OO
        _fn.__doc__ = _fn.__doc__ % {"batch": _BATCH_DOC, "notes": _VOLUME_NOTES}
