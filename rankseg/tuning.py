"""Tune RankSEG on labelled validation cases: calibration, presence, pruning (SPEC §8).

RankSEG maximizes the *expected* Dice/IoU under the model's probabilities, so its gain
is only as good as those probabilities and depends on how the user's benchmark scores
an (image, class) whose truth is empty.  :func:`tune` fits, on validation cases with
labels,

* a temperature (:class:`rankseg.calibration.TemperatureScaling`, by NLL) and a factor
  around it chosen by the realized validation metric;
* how a class is judged present (``pruning_prob``, the ``'argmax'`` rule or, under
  ``empty='one'``, a :class:`PresenceModel`);

to maximize the *realized* validation metric under the stated ``empty=`` convention,
and estimates the result by cross-validation over cases (each fold's choice is made on
the other folds), side by side with argmax and with a tuned baseline on the same folds:
a global threshold (binary), per-class thresholds (multilabel) or per-class biases on the
log-probabilities (multiclass).  The result, :class:`TunedRankSEG`, is picklable, has
``predict(probs)`` and saves to JSON.

See docs/calibration.rst.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rankseg import _validation as v
from rankseg._api import RankSEG
from rankseg._policies import EMPTY_CONVENTIONS, OUTPUT_MODES
from rankseg._presence import PresenceModel, presence_features
from rankseg._textfile import write_text_atomic

__all__ = [
    "PresenceModel",
    "TunedRankSEG",
    "TuningReport",
    "case_scores",
    "fit_presence",
    "mean_score",
    "paired_bootstrap",
    "tune",
]

#: factors applied to the NLL temperature; the realized validation metric picks one
TEMPERATURE_FACTORS = (0.8, 0.9, 1.0, 1.1, 1.25)
#: a factor other than 1 replaces the NLL temperature only when the realized
#: validation score gains more than this (0.1 Dice/IoU points)
FACTOR_MARGIN = 1e-3
#: the ``pruning_prob`` values tried (with the ``'argmax'`` rule and, for
#: ``empty='one'``, the presence model)
PRUNING_GRID = (0.0, 0.25, 0.5)
#: fewest present and absent validation rows to fit a presence model from
MIN_PRESENCE_ROWS = 5
_FORMAT = "rankseg-tuned"


# --------------------------------------------------------------------------- scoring


def _check_pair(probs: np.ndarray, labels: np.ndarray, mode: str, ignore_index: int | None) -> None:
    """Shapes, label values and finiteness of one batch of validation cases."""
    nb, nc = probs.shape[:2]
    want = probs.shape if mode == "multilabel" else (nb, *probs.shape[2:])
    if labels.shape != want:
        raise ValueError(
            f"labels of shape {labels.shape} do not match probabilities of shape "
            f"{probs.shape}; expected labels of shape {want} ({mode})"
        )
    if labels.dtype.kind not in "iub":
        raise TypeError(f"labels must be integers; got dtype {labels.dtype}")
    hi = 2 if mode == "multilabel" else nc
    for b in range(nb):
        lab = labels[b]
        bad = (lab < 0) | (lab >= hi)
        if ignore_index is not None:
            bad &= lab != ignore_index
            if (lab == ignore_index).all():
                raise ValueError(
                    f"case {b}: every pixel is ignore_index={ignore_index}; a case needs "
                    "labelled pixels"
                )
        if bad.any():
            val = lab[bad].flat[0]
            raise ValueError(
                f"case {b}: label {val} outside [0, {hi})"
                + ("" if ignore_index is None else f" and not ignore_index={ignore_index}")
                + f"; expected {'0/1 per class' if mode == 'multilabel' else 'class indices'}"
            )
        if not np.isfinite(probs[b]).all():
            raise ValueError(f"case {b}: probabilities contain NaN or inf")


def case_scores(
    pred: Any,
    labels: Any,
    *,
    num_classes: int,
    metric: str = "dice",
    empty: str = "zero",
    output_mode: str = "multiclass",
    ignore_index: int | None = None,
    include_background: bool = True,
) -> np.ndarray:
    """Per (case, class) Dice or IoU under an ``empty=`` convention, void pixels left out.

    Parameters
    ----------
    pred : array-like
        Label maps ``(B, *spatial)`` (multiclass) or boolean masks ``(B, C, *spatial)``.
    labels : array-like
        The truth, of the same layout; ``ignore_index`` marks void pixels, which count
        for neither prediction nor truth.
    num_classes : int
        Number of classes C.
    metric : {'dice', 'iou'}
        The score.
    empty : {'zero', 'one', 'ignore'}
        Score of a pair with an empty truth: 0; 1 if the prediction is empty too, else
        0; NaN (left out of means).
    output_mode : {'multiclass', 'multilabel'}
        Layout of ``pred`` and ``labels``.
    ignore_index : int, optional
        Void label.
    include_background : bool
        False drops class 0.

    Returns
    -------
    ndarray of float64, shape (B, C) or (B, C - 1)
        Scores; NaN where the convention leaves the pair out.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.tuning import case_scores
    >>> pred = np.array([[0, 1, 1, 0]]); truth = np.array([[0, 1, 0, 0]])
    >>> case_scores(pred, truth, num_classes=3, empty="one")
    array([[0.8       , 0.66666667, 1.        ]])
    """
    empty = v.check_name(empty, "empty", EMPTY_CONVENTIONS)
    output_mode = v.check_name(output_mode, "output_mode", OUTPUT_MODES)
    pred = np.asarray(pred)
    lab = np.asarray(labels)
    if ignore_index is not None:
        void = lab == ignore_index
        if output_mode == "multiclass":
            pred = np.where(void, -1, pred)
            lab = np.where(void, -1, lab)
        else:
            pred = pred.astype(bool) & ~void
            lab = (lab == 1) & ~void
    if output_mode == "multilabel":
        pred, lab = pred.astype(bool), lab.astype(bool)
    from rankseg.metrics import dice_score, iou_score  # numba: imported at first use

    fn = dice_score if metric == "dice" else iou_score
    policy = {"zero": "zero", "one": "one", "ignore": "ignore"}[empty]
    kw: dict[str, Any] = {"num_classes": num_classes} if output_mode == "multiclass" else {}
    return fn(pred, lab, include_background=include_background, empty=policy, **kw)


def mean_score(scores: np.ndarray) -> float:
    """Mean over classes of each class's mean over cases (NaN pairs left out).

    Parameters
    ----------
    scores : ndarray, shape (B, C)
        From :func:`case_scores`.

    Returns
    -------
    float
        The benchmark figure; classes without any scored pair are left out (NaN when
        none is scored).

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.tuning import mean_score
    >>> mean_score(np.array([[1.0, np.nan], [0.5, 0.2]]))
    0.475
    """
    s = np.asarray(scores, dtype=np.float64)
    counted = ~np.isnan(s)
    n = counted.sum(axis=0)
    per_class = np.where(counted, s, 0.0).sum(axis=0) / np.maximum(n, 1)
    return float(per_class[n > 0].mean()) if (n > 0).any() else math.nan


def paired_bootstrap(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    stat: Callable[[np.ndarray], float] = mean_score,
) -> tuple[float, float, float]:
    """Difference ``stat(a) - stat(b)`` and its paired bootstrap CI over cases.

    Parameters
    ----------
    a, b : ndarray, shape (B, C)
        Per (case, class) scores of two rules on the same cases.
    n_boot : int
        Bootstrap resamples of the cases.
    seed : int
        Seed of the resampling.
    level : float
        Confidence level of the percentile interval.
    stat : callable
        The aggregate (default :func:`mean_score`).

    Returns
    -------
    tuple of float
        ``(difference, low, high)``.

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg.tuning import paired_bootstrap
    >>> a = np.array([[0.9], [0.8], [0.7]]); b = a - 0.1
    >>> [round(x, 6) for x in paired_bootstrap(a, b)]
    [0.1, 0.1, 0.1]
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape; got {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    nb = a.shape[0]
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, nb, nb)
        diffs[i] = stat(a[idx]) - stat(b[idx])
    lo, hi = np.nanquantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return stat(a) - stat(b), float(lo), float(hi)


# --------------------------------------------------------------------------- presence


def _features(probs: np.ndarray, output_mode: str) -> np.ndarray:
    """Presence features of every (case, class) row, as ``RankSEG.predict`` computes them."""
    nb, nc = probs.shape[:2]
    rows = probs.reshape(nb * nc, -1)
    pmax = np.array([r.max() for r in rows], dtype=np.float64)
    mass = np.array([r.sum(dtype=np.float64) for r in rows])
    if output_mode == "multiclass":
        flat = probs.reshape(nb, nc, -1)
        wins = np.concatenate([np.bincount(f.argmax(axis=0), minlength=nc) for f in flat])
    else:
        wins = np.array([np.count_nonzero(r > 0.5) for r in rows])
    return presence_features(rows, pmax, mass, wins)


def _present(labels: np.ndarray, nc: int, output_mode: str) -> np.ndarray:
    """Whether each (case, class) has a pixel in the truth, shape (B*C,)."""
    nb = labels.shape[0]
    if output_mode == "multiclass":
        flat = labels.reshape(nb, -1)
        return np.stack([np.isin(np.arange(nc), f) for f in flat]).reshape(-1)
    return (labels.reshape(nb, nc, -1) == 1).any(axis=2).reshape(-1)


def fit_presence(
    probs: Any,
    labels: Any,
    *,
    output_mode: str = "multiclass",
    ignore_index: int | None = None,
    l2: float = 1e-3,
) -> PresenceModel:
    """Fit a :class:`PresenceModel` on validation cases.

    Parameters
    ----------
    probs : array-like, shape (B, C, *spatial)
        Validation probabilities (calibrated ones, if the model is used after a
        calibration).
    labels : array-like
        Their truth: ``(B, *spatial)`` class indices (multiclass) or ``(B, C, *spatial)``
        0/1 (multilabel); ``ignore_index`` pixels are void.
    output_mode : {'multiclass', 'multilabel'}
        Layout of ``labels``.
    ignore_index : int, optional
        Void label.
    l2 : float
        Ridge penalty (see :class:`PresenceModel`).

    Returns
    -------
    PresenceModel
        Fitted.

    Raises
    ------
    ValueError
        If the labels are invalid, or every class is present in every case (or absent
        from every case): validation then holds nothing to learn absence from.
    """
    output_mode = v.check_name(output_mode, "output_mode", OUTPUT_MODES)
    p = np.asarray(probs)
    lab = np.asarray(labels)
    _check_pair(p, lab, output_mode, ignore_index)
    return PresenceModel(l2).fit(_features(p, output_mode), _present(lab, p.shape[1], output_mode))


# --------------------------------------------------------------------------- the tuned rule


@dataclass
class TuningReport:
    """Cross-validated comparison of the rules :func:`tune` considered.

    Attributes
    ----------
    metric, output_mode, empty : str
        What was tuned for.
    n_cases, folds : int
        Validation cases and cross-validation folds.
    rows : list of dict
        One per rule: ``rule``, ``score`` (the cross-validated mean score),
        ``diff_vs_argmax``, ``ci_low``, ``ci_high`` (paired bootstrap over cases).
    chosen : dict
        The parameters of the final rule (fitted on every validation case).
    notes : list of str
        What the tuning could not do (e.g. no absent class in validation to fit a
        presence model from).
    """

    metric: str
    output_mode: str
    empty: str
    n_cases: int
    folds: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    chosen: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_markdown(self) -> str:
        """Return the report as a Markdown table.

        Returns
        -------
        str
            A heading, one table row per rule and the chosen parameters.
        """
        name = "Dice" if self.metric == "dice" else "IoU"
        lines = [
            f"Cross-validated {name} ({self.folds} folds over {self.n_cases} cases, "
            f"empty={self.empty!r}, {self.output_mode})",
            "",
            f"| rule | mean {name} | vs argmax | 95 % CI |",
            "|---|---|---|---|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r['rule']} | {100 * r['score']:.2f} | {100 * r['diff_vs_argmax']:+.2f} | "
                f"[{100 * r['ci_low']:+.2f}, {100 * r['ci_high']:+.2f}] |"
            )
        lines += ["", f"chosen: {self.chosen}"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


class TunedRankSEG:
    """A RankSEG rule tuned on validation cases: calibration, then the decision.

    Made by :func:`tune`; picklable; :meth:`save`/:meth:`load` JSON.

    Parameters
    ----------
    metric, output_mode, empty, solver : str
        As for :class:`rankseg.RankSEG`.
    calibration : TemperatureScaling, VectorScaling or None
        The fitted calibration applied before deciding (None: none).
    pruning_prob : float or None
        The presence rule when it is a threshold on the maximum probability.
    presence : None, 'argmax' or PresenceModel
        The presence rule otherwise.
    report : TuningReport, optional
        How the tuning went.
    """

    def __init__(
        self,
        metric: str,
        output_mode: str,
        empty: str,
        solver: str = "rma",
        *,
        calibration: Any = None,
        pruning_prob: float | None = None,
        presence: Any = None,
        report: TuningReport | None = None,
    ) -> None:
        self.metric = metric
        self.output_mode = output_mode
        self.empty = empty
        self.solver = solver
        self.calibration = calibration
        self.pruning_prob = pruning_prob
        self.presence = presence
        self.report = report
        self.model = RankSEG(
            metric,
            output_mode=output_mode,
            solver=solver,
            pruning_prob=pruning_prob,
            empty=empty,
            presence=presence,
        )

    @property
    def temperature(self) -> float | None:
        """The calibration's temperature (None without a temperature calibration)."""
        return getattr(self.calibration, "temperature_", None)

    def calibrate(self, probs: Any) -> np.ndarray:
        """Return the probabilities after the tuned calibration (``probs`` when none).

        Parameters
        ----------
        probs : array-like, shape (B, C, *spatial)
            Probabilities.

        Returns
        -------
        ndarray
            Calibrated probabilities (a new array), or ``probs`` unchanged.
        """
        if self.calibration is None:
            return probs
        return self.calibration.transform(probs)

    def predict(
        self, probs: Any, *, return_info: bool = False, dtype: Any = None, out: Any = None
    ) -> Any:
        """Calibrate, then decide as :meth:`rankseg.RankSEG.predict`.

        Parameters
        ----------
        probs : array-like, shape (B, C, *spatial)
            Uncalibrated probabilities, as the model gave them.
        return_info : bool
            Also return a :class:`rankseg.PredictInfo` (its scores are expectations
            under the calibrated probabilities).
        dtype : integer dtype, optional
            Label map dtype (multiclass).
        out : ndarray, optional
            Preallocated output.

        Returns
        -------
        ndarray, or a tuple with a PredictInfo
            Labels or masks.
        """
        return self.model.predict(
            self.calibrate(probs), return_info=return_info, dtype=dtype, out=out
        )

    __call__ = predict

    def to_dict(self) -> dict[str, Any]:
        """Return the tuned rule as JSON-serialisable values (with the report).

        Returns
        -------
        dict
            ``format``, ``version`` and the parameters.
        """
        presence = self.presence
        if presence is not None and not isinstance(presence, str):
            presence = {"model": presence.to_dict()}
        rep = self.report
        return {
            "format": _FORMAT,
            "version": 1,
            "metric": self.metric,
            "output_mode": self.output_mode,
            "empty": self.empty,
            "solver": self.solver,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "pruning_prob": self.pruning_prob,
            "presence": presence,
            "report": None if rep is None else rep.__dict__,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TunedRankSEG:
        """Rebuild from :meth:`to_dict`'s values.

        Parameters
        ----------
        d : dict
            As :meth:`to_dict` returns.

        Returns
        -------
        TunedRankSEG
            The tuned rule.

        Raises
        ------
        ValueError
            If ``d`` is not a tuned rule of this format.
        """
        if not isinstance(d, dict) or d.get("format") != _FORMAT or d.get("version") != 1:
            raise ValueError(
                f"not a tuned RankSEG rule (expected format {_FORMAT!r} version 1); got "
                f"format={d.get('format') if isinstance(d, dict) else type(d).__name__!r}"
            )
        presence = d.get("presence")
        if isinstance(presence, dict):
            presence = PresenceModel.from_dict(presence["model"])
        rep = d.get("report")
        cal = d.get("calibration")
        if cal is not None:
            from rankseg.calibration import TemperatureScaling, VectorScaling

            kinds: dict[str, type[TemperatureScaling] | type[VectorScaling]] = {
                "temperature": TemperatureScaling,
                "vector": VectorScaling,
            }
            if not isinstance(cal, dict) or cal.get("method") not in kinds:
                raise ValueError(f"the tuned rule's calibration is not one of {list(kinds)}")
            cal = kinds[cal["method"]].from_dict(cal)
        return cls(
            d["metric"],
            d["output_mode"],
            d["empty"],
            d.get("solver", "rma"),
            calibration=cal,
            pruning_prob=d.get("pruning_prob"),
            presence=presence,
            report=None if rep is None else TuningReport(**rep),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the rule as JSON, atomically (no half-written file on failure).

        Parameters
        ----------
        path : str or PathLike
            Destination.
        """
        write_text_atomic(path, json.dumps(self.to_dict(), indent=1, default=_json_default))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TunedRankSEG:
        """Read a rule written by :meth:`save`.

        Parameters
        ----------
        path : str or PathLike
            The JSON file.

        Returns
        -------
        TunedRankSEG
            The tuned rule.
        """
        with open(path, encoding="utf-8") as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}: not a JSON file ({err})") from None
        return cls.from_dict(d)

    def __repr__(self) -> str:
        return (
            f"TunedRankSEG(metric={self.metric!r}, output_mode={self.output_mode!r}, "
            f"empty={self.empty!r}, calibration={self.calibration!r}, "
            f"pruning_prob={self.pruning_prob!r}, presence={self.presence!r})"
        )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def _temperature(t: float, output_mode: str, nc: int) -> Any:
    """Make a fitted TemperatureScaling of temperature ``t`` for ``nc`` classes."""
    from rankseg.calibration import FORMAT, VERSION, TemperatureScaling

    return TemperatureScaling.from_dict(
        {
            "format": FORMAT,
            "version": VERSION,
            "method": "temperature",
            "mode": output_mode,
            "from_logits": False,
            "n_classes": nc,
            "temperature": float(t),
        }
    )


# --------------------------------------------------------------------------- cases


class _Cases:
    """Validation cases held as batches of one shape each (one array is one batch).

    Case ``k`` is row ``row[k]`` of batch ``group[k]``; case sets are sorted arrays of
    case indices, and per-case results come in that order.
    """

    def __init__(self, probs: list[np.ndarray], labels: list[np.ndarray]) -> None:
        self.probs = probs
        self.labels = labels
        sizes = [p.shape[0] for p in probs]
        self.n = int(sum(sizes))
        self.group = np.repeat(np.arange(len(sizes)), sizes)
        self.row = np.concatenate([np.arange(b) for b in sizes]) if sizes else np.zeros(0, int)

    def rows(self, cases: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """``(batch, rows)`` of the batches holding some of ``cases``."""
        g, r = self.group[cases], self.row[cases]
        return [(int(b), r[g == b]) for b in np.unique(g)]

    def pairs(self, cases: np.ndarray, probs: list[np.ndarray] | None = None) -> Any:
        """``(probs, labels)`` of ``cases``, a batch at a time (for a calibration's fit)."""
        probs = self.probs if probs is None else probs
        for b, r in self.rows(cases):
            yield probs[b][r], self.labels[b][r]

    def scores(self, preds: list[np.ndarray], cases: np.ndarray, score: Callable) -> np.ndarray:
        """Per (case, class) scores of ``cases`` from predictions of every batch."""
        return np.concatenate(
            [score(preds[b][r], self.labels[b][r]) for b, r in self.rows(cases)], axis=0
        )


def _as_cases(
    val_probs: Any, val_labels: Any, output_mode: str, ignore_index: int | None
) -> _Cases:
    """Check and hold the validation cases: one array each, or sequences of batches."""
    if isinstance(val_probs, (list, tuple)):
        if not isinstance(val_labels, (list, tuple)) or len(val_labels) != len(val_probs):
            raise ValueError(
                "with a sequence of probability batches, val_labels must be a sequence of as "
                f"many label batches; got {len(val_probs)} and "
                f"{len(val_labels) if isinstance(val_labels, (list, tuple)) else 'an array'}"
            )
        probs = [v.as_probs(p) for p in val_probs]
        labels = [np.asarray(lab) for lab in val_labels]
    else:
        probs, labels = [v.as_probs(val_probs)], [np.asarray(val_labels)]
    ncs = {p.shape[1] for p in probs}
    if len(ncs) > 1:
        raise ValueError(f"every batch needs the same number of classes; got {sorted(ncs)}")
    start = 0
    for p, lab in zip(probs, labels, strict=True):
        try:
            _check_pair(p, lab, output_mode, ignore_index)
        except ValueError as err:  # number the case among all the batches
            msg = str(err)
            if msg.startswith("case "):
                k, rest = msg[5:].split(":", 1)
                msg = f"case {start + int(k)}:{rest}"
            raise ValueError(msg) from None
        start += p.shape[0]
    return _Cases(probs, labels)


# --------------------------------------------------------------------------- baselines


def _baseline_grid(output_mode: str, nc: int) -> str:
    if output_mode == "multilabel":
        return "global threshold" if nc == 1 else "per-class thresholds"
    return "per-class bias"


def _threshold_baseline(
    probs: list[np.ndarray], score_of: Callable[[list[np.ndarray]], float]
) -> list[np.ndarray]:
    """Per-class thresholds on ``p`` maximizing ``score_of``; the masks of every batch."""
    nc = probs[0].shape[1]
    grid = np.round(np.arange(0.05, 0.951, 0.025), 3)
    masks = [p > 0.5 for p in probs]
    for c in range(nc):
        scores = []
        for t in grid:
            for m, p in zip(masks, probs, strict=True):
                m[:, c] = p[:, c] > t
            scores.append(score_of(masks))
        best = grid[int(np.nanargmax(scores))]
        for m, p in zip(masks, probs, strict=True):
            m[:, c] = p[:, c] > best
    return masks


def _bias_baseline(
    logp: list[np.ndarray], score_of: Callable[[list[np.ndarray]], float]
) -> list[np.ndarray]:
    """Per-class biases on log p (argmax of log p + b) maximizing ``score_of``; labels.

    Coordinate ascent over the classes (class 0's bias is the reference), two sweeps,
    each bias from a grid.  With the other biases fixed, class c wins a pixel iff
    ``log p_c + b_c`` beats the best other class (ties to the lower index, as
    ``np.argmax``), so each grid value is a comparison, not a new argmax.
    """
    nc = logp[0].shape[1]
    grid = np.linspace(-2.0, 2.0, 9)
    bias = np.zeros(nc)

    def shift(lp: np.ndarray) -> np.ndarray:
        return lp + bias.reshape((1, nc) + (1,) * (lp.ndim - 2)).astype(lp.dtype)

    for _ in range(2):
        for c in range(1, nc):
            margins, others = [], []
            for lp in logp:
                shifted = shift(lp)
                shifted[:, c] = -np.inf
                other = np.argmax(shifted, axis=1)
                best_other = np.take_along_axis(shifted, other[:, None], axis=1)[:, 0]
                margins.append(lp[:, c] - best_other)
                others.append(other)
                del shifted
            scores = []
            for g in grid:
                labels = [
                    np.where((m > -g) | ((m == -g) & (o > c)), c, o)
                    for m, o in zip(margins, others, strict=True)
                ]
                scores.append(score_of(labels))
            bias[c] = grid[int(np.nanargmax(scores))]
    return [np.argmax(shift(lp), axis=1) for lp in logp]


# --------------------------------------------------------------------------- tune


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(perm, k)]


def tune(
    val_probs: Any,
    val_labels: Any,
    *,
    metric: str = "dice",
    output_mode: str = "multiclass",
    empty: str = "zero",
    ignore_index: int | None = None,
    include_background: bool = True,
    solver: str = "rma",
    calibrate: bool = True,
    folds: int = 5,
    seed: int = 0,
    n_boot: int = 1000,
    max_pixels: int = 500_000,
) -> TunedRankSEG:
    """Tune RankSEG to maximize the realized validation metric under a convention.

    Candidates: no calibration, and a temperature fitted by NLL on the training cases
    times each of :data:`TEMPERATURE_FACTORS` (another factor than 1 replaces the NLL
    temperature only when it gains more than :data:`FACTOR_MARGIN`); and every
    presence rule: each ``pruning_prob`` of :data:`PRUNING_GRID`, the ``'argmax'`` rule
    and, with ``empty='one'``, a :class:`PresenceModel` where validation has enough
    absent and present (case, class) pairs (without them, under ``empty='one'``, only
    the ``'argmax'`` rule: validation then shows nothing of what a mask on an absent
    class costs).  Each fold's choice is made on the other folds and scored on it; the
    report compares it with argmax and a baseline tuned on the same folds.  The
    returned rule is chosen and refitted on every case.

    The validation cases are held in memory (``rankseg calibrate`` streams cases for a
    calibration alone).

    Parameters
    ----------
    val_probs : array-like or sequence of array-likes
        Validation probabilities ``(B, C, *spatial)`` (float16/32/64, as the model gives
        them), or a sequence of such batches whose spatial shapes may differ (e.g. one
        3-D volume each, ``(1, C, Z, Y, X)``).
    val_labels : array-like or sequence of array-likes
        Their truth: ``(B, *spatial)`` class indices (multiclass) or ``(B, C, *spatial)``
        0/1 (multilabel), a batch for each batch of ``val_probs``; ``ignore_index``
        marks void pixels.
    metric : {'dice', 'iou'}
        The metric of the user's benchmark.
    output_mode : {'multiclass', 'multilabel'}
        Label maps or per-class masks.
    empty : {'zero', 'one', 'ignore'}
        How the benchmark scores a pair with an empty truth (:class:`rankseg.RankSEG`).
    ignore_index : int, optional
        Void label, left out of the fit and the scores.
    include_background : bool
        Whether class 0 counts in the score (False for a binary softmax's background).
    solver : str
        The RankSEG solver.
    calibrate : bool
        Try a fitted temperature (else only the raw probabilities).
    folds : int
        Cross-validation folds over cases (at most the number of cases, at least 2).
    seed : int
        Seed of the folds, the calibration's pixel subsample and the bootstrap.
    n_boot : int
        Bootstrap resamples of the report's intervals.
    max_pixels : int
        Pixels of the seeded subsample each temperature is fitted on
        (:class:`rankseg.calibration.TemperatureScaling`).

    Returns
    -------
    TunedRankSEG
        The tuned rule with its :class:`TuningReport` in ``.report``.

    Raises
    ------
    ValueError
        For invalid labels (outside ``[0, C)`` and not ``ignore_index``), shapes that
        disagree, an all-void case, NaN, fewer than 2 cases, or unknown names; the
        message names the case (counted over all batches).

    Examples
    --------
    >>> import numpy as np
    >>> from rankseg import tune
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.2, 0.8, size=(6, 1, 16, 16))
    >>> y = (rng.uniform(size=p.shape) < p).astype(np.uint8)
    >>> rule = tune(p, y, output_mode="multilabel", folds=3, n_boot=50)
    >>> rule.predict(p).shape
    (6, 1, 16, 16)
    """
    metric = v.check_name(metric, "metric", ("dice", "iou"))
    output_mode = v.check_name(output_mode, "output_mode", OUTPUT_MODES)
    empty = v.check_name(empty, "empty", EMPTY_CONVENTIONS)
    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds must be an integer >= 2; got {folds!r}")
    cases = _as_cases(val_probs, val_labels, output_mode, ignore_index)
    nb = cases.n
    if nb < 2:
        raise ValueError(f"tune needs at least 2 validation cases; got {nb}")
    nc = cases.probs[0].shape[1]
    if output_mode == "multiclass" and nc < 2:
        raise ValueError("multiclass tuning needs at least 2 classes; use multilabel for C = 1")
    if not include_background and nc < 2:
        raise ValueError(
            "include_background=False leaves no class to score with C = 1 (a single "
            "foreground map is class 0 here); keep include_background=True"
        )
    k = min(int(folds), nb)
    fold_idx = _folds(nb, k, seed)
    everyone = np.arange(nb)

    def score(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return case_scores(
            pred,
            labels,
            num_classes=nc,
            metric=metric,
            empty=empty,
            output_mode=output_mode,
            ignore_index=ignore_index,
            include_background=include_background,
        )

    def scores(preds: list[np.ndarray], which: np.ndarray = everyone) -> np.ndarray:
        return cases.scores(preds, which, score)

    def fit_t(train: np.ndarray) -> float:
        from rankseg.calibration import TemperatureScaling

        ts = TemperatureScaling(
            output_mode, ignore_index=ignore_index, max_pixels=max_pixels, seed=seed
        )
        return float(ts.fit(cases.pairs(train)).temperature_)

    def present_of(train: np.ndarray) -> np.ndarray:
        return np.concatenate([_present(lab, nc, output_mode) for _, lab in cases.pairs(train)])

    def candidates(cal: list[np.ndarray], train: np.ndarray) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = [("presence='argmax'", {"presence": "argmax"})]
        present = present_of(train)
        learnable = min(present.sum(), (~present).sum()) >= MIN_PRESENCE_ROWS
        if empty != "one" or learnable:
            # under 'one' a pruning level chosen on cases without absent classes would
            # be chosen blind to the cost of masks on absent classes: the 'argmax' rule
            # (argmax's own presence decisions) is then the only candidate
            out += [(f"pruning_prob={pp:g}", {"pruning_prob": pp}) for pp in PRUNING_GRID]
        if empty == "one" and learnable:
            feats = np.concatenate(
                [_features(p, output_mode) for p, _ in cases.pairs(train, cal)], axis=0
            )
            out.append(("presence model", {"presence": PresenceModel().fit(feats, present)}))
        return out

    def search(train: np.ndarray) -> tuple[dict[str, Any], dict[tuple, list[np.ndarray]]]:
        """Best (temperature, presence) on ``train``; predictions of every case."""
        temps: list[tuple[float | None, float | None]] = [(None, None)]
        if calibrate:
            t0 = fit_t(train)
            temps += [(t0 * f, f) for f in TEMPERATURE_FACTORS]
        tried = []
        preds = {}
        for t, factor in temps:
            cal = (
                cases.probs
                if t is None
                else [_temperature(t, output_mode, nc).transform(p) for p in cases.probs]
            )
            for name, kw in candidates(cal, train):
                model = RankSEG(metric, output_mode=output_mode, solver=solver, empty=empty, **kw)
                pred = [model.predict(p) for p in cal]
                preds[(t, name)] = pred
                s = mean_score(scores(pred, train))
                tried.append((s, factor, {"temperature": t, "rule": name, **kw}))
        best = max(tried, key=lambda r: r[0])  # the first of equal scores
        if calibrate:
            # the NLL temperature unless another factor gains more than FACTOR_MARGIN:
            # the realized metric of a few cases is a noisy guide to the temperature
            at_nll = max((r for r in tried if r[1] == 1.0), key=lambda r: r[0])
            if at_nll[0] >= best[0] - FACTOR_MARGIN:
                best = at_nll
        return best[2], preds

    # cross-validation: each held-out fold is decided by the rule chosen on the others
    n_out = nc if include_background else nc - 1
    cv = {k_: np.full((nb, n_out), np.nan) for k_ in ("argmax", "baseline", "default", "tuned")}
    default = RankSEG(metric, output_mode=output_mode, solver=solver, empty=empty)
    argmax = RankSEG("acc", output_mode=output_mode)
    cv["argmax"] = scores([argmax.predict(p) for p in cases.probs])
    cv["default"] = scores([default.predict(p) for p in cases.probs])
    logp = None
    chosen_per_fold = []
    for test in fold_idx:
        train = np.setdiff1d(everyone, test)
        best, preds = search(train)
        chosen_per_fold.append({k_: v_ for k_, v_ in best.items() if k_ != "presence"})
        cv["tuned"][test] = scores(preds[(best["temperature"], best["rule"])], test)

        def on_train(pred: list[np.ndarray], train: np.ndarray = train) -> float:
            return mean_score(scores(pred, train))

        if output_mode == "multilabel":
            base = _threshold_baseline(cases.probs, on_train)
        else:
            if logp is None:
                with np.errstate(divide="ignore"):
                    logp = [np.log(np.asarray(p, dtype=np.float32)) for p in cases.probs]
            base = _bias_baseline(logp, on_train)
        cv["baseline"][test] = scores(base, test)

    names = {
        "argmax": "argmax" if output_mode == "multiclass" else "p > 0.5",
        "baseline": f"{_baseline_grid(output_mode, nc)} tuned on the other folds",
        "default": f"RankSEG {solver}, empty={empty!r}, defaults",
        "tuned": "RankSEG tuned on the other folds",
    }
    report = TuningReport(metric, output_mode, empty, nb, k)
    for key in ("argmax", "baseline", "default", "tuned"):
        d, lo, hi = paired_bootstrap(cv[key], cv["argmax"], n_boot=n_boot, seed=seed)
        report.rows.append(
            {
                "rule": names[key],
                "score": mean_score(cv[key]),
                "diff_vs_argmax": d,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    present = present_of(everyone)
    if empty == "one" and min(present.sum(), (~present).sum()) < MIN_PRESENCE_ROWS:
        report.notes.append(
            f"validation has {(~present).sum()} absent and {present.sum()} present (case, "
            f"class) pairs (fewer than {MIN_PRESENCE_ROWS} of one kind): nothing to learn "
            "absence from, so a class gets a mask iff argmax gives it a pixel (presence="
            "'argmax'); validation cases with absent classes would let the tuning do better"
        )
    report.notes.append(f"chosen per fold: {chosen_per_fold}")

    # the final rule, chosen and fitted on every validation case
    best, _ = search(everyone)
    report.chosen = {k_: v_ for k_, v_ in best.items() if k_ != "presence"}
    t_best = best["temperature"]
    return TunedRankSEG(
        metric,
        output_mode,
        empty,
        solver,
        calibration=None if t_best is None else _temperature(t_best, output_mode, nc),
        pruning_prob=best.get("pruning_prob"),
        presence=best.get("presence"),
        report=report,
    )
