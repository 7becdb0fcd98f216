"""``rankseg warmup``: compile the kernels once into numba's disk cache.

Every kernel is compiled with ``cache=True``: the first process that needs a kernel
compiles it (seconds to tens of seconds) and writes the machine code to numba's cache;
later processes load it.  A Docker build, a cluster bootstrap or a CI setup step can
pay that once with this command, before any user data is seen.  The code is cached per
input dtype, solver, metric and output mode, so the command compiles the combinations
asked for (default: float32, every solver of every metric, both output modes).

An install that built the kernels ahead of time (``rankseg._kernels_aot``,
docs/performance.rst) runs ``rankseg.predict``'s first call without compiling; the
command still compiles numba's own copies (the compiled module is bypassed while it
runs), which serve whatever that module lacks or when it is not used.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from rankseg._api import AVAILABLE, SOLVERS, predict
from rankseg._compile import aot as _aot
from rankseg._policies import FLOAT_DTYPE_NAMES
from rankseg.cpu import driver

__all__ = ["warmup"]


def warmup(
    dtypes: tuple[str, ...] = ("float32",),
    metrics: tuple[str, ...] = ("dice", "iou", "acc"),
    output_modes: tuple[str, ...] = ("multiclass", "multilabel"),
) -> list[tuple[str, str, str, str, float]]:
    """Run one tiny call of every asked combination, so its kernels are compiled and cached.

    Parameters
    ----------
    dtypes : tuple of str
        Input dtypes among float16, float32, float64.
    metrics : tuple of str
        Metrics; every available solver of each is compiled.
    output_modes : tuple of str
        ``multiclass`` and/or ``multilabel``.

    Returns
    -------
    list of (dtype, metric, solver, output_mode, seconds)
        One row per call, with the time it took (compile or cache load included).

    Raises
    ------
    ValueError
        For an unknown dtype, metric or output mode.
    """
    for name, given, allowed in (
        ("dtype", dtypes, FLOAT_DTYPE_NAMES),
        ("metric", metrics, tuple(SOLVERS)),
        ("output mode", output_modes, ("multiclass", "multilabel")),
    ):
        bad = [g for g in given if g not in allowed]
        if bad:
            raise ValueError(f"unknown {name} {bad[0]!r}; expected one of {', '.join(allowed)}")
    rows = []
    p = np.linspace(0.0, 1.0, 64).reshape(1, 1, 8, 8)
    for dtype in dtypes:
        probs = np.concatenate([p, 1 - p], axis=1).astype(dtype)
        for metric in metrics:
            for solver in SOLVERS[metric]:
                if solver not in AVAILABLE:
                    continue
                for mode in output_modes:
                    if metric == "acc" and (solver == "argmax") != (mode == "multiclass"):
                        continue  # argmax gives labels, tr gives masks: nothing else to compile
                    start = time.perf_counter()
                    with _aot.enabled(False):  # numba's cache is what this fills
                        # a small RMA call's one compiled call, and the launchers'
                        # kernels that larger calls run (rankseg.cpu.driver)
                        for serial in ("always", "never"):
                            driver.SERIAL_CALL = serial
                            try:
                                predict(probs, metric=metric, solver=solver, output_mode=mode)
                            finally:
                                driver.SERIAL_CALL = "ready"
                    rows.append((dtype, metric, solver, mode, time.perf_counter() - start))
    return rows


def add_warmup_args(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``rankseg warmup`` to ``parser``."""
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=FLOAT_DTYPE_NAMES,
        default=["float32"],
        help="input dtypes to compile for (default: float32)",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        choices=list(SOLVERS),
        default=list(SOLVERS),
        help="metrics whose solvers are compiled (default: all)",
    )
    parser.add_argument(
        "--output-modes",
        nargs="+",
        choices=("multiclass", "multilabel"),
        default=["multiclass", "multilabel"],
        help="output modes (default: both)",
    )


def cmd_warmup(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import numba

    start = time.perf_counter()
    rows = warmup(tuple(args.dtypes), tuple(args.metrics), tuple(args.output_modes))
    if not args.quiet:
        for dtype, metric, solver, mode, seconds in rows:
            print(f"{dtype:8s} {metric:5s} {solver:8s} {mode:11s} {seconds:7.2f} s")
        # numba.config sets its settings at run time (from the environment), unseen by mypy
        cache_dir = numba.config.CACHE_DIR  # type: ignore[attr-defined]
        where: Any = cache_dir or "numba's default (beside the package, else the user cache)"
        print(f"{len(rows)} calls in {time.perf_counter() - start:.1f} s; cache: {where}")
    return 0
