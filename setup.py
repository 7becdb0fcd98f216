"""Build hook: compile the kernels of ``rankseg.predict`` ahead of time, when asked.

Everything else about the package is declared in pyproject.toml and setup.cfg.  A
plain ``pip install .`` builds nothing: numba compiles each kernel at its first use
and caches it (docs/performance.rst, "The first call").  ``RANKSEG_AOT=1`` adds the
extension ``rankseg._kernels_aot``, built by ``python -m rankseg._compile.build``
(numba's ``pycc``) in a child process, for a portable baseline CPU
(``RANKSEG_AOT_CPU=host`` for this machine's): the wheels of a release carry it.
If that build fails (no C compiler, a numba without ``pycc``) the install goes on
without it and says so in one line; ``RANKSEG_AOT=require`` makes the failure an
error.  The in-tree build backend (``_build_backend/backend.py``) adds numba and
numpy to the build requirements only then.
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
#: written beside the package when the asked-for build failed (rankseg._compile.aot)
FAILED_NOTE = "_kernels_aot.failed"
MODE = os.environ.get("RANKSEG_AOT", "0")
if MODE not in ("0", "1", "require"):
    sys.exit(f"rankseg: RANKSEG_AOT must be 0, 1 or require; got {MODE!r}")


class BuildKernels(build_ext):
    """``build_ext`` that makes ``rankseg._kernels_aot`` with pycc instead of a C compiler call."""

    def build_extension(self, ext: Extension) -> None:
        """Build ``ext``: the kernels' module by ``rankseg._compile.build``, others as usual."""
        if ext.name != AOT_MODULE:
            super().build_extension(ext)
            return
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        # an empty numba cache: a kernel cached from older sources (numba checks only
        # the file of the function it loads) must not end up in the module
        cache = tempfile.mkdtemp(prefix="rankseg-aot-cache-")
        env["NUMBA_CACHE_DIR"] = cache
        env["RANKSEG_QUIET_COMPILE"] = "1"  # the build compiles everything: no notice
        cmd = [sys.executable, "-m", "rankseg._compile.build", "--output", str(target)]
        try:
            done = subprocess.run(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
            sys.stderr.write(done.stderr)
            if done.returncode != 0:
                # the exception's line of the child's traceback says what went wrong
                lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
                errors = [line for line in lines if line.split(":")[0].endswith("Error")]
                why = errors[-1] if errors else lines[-1] if lines else ""
                raise RuntimeError(why or f"exit status {done.returncode}")
        except (OSError, RuntimeError) as exc:
            if MODE == "require":
                raise
            why = f"compiling the kernels ahead of time failed ({exc})"
            print(
                f"rankseg: RANKSEG_AOT=1 but {why}; installed without them: numba compiles "
                "each kernel at its first use",
                file=sys.stderr,
            )
            # pip hides a successful build's output: the package says it at first use
            # (rankseg._compile.aot reads this file)
            target.with_name(FAILED_NOTE).write_text(why + "\n", encoding="utf-8")
        finally:
            shutil.rmtree(cache, ignore_errors=True)


ext_modules = []
if MODE in ("1", "require"):
    ext_modules.append(Extension(AOT_MODULE, sources=[], optional=MODE != "require"))

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildKernels})
