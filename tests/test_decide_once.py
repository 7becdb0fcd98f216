"""One home per policy: a second definition of a shared policy fails here.

``rankseg/_policies.py`` is the one home of the accepted float dtypes, the kernels'
metric codes, the label values of a multiclass map (void included) and the
float16-as-uint16 view (docs/design.rst, "One home per policy").  Every module of
``rankseg`` is read with :mod:`ast` and each rule below looks for the shape a copy
of one of them takes; the self-tests feed each rule a copy, so a rule that finds
nothing cannot pass for a rule that is blind.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rankseg import _policies

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rankseg"
HOME = PACKAGE / "_policies.py"

FLOAT_NAMES = {"float16", "float32", "float64"}
METRIC_NAMES = {"DICE", "IOU", "ACC"}
UINT_NAMES = {"uint16", "u2", "<u2", "=u2"}


def _dotted(node: ast.AST) -> str:
    """``np.float16`` -> ``'float16'``; ``"float16"`` -> ``'float16'``; else ``''``."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Call) and len(node.args) == 1:  # np.dtype(np.float16)
        return _dotted(node.args[0])
    return ""


def float_dtype_lists(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """A tuple/list/set literal naming two or more of float16/32/64: the accepted dtypes."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            named = {_dotted(e) for e in node.elts} & FLOAT_NAMES
            if len(named) >= 2:
                yield node.lineno, f"a list of float dtypes {sorted(named)}"


def metric_codes(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``DICE = 0`` (or ``_IOU = 1``), a ``{"dice": 0}`` table, ``DICE if ... else IOU``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Constant, ast.UnaryOp)):
            for target in node.targets:
                name = target.id if isinstance(target, ast.Name) else ""
                if name.strip("_").split("_")[-1] in METRIC_NAMES:
                    yield node.lineno, f"a metric code {name} = {ast.unparse(node.value)}"
        elif isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            ints = [v for v in node.values if isinstance(v, ast.Constant)]
            if {"dice", "iou"} <= keys and all(isinstance(v.value, int) for v in ints) and ints:
                yield node.lineno, "a table of metric codes"
        elif isinstance(node, ast.IfExp):
            names = {_dotted(node.body), _dotted(node.orelse)}
            if {"DICE", "IOU"} <= names:
                yield node.lineno, "the metric name mapped to its code (use metric_code)"


def float16_views(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``x.view(np.uint16)`` (any spelling), or a width -> unsigned dtype table."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "view"
            and node.args
            and _dotted(node.args[0]) in UINT_NAMES
        ):
            yield node.lineno, "a float16-as-uint16 view (use kernel_view/bits_view)"
        elif isinstance(node, ast.Dict):
            values = {_dotted(v) for v in node.values}
            if "uint16" in values and values & {"uint32", "uint64"}:
                yield node.lineno, "a table of bit-pattern dtypes (use BITS_DTYPES)"


def label_values(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``[0, nc - 1]`` (the label span) or a test of ``.unassigned_policy == "void"``."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) == 2:
            first, last = node.elts
            if (
                isinstance(first, ast.Constant)
                and first.value == 0
                and isinstance(last, ast.BinOp)
                and isinstance(last.op, ast.Sub)
                and isinstance(last.right, ast.Constant)
                and last.right.value == 1
            ):
                yield node.lineno, "the label span [0, C - 1] (use label_range)"
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute):
            right = node.comparators[0]
            if (
                node.left.attr == "unassigned_policy"
                and isinstance(right, ast.Constant)
                and right.value == "void"
            ):
                yield node.lineno, "whether the map holds void (use void_label)"


RULES: dict[str, Callable[[ast.AST], Iterator[tuple[int, str]]]] = {
    "float dtypes": float_dtype_lists,
    "metric codes": metric_codes,
    "float16 view": float16_views,
    "label values": label_values,
}


def copies(rule: Callable[[ast.AST], Iterator[tuple[int, str]]]) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == HOME:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in rule(tree)]
    return found


@pytest.mark.parametrize("policy", RULES)
def test_one_definition(policy):
    assert copies(RULES[policy]) == []


#: copies each rule must catch (what a second definition would look like)
SECOND_DEFINITIONS = {
    "float dtypes": [
        "_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))",
        "if out.dtype not in (np.float16, np.float32, np.float64): pass",
        'DTYPES = ("float16", "float32", "float64")',
        "FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)",
    ],
    "metric codes": [
        "DICE = 0",
        "_IOU = 1",
        "ACC = -1",
        'CODES = {"dice": 0, "iou": 1}',
        'metric = DICE if model.metric == "dice" else IOU',
    ],
    "float16 view": [
        "x = x.view(np.uint16)",
        'x = x.view("u2")',
        "_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}",
    ],
    "label values": [
        "labels = [0, nc - 1]",
        'void = model.unassigned_policy == "void"',
    ],
}


@pytest.mark.parametrize(
    ("policy", "source"), [(p, s) for p, srcs in SECOND_DEFINITIONS.items() for s in srcs]
)
def test_a_second_definition_is_found(policy, source):
    assert list(RULES[policy](ast.parse(source)))


@pytest.mark.parametrize(
    "source",
    [
        "keys = a.view(np.uint64)",  # a float64 radix sort's keys, not the float16 view
        "(np.uint8, np.uint16, np.uint32, np.uint64)",  # label dtypes
        "mode = QUAD_DICE",
        "x = [0, n]",
        'if policy == "void": pass',  # the functional API's own parameter
    ],
)
def test_what_is_not_a_copy(source):
    assert [f for rule in RULES.values() for f in rule(ast.parse(source))] == []


def test_the_home_agrees_with_numpy():
    assert [dt.name for dt in _policies.FLOAT_DTYPES] == list(_policies.FLOAT_DTYPE_NAMES)
    for dt in _policies.FLOAT_DTYPES:
        x = np.array([0.25, 1.0], dtype=dt)
        bits = _policies.bits_view(x)
        assert bits.dtype.kind == "u" and bits.itemsize == dt.itemsize
        assert np.shares_memory(bits, x) and bits.view(dt).tolist() == [0.25, 1.0]
        view = _policies.kernel_view(x)
        if dt == np.float16:  # numba's CPU kernels have no float16: they read the bits
            assert view.dtype == np.uint16 and np.shares_memory(view, x)
        else:
            assert view is x
    codes = {m: _policies.metric_code(m) for m in _policies.METRICS}
    assert len(set(codes.values())) == len(codes)
    assert codes["acc"] < 0 <= min(codes["dice"], codes["iou"])  # the GPU's "no cut"
    with pytest.raises(ValueError, match=r"unknown metric 'f1'; expected one of 'dice'"):
        _policies.metric_code("f1")
