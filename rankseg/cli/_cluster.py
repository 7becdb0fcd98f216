"""Reaching a dask.distributed cluster from the command line.

``rankseg predict``, ``evaluate``, ``calibrate`` and ``tune`` take the same three ways
to a cluster: ``--scheduler ADDRESS``, ``--scheduler-file PATH`` (as written by ``dask
scheduler --scheduler-file`` or dask-jobqueue) and, without either, dask's
configuration key ``scheduler-address`` (the ``DASK_SCHEDULER_ADDRESS`` environment
variable or a dask YAML file).  This module defines the options once
(:func:`add_scheduler_args`), reads them (:func:`scheduler_address`), connects
(:func:`connect`) and runs per-case tasks in case order (:func:`in_order`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from rankseg.cli._common import one_line


def add_scheduler_args(g: Any, workers_write: bool = False) -> None:
    """Add ``--scheduler`` and ``--scheduler-file`` to ``g``.

    Parameters
    ----------
    g : argparse argument group or parser
        Where the options go.
    workers_write : bool
        The workers write the outputs (``predict``): the help says that OUTDIR must
        be reachable by them too.
    """
    where = "the inputs and OUTDIR" if workers_write else "the input files"
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the cases as tasks on this dask.distributed scheduler, e.g. "
        "tcp://node1:8786 (default: DASK_SCHEDULER_ADDRESS / dask config "
        f"scheduler-address, else locally); {where} must be reachable by the workers",
    )
    g.add_argument(
        "--scheduler-file",
        metavar="JSON",
        help="the same, through the file `dask scheduler --scheduler-file` wrote "
        "(dask-jobqueue, SLURM)",
    )


def scheduler_address(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """Return ``(address, scheduler_file)`` of the dask cluster to use, or ``(None, None)``.

    ``--scheduler`` or ``--scheduler-file``, else dask's configuration key
    ``scheduler-address`` (the ``DASK_SCHEDULER_ADDRESS`` environment variable or a
    dask YAML file), read only when dask is installed.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of a command (``scheduler`` and ``scheduler_file``).

    Returns
    -------
    tuple
        The scheduler address and the scheduler file; at most one is not None.
    """
    if args.scheduler or args.scheduler_file:
        return args.scheduler, args.scheduler_file
    if os.environ.get("DASK_SCHEDULER_ADDRESS"):
        return os.environ["DASK_SCHEDULER_ADDRESS"], None
    import importlib.util

    if importlib.util.find_spec("dask") is None:
        return None, None
    import dask

    address = dask.config.get("scheduler-address", None)
    return (str(address) if address else None), None


def connect(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Any:
    """Connect to the dask cluster of :func:`scheduler_address`, or return None.

    Every problem is a usage error (exit status 2) before any case is read: both
    options given, ``-j N`` (a command that has it) with a cluster, dask.distributed
    missing, a missing scheduler file, a scheduler that does not answer.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options of the command.
    parser : argparse.ArgumentParser
        The command's parser, for usage errors.

    Returns
    -------
    distributed.Client or None
        A client that is not the default one (close it when done), or None for a
        local run.
    """
    if args.scheduler and args.scheduler_file:
        parser.error("give --scheduler or --scheduler-file, not both")
    address, sched_file = scheduler_address(args)
    if address is None and sched_file is None:
        return None
    where = f"--scheduler-file {sched_file}" if sched_file else f"the scheduler at {address}"
    if not (args.scheduler or args.scheduler_file):
        where += " (DASK_SCHEDULER_ADDRESS / dask config scheduler-address)"
    jobs = getattr(args, "jobs", 1)
    if jobs > 1:
        parser.error(
            f"-j {jobs} starts local workers, but the cases go to {where}; drop -j "
            "(the cluster's workers run the cases) or unset the scheduler"
        )
    try:
        from distributed import Client
    except ImportError:
        parser.error(
            f"running on {where} needs dask.distributed (pip install 'rankseg-numba[dask]')"
        )
    if sched_file and not Path(sched_file).is_file():
        parser.error(f"--scheduler-file {sched_file}: no such file (start the scheduler first)")
    try:
        if sched_file:
            return Client(scheduler_file=sched_file, timeout=30, set_as_default=False)
        return Client(address, timeout=30, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        parser.error(f"cannot connect to {where}: {one_line(exc)}")


@contextlib.contextmanager
def connected(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Iterator[Any]:
    """Give the client of :func:`connect` (or None) for the ``with`` block, then close it.

    Parameters
    ----------
    args, parser
        The command's options and parser, as for :func:`connect`.

    Yields
    ------
    distributed.Client or None
        The cluster, or None for a local run.
    """
    client = connect(args, parser)
    try:
        yield client
    finally:
        if client is not None:
            client.close()


def as_given(message: str, *paths: str | os.PathLike[str]) -> str:
    """Return a worker's ``message`` with ``paths`` named as given, not absolute.

    The workers get absolute paths (their working folder is not ours); the error
    lines of a cluster run then read as those of a local run.

    Parameters
    ----------
    message : str
        The message, written on a worker.
    *paths : path-like
        The files of the case, as the user gave them.

    Returns
    -------
    str
        The message with each path's absolute form replaced by the path.
    """
    for given in paths:
        message = message.replace(os.path.abspath(given), str(given))
    return message


def in_flight(client: Any) -> int:
    """Return how many tasks a run keeps on the cluster at once: twice its threads."""
    return max(2, 2 * sum(client.nthreads().values()))


def in_order(
    client: Any,
    run: Callable[[Any], Any],
    jobs: Iterable[Any],
    failed: Callable[[Any, str], Any],
) -> Iterator[Any]:
    """Yield ``run(job)`` for each job, in the order of ``jobs``.

    With ``client`` None the jobs run here, one after the other.  Otherwise each is
    a task on the cluster (:func:`in_flight` of them at once, with the worker's
    threads shared among its tasks); the results are gathered in job order, so that
    what is made of them does not depend on which task ended first.  A task that
    fails outside ``run``'s own error handling (its workers died) gives
    ``failed(job, message)``.  ``run`` and each job go to the workers: module-level
    functions and picklable jobs with a ``path`` (the case's file).

    Parameters
    ----------
    client : distributed.Client or None
        The cluster, or None for a local run.
    run : callable
        One case: ``run(job) -> result``.
    jobs : iterable
        The cases.
    failed : callable
        ``failed(job, message) -> result`` for a task that failed.

    Yields
    ------
    object
        The results, in job order.
    """
    if client is None:
        for job in jobs:
            yield run(job)
        return
    import itertools
    import uuid

    from rankseg.cli._batch import run_on_dask_worker, task_failure

    token = uuid.uuid4().hex[:8]
    number = itertools.count()
    todo = iter(jobs)
    window: deque[tuple[Any, Any]] = deque()
    limit = in_flight(client)

    def fill() -> None:
        while len(window) < limit:
            job = next(todo, None)
            if job is None:
                return
            key = f"rankseg-case-{token}-{next(number)}"
            fut = client.submit(run_on_dask_worker, run, job, key=key, pure=False, retries=1)
            window.append((job, fut))

    try:
        fill()
        while window:
            job, fut = window.popleft()
            try:
                res = fut.result()
            except Exception as exc:
                res = failed(job, task_failure(exc))
            yield res
            fill()
    finally:
        for _, fut in window:
            fut.cancel()
