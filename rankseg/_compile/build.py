"""Build ``rankseg._kernels_aot``: the kernels of ``rankseg.predict``, compiled ahead of time.

Run by ``setup.py`` when the install or wheel build asks for it with ``RANKSEG_AOT=1``
(``python -m rankseg._compile.build --output FILE [--cpu portable|host|NAME]``); see
:mod:`rankseg._compile.aot` for how the module is used.

1. *Discovery*: a child interpreter with ``NUMBA_DISABLE_JIT=1`` (kernels run as
   plain Python, nothing compiles) calls :func:`rankseg.predict` on small inputs over
   :data:`DTYPES` x metrics x solvers x modes x smoothing x label dtypes, with ties,
   pruned rows and read-only input, and records the numba types of every kernel
   call the kernels' callers make (:data:`rankseg._compile.aot.RECORD`).
2. *Build*: numba's ``pycc`` compiles those kernels for those types into one
   extension module, for a portable baseline CPU of the platform (x86-64-v2 on
   x86-64; ``--cpu host`` targets this machine's CPU and features, like numba's JIT),
   with wrappers that release the GIL (the kernels are ``nogil``, and
   :func:`rankseg.cpu.tasks.run_tasks` runs them on several threads).  The
   module's ``index()`` lists the exports, the numba and llvmlite versions of the
   build (for ``rankseg --version``; the module does not need them at run time), the
   digest of the kernel sources, the target CPU and the features it requires.

``pycc`` is pending deprecation in numba; if it goes, or the build fails (no C
compiler), ``setup.py`` says so in one line and installs without the module
(``RANKSEG_AOT=require`` makes that an error); every kernel is then compiled by numba
at its first use.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import subprocess
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from rankseg._policies import FLOAT_DTYPE_NAMES

#: input dtypes compiled ahead of time (float16 reaches the kernels as uint16 bits)
DTYPES = FLOAT_DTYPE_NAMES
#: label dtypes of multiclass output compiled ahead of time (int64 is the default)
LABEL_DTYPES = ("int64", "int32", "uint8")

_log = logging.getLogger(__name__)


def _discovery_calls() -> None:
    """Make the calls whose kernel signatures are compiled (under NUMBA_DISABLE_JIT)."""
    import rankseg
    from rankseg.cpu import driver

    for serial in ("always", "never"):
        # small RMA calls run as one compiled call (rankseg.kernels.rma_serial); the
        # second round compiles the launchers' kernels, which larger calls run
        driver.SERIAL_CALL = serial
        try:
            _discovery_round(rankseg)
        finally:
            driver.SERIAL_CALL = "ready"
    # a multiclass RMA call of fewer samples than threads forms its cuts by ranges
    # of rows (rankseg._threads.cut_threads): the inputs here are one thread's size
    policies = (driver.serial_threads, driver.cut_threads, driver.SERIAL_CALL)
    driver.serial_threads = lambda size, units, nthreads: 0
    driver.cut_threads = lambda rows, nthreads: 2
    driver.SERIAL_CALL = "always"
    try:
        _discovery_round(rankseg)
    finally:
        driver.serial_threads, driver.cut_threads, driver.SERIAL_CALL = policies


def _discovery_round(rankseg) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    solvers = {"dice": ["rma", "exact", "ba", "trna", "ba+trna"], "iou": ["rma", "exact"]}
    for dtype in DTYPES:
        for nc in (2, 3):
            soft = rng.dirichlet(np.ones(nc), size=(1, 6, 6)).transpose(0, 3, 1, 2)
            tied = np.full((1, nc, 6, 6), 1.0 / nc)  # every pixel tied
            faint = np.full((1, nc, 6, 6), 0.2)  # every row pruned (empty scores)
            for base in (soft, tied, faint):
                x = np.ascontiguousarray(base.astype(dtype))
                frozen = x.copy()
                frozen.flags.writeable = False  # np.load(mmap_mode="r"), xarray views
                for probs in (x, frozen):
                    _predict_grid(rankseg, probs, solvers)


def _predict_grid(rankseg, probs, solvers) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tied/faint inputs do not sum to 1
        rankseg.predict(probs, metric="acc")
        rankseg.predict(probs, metric="acc", output_mode="multilabel")
        for metric, names in solvers.items():
            for solver in names:
                for smooth in (0.0, 1.0):
                    kw = dict(metric=metric, solver=solver, smooth=smooth)
                    rankseg.predict(probs, output_mode="multilabel", **kw)
                    for label in LABEL_DTYPES:
                        rankseg.predict(probs, dtype=label, **kw)
                        rankseg.predict(probs, dtype=label, unassigned_policy="void", **kw)


def discover() -> list[tuple[str, str, tuple, str]]:
    """Record the kernel calls of :func:`_discovery_calls` in a child interpreter.

    Returns
    -------
    list of (module, qualname, argument types, signature key)
        Unique, in first-call order.

    Raises
    ------
    RuntimeError
        When :func:`rankseg._compile.aot.signature_key` cannot key a call, or gives
        two numba signatures of one kernel the same key.
    """
    env = dict(os.environ, NUMBA_DISABLE_JIT="1", RANKSEG_AOT="0")
    code = (
        "import pickle, sys\n"
        "from rankseg._compile import aot as _aot\n"
        "_aot.RECORD = []\n"
        "from rankseg._compile.build import _discovery_calls\n"
        "_discovery_calls()\n"
        "sys.stdout.buffer.write(pickle.dumps(_aot.RECORD))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, check=True, capture_output=True
    ).stdout
    seen: dict[tuple[str, str, tuple, str], None] = {}
    for module, name, types, key in pickle.loads(out):
        if key is None:
            raise RuntimeError(f"{module}.{name} is called with an argument type of no key")
        seen.setdefault((module, name, types, key), None)
    keys = {(m, n, k) for m, n, _, k in seen}
    if len(keys) != len(seen):  # a key must never stand for two numba signatures
        raise RuntimeError("signature_key maps two numba signatures of a kernel to one key")
    return list(seen)


def portable_target() -> tuple[str, str]:
    """Return the LLVM CPU name and the features a portable build targets on this platform.

    x86-64: ``x86-64-v2`` (SSE4.2 and POPCNT: every x86-64 CPU since about 2009);
    elsewhere the platform's generic model.  The features are what the module's
    index records, so that a machine lacking them uses numba's JIT instead.

    Returns
    -------
    (str, str)
        The CPU name and an LLVM feature string (``"+sse4.2,..."``).
    """
    import platform

    if platform.machine().lower() in ("x86_64", "amd64"):
        return "x86-64-v2", ",".join(f"+{f}" for f in X86_64_V2)
    return "", ""


#: the features the x86-64-v2 level adds to x86-64 (LLVM names)
X86_64_V2 = ("cx16", "popcnt", "sahf", "sse3", "sse4.1", "sse4.2", "ssse3")


def _forwarder(kernel, nargs: int):
    """Make a function of ``nargs`` arguments that calls the dispatcher ``kernel``.

    pycc compiles an exported function with its own flags, not the dispatcher's
    options (``fastmath``, ``error_model``): exporting this forwarder instead makes
    numba compile ``kernel`` itself as a callee, with the same options as the JIT.
    """
    names = ", ".join(f"a{i}" for i in range(nargs))
    namespace = {"kernel": kernel}
    exec(f"def forward({names}):\n    return kernel({names})\n", namespace)
    return namespace["forward"]


def build(
    output: Path, entries: Sequence[tuple[str, str, tuple, str]], cpu: str = "portable"
) -> None:
    """Compile ``entries`` into the extension module file ``output``.

    Parameters
    ----------
    output : Path
        The extension's file (e.g. ``rankseg/_kernels_aot.cpython-311-x86_64-linux-gnu.so``).
    entries : sequence of (module, qualname, argument types, signature key)
        What :func:`discover` returned.
    cpu : str
        ``"portable"`` (:func:`portable_target`: for wheels), ``"host"`` (this
        machine's CPU and features, like numba's JIT) or an LLVM CPU name.
    """
    import importlib

    import numba

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending-deprecation warning
        from numba.pycc import CC
    from rankseg._compile.numba_internals import patch_pycc

    patch_pycc(cpu)

    from rankseg._compile.jit import KERNELS, go_live

    go_live()  # the dispatchers, which the forwarders call
    from rankseg._compile.aot import MODULE, host_features, source_digest, versions

    for module, *_ in entries:
        importlib.import_module(module)
    cc = CC(MODULE.rsplit(".", 1)[1])
    partial = output.with_name(f".{output.name}.partial")  # renamed when complete
    cc.output_dir = str(output.parent)
    cc.output_file = partial.name
    if cpu == "portable":
        target, features = portable_target()
    elif cpu == "host":
        target, features = "host", host_features()
    else:
        target, features = cpu, ""
    cc.target_cpu = target
    cc.verbose = False
    exports = []
    for k, (module, name, argtypes, key) in enumerate(entries):
        symbol = f"k{k}"
        cc.export(symbol, argtypes)(_forwarder(KERNELS[(module, name)], len(argtypes)))
        exports.append(
            {
                "module": module,
                "name": name,
                "key": key,
                "types": "; ".join(t.name for t in argtypes),
                "symbol": symbol,
            }
        )
    index = json.dumps(
        {
            "versions": versions(),
            "source": source_digest(),
            "features": features,
            "cpu": target or "generic",
            "exports": exports,
        }
    )
    namespace: dict = {}
    exec(f"def index():\n    return {index!r}\n", namespace)  # a constant string
    cc.export("index", numba.types.unicode_type())(namespace["index"])
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        cc.compile()
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Discover and build; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True, help="the extension file")
    parser.add_argument(
        "--cpu",
        default=os.environ.get("RANKSEG_AOT_CPU", "portable"),
        help="portable (default: x86-64-v2 on x86-64, for wheels), host, or an LLVM CPU name",
    )
    args = parser.parse_args(argv)
    if not _log.handlers:  # this summary to stderr; pycc's own logging stays quiet
        _log.addHandler(logging.StreamHandler())
        _log.setLevel(logging.INFO)
    start = time.perf_counter()
    entries = discover()
    found = time.perf_counter()
    build(args.output.resolve(), entries, cpu=args.cpu)
    _log.info(
        "rankseg: compiled %d kernel signatures ahead of time for CPU %s "
        "(discovery %.0f s, build %.0f s)",
        len(entries),
        args.cpu,
        found - start,
        time.perf_counter() - found,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
