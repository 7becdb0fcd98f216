"""Time ``np.argmax``, RMA and the exact solver against the volume size ``d``.

Usage::

    python benchmarks/scaling.py [--max-d 1e8] [--min-d 1e4] [--rounds 7] [--out DIR]
                                 [--classes 2] [--output-mode multiclass] [--threads T]

For each ``d`` (powers of ten from ``--min-d`` to ``--max-d``, plus ``--max-d`` itself
when it is not one): generate the map of :func:`benchmarks.make_scaling_probs`
(``(1, C, *grid)`` float32 softmax, the same objects and about 7 % uncertain voxels at
every size), compile, then time ``--rounds`` interleaved rounds of
``np.argmax(probs, axis=1)``, ``rankseg.predict(..., metric="dice", solver="rma")`` and
the same with ``solver="exact"``.  Print the medians, their ratios to argmax of the same
run and the time per voxel, and write the report to ``DIR/scaling.txt`` and a log-log
figure to ``DIR/scaling.png`` (default DIR: ``docs/_static``).

One size is in memory at a time: at 1e8 voxels and C = 2 the map is 800 MB and each
label map 800 MB (int64), about 3 GB at the peak.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: use this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import rankseg  # noqa: E402
from benchmarks import SCALING_CLASSES, interleaved_times, make_scaling_probs  # noqa: E402
from benchmarks.compare import _load_average, _print_table, machine_line  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "_static"
#: the three timed callables, in the order of the table and the figure
LABELS = ("argmax", "rma", "exact")
#: the log-log slope is fitted where fixed per-call costs no longer matter
SLOPE_FROM = 10**6


def sizes(min_d: float, max_d: float) -> list[int]:
    """Powers of ten from ``min_d`` to ``max_d``, plus ``max_d`` when it is not one."""
    lo, hi = int(min_d), int(max_d)
    out = [10**k for k in range(math.ceil(math.log10(lo)), math.floor(math.log10(hi)) + 1)]
    out = [d for d in out if lo <= d <= hi]
    if not out or out[-1] != hi:
        out.append(hi)
    return out


def scaling_funcs(probs: np.ndarray, output_mode: str) -> dict[str, Callable[[], object]]:
    """The yardstick and the two solvers on ``probs``, as thunks by label."""
    kwargs = {"metric": "dice", "output_mode": output_mode}
    return {
        "argmax": lambda: np.argmax(probs, axis=1),
        "rma": lambda: rankseg.predict(probs, solver="rma", **kwargs),
        "exact": lambda: rankseg.predict(probs, solver="exact", **kwargs),
    }


def measure(d: int, classes: int, output_mode: str, rounds: int) -> dict[str, object]:
    """Generate the map of ``d`` voxels, warm up, time interleaved rounds; one row."""
    probs = make_scaling_probs(d, classes=classes)
    top = probs.max(axis=1)
    uncertain = float(np.count_nonzero(top < 0.95)) / top.size
    del top
    funcs = scaling_funcs(probs, output_mode)
    for func in funcs.values():  # compile (first size only) and touch the memory
        func()
    gc.collect()
    times = interleaved_times(funcs, rounds)
    row = {
        "d": int(math.prod(probs.shape[2:])),
        "shape": probs.shape,
        "mib": probs.nbytes / 2**20,
        "uncertain": uncertain,
        "median": {k: statistics.median(v) for k, v in times.items()},
    }
    del funcs, probs
    gc.collect()
    return row


def loglog_slope(rows: list[dict[str, object]], label: str) -> float | None:
    """Least-squares slope of log(time) against log(d) over ``d >= SLOPE_FROM``."""
    pts = [(math.log(r["d"]), math.log(r["median"][label])) for r in rows if r["d"] >= SLOPE_FROM]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def table_rows(rows: list[dict[str, object]]) -> list[tuple]:
    """Cells of the printed table."""
    out = []
    for r in rows:
        med = r["median"]
        out.append(
            (
                f"{r['d']:.0e}",
                "x".join(str(n) for n in r["shape"][2:]),
                f"{r['mib']:.1f}",
                f"{100 * r['uncertain']:.1f}",
                *(f"{med[k] * 1e3:.3f}" for k in LABELS),
                *(f"{med[k] / med['argmax']:.2f}" for k in LABELS[1:]),
                *(f"{med[k] / r['d'] * 1e9:.2f}" for k in LABELS),
            )
        )
    return out


HEADER = (
    "d",
    "grid",
    "MiB",
    "unc%",
    "argmax ms",
    "rma ms",
    "exact ms",
    "rma/am",
    "exact/am",
    "am ns/vx",
    "rma ns/vx",
    "exact ns/vx",
)


def save_figure(rows: list[dict[str, object]], path: Path, title: str) -> None:
    """Log-log plot of the median time against ``d``, one line per callable."""
    # A bare Figure (Agg canvas) instead of pyplot: no global backend or figure state.
    from matplotlib.figure import Figure

    d = np.array([r["d"] for r in rows], dtype=float)
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.subplots()
    names = {"argmax": "np.argmax(axis=1)", "rma": "rankseg rma", "exact": "rankseg exact"}
    for label, marker in zip(LABELS, "osD", strict=True):
        ms = np.array([r["median"][label] * 1e3 for r in rows])
        ax.loglog(d, ms, marker=marker, label=names[label])
    # reference: proportional to d, through rma at the largest size
    ref = rows[-1]["median"]["rma"] * 1e3 * d / d[-1]
    ax.loglog(d, ref, linestyle=":", color="0.5", label="∝ d (through rma at the largest d)")
    ax.set_xlabel("voxels d per class map")
    ax.set_ylabel("median time per call (ms)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scaling measurement, print and save the table and the figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-d", type=float, default=1e8, help="largest d (default 1e8)")
    parser.add_argument("--min-d", type=float, default=1e4, help="smallest d (default 1e4)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--classes", type=int, default=SCALING_CLASSES, help="C (default 2)")
    parser.add_argument("--output-mode", choices=("multiclass", "multilabel"), default="multiclass")
    parser.add_argument("--threads", type=int, default=None, help="numba threads to use")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not 1 <= args.min_d <= args.max_d:
        parser.error("need 1 <= --min-d <= --max-d")
    if args.classes < 2:
        parser.error("--classes must be at least 2")
    if args.threads is not None:
        numba.set_num_threads(args.threads)

    load_before = _load_average()
    rows = []
    for d in sizes(args.min_d, args.max_d):
        print(f"d = {d:.0e} ...", flush=True)
        rows.append(measure(d, args.classes, args.output_mode, args.rounds))
    load_after = _load_average()

    lines = [
        machine_line(),
        f"load average (1 min) {load_before} before timing, {load_after} after",
        f"maps: benchmarks.make_scaling_probs, (1, {args.classes}, *grid) float32 softmax; "
        f"Dice, output_mode={args.output_mode}; unc% = voxels whose largest probability "
        "is below 0.95",
        f"median of {args.rounds} interleaved rounds; rma/am, exact/am: ratios to "
        "np.argmax(axis=1) of the same run; ns/vx: median time per voxel of d",
    ]
    slopes = {k: loglog_slope(rows, k) for k in LABELS}
    if all(s is not None for s in slopes.values()):
        lines.append(
            f"log-log slope of time against d (d >= {SLOPE_FROM:.0e}; 1 = linear): "
            + ", ".join(f"{k} {s:.2f}" for k, s in slopes.items())
        )
    report = "\n".join(lines) + "\n" + _format_table(table_rows(rows), HEADER)
    print(report, end="")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scaling.txt").write_text(report, encoding="utf-8")
    title = (
        f"C = {args.classes}, float32, Dice {args.output_mode}, "
        f"numba threads: {numba.get_num_threads()}; median of {args.rounds} rounds"
    )
    save_figure(rows, args.out / "scaling.png", title)
    print(f"wrote {args.out / 'scaling.txt'} and {args.out / 'scaling.png'}")
    return 0


def _format_table(rows: list[tuple], header: tuple) -> str:
    """The table of :func:`benchmarks.compare._print_table` as a string."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        _print_table(rows, header)
    return buf.getvalue()


if __name__ == "__main__":
    sys.exit(main())
