"""Build hook: compile the kernels of ``rankseg.predict`` ahead of time (optional).

Everything else about the package is declared in pyproject.toml and setup.cfg.  The
one extension, ``rankseg._kernels_aot``, is built by ``python -m rankseg._aot_build``
(numba's ``pycc``; docs/performance.rst, "The first call") in a child process.  If
that fails (no C compiler, a numba without ``pycc``), the package installs without
it and numba compiles the kernels at their first call instead; set
``RANKSEG_AOT_BUILD=require`` to make the failure an error, ``RANKSEG_AOT_BUILD=0``
to skip the build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
AOT_MODULE = "rankseg._kernels_aot"


class BuildKernels(build_ext):
    """``build_ext`` that makes ``rankseg._kernels_aot`` with pycc instead of a C compiler call."""

    def build_extension(self, ext: Extension) -> None:
        """Build ``ext``: the kernels' module by ``rankseg._aot_build``, others as usual."""
        if ext.name != AOT_MODULE:
            super().build_extension(ext)
            return
        mode = os.environ.get("RANKSEG_AOT_BUILD", "1")
        if mode == "0":
            print("rankseg: RANKSEG_AOT_BUILD=0, kernels not compiled ahead of time")
            return
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        # an empty numba cache: a kernel cached from older sources (numba checks only
        # the file of the function it loads) must not end up in the module
        cache = tempfile.mkdtemp(prefix="rankseg-aot-cache-")
        env["NUMBA_CACHE_DIR"] = cache
        cmd = [sys.executable, "-m", "rankseg._aot_build", "--output", str(target)]
        try:
            subprocess.run(cmd, check=True, env=env, cwd=ROOT)
        except (OSError, subprocess.CalledProcessError) as exc:
            if mode == "require":
                raise
            print(
                f"rankseg: compiling the kernels ahead of time failed ({exc}); numba will "
                "compile them at their first call",
                file=sys.stderr,
            )
        finally:
            shutil.rmtree(cache, ignore_errors=True)


setup(
    ext_modules=[Extension(AOT_MODULE, sources=[], optional=True)],
    cmdclass={"build_ext": BuildKernels},
)
