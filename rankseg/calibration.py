"""Post-hoc calibration of probability maps, fitted on labelled validation cases.

Every RankSEG objective assumes ``P(Y_j = 1) = p_j`` (SPEC §8): a model whose
probabilities are too soft makes RankSEG over-segment, a too sharp one makes it close
to argmax.  This module fits a small correction on validation cases by negative
log-likelihood (NLL) and applies it before the decision:

* :class:`TemperatureScaling`: one temperature ``T``.  Multiclass
  ``p_T = softmax(log p / T)``; multilabel / binary ``σ(logit(p) / T)``; from logits
  ``softmax(z / T)`` / ``σ(z / T)``.
* :class:`VectorScaling`: a scale ``w_c`` and a bias ``b_c`` per class:
  ``softmax(w_c log p_c + b_c)`` / ``σ(w_c logit(p_c) + b_c)``.
* metrics to check the result: :func:`nll`, :func:`brier`, :func:`ece` and
  :func:`reliability_curve` (drawn by :func:`rankseg.plot.plot_reliability`).

Arrays follow :func:`rankseg.predict`: ``probs`` of shape ``(B, C, *spatial)``
(float16/32/64); multiclass ``labels`` of shape ``(B, *spatial)`` with integers in
``[0, C)``; multilabel ``labels`` of shape ``(B, C, *spatial)`` in {0, 1}.  Labels equal
to ``ignore_index`` are left out.  Everything runs over chunks of pixels: no
full-size float64 copy of the input is made, and the input is never modified.

This module uses NumPy and SciPy only (no numba).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from scipy import optimize, special

from rankseg import _validation as v
from rankseg._policies import FLOAT_DTYPES
from rankseg._textfile import write_text_atomic

__all__ = [
    "METHODS",
    "NotFittedError",
    "TemperatureScaling",
    "VectorScaling",
    "brier",
    "curve_ece",
    "ece",
    "load",
    "nll",
    "reliability_curve",
]

#: ``"format"`` and ``"version"`` of the JSON files written by ``save``
FORMAT = "rankseg-calibration"
VERSION = 1

MODES = ("multiclass", "multilabel")
ECE_KINDS = ("top-label", "classwise")

#: probabilities are clipped at this floor inside logarithms (NLL, the fit's features)
EPS = 1e-12
_LOG_EPS = math.log(EPS)

#: elements (pixels x classes) per chunk of the passes over an input; tests shrink it
_CHUNK_ELEMENTS = 1 << 18

#: the bounds of the temperature search (on log T)
_T_BOUNDS = (1e-2, 1e2)

#: L2 penalty on (log w, b) of vector scaling, added to the mean NLL (see VectorScaling)
_VECTOR_L2 = 1e-4


_Self = TypeVar("_Self", bound="_Calibrator")


class NotFittedError(ValueError, AttributeError):
    """A calibrator was used before :meth:`~TemperatureScaling.fit` (as scikit-learn's)."""


# --------------------------------------------------------------------------- inputs


def _check_mode(mode: Any) -> str:
    return v.check_name(mode, "mode", MODES)


def _check_ignore(ignore_index: Any) -> int | None:
    return None if ignore_index is None else v.check_int(ignore_index, "ignore_index")


def _iter_cases(probs: Any, labels: Any) -> Iterator[tuple[int, Any, Any]]:
    """``(index, probs, labels)`` of arrays, or of the pairs of an iterable of cases."""
    if labels is not None:
        yield 0, probs, labels
        return
    if hasattr(probs, "__array__") or isinstance(probs, (str, bytes)):
        raise TypeError(
            "labels is missing: pass fit(probs, labels) with arrays, or fit(cases) with "
            "an iterable of (probs, labels) pairs"
        )
    if not isinstance(probs, Iterable):
        raise TypeError(
            "expected arrays (probs, labels) or an iterable of (probs, labels) pairs; got "
            f"{type(probs).__name__}"
        )
    for i, case in enumerate(probs):
        if hasattr(case, "__array__") or not isinstance(case, (tuple, list)) or len(case) != 2:
            raise TypeError(
                f"case {i}: expected a (probs, labels) pair; got {type(case).__name__}"
                + (
                    " (an array: pass fit(probs, labels) for arrays)"
                    if hasattr(case, "__array__")
                    else ""
                )
            )
        p, y = case
        yield i, p, y


class Case:
    """One validated (probs, labels) pair viewed as ``(B, C, d)`` and ``(B, [C,] d)``."""

    def __init__(
        self,
        index: int,
        probs: Any,
        labels: Any,
        *,
        mode: str,
        from_logits: bool,
        ignore_index: int | None,
        n_classes: int | None,
    ) -> None:
        self.index = index
        self.mode = mode
        self.from_logits = from_logits
        self.ignore_index = ignore_index
        where = f"case {index}"
        if v.is_cuda_array(probs):
            raise TypeError(f"{where}: probs is a CUDA array; calibration reads host arrays")
        try:
            p = v.as_probs(probs)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        if not hasattr(labels, "__array__") and not isinstance(labels, (list, tuple)):
            raise TypeError(f"{where}: labels must be an array; got {type(labels).__name__}")
        y = np.asarray(labels)
        if not (y.dtype.kind in "iu" or (y.dtype.kind == "b" and mode == "multilabel")):
            raise TypeError(
                f"{where}: labels must have an integer dtype"
                + (" (or bool)" if mode == "multilabel" else "")
                + f"; got {y.dtype}"
            )
        nb, nc = p.shape[:2]
        if mode == "multiclass":
            if nc < 2:
                raise ValueError(
                    f"{where}: multiclass calibration needs C >= 2 classes; got probs of shape "
                    f"{p.shape} (use mode='multilabel' for a binary sigmoid map)"
                )
            want = (nb, *p.shape[2:])
            what = "(B, *spatial)"
        else:
            want = p.shape
            what = "(B, C, *spatial)"
        if y.shape != want:
            raise ValueError(
                f"{where}: labels have shape {y.shape}; expected {what} = {want} for probs of "
                f"shape {p.shape} (probs and labels must have the same spatial shape)"
            )
        if n_classes is not None and nc != n_classes:
            raise class_count_error(index, nc, n_classes)
        self.n_classes = nc
        self.n_batch = nb
        self.d = math.prod(p.shape[2:])
        # views when the layout allows (reshape copies a non-contiguous array)
        self.p = p.reshape(nb, nc, self.d)
        self.y = y.reshape(want[:2] + (self.d,) if mode == "multilabel" else (nb, self.d))
        self.shape = p.shape

    def chunks(self) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
        """Yield validated chunks ``(b, j0, x, y, counted)`` in pixel order.

        ``x`` is float64 of shape ``(C, n)``; multiclass ``y`` is ``(n,)`` and
        ``counted`` ``(n,)``; multilabel both are ``(C, n)`` (``y`` of int8, void
        entries 0).
        """
        nc = self.n_classes
        step = max(1, _CHUNK_ELEMENTS // nc)
        for b in range(self.n_batch):
            for j0 in range(0, self.d, step):
                j1 = min(self.d, j0 + step)
                x = np.asarray(self.p[b, :, j0:j1], dtype=np.float64)
                _check_values(x, self.from_logits, f"case {self.index}, sample {b}")
                y = self.y[b, ..., j0:j1]
                y, counted = self._labels(y, b)
                yield b, j0, x, y, counted

    def _labels(self, y: np.ndarray, b: int) -> tuple[np.ndarray, np.ndarray]:
        ii = self.ignore_index
        hi = self.n_classes if self.mode == "multiclass" else 2
        if y.dtype.kind == "b":
            return y.astype(np.int8), np.ones(y.shape, dtype=bool)
        counted = np.ones(y.shape, dtype=bool) if ii is None else y != ii
        if y.size and (y.min() < 0 or y.max() >= hi):  # slow path only with a bad value
            bad = counted & ((y < 0) | (y >= hi))
            if bad.any():
                value = y[bad].flat[0]
                expected = (f"integers in [0, {hi})" if self.mode == "multiclass" else "0 or 1") + (
                    f" or ignore_index={ii}" if ii is not None else ""
                )
                raise ValueError(
                    f"case {self.index}: labels hold {value} (sample {b}); expected {expected}"
                    + (f" for C={self.n_classes} classes" if self.mode == "multiclass" else "")
                )
        if ii is not None and not counted.all():
            y = np.where(counted, y, 0)
        if self.mode == "multilabel":
            y = y.astype(np.int8)
        return y, counted


def _check_values(x: np.ndarray, from_logits: bool, where: str) -> None:
    if x.size == 0:
        return
    lo, hi = x.min(), x.max()
    if from_logits:
        if not (np.isfinite(lo) and np.isfinite(hi)):
            what = "NaN" if np.isnan(x).any() else "inf"
            raise ValueError(f"{where}: logits contain {what}; expected finite values")
        return
    if not (lo >= 0.0 and hi <= 1.0):  # False for NaN too
        if np.isnan(x).any():
            raise ValueError(f"{where}: probs contain NaN; expected finite probabilities in [0, 1]")
        if np.isinf(x).any():
            raise ValueError(f"{where}: probs contain inf; expected finite probabilities in [0, 1]")
        raise ValueError(
            f"{where}: probs have values outside [0, 1] (min {lo:g}, max {hi:g}); expected "
            "probabilities (pass from_logits=True for logits)"
        )


def _features(x: np.ndarray, mode: str, from_logits: bool) -> np.ndarray:
    """Return what the fit scales: log p clipped at ``EPS``, clipped logit(p), or z."""
    if from_logits:
        return x
    if mode == "multiclass":
        return np.log(np.maximum(x, EPS))
    q = np.clip(x, EPS, 1.0 - EPS)
    return np.log(q) - np.log1p(-q)


def class_count_error(index: int, nc: int, n_classes: int) -> ValueError:
    return ValueError(
        f"case {index}: probs has C={nc} classes; expected C={n_classes} like the cases before it"
    )


def _case_error_empty(case: Case) -> ValueError:
    return ValueError(
        f"case {case.index} has no counted pixel: every label equals "
        f"ignore_index={case.ignore_index}; leave the case out or check ignore_index"
    )


# --------------------------------------------------------------------------- subsample


class _Reservoir:
    """A seeded uniform subsample of at most ``k`` counted pixels of a stream (bottom-k).

    Every counted pixel gets a uniform key from one ``numpy.random.Generator`` in pixel
    order (case, sample, pixel); the sample is the ``k`` pixels with the smallest keys.
    Once ``k`` pixels are held, only a pixel whose key beats the largest kept key is
    copied, so the pass costs one random draw per pixel.  The result does not depend
    on how the stream is cut into cases or chunks.
    """

    def __init__(self, k: int, n_classes: int, multilabel: bool, seed: int) -> None:
        self.k = k
        # room for k + a quarter more before a compaction; the buffers grow to it
        self.cap = k + max(1, min(k, max(k // 4, 4096)))
        self.rng = np.random.default_rng(seed)
        size = min(self.cap, 1 << 16)
        self.keys = np.empty(size)
        self.x = np.empty((size, n_classes), dtype=np.float32)
        yshape = (size, n_classes) if multilabel else (size,)
        self.y = np.empty(yshape, dtype=np.int8 if multilabel else np.intp)
        self.n = 0
        self.seen = 0
        self.threshold = math.inf

    def add(self, feats: np.ndarray, y: np.ndarray, pixel: np.ndarray) -> None:
        """Offer the pixels where ``pixel`` is True (``feats`` (C, n); y (n,) or (C, n))."""
        m = int(pixel.sum())
        if m == 0:
            return
        self.seen += m
        self.offer(self.rng.random(m), np.flatnonzero(pixel), feats, y)

    def offer(self, keys: np.ndarray, cols: np.ndarray, feats: np.ndarray, y: np.ndarray) -> None:
        """Offer the pixels ``cols`` of ``feats`` (C, n) and ``y`` with their ``keys``.

        :meth:`add` draws the keys; a merge of the subsamples of several parts of a
        stream (:func:`_case_sample`) offers the parts' kept pixels with their keys.
        ``seen`` is not changed.
        """
        take = keys < self.threshold
        if not take.all():
            cols, keys = cols[take], keys[take]
        while len(cols):
            if self.n == len(self.keys) < self.cap:
                self._grow()
            room = len(self.keys) - self.n
            part = slice(0, room)
            c, kk = cols[part], keys[part]
            s = slice(self.n, self.n + len(c))
            self.keys[s] = kk
            self.x[s] = feats[:, c].T
            self.y[s] = y[..., c].T
            self.n += len(c)
            cols, keys = cols[room:], keys[room:]
            if self.n == self.cap:
                self._compact()
                if len(cols):
                    take = keys < self.threshold
                    cols, keys = cols[take], keys[take]

    def _grow(self) -> None:
        size = min(self.cap, 2 * len(self.keys))
        self.keys = np.resize(self.keys, size)
        self.x = np.resize(self.x, (size, *self.x.shape[1:]))
        self.y = np.resize(self.y, (size, *self.y.shape[1:]))

    def _compact(self) -> None:
        keep = np.sort(np.argpartition(self.keys[: self.n], self.k - 1)[: self.k])
        # in place, in ascending chunks: keep[i] >= i, so no source is overwritten first
        step = 1 << 16
        for i in range(0, self.k, step):
            idx = keep[i : i + step]
            self.keys[i : i + len(idx)] = self.keys[idx]
            self.x[i : i + len(idx)] = self.x[idx]
            self.y[i : i + len(idx)] = self.y[idx]
        self.n = self.k
        self.threshold = float(self.keys[: self.k].max())

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n > self.k:
            self._compact()
        return self.x[: self.n], self.y[: self.n]

    def keyed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(keys, x, y)`` of the subsample, in stream order."""
        x, y = self.result()
        return self.keys[: self.n], x, y


def _collect(
    cases: Any,
    labels: Any,
    *,
    mode: str,
    from_logits: bool,
    ignore_index: int | None,
    max_pixels: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Subsample the validation set: ``(x (n, C) float32, y, n_classes, n_seen)``."""
    reservoir: _Reservoir | None = None
    n_classes: int | None = None
    n_cases = 0
    for i, p, y in _iter_cases(cases, labels):
        case = Case(
            i,
            p,
            y,
            mode=mode,
            from_logits=from_logits,
            ignore_index=ignore_index,
            n_classes=n_classes,
        )
        n_cases += 1
        n_classes = case.n_classes
        if reservoir is None:
            reservoir = _Reservoir(max_pixels, n_classes, mode == "multilabel", seed)
        offer_case(case, reservoir)
    if n_cases == 0:
        raise ValueError("empty validation set: no cases; expected at least one (probs, labels)")
    if reservoir is None or reservoir.seen == 0:
        raise ValueError("empty validation set: the cases hold no pixels")
    assert n_classes is not None
    x, y = reservoir.result()
    return x, y, n_classes, reservoir.seen


def offer_case(case: Case, reservoir: _Reservoir | None) -> int:
    """Offer the counted pixels of ``case`` to ``reservoir`` in pixel order.

    With ``reservoir`` None the case is only checked (values, labels) and counted.
    Returns the number of counted pixels (a pixel of a multilabel case counts when
    any of its classes does); a case without one is an error.
    """
    mode = case.mode
    n_counted = 0
    for _, _, x, yc, counted in case.chunks():
        # any over axis 0 of a 2-d array: an array (numpy types it as maybe a scalar)
        pixel = counted if counted.ndim == 1 else cast(np.ndarray, counted.any(axis=0))
        n_counted += int(pixel.sum())
        if reservoir is not None:
            if mode == "multilabel":
                yc = np.where(counted, yc, -1).astype(np.int8)  # -1: void entry
            reservoir.add(_features(x, mode, case.from_logits), yc, pixel)
    if n_counted == 0 and case.n_batch * case.d > 0:
        raise _case_error_empty(case)
    return n_counted


def case_sample(
    cases: list[Case], offset: int, max_pixels: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(keys, x, y)``: the pixels of ``cases`` that may enter a fit's subsample.

    ``cases`` are consecutive cases of a stream whose counted pixels start at
    ``offset`` (the counted pixels of the cases before them, :func:`_offer_case`).
    Their keys are the draws the whole stream's generator gives them (it is advanced
    past the ``offset`` draws before), and only the ``max_pixels`` smallest are kept:
    :func:`_merge_samples` of the parts of a stream, in stream order, gives the
    subsample of :meth:`_Calibrator.fit` on the whole stream.  This is how
    ``rankseg calibrate`` spreads the cases over a dask cluster.
    """
    nc = cases[0].n_classes
    reservoir = _Reservoir(max_pixels, nc, cases[0].mode == "multilabel", seed)
    # default_rng(seed) is Generator(PCG64(seed)); one float64 draw is one PCG64 step
    reservoir.rng = np.random.Generator(np.random.PCG64(seed).advance(offset))
    for case in cases:
        offer_case(case, reservoir)
    return reservoir.keyed()


def merge_samples(
    parts: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, int]],
    *,
    mode: str,
    max_pixels: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Merge the :func:`_case_sample` of each part of a stream (with its counted pixels).

    Returns ``(x, y, n_classes, n_seen)`` as :func:`_collect` of the whole stream does.
    """
    reservoir: _Reservoir | None = None
    for keys, x, y, seen in parts:
        if reservoir is None:
            reservoir = _Reservoir(max_pixels, x.shape[1], mode == "multilabel", seed)
        reservoir.seen += seen
        reservoir.offer(keys, np.arange(len(keys)), x.T, y.T)
    if reservoir is None:
        raise ValueError("empty validation set: no cases; expected at least one (probs, labels)")
    if reservoir.seen == 0:
        raise ValueError("empty validation set: the cases hold no pixels")
    n_classes = reservoir.x.shape[1]
    x, y = reservoir.result()
    return x, y, n_classes, reservoir.seen


# --------------------------------------------------------------------------- objectives

_ROWS = 1 << 15  # rows of the subsample per step of an objective evaluation


def _multiclass_nll(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray | None, grad: bool
) -> tuple[float, np.ndarray, np.ndarray]:
    """Return the summed NLL of ``softmax(w * x + b)`` and its gradient in w and b."""
    nc = x.shape[1]
    total = 0.0
    gw = np.zeros(nc)
    gb = np.zeros(nc)
    for i in range(0, len(x), _ROWS):
        xs = x[i : i + _ROWS].astype(np.float64)
        ys = y[i : i + _ROWS]
        s = xs * w
        if b is not None:
            s += b
        m = s.max(axis=1)
        e = np.exp(s - m[:, None])
        se = e.sum(axis=1)
        rows = np.arange(len(ys))
        total += float(np.sum(m + np.log(se) - s[rows, ys]))
        if grad:
            g = e / se[:, None]
            g[rows, ys] -= 1.0
            gw += np.einsum("ij,ij->j", g, xs)
            gb += g.sum(axis=0)
    return total, gw, gb


def _multilabel_nll(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray | None, grad: bool
) -> tuple[float, np.ndarray, np.ndarray]:
    """Return the summed NLL of ``σ(w * x + b)`` over non-void entries (``y == -1``: void)."""
    nc = x.shape[1]
    total = 0.0
    gw = np.zeros(nc)
    gb = np.zeros(nc)
    for i in range(0, len(x), _ROWS):
        xs = x[i : i + _ROWS].astype(np.float64)
        ys = y[i : i + _ROWS]
        counted = ys >= 0
        s = xs * w
        if b is not None:
            s += b
        sign = np.where(ys == 1, -1.0, 1.0)  # -log σ(s) = softplus(-s); -log(1-σ(s)) = softplus(s)
        total += float(np.sum(np.logaddexp(0.0, sign * s), where=counted))
        if grad:
            g = np.where(counted, special.expit(s) - (ys == 1), 0.0)
            gw += np.einsum("ij,ij->j", g, xs)
            gb += g.sum(axis=0)
    return total, gw, gb


def _n_terms(y: np.ndarray, mode: str) -> int:
    return len(y) if mode == "multiclass" else int(np.count_nonzero(y >= 0))


# --------------------------------------------------------------------------- transform


def _transform_chunk(
    x: np.ndarray, mode: str, from_logits: bool, w: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Calibrated probabilities of one float64 chunk ``(C, n)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if mode == "multiclass":
            s = x if from_logits else np.log(x)  # log 0 = -inf: p = 0 stays 0
            s = s * w[:, None] + b[:, None]
            m = s.max(axis=0)
            m[~np.isfinite(m)] = 0.0  # a pixel of only zeros gives zeros, not NaN
            e = np.exp(s - m)
            tot = e.sum(axis=0)
            return e / np.where(tot > 0, tot, 1.0)
        z = x if from_logits else np.log(x) - np.log1p(-x)  # ±inf at 0 and 1: stay 0 and 1
        return special.expit(z * w[:, None] + b[:, None])


def _check_out(out: Any, probs: np.ndarray) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array; got {type(out).__name__}")
    if out.shape != probs.shape:
        raise ValueError(f"out has shape {out.shape}; expected {probs.shape} like probs")
    if out.dtype not in FLOAT_DTYPES:
        raise TypeError(f"out must have dtype float16, float32 or float64; got {out.dtype}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be a writeable C-contiguous array")
    same = out.__array_interface__["data"][0] == probs.__array_interface__["data"][0] and (
        out.strides == probs.strides and out.dtype == probs.dtype
    )
    if not same and np.may_share_memory(out, probs):
        raise ValueError(
            "out overlaps probs partially; pass probs itself (in place) or a new array"
        )
    return out


# --------------------------------------------------------------------------- calibrators


class _Calibrator:
    """Shared machinery of the calibrators: inputs, subsample, transform, JSON."""

    method = ""

    def __init__(
        self,
        mode: str = "multiclass",
        *,
        from_logits: bool = False,
        ignore_index: int | None = None,
        max_pixels: int = 2_000_000,
        seed: int = 0,
    ) -> None:
        self.mode = _check_mode(mode)
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be a bool; got {type(from_logits).__name__}")
        self.from_logits = bool(from_logits)
        self.ignore_index = _check_ignore(ignore_index)
        self.max_pixels = v.check_int(max_pixels, "max_pixels")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1; got {max_pixels}")
        self.seed = v.check_int(seed, "seed")

    # -- subclasses: _fit(x, y, n) -> None, _params() -> (w, b), _param_dict, _set_params

    def _is_fitted(self) -> bool:
        return hasattr(self, "n_classes_")

    def _require_fitted(self) -> None:
        if not self._is_fitted():
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit(probs, labels) on "
                f"validation cases first, or load a saved one with {type(self).__name__}.load"
            )

    def fit(self: _Self, probs: Any, labels: Any = None) -> _Self:
        """Fit on labelled validation cases by negative log-likelihood.

        Parameters
        ----------
        probs : array-like or iterable of (probs, labels) pairs
            Probabilities ``(B, C, *spatial)`` (logits with ``from_logits=True``), or,
            with ``labels=None``, an iterable (a one-shot generator is fine) of
            ``(probs, labels)`` pairs, one batch per item.
        labels : array-like of int, optional
            Multiclass ``(B, *spatial)`` in ``[0, C)``; multilabel ``(B, C, *spatial)``
            in {0, 1}.  Labels equal to ``ignore_index`` are left out.

        Returns
        -------
        self
            Fitted: ``n_classes_``, ``n_pixels_`` (pixels of the subsample) and
            ``n_seen_`` (counted pixels read) are set, with the method's parameters.

        Raises
        ------
        TypeError
            For non-arrays, non-float probabilities or non-integer labels.
        ValueError
            For bad values or shapes (the message names the case), an all-void case or
            an empty validation set.  The object is unchanged then.

        Notes
        -----
        The cases are read once, chunk by chunk; at most ``max_pixels`` counted pixels
        are kept, a uniform sample drawn with ``seed`` (bottom-k keys, so the sample
        does not depend on how the data are cut into cases).  In the fit a probability
        0 counts as ``EPS`` = 1e-12 (the floor of :func:`nll`), so confidently wrong
        pixels still pull the temperature up; :meth:`transform` keeps 0 as 0.
        """
        x, y, n_classes, seen = _collect(
            probs,
            labels,
            mode=self.mode,
            from_logits=self.from_logits,
            ignore_index=self.ignore_index,
            max_pixels=self.max_pixels,
            seed=self.seed,
        )
        return self._fit_sample(x, y, n_classes, seen)

    def _fit_sample(self: _Self, x: np.ndarray, y: np.ndarray, n_classes: int, seen: int) -> _Self:
        """Fit on the subsample ``x, y`` of ``seen`` counted pixels (:func:`_collect`)."""
        n_terms = _n_terms(y, self.mode)
        if n_terms == 0:
            raise ValueError("empty validation set: every sampled label is ignore_index")
        params = self._fit(x, y, n_terms)
        for name, value in params.items():
            setattr(self, name, value)
        self.n_classes_ = n_classes
        self.n_pixels_ = len(x)
        self.n_seen_ = seen
        return self

    def _fit(self, x: np.ndarray, y: np.ndarray, n: int) -> dict[str, Any]:
        raise NotImplementedError

    def _loss(
        self, x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray | None, grad: bool
    ) -> tuple[float, np.ndarray, np.ndarray]:
        f = _multiclass_nll if self.mode == "multiclass" else _multilabel_nll
        return f(x, y, w, b, grad)

    def _scales(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def transform(
        self, probs: Any, *, out: np.ndarray | None = None, mode: str | None = None
    ) -> np.ndarray:
        """Apply the calibration to a probability map.

        Parameters
        ----------
        probs : array-like, shape (B, C, *spatial)
            Probabilities (logits with ``from_logits=True``), float16/32/64, with the
            class count of the fit.  Never modified.
        out : ndarray, optional
            Where to write the result: a C-contiguous float array of ``probs``' shape
            (``probs`` itself for in-place).  By default a new array of ``probs``' dtype.
        mode : str, optional
            If given, checked against the fitted mode.

        Returns
        -------
        ndarray
            Calibrated probabilities, of ``probs``' dtype (or ``out``).  Multiclass
            results sum to 1 over the classes (a pixel of only zeros stays zeros).

        Raises
        ------
        NotFittedError
            Before :meth:`fit`.
        ValueError
            If the class count or ``mode`` differs from the fit, or for NaN/inf (and,
            for probabilities, values outside [0, 1]).

        Notes
        -----
        The work runs over chunks of pixels in float64: no temporary of the input's
        size is made besides the output.  A non-contiguous input is copied once by
        the reshape to ``(B, C, d)``.
        """
        self._require_fitted()
        if mode is not None and _check_mode(mode) != self.mode:
            raise ValueError(
                f"this {type(self).__name__} was fitted for C={self.n_classes_} mode "
                f"{self.mode!r}; got mode {mode!r}"
            )
        p = v.as_probs(probs)
        if v.is_cuda_array(p):
            raise TypeError("probs is a CUDA array; calibration reads host arrays")
        if p.shape[1] != self.n_classes_:
            raise ValueError(
                f"this {type(self).__name__} was fitted for C={self.n_classes_} mode "
                f"{self.mode!r}; got probs with C={p.shape[1]} (shape {p.shape})"
            )
        if out is None:
            out = np.empty(p.shape, dtype=p.dtype)
        else:
            out = _check_out(out, p)
        nb, nc = p.shape[:2]
        d = math.prod(p.shape[2:])
        p3 = p.reshape(nb, nc, d)
        o3 = out.reshape(nb, nc, d)
        step = max(1, _CHUNK_ELEMENTS // nc)
        # a first pass checks every value, so a bad input leaves out untouched
        for b in range(nb):
            for j0 in range(0, d, step):
                _check_values(p3[b, :, j0 : j0 + step], self.from_logits, f"sample {b}")
        w, bias = self._scales()
        for b in range(nb):
            for j0 in range(0, d, step):
                x = np.asarray(p3[b, :, j0 : j0 + step], dtype=np.float64)
                o3[b, :, j0 : j0 + step] = _transform_chunk(x, self.mode, self.from_logits, w, bias)
        return out

    def fit_transform(self, probs: Any, labels: Any = None) -> np.ndarray:
        """Fit on ``(probs, labels)`` arrays and return ``transform(probs)``.

        Parameters
        ----------
        probs : array-like, shape (B, C, *spatial)
            Probabilities (or logits).
        labels : array-like of int
            The labels, as in :meth:`fit`.

        Returns
        -------
        ndarray
            The calibrated probabilities.
        """
        if labels is None:
            raise TypeError(
                "fit_transform needs arrays (probs, labels); with an iterable of cases "
                "call fit(cases) and then transform each case"
            )
        return self.fit(probs, labels).transform(probs)

    # -- JSON

    def _param_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_params(self, d: dict[str, Any]) -> None:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Return the fitted calibrator as a JSON-ready dict.

        Returns
        -------
        dict
            ``{"format": "rankseg-calibration", "version": 1, "method": ..., "mode": ...,
            "from_logits": ..., "n_classes": ..., "ignore_index": ..., <parameters>,
            "n_pixels": ..., "n_seen": ...}``.
        """
        self._require_fitted()
        return {
            "format": FORMAT,
            "version": VERSION,
            "method": self.method,
            "mode": self.mode,
            "from_logits": self.from_logits,
            "n_classes": int(self.n_classes_),
            "ignore_index": self.ignore_index,
            **self._param_dict(),
            "max_pixels": self.max_pixels,
            "seed": self.seed,
            "n_pixels": int(self.n_pixels_),
            "n_seen": int(self.n_seen_),
        }

    @classmethod
    def from_dict(cls: type[_Self], d: dict[str, Any]) -> _Self:
        """Rebuild a fitted calibrator from :meth:`to_dict`'s output.

        Parameters
        ----------
        d : dict
            As written by :meth:`to_dict` (or read from a file by :meth:`save`).

        Returns
        -------
        calibrator
            A fitted instance.

        Raises
        ------
        ValueError
            If ``d`` is not a rankseg calibration of a supported version and of this
            class's method, or a field is missing or invalid.
        """
        _check_header(d)
        if d["method"] != cls.method:
            raise ValueError(
                f"this calibration has method {d['method']!r}; {cls.__name__} reads "
                f"{cls.method!r} (use rankseg.calibration.load to dispatch on the method)"
            )
        try:
            obj = cls(
                d["mode"],
                from_logits=d["from_logits"],
                ignore_index=d.get("ignore_index"),
                max_pixels=d.get("max_pixels", 2_000_000),
                seed=d.get("seed", 0),
            )
            n_classes = v.check_int(d["n_classes"], "n_classes")
            if n_classes < 1:
                raise ValueError(f"n_classes must be >= 1; got {n_classes}")
            obj.n_classes_ = n_classes
            obj._set_params(d)
            obj.n_pixels_ = int(d.get("n_pixels", 0))
            obj.n_seen_ = int(d.get("n_seen", 0))
        except KeyError as exc:
            raise ValueError(f"rankseg calibration lacks the field {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(f"invalid rankseg calibration: {exc}") from None
        return obj

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the fitted calibrator as JSON, atomically.

        Parameters
        ----------
        path : str or path-like
            The file.  It is written through a temporary file in the same folder and
            renamed: on any failure nothing (no partial file) is left.
        """
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"
        write_text_atomic(path, text)

    @classmethod
    def load(cls: type[_Self], path: str | os.PathLike[str]) -> _Self:
        """Read a calibrator written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The JSON file.

        Returns
        -------
        calibrator
            A fitted instance of this class.
        """
        return cls.from_dict(_read_json(path))

    def __repr__(self) -> str:
        fitted = self._param_repr() if self._is_fitted() else "unfitted"
        return f"{type(self).__name__}(mode={self.mode!r}, {fitted})"

    def _param_repr(self) -> str:
        raise NotImplementedError


class TemperatureScaling(_Calibrator):
    """Temperature scaling: one temperature ``T`` for every class.

    Multiclass ``p_T = softmax(log p / T)``; multilabel (or binary, C = 1)
    ``σ(logit(p) / T)``; with ``from_logits=True``, ``softmax(z / T)`` / ``σ(z / T)``.
    ``T > 1`` softens over-confident probabilities, ``T < 1`` sharpens under-confident
    ones; probabilities 0 and 1 stay 0 and 1.  ``T`` minimizes the NLL of a seeded
    subsample of the validation pixels (bounded 1-D search on ``log T`` over
    ``[0.01, 100]``, :func:`scipy.optimize.minimize_scalar`).

    Parameters
    ----------
    mode : {"multiclass", "multilabel"}
        Softmax classes or independent sigmoid maps (C = 1: a binary map).
    from_logits : bool
        The inputs of ``fit``/``transform`` are logits, not probabilities.
    ignore_index : int, optional
        A label value left out of the fit and of the metrics (void).
    max_pixels : int
        Most counted pixels kept for the fit (a uniform sample drawn with ``seed``).
    seed : int
        Seed of the subsample.

    Attributes
    ----------
    temperature_ : float
        The fitted temperature.
    n_classes_ : int
        The class count of the fit.
    n_pixels_, n_seen_ : int
        Pixels of the subsample and counted pixels read.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.calibration import TemperatureScaling
    >>> rng = np.random.default_rng(0)
    >>> logits = 2.0 * rng.standard_normal((8, 3, 64, 64))
    >>> truth = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    >>> labels = (rng.random((8, 1, 64, 64)) > truth.cumsum(1)).sum(1)
    >>> soft = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum(1, keepdims=True)
    >>> ts = TemperatureScaling().fit(soft, labels)
    >>> round(ts.temperature_, 1)  # undoes the softening by 2
    0.5
    >>> ts.transform(soft).shape
    (8, 3, 64, 64)
    """

    method = "temperature"

    def _fit(self, x: np.ndarray, y: np.ndarray, n: int) -> dict[str, Any]:
        ones = np.ones(x.shape[1])

        def f(log_t: float) -> float:
            return self._loss(x, y, ones * math.exp(-log_t), None, False)[0] / n

        res = optimize.minimize_scalar(
            f,
            bounds=(math.log(_T_BOUNDS[0]), math.log(_T_BOUNDS[1])),
            method="bounded",
            options={"xatol": 1e-6},
        )
        return {"temperature_": float(math.exp(res.x))}

    def _scales(self) -> tuple[np.ndarray, np.ndarray]:
        c = self.n_classes_
        return np.full(c, 1.0 / self.temperature_), np.zeros(c)

    def _param_dict(self) -> dict[str, Any]:
        return {"temperature": float(self.temperature_)}

    def _set_params(self, d: dict[str, Any]) -> None:
        t = v.check_real(d["temperature"], "temperature", lo=0.0, hi=math.inf, lo_open=True)
        if not math.isfinite(t):
            raise ValueError(f"temperature must be finite; got {t}")
        self.temperature_ = t

    def _param_repr(self) -> str:
        return f"temperature_={self.temperature_:.4g}"


class VectorScaling(_Calibrator):
    """Vector scaling: a scale ``w_c`` and a bias ``b_c`` per class.

    Multiclass ``softmax(w_c log p_c + b_c)``; multilabel ``σ(w_c logit(p_c) + b_c)``;
    with ``from_logits=True`` the logits ``z_c`` replace ``log p_c`` / ``logit(p_c)``.
    Fitted by L-BFGS-B on the NLL of a seeded subsample with its analytic gradient, in
    the parameters ``(log w, b)`` (so ``w > 0``: probabilities 0 and 1 stay 0 and 1),
    with a small ridge penalty ``1e-4 / 2 · (‖log w‖² + ‖b‖²)`` added to the mean NLL:
    it picks the zero-sum bias among the equivalent multiclass ones (softmax ignores a
    common shift) and keeps classes with few pixels near the identity.

    Parameters
    ----------
    mode : {"multiclass", "multilabel"}
        Softmax classes or independent sigmoid maps (C = 1: a binary map).
    bias : bool
        Fit the biases ``b_c`` (else they stay 0: per-class temperatures).
    from_logits, ignore_index, max_pixels, seed
        As in :class:`TemperatureScaling`.

    Attributes
    ----------
    weights_ : ndarray, shape (C,)
        The fitted scales ``w_c``.
    bias_ : ndarray, shape (C,)
        The fitted biases ``b_c`` (zeros with ``bias=False``).
    n_classes_, n_pixels_, n_seen_ : int
        As in :class:`TemperatureScaling`.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.calibration import VectorScaling
    >>> rng = np.random.default_rng(0)
    >>> z = 3.0 * rng.standard_normal((4, 1, 128, 128))
    >>> labels = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(np.uint8)
    >>> vs = VectorScaling("multilabel").fit(1 / (1 + np.exp(-2.0 * z)), labels)
    >>> np.round(vs.weights_, 1)  # undoes the sharpening by 2
    array([0.5])
    """

    method = "vector"

    def __init__(
        self,
        mode: str = "multiclass",
        *,
        bias: bool = True,
        from_logits: bool = False,
        ignore_index: int | None = None,
        max_pixels: int = 2_000_000,
        seed: int = 0,
    ) -> None:
        super().__init__(
            mode,
            from_logits=from_logits,
            ignore_index=ignore_index,
            max_pixels=max_pixels,
            seed=seed,
        )
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be a bool; got {type(bias).__name__}")
        self.bias = bool(bias)

    def _fit(self, x: np.ndarray, y: np.ndarray, n: int) -> dict[str, Any]:
        nc = x.shape[1]
        lam = _VECTOR_L2

        def f(theta: np.ndarray) -> tuple[float, np.ndarray]:
            u = theta[:nc]
            w = np.exp(u)
            b = theta[nc:] if self.bias else None
            loss, gw, gb = self._loss(x, y, w, b, True)
            value = loss / n + 0.5 * lam * float(theta @ theta)
            g_u = gw / n * w + lam * u
            grad = np.concatenate([g_u, gb / n + lam * theta[nc:]]) if self.bias else g_u
            return value, grad

        theta0 = np.zeros(2 * nc if self.bias else nc)
        bounds = [(-10.0, 10.0)] * nc + [(-50.0, 50.0)] * (nc if self.bias else 0)
        res = optimize.minimize(
            f,
            theta0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 500, "ftol": 1e-11, "gtol": 1e-7},
        )
        theta = res.x
        return {
            "weights_": np.exp(theta[:nc]),
            "bias_": theta[nc:].copy() if self.bias else np.zeros(nc),
        }

    def _scales(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.weights_, dtype=np.float64), np.asarray(self.bias_, np.float64)

    def _param_dict(self) -> dict[str, Any]:
        return {
            "bias": self.bias,
            "weights": [float(w) for w in self.weights_],
            "biases": [float(b) for b in self.bias_],
        }

    def _set_params(self, d: dict[str, Any]) -> None:
        c = self.n_classes_
        self.bias = bool(d.get("bias", True))
        w = np.asarray(d["weights"], dtype=np.float64)
        b = np.asarray(d["biases"], dtype=np.float64)
        if w.shape != (c,) or b.shape != (c,):
            raise ValueError(
                f"weights and biases must hold n_classes={c} numbers each; got "
                f"{w.size} and {b.size}"
            )
        if not (np.isfinite(w).all() and np.isfinite(b).all() and (w > 0).all()):
            raise ValueError("weights must be finite and > 0 and biases finite")
        self.weights_ = w
        self.bias_ = b

    def _param_repr(self) -> str:
        return f"weights_={np.array2string(self.weights_, precision=3)}"


#: the calibration classes by the name in the JSON's ``"method"`` field
METHODS: dict[str, type[TemperatureScaling] | type[VectorScaling]] = {
    "temperature": TemperatureScaling,
    "vector": VectorScaling,
}


def _check_header(d: Any) -> None:
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError(
            f"not a rankseg calibration: expected a JSON object with format {FORMAT!r}"
            + (f"; got format {d.get('format')!r}" if isinstance(d, dict) else "")
        )
    if d.get("version") != VERSION:
        raise ValueError(
            f"unsupported rankseg calibration version {d.get('version')!r}; this rankseg "
            f"reads version {VERSION}"
        )
    if d.get("method") not in METHODS:
        raise ValueError(
            f"unknown calibration method {d.get('method')!r}; expected one of "
            f"{', '.join(map(repr, METHODS))}"
        )
    if d.get("mode") not in MODES:
        raise ValueError(f"unknown mode {d.get('mode')!r}; expected one of {MODES}")


def _read_json(path: str | os.PathLike[str]) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"no calibration file {str(p)!r}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(p)!r} is not a rankseg calibration (invalid JSON: {exc})") from None


def load(path: str | os.PathLike[str]) -> TemperatureScaling | VectorScaling:
    """Read a calibrator saved by ``save``, of the class its ``"method"`` names.

    Parameters
    ----------
    path : str or path-like
        A JSON file written by :meth:`TemperatureScaling.save` or
        :meth:`VectorScaling.save`.

    Returns
    -------
    TemperatureScaling or VectorScaling
        The fitted calibrator.

    Raises
    ------
    ValueError
        If the file is not a rankseg calibration of a supported version.
    """
    d = _read_json(path)
    _check_header(d)
    return METHODS[d["method"]].from_dict(d)


# --------------------------------------------------------------------------- metrics


def _metric_cases(probs: Any, labels: Any, mode: Any, ignore_index: Any) -> Iterator[Case]:
    mode = _check_mode(mode)
    ii = _check_ignore(ignore_index)
    n_classes = None
    n = 0
    for i, p, y in _iter_cases(probs, labels):
        case = Case(i, p, y, mode=mode, from_logits=False, ignore_index=ii, n_classes=n_classes)
        n_classes = case.n_classes
        n += 1
        yield case
    if n == 0:
        raise ValueError("no cases: expected at least one (probs, labels) pair")


def _true_prob(x: np.ndarray, y: np.ndarray, mode: str) -> np.ndarray:
    if mode == "multiclass":
        return x[y, np.arange(x.shape[1])]
    return np.where(y == 1, x, 1.0 - x)


def _mean(total: float, count: int, what: str) -> float:
    if count == 0:
        raise ValueError(f"no counted pixel: cannot compute {what} (every label is void?)")
    return total / count


def nll(
    probs: Any, labels: Any = None, *, mode: str = "multiclass", ignore_index: int | None = None
) -> float:
    """Mean negative log-likelihood of the labels, ``-log max(p_true, 1e-12)``.

    Parameters
    ----------
    probs : array-like or iterable of (probs, labels) pairs
        Probabilities ``(B, C, *spatial)``; with ``labels=None`` an iterable of pairs
        (the mean runs over all of them).
    labels : array-like of int, optional
        Multiclass ``(B, *spatial)``; multilabel ``(B, C, *spatial)`` in {0, 1}.
    mode : {"multiclass", "multilabel"}
        Multiclass: the mean over counted pixels of ``-log p_y``.  Multilabel: the mean
        over counted (pixel, class) entries of the binary NLL.
    ignore_index : int, optional
        Labels left out.

    Returns
    -------
    float
        The mean NLL.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.calibration import nll
    >>> p = np.array([[[0.8, 0.5]], [[0.2, 0.5]]])[None]  # (1, 2, 1, 2)
    >>> round(nll(p, np.array([[[0, 1]]])), 4)  # (-log 0.8 - log 0.5) / 2
    0.4581
    """
    total, count = 0.0, 0
    for case in _metric_cases(probs, labels, mode, ignore_index):
        for _, _, x, y, counted in case.chunks():
            q = _true_prob(x, y, case.mode)
            total += float(-np.sum(np.log(np.maximum(q, EPS)), where=counted))
            count += int(counted.sum())
    return _mean(total, count, "the NLL")


def brier(
    probs: Any, labels: Any = None, *, mode: str = "multiclass", ignore_index: int | None = None
) -> float:
    """Brier score: mean squared difference of probabilities and one-hot labels.

    Parameters
    ----------
    probs, labels, mode, ignore_index
        As in :func:`nll`.

    Returns
    -------
    float
        Multiclass: the mean over counted pixels of ``Σ_c (p_c - 1[y = c])²`` (0 to 2).
        Multilabel: the mean over counted (pixel, class) entries of ``(p - y)²``.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.calibration import brier
    >>> p = np.array([[[0.8, 0.5]], [[0.2, 0.5]]])[None]
    >>> round(brier(p, np.array([[[0, 1]]])), 4)  # (0.04 + 0.04 + 0.25 + 0.25) / 2
    0.29
    """
    total, count = 0.0, 0
    for case in _metric_cases(probs, labels, mode, ignore_index):
        for _, _, x, y, counted in case.chunks():
            if case.mode == "multiclass":
                sq = np.einsum("ij,ij->j", x, x) - 2.0 * _true_prob(x, y, "multiclass") + 1.0
            else:
                sq = (x - y) ** 2
            total += float(np.sum(sq, where=counted))
            count += int(counted.sum())
    return _mean(total, count, "the Brier score")


def reliability_curve(
    probs: Any,
    labels: Any = None,
    *,
    mode: str = "multiclass",
    kind: str = "top-label",
    n_bins: int = 15,
    ignore_index: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean confidence, observed frequency and pixel count per confidence bin.

    Parameters
    ----------
    probs, labels, mode, ignore_index
        As in :func:`nll`.
    kind : {"top-label", "classwise"}
        ``"top-label"``: multiclass confidence ``max_c p_c`` against ``argmax == y``;
        multilabel, every (pixel, class) entry's confidence ``max(p, 1 - p)`` against
        "the predicted state (1 iff p > 0.5) is right".  ``"classwise"``: ``p_c``
        against ``1[y = c]`` (multilabel ``y_c``), one curve per class.
    n_bins : int
        Equal-width bins over [0, 1] (the last one closed).

    Returns
    -------
    confidence, frequency, count : ndarray
        Shape ``(n_bins,)`` for ``"top-label"``, ``(C, n_bins)`` for ``"classwise"``.
        Empty bins hold NaN confidence and frequency and count 0.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.calibration import reliability_curve
    >>> p = np.array([[[0.8, 0.9]], [[0.2, 0.1]]])[None]
    >>> conf, freq, count = reliability_curve(p, np.array([[[0, 1]]]), n_bins=5)
    >>> count.tolist(), round(float(conf[4]), 4), float(freq[4])
    ([0, 0, 0, 0, 2], 0.85, 0.5)
    """
    kind = v.check_name(kind, "kind", ECE_KINDS)
    n_bins = v.check_int(n_bins, "n_bins")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    sums: np.ndarray | None = None  # (rows, 3, n_bins): count, confidence, hits
    for case in _metric_cases(probs, labels, mode, ignore_index):
        rows = 1 if kind == "top-label" else case.n_classes
        if sums is None:
            sums = np.zeros((rows, 3, n_bins))
        for _, _, x, y, counted in case.chunks():
            if kind == "top-label":
                if case.mode == "multiclass":
                    conf = x.max(axis=0)
                    hit = (np.argmax(x, axis=0) == y).astype(np.float64)
                    keep = counted
                else:
                    conf = np.maximum(x, 1.0 - x)
                    hit = ((x > 0.5) == (y == 1)).astype(np.float64)
                    keep = counted
                _accumulate(sums[0], conf[keep], hit[keep], n_bins)
            else:
                for c in range(case.n_classes):
                    if case.mode == "multiclass":
                        keep, hit = counted, (y == c)
                    else:
                        keep, hit = counted[c], (y[c] == 1)
                    _accumulate(sums[c], x[c][keep], hit[keep].astype(np.float64), n_bins)
    assert sums is not None
    count = sums[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.where(count > 0, sums[:, 1] / count, np.nan)
        freq = np.where(count > 0, sums[:, 2] / count, np.nan)
    if kind == "top-label":
        return conf[0], freq[0], count[0].astype(np.int64)
    return conf, freq, count.astype(np.int64)


def _accumulate(acc: np.ndarray, conf: np.ndarray, hit: np.ndarray, n_bins: int) -> None:
    idx = np.minimum((conf * n_bins).astype(np.intp), n_bins - 1)
    acc[0] += np.bincount(idx, minlength=n_bins)
    acc[1] += np.bincount(idx, weights=conf, minlength=n_bins)
    acc[2] += np.bincount(idx, weights=hit, minlength=n_bins)


def curve_ece(curve: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    """Compute the expected calibration error of a :func:`reliability_curve` result.

    Parameters
    ----------
    curve : (confidence, frequency, count)
        Per bin, of shape ``(n_bins,)`` or, per class, ``(C, n_bins)``.

    Returns
    -------
    float
        ``Σ_bins count/N · |frequency - confidence|``; for per-class curves the
        unweighted mean over classes with counted pixels.
    """
    conf, freq, count = (np.atleast_2d(np.asarray(a, dtype=np.float64)) for a in curve)
    n = count.sum(axis=1)
    gap = np.where(count > 0, np.abs(np.nan_to_num(freq) - np.nan_to_num(conf)), 0.0)
    rows = n > 0
    if not rows.any():
        raise ValueError("the reliability curve holds no pixel")
    per_row = (count[rows] * gap[rows]).sum(axis=1) / n[rows]
    return float(per_row.mean())


def ece(
    probs: Any,
    labels: Any = None,
    *,
    mode: str = "multiclass",
    kind: str = "top-label",
    n_bins: int = 15,
    ignore_index: int | None = None,
) -> float:
    """Compute the expected calibration error over equal-width confidence bins.

    Parameters
    ----------
    probs, labels, mode, kind, n_bins, ignore_index
        As in :func:`reliability_curve`.

    Returns
    -------
    float
        ``Σ_bins n_b / N · |frequency_b - confidence_b|``.  ``"top-label"``: of the
        top-label confidence (multilabel: over every (pixel, class) entry, confidence
        ``max(p, 1 - p)``).  ``"classwise"``: the unweighted mean over classes of each
        class's ECE of ``p_c`` against ``1[y = c]``.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.calibration import ece
    >>> p = np.array([[[0.8, 0.9]], [[0.2, 0.1]]])[None]
    >>> round(ece(p, np.array([[[0, 1]]]), n_bins=5), 4)  # |0.5 - 0.85|
    0.35
    """
    return curve_ece(
        reliability_curve(
            probs,
            labels,
            mode=mode,
            kind=kind,
            n_bins=n_bins,
            ignore_index=ignore_index,
        )
    )
