"""asv benchmarks: every solver and output mode on the three workloads.

The grid (workloads voc2d, ct3d, tumor3d; ``time_``, ``peakmem_`` and a ``track_``
ratio for each):

- ``RMA``: metric dice/iou x output mode multiclass/multilabel, ratio to ``np.argmax``
  and to one read of the input (``p.max()``);
- ``Solver``: exact (dice, iou), ba, trna, ba+trna x both output modes, ratio to our
  ``rma`` with the same metric and output mode;
- ``Accuracy``: the ``acc`` solvers ``argmax`` (multiclass) and ``tr`` (multilabel),
  ratio to ``np.argmax``;
- ``Argmax``: ``np.argmax(probs, axis=1)``, the in-run yardstick.

tumor3d has a single class, so its multiclass combinations are skipped (``setup``
raises NotImplementedError, which asv records as skipped).  Read the figures as ratios
to ``Argmax.time_argmax`` of the same run (or from the ``track_`` benchmarks), never as
absolute times from a shared machine.
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


def _skip_single_class_multiclass(probs, output_mode):
    if output_mode == "multiclass" and probs.shape[1] < 2:
        # asv records a NotImplementedError from setup as "skipped".
        raise NotImplementedError("multiclass output needs C >= 2 (tumor3d has C = 1)")


def _ratio_to_argmax(probs, kwargs):
    """Median time of ``predict(probs, **kwargs)`` over that of ``np.argmax``, interleaved."""
    times = interleaved_times(
        {
            "argmax": lambda: np.argmax(probs, axis=1),
            "predict": lambda: rankseg.predict(probs, **kwargs),
        },
        repeat=5,
    )
    return statistics.median(times["predict"]) / statistics.median(times["argmax"])


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
        _skip_single_class_multiclass(self.probs, output_mode)
        self.kwargs = {"metric": metric, "output_mode": output_mode, "solver": "rma"}
        rankseg.predict(warmup_input(self.probs), **self.kwargs)
        reset_peak_rss()


class RMA(_RMASetup):
    """``rankseg.predict(..., solver="rma")`` for Dice/IoU and both output modes."""

    def time_rma(self, workload, metric, output_mode):
        rankseg.predict(self.probs, **self.kwargs)

    def track_ratio_to_argmax(self, workload, metric, output_mode):
        """Median time of ``predict`` over median time of argmax, interleaved."""
        return _ratio_to_argmax(self.probs, self.kwargs)

    track_ratio_to_argmax.unit = "x argmax"

    def track_ratio_to_read(self, workload, metric, output_mode):
        """Median time of ``predict`` over that of one read (``p.max()``), interleaved.

        The memory-limit yardstick of ``benchmarks/limit.py`` (docs/performance.rst,
        "Near the memory limit"): RMA's floor is about two reads and one write.  As
        there, the rounds' orders are balanced (here: they alternate), so neither
        always follows the other.
        """
        times = interleaved_times(
            {
                "read": self.probs.max,
                "predict": lambda: rankseg.predict(self.probs, **self.kwargs),
            },
            repeat=5,
            balanced=True,
        )
        return statistics.median(times["predict"]) / statistics.median(times["read"])

    track_ratio_to_read.unit = "x read"


class RMAMemory(_RMASetup):
    """Peak RSS after ``setup``: resident baseline (interpreter, input) plus the call."""

    measures_memory = True

    def peakmem_rma(self, workload, metric, output_mode):
        rankseg.predict(self.probs, **self.kwargs)


#: the solvers of issue 3, as "solver" (Dice) or "solver-metric"
SOLVER_CONFIGS = ["exact-dice", "exact-iou", "ba", "trna", "ba+trna"]


def _solver_kwargs(config, output_mode):
    solver, _, metric = config.partition("-")
    return {"metric": metric or "dice", "solver": solver, "output_mode": output_mode}


class _SolverSetup(_WorkloadSetup):
    """Workload plus compilation of the solver (and of RMA, the yardstick of its ratio)."""

    params = [WORKLOAD_NAMES, SOLVER_CONFIGS, OUTPUT_MODES]
    param_names = ["workload", "solver", "output_mode"]

    def setup(self, workload, config, output_mode):
        super().setup(workload)
        _skip_single_class_multiclass(self.probs, output_mode)
        self.kwargs = _solver_kwargs(config, output_mode)
        self.rma_kwargs = dict(self.kwargs, solver="rma")
        rankseg.predict(warmup_input(self.probs), **self.kwargs)
        rankseg.predict(warmup_input(self.probs), **self.rma_kwargs)
        reset_peak_rss()


class Solver(_SolverSetup):
    """``exact``, ``ba``, ``trna``, ``ba+trna``: time, and ratio to our own ``rma``."""

    def time_solver(self, workload, config, output_mode):
        rankseg.predict(self.probs, **self.kwargs)

    def track_ratio_to_rma(self, workload, config, output_mode):
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

    def peakmem_solver(self, workload, config, output_mode):
        rankseg.predict(self.probs, **self.kwargs)


#: the solvers of metric "acc" and the one output mode each gives
ACC_SOLVERS = {"argmax": "multiclass", "tr": "multilabel"}


class _AccuracySetup(_WorkloadSetup):
    """Workload plus compilation of the accuracy rule (``p > 0.5`` or argmax)."""

    params = [WORKLOAD_NAMES, list(ACC_SOLVERS)]
    param_names = ["workload", "solver"]

    def setup(self, workload, solver):
        super().setup(workload)
        output_mode = ACC_SOLVERS[solver]
        _skip_single_class_multiclass(self.probs, output_mode)
        self.kwargs = {"metric": "acc", "solver": solver, "output_mode": output_mode}
        rankseg.predict(warmup_input(self.probs), **self.kwargs)
        reset_peak_rss()


class Accuracy(_AccuracySetup):
    """``metric="acc"``: our ``argmax`` and ``tr`` kernels against ``np.argmax``."""

    def time_acc(self, workload, solver):
        rankseg.predict(self.probs, **self.kwargs)

    def track_ratio_to_argmax(self, workload, solver):
        """Median time of ``predict`` over median time of ``np.argmax``, interleaved."""
        return _ratio_to_argmax(self.probs, self.kwargs)

    track_ratio_to_argmax.unit = "x argmax"


class AccuracyMemory(_AccuracySetup):
    """Peak RSS of one call of the accuracy rule."""

    measures_memory = True

    def peakmem_acc(self, workload, solver):
        rankseg.predict(self.probs, **self.kwargs)


def timeraw_import_and_first_call():
    """Fresh interpreter: import rankseg and solve one small map.

    Numba kernels are cached on disk (``cache=True``) in the default place (next to
    the installed sources), so apart from the very first sample this measures import
    plus loading the cached machine code.  ``bench_first_call.FirstCall`` measures the
    cold and the warm cache explicitly.
    """
    return """
    import numpy as np
    import rankseg
    p = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(1, 1, 8, 8)
    rankseg.predict(np.concatenate([p, 1 - p], axis=1))
    """


timeraw_import_and_first_call.number = 1
timeraw_import_and_first_call.timeout = 300
