"""One home for the threads of a call: how many, and the pool that runs them.

The kernels are serial ``nogil`` functions over fixed work items
(:mod:`rankseg.cpu.tasks`); a call hands ranges of items to the calling thread
and to the threads of one process-wide pool (:func:`pool`).  How many threads a
call uses (:func:`call_threads`) is decided here and nowhere else:

1. Inputs below :data:`rankseg._config.SERIAL_SIZE` elements run on one thread;
   so does a pass of a larger call with less work than
   :data:`rankseg._config.PASS_WORK` (:func:`pass_threads`).  How an RMA call
   spends its threads on the one-compiled-call path (a range of samples, or of
   multilabel rows, per call) is :func:`serial_threads`.
2. An explicit count wins: the thread-local :func:`num_threads` context, else the
   process-wide :func:`set_num_threads`, else the ``RANKSEG_NUM_THREADS``
   environment variable.  It is taken as given (not capped, no load rule).
3. Otherwise the *automatic* count: the CPUs this process may use
   (:func:`cpu_count`: its affinity mask and its cgroup's CPU quota), at most
   ``numba.get_num_threads()`` when the caller has set numba's count, at most
   ``NUMBA_NUM_THREADS`` and at most a worker's cap (:func:`cap_threads`), and then
   no more than the CPUs other work leaves free (the load rule, :func:`free_cpus`):
   every parallel pass ends when its last range does, so a thread the OS pauses for
   another process holds up the whole call.

The load rule compares two samples of ``/proc/stat``: the CPU time spent on the
CPUs of our affinity mask between them, less this process's own, is the share other
work took.  Time of niced processes (``nice`` > 0) counts as free: the scheduler
gives our nice-0 threads the core at once (a nice-19 process gets about 1.5 % of a
core next to one), so a background job does not slow a call down.  A sample is
taken at most every :data:`LOAD_TTL` seconds and the decision reused in between;
the first sample is taken at import.  Without an earlier sample between
:data:`MIN_WINDOW` and :data:`MAX_WINDOW` seconds old (a call right after the import
or a fork, or after a long pause) the instantaneous runnable count of
``/proc/loadavg`` stands in (niced processes count there).

Fork safety: after ``fork`` a child has only the thread that forked.  The pool, the
locks and the load samples are reset in the child (``os.register_at_fork``), so a
child of a process that ran calls on several threads (multiprocessing's ``fork``,
torch ``DataLoader`` workers, gunicorn/celery) makes its own pool
(``tests/test_fork.py``).

Numba's own thread pool is not used by the kernels; this module never starts it.
``import rankseg`` does not import numba (``tests/test_aot.py``).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, NamedTuple

from rankseg._compile.jit import imported_numba
from rankseg._config import PASS_WORK, SERIAL_SIZE, SERIAL_TWO_SIZE
from rankseg._validation import check_threads

__all__ = [
    "ENV_VAR",
    "LOAD_TTL",
    "MAX_WINDOW",
    "MIN_WINDOW",
    "call_threads",
    "serial_threads",
    "cut_threads",
    "cap_threads",
    "cgroup_quota",
    "cpu_count",
    "free_cpus",
    "get_num_threads",
    "num_threads",
    "pass_threads",
    "pool",
    "set_num_threads",
    "threads",
]

#: the environment variable of the explicit thread count
ENV_VAR = "RANKSEG_NUM_THREADS"

#: seconds a load decision is reused before ``/proc/stat`` is read again
LOAD_TTL = 0.5
#: shortest window (s) over which CPU time is compared: ``/proc/stat`` counts in
#: ticks of 10 ms (USER_HZ = 100), so 0.1 s gives each CPU ten
MIN_WINDOW = 0.1
#: longest window (s): an older sample says little about the load now
MAX_WINDOW = 30.0

_local = threading.local()
_process_count: int | None = None  # set_num_threads
_cap: int | None = None  # cap_threads (a CLI worker's share of the CPUs)
_quota_cache: list[float | None] = []  # [cgroup CPU quota], read once per process


# -- counts and their checks ---------------------------------------------------------
def _env_count() -> int | None:
    """``RANKSEG_NUM_THREADS`` as a count; None when unset or empty."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return None
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(
            f"environment variable {ENV_VAR}={os.environ[ENV_VAR]!r}: expected an integer "
            "number of threads >= 1 (unset it for the automatic count)"
        )
    return count


def _explicit() -> int | None:
    """Return the explicit count in force in this thread (context, process, environment)."""
    local = getattr(_local, "count", None)
    if local is not None:
        return local
    if _process_count is not None:
        return _process_count
    return _env_count()


def set_num_threads(nthreads: int | None) -> None:
    """Set the number of threads of every call in this process (``None``: automatic).

    An explicit count beats the automatic one: calls use ``nthreads`` threads
    whatever the load of the machine and however many CPUs it has (inputs below
    ``rankseg._config.SERIAL_SIZE`` elements still run on one).  It overrides the
    ``RANKSEG_NUM_THREADS`` environment variable; a :func:`num_threads` context
    overrides it in its thread.  A forked child inherits it.  Results do not depend
    on the thread count.

    Parameters
    ----------
    nthreads : int or None
        Threads per call (at least 1), or None for ``RANKSEG_NUM_THREADS`` if set,
        else the automatic count.

    Raises
    ------
    TypeError
        If ``nthreads`` is not an integer or None.
    ValueError
        If ``nthreads`` is below 1.

    See Also
    --------
    num_threads : the same for the body of a ``with`` block, in one thread.
    get_num_threads : the count a call would use now.

    Examples
    --------
    >>> import rankseg
    >>> rankseg.set_num_threads(2)
    >>> rankseg.get_num_threads()
    2
    >>> rankseg.set_num_threads(None)  # back to automatic
    """
    global _process_count
    _process_count = None if nthreads is None else check_threads(nthreads, "nthreads")


@contextmanager
def num_threads(nthreads: int) -> Iterator[None]:
    """Run the body with ``nthreads`` threads per call in the calling thread.

    The count is thread-local (other threads, e.g. other dask tasks, keep theirs),
    beats :func:`set_num_threads`, ``RANKSEG_NUM_THREADS`` and the automatic count,
    and is restored when the body ends, also on exceptions.  Contexts nest.  Inputs
    below ``rankseg._config.SERIAL_SIZE`` elements still run on one thread.  When
    the caller has started numba's own threads, numba's count
    (``numba.set_num_threads``, used by ``prange`` code such as
    :mod:`rankseg.metrics`) is set as well, capped at ``NUMBA_NUM_THREADS``.

    Parameters
    ----------
    nthreads : int
        Threads per call (at least 1).

    Yields
    ------
    None

    Raises
    ------
    TypeError
        If ``nthreads`` is not an integer.
    ValueError
        If ``nthreads`` is below 1.

    Examples
    --------
    >>> import numpy as np
    >>> import rankseg
    >>> probs = np.full((1, 2, 4), 0.5, dtype=np.float32)
    >>> with rankseg.num_threads(1):
    ...     labels = rankseg.predict(probs)
    """
    count = check_threads(nthreads, "nthreads")
    previous = getattr(_local, "count", None)
    numba = _started_numba()
    previous_numba = None
    if numba is not None:
        previous_numba = numba.get_num_threads()
        wanted = min(count, int(numba.config.NUMBA_NUM_THREADS))
        if wanted != previous_numba:
            numba.set_num_threads(wanted)
    _local.count = count
    try:
        yield
    finally:
        _local.count = previous
        if numba is not None and numba.get_num_threads() != previous_numba:
            numba.set_num_threads(previous_numba)


def cap_threads(nthreads: int | None) -> None:
    """Cap the automatic count of this process at ``nthreads`` (None: no cap).

    For worker processes that share the machine (``rankseg predict --workers``):
    an explicit count (:func:`set_num_threads`, ``RANKSEG_NUM_THREADS``) still wins.

    Parameters
    ----------
    nthreads : int or None
        The most threads an automatic count may use.
    """
    global _cap
    _cap = None if nthreads is None else check_threads(nthreads, "nthreads")


# -- CPUs ---------------------------------------------------------------------------
def _affinity() -> set[int] | None:
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not on Linux
        return None


def _cgroup_dirs(self_cgroup: str) -> list[tuple[str, str]]:
    """Return ``(controllers, path)`` of this process's cgroups (``/proc/self/cgroup``)."""
    try:
        with open(self_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            out.append((parts[1], parts[2]))
    return out


def _ancestors(path: str) -> list[str]:
    """``/a/b`` -> ``["a/b", "a", ""]``: a limit may be set on any ancestor."""
    parts = [p for p in path.split("/") if p]
    return ["/".join(parts[:k]) for k in range(len(parts), -1, -1)]


def _read_ints(path: str) -> list[str] | None:
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return None


def cgroup_quota(
    root: str = "/sys/fs/cgroup", self_cgroup: str = "/proc/self/cgroup"
) -> float | None:
    """CPUs granted by the CPU bandwidth limit of this process's cgroups, or None.

    cgroup v2: ``cpu.max`` (``"$MAX $PERIOD"``, ``max`` for no limit); cgroup v1:
    ``cpu.cfs_quota_us / cpu.cfs_period_us`` (quota ``-1`` for no limit) under the
    ``cpu`` controller's mount.  The process's own cgroup and its ancestors are
    read (the smallest limit applies); inside a container, whose cgroup is the root
    of what it sees, that is the container's limit.

    Parameters
    ----------
    root : str
        Where the cgroup file systems are mounted.
    self_cgroup : str
        The process's ``/proc/self/cgroup``.

    Returns
    -------
    float or None
        ``quota / period`` (e.g. 1.5), or None without a limit (or off Linux).
    """
    limits = []
    groups = _cgroup_dirs(self_cgroup) or [("", "/")]
    for controllers, path in groups:
        names = controllers.split(",")
        candidates = _ancestors(path)
        if controllers == "":  # v2: the unified hierarchy
            for rel in candidates:
                fields = _read_ints(os.path.join(root, rel, "cpu.max"))
                if fields and len(fields) == 2 and fields[0] != "max":
                    try:
                        limits.append(int(fields[0]) / int(fields[1]))
                    except (ValueError, ZeroDivisionError):
                        pass
        elif "cpu" in names:  # v1: mounted as cpu, or cpu,cpuacct
            for mount in (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu"):
                base = os.path.join(root, mount)
                if not os.path.isdir(base):
                    continue
                for rel in candidates:
                    quota = _read_ints(os.path.join(base, rel, "cpu.cfs_quota_us"))
                    period = _read_ints(os.path.join(base, rel, "cpu.cfs_period_us"))
                    try:
                        q, p = int(quota[0]), int(period[0])  # type: ignore[index]
                    except (TypeError, ValueError, IndexError):
                        continue
                    if q > 0 and p > 0:
                        limits.append(q / p)
                break
    return min(limits) if limits else None


def cpu_count() -> int:
    """CPUs this process may use: its affinity mask, within its cgroup's CPU quota.

    ``len(os.sched_getaffinity(0))`` (``os.cpu_count()`` off Linux), lowered to the
    quota of :func:`cgroup_quota` rounded up (a quota of 1.5 CPUs gives 2: the
    threads are throttled together at the period's end, no thread waits on
    another).  The quota is read once per process (again in a forked child).

    Returns
    -------
    int
        At least 1.
    """
    mask = _affinity()
    count = len(mask) if mask else (os.cpu_count() or 1)
    if not _quota_cache:
        _quota_cache.append(cgroup_quota())
    quota = _quota_cache[0]
    if quota is not None:
        count = min(count, math.ceil(quota - 1e-9))
    return max(1, count)


def _started_numba() -> Any:
    """numba, if imported and its threading layer started (by the caller), else None."""
    numba = imported_numba()
    if numba is None:
        return None
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    if parallel is None or not getattr(parallel, "_is_initialized", False):
        return None
    return numba


def _numba_cap() -> int | None:
    """Return the caller's numba thread count, else NUMBA_NUM_THREADS, else None."""
    numba = _started_numba()
    if numba is not None:
        return int(numba.get_num_threads())
    numba = imported_numba()
    if numba is not None:
        return int(numba.config.NUMBA_NUM_THREADS)
    try:
        return max(1, int(os.environ["NUMBA_NUM_THREADS"]))
    except (KeyError, ValueError):
        return None


def _automatic_base() -> int:
    """Return the automatic count before the load rule."""
    count = cpu_count()
    for cap in (_numba_cap(), _cap):
        if cap is not None:
            count = min(count, cap)
    return max(1, count)


def threads() -> int:
    """Threads for work started now in the calling thread (no size rule, no load rule).

    The explicit count (:func:`num_threads` context, :func:`set_num_threads`,
    ``RANKSEG_NUM_THREADS``), else the automatic count before the load rule.  Inside
    :func:`rankseg.predict` it is the count :func:`call_threads` chose.

    Returns
    -------
    int
        At least 1.
    """
    explicit = _explicit()
    return explicit if explicit is not None else _automatic_base()


def pass_threads(work: int | None) -> int:
    """Threads for one pass of a call, given an estimate of its work.

    Waking a pool thread costs tens of microseconds (60-90 us on the 2-core VM of
    docs/performance.rst), which a pass over a few hundred thousand values cannot
    win back: a pass with ``work`` below :data:`rankseg._config.PASS_WORK` runs on
    the calling thread alone.  Otherwise, and without an estimate, :func:`threads`.
    Results do not depend on the thread count.

    Parameters
    ----------
    work : int or None
        About how many values the pass streams (its launcher's estimate).

    Returns
    -------
    int
        At least 1.
    """
    if work is not None and work < PASS_WORK:
        return 1
    return threads()


# -- the load rule ------------------------------------------------------------------
class _Sample(NamedTuple):
    """CPU time counters at one moment (ticks of ``/proc/stat``)."""

    t: float  # time.monotonic()
    cpus: dict[int, tuple[int, int]]  # cpu -> (busy, total): busy excludes nice and idle
    own: int  # this process's user + system ticks


def _read_sample(proc: str, mask: set[int] | None, now: float) -> _Sample | None:
    """Read ``/proc/stat`` (the CPUs in ``mask``) and this process's CPU time."""
    try:
        with open(f"{proc}/stat", "rb") as f:
            stat = f.read()
        with open(f"{proc}/self/stat", "rb") as f:
            own_stat = f.read()
        fields = own_stat[own_stat.rindex(b")") + 2 :].split()
        own = int(fields[11]) + int(fields[12])  # utime, stime
        cpus: dict[int, tuple[int, int]] = {}
        for line in stat.splitlines():
            if not line.startswith(b"cpu") or line[3:4] == b" ":
                if cpus:
                    break  # the cpuN lines come first, together
                continue
            name, *values = line.split()
            cpu = int(name[3:])
            if mask is not None and cpu not in mask:
                continue
            v = [int(x) for x in values[:8]] + [0] * (8 - len(values[:8]))
            user, _nice, system, idle, iowait, irq, softirq, steal = v
            # nice is free for us: a niced process yields the core to a nice-0 thread
            # (guest time is already in user and nice); steal is a core we do not get
            cpus[cpu] = (user + system + irq + softirq + steal, sum(v))
    except (OSError, ValueError, IndexError):
        return None
    return _Sample(now, cpus, own) if cpus else None


def _free_from_samples(a: _Sample, b: _Sample) -> float | None:
    """CPUs of the mask that other (non-niced) work left free between two samples."""
    busy, ticks, n = 0.0, 0.0, 0
    for cpu, (busy_b, total_b) in b.cpus.items():
        if cpu not in a.cpus:
            continue
        busy_a, total_a = a.cpus[cpu]
        elapsed = total_b - total_a
        if elapsed <= 0:
            continue
        busy += (busy_b - busy_a) / elapsed
        ticks += elapsed
        n += 1
    if n == 0:
        return None
    own = (b.own - a.own) / (ticks / n)  # our own CPUs' worth over the window
    others = max(0.0, busy - own)
    return max(0.0, n - others)


def _free_now(proc: str, mask: set[int] | None) -> float | None:
    """CPUs free at this instant by ``/proc/loadavg`` (niced processes count as busy).

    Its fourth field counts the runnable threads of the machine; this process's own
    (``/proc/self/task/*/stat`` in state R) are taken off, and the rest is scaled to
    the CPUs of our mask (the file does not say where a thread waits).
    """
    try:
        with open(f"{proc}/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
        own = 0
        for tid in os.listdir(f"{proc}/self/task"):
            with open(f"{proc}/self/task/{tid}/stat", "rb") as f:
                stat = f.read()
            own += stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"R"
    except (OSError, ValueError, IndexError):
        return None
    total = os.cpu_count() or 1
    usable = len(mask) if mask else total
    others = max(0, running - max(own, 1)) * min(1.0, usable / total)
    return max(0.0, usable - others)


class _Load:
    """The load rule's state: the last sample and the decision made from it."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc
        self.lock = threading.Lock()
        self.sample: _Sample | None = None
        self.free: float | None = None
        self.decided = -math.inf

    def prime(self) -> None:
        """Take the first sample, so that the first call can measure over a window."""
        now = time.monotonic()
        with self.lock:
            if self.sample is None:
                self.sample = _read_sample(self.proc, _affinity(), now)

    def free_cpus(self, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        with self.lock:
            if now - self.decided < LOAD_TTL:
                return self.free
            mask = _affinity()
            sample = _read_sample(self.proc, mask, now)
            previous = self.sample
            free = None
            if sample is not None and previous is not None:
                if MIN_WINDOW <= now - previous.t <= MAX_WINDOW:
                    free = _free_from_samples(previous, sample)
                elif now - previous.t < MIN_WINDOW:  # too short to measure: keep the start
                    sample = previous
            if free is None:
                free = _free_now(self.proc, mask)
            self.sample, self.free, self.decided = sample, free, now
            return free


_load = _Load()
# at import (about 40 us): the first call, usually well over MIN_WINDOW later, then
# measures over the window since, instead of falling back on /proc/loadavg
_load.prime()


def free_cpus() -> float | None:
    """CPUs of this process's affinity mask that other work leaves free (the load rule).

    Time spent by niced processes counts as free.  Measured over the window since
    the previous sample (at least :data:`MIN_WINDOW`, at most :data:`MAX_WINDOW`
    seconds), else at this instant from ``/proc/loadavg``; the result is reused
    for :data:`LOAD_TTL` seconds.

    Returns
    -------
    float or None
        None where ``/proc`` cannot be read (not Linux).
    """
    return _load.free_cpus()


def call_threads(size: int) -> int:
    """Threads for one call over ``size`` elements (see the module docstring).

    Parameters
    ----------
    size : int
        Elements of the input (``B * C * d``).

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    ValueError
        If ``RANKSEG_NUM_THREADS`` is set to something else than an integer >= 1.
    """
    explicit = _explicit()
    if size < SERIAL_SIZE:
        return 1
    if explicit is not None:
        return explicit
    base = _automatic_base()
    if base == 1:
        return 1
    free = free_cpus()
    if free is None:
        return base
    return max(1, min(base, int(free + 0.5)))


def serial_threads(size: int, units: int, nthreads: int) -> int:
    """Threads of an RMA call that runs as one compiled call per range of units.

    The one-call kernels (:mod:`rankseg.kernels.rma_serial`) run every pass of
    their rows on one thread, with no launch and no host step between the passes.
    A unit is what is decided on its own -- a sample for multiclass output (its
    classes share the label map), a (sample, class) row for multilabel output -- so
    ranges of units may run side by side.

    Parameters
    ----------
    size : int
        Elements of the input (``B * C * d``).
    units : int
        ``B`` (multiclass) or ``B * C`` (multilabel).
    nthreads : int
        The call's count (:func:`call_threads`).

    Returns
    -------
    int
        ``1``: the whole call as one compiled call -- a call of one thread (a small
        input, the load rule, an explicit 1), or of two threads with fewer units
        than threads and fewer elements than
        :data:`rankseg._config.SERIAL_TWO_SIZE`.  ``nthreads``: a call with at least
        as many units as threads, each thread taking ranges of units.  ``0``: the
        launchers' passes (fewer units than threads, over work items on every
        thread).
    """
    if nthreads <= 1:
        return 1
    if units >= nthreads:
        return nthreads
    if nthreads == 2 and size < SERIAL_TWO_SIZE:
        return 1
    return 0


def cut_threads(rows: int, nthreads: int) -> int:
    """Threads over which a multiclass RMA call forms its rows' cuts as compiled calls.

    For a call that :func:`serial_threads` leaves to the launchers (fewer samples
    than threads) with a multiclass output: each row's statistics, band and rank
    search are its own (:func:`rankseg.kernels.rma_serial.serial_cuts`), so ranges
    of rows can run side by side as one compiled call each, with no host step
    between those passes; the labels are then resolved by the launchers' passes.

    Parameters
    ----------
    rows : int
        ``B * C``.
    nthreads : int
        The call's count (:func:`call_threads`).

    Returns
    -------
    int
        ``nthreads`` when there are at least as many rows as threads (and two
        threads or more), else ``0`` (every pass launched).
    """
    return nthreads if nthreads > 1 and rows >= nthreads else 0


def get_num_threads() -> int:
    """Threads a call on a large input made now from this thread would use.

    The explicit count if one is set (:func:`num_threads`, :func:`set_num_threads`,
    ``RANKSEG_NUM_THREADS``), else the automatic count: the CPUs this process may use
    (affinity mask and cgroup CPU quota), at most numba's count and
    ``NUMBA_NUM_THREADS``, lowered to the CPUs that other work leaves free (niced
    processes do not count).  Inputs below ``rankseg._config.SERIAL_SIZE`` elements
    always run on one thread.

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    ValueError
        If ``RANKSEG_NUM_THREADS`` is set to something else than an integer >= 1.

    Examples
    --------
    >>> import rankseg
    >>> with rankseg.num_threads(3):
    ...     rankseg.get_num_threads()
    3
    """
    return call_threads(SERIAL_SIZE)


# -- the pool -----------------------------------------------------------------------
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def pool(workers: int) -> ThreadPoolExecutor:
    """Return the process's pool of kernel threads, with room for ``workers`` threads.

    Threads are started when work needs them (``ThreadPoolExecutor``), so the pool
    holds as many as the busiest call used.  A larger explicit count than the pool
    allows replaces it (the old one's threads end when idle).  A forked child gets a
    new pool at its first call.

    Parameters
    ----------
    workers : int
        Threads needed besides the calling thread.

    Returns
    -------
    concurrent.futures.ThreadPoolExecutor
    """
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            old = _pool
            _pool_size = max(workers, cpu_count() - 1, 1)
            _pool = ThreadPoolExecutor(max_workers=_pool_size, thread_name_prefix="rankseg")
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def _after_fork_in_child() -> None:
    # The child has only the thread that forked.  The parent's pool threads are gone
    # but the pool object counts them as idle and would hand them work nobody runs
    # (tests/test_fork.py); a lock another thread held at the fork stays held; the
    # load samples hold the parent's CPU time; the child may sit in another cgroup.
    global _pool, _pool_size, _pool_lock, _load
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()
    _load = _Load(_load.proc)
    _quota_cache.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
