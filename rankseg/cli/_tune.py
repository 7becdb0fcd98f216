"""``rankseg tune``: tune the decision on validation cases (:func:`rankseg.tune`).

The probability maps (the inputs of ``rankseg calibrate``) are paired with their ground
truths by case name and read into memory, one batch per case (cases may differ in
shape); :func:`rankseg.tune` chooses a temperature, the presence rule and pruning for
the metric and ``--empty`` convention, with a cross-validated report, and the rule is
written as JSON (atomically) for ``rankseg predict --tuned``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rankseg.cli._calibrate import add_case_input_args, add_case_layout_args
from rankseg.cli._cluster import add_scheduler_args
from rankseg.cli._common import (
    EXIT_INTERRUPTED,
    Log,
    check_output_file,
    one_line,
)


def add_tune_args(p: argparse.ArgumentParser) -> None:
    """Add the options of ``rankseg tune`` to ``p``.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The ``tune`` subcommand's parser.
    """
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="VAL",
        help="probability maps of validation cases: files or folders, in any format "
        "`rankseg calibrate` reads (e.g. several nnU-Net fold_k/validation folders)",
    )
    p.add_argument(
        "--target",
        nargs="+",
        required=True,
        metavar="LABELS",
        help="ground-truth label maps (files or folders), paired with VAL by case name",
    )
    p.add_argument("-o", "--output", required=True, metavar="JSON", help="the rule to write")
    g = p.add_argument_group("what to tune for")
    g.add_argument(
        "--metric",
        default="dice",
        type=str.lower,
        choices=("dice", "iou"),
        help="the metric of your benchmark (default: dice)",
    )
    g.add_argument(
        "--empty",
        default="zero",
        type=str.lower,
        choices=("zero", "one", "ignore"),
        help="how your benchmark scores a class absent from the truth: 0 (default), 1 when "
        "the mask is empty too (MONAI ignore_empty=False), or left out (ignore_empty=True, "
        "nnU-Net-like)",
    )
    add_case_layout_args(g)
    g.add_argument(
        "--exclude-background",
        action="store_true",
        help="class 0 does not count in the score (e.g. a binary softmax's background)",
    )
    g.add_argument("--solver", default="rma", help="the RankSEG solver (default: rma)")
    g.add_argument("--no-calibrate", action="store_true", help="do not try a fitted temperature")
    g.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds over cases (default: 5)"
    )
    g.add_argument("--seed", type=int, default=0, help="seed of folds and subsample (default: 0)")
    add_case_input_args(p)
    add_scheduler_args(p.add_argument_group("running"))


def cmd_tune(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run ``rankseg tune``; return the exit status."""
    from rankseg import RankSEG
    from rankseg.cli._cluster import connected

    log = Log(args.quiet)
    if why := check_output_file(args.output, "-o"):
        parser.error(why)
    if args.folds < 2:
        parser.error(f"--folds must be >= 2; got {args.folds}")
    try:  # every parameter checked before a file is read
        RankSEG(
            args.metric,
            output_mode=args.output_mode or "multiclass",
            solver=args.solver,
            empty=args.empty,
        )
    except (TypeError, ValueError) as exc:
        parser.error(one_line(exc))
    with connected(args, parser) as client:
        return _tune(args, parser, log, client)


def _tune(args: argparse.Namespace, parser: argparse.ArgumentParser, log: Log, client: Any) -> int:
    from rankseg.cli._calibrate import (
        CaseFailed,
        case_jobs,
        default_mode,
        fail,
        read_case,
        stream,
        task_failed,
        validation_pairs,
    )
    from rankseg.cli._cluster import as_given, in_order
    from rankseg.cli._common import progress
    from rankseg.tuning import tune

    pairs = validation_pairs(args, parser, log, "tune")
    if isinstance(pairs, int):
        return pairs
    mode = args.output_mode or default_mode(pairs)
    show = not (args.no_progress or args.quiet) and sys.stderr.isatty()
    state: dict[str, Any] = {"case": None}
    bar = progress(len(pairs), show)
    log.bar = bar
    probs, labels = [], []
    log.info(f"rankseg tune: reading {len(pairs)} case(s)")
    jobs = case_jobs(args, pairs, mode, client)
    try:
        if client is None:
            for p, y in stream(jobs, state, bar):
                probs.append(p)
                labels.append(y)
        else:  # the workers read the cases, in parallel; they arrive in case order
            for (path, _, target), res in zip(
                pairs, in_order(client, read_case, jobs, task_failed), strict=True
            ):
                if isinstance(res, str):
                    raise CaseFailed(as_given(res, path, target))
                probs += [p for p, _ in res]
                labels += [y for _, y in res]
                if bar is not None:
                    bar.update(1)
    except KeyboardInterrupt:
        log.error(f"rankseg tune: interrupted; nothing written to {args.output}")
        return EXIT_INTERRUPTED
    except CaseFailed as exc:
        return fail(log, str(exc), args.output, "tune")
    finally:
        if bar is not None:
            bar.close()
        log.bar = None
    log.info(
        f"rankseg tune: tuning {args.metric} ({mode}, empty={args.empty!r}) over "
        f"{min(args.folds, len(probs))} folds"
    )
    try:
        rule = tune(
            probs,
            labels,
            metric=args.metric,
            output_mode=mode,
            empty=args.empty,
            ignore_index=args.ignore_index,
            include_background=not args.exclude_background,
            solver=args.solver,
            calibrate=not args.no_calibrate,
            folds=args.folds,
            seed=args.seed,
        )
    except KeyboardInterrupt:
        log.error(f"rankseg tune: interrupted; nothing written to {args.output}")
        return EXIT_INTERRUPTED
    except (TypeError, ValueError) as exc:
        msg = one_line(exc)
        files = [str(f) for (f, _, _), p in zip(pairs, probs, strict=True) for _ in p]
        if msg.startswith("case ") and ":" in msg:  # name the file of a numbered case
            k, rest = msg[5:].split(":", 1)
            if k.strip().isdigit() and int(k) < len(files):
                msg = f"{files[int(k)]}:{rest}"
        return fail(log, msg, args.output, "tune")
    if rule.report is None:  # tune() always attaches its report
        raise AttributeError("the tuned rule has no report; expected tune() to attach one")
    print(rule.report.to_markdown())
    try:
        rule.save(args.output)
    except OSError as exc:
        return fail(log, f"{args.output}: {one_line(exc)}", args.output, "tune")
    log.info(f"rankseg tune: wrote {args.output}")
    return 0
