"""Pass A of the multiclass resolution (kernels/assign.exclusive_tasks) against plain Python.

The kernel counts, per pixel, the classes whose cut selects it (in the input's own
float dtype where the cut is one of its values, byte-wide counters while the classes
fit in a byte), writes the status and the labels of the exclusive pixels, and adds
the exclusive pixels' values per class in pixel order.  The oracle does each of
those one pixel at a time with Python floats, so the sums must agree bit for bit.
"""

import numpy as np
import pytest

from rankseg._policies import kernel_view
from rankseg.cpu.launchers import conflict_log, conflict_slots, selection_counters
from rankseg.kernels.assign import exclusive_tasks


def _oracle(x, ncls, t, jcut, active, chunk):
    """Labels of the exclusive pixels, status, and per-item sums and counts."""
    nrow, d = x.shape
    nb = nrow // ncls
    nch = (d + chunk - 1) // chunk
    xs = x.astype(np.float64)
    status = np.empty((nb, d), dtype=np.uint8)
    labels = np.full((nb, d), -1, dtype=np.int64)
    msum = np.zeros((nb * nch, ncls))
    nsum = np.zeros((nb * nch, ncls))
    for b in range(nb):
        for j in range(d):
            who = [
                c
                for c in range(ncls)
                if active[b * ncls + c]
                and (
                    xs[b * ncls + c, j] > t[b * ncls + c]
                    or (xs[b * ncls + c, j] == t[b * ncls + c] and j <= jcut[b * ncls + c])
                )
            ]
            status[b, j] = 0 if len(who) == 1 else (1 if not who else 2)
            if len(who) == 1:
                c = who[0]
                labels[b, j] = c
                task = b * nch + j // chunk
                msum[task, c] = float(msum[task, c]) + float(xs[b * ncls + c, j])
                nsum[task, c] += 1.0
    return labels, status, msum, nsum


def _case(rng, dtype, nb, ncls, d):
    """Quantized values (many ties), cuts at input values and off them, tie cuts."""
    x = (np.round(rng.random((nb * ncls, d)) * 16) / 16).astype(dtype)
    t = np.empty(nb * ncls)
    jcut = np.empty(nb * ncls, dtype=np.int64)
    for r in range(nb * ncls):
        kind = rng.integers(0, 5)
        t[r] = float(x[r, rng.integers(0, d)])
        if kind == 0:
            t[r] = 0.1  # not a float32 or float16 value: compared in float64
        elif kind == 1:
            t[r] = np.inf  # an empty cut
        jcut[r] = [d, -1, rng.integers(0, d), d, rng.integers(0, d)][kind]
    active = rng.random(nb * ncls) < 0.85
    return x, t, jcut, active


def _sub_maxima(x, chunk):
    """Each row's largest value per sub-block of each work item, shape (R, nch, nsub).

    The sub-blocks of ``SUB_BLOCK`` pixels start at each item's first pixel, as
    :func:`rankseg.cpu.launchers.row_stats` forms them (a short last item has empty
    ones at the end, given -inf here: no pass visits them).
    """
    from rankseg._config import SUB_BLOCK
    from rankseg.cpu.launchers import sub_blocks

    nrow, d = x.shape
    nch = (d + chunk - 1) // chunk
    nsub = sub_blocks(chunk, d)
    smax = np.full((nrow, nch, nsub), -np.inf)
    for k in range(nch):
        for q in range(nsub):
            a = k * chunk + q * SUB_BLOCK
            b = min(a + SUB_BLOCK, (k + 1) * chunk, d)
            if a < b:
                smax[:, k, q] = x[:, a:b].astype(np.float64).max(axis=1)
    return smax


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("ncls", [2, 5, 255, 256, 300])
def test_exclusive_pass_matches_plain_python(rng, dtype, ncls, skip):
    from rankseg._config import SUB_BLOCK
    from rankseg.cpu.launchers import sub_blocks

    nb = 2
    d = 9003 if ncls < 200 else 71  # the last sub-block not a whole number of words
    # several work items, each of several sub-blocks (the last one short), or of one
    chunk = 5000 if ncls < 200 else 40
    x, t, jcut, active = _case(rng, dtype, nb, ncls, d)
    nch = (d + chunk - 1) // chunk
    out = np.full((nb, d), -7, dtype=np.int64)
    status = np.empty((nb, d), dtype=np.uint8)
    sums = (np.empty((nb * nch, ncls)), np.empty((nb * nch, ncls)))
    cut = (t, jcut, active, np.int64(chunk))
    # each row's largest value per sub-block of each work item (a class whose
    # maximum lies below its cut is not read there), or none known (every class
    # read everywhere)
    smax = np.full((nb * ncls, nch, sub_blocks(chunk, d)), np.inf)
    if skip:
        x[:, :chunk] *= x.dtype.type(0.25)  # first items of every row: far below the cuts
        if chunk > SUB_BLOCK:  # and the second sub-block of every other item
            for k in range(1, nch):
                a = k * chunk + SUB_BLOCK
                x[:, a : min(a + SUB_BLOCK, d)] *= x.dtype.type(0.25)
        smax = _sub_maxima(x, chunk)
    frozen = x.copy()
    cuts = (cut, smax, selection_counters(ncls))
    log = conflict_log(nb * nch, ncls, chunk)
    exclusive_tasks(0, nb * nch, kernel_view(x), np.int64(ncls), cuts, out, status, sums, log)
    labels, ref_status, msum, nsum = _oracle(x, ncls, t, jcut, active, chunk)
    np.testing.assert_array_equal(status, ref_status)
    exclusive = ref_status == 0
    np.testing.assert_array_equal(out[exclusive], labels[exclusive])
    assert sums[0].tobytes() == msum.tobytes()  # the same additions in the same order
    assert sums[1].tobytes() == nsum.tobytes()
    np.testing.assert_array_equal(x, frozen)
    _assert_log(log, x, ref_status, cut, smax)


def _assert_log(log, x, status, cut, smax):
    """Each work item logged its unsettled pixels in order, with their class values.

    A pixel that several classes select logs -1.0 for the classes that cannot
    select it there (inactive, or a cut above their maximum in its sub-block).
    """
    from rankseg._config import SUB_BLOCK

    idx, vals, seen = log
    t, _, active, chunk = cut
    nb, d = status.shape
    ncls = x.shape[0] // nb
    nch = (d + chunk - 1) // chunk
    cap = idx.shape[1]
    for task in range(nb * nch):
        b, k = divmod(task, nch)
        j0 = k * chunk
        want = j0 + np.flatnonzero(status[b, j0 : j0 + chunk])
        assert seen[task] == want.size
        kept = want[:cap]
        np.testing.assert_array_equal(idx[task, : kept.size], kept)
        rows = slice(b * ncls, (b + 1) * ncls)
        cols = x[rows, kept].astype(np.float64).T
        sub = (kept - j0) // SUB_BLOCK
        dead = ~(active[rows, None] & (smax[rows, k][:, sub] >= t[rows, None]))
        cols[(status[b, kept] == 2)[:, None] & dead.T] = -1.0
        assert vals[task, : kept.size].tobytes() == cols.tobytes()


@pytest.mark.parametrize("tiny", [False, True])
@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_exclusive_sums_exact_or_in_pixel_order(rng, dtype, tiny):
    """Cuts at or above the exact-sum floor (N * 2**-30, N the item size rounded up
    to a power of two) take the vectorized class sums, whose bits are the
    pixel-order sum's because every partial sum is exact; a cut below it keeps the
    pixel-order chain.  Random, unquantized values: with ``tiny`` every row mixes
    values near 1 with values of 1e-30 and the cut lies below them (float32), so
    that a sum in another order rounds differently."""
    from rankseg.kernels.assign import exact_sum_floor

    nb, ncls, d, chunk = 2, 3, 9000, 5000
    floor = exact_sum_floor(kernel_view(np.zeros((1, 1), dtype)), chunk)
    assert floor == 2.0**-17  # chunk 5000 -> N = 8192 = 2**13
    # each pixel one hot class (values from the cut up to 1, log-uniform), the others
    # below every cut
    lo = 1e-30 if tiny and dtype == "float32" else 2.0 * floor  # cuts at 1.5 floor
    hot = rng.integers(0, ncls, (nb, d))
    x = np.where(
        np.arange(ncls)[None, :, None] == hot[:, None, :],
        np.exp(rng.uniform(np.log(lo), 0.0, (nb, ncls, d))),
        rng.random((nb, ncls, d)) * lo * 0.5,
    ).astype(dtype)
    x = np.ascontiguousarray(x.reshape(nb * ncls, d))
    t = np.full(nb * ncls, lo * 0.75)
    assert (t >= floor).all() != tiny or dtype == "float16"
    jcut = np.full(nb * ncls, d)
    active = np.ones(nb * ncls, dtype=bool)
    nch = (d + chunk - 1) // chunk
    out = np.empty((nb, d), dtype=np.int64)
    status = np.empty((nb, d), dtype=np.uint8)
    sums = (np.empty((nb * nch, ncls)), np.empty((nb * nch, ncls)))
    cut = (t, jcut, active, np.int64(chunk))
    cuts = (cut, _sub_maxima(x, chunk), selection_counters(ncls))
    log = conflict_log(nb * nch, ncls, chunk)
    exclusive_tasks(0, nb * nch, kernel_view(x), np.int64(ncls), cuts, out, status, sums, log)
    _, ref_status, msum, nsum = _oracle(x, ncls, t, jcut, active, chunk)
    np.testing.assert_array_equal(status, ref_status)
    assert (nsum > 100).all()  # every class has exclusive pixels in every item
    assert sums[0].tobytes() == msum.tobytes()
    assert sums[1].tobytes() == nsum.tobytes()


@pytest.mark.parametrize("slots", [0, 1, 5, 2048])
def test_the_log_keeps_what_fits_and_counts_the_rest(rng, monkeypatch, slots):
    import rankseg.cpu.launchers as launchers

    monkeypatch.setattr(launchers, "CONFLICT_SLOTS", slots)
    monkeypatch.setattr(launchers, "CONFLICT_SHARE", 1)  # an item may log all its pixels
    nb, ncls, d, chunk = 2, 4, 3000, 1100
    x, t, jcut, active = _case(rng, "float32", nb, ncls, d)
    nch = (d + chunk - 1) // chunk
    out = np.empty((nb, d), dtype=np.int64)
    status = np.empty((nb, d), dtype=np.uint8)
    sums = (np.empty((nb * nch, ncls)), np.empty((nb * nch, ncls)))
    smax = np.full((nb * ncls, nch, 1), np.inf)
    cuts = ((t, jcut, active, np.int64(chunk)), smax, selection_counters(ncls))
    log = conflict_log(nb * nch, ncls, chunk)
    assert log[0].shape == (nb * nch, min(max(slots, 1), chunk))  # one slot at least
    exclusive_tasks(0, nb * nch, kernel_view(x), np.int64(ncls), cuts, out, status, sums, log)
    assert (log[2] > 5).all()  # every item has more than 5 to log
    _assert_log(log, x, status, cuts[0], smax)


def test_the_log_budget_shrinks_with_the_classes():
    from rankseg._config import CHUNK, CONFLICT_SLOTS, CONFLICT_VALUES

    for ncls in (2, 8, 21, 300, CONFLICT_VALUES + 1):
        idx, vals, seen = conflict_log(3, ncls, CHUNK)
        cap = max(1, min(CONFLICT_SLOTS, CONFLICT_VALUES // ncls))
        assert idx.shape == (3, cap) and vals.shape == (3, cap, ncls) and seen.shape == (3,)
        assert vals.nbytes <= 3 * 8 * max(CONFLICT_VALUES, ncls)


def test_the_log_budget_shrinks_with_small_images():
    """Work items of few pixels (small images) log at most one pixel in CONFLICT_SHARE."""
    from rankseg._config import CONFLICT_MIN, CONFLICT_SHARE, CONFLICT_SLOTS

    assert conflict_slots(4, CONFLICT_SLOTS * CONFLICT_SHARE) == CONFLICT_SLOTS  # a full chunk
    assert conflict_slots(4, 32 * 32) == 32 * 32 // CONFLICT_SHARE
    assert conflict_slots(4, 10) == CONFLICT_MIN  # no fewer than CONFLICT_MIN ...
    assert conflict_slots(300, 10) == 54  # ... unless the classes' budget is smaller
    idx, vals, _ = conflict_log(1000, 4, 32 * 32)  # 1 000 images of 32 x 32: 4 MiB
    assert idx.shape == (1000, 128) and vals.nbytes == 1000 * 128 * 4 * 8


def _native_bounds(a, b, like):
    """Run kernels._dtype.native_bounds in a compiled kernel (it is inlined there)."""
    from rankseg._compile.jit import jit
    from rankseg.kernels._dtype import native_bounds

    @jit
    def kernel(a, b, like):
        return native_bounds(a, b, like)

    return kernel(a, b, like)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_native_bounds_compare_like_float64(rng, dtype):
    """``v > a'`` iff ``v > a`` and ``v >= b'`` iff ``v >= b``, for every value of the row."""
    f32 = np.float32
    near = [f32(0.3), f32(0.7), f32(1.0), f32(2.0**-130), f32(0.0)]
    bounds = [0.0, 1.0, 0.3, 0.7, 1e-300, 1e300, -1.0, np.inf, -np.inf, 2.0**-150]
    for v in near:  # float32 values and the float64 values just beside them
        bounds += [float(v), np.nextafter(float(v), 2.0), np.nextafter(float(v), -2.0)]
    bounds += list(rng.random(40))
    vals = np.concatenate([rng.random(2000), np.array(bounds, dtype=np.float64)])
    vals = vals[(vals >= 0) & (vals <= 1)].astype(dtype)  # probabilities
    for extra in near:  # the float32 neighbours of the bounds
        vals = np.concatenate([vals, np.array([extra, np.nextafter(extra, f32(0))], dtype=dtype)])
    row = kernel_view(vals)
    wide = vals.astype(np.float64)
    for a in bounds:
        for b in bounds[:12]:
            an, bn = _native_bounds(float(a), float(b), row)
            assert isinstance(an, float) or np.asarray(an).dtype == np.float32
            got_a = vals > an if dtype != "float16" else wide > an
            got_b = vals >= bn if dtype != "float16" else wide >= bn
            np.testing.assert_array_equal(got_a, wide > a, err_msg=f"a={a!r}")
            np.testing.assert_array_equal(got_b, wide >= b, err_msg=f"b={b!r}")


def test_pass_b_refuses_a_log_without_slots():
    """Pass B logs its scan batch by batch in the log's slots: none would loop forever."""
    from rankseg.kernels.assign import conflict_tasks

    x = np.full((2, 8), 0.5, dtype=np.float32)
    cut = (np.full(2, 0.4), np.full(2, 8, dtype=np.int64), np.ones(2, dtype=bool), np.int64(8))
    safe = (np.zeros((1, 2)), np.zeros((1, 2)), np.ones(1, dtype=bool))
    status = np.full((1, 8), 2, dtype=np.uint8)
    out = np.zeros((1, 8), dtype=np.int64)
    log = (np.empty((1, 0), np.int64), np.empty((1, 0, 2)), np.full(1, 8, np.int64))
    params = (np.int64(0), 0.0, False, np.int64(0))
    with pytest.raises(ValueError, match="log slot"):
        conflict_tasks(0, 1, x, np.int64(2), cut, np.ones(2), params, status, safe, out, log)
