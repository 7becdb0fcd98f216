"""Time the upstream torch ``rankseg`` package and this one on the same saved inputs.

Usage::

    python benchmarks/compare_upstream.py --upstream-python /path/to/venv/bin/python
                                          [--workloads voc2d] [--solvers rma ba trna]
                                          [--repeat N] [--threads T] [--quick]

The upstream package (PyPI ``rankseg`` 0.0.x, built on torch) has the same import name
as this one, so it runs in its own interpreter: ``--upstream-python`` is the Python of
a virtualenv where ``import torch, rankseg`` gives the upstream package.  For each
workload the probabilities are saved to a temporary ``.npy``; a subprocess of that
Python loads them and times ``RankSEG(metric="dice", solver=S,
output_mode="multilabel").predict(torch.from_numpy(x))`` and ``np.argmax(x, axis=1)``
in interleaved rounds.  Then this process times :func:`rankseg.predict` with the same
settings and ``np.argmax`` on the same array.  The table gives both medians, each as a
ratio to the ``np.argmax`` of its own run, and the speed-up (upstream median / ours).

A configuration whose first (warm-up) call takes longer than ``--slow`` seconds is not
repeated: its warm-up time is its only sample (upstream TRNA takes minutes on voc2d).

Without a usable upstream environment (no such file, or it does not import torch and
the upstream ``rankseg``) the script prints ``skipped: upstream environment not found``
and exits 0, so that it can run anywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: use this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import numba  # noqa: E402
import numpy as np  # noqa: E402

import rankseg  # noqa: E402
from benchmarks import WORKLOAD_NAMES, interleaved_times, load_workload  # noqa: E402
from benchmarks.compare import machine_line  # noqa: E402

#: our solver name -> upstream solver name (upstream spells them in capitals)
SOLVERS = {"rma": "RMA", "ba": "BA", "trna": "TRNA", "ba+trna": "BA+TRNA"}

SKIP_MESSAGE = "skipped: upstream environment not found"

# Checks that the interpreter imports torch and the *upstream* rankseg (which has
# ``rankseg._rankseg`` and no numba kernels), and reports versions as JSON.
_PROBE = """
import json, sys
import numpy, torch, rankseg
from rankseg import RankSEG
import rankseg._rankseg  # upstream's module layout; ours has no such module
print(json.dumps({
    "python": sys.version.split()[0],
    "numpy": numpy.__version__,
    "torch": torch.__version__,
    "rankseg": getattr(rankseg, "__version__", "?"),
    "threads": torch.get_num_threads(),
}))
"""

# Runs in the upstream interpreter: argv = npy path, json list of upstream solver
# names, repeat, threads (0: torch's default), slow (seconds).  Prints one JSON object
# {"argmax": [seconds...], SOLVER: [seconds...], "threads": n} on its last line.
_UPSTREAM = """
import gc, json, sys, time
import numpy as np
import torch
from rankseg import RankSEG

path, solvers, repeat, threads, slow = sys.argv[1:6]
solvers, repeat, threads, slow = json.loads(solvers), int(repeat), int(threads), float(slow)
if threads > 0:
    torch.set_num_threads(threads)
x = np.load(path)
t = torch.from_numpy(x)
funcs = {"argmax": lambda: np.argmax(x, axis=1)}
for s in solvers:
    model = RankSEG(metric="dice", solver=s, output_mode="multilabel")
    funcs[s] = lambda model=model: model.predict(t)
times = {key: [] for key in funcs}
fast = []
with torch.inference_mode():
    for key, func in funcs.items():  # warm-up; a slow config keeps it as its sample
        start = time.perf_counter()
        func()
        elapsed = time.perf_counter() - start
        if elapsed > slow:
            times[key].append(elapsed)
        else:
            fast.append(key)
    gc.disable()
    for _ in range(repeat):
        for key in fast:
            start = time.perf_counter()
            funcs[key]()
            times[key].append(time.perf_counter() - start)
    gc.enable()
times["threads"] = torch.get_num_threads()
print(json.dumps(times))
"""


def _run_upstream(
    python: str, code: str, args: Sequence[str], cwd: str, timeout: float
) -> subprocess.CompletedProcess:
    # -I: isolated mode, so neither PYTHONPATH nor the working directory can put this
    # checkout's rankseg in front of the upstream one; cwd is a scratch folder anyway.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        [python, "-I", "-c", code, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def probe_upstream(python: str | None, cwd: str) -> tuple[dict | None, str]:
    """Versions of the upstream environment, or ``None`` and the reason it is unusable."""
    if not python:
        return None, "no --upstream-python given"
    if not Path(python).is_file():
        return None, f"{python} does not exist"
    try:
        proc = _run_upstream(python, _PROBE, [], cwd, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{python} could not run: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"{python} does not import torch and upstream rankseg ({last})"
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]), ""
    except (IndexError, json.JSONDecodeError):
        return None, f"{python} printed no version line"


def measure_upstream(
    python: str,
    path: str,
    solvers: Sequence[str],
    repeat: int,
    threads: int,
    slow: float,
    cwd: str,
) -> dict[str, list[float]]:
    """Seconds of each upstream solver and of ``np.argmax`` in the upstream process."""
    names = [SOLVERS[s] for s in solvers]
    args = [path, json.dumps(names), str(repeat), str(threads), str(slow)]
    proc = _run_upstream(python, _UPSTREAM, args, cwd, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"the upstream run failed:\n{proc.stderr}")
    raw = json.loads(proc.stdout.strip().splitlines()[-1])
    times = {"argmax": raw["argmax"], "threads": raw["threads"]}
    for ours, theirs in zip(solvers, names, strict=True):
        times[ours] = raw[theirs]
    return times


def measure_ours(
    probs: np.ndarray, solvers: Sequence[str], repeat: int, slow: float
) -> dict[str, list[float]]:
    """Seconds of each of our solvers and of ``np.argmax`` in this process."""
    funcs = {"argmax": lambda: np.argmax(probs, axis=1)}
    for s in solvers:
        funcs[s] = lambda s=s: rankseg.predict(
            probs, metric="dice", solver=s, output_mode="multilabel"
        )
    times: dict[str, list[float]] = {}
    fast = {}
    for key, func in funcs.items():  # warm-up: JIT compilation, first touch
        start = time.perf_counter()
        func()
        elapsed = time.perf_counter() - start
        if elapsed > slow:
            times[key] = [elapsed]
        else:
            fast[key] = func
    times.update(interleaved_times(fast, repeat))
    return times


def _cell(seconds: list[float], base: float) -> str:
    med = statistics.median(seconds)
    ms = f"{1e3 * med:.1f} ms" if med < 10 else f"{med:.1f} s"
    return f"{ms} ({med / base:.2f}x argmax)"


def report(name: str, upstream: dict, ours: dict, solvers: Sequence[str]) -> list[str]:
    """Table rows of one workload."""
    up_base = statistics.median(upstream["argmax"])
    our_base = statistics.median(ours["argmax"])
    rows = [
        f"{name:<9} {'np.argmax(axis=1)':<17} {_cell(upstream['argmax'], up_base):>30}"
        f"  {_cell(ours['argmax'], our_base):>30}"
    ]
    for s in solvers:
        speedup = statistics.median(upstream[s]) / statistics.median(ours[s])
        rows.append(
            f"{name:<9} {s:<17} {_cell(upstream[s], up_base):>30}"
            f"  {_cell(ours[s], our_base):>30}  {speedup:>8.1f}x"
        )
    return rows


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream-python", help="Python of the upstream environment")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOAD_NAMES, default=["voc2d"])
    parser.add_argument(
        "--solvers", nargs="+", choices=list(SOLVERS), default=["rma", "ba", "trna"]
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch and numba threads (default: theirs)"
    )
    parser.add_argument(
        "--slow", type=float, default=5.0, help="seconds above which a warm-up is the sample"
    )
    parser.add_argument("--quick", action="store_true", help="tiny arrays (smoke test)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    if args.threads < 0:
        parser.error("--threads must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; 0 also when it is skipped."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="rankseg-upstream-") as tmp:
        versions, why = probe_upstream(args.upstream_python, tmp)
        if versions is None:
            print(f"{SKIP_MESSAGE}: {why}")
            return 0
        if args.threads:
            numba.set_num_threads(args.threads)
        print(
            f"upstream: rankseg {versions['rankseg']}, torch {versions['torch']}, "
            f"numpy {versions['numpy']}, python {versions['python']} ({args.upstream_python})"
        )
        print(
            f"dice, multilabel output, default settings; median of {args.repeat} interleaved "
            f"rounds (a config slower than {args.slow:g} s: its one warm-up call); "
            "ratios to np.argmax(axis=1) of the same process"
        )
        rows = []
        for name in args.workloads:
            probs = np.ascontiguousarray(load_workload(name, small=args.quick))
            path = str(Path(tmp) / f"{name}.npy")
            np.save(path, probs)
            print(f"{name}: {probs.shape} {probs.dtype}", flush=True)
            upstream = measure_upstream(
                args.upstream_python, path, args.solvers, args.repeat, args.threads,
                args.slow, tmp,
            )  # fmt: skip
            ours = measure_ours(probs, args.solvers, args.repeat, args.slow)
            if not rows:
                print(f"torch threads={upstream['threads']}")
            rows += report(name, upstream, ours, args.solvers)
        print(machine_line())  # after the runs: numba's threading layer is known now
        header = (
            f"{'workload':<9} {'solver':<17} {'upstream':>30}  {'rankseg (ours)':>30}"
            f"  {'speed-up':>9}"
        )
        print(header)
        print("-" * len(header))
        print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
