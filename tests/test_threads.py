"""How many Numba threads a call uses (rankseg._config.call_threads).

Small inputs (below SERIAL_SIZE) run on one thread; larger ones on no more threads than
there are cores that other processes leave idle.  Results never depend on the count.
"""

import os

import numba
import numpy as np
import pytest

import rankseg._api as api
import rankseg._config as config
from rankseg import RankSEG, predict
from rankseg._config import CHUNK, SERIAL_SIZE, call_threads, num_threads
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


@pytest.fixture
def all_threads():
    """Every Numba thread in the calling thread during the test, the old count afterwards."""
    old = numba.get_num_threads()
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    yield numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(old)


def _spy_threads(monkeypatch):
    """Record the Numba thread count each time the kernels' first pass is entered."""
    seen = []
    row_stats = api._row_stats

    def spy(arr, x):
        seen.append(numba.get_num_threads())
        return row_stats(arr, x)

    monkeypatch.setattr(api, "_row_stats", spy)
    return seen


def test_threshold_is_a_few_work_items():
    assert SERIAL_SIZE % CHUNK == 0 and 1 <= SERIAL_SIZE // CHUNK <= 8


def test_small_call_runs_on_one_thread_and_restores(monkeypatch, all_threads):
    seen = _spy_threads(monkeypatch)
    probs = make_probs((1, 2, 100, 100))
    predict(probs)
    predict(probs, output_mode="multilabel", return_info=True)
    assert seen == [1, 1]
    assert numba.get_num_threads() == all_threads


def test_large_call_keeps_the_thread_count(monkeypatch, all_threads):
    monkeypatch.setattr(config, "_runnable_elsewhere", lambda: 0.0)  # a quiet machine
    seen = _spy_threads(monkeypatch)
    probs = np.full((1, 4, SERIAL_SIZE // 4), 0.25, dtype=np.float32)  # exactly SERIAL_SIZE
    predict(probs)
    assert seen == [all_threads]
    assert numba.get_num_threads() == all_threads


def test_thread_count_restored_after_a_raising_call(all_threads):
    probs = make_probs((1, 2, 10, 10))
    probs[0, 1, 3, 3] = np.nan
    with pytest.raises(ValueError):
        predict(probs)
    assert numba.get_num_threads() == all_threads


def test_callers_own_count_is_restored(monkeypatch, all_threads):
    seen = _spy_threads(monkeypatch)
    probs = make_probs((1, 2, 10, 10))
    with num_threads(max(1, all_threads - 1)):
        mine = numba.get_num_threads()
        predict(probs)
        assert numba.get_num_threads() == mine
    assert seen == [1]
    assert numba.get_num_threads() == all_threads


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
    monkeypatch, all_threads, metric, output_mode, solver, params, shape, dtype
):
    probs = make_probs(shape, sharpness=3.0, seed=7, dtype=dtype)
    assert probs.size < SERIAL_SIZE
    model = RankSEG(metric, output_mode=output_mode, solver=solver, **params)
    info = metric != "acc"
    serial = model.predict(probs, return_info=info)
    monkeypatch.setattr(api, "call_threads", lambda size: numba.get_num_threads())  # rule off
    parallel = model.predict(probs, return_info=info)
    if not info:
        serial, parallel = (serial, None), (parallel, None)
    np.testing.assert_array_equal(serial[0], parallel[0])
    assert serial[0].dtype == parallel[0].dtype
    if info:
        for field in ("tau", "threshold", "score", "pruned"):
            np.testing.assert_array_equal(getattr(serial[1], field), getattr(parallel[1], field))


def test_num_threads_caps_and_restores(all_threads):
    with num_threads(10 * all_threads):
        assert numba.get_num_threads() == all_threads
    with num_threads(0):
        assert numba.get_num_threads() == 1
    with pytest.raises(RuntimeError), num_threads(1):
        assert numba.get_num_threads() == 1
        raise RuntimeError
    assert numba.get_num_threads() == all_threads


@pytest.mark.parametrize(
    "cpus, others, expected",
    [
        (2, 0.0, 2),  # quiet: every thread
        (2, 1.0, 1),  # one busy process on two cores: one thread, no barrier to wait at
        (2, 2.0, 1),  # fully loaded: still one
        (8, 3.0, 5),
        (8, 2.6, 5),  # a scaled count rounds to the nearest core
        (8, None, 8),  # /proc unreadable (not Linux): every thread
    ],
)
def test_threads_follow_the_idle_cores(monkeypatch, cpus, others, expected):
    monkeypatch.setattr(config, "_usable_cpus", lambda: cpus)
    monkeypatch.setattr(config, "_runnable_elsewhere", lambda: others)
    monkeypatch.setattr(config, "threads", lambda: cpus)
    assert call_threads(SERIAL_SIZE) == expected
    assert call_threads(SERIAL_SIZE - 1) == 1  # small: always one


def test_threads_never_exceed_the_callers_count(monkeypatch):
    monkeypatch.setattr(config, "_usable_cpus", lambda: 16)
    monkeypatch.setattr(config, "_runnable_elsewhere", lambda: 0.0)
    monkeypatch.setattr(config, "threads", lambda: 3)
    assert call_threads(10 * SERIAL_SIZE) == 3


def test_busy_process_is_seen(tmp_path):
    """On Linux, a busy child process shows up as runnable elsewhere."""
    import subprocess
    import sys
    import time

    if config._runnable_elsewhere() is None:
        pytest.skip("/proc/loadavg is not readable here")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nend = time.monotonic() + 20\nwhile time.monotonic() < end: pass",
        ]
    )
    try:
        time.sleep(0.3)
        seen = max(config._runnable_elsewhere() for _ in range(20))
    finally:
        child.kill()
        child.wait()
    assert seen >= 1.0 * min(1.0, config._usable_cpus() / (os.cpu_count() or 1)) - 1e-9


@pytest.mark.parametrize("usable, total, expected", [(2, 2, 3.0), (2, 4, 1.5)])
def test_own_threads_are_not_counted(monkeypatch, tmp_path, usable, total, expected):
    """5 runnable on the machine, 2 of them ours (the caller, a spinning worker): 3 others,
    scaled to the cores this process may use."""
    (tmp_path / "loadavg").write_text("0.50 0.40 0.30 5/300 12345\n")
    tasks = tmp_path / "self" / "task"
    for tid, state in [(11, "R"), (12, "S"), (13, "R")]:
        (tasks / str(tid)).mkdir(parents=True)
        (tasks / str(tid) / "stat").write_text(f"{tid} (python (x) y) {state} 1 2 3\n")
    monkeypatch.setattr(config, "_usable_cpus", lambda: usable)
    monkeypatch.setattr(config.os, "cpu_count", lambda: total)
    assert config._runnable_elsewhere(str(tmp_path)) == expected
    assert config._runnable_elsewhere(str(tmp_path / "missing")) is None
