"""The package's layers: imports run one way, from a layer to the layers below it.

Every import of every module of ``rankseg`` is read with :mod:`ast` (function-level
lazy imports included, since they run too) and checked against :data:`LAYERS`; the
picture in docs/design.rst is checked against the same table, so the two cannot drift.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rankseg"

#: bottom first; a module may import its own layer and the layers below it.  An entry
#: names a module or a package (then every module under it).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    # the compile machinery's run-time half: JIT options, lazy kernels, the lookup of
    # the kernels compiled ahead of time, the table of numba internals
    ("compile", ("rankseg._compile",)),
    ("records", ("rankseg._policies", "rankseg._records", "rankseg._config")),
    (
        "checks",
        (
            "rankseg._validation",
            "rankseg._arrays",
            "rankseg._presence",
            "rankseg._textfile",
            "rankseg._threads",
        ),
    ),
    ("kernels", ("rankseg.kernels",)),
    # the CPU backend's host side (driver, launchers, work items on threads): below the
    # GPU driver, which solves some rows on the host with the same launchers
    ("cpu", ("rankseg.cpu",)),
    ("cuda", ("rankseg.cuda",)),
    (
        "api",
        (
            "rankseg",
            "rankseg._api",
            "rankseg.metrics",
            "rankseg.datasets",
            "rankseg.calibration",
            "rankseg.tuning",
            "rankseg.functional",
            "rankseg.distribution",
        ),
    ),
    (
        "adapters",
        (
            "rankseg.xarray",
            "rankseg.dask",
            "rankseg.plot",
            "rankseg.monai",
            "rankseg.integration",
        ),
    ),
    ("io", ("rankseg.io",)),
    # the build of the ahead-of-time kernels drives rankseg.predict: a tool on top
    ("cli", ("rankseg.cli", "rankseg.__main__", "rankseg._compile.build")),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = modules()


def layer_of(name: str) -> int:
    """Index in LAYERS of a module: its longest matching entry decides."""
    best, best_len = -1, -1
    for i, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            match = name == entry or name.startswith(entry + ".")
            if match and len(entry) > best_len and not (entry == "rankseg" and name != entry):
                best, best_len = i, len(entry)
    return best


def imported(name: str, source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every package module that ``source`` imports, lazily or not."""
    is_pkg = MODULES[name].name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            # ``from pkg import sub`` imports the submodule; ``from pkg import name`` the package
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        found += [(node.lineno, t) for t in targets if t == "rankseg" or t.startswith("rankseg.")]
    return found


def edges() -> list[tuple[str, int, str]]:
    """Every ``(module, line, imported module)`` of the package, parents excluded.

    A submodule's import of its own package (``rankseg.cuda.driver`` importing
    ``rankseg.cuda``) is no edge: Python imports the package before the submodule anyway.
    """
    out = []
    for name, path in MODULES.items():
        for line, target in imported(name, path.read_text(encoding="utf-8")):
            target = next((t for t in (target, target.rsplit(".", 1)[0]) if t in MODULES), target)
            if target != name and not name.startswith(target + "."):
                out.append((name, line, target))
    return out


def violations(found: list[tuple[str, int, str]]) -> list[str]:
    bad = []
    for name, line, target in found:
        low, high = layer_of(name), layer_of(target)
        if high > low:
            bad.append(
                f"{MODULES[name].relative_to(ROOT)}:{line}: {name} (layer "
                f"{LAYERS[low][0]!r}) imports {target} (layer {LAYERS[high][0]!r}, higher)"
            )
    return bad


def test_every_module_has_a_layer():
    assert [m for m in MODULES if layer_of(m) < 0] == []


def test_imports_run_downwards():
    assert violations(edges()) == []


def test_the_bottom_imports_nothing_of_the_package():
    # the compile machinery and the records: what both the API and the backends
    # import (docs/design.rst); the machinery's modules import one another only
    bottom = [(n, t) for n, _, t in edges() if layer_of(n) <= 1]
    assert [(n, t) for n, t in bottom if not t.startswith("rankseg._compile.")] == []


def test_no_import_cycle():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, _, target in edges():
        graph[name].add(target)
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_checker_sees_a_violation():
    # a lazy import upwards (the kind the GPU driver once had) must be caught
    source = "def f():\n    from rankseg._api import PredictInfo\n"
    found = [
        ("rankseg.cuda.driver", line, t) for line, t in imported("rankseg.cuda.driver", source)
    ]
    assert found == [("rankseg.cuda.driver", 2, "rankseg._api")]
    assert len(violations(found)) == 1
    relative = imported(
        "rankseg.kernels.exact", "from ..cuda import rma_passes\nfrom . import rma\n"
    )
    assert relative == [(1, "rankseg.cuda.rma_passes"), (2, "rankseg.kernels.rma")]


def test_design_doc_shows_these_layers():
    text = (ROOT / "docs" / "design.rst").read_text(encoding="utf-8")
    block = re.search(r"\.\. layer picture start\n(.*?)\.\. layer picture end", text, re.S)
    assert block, "docs/design.rst lost its layer picture"
    rows = re.findall(r"^\s+(\w+)\s+\|\s+(.+?)\s*$", block.group(1), re.M)
    drawn = [(layer, tuple(sorted(m.strip() for m in mods.split(",")))) for layer, mods in rows]
    wanted = [(layer, tuple(sorted(entries))) for layer, entries in reversed(LAYERS)]
    assert drawn == wanted


@pytest.mark.parametrize("name", ["rankseg._policies", "rankseg._records", "rankseg._validation"])
def test_low_modules_import_no_cuda(name):
    # _validation recognizes a CUDA array by __cuda_array_interface__ alone
    assert not [t for _, t in imported(name, MODULES[name].read_text()) if "cuda" in t]


#: the functions of ``rankseg/kernels/`` that are not compiled, and why each may stay:
#: ``as_f64`` and ``sort_candidates`` are Python bodies numba's overloads replace
#: inside kernels (``sort_f32_values`` is one overload's body), ``_register``
#: registers those overloads, ``_tail_rule`` computes a
#: module constant at import, ``new_summary`` allocates one zeroed buffer of the
#: summary's length
KERNEL_HELPERS = {
    ("_dtype", "as_f64"),  # stubs whose numba overloads _register adds
    ("_dtype", "as_native"),
    ("_dtype", "narrow"),
    ("_dtype", "_register"),
    ("sort", "sort_candidates"),  # picks a sort by the map's dtype at compile time
    ("sort", "sort_f32_values"),  # compiled as sort_candidates' float32 overload
    ("sort", "_register"),
    ("quadrature", "_tail_rule"),
    ("summary", "new_summary"),
}


def _jit_decorated(node: ast.FunctionDef) -> bool:
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("jit", "pjit"):
            return True
    return False


def kernel_functions(source: str, module: str) -> list[tuple[str, str]]:
    """``(module, function)`` of every top-level function of ``source`` not compiled."""
    tree = ast.parse(source)
    return [
        (module, node.name)
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and not (isinstance(node, ast.FunctionDef) and _jit_decorated(node))
    ]


def test_kernels_hold_compiled_code_only():
    # host orchestration (launchers, run_tasks, threads) lives in rankseg.cpu
    # (docs/design.rst): every top-level function of rankseg/kernels/ is a @jit/@pjit
    # kernel or one of the few listed helpers, and no kernel module runs tasks
    found = []
    for path in sorted((PACKAGE / "kernels").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        found += kernel_functions(source, path.stem)
        name = module_name(path)
        threads = [t for _, t in imported(name, source) if t.startswith("rankseg._threads")]
        assert threads == [], f"{name} reaches the thread pool"
    assert [f for f in found if f not in KERNEL_HELPERS] == []
    assert KERNEL_HELPERS <= set(found)  # the list shrinks with the code


def test_kernel_check_sees_a_launcher():
    source = (
        "@jit\ndef _body(i0, i1, x):\n    pass\n\n"
        "@jit(inline='always')\ndef helper(a):\n    return a\n\n"
        "def launch(x):\n    run_tasks(_body, 1, x)\n"
    )
    assert kernel_functions(source, "m") == [("m", "launch")]


# -- names between modules ------------------------------------------------------------
def _resolve_from(name: str, node: ast.ImportFrom) -> str:
    """The absolute module of a ``from ... import`` in module ``name``."""
    if not node.level:
        return node.module or ""
    pkg = name.split(".") if MODULES[name].name == "__init__.py" else name.split(".")[:-1]
    pkg = pkg[: len(pkg) - (node.level - 1)]
    return ".".join(pkg + ([node.module] if node.module else []))


def _private(attr: str) -> bool:
    return attr.startswith("_") and not attr.startswith("__")


def private_uses(name: str, source: str) -> list[str]:
    """Underscore names module ``name`` takes from another package module.

    Both ``from rankseg.x import _name`` and ``alias._name`` (``alias`` an imported
    package module) count; importing a private *module* (``from rankseg import
    _validation``) does not: its names are what it exports.
    """
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = _resolve_from(name, node)
            if not (base == "rankseg" or base.startswith("rankseg.")):
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in MODULES:
                    aliases[alias.asname or alias.name] = full
                elif _private(alias.name) and base != name:
                    found.append(f"{node.lineno}: from {base} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and aliases[node.value.id] != name
            and _private(node.attr)
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_private_modules_export_plain_names():
    # a name another module uses is part of its module's interface: no underscore
    bad = {
        name: uses
        for name, path in MODULES.items()
        if (uses := private_uses(name, path.read_text(encoding="utf-8")))
    }
    assert bad == {}


def test_private_use_check_sees_both_forms():
    source = (
        "from rankseg.kernels.exact import _node, plain\n"
        "from rankseg.kernels import quadrature as q\n"
        "x = q._tail_rule(1) + q.H_STEP\n"
    )
    assert private_uses("rankseg.cuda.exact", source) == [
        "1: from rankseg.kernels.exact import _node",
        "3: q._tail_rule",
    ]
    assert private_uses("rankseg.cuda.exact", "from rankseg import _validation as v\n") == []


def reexports(name: str, source: str, imported_from: dict[str, set[str]]) -> list[str]:
    """Names module ``name`` imports at top level, never uses, and nobody imports from it.

    Such a name is there for the tests only.  Allowed: a public module's ``__all__``
    (the package's API) and names other package modules import from ``name``.
    """
    tree = ast.parse(source)
    bound: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bound[(alias.asname or alias.name).split(".")[0]] = node.lineno
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    exported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            exported = {e.value for e in node.value.elts}  # type: ignore[attr-defined]
    public = not any(part.startswith("_") for part in name.split("."))
    return [
        f"{line}: {n}"
        for n, line in bound.items()
        if n not in used
        and n != "annotations"
        and not (public and n in exported)
        and n not in imported_from.get(name, set())
    ]


def test_no_reexports_for_tests():
    imported_from: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = _resolve_from(name, node)
                imported_from.setdefault(base, set()).update(a.name for a in node.names)
    bad = {
        name: found
        for name, path in MODULES.items()
        if (found := reexports(name, path.read_text(encoding="utf-8"), imported_from))
    }
    assert bad == {}


def test_reexport_check_sees_one():
    source = "from rankseg.kernels.trna import TRNA_SIGMA_INTERP as TRNA_SIGMA_INTERP\n"
    assert reexports("rankseg.kernels.ba_trna", source, {}) == ["1: TRNA_SIGMA_INTERP"]
    # imported by another module from here, or in a public module's __all__: fine
    assert (
        reexports(
            "rankseg.kernels.ba_trna", source, {"rankseg.kernels.ba_trna": {"TRNA_SIGMA_INTERP"}}
        )
        == []
    )
    public = "from rankseg._api import RankSEG\n__all__ = ['RankSEG']\n"
    assert reexports("rankseg", public, {}) == []
