"""The GPU band sort and block reductions on their own (rankseg/cuda/select.py)."""

import numpy as np
import pytest
from cuda_parity import UNAVAILABLE

if UNAVAILABLE:
    pytest.skip(UNAVAILABLE, allow_module_level=True)

# module-level kernels: the simulator swaps the global ``cuda`` for its fake module
from numba import cuda  # noqa: E402

from rankseg.cuda import select  # noqa: E402


@cuda.jit
def sort_kernel(a, start):
    for i in range(cuda.blockIdx.x, start.shape[0] - 1, cuda.gridDim.x):
        select.sort_desc(a[start[i] : start[i + 1]], start[i + 1] - start[i])


@cuda.jit
def reduce_kernel(x, out):
    buf = cuda.shared.array(64, np.float64)
    s = 0.0
    m = -np.inf
    for j in range(cuda.threadIdx.x, x.shape[0], cuda.blockDim.x):
        s += x[j]
        m = max(m, x[j])
    s = select.block_sum(buf, s)
    m = select.block_max(buf, m)
    if cuda.threadIdx.x == 0:
        out[0] = s
        out[1] = m


@pytest.mark.parametrize("threads", [1, 4, 8])
def test_sort_desc_any_length(threads):
    rng = np.random.default_rng(threads)
    lengths = [0, 1, 2, 3, 5, 7, 8, 9, 16, 17, 30]
    start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    vals = rng.integers(0, 6, start[-1]) / 5.0  # many ties
    vals[start[-2] :] = rng.random(lengths[-1])
    dev = cuda.to_device(vals)
    sort_kernel[2, threads](dev, cuda.to_device(start))
    got = dev.copy_to_host()
    for a, b in zip(start[:-1], start[1:], strict=True):
        np.testing.assert_array_equal(got[a:b], np.sort(vals[a:b])[::-1])


def test_block_reductions():
    x = np.arange(1.0, 38.0)
    for threads in (1, 2, 8, 32):
        out = cuda.device_array(2)
        reduce_kernel[1, threads](cuda.to_device(x), out)
        np.testing.assert_array_equal(out.copy_to_host(), [x.sum(), x.max()])
