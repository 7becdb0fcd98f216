"""asv benchmarks: time per call against the volume size ``d`` (1e4 to 1e8 voxels).

Maps of :func:`benchmarks.make_scaling_probs`: ``(1, 2, *grid)`` float32 softmax with
the same objects and the same fraction of uncertain voxels at every size, so a solver
that is linear in ``d`` shows times growing tenfold per step of ``d``.  Multiclass Dice
(the drop-in replacement of argmax); ``np.argmax(probs, axis=1)`` is timed alongside
as the yardstick.  ``benchmarks/scaling.py`` measures the same in one interleaved run
and draws the figure of docs/performance.rst.

The 1e8 maps take 800 MB (plus the same again for an int64 label map), about 3 s to
generate and a few seconds per call: budget minutes, not seconds, for this class.
"""

import numpy as np

import rankseg

from . import SCALING_SIZES, load_scaling_probs, warmup_input

#: the solvers timed against the volume size (Dice, multiclass output)
SCALING_SOLVERS = ["rma", "exact"]


class Scaling:
    """``np.argmax``, ``rma`` and ``exact`` against the number of voxels ``d``."""

    params = [SCALING_SIZES]
    param_names = ["d"]
    timeout = 600
    # few, long samples at 1e8; asv's defaults would keep sampling for 20 s
    repeat = (1, 5, 30.0)

    def setup(self, d):
        self.probs = load_scaling_probs(d)  # cached: asv re-runs setup between samples
        tiny = warmup_input(self.probs)
        for solver in SCALING_SOLVERS:
            rankseg.predict(tiny, metric="dice", output_mode="multiclass", solver=solver)

    def time_argmax(self, d):
        np.argmax(self.probs, axis=1)

    def time_rma(self, d):
        rankseg.predict(self.probs, metric="dice", output_mode="multiclass", solver="rma")

    def time_exact(self, d):
        rankseg.predict(self.probs, metric="dice", output_mode="multiclass", solver="exact")
