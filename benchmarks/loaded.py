"""rankseg against ``np.argmax`` on a quiet machine and on a loaded one, in one run.

Usage::

    python benchmarks/loaded.py [--workloads voc2d ct3d tumor3d] [--repeat N]
                                [--phases quiet loaded] [--busy K] [--nice] [--quick]

Users run on shared workstations, CI runners and dask workers, where other processes
hold the cores.  This script times the RMA and exact configurations of
:mod:`benchmarks.compare` and ``np.argmax(probs, axis=1)`` in interleaved rounds, first
on the machine as it is (``quiet``), then with ``K`` busy processes started (``loaded``;
default one per usable core).  Each busy process is a Python loop bounded in time (it
ends by itself after at most ``--busy-seconds``) and is also ended by its pid when the
phase is over, also on errors and Ctrl-C.  Ratios are to the median argmax time of the
same phase: the yardstick sees the same load as the solvers.

With ``--nice`` the busy processes run under ``nice -n 19`` (background jobs): the
load rule of :mod:`rankseg._threads` does not count niced time, so calls should keep
every thread and the ratios of the quiet phase.  Each phase reports the thread counts
its calls used (large inputs; counted by wrapping ``rankseg.cpu.driver.call_threads``), and
a last table puts the quiet and loaded ratios side by side.

Run as a script it imports the ``rankseg`` of this checkout.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: use this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import rankseg.cpu.driver as _driver  # noqa: E402
from benchmarks import WORKLOAD_NAMES, load_workload  # noqa: E402
from benchmarks.compare import (  # noqa: E402
    CONFIGS,
    YARDSTICK,
    _load_average,
    _print_table,
    machine_line,
    measure_times,
    workload_funcs,
)
from rankseg._config import SERIAL_SIZE  # noqa: E402

#: the configurations timed here: every RMA one and the exact solver
SOLVERS = ("rma", "exact")

_BUSY_LOOP = (
    "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
)


def usable_cpus() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _busy_command(seconds: float, nice: int) -> list[str]:
    cmd = [sys.executable, "-c", _BUSY_LOOP.format(seconds=seconds)]
    return ["nice", "-n", str(nice), *cmd] if nice else cmd  # nice execs: same pid


@contextmanager
def busy_processes(count: int, seconds: float, nice: int = 0) -> Iterator[list[int]]:
    """Run ``count`` busy-looping Python processes for the body; yields their pids.

    Each process stops by itself after ``seconds`` and is ended by its pid (SIGTERM,
    then SIGKILL) when the body exits.  ``nice`` > 0 starts them under ``nice -n``.
    """
    procs = [subprocess.Popen(_busy_command(seconds, nice)) for _ in range(count)]
    try:
        time.sleep(0.5)  # let them reach the loop before anything is timed
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


def selected_funcs(probs) -> dict:
    """The yardstick and the RMA / exact configs that apply to ``probs``."""
    keep = {c.label for c in CONFIGS if c.solver in SOLVERS}
    return {k: f for k, f in workload_funcs(probs).items() if k == YARDSTICK or k in keep}


@contextmanager
def counting_threads() -> Iterator[Counter]:
    """Count the thread counts that rankseg's calls on large inputs choose in the body."""
    seen: Counter = Counter()
    real = _driver.call_threads

    def counted(size: int) -> int:
        n = real(size)
        if size >= SERIAL_SIZE:
            seen[n] += 1
        return n

    _driver.call_threads = counted
    try:
        yield seen
    finally:
        _driver.call_threads = real


def _threads_line(seen: Counter) -> str:
    if not seen:
        return "threads per call: no input of SERIAL_SIZE elements or more (one thread)"
    counts = ", ".join(f"{n} thread(s): {k} calls" for n, k in sorted(seen.items()))
    return f"threads per call on large inputs: {counts}"


def run_phase(workloads: dict, repeat: int) -> list[tuple]:
    """Interleaved rounds on every workload; rows of the printed table."""
    rows = []
    for name, probs in workloads.items():
        times = measure_times(selected_funcs(probs), repeat)
        base = statistics.median(times[YARDSTICK])
        for label, samples in times.items():
            median = statistics.median(samples)
            rows.append(
                (
                    name,
                    label,
                    f"{median * 1e3:.2f}",
                    f"{median / base:.2f}",
                    f"{max(samples) * 1e3:.2f}",
                )
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Time the phases and print one table each; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", choices=WORKLOAD_NAMES, default=WORKLOAD_NAMES)
    parser.add_argument("--repeat", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument(
        "--phases", nargs="+", choices=("quiet", "loaded"), default=["quiet", "loaded"]
    )
    parser.add_argument(
        "--busy", type=int, default=None, help="busy processes (default: one per usable core)"
    )
    parser.add_argument(
        "--busy-seconds", type=float, default=600.0, help="upper bound of their life"
    )
    parser.add_argument(
        "--nice", action="store_true", help="start the busy processes under nice -n 19"
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, for smoke tests")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    busy = usable_cpus() if args.busy is None else args.busy
    if busy < 0:
        parser.error("--busy must be at least 0")
    workloads = {name: load_workload(name, small=args.quick) for name in args.workloads}
    header = ("workload", "config", "median ms", "x argmax", "max ms")
    nice = 19 if args.nice else 0
    ratios: dict[str, dict[tuple[str, str], str]] = {}
    for phase in args.phases:
        before = _load_average()
        with counting_threads() as seen:
            if phase == "quiet":
                rows = run_phase(workloads, args.repeat)
                what = "quiet (nothing started)"
            else:
                with busy_processes(busy, args.busy_seconds, nice):
                    rows = run_phase(workloads, args.repeat)
                what = f"loaded ({busy} busy processes, one per usable core by default)"
                if nice:
                    what = f"loaded, niced ({busy} busy processes under nice -n {nice})"
        ratios[phase] = {(r[0], r[1]): r[3] for r in rows}
        print(f"\n== {what}; load average (1 min) {before} before, {_load_average()} after")
        print(machine_line())
        print(
            f"median of {args.repeat} interleaved rounds; ratios to {YARDSTICK} of the same phase"
        )
        print(_threads_line(seen))
        _print_table(rows, header)
    if "quiet" in ratios and "loaded" in ratios:
        load = "niced load" if nice else "load"
        print(f"\n== x argmax, quiet vs {load}; change of the ratio")
        rows = []
        for key, quiet in ratios["quiet"].items():
            other = ratios["loaded"].get(key)
            if other is None or key[1] == YARDSTICK:
                continue
            change = (float(other) - float(quiet)) / float(quiet) if float(quiet) else 0.0
            rows.append((*key, quiet, other, f"{100 * change:+.0f} %"))
        _print_table(rows, ("workload", "config", "quiet", "loaded", "change"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
