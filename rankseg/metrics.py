"""Samplewise Dice and IoU for evaluating label maps or masks against a truth.

Scores are per (sample, class), like TorchMetrics' ``aggregation_level="samplewise"``:
``Dice = (2|P∩T| + γ)/(|P| + |T| + γ)``, ``IoU = (|P∩T| + γ)/(|P∪T| + γ)``, with
``0/0 := 0`` (SPEC §1; a smoothing γ > 0 credits empty-vs-empty).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import prange

from rankseg import _validation as v
from rankseg._config import pjit

__all__ = ["samplewise_counts", "samplewise_score"]


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
        masks of shape ``(B, C, *spatial)``; both of the same kind and shape.
    num_classes : int, optional
        Number of classes for label maps (default: largest label + 1).

    Returns
    -------
    ndarray of int64, shape (B, C, 3)
        ``[..., 0] = |P|``, ``[..., 1] = |T|``, ``[..., 2] = |P∩T|``.

    Raises
    ------
    ValueError
        If the shapes differ or the inputs are neither label maps nor masks.
    """
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"pred has shape {pred.shape} but target has {target.shape}; expected equal shapes")
    if pred.ndim < 2:
        raise ValueError(f"expected (B, *spatial) label maps or (B, C, *spatial) masks; got shape {pred.shape}")
    if pred.dtype == bool and target.dtype == bool:
        if pred.ndim < 3:
            raise ValueError(f"boolean masks must have shape (B, C, *spatial); got {pred.shape}")
        nb, nc = pred.shape[:2]
        p = pred.reshape(nb, nc, -1)
        t = target.reshape(nb, nc, -1)
        return np.stack([p.sum(-1), t.sum(-1), (p & t).sum(-1)], axis=-1).astype(np.int64)
    if pred.dtype.kind not in "iu" or target.dtype.kind not in "iu":
        raise ValueError(
            f"pred and target must both be integer label maps or both boolean masks; got "
            f"{pred.dtype} and {target.dtype}"
        )
    if num_classes is None:
        num_classes = int(max(pred.max(initial=0), target.max(initial=0))) + 1
    num_classes = v.check_int(num_classes, "num_classes")
    nb = pred.shape[0]
    return _label_counts(
        pred.reshape(nb, -1).astype(np.int64, copy=False),
        target.reshape(nb, -1).astype(np.int64, copy=False),
        num_classes,
    )


def samplewise_score(
    pred: Any,
    target: Any,
    metric: str = "dice",
    smooth: float = 0.0,
    num_classes: int | None = None,
) -> np.ndarray:
    """Dice or IoU of each (sample, class).

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
        The scores, with ``0/0 := 0``.

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
    npred, ntrue, inter = counts[..., 0], counts[..., 1], counts[..., 2]
    if metric == "dice":
        num, den = 2.0 * inter + gamma, npred + ntrue + gamma
    else:
        num, den = inter + gamma, npred + ntrue - inter + gamma
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
