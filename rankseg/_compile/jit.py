"""JIT options, lazy kernels and the first-use notice.

Every ``@njit`` kernel of the package is built through :func:`jit` so that the
options stay consistent (DESIGN.md: ``cache=True`` honouring ``NUMBA_CACHE_DIR``,
``nogil=True``, fastmath off because it breaks NaN checks and tie handling,
``error_model="numpy"`` so divisions do not raise inside kernels).  Kernels are
lazy (:class:`LazyKernel`): numba is imported when the first one is needed, not by
``import rankseg``.  When numba has to compile a kernel (its cache has no machine
code for it yet), one line on stderr says so, once per process
(:func:`first_use_notice`).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

__all__ = [
    "KERNELS",
    "LazyKernel",
    "go_live",
    "first_use_notice",
    "imported_numba",
    "jit",
    "on_live",
    "pjit",
]

#: Every kernel built by :func:`jit`, by ``(module, qualified name)``: a
#: :class:`LazyKernel` until :func:`go_live`, then its numba dispatcher (the Python
#: function itself under ``NUMBA_DISABLE_JIT``).  The ahead-of-time build
#: (:mod:`rankseg._compile.build`) finds kernels here.
KERNELS: dict[tuple[str, str], Callable] = {}

_live = False
_live_lock = threading.RLock()
_hooks: list[Callable[[], None]] = []


class LazyKernel:
    """A kernel whose numba dispatcher is made on its first use (:func:`go_live`).

    ``import rankseg`` does not import numba: a call that the kernels compiled ahead
    of time answer (:mod:`rankseg._compile.aot`) never needs it.  The first use of
    any kernel's dispatcher -- a call, an attribute of the dispatcher, numba typing
    it inside another function -- imports numba, makes every kernel's dispatcher,
    and puts the dispatchers in place of the lazy kernels in the package's modules,
    so that kernels calling kernels are compiled (and inlined) as before.

    Parameters
    ----------
    func : callable
        The kernel's Python function.
    options : dict
        Its ``numba.njit`` options.
    """

    def __init__(self, func: Callable, options: dict[str, Any]) -> None:
        functools.update_wrapper(self, func)
        self.py_func = func
        self._options = options
        self._dispatcher: Callable | None = None

    @property
    def dispatcher(self) -> Callable:
        """The numba dispatcher (made by :func:`go_live` when first asked for)."""
        if self._dispatcher is None:
            go_live()
        if self._dispatcher is None:  # made outside jit(), after go_live
            import numba

            self._dispatcher = numba.njit(**self._options)(self.py_func)
        return self._dispatcher

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.dispatcher(*args, **kwargs)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # like a function (and numba's dispatcher): a method when set on a class;
        # this also makes it a routine for inspect and Sphinx's autodoc
        return self if obj is None else types.MethodType(self, obj)

    def __getattr__(self, name: str) -> Any:
        # only for what the instance lacks: the dispatcher's attributes, including
        # ``_numba_type_``, by which numba types a global that is a kernel
        if name.startswith("__") or name in ("py_func", "_options", "_dispatcher"):
            raise AttributeError(name)
        return getattr(self.dispatcher, name)

    def __repr__(self) -> str:
        return f"<rankseg kernel {self.__module__}.{self.__qualname__}>"

    def __reduce__(self) -> tuple[Callable, tuple[str, str]]:
        return _kernel_named, (self.py_func.__module__, self.py_func.__qualname__)


def _kernel_named(module: str, qualname: str) -> Callable:
    """Look up the kernel ``module.qualname`` (what a pickled :class:`LazyKernel` becomes)."""
    import importlib

    importlib.import_module(module)
    return KERNELS[(module, qualname)]


def on_live(hook: Callable[[], None]) -> None:
    """Run ``hook`` once numba is in use, before any dispatcher is made (now if it is).

    Parameters
    ----------
    hook : callable
        E.g. the registration of a numba ``@overload``.
    """
    with _live_lock:
        if _live:
            hook()
        else:
            _hooks.append(hook)


def go_live() -> None:
    """Import numba and make the dispatchers of every kernel built so far.

    Idempotent and thread-safe.  Runs the :func:`on_live` hooks, makes each
    :class:`LazyKernel`'s dispatcher, and replaces the lazy kernels found in the
    globals of ``rankseg``'s modules by their dispatchers; kernels built after this
    get their dispatcher at once.
    """
    global _live
    with _live_lock:
        if _live:
            return
        import numba

        from rankseg._compile.numba_internals import on_compile

        on_compile(_compile_started)
        for hook in _hooks:
            hook()
        _hooks.clear()
        lazy = [k for k in KERNELS.values() if isinstance(k, LazyKernel)]
        for kernel in lazy:
            kernel._dispatcher = numba.njit(**kernel._options)(kernel.py_func)
            KERNELS[(kernel.py_func.__module__, kernel.py_func.__qualname__)] = kernel._dispatcher
        for name, module in list(sys.modules.items()):
            if module is None or not (name == "rankseg" or name.startswith("rankseg.")):
                continue
            namespace = vars(module)
            for key, value in list(namespace.items()):
                if isinstance(value, LazyKernel):
                    namespace[key] = value.dispatcher
        _live = True


_noticed = False


def first_use_notice() -> str:
    """Return the line printed when numba first compiles a kernel in a process.

    Returns
    -------
    str
        What is compiled, about how long it takes, and where numba caches it.
    """
    numba = imported_numba()
    where = getattr(getattr(numba, "config", None), "CACHE_DIR", "") or ""
    where = where or "beside the package, or in the user cache dir when that is read-only"
    return (
        "rankseg: compiling kernels for first use, about 10 s per solver and input dtype, "
        f"once per environment (numba caches them: {where})"
    )


def _compile_started(dispatcher: Any) -> None:
    """Print :func:`first_use_notice` at the first compile of a rankseg kernel."""
    global _noticed
    py = getattr(dispatcher, "py_func", None)
    if _noticed or py is None or not str(py.__module__).startswith("rankseg."):
        return
    _noticed = True
    if os.environ.get("RANKSEG_QUIET_COMPILE", "0") != "1":
        print(first_use_notice(), file=sys.stderr, flush=True)


def _after_fork_in_child() -> None:
    # a lock another thread held at the fork (making the dispatchers) stays held in the
    # child, which has only the forking thread; go_live is idempotent, so start afresh
    global _live_lock
    _live_lock = threading.RLock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


_BASE: dict[str, Any] = {
    "cache": True,
    "nogil": True,
    "fastmath": False,
    "error_model": "numpy",
}


def jit(func: Callable | None = None, **overrides: Any) -> Callable:
    """Compile ``func`` with the package's serial JIT options.

    Parameters
    ----------
    func : callable, optional
        The function to compile.  When omitted, a decorator is returned.
    **overrides
        Options that replace the defaults (e.g. ``inline="always"``).

    Returns
    -------
    callable
        The kernel (a :class:`LazyKernel` until numba is in use, then the numba
        dispatcher), or a decorator producing one.
    """
    if func is None:
        return lambda f: jit(f, **overrides)
    options = {**_BASE, **overrides}
    with _live_lock:
        if _live:
            import numba

            kernel: Callable = numba.njit(**options)(func)
        else:
            kernel = LazyKernel(func, options)
        KERNELS[(func.__module__, func.__qualname__)] = kernel
    return kernel


def pjit(func: Callable | None = None, **overrides: Any) -> Callable:
    """Compile ``func`` like :func:`jit` with ``parallel=True`` (for ``prange``).

    Parameters
    ----------
    func : callable, optional
        The function to compile.  When omitted, a decorator is returned.
    **overrides
        Options that replace the defaults.

    Returns
    -------
    callable
        The numba dispatcher, or a decorator producing one.
    """
    return jit(func, parallel=True, **overrides)


def imported_numba() -> Any:
    """Return the numba module if it has been imported (fully), else None.

    Never imports it: ``import rankseg`` and the calls the ahead-of-time kernels
    answer run without numba.

    Returns
    -------
    module or None
        ``numba``.
    """
    numba = sys.modules.get("numba")
    if numba is None or not hasattr(numba, "get_num_threads"):  # absent, or mid-import
        return None
    return numba
