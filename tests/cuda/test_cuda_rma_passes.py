"""The GPU band sort and block reductions on their own (rankseg/cuda/rma_passes.py, _block.py)."""

import numpy as np
import pytest
from cuda_parity import UNAVAILABLE

if UNAVAILABLE:
    pytest.skip(UNAVAILABLE, allow_module_level=True)

# module-level kernels: the simulator swaps the global ``cuda`` for its fake module
from numba import cuda  # noqa: E402

from rankseg.cuda import _block  # noqa: E402
from rankseg.cuda import rma_passes as select  # noqa: E402


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
    s = _block.block_sum(buf, s)
    m = _block.block_max(buf, m)
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


BUCKETS = select.BUCKETS  # a global constant: shared array shapes must be literals


@cuda.jit
def bucket_kernel(src, dst, start):
    fill = cuda.shared.array(BUCKETS, np.int32)
    buf = cuda.shared.array(64, np.float64)
    for i in range(cuda.blockIdx.x, start.shape[0] - 1, cuda.gridDim.x):
        a = start[i]
        n = start[i + 1] - a
        select.bucket_sort_desc(src[a : a + n], dst[a : a + n], n, fill, buf)


@pytest.mark.parametrize("threads", [1, 4, 16])
def test_bucket_sort_any_length_and_spread(threads):
    """Counting sort into value buckets, short buckets by one thread, long ones by the
    block: equal values, one dense cluster (a long bucket), spread values, all equal."""
    rng = np.random.default_rng(threads)
    parts = [
        rng.integers(0, 6, 40) / 5.0,  # ties
        np.concatenate([rng.random(50) * 1e-9 + 0.3, rng.random(10)]),  # a long bucket
        rng.random(200),  # spread
        np.full(17, 0.25),  # every value equal
        rng.random(1),
        rng.random(2),
    ]
    start = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    vals = np.concatenate(parts)
    dst = cuda.device_array(vals.size)
    bucket_kernel[2, threads](cuda.to_device(vals), dst, cuda.to_device(start))
    got = dst.copy_to_host()
    for a, b in zip(start[:-1], start[1:], strict=True):
        np.testing.assert_array_equal(got[a:b], np.sort(vals[a:b])[::-1])
