"""benchmarks/gpu.py skips cleanly where there is no GPU (CI); its helpers work."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_skips_without_a_gpu(tmp_path):
    pytest.importorskip("numba")
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed: the benchmark would run")
    except ImportError:
        pass
    out = tmp_path / "bench.txt"
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--rounds", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("skipped: ")
    assert out.read_text() == res.stdout


def test_gpu_checks_script_is_valid_bash():
    res = subprocess.run(
        ["bash", "-n", str(ROOT / "benchmarks" / "gpu_checks.sh")], capture_output=True, check=False
    )
    assert res.returncode == 0, res.stderr
