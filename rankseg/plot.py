"""Pictures of RankSEG decisions (needs matplotlib: ``pip install 'rankseg[plot]'``).

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
writes it.  No global matplotlib state (backend, style) is changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import matplotlib
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
except ImportError as exc:  # pragma: no cover - matplotlib is in the test extra
    raise ImportError("rankseg.plot needs matplotlib: pip install 'rankseg[plot]'") from exc

from rankseg import _validation as v

__all__ = [
    "CURVE_SOLVERS",
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
    return matplotlib.colormaps["tab10"](c % 10)


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
) -> Axes:
    """Draw the contours of one or two segmentations over a 2-D slice.

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

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    Raises
    ------
    ValueError
        If the shapes do not fit.
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
    handles = []
    for labels, style, name in ((labels_a, "solid", names[0]), (labels_b, "dashed", names[-1])):
        if labels is None:
            continue
        for c, mask in _as_masks(labels, name, img.shape).items():
            if mask.any() and not mask.all():
                ax.contour(
                    *_contour_grid(mask),
                    levels=[0.5],
                    colors=[_class_color(c)],
                    linestyles=style,
                    linewidths=1.2,
                )
        handles.append(Line2D([], [], color="black", linestyle=style, label=name))
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
    ax : matplotlib.axes.Axes, optional
        Where to draw (default: a new Figure).

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    Raises
    ------
    ValueError
        If the shapes differ or ``class_names`` has the wrong length.
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
    colors = ["C2" if m >= 0 else "C3" for m in np.nan_to_num(mean)]
    ax.bar(x, np.nan_to_num(mean), yerr=se, color=colors, capsize=3)
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
        [np.asarray(p.get_data().values, dtype=np.float64) for p in counts_ax.patches]
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
