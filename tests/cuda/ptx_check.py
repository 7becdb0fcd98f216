"""Compile every CUDA kernel for a real GPU architecture without a GPU (a developer tool).

The simulator runs the kernels as Python and never type-checks them for the CUDA
target; this script does, on a machine without a GPU or driver:

1. ``record``: run a set of calls in the simulator (its own process, with
   ``NUMBA_ENABLE_CUDASIM=1``) and record the argument types of every kernel launch;
2. ``compile``: in a second process without the simulator, compile each recorded
   launch to PTX with ``numba.cuda.compile_ptx`` for ``--cc`` (default 9.0, Hopper).

Needs the CUDA compiler libraries from pip (no driver)::

    pip install nvidia-cuda-nvcc nvidia-cuda-nvrtc
    python tests/cuda/ptx_check.py            # both steps; exit status 1 on a failure

Step 2 replaces numba-cuda's ``get_current_device`` (used to pick the architecture
of device functions) by a stand-in of the requested compute capability.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pickle
import subprocess
import sys
import tempfile
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def record(path: Path) -> None:
    """Run representative calls in the simulator and pickle ``{kernel: {types: args}}``."""
    import numpy as np
    from numba.cuda.simulator import kernel as simk

    sys.path[:0] = [str(ROOT), str(HERE), str(HERE.parent)]
    seen: dict = {}
    original = simk.FakeCUDAKernel.__call__

    def stand_in(a):  # a tiny host array of the same type as a device array argument
        if isinstance(a, tuple):
            return tuple(stand_in(b) for b in a)
        if hasattr(a, "copy_to_host"):
            return np.empty((1,) * a.ndim, a.dtype)
        return a

    def call(self, *args):
        import numba

        stand = tuple(stand_in(a) for a in args)
        key = (self.fn.__module__, self.fn.__name__)
        seen.setdefault(key, {})[tuple(str(numba.typeof(a)) for a in stand)] = stand
        return original(self, *args)

    simk.FakeCUDAKernel.__call__ = call
    from cuda_parity import fix_simulator_shared_arrays, values
    from numba import cuda

    from rankseg import predict
    from rankseg.cuda import _config

    fix_simulator_shared_arrays()
    sys.setswitchinterval(1e-5)
    small = {"THREADS_PER_BLOCK": 4, "SORT_THREADS": 4, "MAX_BLOCKS": 2, "SHARED_SORT": 8}
    for name, value in {**small, "TILE": 8, "BAND_MIN_CAPACITY": 2}.items():
        setattr(_config, name, value)
    rng = np.random.default_rng(0)
    for dt in (np.float16, np.float32, np.float64):
        p = values(rng, "uniform", (2, 3, 5, 4)).astype(dt)
        for mode in ("multiclass", "multilabel"):
            for metric in ("dice", "iou"):
                predict(cuda.to_device(p), metric=metric, output_mode=mode, pruning_prob=0.0)
            predict(cuda.to_device(p), metric="acc", output_mode=mode)
        _config.FUSED_CLASSES = 1  # the unfused safe sums
        predict(cuda.to_device(p), pruning_prob=0.0, unassigned_policy="void", void_index=255)
        _config.FUSED_CLASSES = _config.MAX_FUSED_CLASSES
        tie = (np.array([5, 6, 11, 5, 8, 6, 8, 6], dtype=np.float64) / 11)[None, None]
        kw = {"metric": "iou", "smooth": 10.0, "output_mode": "multilabel", "pruning_prob": 0.0}
        predict(cuda.to_device(tie.astype(dt)), **kw)  # a cut inside a run of ties
        for solver in ("exact", "ba"):  # GPU passes of the host-solved solvers
            predict(cuda.to_device(p), solver=solver, smooth=1.0, pruning_prob=0.5)
    path.write_bytes(pickle.dumps(seen))


def compile_all(path: Path, cc: tuple[int, int]) -> int:
    """Compile every recorded kernel launch to PTX; returns the number of failures."""
    import numba
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda

    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
    seen = pickle.loads(path.read_bytes())
    failures = 0
    for (module, name), launches in sorted(seen.items()):
        if not name.endswith("_kernel"):
            continue  # device functions compile as part of their kernels
        kernel = getattr(importlib.import_module(module), name)
        for sig, args in launches.items():
            try:
                cuda.compile_ptx(kernel.py_func, tuple(numba.typeof(a) for a in args), cc=cc)
                print(f"ok    {name}{sig}")
            except Exception as exc:  # report every failure, then fail
                failures += 1
                print(f"FAIL  {name}{sig}: {type(exc).__name__}: {exc}")
    print(f"{failures} failures")
    return failures


def main(argv: list[str] | None = None) -> int:
    """Both steps, each in its own process; exit status 1 when a kernel fails to compile."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", nargs="?", choices=["record", "compile"])
    ap.add_argument("--file", type=Path)
    ap.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0 or 8.0")
    args = ap.parse_args(argv)
    cc = tuple(int(v) for v in args.cc.split("."))
    if args.step == "record":
        record(args.file)
        return 0
    if args.step == "compile":
        return 1 if compile_all(args.file, cc) else 0
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "launches.pkl"
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        me = [sys.executable, __file__]
        subprocess.run([*me, "record", "--file", str(file)], env=env, check=True)
        env.pop("NUMBA_ENABLE_CUDASIM")
        step2 = [*me, "compile", "--file", str(file), "--cc", args.cc]
        return subprocess.run(step2, env=env, check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
