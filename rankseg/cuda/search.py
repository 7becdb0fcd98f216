"""Device twin of the solvers' candidate bound (``rankseg/kernels/search.py``).

The GPU runs the passes over the input of the non-RMA solvers (exact, BA, TRNA,
BA+TRNA): the row statistics, this bound (in
:func:`rankseg.cuda.select.row_setup_kernel`), the candidate gather
(:func:`rankseg.cuda.select.band_kernel` with no forced set) and the whole-row
summary (:mod:`rankseg.cuda.exact`).  The candidates are then solved on the host by
the CPU's own functions (see :mod:`rankseg.cuda.driver`).
"""

from __future__ import annotations

from rankseg.cuda._config import device_twin
from rankseg.kernels import search as _cpu

__all__ = ["candidate_bound"]

#: ``θ`` of :func:`rankseg.kernels.search.candidate_bound`, same code
candidate_bound = device_twin(_cpu.candidate_bound)
