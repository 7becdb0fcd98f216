"""Round trips through CuPy and torch CUDA tensors (real GPU only; skipped elsewhere)."""

import numpy as np
import pytest
from cuda_parity import SIMULATOR, values

from rankseg import predict

pytestmark = pytest.mark.skipif(SIMULATOR, reason="the simulator takes only its own arrays")


@pytest.fixture
def probs():
    rng = np.random.default_rng(2)
    return values(rng, "softmax", (2, 4, 6, 5)).astype(np.float32)


def test_cupy_in_cupy_out(probs):
    cp = pytest.importorskip("cupy")
    x = cp.asarray(probs)
    before = x.copy()
    for mode in ("multiclass", "multilabel"):
        got = predict(x, output_mode=mode, pruning_prob=0.0)
        wrapped = cp.asarray(got)  # zero-copy through __cuda_array_interface__
        assert wrapped.data.ptr == got.__cuda_array_interface__["data"][0]
        np.testing.assert_array_equal(
            wrapped.get(), predict(probs, output_mode=mode, pruning_prob=0.0)
        )
    assert bool((x == before).all())  # the input is never modified


def test_output_memory_comes_from_the_input_library(probs):
    """CuPy input: the output is CuPy pool memory (kept alive by the numba view)."""
    cp = pytest.importorskip("cupy")
    x = cp.asarray(probs)
    got = predict(x, pruning_prob=0.0)
    assert type(got.gpu_data.owner).__module__.split(".")[0] == "cupy"
    del x
    cp.get_default_memory_pool().free_all_blocks()  # the output's block stays in use
    np.testing.assert_array_equal(cp.asarray(got).get(), predict(probs, pruning_prob=0.0))


def test_torch_in_torch_out(probs):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    for dtype in (torch.float16, torch.float32, torch.float64):
        t = torch.as_tensor(probs).to(device="cuda", dtype=dtype)
        got = predict(t, metric="iou", pruning_prob=0.0)
        assert type(got.gpu_data.owner).__module__.split(".")[0] == "torch"
        back = torch.as_tensor(got, device="cuda")
        assert back.device.type == "cuda"
        want = predict(t.cpu().numpy(), metric="iou", pruning_prob=0.0)
        np.testing.assert_array_equal(back.cpu().numpy(), want)


def test_strided_cupy_input_is_refused(probs):
    cp = pytest.importorskip("cupy")
    x = cp.asarray(probs)[:, :, ::2]
    with pytest.raises(ValueError, match="contiguous"):
        predict(x)
