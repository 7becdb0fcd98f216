"""CPU vs CUDA: identical outputs on random, tied, 0/1 and quantized inputs."""

import numpy as np
import pytest
from cuda_parity import KINDS, assert_parity, host, values

from rankseg import predict

DTYPES = (np.float16, np.float32, np.float64)


def _set(monkeypatch, config, **settings):
    for name, value in settings.items():
        monkeypatch.setattr(config, name, value)


def _mixed_parity(cuda, seed, shape, **kw):
    """Parity on "mixed" float32 input: both output modes, Dice and IoU."""
    probs = values(np.random.default_rng(seed), "mixed", shape).astype(np.float32)
    for metric in ("dice", "iou"):
        for mode in ("multiclass", "multilabel"):
            kw.update(metric=metric, output_mode=mode, pruning_prob=0.0)
            assert_parity(probs, cuda.to_device(probs), **kw)


def _probs(kind, dtype, seed, shape=(2, 3, 4, 5)):
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(values(rng, kind, shape).astype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_multilabel(cuda, kind, dtype, metric):
    seed = KINDS.index(kind) * 10 + DTYPES.index(dtype)
    probs = _probs(kind, dtype, seed)
    gamma = 0.0 if seed % 2 else 1.0
    before = probs.copy()
    dev = cuda.to_device(probs)
    assert_parity(
        probs, dev, metric=metric, smooth=gamma, output_mode="multilabel", pruning_prob=0.25
    )
    np.testing.assert_array_equal(host(dev), before)  # the input is never modified


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_multiclass(cuda, kind, dtype, metric):
    seed = 100 + KINDS.index(kind) * 10 + DTYPES.index(dtype)
    probs = _probs(kind, dtype, seed)
    void = seed % 2 == 0
    extra = {"unassigned_policy": "void", "void_index": 255} if void else {}
    gamma = 0.0 if metric == "dice" else 0.5
    pruning = 0.5 if kind in ("binary", "quantized") else 0.0
    out = assert_parity(
        probs, cuda.to_device(probs), metric=metric, smooth=gamma, pruning_prob=pruning, **extra
    )
    assert out.dtype == np.int64


@pytest.mark.parametrize("policy", ["max_score", "void"])
def test_unassigned_policies_with_pruned_classes(cuda, policy):
    """Soft rows (every p < 0.5) are pruned: unassigned pixels exercise both policies."""
    rng = np.random.default_rng(7)
    probs = values(rng, "softmax", (2, 4, 3, 5)).astype(np.float32)
    probs[1] *= 0.9  # sample 1: every class at most 0.9 of its softmax value
    extra = {"unassigned_policy": "void", "void_index": 255} if policy == "void" else {}
    for pruning in (0.0, 0.5, 0.95):
        assert_parity(probs, cuda.to_device(probs), pruning_prob=pruning, **extra)


def test_long_band_sorted_in_global_memory(cuda, small_launch, monkeypatch):
    """Bands longer than the shared-memory sort limit are sorted in global memory."""
    rng = np.random.default_rng(3)
    probs = values(rng, "uniform", (1, 2, 40)).astype(np.float64) * 0.6
    probs[0, 1, ::3] = 0.3  # ties inside the band
    for limit in (0, 8, 16):
        monkeypatch.setattr(small_launch, "SHARED_SORT", limit)
        for metric in ("dice", "iou"):
            assert_parity(
                probs,
                cuda.to_device(probs),
                metric=metric,
                output_mode="multilabel",
                pruning_prob=0.0,
            )


@pytest.mark.parametrize(
    "threads, blocks, tile", [(1, 1, 1), (2, 3, 5), (8, 1, 13), (16, 64, 4096)]
)
def test_launch_configuration_independence(cuda, small_launch, monkeypatch, threads, blocks, tile):
    sort_threads = max(1, threads // 2)
    _set(monkeypatch, small_launch, THREADS_PER_BLOCK=threads, SORT_THREADS=sort_threads)
    _set(monkeypatch, small_launch, MAX_BLOCKS=blocks, TILE=tile)
    _mixed_parity(cuda, 11, (2, 3, 13))


def test_single_pixel_and_single_class(cuda):
    probs = np.array([[[0.7]], [[0.2]]], dtype=np.float32)  # B=2, C=1, d=1
    assert_parity(probs, cuda.to_device(probs), output_mode="multilabel", pruning_prob=0.0)
    probs = np.array([[[0.5, 0.5, 0.5]]], dtype=np.float64)  # all tied at 1/2
    for metric in ("dice", "iou"):
        for gamma in (0.0, 1.0):
            assert_parity(
                probs,
                cuda.to_device(probs),
                metric=metric,
                smooth=gamma,
                output_mode="multilabel",
                pruning_prob=0.0,
            )


@pytest.mark.parametrize("dtype", DTYPES)
def test_accuracy_rules(cuda, dtype):
    rng = np.random.default_rng(5)
    probs = values(rng, "quantized", (2, 3, 4, 3)).astype(dtype)  # ties: first max wins
    dev = cuda.to_device(probs)
    np.testing.assert_array_equal(host(predict(dev, metric="acc")), predict(probs, metric="acc"))
    np.testing.assert_array_equal(
        host(predict(dev, metric="acc", output_mode="multilabel")),
        predict(probs, metric="acc", output_mode="multilabel"),
    )


@pytest.mark.parametrize("capacity, fused", [(1 << 20, 32), (4, 0), (1 << 20, 2)])
def test_band_buffer_and_safe_sum_paths(cuda, small_launch, monkeypatch, capacity, fused):
    """Band buffer large enough (one gather) or not (gathered again); safe sums
    inside pass A or in their own pass (more classes than FUSED_CLASSES)."""
    _set(monkeypatch, small_launch, BAND_MIN_CAPACITY=capacity, FUSED_CLASSES=fused)
    _mixed_parity(cuda, 21, (2, 3, 17), smooth=1.0)


# float64 rows whose best IoU mask (gamma = 10) stops inside a run of equal values
STRADDLING_ROWS = (
    [5, 6, 11, 5, 8, 6, 8, 6],
    [6, 7, 2, 0, 6, 3, 3, 0, 2, 2, 2, 2, 3, 5, 7, 5, 5, 5, 0, 7, 3, 5, 0, 7, 4, 7, 3, 7, 2, 3]
    + [1, 3, 2],
)


@pytest.mark.parametrize("row", [0, 1])
def test_cut_inside_a_run_of_ties(cuda, row):
    """The cut falls on the k-th tied pixel in flat order, found tile by tile."""
    q = 11 if row == 0 else 7
    probs = (np.array(STRADDLING_ROWS[row], dtype=np.float64) / q)[None, None]
    kw = {"metric": "iou", "smooth": 10.0, "output_mode": "multilabel", "pruning_prob": 0.0}
    _, info = predict(probs, return_info=True, **kw)
    tied_or_above = int((probs.astype(np.float64) >= info.threshold[0, 0]).sum())
    assert tied_or_above > info.tau[0, 0]  # the input does straddle a run of ties
    assert_parity(probs, cuda.to_device(probs), **kw)


def test_tiles_chosen_per_pass(cuda, small_launch, monkeypatch):
    """Small inputs halve the tile (down to MIN_TILE): the row passes (B*C rows) and the
    sample passes (B samples) then use different tiles, and the results do not change."""
    _set(monkeypatch, small_launch, TILE=16, MIN_TILE=2, TARGET_ITEMS=20)
    assert small_launch.launch_tiles(6, 13)[1:] == (4, 4)  # rows: 16 -> 8 -> 4
    assert small_launch.launch_tiles(2, 13)[1:] == (7, 2)  # samples: down to MIN_TILE
    _mixed_parity(cuda, 31, (2, 3, 13))


def test_band_overflow_is_gathered_again(cuda, small_launch, monkeypatch):
    """A band longer than its buffer is gathered a second time, exactly sized."""
    from rankseg.cuda import driver

    launched = []
    real = driver.band_kernel

    class Spy:
        def __getitem__(self, cfg):
            launch = real[cfg]

            def run(*args):
                launched.append(args[1].shape[0])  # how many rows this gather serves
                launch(*args)

            return run

    monkeypatch.setattr(driver, "band_kernel", Spy())
    _set(monkeypatch, small_launch, BAND_MIN_CAPACITY=4)
    probs = values(np.random.default_rng(4), "uniform", (1, 2, 40)) * 0.6
    assert small_launch.band_capacity(40) == 4
    assert_parity(probs, cuda.to_device(probs), output_mode="multilabel", pruning_prob=0.0)
    assert launched[0] == 2 and len(launched) == 2 and launched[1] >= 1


SOLVERS = [("exact", "dice", k) for k in ("uniform", "quantized", "mixed")]
SOLVERS += [("exact", "iou", k) for k in ("uniform", "quantized", "mixed")]
SOLVERS += [("ba", "dice", "mixed"), ("trna", "dice", "quantized"), ("ba+trna", "dice", "mixed")]


@pytest.mark.parametrize("solver, metric, kind", SOLVERS)
def test_solvers(cuda, solver, metric, kind):
    """The solvers other than RMA: candidates and summary from the GPU, solved on the
    host; with smoothing, pruned rows get the solver's empty-mask score."""
    probs = _probs(kind, np.float32, 41, shape=(2, 3, 13))
    for mode in ("multiclass", "multilabel"):
        for gamma, pruning in ((0.0, 0.0), (1.0, 0.5)):
            kw = {"solver": solver, "metric": metric, "output_mode": mode}
            kw.update(smooth=gamma, pruning_prob=pruning)
            assert_parity(probs, cuda.to_device(probs), **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_solvers_all_dtypes(cuda, dtype):
    probs = _probs("softmax", dtype, 43, shape=(1, 3, 4, 5))
    assert_parity(probs, cuda.to_device(probs), solver="exact", smooth=1.0, pruning_prob=0.5)
