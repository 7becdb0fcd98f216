"""What ``rankseg evaluate`` computes beyond its table.

* :func:`nnunet_summary`: nnU-Net's ``summary.json`` (``--json``), the dictionary
  ``nnunetv2.evaluation.evaluate_predictions.compute_metrics_on_folder`` saves.
* :func:`read_info` and :func:`expected_vs_realized`: the expected scores of
  ``rankseg predict --info`` next to the realized ones (``--info``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankseg import io as rio
from rankseg.metrics import score_from_counts


@dataclass
class CaseCounts:
    """One evaluated case: its files, ``|P|, |T|, |P∩T|`` per class and its voxel count."""

    name: str
    pred: Path
    target: Path
    counts: np.ndarray  # (C, 3) int64
    voxels: int
    masks: bool


def _counts(case: CaseCounts, c: int) -> tuple[int, int, int, int]:
    """``TP, FP, FN, TN`` of class ``c`` (0 for a class beyond the case's labels)."""
    if c < case.counts.shape[0]:
        npred, nref, tp = (int(v) for v in case.counts[c])
    else:
        npred = nref = tp = 0
    fp, fn = npred - tp, nref - tp
    return tp, fp, fn, case.voxels - tp - fp - fn


def _nanmean(values: Sequence[float]) -> float:
    ok = [v for v in values if not math.isnan(v)]
    return sum(ok) / len(ok) if ok else math.nan


def nnunet_summary(cases: Sequence[CaseCounts], classes: Sequence[int], empty: str) -> dict:
    """nnU-Net's evaluation summary of the cases.

    The layout, keys and NaN rules of ``compute_metrics_on_folder`` in nnU-Net
    (``nnunetv2/evaluation/evaluate_predictions.py``): per case ``Dice``, ``IoU``,
    ``FP``, ``TP``, ``FN``, ``TN``, ``n_pred``, ``n_ref`` for each class; ``Dice``
    and ``IoU`` are NaN when ``TP + FP + FN = 0`` (``empty='nan'``; ``'one'`` and
    ``'zero'`` give that value instead); ``mean`` is the NaN-ignoring mean over
    cases of every entry, ``foreground_mean`` the plain mean over the classes
    other than 0 (NaN if one of them is NaN, as ``np.mean``).  For masks every
    channel is a foreground class.

    Parameters
    ----------
    cases : sequence of CaseCounts
        The evaluated cases, in order.
    classes : sequence of int
        The classes (labels, or mask channels) to list.
    empty : {'nan', 'one', 'zero', 'ignore'}
        Dice/IoU of a class absent from prediction and reference.

    Returns
    -------
    dict
        ``metric_per_case``, ``mean`` and ``foreground_mean``, with integer class keys
        (written as strings, as nnU-Net's ``save_summary_json`` does).
    """
    per_case: list[dict[str, Any]] = []
    for case in cases:
        metrics = {}
        for c in classes:
            tp, fp, fn, tn = _counts(case, c)
            # the metrics' own policy for empty pairs (rankseg.metrics.score_from_counts)
            counts = [tp + fp, tp + fn, tp]
            dice = float(score_from_counts(counts, "dice", empty))
            iou = float(score_from_counts(counts, "iou", empty))
            metrics[c] = {
                "Dice": dice,
                "IoU": iou,
                "FP": fp,
                "TP": tp,
                "FN": fn,
                "TN": tn,
                "n_pred": fp + tp,
                "n_ref": fn + tp,
            }
        per_case.append(
            {
                "prediction_file": str(case.pred),
                "reference_file": str(case.target),
                "metrics": metrics,
            }
        )
    names = ("Dice", "IoU", "FP", "TP", "FN", "TN", "n_pred", "n_ref")
    mean = {
        c: {m: _nanmean([float(p["metrics"][c][m]) for p in per_case]) for m in names}
        for c in classes
    }
    masks = any(case.masks for case in cases)
    fg = [c for c in classes if masks or c != 0]
    foreground_mean = {
        m: (sum(mean[c][m] for c in fg) / len(fg) if fg else math.nan) for m in names
    }
    return {"metric_per_case": per_case, "mean": mean, "foreground_mean": foreground_mean}


def summary_json_text(summary: dict) -> str:
    """Return the summary as nnU-Net's ``save_summary_json`` writes it (string keys, NaN)."""

    def keyed(d: dict) -> dict:
        return {str(k): v for k, v in d.items()}

    out = {
        "metric_per_case": [
            dict(p, metrics=keyed(p["metrics"])) for p in summary["metric_per_case"]
        ],
        "mean": keyed(summary["mean"]),
        "foreground_mean": summary["foreground_mean"],
    }
    return json.dumps(out, sort_keys=True, indent=4) + "\n"


# ------------------------------------------------------------ expected vs realized


def read_info(paths: Sequence[str | os.PathLike[str]]) -> dict[tuple[str, int], tuple[float, bool]]:
    """Read ``rankseg predict --info`` tables: ``(case, class) -> (score, pruned)``.

    Raises
    ------
    ValueError
        For a file that is not such a table (the header and the line are named), or
        a (case, class) that two rows give.
    FileNotFoundError
        For a file that does not exist.
    """
    from rankseg.cli._predict import INFO_COLUMNS

    out: dict[tuple[str, int], tuple[float, bool]] = {}
    where: dict[tuple[str, int], str] = {}
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"--info {p}: no such file")
        with open(p, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header) != INFO_COLUMNS:
                raise ValueError(
                    f"--info {p}: not a `rankseg predict --info` table; expected the header "
                    f"{','.join(INFO_COLUMNS)}, got {','.join(header or ['(empty file)'])}"
                )
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    case, c, score, pruned = row[0], int(row[1]), float(row[4]), row[5]
                    if pruned not in ("True", "False"):
                        raise ValueError(pruned)
                except (IndexError, ValueError):
                    raise ValueError(
                        f"--info {p}, line {line}: expected {len(INFO_COLUMNS)} values "
                        f"({','.join(INFO_COLUMNS)}); got {','.join(row)}"
                    ) from None
                key = (case, c)
                if key in out:
                    raise ValueError(
                        f"--info {p}, line {line}: case {case} class {c} is also in "
                        f"{where[key]} (give each case once)"
                    )
                out[key] = (score, pruned == "True")
                where[key] = str(p)
    return out


@dataclass
class Agreement:
    """How close the expected scores are to the realized ones (finite pairs only)."""

    pairs: int
    expected: float
    realized: float
    mae: float
    bias: float  # mean of expected - realized
    corr: float  # Pearson; NaN for fewer than 2 pairs or no spread


def agreement(expected: np.ndarray, realized: np.ndarray) -> Agreement:
    """Compare two arrays of scores, leaving out pairs where either is NaN."""
    e = np.asarray(expected, dtype=np.float64).ravel()
    r = np.asarray(realized, dtype=np.float64).ravel()
    ok = np.isfinite(e) & np.isfinite(r)
    e, r = e[ok], r[ok]
    n = int(e.size)
    if n == 0:
        return Agreement(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    corr = math.nan
    if n >= 2 and e.std() > 0 and r.std() > 0:
        corr = float(np.corrcoef(e, r)[0, 1])
    return Agreement(
        n,
        float(e.mean()),
        float(r.mean()),
        float(np.abs(e - r).mean()),
        float((e - r).mean()),
        corr,
    )


@dataclass
class ExpectedRealized:
    """The pairing of ``--info`` scores with the evaluated ones."""

    rows: list[tuple[str, int, float, float]]  # case, class, expected (NaN: none), realized
    per_class: dict[int, Agreement]
    overall: Agreement
    cases_without_info: list[str]
    unused_info_cases: int


def expected_vs_realized(
    info: dict[tuple[str, int], tuple[float, bool]],
    names: Sequence[str],
    scores: np.ndarray,
    classes: Sequence[int],
) -> ExpectedRealized:
    """Pair the expected score of each (case, class) with the realized one.

    Parameters
    ----------
    info : dict
        From :func:`read_info`.
    names : sequence of str
        Case names of the rows of ``scores``.
    scores : ndarray, shape (cases, C)
        Realized scores (NaN where undefined).
    classes : sequence of int
        The classes compared.
    """
    rows = []
    without: list[str] = []
    for i, name in enumerate(names):
        if not any((name, c) in info for c in classes):
            without.append(name)
        for c in classes:
            exp = info.get((name, c), (math.nan, False))[0]
            rows.append((name, c, exp, float(scores[i, c])))
    arr = np.array([(r[1], r[2], r[3]) for r in rows], dtype=np.float64).reshape(-1, 3)
    per_class = {c: agreement(arr[arr[:, 0] == c, 1], arr[arr[:, 0] == c, 2]) for c in classes}
    known = set(names)
    unused = len({case for case, _ in info if case not in known})
    return ExpectedRealized(rows, per_class, agreement(arr[:, 1], arr[:, 2]), without, unused)


def _fmt(x: float, digits: int = 4) -> str:
    return "nan" if math.isnan(x) else f"{x:.{digits}f}"


def agreement_table(er: ExpectedRealized, metric: str) -> str:
    """Return the per-class lines printed by ``rankseg evaluate --info``."""
    lines = [
        f"expected vs realized {metric} (expected: rankseg predict --info score)",
        f"{'class':>6} {'pairs':>6} {'expected':>9} {'realized':>9} {'MAE':>8} {'bias':>8} "
        f"{'corr':>7}",
    ]
    for label, a in [*er.per_class.items(), ("all", er.overall)]:
        lines.append(
            f"{label!s:>6} {a.pairs:>6} {_fmt(a.expected):>9} {_fmt(a.realized):>9} "
            f"{_fmt(a.mae):>8} {_fmt(a.bias):>8} {_fmt(a.corr, 3):>7}"
        )
    if er.cases_without_info:
        shown = ", ".join(er.cases_without_info[:5])
        more = (
            f" and {len(er.cases_without_info) - 5} more" if len(er.cases_without_info) > 5 else ""
        )
        lines.append(f"({len(er.cases_without_info)} case(s) with no --info row: {shown}{more})")
    return "\n".join(lines)


def atomic_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    rio.atomic_write(path, lambda tmp: tmp.write_text(text))
