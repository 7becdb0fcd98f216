"""CPU vs CUDA: identical outputs on random, tied, 0/1 and quantized inputs."""

import numpy as np
import pytest
from cuda_parity import KINDS, assert_parity, host, values

from rankseg import predict

DTYPES = (np.float16, np.float32, np.float64)


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


@pytest.mark.parametrize("threads, blocks", [(1, 1), (2, 3), (8, 1), (16, 64)])
def test_launch_configuration_independence(cuda, small_launch, monkeypatch, threads, blocks):
    monkeypatch.setattr(small_launch, "THREADS_PER_BLOCK", threads)
    monkeypatch.setattr(small_launch, "MAX_BLOCKS", blocks)
    rng = np.random.default_rng(11)
    probs = values(rng, "mixed", (2, 3, 13)).astype(np.float32)
    for mode in ("multiclass", "multilabel"):
        assert_parity(probs, cuda.to_device(probs), output_mode=mode, pruning_prob=0.0)


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
