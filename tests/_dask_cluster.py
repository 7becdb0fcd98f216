"""A real local dask.distributed cluster for the command-line tests.

:func:`dask_cluster` starts ``dask scheduler`` and two ``dask worker --nthreads 1``
processes (no nanny: a killed worker stays dead) with this checkout first on their
path, and kills them on exit.  Used by tests/test_cli_batch.py (predict) and
tests/test_cli_cluster_eval.py (evaluate, calibrate, tune).
"""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def env(**extra):
    """The environment of a subprocess: this checkout first on the path."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    e.update(extra)
    return e


def _wait_file(path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.stat().st_size > 0:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{path} did not appear in {timeout} s")


@contextlib.contextmanager
def dask_cluster(folder, **extra_env):
    """Run a scheduler and two one-thread workers; yield ``(scheduler_file, workers)``.

    ``scheduler_file`` is written in ``folder``; ``workers`` are the worker
    processes (``Popen``).  ``extra_env`` goes to every process (e.g. the workers'
    test hook).  Skips the test when distributed or its command line is missing.
    """
    pytest.importorskip("distributed")
    sched_file = Path(folder) / "scheduler.json"
    bindir = Path(sys.executable).parent
    if not (bindir / "dask").exists():
        pytest.skip("the dask command line is not installed")
    dask_cmd = [str(bindir / "dask")]
    e = env(**extra_env)
    quiet = {"env": e, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = []
    try:
        procs.append(
            subprocess.Popen(
                [
                    *dask_cmd,
                    "scheduler",
                    "--port",
                    "0",
                    "--dashboard-address",
                    ":0",
                    "--scheduler-file",
                    str(sched_file),
                ],  # fmt: skip
                **quiet,
            )
        )
        _wait_file(sched_file, 30)
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        *dask_cmd,
                        "worker",
                        "--scheduler-file",
                        str(sched_file),
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                    ],  # fmt: skip
                    **quiet,
                )
            )
        yield sched_file, procs[1:]
    finally:
        for p in reversed(procs):
            p.kill()
        for p in procs:
            p.wait(timeout=10)
