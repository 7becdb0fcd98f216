"""rankseg's build backend: setuptools, plus numba and numpy when ``RANKSEG_AOT`` asks.

A plain ``pip install .`` needs only setuptools to build (pure Python: the kernels
are compiled by numba at their first use).  ``RANKSEG_AOT=1`` (or ``require``) also
compiles them ahead of time (``setup.py``), which needs numba and numpy in the build
environment: only then are they build requirements, so the default install does not
download and install them twice.
"""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the PEP 517/660 hooks)

AOT_REQUIRES = ["numba>=0.59", "numpy>=1.24"]


def _aot_requires() -> list[str]:
    return AOT_REQUIRES if os.environ.get("RANKSEG_AOT", "0") in ("1", "require") else []


def get_requires_for_build_wheel(config_settings=None):  # noqa: D103
    return _setuptools.get_requires_for_build_wheel(config_settings) + _aot_requires()


def get_requires_for_build_editable(config_settings=None):  # noqa: D103
    return _setuptools.get_requires_for_build_editable(config_settings) + _aot_requires()
