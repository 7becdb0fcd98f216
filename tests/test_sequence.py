"""``RankSEG.predict`` on a list or tuple of inputs (issue 31: the fixed cost per call).

Each output must be, bit for bit, what ``predict`` gives that input alone: small inputs
of one trailing shape, dtype and kind are decided together in one concatenated call,
and rows are decided independently, so nothing may change.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import rankseg
from rankseg import ClassSumWarning, RankSEG, _api
from rankseg.datasets import make_probs


def _items(kind="softmax", n=7, seed=0):
    """Small inputs of mixed batch sizes, spatial shapes and dtypes, in one list."""
    shapes = [(1, 3, 9, 8), (2, 3, 9, 8), (1, 3, 5, 4, 3), (3, 3, 9, 8), (1, 3, 20)]
    dtypes = ["float32", "float64", "float16"]
    return [
        make_probs(shapes[k % len(shapes)], kind=kind, seed=seed + k, dtype=dtypes[k % len(dtypes)])
        for k in range(n)
    ]


def _same(a, b):
    assert type(a) is type(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def _same_info(a, b):
    for field in ("tau", "threshold", "score", "pruned"):
        _same(getattr(a, field), getattr(b, field))


CONFIGS = [
    {"metric": "dice"},
    {"metric": "iou", "smooth": 1.0},
    {"metric": "dice", "output_mode": "multilabel"},
    {"metric": "iou", "output_mode": "multilabel", "solver": "exact"},
    {"metric": "dice", "solver": "ba"},
    {"metric": "dice", "solver": "trna", "output_mode": "multilabel"},
    {"metric": "dice", "unassigned_policy": "void", "void_index": 255},
    {"metric": "acc"},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_each_output_is_that_of_its_input_alone(config):
    model = RankSEG(**config)
    items = _items()
    frozen = [x.copy() for x in items]
    got = model.predict(items)
    assert isinstance(got, list) and len(got) == len(items)
    for x, y in zip(items, got, strict=True):
        _same(y, model.predict(x))
    for x, y in zip(items, frozen, strict=True):
        _same(x, y)  # the inputs are not modified


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_with_info_and_label_dtype(mode):
    model = RankSEG(metric="dice", output_mode=mode)
    items = tuple(_items(n=6, seed=5))  # a tuple works as a list does
    dtype = "uint8" if mode == "multiclass" else None
    outs, infos = model.predict(items, return_info=True, dtype=dtype)
    assert len(outs) == len(infos) == len(items)
    for x, y, info in zip(items, outs, infos, strict=True):
        ref, ref_info = model.predict(x, return_info=True, dtype=dtype)
        _same(y, ref)
        _same_info(info, ref_info)


def test_the_function_and_call_forms():
    items = _items(n=4)
    ref = [rankseg.predict(x, metric="iou") for x in items]
    for got in (rankseg.predict(items, metric="iou"), RankSEG(metric="iou")(items)):
        for a, b in zip(got, ref, strict=True):
            _same(a, b)
    assert RankSEG().predict([]) == []
    assert RankSEG().predict((), return_info=True) == ([], [])


def test_many_small_images_are_decided_in_one_call(monkeypatch):
    """1 000 images of one shape: one call (of concatenated inputs), the same outputs."""
    items = [make_probs((1, 4, 16, 16), kind="softmax", seed=k) for k in range(1000)]
    model = RankSEG()
    calls = []
    real = model._predict_native

    def counted(arr, *args):
        calls.append(arr.shape)
        return real(arr, *args)

    monkeypatch.setattr(model, "_predict_native", counted)
    got = model.predict(items)
    assert calls == [(1000, 4, 16, 16)]
    monkeypatch.undo()
    for x, y in zip(items, got, strict=True):
        _same(y, model.predict(x))


def test_groups_are_bounded_and_large_inputs_are_their_own_call(monkeypatch):
    monkeypatch.setattr(_api, "SEQUENCE_GROUP", 3 * 2 * 64)  # three (1, 2, 8, 8) inputs
    small = [make_probs((1, 2, 8, 8), kind="softmax", seed=k) for k in range(7)]
    monkeypatch.setattr(_api, "SEQUENCE_SMALL", 2 * 64 * 2)  # (2, 2, 8, 8) is not small
    large = make_probs((2, 2, 8, 8), kind="softmax", seed=9)
    other = make_probs((1, 2, 4, 4), kind="softmax", seed=10)  # another shape
    items = [*small[:2], large, other, *small[2:]]
    model = RankSEG()
    calls = []
    real = model._predict_native

    def counted(arr, *args):
        calls.append(arr.shape[0])
        return real(arr, *args)

    monkeypatch.setattr(model, "_predict_native", counted)
    got = model.predict(items)
    # small inputs in order, three per group; the large and the other one alone
    assert sorted(calls) == sorted([3, 3, 1, 2, 1])
    monkeypatch.undo()
    for x, y in zip(items, got, strict=True):
        _same(y, model.predict(x))
    keys = [("a",), None, ("a",), ("b",), ("a",), ("a",)]
    arrays = [np.zeros(4)] * 6
    monkeypatch.setattr(_api, "SEQUENCE_GROUP", 8)
    assert _api._sequence_groups(arrays, keys) == [[0, 2], [1], [3], [4, 5]]


def test_each_input_is_prepared_once(monkeypatch):
    """An input that is its own call is not prepared again: another layout is copied once."""
    large = make_probs((1, 2, 8, 8, 4), kind="softmax", seed=3).transpose(0, 1, 3, 2, 4)
    assert not large.flags.c_contiguous  # prepare copies it to view it as (B, C, d)
    monkeypatch.setattr(_api, "SEQUENCE_SMALL", 16)  # every input is its own call
    items = [large, make_probs((1, 2, 8, 8), kind="softmax", seed=4)]
    prepared = []
    real = _api._arrays.prepare

    def counted(x):
        prepared.append(x.shape)
        return real(x)

    monkeypatch.setattr(_api._arrays, "prepare", counted)
    got = RankSEG().predict(items)
    assert prepared == [x.shape for x in items]
    monkeypatch.undo()
    for x, y in zip(items, got, strict=True):
        _same(y, RankSEG().predict(x))


def test_errors_name_the_input():
    good = make_probs((1, 3, 6, 6), kind="softmax", seed=1)
    bad = good.copy()
    bad[0, 1, 2, 3] = 1.5  # outside [0, 1]
    model = RankSEG()
    with pytest.raises(rankseg.BadValuesError, match=r"at probs\[2\], sample 0, class 1: ") as err:
        model.predict([good, good, bad, good])
    assert (err.value.kind, err.value.sample, err.value.class_) == ("range", 0, 1)
    assert isinstance(err.value.__cause__, rankseg.BadValuesError)
    with pytest.raises(TypeError, match=r"^probs\[1\]: probs must be an array"):
        model.predict([good, "not an array"])
    with pytest.raises(TypeError, match=r"probs\[0\] is a list; .*numpy.asarray"):
        model.predict(good.tolist())  # nested lists are not a sequence of inputs
    with pytest.raises(ValueError, match=r"^probs\[1\]: .*shape") as err:
        model.predict([good, good[0, 0]])  # (H, W): no class axis
    assert type(err.value) is type(err.value.__cause__)
    with pytest.raises(ValueError, match="out= takes one output array"):
        model.predict([good], out=np.empty((1, 6, 6), dtype=np.int64))
    with pytest.raises(ValueError, match="return_info"):
        RankSEG(metric="acc").predict([good], return_info=True)


def test_a_warning_names_the_input_it_is_about():
    """A sample whose class sums are off warns as it would alone (B and sample of its own)."""
    good = make_probs((1, 3, 6, 6), kind="softmax", seed=1)
    off = make_probs((2, 3, 6, 6), kind="sigmoid", seed=2)  # class sums far from 1
    model = RankSEG()
    with warnings.catch_warnings(record=True) as alone:
        warnings.simplefilter("always")
        ref = model.predict(off)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = model.predict([good, off, good])
    assert [str(w.message) for w in caught] == [str(w.message) for w in alone]
    assert all(w.category is ClassSumWarning for w in caught) and "(B=2," in str(caught[0].message)
    _same(got[1], ref)
    _same(got[0], model.predict(good))
