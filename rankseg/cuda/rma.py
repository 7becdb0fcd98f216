"""Device twins of the RMA objective and screening bounds (``rankseg/kernels/rma.py``).

The twins run the CPU functions' own Python code (:func:`device_twin`), so the
formulas, and their floating-point operation order, are shared by both backends.
"""

from __future__ import annotations

from rankseg.cuda._config import device_twin
from rankseg.kernels import rma as _cpu

__all__ = ["rma_bounds", "rma_objective"]

rma_objective = device_twin(_cpu.rma_objective)
_ratio = device_twin(_cpu.ratio)
rma_bounds = device_twin(_cpu.rma_bounds, ratio=_ratio)
