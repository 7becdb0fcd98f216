"""The band pass of the rank search (kernels/rma_passes.count_gather_tasks) against NumPy.

Per work item the kernel reads its chunk once, in blocks of ``COUNT_BLOCK`` values:
it counts the band ``lo < p < hi``, counts and sums the forced set ``p >= hi`` and
keeps its smallest bit pattern, and copies the band values, in pixel order, into the
item's slots while they fit, and keeps the largest value of each sub-block of
``SUB_BLOCK`` pixels; :func:`place_band_tasks` then places every item's band
(from its slots, or gathered again from the input) into one buffer.  The oracle does
the same with NumPy comparisons in float64, item by item.
"""

import numpy as np
import pytest

from rankseg._config import COUNT_BLOCK, SUB_BLOCK
from rankseg._policies import bits_view, kernel_view
from rankseg.cpu.launchers import chunk_maxima, sub_blocks
from rankseg.kernels.rma_passes import count_gather_tasks, place_band_tasks


def _oracle(x, lo, hi, chunk):
    """Per item: band values, forced count, forced sum, smallest forced value."""
    wide = x.astype(np.float64)
    out = []
    for i in range(wide.shape[0]):
        for j0 in range(0, wide.shape[1], chunk):
            v = wide[i, j0 : j0 + chunk]
            forced = v[v >= hi[i]]
            band = v[(v > lo[i]) & (v < hi[i])]
            low = forced.min() if forced.size else np.inf
            out.append((band, forced.size, forced.sum(), low))
    return out


def _run(x, lo, hi, chunk, cap, cmax):
    xk = kernel_view(x)
    xb = bits_view(x)
    nrow, d = x.shape
    nch = (d + chunk - 1) // chunk
    ntask = nrow * nch
    rows = np.arange(nrow, dtype=np.int64)
    counts = (
        np.full(ntask, -1, dtype=np.int64),
        np.full(ntask, -1, dtype=np.int64),
        np.full(ntask, np.nan),
        np.zeros(ntask, dtype=xb.dtype),
    )
    slots = np.full((ntask, cap), np.nan)
    sbits = np.full((nrow, nch, sub_blocks(chunk, d)), 7, dtype=np.uint64)
    chunk64 = np.int64(chunk)
    buffers = (slots, cmax, sbits)
    count_gather_tasks(0, ntask, xk, xb, rows, (lo, hi), chunk64, counts, buffers)
    start = np.zeros(ntask + 1, dtype=np.int64)
    np.cumsum(counts[0], out=start[1:])
    values = np.full(int(start[-1]), np.nan)
    place_band_tasks(0, ntask, xk, rows, (lo, hi), chunk64, start, slots, values)
    return counts, (slots, chunk_maxima(sbits, x, xb)), start, values


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("cap", [0, 5, 1024])
@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("chunk", [1500, 5000])
def test_counts_and_band_match_numpy(rng, dtype, cap, skip, chunk):
    """Counts, sums, slots and the placed band, across block and item boundaries;
    the largest value of each sub-block (several per item with chunk 5000)."""
    # items of 1500 values start and end inside blocks; of 5000, inside sub-blocks
    d = 5 * COUNT_BLOCK + 777
    smooth = np.clip(np.sin(np.linspace(0, 9, d))[None] * 0.6 + 0.45, 0, 1)
    rows = [
        rng.random(d),  # band values everywhere
        np.round(rng.random(d) * 16) / 16,  # ties with the bounds
        smooth[0],  # runs: blocks without band values
        np.zeros(d),  # an item the maxima let the kernel skip
        np.where(rng.random(d) < 0.01, 0.97, 0.02),  # a few forced values
        np.where(rng.random(d) < 0.3, -0.0, rng.random(d) * 0.4),  # -0.0 (valid)
    ]
    x = np.array(rows).astype(dtype)
    nrow = x.shape[0]
    lo = np.array([0.3, 0.25, 0.2, 0.1, 0.5, 0.2])
    hi = np.array([0.6, 0.75, 0.9, 0.8, 0.9, 0.8])
    if cap == 5:  # bounds that cross: no band (lo >= hi), the forced set as usual
        lo[1], hi[1] = 0.75, 0.25
    nch = (d + chunk - 1) // chunk
    wide = x.astype(np.float64)
    cmax = np.full((nrow, nch), np.inf)
    if skip:  # the maxima of the items, as the row statistics give them
        for c in range(nch):
            cmax[:, c] = wide[:, c * chunk : (c + 1) * chunk].max(axis=1)
    counts, (slots, smax), start, values = _run(x, lo, hi, chunk, cap, cmax)
    nband, nforce, sforce, fbits = counts
    expected = _oracle(x, lo, hi, chunk)
    for task, (band, nf, sf, low) in enumerate(expected):
        assert nband[task] == band.size
        assert nforce[task] == nf
        np.testing.assert_allclose(sforce[task], sf, rtol=1e-13, atol=0)
        got_low = fbits[task : task + 1].view(x.dtype).astype(np.float64)[0] if nf else np.inf
        assert got_low == low
        if band.size <= cap:  # copied while the item was read
            np.testing.assert_array_equal(slots[task, : band.size], band)
        np.testing.assert_array_equal(values[start[task] : start[task + 1]], band)
    # the item of zeros was skipped by its maximum (its counts are an empty item's)
    assert nband[3 * nch] == 0 and nforce[3 * nch] == 0
    for i in range(nrow):
        for c in range(nch):
            m = cmax[i, c]
            for k in range(smax.shape[2]):
                a = c * chunk + k * SUB_BLOCK
                b = min(a + SUB_BLOCK, (c + 1) * chunk, d)
                if a >= b:
                    continue  # past a short last item: no pass visits it
                if m <= lo[i] and m < hi[i]:  # not read: 0, below lo (and every cut)
                    assert smax[i, c, k] == 0.0
                elif np.signbit(wide[i, a:b]).any():  # -0.0's pattern: no maximum known
                    assert smax[i, c, k] == np.inf
                else:
                    assert smax[i, c, k] == wide[i, a:b].max()


def test_forced_sums_of_exact_values_are_exact(rng):
    """Sixteenths add up exactly in any order: the blocks' sums give the item's bits."""
    d = 5 * COUNT_BLOCK + 3
    x = (np.round(rng.random((2, d)) * 16) / 16).astype(np.float32)
    lo, hi = np.array([0.2, 0.3]), np.array([0.5, 0.8])
    counts, *_ = _run(x, lo, hi, d, 64, np.full((2, 1), np.inf))
    wide = x.astype(np.float64)
    for i in range(2):
        assert counts[2][i] == wide[i][wide[i] >= hi[i]].sum()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_sub_blocks_below_the_bounds_count_as_empty(rng, dtype):
    """Sub-blocks of a read item whose values all lie at most ``lo`` add nothing.

    The item's other sub-blocks hold band and forced values: one holds low values
    and two band values only (its maximum lies in the band: counted), another low
    values, -0.0 (whose pattern is the largest there: sign bit set) and a forced
    0.9: it must be counted, not passed over as a sub-block at most ``lo``.
    """
    d = 4 * SUB_BLOCK + 100
    x = np.full((2, d), 0.05)
    x[:, SUB_BLOCK : 2 * SUB_BLOCK] = rng.random((2, SUB_BLOCK))  # band and forced
    x[:, 4 * SUB_BLOCK :] = rng.random((2, 100))  # the short last sub-block
    x[1, 3 * SUB_BLOCK + 5 : 3 * SUB_BLOCK + 50] = -0.0
    x[1, 3 * SUB_BLOCK + 70] = 0.9
    x[0, 2 * SUB_BLOCK + 7] = 0.4  # a sub-block of low values and two band values
    x[0, 2 * SUB_BLOCK + 9] = 0.35
    x = x.astype(dtype)
    lo, hi = np.array([0.3, 0.3]), np.array([0.6, 0.6])
    counts, (slots, smax), start, values = _run(x, lo, hi, d, d, np.full((2, 1), np.inf))
    nband, nforce, sforce, fbits = counts
    for task, (band, nf, sf, low) in enumerate(_oracle(x, lo, hi, d)):
        assert nband[task] == band.size and nforce[task] == nf
        np.testing.assert_allclose(sforce[task], sf, rtol=1e-13, atol=0)
        assert fbits[task : task + 1].view(x.dtype).astype(np.float64)[0] == low
        np.testing.assert_array_equal(values[start[task] : start[task + 1]], band)
    wide = x.astype(np.float64)
    for k in range(5):  # every sub-block's maximum, read or passed over
        part = wide[:, k * SUB_BLOCK : (k + 1) * SUB_BLOCK]
        want = np.where(np.signbit(part).any(axis=1), np.inf, part.max(axis=1))
        np.testing.assert_array_equal(smax[:, 0, k], want)
