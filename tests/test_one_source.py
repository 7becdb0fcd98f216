"""One source per algorithm: no block of statements written twice across the backends.

The kernels of one algorithm live in up to three homes: the in-memory CPU kernels
(``rankseg/kernels``), the dask path's block kernels and drivers
(``rankseg/kernels/dask_blocks.py``, ``rankseg/dask``) and the GPU (``rankseg/cuda``).  A
step they share is written once, as an ``inline`` helper that the CPU kernels call and
``rankseg.cuda._config.device_twin`` compiles for the GPU (docs/design.rst, "One source
per algorithm").  This test fails when a block of :data:`MIN_STATEMENTS` statements or
more appears, up to the names of its variables and functions, in two homes: a twin
written by hand again, which could drift from its other copy.
"""

from __future__ import annotations

import ast
import copy
from collections import defaultdict
from pathlib import Path

import rankseg

#: the smallest block (statements, nested ones included) that counts as an algorithm:
#: the twins of the exact quadrature, the multiclass resolution and the RMA scan that
#: the shared helpers replaced (issue 29) were blocks of 6 or 7 statements, all found
#: at 5; at 4, unrelated short steps match (a loop of power sums in two homes)
MIN_STATEMENTS = 5

_PACKAGE = Path(rankseg.__file__).parent


def home_of(relpath: str) -> str:
    """Return the home of a module given as a path inside the package (``cuda/exact.py``)."""
    if relpath.startswith("cuda/"):
        return "gpu"
    if relpath.startswith("dask/") or relpath == "kernels/dask_blocks.py":
        return "dask"
    return "in-memory"


class _Canon(ast.NodeTransformer):
    """Rename names by order of appearance, unify numbers and strings, drop docstrings."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.Name(id=self._rename(node.id), ctx=ast.Load())

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        value = node.value
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)  # 64 and 64.0 are the same step
        elif isinstance(value, str):
            value = ""
        return ast.Constant(value=value)

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return ast.Pass()
        return self.generic_visit(node)


def canonical(block: list[ast.stmt]) -> str:
    """Return the structure of a block of statements, up to the names it uses."""
    canon = _Canon()
    return "|".join(ast.dump(canon.visit(copy.deepcopy(s)), annotate_fields=False) for s in block)


def _size(block: list[ast.stmt]) -> int:
    return sum(isinstance(n, ast.stmt) for s in block for n in ast.walk(s))


def blocks(source: str, min_statements: int = MIN_STATEMENTS) -> dict[str, list[tuple]]:
    """The runs of consecutive statements in each function, by :func:`canonical` form.

    Parameters
    ----------
    source : str
        A module's source.
    min_statements : int
        Smallest size of a run (its statements, nested ones included).

    Returns
    -------
    dict
        Canonical form -> ``[(function, first line, size), ...]`` of the shortest
        run of at least ``min_statements`` from each statement of each body.
    """
    found: dict[str, list[tuple]] = defaultdict(list)
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            for field in ("body", "orelse", "finalbody"):
                body = getattr(node, field, None)
                if not (isinstance(body, list) and body and isinstance(body[0], ast.stmt)):
                    continue
                sizes = [_size([s]) for s in body]
                for i in range(len(body)):
                    # the shortest run from i that is large enough: a longer run written
                    # twice starts with a shorter one written twice (the renaming goes
                    # by order of appearance), so the shortest runs find every twin
                    size = 0
                    for j in range(i, len(body)):
                        size += sizes[j]
                        if size >= min_statements:
                            found[canonical(body[i : j + 1])].append(
                                (fn.name, body[i].lineno, size)
                            )
                            break
    return found


def twins(modules: dict[str, str], min_statements: int = MIN_STATEMENTS) -> list[list[str]]:
    """Blocks written in more than one home, largest first.

    Parameters
    ----------
    modules : dict
        Path inside the package (``kernels/exact.py``) -> source.
    min_statements : int
        Smallest block that counts.

    Returns
    -------
    list of list of str
        Per repeated block, its places ``path:function:line (size)``.
    """
    seen: dict[str, list[tuple]] = defaultdict(list)
    for rel, source in modules.items():
        for key, places in blocks(source, min_statements).items():
            seen[key] += [(rel, *place) for place in places]
    out = []
    for places in seen.values():
        if len({home_of(p[0]) for p in places}) > 1:
            places.sort(key=lambda p: (-p[3], p[0], p[2]))
            out.append([f"{p[0]}:{p[1]}:{p[2]} ({p[3]})" for p in places])
    out.sort(key=lambda places: places[0])
    return out


def package_modules(root: Path = _PACKAGE) -> dict[str, str]:
    """Sources of the modules of the three homes under a package directory."""
    return {
        str(path.relative_to(root)): path.read_text(encoding="utf-8")
        for sub in ("kernels", "cuda", "dask")
        for path in sorted((root / sub).glob("*.py"))
    }


def test_no_block_written_in_two_homes() -> None:
    found = twins(package_modules())
    assert not found, (
        "blocks written in more than one of the in-memory, dask and GPU homes "
        "(share them as an inline helper and a device_twin, docs/design.rst):\n"
        + "\n".join("  " + ", ".join(places) for places in found)
    )


_CPU = """
def objective(q, m, x, base, h, cnt, wgt, logg, s, gamma, out):
    for tau in range(m):
        out[tau] += base * (2.0 * h + gamma)
        if tau < m:
            h += ratio(as_f64(q[tau]), x)
        cnt += 1
        if cnt == 64:
            cnt = 0
            base = wgt * math.exp(logg - (tau + 1 + gamma) * s)
        else:
            base *= x
"""

_GPU = """
def band(q, mm, xx, b, hh, k, w, lg, ss, g, contrib):
    for t in range(mm):
        contrib[t] += b * (2.0 * hh + g)
        if t < mm:
            hh += _ratio(float64(q[t]), xx)
        k += 1.0
        if k == 64.0:
            k = 0.0
            b = w * math.exp(lg - (t + 1 + g) * ss)
        else:
            b *= xx
"""


def test_twins_found_up_to_names() -> None:
    # the same steps under other names (and float literals) in two homes: found
    found = twins({"kernels/exact.py": _CPU, "cuda/exact.py": _GPU})
    assert found
    assert any(
        p[0].startswith("cuda/exact.py:band:") and p[1].startswith("kernels/exact.py:objective:")
        for p in found
    )
    # in one home, or below the threshold, it is not a twin
    assert twins({"kernels/exact.py": _CPU, "kernels/trna.py": _GPU}) == []
    assert twins({"kernels/exact.py": _CPU, "cuda/exact.py": _GPU}, min_statements=20) == []
    # another step is not the same block
    other = _GPU.replace("b *= xx", "b /= xx").replace("hh += _ratio", "hh -= _ratio")
    assert twins({"kernels/exact.py": _CPU, "cuda/exact.py": other}, min_statements=4) == []


def test_homes() -> None:
    assert home_of("kernels/exact.py") == "in-memory"
    assert home_of("kernels/dask_blocks.py") == "dask"
    assert home_of("dask/_cuts.py") == "dask"
    assert home_of("cuda/exact.py") == "gpu"
