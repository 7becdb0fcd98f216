"""Torch tensors in, torch tensors out; the torch package's public API (issue 26).

Needs torch (skipped without it); the checks against the torch package itself are in
tests/test_torch_reference.py (recorded fixtures, no torch needed).
"""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest
from test_torch_reference import META, bad_inputs

import rankseg
from rankseg import RankSEG, _arrays, predict
from rankseg.functional import rankdice_ba, rankseg_rma
from rankseg.functional import rankseg as rankseg_fn

from _optional import import_or_skip

torch = import_or_skip("torch")


@pytest.fixture
def probs():
    gen = torch.Generator().manual_seed(3)
    return torch.softmax(3 * torch.randn(2, 5, 12, 10, generator=gen), dim=1)


def test_quick_start_returns_a_tensor(probs):
    """The torch package's quick start: a tensor in, an int64 label tensor out."""
    preds = RankSEG(metric="dice").predict(probs)
    assert isinstance(preds, torch.Tensor)
    assert preds.dtype == torch.int64 and preds.shape == (2, 12, 10)
    np.testing.assert_array_equal(preds.numpy(), predict(probs.numpy()))
    masks = RankSEG(metric="iou", output_mode="multilabel")(probs)  # __call__
    assert masks.dtype == torch.bool and masks.shape == probs.shape
    np.testing.assert_array_equal(
        masks.numpy(), predict(probs.numpy(), metric="iou", output_mode="multilabel")
    )


def test_numpy_in_numpy_out(probs):
    got = predict(probs.numpy())
    assert type(got) is np.ndarray


def test_result_is_zero_copy(probs, monkeypatch):
    """The tensor is torch.from_numpy of the result: no copy of the labels."""
    seen = {}
    real = RankSEG._predict_native

    def spy(self, *args):
        res = real(self, *args)
        seen["res"] = res
        return res

    monkeypatch.setattr(RankSEG, "_predict_native", spy)
    preds = predict(probs)
    assert preds.data_ptr() == seen["res"].ctypes.data


def test_input_is_read_in_place(probs, monkeypatch):
    """A CPU tensor reaches the kernels as a NumPy view of its memory (no copy)."""
    seen = {}
    real = RankSEG._predict_native

    def spy(self, arr, *args):
        seen["ptr"] = arr.ctypes.data
        return real(self, arr, *args)

    monkeypatch.setattr(RankSEG, "_predict_native", spy)
    predict(probs)
    assert seen["ptr"] == probs.data_ptr()


def test_views_with_neg_or_conj_bits_are_resolved(probs):
    # a plain CPU tensor is read by Tensor.numpy() alone; a tensor numpy() refuses
    # (here a negated view: its values are right, its memory holds -p) takes the
    # checked path and is decided on its values
    neg = torch._neg_view(-probs)
    assert neg.is_neg()
    got = predict(neg)
    assert torch.equal(got, predict(probs))
    view, kind = _arrays.prepare(probs)
    assert kind.lib == "torch" and kind.device.type == "cpu"
    assert np.shares_memory(view, probs.numpy())  # the fast path: no copy


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_float_dtypes(probs, dtype):
    t = probs.to(getattr(torch, dtype))
    np.testing.assert_array_equal(predict(t).numpy(), predict(t.numpy()))


def test_bfloat16_is_decided_in_float32(probs):
    t = probs.bfloat16()
    got = predict(t, output_mode="multilabel", metric="dice", solver="exact")
    want = predict(t.float().numpy(), output_mode="multilabel", metric="dice", solver="exact")
    assert got.dtype == torch.bool
    np.testing.assert_array_equal(got.numpy(), want)


def test_requires_grad_is_accepted_and_untouched(probs):
    logits = torch.randn(2, 5, 12, 10, requires_grad=True)
    p = torch.softmax(logits, dim=1)  # has a grad_fn
    before = p.detach().clone()
    got = predict(p)
    assert not got.requires_grad and got.grad_fn is None
    assert p.requires_grad and p.grad_fn is not None  # the input keeps its graph
    assert torch.equal(p.detach(), before)  # never modified
    np.testing.assert_array_equal(got.numpy(), predict(before.numpy()))
    leaf = probs.clone().requires_grad_(True)
    predict(leaf, output_mode="multilabel")
    assert leaf.grad is None and leaf.requires_grad


def test_non_contiguous_and_subclass_tensors(probs):
    t = probs.permute(0, 1, 3, 2)  # a view with another stride order
    np.testing.assert_array_equal(predict(t).numpy(), predict(t.contiguous().numpy()))

    class Sub(torch.Tensor):
        pass

    s = probs.as_subclass(Sub)
    got = predict(s)
    assert type(got) is torch.Tensor
    np.testing.assert_array_equal(got.numpy(), predict(probs.numpy()))


def test_return_info_keeps_predict_info(probs):
    preds, info = predict(probs, metric="iou", return_info=True)
    assert isinstance(preds, torch.Tensor)
    assert isinstance(info, rankseg.PredictInfo) and isinstance(info.tau, np.ndarray)
    _, want = predict(probs.numpy(), metric="iou", return_info=True)
    np.testing.assert_array_equal(info.tau, want.tau)


def test_dtype_numpy_or_torch(probs):
    for dt in (np.uint8, torch.uint8, torch.int32):
        got = predict(probs, dtype=dt)
        assert got.dtype == (torch.uint8 if dt is np.uint8 else dt)
        np.testing.assert_array_equal(got.numpy(), predict(probs.numpy()))
    with pytest.raises(TypeError, match="integer dtype"):
        predict(probs, dtype=torch.float32)


def test_out_tensor_is_filled_and_returned(probs):
    out = torch.full((2, 12, 10), -7, dtype=torch.int64)
    got = predict(probs, out=out)
    assert got is out
    np.testing.assert_array_equal(out.numpy(), predict(probs.numpy()))
    host = np.empty((2, 12, 10), dtype=np.int64)
    assert predict(probs, out=host) is host  # out decides the kind
    masks = torch.zeros(probs.shape, dtype=torch.bool)
    got, info = predict(probs, output_mode="multilabel", out=masks, return_info=True)
    assert got is masks and info.tau.shape == (2, 5)


def test_out_tensor_errors(probs):
    with pytest.raises(TypeError, match="requires grad"):
        predict(probs, out=torch.zeros((2, 12, 10), dtype=torch.float64, requires_grad=True))
    with pytest.raises(TypeError, match="host output"):
        predict(probs, out=torch.zeros((2, 12, 10), dtype=torch.int64, device="meta"))
    with pytest.raises(ValueError, match="shape"):
        predict(probs, out=torch.zeros((2, 12, 11), dtype=torch.int64))
    with pytest.raises(ValueError, match="overlaps"):
        predict(probs[:1], out=probs[0, 0].view(torch.int32)[None])  # the input's memory


def test_other_devices_raise_a_clear_error():
    t = torch.empty((1, 2, 3, 3), device="meta")
    with pytest.raises(ValueError, match=r"device 'meta'.*CPU and on CUDA.*\.cpu\(\)"):
        predict(t)


def test_sparse_tensor_raises():
    t = torch.full((1, 2, 2, 2), 0.5).to_sparse()
    with pytest.raises(TypeError, match="dense"):
        predict(t)


@pytest.mark.parametrize("name", sorted(META["bad_inputs"]))
def test_bad_tensors_raise_the_torch_package_types(name):
    """Integer/bool tensors, NaN, wrong layouts: the types the torch package raises."""
    t = bad_inputs(torch)[name]
    before = t.clone()
    with pytest.raises(Exception) as info:
        predict(t)
    # ours may be a subclass (BadValuesError): the torch package's callers catch the builtin
    builtin = next(c for c in type(info.value).__mro__ if c.__module__ == "builtins")
    assert builtin.__name__ == META["bad_inputs"][name]
    if name in ("nan", "negative", "above_one"):
        assert type(info.value) is rankseg.BadValuesError
    assert torch.equal(t, before) or name == "nan"  # nan != nan
    if name in ("int", "bool"):
        assert "dtype" in str(info.value)
    if name == "nan":
        assert "NaN" in str(info.value)


def test_safe_screening_is_accepted_without_effect(probs):
    want = predict(probs.numpy())
    for value in (False, True, "auto", " AUTO "):
        model = RankSEG(safe_screening=value)
        np.testing.assert_array_equal(model(probs).numpy(), want)
    assert "safe_screening=True" in repr(RankSEG(safe_screening=True))
    with pytest.raises(TypeError, match="bool or 'auto'"):
        RankSEG(safe_screening="yes")
    with pytest.raises(TypeError, match="bool or 'auto'"):
        RankSEG(safe_screening=1)
    with pytest.raises(ValueError, match="solver 'rma' only"):
        RankSEG(output_mode="multilabel", solver="BA", safe_screening=True)


def test_names_are_case_insensitive_and_accuracy_is_acc(probs):
    a = RankSEG(metric="Dice", output_mode="multilabel", solver="BA+TRNA", eps=1e-3)
    b = RankSEG(metric="dice", output_mode="multilabel", solver="ba+trna", eps=1e-3)
    np.testing.assert_array_equal(a(probs).numpy(), b(probs).numpy())
    acc = RankSEG(metric="accuracy", solver="argmax")
    assert acc.metric == "acc"
    np.testing.assert_array_equal(acc(probs).numpy(), probs.argmax(dim=1).numpy())


def test_two_class_multiclass_is_not_collapsed():
    p = torch.softmax(torch.randn(1, 2, 6, 6, generator=torch.Generator().manual_seed(0)), 1)
    got = predict(p)
    assert got.shape == (1, 6, 6) and set(got.unique().tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="multilabel"):
        predict(p[:, :1])  # one class: multiclass output refused, as the torch package does


def test_functional_rankseg_signature(probs):
    np.testing.assert_array_equal(
        rankseg_fn(probs, "iou", 0.5, "multilabel", "RMA", 0.3).numpy(),
        RankSEG("iou", 0.5, "multilabel", "rma", 0.3)(probs).numpy(),
    )
    with pytest.raises(ValueError, match="not supported for metric 'acc'"):
        rankseg_fn(probs, metric="acc")  # its default solver is 'RMA', as there
    assert rankseg.functional.rankseg is rankseg_fn


def test_rankseg_rma(probs):
    got = rankseg_rma(probs, metric="IoU", output_mode="multilabel", safe_screening="auto")
    want = predict(probs.numpy(), metric="iou", output_mode="multilabel")
    assert got.dtype == torch.bool
    np.testing.assert_array_equal(got.numpy(), want)
    void = rankseg_rma(probs, unassigned_policy="void", void_index=-1, pruning_prob=0.9)
    np.testing.assert_array_equal(
        void.numpy(),
        predict(probs.numpy(), pruning_prob=0.9, unassigned_policy="void", void_index=-1),
    )
    with pytest.raises(ValueError, match="multiclass"):
        rankseg_rma(probs, output_mode="multilabel", unassigned_policy="void")
    with pytest.raises(ValueError, match="void_index other than 255"):
        rankseg_rma(probs, void_index=7)
    with pytest.raises(TypeError, match="void_index must be an integer"):
        rankseg_rma(probs, unassigned_policy="void", void_index=1.5)
    with pytest.raises(ValueError, match="metric"):
        rankseg_rma(probs, metric="acc")


def test_rankdice_ba(probs):
    for solver in ("BA", "trna", "Ba+TrNa"):
        got = rankdice_ba(probs, solver=solver, eps=1e-3, pruning_prob=0.2)
        want = predict(
            probs.numpy(),
            output_mode="multilabel",
            solver=solver.lower(),
            eps=1e-3,
            pruning_prob=0.2,
        )
        assert got.dtype == torch.bool
        np.testing.assert_array_equal(got.numpy(), want)
    with pytest.raises(ValueError, match="solver"):
        rankdice_ba(probs, solver="RMA")


def test_public_names_of_the_torch_package():
    for name in (
        "__version__",
        "RankSEG",
        "functional",
        "distribution",
        "RefinedNormalPB",
        "RefinedNormal",
        "rankdice_ba",
        "rankseg_rma",
    ):
        assert hasattr(rankseg, name), name
        assert name in rankseg.__all__
    assert isinstance(rankseg.__version__, str)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rankseg.nope  # noqa: B018


def test_import_rankseg_imports_no_torch_cupy_or_scipy_stats():
    code = (
        "import sys, rankseg, rankseg.functional\n"
        "bad = [m for m in ('torch', 'cupy', 'scipy.stats') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_distribution_with_tensors():
    from rankseg.distribution import RefinedNormalPB

    loc = torch.tensor([3.0, 8.0])
    rv = RefinedNormalPB(dim=20, loc=loc, scale=torch.tensor([1.0, 2.0]), skew=0.1)
    k = torch.arange(20.0).expand(2, -1)
    pmf = rv.pmf(k)
    assert isinstance(pmf, torch.Tensor) and pmf.dtype == torch.float32
    ref = RefinedNormalPB(dim=20, loc=loc.numpy(), scale=np.array([1.0, 2.0]), skew=0.1)
    np.testing.assert_allclose(pmf.numpy(), ref.pmf(k.numpy()), rtol=1e-6)
    lq, uq = rv.interval(1e-4)
    assert lq.dtype == torch.int32 and (lq <= uq).all() and rv.batch_shape == torch.Size([2])
    assert isinstance(rv.loc, torch.Tensor) and rv.expand((3, 2)).batch_shape == (3, 2)
    q = rv.icdf(torch.tensor([[0.5], [0.5]]))
    np.testing.assert_allclose(rv.cdf(q).numpy(), 0.5, atol=1e-5)


def test_distribution_errors():
    from rankseg.distribution import RefinedNormalPB

    with pytest.raises(ValueError, match="scale"):
        RefinedNormalPB(10, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        RefinedNormalPB(10, float("nan"), 1.0, 0.0)
    with pytest.raises(TypeError, match="real"):
        RefinedNormalPB(10, True, 1.0, 0.0)
    with pytest.raises(ValueError, match="dim"):
        RefinedNormalPB(-1, 1.0, 1.0, 0.0)
    rv = RefinedNormalPB(10, 4.0, 1.0, 0.0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        rv.icdf(np.array([0.0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rv.interval(1.5)
    with pytest.raises(ValueError, match="max_iter"):
        rv.icdf(np.array([0.5]), max_iter=0)


class _FakeCupyArray:
    """Stands in for a cupy.ndarray (no GPU here): only what _arrays reads."""

    def __init__(self, ptr, shape, typestr):
        self.__cuda_array_interface__ = {"data": (ptr, False), "shape": shape, "typestr": typestr}


def test_cupy_round_trip_with_a_fake(monkeypatch):
    """The CuPy branch of _arrays (CuPy cannot be installed here: no CUDA).

    The input's kind is CuPy; a result allocated by CuPy (the GPU backend's output)
    comes back as that very array; another device result is wrapped by cupy.asarray.
    """
    wrapped = []
    fake = types.ModuleType("cupy")
    fake.ndarray = _FakeCupyArray
    fake.asarray = lambda x: wrapped.append(x) or ("wrapped", x)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    x = _FakeCupyArray(1000, (1, 2, 3), "<f4")
    arr, kind = _arrays.prepare(x)
    assert arr is x and kind.lib == "cupy"
    owner = _FakeCupyArray(2000, (1, 3), "|b1")
    res = types.SimpleNamespace(
        gpu_data=types.SimpleNamespace(owner=owner),
        __cuda_array_interface__={"data": (2000, False)},
        shape=(1, 3),
        dtype=np.dtype(bool),
    )
    assert _arrays.restore(res, kind) is owner
    res.__cuda_array_interface__ = {"data": (2008, False)}  # a view elsewhere: wrapped
    assert _arrays.restore(res, kind) == ("wrapped", res)
    host = np.zeros(3)
    assert _arrays.restore(host, kind) == ("wrapped", host)  # device='cpu' asked for


def test_monai_bfloat16_and_grad_items():
    monai = import_or_skip("monai")
    from rankseg.monai import RankSEG as MonaiRankSEG

    item = monai.data.MetaTensor(
        torch.softmax(torch.randn(3, 6, 5, generator=torch.Generator().manual_seed(1)), 0)
    )
    want = MonaiRankSEG()(item)
    got = MonaiRankSEG()(item.bfloat16().float())  # bf16 values, float32 item
    assert isinstance(got, monai.data.MetaTensor) and got.shape == want.shape
    np.testing.assert_array_equal(MonaiRankSEG()(item.bfloat16()).numpy(), got.numpy())
    grad = item.clone().requires_grad_(True)
    np.testing.assert_array_equal(MonaiRankSEG()(grad).numpy(), want.numpy())


def test_torch_parity_benchmark_runs_without_upstream(capsys, tmp_path):
    from benchmarks import torch_parity

    missing = str(tmp_path / "no-venv" / "bin" / "python")
    assert torch_parity.main(["--upstream-python", missing, "--quick", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "upstream skipped" in out and "round trip" in out and "tensor in/out" in out


def test_a_list_of_tensors_gives_a_list_of_tensors(probs):
    """Each tensor of a list gets the tensor ``predict`` gives it alone (one call for all)."""
    items = [probs[:1], probs[1:], probs[:1].double(), probs[1:].numpy()]
    got = RankSEG(metric="dice").predict(items)
    assert [type(g) for g in got] == [torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]
    for x, y in zip(items, got, strict=True):
        ref = RankSEG(metric="dice").predict(x)
        assert type(y) is type(ref) and y.dtype == ref.dtype
        np.testing.assert_array_equal(np.asarray(y), np.asarray(ref))
