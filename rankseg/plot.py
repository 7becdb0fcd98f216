"""Pictures of RankSEG decisions (needs matplotlib: ``pip install 'rankseg-numba[plot]'``).

* :func:`plot_case`: one case for a report, side by side -- the image, argmax, RankSEG
  (expected Dice per class in its title) and their difference, on one slice.
* :func:`plot_difference`: what a second label map (RankSEG) changes against a first
  (argmax): the pixels added, removed and relabelled, with counts and volumes, over a
  windowed image; a volume's slice in the radiological convention
  (:func:`oriented_slice`).
* :func:`plot_overlay`: a 2-D slice with the contours of two label maps (e.g. argmax
  and RankSEG) drawn over the image or the probabilities.
* :func:`plot_score_curve`: the solver's objective (expected Dice/IoU) of one
  (sample, class) over the mask volume τ, with τ* marked.
* :func:`plot_gains`: per-class score differences of two methods (mean ± s.e.).
* :func:`plot_reliability`: a reliability diagram of probabilities against labels
  (before/after :mod:`rankseg.calibration`), with the ECE and pixel counts per bin.

Each function draws on ``ax`` when given, else on a new
:class:`matplotlib.figure.Figure` (not registered with pyplot, so nothing opens a
window or accumulates); it returns the Axes -- ``ax.figure.savefig("out.png")``
writes it (:func:`plot_case` returns its Figure).  :func:`class_color` gives the
colour of a class in every figure.  No global matplotlib state (backend, style) is changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

import numpy as np

try:
    import matplotlib
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, FigureBase
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, StepPatch
except ImportError as exc:  # pragma: no cover - matplotlib is in the test extra
    raise ImportError("rankseg.plot needs matplotlib: pip install 'rankseg-numba[plot]'") from exc

from rankseg import _validation as v

__all__ = [
    "CURVE_SOLVERS",
    "DIFF_COLORS",
    "WINDOWS",
    "OrientedSlice",
    "class_color",
    "oriented_slice",
    "plot_case",
    "plot_difference",
    "plot_gains",
    "plot_overlay",
    "plot_reliability",
    "plot_score_curve",
    "score_curve",
]

#: solvers whose objective :func:`score_curve` can evaluate over every τ
CURVE_SOLVERS = {"dice": ("rma", "exact", "ba", "trna", "ba+trna"), "iou": ("rma", "exact")}


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        if not isinstance(ax, Axes):
            raise TypeError(f"ax must be a matplotlib Axes; got {type(ax).__name__}")
        return ax
    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _class_color(c: int) -> Any:
    """``tab10`` for classes 0-9, then ten darker ``tab20b`` colours (CamVid has 11)."""
    c %= 20
    if c < 10:
        return matplotlib.colormaps["tab10"](c)
    k = c - 10
    return matplotlib.colormaps["tab20b"](4 * (k % 5) + 2 * (k // 5))


def class_color(c: int, output_mode: str = "multiclass") -> tuple[float, float, float, float]:
    """Return the colour the figures of this module give class (or channel) ``c``.

    Use it to match a figure of your own (a bar per class, a table) to
    :func:`plot_difference`, :func:`plot_case` and :func:`plot_overlay`.

    Parameters
    ----------
    c : int
        Class index (multiclass: class 0 is the background, never filled) or channel
        index (multilabel: channel 0 gets the colour of multiclass class 1).
    output_mode : {'multiclass', 'multilabel'}
        The kind of labels.

    Returns
    -------
    tuple of float
        RGBA in [0, 1]: matplotlib's ``tab10`` for classes 0-9, ten darker colours
        of ``tab20b`` for classes 10-19, cycling every 20 classes.

    Raises
    ------
    ValueError
        For a negative index or an unknown mode.

    Examples
    --------
    >>> from rankseg.plot import class_color
    >>> class_color(1) == class_color(0, "multilabel")
    True
    """
    mode = v.check_name(output_mode, "output_mode", ("multiclass", "multilabel"))
    c = v.check_int(c, "c")
    if c < 0:
        raise ValueError(f"class index must be >= 0; got {c}")
    rgba = tuple(float(x) for x in _class_color(c if mode == "multiclass" else c + 1))
    return cast(tuple[float, float, float, float], rgba)  # matplotlib's RGBA: 4 floats


def _as_masks(labels: Any, what: str, shape: tuple[int, ...] | None) -> dict[int, np.ndarray]:
    """Label map (H, W) or boolean masks (C, H, W) -> {class: (H, W) mask}."""
    arr = np.asarray(labels)
    if arr.dtype == bool and arr.ndim == 3:
        masks = {c: arr[c] for c in range(arr.shape[0])}
        hw = arr.shape[1:]
    elif arr.dtype.kind in "iu" and arr.ndim == 2:
        masks = {int(c): arr == c for c in np.unique(arr) if c != 0}
        hw = arr.shape
    else:
        raise ValueError(
            f"{what} must be a 2-D integer label map (H, W) or boolean masks (C, H, W); got "
            f"shape {arr.shape} and dtype {arr.dtype}"
        )
    if shape is not None and hw != shape:
        raise ValueError(f"{what} has spatial shape {hw}; expected {shape} like the image")
    return masks


def _contour_grid(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, z)`` for ``ax.contour`` of a 2-D mask in pixel coordinates.

    matplotlib contours need at least 2 x 2 values: an axis of one pixel (a 1-D
    signal shown as one row) is doubled, its two copies at the pixel's edges.
    """
    z = mask.astype(np.float64)
    ys = np.arange(z.shape[0], dtype=np.float64)
    xs = np.arange(z.shape[1], dtype=np.float64)
    if z.shape[0] == 1:
        z, ys = np.repeat(z, 2, axis=0), np.array([-0.5, 0.5])
    if z.shape[1] == 1:
        z, xs = np.repeat(z, 2, axis=1), np.array([-0.5, 0.5])
    return xs, ys, z


def plot_overlay(
    image: Any,
    labels_a: Any,
    labels_b: Any = None,
    *,
    names: Sequence[str] = ("argmax", "RankSEG"),
    ax: Axes | None = None,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Axes:
    """Draw the contours of one or two segmentations over a 2-D slice.

    Where two decisions differ by a pixel or two, their contours nearly coincide:
    :func:`plot_difference` shows the pixels one adds and removes instead.

    Parameters
    ----------
    image : array-like
        The background: a grayscale image ``(H, W)``, or the probabilities of the
        slice ``(C, H, W)``, shown as the largest class probability per pixel (the
        model's confidence: uncertain boundaries are dark).
    labels_a : array-like
        An integer label map ``(H, W)`` (class 0 is background and not outlined)
        or boolean masks ``(C, H, W)``; drawn with solid lines, one color per class.
    labels_b : array-like, optional
        A second segmentation of the same kind, drawn with dashed lines.
    names : sequence of str
        Legend names of ``labels_a`` and ``labels_b``.
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new Figure).
    title : str, optional
        Axes title.
    class_names : sequence of str, optional
        Name of each class, indexed by class (or mask channel): the legend then
        also gives the colour of each class drawn.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    Raises
    ------
    ValueError
        If the shapes do not fit, or ``class_names`` misses a class drawn.
    TypeError
        If ``ax`` is not an Axes.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.plot import plot_overlay
    >>> probs = np.random.default_rng(0).dirichlet([1, 1, 1], (16, 16)).transpose(2, 0, 1)
    >>> ax = plot_overlay(probs, probs.argmax(0), probs.argmax(0))
    >>> ax.figure.savefig("/dev/null", format="png")
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        img = img.max(axis=0)
        label = "max class probability"
    elif img.ndim == 2:
        label = None
    else:
        raise ValueError(f"image must be (H, W) or probabilities (C, H, W); got shape {img.shape}")
    ax = _new_axes(ax, (5.0, 5.0))
    shown = ax.imshow(img, cmap="gray", interpolation="nearest")
    if label is not None:
        ax.figure.colorbar(shown, ax=ax, shrink=0.8, label=label)
    handles: list[Artist] = []
    drawn: set[int] = set()
    passes: tuple[tuple[Any, Literal["solid", "dashed"], str], ...] = (
        (labels_a, "solid", names[0]),
        (labels_b, "dashed", names[-1]),
    )
    for labels, style, name in passes:
        if labels is None:
            continue
        for c, mask in _as_masks(labels, name, img.shape).items():
            if mask.any():
                drawn.add(c)
            if mask.any() and not mask.all():
                ax.contour(
                    *_contour_grid(mask),
                    levels=[0.5],
                    colors=[_class_color(c)],
                    linestyles=style,
                    linewidths=1.2,
                )
        handles.append(Line2D([], [], color="black", linestyle=style, label=name))
    if class_names is not None:
        class_names = [str(n) for n in class_names]
        missing = [c for c in sorted(drawn) if c >= len(class_names)]
        if missing:
            raise ValueError(
                f"class_names has {len(class_names)} names; class {missing[0]} is drawn"
            )
        handles += [Patch(color=_class_color(c), label=class_names[c]) for c in sorted(drawn)]
    ax.legend(handles=handles, loc="upper right", fontsize="small")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def score_curve(
    probs_row: Any,
    metric: str = "dice",
    solver: str = "rma",
    smooth: float = 0.0,
    eps: float = 1e-4,
) -> np.ndarray:
    """Evaluate a solver's objective at every mask volume τ = 0..d of one row.

    Parameters
    ----------
    probs_row : array-like
        The probabilities of one (sample, class), any shape (flattened).
    metric : {'dice', 'iou'}
        The metric.
    solver : {'rma', 'exact', 'ba', 'trna', 'ba+trna'}
        ``'rma'``: the reciprocal moment approximation ``F(τ)``; ``'exact'``: the
        exact expected metric ``π(τ)`` (generating-function quadrature); ``'ba'``,
        ``'trna'``, ``'ba+trna'`` (Dice only): the refined-normal approximations.
    smooth : float
        Smoothing ``γ >= 0``.
    eps : float
        Window tail mass of the refined-normal solvers, in (0, 1).

    Returns
    -------
    ndarray of float64, shape (d + 1,)
        The objective of the mask of the τ largest probabilities, ``τ = 0..d``.
        Its first maximizer is the solver's τ* (before pruning).

    Raises
    ------
    ValueError
        For an unknown metric, a solver without a curve, or invalid probabilities.
    """
    metric = v.check_name(metric, "metric", ("dice", "iou"))
    solver = v.check_name(solver, "solver", CURVE_SOLVERS["dice"])
    if solver not in CURVE_SOLVERS[metric]:
        raise ValueError(
            f"solver {solver!r} is not supported for metric {metric!r}; choose one of "
            + ", ".join(repr(s) for s in CURVE_SOLVERS[metric])
        )
    gamma = v.check_real(smooth, "smooth", lo=0.0, hi=np.inf, hi_open=True)
    p = np.asarray(probs_row, dtype=np.float64).ravel()
    if p.size == 0 or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("probs_row must be a non-empty array of probabilities in [0, 1]")
    q = np.sort(p)[::-1].copy()
    d = q.size
    mu = float(q.sum())
    tau = np.arange(d + 1, dtype=np.float64)
    s = np.concatenate(([0.0], np.cumsum(q)))
    out = np.zeros(d + 1)
    if solver == "rma":
        with np.errstate(divide="ignore", invalid="ignore"):
            if metric == "dice":
                out = 2.0 * s / (mu + tau + 1.0 + gamma) + gamma / (mu + tau + gamma)
            else:
                den = mu - s + tau + gamma
                out = np.divide(s + gamma, den, out=np.zeros(d + 1), where=den > 0)
        out[0] = gamma / (mu + gamma) if gamma > 0 else 0.0
        return out
    from rankseg.kernels.exact import (
        exact_dice_objective,
        exact_iou_objective,
        new_summary,
        row_summary,
    )

    summary = new_summary(0)
    row_summary(q, summary)
    if solver == "exact":
        kernel = exact_dice_objective if metric == "dice" else exact_iou_objective
        kernel(q, summary, gamma, 0, d, out)
        return out
    from rankseg.kernels.ba_trna import ba_dice_objective, ba_trna_use_ba, trna_dice_objective

    eps = v.check_real(eps, "eps", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    use_ba = solver == "ba" or (solver == "ba+trna" and ba_trna_use_ba(summary))
    (ba_dice_objective if use_ba else trna_dice_objective)(q, summary, gamma, eps, 0, d, out)
    return out


def plot_score_curve(
    probs_row: Any,
    metric: str = "dice",
    solver: str = "rma",
    *,
    smooth: float = 0.0,
    eps: float = 1e-4,
    tau_max: int | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Plot the objective of one (sample, class) over the mask volume τ, τ* marked.

    Parameters
    ----------
    probs_row : array-like
        The probabilities of one (sample, class), any shape (flattened).
    metric : {'dice', 'iou'}
        The metric.
    solver : {'rma', 'exact', 'ba', 'trna', 'ba+trna'}
        Whose objective to draw (see :func:`score_curve`).
    smooth : float
        Smoothing ``γ >= 0``.
    eps : float
        Window tail mass of the refined-normal solvers.
    tau_max : int, optional
        Largest τ shown (default: ``min(d, max(2 τ*, τ(p > 0.5)) + 10)``, the
        interesting part of a large row).
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new Figure).

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on; τ* (the first maximizer) is marked with a dot and a
        vertical line, and the volume of the ``p > 0.5`` mask with a dotted line.

    Raises
    ------
    ValueError
        As :func:`score_curve`, or for a negative ``tau_max``.
    TypeError
        If ``ax`` is not an Axes.

    Notes
    -----
    Pruning is not applied: a row whose largest probability is ``<= pruning_prob``
    gets an empty mask from :func:`rankseg.predict` whatever the curve shows.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.plot import plot_score_curve
    >>> ax = plot_score_curve(np.random.default_rng(0).random(100) ** 4, "dice")
    >>> ax.get_xlabel()
    'mask volume τ'
    """
    curve = score_curve(probs_row, metric, solver, smooth, eps)
    d = curve.size - 1
    tau_star = int(np.argmax(curve))
    n_half = int(np.count_nonzero(np.asarray(probs_row, dtype=np.float64) > 0.5))
    if tau_max is None:
        tau_max = min(d, max(2 * tau_star, n_half) + 10)
    tau_max = v.check_int(tau_max, "tau_max")
    if tau_max < 0:
        raise ValueError(f"tau_max must be >= 0; got {tau_max}")
    tau_max = min(tau_max, d)
    ax = _new_axes(ax, (6.0, 4.0))
    taus = np.arange(tau_max + 1)
    name = "Dice" if metric.strip().lower() == "dice" else "IoU"
    ax.plot(taus, curve[: tau_max + 1], color="C0", label=f"{solver.strip().lower()} objective")
    ax.axvline(tau_star, color="C3", linewidth=1.0)
    ax.plot(
        [tau_star],
        [curve[tau_star]],
        "o",
        color="C3",
        label=f"τ* = {tau_star}, expected {name} {curve[tau_star]:.3f}",
    )
    ax.axvline(n_half, color="gray", linestyle=":", label=f"p > 0.5 volume = {n_half}")
    ax.set_xlabel("mask volume τ")
    ax.set_ylabel(f"expected {name}")
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_gains(
    scores_a: Any,
    scores_b: Any,
    *,
    names: Sequence[str] = ("argmax", "RankSEG"),
    class_names: Sequence[str] | None = None,
    metric: str = "Dice",
    colors: Sequence[Any] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Bar chart of the per-class gain ``scores_b - scores_a`` (mean ± standard error).

    Parameters
    ----------
    scores_a, scores_b : array-like, shape (N, C) or (C,)
        Scores of two methods for N cases (or ground-truth draws) and C classes,
        e.g. from :func:`rankseg.metrics.dice_score`; NaN entries (empty classes)
        are left out of the means.
    names : sequence of str
        Names of the two methods (for the axis label).
    class_names : sequence of str, optional
        Tick labels (default: the class indices).
    metric : str
        Metric name for the axis label.
    colors : sequence of colours, optional
        The colour of each class's bar, e.g. ``[class_color(c) for c in classes]`` to
        match a :func:`plot_case` figure (default: green for a gain, red for a loss).
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new Figure).

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    Raises
    ------
    ValueError
        If the shapes differ or ``class_names`` or ``colors`` has the wrong length.
    TypeError
        If ``ax`` is not an Axes.

    Examples
    --------
    >>> from rankseg.plot import plot_gains
    >>> ax = plot_gains([[0.7, 0.5], [0.8, 0.4]], [[0.75, 0.6], [0.8, 0.5]])
    >>> len(ax.patches)
    2
    """
    a = np.atleast_2d(np.asarray(scores_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(scores_b, dtype=np.float64))
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"scores_a {a.shape} and scores_b {b.shape} must have the same (N, C) shape"
        )
    gain = b - a
    n = np.sum(~np.isnan(gain), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(gain, axis=0) / np.maximum(n, 1), np.nan)
        dev = np.where(np.isnan(gain), 0.0, gain - mean)
        var = np.sum(dev**2, axis=0) / np.maximum(n - 1, 1)
        se = np.where(n > 1, np.sqrt(var / np.maximum(n, 1)), 0.0)
    nc = gain.shape[1]
    labels = [str(c) for c in range(nc)] if class_names is None else [str(c) for c in class_names]
    if len(labels) != nc:
        raise ValueError(f"class_names has {len(labels)} names for {nc} classes")
    ax = _new_axes(ax, (max(4.0, 0.6 * nc + 2), 4.0))
    x = np.arange(nc)
    if colors is None:
        colors = ["C2" if m >= 0 else "C3" for m in np.nan_to_num(mean)]
    elif len(colors) != nc:
        raise ValueError(f"colors has {len(colors)} colours for {nc} classes")
    ax.bar(x, np.nan_to_num(mean), yerr=se, color=list(colors), capsize=3)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, labels)
    ax.set_xlabel("class")
    ax.set_ylabel(f"{metric}: {names[-1]} − {names[0]}")
    return ax


_DIAGONAL_GID = "rankseg-reliability-diagonal"
_COUNTS_GID = "rankseg-reliability-counts"


def _check_curve(curve: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(confidence, frequency, count)`` as float arrays of one shape, 1-D or (C, n_bins)."""
    try:
        conf, freq, count = (np.asarray(a, dtype=np.float64) for a in curve)
    except (TypeError, ValueError):
        raise ValueError(
            "curve must be the (confidence, frequency, count) arrays of "
            "rankseg.calibration.reliability_curve"
        ) from None
    if not (conf.shape == freq.shape == count.shape) or conf.ndim not in (1, 2) or not conf.size:
        raise ValueError(
            "curve must hold three arrays of one shape, (n_bins,) or (C, n_bins); got shapes "
            f"{conf.shape}, {freq.shape}, {count.shape}"
        )
    if not (np.isfinite(count).all() and (count >= 0).all()):
        raise ValueError("curve's counts must be finite and >= 0")
    return conf, freq, count


def _counts_axes(ax: Axes) -> Axes | None:
    for other in ax.figure.axes:
        if other.get_gid() == _COUNTS_GID and ax.get_shared_x_axes().joined(ax, other):
            return other
    return None


def _scale_counts_axes(counts_ax: Axes) -> None:
    """Log scale fitted to every histogram drawn: the bars fill the lower third."""
    values = np.concatenate(
        # the histograms are the axes' only patches, drawn by Axes.stairs
        [
            np.asarray(cast(StepPatch, p).get_data()[0], dtype=np.float64)  # StairData.values
            for p in counts_ax.patches
        ]
    )
    values = values[values > 0]
    if not values.size:
        return
    lo, hi = values.min() / 2.0, values.max()
    lo = min(lo, hi / 10.0)
    top = lo * (hi / lo) ** (1.0 / 0.3)
    counts_ax.set_ylim(lo, top)
    decades = 10.0 ** np.arange(np.ceil(np.log10(lo)), np.floor(np.log10(hi)) + 1)
    counts_ax.set_yticks(decades)
    counts_ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())


def plot_reliability(
    probs: Any = None,
    labels: Any = None,
    *,
    curve: tuple[Any, Any, Any] | None = None,
    mode: str = "multiclass",
    kind: str = "top-label",
    n_bins: int = 15,
    ignore_index: int | None = None,
    ax: Axes | None = None,
    label: str | None = None,
) -> Axes:
    """Reliability diagram: observed frequency against confidence, with pixel counts.

    Draws the diagonal (perfect calibration), the observed frequency (accuracy for
    ``kind="top-label"``) at each bin's mean confidence as a line with markers, and
    the fraction of pixels per bin as a histogram on a log axis (right) filling the
    lower third.  The legend entry gives the expected calibration error.  Several
    calls on one ``ax`` overlay models (e.g. before and after calibration): the
    diagonal and the histogram axis are made once and each call takes the next color.

    Parameters
    ----------
    probs, labels : array-like, optional
        As in :func:`rankseg.calibration.reliability_curve` (``labels=None`` with an
        iterable of (probs, labels) pairs).
    curve : tuple of arrays, optional
        A precomputed :func:`rankseg.calibration.reliability_curve` result, instead of
        ``probs`` and ``labels``.  Per-class curves (``kind="classwise"``, shape
        ``(C, n_bins)``) are pooled over the classes by pixel count for the line; the
        ECE is the class average, as :func:`rankseg.calibration.ece`.
    mode, kind, n_bins, ignore_index
        As in :func:`rankseg.calibration.reliability_curve` (unused with ``curve``).
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new Figure).
    label : str, optional
        Name of the model in the legend.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on (the histogram lives on a twin Axes sharing its x axis).

    Raises
    ------
    TypeError
        If neither or both of ``probs`` and ``curve`` are given, or ``ax`` is not an Axes.
    ValueError
        For a malformed ``curve`` (and the errors of ``reliability_curve``).

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.calibration import TemperatureScaling
    >>> from rankseg.plot import plot_reliability
    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet([0.3, 0.3, 0.3], (2, 32, 32)).transpose(0, 3, 1, 2)
    >>> y = (rng.random((2, 1, 32, 32)) > p.cumsum(1) ** 0.5).sum(1).clip(0, 2)
    >>> ax = plot_reliability(p, y, label="model")
    >>> ax = plot_reliability(TemperatureScaling().fit_transform(p, y), y, ax=ax, label="T")
    >>> [t.get_text().split(" (")[0] for t in ax.get_legend().get_texts()]
    ['perfect calibration', 'model', 'T']
    """
    from rankseg import calibration as cal

    if curve is None:
        if probs is None:
            raise TypeError("plot_reliability needs probs and labels, or curve=")
        curve = cal.reliability_curve(
            probs, labels, mode=mode, kind=kind, n_bins=n_bins, ignore_index=ignore_index
        )
    elif probs is not None or labels is not None:
        raise TypeError("pass probs and labels, or curve=, not both")
    conf, freq, count = _check_curve(curve)
    if count.sum() == 0:
        raise ValueError("the reliability curve holds no pixel")
    err = cal.curve_ece((conf, freq, count))
    classwise = conf.ndim == 2
    if classwise:  # pool the classes' bins, weighted by their pixel counts
        total = count.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.nansum(conf * count, axis=0) / total
            freq = np.nansum(freq * count, axis=0) / total
        count = total
    nb = count.size
    edges = np.linspace(0.0, 1.0, nb + 1)
    ok = count > 0

    ax = _new_axes(ax, (5.0, 4.6))
    counts_ax = _counts_axes(ax)
    if counts_ax is None:
        counts_ax = ax.twinx()
        counts_ax.set_gid(_COUNTS_GID)
        counts_ax.set_yscale("log")
        counts_ax.set_ylabel("pixels per bin (fraction)", fontsize="small", loc="bottom")
        counts_ax.tick_params(axis="y", labelsize="small")
        ax.set_zorder(counts_ax.get_zorder() + 1)  # lines above the histogram
        ax.patch.set_visible(False)
    if not any(line.get_gid() == _DIAGONAL_GID for line in ax.lines):
        ax.plot([0, 1], [0, 1], ls="--", color="0.5", lw=1, label="perfect calibration")
        ax.lines[-1].set_gid(_DIAGONAL_GID)
        ax.set_xlim(0.0, 1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_xlabel("predicted probability" if classwise else "confidence")
        ax.set_ylabel("observed frequency" if classwise else "accuracy")
        ax.grid(True, lw=0.4, alpha=0.5)
    name = f"ECE {err:.3f}" if label is None else f"{label} (ECE {err:.3f})"
    (line,) = ax.plot(conf[ok], freq[ok], marker="o", ms=4, lw=1.5, label=name)
    color = line.get_color()
    counts_ax.stairs(count / count.sum(), edges, fill=True, alpha=0.18, color=color)
    counts_ax.stairs(count / count.sum(), edges, color=color, lw=0.8)
    _scale_counts_axes(counts_ax)
    ax.legend(loc="upper left", fontsize="small")
    return ax


# -- difference overlay -------------------------------------------------------------

#: window presets ``(level, width)`` in Hounsfield units for CT images
WINDOWS: dict[str, tuple[float, float]] = {
    "soft-tissue": (40.0, 400.0),
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}

_FILL_ALPHA = 0.7

#: colours of the pixels the second map adds, removes and moves to another class
DIFF_COLORS = {"added": "#00c8ff", "removed": "#ffe600", "relabelled": "#ff2bd6"}

#: which way the display's columns and rows run for each plane (radiological convention:
#: the patient's left on the image's right; anterior, or superior, at the top)
_PLANES = {
    "axial": ("SI", "LR", "L", "AP", "P"),
    "coronal": ("AP", "LR", "L", "SI", "I"),
    "sagittal": ("LR", "AP", "P", "SI", "I"),
}
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}


@dataclass(frozen=True)
class OrientedSlice:
    """A 2-D slice ready for :meth:`~matplotlib.axes.Axes.imshow`.

    Attributes
    ----------
    data : ndarray
        The slice, rows top to bottom and columns left to right as displayed (any
        leading axes of the input are kept in front).
    aspect : float
        Height / width of one displayed pixel (the ``aspect=`` of ``imshow``): 1 without
        spacing.
    axis : int or None
        Array axis sliced (None for a 2-D input).
    index : int or None
        Index along ``axis``.
    plane : str or None
        ``'axial'``, ``'coronal'`` or ``'sagittal'`` when an affine gave the
        orientation.
    edges : tuple of str or None
        Patient directions at the ``(left, right, top, bottom)`` edges of the display,
        e.g. ``('R', 'L', 'A', 'P')`` for an axial slice; None without an affine.
    spacing : tuple of float or None
        Voxel size (mm) along each array axis of the input, if known.
    """

    data: np.ndarray
    aspect: float
    axis: int | None
    index: int | None
    plane: str | None
    edges: tuple[str, str, str, str] | None
    spacing: tuple[float, ...] | None


def _geometry_affine(affine: Any, ndim: int) -> np.ndarray:
    """Return a 4 x 4 RAS affine for the array axes, from an array or a reader's geometry."""
    if hasattr(affine, "affine"):  # nibabel image, rankseg.io NIfTI reference
        affine = affine.affine
    elif all(hasattr(affine, k) for k in ("spacing", "origin", "direction")) or all(
        hasattr(affine, k) for k in ("GetSpacing", "GetOrigin", "GetDirection")
    ):  # ITK geometry (SimpleITK image, rankseg.io reference): array order (Z, Y, X)
        get = (
            (lambda k: getattr(affine, "Get" + k.capitalize())())
            if hasattr(affine, "GetSpacing")
            else (lambda k: getattr(affine, k))
        )
        sp = np.asarray(get("spacing"), dtype=np.float64).ravel()
        n = sp.size
        if n != 3:
            raise ValueError(f"an affine orients 3-D volumes; got an ITK geometry of {n} axes")
        # as rankseg.io._nifti._sitk_affine (a higher layer): ITK's LPS direction, columns
        # scaled by the spacing, to RAS; then the columns in the array's (Z, Y, X) order
        xyz = np.eye(4)
        xyz[:3, :3] = np.diag([-1.0, -1.0, 1.0]) @ (
            np.asarray(get("direction"), dtype=np.float64).reshape(3, 3) * sp
        )
        xyz[:3, 3] = np.diag([-1.0, -1.0, 1.0]) @ np.asarray(get("origin"), dtype=np.float64)
        affine = xyz[:, [2, 1, 0, 3]]
    aff = np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise ValueError(f"affine must be a finite 4 x 4 array; got shape {aff.shape}")
    if ndim != 3:
        raise ValueError(f"an affine orients 3-D volumes; got {ndim} spatial axes")
    if abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise ValueError("affine is singular")
    return aff


def _axcodes(aff: np.ndarray) -> tuple[str, ...]:
    try:
        from nibabel.orientations import aff2axcodes
    except ImportError as exc:  # pragma: no cover - nibabel is in the test extra
        raise ImportError(
            "orienting a slice by its affine needs nibabel: pip install 'rankseg-numba[nifti]'"
        ) from exc
    return tuple(aff2axcodes(aff))


def _slice_plan(
    shape: tuple[int, ...],
    axis: int | str,
    index: int | None,
    affine: Any,
    spacing: Any,
    default_index: Any = None,
) -> tuple[Any, OrientedSlice]:
    """``(apply, template)``: ``apply(arr)`` slices and orients arr's trailing axes."""
    ndim = len(shape)
    if ndim not in (2, 3):
        raise ValueError(f"expected a 2-D image or a 3-D volume; got spatial shape {shape}")
    if affine is not None and spacing is not None:
        raise TypeError("pass affine or spacing, not both (the affine holds the spacing)")
    codes = None
    if affine is not None:
        aff = _geometry_affine(affine, ndim)
        sp = tuple(float(s) for s in np.sqrt((aff[:3, :3] ** 2).sum(axis=0)))
        codes = _axcodes(aff)
    elif spacing is not None:
        sp = tuple(float(s) for s in np.ravel(np.asarray(spacing, dtype=np.float64)))
        if len(sp) != ndim or not all(np.isfinite(s) and s > 0 for s in sp):
            raise ValueError(
                f"spacing must hold {ndim} positive voxel sizes (one per spatial axis); "
                f"got {spacing!r}"
            )
    else:
        sp = None
    if ndim == 2:

        def apply2(arr: np.ndarray) -> np.ndarray:
            return arr

        aspect = 1.0 if sp is None else sp[0] / sp[1]
        return apply2, OrientedSlice(np.empty(0), aspect, None, None, None, None, sp)

    if isinstance(axis, str):
        name = axis.strip().lower()
        if name not in _PLANES:
            raise ValueError(f"axis must be 0, 1, 2 or one of {', '.join(map(repr, _PLANES))}")
        if codes is None:
            raise ValueError(f"axis={axis!r} needs an affine to know which axis is {name}")
        group = _PLANES[name][0]
        axis = next(i for i, c in enumerate(codes) if c in group)
    axis = v.check_int(axis, "axis")
    if not -3 <= axis < 3:
        raise ValueError(f"axis must be in [-3, 3) for a 3-D volume; got {axis}")
    axis %= 3
    n = shape[axis]
    if index is None:
        index = n // 2 if default_index is None else int(default_index(axis))
    index = v.check_int(index, "index")
    if not -n <= index < n:
        raise ValueError(f"index {index} is out of range for axis {axis} of length {n}")
    index %= n
    rest = [i for i in range(3) if i != axis]
    transpose, flips, plane, edges = False, (False, False), None, None
    if codes is not None:
        plane = next(p for p, spec in _PLANES.items() if codes[axis] in spec[0])
        _, col_group, col_to, row_group, row_to = _PLANES[plane]
        if codes[rest[0]] in col_group:  # columns must come second
            rest = rest[::-1]
            transpose = True
        assert codes[rest[1]] in col_group and codes[rest[0]] in row_group
        flips = (codes[rest[0]] != row_to, codes[rest[1]] != col_to)
        edges = (_OPPOSITE[col_to], col_to, _OPPOSITE[row_to], row_to)
    aspect = 1.0 if sp is None else sp[rest[0]] / sp[rest[1]]

    def apply3(arr: np.ndarray) -> np.ndarray:
        out = np.take(arr, index, axis=arr.ndim - 3 + axis)
        if transpose:
            out = np.swapaxes(out, -1, -2)
        if flips[0]:
            out = out[..., ::-1, :]
        if flips[1]:
            out = out[..., ::-1]
        return out

    return apply3, OrientedSlice(np.empty(0), aspect, axis, index, plane, edges, sp)


def oriented_slice(
    volume: Any,
    axis: int | str = 0,
    index: int | None = None,
    *,
    affine: Any = None,
    spacing: Sequence[float] | None = None,
) -> OrientedSlice:
    """Take a 2-D slice of a volume, oriented for display, with its pixel aspect.

    With an ``affine``, the slice is shown in the radiological convention whatever
    the array's axis order and directions: the patient's left on the image's right;
    anterior at the top of an axial slice, superior at the top of coronal and sagittal
    slices (anterior on the left of a sagittal slice).  Without one, the slice keeps
    the array order (rows: the first remaining axis).

    Parameters
    ----------
    volume : array-like
        A 3-D volume ``(*spatial)``, or a 2-D image (returned as is).  Leading axes
        (e.g. the classes of masks ``(C, Z, Y, X)``) are kept: the last three axes are
        the volume.
    axis : int or {'axial', 'coronal', 'sagittal'}
        Array axis to slice across (of the spatial axes), or the plane (needs
        ``affine``).
    index : int, optional
        Index along ``axis`` in the array as given (default: the middle).
    affine : array-like or image, optional
        The voxel-to-world affine in nibabel's RAS+ convention (``img.affine``, a
        nibabel image, or a :mod:`rankseg.io` reference), or an ITK geometry (a
        SimpleITK image or anything with ``spacing``, ``origin``, ``direction``) whose
        array is in ITK's ``(Z, Y, X)`` order.  Orients the slice and gives the spacing.
    spacing : sequence of float, optional
        Voxel size along each spatial array axis (no orientation), for the aspect.

    Returns
    -------
    OrientedSlice
        The slice and how it was taken (axis, index, plane, edge directions, aspect).

    Raises
    ------
    ValueError
        For a volume that is not 2-D or 3-D, an index out of range, a malformed
        affine or spacing, or a named plane without an affine.
    TypeError
        If both ``affine`` and ``spacing`` are given.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.plot import oriented_slice
    >>> vol = np.zeros((4, 5, 6))  # axes run toward the patient's left, anterior, superior
    >>> s = oriented_slice(vol, "axial", affine=np.diag([-1.0, 1.0, 2.5, 1.0]))
    >>> s.data.shape, s.plane, s.edges, s.index
    ((5, 4), 'axial', ('R', 'L', 'A', 'P'), 3)
    """
    arr = np.asarray(volume)
    nsp = 3 if arr.ndim >= 3 else arr.ndim
    apply, tmpl = _slice_plan(arr.shape[arr.ndim - nsp :], axis, index, affine, spacing)
    return replace(tmpl, data=apply(arr))


def _check_window(window: Any) -> tuple[float, float] | None:
    if window is None:
        return None
    if isinstance(window, str):
        name = window.strip().lower()
        if name not in WINDOWS:
            raise ValueError(
                f"unknown window {window!r}; choose one of {', '.join(map(repr, WINDOWS))} "
                "or pass (level, width)"
            )
        return WINDOWS[name]
    try:
        level, width = (float(x) for x in window)
    except (TypeError, ValueError):
        raise ValueError(
            f"window must be a preset name or (level, width); got {window!r}"
        ) from None
    if not (np.isfinite(level) and np.isfinite(width) and width > 0):
        raise ValueError(
            f"window (level, width) needs a finite level and a width > 0; got {window!r}"
        )
    return level, width


def _display_range(img: np.ndarray, window: Any, percentiles: Any) -> tuple[float, float]:
    win = _check_window(window)
    if win is not None:
        level, width = win
        return level - width / 2.0, level + width / 2.0
    try:
        lo, hi = (float(x) for x in percentiles)
    except (TypeError, ValueError):
        raise ValueError(f"percentiles must be (low, high); got {percentiles!r}") from None
    if not 0.0 <= lo < hi <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100; got {percentiles!r}")
    finite = img[np.isfinite(img)]
    if not finite.size:
        return 0.0, 1.0
    vmin, vmax = np.percentile(finite, [lo, hi])
    if vmax <= vmin:
        vmax = vmin + 1.0
    return float(vmin), float(vmax)


def _label_inputs(labels_a: Any, labels_b: Any, mode: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.shape != b.shape:
        raise ValueError(f"labels_a {a.shape} and labels_b {b.shape} must have the same shape")
    top = 4 if mode == "multiclass" else 5
    if a.ndim == top and a.shape[0] == 1:  # B = 1 as predict returns it
        a, b = a[0], b[0]
    if mode == "multiclass":
        if a.ndim not in (2, 3) or a.dtype.kind not in "iu" or b.dtype.kind not in "iu":
            raise ValueError(
                "multiclass labels must be integer label maps (H, W) or (Z, Y, X) (or one "
                f"(1, ...) sample); got shape {a.shape} and dtypes {a.dtype}, {b.dtype}"
            )
    else:
        if a.ndim not in (3, 4) or a.dtype.kind not in "biu" or b.dtype.kind not in "biu":
            raise ValueError(
                "multilabel labels must be masks (C, H, W) or (C, Z, Y, X) (or one "
                f"(1, C, ...) sample); got shape {a.shape} and dtypes {a.dtype}, {b.dtype}"
            )
        a, b = a != 0, b != 0
    return a, b


def _changes(a: np.ndarray, b: np.ndarray, mode: str) -> dict[str, np.ndarray]:
    """Pixels whose class set gains a class only, loses one only, or both."""
    if mode == "multiclass":
        differ = a != b
        gained, lost = differ & (b != 0), differ & (a != 0)
    else:
        gained, lost = (b & ~a).any(axis=0), (a & ~b).any(axis=0)
    return {"added": gained & ~lost, "removed": lost & ~gained, "relabelled": gained & lost}


def _amount(n: int, voxel: float | None, unit: str, ndim: int) -> str:
    text = f"{n:,} {unit}"
    if voxel is not None:
        text += f", {n * voxel / 1000:.2f} mL" if ndim == 3 else f", {n * voxel:.1f} mm²"
    return text


def _edge_letters(ax: Axes, edges: tuple[str, str, str, str] | None) -> None:
    """Mark the patient directions at the (left, right, top, bottom) edges of ``ax``."""
    if edges is None:
        return
    spots = (
        (0.01, 0.5, "left", "center"),
        (0.99, 0.5, "right", "center"),
        (0.5, 0.99, "center", "top"),
        (0.5, 0.01, "center", "bottom"),
    )
    for letter, (x, y, ha, va) in zip(edges, spots, strict=True):
        ax.text(
            x,
            y,
            letter,
            transform=ax.transAxes,
            ha=ha,
            va=va,
            color="white",
            fontsize="medium",
            fontweight="bold",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 1.5, "linewidth": 0},
        )


def plot_difference(
    labels_a: Any,
    labels_b: Any,
    *,
    image: Any = None,
    window: str | tuple[float, float] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.0),
    axis: int | str = 0,
    index: int | None = None,
    class_names: Sequence[str] | None = None,
    spacing: Sequence[float] | None = None,
    affine: Any = None,
    output_mode: str = "multiclass",
    decision: str | None = None,
    names: Sequence[str] = ("argmax", "RankSEG"),
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Show what a second segmentation changes: pixels added and removed, over the image.

    The decision ``labels_b`` is drawn per class (contours over an image, filled
    regions without one); the pixels where it differs from ``labels_a`` are filled
    in three colours (:data:`DIFF_COLORS`): *added* (a class gained, none lost --
    background became foreground), *removed* (a class lost, none gained) and
    *relabelled* (one foreground class replaced by another; shown only when present).
    The legend names the classes and gives the counts of each change in the slice
    (in mL, or mm² for a 2-D image, when the spacing is known) and, for a volume, in
    the whole volume.

    Parameters
    ----------
    labels_a, labels_b : array-like
        The reference (e.g. argmax) and the decision (e.g. RankSEG), one sample: for
        ``output_mode='multiclass'`` integer label maps ``(H, W)`` or ``(Z, Y, X)``
        (class 0 is the background); for ``'multilabel'`` masks ``(C, H, W)`` or
        ``(C, Z, Y, X)``.  A leading axis of length 1 (``B = 1`` as
        :func:`rankseg.predict` returns) is dropped from ``(1, Z, Y, X)`` label maps
        and ``(1, C, Z, Y, X)`` masks; for a 2-D sample pass ``labels[0]``.
    image : array-like, optional
        The image underneath, of the labels' spatial shape (CT in HU, MR, EM, ...),
        shown in grey.  Without it the background is dark grey.
    window : str or (float, float), optional
        Display window ``(level, width)`` or a CT preset (:data:`WINDOWS`:
        ``'soft-tissue'`` 40/400, ``'lung'`` −600/1500, ``'bone'`` 400/1800,
        ``'brain'`` 40/80).  Default: ``percentiles``.
    percentiles : (float, float)
        Without ``window``, the grey scale spans these percentiles of the shown
        slice's finite values.
    axis : int or {'axial', 'coronal', 'sagittal'}
        For a volume: the array axis to slice across, or the plane (needs ``affine``).
    index : int, optional
        For a volume: the slice along ``axis`` (default: the slice with the most
        changed pixels; the middle one when the maps agree).
    class_names : sequence of str, optional
        Legend name of each class, indexed by class (``class_names[0]`` names the
        background in multiclass mode, the first channel in multilabel mode).
        Default: ``'class 1'``, ...
    spacing : sequence of float, optional
        Voxel size (mm) along each spatial array axis: sets the pixel aspect and the
        volumes in the legend.
    affine : array-like or image, optional
        Voxel-to-world geometry (see :func:`oriented_slice`): orients the slice in the
        radiological convention (the patient's left on the right, anterior or
        superior at the top), marks the edges with the patient directions, and gives
        the spacing.  Not with ``spacing``.
    output_mode : {'multiclass', 'multilabel'}
        The kind of labels.
    decision : {'contour', 'fill'}, optional
        How ``labels_b``'s classes are drawn (default: contours over an image, fills
        without).
    names : sequence of str
        Names of ``labels_a`` and ``labels_b`` (legend and title).
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new Figure).
    title : str, optional
        Title (a second line gives the axis, index and plane of a volume's slice).

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on; ``ax.images[0]`` is the background image.

    Raises
    ------
    ValueError
        If the shapes do not fit, or for an unknown window, mode or decision style,
        bad percentiles, spacing, affine, axis or index.
    TypeError
        If ``ax`` is not an Axes, or both ``affine`` and ``spacing`` are given.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.plot import plot_difference
    >>> a = np.zeros((8, 8), dtype=int)
    >>> a[2:6, 2:6] = 1
    >>> b = a.copy()
    >>> b[1, 2:6] = 1  # one row added
    >>> b[5, 2:6] = 0  # one row removed
    >>> ax = plot_difference(a, b, class_names=["background", "organ"])
    >>> [t.get_text() for t in ax.get_legend().get_texts()]
    ['organ', 'added: 4 px', 'removed: 4 px']
    """
    mode = v.check_name(output_mode, "output_mode", ("multiclass", "multilabel"))
    a, b = _label_inputs(labels_a, labels_b, mode)
    spatial = a.shape if mode == "multiclass" else a.shape[1:]
    changes = _changes(a, b, mode)
    changed = changes["added"] | changes["removed"] | changes["relabelled"]

    def busiest(ax_: int) -> int:
        per = changed.sum(axis=tuple(i for i in range(3) if i != ax_))
        return int(np.argmax(per)) if per.any() else spatial[ax_] // 2

    apply, sl = _slice_plan(spatial, axis, index, affine, spacing, busiest)
    ndim = len(spatial)
    if image is not None:
        img = np.asarray(image, dtype=np.float64)
        if img.shape != spatial:
            raise ValueError(f"image has shape {img.shape}; expected {spatial} like the labels")
        img2 = apply(img)
        vmin, vmax = _display_range(img2, window, percentiles)
    else:
        _check_window(window)
        img2 = np.full(apply(changed).shape, 0.2)  # dark: the yellow marks stay visible
        vmin, vmax = 0.0, 1.0
    style = decision if decision is not None else ("contour" if image is not None else "fill")
    style = v.check_name(style, "decision", ("contour", "fill"))
    seg = apply(b)
    if mode == "multiclass":
        shown_a = apply(a)
        present = sorted(int(c) for c in np.union1d(np.unique(shown_a), np.unique(seg)) if c)
        masks = {c: seg == c for c in present}
        color_of = _class_color
    else:
        shown_a = apply(a)
        present = [c for c in range(b.shape[0]) if seg[c].any() or shown_a[c].any()]
        masks = {c: seg[c] for c in present}

        def color_of(c: int) -> Any:
            return _class_color(c + 1)  # tab10 from orange, as multiclass class 1

    if class_names is not None:
        class_names = [str(n) for n in class_names]
        need = int(max(a.max(initial=0), b.max(initial=0))) + 1
        need = need if mode == "multiclass" else b.shape[0]
        if len(class_names) < need:
            raise ValueError(f"class_names has {len(class_names)} names; the labels need {need}")

    def cname(c: int) -> str:
        return class_names[c] if class_names is not None else f"class {c}"

    own = ax is None
    ax = _new_axes(ax, (8.5, 5.5))
    if own:  # the image box left-aligned: the free width goes to the legend on its right
        ax.set_anchor("W")
    ax.imshow(img2, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest", aspect=sl.aspect)
    handles: list[Any] = []
    fill = np.zeros(img2.shape + (4,))
    fill_alpha = _FILL_ALPHA if image is not None else 1.0  # nothing to see through
    for c in present:
        mask = masks[c]
        color = color_of(c)
        if style == "fill":
            fill[mask] = matplotlib.colors.to_rgba(color, fill_alpha)
        elif mask.any() and not mask.all():
            ax.contour(  # above the change layer: the outline stays visible on a change
                *_contour_grid(mask), levels=[0.5], colors=[color], linewidths=0.8, zorder=4
            )
        alpha = fill_alpha if style == "fill" else 1.0
        handles.append(Patch(facecolor=color, edgecolor=color, alpha=alpha, label=cname(c)))
    if style == "fill":
        ax.imshow(fill, interpolation="nearest", aspect=sl.aspect)
    diff = np.zeros(img2.shape + (4,))
    voxel = None if sl.spacing is None else float(np.prod(sl.spacing))
    unit = "px" if ndim == 2 else "voxels"
    for kind, mask in changes.items():
        shown = apply(mask)
        n_slice, n_all = int(shown.sum()), int(mask.sum())
        if kind == "relabelled" and n_all == 0:
            continue
        diff[shown] = matplotlib.colors.to_rgba(DIFF_COLORS[kind], 0.9)
        label = f"{kind}: {_amount(n_slice, voxel, unit, ndim)}"
        if ndim == 3:
            label += f"\n  volume: {_amount(n_all, voxel, unit, ndim)}"
        handles.append(Patch(facecolor=DIFF_COLORS[kind], edgecolor="black", label=label))
    ax.imshow(diff, interpolation="nearest", aspect=sl.aspect, zorder=3)
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize="small",
        title=f"{names[-1]} vs {names[0]}" + (" (slice)" if ndim == 3 else ""),
        title_fontsize="small",
        frameon=False,
    )
    _edge_letters(ax, sl.edges)
    ax.set_xticks([])
    ax.set_yticks([])
    parts = [title if title else f"{names[-1]} − {names[0]}"]
    if sl.axis is not None:
        where = f"axis {sl.axis}, index {sl.index} of {spatial[sl.axis]}"
        parts.append(f"{sl.plane} slice, {where}" if sl.plane else where)
    ax.set_title("\n".join(parts), fontsize="medium")  # two short lines fit narrow panels
    return ax


# -- per-case figure ----------------------------------------------------------------


def _case_scores(info: Any, nc: int) -> np.ndarray | None:
    """Per-class expected scores ``(C,)`` from a PredictInfo (one sample) or an array."""
    if info is None:
        return None
    score = getattr(info, "score", info)
    arr = np.asarray(score, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != (nc,):
        raise ValueError(
            f"info must be the PredictInfo of one sample (score (1, {nc})) or {nc} scores; "
            f"got scores of shape {np.shape(score)}"
        )
    return arr


def _score_title(
    scores: np.ndarray, shown: Sequence[int], sizes: np.ndarray, name: Any, metric: str, top: int
) -> str:
    """``E[Dice]: liver 0.91, tumour 0.62`` for the ``top`` largest masks, in class order."""
    cand = [c for c in shown if np.isfinite(scores[c])]
    if not cand:
        return ""
    keep = sorted(sorted(cand, key=lambda c: -sizes[c])[:top])
    items = [f"{name(c)} {scores[c]:.2f}" for c in keep]
    if len(cand) > len(keep):
        items.append(f"+{len(cand) - len(keep)} more")
    lines = [", ".join(items[i : i + 2]) for i in range(0, len(items), 2)]
    return f"E[{metric}]: " + ",\n".join(lines)


def plot_case(
    probs: Any,
    *,
    labels_a: Any = None,
    labels_b: Any = None,
    info: Any = None,
    image: Any = None,
    window: str | tuple[float, float] | None = None,
    percentiles: tuple[float, float] = (1.0, 99.0),
    axis: int | str = 0,
    index: int | None = None,
    class_names: Sequence[str] | None = None,
    spacing: Sequence[float] | None = None,
    affine: Any = None,
    output_mode: str = "multiclass",
    names: Sequence[str] | None = None,
    metric: str = "Dice",
    top: int = 4,
    title: str | None = None,
    fig: FigureBase | None = None,
) -> FigureBase:
    """One case side by side: the image, argmax, RankSEG and what RankSEG changes.

    Four panels in a row, all of the same slice: the image (or, without one, the
    largest class probability per pixel), the decision ``labels_a`` (argmax), the
    decision ``labels_b`` (RankSEG) with the expected score of its classes in the
    title, and :func:`plot_difference` of the two (added, removed and relabelled
    pixels; its legend is the class key of all panels).  Classes keep one colour in
    every panel.

    Parameters
    ----------
    probs : array-like, shape (C, *spatial)
        The probabilities of one sample, 2-D ``(C, H, W)`` or 3-D ``(C, Z, Y, X)``.
    labels_a : array-like, optional
        The first decision (default: the argmax of ``probs`` in multiclass mode,
        ``probs > 0.5`` in multilabel mode): a label map ``(*spatial)`` or masks
        ``(C, *spatial)`` as in :func:`plot_difference`.
    labels_b : array-like, optional
        The second decision (default: :func:`rankseg.predict` of ``probs`` with
        ``return_info=True``, whose info then gives the scores).
    info : PredictInfo or array-like, optional
        The expected score of each class of ``labels_b``: the
        :class:`~rankseg.PredictInfo` of one sample (``score`` of shape ``(1, C)``)
        or ``C`` scores.  Without it (and with ``labels_b`` given) the title has no
        scores.
    image : array-like, optional
        The image ``(*spatial)`` shown in grey in the first panel and under the
        decisions; default: the largest class probability.
    window, percentiles, axis, index, spacing, affine
        As in :func:`plot_difference`; the default ``index`` is the slice with the
        most changed pixels (the middle one when the decisions agree).
    class_names : sequence of str, optional
        Name of each class (channel), as in :func:`plot_difference`.
    output_mode : {'multiclass', 'multilabel'}
        The kind of decisions (and of the default ``rankseg.predict``).
    names : sequence of str, optional
        Names of the two decisions (default: ``('argmax', 'RankSEG')``, in multilabel
        mode ``('p > 0.5', 'RankSEG')``).
    metric : str
        Metric name of the scores in the title (``E[Dice]``).
    top : int
        At most this many classes (the largest masks in the slice) have their score
        in the title; the others are counted (``+2 more``).
    title : str, optional
        Figure title (the slice of a volume is added to it).
    fig : matplotlib.figure.Figure or SubFigure, optional
        An empty Figure (or SubFigure, to place the case in a larger figure) to draw
        on (default: a new Figure).

    Returns
    -------
    matplotlib.figure.Figure or SubFigure
        The figure; ``fig.axes[:4]`` are the image, ``labels_a``, ``labels_b`` and the
        difference panel, ``fig.axes[4]`` holds the legend (the class key and the
        counts of :func:`plot_difference`).

    Raises
    ------
    ValueError
        If the shapes do not fit, for a malformed ``info`` or ``top < 1``, and the
        errors of :func:`plot_difference`.
    TypeError
        If ``fig`` is not a Figure, and as :func:`plot_difference`.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.plot import plot_case
    >>> rng = np.random.default_rng(0)
    >>> probs = rng.dirichlet([0.5, 0.5, 0.5], (24, 24)).transpose(2, 0, 1)
    >>> fig = plot_case(probs, class_names=["background", "liver", "tumour"])
    >>> [ax.get_title().split(chr(10))[0] for ax in fig.axes[:4]]
    ['max probability', 'argmax', 'RankSEG', 'RankSEG − argmax']
    >>> fig.axes[2].get_title().split(chr(10))[1].startswith("E[Dice]: liver 0.")
    True
    """
    mode = v.check_name(output_mode, "output_mode", ("multiclass", "multilabel"))
    p = np.asarray(probs)
    if p.ndim not in (3, 4) or p.dtype.kind not in "fiu" or p.shape[0] < 1:
        raise ValueError(
            "probs must be the probabilities of one sample, (C, H, W) or (C, Z, Y, X); "
            f"got shape {p.shape} and dtype {p.dtype}"
        )
    top = v.check_int(top, "top")
    if top < 1:
        raise ValueError(f"top must be >= 1; got {top}")
    if fig is not None and not isinstance(fig, FigureBase):
        raise TypeError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    nc, spatial = p.shape[0], p.shape[1:]
    if names is None:
        names = ("argmax" if mode == "multiclass" else "p > 0.5", "RankSEG")
    if labels_a is None:
        labels_a = p.argmax(axis=0) if mode == "multiclass" else p > 0.5
    if labels_b is None:
        from rankseg import predict

        out, got = predict(p[None], output_mode=mode, return_info=True)
        labels_b = out[0]
        info = got if info is None else info
    scores = _case_scores(info, nc)
    a, b = _label_inputs(labels_a, labels_b, mode)
    if (a.shape if mode == "multiclass" else a.shape[1:]) != spatial or (
        mode == "multilabel" and a.shape[0] != nc
    ):
        raise ValueError(
            f"the decisions have shape {a.shape}; expected "
            f"{spatial if mode == 'multiclass' else (nc, *spatial)} for probs {p.shape}"
        )
    # a sum of (three) arrays: an array, not sum()'s start value 0
    changed = cast(np.ndarray, sum(_changes(a, b, mode).values())).astype(bool)

    def busiest(ax_: int) -> int:
        per = changed.sum(axis=tuple(i for i in range(3) if i != ax_))
        return int(np.argmax(per)) if per.any() else spatial[ax_] // 2

    apply, sl = _slice_plan(spatial, axis, index, affine, spacing, busiest)
    if image is not None:
        img = np.asarray(image, dtype=np.float64)
        if img.shape != spatial:
            raise ValueError(f"image has shape {img.shape}; expected {spatial} like probs")
        back = apply(img)
        vmin, vmax = _display_range(back, window, percentiles)
        first = "image"
    else:
        _check_window(window)
        back = apply(p.max(axis=0).astype(np.float64))
        vmin, vmax = 0.0, 1.0
        first = "max probability"

    if class_names is not None:
        class_names = [str(n) for n in class_names]
        if len(class_names) < nc:
            raise ValueError(f"class_names has {len(class_names)} names for {nc} classes")

    def cname(c: int) -> str:
        return class_names[c] if class_names is not None else f"class {c}"

    if fig is None:
        ratio = min(2.0, max(0.4, sl.aspect * back.shape[0] / back.shape[1]))
        fig = Figure(figsize=(15.0, 2.9 * ratio + 1.3), layout="constrained")
    elif fig.axes:
        raise ValueError("fig must be empty (plot_case adds its panels)")
    axes = fig.subplots(1, 5, width_ratios=(1.0, 1.0, 1.0, 1.0, 0.6))
    shown = axes[0].imshow(
        back, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest", aspect=sl.aspect
    )
    if image is None:
        fig.colorbar(shown, ax=axes[0], shrink=0.7, location="left")
    axes[0].set_title(first, fontsize="medium")
    fg = range(1, nc) if mode == "multiclass" else range(nc)
    sizes = np.zeros(nc)
    for k, (lab, name) in enumerate(((a, names[0]), (b, names[-1]))):
        ax = axes[k + 1]
        seg = apply(lab)
        base = back if image is not None else np.full(back.shape, 0.2)
        lo, hi = (vmin, vmax) if image is not None else (0.0, 1.0)
        ax.imshow(base, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest", aspect=sl.aspect)
        fill = np.zeros(seg.shape[-2:] + (4,))
        alpha = _FILL_ALPHA if image is not None else 1.0
        for c in fg:
            mask = seg == c if mode == "multiclass" else seg[c]
            color = _class_color(c if mode == "multiclass" else c + 1)
            fill[mask] = matplotlib.colors.to_rgba(color, alpha)
            if k == 1:
                sizes[c] = mask.sum()
        ax.imshow(fill, interpolation="nearest", aspect=sl.aspect)
        label = name
        if k == 1 and scores is not None:
            shown_c = [c for c in fg if (b == c if mode == "multiclass" else b[c]).any()]
            text = _score_title(scores, shown_c, sizes, cname, metric, top)
            label = f"{name}\n{text}" if text else name
        ax.set_title(label, fontsize="medium")
    for ax in axes[:3]:
        ax.set_xticks([])
        ax.set_yticks([])
        _edge_letters(ax, sl.edges)
    plot_difference(
        a,
        b,
        image=image,
        window=window,
        percentiles=percentiles,
        axis=sl.axis if sl.axis is not None else 0,
        index=sl.index,
        class_names=class_names,
        spacing=spacing,
        affine=affine,
        output_mode=mode,
        names=names,
        ax=axes[3],
        title=f"{names[-1]} − {names[0]}",
    )
    old = axes[3].get_legend()  # the class key of every panel, in its own column
    axes[4].legend(
        handles=old.legend_handles,
        labels=[t.get_text() for t in old.get_texts()],
        loc="center left",
        fontsize="small",
        title=old.get_title().get_text(),
        title_fontsize="small",
        frameon=False,
    )
    old.remove()
    axes[4].set_axis_off()
    if sl.axis is not None:
        where = f"axis {sl.axis}, index {sl.index} of {spatial[sl.axis]}"
        where = f"{sl.plane} slice, {where}" if sl.plane else where
        fig.suptitle(f"{title}: {where}" if title else where)
    elif title:
        fig.suptitle(title)
    return fig
