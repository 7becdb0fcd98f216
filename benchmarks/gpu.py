"""Time rankseg's CUDA backend against ``cupy.argmax`` and the card's memory bandwidth.

Usage (on a machine with an NVIDIA GPU, CuPy and numba-cuda)::

    python benchmarks/gpu.py [--workloads voc2d ct3d ct256] [--rounds N] [--out FILE]

For each workload the probabilities are put on the GPU once (a CuPy array), then
``N`` interleaved rounds time ``cupy.argmax(probs, axis=1)`` and every
configuration of :func:`rankseg.predict` on that CUDA array (CUDA in, CUDA out;
each call is synchronized before the clock stops).  The report gives the median
time, its ratio to the median ``cupy.argmax`` of the same run, and the effective
bandwidth ``input bytes / time`` as a fraction of the card's bandwidth measured in
the same run by a device-to-device copy (bytes read + written / time).

Before timing, the GPU labels are compared with the CPU backend's on the same
input (identical except on numerical ties of the objective: the count of differing
pixels is printed).  ``ct256`` is a ``(1, 14, 256, 256, 256)`` float32 CT-like
volume (940 MB).  Without a GPU the script prints ``skipped: ...`` and exits 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: use this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import rankseg  # noqa: E402
from rankseg import datasets  # noqa: E402

#: name -> generator of the float32 probabilities
WORKLOADS: dict[str, Callable[[], np.ndarray]] = {
    "voc2d": lambda: datasets.voc2d(0),
    "ct3d": lambda: datasets.ct3d(0),
    "ct256": lambda: datasets.ct3d(0, shape=(1, 14, 256, 256, 256)),
}
#: (metric, output_mode) of the timed predict calls
CONFIGS = (
    ("dice", "multiclass"),
    ("dice", "multilabel"),
    ("iou", "multiclass"),
    ("iou", "multilabel"),
    ("acc", "multiclass"),
)


def _gpu() -> tuple[Any, Any] | str:
    """``(cupy, numba.cuda)``, or why they cannot run here."""
    try:
        import cupy as cp
        from numba import cuda
    except ImportError as exc:
        return f"needs CuPy and numba-cuda ({exc})"
    try:
        if not cuda.is_available() or cp.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA GPU"
    except Exception as exc:  # a broken driver
        return f"CUDA check failed: {exc}"
    return cp, cuda


def _timed(cp: Any, fn: Callable[[], Any]) -> float:
    cp.cuda.Device().synchronize()
    t0 = time.perf_counter()
    fn()
    cp.cuda.Device().synchronize()
    return time.perf_counter() - t0


def copy_bandwidth(cp: Any, nbytes: int = 1 << 30, rounds: int = 10) -> float:
    """Device-to-device copy bandwidth in bytes/s (bytes read + written), median."""
    a = cp.zeros(nbytes // 4, dtype=cp.float32)
    b = cp.empty_like(a)
    b[...] = a
    times = [_timed(cp, lambda: b.__setitem__(Ellipsis, a)) for _ in range(rounds)]
    return 2 * a.nbytes / statistics.median(times)


#: (metric, output_mode, solver) of the host-solved solvers, timed with ``--solvers``
SOLVER_CONFIGS = (
    ("dice", "multiclass", "exact"),
    ("dice", "multilabel", "exact"),
    ("iou", "multilabel", "exact"),
    ("dice", "multilabel", "ba+trna"),
)


def _predict_call(x: Any, metric: str, mode: str, solver: str | None = None) -> Callable[[], Any]:
    kw: dict[str, Any] = {"metric": metric, "output_mode": mode, "solver": solver}
    if metric == "acc":
        kw["solver"] = "argmax" if mode == "multiclass" else "tr"
    return lambda: rankseg.predict(x, **kw)


def parity(cp: Any, probs: np.ndarray, x: Any, solvers: bool = False) -> list[str]:
    """Lines comparing GPU and CPU outputs on ``probs`` (differing pixels, tau)."""
    lines = []
    configs = [(m, o, None) for m, o in CONFIGS[:4]] + (list(SOLVER_CONFIGS) if solvers else [])
    for metric, mode, solver in configs:
        kw = {"metric": metric, "output_mode": mode, "solver": solver, "return_info": True}
        got, info = rankseg.predict(x, **kw)
        ref, ref_info = rankseg.predict(probs, **kw)
        got = cp.asarray(got).get()
        diff = int(np.count_nonzero(got != ref))
        taus = int(np.count_nonzero(info.tau != ref_info.tau))
        scale = np.maximum(np.abs(ref_info.score), 1e-300)
        rel = float(np.max(np.abs(info.score - ref_info.score) / scale))
        name = f"{metric}/{mode}" + (f"/{solver}" if solver else "")
        lines.append(
            f"  parity {name}: {diff} of {got.size} pixels differ, "
            f"{taus} of {info.tau.size} volumes tau differ, score rel. diff {rel:.1e}"
        )
    return lines


def breakdown(
    cp: Any,
    x: Any,
    calls: int = 5,
    metric: str = "dice",
    mode: str = "multiclass",
    solver: str | None = None,
) -> list[str]:
    """GPU time of each kernel (CUDA events) in ``calls`` calls (default Dice multiclass).

    Every launch is bracketed by events and synchronized, so the wall time here is
    longer than in the timed rounds; the kernel times are what the GPU spent.
    """
    from numba import cuda

    from rankseg.cuda import driver

    totals: dict[str, float] = {}

    class Timed:
        def __init__(self, name: str, kernel: Any) -> None:
            self.name, self.kernel = name, kernel

        def __getitem__(self, cfg: Any) -> Callable[..., None]:
            launcher = self.kernel[cfg]

            def launch(*args: Any) -> None:
                e0, e1 = cuda.event(), cuda.event()
                e0.record()
                launcher(*args)
                e1.record()
                e1.synchronize()
                ms = cuda.event_elapsed_time(e0, e1)
                totals[self.name] = totals.get(self.name, 0.0) + ms

            return launch

    names = [n for n in dir(driver) if n.endswith("_kernel")]
    originals = {n: getattr(driver, n) for n in names}
    fn = _predict_call(x, metric, mode, solver)
    try:
        for n in names:
            setattr(driver, n, Timed(n, originals[n]))
        wall = sum(_timed(cp, fn) for _ in range(calls)) / calls * 1e3
    finally:
        for n in names:
            setattr(driver, n, originals[n])
    gpu = sum(totals.values()) / calls
    name = f"{metric}/{mode}" + (f"/{solver}" if solver else "")
    lines = [f"breakdown of {name} (ms per call, {calls} calls):"]
    for n, ms in sorted(totals.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {n:<32} {ms / calls:8.3f}")
    lines.append(f"  {'kernels total':<32} {gpu:8.3f}")
    lines.append(f"  {'wall (with a sync per kernel)':<32} {wall:8.3f}")
    return lines


def profile(x: Any, calls: int = 10, top: int = 25) -> list[str]:
    """Host-side profile (cProfile, by own time) of ``calls`` Dice multiclass calls.

    Time spent waiting for the GPU shows up in the call that synchronizes (a copy
    to the host), so this separates host overhead from kernel time only together
    with :func:`breakdown`.
    """
    import cProfile
    import io
    import pstats

    fn = _predict_call(x, "dice", "multiclass")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    body = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    return [f"host profile of {calls} dice/multiclass calls (cProfile, by own time):"] + [
        "  " + ln for ln in body[-(top + 1) :]
    ]


def run(
    workloads: Sequence[str],
    rounds: int,
    with_breakdown: bool = False,
    with_profile: bool = False,
    with_solvers: bool = False,
) -> list[str]:
    """Benchmark the workloads; returns the report lines."""
    gpu = _gpu()
    if isinstance(gpu, str):
        return [f"skipped: {gpu}"]
    cp, cuda = gpu
    import numba

    dev = cp.cuda.runtime.getDeviceProperties(0)
    bw = copy_bandwidth(cp)
    lines = [
        f"device: {dev['name'].decode()} ({dev['multiProcessorCount']} SMs, "
        f"{dev['totalGlobalMem'] / 2**30:.0f} GiB); host {platform.machine()}",
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
        f"cupy {cp.__version__}, rankseg {rankseg.__version__}",
        f"device-to-device copy: {bw / 1e9:.0f} GB/s (read + written)",
        f"median of {rounds} interleaved rounds; ratios to cupy.argmax(axis=1) of the same run; "
        "bw% = input bytes / time / copy bandwidth",
    ]
    header = f"{'workload':<8}  {'config':<28}  {'median ms':>9}  {'x argmax':>8}  {'bw%':>5}"
    for name in workloads:
        probs = WORKLOADS[name]()
        x = cp.asarray(probs)
        lines.append(f"{name}: shape {probs.shape}, {probs.nbytes / 2**20:.0f} MiB")
        solvers = with_solvers and name != "ct256"  # the CPU side would take minutes
        lines.extend(parity(cp, probs, x, solvers))
        calls = {"cupy.argmax(axis=1)": lambda x=x: cp.argmax(x, axis=1)}
        for metric, mode in CONFIGS:
            calls[f"{metric}/{mode}"] = _predict_call(x, metric, mode)
        for metric, mode, solver in SOLVER_CONFIGS if solvers else ():
            calls[f"{solver} {metric}/{mode}"] = _predict_call(x, metric, mode, solver)
            calls[f"{solver} {metric}/{mode} (CPU)"] = _predict_call(probs, metric, mode, solver)
        for fn in calls.values():  # compile and warm up
            _timed(cp, fn)
        times: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(rounds):
            for k, fn in calls.items():
                times[k].append(_timed(cp, fn))
        base = statistics.median(times["cupy.argmax(axis=1)"])
        lines.append(header)
        for k, ts in times.items():
            med = statistics.median(ts)
            frac = probs.nbytes / med / bw * 100
            lines.append(f"{name:<8}  {k:<28}  {med * 1e3:9.3f}  {med / base:8.2f}  {frac:5.1f}")
        if with_breakdown:
            lines.extend(breakdown(cp, x))
            if solvers:
                lines.extend(breakdown(cp, x, mode="multilabel", solver="exact"))
        if with_profile:
            lines.extend(profile(x))
        del x, probs
        cp.get_default_memory_pool().free_all_blocks()
    del cuda
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; prints the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--out", type=Path, help="also write the report to this file")
    ap.add_argument("--breakdown", action="store_true", help="also time each kernel (CUDA events)")
    ap.add_argument("--profile", action="store_true", help="also profile the host side (cProfile)")
    ap.add_argument(
        "--solvers", action="store_true", help="also time exact and ba+trna (GPU and CPU)"
    )
    args = ap.parse_args(argv)
    lines = run(args.workloads, args.rounds, args.breakdown, args.profile, args.solvers)
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
