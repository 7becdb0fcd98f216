"""How many threads a call uses (rankseg._threads): one module decides.

Small inputs (below SERIAL_SIZE) run on one thread; an explicit count (a
``num_threads`` context, ``set_num_threads``, ``RANKSEG_NUM_THREADS``) beats the rest;
otherwise the CPUs the process may use (affinity, cgroup quota), lowered to those that
other work leaves free -- niced work does not count.  Results never depend on the count.
Timings are not asserted here: the rule is tested on fake /proc and cgroup files.
"""

import os
import subprocess
import sys
import threading
import time

import numba
import numpy as np
import pytest

import rankseg
import rankseg.cpu.driver as cpu_driver
from rankseg import RankSEG, _threads, predict
from rankseg._config import CHUNK, SERIAL_SIZE, SERIAL_TWO_SIZE
from rankseg._threads import call_threads, num_threads, set_num_threads
from rankseg.datasets import make_probs

#: (metric, output_mode, solver, solver params) covering every CPU kernel path
CONFIGS = [
    ("dice", "multiclass", "rma", {}),
    ("dice", "multilabel", "rma", {}),
    ("iou", "multiclass", "rma", {"unassigned_policy": "void"}),
    ("iou", "multilabel", "exact", {}),
    ("dice", "multilabel", "exact", {}),
    ("dice", "multilabel", "ba", {}),
    ("dice", "multilabel", "trna", {}),
    ("dice", "multiclass", "ba+trna", {}),
    ("acc", "multiclass", "argmax", {}),
    ("acc", "multilabel", "tr", {}),
]


@pytest.fixture(autouse=True)
def automatic(monkeypatch):
    """No explicit count from the environment or an earlier test; none left behind."""
    monkeypatch.delenv(_threads.ENV_VAR, raising=False)
    monkeypatch.setattr(_threads, "_process_count", None)
    monkeypatch.setattr(_threads, "_cap", None)


@pytest.fixture
def machine(monkeypatch):
    """A fake machine: ``machine(cpus, free)`` sets the usable CPUs and the free ones."""

    def set_up(cpus, free, numba_cap=None):
        monkeypatch.setattr(_threads, "cpu_count", lambda: cpus)
        monkeypatch.setattr(_threads, "free_cpus", lambda: free)
        monkeypatch.setattr(_threads, "_numba_cap", lambda: numba_cap)

    return set_up


def _spy_threads(monkeypatch):
    """Record the thread count each time the kernels' first pass is entered.

    The first pass is the row statistics of the launchers, an RMA call's compiled
    calls per range of samples (which, when they run, are all of the call), or a
    multiclass RMA call's cuts by ranges of rows.
    """
    seen = []
    row_stats = cpu_driver.checked_row_stats
    serial = cpu_driver._predict_serial

    def spy(arr, x):
        seen.append(_threads.threads())
        return row_stats(arr, x)

    def serial_spy(*args):
        done = serial(*args)
        if done is not None:
            # one compiled call per range of samples, on this many threads
            seen.append(args[4][0])
        return done

    cut_ranges = cpu_driver._predict_cut_ranges

    def cut_spy(*args):
        done = cut_ranges(*args)
        if done is not None:
            seen.append(args[4])  # the cuts by ranges of rows, on this many threads
        return done

    monkeypatch.setattr(cpu_driver, "checked_row_stats", spy)
    monkeypatch.setattr(cpu_driver, "_predict_serial", serial_spy)
    monkeypatch.setattr(cpu_driver, "_predict_cut_ranges", cut_spy)
    return seen


def test_threshold_is_a_few_work_items():
    from rankseg._config import PASS_WORK

    assert SERIAL_SIZE % CHUNK == 0 and 1 <= SERIAL_SIZE // CHUNK <= 16
    assert SERIAL_SIZE <= PASS_WORK  # a call below it has no pass worth two threads


def test_public_names():
    assert rankseg.set_num_threads is set_num_threads
    assert rankseg.num_threads is num_threads
    assert rankseg.get_num_threads is _threads.get_num_threads
    assert {"set_num_threads", "num_threads", "get_num_threads"} <= set(rankseg.__all__)


# -- the decision ---------------------------------------------------------------------
def test_small_call_runs_on_one_thread_and_restores(monkeypatch, machine):
    machine(4, 4.0)
    seen = _spy_threads(monkeypatch)
    probs = make_probs((1, 2, 100, 100))
    predict(probs)
    with num_threads(3):  # an explicit count does not make a small call parallel
        predict(probs, output_mode="multilabel", return_info=True)
        assert _threads.threads() == 3
    assert seen == [1, 1]
    assert getattr(_threads._local, "count", None) is None


def test_large_call_uses_the_free_cpus(monkeypatch, machine):
    machine(2, 2.0)
    seen = _spy_threads(monkeypatch)
    # one sample of SERIAL_TWO_SIZE elements: its cuts by ranges of rows, then the
    # launchers' passes, on both threads
    probs = np.full((1, 4, SERIAL_TWO_SIZE // 4), 0.25, dtype=np.float32)
    predict(probs)
    # two samples: a compiled call per range of samples, on both threads
    predict(probs.reshape(2, 2, -1) * 2)
    machine(2, 1.0)  # one busy process elsewhere: one compiled call on one thread
    predict(probs)
    predict(probs, solver="exact")  # the launchers' passes, on one thread
    assert seen == [2, 2, 1, 1]


@pytest.mark.parametrize(
    "rows, nthreads, expected", [(8, 2, 2), (3, 3, 3), (2, 3, 0), (1, 2, 0), (50, 1, 0)]
)
def test_cut_threads(rows, nthreads, expected):
    assert _threads.cut_threads(rows, nthreads) == expected


@pytest.mark.parametrize(
    "size, samples, nthreads, expected",
    [
        (SERIAL_SIZE - 1, 1, 1, 1),  # small: one compiled call
        (SERIAL_TWO_SIZE * 50, 1, 1, 1),  # one thread (load rule, explicit): also
        (SERIAL_TWO_SIZE * 50, 4, 2, 2),  # a batch: ranges of samples on each thread
        (SERIAL_TWO_SIZE * 50, 3, 3, 3),
        (SERIAL_TWO_SIZE * 50, 2, 3, 0),  # fewer samples than threads: the launchers
        (SERIAL_TWO_SIZE - 1, 1, 2, 1),  # one mid-sized sample on two threads
        (SERIAL_TWO_SIZE, 1, 2, 0),
        (SERIAL_TWO_SIZE - 1, 1, 3, 0),  # three threads or more: only SERIAL_SIZE
    ],
)
def test_serial_threads(size, samples, nthreads, expected):
    assert _threads.serial_threads(size, samples, nthreads) == expected


def test_thread_count_restored_after_a_raising_call():
    probs = make_probs((1, 2, 10, 10))
    probs[0, 1, 3, 3] = np.nan
    with num_threads(2):
        with pytest.raises(ValueError):
            predict(probs)
        assert _threads.threads() == 2
    assert getattr(_threads._local, "count", None) is None


@pytest.mark.parametrize(
    "cpus, free, expected",
    [
        (2, 2.0, 2),  # quiet: every thread
        (2, 1.0, 1),  # one busy process on two cores: one thread, no range to wait for
        (2, 0.0, 1),  # fully loaded: still one
        (8, 5.0, 5),
        (8, 5.4, 5),  # a fractional count rounds to the nearest core
        (8, 4.6, 5),
        (8, 20.0, 8),  # never more than the usable CPUs
        (8, None, 8),  # /proc unreadable (not Linux): every usable CPU
    ],
)
def test_threads_follow_the_free_cpus(machine, cpus, free, expected):
    machine(cpus, free)
    assert call_threads(SERIAL_SIZE) == expected
    assert rankseg.get_num_threads() == expected
    assert call_threads(SERIAL_SIZE - 1) == 1  # small: always one


def test_a_pass_with_little_work_takes_one_thread():
    """pass_threads: one below PASS_WORK (an explicit count too), else the call's count."""
    from rankseg._config import PASS_WORK

    with num_threads(3):
        assert _threads.pass_threads(PASS_WORK - 1) == 1
        assert _threads.pass_threads(0) == 1
        assert _threads.pass_threads(PASS_WORK) == 3
        assert _threads.pass_threads(None) == 3  # no estimate: the call's count


def test_automatic_count_is_capped_by_numba_and_a_worker_cap(machine):
    machine(16, 16.0, numba_cap=3)  # the caller's numba.set_num_threads(3)
    assert call_threads(10 * SERIAL_SIZE) == 3
    machine(16, 16.0)
    _threads.cap_threads(4)  # a CLI worker's share
    assert call_threads(10 * SERIAL_SIZE) == 4
    with num_threads(6):  # explicit beats both
        assert call_threads(10 * SERIAL_SIZE) == 6
    _threads.cap_threads(None)
    assert call_threads(10 * SERIAL_SIZE) == 16


def test_numba_cap_reads_numba_num_threads_without_numba(monkeypatch):
    monkeypatch.setattr(_threads, "imported_numba", lambda: None)
    monkeypatch.setenv("NUMBA_NUM_THREADS", "3")
    assert _threads._numba_cap() == 3
    monkeypatch.delenv("NUMBA_NUM_THREADS")
    assert _threads._numba_cap() is None


# -- the explicit count ---------------------------------------------------------------
def test_explicit_count_beats_the_load_rule(monkeypatch, machine):
    machine(2, 0.0)  # a fully loaded machine
    assert call_threads(SERIAL_SIZE) == 1
    monkeypatch.setenv("RANKSEG_NUM_THREADS", "2")
    assert call_threads(SERIAL_SIZE) == 2
    monkeypatch.setenv("RANKSEG_NUM_THREADS", " 7 ")  # not capped at the CPU count
    assert call_threads(SERIAL_SIZE) == 7
    set_num_threads(3)  # beats the environment
    assert call_threads(SERIAL_SIZE) == 3
    with num_threads(1):  # beats set_num_threads, in this thread
        assert call_threads(SERIAL_SIZE) == 1
        with num_threads(5):  # contexts nest
            assert call_threads(SERIAL_SIZE) == 5
        assert call_threads(SERIAL_SIZE) == 1
    assert call_threads(SERIAL_SIZE) == 3
    set_num_threads(None)  # back to the environment
    assert call_threads(SERIAL_SIZE) == 7
    monkeypatch.setenv("RANKSEG_NUM_THREADS", "")  # empty: unset
    assert call_threads(SERIAL_SIZE) == 1
    assert call_threads(SERIAL_SIZE - 1) == 1


def test_explicit_count_runs_that_many_threads(monkeypatch):
    seen = _spy_threads(monkeypatch)
    # one sample of SERIAL_TWO_SIZE elements: its cuts by ranges of rows and the
    # launchers' passes, on threads
    probs = make_probs((1, 4, 1024, 512), seed=1)
    want = predict(probs)
    set_num_threads(3)
    np.testing.assert_array_equal(predict(probs), want)
    monkeypatch.setenv("RANKSEG_NUM_THREADS", "2")
    set_num_threads(None)
    np.testing.assert_array_equal(predict(probs), want)
    assert seen[1:] == [3, 2]


@pytest.mark.parametrize("value", ["abc", "0", "-2", "2.5", "two"])
def test_bad_environment_variable_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("RANKSEG_NUM_THREADS", value)
    message = rf"environment variable RANKSEG_NUM_THREADS='{value}': expected an integer"
    with pytest.raises(ValueError, match=message):
        rankseg.get_num_threads()
    for shape in [(1, 4, 512, 512), (1, 2, 4, 4)]:  # small calls too: fail early
        with pytest.raises(ValueError, match=message):
            predict(make_probs(shape))
    with num_threads(2):  # an explicit count in the code wins: the variable is not read
        assert rankseg.get_num_threads() == 2


@pytest.mark.parametrize(
    "value, error, message",
    [
        (0, ValueError, "nthreads must be at least 1 \\(a number of threads\\); got 0"),
        (-1, ValueError, "nthreads must be at least 1"),
        (1.5, TypeError, "nthreads must be an integer; got float 1.5"),
        (True, TypeError, "nthreads must be an integer; got bool True"),
        ("2", TypeError, "nthreads must be an integer; got str '2'"),
    ],
)
def test_bad_counts_are_refused(value, error, message):
    with pytest.raises(error, match=message):
        set_num_threads(value)
    with pytest.raises(error, match=message):
        with num_threads(value):
            pass
    with pytest.raises(error, match=message):
        _threads.cap_threads(value)
    assert _threads._process_count is None


def test_numpy_integers_are_counts():
    set_num_threads(np.int64(2))
    assert _threads._process_count == 2 and type(_threads._process_count) is int


def test_num_threads_is_thread_local_and_restored():
    inside, other = [], []

    def other_thread():
        other.append(_threads._explicit())

    with num_threads(3):
        inside.append(_threads._explicit())
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
    assert inside == [3] and other == [None]
    with pytest.raises(RuntimeError), num_threads(1):
        raise RuntimeError
    assert _threads._explicit() is None


def test_num_threads_sets_numba_only_once_numba_threads_run():
    numba.get_num_threads()  # the caller started numba's threads
    old = numba.get_num_threads()
    top = numba.config.NUMBA_NUM_THREADS
    with num_threads(10 * top):
        assert numba.get_num_threads() == top  # numba's count is capped
        assert _threads.threads() == 10 * top  # ours is not
    with num_threads(1):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == old


# -- results ------------------------------------------------------------------------
@pytest.mark.parametrize("metric, output_mode, solver, params", CONFIGS)
@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((2, 3, 40, 50), np.float32),
        ((1, 2, 3 * CHUNK // 2 + 7), np.float64),  # rows of two work items, below the rule
        ((1, 3, 20, 30), np.float16),
    ],
)
def test_results_identical_with_and_without_the_rule(
    monkeypatch, metric, output_mode, solver, params, shape, dtype
):
    probs = make_probs(shape, sharpness=3.0, seed=7, dtype=dtype)
    assert probs.size < SERIAL_SIZE
    model = RankSEG(metric, output_mode=output_mode, solver=solver, **params)
    info = metric != "acc"
    serial = model.predict(probs, return_info=info)
    monkeypatch.setattr(cpu_driver, "call_threads", lambda size: 2)  # rule off
    parallel = model.predict(probs, return_info=info)
    if not info:
        serial, parallel = (serial, None), (parallel, None)
    np.testing.assert_array_equal(serial[0], parallel[0])
    assert serial[0].dtype == parallel[0].dtype
    if info:
        for field in ("tau", "threshold", "score", "pruned"):
            np.testing.assert_array_equal(getattr(serial[1], field), getattr(parallel[1], field))


# -- CPUs: affinity and cgroup quota ----------------------------------------------------
@pytest.mark.parametrize(
    "mask, quota, expected",
    [
        (set(range(8)), None, 8),
        (set(range(8)), 1.5, 2),  # a quota rounds up
        (set(range(8)), 2.0, 2),
        (set(range(8)), 0.2, 1),
        ({0, 3}, 6.0, 2),  # the affinity mask is the smaller
        (None, None, None),  # off Linux: os.cpu_count()
    ],
)
def test_cpu_count_honours_affinity_and_quota(monkeypatch, mask, quota, expected):
    monkeypatch.setattr(_threads, "_affinity", lambda: mask)
    monkeypatch.setattr(_threads, "_quota_cache", [quota])
    assert _threads.cpu_count() == (expected or os.cpu_count() or 1)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    "files, cgroup, expected",
    [
        ({"cpu.max": "150000 100000\n"}, "0::/\n", 1.5),  # v2, in a container
        ({"cpu.max": "max 100000\n"}, "0::/\n", None),
        ({}, "0::/\n", None),
        # v2 outside a container: the smallest limit on the way up
        (
            {"a/b/cpu.max": "max 100000\n", "a/cpu.max": "200000 100000\n"},
            "0::/a/b\n",
            2.0,
        ),
        (
            {"a/b/cpu.max": "50000 100000\n", "a/cpu.max": "200000 100000\n"},
            "0::/a/b\n",
            0.5,
        ),
        # v1, cpu and cpuacct mounted together
        (
            {
                "cpu,cpuacct/docker/x/cpu.cfs_quota_us": "250000\n",
                "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n",
            },
            "4:cpu,cpuacct:/docker/x\n1:name=systemd:/\n",
            2.5,
        ),
        # v1 with the container's cgroup as the mount's root, no limit (-1)
        (
            {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
            "2:cpu:/\n0::/\n",
            None,
        ),
        ({"cpu/cpu.cfs_quota_us": "x\n"}, "2:cpu:/\n", None),  # unreadable: no limit
    ],
)
def test_cgroup_quota_from_files(tmp_path, files, cgroup, expected):
    root = tmp_path / "cgroup"
    root.mkdir()
    for name, text in files.items():
        _write(root / name, text)
    _write(tmp_path / "self_cgroup", cgroup)
    assert _threads.cgroup_quota(str(root), str(tmp_path / "self_cgroup")) == expected


def test_cgroup_quota_without_files(tmp_path):
    assert _threads.cgroup_quota(str(tmp_path / "none"), str(tmp_path / "none")) is None


# -- the load rule on fake /proc files ---------------------------------------------------
def _proc(tmp_path, cpus, own=0, running=1):
    """Write a fake /proc: ``cpus`` maps a CPU to its counters
    (user, nice, system, idle, iowait, irq, softirq, steal); ``own`` our utime."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    lines += [f"cpu{i} " + " ".join(map(str, c)) + " 0 0" for i, c in cpus.items()]
    lines += ["intr 1 2 3", "ctxt 5"]
    _write(tmp_path / "stat", "\n".join(lines) + "\n")
    _write(tmp_path / "self" / "stat", f"42 (py (x)) R 1 1 1 0 -1 0 0 0 0 0 {own} 0 0 0\n")
    _write(tmp_path / "loadavg", f"0.5 0.4 0.3 {running}/300 12345\n")
    (tmp_path / "self" / "task" / "42").mkdir(parents=True, exist_ok=True)
    _write(tmp_path / "self" / "task" / "42" / "stat", "42 (py) R 1 2 3\n")
    return str(tmp_path)


def _counters(user=0, nice=0, system=0, idle=0, steal=0):
    return (user, nice, system, idle, 0, 0, 0, steal)


@pytest.mark.parametrize(
    "delta, own, expected",
    [
        ({0: _counters(idle=100), 1: _counters(idle=100)}, 0, 2.0),  # quiet
        ({0: _counters(user=100), 1: _counters(idle=100)}, 0, 1.0),  # a busy process
        ({0: _counters(user=100), 1: _counters(user=100)}, 0, 0.0),
        ({0: _counters(nice=100), 1: _counters(nice=100)}, 0, 2.0),  # niced: free for us
        ({0: _counters(user=100), 1: _counters(user=100)}, 200, 2.0),  # all of it ours
        ({0: _counters(user=100), 1: _counters(idle=100)}, 100, 2.0),
        ({0: _counters(user=50, system=50), 1: _counters(steal=50, idle=50)}, 0, 0.5),
        ({0: _counters(user=50, idle=50), 1: _counters(nice=50, idle=50)}, 0, 1.5),
    ],
)
def test_free_cpus_from_two_samples(monkeypatch, tmp_path, delta, own, expected):
    monkeypatch.setattr(_threads, "_affinity", lambda: {0, 1})
    start = {0: _counters(user=1000, idle=5000), 1: _counters(nice=300, idle=4000)}
    load = _threads._Load(_proc(tmp_path, start, own=500))
    load.prime()
    t0 = load.sample.t
    after = {c: tuple(a + b for a, b in zip(start[c], delta[c], strict=True)) for c in start}
    _proc(tmp_path, after, own=500 + own, running=9)  # loadavg would say: all busy
    assert load.free_cpus(now=t0 + 1.0) == pytest.approx(expected)


def test_load_rule_reads_only_the_cpus_of_the_affinity_mask(monkeypatch, tmp_path):
    monkeypatch.setattr(_threads, "_affinity", lambda: {1})
    start = {0: _counters(idle=100), 1: _counters(idle=100)}
    load = _threads._Load(_proc(tmp_path, start))
    load.prime()
    assert set(load.sample.cpus) == {1}
    _proc(tmp_path, {0: _counters(user=100, idle=100), 1: _counters(idle=200)})
    assert load.free_cpus(now=load.sample.t + 1.0) == pytest.approx(1.0)


def test_decision_is_reused_and_windows_are_bounded(monkeypatch, tmp_path):
    monkeypatch.setattr(_threads, "_affinity", lambda: {0, 1})
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 2)
    quiet = {0: _counters(idle=100), 1: _counters(idle=100)}
    load = _threads._Load(_proc(tmp_path, quiet, running=1))
    load.prime()
    t0 = load.sample.t
    # too soon after the first sample to measure: the instantaneous count stands in
    # (loadavg: 3 runnable, 1 of them ours -> 2 others -> nothing free), and the
    # window keeps its start
    _proc(tmp_path, quiet, running=3)
    assert load.free_cpus(now=t0 + _threads.MIN_WINDOW / 2) == 0.0
    assert load.sample.t == t0
    # within LOAD_TTL the decision is reused without reading the files
    _proc(tmp_path, {0: _counters(idle=200), 1: _counters(idle=200)}, running=1)
    assert load.free_cpus(now=t0 + _threads.MIN_WINDOW / 2 + _threads.LOAD_TTL / 2) == 0.0
    # then measured over the window since the first sample
    now = t0 + _threads.MIN_WINDOW / 2 + _threads.LOAD_TTL
    assert load.free_cpus(now=now) == pytest.approx(2.0)
    assert load.sample.t == now
    # after a pause longer than MAX_WINDOW the old sample says little: instantaneous
    _proc(tmp_path, {0: _counters(idle=300), 1: _counters(idle=300)}, running=2)
    assert load.free_cpus(now=now + _threads.MAX_WINDOW + 1) == pytest.approx(1.0)


def test_unreadable_proc_means_unknown(tmp_path):
    load = _threads._Load(str(tmp_path / "missing"))
    load.prime()
    assert load.sample is None
    assert load.free_cpus(now=1e9) is None


@pytest.mark.parametrize("usable, total, expected", [(2, 2, -1.0), (2, 4, 0.5)])
def test_instantaneous_count_leaves_out_our_own_threads(
    monkeypatch, tmp_path, usable, total, expected
):
    """5 runnable on the machine, 2 of them ours: 3 others, scaled to our CPUs."""
    _write(tmp_path / "loadavg", "0.50 0.40 0.30 5/300 12345\n")
    for tid, state in [(11, "R"), (12, "S"), (13, "R")]:
        _write(tmp_path / "self" / "task" / str(tid) / "stat", f"{tid} (python (x) y) {state} 1\n")
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: total)
    free = _threads._free_now(str(tmp_path), set(range(usable)))
    assert free == max(0.0, expected)
    assert _threads._free_now(str(tmp_path / "missing"), None) is None


# -- the real /proc -------------------------------------------------------------------
_BUSY = "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass"


def _ticks_of(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def _window_with(child_cmd, seconds=0.8):
    """Samples of /proc/stat around ``seconds`` of ``child_cmd``, and its CPUs' worth.

    What other sessions run meanwhile only adds to the busy (or nice) time, so the
    tests bound the rule by the child's own share, measured from its /proc entry.
    """
    mask = _threads._affinity()
    child = subprocess.Popen(child_cmd)
    try:
        time.sleep(0.3)
        a = _threads._read_sample("/proc", mask, time.monotonic())
        c0 = _ticks_of(child.pid)
        time.sleep(seconds)
        b = _threads._read_sample("/proc", mask, time.monotonic())
        c1 = _ticks_of(child.pid)
    except OSError:
        pytest.skip("/proc/<pid>/stat is not readable here")
    finally:
        child.kill()
        child.wait()
    if a is None or b is None:
        pytest.skip("/proc/stat is not readable here")
    per_cpu = sum(b.cpus[c][1] - a.cpus[c][1] for c in b.cpus) / len(b.cpus)
    return a, b, (c1 - c0) / per_cpu


def _nice_ticks():
    """The machine's niced user time (``/proc/stat``, the ``cpu`` line's 2nd field)."""
    with open("/proc/stat") as f:
        return int(f.readline().split()[2])


def test_busy_process_is_seen():
    """On Linux, a busy (nice 0) child's CPU time is taken off the free CPUs."""
    a, b, child = _window_with([sys.executable, "-c", _BUSY])
    if child < 0.3:
        pytest.skip("the child got too little CPU to measure (a saturated machine)")
    free = _threads._free_from_samples(a, b)
    assert free is not None and free <= len(b.cpus) - 0.8 * child


@pytest.mark.skipif(not hasattr(os, "nice"), reason="POSIX only")
def test_niced_process_time_is_in_the_nice_column():
    """A nice-19 busy child's CPU time lands in /proc/stat's nice column, which the rule
    counts as free (test_free_cpus_from_two_samples); nice 0 time does not."""
    for cmd, niced in (
        (["nice", "-n", "19", sys.executable, "-c", _BUSY], True),
        ([sys.executable, "-c", _BUSY], False),
    ):
        child = subprocess.Popen(cmd)
        try:
            time.sleep(0.3)
            n0, c0 = _nice_ticks(), _ticks_of(child.pid)
            time.sleep(0.8)
            n1, c1 = _nice_ticks(), _ticks_of(child.pid)
        finally:
            child.kill()
            child.wait()
        if c1 - c0 < 10:
            pytest.skip("the child got too little CPU to measure (a saturated machine)")
        if niced:
            assert n1 - n0 >= 0.8 * (c1 - c0)  # other niced work only adds to it
        else:
            assert n1 - n0 < 0.8 * (c1 - c0) or n1 - n0 > 2 * (c1 - c0)


@pytest.mark.parametrize(
    "host, usable, threads, expected",
    [
        (8, 8, 4, 4),  # two workers on 8 CPUs: 4 each
        (64, 2, 16, 1),  # a 2-CPU quota on a 64-CPU host, 4 workers: a share of the quota
        (64, 8, 16, 2),
        (2, 2, 1, 1),
    ],
)
def test_cli_worker_caps_its_automatic_count(monkeypatch, host, usable, threads, expected):
    from rankseg.cli._predict import _init_worker

    monkeypatch.setattr(_threads.os, "cpu_count", lambda: host)
    monkeypatch.setattr(_threads, "cpu_count", lambda: usable)
    _init_worker(threads)
    assert _threads._cap == expected
    monkeypatch.setattr(_threads, "free_cpus", lambda: float(usable))
    monkeypatch.setattr(_threads, "_numba_cap", lambda: None)
    assert call_threads(SERIAL_SIZE) == expected
    monkeypatch.setenv("RANKSEG_NUM_THREADS", "3")  # inherited by the worker: it wins
    assert call_threads(SERIAL_SIZE) == 3
