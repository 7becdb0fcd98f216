"""Which tests are integration tests: the rule ``tests/conftest.py`` marks them by."""

import ast
import re
from pathlib import Path

#: the packages whose own code some tests use as oracles or inputs (the test
#: extra ``test-integrations``; nox session ``integration``).  A test that imports one
#: of them with ``import_or_skip``/``pytest.importorskip`` -- in its body, or at the
#: top of its module -- is marked ``integration``: the ``tests`` session runs it
#: without them (it skips), the ``integration`` session runs only these.
INTEGRATION_PACKAGES = ("torch", "monai", "nnunetv2", "torchmetrics", "transformers", "cupy")
_NEEDS = re.compile(
    r"""(?:import_or_skip|importorskip)\(\s*["']({})\b""".format("|".join(INTEGRATION_PACKAGES))
)


def module_level_source(path: Path) -> str:
    """The top-level statements of a test module (function and class bodies left out)."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = source.splitlines()
    keep = [
        "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in tree.body
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    return "\n".join(keep)


def needs_integration(function_source: str, module_source: str) -> bool:
    """Whether a test needs a package of :data:`INTEGRATION_PACKAGES`."""
    return bool(_NEEDS.search(function_source) or _NEEDS.search(module_source))
