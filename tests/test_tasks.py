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
