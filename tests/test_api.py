"""Behaviour of the NumPy API: shapes, dtypes, layouts, out=, acc solvers, info."""

import warnings

import numpy as np
import pytest

from rankseg import PredictInfo, RankSEG, predict

import naive
from _optional import import_or_skip


def softmax(rng, shape):
    z = rng.normal(scale=3.0, size=shape)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def test_readme_example(rng):
    probs = softmax(rng, (2, 3, 8, 8))
    labels = RankSEG(metric="dice").predict(probs)
    assert labels.shape == (2, 8, 8) and labels.dtype == np.int64
    masks = predict(probs, metric="iou", output_mode="multilabel")
    assert masks.shape == probs.shape and masks.dtype == bool
    labels2, info = predict(probs, return_info=True)
    np.testing.assert_array_equal(labels, labels2)
    assert isinstance(info, PredictInfo)
    for name in ("tau", "threshold", "score", "pruned"):
        assert getattr(info, name).shape == (2, 3)


def test_call_and_repr(rng):
    probs = softmax(rng, (1, 3, 5))
    model = RankSEG(metric=" IoU", smooth=1, unassigned_policy="void", void_index=-1)
    np.testing.assert_array_equal(model(probs), model.predict(probs))
    assert repr(model) == (
        "RankSEG(metric='iou', smooth=1.0, output_mode='multiclass', solver='rma', "
        "pruning_prob=0.5, unassigned_policy='void', void_index=-1)"
    )
    assert "solver='tr'" in repr(RankSEG(metric="ACC", output_mode="MultiLabel"))


@pytest.mark.parametrize("spatial", [(7,), (3, 4), (2, 3, 4), (2, 1, 3, 2)])
def test_any_spatial_dims(rng, spatial):
    probs = softmax(rng, (2, 3, *spatial))
    labels = predict(probs, pruning_prob=0.0)
    ref, _, _ = naive.rma_predict(probs.astype(np.float64), "dice", 0.0, "multiclass", 0.0)
    assert labels.shape == (2, *spatial)
    np.testing.assert_array_equal(labels, ref)


def test_empty_batch():
    probs = np.zeros((0, 3, 4, 4), dtype=np.float32)
    labels, info = predict(probs, return_info=True)
    assert labels.shape == (0, 4, 4) and labels.dtype == np.int64
    assert info.tau.shape == (0, 3) and info.pruned.dtype == bool
    assert predict(probs, output_mode="multilabel").shape == (0, 3, 4, 4)
    assert predict(probs, metric="acc").shape == (0, 4, 4)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint32, np.int64])
def test_label_dtype(rng, dtype):
    probs = softmax(rng, (2, 4, 6, 6))
    ref = predict(probs)
    got = predict(probs, dtype=dtype)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, ref)


# arbitrary (not normalized) class probabilities on purpose: multiclass resolution
# is defined for any input (SPEC §4); the layout warning is tested in test_api.py
@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
def test_void_policy_and_dtype(rng):
    probs = np.full((1, 3, 10), 0.2, dtype=np.float32)  # nothing selected anywhere
    probs[0, 0, :3] = 0.9
    labels = predict(probs, unassigned_policy="void", dtype=np.uint8)
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels[0], [0, 0, 0] + [255] * 7)
    labels = predict(probs, unassigned_policy="void", void_index=-1, dtype=np.int8)
    np.testing.assert_array_equal(labels[0], [0, 0, 0] + [-1] * 7)
    # max_score fills the unassigned pixels with an active class
    assert (predict(probs)[0] == 0).all()


def test_out_array_and_memmap(rng, tmp_path):
    probs = softmax(rng, (2, 3, 6, 5))
    ref = predict(probs)
    out = np.full((2, 6, 5), -7, dtype=np.int64)
    assert predict(probs, out=out) is out
    np.testing.assert_array_equal(out, ref)
    out16 = np.empty((2, 6, 5), dtype=np.int16)  # out's dtype is used when dtype is None
    np.testing.assert_array_equal(predict(probs, out=out16), ref)
    mm = np.lib.format.open_memmap(
        tmp_path / "labels.npy", mode="w+", dtype=np.uint8, shape=(2, 6, 5)
    )
    res = predict(probs, out=mm, dtype=np.uint8)
    assert isinstance(res, np.memmap)
    mm.flush()
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), ref)
    masks = np.empty(probs.shape, dtype=bool)
    predict(probs, output_mode="multilabel", out=masks)
    np.testing.assert_array_equal(masks, predict(probs, output_mode="multilabel"))


def test_read_only_memmap_input(rng, tmp_path):
    probs = softmax(rng, (2, 3, 8, 8)).astype(np.float16)
    np.save(tmp_path / "p.npy", probs)
    mm = np.load(tmp_path / "p.npy", mmap_mode="r")
    assert not mm.flags.writeable
    np.testing.assert_array_equal(predict(mm), predict(np.array(probs)))
    np.testing.assert_array_equal(
        predict(mm, output_mode="multilabel", metric="iou", smooth=1.0),
        predict(np.array(probs), output_mode="multilabel", metric="iou", smooth=1.0),
    )


# arbitrary (not normalized) class probabilities on purpose: multiclass resolution
# is defined for any input (SPEC §4); the layout warning is tested in test_api.py
@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
def test_non_contiguous_and_big_endian(rng):
    base = softmax(rng, (2, 8, 8, 3))  # channel-last
    probs = np.moveaxis(base, -1, 1)
    assert not probs.flags.c_contiguous
    ref = predict(np.ascontiguousarray(probs))
    np.testing.assert_array_equal(predict(probs), ref)
    np.testing.assert_array_equal(predict(probs.astype(">f4")), ref)
    strided = np.ascontiguousarray(probs)[:, :, ::2]
    np.testing.assert_array_equal(predict(strided), predict(np.ascontiguousarray(strided)))


class TensorLike:
    """Stands in for a CPU torch tensor: only ``__array__``."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


def test_array_like_input(rng):
    probs = softmax(rng, (1, 3, 4, 4))
    np.testing.assert_array_equal(predict(TensorLike(probs)), predict(probs))


def test_torch_cpu_tensor(rng):
    torch = import_or_skip("torch")
    probs = softmax(rng, (1, 3, 4, 4))
    for t in (torch.from_numpy(probs), torch.from_numpy(probs).half()):
        np.testing.assert_array_equal(predict(t), predict(t.numpy()))


def test_acc_solvers(rng):
    probs = softmax(rng, (2, 4, 5, 6)).astype(np.float64)
    probs[0, 1:3, 0, 0] = probs[0, 1:3, 0, 0].max()  # a tie: lowest class wins
    np.testing.assert_array_equal(predict(probs, metric="acc"), np.argmax(probs, axis=1))
    np.testing.assert_array_equal(
        predict(probs, metric="acc", solver="argmax", dtype=np.uint8), np.argmax(probs, axis=1)
    )
    np.testing.assert_array_equal(
        predict(probs, metric="acc", output_mode="multilabel"), probs > 0.5
    )
    half = np.full((1, 1, 3), 0.5)
    assert not predict(half, metric="acc", output_mode="multilabel").any()  # strict


# arbitrary (not normalized) class probabilities on purpose: multiclass resolution
# is defined for any input (SPEC §4); the layout warning is tested in test_api.py
@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
def test_info_values(rng):
    probs = softmax(rng, (2, 3, 6, 6))
    probs[1, 2] = 0.1  # pruned class
    _, info = predict(probs, metric="iou", smooth=0.5, return_info=True)
    assert info.pruned[1, 2] and info.tau[1, 2] == 0 and np.isnan(info.threshold[1, 2])
    mu = probs[1, 2].astype(np.float64).sum()
    assert info.score[1, 2] == pytest.approx(0.5 / (mu + 0.5))
    for b in range(2):
        for c in range(3):
            ref = naive.rma_row(probs[b, c].astype(np.float64).ravel(), "iou", 0.5, 0.5)
            assert info.tau[b, c] == ref["tau"]
            assert info.score[b, c] == pytest.approx(ref["score"], rel=1e-12)


def test_pruning_soft_model():
    probs = np.full((1, 2, 10), 0.5, dtype=np.float32)
    probs[0, 0, :4] = 0.45  # no pixel above 0.5: pruned by default
    probs[0, 1, :4] = 0.55
    masks = predict(probs, output_mode="multilabel")
    assert not masks[0, 0].any()
    masks = predict(probs, output_mode="multilabel", pruning_prob=0.0)
    assert masks[0, 0].any()


def test_input_never_modified(rng):
    probs = softmax(rng, (2, 3, 5, 5)).astype(np.float16)
    before = probs.copy()
    for mode in ("multiclass", "multilabel"):
        for metric in ("dice", "iou", "acc"):
            predict(probs, metric=metric, output_mode=mode)
    np.testing.assert_array_equal(probs, before)


# arbitrary (not normalized) class probabilities on purpose: multiclass resolution
# is defined for any input (SPEC §4); the layout warning is tested in test_api.py
@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_negative_zero_is_a_valid_probability(rng, dtype):
    probs = softmax(rng, (1, 3, 6, 6)).astype(dtype)
    probs[0, 1, :2] = 0.0
    neg = probs.copy()
    neg[0, 1, :2] = -0.0
    assert np.signbit(neg[0, 1, 0]).all()
    np.testing.assert_array_equal(predict(neg), predict(probs))
    np.testing.assert_array_equal(
        predict(neg, output_mode="multilabel"), predict(probs, output_mode="multilabel")
    )


def test_class_sum_warning_flags_a_missing_batch_axis(rng):
    from rankseg import ClassSumWarning

    item = softmax(rng, (1, 3, 6, 5, 4))[0]  # one (C, X, Y, Z) item, as MONAI's transforms see it
    with pytest.warns(ClassSumWarning, match=r"needs its batch axis: probs\[None\]"):
        predict(item)  # read as B = 3 samples of 6 classes
    before = item.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the right layout, float16 included: no warning
        predict(item[None])
        predict(item[None].astype(np.float16))
        predict(item[None], metric="acc")
    np.testing.assert_array_equal(item, before)
    sig = rng.random((2, 3, 8, 8)).astype(np.float32)  # independent per-class probabilities
    with pytest.warns(ClassSumWarning, match="output_mode='multilabel'"):
        predict(sig)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predict(sig, output_mode="multilabel")  # no class sums in multilabel mode


def test_class_sum_tolerance():
    from rankseg import _validation as v

    d = 1000
    ok = np.array([[0.6 * d, 0.4 * d * (1 + 0.9 * v.CLASS_SUM_TOL / 0.4)]])
    v.check_class_sums(ok, d)  # within the tolerance: silent (warnings are errors here)
    bad = np.array([[0.6 * d, 0.4 * d], [0.6 * d, 0.4 * d + 1.1 * v.CLASS_SUM_TOL * d]])
    with pytest.warns(v.ClassSumWarning, match=r"sample 1 sum to 1\.011 .*\(1 of 2 samples"):
        v.check_class_sums(bad, d)
