"""asv ``timeraw_`` benchmarks: import and first call with numba's disk cache cold or warm.

Every kernel is compiled with ``cache=True``, so what a user waits for on the first
call of a session depends on whether compiled machine code is already on disk:

- ``cold``: ``NUMBA_CACHE_DIR`` points at a fresh empty directory for every sample, so
  the first call compiles every kernel it needs (a fresh install, or a changed source);
- ``warm``: ``NUMBA_CACHE_DIR`` points at a directory that ``setup`` populated by running
  the same code once, so the first call loads cached machine code.

Each sample runs in a new interpreter (asv's ``timeraw_``): the timed statement imports
NumPy and rankseg and solves one 8 x 8 map with two classes.  ``setup`` of the child
(not timed) only sets the environment variables, before numba is imported.

``kernels``: ``aot`` is what an install that built ``rankseg._kernels_aot`` (the
kernels compiled at install time, docs/performance.rst) gets; ``jit`` bypasses that
module (``RANKSEG_AOT=0``), so numba compiles or loads every kernel.
"""

import os
import shutil
import tempfile

from . import run_in_fresh_interpreter

#: keyword arguments of the first call, by benchmark parameter
FIRST_CALLS = {
    "rma": 'metric="dice"',  # the defaults: multiclass Dice, solver "rma"
    "exact": 'metric="dice", solver="exact"',
}

_STMT = """
import numpy as np
import rankseg
p = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(1, 1, 8, 8)
rankseg.predict(np.concatenate([p, 1 - p], axis=1), {kwargs})
"""

_COLD_SETUP = """
import os
import tempfile
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="cold-", dir={root!r})
os.environ["RANKSEG_AOT"] = {aot!r}
"""

_WARM_SETUP = """
import os
os.environ["NUMBA_CACHE_DIR"] = {warm!r}
os.environ["RANKSEG_AOT"] = {aot!r}
"""


class FirstCall:
    """Import + first ``predict`` in a fresh interpreter, numba cache cold or warm."""

    params = [["cold", "warm"], list(FIRST_CALLS), ["aot", "jit"]]
    param_names = ["cache", "solver", "kernels"]
    number = 1
    # every sample is a whole process; no warm-up sample (a cold one takes 10-40 s)
    warmup_time = 0
    repeat = (1, 5, 60.0)
    timeout = 600

    def setup(self, cache, solver, kernels):
        self.root = tempfile.mkdtemp(prefix="rankseg-numba-cache-")
        self.warm_dir = os.path.join(self.root, "warm")
        if cache == "warm":
            os.mkdir(self.warm_dir)
            run_in_fresh_interpreter(*self.timeraw_import_and_first_call(cache, solver, kernels))

    def teardown(self, cache, solver, kernels):
        shutil.rmtree(self.root, ignore_errors=True)

    def timeraw_import_and_first_call(self, cache, solver, kernels):
        stmt = _STMT.format(kwargs=FIRST_CALLS[solver])
        aot = "1" if kernels == "aot" else "0"
        if cache == "cold":
            return stmt, _COLD_SETUP.format(root=self.root, aot=aot)
        return stmt, _WARM_SETUP.format(warm=self.warm_dir, aot=aot)
