"""Expected and realized Dice (or IoU) of every solver against the threshold rules.

Usage::

    python benchmarks/accuracy.py [--metric dice] [--draws 20] [--seed 0] [--quick]

For each workload (the benchmark maps voc2d, ct3d and tumor3d of
:mod:`rankseg.datasets`, plus two with small objects: ``lesions``, 32 small blurry
lesions, and ``tiny2d``, 64 tiny soft 2-D objects), every solver of the metric and
the accuracy rule label the map, and two things are measured on the (sample, class)
rows that are not pruned (largest probability above 0.5, the same rows for every
solver; a pruned row gets an empty mask from every rule):

* **per-class masks** (``output_mode="multilabel"``; baseline ``p > 0.5``): the
  *expected* metric of each mask under the model -- exact, by the generating-function
  quadrature of :mod:`rankseg.kernels.exact` at the mask's volume (every mask here is
  the set of its row's largest probabilities) -- its shortfall ("regret") from the
  exact optimum, the share of rows where the solver picks the exact volume, and the
  metric *realized* against ``--draws`` ground truths drawn from the probabilities
  (:func:`rankseg.datasets.sample_truth`), with the paired gain over the baseline;
* **label maps** (``output_mode="multiclass"``, softmax workloads; baseline
  ``np.argmax``): the realized metric and its paired gain over argmax.

Realized scores are samplewise with ``0/0 := 0``, averaged over the rows, then over
the draws (``± 1 standard error`` over the draws).  No timing: the costs are in
``docs/performance.rst``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: use this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import math  # noqa: E402
import textwrap  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

import numpy as np  # noqa: E402

import rankseg  # noqa: E402
from rankseg._api import SOLVERS  # noqa: E402
from rankseg.datasets import ct3d, make_probs, sample_truth, tumor3d, voc2d  # noqa: E402
from rankseg.kernels.exact import (  # noqa: E402
    exact_dice_objective,
    exact_iou_objective,
    new_summary,
    row_summary,
)
from rankseg.metrics import samplewise_score  # noqa: E402

#: the accuracy rule of each output mode, the baseline of its table
BASELINE = {"multilabel": "p>0.5", "multiclass": "argmax"}
#: width of the report's prose lines
WIDTH = 88
#: rows whose largest probability is at most this are pruned (the default)
PRUNING_PROB = 0.5


def _tiny2d(shape: Sequence[int]) -> np.ndarray:
    return make_probs(shape, kind="sigmoid", sharpness=3.0, bias=-4.0, smoothness=1.5)


#: name -> (generator of a shape, full shape, quick shape, description)
WORKLOADS: dict[str, tuple[Callable[[Sequence[int]], np.ndarray], tuple, tuple, str]] = {
    "voc2d": (
        lambda s: voc2d(shape=s),
        (4, 21, 256, 256),
        (2, 21, 32, 32),
        "softmax: natural images",
    ),
    "ct3d": (
        lambda s: ct3d(shape=s),
        (1, 8, 64, 128, 128),
        (1, 4, 8, 16, 16),
        "softmax: CT organs",
    ),
    "tumor3d": (
        lambda s: tumor3d(shape=s),
        (1, 1, 96, 128, 128),
        (1, 1, 16, 16, 16),
        "sigmoid: one lesion",
    ),
    "lesions": (
        lambda s: tumor3d(shape=s),
        (32, 1, 16, 32, 32),
        (4, 1, 8, 8, 8),
        "tumor3d generator, small volumes",
    ),
    "tiny2d": (
        _tiny2d,
        (64, 1, 16, 16),
        (8, 1, 8, 8),
        "make_probs sigmoid, sharpness 3, bias -4",
    ),
}


def solvers_of(metric: str) -> list[str]:
    """The RankSEG solvers of ``metric``, default first."""
    return list(SOLVERS[metric])


def predict_masks(probs: np.ndarray, metric: str, output_mode: str) -> dict[str, np.ndarray]:
    """Baseline and every solver's output on ``probs``, by label."""
    out = {BASELINE[output_mode]: rankseg.predict(probs, metric="acc", output_mode=output_mode)}
    for solver in solvers_of(metric):
        out[solver] = rankseg.predict(probs, metric=metric, solver=solver, output_mode=output_mode)
    return out


def expected_scores(
    rows: np.ndarray, taus: dict[str, np.ndarray], metric: str
) -> dict[str, np.ndarray]:
    """Exact expected metric of the mask of the ``tau`` largest pixels of each row.

    ``rows`` is ``(n, d)``; ``taus`` maps a label to the ``(n,)`` volumes.  The
    objective is evaluated once per row over the band of volumes that occur.
    """
    kernel = exact_dice_objective if metric == "dice" else exact_iou_objective
    out = {k: np.empty(len(rows)) for k in taus}
    summary = new_summary()
    for i, row in enumerate(rows):
        q = np.sort(row.astype(np.float64))[::-1].copy()
        summary[:] = 0.0
        row_summary(q, summary)
        lo = min(int(t[i]) for t in taus.values())
        hi = max(int(t[i]) for t in taus.values())
        band = np.empty(hi - lo + 1)
        if kernel(q, summary, 0.0, lo, hi, band) != 0.0:  # pragma: no cover - whole row given
            raise RuntimeError("the exact objective asked for a longer prefix")
        for k, t in taus.items():
            out[k][i] = band[int(t[i]) - lo]
    return out


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    """Boolean masks ``(B, C, *S)`` of integer labels ``(B, *S)``."""
    shape = (1, classes) + (1,) * (labels.ndim - 1)
    return labels[:, None] == np.arange(classes).reshape(shape)


def realized(
    preds: dict[str, np.ndarray],
    truths: list[np.ndarray],
    active: np.ndarray,
    metric: str,
    classes: int,
) -> dict[str, np.ndarray]:
    """Per draw, the samplewise metric averaged over the active (sample, class) rows."""
    out = {k: np.empty(len(truths)) for k in preds}
    for n, truth in enumerate(truths):
        for k, pred in preds.items():
            score = samplewise_score(pred, truth, metric, num_classes=classes)
            out[k][n] = score.reshape(-1)[active].mean()
    return out


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean and its standard error (0 for a single value)."""
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return float(x.mean()), se


def evaluate(
    name: str, metric: str, draws: int, seed: int, quick: bool
) -> tuple[list[tuple], list[tuple], str]:
    """Both tables' rows for one workload, and a one-line description of it."""
    make, full, small, about = WORKLOADS[name]
    probs = make(small if quick else full)
    nb, nc = probs.shape[:2]
    rows = probs.reshape(nb * nc, -1)
    active = rows.max(axis=1) > PRUNING_PROB
    desc = f"{name} {probs.shape} ({about}): {int(active.sum())} of {nb * nc} rows not pruned"
    if not active.any():  # every rule gives empty masks: nothing to compare
        return [], [], desc

    masks = predict_masks(probs, metric, "multilabel")
    taus = {k: m.reshape(nb * nc, -1)[active].sum(axis=1) for k, m in masks.items()}
    expect = expected_scores(rows[active], taus, metric)
    best = expect["exact"]
    regret = {k: best - v for k, v in expect.items()}
    if min(r.min() for r in regret.values()) < -1e-12:  # pragma: no cover
        raise RuntimeError(f"{name}: a mask beats the exact optimum")

    labels = None
    if nc >= 2 and np.allclose(probs.sum(axis=1, dtype=np.float64), 1.0, atol=1e-3):
        labels = predict_masks(probs, metric, "multiclass")

    rng = np.random.default_rng(seed)
    truths = [sample_truth(probs, rng) for _ in range(draws)]
    as_masks = [one_hot(t, nc) if t.ndim == probs.ndim - 1 else t for t in truths]
    real = realized(masks, as_masks, active, metric, nc)
    base = real[BASELINE["multilabel"]]

    per_class = []
    for k in masks:
        per_class.append(
            (
                name,
                k,
                f"{expect[k].mean():.4f}",
                f"{regret[k].mean():.1e}",
                f"{regret[k].max():.1e}",
                f"{100 * np.mean(taus[k] == taus['exact']):.0f}",
                "{:.4f} ± {:.4f}".format(*mean_se(real[k])),
                "{:+.5f} ± {:.5f}".format(*mean_se(real[k] - base)),
            )
        )
    label_maps = []
    if labels is not None:
        truth_labels = [t for t in truths if t.ndim == probs.ndim - 1]
        real_mc = realized(labels, truth_labels, active, metric, nc)
        base = real_mc[BASELINE["multiclass"]]
        for k in labels:
            label_maps.append(
                (
                    name,
                    k,
                    "{:.4f} ± {:.4f}".format(*mean_se(real_mc[k])),
                    "{:+.5f} ± {:.5f}".format(*mean_se(real_mc[k] - base)),
                )
            )
    return per_class, label_maps, desc


def format_table(rows: list[tuple], header: tuple) -> list[str]:
    """Aligned text table: the first two columns left-aligned, the others right."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for i, row in enumerate([header, *rows]):
        cells = [
            str(v).ljust(w) if j < 2 else str(v).rjust(w)
            for j, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def report(metric: str, draws: int, seed: int, quick: bool, workloads: Sequence[str]) -> str:
    """Run every workload and return the report."""
    start = time.perf_counter()
    per_class, label_maps, descs = [], [], []
    for name in workloads:
        a, b, desc = evaluate(name, metric, draws, seed, quick)
        per_class += a
        label_maps += b
        descs.append(desc)
    m = metric.capitalize() if metric == "dice" else "IoU"
    lines = [
        *textwrap.wrap(
            f"rankseg {rankseg.__version__}, numpy {np.__version__}; metric {metric}, "
            f"smooth 0, pruning_prob {PRUNING_PROB}; {draws} ground truths per workload "
            f"drawn from the probabilities (seed {seed})",
            WIDTH,
        ),
        *(f"  {d}" for d in descs),
        "",
        *textwrap.wrap(
            f"Per-class masks (multilabel), mean over the rows not pruned.  E[{m}]: exact "
            "expected score under the model; regret: exact optimum minus E (mean, max); "
            "=exact: rows with the exact volume (%); realized: score against the drawn "
            "truths; gain: realized minus that of p>0.5, paired by draw.",
            WIDTH,
        ),
        "",
        *format_table(
            per_class,
            ("workload", "rule", f"E[{m}]", "regret", "max", "=exact", "realized", "gain"),
        ),
    ]
    if label_maps:
        lines += [
            "",
            *textwrap.wrap(
                f"Label maps (multiclass), mean over the same rows: realized {m} and its "
                "gain over np.argmax, paired by draw.",
                WIDTH,
            ),
            "",
            *format_table(label_maps, ("workload", "rule", "realized", "gain")),
        ]
    lines += ["", f"({time.perf_counter() - start:.0f} s)"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the accuracy report; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--metric", choices=("dice", "iou"), default="dice")
    parser.add_argument("--draws", type=int, default=20, help="ground truths (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the ground truths")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for smoke tests")
    args = parser.parse_args(argv)
    if args.draws < 2:
        parser.error("--draws must be at least 2")
    print(report(args.metric, args.draws, args.seed, args.quick, args.workloads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
