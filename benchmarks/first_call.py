"""What a fresh install waits for: import + first ``predict``, numba's cache cold or warm.

Usage::

    python benchmarks/first_call.py [--rounds N] [--solvers rma exact] [--source DIR ...]
        [--kernels aot jit]

Each sample is a new interpreter that imports NumPy and rankseg and solves one 8 x 8
map of two classes (the statement of ``bench_first_call.FirstCall``).  ``cold``: an
empty ``NUMBA_CACHE_DIR`` (every kernel the call needs is compiled); ``warm``: a
directory filled by one earlier cold sample.  The yardstick ``python -c "import
numpy, scipy"`` runs in the same rounds, and every time is printed as a ratio to it
too.  ``--kernels``: ``aot`` uses the kernels compiled at install time
(``rankseg._kernels_aot``, where the install built it), ``jit`` makes numba compile
them (``RANKSEG_AOT=0``); both by default, side by side.  ``--source`` compares
other checkouts (their ``rankseg`` package is put first on ``sys.path``) side by
side, e.g. the last release against this one; by default the checkout this script
belongs to.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: keyword arguments of the first call, by solver
FIRST_CALLS = {
    "rma": 'metric="dice"',
    "exact": 'metric="dice", solver="exact"',
    "trna": 'metric="dice", output_mode="multilabel", solver="trna"',
    "ba": 'metric="dice", output_mode="multilabel", solver="ba"',
    "ba+trna": 'metric="dice", output_mode="multilabel", solver="ba+trna"',
    "iou": 'metric="iou"',
    "multilabel": 'metric="dice", output_mode="multilabel"',
    "acc": 'metric="acc"',  # the smallest set of kernels (the smoke test's)
}

_CALL = (
    "import numpy as np\n"
    "import rankseg\n"
    "p = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(1, 1, 8, 8)\n"
    "rankseg.predict(np.concatenate([p, 1 - p], axis=1), {kwargs})\n"
)
_YARDSTICK = "import numpy, scipy"


def _run(
    code: str, source: Path | None, cache: str | None, aot: bool = True
) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh interpreter running ``code``.

    The CPU time (user + system of the child) hardly depends on what else the machine
    runs, which the wall time does: compiling is one busy thread.
    """
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = cache
    env["RANKSEG_AOT"] = "1" if aot else "0"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # run outside any checkout: "python -c" puts the working directory first on
    # sys.path, ahead of PYTHONPATH, which would import the checkout it runs in
    # instead of ``source``
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(argv: Sequence[str] | None = None) -> int:
    """Time the rounds and print the table; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="samples of each (default 3)")
    parser.add_argument("--solvers", nargs="+", choices=list(FIRST_CALLS), default=["rma", "exact"])
    parser.add_argument(
        "--source", nargs="+", type=Path, default=[ROOT], help="checkouts to compare"
    )
    parser.add_argument(
        "--kernels",
        nargs="+",
        choices=["aot", "jit"],
        default=["aot", "jit"],
        help="aot: the kernels compiled at install time (rankseg._kernels_aot) where "
        "built; jit: numba compiles them (RANKSEG_AOT=0); default both",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    root = Path(tempfile.mkdtemp(prefix="rankseg-first-call-"))
    times: dict[tuple[str, str, str, str], list[tuple[float, float]]] = {}
    base: list[tuple[float, float]] = []
    try:
        for r in range(args.rounds):
            base.append(_run(_YARDSTICK, None, None))
            for i, source in enumerate(args.source):
                for kernels in args.kernels:
                    for solver in args.solvers:
                        code = _CALL.format(kwargs=FIRST_CALLS[solver])
                        cold = str(root / f"{r}-{i}-{kernels}-{solver}")
                        aot = kernels == "aot"
                        for cache in ("cold", "warm"):
                            times.setdefault((str(source), kernels, solver, cache), []).append(
                                _run(code, source, cold, aot)
                            )
                        shutil.rmtree(cold, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    yard = statistics.median(b[0] for b in base)
    yard_cpu = statistics.median(b[1] for b in base)
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "n/a"
    print(
        f"python {sys.version.split()[0]}; load average (1 min) {load}; "
        f"median of {args.rounds} rounds"
    )
    print(f"yardstick: python -c {_YARDSTICK!r}: {yard:.2f} s wall, {yard_cpu:.2f} s cpu")
    print(
        f"{'source':32s} {'kernels':7s} {'solver':10s} {'cache':5s} {'wall s':>7s} "
        f"{'x import':>8s} {'cpu s':>7s} {'x import':>8s}"
    )
    for (source, kernels, solver, cache), samples in times.items():
        wall = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        print(
            f"{source[-32:]:32s} {kernels:7s} {solver:10s} {cache:5s} {wall:7.2f} "
            f"{wall / yard:8.1f} {cpu:7.2f} {cpu / yard_cpu:8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
