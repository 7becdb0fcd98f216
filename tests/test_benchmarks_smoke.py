"""Run every asv benchmark and the scripts once on tiny shapes, so they cannot rot."""

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
import rankseg  # noqa: E402
from benchmarks import (  # noqa: E402
    accuracy,
    bench_first_call,
    bench_rma,
    bench_scaling,
    compare,
    first_call,
    limit,
    loaded,
    scaling,
)
from rankseg._api import OUTPUT_MODES, SOLVERS  # noqa: E402

# asv's naming rules: these prefixes make a method or function a benchmark.
BENCH_PREFIXES = ("time_", "peakmem_", "mem_", "track_", "timeraw_")
BENCH_MODULES = (bench_rma, bench_scaling, bench_first_call)


def benchmark_classes(modules=BENCH_MODULES):
    return [
        obj
        for module in modules
        for name, obj in vars(module).items()
        if isinstance(obj, type)
        and not name.startswith("_")
        and obj.__module__ == module.__name__
        and any(m.startswith(BENCH_PREFIXES) for m in dir(obj))
    ]


def benchmark_cases():
    for cls in benchmark_classes():
        if cls is bench_first_call.FirstCall:
            continue  # its warm setup compiles for 10 s: see test_first_call_cold_and_warm
        methods = sorted(m for m in dir(cls) if m.startswith(BENCH_PREFIXES))
        for params in itertools.product(*cls.params):
            ident = "-".join(str(p) for p in params)
            yield pytest.param(cls, params, methods, id=f"{cls.__name__}-{ident}")


def expect_skip(params):
    """tumor3d (C = 1) has no multiclass output: asv records these as skipped."""
    output_mode = "multiclass" if "argmax" in params else None
    return "tumor3d" in params and "multiclass" in (*params, output_mode)


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
        "RMA.track_ratio_to_read",
        "RMAMemory.peakmem_rma",
        "Solver.time_solver",
        "Solver.track_ratio_to_rma",
        "SolverMemory.peakmem_solver",
        "Accuracy.time_acc",
        "Accuracy.track_ratio_to_argmax",
        "AccuracyMemory.peakmem_acc",
        "Scaling.time_argmax",
        "Scaling.time_rma",
        "Scaling.time_exact",
        "FirstCall.timeraw_import_and_first_call",
    }
    assert expected <= names
    for cls in benchmark_classes([bench_rma]):
        assert cls.param_names[0] == "workload"
        assert list(cls.params[0]) == ["voc2d", "ct3d", "tumor3d"]
    assert callable(bench_rma.timeraw_import_and_first_call)
    assert bench_scaling.Scaling.params == [[10**4, 10**5, 10**6, 10**7, 10**8]]
    assert bench_first_call.FirstCall.params[0] == ["cold", "warm"]
    assert bench_first_call.FirstCall.params[2] == ["aot", "jit"]


def test_scripts_define_no_asv_benchmarks():
    # asv imports every module of benchmarks/; a script's ``time_x`` would become a
    # benchmark and fail ``asv check`` (compare_upstream once had ``time_upstream``).
    from benchmarks import compare_upstream

    for module in (
        benchmarks,
        accuracy,
        compare,
        compare_upstream,
        first_call,
        limit,
        loaded,
        scaling,
    ):
        names = [n for n in vars(module) if n.startswith(BENCH_PREFIXES)]
        names += [n for n in vars(module) if n[:1].isupper() and n.startswith("Timeraw")]
        assert names == [], module.__name__


def test_grid_covers_every_solver_and_output_mode():
    covered = {(metric, "rma", mode) for metric in bench_rma.METRICS for mode in OUTPUT_MODES}
    for config, mode in itertools.product(*bench_rma.Solver.params[1:]):
        kwargs = bench_rma._solver_kwargs(config, mode)
        covered.add((kwargs["metric"], kwargs["solver"], mode))
    covered |= {("acc", solver, mode) for solver, mode in bench_rma.ACC_SOLVERS.items()}
    valid = {
        (metric, solver, mode)
        for metric, solvers in SOLVERS.items()
        for solver in solvers
        for mode in OUTPUT_MODES
        if metric != "acc" or mode == bench_rma.ACC_SOLVERS[solver]
    }
    assert covered == valid
    assert bench_rma.RMA.params[1:] == [["dice", "iou"], list(OUTPUT_MODES)]
    assert bench_rma.Solver.params[2] == list(OUTPUT_MODES)


@pytest.mark.parametrize(("cls", "params", "methods"), list(benchmark_cases()))
def test_benchmark_runs_once(small, cls, params, methods):
    bench = cls()
    if expect_skip(params):
        with pytest.raises(NotImplementedError, match="multiclass output needs C >= 2"):
            bench.setup(*params)
        return
    bench.setup(*params)
    if cls.param_names[0] == "workload":
        assert bench.probs.shape == benchmarks.SMALL_SHAPES[params[0]]
    else:  # Scaling: d shrunk a thousandfold
        assert bench.probs.shape[:2] == (1, benchmarks.SCALING_CLASSES)
        assert bench.probs[0, 0].size == params[0] // benchmarks.SMALL_SCALING_DIVISOR
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


def _snapshot(folder):
    return {str(f.relative_to(folder)): f.stat().st_mtime_ns for f in folder.rglob("*")}


def test_first_call_cold_and_warm(monkeypatch):
    # The real first calls compile for 10 s (rma) to 40 s (exact) without the kernels
    # compiled at install time; the mechanism is the same with the accuracy rule, which
    # compiles in about 2 s.
    monkeypatch.setitem(
        bench_first_call.FIRST_CALLS, "tr", 'metric="acc", output_mode="multilabel"'
    )
    # the children import the rankseg these tests import (the checkout, or an
    # installed wheel with its compiled kernels)
    here = str(Path(rankseg.__file__).resolve().parents[1])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    )
    bench = bench_first_call.FirstCall()
    for cache, solver, kernels in itertools.product(*bench.params):
        bench.root, bench.warm_dir = "/r", "/r/warm"  # code generation only
        for code in bench.timeraw_import_and_first_call(cache, solver, kernels):
            compile(textwrap.dedent(code), "<timeraw>", "exec")

    case = ("tr", "jit")
    bench.setup("warm", *case)  # populates the warm cache in a fresh interpreter
    warm = Path(bench.warm_dir)
    before = _snapshot(warm)
    assert any(name.endswith(".nbc") for name in before)
    seconds = benchmarks.run_in_fresh_interpreter(
        *bench.timeraw_import_and_first_call("warm", *case)
    )
    assert seconds > 0
    assert _snapshot(warm) == before  # loaded from the cache: nothing compiled or written
    bench.teardown("warm", *case)
    assert not Path(bench.root).exists()

    bench.setup("cold", *case)
    root = Path(bench.root)
    assert not warm.exists() and list(root.iterdir()) == []  # nothing populated
    benchmarks.run_in_fresh_interpreter(*bench.timeraw_import_and_first_call("cold", *case))
    (cold,) = root.iterdir()  # a fresh directory per sample, filled by the compilation
    assert cold.name.startswith("cold-")
    assert any(name.endswith(".nbc") for name in _snapshot(cold))
    bench.teardown("cold", *case)
    assert not root.exists()

    from rankseg._compile import aot

    if aot.info()["used"]:  # an install that built the module (a wheel with RANKSEG_AOT=1)
        bench.setup("cold", "tr", "aot")
        root = Path(bench.root)
        benchmarks.run_in_fresh_interpreter(
            *bench.timeraw_import_and_first_call("cold", "tr", "aot")
        )
        (cold,) = root.iterdir()
        written = [name for name in _snapshot(cold) if name.endswith((".nbi", ".nbc"))]
        assert written == []  # the compiled module ran: numba cached nothing
        bench.teardown("cold", "tr", "aot")


def test_run_in_fresh_interpreter_reports_failures():
    assert benchmarks.run_in_fresh_interpreter("x = 1", "import os") >= 0
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        benchmarks.run_in_fresh_interpreter("1 / 0")


def test_scaling_maps_are_self_similar():
    assert benchmarks.scaling_shape(10**4) == (100, 10, 10)
    assert benchmarks.scaling_shape(10**8) == (1000, 1000, 100)
    for k in range(1, 10):
        assert np.prod(benchmarks.scaling_shape(10**k)) == 10**k
    assert np.prod(benchmarks.scaling_shape(20_000)) == 27**3  # near-cubic otherwise
    fractions = []
    for d in (10**4, 10**5):
        probs = benchmarks.make_scaling_probs(d)
        assert probs.shape == (1, 2, *benchmarks.scaling_shape(d))
        assert probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
        fractions.append(np.mean(probs.max(axis=1) < 0.95))
    assert 0.04 < min(fractions) and max(fractions) < 0.1
    assert benchmarks.make_scaling_probs(10**3, classes=3).shape == (1, 3, 10, 10, 10)
    with pytest.raises(ValueError):
        benchmarks.scaling_shape(0)


def test_scaling_script(tmp_path, capsys):
    assert scaling.sizes(1e4, 1e8) == [10**4, 10**5, 10**6, 10**7, 10**8]
    assert scaling.sizes(1e4, 3e4) == [10**4, 30_000]
    assert scaling.sizes(5e3, 1e4) == [10**4]
    args = ["--min-d", "1e3", "--max-d", "1e4", "--rounds", "1", "--out", str(tmp_path)]
    assert scaling.main(args) == 0
    out = capsys.readouterr().out
    report = (tmp_path / "scaling.txt").read_text(encoding="utf-8")
    assert report in out
    assert "machine:" in report
    assert "load average" in report
    rows = [line.split() for line in report.splitlines() if line.startswith("1e+0")]
    assert [r[0] for r in rows] == ["1e+03", "1e+04"]
    for r in rows:
        assert all(float(v) > 0 for v in r[4:])  # times, ratios to argmax, ns per voxel
    assert (tmp_path / "scaling.png").read_bytes().startswith(b"\x89PNG")
    # the slope needs two sizes >= 1e6; none here
    assert "log-log slope" not in report


def test_scaling_rejects_bad_arguments(capsys, tmp_path):
    for bad in (["--rounds", "0"], ["--min-d", "1e5", "--max-d", "1e4"], ["--classes", "1"]):
        with pytest.raises(SystemExit):
            scaling.main([*bad, "--out", str(tmp_path)])
    capsys.readouterr()
    assert not (tmp_path / "scaling.txt").exists()


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
    calls: list[str] = []
    funcs = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    benchmarks.interleaved_times(funcs, 4, before=lambda: calls.append("-"))
    assert "".join(calls) == "-a-b-c" * 4  # the hook before every timed call, in order
    calls.clear()
    times = benchmarks.interleaved_times(funcs, 7, balanced=True)
    # a Williams design for three: the rotations and their reverses, then again
    assert "".join(calls) == "abc" + "bca" + "cab" + "cba" + "acb" + "bac" + "abc"
    assert all(len(v) == 7 for v in times.values())
    for n in range(1, 9):  # every function just before every other equally often
        rows = benchmarks.balanced_orders(n)
        assert all(sorted(row) == list(range(n)) for row in rows)
        pairs = [(row[i], row[i + 1]) for row in rows for i in range(n - 1)]
        want = 1 if n % 2 == 0 else 2
        assert all(pairs.count((a, b)) == want for a in range(n) for b in range(n) if a != b)
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


@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_accuracy_expected_scores_match_the_dp(metric):
    from poisson_binomial import exact_dice_objective_dp, exact_iou_objective_dp

    dp = exact_dice_objective_dp if metric == "dice" else exact_iou_objective_dp
    rng = np.random.default_rng(3)
    rows = rng.beta(0.5, 0.5, size=(4, 40)).astype(np.float32)
    taus = {"a": np.array([0, 1, 17, 40]), "b": np.array([5, 39, 20, 3])}
    got = accuracy.expected_scores(rows, taus, metric)
    for i, row in enumerate(rows):
        ref = dp(np.sort(row.astype(np.float64))[::-1].copy(), 0.0, row.size)
        for k, t in taus.items():
            assert got[k][i] == pytest.approx(ref[t[i]], abs=1e-12)
    # the exact solver's own estimate of its mask agrees
    probs = rows.reshape(4, 1, 5, 8)
    masks, info = rankseg.predict(
        probs, metric=metric, solver="exact", output_mode="multilabel", return_info=True
    )
    tau = {"exact": masks.reshape(4, -1).sum(axis=1)}
    active = ~info.pruned.ravel()
    np.testing.assert_allclose(
        accuracy.expected_scores(rows[active], {"exact": tau["exact"][active]}, metric)["exact"],
        info.score.ravel()[active],
        atol=1e-12,
    )


def test_accuracy_quick(capsys):
    assert accuracy.main(["--quick", "--draws", "2"]) == 0
    out = capsys.readouterr().out
    assert "metric dice, smooth 0, pruning_prob 0.5; 2 ground truths per workload" in " ".join(
        out.split()
    )
    rows = [line.split() for line in out.splitlines() if line.startswith(tuple(accuracy.WORKLOADS))]
    per_class = [
        r for r in rows if len(r) == 12
    ]  # name rule E regret max =exact real ± se gain ± se
    label_maps = [r for r in rows if len(r) == 8]
    rules = ["p>0.5", *accuracy.solvers_of("dice")]
    for name in accuracy.WORKLOADS:
        assert [r[1] for r in per_class if r[0] == name] == rules
    for r in per_class:
        assert 0.0 <= float(r[2]) <= 1.0  # expected Dice
        assert float(r[3]) >= 0.0 and float(r[4]) >= float(r[3])  # regret mean <= max
        if r[1] == "exact":
            assert (r[3], r[4], r[5]) == ("0.0e+00", "0.0e+00", "100")
        if r[1] == "p>0.5":
            assert r[9] == "+0.00000"  # gain of the baseline over itself
    # label maps only for the softmax workloads, baseline argmax first
    assert sorted({r[0] for r in label_maps}) == ["ct3d", "voc2d"]
    assert [r[1] for r in label_maps if r[0] == "voc2d"] == ["argmax", *accuracy.solvers_of("dice")]


def test_accuracy_iou_and_bad_arguments(capsys):
    assert (
        accuracy.main(["--quick", "--metric", "iou", "--draws", "2", "--workloads", "tiny2d"]) == 0
    )
    out = capsys.readouterr().out
    assert "E[IoU]" in out
    assert "voc2d" not in out
    assert {line.split()[1] for line in out.splitlines() if line.startswith("tiny2d ")} == {
        "p>0.5",
        "rma",
        "exact",
    }
    with pytest.raises(SystemExit):
        accuracy.main(["--draws", "1"])
    capsys.readouterr()


def test_loaded_quick(capsys, monkeypatch):
    """Both phases, and the busy processes are gone by their pids afterwards."""
    started = []
    real = loaded.busy_processes

    def spy(count, seconds, nice=0):
        cm = real(count, seconds, nice)
        pids = cm.__enter__()
        started.extend(pids)
        return _Entered(cm, pids)

    monkeypatch.setattr(loaded, "busy_processes", spy)
    args = [
        "--quick",
        "--repeat",
        "1",
        "--busy",
        "2",
        "--busy-seconds",
        "30",
        "--workloads",
        "ct3d",
    ]
    assert loaded.main(args) == 0
    out = capsys.readouterr().out
    assert "== quiet" in out and "== loaded (2 busy processes" in out
    assert out.count("threads per call") == 2
    assert "x argmax, quiet vs load" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("ct3d ")]
    labels = {r[1] for r in rows}
    assert {
        "np.argmax(axis=1)",
        "dice/multiclass/rma",
        "iou/multilabel/rma",
        "dice/multilabel/exact",
    } <= labels
    assert not any("ba" in label.split("/")[-1] for label in labels)  # only rma and exact
    assert len(started) == 2
    for pid in started:  # ended by their pids, reaped
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


class _Entered:
    def __init__(self, cm, pids):
        self.cm, self.pids = cm, pids

    def __enter__(self):
        return self.pids

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)


def test_loaded_nice_counts_threads(capsys):
    """--nice: the busy processes run under nice -n 19; the calls' thread counts reported."""
    import rankseg.cpu.driver

    real = rankseg.cpu.driver.call_threads
    args = ["--quick", "--repeat", "1", "--busy", "1", "--busy-seconds", "30", "--nice"]
    assert loaded.main([*args, "--workloads", "tumor3d", "--phases", "loaded"]) == 0
    out = capsys.readouterr().out
    assert "== loaded, niced (1 busy processes under nice -n 19)" in out
    assert "threads per call" in out
    assert rankseg.cpu.driver.call_threads is real  # the counter is gone
    assert loaded._busy_command(1.0, 19)[:3] == ["nice", "-n", "19"]
    with loaded.counting_threads() as seen:
        rankseg.predict(np.full((1, 4, rankseg._config.SERIAL_SIZE // 4), 0.25, np.float32))
        rankseg.predict(np.full((1, 2, 8), 0.5, np.float32))  # small: not counted
    assert sum(seen.values()) == 1


def test_loaded_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        loaded.main(["--repeat", "0"])
    with pytest.raises(SystemExit):
        loaded.main(["--busy", "-1"])


def test_first_call_script(capsys):
    assert first_call.main(["--rounds", "1", "--solvers", "acc"]) == 0
    out = capsys.readouterr().out
    assert "yardstick: python -c 'import numpy, scipy'" in out
    rows = [line.split() for line in out.splitlines() if " acc " in line]
    assert [(r[1], r[3]) for r in rows] == [
        ("aot", "cold"),
        ("aot", "warm"),
        ("jit", "cold"),
        ("jit", "warm"),
    ]
    for r in rows:
        assert float(r[4]) > 0 and float(r[5]) > 0 and float(r[6]) > 0


def test_dask_chunked_script_runs(tmp_path, capsys):
    """benchmarks/dask_chunked.py end to end on a tiny store, labels checked."""
    pytest.importorskip("distributed")
    pytest.importorskip("zarr")
    from benchmarks import dask_chunked

    res = dask_chunked.main(
        ["--gb", "0.0002", "--chunk", "32", "--workers", "1", "--rounds", "1",
         "--memory-limit", "1GB", "--dir", str(tmp_path), "--check"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "identical to rankseg.predict: True" in out
    assert res["ratio"] > 0


def test_limit_quick(capsys):
    argv = ["--quick", "--repeat", "2", "--workloads", "voc2d", "tumor3d", "--passes"]
    assert limit.main(argv) == 0
    out = capsys.readouterr().out
    assert "load average (1 min) before:" in out and "after:" in out
    rows = {}
    for line in out.splitlines():
        label = line[:28].strip()
        if label in limit.CONFIGS or label in ("read", "copy"):
            rows.setdefault(label, []).append(line.split())
    assert len(rows["read"]) == 2  # one per workload
    assert all(float(r[-2 if len(r) < 5 else 2]) == 1.0 for r in rows["read"])  # x read of read
    assert len(rows["rma dice multiclass"]) == 1  # tumor3d (C = 1) has no multiclass rows
    assert len(rows["rma dice multilabel"]) == 2
    for label in limit.CONFIGS:
        for r in rows[label]:
            ratio = float(r[len(label.split()) + 1])
            assert ratio > 0
            assert r[-1] in ("ok", "over")
    passes = [line for line in out.splitlines() if "passes of" in line]
    assert len(passes) == 7  # voc2d: 4 configurations; tumor3d (C = 1): no multiclass
    for line in passes:
        parts = dict(p.rsplit(" ", 1) for p in line.split(": ", 1)[1].split(", "))
        assert "row_stats_tasks" in parts and "host" in parts
        kernels = sum(float(v) for k, v in parts.items() if k.endswith("_tasks"))
        assert kernels + float(parts["host"]) == pytest.approx(float(parts["total"]), rel=0.01)
    assert "fixed cost, shape (1, 4, 32, 32)" in out
    assert "RankSEG.predict (rma dice)" in out and "the same, launchers' path" in out
    listed = [line for line in out.splitlines() if line.endswith("x argmax")]
    assert [line[:30].strip() for line in listed] == [
        "np.argmax, a loop",
        "RankSEG.predict, a loop",
        "RankSEG.predict on the list",
    ]
    assert float(listed[0].split()[-3]) == 1.0  # the yardstick's own ratio


def test_limit_cache_protocols(capsys):
    probs = np.zeros((1, 2, 4, 4), dtype=np.float32)
    assert limit.cache_hook(probs, "order") is None
    assert limit.cache_hook(probs, "warm")() == 0.0  # a read of the input
    assert limit.cache_hook(probs, "cold")() == 1.0  # a read of another array
    assert not probs.any()
    with pytest.raises(ValueError, match="cache protocol must be one of"):
        limit.cache_hook(probs, "hot")
    argv = ["--quick", "--repeat", "1", "--workloads", "tumor3d", "--cache", "cold"]
    assert limit.main(argv) == 0
    assert "cache protocol cold" in capsys.readouterr().out


def test_limit_rejects_bad_arguments(capsys):
    for bad in (["--repeat", "0"], ["--threads", "0"], ["--workloads", "nope"], ["--cache", "x"]):
        with pytest.raises(SystemExit):
            limit.main(["--quick", *bad])
    capsys.readouterr()
