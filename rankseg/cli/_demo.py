"""``rankseg demo``: argmax vs every available RankSEG solver on a generated volume."""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np

from rankseg import io as rio
from rankseg._api import RankSEG


def _rma_estimate(probs: np.ndarray, labels: np.ndarray, metric: str) -> np.ndarray:
    """RMA estimate of E[metric] of each class of a label map, shape (B, C)."""
    nb, nc = probs.shape[:2]
    out = np.zeros((nb, nc))
    for b in range(nb):
        for c in range(nc):
            p = probs[b, c].astype(np.float64, copy=False)
            mask = labels[b] == c
            mu = float(p.sum())
            tau = int(mask.sum())
            s = float(p[mask].sum())
            if tau == 0:
                continue
            out[b, c] = 2 * s / (mu + tau + 1) if metric == "dice" else s / (mu - s + tau)
    return out


def run_demo(
    spatial: Sequence[int],
    classes: int,
    *,
    seed: int,
    draws: int,
    repeat: int,
    plot: str | os.PathLike[str] | None,
    solvers: Callable[[str], Sequence[str]],
    progress: Callable[[str], None] | None = None,
) -> str:
    """Run the demo for :func:`rankseg.cli.demo` (see it for the parameters and the report).

    Parameters
    ----------
    spatial, classes, seed, draws, repeat, plot
        As in :func:`rankseg.cli.demo`.
    solvers : callable
        ``solvers(metric)`` lists the solvers of ``'dice'`` / ``'iou'`` to run
        (:func:`rankseg.cli.available_solvers`, looked up when the demo runs).
    progress : callable, optional
        Called with a line saying what the demo is doing, step by step (the
        command prints these to stderr).

    Returns
    -------
    str
        The report table.

    Raises
    ------
    ValueError
        For a shape, class count, draw or repeat count out of range.
    """
    from rankseg.datasets import make_probs, sample_truth
    from rankseg.metrics import dice_score, iou_score

    spatial = tuple(int(s) for s in spatial)
    if not spatial or min(spatial) < 1:
        raise ValueError(f"spatial shape must have sizes >= 1; got {spatial}")
    if classes < 2 or draws < 2 or repeat < 1:
        raise ValueError("need classes >= 2, draws >= 2 and repeat >= 1")
    say = progress if progress is not None else (lambda line: None)
    shape = (1, classes, *spatial)
    say(f"rankseg demo: a softmax volume {shape} (float32, seed {seed})")
    bias = np.zeros(classes, dtype=np.float32)
    bias[0] = 4.0  # a dominant background, organs/lesions as foreground classes
    probs = make_probs(shape, kind="softmax", smoothness=5.0, sharpness=3.0, bias=bias, seed=seed)
    methods: dict[str, Callable[[], np.ndarray]] = {"argmax": lambda: np.argmax(probs, axis=1)}
    for metric in ("dice", "iou"):
        for solver in solvers(metric):
            model = RankSEG(metric=metric, solver=solver)
            methods[f"rankseg {metric} ({solver})"] = functools.partial(model.predict, probs)
    labels = {}
    for name, fn in methods.items():  # the first call also compiles / loads the JIT cache
        t0 = time.perf_counter()
        labels[name] = fn()
        say(f"  {name}: first call {time.perf_counter() - t0:.2f} s")
    say(f"timing {repeat} interleaved rounds of {len(methods)} methods")
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeat):  # interleaved, so every method sees the same machine load
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    t_argmax = float(np.median(times["argmax"]))
    ratios = {name: float(np.median(t)) / t_argmax for name, t in times.items()}
    say(f"scoring against {draws} ground truths drawn from the probabilities")
    rng = np.random.default_rng(seed + 1)
    realized: dict[str, dict[str, list[np.ndarray]]] = {n: {"dice": [], "iou": []} for n in methods}
    for _ in range(draws):
        truth = sample_truth(probs, rng, kind="softmax")
        for name, lab in labels.items():
            realized[name]["dice"].append(dice_score(lab, truth, num_classes=classes)[0, 1:])
            realized[name]["iou"].append(iou_score(lab, truth, num_classes=classes)[0, 1:])

    def fmt(per_draw: list[np.ndarray]) -> str:
        a = np.array([np.nanmean(x) if np.any(~np.isnan(x)) else np.nan for x in per_draw])
        a = a[~np.isnan(a)]
        if a.size == 0:
            return "n/a"
        se = a.std(ddof=1) / math.sqrt(a.size) if a.size > 1 else math.nan
        return f"{a.mean():.4f} ± {se:.4f}"

    expected = {
        name: {m: float(_rma_estimate(probs, lab, m)[0, 1:].mean()) for m in ("dice", "iou")}
        for name, lab in labels.items()
    }
    w = max(len(n) for n in methods) + 2
    lines = [
        f"rankseg demo: softmax volume {shape} (float32, seed {seed}), {draws} ground truths "
        "drawn from the probabilities",
        f"means over the {classes - 1} foreground classes; E[.]: RMA estimate of the expected "
        "score under the model;",
        f"realized: against the drawn truths (mean ± s.e. over draws); time: median of {repeat} "
        f"runs / np.argmax ({t_argmax * 1e3:.1f} ms)",
        "",
        f"{'method':<{w}}{'E[Dice]':>9}{'E[IoU]':>9}{'Dice':>18}{'IoU':>18}{'time/argmax':>13}",
    ]
    for name in methods:
        lines.append(
            f"{name:<{w}}{expected[name]['dice']:>9.4f}{expected[name]['iou']:>9.4f}"
            f"{fmt(realized[name]['dice']):>18}{fmt(realized[name]['iou']):>18}"
            f"{ratios[name]:>12.2f}x"
        )
    if plot is not None:
        best = next((n for n in methods if n.startswith("rankseg dice")), None)
        if best is not None:
            solver = best[best.index("(") + 1 : -1]
            lab_b, info = RankSEG(metric="dice", solver=solver).predict(probs, return_info=True)
            _demo_plot(
                plot,
                probs,
                labels["argmax"],
                lab_b,
                info.score[0],
                best,
                np.array(realized["argmax"]["dice"]),
                np.array(realized[best]["dice"]),
            )
            lines += ["", f"plot written to {plot}"]
    return "\n".join(lines)


def _demo_plot(
    path: str | os.PathLike[str],
    probs: np.ndarray,
    lab_a: np.ndarray,
    lab_b: np.ndarray,
    scores: np.ndarray,
    name_b: str,
    dice_a: np.ndarray,
    dice_b: np.ndarray,
) -> Any:
    """Where the decision changed (the most changed slice) over the per-class Dice gains.

    Writes the figure to ``path`` and returns it.
    """
    from matplotlib.figure import Figure

    from rankseg.plot import class_color, plot_case, plot_gains

    p = probs[0]
    a, b = lab_a[0], lab_b[0]
    fixed: list[str] = []
    while p.ndim > 4:  # the middle of the leading spatial axes: a 3-D volume remains
        mid = p.shape[1] // 2
        fixed.append(f"axis {len(fixed)} index {mid} of {p.shape[1]}")
        p, a, b = p[:, mid], a[mid], b[mid]
    if p.ndim == 2:  # 1-D signals: one row
        p, a, b = p[:, None, :], a[None, :], b[None, :]
    nc = p.shape[0]
    fig = Figure(figsize=(15.0, 8.0), layout="constrained")
    # 2 x 1 subfigures: an array (matplotlib types it as SubFigure | ndarray)
    top, bottom = cast(np.ndarray, fig.subfigures(2, 1, height_ratios=(1.35, 1.0)))
    title = f"demo volume {probs.shape[2:]}, {name_b} vs argmax"
    if fixed:
        title += " (" + ", ".join(fixed) + ")"
    names = ["background"] + [f"class {c}" for c in range(1, nc)]
    plot_case(p, labels_a=a, labels_b=b, info=scores, class_names=names, title=title, fig=top)
    for ax in top.axes[:4]:
        if ax.images:
            ax.set_aspect("auto" if min(ax.images[0].get_array().shape) == 1 else "equal")
    ax2 = bottom.subplots(1, 3, width_ratios=(0.5, 1.0, 0.5))[1]
    bottom.axes[0].set_axis_off()
    bottom.axes[2].set_axis_off()
    plot_gains(
        dice_a,
        dice_b,
        names=("argmax", name_b),
        class_names=names[1:],
        colors=[class_color(c) for c in range(1, nc)],
        ax=ax2,
    )
    ax2.set_title(
        f"Dice gain per class, whole volume (mean ± s.e. over {dice_a.shape[0]} drawn truths)"
    )
    rio.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    return fig
