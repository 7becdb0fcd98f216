"""A process that called rankseg on several threads, then forked, keeps working.

After ``fork`` the child has only the thread that forked: the pool threads of the
parent are gone, but a pool object made before the fork still believes it has idle
threads, so a child's call that hands work to it waits forever (torch ``DataLoader``
workers, multiprocessing's default start method on Linux, gunicorn/celery workers).
Every child runs under a deadline: a hang fails the test, it does not hang the run.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from collections.abc import Callable

import numpy as np
import pytest

import rankseg
from rankseg import _threads, predict
from rankseg._config import PASS_WORK, SERIAL_TWO_SIZE
from rankseg.datasets import make_probs

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only"),
    # Python >= 3.12 warns when a process with threads forks: that is the case tested
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]

#: an input large enough for two threads: one sample of SERIAL_TWO_SIZE elements or
#: more (a smaller one runs as one compiled call on one thread), whose cuts are formed
#: by ranges of rows and whose labels by the launchers' passes, of PASS_WORK values or
#: more (smaller passes run in the calling thread)
SHAPE = (1, 4, 1024, 512)


class ChildFailed(AssertionError):
    """A forked child hung (killed at its deadline) or reported an error."""


def run_forked(target: Callable[[], str], timeout: float) -> str:
    """Run ``target()`` in a forked child; return its (short) result, or raise.

    The child writes the result, or its traceback, to a pipe and leaves with
    ``os._exit``; the parent polls for the child's end until ``timeout`` seconds have
    passed, then kills it and raises :class:`ChildFailed`.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into the caller's frames
        code = 1
        try:
            os.close(r)
            message, code = target(), 0
        except BaseException:  # reported to the parent
            message = traceback.format_exc()
        try:
            os.write(w, message.encode()[:60000])  # below a pipe's buffer
        finally:
            os._exit(code)
    os.close(w)
    deadline = time.monotonic() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise ChildFailed(f"the forked child hung: killed after {timeout:.0f} s")
            time.sleep(0.02)
        with os.fdopen(r, "rb") as f:
            out = f.read().decode()
        r = -1
    finally:
        if r >= 0:
            os.close(r)
    if os.waitstatus_to_exitcode(status) != 0:
        raise ChildFailed(f"the forked child failed:\n{out}")
    return out


@pytest.fixture(params=["context", "process", "environment"])
def two_threads(request, monkeypatch):
    """Calls use two threads whatever else runs on the machine, set in one of three ways."""
    monkeypatch.delenv(_threads.ENV_VAR, raising=False)
    if request.param == "context":
        with rankseg.num_threads(2):
            yield
    elif request.param == "process":
        rankseg.set_num_threads(2)
        try:
            yield
        finally:
            rankseg.set_num_threads(None)
    else:
        monkeypatch.setenv(_threads.ENV_VAR, "2")
        yield


def _check(probs: np.ndarray, expected: np.ndarray) -> str:
    # the state of the parent's threads is gone: no pool, no load samples of its own
    assert _threads._pool is None and _threads._load.sample is None
    assert rankseg.get_num_threads() == 2  # the explicit count is inherited
    np.testing.assert_array_equal(predict(probs), expected)
    assert _threads._pool is not None and _threads._pool_size >= 1  # a pool of its own
    assert any(t.is_alive() for t in _threads._pool._threads)  # that ran
    return "ok"


def test_child_and_grandchild_of_a_multithreaded_process(two_threads):
    probs = make_probs(SHAPE, seed=3)
    assert probs.size >= max(SERIAL_TWO_SIZE, PASS_WORK)
    expected = predict(probs)  # two threads: the pool has a thread now
    parent_pool = _threads._pool
    assert parent_pool is not None

    def child() -> str:
        _check(probs, expected)
        assert _threads._pool is not parent_pool
        # the grandchild: forked after the child's own two-thread call
        return run_forked(lambda: _check(probs, expected), timeout=30)

    assert run_forked(child, timeout=60) == "ok"
    np.testing.assert_array_equal(predict(probs), expected)  # the parent's pool still works
    assert _threads._pool is parent_pool


def test_automatic_count_in_a_child(monkeypatch):
    """The child's load rule measures its own process, not the parent's CPU time."""
    monkeypatch.delenv(_threads.ENV_VAR, raising=False)
    probs = make_probs(SHAPE, seed=4)
    expected = predict(probs)

    def child() -> str:
        assert _threads._load.sample is None
        count = rankseg.get_num_threads()
        assert 1 <= count <= _threads.cpu_count()
        np.testing.assert_array_equal(predict(probs), expected)
        time.sleep(_threads.LOAD_TTL + 0.05)  # a window measured in the child
        assert _threads._load.sample is not None
        assert 1 <= rankseg.get_num_threads() <= _threads.cpu_count()
        free = _threads._load.free
        assert free is None or 0 <= free <= len(_threads._affinity() or [0] * 64)
        return "ok"

    assert run_forked(child, timeout=60) == "ok"


class _Maps:
    """A dataset of probability maps ``{"pred": (C, H, W)}``, decided by a transform."""

    def __init__(self, maps: list, transform: Callable) -> None:
        self.maps, self.transform = maps, transform

    def __len__(self) -> int:
        return len(self.maps)

    def __getitem__(self, i: int) -> dict:
        return self.transform({"pred": self.maps[i]})


def test_dataloader_fork_workers_running_rankseg_monai(two_threads):
    from _optional import import_or_skip

    torch = import_or_skip("torch")
    import_or_skip("monai")
    rmonai = import_or_skip("rankseg.monai")

    probs = make_probs((4, *SHAPE[1:]), seed=5)
    expected = predict(probs)  # two threads in the parent before the workers fork
    assert _threads._pool is not None
    maps = [torch.from_numpy(p) for p in probs]
    data = _Maps(maps, rmonai.RankSEGd(keys="pred"))
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=1,
        num_workers=2,
        multiprocessing_context="fork",
        timeout=45,  # a hung worker raises RuntimeError instead of hanging the run
    )
    got = [batch["pred"].numpy()[0, 0] for batch in loader]
    assert len(got) == len(maps)
    for labels, want in zip(got, expected, strict=True):
        np.testing.assert_array_equal(labels, want)
