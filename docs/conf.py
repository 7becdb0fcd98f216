"""Sphinx configuration of the rankseg documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``; the
examples run with ``-b doctest`` (``tests/test_docs.py`` does both).
"""

import importlib
import os
import re
import sys
from pathlib import Path

# Document this checkout, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rankseg  # noqa: E402

project = "rankseg"
author = "the rankseg developers"
copyright = "2026, the rankseg developers"
release = rankseg.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
]

# NumPy-style docstrings (napoleon); autosummary writes one stub page per object.
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "description"
autodoc_member_order = "bysource"

exclude_patterns = ["_build"]


# the torch-based adapters (rankseg.monai, rankseg.integration) are documented from
# their docstrings also where torch is not installed (the test session without torch)
def _missing(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return True
    return False


autodoc_mock_imports = [name for name in ("torch", "monai", "transformers") if _missing(name)]
templates_path = []
html_theme = "alabaster"
html_static_path = []

# The gallery's figures (docs/gallery.py) are made from real probability maps that are
# not in the repository: with RANKSEG_REALDATA naming their folder the build remakes
# them; without it the committed PNGs in _static/gallery/ are shown as they are.
_REALDATA = os.environ.get("RANKSEG_REALDATA")
if _REALDATA:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gallery  # noqa: E402

    for _png in gallery.main(_REALDATA):
        print(f"gallery: wrote {_png}")
else:
    print(
        "gallery: RANKSEG_REALDATA is not set; the committed figures in "
        "docs/_static/gallery/ are used (RANKSEG_REALDATA=../shared/realdata remakes them)"
    )

doctest_global_setup = """
import numpy as np
"""


# NumPy-style parameter lines such as ``probs : array-like, shape (B, C, *spatial)``
# become a reST type field, where the bare ``*`` would open an emphasis.  Escape a
# star that starts a word on those lines only, before napoleon converts them.
_PARAM_LINE = re.compile(r"^\s*\**[A-Za-z_][\w, *]*\s:\s")
_BARE_STAR = re.compile(r"(?<![\\*\w`])\*(?=\w)")


def _escape_type_stars(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if _PARAM_LINE.match(line) and "``" not in line:
            lines[i] = _BARE_STAR.sub(r"\\*", line)


def setup(app):
    """Register the docstring hook (before napoleon, which runs at priority 500)."""
    app.connect("autodoc-process-docstring", _escape_type_stars, priority=100)
