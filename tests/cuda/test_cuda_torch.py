"""Torch tensors through the CUDA backend (simulator or GPU), and the result's kind.

What the simulator cannot hold is a torch CUDA tensor (it takes only its own
simulated arrays), so here a CPU tensor is computed with ``device='cuda'``: the
backend's passes run (in the simulator) and the result comes back as a CPU tensor.
The torch-CUDA-in, torch-CUDA-out path (zero-copy: the backend's output is
allocated by torch and that tensor is returned) runs only on a real GPU:
``test_torch_cuda_round_trip`` below, skipped elsewhere.
"""

import numpy as np
import pytest
from cuda_parity import SIMULATOR, values

from rankseg import _arrays, predict

from _optional import import_or_skip

torch = import_or_skip("torch")


@pytest.fixture
def probs():
    rng = np.random.default_rng(5)
    return values(rng, "softmax", (2, 3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_cpu_tensor_computed_on_cuda(cuda, probs, mode):
    t = torch.from_numpy(probs).requires_grad_(True)
    got = predict(t, output_mode=mode, pruning_prob=0.0, device="cuda")
    assert isinstance(got, torch.Tensor) and got.device.type == "cpu"
    assert got.dtype == (torch.int64 if mode == "multiclass" else torch.bool)
    np.testing.assert_array_equal(got.numpy(), predict(probs, output_mode=mode, pruning_prob=0.0))
    bf = torch.from_numpy(probs).bfloat16()
    got = predict(bf, output_mode=mode, pruning_prob=0.0, device="cuda")
    np.testing.assert_array_equal(
        got.numpy(), predict(bf.float().numpy(), output_mode=mode, pruning_prob=0.0)
    )


def test_device_array_result_wrapped_as_tensor(cuda, probs):
    """restore's fallback: a device result not owned by torch becomes a tensor."""
    dev = predict(cuda.to_device(probs), pruning_prob=0.0)  # a numba (simulated) array
    # simulated arrays are host memory (torch reads them through NumPy); on a GPU the
    # device memory is wrapped through __cuda_array_interface__
    if not SIMULATOR and not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    kind = _arrays.ArrayKind("torch", torch.device("cpu" if SIMULATOR else "cuda"))
    got = _arrays.restore(dev, kind)
    assert isinstance(got, torch.Tensor) and got.device.type == kind.device.type
    np.testing.assert_array_equal(got.cpu().numpy(), predict(probs, pruning_prob=0.0))


@pytest.mark.skipif(SIMULATOR, reason="the simulator holds no torch CUDA tensors")
def test_torch_cuda_round_trip(probs):
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    t = torch.from_numpy(probs).cuda().requires_grad_(True)
    before = t.detach().clone()
    for mode in ("multiclass", "multilabel"):
        got = predict(t, output_mode=mode, pruning_prob=0.0)
        assert isinstance(got, torch.Tensor) and got.device == t.device
        np.testing.assert_array_equal(
            got.cpu().numpy(), predict(probs, output_mode=mode, pruning_prob=0.0)
        )
    assert torch.equal(t.detach(), before) and t.requires_grad
    got = predict(t.bfloat16(), pruning_prob=0.0)
    assert got.device == t.device
