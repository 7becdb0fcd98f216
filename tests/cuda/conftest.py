"""CUDA backend tests: run only under numba's CUDA simulator or on a real GPU.

Run them in their own process, with the simulator flag set before numba is imported::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda -q

In the main run (no flag, no GPU) every test here is skipped.  The launch
configuration is made tiny (a few threads per block, a few blocks) so the block
reductions, bitonic sort and grid-stride loops are all exercised on small inputs;
the same values work unchanged on a real GPU.
"""

import sys

import pytest
from cuda_parity import SIMULATOR, UNAVAILABLE, fix_simulator_shared_arrays


@pytest.fixture(autouse=True)
def _needs_cuda():
    if UNAVAILABLE:
        pytest.skip(UNAVAILABLE)


@pytest.fixture(scope="session", autouse=True)
def _fast_simulator():
    # The simulator runs each CUDA thread as a Python thread and polls them in a busy
    # loop; with the default 5 ms GIL switch interval a tiny call takes seconds
    # (measured: 1.6 s at 1 thread/block, 0.11 s with 1e-5).
    if not SIMULATOR:
        yield
        return
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    restore = fix_simulator_shared_arrays()
    yield
    restore()
    sys.setswitchinterval(old)


@pytest.fixture(autouse=True)
def small_launch(monkeypatch):
    """Tiny launch configuration (power-of-two threads, grid-stride over few blocks).

    Small tiles and a small band buffer make every row span several tiles and send
    its band through the overflow path (gathered again into an exact buffer).
    """
    if UNAVAILABLE:
        return None
    from rankseg.cuda import _config

    monkeypatch.setattr(_config, "THREADS_PER_BLOCK", 4)
    monkeypatch.setattr(_config, "SORT_THREADS", 4)
    monkeypatch.setattr(_config, "MAX_BLOCKS", 2)
    monkeypatch.setattr(_config, "SHARED_SORT", 16)
    monkeypatch.setattr(_config, "TILE", 8)  # rows of tests span several tiles
    monkeypatch.setattr(_config, "BAND_MIN_CAPACITY", 4)  # long bands are gathered twice
    return _config


@pytest.fixture
def cuda():
    """The ``numba.cuda`` module (simulator or real)."""
    from numba import cuda

    return cuda


def pytest_collection_modifyitems(config, items):
    """On a real GPU numba warns that the tests' tiny grids under-use it: expected.

    The backend-parity inputs are arbitrary probability patterns (uniform, quantized,
    mixed values per class), not softmax maps: the CPU reference's layout warning
    (rankseg.ClassSumWarning, tested in tests/test_api.py) is not what they test.
    """
    quiet = pytest.mark.filterwarnings("ignore:.*Grid size .* GPU under-utilization")
    sums = pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
    for item in items:
        if "cuda" in item.path.parts:
            item.add_marker(quiet)
            item.add_marker(sums)
