"""The ``rankseg`` command line: ``predict``, ``evaluate`` and ``demo``.

``rankseg`` (or ``python -m rankseg``) with no arguments runs the demo.  See
``docs/cli.rst`` for every option and convention.
"""

from __future__ import annotations

import argparse
import csv
import io as _stdio
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rankseg import io as rio
from rankseg._api import AVAILABLE, SOLVERS, RankSEG

__all__ = ["available_solvers", "build_parser", "demo", "main"]

INFO_COLUMNS = ("case", "class", "tau", "threshold", "score", "pruned")
_DTYPES = ("uint8", "uint16", "uint32", "int8", "int16", "int32", "int64")
_EXIT_FAILED = 1
_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130


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


# ----------------------------------------------------------------------- messages


class _Log:
    """Messages to stderr that do not break a tqdm progress bar."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def _write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    def error(self, msg: str) -> None:
        self._write(msg)

    def info(self, msg: str) -> None:
        if not self.quiet:
            self._write(msg)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        msg = "no such file"
    elif isinstance(exc, KeyError) and exc.args:
        msg = str(exc.args[0])
    elif isinstance(exc, (TypeError, ValueError, ImportError)):
        msg = str(exc)
    elif isinstance(exc, OSError):
        msg = f"cannot read or write ({exc.strerror or exc})"
    else:
        msg = f"{type(exc).__name__}: {exc}"
    return " ".join(msg.split())


# ------------------------------------------------------------------------ predict


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


@dataclass
class _Result:
    index: int
    path: str
    ok: bool
    message: str = ""
    rows: list[tuple[Any, ...]] = field(default_factory=list)


def _label_range(nc: int, model: RankSEG) -> tuple[int, int]:
    labels = [0, nc - 1]
    if model.metric != "acc" and model.unassigned_policy == "void":
        labels.append(model.void_index)
    return max(labels), min(labels)


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
    mode = _mode_for(job, pm.regions is not None)
    nc = pm.probs.shape[1]
    _check_classes(nc, mode)
    model = RankSEG(output_mode=mode, **job.params)
    dtype: Any = None
    if mode == "multiclass":
        hi, lo = _label_range(nc, model)
        dtype = np.dtype(job.dtype) if job.dtype else rio.smallest_label_dtype(hi, lo)
    rows: list[tuple[Any, ...]] = []
    if job.info:
        labels, info = model.predict(pm.probs, return_info=True, dtype=dtype)
        rows = _info_rows(pm.name, pm.batch, info)
    else:
        labels = model.predict(pm.probs, dtype=dtype)
    rio.save_labels(job.out_path, labels, like=pm, dtype=job.dtype)
    return rows


def _run_xarray_job(job: _Job) -> list[tuple[Any, ...]]:
    da = rio.load_dataarray(job.path, format=job.format, key=job.key)
    import rankseg.xarray as rxr

    dims = list(da.dims)
    if job.class_axis is not None:
        if not -len(dims) <= job.class_axis < len(dims):
            raise ValueError(f"class axis {job.class_axis} is out of range for dims {dims}")
        class_dim = dims[job.class_axis]
    elif "class" in dims:
        class_dim = "class"
    else:
        class_dim = dims[1 if job.batch else 0]
    sample_dims = [d for d in dims if d != class_dim][:1] if job.batch else []
    mode = _mode_for(job, False)
    nc = int(da.sizes[class_dim])
    _check_classes(nc, mode)
    model = RankSEG(output_mode=mode, **job.params)  # checks the parameters
    dtype: Any = None
    if mode == "multiclass":
        hi, lo = _label_range(nc, model)
        dtype = np.dtype(job.dtype) if job.dtype else rio.smallest_label_dtype(hi, lo)
    kwargs = dict(job.params, output_mode=mode, dtype=dtype)
    name = rio.case_name(job.path)
    rows: list[tuple[Any, ...]] = []
    if job.info:
        labels, info = rxr.predict(
            da, class_dim=class_dim, sample_dims=sample_dims, return_info=True, **kwargs
        )
        if labels.chunks is not None:  # dask-backed: one pass computes both
            import dask

            labels, info = dask.compute(labels, info)
        else:
            labels, info = labels.compute(), info.compute()
        tau = np.asarray(info["tau"]).reshape(-1, nc)
        rows = _info_rows(
            name,
            job.batch,
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
    """Process one case; never raises (a failure becomes the result's message)."""
    try:
        if job.format in ("zarr", "netcdf"):
            rows = _run_xarray_job(job)
        else:
            rows = _run_numpy_job(job)
    except Exception as exc:  # one bad case must not stop the others
        return _Result(job.index, job.path, False, _one_line(exc))
    return _Result(job.index, job.path, True, rows=rows)


def _init_worker(threads: int) -> None:
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


def _run_jobs(jobs: list[_Job], workers: int) -> Iterator[_Result]:
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _run_job(job)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")  # no fork of a process with Numba threads
    ex = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    )
    try:
        futures = {ex.submit(_run_job, job): job for job in jobs}
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                yield fut.result()
            except Exception as exc:  # a worker died (e.g. killed for memory)
                yield _Result(job.index, job.path, False, f"worker process failed ({exc})")
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True)


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
    params: dict[str, Any] = {"metric": args.metric}
    for name in ("smooth", "solver", "pruning_prob", "eps", "unassigned_policy", "void_index"):
        val = getattr(args, name)
        if val is not None:
            params[name] = val
    return params


def _cmd_predict(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    log = _Log(args.quiet)
    params = _predict_params(args)
    try:  # check every parameter once, before touching any file
        RankSEG(output_mode=args.output_mode or "multiclass", **params)
    except (TypeError, ValueError) as exc:
        parser.error(_one_line(exc))
    if args.info and params["metric"] == "acc":
        parser.error("--info needs --metric dice or iou (accuracy has no per-class objective)")
    if args.num_parts < 1 or not 0 <= args.part_id < args.num_parts:
        parser.error(
            f"--part-id must be in [0, --num-parts); got --num-parts {args.num_parts} "
            f"--part-id {args.part_id}"
        )
    if args.jobs < 1:
        parser.error(f"-j must be >= 1; got {args.jobs}")
    cases = rio.find_inputs(args.inputs, args.format)
    if not cases:
        log.error(f"rankseg predict: error: no input cases found in {', '.join(args.inputs)}")
        return _EXIT_USAGE
    protected = {p.resolve() for p, _ in cases}
    cases = cases[args.part_id :: args.num_parts]
    outdir = Path(args.output)
    outdir.mkdir(parents=True, exist_ok=True)

    jobs: list[_Job] = []
    failed: list[str] = []
    skipped = 0
    claimed: dict[Path, str] = {}
    redone: set[str] = set()
    for i, (path, fmt) in enumerate(cases):
        try:
            fmt = rio.detect_format(path) if fmt == "auto" else fmt
            out = outdir / rio.output_name(path, fmt)
            sources = {s.resolve() for s in rio.sources_of(path, fmt)}
        except Exception as exc:
            failed.append(f"{path}: {_one_line(exc)}")
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
            skipped += 1
            continue
        redone.add(rio.case_name(path))
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
            )
        )

    show = not (args.no_progress or args.quiet) and sys.stderr.isatty()
    bar = _progress(len(jobs), show)
    log.bar = bar
    results: list[_Result] = []
    try:
        for res in _run_jobs(jobs, args.jobs):
            results.append(res)
            if not res.ok:
                failed.append(f"{res.path}: {res.message}")
                log.error(f"error: {failed[-1]}")
            if bar is not None:
                bar.update(1)
    except KeyboardInterrupt:
        log.error("rankseg predict: interrupted (finished outputs are complete; no partial files)")
        return _EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
        log.bar = None
    written = sum(r.ok for r in results)
    if args.info:
        rows = [row for r in sorted(results, key=lambda r: r.index) if r.ok for row in r.rows]
        try:
            _write_info(Path(args.info), rows, redone if args.resume else None)
        except OSError as exc:
            failed.append(f"{args.info}: {_one_line(exc)}")
            log.error(f"error: {failed[-1]}")
    log.info(
        f"rankseg predict: {written} written, {skipped} skipped (output exists), "
        f"{len(failed)} failed, of {len(cases)} case(s) -> {outdir}"
    )
    return _EXIT_FAILED if failed else 0


# ----------------------------------------------------------------------- evaluate


def _label_files(items: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.iterdir()):
                if (
                    f.is_file()
                    and not f.name.startswith(".")
                    and rio._suffix(f) in (".npy", ".npz", ".nii", ".nii.gz")
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
        try:
            pred = rio.load_labels(p, key=args.key)
            target = rio.load_labels(t)
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
            failed.append(f"{p}: {_one_line(exc)}")
            log.error(f"error: {failed[-1]}")
    if counts:
        _report_scores(args, counts)
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
    if args.csv:
        buf = _stdio.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(("case", "class", args.metric, "pred_volume", "target_volume"))
        for i, (name, _) in enumerate(counts):
            for c in classes:
                w.writerow((name, c, repr(float(scores[i, c])), int(npred[i, c]), int(ntrue[i, c])))
        data = buf.getvalue()
        rio.atomic_write(args.csv, lambda tmp: tmp.write_text(data))
    lines = [f"{'class':>6} {'mean ' + args.metric:>12} {'s.e.':>8} {'cases':>6}"]
    means = []
    for c in classes:
        col = scores[:, c]
        ok = col[~np.isnan(col)]
        mean = float(ok.mean()) if ok.size else math.nan
        se = float(ok.std(ddof=1) / math.sqrt(ok.size)) if ok.size > 1 else math.nan
        means.append(mean)
        lines.append(f"{c:>6} {mean:>12.4f} {se:>8.4f} {ok.size:>6}")
    valid = [m for m in means if not math.isnan(m)]
    overall = sum(valid) / len(valid) if valid else math.nan
    lines.append(f"{'mean':>6} {overall:>12.4f}")
    print("\n".join(lines))


# --------------------------------------------------------------------------- demo


def _rma_estimate(probs: np.ndarray, labels: np.ndarray, metric: str) -> np.ndarray:
    """RMA estimate of E[metric] of each class of a label map, shape (B, C)."""
    nb, nc = probs.shape[:2]
    out = np.zeros((nb, nc))
    for b in range(nb):
        for c in range(nc):
            p = probs[b, c].astype(np.float64, copy=False)
            mask = labels[b] == c
            mu = float(p.sum())
            tau = int(mask.sum())
            s = float(p[mask].sum())
            if tau == 0:
                continue
            out[b, c] = 2 * s / (mu + tau + 1) if metric == "dice" else s / (mu - s + tau)
    return out


def demo(
    spatial: Sequence[int] = (48, 96, 96),
    classes: int = 6,
    *,
    seed: int = 0,
    draws: int = 20,
    repeat: int = 5,
    plot: str | os.PathLike[str] | None = None,
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
        Also write a PNG: a middle slice with argmax vs RankSEG contours and the
        per-class Dice gains (needs matplotlib).

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
    from rankseg.datasets import make_probs, sample_truth
    from rankseg.metrics import dice_score, iou_score

    spatial = tuple(int(s) for s in spatial)
    if not spatial or min(spatial) < 1:
        raise ValueError(f"spatial shape must have sizes >= 1; got {spatial}")
    if classes < 2 or draws < 2 or repeat < 1:
        raise ValueError("need classes >= 2, draws >= 2 and repeat >= 1")
    shape = (1, classes, *spatial)
    bias = np.zeros(classes, dtype=np.float32)
    bias[0] = 4.0  # a dominant background, organs/lesions as foreground classes
    probs = make_probs(shape, kind="softmax", smoothness=5.0, sharpness=3.0, bias=bias, seed=seed)
    methods: dict[str, Callable[[], np.ndarray]] = {"argmax": lambda: np.argmax(probs, axis=1)}
    for metric in ("dice", "iou"):
        for solver in available_solvers(metric):
            model = RankSEG(metric=metric, solver=solver)
            methods[f"rankseg {metric} ({solver})"] = lambda m=model: m.predict(probs)
    labels = {name: fn() for name, fn in methods.items()}  # also compiles / loads the JIT cache
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeat):  # interleaved, so every method sees the same machine load
        for name, fn in methods.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    t_argmax = float(np.median(times["argmax"]))
    ratios = {name: float(np.median(t)) / t_argmax for name, t in times.items()}
    rng = np.random.default_rng(seed + 1)
    realized: dict[str, dict[str, list[np.ndarray]]] = {n: {"dice": [], "iou": []} for n in methods}
    for _ in range(draws):
        truth = sample_truth(probs, rng, kind="softmax")
        for name, lab in labels.items():
            realized[name]["dice"].append(dice_score(lab, truth, num_classes=classes)[0, 1:])
            realized[name]["iou"].append(iou_score(lab, truth, num_classes=classes)[0, 1:])

    def fmt(per_draw: list[np.ndarray]) -> str:
        a = np.array([np.nanmean(x) if np.any(~np.isnan(x)) else np.nan for x in per_draw])
        a = a[~np.isnan(a)]
        if a.size == 0:
            return "n/a"
        se = a.std(ddof=1) / math.sqrt(a.size) if a.size > 1 else math.nan
        return f"{a.mean():.4f} ± {se:.4f}"

    expected = {
        name: {m: float(_rma_estimate(probs, lab, m)[0, 1:].mean()) for m in ("dice", "iou")}
        for name, lab in labels.items()
    }
    w = max(len(n) for n in methods) + 2
    lines = [
        f"rankseg demo: softmax volume {shape} (float32, seed {seed}), {draws} ground truths "
        "drawn from the probabilities",
        f"means over the {classes - 1} foreground classes; E[.]: RMA estimate of the expected "
        "score under the model;",
        f"realized: against the drawn truths (mean ± s.e. over draws); time: median of {repeat} "
        f"runs / np.argmax ({t_argmax * 1e3:.1f} ms)",
        "",
        f"{'method':<{w}}{'E[Dice]':>9}{'E[IoU]':>9}{'Dice':>18}{'IoU':>18}{'time/argmax':>13}",
    ]
    for name in methods:
        lines.append(
            f"{name:<{w}}{expected[name]['dice']:>9.4f}{expected[name]['iou']:>9.4f}"
            f"{fmt(realized[name]['dice']):>18}{fmt(realized[name]['iou']):>18}"
            f"{ratios[name]:>12.2f}x"
        )
    if plot is not None:
        best = next((n for n in methods if n.startswith("rankseg dice")), None)
        if best is not None:
            _demo_plot(
                plot,
                probs,
                labels["argmax"],
                labels[best],
                best,
                np.array(realized["argmax"]["dice"]),
                np.array(realized[best]["dice"]),
            )
            lines += ["", f"plot written to {plot}"]
    return "\n".join(lines)


def _demo_plot(
    path: str | os.PathLike[str],
    probs: np.ndarray,
    lab_a: np.ndarray,
    lab_b: np.ndarray,
    name_b: str,
    dice_a: np.ndarray,
    dice_b: np.ndarray,
) -> None:
    from matplotlib.figure import Figure

    from rankseg.plot import plot_gains, plot_overlay

    p = probs[0]
    a, b = lab_a[0], lab_b[0]
    while p.ndim > 3:  # middle slice along the leading spatial axes
        mid = p.shape[1] // 2
        p, a, b = p[:, mid], a[mid], b[mid]
    if p.ndim == 2:  # 1-D signals: one row
        p, a, b = p[:, None, :], a[None, :], b[None, :]
    fig = Figure(figsize=(11.0, 4.8), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=(1.2, 1.0))
    plot_overlay(p, a, b, names=("argmax", name_b), ax=ax1, title="middle slice")
    plot_gains(
        dice_a,
        dice_b,
        names=("argmax", name_b),
        class_names=[str(c) for c in range(1, dice_a.shape[1] + 1)],
        ax=ax2,
    )
    ax2.set_title("Dice gain per class (mean ± s.e. over draws)")
    rio.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))


def _cmd_demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.classes < 2 or min(args.shape) < 1 or args.draws < 2 or args.repeat < 1:
        parser.error("need --classes >= 2, every --shape size >= 1, --draws >= 2, --repeat >= 1")
    print(
        demo(
            args.shape,
            args.classes,
            seed=args.seed,
            draws=args.draws,
            repeat=args.repeat,
            plot=args.plot,
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
        The parser with the ``predict``, ``evaluate`` and ``demo`` subcommands.
    """
    parser = argparse.ArgumentParser(
        prog="rankseg",
        description="RankSEG: label maps that maximize the expected Dice or IoU of each case. "
        "Without a command, runs the demo.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    pp = sub.add_parser(
        "predict",
        help="probability maps on disk -> label maps",
        description="Decide label maps for saved probability maps (.npy, .npz, nnU-Net "
        "output folders, 4-D NIfTI, zarr/netCDF). Output names mirror the inputs in OUTDIR.",
    )
    pp.add_argument("inputs", nargs="+", metavar="INPUT", help="files or folders")
    pp.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    g = pp.add_argument_group("decision")
    g.add_argument(
        "--metric",
        default="dice",
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
        help="a class whose max probability is <= P gets an empty mask (default: 0.5; "
        "lower it for soft models)",
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
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--quiet", action="store_true", help="only errors")

    pe = sub.add_parser(
        "evaluate",
        help="Dice/IoU of label maps against targets",
        description="Samplewise Dice or IoU of predicted label maps (or masks) against targets, "
        "paired by case name.",
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
        choices=("nan", "one", "zero"),
        help="score of a class absent from prediction and target (default: nan, "
        "left out of the means)",
    )
    pe.add_argument("--key", help="array name in prediction .npz files")
    pe.add_argument("--quiet", action="store_true", help="only the table and errors")

    pd = sub.add_parser("demo", help="argmax vs RankSEG on a generated 3-D volume (default)")
    _add_demo_args(pd)
    pp.set_defaults(handler=_cmd_predict, subparser=pp)
    pe.set_defaults(handler=_cmd_evaluate, subparser=pe)
    pd.set_defaults(handler=_cmd_demo, subparser=pd)
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
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        args_list = ["demo", *args_list]
    parser = build_parser()
    args = parser.parse_args(args_list)
    return int(args.handler(args, args.subparser))
