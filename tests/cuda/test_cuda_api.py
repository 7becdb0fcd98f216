"""The ``device`` argument, where outputs live, and errors of the CUDA path."""

import os
import subprocess
import sys

import numpy as np
import pytest
from cuda_parity import host, values

import rankseg
from rankseg import RankSEG, predict


@pytest.fixture
def probs():
    rng = np.random.default_rng(1)
    return values(rng, "softmax", (2, 3, 4, 4)).astype(np.float32)


def test_output_lives_where_the_input_does(cuda, probs):
    ref, ref_info = predict(probs, pruning_prob=0.0, return_info=True)
    dev = cuda.to_device(probs)
    got = predict(dev, pruning_prob=0.0)  # device=None: computed on the GPU
    assert not isinstance(got, np.ndarray) and hasattr(got, "copy_to_host")
    np.testing.assert_array_equal(host(got), ref)
    # host input, computed on the GPU, host output
    got, info = predict(probs, pruning_prob=0.0, device="cuda", return_info=True)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(info.tau, ref_info.tau)
    # CUDA input computed on the CPU: copied to the host and the result back
    got, info = predict(dev, pruning_prob=0.0, device="CPU", return_info=True)
    assert not isinstance(got, np.ndarray)
    np.testing.assert_array_equal(host(got), ref)
    np.testing.assert_array_equal(info.score, ref_info.score)
    np.testing.assert_array_equal(
        host(predict(dev, solver="exact", device="cpu")), predict(probs, solver="exact")
    )


def test_host_out_and_label_dtype(probs):
    out = np.empty((2, 4, 4), dtype=np.uint8)
    res = RankSEG(pruning_prob=0.0).predict(probs, out=out, device="cuda")
    assert res is out
    np.testing.assert_array_equal(out, predict(probs, pruning_prob=0.0))
    res = predict(probs, dtype=np.int16, device="cuda", unassigned_policy="void", void_index=-1)
    assert res.dtype == np.int16


def test_empty_batch(cuda):
    empty = np.zeros((0, 3, 4), dtype=np.float32)
    res = predict(cuda.to_device(empty))
    assert res.shape == (0, 4)
    masks, info = predict(empty, output_mode="multilabel", device="cuda", return_info=True)
    assert masks.shape == (0, 3, 4) and info.tau.shape == (0, 3)


def test_bad_device_name(probs):
    with pytest.raises(ValueError, match="unknown device 'gpu'; expected one of 'cpu', 'cuda'"):
        predict(probs, device="gpu")
    with pytest.raises(TypeError, match="device must be a string"):
        predict(probs, device=0)


def test_out_with_cuda_input(cuda, probs):
    with pytest.raises(TypeError, match="out applies to host output"):
        predict(cuda.to_device(probs), out=np.empty((2, 4, 4), dtype=np.int64))


@pytest.mark.parametrize(
    "bad, match",
    [(np.nan, "contains NaN"), (np.inf, "contains inf"), (1.5, "outside"), (-0.25, "outside")],
)
def test_bad_values_same_message_as_cpu(cuda, probs, bad, match):
    probs = probs.copy()
    probs[1, 2, 3, 0] = bad
    with pytest.raises(ValueError, match=match) as cpu_err:
        predict(probs)
    with pytest.raises(ValueError, match=match) as gpu_err:
        predict(cuda.to_device(probs))
    assert str(gpu_err.value) == str(cpu_err.value)
    assert "sample 1, class 2" in str(gpu_err.value)
    assert type(gpu_err.value) is type(cpu_err.value) is rankseg.BadValuesError
    g, c = gpu_err.value, cpu_err.value
    assert (g.kind, g.sample, g.class_, g.chunk) == (c.kind, c.sample, c.class_, c.chunk)


def test_negative_zero_is_valid(cuda):
    probs = np.array([[[-0.0, 0.75, 0.25], [0.0, 0.25, 0.75]]])
    np.testing.assert_array_equal(host(predict(cuda.to_device(probs))), predict(probs))


def test_bad_cuda_arrays(cuda, probs):
    with pytest.raises(TypeError, match="float16, float32 or float64; got int32"):
        predict(cuda.to_device(np.zeros((1, 2, 3), dtype=np.int32)))
    with pytest.raises(ValueError, match="at least one spatial axis"):
        predict(cuda.to_device(np.zeros((2, 3), dtype=np.float32)))
    strided = cuda.to_device(np.zeros((1, 2, 3, 4), dtype=np.float32))[:, :, :, ::2]
    with pytest.raises(ValueError, match="non-contiguous CUDA array"):
        predict(strided)


def _python(code, drop_sim=False):
    env = dict(os.environ)
    if drop_sim:
        env.pop("NUMBA_ENABLE_CUDASIM", None)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )


def test_cpu_path_never_imports_cuda():
    res = _python(
        "import sys, numpy as np\n"
        "from rankseg import predict\n"
        "p = np.random.default_rng(0).random((1, 2, 6))\n"
        "for m in ('dice', 'iou', 'acc'):\n"
        "    predict(p, metric=m)\n"
        "predict(p, device='cpu')\n"
        "assert not [k for k in sys.modules if k.startswith(('numba.cuda', 'rankseg.cuda'))]\n"
    )
    assert res.returncode == 0, res.stderr


def test_missing_numba_cuda_is_named():
    res = _python(
        "import sys, numpy as np\n"
        "sys.modules['numba.cuda'] = None\n"
        "from rankseg import predict\n"
        "predict(np.random.default_rng(0).random((1, 2, 6)), device='cuda')\n"
    )
    assert res.returncode != 0
    assert "ImportError: device='cuda' needs the numba-cuda package" in res.stderr


def test_missing_driver_is_named():
    res = _python(
        "import numpy as np\n"
        "from numba import cuda\n"
        "if cuda.is_available():\n"
        "    raise SystemExit(0)\n"  # a real GPU: nothing is missing
        "from rankseg import predict\n"
        "predict(np.random.default_rng(0).random((1, 2, 6)), device='cuda')\n",
        drop_sim=True,
    )
    if res.returncode == 0:
        pytest.skip("a CUDA GPU is present")
    assert "RuntimeError: device='cuda' needs an NVIDIA GPU with a working CUDA driver" in (
        res.stderr
    )


def test_missing_nvvm_is_named():
    """A working driver but no NVVM: cuda_error() is None; the message names NVVM."""
    res = _python(
        "import numpy as np\n"
        "from numba import cuda\n"
        "from numba.cuda.cudadrv import nvvm\n"
        "cuda.is_available = lambda: False\n"
        "cuda.cuda_error = lambda: None\n"
        "nvvm.is_available = lambda: False\n"
        "from rankseg import predict\n"
        "predict(np.random.default_rng(0).random((1, 2, 6)), device='cuda')\n",
        drop_sim=True,
    )
    assert res.returncode != 0
    assert "RuntimeError: device='cuda' needs NVVM, the CUDA compiler library" in res.stderr
    assert "None" not in res.stderr.splitlines()[-1]


def test_work_buffers_are_reused_and_released(cuda):
    """Calls of growing and shrinking size reuse (and grow) the kept work buffers."""
    from rankseg.cuda import _memory, driver

    rng = np.random.default_rng(4)
    shapes = [(1, 3, 5, 4), (2, 4, 9, 7), (1, 2, 3), (2, 4, 9, 7)]
    for i, shape in enumerate(shapes):
        probs = values(rng, "softmax", shape).astype(np.float32)
        for mode in ("multiclass", "multilabel"):
            want = predict(probs, output_mode=mode, pruning_prob=0.0)
            got = predict(cuda.to_device(probs), output_mode=mode, pruning_prob=0.0)
            np.testing.assert_array_equal(host(got), want)
        if i == 1:
            driver.release_buffers()
            assert not _memory.BUFFERS
    assert _memory.BUFFERS  # kept after a call


def test_concurrent_calls_leave_the_warning_filters_alone(cuda):
    """Two threads calling at once: the process-wide warning filters are unchanged.

    The driver used to wrap each call in ``warnings.catch_warnings`` (not
    thread-safe): a call waiting on the lock saved and restored another call's
    temporary filter list, leaking a filter into it or dropping the user's.
    """
    import threading
    import time
    import warnings

    from numba.cuda.core import config

    from rankseg.cuda import driver

    p = (np.random.default_rng(0).integers(0, 9, size=(1, 2, 6)) / 8).astype(np.float32)
    want = predict(p)
    occupancy = config.CUDA_LOW_OCCUPANCY_WARNINGS
    with warnings.catch_warnings():  # this test's own changes stay inside it
        warnings.simplefilter("default")
        before = list(warnings.filters)
        got = []
        driver.LOCK.acquire()  # both calls wait for it, as behind a running call
        threads = [
            threading.Thread(target=lambda: got.append(predict(p, device="cuda"))) for _ in range(2)
        ]
        for t in threads:
            t.start()
            time.sleep(0.2)
        warnings.simplefilter("error", UserWarning)  # the user's, while the calls wait
        driver.LOCK.release()
        for t in threads:
            t.join()
        assert warnings.filters[0][0] == "error" and warnings.filters[1:] == before
    assert config.CUDA_LOW_OCCUPANCY_WARNINGS == occupancy
    assert len(got) == 2 and all((g == want).all() for g in got)


@pytest.mark.parametrize("per_thread", [0, 1])
def test_per_thread_streams_wait_before_the_next_call(cuda, monkeypatch, per_thread):
    """With per-thread default streams a call waits for its kernels before returning.

    The next call, maybe from another thread and so on another stream, reuses the work
    buffers; on the legacy default stream launches run in order and nobody waits.
    """
    from numba.cuda.core import config

    calls = []
    monkeypatch.setattr(config, "CUDA_PER_THREAD_DEFAULT_STREAM", per_thread)
    monkeypatch.setattr(cuda, "synchronize", lambda: calls.append(1))
    p = (np.random.default_rng(1).integers(0, 9, size=(1, 3, 8)) / 8).astype(np.float32)
    out = predict(cuda.to_device(p), device="cuda")
    assert (out.copy_to_host() == predict(p)).all()
    assert len(calls) == per_thread
