"""The exact, BA, TRNA and BA+TRNA solvers through the public API.

References: brute force over all 2^d masks (tiny rows), the Poisson-binomial DP of
the exact objective over the fully sorted row, and the BA/TRNA objectives over the
fully sorted row on [0, d0] (the definition of those solvers).  Floating-point
near-ties are handled as in test_rma_properties.py: a different τ is accepted only
when the reference objective values agree within TOL.
"""

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankseg import predict
from rankseg.kernels.ba_trna import (
    ba_dice_objective,
    ba_trna_use_ba,
    d0_bound,
    trna_dice_objective,
)
from rankseg.kernels.exact import (
    exact_dice_objective,
    exact_iou_objective,
    new_summary,
    row_summary,
)

import naive
from poisson_binomial import exact_dice_objective_dp, exact_iou_objective_dp

TOL = 1e-12
SOLVERS = [
    ("exact", "dice"),
    ("exact", "iou"),
    ("ba", "dice"),
    ("trna", "dice"),
    ("ba+trna", "dice"),
]
gammas = st.sampled_from([0.0, 0.5, 1.0, 10.0])


def _row(rng, kind, d):
    if kind == "uniform":
        return rng.random(d)
    if kind == "quantized":
        return rng.integers(0, 5, d) / 4
    if kind == "binary01":
        v = rng.random(d)
        v[rng.random(d) < 0.3] = 0.0
        v[rng.random(d) < 0.3] = 1.0
        return v
    if kind == "skewed":
        return rng.random(d) ** 5
    # confident: mostly near 0 or 1, an uncertain few
    v = (rng.random(d) < 0.3).astype(float)
    u = rng.random(d) < 0.2
    v[u] = rng.random(u.sum())
    return np.clip(v, 0, 1)


def reference_objective(p, solver, metric, gamma, eps=1e-4):
    """Objective over the fully sorted row and the range the solver searches."""
    q = np.sort(p)[::-1].copy()
    d = q.size
    if solver == "exact":
        dp = exact_dice_objective_dp if metric == "dice" else exact_iou_objective_dp
        return dp(q, gamma, d)
    summary = row_summary(p.astype(np.float64), new_summary())
    tau_hi = d0_bound(q, d, gamma)
    out = np.empty(tau_hi + 1)
    use_ba = solver == "ba" or (solver == "ba+trna" and ba_trna_use_ba(summary))
    (ba_dice_objective if use_ba else trna_dice_objective)(q, summary, gamma, eps, 0, tau_hi, out)
    return out


def check_row(p, mask, tau, score, solver, metric, gamma):
    f = reference_objective(p, solver, metric, gamma)
    ref = int(np.argmax(f))
    assert tau <= f.size - 1
    if tau != ref:
        assert abs(f[tau] - f[ref]) <= TOL * max(1.0, abs(f[ref])), (tau, ref)
    np.testing.assert_array_equal(mask, naive.topk_mask(p, tau))
    assert score == pytest.approx(f[tau], rel=1e-11, abs=1e-13)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    d=st.integers(1, 8),
    kind=st.sampled_from(["uniform", "quantized", "binary01", "skewed"]),
    seed=st.integers(0, 2**32 - 1),
    gamma=gammas,
    metric=st.sampled_from(["dice", "iou"]),
)
def test_exact_is_optimal_over_all_masks(d, kind, seed, gamma, metric):
    p = _row(np.random.default_rng(seed), kind, d)
    masks, info = predict(
        p[None, None],
        metric=metric,
        smooth=gamma,
        solver="exact",
        output_mode="multilabel",
        pruning_prob=0.0,
        return_info=True,
    )
    best, _ = naive.brute_force_best(p, metric, gamma)
    got = naive.expected_metric(p, masks[0, 0], metric, gamma)
    assert got == pytest.approx(best, abs=1e-12)
    # score is the true expected metric of the returned mask
    assert info.score[0, 0] == pytest.approx(got, abs=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    d=st.integers(20, 400),
    kind=st.sampled_from(["uniform", "quantized", "binary01", "skewed", "confident"]),
    seed=st.integers(0, 2**32 - 1),
    gamma=gammas,
    solver_metric=st.sampled_from(SOLVERS),
)
def test_solvers_match_full_sort_reference(d, kind, seed, gamma, solver_metric):
    solver, metric = solver_metric
    probs = np.stack([_row(np.random.default_rng(seed + k), kind, d) for k in range(2)])[None]
    masks, info = predict(
        probs,
        metric=metric,
        smooth=gamma,
        solver=solver,
        output_mode="multilabel",
        pruning_prob=0.0,
        return_info=True,
    )
    for c in range(2):
        check_row(probs[0, c], masks[0, c], info.tau[0, c], info.score[0, c], solver, metric, gamma)


@pytest.mark.parametrize("solver, metric", SOLVERS)
def test_realistic_rows(rng, solver, metric):
    """Long, confident rows (screening leaves few candidates) across several work items."""
    from rankseg._config import CHUNK

    d = 2 * CHUNK + 33
    probs = np.empty((1, 2, d))
    probs[0, 0] = _row(rng, "confident", d)
    probs[0, 1] = _row(rng, "skewed", d) * 0.6 + (_row(rng, "confident", d) > 0.5) * 0.4
    masks, info = predict(
        probs,
        metric=metric,
        solver=solver,
        output_mode="multilabel",
        pruning_prob=0.0,
        return_info=True,
    )
    for c in range(2):
        p = probs[0, c]
        if solver == "exact":
            # reference: the quadrature over the fully sorted row (no screening)
            q = np.sort(p)[::-1].copy()
            f = np.empty(d + 1)
            kernel = exact_dice_objective if metric == "dice" else exact_iou_objective
            assert kernel(q, row_summary(p, new_summary()), 0.0, 0, d, f) == 0.0
        else:
            f = reference_objective(p, solver, metric, 0.0)
        tau, ref = info.tau[0, c], int(np.argmax(f))
        assert tau == ref or abs(f[tau] - f[ref]) <= TOL * f[ref]
        np.testing.assert_array_equal(masks[0, c], naive.topk_mask(p, tau))
        assert info.score[0, c] == pytest.approx(f[tau], rel=1e-11)


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_exact_score_matches_monte_carlo(rng, metric):
    p = _row(rng, "confident", 400)
    masks, info = predict(
        p[None, None], metric=metric, solver="exact", output_mode="multilabel", return_info=True
    )
    mean, se = naive.monte_carlo_metric(p, masks[0, 0], metric, 0.0, 4000, rng)
    assert abs(info.score[0, 0] - mean) <= 4 * se + 1e-12


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_exact_beats_rma_and_ba_in_expected_metric(rng, metric):
    p = _row(rng, "uniform", 60) ** 2
    pi = (exact_dice_objective_dp if metric == "dice" else exact_iou_objective_dp)(
        np.sort(p)[::-1].copy(), 0.0, p.size
    )
    taus = {}
    for solver in ["exact", "rma"] + (["ba", "trna"] if metric == "dice" else []):
        _, info = predict(
            p[None, None],
            metric=metric,
            solver=solver,
            output_mode="multilabel",
            pruning_prob=0.0,
            return_info=True,
        )
        taus[solver] = info.tau[0, 0]
    for solver, tau in taus.items():
        assert pi[taus["exact"]] >= pi[tau] - 1e-15, solver


@pytest.mark.parametrize("solver, metric", SOLVERS)
@pytest.mark.parametrize("policy", ["max_score", "void"])
def test_multiclass_resolution(rng, solver, metric, policy):
    z = rng.normal(scale=3.0, size=(2, 3, 7, 9))
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    kw = dict(metric=metric, solver=solver)
    extra = {"unassigned_policy": "void"} if policy == "void" else {}
    labels = predict(probs, **kw, **extra)
    masks = predict(probs, output_mode="multilabel", **kw)
    count = masks.sum(axis=1)
    single = count == 1
    np.testing.assert_array_equal(labels[single], np.argmax(masks, axis=1)[single])
    if policy == "void":
        assert (labels[count == 0] == 255).all()
    else:
        assert ((labels >= 0) & (labels < 3)).all()


@pytest.mark.parametrize("solver, metric", SOLVERS)
def test_pruned_score_is_the_empty_mask_objective(rng, solver, metric):
    probs = rng.random((1, 2, 30)) * 0.4  # everything pruned
    _, info = predict(
        probs, metric=metric, solver=solver, smooth=1.0, output_mode="multilabel", return_info=True
    )
    assert info.pruned.all() and (info.tau == 0).all()
    for c in range(2):
        ref = reference_objective(probs[0, c], solver, metric, 1.0)[0]
        assert info.score[0, c] == pytest.approx(ref, rel=1e-12)


# arbitrary (not normalized) class probabilities on purpose: multiclass resolution
# is defined for any input (SPEC §4); the layout warning is tested in test_api.py
@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
@pytest.mark.parametrize("solver, metric", SOLVERS)
def test_thread_count_independence(rng, solver, metric, monkeypatch):
    probs = np.stack([_row(rng, "confident", 5000) for _ in range(4)]).reshape(2, 2, 50, 100)
    # keep every thread (the thread-count rule would give one to this small input)
    monkeypatch.setattr("rankseg.cpu.driver.call_threads", lambda size: numba.get_num_threads())
    old = numba.get_num_threads()
    try:
        res = []
        for n in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(n)
            res.append(predict(probs, metric=metric, solver=solver, return_info=True))
    finally:
        numba.set_num_threads(old)
    for lab, info in res[1:]:
        np.testing.assert_array_equal(lab, res[0][0])
        np.testing.assert_array_equal(info.score, res[0][1].score)


def test_float16_input(rng):
    probs = _row(rng, "confident", 3000).reshape(1, 1, 30, 100).astype(np.float16)
    for solver in ("exact", "ba", "trna"):
        a = predict(probs, solver=solver, output_mode="multilabel")
        b = predict(probs.astype(np.float64), solver=solver, output_mode="multilabel")
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("eps", [0.0, 1.0, -1e-3, 2.0])
def test_eps_must_be_in_open_unit_interval(eps):
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\)"):
        predict(np.full((1, 1, 3), 0.7), solver="trna", eps=eps, output_mode="multilabel")


def test_eps_changes_the_rna_window(rng):
    p = _row(rng, "uniform", 300)[None, None]
    a = predict(
        p, solver="ba", eps=1e-4, output_mode="multilabel", pruning_prob=0.0, return_info=True
    )
    b = predict(
        p, solver="ba", eps=0.3, output_mode="multilabel", pruning_prob=0.0, return_info=True
    )
    assert a[1].score[0, 0] != b[1].score[0, 0]


def _sort_inputs(rng, n):
    """(float32-valued?, array) pairs: random, float32 values, ties, subnormals, -0.0."""
    f32 = rng.random(n).astype(np.float32).astype(np.float64)  # low mantissa bits zero
    one_off = f32.copy()
    one_off[n // 2] = 0.1  # not a float32 value
    for f32_only, a in (
        (False, rng.random(n)),
        (True, f32),
        (False, one_off),
        (True, np.round(rng.random(n) * 8) / 8),  # ties, exact 0 and 1
        (True, (rng.random(n) * 1e-40).astype(np.float32).astype(np.float64)),  # subnormal
        (True, np.concatenate([np.ones(n - n // 3), np.zeros(n // 3)])),  # one digit differs
    ):
        a[: n // 10] = -0.0 if n > 10 else a[: n // 10]
        yield f32_only, a


@pytest.mark.parametrize("n", [10, 5000, 70000])
def test_sorts_radix_and_small(rng, n):
    """sort_descending (64-bit keys) on anything; sort_candidates, inside a kernel,
    picks by the map's dtype: sort_f32_values (32-bit keys) for float32 and float16
    maps, whose candidates are float32 values, sort_descending for float64."""
    import numba

    from rankseg.kernels.sort import sort_candidates, sort_descending

    @numba.njit
    def by_dtype(a, like):
        sort_candidates(a, like)

    for f32_only, a in _sort_inputs(rng, n):
        want = np.sort(a)[::-1] + 0.0
        sorts = [sort_descending, lambda b: by_dtype(b, np.zeros(1))]
        if f32_only:
            sorts += [
                lambda b: by_dtype(b, np.zeros(1, np.float32)),
                lambda b: by_dtype(b, np.zeros(1, np.uint16)),  # float16 as its bits
            ]
            if n <= 5000:  # its Python body (NUMBA_DISABLE_JIT: the wheel's discovery)
                sorts.append(lambda b: sort_candidates(b, np.zeros(1, np.float32)))
        for sort_fn in sorts:
            # a row's candidates are a slice of one buffer: the 32-bit sort keeps its
            # keys and scratch in the slice's own bytes, and none outside it
            buf = np.concatenate([[7.0], a, [9.0]])
            b = buf[1:-1]
            sort_fn(b)
            np.testing.assert_array_equal(b, want)
            assert not np.signbit(b).any()
            assert buf[0] == 7.0 and buf[-1] == 9.0


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_solve_candidates_matches_the_cpu_path(rng, metric):
    """The host solve of the GPU path: same cut as the CPU, rows in parallel
    (solve_packed), growing a short prefix from the whole row when the exact kernel
    asks for more (p_need; solve_candidates)."""
    from rankseg._policies import DICE, IOU
    from rankseg.cpu.launchers import solve_candidates, solve_packed
    from rankseg.kernels.exact import new_summary, row_summary
    from rankseg.kernels.solver_passes import EXACT, candidate_bound

    code = DICE if metric == "dice" else IOU
    params = (EXACT, code, 0.0, 0.0)
    rows = [rng.random(300) ** (1 + trial) for trial in range(6)]
    summaries = np.array([row_summary(row, new_summary()) for row in rows])
    cands, want, grown = [], [], []
    for row, summary in zip(rows, summaries, strict=True):
        half = row[row >= 0.5]
        theta = candidate_bound(code, row.sum(), 0.0, 300, row.max(), half.size, half.sum())
        calls = []

        def whole(row=row, calls=calls):
            calls.append(1)
            return row

        cands.append(row[row > theta])
        got = solve_candidates(cands[-1].copy(), summary, params, theta, whole)
        grown.append(bool(calls))
        _, info = predict(
            row[None, None],
            metric=metric,
            solver="exact",
            output_mode="multilabel",
            pruning_prob=0.0,
            return_info=True,
        )
        tau, t, score, k_in, full = got
        assert tau == info.tau[0, 0] and full and k_in == 1
        assert t == info.threshold[0, 0] and score == pytest.approx(info.score[0, 0], rel=1e-12)
        want.append(got)
    assert any(grown)  # at least one row needed more than its candidates
    first = np.concatenate([[0], np.cumsum([c.size for c in cands])])
    out = solve_packed(np.concatenate(cands), first, summaries, params)
    np.testing.assert_array_equal(out[5], grown)  # the rows left to solve_candidates
    for i in np.flatnonzero(~out[5]):
        assert tuple(a[i] for a in out[:5]) == want[i]


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_smallest_smoothing_keeps_the_empty_mask_exact(rng, metric):
    """γ = 1e-300 (the smallest positive smooth allowed): π(0) = P(Γ = 0), exactly.

    The empty mask's integral runs to s ~ 40/γ; below 1e-300 it would leave float64
    (smaller positive values are refused), at 1e-300 the score and the decision
    still match the DP -- also for a pruned row, whose score is π(0).
    """
    p = np.array([0.3, 0.01, 0.01, 0.2 * rng.random()])
    want = naive.exact_pi_dp(p, metric, 1e-300)
    assert want[0] == pytest.approx(np.prod(1 - p), rel=1e-12)
    for prune, tau in ((0.0, int(np.argmax(want))), (0.5, 0)):
        _, info = predict(
            p[None, None], metric=metric, smooth=1e-300, solver="exact",
            output_mode="multilabel", pruning_prob=prune, return_info=True,
        )  # fmt: skip
        assert info.tau[0, 0] == tau
        assert info.score[0, 0] == pytest.approx(want[tau], rel=1e-12)


@pytest.mark.parametrize("solver", ["ba", "ba+trna"])
@pytest.mark.parametrize("mode", ["multilabel", "multiclass"])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_ba_band_path_equals_the_full_sort(rng, solver, mode, gamma):
    """A float32 map takes BA's band path (only the pixels between ba_band's bounds
    sorted, the ones above added in chunk order); the same values in float64 sort
    every candidate above the lower bound (no forced set: their sum is not exact in
    any order).  Masks, tau and scores agree bit for bit."""
    from rankseg.cpu import launchers
    from rankseg.kernels.rma_passes import STAT_MAX, STAT_MU, STAT_NHALF, STAT_SHALF

    shape = (2, 3, 24, 40, 40)
    logits = rng.normal(size=shape).cumsum(axis=-1).cumsum(axis=-2) / 6
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    kw = dict(metric="dice", solver=solver, output_mode=mode, smooth=gamma, return_info=True)
    y32, i32 = predict(p, **kw)
    y64, i64 = predict(p.astype(np.float64), **kw)
    assert np.array_equal(y32, y64)
    assert np.array_equal(i32.tau, i64.tau)
    assert np.array_equal(i32.score, i64.score)
    # the float32 rows did take the band: finite upper bounds, few values sorted
    x = p.reshape(6, -1)
    stats = np.zeros((6, 4))
    stats[:, STAT_MU] = x.sum(axis=1, dtype=np.float64)
    stats[:, STAT_MAX] = x.max(axis=1)
    stats[:, STAT_NHALF] = (x >= 0.5).sum(axis=1)
    stats[:, STAT_SHALF] = np.where(x >= 0.5, x, 0).sum(axis=1, dtype=np.float64)
    seen = []
    real = launchers.band_values

    def spy(x_, xb, rows, bounds, chunk, cmax, smax=None):
        seen.append((bounds[0].copy(), bounds[1].copy()))
        return real(x_, xb, rows, bounds, chunk, cmax, smax)

    launchers.band_values = spy
    try:
        predict(p, **kw)
        predict(p.astype(np.float64), **kw)
    finally:
        launchers.band_values = real
    (lo32, hi32), (lo64, hi64) = seen
    assert np.isfinite(hi32).sum() >= 3
    assert not np.isfinite(hi64).any()
    # both start their bands at BA's lower bound L, near the optimum's threshold (the
    # candidate bound S_X / (|X| + d) is about 0.2 on such rows)
    np.testing.assert_allclose(lo64, lo32, rtol=1e-9)
    assert np.all(lo32 > 0.3), lo32


@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_ba_trna_is_ba_or_trna_row_by_row(rng, gamma):
    """``ba+trna`` hands each row to BA's kernel or TRNA's by its rule (sigma > 5:
    BA): its masks, tau and scores are, row by row, those of ``ba`` or ``trna``, bit
    for bit.  The rows include BA's forced sets (float32, confident pixels), a cut
    right after one, and TRNA rows (confident channels with a few uncertain pixels)."""
    shape = (2, 3, 16, 32, 32)
    logits = rng.normal(size=shape).cumsum(axis=-1).cumsum(axis=-2) / 6
    p = np.exp(3 * (logits - logits.max(axis=1, keepdims=True)))
    p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    p[1, 2] = np.where(p[1, 2] > 0.5, np.float32(0.97), np.float32(0.02))  # cut at the forced set
    for b, c in ((0, 1), (1, 0)):  # nearly certain: a small variance, TRNA's rows
        p[b, c] = np.where(p[b, c] > 0.5, np.float32(0.9999), np.float32(1e-4))
        p[b, c, 0, 0, :12] = rng.random(12).astype(np.float32)
    rule = [
        ba_trna_use_ba(row_summary(row.astype(np.float64), new_summary()))
        for row in p.reshape(6, -1)
    ]
    assert 2 <= sum(rule) <= 4, rule
    kw = dict(metric="dice", output_mode="multilabel", smooth=gamma, return_info=True)
    both = predict(p, solver="ba+trna", **kw)
    alone = {s: predict(p, solver=s, **kw) for s in ("ba", "trna")}
    for r, use_ba in enumerate(rule):
        b, c = divmod(r, 3)
        want = alone["ba" if use_ba else "trna"]
        assert np.array_equal(both[0][b, c], want[0][b, c]), (r, use_ba)
        for key in ("tau", "score", "threshold"):
            got, ref = getattr(both[1], key)[b, c], getattr(want[1], key)[b, c]
            assert np.array_equal(got, ref, equal_nan=True), (r, key)


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_exact_one_row_summaries_from_blocks(rng, metric, monkeypatch):
    """A single row of PASS_WORK values or more on two threads takes the summaries
    formed from blocks on both threads (fewer rows than threads); on one thread its
    task forms the summary itself.  Masks and scores agree bit for bit."""
    from rankseg import _threads
    from rankseg._config import PASS_WORK
    from rankseg.cpu import launchers

    n = PASS_WORK + 4096
    logits = rng.normal(size=n).cumsum() / 40
    p = (1 / (1 + np.exp(-(logits - logits.mean())))).astype(np.float32).reshape(1, 1, 64, -1)
    calls = []
    real = launchers.row_summaries

    def spy(*args, **kw):
        calls.append(args[3] if len(args) > 3 else kw.get("npow", 0))
        return real(*args, **kw)

    res = []
    kw = dict(metric=metric, solver="exact", output_mode="multilabel", return_info=True)
    launchers.row_summaries = spy
    try:
        for nthreads in (1, 2):  # whatever the machine's load says
            monkeypatch.setattr(_threads, "pass_threads", lambda work, n=nthreads: n)
            res.append(predict(p, **kw))
    finally:
        launchers.row_summaries = real
    assert calls == [launchers.DEFAULT_NPOW]  # only the two-thread call took the blocks
    np.testing.assert_array_equal(res[0][0], res[1][0])
    np.testing.assert_array_equal(res[0][1].score, res[1][1].score)
    np.testing.assert_array_equal(res[0][1].tau, res[1][1].tau)


@pytest.mark.parametrize("shape", [(1, 1, 3), (2, 7, 1), (3, 5000, 15), (8, 4096, 3)])
def test_blocks_in_order_adds_as_accumulate(rng, shape):
    """The summaries' block totals: np.add.accumulate's last running total, bit for bit."""
    from rankseg.kernels.summary import blocks_in_order

    # magnitudes 1e-12..1e4: another order (pairwise, reassociated) changes the last bits
    part = rng.normal(size=shape) * 10.0 ** rng.integers(-12, 5, size=shape)
    part[0, 0, 0] = -0.0
    frozen = part.copy()
    out = np.full(shape[::2], np.nan)
    blocks_in_order(part, out)
    want = np.add.accumulate(part, axis=1)[:, -1]
    assert out.tobytes() == want.tobytes()
    np.testing.assert_array_equal(part, frozen)
    if shape[1] > 100:  # the sum in another order differs: the test can tell
        assert np.add.reduce(part[:, ::-1], axis=1).tobytes() != want.tobytes()
