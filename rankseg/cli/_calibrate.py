"""``rankseg calibrate``: fit a temperature (or vector) scaling on validation cases.

The probability maps (any input of ``rankseg predict``) are paired with their ground
truths by case name and streamed, one case at a time, into
:meth:`rankseg.calibration.TemperatureScaling.fit`, which keeps a seeded subsample of
the pixels.  A second pass measures NLL, Brier score and ECE of every case before and
after the calibration.  The JSON is written (atomically) only when every case was read
and the fit succeeded.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rankseg import io as rio
from rankseg.cli._cluster import add_scheduler_args, as_given, connected, in_flight, in_order
from rankseg.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Log,
    check_output_file,
    one_line,
)

_CASE_PREFIX = re.compile(r"^case \d+(, sample \d+)?: ")
_CASE_NUMBER = re.compile(r"^case \d+ ")


def add_calibrate_args(p: argparse.ArgumentParser) -> None:
    """Add the options of ``rankseg calibrate`` to ``p``."""
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="VAL",
        help="probability maps of validation cases: files or folders, in any format `rankseg "
        "predict` reads (e.g. several nnU-Net fold_k/validation folders)",
    )
    p.add_argument(
        "--target",
        nargs="+",
        required=True,
        metavar="LABELS",
        help="ground-truth label maps (files or folders), paired with VAL by case name",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="JSON", help="the calibration file to write"
    )
    g = p.add_argument_group("fit")
    g.add_argument(
        "--method",
        default="temperature",
        type=str.lower,
        choices=("temperature", "vector"),
        help="one temperature for every class (default), or a scale and bias per class",
    )
    add_case_layout_args(g)
    g.add_argument(
        "--max-pixels",
        type=int,
        default=2_000_000,
        metavar="N",
        help="pixels kept for the fit: a seeded uniform subsample of all cases (default: 2000000)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the subsample (default: 0)")
    g.add_argument(
        "--n-bins",
        type=int,
        default=15,
        metavar="N",
        help="confidence bins of the ECE printed before -> after (default: 15)",
    )
    add_case_input_args(p)
    add_scheduler_args(p.add_argument_group("running"))


def add_case_layout_args(g: Any) -> None:
    """Add ``--output-mode`` and ``--ignore-index`` (``calibrate``, ``tune``) to ``g``.

    Parameters
    ----------
    g : argparse argument group or parser
        Where the options go.
    """
    g.add_argument(
        "--output-mode",
        type=str.lower,
        choices=("multiclass", "multilabel"),
        help="softmax classes (default) or one sigmoid per class (the default for "
        "region-based nnU-Net output); use the mode `rankseg predict` will decide in",
    )
    g.add_argument(
        "--ignore-index",
        type=int,
        metavar="LABEL",
        help="ground-truth label left out of the fit and the scores (a void label)",
    )


def add_case_input_args(p: argparse.ArgumentParser) -> None:
    """Add how validation cases are read (``calibrate``, ``tune``) to ``p``.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The subcommand's parser.
    """
    g = p.add_argument_group("input")
    g.add_argument(
        "--format",
        default="auto",
        type=str.lower,
        choices=("auto", "npy", "npz", "nnunet", "nifti", "zarr", "netcdf"),
        help="input format (default: from the file names)",
    )
    g.add_argument(
        "--key",
        help="array name in .npz (default: probabilities, then softmax) or variable in zarr/netCDF",
    )
    g.add_argument(
        "--class-axis",
        type=int,
        help="class axis of the stored arrays (default: 0, 1 with --batch, last for NIfTI; "
        "the dim named 'class' in zarr/netCDF)",
    )
    g.add_argument(
        "--batch",
        action="store_true",
        help=".npy/.npz arrays (zarr/netCDF variables) are batches (B, C, *spatial); the "
        "target then holds (B, *spatial)",
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


class CaseFailed(Exception):
    """A case could not be read or paired; the message names it."""


def _calibrator(args: argparse.Namespace, mode: str) -> Any:
    from rankseg import calibration as cal

    cls = cal.TemperatureScaling if args.method == "temperature" else cal.VectorScaling
    return cls(mode, ignore_index=args.ignore_index, max_pixels=args.max_pixels, seed=args.seed)


def default_mode(pairs: list[tuple[Path, str, Path]]) -> str:
    """Multilabel for a region-based nnU-Net dataset, else multiclass."""
    from rankseg.cli._cases import nnunet_regions

    path, fmt, _ = pairs[0]
    if fmt == "auto":
        try:
            fmt = rio.detect_format(path)
        except ValueError:
            return "multiclass"
    if fmt == "nnunet" and nnunet_regions(path) is not None:
        return "multilabel"
    return "multiclass"


@dataclass(frozen=True)
class _CaseJob:
    """How to read one validation case (a task on a cluster)."""

    path: str  # the probability map
    format: str
    target: str
    mode: str
    key: str | None
    class_axis: int | None
    batch: bool
    ignore_index: int | None


def case_jobs(
    args: argparse.Namespace, pairs: list[tuple[Path, str, Path]], mode: str, client: Any = None
) -> list[_CaseJob]:
    """Return the reading jobs of the validation ``pairs`` (absolute paths for a cluster).

    Parameters
    ----------
    args : argparse.Namespace
        ``key``, ``class_axis``, ``batch`` and ``ignore_index`` of the command.
    pairs : list
        ``(probability file, format, target)`` per case (:func:`validation_pairs`).
    mode : {'multiclass', 'multilabel'}
        The calibration mode.
    client : distributed.Client, optional
        The cluster whose workers read the files: the paths are made absolute.

    Returns
    -------
    list of _CaseJob
        One job per case, in the order of ``pairs``.
    """
    fix = os.path.abspath if client is not None else str
    return [
        _CaseJob(
            fix(str(path)),
            fmt,
            fix(str(target)),
            mode,
            args.key,
            args.class_axis,
            args.batch,
            args.ignore_index,
        )
        for path, fmt, target in pairs
    ]


def _case_items(job: _CaseJob) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the ``(probs, labels)`` batches of one case (the samples of a store).

    Raises
    ------
    _CaseFailed
        If the case cannot be read or does not fit its target.
    """
    from rankseg.cli._cases import target_like

    path = Path(job.path)
    try:
        kind = rio.detect_format(path) if job.format == "auto" else job.format
        if kind in ("zarr", "netcdf"):
            yield from _store_cases(job, path, kind)
            return
        pm = rio.load_probabilities(
            path, format=job.format, key=job.key, class_axis=job.class_axis, batch=job.batch
        )
        y = target_like(pm, Path(job.target), job.mode, job.ignore_index)
    except CaseFailed:
        raise
    except Exception as exc:
        raise CaseFailed(f"{path}: {one_line(exc)}") from None
    yield pm.probs, y


def stream(
    jobs: list[_CaseJob], state: dict[str, Any], bar: Any
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(probs, labels)`` per case; ``state['case']`` names the case being read."""
    for job in jobs:
        state["case"] = job.path
        yield from _case_items(job)
        if bar is not None:
            bar.update(1)
    state["case"] = None


def _store_cases(job: _CaseJob, path: Path, kind: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the samples of a zarr/netCDF store, one ``(probs, labels)`` batch each.

    The variable's layout is taken as ``rankseg predict`` takes it (``store_layout``);
    the target (``.npy``/``.npz``/NIfTI) holds the labels in the order of the other
    dims, with the sample axis first under ``--batch``.  Only one sample's
    probabilities are in memory at a time.
    """
    from rankseg.cli._cases import target_like
    from rankseg.cli._predict import store_layout

    try:
        da = rio.load_dataarray(path, format=kind, key=job.key)
        class_dim, sample_dims = store_layout(list(da.dims), job.class_axis, job.batch)
        rest = [d for d in da.dims if d != class_dim and d not in sample_dims]
        da = da.transpose(*sample_dims, class_dim, *rest)
        shape = da.shape if sample_dims else (1, *da.shape)
        # the layout alone (no data): target_like checks the target against it
        like = rio.ProbabilityMap(
            np.broadcast_to(np.zeros((), da.dtype), shape), path, kind, bool(sample_dims)
        )
        y = target_like(like, Path(job.target), job.mode, job.ignore_index)
    except Exception as exc:
        raise CaseFailed(f"{path}: {one_line(exc)}") from None
    for b in range(shape[0]):
        probs = np.asarray(da[b].values if sample_dims else da.values)[None]
        yield probs, y[b : b + 1]


def validation_pairs(
    args: argparse.Namespace, parser: argparse.ArgumentParser, log: Log, command: str
) -> list[tuple[Path, str, Path]] | int:
    """Pair the validation cases of ``args.inputs`` with ``args.target`` by case name.

    Every case must pair, and once (cross-validation folds hold disjoint cases): else
    the problems are logged and an exit status is returned, before any case is read.

    Parameters
    ----------
    args : argparse.Namespace
        ``inputs``, ``format``, ``target`` and ``output`` of the command.
    parser : argparse.ArgumentParser
        For usage errors.
    log : _Log
        Where problems go.
    command : str
        ``"calibrate"`` or ``"tune"``, for the messages.

    Returns
    -------
    list or int
        ``(probability file, format, target)`` per case, or the exit status.
    """
    from rankseg.cli._cases import pair_cases
    from rankseg.cli._evaluate import label_files

    cases = rio.find_inputs(args.inputs, args.format)
    if not cases:
        log.error(
            f"rankseg {command}: error: no probability maps found in {', '.join(args.inputs)}"
        )
        return EXIT_USAGE
    missing = [t for t in args.target if not Path(t).exists()]
    if missing:
        parser.error(f"--target {' '.join(missing)}: no such file or folder")
    targets = label_files(args.target)
    if not targets:
        parser.error(f"no ground-truth files found in --target {' '.join(args.target)}")
    pairs, problems = pair_cases(cases, targets)
    seen: dict[str, Path] = {}
    for path, _, _ in pairs:  # e.g. the same cases in several test folders: not validation
        name = rio.case_name(path)
        if name in seen:
            problems.append(
                f"{path}: the case {name} is also {seen[name]} (each validation case once; "
                "cross-validation folds hold disjoint cases)"
            )
        seen.setdefault(name, path)
    if problems:  # every case is needed: stop before reading any
        for line in problems:
            log.error(f"error: {line}")
        log.error(
            f"rankseg {command}: {len(problems)} of {len(cases)} case(s) cannot be paired; "
            f"nothing written to {args.output}"
        )
        return EXIT_FAILED
    return pairs


def fail(log: Log, msg: str, output: str, command: str = "calibrate") -> int:
    """Log a failure of ``rankseg COMMAND`` that wrote nothing; return its exit status."""
    log.error(f"error: {msg}")
    log.error(f"rankseg {command}: nothing written to {output}")
    return EXIT_FAILED


def _fit_message(exc: BaseException) -> str:
    """Word an error of the fit for a line that names the case's file."""
    msg = _CASE_PREFIX.sub("", one_line(exc))
    msg = _CASE_NUMBER.sub("the case ", msg)  # the stream's numbering means nothing here
    return msg.replace("mode='multilabel'", "--output-mode multilabel")


def cmd_calibrate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    log = Log(args.quiet)
    if why := check_output_file(args.output, "-o"):
        parser.error(why)
    if args.n_bins < 1:
        parser.error(f"--n-bins must be >= 1; got {args.n_bins}")
    try:  # every parameter checked before a file is read
        _calibrator(args, args.output_mode or "multiclass")
    except (TypeError, ValueError) as exc:
        parser.error(one_line(exc).replace("max_pixels", "--max-pixels"))
    with connected(args, parser) as client:
        return _calibrate(args, parser, log, client)


def _calibrate(
    args: argparse.Namespace, parser: argparse.ArgumentParser, log: Log, client: Any
) -> int:
    from rankseg.cli._common import progress
    from rankseg.cli._reliability import Pooled, metrics_table

    pairs = validation_pairs(args, parser, log, "calibrate")
    if isinstance(pairs, int):
        return pairs
    mode = args.output_mode or default_mode(pairs)
    model = _calibrator(args, mode)
    jobs = case_jobs(args, pairs, mode, client)
    show = not (args.no_progress or args.quiet) and sys.stderr.isatty()
    state: dict[str, Any] = {"case": None}
    before = Pooled(mode, args.n_bins, args.ignore_index)
    after = Pooled(mode, args.n_bins, args.ignore_index)
    log.info(f"rankseg calibrate: fitting {args.method} scaling ({mode}) on {len(pairs)} case(s)")
    for step in ("fit", "check"):
        bar = progress(len(pairs), show)
        log.bar = bar
        try:
            if step == "fit" and client is None:
                model.fit(stream(jobs, state, bar))
            elif step == "fit":
                _fit_on_cluster(client, model, jobs, pairs, bar)
            elif client is None:
                for probs, y in stream(jobs, state, bar):
                    before.add(probs, y)
                    after.add(model.transform(probs), y)
            else:
                run = functools.partial(_measure, model=model, n_bins=args.n_bins)
                for (path, _, target), res in zip(
                    pairs, in_order(client, run, jobs, task_failed), strict=True
                ):
                    if isinstance(res, str):
                        raise CaseFailed(as_given(res, path, target))
                    for b, a in res:
                        before.pool(b)
                        after.pool(a)
                    if bar is not None:
                        bar.update(1)
        except KeyboardInterrupt:
            log.error(f"rankseg calibrate: interrupted; nothing written to {args.output}")
            return EXIT_INTERRUPTED
        except CaseFailed as exc:
            return fail(log, str(exc), args.output)
        except Exception as exc:
            msg = _fit_message(exc)
            where = state["case"]
            return fail(log, f"{where}: {msg}" if where is not None else msg, args.output)
        finally:
            if bar is not None:
                bar.close()
            log.bar = None
    print(_describe(model, mode))
    print(metrics_table({"before": before, "after": after}, args.n_bins))
    try:
        model.save(args.output)
    except Exception as exc:
        return fail(log, f"{args.output}: {one_line(exc)}", args.output)
    log.info(f"rankseg calibrate: wrote {args.output}")
    return 0


# -- on a dask cluster: the cases are read (and sampled, measured) by the workers --------
def task_failed(job: _CaseJob, message: str) -> str:
    return f"{job.path}: {message}"


def _case_error(job: _CaseJob, exc: Exception) -> str:
    """Return the error line of a case that failed on a worker, as a local run words it."""
    if isinstance(exc, CaseFailed):
        return str(exc)
    return f"{job.path}: {_fit_message(exc)}"


@dataclass
class _Loaded:
    """A case read and checked on a worker, kept there for its sampling task."""

    cases: list[Any]  # rankseg.calibration._Case, one per batch (a store's samples)
    counted: list[tuple[int, int]]  # (classes, counted pixels) of each
    error: str = ""


def _load(job: _CaseJob) -> _Loaded:
    """Read one case, check it and count its pixels as the fit does (never raises)."""
    from rankseg import calibration as cal

    cases, counted = [], []
    try:
        for i, (probs, y) in enumerate(_case_items(job)):
            case = cal.Case(
                i,
                probs,
                y,
                mode=job.mode,
                from_logits=False,
                ignore_index=job.ignore_index,
                n_classes=None,
            )
            counted.append((case.n_classes, cal.offer_case(case, None)))
            cases.append(case)
    except Exception as exc:
        return _Loaded([], [], _case_error(job, exc))
    return _Loaded(cases, counted)


def _summary(loaded: _Loaded) -> tuple[str, list[tuple[int, int]]]:
    return loaded.error, loaded.counted


def _sample(
    loaded: _Loaded, offset: int, max_pixels: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from rankseg import calibration as cal

    return cal.case_sample(loaded.cases, offset, max_pixels, seed)


def _fit_on_cluster(
    client: Any, model: Any, jobs: list[_CaseJob], pairs: list[tuple[Path, str, Path]], bar: Any
) -> None:
    """Fit ``model`` on the cases of ``jobs`` read by the cluster's workers.

    Each case is read, checked and counted by one task (:func:`_load`), whose result
    stays on its worker; once the cases before it are counted, the counted pixels
    before it are known and a second task draws the case's keys as the local run's
    generator would and keeps its own subsample (:func:`rankseg.calibration._case_sample`).
    The subsamples are merged here in case order, so the fit -- here too -- is that
    of a local run with the same seed, to the last bit.  The first failing case (in
    case order) is the error, as in a local run.
    """
    from rankseg import calibration as cal
    from rankseg.cli._batch import task_failure

    limit = in_flight(client)
    given = {job.path: (path, target) for job, (path, _, target) in zip(jobs, pairs, strict=True)}
    todo = deque(jobs)
    loading: deque[tuple[_CaseJob, Any, Any]] = deque()
    sampling: deque[tuple[_CaseJob, Any, int]] = deque()

    def result(job: _CaseJob, fut: Any) -> Any:
        try:
            return fut.result()
        except Exception as exc:
            msg = as_given(f"{job.path}: {task_failure(exc)}", *given[job.path])
            raise CaseFailed(msg) from None

    def parts() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
        offset, n_classes, index = 0, None, 0
        try:
            while todo or loading or sampling:
                while todo and len(loading) + len(sampling) < limit:
                    job = todo.popleft()
                    fut = client.submit(_load, job, pure=False, retries=1)
                    loading.append((job, fut, client.submit(_summary, fut, pure=False)))
                if loading:
                    job, fut, summary = loading.popleft()
                    error, counted = result(job, summary)
                    if error:
                        raise CaseFailed(as_given(error, *given[job.path]))
                    for nc, _ in counted:
                        if n_classes is not None and nc != n_classes:
                            msg = _fit_message(cal.class_count_error(index, nc, n_classes))
                            raise CaseFailed(as_given(f"{job.path}: {msg}", *given[job.path]))
                        n_classes, index = nc, index + 1
                    seen = sum(m for _, m in counted)
                    if counted:  # (a store without samples adds nothing)
                        args = (fut, offset, model.max_pixels, model.seed)
                        sampling.append((job, client.submit(_sample, *args, pure=False), seen))
                    offset += seen
                    del fut  # the sampling task holds the case until it ends
                while sampling and (sampling[0][1].done() or not loading):
                    job, fut, seen = sampling.popleft()
                    keys, x, y = result(job, fut)
                    yield keys, x, y, seen
                    if bar is not None:
                        bar.update(1)
        finally:
            for _, *futs in [*loading, *sampling]:
                for f in futs:
                    if hasattr(f, "cancel"):
                        f.cancel()

    x, y, n_classes, seen = cal.merge_samples(
        parts(), mode=model.mode, max_pixels=model.max_pixels, seed=model.seed
    )
    model._fit_sample(x, y, n_classes, seen)


def _measure(job: _CaseJob, model: Any, n_bins: int) -> list[tuple[Any, Any]] | str:
    """NLL, Brier score and reliability of one case before and after ``model`` (a task)."""
    from rankseg.cli._reliability import Pooled

    pooled = Pooled(job.mode, n_bins, job.ignore_index)
    try:
        return [
            (pooled.measure(probs, y), pooled.measure(model.transform(probs), y))
            for probs, y in _case_items(job)
        ]
    except Exception as exc:
        return _case_error(job, exc)


def read_case(job: _CaseJob) -> list[tuple[np.ndarray, np.ndarray]] | str:
    """Return the ``(probs, labels)`` batches of one case, or its error line (a task).

    Parameters
    ----------
    job : _CaseJob
        The case (:func:`case_jobs`).

    Returns
    -------
    list or str
        The batches, or the error line of the case (as a local run words it).
    """
    try:
        return list(_case_items(job))
    except Exception as exc:
        return _case_error(job, exc)


def _describe(model: Any, mode: str) -> str:
    n = f"{model.n_pixels_} of {model.n_seen_} counted"
    head = f"({mode}, {model.n_classes_} class(es); fitted on {n} pixels)"
    if hasattr(model, "temperature_"):
        return f"temperature T = {model.temperature_:.4f} {head}"
    w = np.atleast_1d(np.asarray(model.weights_, dtype=np.float64))
    lines = [f"vector scaling {head}", f"{'class':>6} {'weight':>9} {'bias':>9}"]
    b = getattr(model, "bias_", None)
    b = np.zeros_like(w) if b is None else np.atleast_1d(np.asarray(b, dtype=np.float64))
    for c in range(w.size):
        lines.append(f"{c:>6} {w[c]:>9.4f} {b[c]:>9.4f}")
    return "\n".join(lines)
