"""``rankseg predict``: probability maps on disk -> label maps, one job per case."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io as _stdio
import os
import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankseg import io as rio
from rankseg._api import RankSEG
from rankseg._config import MAX_BAND_BYTES
from rankseg._policies import label_range
from rankseg.cli import _batch
from rankseg.cli._cluster import connect
from rankseg.cli._common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Log,
    Progress,
    check_output_file,
    one_line,
)
from rankseg.io._arrays import to_layout

INFO_COLUMNS = ("case", "class", "tau", "threshold", "score", "pruned")


@dataclass(frozen=True)
class _Job:
    index: int
    path: str
    format: str
    out_path: str
    key: str | None
    class_axis: int | None
    batch: bool
    params: dict[str, Any]
    output_mode: str | None
    dtype: str | None
    info: bool
    members: tuple[str, ...] = ()  # --ensemble: the same case in the other folders
    max_band_bytes: int = MAX_BAND_BYTES  # chunked stores (rankseg.dask): the band budget
    calibration: Any = None  # --calibration: the fitted calibrator (loaded once)
    calibration_path: str = ""
    accept_class_sums: bool = False  # --accept-class-sums: the check only warns


@dataclass
class _Result:
    index: int
    path: str
    ok: bool
    message: str = ""
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    skipped: str = ""  # "exists" (--continue) or "claimed" (another run holds the case)


def _info_rows(name: str, batch: bool, info: Any) -> list[tuple[Any, ...]]:
    rows = []
    nb, nc = info.tau.shape
    for b in range(nb):
        case = f"{name}[{b}]" if batch else name
        for c in range(nc):
            rows.append(
                (
                    case,
                    c,
                    int(info.tau[b, c]),
                    float(info.threshold[b, c]),
                    float(info.score[b, c]),
                    bool(info.pruned[b, c]),
                )
            )
    return rows


def _mode_for(job: _Job, regions: bool) -> str:
    if job.output_mode is None:
        return "multilabel" if regions else "multiclass"
    if regions and job.output_mode == "multiclass":
        raise ValueError(
            "region-based nnU-Net output holds one sigmoid per region (regions may overlap); "
            "use --output-mode multilabel (the default for it)"
        )
    return job.output_mode


def _check_classes(nc: int, mode: str) -> None:
    if mode == "multiclass" and nc == 1:
        raise ValueError(
            "the map has 1 class; multiclass output needs at least 2 (use --output-mode "
            "multilabel for a single foreground probability)"
        )


def _run_numpy_job(job: _Job) -> list[tuple[Any, ...]]:
    pm = rio.load_probabilities(
        job.path, format=job.format, key=job.key, class_axis=job.class_axis, batch=job.batch
    )
    if job.members:
        # nnUNetv2_ensemble's average of the stored arrays, then back into the layout
        # of the first member (nnU-Net cases: (C, Z, Y, X) -> (1, C, Z, Y, X)).  The
        # first member's map is released first: the average re-reads it, and the peak
        # is then the running sum and one member
        pm = dataclasses.replace(pm, probs=np.empty((0,), np.float32))
        avg = rio.average_probabilities((job.path, *job.members), key=job.key)
        if pm.format == "nnunet":
            probs = avg[None]
        else:
            probs = to_layout(avg, job.class_axis, job.batch)[0]
        pm = dataclasses.replace(pm, probs=probs)
    mode = _mode_for(job, pm.regions is not None)
    nc = pm.probs.shape[1]
    _check_classes(nc, mode)
    model = RankSEG(output_mode=mode, **job.params)
    if job.calibration is not None:
        pm = dataclasses.replace(pm, probs=_calibrated(job, pm.probs, mode))
    dtype: Any = None
    if mode == "multiclass":
        lo, hi = label_range(nc, model)
        dtype = np.dtype(job.dtype) if job.dtype else rio.smallest_label_dtype(hi, lo)
    rows: list[tuple[Any, ...]] = []
    if job.info:
        labels, info = model.predict(pm.probs, return_info=True, dtype=dtype)
        rows = _info_rows(pm.name, pm.batch, info)
    else:
        labels = model.predict(pm.probs, dtype=dtype)
    rio.save_labels(job.out_path, labels, like=pm, dtype=job.dtype)
    return rows


def _calibrated(job: _Job, probs: np.ndarray, mode: str) -> np.ndarray:
    """Return the case's probabilities through ``--calibration`` (mode, classes checked)."""
    cal = job.calibration
    nc = probs.shape[1]
    if cal.mode != mode or cal.n_classes_ != nc:
        raise ValueError(
            f"--calibration {job.calibration_path} was fitted for {cal.n_classes_} class(es), "
            f"{cal.mode}; this case has {nc} class(es), {mode} (calibrate on cases like this "
            "one, with the same --output-mode)"
        )
    return cal.transform(probs)


def _load_calibration(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """Read and check ``--calibration`` once, before any case (a bad file: usage error)."""
    from rankseg import calibration as rcal

    path = args.calibration
    try:
        cal = rcal.load(path)
    except FileNotFoundError:
        parser.error(f"--calibration {path}: no such file")
    except (OSError, ValueError, TypeError) as exc:
        parser.error(
            f"--calibration {path}: {one_line(exc)} (expected a file written by "
            "`rankseg calibrate`)"
        )
    if cal.from_logits:
        parser.error(
            f"--calibration {path} was fitted on logits; rankseg predict reads probabilities"
        )
    if args.output_mode is not None and cal.mode != args.output_mode:
        parser.error(
            f"--calibration {path} was fitted for --output-mode {cal.mode}; got --output-mode "
            f"{args.output_mode}"
        )
    return cal


#: dim names read as spatial (or time) axes: a store whose other dims all have such
#: names is one volume however many there are
SPATIAL_DIM_NAMES = frozenset(
    ("x", "y", "z", "t", "time", "height", "width", "depth", "row", "col", "column", "slice")
)


def store_layout(dims: list[Any], class_axis: int | None, batch: bool) -> tuple[Any, list[Any]]:
    """Return the class dim and the sample dims of a zarr/netCDF variable's ``dims``.

    ``--class-axis`` names the class dim by position, else the dim named like one
    (``class``, ``channel``, ``label``: :func:`rankseg.xarray.named_dims`), else, with
    ``--batch``, the second dim; without any of these the layout is refused.  With
    ``--batch`` the first other dim is the sample dim; without it, the dims named like
    one (``case``, ``sample``, ``batch``, ``subject``, ``patient``) are: a store of
    several cases is never decided as one volume.  Without a sample dim, four or more
    other dims are refused unless every one is named like a spatial or time axis
    (``x``, ``y``, ``z``, ``t``, ...): ``(case, class, z, y, x)`` with unnamed dims
    would otherwise be one 4-D volume.

    Parameters
    ----------
    dims : list
        The variable's dims, in order.
    class_axis : int or None
        ``--class-axis``.
    batch : bool
        ``--batch``.

    Returns
    -------
    tuple
        ``(class_dim, sample_dims)``.

    Raises
    ------
    ValueError
        If the layout is not given and cannot be read from the dims' names; the
        message names the flags to pass.
    """
    from rankseg.xarray import named_dims

    if class_axis is not None:
        if not -len(dims) <= class_axis < len(dims):
            raise ValueError(f"class axis {class_axis} is out of range for dims {dims}")
        class_dim = dims[class_axis]
    else:
        try:
            class_dim, _ = named_dims(tuple(dims), None, ())
        except ValueError:
            if not batch:
                raise ValueError(
                    f"no dim of {tuple(dims)} is named class/channel/label, so the class dim "
                    "is unknown: pass --class-axis N (its position), and --batch when the "
                    "first dim holds the cases"
                ) from None
            class_dim = dims[1]
    if batch:
        return class_dim, [d for d in dims if d != class_dim][:1]
    _, samples = named_dims(tuple(dims), class_dim, None)
    others = [d for d in dims if d != class_dim]
    if not samples and len(others) >= 4:
        unnamed = [d for d in others if not (isinstance(d, str) and d.lower() in SPATIAL_DIM_NAMES)]
        if unnamed:
            raise ValueError(
                f"dims {tuple(dims)}: {len(others)} dims besides the class dim and none named "
                f"case/sample/batch/subject/patient, so {unnamed[0]!r} may hold cases or be a "
                "spatial axis: pass --batch if the first dim holds the cases (or name the dims: "
                "case, class, z, y, x)"
            )
    return class_dim, list(samples)


def _run_xarray_job(job: _Job) -> list[tuple[Any, ...]]:
    if job.calibration is not None:
        raise ValueError(
            "--calibration applies to .npy, .npz, nnU-Net and NIfTI inputs, not zarr/netCDF "
            "stores (apply rankseg.calibration to the DataArray in Python)"
        )
    da = rio.load_dataarray(job.path, format=job.format, key=job.key)
    import rankseg.xarray as rxr

    class_dim, sample_dims = store_layout(list(da.dims), job.class_axis, job.batch)
    mode = _mode_for(job, False)
    nc = int(da.sizes[class_dim])
    _check_classes(nc, mode)
    model = RankSEG(output_mode=mode, **job.params)  # checks the parameters
    dtype: Any = None
    if mode == "multiclass":
        lo, hi = label_range(nc, model)
        dtype = np.dtype(job.dtype) if job.dtype else rio.smallest_label_dtype(hi, lo)
    kwargs = dict(job.params, output_mode=mode, dtype=dtype, max_band_bytes=job.max_band_bytes)
    name = rio.case_name(job.path)
    rows: list[tuple[Any, ...]] = []
    if job.info:
        labels, info = rxr.predict(
            da, class_dim=class_dim, sample_dims=sample_dims, return_info=True, **kwargs
        )
        if labels.chunks is not None and info["tau"].chunks is not None:
            # whole samples per task: the same tasks give both, compute them together
            import dask

            labels, info = dask.compute(labels, info)
        elif labels.chunks is None:
            labels, info = labels.compute(), info.compute()
        # else spatial chunks kept (rankseg.dask): the info is computed, the labels
        # stay lazy and are written chunk by chunk
        tau = np.asarray(info["tau"]).reshape(-1, nc)
        rows = _info_rows(
            name,
            bool(sample_dims),
            _InfoArrays(
                tau,
                np.asarray(info["threshold"]).reshape(-1, nc),
                np.asarray(info["score"]).reshape(-1, nc),
                np.asarray(info["pruned"]).reshape(-1, nc),
            ),
        )
    else:
        labels = rxr.predict(da, class_dim=class_dim, sample_dims=sample_dims, **kwargs)
    if mode == "multilabel" and job.dtype:
        labels = labels.astype(job.dtype)
    rio.save_dataarray(job.out_path, labels, format=job.format)
    return rows


@dataclass
class _InfoArrays:
    tau: np.ndarray
    threshold: np.ndarray
    score: np.ndarray
    pruned: np.ndarray


def _run_job(job: _Job) -> _Result:
    """Process one case; never raises (a failure becomes the result's message).

    A multiclass map whose class probabilities do not sum to 1 (``ClassSumWarning``:
    most often the wrong class axis, e.g. a channel-first 4-D NIfTI) is an error for
    the case, naming the flags that fix it, unless ``--accept-class-sums``.
    """
    from rankseg import ClassSumWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore" if job.accept_class_sums else "error", ClassSumWarning)
            if job.format in ("zarr", "netcdf"):
                rows = _run_xarray_job(job)
            else:
                rows = _run_numpy_job(job)
    except ClassSumWarning as warn:
        what = str(warn).split(" Is the input laid out")[0]
        axis = "" if job.class_axis is None else f" (--class-axis {job.class_axis})"
        return _Result(
            job.index,
            job.path,
            False,
            f"{what}: is the class axis right{axis}? Pass --class-axis N for the stored "
            "array's class axis (a 4-D NIfTI is read as (X, Y, Z, C) unless told), "
            "--output-mode multilabel for independent sigmoid maps, or --accept-class-sums "
            "to decide it anyway; nothing written for this case",
        )
    except Exception as exc:  # one bad case must not stop the others
        return _Result(job.index, job.path, False, one_line(exc))
    return _Result(job.index, job.path, True, rows=rows)


def _init_worker(threads: int) -> None:
    # ``threads`` is this worker's share of os.cpu_count(); the same share of the CPUs
    # the process may use (affinity, cgroup quota) caps its automatic thread count,
    # with the load rule below it.  RANKSEG_NUM_THREADS, inherited, still wins.
    # A zarr/netCDF graph runs in the worker's own thread (dask's synchronous
    # scheduler), its kernels on the worker's threads: not a dask thread pool of
    # os.cpu_count() threads in every worker.
    from rankseg import _threads

    share = threads / (os.cpu_count() or 1)
    _threads.cap_threads(max(1, int(share * _threads.cpu_count())))
    try:
        import dask
    except ImportError:
        return
    dask.config.set(scheduler="synchronous")


def _failed(job: _Job, message: str) -> _Result:
    return _Result(job.index, job.path, False, message)


class _Dispatch:
    """What happens around each case: its claim, leftovers of killed runs, skipping.

    ``before(job)`` claims the case (a case another live run holds is skipped),
    removes the hidden temporary files that killed runs left of its output, and
    with ``--continue`` skips it when its output exists (another run may have
    written it since the listing); ``after(job)`` releases the claim.
    """

    def __init__(self, resume: bool, outdir: Path) -> None:
        self.resume = resume
        self.claims = _batch.Claims()
        self.leftovers = _batch.leftovers(outdir)  # listed once, not once per case

    def before(self, job: _Job) -> _Result | None:
        out = Path(job.out_path)
        holder = self.claims.take(out)
        if holder is not None:
            why = f"claimed by another run ({holder})"
            return _Result(job.index, job.path, True, why, skipped="claimed")
        _batch.sweep(out, self.leftovers)
        if self.resume and (out.exists() or out.is_symlink()):
            self.claims.release(out)
            return _Result(job.index, job.path, True, skipped="exists")
        return None

    def after(self, job: _Job) -> None:
        self.claims.release(Path(job.out_path))


def _run_jobs(
    jobs: list[_Job], workers: int, dispatch: _Dispatch, client: Any = None
) -> Generator[_Result, None, None]:
    if client is not None:
        yield from _batch.run_dask(jobs, client, _run_job, dispatch.before, dispatch.after, _failed)
    elif workers <= 1 or len(jobs) <= 1:
        yield from _batch.run_serial(jobs, _run_job, dispatch.before, dispatch.after)
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        yield from _batch.run_pool(
            jobs,
            workers,
            _run_job,
            dispatch.before,
            dispatch.after,
            _failed,
            _init_worker,
            (threads,),
        )


def _write_info(path: Path, rows: list[tuple[Any, ...]], keep_old: set[str] | None) -> None:
    """Write the info table; with ``keep_old``, keep old rows of cases not redone now."""
    old_rows: list[list[str]] = []
    if keep_old is not None and path.is_file():
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is not None and tuple(header) == INFO_COLUMNS:
                for row in reader:
                    case = row[0]
                    base = case.split("[")[0] if case.endswith("]") else case
                    if base not in keep_old:
                        old_rows.append(row)
    buf = _stdio.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(INFO_COLUMNS)
    w.writerows(old_rows)
    for case, c, tau, thr, score, pruned in rows:
        w.writerow((case, c, tau, repr(thr), repr(score), pruned))
    data = buf.getvalue()

    def write(tmp: Path) -> None:
        tmp.write_text(data)

    rio.atomic_write(path, write)


def _predict_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"metric": args.metric or "dice"}
    names = ("smooth", "solver", "pruning_prob", "empty", "eps", "unassigned_policy", "void_index")
    for name in names:
        val = getattr(args, name)
        if val is not None:
            params[name] = val
    return params


def _save_info(
    args: argparse.Namespace,
    results: list[_Result],
    redone: set[str],
    failed: list[str],
    log: Log,
) -> None:
    """Write the ``--info`` rows of the finished cases.

    With ``--continue`` the rows of earlier runs are kept, except those of the cases
    this run set out to redo (``redone``); after an interrupt the cases not reached
    have no output, so the next ``--continue`` redoes them and writes their rows.
    """
    rows = [row for r in sorted(results, key=lambda r: r.index) if r.ok for row in r.rows]
    try:
        _write_info(Path(args.info), rows, redone if args.resume else None)
    except OSError as exc:
        failed.append(f"{args.info}: {one_line(exc)}")
        log.error(f"error: {failed[-1]}")


def _ensemble_cases(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[list[tuple[Path, str]], dict[Path, tuple[Path, ...]], list[str]]:
    """Cases of ``--ensemble``: the ``.npz`` of the first folder and the same names in the others.

    nnUNetv2_ensemble refuses folders that do not hold the same cases; here a case
    missing from some folder is an error line for that case, and the others go on.
    """
    folders = [Path(f) for f in args.inputs]
    if len(folders) < 2:
        parser.error("--ensemble needs at least two prediction folders")
    for folder in folders:
        if not folder.is_dir():
            parser.error(f"--ensemble takes prediction folders; {folder} is not a folder")
    if args.format not in ("auto", "npz", "nnunet"):
        parser.error(f"--ensemble averages .npz probability maps, not --format {args.format}")
    fmt = "npz" if args.format == "npz" else "auto"
    per_folder = [
        {p.name: (p, f) for p, f in rio.find_inputs([folder], fmt) if p.suffix == ".npz"}
        for folder in folders
    ]
    cases = list(per_folder[0].values())
    members: dict[Path, tuple[Path, ...]] = {}
    failed: list[str] = []
    keep: list[tuple[Path, str]] = []
    for path, f in cases:
        missing = [
            str(folders[k]) for k in range(1, len(folders)) if path.name not in per_folder[k]
        ]
        if missing:
            failed.append(
                f"{path}: the case is missing from {', '.join(missing)} (an ensemble "
                "needs every case in every folder)"
            )
            continue
        members[path] = tuple(per_folder[k][path.name][0] for k in range(1, len(folders)))
        keep.append((path, f))
    for k in range(1, len(folders)):
        for name, (path, _) in per_folder[k].items():
            if name not in per_folder[0]:
                failed.append(
                    f"{path}: the case is missing from {folders[0]} (an ensemble "
                    "needs every case in every folder)"
                )
    return keep, members, failed


def _tuned_params(tuned: Any) -> dict[str, Any]:
    """Return the RankSEG parameters of a tuned rule (its calibration is applied apart)."""
    params: dict[str, Any] = {"metric": tuned.metric, "solver": tuned.solver, "empty": tuned.empty}
    if tuned.pruning_prob is not None:
        params["pruning_prob"] = tuned.pruning_prob
    if tuned.presence is not None:
        params["presence"] = tuned.presence
    return params


def _load_tuned(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """Read ``--tuned`` once, before any case; it replaces the decision options."""
    from rankseg.tuning import TunedRankSEG

    given = [
        f"--{name.replace('_', '-')}"
        for name in ("metric", "solver", "smooth", "pruning_prob", "empty", "eps", "calibration")
        if getattr(args, name) is not None
    ]
    if given:
        parser.error(
            f"--tuned sets the decision; drop {', '.join(given)} (or tune again with them)"
        )
    path = args.tuned
    if not Path(path).is_file():
        parser.error(f"--tuned {path}: no such file")
    try:
        tuned = TunedRankSEG.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.error(f"--tuned {path}: {one_line(exc)} (expected a file written by `rankseg tune`)")
    if args.output_mode is not None and args.output_mode != tuned.output_mode:
        parser.error(
            f"--tuned {path} was tuned for --output-mode {tuned.output_mode}; got "
            f"--output-mode {args.output_mode}"
        )
    args.output_mode = tuned.output_mode
    return tuned


def _redone(jobs: list[_Job], results: list[_Result], exists: set[int]) -> set[str]:
    """Names of the cases this run set out to redo: not skipped (their --info rows go).

    ``exists``: the cases whose output existed when listed (``--continue``), skipped
    unless they vanished since; after an interrupt they may have no result.
    """
    ran = {r.index for r in results if not r.skipped}
    skipped = ({r.index for r in results if r.skipped} | exists) - ran
    return {rio.case_name(j.path) for j in jobs if j.index not in skipped}


def _absolute(job: _Job) -> _Job:
    """``job`` with absolute paths, for workers whose working folder is not ours."""
    return dataclasses.replace(
        job,
        path=os.path.abspath(job.path),
        out_path=os.path.abspath(job.out_path),
        members=tuple(os.path.abspath(m) for m in job.members),
    )


def cmd_predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    log = Log(args.quiet)
    tuned = _load_tuned(args, parser) if args.tuned else None
    params = _predict_params(args)
    if tuned is not None:
        params = dict(params, **_tuned_params(tuned))
    try:  # check every parameter once, before touching any file
        RankSEG(output_mode=args.output_mode or "multiclass", **params)
    except (TypeError, ValueError) as exc:
        parser.error(one_line(exc))
    if args.max_band_bytes < 1:
        parser.error(f"--max-band-bytes must be at least 1 (bytes); got {args.max_band_bytes}")
    if args.info and params["metric"] == "acc":
        parser.error("--info needs --metric dice or iou (accuracy has no per-class objective)")
    if args.num_parts < 1 or not 0 <= args.part_id < args.num_parts:
        parser.error(
            f"--part-id must be in [0, --num-parts); got --num-parts {args.num_parts} "
            f"--part-id {args.part_id}"
        )
    if args.jobs < 1:
        parser.error(f"-j must be >= 1; got {args.jobs}")
    if args.overwrite and args.resume:
        parser.error("--overwrite replaces existing outputs, --continue keeps them; pick one")
    calibration = _load_calibration(args, parser) if args.calibration else None
    if tuned is not None:
        calibration = tuned.calibration
    members: dict[Path, tuple[Path, ...]] = {}
    failed: list[str] = []
    if args.ensemble:
        cases, members, failed = _ensemble_cases(args, parser)
    else:
        cases = rio.find_inputs(args.inputs, args.format)
    if not cases and not failed:
        log.error(f"rankseg predict: error: no input cases found in {', '.join(args.inputs)}")
        return EXIT_USAGE
    unpaired = len(failed)  # --ensemble cases missing from some folder
    for line in failed:
        log.error(f"error: {line}")
    protected = {p.resolve() for p, _ in cases}
    protected |= {m.resolve() for ms in members.values() for m in ms}
    cases = cases[args.part_id :: args.num_parts]
    outdir = Path(args.output)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file of that name, a file on the way, no permission
        parser.error(f"cannot use -o {outdir} as the output folder ({exc.strerror or exc})")
    if args.info and (why := check_output_file(args.info, "--info")):  # may be in OUTDIR
        parser.error(why)

    jobs: list[_Job] = []
    exists_early: list[int] = []
    existing: list[Path] = []
    claimed: dict[Path, str] = {}
    for i, (path, fmt) in enumerate(cases):
        try:
            fmt = rio.detect_format(path) if fmt == "auto" else fmt
            out = outdir / rio.output_name(path, fmt)
            sources = {s.resolve() for s in rio.sources_of(path, fmt)}
            for m in members.get(path, ()):
                sources |= {s.resolve() for s in rio.sources_of(m, fmt)}
        except Exception as exc:
            failed.append(f"{path}: {one_line(exc)}")
            log.error(f"error: {failed[-1]}")
            continue
        key = out.resolve()
        if key in protected or key in sources:
            failed.append(f"{path}: the output {out} would overwrite an input; choose another -o")
            log.error(f"error: {failed[-1]}")
            continue
        if key in claimed:
            failed.append(f"{path}: the output {out} is also the output of {claimed[key]}")
            log.error(f"error: {failed[-1]}")
            continue
        claimed[key] = str(path)
        if args.resume and out.exists():
            exists_early.append(i)  # still a job: its claim, leftovers, then skipped
        elif not args.overwrite and (out.exists() or out.is_symlink()):
            existing.append(out)
        jobs.append(
            _Job(
                i,
                str(path),
                fmt,
                str(out),
                args.key,
                args.class_axis,
                args.batch,
                params,
                args.output_mode,
                args.dtype,
                bool(args.info),
                tuple(str(m) for m in members.get(path, ())),
                args.max_band_bytes,
                calibration,
                args.calibration or args.tuned or "",
                accept_class_sums=args.accept_class_sums,
            )
        )

    if existing:
        log.error(
            f"rankseg predict: error: {len(existing)} output(s) exist already in {outdir} "
            f"(e.g. {existing[0].name}); pass --overwrite to replace them, or --continue "
            "to skip those cases (nothing was written)"
        )
        return EXIT_USAGE
    client = connect(args, parser)
    if client is not None:  # the workers run elsewhere: absolute paths
        jobs = [_absolute(job) for job in jobs]

    log.debug(
        f"rankseg predict: {len(jobs)} case(s) to decide, {args.jobs} worker(s); "
        f"decision {params}, output mode {args.output_mode or 'by input'}"
    )
    outs = {job.index: job.out_path for job in jobs}
    progress = Progress(len(jobs), log, bar=not args.no_progress, lines=not args.no_progress)
    results: list[_Result] = []
    dispatch = _Dispatch(args.resume, outdir)
    runner = _run_jobs(jobs, args.jobs, dispatch, client)
    try:
        for res in runner:
            results.append(res)
            if res.skipped == "claimed":
                log.info(f"skipped: {res.path}: {res.message}")
            if not res.ok:
                failed.append(f"{res.path}: {res.message}")
                log.error(f"error: {failed[-1]}")
            progress.step(f"{res.path} -> {outs[res.index]}" if res.ok else f"{res.path}: failed")
    except KeyboardInterrupt:
        if args.info and any(r.ok for r in results):  # a --continue run skips these cases
            _save_info(args, results, _redone(jobs, results, set(exists_early)), failed, log)
        log.error("rankseg predict: interrupted (finished outputs are complete; no partial files)")
        return EXIT_INTERRUPTED
    finally:
        runner.close()  # stops the workers (at once after an interrupt)
        dispatch.claims.release_all()
        if client is not None:
            client.close()
        progress.close()
    written = sum(r.ok and not r.skipped for r in results)
    skipped = sum(r.skipped == "exists" for r in results)
    elsewhere = sum(r.skipped == "claimed" for r in results)
    if args.info:
        _save_info(args, results, _redone(jobs, results, set(exists_early)), failed, log)
    total = len(cases) + unpaired
    others = f", {elsewhere} left to another run" if elsewhere else ""
    log.info(
        f"rankseg predict: {written} written, {skipped} skipped (output exists){others}, "
        f"{len(failed)} failed, of {total} case(s) -> {outdir}"
    )
    return EXIT_FAILED if failed else 0
