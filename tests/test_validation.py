"""Every error path of the NumPy API: exception type and message."""

import sys

import numpy as np
import pytest

import rankseg
from rankseg import RankSEG, predict


@pytest.fixture
def probs():
    p = np.full((2, 3, 4, 5), 1 / 3, dtype=np.float32)
    p[:, 0, :2] = 0.8
    p[:, 1, :2] = 0.1
    p[:, 2, :2] = 0.1
    return p


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        ([[[0.5]]], TypeError, r"probs\[0\] is a list; .*not nested lists.*numpy.asarray"),
        ([0.5], TypeError, r"probs\[0\]: probs must be an array with __array__.*got float"),
        ("probs", TypeError, r"got str"),
        (None, TypeError, r"got NoneType"),
        (np.zeros((1, 2, 3), dtype=np.int64), TypeError, r"float16, float32 or float64; got int64"),
        (np.zeros((1, 2, 3), dtype=bool), TypeError, r"got bool .*label maps"),
        (np.zeros((1, 2, 3), dtype=np.complex128), TypeError, r"got complex128"),
        (
            np.zeros((2, 3), dtype=np.float32),
            ValueError,
            r"at least one spatial axis; got shape \(2, 3\)",
        ),
        (np.zeros((1, 0, 3), dtype=np.float32), ValueError, r"zero classes"),
        (np.zeros((1, 2, 0, 3), dtype=np.float32), ValueError, r"empty spatial axis"),
    ],
)
def test_bad_arrays(bad, exc, match):
    with pytest.raises(exc, match=match):
        predict(bad)


def test_cuda_array_without_numba_cuda(monkeypatch):
    """CUDA input goes to the GPU backend; a missing numba-cuda is named (see tests/cuda)."""

    class FakeCuda:
        __cuda_array_interface__ = {"shape": (1, 2, 3), "typestr": "<f4", "version": 3}

    monkeypatch.setitem(sys.modules, "numba.cuda", None)  # as if numba-cuda were absent
    with pytest.raises(ImportError, match="device='cuda' needs the numba-cuda package"):
        predict(FakeCuda())
    with pytest.raises(ImportError, match="needs the numba-cuda package"):
        predict(np.full((1, 2, 3), 0.5), device="cuda")


def test_unconvertible_array_like():
    class Broken:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("needs grad")

    with pytest.raises(TypeError, match=r"could not be viewed as a NumPy array \(needs grad\)"):
        predict(Broken())


@pytest.mark.parametrize(
    "value, match",
    [
        (np.nan, r"contains NaN \(first at sample 1, class 2\)"),
        (np.inf, r"contains inf \(first at sample 1, class 2\)"),
        (-np.inf, r"contains inf"),
        (1.5, r"outside \[0, 1\] \(at sample 1, class 2: min 0\.\d+, max 1\.5\).*softmax"),
        (-0.25, r"outside \[0, 1\].*min -0\.25"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_bad_values(probs, value, match, dtype):
    p = probs.astype(dtype)
    p[1, 2, 3, 4] = value
    before = p.copy()
    with pytest.raises(ValueError, match=match) as err:
        predict(p, output_mode="multilabel")
    np.testing.assert_array_equal(p, before)
    # a BadValuesError (still a ValueError) that says the row without its message parsed
    assert type(err.value) is rankseg.BadValuesError
    e = err.value
    assert (e.sample, e.class_, e.chunk, e.spatial) == (1, 2, None, None)
    assert e.kind == ("nan" if np.isnan(value) else "inf" if np.isinf(value) else "range")
    if e.kind == "range":  # the row's min and max, as the message says
        row = p[1, 2].astype(np.float64)
        assert (e.low, e.high) == (row.min(), row.max())
    else:
        assert np.isnan(e.low) and np.isnan(e.high)


@pytest.mark.parametrize("metric", ["dice", "iou", "acc"])
@pytest.mark.parametrize("output_mode", ["multiclass", "multilabel"])
def test_bad_values_error_every_path(rng, metric, output_mode):
    p = rng.dirichlet(np.ones(3), size=(2, 5, 6)).transpose(0, 3, 1, 2)
    p[0, 1, 4, 5] = 2.0
    with pytest.raises(rankseg.BadValuesError) as err:
        predict(p, metric=metric, output_mode=output_mode)
    assert (err.value.kind, err.value.sample, err.value.class_) == ("range", 0, 1)
    assert err.value.high == 2.0


def test_bad_values_error_pickles_and_relocates():
    import pickle

    err = rankseg.BadValuesError("range", 3, 1, (0, 1, 2), ((4, 8), (0, 4)), -0.5, 1.0)
    assert str(err) == (
        "probs has values outside [0, 1] (at sample 3, class 1, in chunk (0, 1, 2) "
        "(spatial [4:8, 0:4]): min -0.5, max 1); expected probabilities: apply softmax "
        "(multiclass) or sigmoid (multilabel) to logits first"
    )
    back = pickle.loads(pickle.dumps(err))  # dask's distributed scheduler pickles errors
    assert type(back) is rankseg.BadValuesError and str(back) == str(err)
    assert vars(back) == vars(err) and back.args == err.args
    moved = err.relocated(7, "case='p7', class='liver'")
    assert (moved.sample, moved.class_, moved.chunk, moved.low) == (7, 1, (0, 1, 2), -0.5)
    assert "at case='p7', class='liver', in chunk (0, 1, 2)" in str(moved)
    assert isinstance(moved, ValueError)
    with pytest.raises(ValueError, match=r"kind must be 'nan', 'inf' or 'range'; got 'big'"):
        rankseg.BadValuesError("big", 0, 0)


def test_bad_values_acc_metric(probs):
    probs[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predict(probs, metric="acc")


def test_bad_values_do_not_touch_out(probs):
    out = np.full((2, 4, 5), 7, dtype=np.int64)
    probs[1, 1, 1, 1] = 2.0
    with pytest.raises(ValueError, match="outside"):
        predict(probs, out=out)
    assert (out == 7).all()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"metric": 3}, TypeError, r"metric must be a string.*got int"),
        (
            {"metric": "f1"},
            ValueError,
            r"unknown metric 'f1'; expected one of 'dice', 'iou', 'acc'",
        ),
        (
            {"output_mode": "labels"},
            ValueError,
            r"unknown output_mode 'labels'.*'multiclass', 'multilabel'",
        ),
        ({"output_mode": None}, TypeError, r"output_mode must be a string"),
        ({"solver": 1}, TypeError, r"solver must be a string"),
        ({"solver": "fast"}, ValueError, r"unknown solver 'fast'; expected one of"),
        (
            {"metric": "iou", "solver": "ba"},
            ValueError,
            r"'ba' is not supported for metric 'iou'.*'rma', 'exact'",
        ),
        ({"metric": "dice", "solver": "argmax"}, ValueError, r"not supported for metric 'dice'"),
        ({"smooth": -1}, ValueError, r"smooth must be in \[0, inf\); got -1"),
        ({"smooth": np.nan}, ValueError, r"smooth must be in"),
        ({"smooth": np.inf}, ValueError, r"smooth must be in"),
        ({"smooth": "1"}, TypeError, r"smooth must be a real number; got str"),
        ({"smooth": 1j}, TypeError, r"smooth must be a real number; got complex"),
        ({"smooth": True}, TypeError, r"smooth must be a real number; got bool"),
        ({"pruning_prob": 1.5}, ValueError, r"pruning_prob must be in \[0, 1\]; got 1\.5"),
        ({"pruning_prob": -0.1}, ValueError, r"pruning_prob must be in \[0, 1\]"),
        ({"pruning_prob": "0.5"}, TypeError, r"pruning_prob must be a real number"),
        (
            {"metric": "acc", "solver": "argmax", "output_mode": "multilabel"},
            ValueError,
            r"'argmax' gives multiclass output.*solver='tr'",
        ),
        (
            {"metric": "acc", "solver": "tr"},
            ValueError,
            r"'tr' gives multilabel output.*solver='argmax'",
        ),
        ({"metric": "acc", "smooth": 1.0}, ValueError, r"smooth does not apply to metric 'acc'"),
        (
            {"metric": "acc", "pruning_prob": 0.1},
            ValueError,
            r"pruning_prob does not apply to metric 'acc'",
        ),
        (
            {"eps": 1e-4},
            ValueError,
            r"eps does not apply to solver 'rma'.*'ba', 'trna', 'ba\+trna'",
        ),
        (
            {"unasigned_policy": "void"},
            TypeError,
            r"unexpected keyword argument\(s\) 'unasigned_policy'",
        ),
        (
            {"unassigned_policy": "ignore"},
            ValueError,
            r"unknown unassigned_policy 'ignore'.*'max_score', 'void'",
        ),
        ({"unassigned_policy": 0}, TypeError, r"unassigned_policy must be a string"),
        (
            {"unassigned_policy": "void", "output_mode": "multilabel"},
            ValueError,
            r"unassigned_policy applies only to metric 'dice' or 'iou' with "
            r"output_mode='multiclass'",
        ),
        (
            {"unassigned_policy": "void", "metric": "acc"},
            ValueError,
            r"unassigned_policy applies only",
        ),
        ({"void_index": 3}, ValueError, r"void_index applies only with unassigned_policy='void'"),
        ({"void_index": 3, "output_mode": "multilabel"}, ValueError, r"void_index applies only"),
        (
            {"unassigned_policy": "void", "void_index": 2.0},
            TypeError,
            r"void_index must be an integer; got float",
        ),
        (
            {"unassigned_policy": "void", "void_index": True},
            TypeError,
            r"void_index must be an integer; got bool",
        ),
        (
            {"unassigned_policy": "void", "void_index": 2**63},
            ValueError,
            r"void_index must fit in a 64-bit signed integer",
        ),
        ({"smooth": 1e-305}, ValueError, r"smooth must be 0 or at least 1e-300; got 1e-305"),
        ({"smooth": 5e-324}, ValueError, r"smooth must be 0 or at least 1e-300"),
        ({"smooth": 10**400}, ValueError, r"smooth must be in \[0, inf\); got an integer of 401"),
        ({"pruning_prob": -(10**400)}, ValueError, r"pruning_prob must be in \[0, 1\]"),
        ({"solver": "ba", "eps": 10**400}, ValueError, r"eps must be in \(0, 1\)"),
    ],
)
def test_bad_parameters(probs, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        RankSEG(**kwargs)
    with pytest.raises(exc, match=match):
        predict(probs, **kwargs)


@pytest.mark.parametrize("void_index", [0, 2])
def test_void_index_inside_classes(probs, void_index):
    with pytest.raises(
        ValueError, match=rf"void_index must lie outside \[0, 3\).*got {void_index}"
    ):
        predict(probs, unassigned_policy="void", void_index=void_index)


def test_single_class_multiclass(probs):
    with pytest.raises(
        ValueError, match=r"at least 2 classes; got C = 1.*output_mode='multilabel'"
    ):
        predict(probs[:, :1])
    with pytest.raises(ValueError, match=r"at least 2 classes"):
        predict(probs[:, :1], metric="acc")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"dtype": np.float32}, TypeError, r"dtype must be an integer dtype .*got float32"),
        ({"dtype": "not-a-dtype"}, TypeError, r"dtype must be an integer dtype"),
        (
            {"dtype": np.int8, "unassigned_policy": "void", "void_index": 200},
            ValueError,
            r"dtype int8 cannot hold every label \(labels span 0\.\.200\)",
        ),
        (
            {"dtype": np.uint8, "unassigned_policy": "void", "void_index": -1},
            ValueError,
            r"dtype uint8 cannot hold every label \(labels span -1\.\.2\)",
        ),
        (
            {"output_mode": "multilabel", "dtype": np.uint8},
            ValueError,
            r"dtype applies to multiclass label maps",
        ),
        (
            {"dtype": ">i4"},
            TypeError,
            r"dtype >i4 is not in this machine's byte order; expected a native integer dtype",
        ),
        (
            {"output_mode": "multilabel", "dtype": "not-a-dtype"},
            TypeError,
            r"multilabel masks are bool, got dtype='not-a-dtype', which is not a dtype",
        ),
        ({"return_info": 1}, TypeError, r"return_info must be a bool"),
        (
            {"metric": "acc", "return_info": True},
            ValueError,
            r"return_info=True needs metric 'dice' or 'iou'",
        ),
    ],
)
def test_bad_output_options(probs, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        predict(probs, **kwargs)


def test_label_dtype_too_small_for_classes(rng):
    p = rng.random((1, 300, 2, 2)).astype(np.float32)
    with pytest.raises(
        ValueError, match=r"dtype uint8 cannot hold every label \(labels span 0\.\.299\)"
    ):
        predict(p, dtype=np.uint8)


@pytest.mark.parametrize(
    "out, kwargs, exc, match",
    [
        ([0], {}, TypeError, r"out must be a NumPy array \(or memmap\); got list"),
        (
            np.zeros((2, 4, 4), np.int64),
            {},
            ValueError,
            r"out has shape \(2, 4, 4\); expected \(2, 4, 5\)",
        ),
        (
            np.zeros((2, 4, 5), np.float64),
            {},
            TypeError,
            r"out has dtype float64; expected an integer dtype for the label map",
        ),
        (
            np.zeros((2, 4, 5), bool),
            {},
            TypeError,
            r"out has dtype bool; expected an integer dtype",
        ),
        (
            np.zeros((2, 4, 5), ">i8"),
            {},
            ValueError,
            r"out has dtype >i8; expected an integer dtype in this machine's byte order",
        ),
        (
            np.zeros((2, 4, 5), np.int32),
            {"dtype": np.int64},
            ValueError,
            r"out has dtype int32; expected int64",
        ),
        (
            np.zeros((2, 3, 4, 5), np.uint8),
            {"output_mode": "multilabel"},
            ValueError,
            r"out has dtype uint8; expected bool",
        ),
        (
            np.zeros((2, 5, 4), np.int64).transpose(0, 2, 1),
            {},
            ValueError,
            r"out must be C-contiguous",
        ),
    ],
)
def test_bad_out(probs, out, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        predict(probs, out=out, **kwargs)


def test_read_only_out(probs):
    out = np.zeros((2, 4, 5), np.int64)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        predict(probs, out=out)


def test_out_overlapping_input():
    buf = np.zeros(2 * 3 * 4 * 5 * 8 + 64, dtype=np.uint8)
    probs = buf[: 2 * 3 * 20 * 8].view(np.float64).reshape(2, 3, 4, 5)
    probs[:] = 1 / 3
    out = buf[:320].view(np.int64).reshape(2, 4, 5)
    with pytest.raises(ValueError, match="out overlaps probs"):
        predict(probs, out=out)


def test_out_overlapping_a_byte_swapped_input():
    """The overlap check also sees the caller's array, not only its native-order copy."""
    rng = np.random.default_rng(0)
    probs = rng.random((1, 3, 2, 3)).astype(">f8")
    before = probs.copy()
    alias = probs.view(">i8").reshape(-1)[:6].view(np.int64).reshape(1, 2, 3)
    with pytest.raises(ValueError, match="out overlaps probs"):
        predict(probs, out=alias)
    np.testing.assert_array_equal(probs, before)


def test_public_names():
    assert set(rankseg.__all__) >= {"RankSEG", "predict", "PredictInfo"}
