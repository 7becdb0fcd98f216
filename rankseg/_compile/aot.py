"""Kernels compiled ahead of time: the first call without numba's compile.

A build asked for with ``RANKSEG_AOT=1`` (``setup.py``, :mod:`rankseg._compile.build`)
makes the extension module ``rankseg._kernels_aot`` with numba's ``pycc`` from the
same kernel source, for the argument types the in-memory NumPy path passes
(float16/32/64 input, the usual label dtypes), for a portable baseline of the
platform's CPUs (x86-64-v2 on x86-64).  The module needs no numba at run time.  At
run time :func:`find` looks a kernel and the numba types of its arguments up in that
module: a compiled match runs at once; anything else (another dtype, a layout, the
chunked path) is compiled by numba as before, into its cache.  Both run the same
source through LLVM without fast-math, so their results are identical
(tests/test_aot.py).

The module is not used when ``RANKSEG_AOT=0`` is set, under ``NUMBA_DISABLE_JIT``
or ``NUMBA_BOUNDSCHECK`` (its code has no bounds checks), when it was not built (the
default source install), when it was built from other kernel sources (an editable
install edited since), or for CPU features this machine lacks.  The last two say so
once, on stderr, at the first call (:func:`table`); the numba and llvmlite of the
build need not be the ones installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from rankseg._compile.jit import KERNELS, imported_numba

__all__ = [
    "build_failure",
    "call",
    "info",
    "ready",
    "unusable",
    "cpu_features_ok",
    "enabled",
    "find",
    "signature_key",
    "source_digest",
    "table",
]

#: The extension's import name (built by setup.py)
MODULE = "rankseg._kernels_aot"

_table: dict[tuple[str, str, str], Callable] | None = None
_lock = threading.Lock()
_forced_off = False


def _after_fork_in_child() -> None:
    # a lock another thread held at the fork (loading the module) stays held in the
    # child, which has only the forking thread; the load is repeated if it was cut off
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: While not None, :func:`find` appends ``(module, qualname, argument types,
#: signature_key)`` of every lookup: the build's discovery run
#: (:mod:`rankseg._compile.build`).
RECORD: list[tuple[str, str, tuple, str | None]] | None = None


def signature_key(args: Sequence[Any]) -> str | None:
    """Key the argument types of a kernel call as finely as numba's typing does.

    A cheap stand-in for ``numba.typeof`` (which costs ~20 µs per array): an array
    is keyed by dtype, dimensions, layout (``C``/``F``/``A``, numba's rule), whether
    it is writeable and aligned; a NumPy scalar by its dtype; a Python ``bool``,
    ``float`` or 64-bit ``int`` by its type; a tuple by its items.

    Parameters
    ----------
    args : sequence
        The arguments of one kernel call.

    Returns
    -------
    str or None
        None for an argument of another kind (the call goes to numba).
    """
    parts = []
    for a in args:
        key = _arg_key(a)
        if key is None:
            return None
        parts.append(key)
    return ";".join(parts)


def _arg_key(a: Any) -> str | None:
    if isinstance(a, np.ndarray):
        flags = a.flags
        layout = "C" if flags.c_contiguous else "F" if flags.f_contiguous else "A"
        # a subclass (np.memmap) is typed as a plain array by numba too
        return f"{a.dtype.str}:{a.ndim}:{layout}:{int(flags.writeable)}{int(flags.aligned)}"
    if isinstance(a, bool):
        return "bool"
    if isinstance(a, int):
        return "int" if -(1 << 63) <= a < (1 << 63) else None
    if isinstance(a, float):
        return "float"
    if isinstance(a, np.generic):
        return a.dtype.str
    if isinstance(a, tuple):
        inner = signature_key(a)
        return None if inner is None else f"({inner})"
    return None


def cpu_features_ok(built: str, here: str) -> bool:
    """Whether a machine with LLVM features ``here`` can run code built for ``built``.

    Parameters
    ----------
    built, here : str
        LLVM feature strings (``"+avx2,-avx512f,..."``): of the build and of this
        machine.

    Returns
    -------
    bool
        True when every feature enabled at the build is enabled here.
    """
    enabled_here = {f[1:] for f in here.split(",") if f.startswith("+")}
    return all(f[1:] in enabled_here for f in built.split(",") if f.startswith("+"))


def source_digest() -> str:
    """Hash the sources compiled into the kernels, as installed (SHA-256).

    The files are ``rankseg/kernels/*.py``, ``rankseg/_config.py``,
    ``rankseg/_policies.py`` (the codes the kernels read) and ``rankseg/_compile/jit.py``
    (the JIT options).  The
    build stores it; a module built from other sources (an editable install whose
    kernels were edited since) is not used.

    Returns
    -------
    str
        The hex digest.
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    kernels = os.path.join(package, "kernels")
    files = sorted(os.path.join(kernels, f) for f in os.listdir(kernels) if f.endswith(".py"))
    files += [
        os.path.join(package, f)
        for f in ("_config.py", "_policies.py", os.path.join("_compile", "jit.py"))
    ]
    digest = hashlib.sha256()
    for path in files:
        with open(path, "rb") as fh:
            name = os.path.relpath(path, package).replace(os.sep, "/")
            digest.update(name.encode() + b"\0" + fh.read())
    return digest.hexdigest()


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {"numba": version("numba"), "llvmlite": version("llvmlite")}


def host_features() -> str:
    import llvmlite.binding as llvm

    try:
        return llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # LLVM cannot tell on this platform
        return ""


def _numba_setting(name: str) -> bool:
    """Read numba's ``DISABLE_JIT``/``BOUNDSCHECK`` without importing numba."""
    numba = imported_numba()
    if numba is not None:
        return bool(getattr(numba.config, name))
    try:
        return bool(int(os.environ.get(f"NUMBA_{name}", "0") or 0))
    except ValueError:
        return False


def _load() -> dict[tuple[str, str, str], Callable]:
    if (
        os.environ.get("RANKSEG_AOT", "1") == "0"
        or _numba_setting("DISABLE_JIT")
        or _numba_setting("BOUNDSCHECK")
    ):
        return {}
    try:
        import importlib

        mod = importlib.import_module(MODULE)
    except ImportError:  # not built: the default source install, or a failed build
        failed = build_failure()
        if failed is not None:
            import sys

            print(
                f"rankseg: this install asked for compiled kernels (RANKSEG_AOT=1) but "
                f"{failed}; numba compiles the kernels at their first use instead",
                file=sys.stderr,
            )
        return {}
    index = json.loads(mod.index())
    reason = unusable(index)
    if reason is not None:
        import sys

        print(
            f"rankseg: the compiled kernels of this install are not used ({reason}); "
            "numba compiles the kernels at their first use instead",
            file=sys.stderr,
        )
        return {}
    return {(e["module"], e["name"], e["key"]): getattr(mod, e["symbol"]) for e in index["exports"]}


def build_failure(package: str | None = None) -> str | None:
    """Return why the ahead-of-time build asked for at install failed, or None.

    ``setup.py`` writes ``rankseg/_kernels_aot.failed`` when ``RANKSEG_AOT=1``
    asked for the module and its build failed (pip hides the build's own output).

    Parameters
    ----------
    package : str, optional
        The folder of the ``rankseg`` package (default: the installed one).

    Returns
    -------
    str or None
        The first line of that file.
    """
    if package is None:
        package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        with open(os.path.join(package, "_kernels_aot.failed"), encoding="utf-8") as fh:
            return fh.readline().strip() or "its build failed"
    except OSError:
        return None


def unusable(index: dict[str, Any]) -> str | None:
    """Say why a compiled module's ``index()`` rules it out here, or None when it fits.

    Parameters
    ----------
    index : dict
        The module's index (:mod:`rankseg._compile.build`).

    Returns
    -------
    str or None
        ``"built from other kernel sources"`` or ``"built for CPU features this
        machine lacks: ..."``; None when the module can be used.
    """
    if index.get("source") != source_digest():
        return "built from other kernel sources"
    here = host_features()
    if not cpu_features_ok(index["features"], here):
        enabled_here = {f[1:] for f in here.split(",") if f.startswith("+")}
        wanted = [f[1:] for f in index["features"].split(",") if f.startswith("+")]
        missing = [f for f in wanted if f not in enabled_here]
        return f"built for CPU features this machine lacks: {', '.join(missing)}"
    return None


def table() -> dict[tuple[str, str, str], Callable]:
    """Map ``(module, qualname, signature_key)`` to the compiled kernel.

    Returns
    -------
    dict
        Empty when the module is not used (see the module docstring).
    """
    global _table
    if _forced_off:
        return {}
    if _table is None:
        with _lock:
            if _table is None:
                _table = _load()
    return _table


def info() -> dict[str, Any]:
    """Describe the compiled kernels of this install (``rankseg --version``).

    Returns
    -------
    dict
        ``built`` (the module exists), ``used`` (calls go to it), ``reason`` (why
        not, else None), and for a built module ``cpu`` (its target), ``versions``
        (the numba and llvmlite it was built with) and ``exports`` (how many kernel
        signatures it holds).
    """
    import importlib

    try:
        mod = importlib.import_module(MODULE)
    except ImportError:
        failed = build_failure()
        reason: str | None = (
            f"the build asked for (RANKSEG_AOT=1) failed: {failed}"
            if failed is not None
            else "not built (a source install; RANKSEG_AOT=1 at install builds it)"
        )
        return {"built": False, "used": False, "reason": reason}
    index = json.loads(mod.index())
    reason = unusable(index)
    if reason is None and os.environ.get("RANKSEG_AOT", "1") == "0":
        reason = "RANKSEG_AOT=0"
    if reason is None and (_numba_setting("DISABLE_JIT") or _numba_setting("BOUNDSCHECK")):
        reason = "NUMBA_DISABLE_JIT or NUMBA_BOUNDSCHECK is set"
    return {
        "built": True,
        "used": reason is None,
        "reason": reason,
        "cpu": index.get("cpu", "host"),
        "versions": index.get("versions", {}),
        "exports": len(index["exports"]),
    }


def find(kernel: Callable, args: Sequence[Any]) -> Callable:
    """Return the compiled version of ``kernel`` for ``args``, else ``kernel`` itself.

    Parameters
    ----------
    kernel : numba dispatcher
        A kernel built by :func:`rankseg._compile.jit.jit` (anything else is
        returned as it is, and not recorded).
    args : sequence
        The arguments it is about to be called with.

    Returns
    -------
    callable
        A function of the extension module, or ``kernel``.
    """
    py = getattr(kernel, "py_func", kernel)
    if RECORD is not None and (py.__module__, py.__qualname__) in KERNELS:
        # a kernel's call (a Python function handed to run_tasks is none: its
        # kernels record their own calls)
        import numba

        types = tuple(numba.typeof(a) for a in args)
        RECORD.append((py.__module__, py.__qualname__, types, signature_key(args)))
    compiled = table()
    if not compiled:
        return kernel
    key = signature_key(args)
    if key is None:
        return kernel
    return compiled.get((py.__module__, py.__qualname__, key), kernel)


#: ready() per (module, qualname, signature key): True, or the numba signature that
#: was neither compiled nor in the disk cache when first asked (then only this
#: process's compiled overloads are looked at again)
_ready: dict[tuple[str, str, str], Any] = {}


def ready(kernel: Callable, args: Sequence[Any]) -> bool:
    """Whether ``kernel(*args)`` runs without compiling anything.

    True when the kernels compiled ahead of time answer the call (:func:`find`),
    under ``NUMBA_DISABLE_JIT`` (plain Python), or when numba has machine code for
    the argument types: compiled in this process or in its disk cache
    (:func:`rankseg._compile.numba_internals.has_machine_code`, asked once per
    signature; after a no, only what this process compiles since is looked at).

    Parameters
    ----------
    kernel : numba dispatcher
        A kernel built by :func:`rankseg._compile.jit.jit`.
    args : sequence
        The arguments it would be called with.

    Returns
    -------
    bool
    """
    if find(kernel, args) is not kernel or _numba_setting("DISABLE_JIT"):
        return True
    key = signature_key(args)
    if key is None:
        return False
    py = getattr(kernel, "py_func", kernel)
    memo = (py.__module__, py.__qualname__, key)
    known = _ready.get(memo)
    if known is True:
        return True
    dispatcher: Any = getattr(kernel, "dispatcher", kernel)  # a LazyKernel: its dispatcher
    if known is not None:
        found = known in dispatcher.overloads
    else:
        from rankseg._compile.numba_internals import has_machine_code, numba_signature

        known = numba_signature(tuple(args))
        found = has_machine_code(dispatcher, known)
    _ready[memo] = True if found else known
    return found


def call(kernel: Callable, *args: Any) -> Any:
    """Call ``kernel(*args)`` through :func:`find`.

    Parameters
    ----------
    kernel : numba dispatcher
        A kernel built by :func:`rankseg._compile.jit.jit`.
    *args
        Its arguments.

    Returns
    -------
    object
        What the kernel returns.
    """
    return find(kernel, args)(*args)


@contextmanager
def enabled(flag: bool) -> Iterator[None]:
    """Use (True) or bypass (False) the compiled kernels in the body, then restore.

    Process-wide, not thread-local: for tests and benchmarks that compare the two.

    Parameters
    ----------
    flag : bool
        False makes every :func:`find` return the numba dispatcher.
    """
    global _forced_off
    previous = _forced_off
    _forced_off = not flag
    try:
        yield
    finally:
        _forced_off = previous
