"""Check an installed rankseg wheel: compiled kernels in use, first calls within target.

Run by ``noxfile.py`` (session ``wheel``) with the venv's interpreter, in a fresh
virtualenv holding only the wheel and its dependencies.  Every measurement runs in a
fresh interpreter, in an empty folder outside the checkout (so the installed package
is imported), with an empty numba cache.  It prints what it measured and exits 1
when the compiled kernels are not in use, when a first call imports numba or
writes numba cache files (it compiled), or when a first call takes more than
:data:`SLACK` times its target (this machine is shared and noisy: the targets are
checked on their median by the benchmark, ``benchmarks/first_call.py``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

#: issue 27's targets, seconds, import included
TARGETS = {"rma": 1.0, "exact": 1.5}
#: how far over its target a single noisy measurement may be before the check fails
SLACK = 3.0
ROUNDS = 3

CODE = r"""
import json, os, sys, time
t0 = time.perf_counter()
import numpy as np
import rankseg
probs = np.random.default_rng(0).dirichlet(np.ones(4), size=(2, 64, 64)).transpose(0, 3, 1, 2)
probs = np.ascontiguousarray(probs, dtype=np.float32)
rankseg.predict(probs, metric="dice", solver=sys.argv[1])
seconds = time.perf_counter() - t0
from rankseg._compile import aot
print(json.dumps({"seconds": seconds, "numba": "numba" in sys.modules,
                  "used": aot.info()["used"], "file": rankseg.__file__}))
"""


def first_call(solver: str, where: str) -> dict:
    """Time one first call in a fresh interpreter with an empty numba cache."""
    cache = tempfile.mkdtemp(dir=where)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [sys.executable, "-c", CODE, solver],
        cwd=where,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cache_files"] = sum(len(files) for _, _, files in os.walk(cache))
    result["stderr"] = out.stderr.strip()
    return result


def main() -> int:
    """Run the checks; returns the exit status."""
    where = os.environ.get("RANKSEG_CHECK_DIR") or tempfile.mkdtemp()
    version = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "rankseg"), "--version"],
        cwd=where,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    print(version.rstrip())
    failed = []
    for solver, target in TARGETS.items():
        runs = [first_call(solver, where) for _ in range(ROUNDS)]
        median = statistics.median(r["seconds"] for r in runs)
        load = os.getloadavg()[0]
        print(
            f"first {solver} call, import included: median {median:.2f} s of {ROUNDS} "
            f"(target {target} s; load {load:.2f})"
        )
        for r in runs:
            if not r["used"]:
                failed.append(f"{solver}: the compiled kernels are not used ({r['stderr']})")
            if r["numba"] or r["cache_files"]:
                failed.append(f"{solver}: the first call compiled (numba imported or cached)")
            if "site-packages" not in r["file"]:
                failed.append(f"{solver}: imported {r['file']}, not the installed wheel")
        if median > SLACK * target:
            failed.append(f"{solver}: median {median:.2f} s > {SLACK} x target {target} s")
    for line in dict.fromkeys(failed):
        print("FAILED:", line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
