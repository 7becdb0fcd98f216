"""The work-item driver of the kernels (rankseg.cpu.tasks.run_tasks)."""

import threading

import numpy as np
import pytest

from rankseg._compile.jit import jit
from rankseg._threads import num_threads
from rankseg.cpu.tasks import run_tasks


@jit
def _count_items(i0, i1, hits, owner, tag):
    for i in range(i0, i1):
        hits[i] += 1
        owner[i] = tag[0]


@pytest.mark.parametrize("nthreads", [1, 2, 3, 8])
@pytest.mark.parametrize("ntasks", [0, 1, 5, 64, 1001])
def test_every_item_runs_once(nthreads, ntasks):
    hits = np.zeros(ntasks, dtype=np.int64)
    owner = np.zeros(ntasks, dtype=np.int64)
    with num_threads(nthreads):
        run_tasks(_count_items, ntasks, hits, owner, np.array([7]))
    np.testing.assert_array_equal(hits, 1)
    assert (owner == 7).all()


def test_one_thread_is_one_call_in_the_calling_thread():
    calls = []

    def body(i0, i1):
        calls.append((i0, i1, threading.get_ident()))

    with num_threads(1):
        run_tasks(body, 10)
    assert calls == [(0, 10, threading.get_ident())]


def test_ranges_cover_the_items_in_pieces_on_several_threads():
    calls = []
    lock = threading.Lock()

    def body(i0, i1):
        with lock:
            calls.append((i0, i1))

    with num_threads(2):
        run_tasks(body, 100)
    calls.sort()
    assert len(calls) > 2  # more ranges than threads: a slow thread can be helped
    assert calls[0][0] == 0 and calls[-1][1] == 100
    assert all(a[1] == b[0] for a, b in zip(calls[:-1], calls[1:], strict=True))


def test_an_error_in_a_range_is_raised_to_the_caller():

    def body(i0, i1):
        if i0 <= 50 < i1:
            raise RuntimeError("item 50 failed")

    with num_threads(2), pytest.raises(RuntimeError, match="item 50 failed"):
        run_tasks(body, 100)


def test_the_pool_grows_for_a_larger_explicit_count():
    from rankseg import _threads

    small = _threads.pool(1)
    assert _threads.pool(1) is small  # one pool per process
    big = _threads.pool(_threads._pool_size + 3)
    assert big is not small and _threads._pool_size >= 4
    assert _threads.pool(2) is big
    idents = set()
    lock = threading.Lock()
    barrier = threading.Barrier(4, timeout=30)

    def body(i0, i1):
        with lock:
            idents.add(threading.get_ident())
        barrier.wait()  # four items on four threads at once, else BrokenBarrierError

    with num_threads(4):
        run_tasks(body, 4)
    assert len(idents) == 4


def test_a_pass_with_little_work_runs_in_the_calling_thread():
    """Below PASS_WORK a pass is one call in the calling thread, whatever the count."""
    from rankseg._config import PASS_WORK

    calls = []
    lock = threading.Lock()

    def body(i0, i1):
        with lock:
            calls.append((i0, i1, threading.get_ident()))

    with num_threads(2):
        run_tasks(body, 100, work=PASS_WORK - 1)
    assert calls == [(0, 100, threading.get_ident())]
    calls.clear()
    with num_threads(2):
        run_tasks(body, 100, work=PASS_WORK)
    assert len(calls) > 2


def test_the_launchers_estimate_the_work_of_each_pass(monkeypatch):
    """The items a pass reads (maxima below the bounds: not read), the values it solves."""
    import rankseg
    import rankseg.cpu.launchers as launchers
    from rankseg._config import CHUNK, SOLVE_WEIGHT

    seen = {}
    real = launchers.run_tasks

    def spy(body, ntasks, *args, work=None):
        seen[body.__name__] = work
        return real(body, ntasks, *args, work=work)

    monkeypatch.setattr(launchers, "run_tasks", spy)
    monkeypatch.setattr(rankseg.cpu.driver, "SERIAL_CALL", "never")
    d = 3 * CHUNK
    x = np.zeros((1, 2, d), dtype=np.float32)
    x[0, 1, : CHUNK // 2] = np.linspace(0.2, 0.9, CHUNK // 2)  # one item of row 1 only
    x[0, 0] = 1.0 - x[0, 1]
    _, info = rankseg.predict(x, output_mode="multilabel", return_info=True)
    assert seen["row_stats_tasks"] == x.size
    # row 0 holds forced values in every item; row 1's other items are all zero
    assert seen["count_gather_tasks"] == 4 * CHUNK
    assert seen["rma_rows_tasks"] % SOLVE_WEIGHT == 0
    assert seen["write_masks_tasks"] >= x.size // 4
    labels = rankseg.predict(x)
    assert labels.shape == (1, d)
    assert seen["exclusive_tasks"] == x.size
    assert seen["conflict_tasks"] is not None
