"""RankSEG.plan: the output's shape and dtype, and predict's errors, without data."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from rankseg import PredictPlan, RankSEG
from rankseg.cpu import driver as cpu_driver
from rankseg.cuda import driver as cuda_driver
from rankseg.datasets import make_probs

MODELS = [
    dict(),
    dict(output_mode="multilabel"),
    dict(metric="iou", solver="exact"),
    dict(metric="acc"),
    dict(metric="acc", output_mode="multilabel"),
    dict(unassigned_policy="void"),
    dict(unassigned_policy="void", void_index=-1),
    dict(unassigned_policy="void", void_index=300),
]


@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
@pytest.mark.parametrize("params", MODELS)
@pytest.mark.parametrize("nb", [0, 2])
@pytest.mark.parametrize("dtype", ["float16", "float32", ">f8"])
@pytest.mark.parametrize("label", [None, "int32", "uint16"])
def test_plan_matches_what_predict_returns(params, nb, dtype, label):
    model = RankSEG(**params)
    multiclass = model.output_mode == "multiclass"
    info = model.metric != "acc"
    probs = make_probs((max(nb, 1), 3, 5, 4), seed=1, dtype="float64")[:nb].astype(dtype)
    out_dtype = label if multiclass else None
    if multiclass and label == "uint16" and params.get("void_index") == -1:
        out_dtype = "int16"  # uint16 cannot hold the void label -1 (tested below)
    plan = model.plan(probs.shape, probs.dtype, return_info=info, out_dtype=out_dtype)
    res, got_info = (
        model.predict(probs, return_info=True, dtype=out_dtype)
        if info
        else (
            model.predict(probs, dtype=out_dtype),
            None,
        )
    )
    assert plan.out_shape == res.shape
    assert plan.out_dtype == res.dtype
    assert plan.shape == probs.shape
    assert plan.dtype == np.dtype(dtype).newbyteorder("=") and plan.dtype.isnative
    assert plan.multiclass == multiclass
    assert plan.void == (multiclass and info and params.get("unassigned_policy") == "void")
    assert plan.return_info == info
    if info:
        assert got_info.tau.shape == (nb, 3)


def test_plan_reads_no_data():
    # a shape far beyond this machine's memory: nothing is allocated or read
    plan = RankSEG().plan((10**6, 4, 10**5, 10**5), np.float32, out_dtype=np.uint8)
    assert plan.out_shape == (10**6, 10**5, 10**5)
    assert plan.out_dtype == np.uint8


def test_plan_is_a_frozen_record():
    plan = RankSEG(output_mode="multilabel").plan((1, 2, 3), "float64")
    assert isinstance(plan, PredictPlan)
    assert plan.out_dtype == np.bool_ and plan.out_shape == (1, 2, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.out_shape = (2,)  # type: ignore[misc]


def _raised(call):
    with pytest.raises(Exception) as exc:
        call()
    return type(exc.value), str(exc.value)


BAD = [
    # (model params, input shape, input dtype, predict kwargs)
    (dict(), (1, 2, 3), "int64", {}),
    (dict(), (1, 2, 3), "bool", {}),
    (dict(), (1, 2), "float32", {}),
    (dict(), (1, 0, 3), "float32", {}),
    (dict(), (1, 2, 0, 4), "float32", {}),
    (dict(), (1, 1, 3), "float32", {}),
    (dict(unassigned_policy="void", void_index=1), (1, 3, 4), "float32", {}),
    (dict(), (1, 300, 2), "float32", {"dtype": "uint8"}),
    (dict(unassigned_policy="void", void_index=-1), (1, 3, 2), "float32", {"dtype": "uint16"}),
    (dict(), (1, 3, 2), "float32", {"dtype": "float32"}),
    (dict(), (1, 3, 2), "float32", {"dtype": ">i4"}),
    (dict(output_mode="multilabel"), (1, 3, 2), "float32", {"dtype": "int64"}),
    (dict(output_mode="multilabel"), (1, 3, 2), "float32", {"dtype": "no such dtype"}),
    (dict(metric="acc"), (1, 3, 2), "float32", {"return_info": True}),
    (dict(), (1, 3, 2), "float32", {"return_info": 1}),
]


@pytest.mark.parametrize("params, shape, dtype, kwargs", BAD)
def test_plan_raises_what_predict_raises(params, shape, dtype, kwargs):
    model = RankSEG(**params)
    probs = np.full(shape, 0.5, dtype=dtype)
    want = _raised(lambda: model.predict(probs, **kwargs))
    plan_kw = {"return_info": kwargs.get("return_info", False), "out_dtype": kwargs.get("dtype")}
    got = _raised(lambda: model.plan(shape, dtype, **plan_kw))
    assert got == want
    assert want[0] in (TypeError, ValueError)


def test_plan_rejects_a_non_dtype_input_dtype():
    with pytest.raises(TypeError, match="dtype must be the input's dtype .*got 'banana'"):
        RankSEG().plan((1, 2, 3), "banana")


def test_both_drivers_take_the_same_call():
    # validate -> plan -> driver: the front end calls either driver the same way
    cpu = inspect.signature(cpu_driver.predict)
    gpu = inspect.signature(cuda_driver.predict)
    assert (
        list(cpu.parameters)
        == list(gpu.parameters)
        == [
            "model",
            "arr",
            "target",
            "return_info",
        ]
    )


@pytest.mark.filterwarnings("ignore::rankseg.ClassSumWarning")
def test_cpu_driver_fills_a_given_out():
    model = RankSEG(metric="dice")
    probs = make_probs((2, 3, 6, 5), seed=3)
    plan = model.plan(probs.shape, probs.dtype, return_info=True)
    out = np.full(plan.out_shape, -7, dtype=plan.out_dtype)
    res, info = cpu_driver.predict(model, probs, (plan.out_shape, plan.out_dtype, out), True)
    assert res is out
    want, want_info = model.predict(probs, return_info=True)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(info.tau, want_info.tau)
