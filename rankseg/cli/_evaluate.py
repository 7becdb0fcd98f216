"""``rankseg evaluate``: samplewise Dice/IoU of label maps against targets.

Beyond the table: ``--csv`` (one row per case and class), ``--json`` (nnU-Net's
``summary.json``), ``--info`` (the expected scores of ``rankseg predict --info``
next to the realized ones), ``--probs`` (calibration of the probabilities behind the
predictions, ``--reliability`` diagram) and ``--report`` (one page, Markdown/HTML).
"""

from __future__ import annotations

import argparse
import csv
import io as _stdio
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rankseg import io as rio
from rankseg.cli._casefigs import CaseFigure, case_figures
from rankseg.cli._cluster import as_given, connected, in_order
from rankseg.cli._common import (
    EXIT_FAILED,
    Log,
    check_output_file,
    check_picture_path,
    one_line,
)
from rankseg.cli._report import Report, render, report_kind
from rankseg.cli._summary import (
    CaseCounts,
    ExpectedRealized,
    agreement_table,
    atomic_text,
    expected_vs_realized,
    nnunet_summary,
    read_info,
    summary_json_text,
)
from rankseg.io._naming import ITK_SUFFIXES, file_suffix


def label_files(items: Sequence[str]) -> list[Path]:
    """Label files of the given files and folders.

    In a folder, a case with an image (NIfTI, ``.mha``, ...) and an array file
    (``.npz``/``.npy``) of the same name is an nnU-Net output folder's case: its
    segmentation is the image, the ``.npz`` its probabilities, which are left out.
    """
    out: list[Path] = []
    images = (".nii", ".nii.gz", *ITK_SUFFIXES)
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = [
                f
                for f in sorted(p.iterdir())
                if f.is_file()
                and not f.name.startswith(".")
                and file_suffix(f) in (".npy", ".npz", *images)
            ]
            with_image = {rio.case_name(f) for f in found if file_suffix(f) in images}
            out += [
                f for f in found if file_suffix(f) in images or rio.case_name(f) not in with_image
            ]
        else:
            out.append(p)
    return out


def _pair_by_name(
    preds: list[Path], targets: list[Path], failed: list[str], log: Log
) -> list[tuple[str, Path, Path]]:
    """Pair files by case name (one file on each side: paired whatever their names)."""
    if len(preds) == 1 and len(targets) == 1:
        return [(rio.case_name(preds[0]), preds[0], targets[0])]
    pairs = []
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
    return pairs


@dataclass
class _Scores:
    """The evaluated cases and their scores (classes are columns)."""

    cases: list[CaseCounts]
    classes: list[int]  # the classes evaluated (--exclude-background drops 0)
    shown: list[int]  # the classes of the table (some case counts them)
    scores: np.ndarray  # (cases, C) in --metric
    dice: np.ndarray
    iou: np.ndarray


def _check_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Usage errors, found before any file is read."""
    if args.num_classes is not None and args.num_classes < 1:
        parser.error(f"--num-classes must be >= 1; got {args.num_classes}")
    for opt in ("csv", "json", "report"):
        path = getattr(args, opt)
        if path and (why := check_output_file(path, f"--{opt}")):
            parser.error(why)
    if args.report and report_kind(args.report) is None:
        parser.error(
            f"--report {args.report}: unknown report type; expected a name ending in .md "
            "(Markdown) or .html"
        )
    if args.reliability:
        if not args.probs:
            parser.error(
                "--reliability needs --probs PROBS (the probability maps behind the predictions)"
            )
        if why := check_picture_path(args.reliability, "--reliability"):
            parser.error(why)
    if args.n_bins < 1:
        parser.error(f"--n-bins must be >= 1; got {args.n_bins}")
    if args.report_cases is not None:
        if args.report_cases < 0:
            parser.error(f"--report-cases must be >= 0; got {args.report_cases}")
        if not (args.report and args.probs):
            parser.error(
                "--report-cases needs --report REPORT and --probs PROBS (the figures compare "
                "the predictions with the argmax of their probabilities)"
            )
        if args.report_cases > 0 and not _have_matplotlib():
            parser.error("--report-cases needs matplotlib (pip install 'rankseg-numba[plot]')")


#: figures of --report with --probs when --report-cases is not given
DEFAULT_REPORT_CASES = 6


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class _Pair:
    """One case to score: a prediction and its target (a task on a cluster)."""

    path: str  # the prediction
    target: str
    key: str | None
    num_classes: int | None


@dataclass(frozen=True)
class _Counted:
    """The counts of a scored case (:class:`CaseCounts` without the files)."""

    counts: np.ndarray
    voxels: int
    masks: bool


def _score_pair(pair: _Pair) -> _Counted | tuple[str, str]:
    """Load a prediction and its target and count ``|P|, |T|, |P∩T|`` per class.

    Never raises: a failure is ``(which, message)``, ``which`` naming the file the
    problem is about: ``"path"`` (the prediction) or ``"target"``.
    """
    from rankseg.metrics import samplewise_counts

    where = "path"
    try:
        pred = rio.load_labels(pair.path, key=pair.key)
        where = "target"
        target = rio.load_labels(pair.target)
        where = "path"
        t = pair.target
        if (pred.dtype == bool) != (target.dtype == bool):
            raise ValueError(
                f"cannot compare {'masks' if pred.dtype == bool else 'a label map'} with "
                f"{'masks' if target.dtype == bool else 'a label map'} ({t})"
            )
        if pred.shape != target.shape:
            raise ValueError(f"shape {pred.shape} differs from the target's {target.shape} ({t})")
        nc = pair.num_classes
        if nc is None and pred.dtype != bool:
            nc = int(max(pred.max(initial=0), target.max(initial=0))) + 1
        masks = pred.dtype == bool
        voxels = math.prod(pred.shape[1:] if masks else pred.shape)
        counts = samplewise_counts(pred[None], target[None], nc)[0]
    except Exception as exc:
        return where, one_line(exc)
    return _Counted(counts, voxels, masks)


def _pair_failed(pair: _Pair, message: str) -> tuple[str, str]:
    return "path", message


def cmd_evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    log = Log(args.quiet)
    preds = label_files(args.preds)
    targets = label_files(args.target)
    if not preds or not targets:
        parser.error("need at least one prediction and one target file")
    _check_options(args, parser)
    info = None
    if args.info:
        try:  # a wrong table is a usage error: nothing has been computed yet
            info = read_info(args.info)
        except (OSError, ValueError) as exc:
            parser.error(one_line(exc))
    with connected(args, parser) as client:  # a usage error before any file is read
        failed: list[str] = []
        pairs = _pair_by_name(preds, targets, failed, log)
        jobs = [_Pair(str(p), str(t), args.key, args.num_classes) for _, p, t in pairs]
        if client is not None:  # the workers' working folder is not ours
            jobs = [
                replace(j, path=os.path.abspath(j.path), target=os.path.abspath(j.target))
                for j in jobs
            ]
        cases: list[CaseCounts] = []
        results = in_order(client, _score_pair, jobs, _pair_failed)
        for (name, p, t), res in zip(pairs, results, strict=True):
            if isinstance(res, _Counted):
                cases.append(CaseCounts(name, p, t, res.counts, res.voxels, res.masks))
                continue
            which, message = res
            failed.append(f"{p if which == 'path' else t}: {as_given(message, p, t)}")
            log.error(f"error: {failed[-1]}")
    if cases:
        sc = _scores(args, cases)
        print(_table(args, sc))
        er = None
        if info is not None:
            er = expected_vs_realized(info, [c.name for c in cases], sc.scores, sc.shown)
            print()
            print(agreement_table(er, args.metric))
            if er.unused_info_cases:
                log.info(f"note: {er.unused_info_cases} case(s) of --info were not evaluated")
        calib = None
        if args.probs:
            from rankseg.cli._reliability import calibration_of

            calib = calibration_of(args, {c.name: c.target for c in cases}, failed, log)
            if calib is not None:
                print()
                print(calib.text())
        _write_outputs(args, sc, er, calib, failed, log, info)
    log.info(f"rankseg evaluate: {len(cases)} case(s) evaluated, {len(failed)} failed")
    return EXIT_FAILED if failed else 0


def _scores(args: argparse.Namespace, cases: list[CaseCounts]) -> _Scores:
    from rankseg.metrics import score_from_counts

    nc = max(c.counts.shape[0] for c in cases)
    if args.num_classes is not None and not cases[0].masks:
        nc = max(nc, args.num_classes)
    allc = np.zeros((len(cases), nc, 3), dtype=np.float64)
    for i, c in enumerate(cases):
        allc[i, : c.counts.shape[0]] = c.counts
    dice = score_from_counts(allc, "dice", args.empty)
    iou = score_from_counts(allc, "iou", args.empty)
    scores = dice if args.metric == "dice" else iou
    classes = list(range(1 if args.exclude_background else 0, nc))
    shown = [c for c in classes if not np.isnan(scores[:, c]).all()]
    return _Scores(cases, classes, shown, scores, dice, iou)


def _table(args: argparse.Namespace, sc: _Scores) -> str:
    lines = [f"{'class':>6} {'mean ' + args.metric:>12} {'s.e.':>8} {'cases':>6}"]
    means = []
    for c in sc.shown:
        col = sc.scores[:, c]
        ok = col[~np.isnan(col)]
        mean = float(ok.mean())
        se = float(ok.std(ddof=1) / math.sqrt(ok.size)) if ok.size > 1 else math.nan
        means.append(mean)
        lines.append(f"{c:>6} {mean:>12.4f} {se:>8.4f} {ok.size:>6}")
    overall = sum(means) / len(means) if means else math.nan
    lines.append(f"{'mean':>6} {overall:>12.4f}")
    hidden = len(sc.classes) - len(sc.shown)  # absent from every case (e.g. below a void 255)
    if hidden:
        lines.append(
            f"({hidden} class(es) with no case counted not shown; --num-classes N limits "
            "the classes, e.g. to leave out a void label)"
        )
    return "\n".join(lines)


def _csv_text(args: argparse.Namespace, sc: _Scores, er: ExpectedRealized | None) -> str:
    buf = _stdio.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    header = ["case", "class", args.metric, "pred_volume", "target_volume"]
    expected: dict[tuple[str, int], float] = {}
    if er is not None:
        header.append("expected")
        expected = {(r[0], r[1]): r[2] for r in er.rows}
    w.writerow(header)
    for i, case in enumerate(sc.cases):
        for c in sc.classes:
            npred, ntrue = (
                (int(case.counts[c, 0]), int(case.counts[c, 1]))
                if c < case.counts.shape[0]
                else (0, 0)
            )
            row = [case.name, c, repr(float(sc.scores[i, c])), npred, ntrue]
            if er is not None:
                e = expected.get((case.name, c), math.nan)
                row.append("" if math.isnan(e) else repr(e))
            w.writerow(row)
    return buf.getvalue()


def _write_outputs(
    args: argparse.Namespace,
    sc: _Scores,
    er: ExpectedRealized | None,
    calib: Any,
    failed: list[str],
    log: Log,
    info: dict[tuple[str, int], tuple[float, bool]] | None = None,
) -> None:
    """Write --csv, --json, --reliability and --report (each atomic; a failure is named)."""

    def attempt(option: str, path: str, write: Any) -> bool:
        try:
            write()
        except Exception as exc:
            failed.append(f"{path}: {one_line(exc)}")
            log.error(f"error: {option} {failed[-1]}")
            return False
        return True

    if args.csv:
        attempt("--csv", args.csv, lambda: atomic_text(args.csv, _csv_text(args, sc, er)))
    if args.json:
        summary = nnunet_summary(sc.cases, sc.classes, args.empty)
        attempt("--json", args.json, lambda: atomic_text(args.json, summary_json_text(summary)))
    picture = None
    if args.reliability and calib is not None:
        if attempt("--reliability", args.reliability, lambda: calib.save_plot(args.reliability)):
            picture = args.reliability
    if args.report:
        figs: list[CaseFigure] | None = None
        ncases = DEFAULT_REPORT_CASES if args.report_cases is None else args.report_cases
        if args.probs and ncases > 0:
            if _have_matplotlib():
                preds = {c.name: c.pred for c in sc.cases}
                figs = case_figures(
                    argparse.Namespace(**{**vars(args), "report_cases": ncases}),
                    preds,
                    info,
                    failed,
                    log,
                )
            else:
                log.info("note: --report without case figures (they need matplotlib)")
        kind = report_kind(args.report) or "md"
        text = render(_report(args, sc, er, calib, picture, len(failed), figs), kind)
        attempt("--report", args.report, lambda: atomic_text(args.report, text))


def _f(x: float, digits: int = 4) -> str:
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def _report(
    args: argparse.Namespace,
    sc: _Scores,
    er: ExpectedRealized | None,
    calib: Any,
    picture: str | None,
    nfailed: int,
    figs: list[CaseFigure] | None = None,
) -> Report:
    metric = {"dice": "Dice", "iou": "IoU"}[args.metric]
    rep = Report("rankseg evaluate report")
    rep.para(
        f"{len(sc.cases)} case(s) evaluated"
        + (f", {nfailed} failed (see the command's error lines)" if nfailed else "")
        + f". Predictions: {', '.join(args.preds)}. Targets: {', '.join(args.target)}. "
        f"Scores are per case and class; a class absent from prediction and target "
        f"counts as {args.empty} (left out of the means when nan)."
    )
    rep.heading("Scores per class")
    rows = []
    fg: list[int] = [c for c in sc.shown if sc.cases[0].masks or c != 0]
    for c in sc.shown:
        d, iou = sc.dice[:, c], sc.iou[:, c]
        n = int((~np.isnan(sc.scores[:, c])).sum())
        rows.append([str(c), str(n), _f(_nanmean(d)), _f(_nanmean(iou))])
    fg_d = [_nanmean(sc.dice[:, c]) for c in fg]
    fg_i = [_nanmean(sc.iou[:, c]) for c in fg]
    rows.append(
        [
            "foreground mean",
            "",
            _f(sum(fg_d) / len(fg_d) if fg_d else math.nan),
            _f(sum(fg_i) / len(fg_i) if fg_i else math.nan),
        ]
    )
    rep.table(["class", "cases", "mean Dice", "mean IoU"], rows)
    if er is not None:
        rep.heading(f"Expected vs realized {metric}")
        o = er.overall
        rep.para(
            f"The expected {metric} of each class mask (rankseg predict --info, the solver's "
            f"estimate under the model) against the realized one: mean absolute error "
            f"{_f(o.mae)} over {o.pairs} (case, class) pairs, bias (expected - realized) "
            f"{_f(o.bias)}, correlation {_f(o.corr, 3)}."
        )
        rows = [
            [
                str(c),
                str(a.pairs),
                _f(a.expected),
                _f(a.realized),
                _f(a.mae),
                _f(a.bias),
                _f(a.corr, 3),
            ]
            for c, a in [*er.per_class.items(), ("all", er.overall)]
        ]
        rep.table(["class", "pairs", "expected", "realized", "MAE", "bias", "corr"], rows)
        if er.cases_without_info:
            rep.para(f"{len(er.cases_without_info)} case(s) have no --info row.")
        if abs(o.bias) > 0.05:
            rep.para(
                f"The expected scores are {'above' if o.bias > 0 else 'below'} the realized ones "
                f"by {abs(o.bias):.3f} on average: the probabilities look "
                f"{'over' if o.bias > 0 else 'under'}-confident for these cases. `rankseg "
                "calibrate` on validation cases fits a correction that `rankseg predict "
                "--calibration` applies."
            )
    worst = _worst(sc, fg)
    if worst:
        rep.heading(f"Worst cases (lowest mean foreground {metric})")
        exp = {(r[0], r[1]): r[2] for r in er.rows} if er is not None else {}
        rows = []
        for i, mean in worst:
            case = sc.cases[i]
            per = ", ".join(f"{c}: {_f(sc.scores[i, c], 3)}" for c in fg)
            row = [case.name, _f(mean), per]
            if er is not None:
                row.append(
                    ", ".join(f"{c}: {_f(exp.get((case.name, c), math.nan), 3)}" for c in fg)
                )
            rows.append(row)
        header = ["case", f"mean {metric}", f"{metric} per class"]
        if er is not None:
            header.append("expected per class")
        rep.table(header, rows)
    if calib is not None:
        rep.heading("Calibration of the probabilities")
        rep.para(calib.report_text())
        rep.table(*calib.report_table())
        if picture is not None:
            rel = os.path.relpath(Path(picture).resolve(), Path(args.report).resolve().parent)
            rep.image(Path(rel).as_posix(), "reliability diagram")
    if figs is not None:
        _report_figures(args, rep, figs, metric)
    return rep


def _report_figures(
    args: argparse.Namespace, rep: Report, figs: list[CaseFigure], metric: str
) -> None:
    """Add the section of the case figures (``--report-cases``)."""
    rep.heading("Where the decision differs from argmax")
    if not figs:
        rep.para(
            "No evaluated case with a --probs map differs from the argmax of its "
            "probabilities: nothing to draw."
        )
        return
    sources = sorted({f.source for f in figs})
    rep.para(
        f"The {len(figs)} case(s) whose prediction differs most from the argmax of its "
        "probabilities (--probs), most changed first.  Panels: the largest class "
        "probability, argmax, the evaluated prediction with the expected "
        f"{metric} of its classes (from {' and '.join(sources)}), and the voxels the "
        "prediction added, removed and relabelled against argmax, on the slice with the "
        "most changes."
    )
    base = Path(args.report).resolve().parent
    for f in figs:
        rel = Path(os.path.relpath(f.png.resolve(), base)).as_posix()
        rep.image(rel, f"{f.name}: prediction vs argmax")
        rep.para(
            f"{f.name}: {f.changed:,} of {f.voxels:,} voxels changed "
            f"({100.0 * f.changed / f.voxels:.2f} %)."
        )


def _nanmean(x: np.ndarray) -> float:
    ok = x[~np.isnan(x)]
    return float(ok.mean()) if ok.size else math.nan


def _worst(sc: _Scores, fg: list[int], k: int = 10) -> list[tuple[int, float]]:
    """Return the ``k`` cases of lowest mean foreground score (NaN cases left out)."""
    means = [(i, _nanmean(sc.scores[i, fg])) for i in range(len(sc.cases))] if fg else []
    means = [(i, m) for i, m in means if not math.isnan(m)]
    return sorted(means, key=lambda t: (t[1], sc.cases[t[0]].name))[:k]
