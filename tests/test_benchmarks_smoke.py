"""Run every asv benchmark and compare.py once on tiny shapes, so they cannot rot."""

import itertools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmarks package lives at the repository root
    sys.path.insert(0, str(ROOT))

import benchmarks  # noqa: E402
from benchmarks import bench_rma, compare  # noqa: E402

# asv's naming rules: these prefixes make a method or function a benchmark.
BENCH_PREFIXES = ("time_", "peakmem_", "mem_", "track_", "timeraw_")


def benchmark_classes():
    return [
        obj
        for name, obj in vars(bench_rma).items()
        if isinstance(obj, type)
        and not name.startswith("_")
        and obj.__module__ == bench_rma.__name__
        and any(m.startswith(BENCH_PREFIXES) for m in dir(obj))
    ]


def benchmark_cases():
    for cls in benchmark_classes():
        methods = sorted(m for m in dir(cls) if m.startswith(BENCH_PREFIXES))
        for params in itertools.product(*cls.params):
            yield pytest.param(cls, params, methods, id=f"{cls.__name__}-{'-'.join(params)}")


@pytest.fixture
def small(monkeypatch):
    monkeypatch.setenv(benchmarks.SMALL_ENV, "1")


def test_suite_has_the_expected_benchmarks():
    names = {f"{cls.__name__}.{m}" for cls in benchmark_classes() for m in dir(cls)}
    expected = {
        "Argmax.time_argmax",
        "ArgmaxMemory.peakmem_argmax",
        "RMA.time_rma",
        "RMA.track_ratio_to_argmax",
        "RMAMemory.peakmem_rma",
    }
    assert expected <= names
    for cls in benchmark_classes():
        assert cls.param_names[0] == "workload"
        assert list(cls.params[0]) == ["voc2d", "ct3d", "tumor3d"]
    assert callable(bench_rma.timeraw_import_and_first_call)


@pytest.mark.parametrize(("cls", "params", "methods"), list(benchmark_cases()))
def test_benchmark_runs_once(small, cls, params, methods):
    bench = cls()
    if "tumor3d" in params and "multiclass" in params:
        # C = 1 has no multiclass output: asv records this combination as skipped.
        with pytest.raises(NotImplementedError, match="multiclass output needs C >= 2"):
            bench.setup(*params)
        return
    bench.setup(*params)
    assert bench.probs.shape == benchmarks.SMALL_SHAPES[params[0]]
    for method in methods:
        result = getattr(bench, method)(*params)
        if method.startswith("track_"):
            assert np.isfinite(result)
            assert result > 0
    if hasattr(bench, "teardown"):
        bench.teardown(*params)


def test_timeraw_import_and_first_call_runs():
    code = textwrap.dedent(bench_rma.timeraw_import_and_first_call())
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_compare_quick(capsys):
    assert compare.main(["--quick", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "machine:" in out
    assert "numba threads=" in out
    rows = [
        line.split()
        for line in out.splitlines()
        if line.startswith(tuple(bench_rma.WORKLOAD_NAMES))
    ]
    table = [r for r in rows if not r[0].endswith(":")]  # skip the "name: shape" lines
    seen = {(r[0], r[1]) for r in table}
    for name in bench_rma.WORKLOAD_NAMES:
        assert (name, "np.argmax(axis=1)") in seen
        assert (name, "dice/multilabel/rma") in seen
    assert ("voc2d", "iou/multiclass/rma") in seen
    assert ("tumor3d", "dice/multiclass/rma") not in seen  # C = 1
    for r in table:
        assert float(r[2]) >= 0  # median ms
        assert float(r[3]) > 0  # ratio to argmax


def test_compare_configs_are_extensible(capsys, monkeypatch):
    extra = compare.Config("dice", "multilabel", "rma", {"smooth": 1.0})
    monkeypatch.setattr(compare, "CONFIGS", [*compare.CONFIGS, extra])
    assert extra.label == "dice/multilabel/rma smooth=1.0"
    threads = numba.get_num_threads()
    try:
        assert (
            compare.main(["--quick", "--repeat", "1", "--workloads", "tumor3d", "--threads", "1"])
            == 0
        )
    finally:
        numba.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "smooth=1.0" in out
    assert "numba threads=1" in out
    assert "voc2d" not in out.split("machine:")[1]


def test_compare_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        compare.main(["--repeat", "0"])
    with pytest.raises(SystemExit):
        compare.main(["--workloads", "mnist"])
    capsys.readouterr()


def test_helpers(monkeypatch):
    monkeypatch.setenv(benchmarks.SMALL_ENV, "0")
    assert not benchmarks.small_mode()
    monkeypatch.setenv(benchmarks.SMALL_ENV, "1")
    assert benchmarks.small_mode()
    probs = benchmarks.load_workload("ct3d")
    assert probs is benchmarks.load_workload("ct3d", small=True)  # cached
    tiny = benchmarks.warmup_input(probs)
    assert tiny.shape == (1, 8, 8, 8, 8)
    assert tiny.dtype == probs.dtype
    times = benchmarks.interleaved_times({"a": lambda: None, "b": lambda: sum(range(99))}, 3)
    assert set(times) == {"a", "b"}
    assert all(len(v) == 3 and min(v) >= 0 for v in times.values())
    if benchmarks.unmap_freed_memory():  # Linux with glibc
        growth = benchmarks.peak_rss_growth(lambda: np.ones(4_000_000))  # 32 MB
        assert growth is not None
        assert growth > 16e6


def test_compare_upstream_skips_without_upstream(capsys, tmp_path):
    from benchmarks import compare_upstream

    missing = str(tmp_path / "no-such-venv" / "bin" / "python")
    assert compare_upstream.main(["--upstream-python", missing]) == 0
    assert compare_upstream.main([]) == 0
    # this interpreter imports our rankseg, not upstream's torch package
    assert compare_upstream.main(["--upstream-python", sys.executable, "--quick"]) == 0
    out = capsys.readouterr().out
    assert out.count(compare_upstream.SKIP_MESSAGE) == 3
    assert "speed-up" not in out
