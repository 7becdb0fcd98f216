"""Calibration metrics summed over cases: NLL, Brier score, top-label ECE and its curve.

Each case is measured by :mod:`rankseg.calibration` (``nll``, ``brier``,
``reliability_curve``) and the results are pooled with the case's number of counted
terms (pixels, or (pixel, class) entries for multilabel) as weight, so that the pooled
values are those of all cases' pixels together -- one case at a time in memory.
Used by ``rankseg calibrate`` (before -> after) and ``rankseg evaluate --probs``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from rankseg import io as rio
from rankseg.cli._common import Log, one_line

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class Pooled:
    """NLL, Brier score and the top-label reliability curve of several cases."""

    def __init__(self, mode: str, n_bins: int, ignore_index: int | None) -> None:
        self.mode = mode
        self.n_bins = n_bins
        self.ignore_index = ignore_index
        self.terms = 0
        self.nll_sum = 0.0
        self.brier_sum = 0.0
        self.bins = np.zeros((3, n_bins))  # count, sum of confidence, sum of hits

    def add(self, probs: Any, labels: Any) -> None:
        """Measure one case (a batch) and pool it."""
        self.pool(self.measure(probs, labels))

    def measure(self, probs: Any, labels: Any) -> tuple[Any, ...] | None:
        """Return what one case (a batch) adds to the pool, or None (every pixel void).

        :meth:`pool` adds it: measured on a cluster's worker and pooled here in case
        order, the sums are those of :meth:`add` in that order, to the last bit.
        """
        from rankseg import calibration as cal

        kw: dict[str, Any] = {"mode": self.mode, "ignore_index": self.ignore_index}
        conf, freq, count = cal.reliability_curve(
            probs, labels, kind="top-label", n_bins=self.n_bins, **kw
        )
        k = int(count.sum())
        if k == 0:  # every pixel void: nothing to pool
            return None
        nll = cal.nll(probs, labels, **kw) * k
        brier = cal.brier(probs, labels, **kw) * k
        return k, nll, brier, count, np.nan_to_num(conf) * count, np.nan_to_num(freq) * count

    def pool(self, part: tuple[Any, ...] | None) -> None:
        """Add the :meth:`measure` of one case."""
        if part is None:
            return
        k, nll, brier, count, conf, freq = part
        self.nll_sum += nll
        self.brier_sum += brier
        self.terms += k
        self.bins[0] += count
        self.bins[1] += conf
        self.bins[2] += freq

    def nll(self) -> float:
        """Return the pooled mean NLL."""
        return self.nll_sum / self.terms if self.terms else math.nan

    def brier(self) -> float:
        """Return the pooled Brier score."""
        return self.brier_sum / self.terms if self.terms else math.nan

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return the pooled reliability curve ``(confidence, frequency, count)`` per bin."""
        count = self.bins[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            conf = np.where(count > 0, self.bins[1] / count, np.nan)
            freq = np.where(count > 0, self.bins[2] / count, np.nan)
        return conf, freq, count.astype(np.int64)

    def ece(self) -> float:
        """Return the pooled top-label ECE, ``Σ n_b / N |frequency_b - confidence_b|``."""
        if not self.terms:
            return math.nan
        conf, freq, count = self.curve()
        gap = np.where(count > 0, np.abs(np.nan_to_num(freq) - np.nan_to_num(conf)), 0.0)
        return float((count * gap).sum() / count.sum())


def metrics_table(columns: dict[str, Pooled], n_bins: int) -> str:
    """Rows NLL, Brier, ECE; one column per pooled set (e.g. before / after)."""
    names = list(columns)
    lines = [f"{'':<26}" + "".join(f"{n:>10}" for n in names)]
    for label, get in (
        ("NLL", Pooled.nll),
        ("Brier", Pooled.brier),
        (f"ECE ({n_bins} bins, top-label)", Pooled.ece),
    ):
        lines.append(f"{label:<26}" + "".join(f"{get(columns[n]):>10.4f}" for n in names))
    return "\n".join(lines)


def save_reliability(path: str, curve: Any, mode: str, n_bins: int, label: str) -> None:
    """Draw the reliability diagram of ``curve`` into ``path`` (atomic)."""
    try:
        from rankseg.plot import plot_reliability
    except ImportError as exc:
        raise ImportError(
            f"the reliability diagram needs matplotlib (pip install 'rankseg-numba[plot]'): {exc}"
        ) from None
    ax = plot_reliability(curve=curve, mode=mode, kind="top-label", n_bins=n_bins, label=label)

    def write(tmp: Path) -> None:
        # plot_reliability draws on a Figure of its own (not a SubFigure)
        cast("Figure", ax.figure).savefig(
            tmp, dpi=120, bbox_inches="tight", format=tmp.suffix.lstrip(".") or None
        )

    rio.atomic_write(path, write)


class Calibration:
    """What ``rankseg evaluate --probs`` found: pooled metrics of the probability maps."""

    def __init__(self, pooled: Pooled, cases: int) -> None:
        self.pooled = pooled
        self.cases = cases

    def text(self) -> str:
        """Return the lines printed after the score table."""
        p = self.pooled
        return (
            f"calibration of the probabilities ({self.cases} case(s), {p.mode}, "
            f"{p.terms} {'pixels' if p.mode == 'multiclass' else '(pixel, class) entries'})\n"
            + metrics_table({"value": p}, p.n_bins)
        )

    def report_text(self) -> str:
        """Return the paragraph of the report."""
        p = self.pooled
        return (
            f"Probability maps of {self.cases} case(s) against the targets ({p.mode}; "
            f"{p.terms} counted {'pixels' if p.mode == 'multiclass' else 'entries'}). "
            "NLL and Brier score: lower is better; ECE: the mean gap between confidence and "
            "accuracy over equal-width confidence bins (0 for a calibrated model)."
            + (
                f" An ECE of {p.ece():.3f} is large: `rankseg calibrate` fits a temperature "
                "on validation cases."
                if p.ece() > 0.05
                else ""
            )
        )

    def report_table(self) -> tuple[list[str], list[list[str]]]:
        """Return the header and rows of the report's table."""
        p = self.pooled
        return (
            ["metric", "value"],
            [
                ["NLL", f"{p.nll():.4f}"],
                ["Brier score", f"{p.brier():.4f}"],
                [f"ECE ({p.n_bins} bins, top-label)", f"{p.ece():.4f}"],
            ],
        )

    def save_plot(self, path: str) -> None:
        """Write the reliability diagram."""
        p = self.pooled
        save_reliability(path, p.curve(), p.mode, p.n_bins, f"{self.cases} case(s)")


def mode_of(pm: Any, y_masks: bool) -> str:
    if pm.regions is not None or pm.probs.shape[1] == 1 or y_masks:
        return "multilabel"
    return "multiclass"


def calibration_of(
    args: argparse.Namespace, targets: dict[str, Path], failed: list[str], log: Log
) -> Calibration | None:
    """Pool the calibration metrics of ``--probs`` against the evaluated cases' targets.

    A probability map is paired with an evaluated case by case name; an unpaired map
    or case is a note, a map that cannot be read or does not fit its target an error
    line (``failed``).  The mode is multilabel for nnU-Net regions, one-channel maps
    and mask targets, else multiclass (taken from the first case).
    """
    from rankseg.cli._cases import target_like

    found = rio.find_inputs(args.probs)
    paired = [
        (p, fmt, targets[rio.case_name(p)]) for p, fmt in found if rio.case_name(p) in targets
    ]
    if len(found) == 1 and len(targets) == 1 and not paired:
        paired = [(found[0][0], found[0][1], next(iter(targets.values())))]
    if len(paired) < len(found):
        log.info(f"note: {len(found) - len(paired)} --probs map(s) with no evaluated case")
    if len(paired) < len(targets):
        log.info(f"note: {len(targets) - len(paired)} evaluated case(s) with no --probs map")
    pooled: Pooled | None = None
    n = 0
    for path, fmt, target in paired:
        try:
            pm = rio.load_probabilities(path, format=fmt)
            if pooled is None:
                masks = rio.load_labels(target).dtype == bool
                pooled = Pooled(mode_of(pm, masks), args.n_bins, args.ignore_index)
            y = target_like(pm, target, pooled.mode, args.ignore_index)
            pooled.add(pm.probs, y)
            n += 1
        except Exception as exc:
            failed.append(f"{path}: {one_line(exc)}")
            log.error(f"error: {failed[-1]}")
    if pooled is None or not pooled.terms:
        if paired:
            log.error("error: --probs: no probability map could be measured")
        else:
            failed.append(f"--probs {' '.join(args.probs)}: no map named like an evaluated case")
            log.error(f"error: {failed[-1]}")
        return None
    return Calibration(pooled, n)
