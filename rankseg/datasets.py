"""Seeded synthetic probability maps for examples, tests and benchmarks.

Real segmentation networks produce maps that are confident almost everywhere and
uncertain in a thin band along object boundaries.  The generators here imitate that:
smooth random fields (white noise passed through a Gaussian low-pass filter) shape the
objects, logits grow roughly linearly with the signed distance to each boundary, and a
softmax over classes (multiclass models) or a sigmoid per class (multilabel models)
turns the logits into probabilities.

Every function is deterministic for a given ``seed`` and works in float32 (float64 only
when asked for), so that the largest workload, :func:`ct3d`, needs little more memory
than its own output.

Notes
-----
The Gaussian filter is applied in the Fourier domain (``scipy.fft``), which makes the
fields periodic across the array edges.  It costs the same for any filter width, whereas
:func:`scipy.ndimage.gaussian_filter` grows linearly with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.fft
from numpy.typing import ArrayLike, DTypeLike
from scipy.special import expit

from rankseg._policies import FLOAT_DTYPES

__all__ = ["WORKLOADS", "ct3d", "make_probs", "sample_truth", "tumor3d", "voc2d"]

_KINDS = ("softmax", "sigmoid")


# --------------------------------------------------------------------------- helpers


def _check_shape(shape: Sequence[int], min_classes: int = 1) -> tuple[int, ...]:
    try:
        items = tuple(shape)
    except TypeError:
        raise TypeError(f"shape must be a sequence of integers, got {shape!r}") from None
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in items):
        raise TypeError(f"shape must be a sequence of integers, got {shape!r}")
    shape = tuple(int(n) for n in items)
    if len(shape) < 3:
        raise ValueError(
            f"shape must be (B, C, *spatial) with at least one spatial dimension, got {shape}"
        )
    if min(shape) < 1:
        raise ValueError(f"every dimension of shape must be at least 1, got {shape}")
    if shape[1] < min_classes:
        raise ValueError(f"this generator needs at least {min_classes} classes, got {shape}")
    return shape


def _check_dtype(dtype: DTypeLike) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float16, float32 or float64, got {dtype}")
    return dtype


def _work_dtype(dtype: np.dtype) -> np.dtype:
    # float16 has too little range for logits; compute in float32 and cast at the end.
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


class _FieldMaker:
    """Unit-variance Gaussian-filtered white noise on a fixed spatial grid.

    The transfer function of a Gaussian filter of width ``sigma`` (in pixels) is
    ``exp(-2 pi^2 sigma^2 f^2)`` per axis.  For unit white noise the filtered field has
    variance ``prod_i mean_k h_i(k)^2`` (Parseval), which is divided out so that every
    field has unit variance whatever ``sigma`` and the grid size.
    """

    def __init__(self, spatial: tuple[int, ...], sigma: float, dtype: np.dtype) -> None:
        self.spatial = spatial
        self.dtype = dtype
        self.transfer: np.ndarray | None = None
        self.scale = 1.0
        if sigma > 0:
            axes = len(spatial)
            transfer = np.ones((1,) * axes, dtype=dtype)
            var = 1.0
            for i, n in enumerate(spatial):
                full = np.exp(-2.0 * (math.pi * sigma * np.fft.fftfreq(n)) ** 2)
                var *= float(np.mean(full**2))
                freq = np.fft.rfftfreq(n) if i == axes - 1 else np.fft.fftfreq(n)
                h = np.exp(-2.0 * (math.pi * sigma * freq) ** 2).astype(dtype)
                transfer = transfer * h.reshape((-1,) + (1,) * (axes - 1 - i))
            self.transfer = transfer
            self.scale = 1.0 / math.sqrt(var)

    def __call__(self, rng: np.random.Generator, out: np.ndarray | None = None) -> np.ndarray:
        noise = rng.standard_normal(self.spatial, dtype=self.dtype)
        if self.transfer is None:
            field = noise
        else:
            spectrum = scipy.fft.rfftn(noise, overwrite_x=True)
            spectrum *= self.transfer
            field = scipy.fft.irfftn(spectrum, s=self.spatial, overwrite_x=True)
        if out is None:
            out = field
        np.multiply(field, self.dtype.type(self.scale), out=out)
        return out


def _softmax_classes(x: np.ndarray) -> None:
    """Softmax over axis 1 of ``x`` (B, C, *S), in place."""
    np.subtract(x, x.max(axis=1, keepdims=True), out=x)
    np.exp(x, out=x)
    np.divide(x, x.sum(axis=1, keepdims=True), out=x)


def _finish(x: np.ndarray, kind: str, dtype: np.dtype) -> np.ndarray:
    """Turn logits into probabilities in place and cast to ``dtype`` (C-contiguous)."""
    if kind == "softmax":
        _softmax_classes(x)
    else:
        expit(x, out=x)
    return np.ascontiguousarray(x, dtype=dtype)


def _ball_radius(volume: float, ndim: int) -> float:
    """Radius of the ``ndim``-ball of the given volume (area in 2-D)."""
    unit = math.pi ** (ndim / 2) / math.gamma(ndim / 2 + 1)
    return (volume / unit) ** (1.0 / ndim)


def _blob_logit(
    rng: np.random.Generator,
    spatial: tuple[int, ...],
    field: np.ndarray,
    fraction: float,
    slope: float,
    wobble: float,
    center_range: tuple[float, float],
) -> np.ndarray:
    """Logits of one lumpy ellipsoidal object, about ``slope`` × signed distance.

    The object covers about ``fraction`` of the grid.  Its radius is modulated by
    ``1 + wobble * field`` so the boundary is irregular; ``slope`` (logits per pixel)
    sets how wide the uncertain band along the boundary is.
    """
    ndim = len(spatial)
    radius = _ball_radius(fraction * math.prod(spatial), ndim)
    aspect = np.exp(rng.uniform(-0.3, 0.3, size=ndim))
    radii = radius * aspect / np.exp(np.mean(np.log(aspect)))  # same volume as the ball
    centers = rng.uniform(*center_range, size=ndim) * np.asarray(spatial)
    rho2 = np.zeros((1,) * ndim, dtype=field.dtype)
    for i, n in enumerate(spatial):
        axis = ((np.arange(n) - centers[i]) / radii[i]) ** 2
        rho2 = rho2 + axis.astype(field.dtype).reshape((-1,) + (1,) * (ndim - 1 - i))
    rho = np.sqrt(rho2, out=rho2)
    local = np.maximum(1.0 + wobble * field, 0.3, dtype=field.dtype)
    np.divide(rho, local, out=rho)
    # 1 - rho is the signed distance to the boundary in units of the radius.
    np.subtract(1.0, rho, out=rho)
    rho *= field.dtype.type(slope * radius)
    return rho


# ------------------------------------------------------------------------ generators


def make_probs(
    shape: Sequence[int],
    *,
    kind: str = "softmax",
    smoothness: float = 4.0,
    sharpness: float = 12.0,
    bias: ArrayLike = 0.0,
    seed: int | None = 0,
    dtype: DTypeLike = np.float32,
) -> np.ndarray:
    """Generate a probability map from smooth random logits.

    Each (sample, class) gets an independent Gaussian-filtered white-noise field of unit
    variance; the logits are ``sharpness * field + bias`` and go through a softmax over
    classes or a sigmoid per class.

    Parameters
    ----------
    shape : sequence of int
        ``(B, C, *spatial)`` with at least one spatial dimension, every entry >= 1.
    kind : {"softmax", "sigmoid"}, default "softmax"
        Softmax over the class axis (a multiclass model: classes sum to 1) or an
        independent sigmoid per class (a multilabel model).
    smoothness : float, default 4.0
        Width (standard deviation, in pixels) of the Gaussian filter; 0 gives white
        noise.  Larger values give larger, rounder regions.
    sharpness : float, default 12.0
        Logit scale per standard deviation of the field.  Larger values give more
        confident maps with a thinner uncertain band along the boundaries.
    bias : array_like, default 0.0
        Logit offset broadcast against ``(B, C)``, e.g. a positive value for a dominant
        background class.
    seed : int or None, default 0
        Seed of :func:`numpy.random.default_rng`.
    dtype : dtype, default float32
        float16, float32 or float64.  Computation is in float32 unless float64 is asked
        for.

    Returns
    -------
    numpy.ndarray
        C-contiguous array of ``shape`` and ``dtype`` with values in [0, 1].

    Raises
    ------
    TypeError
        If ``shape`` is not a sequence of integers or ``dtype`` is not a float dtype.
    ValueError
        If ``shape`` has fewer than three entries or an entry below 1, ``kind`` is
        unknown, ``smoothness`` is negative or ``sharpness`` or ``bias`` is not finite.

    Examples
    --------
    >>> from rankseg.datasets import make_probs
    >>> probs = make_probs((2, 3, 32, 32), seed=1)
    >>> probs.shape, probs.dtype
    ((2, 3, 32, 32), dtype('float32'))
    >>> bool(abs(probs.sum(axis=1) - 1).max() < 1e-5)
    True
    """
    shape = _check_shape(shape)
    dtype = _check_dtype(dtype)
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    if not smoothness >= 0:
        raise ValueError(f"smoothness must be >= 0, got {smoothness!r}")
    if not math.isfinite(sharpness):
        raise ValueError(f"sharpness must be finite, got {sharpness!r}")
    work = _work_dtype(dtype)
    bias = np.broadcast_to(np.asarray(bias, dtype=work), shape[:2])
    if not np.isfinite(bias).all():
        raise ValueError(f"bias must be finite, got {np.asarray(bias).tolist()!r}")

    rng = np.random.default_rng(seed)
    fields = _FieldMaker(shape[2:], smoothness, work)
    x = np.empty(shape, dtype=work)
    for b in range(shape[0]):
        for c in range(shape[1]):
            fields(rng, out=x[b, c])
            x[b, c] *= work.type(sharpness)
            x[b, c] += bias[b, c]
    return _finish(x, kind, dtype)


def voc2d(seed: int | None = 0, *, shape: Sequence[int] = (4, 21, 256, 256)) -> np.ndarray:
    """Natural-image workload like PASCAL VOC: softmax over background + 20 classes.

    Class 0 is the background and covers most of each image.  Each image holds one to
    three objects of distinct classes (3-20 % of the image each) with lumpy boundaries
    and an uncertain band a few pixels wide; about half of the objects also get a
    "confuser" class with a lower logit over the same region (a cat that might be a
    dog).  Classes absent from an image keep small probabilities (~1e-3).

    Parameters
    ----------
    seed : int or None, default 0
        Seed of :func:`numpy.random.default_rng`.
    shape : sequence of int, default (4, 21, 256, 256)
        ``(B, C, *spatial)`` with ``C >= 2``; other shapes (smaller for tests, 3-D)
        scale the objects with the grid.

    Returns
    -------
    numpy.ndarray
        float32 probabilities of ``shape``, C-contiguous, summing to 1 over classes.
    """
    shape = _check_shape(shape, min_classes=2)
    work = np.dtype(np.float32)
    batch, classes, spatial = shape[0], shape[1], shape[2:]
    rng = np.random.default_rng(seed)
    fields = _FieldMaker(spatial, min(spatial) / 20, work)
    x = np.empty(shape, dtype=work)
    for b in range(batch):
        # Background: logit 0 with mild smooth variation.
        fields(rng, out=x[b, 0])
        x[b, 0] *= 0.5
        # Absent classes: low logits that fluctuate smoothly (rare false positives).
        for c in range(1, classes):
            fields(rng, out=x[b, c])
            x[b, c] *= 1.5
            x[b, c] -= 8.0
        n_objects = min(int(rng.integers(1, 4)), classes - 1)
        present = rng.choice(np.arange(1, classes), size=n_objects, replace=False)
        for c in present:
            wobble = fields(rng)
            blob = _blob_logit(
                rng,
                spatial,
                wobble,
                fraction=rng.uniform(0.03, 0.2),
                slope=rng.uniform(0.6, 1.5),
                wobble=0.25,
                center_range=(0.2, 0.8),
            )
            np.maximum(x[b, c], blob, out=x[b, c])
            if classes > n_objects + 1 and rng.random() < 0.5:
                absent = np.setdiff1d(np.arange(1, classes), present)
                confuser = rng.choice(absent)
                blob -= rng.uniform(1.5, 4.0)
                np.maximum(x[b, confuser], blob, out=x[b, confuser])
    return _finish(x, "softmax", work)


def ct3d(seed: int | None = 0, *, shape: Sequence[int] = (1, 8, 64, 128, 128)) -> np.ndarray:
    """Abdominal-CT-like workload: softmax over background + organs.

    Class 0 is the background (most voxels).  Every other class is an organ present in
    every volume: a lumpy ellipsoid covering 1-6 % of the voxels, with an uncertain rim
    of a few voxels; organs may touch or overlap, which leaves the softmax undecided
    between them there.

    Parameters
    ----------
    seed : int or None, default 0
        Seed of :func:`numpy.random.default_rng`.
    shape : sequence of int, default (1, 8, 64, 128, 128)
        ``(B, C, *spatial)`` with ``C >= 2``.

    Returns
    -------
    numpy.ndarray
        float32 probabilities of ``shape``, C-contiguous, summing to 1 over classes.
    """
    shape = _check_shape(shape, min_classes=2)
    work = np.dtype(np.float32)
    batch, classes, spatial = shape[0], shape[1], shape[2:]
    rng = np.random.default_rng(seed)
    fields = _FieldMaker(spatial, min(spatial) / 12, work)
    x = np.empty(shape, dtype=work)
    for b in range(batch):
        fields(rng, out=x[b, 0])
        x[b, 0] *= 0.5
        for c in range(1, classes):
            fields(rng, out=x[b, c])
            blob = _blob_logit(
                rng,
                spatial,
                x[b, c],
                fraction=rng.uniform(0.01, 0.06),
                slope=rng.uniform(0.7, 1.5),
                wobble=0.15,
                center_range=(0.25, 0.75),
            )
            # Far from the organ the logit rests on a smooth floor around -7.
            x[b, c] -= 7.0
            np.maximum(x[b, c], blob, out=x[b, c])
    return _finish(x, "softmax", work)


def tumor3d(seed: int | None = 0, *, shape: Sequence[int] = (1, 1, 96, 128, 128)) -> np.ndarray:
    """Lesion-segmentation workload: one small, blurry object per (sample, class).

    Sigmoid probabilities of a single lumpy object covering about 0.5-2 % of the voxels
    with p > 0.5, surrounded by a wide uncertain rim (the logit changes by only 0.4-0.8
    per voxel), on a background of small probabilities (~3e-4) that fluctuate smoothly.

    Parameters
    ----------
    seed : int or None, default 0
        Seed of :func:`numpy.random.default_rng`.
    shape : sequence of int, default (1, 1, 96, 128, 128)
        ``(B, C, *spatial)``; each class channel gets its own object.

    Returns
    -------
    numpy.ndarray
        float32 probabilities of ``shape``, C-contiguous.
    """
    shape = _check_shape(shape)
    work = np.dtype(np.float32)
    spatial = shape[2:]
    rng = np.random.default_rng(seed)
    fields = _FieldMaker(spatial, min(spatial) / 10, work)
    wobbles = _FieldMaker(spatial, min(spatial) / 16, work)
    x = np.empty(shape, dtype=work)
    for b in range(shape[0]):
        for c in range(shape[1]):
            wobble = wobbles(rng)
            blob = _blob_logit(
                rng,
                spatial,
                wobble,
                fraction=rng.uniform(0.008, 0.014),
                slope=rng.uniform(0.4, 0.8),
                wobble=0.1,
                center_range=(0.3, 0.7),
            )
            fields(rng, out=x[b, c])
            x[b, c] -= 8.0
            np.maximum(x[b, c], blob, out=x[b, c])
    return _finish(x, "sigmoid", work)


#: The benchmark workloads by name: seeded generators taking ``seed`` (default 0).
WORKLOADS: dict[str, Callable[..., np.ndarray]] = {
    "voc2d": voc2d,
    "ct3d": ct3d,
    "tumor3d": tumor3d,
}


# ----------------------------------------------------------------------- ground truth


def sample_truth(
    probs: ArrayLike,
    rng: np.random.Generator | int | None = None,
    *,
    kind: str | None = None,
) -> np.ndarray:
    """Draw a ground truth for which ``probs`` is calibrated.

    - ``kind="softmax"`` (multiclass): each pixel's label is drawn from the categorical
      distribution given by its class probabilities; returns int64 labels ``(B, *S)``.
    - ``kind="sigmoid"`` (multilabel): every (class, pixel) is an independent
      Bernoulli(p) draw, as the decision problem assumes; returns bool masks
      ``(B, C, *S)``.

    Parameters
    ----------
    probs : array_like
        Probabilities of shape ``(B, C, *spatial)``.
    rng : numpy.random.Generator, int or None, default None
        Generator, or a seed for :func:`numpy.random.default_rng`.
    kind : {"softmax", "sigmoid"} or None, default None
        ``None`` infers "softmax" when ``C >= 2`` and the classes of every pixel sum to
        1 (within 1e-3), else "sigmoid".

    Returns
    -------
    numpy.ndarray
        int64 labels ``(B, *spatial)`` for softmax, bool masks of ``probs.shape`` for
        sigmoid; the same types as ``rankseg.predict`` returns in multiclass and
        multilabel mode.

    Raises
    ------
    ValueError
        If ``probs`` has fewer than three dimensions or ``kind`` is unknown.

    Notes
    -----
    For softmax input whose class sums fall short of 1 by rounding, the leftover mass
    goes to the last class.
    """
    probs = np.asarray(probs)
    if probs.ndim < 3:
        raise ValueError(f"probs must have shape (B, C, *spatial), got {probs.shape}")
    rng = np.random.default_rng(rng)
    if kind is None:
        softmax = probs.shape[1] >= 2 and bool(
            np.all(np.abs(probs.sum(axis=1, dtype=np.float64) - 1.0) <= 1e-3)
        )
        kind = "softmax" if softmax else "sigmoid"
    if kind == "sigmoid":
        return rng.random(probs.shape, dtype=np.float32) < probs
    if kind != "softmax":
        raise ValueError(f"kind must be one of {_KINDS} or None, got {kind!r}")
    # Inverse-CDF sampling one class at a time: label = #{c < C-1 : u >= P(class <= c)}.
    u = rng.random((probs.shape[0],) + probs.shape[2:])
    cdf = np.zeros_like(u)
    labels = np.zeros(u.shape, dtype=np.int64)
    for c in range(probs.shape[1] - 1):
        cdf += probs[:, c]
        labels += u >= cdf
    return labels
