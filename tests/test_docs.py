"""Build the Sphinx site with warnings as errors and run its doctests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def sphinx_build(builder: str, outdir: Path) -> subprocess.CompletedProcess:
    # A subprocess: Sphinx and the doctests import and configure modules (matplotlib,
    # dask, warnings filters) that must not leak into the test session.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("MPLBACKEND", "Agg")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-E",
            "-b",
            builder,
            "-d",
            str(outdir / "doctrees"),
            str(DOCS),
            str(outdir / builder),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_html_builds_without_warnings(tmp_path):
    proc = sphinx_build("html", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = tmp_path / "html"
    for page in ("index", "getting_started", "api", "changelog", "citation"):
        assert (html / f"{page}.html").is_file(), page
    api = (html / "api.html").read_text(encoding="utf-8")
    for name in (
        "rankseg.RankSEG",
        "rankseg.predict",
        "rankseg.PredictInfo",
        "rankseg.metrics.dice_score",
        "rankseg.xarray.predict",
        "rankseg.kernels.exact.exact_dice_objective",
    ):
        assert f'id="{name}"' in api, name


def test_doctests_pass(tmp_path):
    # the examples of rankseg.monai, rankseg.integration and the torch round trip run
    # torch: an integration test (the HTML build above needs none: it mocks them)
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    pytest.importorskip("transformers")
    proc = sphinx_build("doctest", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (tmp_path / "doctest" / "output.txt").read_text(encoding="utf-8")
    assert "0 failures in tests" in report
    assert " 0 tests" not in report
