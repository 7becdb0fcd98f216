"""``rankseg --version``: what is installed and which kernels a call will run."""

from __future__ import annotations

from importlib import metadata

__all__ = ["version_report"]

#: the distribution name on PyPI (the import name is ``rankseg``)
DISTRIBUTION = "rankseg-numba"


def _installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cuda_line() -> str:
    if _installed("numba-cuda") == "not installed":
        return (
            "CUDA: not available (numba-cuda is not installed: pip install 'rankseg-numba[cuda]')"
        )
    from rankseg import cuda

    try:
        nb_cuda = cuda.load()
    except (ImportError, RuntimeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"CUDA: not available ({first})"
    if cuda.is_simulator():
        return "CUDA: numba's simulator (NUMBA_ENABLE_CUDASIM=1)"
    return f"CUDA: available ({nb_cuda.get_current_device().name.decode(errors='replace')})"


def version_report() -> str:
    """Describe this install: versions, whether compiled kernels are in use, and CUDA.

    Imports neither numba nor CUDA unless numba-cuda is installed (to ask for a GPU).

    Returns
    -------
    str
        Four lines: the package and the import name; numba, llvmlite and numpy;
        the compiled kernels (in use, or why not); CUDA (available, or why not).
    """
    import rankseg
    from rankseg._compile import aot

    info = aot.info()
    if info["used"]:
        built = info["versions"].get("numba", "?")
        kernels = (
            f"compiled kernels: in use ({info['exports']} kernel signatures for CPU "
            f"{info['cpu']}, built with numba {built}); numba compiles the rest at first use"
        )
    else:
        kernels = f"compiled kernels: not used, {info['reason']}; numba compiles each at first use"
    return "\n".join(
        [
            f"{DISTRIBUTION} {rankseg.__version__} (import name rankseg)",
            f"numba {_installed('numba')}, llvmlite {_installed('llvmlite')}, "
            f"numpy {_installed('numpy')}",
            kernels,
            _cuda_line(),
        ]
    )
