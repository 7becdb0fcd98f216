"""asv benchmarks: every solver on the three workloads, against ``np.argmax``.

Read the figures as ratios to ``Argmax.time_argmax`` of the same run (or directly from
``RMA.track_ratio_to_argmax``), never as absolute times from a shared machine.
"""

import statistics

import numpy as np

import rankseg

from . import (
    WORKLOAD_NAMES,
    interleaved_times,
    load_workload,
    reset_peak_rss,
    unmap_freed_memory,
    warmup_input,
)

METRICS = ["dice", "iou"]
OUTPUT_MODES = ["multiclass", "multilabel"]


class _WorkloadSetup:
    """Loads the workload; memory classes set the allocator up for honest peaks first."""

    params = [WORKLOAD_NAMES]
    param_names = ["workload"]
    #: asv runs every benchmark in its own process, so this affects only that process.
    measures_memory = False

    def setup(self, workload):
        if self.measures_memory:
            unmap_freed_memory()
        self.probs = load_workload(workload)
        reset_peak_rss()


class Argmax(_WorkloadSetup):
    """``np.argmax(probs, axis=1)``: the in-run yardstick."""

    def time_argmax(self, workload):
        np.argmax(self.probs, axis=1)


class ArgmaxMemory(_WorkloadSetup):
    """Peak RSS of argmax (it copies the input to move the class axis last)."""

    measures_memory = True

    def peakmem_argmax(self, workload):
        np.argmax(self.probs, axis=1)


class _RMASetup(_WorkloadSetup):
    """Workload plus JIT compilation on a tiny input of the same dtype and rank."""

    params = [WORKLOAD_NAMES, METRICS, OUTPUT_MODES]
    param_names = ["workload", "metric", "output_mode"]

    def setup(self, workload, metric, output_mode):
        super().setup(workload)
        if output_mode == "multiclass" and self.probs.shape[1] < 2:
            # asv records a NotImplementedError from setup as "skipped".
            raise NotImplementedError("multiclass output needs C >= 2 (tumor3d has C = 1)")
        self.kwargs = {"metric": metric, "output_mode": output_mode, "solver": "rma"}
        rankseg.predict(warmup_input(self.probs), **self.kwargs)
        reset_peak_rss()


class RMA(_RMASetup):
    """``rankseg.predict(..., solver="rma")`` for Dice/IoU and both output modes."""

    def time_rma(self, workload, metric, output_mode):
        rankseg.predict(self.probs, **self.kwargs)

    def track_ratio_to_argmax(self, workload, metric, output_mode):
        """Median time of ``predict`` over median time of argmax, interleaved."""
        times = interleaved_times(
            {
                "argmax": lambda: np.argmax(self.probs, axis=1),
                "rma": lambda: rankseg.predict(self.probs, **self.kwargs),
            },
            repeat=5,
        )
        return statistics.median(times["rma"]) / statistics.median(times["argmax"])

    track_ratio_to_argmax.unit = "x argmax"


class RMAMemory(_RMASetup):
    """Peak RSS after ``setup``: resident baseline (interpreter, input) plus the call."""

    measures_memory = True

    def peakmem_rma(self, workload, metric, output_mode):
        rankseg.predict(self.probs, **self.kwargs)


#: the solvers of issue 3, as "solver" or "solver-metric" (multilabel output)
SOLVER_CONFIGS = ["exact-dice", "exact-iou", "ba", "trna", "ba+trna"]


def _solver_kwargs(config):
    solver, _, metric = config.partition("-")
    return {"metric": metric or "dice", "solver": solver, "output_mode": "multilabel"}


class _SolverSetup(_WorkloadSetup):
    """Workload plus compilation of the solver (and of RMA, the yardstick of its ratio)."""

    params = [WORKLOAD_NAMES, SOLVER_CONFIGS]
    param_names = ["workload", "solver"]

    def setup(self, workload, config):
        super().setup(workload)
        self.kwargs = _solver_kwargs(config)
        self.rma_kwargs = dict(self.kwargs, solver="rma")
        rankseg.predict(warmup_input(self.probs), **self.kwargs)
        rankseg.predict(warmup_input(self.probs), **self.rma_kwargs)
        reset_peak_rss()


class Solver(_SolverSetup):
    """``exact``, ``ba``, ``trna``, ``ba+trna``: time, and ratio to our own ``rma``."""

    def time_solver(self, workload, config):
        rankseg.predict(self.probs, **self.kwargs)

    def track_ratio_to_rma(self, workload, config):
        """Median time of the solver over median time of ``rma`` (same metric), interleaved."""
        times = interleaved_times(
            {
                "rma": lambda: rankseg.predict(self.probs, **self.rma_kwargs),
                "solver": lambda: rankseg.predict(self.probs, **self.kwargs),
            },
            repeat=3,
        )
        return statistics.median(times["solver"]) / statistics.median(times["rma"])

    track_ratio_to_rma.unit = "x rma"


class SolverMemory(_SolverSetup):
    """Peak RSS of one call (candidate buffers are bounded by the candidate count)."""

    measures_memory = True

    def peakmem_solver(self, workload, config):
        rankseg.predict(self.probs, **self.kwargs)


def timeraw_import_and_first_call():
    """Fresh interpreter: import rankseg and solve one small map.

    Numba kernels are cached on disk (``cache=True``), so apart from the very first
    sample this measures import plus loading the cached machine code.
    """
    return """
    import numpy as np
    import rankseg
    p = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(1, 1, 8, 8)
    rankseg.predict(np.concatenate([p, 1 - p], axis=1))
    """


timeraw_import_and_first_call.number = 1
timeraw_import_and_first_call.timeout = 300
