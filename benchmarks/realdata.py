"""RankSEG on real models and real images: argmax, a rule tuned on validation, RankSEG.

Usage::

    python benchmarks/realdata.py DATA_DIR_OR_FILES... [--metrics dice iou]
        [--empty zero one ignore] [--boot 2000] [--folds 5] [--markdown out.md]

DATA is ``../shared/realdata/`` (or the ``.npz`` files in it): ``isbi_em_unet.npz``
(a small U-Net on ISBI 2012 EM membranes: binary, the membrane channel decided as a
mask) and ``camvid_rf.npz`` (a random forest on CamVid street scenes: 11 classes,
void = 11).  The data stays outside the repository; this is a benchmark, not a test.

For every file, metric and ``empty=`` convention, on the file's **test** split:

* ``argmax`` (``p > 0.5`` for the binary file);
* the rule tuned on the validation split: a global threshold (binary) or per-class
  biases on the log-probabilities (multiclass), chosen to maximize the validation
  metric under the convention;
* RankSEG RMA with its defaults (``empty='zero'``, ``pruning_prob=0.5``), and with
  ``empty=`` set to the convention and nothing else;
* RankSEG tuned on the validation split by :func:`rankseg.tune` (temperature,
  presence rule, pruning), for that metric and convention;

as the mean per-image score (mean over images, then over classes; void pixels left
out), each with the paired bootstrap 95 % CI of its difference to argmax and to the
validation-tuned rule.  Also the mean absolute error of the expected score
(``return_info``) against the realized one, before and after tuning.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: use this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

from rankseg import RankSEG, tune  # noqa: E402
from rankseg.tuning import (  # noqa: E402
    _bias_baseline,
    _threshold_baseline,
    case_scores,
    mean_score,
    paired_bootstrap,
)

FILES = {"isbi_em_unet.npz": "binary", "camvid_rf.npz": "multiclass"}


@dataclass
class Split:
    """One file's data in the layout the rules take."""

    name: str
    output_mode: str
    ignore_index: int | None
    val_probs: np.ndarray
    val_labels: np.ndarray
    test_probs: np.ndarray
    test_labels: np.ndarray


def load(path: Path) -> Split:
    """Read one realdata file: the binary one keeps its foreground channel as a mask."""
    d = np.load(path)
    kind = FILES.get(path.name, "binary" if d["val_probs"].shape[1] == 2 else "multiclass")
    if kind == "binary":  # softmax (background, foreground): decide the foreground mask
        return Split(
            path.stem,
            "multilabel",
            None,
            d["val_probs"][:, 1:2],
            d["val_labels"][:, None],
            d["test_probs"][:, 1:2],
            d["test_labels"][:, None],
        )
    nc = d["val_probs"].shape[1]
    void = int(max(d["val_labels"].max(), d["test_labels"].max()))
    return Split(
        path.stem,
        "multiclass",
        void if void >= nc else None,
        d["val_probs"],
        d["val_labels"],
        d["test_probs"],
        d["test_labels"],
    )


def val_tuned_rule(s: Split, metric: str, empty: str) -> np.ndarray:
    """Threshold / per-class bias chosen on the validation split, applied to the test."""
    nc = s.val_probs.shape[1]

    def on_val(preds: list[np.ndarray]) -> float:
        return mean_score(
            case_scores(
                preds[0],
                s.val_labels,
                num_classes=nc,
                metric=metric,
                empty=empty,
                output_mode=s.output_mode,
                ignore_index=s.ignore_index,
            )
        )

    groups = [s.val_probs, s.test_probs]
    if s.output_mode == "multilabel":
        return _threshold_baseline(groups, on_val)[1]
    with np.errstate(divide="ignore"):
        logp = [np.log(g.astype(np.float32)) for g in groups]
    return _bias_baseline(logp, on_val)[1]


def expected_error(s: Split, model, probs: np.ndarray, metric: str) -> float:
    """Mean |expected - realized| score over the (image, class) pairs present in the truth."""
    pred, info = model(probs, return_info=True)
    nc = probs.shape[1]
    masks = pred if s.output_mode == "multilabel" else None
    if masks is None:  # the expected score is of each class's own mask, before resolution
        masks = np.stack([pred == c for c in range(nc)], axis=1)
    lab = s.test_labels
    truth = (
        lab == 1
        if s.output_mode == "multilabel"
        else np.stack([lab == c for c in range(nc)], axis=1)
    )
    if s.ignore_index is not None:
        void = (
            (lab == s.ignore_index)[:, None]
            if s.output_mode == "multiclass"
            else (lab == s.ignore_index)
        )
        masks, truth = masks & ~void, truth & ~void
    realized = case_scores(
        masks, truth, num_classes=nc, metric=metric, empty="ignore", output_mode="multilabel"
    )
    err = np.abs(info.score - realized)
    return float(np.nanmean(err[~info.pruned]))


def run(s: Split, metric: str, empty: str, args: argparse.Namespace) -> list[str]:
    nc = s.test_probs.shape[1]

    def score(pred: np.ndarray) -> np.ndarray:
        return case_scores(
            pred,
            s.test_labels,
            num_classes=nc,
            metric=metric,
            empty=empty,
            output_mode=s.output_mode,
            ignore_index=s.ignore_index,
        )

    t0 = time.perf_counter()
    tuned = tune(
        s.val_probs,
        s.val_labels,
        metric=metric,
        output_mode=s.output_mode,
        empty=empty,
        ignore_index=s.ignore_index,
        folds=args.folds,
        n_boot=200,
    )
    t_tune = time.perf_counter() - t0
    argmax = RankSEG("acc", output_mode=s.output_mode).predict(s.test_probs)
    rules = {
        "argmax" if s.output_mode == "multiclass" else "p > 0.5": score(argmax),
        ("global threshold" if s.output_mode == "multilabel" else "per-class bias")
        + " tuned on val": score(val_tuned_rule(s, metric, empty)),
        "RankSEG rma, defaults": score(
            RankSEG(metric, output_mode=s.output_mode).predict(s.test_probs)
        ),
        f"RankSEG rma, empty={empty!r}": score(
            RankSEG(metric, output_mode=s.output_mode, empty=empty).predict(s.test_probs)
        ),
        "RankSEG tuned on val": score(tuned.predict(s.test_probs)),
    }
    names = list(rules)
    ref_a, ref_t = rules[names[0]], rules[names[1]]
    head = "Dice" if metric == "dice" else "IoU"
    lines = [
        f"### {s.name}: {head}, empty={empty!r} (test: {len(s.test_probs)} images)",
        "",
        f"| rule | mean {head} | vs argmax [95 % CI] | vs val-tuned rule [95 % CI] |",
        "|---|---|---|---|",
    ]
    for name, sc in rules.items():
        da = paired_bootstrap(sc, ref_a, n_boot=args.boot, seed=1)
        dt = paired_bootstrap(sc, ref_t, n_boot=args.boot, seed=2)
        lines.append(
            f"| {name} | {100 * mean_score(sc):.2f} | {100 * da[0]:+.2f} "
            f"[{100 * da[1]:+.2f}, {100 * da[2]:+.2f}] | {100 * dt[0]:+.2f} "
            f"[{100 * dt[1]:+.2f}, {100 * dt[2]:+.2f}] |"
        )
    err_d = expected_error(s, RankSEG(metric, output_mode=s.output_mode), s.test_probs, metric)
    err_t = expected_error(s, tuned.predict, s.test_probs, metric)
    lines += [
        "",
        f"tuned: {tuned.report.chosen} (tune took {t_tune:.1f} s); expected-vs-realized "
        f"{head} MAE on present pairs: defaults {err_d:.3f}, tuned {err_t:.3f}",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="+", type=Path, help="realdata folder or .npz files")
    ap.add_argument("--metrics", nargs="+", default=["dice", "iou"], choices=["dice", "iou"])
    ap.add_argument(
        "--empty", nargs="+", default=["zero", "one", "ignore"], choices=["zero", "one", "ignore"]
    )
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--folds", type=int, default=5, help="tune's cross-validation folds")
    ap.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = ap.parse_args(argv)
    files: list[Path] = []
    for p in args.data:
        files += sorted(q for q in p.glob("*.npz") if q.name in FILES) if p.is_dir() else [p]
    if not files:
        ap.error(f"no realdata .npz files ({', '.join(FILES)}) in {args.data}")
    load0 = os.getloadavg()
    out = [f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", ""]
    print(out[0], flush=True)
    for f in files:
        s = load(f)
        for metric in args.metrics:
            for empty in args.empty:
                lines = run(s, metric, empty, args)
                print("\n".join(lines), flush=True)
                out += lines
    load1 = os.getloadavg()
    out.append(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(out[-1])
    if args.markdown:
        args.markdown.write_text("\n".join(out) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
