"""Shared fixtures, and a Numba disk cache keyed by the package's source.

Numba's ``cache=True`` checks only the file of the function it loads: a cached kernel
in ``kernels/solver_passes.py`` keeps the code it inlined from ``kernels/exact.py`` after
``exact.py`` changes, so a test run after an edit could test the old code.  The
tests therefore cache under ``.numba_cache/<hash of every rankseg/*.py>`` (set
before Numba is imported; an explicit ``NUMBA_CACHE_DIR`` wins), and drop the
caches of other source versions unused for an hour (a concurrent run may still use
one).  The key includes ``NUMBA_BOUNDSCHECK``, which numba's own cache index ignores.
"""

import hashlib
import os
import shutil
import time
from pathlib import Path


def _source_keyed_cache() -> Path:
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for f in sorted((root / "rankseg").rglob("*.py")):
        digest.update(str(f.relative_to(root)).encode())
        digest.update(f.read_bytes())
    # Numba's cache index does not record bounds checking: a kernel compiled without it
    # would be loaded by a NUMBA_BOUNDSCHECK=1 run (.ci/run's bounds-checked step)
    digest.update(f"boundscheck={os.environ.get('NUMBA_BOUNDSCHECK', '')}".encode())
    base = root / ".numba_cache"
    current = base / digest.hexdigest()[:16]
    if base.is_dir():
        for old in base.iterdir():  # an hour unused: no test run of that source is left
            if old != current and time.time() - old.stat().st_mtime > 3600:
                shutil.rmtree(old, ignore_errors=True)
    return current


if "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = str(_source_keyed_cache())

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def serial_call_always(monkeypatch):
    """Small RMA calls take their one compiled call whether or not it is compiled yet.

    By default (``"ready"``) a process takes it only once it needs no compile, which
    would make the path of a test depend on what ran before it; tests/test_rma_serial.py
    checks both paths against each other and the ``"ready"`` rule itself.
    """
    import rankseg.cpu.driver as cpu_driver

    monkeypatch.setattr(cpu_driver, "SERIAL_CALL", "always")


@pytest.fixture
def rng():
    """The one source of randomness of a test: seeded, local, no global state."""
    return np.random.default_rng(20261126)


def pytest_collection_modifyitems(config, items):
    import inspect

    from _integration import module_level_source, needs_integration

    modules: dict[Path, str] = {}
    for item in items:
        path = Path(str(item.fspath))
        if path not in modules:
            modules[path] = module_level_source(path)
        function = getattr(item, "function", None)
        try:
            body = inspect.getsource(function) if function is not None else ""
        except (OSError, TypeError):
            body = ""
        if needs_integration(body, modules[path]):
            item.add_marker(pytest.mark.integration)
