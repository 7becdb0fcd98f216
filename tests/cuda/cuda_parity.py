"""Comparison of the CUDA backend with the CPU backend on the same input.

The backends run the same formulas, but the GPU sums μ and the forced set by block
reductions while the CPU sums in its own (vectorized) order, so two volumes whose
objectives agree to ~1e-13 may be ranked differently.  As in
tests/test_rma_properties.py, a difference is accepted only when the sort-based
oracle's own objective values are equal within ``TOL`` (a genuine numerical tie);
quantized and 0/1 inputs have exact sums, so they must match bit for bit.
"""

import math
import os
import sys
import threading
import traceback

import numpy as np

from rankseg import predict

import naive
import naive_solvers

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _why_unavailable():
    try:
        from numba import cuda
    except ImportError as exc:
        return f"numba.cuda cannot be imported ({exc}); install numba-cuda"
    if SIMULATOR:
        return None
    try:
        if cuda.is_available():
            return None
    except Exception as exc:  # a broken driver install must not fail collection
        return f"CUDA check failed: {exc}"
    return "needs NUMBA_ENABLE_CUDASIM=1 (numba's CUDA simulator) or a CUDA GPU"


UNAVAILABLE = _why_unavailable()


def fix_simulator_shared_arrays():
    """Make the simulator's ``cuda.shared.array`` thread-safe; returns the undo function.

    The simulator's shared-array allocation is a get-then-insert on a dict without a
    lock, so two threads of a block can get different "shared" arrays; frequent GIL
    switches made that visible (a gather overflowing its buffer once in ~10 runs).
    A simulator bug, not a kernel one: the fix re-implements the method with a lock.
    """
    import numpy as np
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.np import numpy_support

    unsafe = kernelapi.FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:
            return unsafe(self, shape, dtype, alignment)
        caller = traceback.extract_stack(sys._getframe())[-2][0:2]  # as the original
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                if isinstance(dtype, types.Type):
                    dtype = numpy_support.as_dtype(dtype)
                res = np.empty(shape, dtype)
                self._allocations[caller] = res
        return res

    kernelapi.FakeCUDAShared.array = array

    def restore():
        kernelapi.FakeCUDAShared.array = unsafe

    return restore


TOL = 1e-12
KINDS = naive.KINDS
values = naive.random_probs  # the inputs of tests/test_rma_properties.py


def host(a):
    """NumPy copy of a device array (or the array itself)."""
    return a if isinstance(a, np.ndarray) else a.copy_to_host()


def _objectives(p, metric, gamma, solver, eps):
    """The solver's objective over every tau, from the slow oracles (one or two of them)."""
    if solver == "rma":
        return [naive.rma_objective(p, metric, gamma)]
    if solver == "exact":
        return [naive.exact_pi_dp(p, metric, gamma)]
    ba = naive_solvers.ba_dice_naive(p, gamma, eps)
    trna = naive_solvers.trna_dice_naive(p, gamma, eps)
    return {"ba": [ba], "trna": [trna]}.get(solver, [ba, trna])  # ba+trna: either


def _tau_differs_ok(p, tau_a, tau_b, metric, gamma, solver="rma", eps=1e-4):
    """Whether the two volumes are a numerical tie of the solver's objective."""
    for f in _objectives(p, metric, gamma, solver, eps):
        if max(tau_a, tau_b) < f.shape[0]:
            scale = max(1.0, abs(f[tau_b]))
            if abs(f[tau_a] - f[tau_b]) <= 1e-9 * scale if solver != "rma" else TOL * scale:
                return True
    return False


def _increments(p64, tau, metric, gamma):
    """Increments of every class at every pixel (SPEC §4) for the masks of volumes ``tau``."""
    nb, nc, d = p64.shape
    incs = np.zeros((nb, nc, d))
    for b in range(nb):
        sel = np.array([naive.topk_mask(p64[b, c], tau[b, c]) for c in range(nc)])
        count = sel.sum(axis=0)
        for c in range(nc):
            safe = sel[c] & (count == 1)
            m_c = math.fsum(p64[b, c][safe])
            incs[b, c] = naive.increment(
                p64[b, c], m_c, int(safe.sum()), math.fsum(p64[b, c]), metric, gamma
            )
    return incs


def assert_parity(probs, gpu_input, **kw):
    """Run both backends (GPU on ``gpu_input``) and check they agree (see module doc)."""
    mode = kw.get("output_mode", "multiclass")
    metric = kw.get("metric", "dice")
    gamma = kw.get("smooth", 0.0)
    solver = kw.get("solver", "rma")
    eps = kw.get("eps", 1e-4)
    ref, ref_info = predict(probs, return_info=True, **kw)
    got, info = predict(gpu_input, return_info=True, **kw)
    got = host(got)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    np.testing.assert_array_equal(info.pruned, ref_info.pruned)
    np.testing.assert_allclose(info.score, ref_info.score, rtol=TOL, atol=TOL)
    p64 = probs.astype(np.float64).reshape(*probs.shape[:2], -1)
    nb, nc = probs.shape[:2]
    tied = np.zeros(nb, dtype=bool)
    for b in range(nb):
        for c in range(nc):
            if info.tau[b, c] != ref_info.tau[b, c]:
                assert _tau_differs_ok(
                    p64[b, c], info.tau[b, c], ref_info.tau[b, c], metric, gamma, solver, eps
                ), (b, c, info.tau[b, c], ref_info.tau[b, c])
                tied[b] = True
            else:
                np.testing.assert_array_equal(info.threshold[b, c], ref_info.threshold[b, c])
    if mode == "multilabel":
        for b in range(nb):
            for c in range(nc):
                mask = got[b, c].ravel()
                np.testing.assert_array_equal(mask, naive.topk_mask(p64[b, c], info.tau[b, c]))
        return got
    policy = kw.get("unassigned_policy", "max_score")
    if solver != "rma":
        incs = _increments(p64, ref_info.tau, metric, gamma)
    else:
        _, _, incs = naive.rma_predict(
            probs.astype(np.float64),
            metric,
            gamma,
            "multiclass",
            kw.get("pruning_prob", 0.5),
            unassigned_policy=policy,
            void_index=kw.get("void_index", 255),
        )
    for b in range(nb):
        if tied[b]:
            continue  # a class volume differs within a numerical tie: checked above
        lab, want = got[b].ravel(), ref[b].ravel()
        inc = incs[b].reshape(nc, -1)
        for j in np.flatnonzero(lab != want):
            assert want[j] < nc and lab[j] < nc, (b, j, lab[j], want[j])
            a, o = inc[lab[j], j], inc[want[j], j]
            assert abs(a - o) <= TOL * max(1.0, abs(o)), (b, j, lab[j], want[j], a, o)
    return got
