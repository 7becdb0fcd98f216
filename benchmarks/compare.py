"""Time rankseg's solvers against ``np.argmax`` on the benchmark workloads.

Usage::

    python benchmarks/compare.py [--workloads voc2d ct3d tumor3d] [--repeat N] [--quick]
                                 [--threads T]

For each workload: compile (one call of every config), then ``N`` interleaved rounds of
``np.argmax(probs, axis=1)`` followed by every config; report the median time and its
ratio to the median argmax time of the same run, and the peak extra memory of one call
relative to the input size, seen two ways:

- ``traced/in``: peak of :mod:`tracemalloc` (NumPy allocations, e.g. outputs and
  temporaries made in Python), which misses memory allocated inside numba kernels;
- ``rss/in``: peak growth of the resident set (Linux), which sees everything that
  touches memory but not memory reused from the allocator's free lists;
- ``extra/in``: the larger of the two peaks minus the bytes of the output, i.e. the
  working memory beyond input and output (the target is <= 0.10).

Run as a script it imports the ``rankseg`` of this checkout (the repository root goes
first on ``sys.path``).  To benchmark another solver, append a :class:`Config` to
:data:`CONFIGS`.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: use this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import rankseg  # noqa: E402
from benchmarks import (  # noqa: E402
    WORKLOAD_NAMES,
    interleaved_times,
    load_workload,
    peak_rss_growth,
    unmap_freed_memory,
)


@dataclass(frozen=True)
class Config:
    """One way of calling :func:`rankseg.predict`."""

    metric: str
    output_mode: str
    solver: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.params.items())
        return f"{self.metric}/{self.output_mode}/{self.solver or 'default'}{extra}"

    def applies_to(self, probs: np.ndarray) -> bool:
        # Multiclass output with a single class is an error by design (SPEC §4).
        return not (self.output_mode == "multiclass" and probs.shape[1] < 2)

    def __call__(self, probs: np.ndarray) -> Any:
        return rankseg.predict(
            probs,
            metric=self.metric,
            output_mode=self.output_mode,
            solver=self.solver,
            **self.params,
        )


#: What is compared, in order.  Later solvers: append e.g. Config("dice", "multilabel", "exact").
CONFIGS: list[Config] = [
    Config("dice", "multiclass", "rma"),
    Config("dice", "multilabel", "rma"),
    Config("iou", "multiclass", "rma"),
    Config("iou", "multilabel", "rma"),
    Config("dice", "multilabel", "exact"),
    Config("iou", "multilabel", "exact"),
    Config("dice", "multiclass", "exact"),
    Config("dice", "multilabel", "ba"),
    Config("dice", "multilabel", "trna"),
    Config("dice", "multilabel", "ba+trna"),
    Config("acc", "multiclass", "argmax"),
    Config("acc", "multilabel", "tr"),
]

YARDSTICK = "np.argmax(axis=1)"


def _argmax(probs: np.ndarray) -> np.ndarray:
    return np.argmax(probs, axis=1)


def traced_peak(func: Any) -> int:
    """Peak bytes traced by :mod:`tracemalloc` during ``func()``."""
    already = tracemalloc.is_tracing()
    if not already:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        func()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if not already:
            tracemalloc.stop()


def machine_line() -> str:
    """One line describing where the numbers come from."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = "not initialised"
    return (
        f"machine: {platform.system()} {platform.machine()}, cpu_count={os.cpu_count()}, "
        f"usable cpus={affinity}, numba threads={numba.get_num_threads()} ({layer}); "
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"numba {numba.__version__}, rankseg {rankseg.__version__} "
        f"({Path(rankseg.__file__).parent})"
    )


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):  # not available on this system
        return "n/a"


def _ratio(value: float | None, base: float) -> str:
    return "n/a" if value is None else f"{value / base:.2f}"


def workload_funcs(probs: np.ndarray) -> dict[str, Any]:
    """The yardstick and every config that applies to ``probs``, as thunks by label."""
    funcs = {YARDSTICK: lambda: _argmax(probs)}
    for config in CONFIGS:
        if config.applies_to(probs):
            funcs[config.label] = lambda config=config: config(probs)
    return funcs


def measure_times(funcs: dict[str, Any], repeat: int) -> dict[str, list[float]]:
    """Warm up (JIT compilation, first touch), then seconds of interleaved rounds."""
    for func in funcs.values():
        func()
    return interleaved_times(funcs, repeat)


def measure_memory(funcs: dict[str, Any]) -> dict[str, tuple[int, int | None, int]]:
    """Peak extra bytes of one call of each function: (traced, resident, output bytes)."""
    return {
        label: (traced_peak(func), peak_rss_growth(func), _nbytes(func()))
        for label, func in funcs.items()
    }


def _nbytes(result: Any) -> int:
    if isinstance(result, tuple):
        return sum(_nbytes(r) for r in result)
    return int(getattr(result, "nbytes", 0))


def _extra(traced: int, rss: int | None, out_bytes: int, base: float) -> str:
    """Peak memory beyond the output (the larger of both measures), relative to the input."""
    peak = traced if rss is None else max(traced, rss)
    return f"{max(peak - out_bytes, 0) / base:.2f}"


def _print_table(rows: list[tuple], header: tuple) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        cells = [
            str(v).ljust(w) if j < 2 else str(v).rjust(w)
            for j, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", choices=WORKLOAD_NAMES, default=WORKLOAD_NAMES)
    parser.add_argument("--repeat", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for smoke tests")
    parser.add_argument("--threads", type=int, default=None, help="numba threads to use")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.threads is not None:
        numba.set_num_threads(args.threads)

    load_before = _load_average()
    workloads = {name: load_workload(name, small=args.quick) for name in args.workloads}
    times = {}
    for name, probs in workloads.items():
        print(f"{name}: {probs.shape} {probs.dtype}, {probs.nbytes / 2**20:.1f} MiB", flush=True)
        times[name] = measure_times(workload_funcs(probs), args.repeat)
    load_after = _load_average()
    # Memory after all timings: unmap_freed_memory changes the allocator for the process.
    unmap_freed_memory()
    rows = []
    for name, probs in workloads.items():
        base = statistics.median(times[name][YARDSTICK])
        for label, (traced, rss, out_bytes) in measure_memory(workload_funcs(probs)).items():
            median = statistics.median(times[name][label])
            rows.append(
                (
                    name,
                    label,
                    f"{median * 1e3:.2f}",
                    f"{median / base:.2f}",
                    f"{min(times[name][label]) * 1e3:.2f}",
                    _ratio(traced, probs.nbytes),
                    _ratio(rss, probs.nbytes),
                    _extra(traced, rss, out_bytes, probs.nbytes),
                )
            )
    print(machine_line())
    print(
        f"load average (1 min) {load_before} before timing, {load_after} after: parallel "
        "kernels slow down sharply when other processes compete for the cores"
    )
    print(f"median of {args.repeat} interleaved rounds; ratios to {YARDSTICK} of the same run")
    header = (
        "workload",
        "config",
        "median ms",
        "x argmax",
        "min ms",
        "traced/in",
        "rss/in",
        "extra/in",
    )
    _print_table(rows, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
