"""Install, build and test-command policies (issue 27): one place each, checked."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import rankseg

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Two commands for a fresh machine") :]
    return re.findall(r"```bash\n(.+?)\n```", section)[:2]


def test_the_readmes_first_command_runs_the_installed_demo():
    first, _ = _readme_commands()
    assert first.endswith("pip install . && rankseg demo")


def test_ci_runs_exactly_the_readmes_test_command():
    _, second = _readme_commands()
    assert second == "python3 -m venv .venv && . .venv/bin/activate && pip install nox && nox"
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert second in run
    assert "uninstall" not in run and "uninstall" not in second


def test_torch_is_only_an_integration_test_dependency():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = meta["optional-dependencies"]
    heavy = ("torch", "torchvision", "monai", "nnunetv2", "torchmetrics", "transformers")

    def names(reqs):
        return {re.split(r"[<>=!\[; ]", r, maxsplit=1)[0].lower() for r in reqs}

    assert not names(meta["dependencies"]) & set(heavy)
    assert not names(extras["test"]) & set(heavy)
    assert {"torch", "nnunetv2", "torchmetrics"} <= names(extras["test-integrations"])


def test_the_build_backend_asks_for_numba_only_for_the_ahead_of_time_build(monkeypatch):
    sys.path.insert(0, str(ROOT / "_build_backend"))
    try:
        import backend
    finally:
        sys.path.pop(0)
    # setuptools' own answer (it runs setup.py in the current folder) is not ours to test
    monkeypatch.setattr(backend._setuptools, "get_requires_for_build_wheel", lambda c=None: [])
    monkeypatch.setattr(backend._setuptools, "get_requires_for_build_editable", lambda c=None: [])
    monkeypatch.delenv("RANKSEG_AOT", raising=False)
    assert backend.get_requires_for_build_wheel() == []
    monkeypatch.setenv("RANKSEG_AOT", "1")
    assert "numba>=0.59" in backend.get_requires_for_build_wheel()
    assert "numba>=0.59" in backend.get_requires_for_build_editable()


@pytest.mark.skipif(
    not (ROOT / "setup.py").exists(), reason="needs the checkout (setup.py) to build from"
)
def test_a_default_build_is_a_pure_wheel_with_type_hints(tmp_path):
    env = dict(os.environ)
    env.pop("RANKSEG_AOT", None)
    src = tmp_path / "src"  # a copy: the build must not write into the checkout
    import shutil

    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            ".nox",
            "dist",
            "build",
            "*.egg-info",
            ".numba_cache",
            "__pycache__",
            "*.so",
            "docs",
            "benchmarks",
            ".hypothesis",
            ".pytest_cache",
        ),
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path / "w"),
            str(src),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0 and "No module named" in out.stderr:
        pytest.skip(f"cannot build here: {out.stderr.strip().splitlines()[-1]}")
    assert out.returncode == 0, out.stderr
    (wheel,) = (tmp_path / "w").glob("*.whl")
    assert wheel.name == f"rankseg_numba-{rankseg.__version__}-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "rankseg/py.typed" in names
    assert not [n for n in names if n.endswith(".so")]
    assert "rankseg/_compile/build.py" in names


def test_version_report_says_what_is_installed():
    from rankseg.cli._version import version_report

    lines = version_report().splitlines()
    assert lines[0] == f"rankseg-numba {rankseg.__version__} (import name rankseg)"
    assert lines[1].startswith("numba ") and "llvmlite " in lines[1]
    assert lines[2].startswith("compiled kernels: ")
    assert lines[3].startswith("CUDA: ")


def test_rankseg_version_command(capsys):
    from rankseg.__main__ import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("rankseg-numba ")
    with pytest.raises(SystemExit) as exc:
        main(["--version", "demo"])
    assert exc.value.code == 2


def test_the_tests_import_the_install_they_check():
    # nox's sessions install the wheel and run the pytest executable, so the
    # checkout's rankseg/ folder must not shadow it
    if os.environ.get("RANKSEG_EXPECT_AOT") != "1":
        pytest.skip("only in the nox sessions that test the built wheel")
    here = Path(rankseg.__file__).resolve()
    assert "site-packages" in here.parts and not here.is_relative_to(ROOT / "rankseg")
    # and the fresh interpreters the tests start import it too (PYTHONSAFEPATH: the
    # current folder, the checkout, is not put first on their path)
    code = "import rankseg; print(rankseg.__file__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()).resolve() == here


@pytest.mark.parametrize(
    ("body", "module", "marked"),
    [
        ('    torch = import_or_skip("torch")\n', "", True),
        ("    pytest.importorskip('nnunetv2')\n", "", True),
        ("    x = 1\n", 'monai = import_or_skip("monai")\n', True),
        ('    import_or_skip("xarray")\n', "", False),
        ('    import_or_skip("torchvisionx")\n', "", False),
    ],
)
def test_integration_tests_are_marked_by_what_they_import(body, module, marked):
    from _integration import needs_integration

    assert needs_integration("def test():\n" + body, module) is marked
