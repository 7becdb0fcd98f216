"""Large volumes of exactly tied probabilities (issue 14).

A volume of a few distinct values repeated millions of times is what a model with
quantized outputs, a constant region or a test fixture gives.  It once took minutes
(the cut's tie count was recounted at every improvement of the objective, quadratic
in the size of a run of ties).  These tests pin the results on such volumes against
sort-based references written from SPEC.md, for every solver and both output modes.

``.ci/run`` also runs this file with ``NUMBA_BOUNDSCHECK=1`` (a separate, small step):
every array index in the kernels is then checked, so an out-of-bounds write is an
``IndexError`` instead of silent corruption or a segmentation fault.
"""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rankseg import predict
from rankseg._config import CHUNK
from rankseg.kernels.ba_trna import ba_dice_objective, ba_trna_use_ba, d0_bound, trna_dice_objective
from rankseg.kernels.exact import (
    exact_dice_objective,
    exact_iou_objective,
    new_summary,
    row_summary,
)

import naive

TOL = 1e-12
SIZE = 1 << 20

#: values whose sums are exact in float64 (dyadic), plus two that are not
VALUES = [0.0, 1.0, 0.5, 1 / 8, 7 / 8, 15 / 32, 17 / 32, 3 / 64, 0.3, 0.7]


def _issue_volume() -> np.ndarray:
    """The upstream regression test: three blocks of 2**20 tied values, two classes."""
    fg = np.repeat(np.array([7 / 8, 1 / 8, 15 / 32], np.float32), SIZE)
    return np.stack((fg, 1 - fg)).reshape(1, 2, 192, 128, 128)


def _increment(p: Fraction, m: Fraction, n: int, mu: Fraction, metric: str) -> Fraction:
    """SPEC §4 increment with γ = 0, in exact rational arithmetic."""
    if metric == "dice":
        big_d = n + mu + 1
        return 2 * (p - m / big_d) / (big_d + 1)
    a, b = m, n + mu - m
    return (p - (a / b) * (1 - p)) / (b + 1 - p)


@pytest.fixture(scope="module")
def issue_volume():
    return _issue_volume()


@pytest.mark.parametrize(
    "metric, solver",
    [
        ("dice", "rma"),
        ("iou", "rma"),
        ("dice", "exact"),
        ("iou", "exact"),
        ("dice", "ba"),
        ("dice", "trna"),
        ("dice", "ba+trna"),
    ],
)
def test_issue_volume_masks(issue_volume, metric, solver):
    """Class 0 selects the first block, class 1 the second, both the third (p = 15/32, 17/32)."""
    masks = predict(issue_volume, metric=metric, solver=solver, output_mode="multilabel")
    blocks = masks.reshape(2, 3, SIZE)
    want = [[True, False, True], [False, True, True]]
    for c in range(2):
        for b in range(3):
            assert bool(blocks[c, b].all()) == want[c][b] and bool(blocks[c, b].any()) == want[c][b]
    assert issue_volume[0, 0, 0, 0, 0] == np.float32(7 / 8)  # the input is not modified


@pytest.mark.parametrize(
    "metric, solver",
    [
        ("dice", "rma"),
        ("iou", "rma"),
        ("dice", "exact"),
        ("iou", "exact"),
        ("dice", "ba"),
    ],
)
def test_issue_volume_labels(issue_volume, metric, solver):
    """Labels 0, 1, 1: on the third block both classes select, class 1's increment is larger."""
    # safe sets: class 0 alone selects block 0 (p = 7/8), class 1 alone block 1 (p = 7/8)
    n = SIZE
    mu0 = n * (Fraction(7, 8) + Fraction(1, 8) + Fraction(15, 32))
    mu1 = n * (Fraction(1, 8) + Fraction(7, 8) + Fraction(17, 32))
    inc0 = _increment(Fraction(15, 32), n * Fraction(7, 8), n, mu0, metric)
    inc1 = _increment(Fraction(17, 32), n * Fraction(7, 8), n, mu1, metric)
    assert inc1 > inc0
    labels = predict(issue_volume, metric=metric, solver=solver).reshape(3, SIZE)
    for b, want in enumerate([0, 1, 1]):
        assert (labels[b] == want).all(), (b, np.unique(labels[b]))


# ---------------------------------------------------------------------------
# the property: few distinct values in large blocks, against sort-based references
# ---------------------------------------------------------------------------


def _tied_row(rng, values, d, layout):
    """``d`` pixels taking the given values, in contiguous runs or scattered."""
    weights = rng.dirichlet(np.ones(len(values)))
    counts = np.floor(weights * d).astype(np.int64)
    counts[0] += d - counts.sum()
    row = np.repeat(np.asarray(values, np.float64), counts)
    if layout == "scattered":
        rng.shuffle(row)
    elif layout == "runs":  # blocks in a random order of random runs
        cuts = np.sort(rng.integers(0, d + 1, size=min(d, 7)))
        pieces = np.split(row, cuts)
        rng.shuffle(pieces)
        row = np.concatenate(pieces)
    return row


def _rma_reference(p, metric):
    """RMA objective F(τ), τ = 0..d (γ = 0), over a stable full sort, vectorized."""
    q = p[np.argsort(-p, kind="stable")]
    s = np.concatenate([[0.0], np.cumsum(q)])
    tau = np.arange(p.size + 1, dtype=np.float64)
    mu = math.fsum(p)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "dice":
            f = 2.0 * s / (mu + tau + 1.0)
        else:
            f = s / (mu - s + tau)
    f[0] = 0.0
    return np.nan_to_num(f, nan=0.0)


def _reference(p, solver, metric):
    """The solver's objective over the fully sorted row on the range it searches."""
    if solver == "rma":
        return _rma_reference(p, metric)
    q = np.sort(p)[::-1].copy()
    d = q.size
    summary = row_summary(p, new_summary())
    if solver == "exact":
        f = np.empty(d + 1)
        kernel = exact_dice_objective if metric == "dice" else exact_iou_objective
        assert kernel(q, summary, 0.0, 0, d, f) == 0.0
        return f
    tau_hi = d0_bound(q, d, 0.0)
    f = np.empty(tau_hi + 1)
    use_ba = solver == "ba" or (solver == "ba+trna" and ba_trna_use_ba(summary))
    (ba_dice_objective if use_ba else trna_dice_objective)(q, summary, 0.0, 1e-4, 0, tau_hi, f)
    return f


def _check_multiclass(probs, labels, masks, info, metric):
    """SPEC §4 resolution of the solver's own masks, vectorized (pruned rows are empty)."""
    x = probs.astype(np.float64).reshape(probs.shape[0], probs.shape[1], -1)
    sel = masks.reshape(x.shape)
    got = labels.reshape(x.shape[0], -1)
    for b in range(x.shape[0]):
        count = sel[b].sum(axis=0)
        incs = np.empty(x[b].shape)
        for c in range(x.shape[1]):
            safe = sel[b, c] & (count == 1)
            m_c = math.fsum(x[b, c][safe])
            incs[c] = naive.increment(
                x[b, c], m_c, int(safe.sum()), math.fsum(x[b, c]), metric, 0.0
            )
        active = ~info.pruned[b]
        fallback = active if active.any() else np.ones_like(active)
        allowed = np.where(count > 0, sel[b], fallback[:, None])
        scored = np.where(allowed, incs, -np.inf)
        want = np.argmax(scored, axis=0)
        top = scored.max(axis=0)
        mine = np.take_along_axis(scored, got[b][None], axis=0)[0]
        # a different label only where the two increments agree to rounding
        off = want != got[b]
        assert np.all(np.abs(mine[off] - top[off]) <= TOL * np.abs(top[off])), np.flatnonzero(off)[
            :5
        ]


def _check(probs, solver, metric):
    masks, info = predict(
        probs, metric=metric, solver=solver, output_mode="multilabel", return_info=True
    )
    x = probs.astype(np.float64).reshape(probs.shape[0], probs.shape[1], -1)
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            p = x[b, c]
            mask = masks[b, c].reshape(-1)
            tau = int(info.tau[b, c])
            if info.pruned[b, c]:
                assert p.max() <= 0.5 and tau == 0 and not mask.any()
                continue
            f = _reference(p, solver, metric)
            ref = int(np.argmax(f))
            assert tau < f.size
            assert tau == ref or abs(f[tau] - f[ref]) <= TOL * abs(f[ref]), (tau, ref)
            # the stable descending order: ties go to the lower flat index
            np.testing.assert_array_equal(mask, naive.topk_mask(p, tau))
    if probs.shape[1] >= 2:
        labels = predict(probs, metric=metric, solver=solver)
        _check_multiclass(probs, labels, masks, info, metric)


tied = dict(
    values=st.lists(st.sampled_from(VALUES), min_size=1, max_size=4, unique=True),
    layout=st.sampled_from(["sorted", "runs", "scattered"]),
    classes=st.integers(1, 3),
    dtype=st.sampled_from([np.float16, np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)


def _volume(values, layout, classes, dtype, seed, d):
    rng = np.random.default_rng(seed)
    rows = [_tied_row(rng, values, d, layout)]
    if classes == 2:
        rows.append(1.0 - rows[0])  # a complementary class: ties in both
    elif classes == 3:  # the rest split in halves (exact in binary): the classes sum to 1
        rows += [(1.0 - rows[0]) * 0.5] * 2
    return np.stack(rows)[None].astype(dtype)


#: sizes around the work items of the parallel passes (CHUNK = 2**16 pixels) and large ones
RMA_SIZES = [1, 2, 7, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5, 1_000_003, 4_000_000]
OTHER_SIZES = [1, 2, 7, 1000, CHUNK + 1, 2 * CHUNK + 3, 100_000]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=st.sampled_from(RMA_SIZES), metric=st.sampled_from(["dice", "iou"]), **tied)
@example(
    d=4_000_000,
    metric="dice",
    values=[7 / 8, 1 / 8, 15 / 32],
    layout="sorted",
    classes=2,
    dtype=np.float32,
    seed=1,
)
@example(
    d=4_000_000,
    metric="iou",
    values=[0.0, 0.5, 1.0],
    layout="scattered",
    classes=3,
    dtype=np.float16,
    seed=2,
)
def test_rma_on_large_tied_blocks(d, metric, values, layout, classes, dtype, seed):
    """d up to 4e6: the cut, the masks and the labels of RMA against a stable full sort."""
    _check(_volume(values, layout, classes, dtype, seed, d), "rma", metric)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    d=st.sampled_from(OTHER_SIZES),
    solver_metric=st.sampled_from(
        [("exact", "dice"), ("exact", "iou"), ("ba", "dice"), ("trna", "dice"), ("ba+trna", "dice")]
    ),
    **tied,
)
@example(
    d=100_000,
    solver_metric=("exact", "iou"),
    values=[0.3, 0.7],
    layout="runs",
    classes=2,
    dtype=np.float64,
    seed=3,
)
@example(
    d=100_000,
    solver_metric=("ba+trna", "dice"),
    values=[15 / 32, 1.0, 0.0],
    layout="sorted",
    classes=3,
    dtype=np.float32,
    seed=4,
)
def test_other_solvers_on_large_tied_blocks(d, solver_metric, values, layout, classes, dtype, seed):
    """d up to 1e5 (their references cost O(d·window)): same checks for exact, BA, TRNA."""
    solver, metric = solver_metric
    _check(_volume(values, layout, classes, dtype, seed, d), solver, metric)
