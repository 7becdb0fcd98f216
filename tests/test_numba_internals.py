"""Every numba internal the package uses is listed, and still exists in this numba."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from rankseg._compile import numba_internals

ROOT = Path(__file__).resolve().parents[1] / "rankseg"
#: numba's non-public namespaces: an import from one needs an entry in INTERNALS
PRIVATE = (
    "numba.core",
    "numba.np",
    "numba.pycc",
    "numba.misc",
    "numba.cuda.core",
    "numba.cuda.cudadrv",
)


@pytest.mark.parametrize("name", sorted(numba_internals.INTERNALS))
def test_each_internal_resolves_in_this_numba(name):
    entry = numba_internals.INTERNALS[name]
    if entry.optional and importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed")
    try:
        numba_internals.resolve(name)
    except (ImportError, AttributeError) as exc:  # pragma: no cover - fails loudly
        pytest.fail(
            f"numba changed an internal rankseg uses: {entry.module}.{entry.attribute} "
            f"({exc}); used in {entry.used_in}; without it: {entry.without_it}"
        )


def _private_imports() -> set[tuple[str, str]]:
    found = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                continue
            for mod in mods:
                if mod.startswith(PRIVATE):
                    found.add((str(path.relative_to(ROOT.parent)), mod))
    return found


def test_no_private_numba_import_outside_the_table():
    listed = {f"{e.module}.{e.attribute.split('.')[0]}" for e in numba_internals.INTERNALS.values()}
    listed |= {e.module for e in numba_internals.INTERNALS.values()}
    unlisted = sorted(
        (where, mod)
        for where, mod in _private_imports()
        if mod not in listed and not any(name.startswith(mod + ".") for name in listed)
    )
    assert unlisted == [], f"add these numba internals to numba_internals.INTERNALS: {unlisted}"


def test_the_design_doc_lists_every_internal():
    text = (ROOT.parent / "docs" / "design.rst").read_text(encoding="utf-8")
    for entry in numba_internals.INTERNALS.values():
        assert entry.attribute.split(".")[0] in text, entry


def test_the_first_use_notice_is_printed_once_on_a_compile(tmp_path):
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, rankseg\n"
        "p = np.full((1, 2, 4, 4), 0.5, np.float64)\n"
        "rankseg.predict(p, metric='acc')\n"
        "rankseg.predict(p, metric='dice', solver='rma', output_mode='multilabel')\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), RANKSEG_AOT="0")
    env.pop("RANKSEG_QUIET_COMPILE", None)
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("rankseg: compiling kernels for first use") == 1
    assert str(tmp_path) in first.stderr
    again = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "compiling" not in again.stderr  # loaded from the cache
