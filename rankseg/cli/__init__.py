"""The ``rankseg`` command line: ``predict``, ``evaluate``, ``calibrate``, ``demo``, ``warmup``.

``rankseg`` (or ``python -m rankseg``) with no arguments runs the demo.  See
``docs/cli.rst`` for every option and convention.

This module holds the argument parser and the dispatch; the commands live in
``rankseg.cli._predict``, ``rankseg.cli._evaluate``, ``rankseg.cli._calibrate`` and
``rankseg.cli._demo`` (what
they share in ``rankseg.cli._common``).  The solver registry (``AVAILABLE``,
``SOLVERS``) is looked up in this module when a command runs: the parser's help and
the demo list the solvers it names.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence

from rankseg import io as rio
from rankseg._api import AVAILABLE, SOLVERS
from rankseg._config import MAX_BAND_BYTES
from rankseg.cli._calibrate import add_calibrate_args, cmd_calibrate
from rankseg.cli._cluster import add_scheduler_args
from rankseg.cli._common import add_verbosity, configure_logging
from rankseg.cli._demo import run_demo
from rankseg.cli._evaluate import cmd_evaluate
from rankseg.cli._predict import cmd_predict
from rankseg.cli._tune import add_tune_args, cmd_tune
from rankseg.cli._warmup import add_warmup_args, cmd_warmup

__all__ = ["available_solvers", "build_parser", "demo", "main"]


class _Formatter(argparse.HelpFormatter):
    """Wrap descriptions and option help; keep text with line breaks (the examples) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


#: the example at the end of each command's --help (tests/test_cli_help.py runs them)
_EXAMPLES = {
    "rankseg": """\
Examples:
  rankseg predict nnunet_out -o rankseg_out --info rankseg_out/info.csv
  rankseg evaluate rankseg_out --target gt --json summary.json
  rankseg -v predict probs/ -o labels     (-v: debugging details; -q: warnings only)
  rankseg COMMAND -h                      (every option of a command)""",
    "predict": """\
Examples:
  rankseg predict nnunet_out -o rankseg_out --info rankseg_out/info.csv -j 4
  rankseg predict probs.npy -o labels --batch --metric iou
  rankseg predict fold_0 fold_1 --ensemble --calibration calibration.json -o labels""",
    "evaluate": """\
Examples:
  rankseg evaluate rankseg_out --target gt --json summary.json
  rankseg evaluate labels --target gt --info info.csv --probs nnunet_out \\
      --reliability reliability.png --report report.html --report-cases 5""",
    "calibrate": """\
Example:
  rankseg calibrate fold_0/validation fold_1/validation \\
      --target nnUNet_preprocessed/Dataset001/gt_segmentations -o calibration.json""",
    "tune": """\
Example:
  rankseg tune fold_0/validation fold_1/validation \\
      --target nnUNet_preprocessed/Dataset001/gt_segmentations --empty ignore -o tuned.json""",
    "demo": """\
Example:
  rankseg demo --shape 32 64 64 --classes 4 --plot demo.png""",
    "warmup": """\
Example:
  NUMBA_CACHE_DIR=/opt/numba-cache rankseg warmup --dtypes float32 float16""",
}

_VERBOSITY = re.compile(r"-v+|--verbose|-q|--quiet")
_DTYPES = ("uint8", "uint16", "uint32", "int8", "int16", "int32", "int64")


def available_solvers(metric: str) -> list[str]:
    """Solvers of ``metric`` that this installation can run.

    Parameters
    ----------
    metric : {'dice', 'iou', 'acc'}
        The metric.

    Returns
    -------
    list of str
        Names from :data:`rankseg._api.SOLVERS` that are in
        :data:`rankseg._api.AVAILABLE`, in the order of the specification.

    Examples
    --------
    >>> from rankseg.cli import available_solvers
    >>> "rma" in available_solvers("dice")
    True
    """
    return [s for s in SOLVERS[metric] if s in AVAILABLE]


def _solver_help() -> str:
    parts = [f"{m}: {', '.join(available_solvers(m))}" for m in SOLVERS]
    return "available here -- " + "; ".join(parts) + " (default: rma for dice/iou)"


# --------------------------------------------------------------------------- demo


def demo(
    spatial: Sequence[int] = (48, 96, 96),
    classes: int = 6,
    *,
    seed: int = 0,
    draws: int = 20,
    repeat: int = 5,
    plot: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Run the demo: argmax vs every available RankSEG solver on a generated volume.

    A seeded softmax probability volume (one sample, a dominant background and
    ``classes - 1`` foreground classes) is labelled by ``np.argmax`` and by each
    available Dice/IoU solver.  Ground truths are drawn from the probabilities (so
    the model is calibrated by construction).

    Parameters
    ----------
    spatial : sequence of int
        Spatial shape of the volume (any number of axes).
    classes : int
        Number of classes ``C >= 2`` (class 0 is the background).
    seed : int
        Seed of the volume and of the ground-truth draws.
    draws : int
        Number of ground truths drawn (>= 2).
    repeat : int
        Timing repetitions (median reported, interleaved across methods).
    plot : path-like, optional
        Also write a PNG: where the decision changed (the most changed slice:
        the confidence, argmax, RankSEG Dice with the expected Dice per class, and
        the voxels it added, removed, relabelled; :func:`rankseg.plot.plot_case`) over
        the per-class Dice gains in the classes' colours (needs matplotlib).
    progress : callable, optional
        Called with a line for each step (the volume, each method's first call with
        its time -- compiling the kernels at the first use in an environment --,
        the timing rounds, the scoring); ``rankseg demo`` prints them to stderr.

    Returns
    -------
    str
        The report table: for each method, the RMA estimate of the expected Dice
        and IoU under the model, the Dice and IoU realized against the drawn
        truths (mean ± standard error over the draws, averaged over the foreground
        classes), and the time as a ratio to ``np.argmax``.

    Raises
    ------
    ValueError
        For a shape, class count, draw or repeat count out of range.
    """
    return run_demo(
        spatial,
        classes,
        seed=seed,
        draws=draws,
        repeat=repeat,
        plot=plot,
        solvers=available_solvers,
        progress=progress,
    )


def _check_plot_path(path: str) -> str | None:
    """Why the demo could not save its figure to ``path``, or None."""
    from rankseg.cli._common import check_picture_path

    return check_picture_path(path, "--plot")


def _cmd_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.classes < 2 or min(args.shape) < 1 or args.draws < 2 or args.repeat < 1:
        parser.error("need --classes >= 2, every --shape size >= 1, --draws >= 2, --repeat >= 1")
    if args.plot is not None and (why := _check_plot_path(args.plot)):
        parser.error(why)  # before the demo runs, not after
    print(
        demo(
            args.shape,
            args.classes,
            seed=args.seed,
            draws=args.draws,
            repeat=args.repeat,
            plot=args.plot,
            progress=lambda line: print(line, file=sys.stderr, flush=True),
        )
    )
    return 0


# ------------------------------------------------------------------------- parser


def _add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shape",
        type=int,
        nargs="+",
        default=[48, 96, 96],
        metavar="N",
        help="spatial shape of the generated volume (default: 48 96 96)",
    )
    p.add_argument(
        "--classes", type=int, default=6, help="number of classes, background included (default: 6)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--draws", type=int, default=20, help="ground-truth draws (default: 20)")
    p.add_argument("--repeat", type=int, default=5, help="timing repetitions (default: 5)")
    p.add_argument("--plot", metavar="PNG", help="also write a picture (needs matplotlib)")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``rankseg`` argument parser.

    Returns
    -------
    argparse.ArgumentParser
        The parser with the ``predict``, ``evaluate``, ``calibrate``, ``demo`` and
        ``warmup`` subcommands.
    """
    parser = argparse.ArgumentParser(
        prog="rankseg",
        description="RankSEG: label maps that maximize the expected Dice or IoU of each case. "
        "Without a command, runs the demo.",
        epilog=_EXAMPLES["rankseg"],
        formatter_class=_Formatter,
    )
    parser.add_argument(
        "--version",
        action="store_true",
        help="print the version, numba's, whether compiled kernels are in use, and CUDA; exit",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    pp = sub.add_parser(
        "predict",
        help="probability maps on disk -> label maps",
        description="Decide label maps for saved probability maps (.npy, .npz, nnU-Net "
        "output folders, 4-D NIfTI, zarr/netCDF). Output names mirror the inputs in OUTDIR.",
        epilog=_EXAMPLES["predict"],
        formatter_class=_Formatter,
    )
    pp.add_argument("inputs", nargs="+", metavar="INPUT", help="files or folders")
    pp.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    g = pp.add_argument_group("decision")
    g.add_argument(
        "--metric",
        type=str.lower,
        choices=("dice", "iou", "acc"),
        help="metric to optimize (default: dice)",
    )
    g.add_argument("--solver", help=_solver_help())
    g.add_argument(
        "--output-mode",
        type=str.lower,
        choices=("multiclass", "multilabel"),
        help="one label map (default) or one mask per class (the default for "
        "region-based nnU-Net output)",
    )
    g.add_argument("--smooth", type=float, help="smoothing gamma >= 0 (default: 0)")
    g.add_argument(
        "--pruning-prob",
        type=float,
        help="a class whose max probability is <= P gets an empty mask (default: 0.5, 0 "
        "with --empty ignore; lower it for soft models)",
    )
    g.add_argument(
        "--empty",
        type=str.lower,
        choices=("zero", "one", "ignore"),
        help="how your benchmark scores a class absent from the truth: 0 (default), 1 when "
        "the mask is empty too (MONAI ignore_empty=False), or left out (ignore_empty=True); "
        "with 'one' a class gets a mask iff argmax gives it a pixel (docs/when_it_helps.rst)",
    )
    g.add_argument("--eps", type=float, help="refined-normal window mass (ba/trna solvers)")
    g.add_argument(
        "--unassigned-policy",
        type=str.lower,
        choices=("max_score", "void"),
        help="pixels no class selects: best increment (default) or --void-index",
    )
    g.add_argument("--void-index", type=int, help="label of unassigned pixels (default: 255)")
    g = pp.add_argument_group("input and output")
    g.add_argument(
        "--format",
        default="auto",
        type=str.lower,
        choices=("auto", *rio.FORMATS),
        help="input format (default: from the file names)",
    )
    g.add_argument(
        "--key",
        help="array name in .npz (default: probabilities, then softmax) or variable in zarr/netCDF",
    )
    g.add_argument(
        "--class-axis",
        type=int,
        help="class axis of the stored arrays (default: 0, 1 with --batch, last for NIfTI)",
    )
    g.add_argument(
        "--batch",
        action="store_true",
        help=".npy/.npz arrays are batches (B, C, *spatial), not one case (C, *spatial)",
    )
    g.add_argument(
        "--dtype", choices=_DTYPES, help="label dtype (default: the smallest that holds the labels)"
    )
    g.add_argument(
        "--max-band-bytes",
        type=int,
        default=MAX_BAND_BYTES,
        metavar="BYTES",
        help="chunked zarr stores: memory this process may spend on the candidate bands "
        "the exact/ba/trna solvers gather (default: 2 GiB)",
    )
    g.add_argument(
        "--ensemble",
        action="store_true",
        help="the INPUTs are prediction folders of the same cases (nnU-Net folds made with "
        "--save_probabilities): average each case's probabilities as nnUNetv2_ensemble does, "
        "then decide; names and geometry come from the first folder",
    )
    g = pp.add_argument_group("running")
    g.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="WORKERS",
        help="worker processes, each holding one volume at a time (default: 1)",
    )
    g.add_argument(
        "--continue", dest="resume", action="store_true", help="skip cases whose output exists"
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (without it or --continue, existing outputs are a "
        "usage error and nothing is written)",
    )
    add_scheduler_args(g, workers_write=True)
    g.add_argument(
        "--num-parts",
        type=int,
        default=1,
        metavar="K",
        help="split the cases into K parts (run one job per part)",
    )
    g.add_argument(
        "--part-id",
        type=int,
        default=0,
        metavar="I",
        help="which part this job processes, 0 <= I < K",
    )
    g.add_argument(
        "--info",
        metavar="CSV",
        help="write tau, threshold, expected score, pruned per (case, class)",
    )
    g.add_argument(
        "--accept-class-sums",
        action="store_true",
        help="decide multiclass maps whose class probabilities do not sum to 1 anyway (by "
        "default such a case is an error: the usual cause is a wrong --class-axis)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = pp.add_argument_group("calibration")
    g.add_argument(
        "--calibration",
        metavar="JSON",
        help="apply the calibration fitted by `rankseg calibrate` to each case's "
        "probabilities (with --ensemble: to the averaged ones) before deciding, e.g. "
        "--calibration calibration.json",
    )
    g.add_argument(
        "--tuned",
        metavar="JSON",
        help="decide with the rule `rankseg tune` wrote (its calibration, metric, solver, "
        "empty= convention and presence rule); replaces the decision options, e.g. "
        "--tuned tuned.json",
    )

    pe = sub.add_parser(
        "evaluate",
        help="Dice/IoU of label maps against targets",
        description="Samplewise Dice or IoU of predicted label maps (or masks) against targets, "
        "paired by case name.",
        epilog=_EXAMPLES["evaluate"],
        formatter_class=_Formatter,
    )
    pe.add_argument("preds", nargs="+", metavar="PRED", help="prediction files or folders")
    pe.add_argument(
        "--target", nargs="+", required=True, metavar="TARGET", help="target files or folders"
    )
    pe.add_argument("--metric", default="dice", type=str.lower, choices=("dice", "iou"))
    pe.add_argument("--csv", metavar="CSV", help="write one row per (case, class)")
    pe.add_argument(
        "--num-classes",
        type=int,
        help="labels outside [0, N) count for no class (default: 1 + the largest "
        "label of each pair)",
    )
    pe.add_argument("--exclude-background", action="store_true", help="leave class 0 out")
    pe.add_argument(
        "--empty",
        default="nan",
        choices=("nan", "one", "zero", "ignore"),
        help="score of a class absent from prediction and target (default: nan, "
        "left out of the means); ignore: every class absent from the target is left out "
        "(MONAI ignore_empty=True, the --empty ignore of predict)",
    )
    pe.add_argument("--key", help="array name in prediction .npz files")
    g = pe.add_argument_group("more outputs")
    g.add_argument(
        "--json",
        metavar="SUMMARY",
        help="write nnU-Net's summary.json (metric_per_case, mean, foreground_mean; Dice, IoU, "
        "TP, FP, FN, TN, n_pred, n_ref per class), e.g. --json summary.json",
    )
    g.add_argument(
        "--info",
        nargs="+",
        metavar="CSV",
        help="the --info tables of `rankseg predict` for these predictions: print the expected "
        "score next to the realized one (MAE, bias, correlation per class), e.g. --info info.csv",
    )
    g.add_argument(
        "--probs",
        nargs="+",
        metavar="PROBS",
        help="the probability maps behind the predictions (any `rankseg predict` input, paired "
        "with the targets by case name): print their NLL, Brier score and ECE, e.g. --probs "
        "fold_0/validation",
    )
    g.add_argument(
        "--reliability",
        metavar="PNG",
        help="with --probs: draw the reliability diagram (needs matplotlib, the 'plot' extra), "
        "e.g. --reliability reliability.png",
    )
    g.add_argument(
        "--report",
        metavar="REPORT",
        help="write a one-page report, Markdown (.md) or HTML (.html): per-class scores, "
        "worst cases, expected vs realized, calibration, e.g. --report report.html",
    )
    g.add_argument(
        "--report-cases",
        type=int,
        metavar="N",
        help="with --report and --probs: a figure (PNG beside the report) of each of the N "
        "cases where RankSEG changed argmax's decision most: image or confidence, argmax, "
        "RankSEG with the expected Dice per class, the difference (default: 6; 0: none; needs "
        "matplotlib)",
    )
    g.add_argument(
        "--n-bins",
        type=int,
        default=15,
        metavar="N",
        help="confidence bins of the ECE and the reliability diagram (default: 15)",
    )
    g.add_argument(
        "--ignore-index",
        type=int,
        metavar="LABEL",
        help="with --probs: target pixels with this label are left out of NLL/Brier/ECE",
    )
    add_scheduler_args(pe.add_argument_group("running"))

    pc = sub.add_parser(
        "calibrate",
        help="fit a temperature (or vector) scaling on validation cases",
        description="Fit a calibration of the probability maps of validation cases against "
        "their ground truths (negative log-likelihood on a seeded subsample of the pixels; "
        "cases are streamed one at a time) and write it as JSON for `rankseg predict "
        "--calibration`.  Prints the fitted parameters and NLL, Brier score and ECE of the "
        "cases before -> after.  Exit status 0, 1 when a case cannot be read or paired "
        "(nothing is written), 2 for a usage error.",
        epilog=_EXAMPLES["calibrate"],
        formatter_class=_Formatter,
    )
    add_calibrate_args(pc)
    pc.set_defaults(handler=cmd_calibrate, subparser=pc)
    pt = sub.add_parser(
        "tune",
        help="tune RankSEG on validation cases (calibration, presence, pruning)",
        description="Tune the decision on validation cases with ground truths to maximize "
        "the realized metric under your benchmark's empty-mask convention (--empty): a "
        "temperature, how a class is judged present, pruning (rankseg.tune).  Prints a "
        "cross-validated comparison with argmax and a tuned per-class bias / threshold, "
        "and writes the rule as JSON for `rankseg predict --tuned`.  The cases are held in "
        "memory.  Exit status 0, 1 when a case cannot be read or paired (nothing is "
        "written), 2 for a usage error.",
        epilog=_EXAMPLES["tune"],
        formatter_class=_Formatter,
    )
    add_tune_args(pt)
    pt.set_defaults(handler=cmd_tune, subparser=pt)
    pd = sub.add_parser(
        "demo",
        help="argmax vs RankSEG on a generated 3-D volume (default)",
        description="Label a seeded softmax volume with np.argmax and with every available "
        "Dice/IoU solver; print the expected and realized Dice and IoU of each against "
        "truths drawn from the probabilities, and the time as a ratio to argmax.",
        epilog=_EXAMPLES["demo"],
        formatter_class=_Formatter,
    )
    _add_demo_args(pd)
    pp.set_defaults(handler=cmd_predict, subparser=pp)
    pe.set_defaults(handler=cmd_evaluate, subparser=pe)
    pd.set_defaults(handler=_cmd_demo, subparser=pd)
    pw = sub.add_parser(
        "warmup",
        help="compile the kernels into numba's disk cache (once per install: Docker, clusters)",
        description="Compile the kernels into numba's disk cache by one tiny call of every "
        "solver, so that later processes load machine code instead of compiling it.  Each "
        "call's time is logged; the summary line names the cache.",
        epilog=_EXAMPLES["warmup"],
        formatter_class=_Formatter,
    )
    add_warmup_args(pw)
    pw.set_defaults(handler=cmd_warmup, subparser=pw)
    add_verbosity(parser)
    for sp in (pp, pe, pc, pt, pd, pw):
        add_verbosity(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rankseg`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default: ``sys.argv[1:]``).  No arguments runs the demo; options
        without a command (``rankseg --shape 16 32 32``) are the demo's.

    Returns
    -------
    int
        Exit status: 0 success, 1 some cases failed, 2 usage error, 130 interrupted.

    Raises
    ------
    SystemExit
        With status 2 for a usage error found in the arguments or options
        (argparse's behaviour: the message is printed to stderr first).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:
        from rankseg.cli._version import version_report

        print(version_report())
        return 0
    lead = 0  # -v/-q before the command: rankseg -v predict ...
    while lead < len(args_list) and _VERBOSITY.fullmatch(args_list[lead]):
        lead += 1
    rest = args_list[lead:]
    if not rest or (rest[0].startswith("-") and rest[0] not in ("-h", "--help", "--version")):
        args_list = [*args_list[:lead], "demo", *rest]
    parser = build_parser()
    args = parser.parse_args(args_list)
    if getattr(args, "version", False):
        parser.error("--version takes no other arguments")
    # -v/-q may come before or after the command (their defaults are suppressed)
    args.verbose = int(getattr(args, "verbose", 0) or 0)
    args.quiet = bool(getattr(args, "quiet", False))
    with configure_logging(args.verbose, args.quiet):
        return int(args.handler(args, args.subparser))
