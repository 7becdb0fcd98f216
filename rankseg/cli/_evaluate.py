"""``rankseg evaluate``: samplewise Dice/IoU of label maps against targets."""

from __future__ import annotations

import argparse
import csv
import io as _stdio
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rankseg import io as rio
from rankseg.cli._common import _EXIT_FAILED, _check_output_file, _Log, _one_line
from rankseg.io._naming import _ITK_SUFFIXES


def _label_files(items: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if (
                    f.is_file()
                    and not f.name.startswith(".")
                    and rio._suffix(f) in (".npy", ".npz", ".nii", ".nii.gz", *_ITK_SUFFIXES)
                ):
                    out.append(f)
        else:
            out.append(p)
    return out


def _cmd_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from rankseg.metrics import samplewise_counts

    log = _Log(args.quiet)
    preds = _label_files(args.preds)
    targets = _label_files(args.target)
    if not preds or not targets:
        parser.error("need at least one prediction and one target file")
    if args.num_classes is not None and args.num_classes < 1:
        parser.error(f"--num-classes must be >= 1; got {args.num_classes}")
    if args.csv and (why := _check_output_file(args.csv, "--csv")):
        parser.error(why)
    pairs: list[tuple[str, Path, Path]] = []
    failed: list[str] = []
    if len(preds) == 1 and len(targets) == 1:
        pairs.append((rio.case_name(preds[0]), preds[0], targets[0]))
    else:
        by_name = {rio.case_name(t): t for t in targets}
        for p in preds:
            t = by_name.pop(rio.case_name(p), None)
            if t is None:
                failed.append(f"{p}: no target named {rio.case_name(p)}.*")
                log.error(f"error: {failed[-1]}")
            else:
                pairs.append((rio.case_name(p), p, t))
        if by_name:
            log.info(f"note: {len(by_name)} target(s) without a prediction were not evaluated")
    counts: list[tuple[str, np.ndarray]] = []
    for name, p, t in pairs:
        where = p  # the file an error is about
        try:
            pred = rio.load_labels(p, key=args.key)
            where = t
            target = rio.load_labels(t)
            where = p
            if (pred.dtype == bool) != (target.dtype == bool):
                raise ValueError(
                    f"cannot compare {'masks' if pred.dtype == bool else 'a label map'} with "
                    f"{'masks' if target.dtype == bool else 'a label map'} ({t})"
                )
            if pred.shape != target.shape:
                raise ValueError(
                    f"shape {pred.shape} differs from the target's {target.shape} ({t})"
                )
            nc = args.num_classes
            if nc is None and pred.dtype != bool:
                nc = int(max(pred.max(initial=0), target.max(initial=0))) + 1
            counts.append((name, samplewise_counts(pred[None], target[None], nc)[0]))
        except Exception as exc:
            failed.append(f"{where}: {_one_line(exc)}")
            log.error(f"error: {failed[-1]}")
    if counts:
        try:
            _report_scores(args, counts)
        except OSError as exc:  # the --csv file (the table is printed first)
            failed.append(f"{args.csv}: {_one_line(exc)}")
            log.error(f"error: {failed[-1]}")
    log.info(f"rankseg evaluate: {len(counts)} case(s) evaluated, {len(failed)} failed")
    return _EXIT_FAILED if failed else 0


def _report_scores(args: argparse.Namespace, counts: list[tuple[str, np.ndarray]]) -> None:
    from rankseg.metrics import score_from_counts

    nc = max(c.shape[0] for _, c in counts)
    allc = np.zeros((len(counts), nc, 3), dtype=np.float64)
    for i, (_, c) in enumerate(counts):
        allc[i, : c.shape[0]] = c
    npred, ntrue = allc[..., 0], allc[..., 1]
    scores = score_from_counts(allc, args.metric, args.empty)
    first = 1 if args.exclude_background else 0
    classes = list(range(first, nc))
    lines = [f"{'class':>6} {'mean ' + args.metric:>12} {'s.e.':>8} {'cases':>6}"]
    means = []
    hidden = 0
    for c in classes:
        col = scores[:, c]
        ok = col[~np.isnan(col)]
        if ok.size == 0:  # absent from every case (e.g. the labels below a void 255)
            hidden += 1
            continue
        mean = float(ok.mean())
        se = float(ok.std(ddof=1) / math.sqrt(ok.size)) if ok.size > 1 else math.nan
        means.append(mean)
        lines.append(f"{c:>6} {mean:>12.4f} {se:>8.4f} {ok.size:>6}")
    overall = sum(means) / len(means) if means else math.nan
    lines.append(f"{'mean':>6} {overall:>12.4f}")
    if hidden:
        lines.append(
            f"({hidden} class(es) with no case counted not shown; --num-classes N limits "
            "the classes, e.g. to leave out a void label)"
        )
    print("\n".join(lines))
    if args.csv:
        buf = _stdio.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(("case", "class", args.metric, "pred_volume", "target_volume"))
        for i, (name, _) in enumerate(counts):
            for c in classes:
                w.writerow((name, c, repr(float(scores[i, c])), int(npred[i, c]), int(ntrue[i, c])))
        data = buf.getvalue()
        rio.atomic_write(args.csv, lambda tmp: tmp.write_text(data))
