"""Running many cases: claims, leftover temporary files, workers that die, a dask cluster.

``rankseg predict`` hands its cases to one of three runners, all generators of
results in completion order:

* :func:`run_serial` -- in this process, one case after the other (``-j 1``);
* :func:`run_pool` -- ``-j N`` worker processes (``spawn``), one case each at a
  time.  A worker that dies (the out-of-memory killer's SIGKILL) costs only the
  case it held: that case is retried once in a fresh worker, then reported with a
  hint; the other cases go on.  Workers end with the parent (``PR_SET_PDEATHSIG``
  on Linux, a watch on the parent pid elsewhere).
* :func:`run_dask` -- one ``client.submit`` per case on a dask.distributed cluster.

Before a case runs, the runner calls ``before(job)`` (the caller takes the case's
claim, :class:`Claims`, removes what killed runs left, :func:`sweep`, and may
answer with a result instead, e.g. "skipped"); after it, ``after(job)`` (the claim
is released).  Cases are claimed as they are dispatched, not all at the start, so
that ``--continue`` runs started together on one folder share the cases.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rankseg.io._naming import file_suffix

#: how often (s) a run refreshes the modification time of the claims it holds
HEARTBEAT = 30.0
#: a claim of another host is stale when not refreshed for this long (s)
STALE_OTHER_HOST = 300.0
#: a claim file without content (its writer was killed right after creating it) is
#: stale after this long (s)
STALE_EMPTY = 10.0

#: Test-only hook, read by pool workers and dask tasks (never in the main process):
#: ``NAME=ACTION[;NAME=ACTION...]`` with NAME a case name or ``*`` and ACTION
#: ``kill`` (SIGKILL the worker, as the out-of-memory killer does), ``kill-once:PATH``
#: (the same, once: when PATH can be created), ``mark:DIR`` (create ``DIR/CASE.PID``)
#: or ``sleep:SECONDS``.  Not an interface:
#: tests/test_cli_batch.py uses it to kill workers at a known case.
TEST_HOOK_ENV = "_RANKSEG_TEST_WORKER_HOOK"


# -- claims -------------------------------------------------------------------------
def claim_path(out: Path) -> Path:
    """Return the claim file of the output ``out``: ``.NAME.rankseg-claim`` beside it."""
    return out.with_name(f".{out.name}.rankseg-claim")


def _start_time(pid: int) -> str:
    """Start time of ``pid`` (``/proc/PID/stat`` field 22), '' where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        return stat[stat.rindex(b")") + 2 :].split()[19].decode()
    except (OSError, ValueError, IndexError):
        return ""


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    # a pid reused by another process is not the claimant
    return not start or _start_time(pid) in ("", start)


class Claims:
    """The per-case claims of one run: ``O_CREAT | O_EXCL`` files holding pid and host.

    A claim held by a live process (on this host: its pid, with its start time, is
    running; on another host: the file was refreshed within
    :data:`STALE_OTHER_HOST` seconds -- a running claimant refreshes it every
    :data:`HEARTBEAT` seconds) keeps other runs off the case.  A stale claim (its
    process died) is taken over, under a short-lived ``.takeover`` lock so that
    two runs cannot both take it.
    """

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self.me = f"{os.getpid()} {self.host} {_start_time(os.getpid())}\n"
        self.held: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def _holder(self, path: Path) -> str | None:
        """Describe the live holder of ``path``, or None when it is stale or gone."""
        try:
            text = path.read_text()
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return None
        except OSError:
            return "another run (unreadable claim)"
        fields = text.split()
        if len(fields) < 2:
            return None if age > STALE_EMPTY else "another run (starting)"
        try:
            pid = int(fields[0])
        except ValueError:
            return None if age > STALE_EMPTY else "another run"
        host, start = fields[1], fields[2] if len(fields) > 2 else ""
        if host == self.host:
            return f"pid {pid} on {host}" if _alive(pid, start) else None
        return f"pid {pid} on {host}" if age < STALE_OTHER_HOST else None

    def _take_over(self, path: Path) -> None:
        """Remove the stale claim ``path`` (if still stale) under the takeover lock."""
        lock = path.with_name(path.name + ".takeover")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            with contextlib.suppress(OSError):
                if time.time() - lock.stat().st_mtime > STALE_EMPTY:
                    lock.unlink()  # left by a run killed while taking over
            return
        try:
            os.close(fd)
            if self._holder(path) is None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        finally:
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()

    def take(self, out: Path) -> str | None:
        """Claim the case whose output is ``out``.

        Returns
        -------
        str or None
            None when this run now holds the claim, else who holds it.
        """
        path = claim_path(out)
        for _ in range(5):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder(path)
                if holder is not None:
                    return holder
                self._take_over(path)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(self.me)
            with self._lock:
                self.held.add(path)
            self._start_heartbeat()
            return None
        return "another run (the claim changed hands while taking it over)"

    def release(self, out: Path) -> None:
        """Give up the claim of ``out`` (the case is written, failed or skipped)."""
        path = claim_path(out)
        with self._lock:
            if path not in self.held:
                return
            self.held.discard(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def release_all(self) -> None:
        """Give up every claim (end of the run, or an interrupt)."""
        self._stop.set()
        with self._lock:
            held, self.held = self.held, set()
        for path in held:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _start_heartbeat(self) -> None:
        if self._beat is None:
            self._beat = threading.Thread(target=self._heartbeat, daemon=True)
            self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            with self._lock:
                held = list(self.held)
            for path in held:
                with contextlib.suppress(OSError):
                    os.utime(path)


def _leftover(out: Path) -> re.Pattern[str]:
    """Return the pattern of the names the atomic writers give the temporary files of ``out``."""
    suffix = file_suffix(out)
    stem = out.name[: len(out.name) - len(suffix)] if suffix else out.name
    token = "[0-9a-f]{12}"
    return re.compile(
        rf"\.{re.escape(stem)}\.rankseg-tmp-{token}{re.escape(suffix)}"  # atomic_write
        rf"|\.{re.escape(out.name)}\.rankseg-(tmp|old)-{token}"  # save_dataarray's zarr
    )


def leftovers(folder: Path) -> set[str]:
    """Names in ``folder`` that may be temporary files of the atomic writers."""
    try:
        return {n for n in os.listdir(folder) if n.startswith(".") and ".rankseg-" in n}
    except OSError:
        return set()


def sweep(out: Path, names: set[str] | None = None) -> list[Path]:
    """Remove what killed runs left of the output ``out``: its hidden temporary files.

    Call it only while holding the case's claim: then no live run writes them.

    Parameters
    ----------
    out : Path
        The output file of the case.
    names : set of str, optional
        The candidates (:func:`leftovers` of the folder, listed once per run rather
        than once per case); default: the folder listed now.

    Returns
    -------
    list of Path
        The files (or zarr folders) removed.
    """
    pattern = _leftover(out)
    removed = []
    for name in list(leftovers(out.parent) if names is None else names):
        if pattern.fullmatch(name):
            p = out.parent / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            removed.append(p)
    return removed


# -- the worker side ----------------------------------------------------------------
def _test_hook(case: str) -> None:
    """Run the test-only action of :data:`TEST_HOOK_ENV` for ``case`` (workers only)."""
    spec = os.environ.get(TEST_HOOK_ENV)
    if not spec:
        return
    for item in spec.split(";"):
        name, _, action = item.partition("=")
        if name not in ("*", case):
            continue
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif action.startswith("kill-once:"):
            try:
                os.close(os.open(action[10:], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            os.kill(os.getpid(), signal.SIGKILL)
        elif action.startswith("mark:"):
            Path(action[5:], f"{case}.{os.getpid()}").touch()
        elif action.startswith("sleep:"):
            time.sleep(float(action[6:]))


def _die_with_parent(parent: int) -> None:
    """End this worker when the process ``parent`` dies (even by SIGKILL)."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()


def _worker_main(
    conn: Any,
    parent: int,
    run: Callable[[Any], Any],
    init: Callable[..., None],
    initargs: tuple[Any, ...],
) -> None:
    """Loop of a pool worker: receive a job, run it, send its result; None ends it."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    init(*initargs)
    from rankseg.io import case_name

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        _test_hook(case_name(job.path))
        conn.send(run(job))


# -- the runners --------------------------------------------------------------------
Before = Callable[[Any], Any]  # job -> a result instead of running it, or None
After = Callable[[Any], None]


def run_serial(
    jobs: list[Any], run: Callable[[Any], Any], before: Before, after: After
) -> Iterator[Any]:
    """Run ``jobs`` one after the other in this process."""
    for job in jobs:
        res = before(job)
        if res is not None:
            yield res
            continue
        try:
            res = run(job)
        finally:
            after(job)
        yield res


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


class _Worker:
    def __init__(self, ctx: Any, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child, *args), daemon=True)
        self.proc.start()
        child.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)
        self.conn.close()


def run_pool(
    jobs: list[Any],
    workers: int,
    run: Callable[[Any], Any],
    before: Before,
    after: After,
    failed: Callable[[Any, str], Any],
    init: Callable[..., None],
    initargs: tuple[Any, ...] = (),
) -> Iterator[Any]:
    """Run ``jobs`` in ``workers`` spawned processes, one job per process at a time.

    A worker that dies takes only its job with it: the job is retried once in a
    fresh worker; when that one dies too, ``failed(job, message)`` is its result.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")  # no fork of a process with kernel threads
    args = (os.getpid(), run, init, initargs)
    queue = deque(jobs)
    tries: dict[int, list[str]] = {}  # job index -> how its workers died
    idle: list[_Worker] = []
    busy: dict[_Worker, Any] = {}
    try:
        while queue or busy:
            while queue and len(busy) < workers:
                job = queue.popleft()
                if job.index not in tries:  # a retry keeps its claim
                    res = before(job)
                    if res is not None:
                        yield res
                        continue
                while True:
                    w = idle.pop() if idle else _Worker(ctx, _worker_main, args)
                    try:
                        w.conn.send(job)
                        break
                    except OSError:  # an idle worker that died: not this job's doing
                        w.proc.join(timeout=5)
                        w.conn.close()
                busy[w] = job
            if not busy:
                continue
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for w in list(busy):
                if w.conn not in ready and w.proc.sentinel not in ready:
                    continue
                job = busy[w]
                try:
                    if w.conn.poll():
                        res = w.conn.recv()
                        del busy[w]
                        idle.append(w)
                        after(job)
                        yield res
                        continue
                except (EOFError, OSError):
                    pass
                if w.proc.is_alive():
                    continue
                del busy[w]
                w.proc.join()
                w.conn.close()
                deaths = tries.setdefault(job.index, [])
                deaths.append(_death(w.proc.exitcode))
                if len(deaths) < 2:
                    queue.appendleft(job)  # once more, in a fresh worker
                    continue
                after(job)
                yield failed(
                    job,
                    f"its worker process died ({deaths[0]}), and again in a fresh worker "
                    f"({deaths[1]}); most often the out-of-memory killer: each of the -j "
                    f"{workers} workers holds one volume, so lower -j or give the run more "
                    "memory",
                )
    finally:
        for w in [*busy, *idle]:
            if w in busy:  # interrupted: do not wait for its case
                w.proc.kill()
            w.stop()


def run_on_dask_worker(run: Callable[[Any], Any], job: Any) -> Any:
    """One case as a task on a dask worker, with the worker's threads (module docstring)."""
    import dask
    from distributed import get_worker

    from rankseg import _threads
    from rankseg.io import case_name

    state = get_worker().state
    # the worker runs up to nthreads tasks at once: share its threads among them
    threads = max(1, state.nthreads // max(1, state.executing_count))
    _test_hook(case_name(job.path))
    with _threads.num_threads(threads), dask.config.set(scheduler="synchronous"):
        return run(job)


def task_failure(exc: BaseException) -> str:
    """Describe a dask task that failed outside a case's own error handling.

    Parameters
    ----------
    exc : BaseException
        What ``future.result()`` raised.

    Returns
    -------
    str
        The message of the case's error line (a memory hint for ``KilledWorker``).
    """
    name = type(exc).__name__
    hint = (
        "; the workers running it died (memory? start the workers with more memory per thread)"
        if name == "KilledWorker"
        else ""
    )
    return f"dask task failed ({name}: {exc}){hint}"


def run_dask(
    jobs: list[Any],
    client: Any,
    run: Callable[[Any], Any],
    before: Before,
    after: After,
    failed: Callable[[Any, str], Any],
) -> Iterator[Any]:
    """Run ``jobs`` as tasks on the cluster of ``client``, a few more than its threads at once.

    A worker lost mid-case: the scheduler runs the case again elsewhere.  A case whose
    workers keep dying (distributed's ``allowed-failures``) gives ``failed``.
    """
    import uuid

    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    queue = deque(jobs)
    pending: dict[Any, Any] = {}
    done = as_completed(loop=client.loop)

    def fill() -> Iterator[Any]:
        limit = max(2, 2 * sum(client.nthreads().values()))
        while queue and len(pending) < limit:
            job = queue.popleft()
            res = before(job)
            if res is not None:
                yield res
                continue
            fut = client.submit(
                run_on_dask_worker,
                run,
                job,
                key=f"rankseg-case-{token}-{job.index}",
                pure=False,
                retries=1,  # an exception outside the case's own error handling
            )
            pending[fut] = job
            done.add(fut)

    try:
        yield from fill()
        while pending:
            fut = next(done)
            job = pending.pop(fut)
            try:
                res = fut.result()
            except Exception as exc:
                res = failed(job, task_failure(exc))
            after(job)
            yield res
            yield from fill()
    finally:
        for fut in pending:
            fut.cancel()
