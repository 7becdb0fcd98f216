"""The exact solver on the GPU: candidate sort, certified range, quadrature.

``rankseg/cuda/solver_passes.py`` and ``rankseg/cuda/exact.py`` against the CPU functions
they twin, then through ``predict``: rows whose candidates suffice are solved on the
device, rows the quadrature flags (``p_need``, too many nodes) on the host.
"""

import numpy as np
import pytest
from cuda_parity import UNAVAILABLE, assert_parity

if UNAVAILABLE:
    pytest.skip(UNAVAILABLE, allow_module_level=True)

from numba import cuda as _cuda  # noqa: E402

from rankseg import predict  # noqa: E402
from rankseg._policies import DICE, IOU  # noqa: E402
from rankseg.cuda import driver  # noqa: E402
from rankseg.cuda import solver_passes as gpu_search  # noqa: E402
from rankseg.kernels import solver_passes as cpu_search  # noqa: E402
from rankseg.kernels.exact import new_summary, row_summary  # noqa: E402


@pytest.mark.parametrize("threads", [1, 4, 8])
@pytest.mark.parametrize("dtype, utype", [(np.float32, np.uint32), (np.float64, np.uint64)])
def test_sort_rows_any_length(threads, dtype, utype):
    """Descending radix sort per row: empty and one-value rows, ties, zeros (``-0.0``
    becomes ``+0.0``), ones, values that share every high digit."""
    rng = np.random.default_rng(threads)
    parts = [
        np.array([]),
        rng.random(1),
        rng.integers(0, 6, 23) / 5.0,  # ties, zeros and ones
        np.concatenate([[-0.0, 0.0, -0.0], rng.random(9)]),
        0.3 + rng.random(40) * 1e-6,  # one cluster: most digits agree
        rng.random(70),
    ]
    first = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
    vals = np.concatenate(parts).astype(dtype)
    dev = _cuda.to_device(vals)
    keys = dev.view(utype)
    tmp = _cuda.device_array(vals.size, dtype=utype)
    nbits = np.int64(8 * vals.itemsize)
    gpu_search.sort_rows_kernel[2, threads](keys, tmp, _cuda.to_device(first), nbits)
    got = dev.copy_to_host()
    for a, b in zip(first[:-1], first[1:], strict=True):
        want = np.sort(vals[a:b] + dtype(0.0))[::-1]  # + 0.0: -0.0 -> +0.0
        np.testing.assert_array_equal(got[a:b].view(utype), want.view(utype))


def _rows(rng, nrow, d):
    """Rows whose every pixel is a candidate, with ties and ones.

    Half the pixels lie in [0.6, 0.98], half in [0.34, 0.49]: the candidate bound
    ``θ = max(pmax / (1 + γ + d), S_half / (n_half + γ + d))`` stays below 0.33.
    """
    rows = 0.34 + 0.15 * rng.random((nrow, d))
    rows[:, ::2] = 0.6 + 0.38 * rng.random((nrow, (d + 1) // 2))
    rows[0, :3] = 1.0
    rows[1, 1::4] = 0.45
    return rows


@pytest.mark.parametrize("metric", [DICE, IOU])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
def test_certified_range_matches_cpu(metric, gamma):
    rng = np.random.default_rng(7)
    rows = _rows(rng, 3, 37)
    qs = [np.sort(r)[::-1].copy() for r in rows]
    summaries = np.stack([row_summary(r, new_summary()) for r in rows])
    first = np.arange(0, 37 * 4, 37, dtype=np.int64)
    rng_dev = _cuda.device_array((3, 2), dtype=np.int64)
    gpu_search.certified_range_kernel[2, 4](
        _cuda.to_device(np.concatenate(qs)),
        _cuda.to_device(first),
        _cuda.to_device(np.arange(3, dtype=np.int64)),
        _cuda.to_device(summaries),
        (np.int64(metric), np.float64(gamma)),
        rng_dev,
    )
    got = rng_dev.copy_to_host()
    for i, q in enumerate(qs):
        want = cpu_search._certified_range(metric, q, summaries[i], gamma, q.size)
        assert tuple(got[i]) == want
        assert want[0] <= want[1]  # not a vacuous comparison


def _spy_host(monkeypatch):
    calls = []
    real = driver._solve_on_host

    def spy(x, rh, r, *args):
        calls.append(r)
        return real(x, rh, r, *args)

    monkeypatch.setattr(driver, "_solve_on_host", spy)
    return calls


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_quadrature_on_the_gpu(cuda, small_launch, metric, monkeypatch):
    """Every row is solved on the device (no host fallback): same volumes, thresholds
    and masks as the CPU, expected scores equal to 1e-12.  One quadrature block loops
    over all the rows (its scratch reused row after row)."""
    monkeypatch.setattr(small_launch, "QUADRATURE_BLOCKS", 1)
    calls = _spy_host(monkeypatch)
    rng = np.random.default_rng(11 if metric == "dice" else 12)
    probs = _rows(rng, 6, 30).reshape(2, 3, 5, 6).astype(np.float32)
    probs[1, 2] = np.round(probs[1, 2] * 20) / 20  # quantized: runs of ties
    for gamma in (0.0, 1.0):
        kw = {"solver": "exact", "metric": metric, "smooth": gamma, "pruning_prob": 0.0}
        ref, ref_info = predict(probs, output_mode="multilabel", return_info=True, **kw)
        got, info = predict(cuda.to_device(probs), output_mode="multilabel", return_info=True, **kw)
        np.testing.assert_array_equal(info.tau, ref_info.tau)
        np.testing.assert_array_equal(info.threshold, ref_info.threshold)
        np.testing.assert_allclose(info.score, ref_info.score, rtol=1e-12, atol=0)
        np.testing.assert_array_equal(got.copy_to_host(), ref)
        assert_parity(probs, cuda.to_device(probs), **kw)  # multiclass
    assert calls == []


def test_flagged_rows_are_solved_on_the_host(cuda, monkeypatch):
    """Rows the quadrature cannot finish go to the host: too many nodes (a tiny node
    budget here), or candidates that do not suffice (``p_need``: short rows with
    pixels below the candidate bound)."""
    calls = _spy_host(monkeypatch)
    probs = _rows(np.random.default_rng(5), 3, 20).reshape(1, 3, 4, 5)
    budget = driver.MAX_NODES
    monkeypatch.setattr(driver, "MAX_NODES", 4)
    assert_parity(probs, cuda.to_device(probs), solver="exact", pruning_prob=0.0)
    assert sorted(calls) == [0, 1, 2]
    monkeypatch.setattr(driver, "MAX_NODES", budget)
    calls.clear()
    probs = np.random.default_rng(6).dirichlet(np.ones(3) * 0.3, size=(1, 20)).transpose(0, 2, 1)
    probs = np.ascontiguousarray(probs)
    assert_parity(probs, cuda.to_device(probs), solver="exact", metric="iou", pruning_prob=0.0)
    assert calls  # p_need: the candidates did not suffice for at least one row
