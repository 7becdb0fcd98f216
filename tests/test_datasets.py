"""Synthetic probability maps: shapes, dtypes, value ranges, determinism, realism."""

import tracemalloc

import numpy as np
import pytest

from rankseg import datasets
from rankseg.datasets import WORKLOADS, ct3d, make_probs, sample_truth, tumor3d, voc2d

WORKLOAD_SHAPES = {
    "voc2d": (4, 21, 256, 256),
    "ct3d": (1, 8, 64, 128, 128),
    "tumor3d": (1, 1, 96, 128, 128),
}
SOFTMAX = {"voc2d": True, "ct3d": True, "tumor3d": False}


def check_probs(probs, shape, dtype, softmax):
    assert probs.shape == tuple(shape)
    assert probs.dtype == dtype
    assert probs.flags.c_contiguous
    assert not np.isnan(probs).any()
    assert probs.min() >= 0
    assert probs.max() <= 1
    if softmax:
        # float32 rounding of a C-term sum; float16 output is coarser.
        tol = 5e-3 if probs.dtype == np.float16 else 1e-5
        sums = probs.sum(axis=1, dtype=np.float64)
        np.testing.assert_allclose(sums, 1.0, rtol=0, atol=tol)


@pytest.fixture(scope="module")
def workloads():
    """Each workload generated once, with the peak of traced allocations."""
    out = {}
    for name, make in WORKLOADS.items():
        tracemalloc.start()
        try:
            probs = make()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        out[name] = (probs, peak)
    return out


# ---------------------------------------------------------------------------- make_probs


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    "shape", [(2, 3, 17), (1, 4, 12, 9), (3, 2, 5, 6, 7), (1, 3, 3, 4, 2, 5), (2, 1, 8, 8)]
)
def test_make_probs_properties(kind, dtype, shape):
    probs = make_probs(shape, kind=kind, seed=3, dtype=dtype)
    check_probs(probs, shape, np.dtype(dtype), softmax=kind == "softmax")
    if kind == "sigmoid":
        assert not np.allclose(probs.sum(axis=1), 1.0)


def test_make_probs_deterministic_and_seeded():
    a = make_probs((2, 3, 16, 16), seed=7)
    b = make_probs((2, 3, 16, 16), seed=7)
    c = make_probs((2, 3, 16, 16), seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_make_probs_mostly_confident_with_smooth_regions():
    probs = make_probs((2, 3, 64, 64), smoothness=4.0, seed=0)
    top = probs.max(axis=1)
    assert np.mean(top > 0.9) > 0.7
    assert np.mean(top < 0.6) > 0.0  # some uncertain boundary pixels
    # Smooth: neighbouring labels agree far more often than independent ones would.
    labels = probs.argmax(axis=1)
    assert np.mean(labels[:, 1:, :] == labels[:, :-1, :]) > 0.9


def test_make_probs_options():
    white = make_probs((1, 2, 32), smoothness=0.0, sharpness=0.0)
    np.testing.assert_allclose(white, 0.5, atol=1e-7)  # zero logits
    biased = make_probs((2, 3, 32, 32), bias=[30.0, 0.0, 0.0], seed=1)
    assert np.mean(biased.argmax(axis=1) == 0) > 0.9
    per_sample = make_probs((2, 2, 8), kind="sigmoid", bias=[[30.0, -30.0], [-30.0, 30.0]])
    assert (per_sample[0, 0] > 0.99).all()
    assert (per_sample[1, 0] < 0.01).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shape": (2, 3)}, ValueError, "at least one spatial"),
        ({"shape": (2, 0, 4)}, ValueError, "at least 1"),
        ({"shape": 5}, TypeError, "sequence of integers"),
        ({"shape": (1, 2, 4), "kind": "softmin"}, ValueError, "kind must be one of"),
        ({"shape": (1, 2, 4), "dtype": np.int32}, TypeError, "dtype must be float16"),
        ({"shape": (1, 2, 4), "smoothness": -1.0}, ValueError, "smoothness must be >= 0"),
        ({"shape": (1, 2, 4), "sharpness": np.inf}, ValueError, "sharpness must be finite"),
        ({"shape": (1, 2, 4), "bias": np.nan}, ValueError, "bias must be finite"),
        ({"shape": (1, 2, 4), "bias": [[0.0, -np.inf]]}, ValueError, "bias must be finite"),
        ({"shape": (1, 2, 4.7)}, TypeError, "sequence of integers"),
        ({"shape": (1, True, 4)}, TypeError, "sequence of integers"),
    ],
)
def test_make_probs_errors(kwargs, error, match):
    shape = kwargs.pop("shape")
    with pytest.raises(error, match=match):
        make_probs(shape, **kwargs)


# ----------------------------------------------------------------------------- workloads


def test_workload_registry():
    assert WORKLOADS == {"voc2d": voc2d, "ct3d": ct3d, "tumor3d": tumor3d}
    assert set(datasets.__all__) >= {"WORKLOADS", "make_probs", "sample_truth"}


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workload_properties(workloads, name):
    probs, peak = workloads[name]
    check_probs(probs, WORKLOAD_SHAPES[name], np.dtype(np.float32), SOFTMAX[name])
    # Memory-lean: no float64 copy of the whole map on the way.
    assert peak < 2.5 * probs.nbytes + 32e6


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workload_deterministic(workloads, name):
    probs, _ = workloads[name]
    np.testing.assert_array_equal(WORKLOADS[name](seed=0), probs)


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workload_seed_and_small_shape(name):
    shape = {"voc2d": (2, 21, 32, 32), "ct3d": (1, 8, 8, 16, 16), "tumor3d": (2, 1, 16, 24, 24)}
    a = WORKLOADS[name](seed=1, shape=shape[name])
    b = WORKLOADS[name](seed=2, shape=shape[name])
    check_probs(a, shape[name], np.dtype(np.float32), SOFTMAX[name])
    assert not np.array_equal(a, b)


def test_voc2d_realism(workloads):
    probs, _ = workloads["voc2d"]
    labels = probs.argmax(axis=1)
    assert 0.6 < np.mean(labels == 0) < 0.95  # background dominant
    present = probs.max(axis=(2, 3)) > 0.5
    assert present[:, 0].all()
    assert (present[:, 1:].sum(axis=1) >= 1).all()
    assert (present[:, 1:].sum(axis=1) <= 4).all()  # a few objects (plus rare confusions)
    assert np.mean(probs.max(axis=1) > 0.9) > 0.8  # mostly confident


def test_ct3d_realism(workloads):
    probs, _ = workloads["ct3d"]
    labels = probs.argmax(axis=1)
    fractions = np.bincount(labels.ravel(), minlength=8) / labels.size
    assert fractions[0] > 0.6
    assert (fractions[1:] > 0.001).all()  # every organ present
    assert np.mean(probs.max(axis=1) > 0.9) > 0.8


def test_tumor3d_small_object_with_blurry_rim(workloads):
    probs, _ = workloads["tumor3d"]
    assert 0.005 <= np.mean(probs > 0.5) <= 0.02
    rim = np.mean((probs > 0.1) & (probs < 0.9))
    assert rim > 0.002
    assert probs.max() > 0.9


def test_workload_shape_must_have_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        voc2d(shape=(1, 1, 8, 8))


# -------------------------------------------------------------------------- sample_truth


def test_sample_truth_categorical_is_calibrated():
    p = np.array([0.2, 0.3, 0.5], dtype=np.float32)
    probs = np.ascontiguousarray(np.broadcast_to(p[None, :, None, None], (2, 3, 200, 250)))
    labels = sample_truth(probs, np.random.default_rng(0))
    assert labels.shape == (2, 200, 250)
    assert labels.dtype == np.int64
    freq = np.bincount(labels.ravel(), minlength=3) / labels.size
    np.testing.assert_allclose(freq, p, atol=0.01)


def test_sample_truth_bernoulli_is_calibrated():
    p = np.array([0.0, 0.1, 0.7, 1.0], dtype=np.float32)
    probs = np.ascontiguousarray(np.broadcast_to(p[None, :, None], (2, 4, 50000)))
    masks = sample_truth(probs, 0, kind="sigmoid")
    assert masks.shape == probs.shape
    assert masks.dtype == np.bool_
    np.testing.assert_allclose(masks.mean(axis=(0, 2)), p, atol=0.01)
    assert not masks[:, 0].any()
    assert masks[:, 3].all()


def test_sample_truth_infers_kind_and_is_seeded():
    soft = make_probs((1, 3, 16, 16), seed=0)
    sig = make_probs((1, 3, 16, 16), kind="sigmoid", seed=0)
    assert sample_truth(soft, 1).shape == (1, 16, 16)
    assert sample_truth(sig, 1).shape == (1, 3, 16, 16)
    np.testing.assert_array_equal(sample_truth(soft, 5), sample_truth(soft, 5))
    labels = sample_truth(voc2d(shape=(1, 21, 16, 16)), 0)
    assert labels.min() >= 0
    assert labels.max() < 21


def test_sample_truth_rounding_stays_in_range():
    probs = np.full((1, 4, 1000), 0.2499, dtype=np.float32)  # sums to 0.9996
    labels = sample_truth(probs, 0, kind="softmax")
    assert labels.max() == 3
    assert labels.min() == 0


def test_sample_truth_errors():
    with pytest.raises(ValueError, match="shape"):
        sample_truth(np.zeros((2, 3)), 0)
    with pytest.raises(ValueError, match="kind must be one of"):
        sample_truth(np.zeros((1, 2, 3)), 0, kind="argmax")
