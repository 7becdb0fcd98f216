"""Sphinx configuration (the full site is built out in the documentation issue)."""

project = "rankseg"
author = "the rankseg developers"
copyright = "2026, the rankseg developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
napoleon_numpy_docstring = True
exclude_patterns = ["_build"]
html_theme = "alabaster"
