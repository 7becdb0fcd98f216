"""Every use of numba's non-public parts, in one table (docs/design.rst, "Compile machinery").

Numba changes its internals between releases without notice.  Each internal the
package relies on is listed in :data:`INTERNALS` with where it is used and what
happens without it; ``tests/test_numba_internals.py`` resolves every entry against
the installed numba (and numba-cuda, when present) and fails loudly, naming the
entry, when one is gone; it also fails when a module of the package imports from
``numba.core``, ``numba.np``, ``numba.pycc``, ``numba.misc`` or numba-cuda's
internals without an entry here.  The functions below are the only callers of the
ahead-of-time build's patches and of numba's event API.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = [
    "INTERNALS",
    "Internal",
    "has_machine_code",
    "numba_signature",
    "on_compile",
    "patch_pycc",
    "resolve",
]


class Internal(NamedTuple):
    """One non-public numba attribute the package uses."""

    module: str
    attribute: str
    used_in: str
    without_it: str
    optional: bool = False  # numba-cuda's: only checked when numba-cuda is installed


#: name -> the internal.  ``attribute`` may be dotted (a class attribute).
INTERNALS: dict[str, Internal] = {
    "pycc.CC": Internal(
        "numba.pycc",
        "CC",
        "rankseg._compile.build",
        "no ahead-of-time build (pycc is pending deprecation); numba compiles at first use",
    ),
    "pycc.Flags": Internal(
        "numba.pycc.compiler",
        "Flags",
        "rankseg._compile.build (patch_pycc: release the GIL, error_model='numpy')",
        "the build fails; the source install is unaffected",
    ),
    "codegen.AOTCPUCodegen._customize_tm_features": Internal(
        "numba.core.codegen",
        "AOTCPUCodegen._customize_tm_features",
        "rankseg._compile.build (patch_pycc, RANKSEG_AOT_CPU=host only)",
        "a host-CPU build fails; the portable build is unaffected",
    ),
    "codegen.CPUCodegen._get_host_cpu_features": Internal(
        "numba.core.codegen",
        "CPUCodegen._get_host_cpu_features",
        "rankseg._compile.build (patch_pycc, RANKSEG_AOT_CPU=host only)",
        "a host-CPU build fails; the portable build is unaffected",
    ),
    "caching.Cache.load_overload": Internal(
        "numba.core.caching",
        "Cache.load_overload",
        "rankseg._compile.aot (ready: whether a small RMA call needs no compile)",
        "small RMA calls take the launchers' path until the one-call kernel is compiled "
        "in the process",
    ),
    "compiler_lock.global_compiler_lock": Internal(
        "numba.core.compiler_lock",
        "global_compiler_lock",
        "rankseg._compile.aot (ready: the cache lookup holds it, as numba's own does)",
        "a cache lookup beside a compile in another thread can break numba's registry",
    ),
    "event.Listener": Internal(
        "numba.core.event",
        "Listener",
        "rankseg._compile.jit (the first-use notice)",
        "no notice is printed when kernels compile",
    ),
    "event.register": Internal(
        "numba.core.event",
        "register",
        "rankseg._compile.jit (the first-use notice)",
        "no notice is printed when kernels compile",
    ),
    "ufunc.parallel._is_initialized": Internal(
        "numba.np.ufunc.parallel",
        "_is_initialized",
        "rankseg._threads (whether the caller started numba's threading layer)",
        "the caller's numba thread count is not honoured",
    ),
    "cuda.config": Internal(
        "numba.cuda.core",
        "config",
        "rankseg.cuda.driver (the low-occupancy warning switch)",
        "falls back to numba.core.config",
        optional=True,
    ),
    "cuda.nvvm": Internal(
        "numba.cuda.cudadrv",
        "nvvm",
        "rankseg.cuda (whether NVVM is available)",
        "assumed available; the first launch then says what is missing",
        optional=True,
    ),
    "core.config": Internal(
        "numba.core",
        "config",
        "rankseg.cuda (ENABLE_CUDASIM), rankseg.cuda.driver (older numba-cuda)",
        "the simulator is not detected",
    ),
}


def resolve(name: str) -> Any:
    """Return the object an entry of :data:`INTERNALS` names.

    Parameters
    ----------
    name : str
        A key of :data:`INTERNALS`.

    Returns
    -------
    object
        The attribute.

    Raises
    ------
    ImportError
        When its module is gone.
    AttributeError
        When the attribute is gone.
    """
    import warnings

    entry = INTERNALS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba.pycc: its pending-deprecation warning
        obj: Any = importlib.import_module(entry.module)
    for part in entry.attribute.split("."):
        obj = getattr(obj, part)
    return obj


def patch_pycc(cpu: str) -> None:
    """Make pycc's wrappers release the GIL; for ``cpu="host"`` use the host's features.

    What numba's JIT does for these kernels (``nogil=True``, ``error_model="numpy"``);
    pycc leaves the GIL held.  A portable build (another ``cpu``) takes the
    features its CPU model implies, pycc's default.

    Parameters
    ----------
    cpu : str
        The build's target CPU (``"host"`` or an LLVM CPU name).
    """
    pycc_compiler: Any = importlib.import_module(INTERNALS["pycc.Flags"].module)
    flags_cls = resolve("pycc.Flags")

    class _NogilFlags(flags_cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.release_gil = True
            self.error_model = "numpy"

    pycc_compiler.Flags = _NogilFlags
    if cpu == "host":
        resolve("codegen.AOTCPUCodegen._customize_tm_features")  # fails loudly when gone
        codegen = importlib.import_module("numba.core.codegen")
        codegen.AOTCPUCodegen._customize_tm_features = resolve(
            "codegen.CPUCodegen._get_host_cpu_features"
        )


def on_compile(callback: Callable[[Any], None]) -> None:
    """Call ``callback(dispatcher)`` whenever numba starts compiling a function.

    Numba's event API: ``numba:compile`` fires on a cache miss only, not when a
    function is loaded from numba's disk cache.

    Parameters
    ----------
    callback : callable
        Called with the dispatcher being compiled (None if numba does not say).
    """
    listener_base = resolve("event.Listener")

    class _Listener(listener_base):  # type: ignore[misc, valid-type]
        def on_start(self, event: Any) -> None:
            callback((event.data or {}).get("dispatcher"))

        def on_end(self, event: Any) -> None:
            pass

    resolve("event.register")("numba:compile", _Listener())


def numba_signature(args: tuple) -> tuple:
    """Return the numba types of ``args``, as a dispatcher keys its compiled overloads."""
    import numba

    return tuple(numba.typeof(a) for a in args)


def has_machine_code(dispatcher: Any, sig: tuple) -> bool:
    """Whether ``dispatcher`` runs the argument types ``sig`` without compiling.

    True when the dispatcher has compiled them in this process, or when numba's
    disk cache holds them (``Cache.load_overload``, what the dispatcher itself
    tries before it compiles; the call loads the entry again).

    Parameters
    ----------
    dispatcher : numba dispatcher
        A ``numba.njit`` function.
    sig : tuple of numba types
        :func:`numba_signature` of the arguments.

    Returns
    -------
    bool
        False as well when the cache cannot be read.
    """
    if sig in dispatcher.overloads:
        return True
    cache = getattr(dispatcher, "_cache", None)
    load = resolve("caching.Cache.load_overload")
    # numba looks its cache up under its global compiler lock (Dispatcher.compile):
    # the lookup refreshes the target's registries, which two threads at once break
    with resolve("compiler_lock.global_compiler_lock"):
        try:
            return cache is not None and load(cache, sig, dispatcher.targetctx) is not None
        except Exception:  # an unreadable or stale cache entry: numba would compile
            return False
