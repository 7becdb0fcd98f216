"""The kernels compiled ahead of time (``rankseg._kernels_aot``, :mod:`rankseg._compile.aot`).

A source install does not build the module (``RANKSEG_AOT=1`` does, as the wheels
of a release do): the tests that need it skip without it, unless
``RANKSEG_EXPECT_AOT=1`` says it must be there -- the wheel check
(``noxfile.py``, session ``wheel``) sets it, and then a missing or unusable module
fails them.  An editable install whose kernels were edited since needs a rebuild:
``RANKSEG_AOT=1 pip install -e .`` again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rankseg
import rankseg.cpu.driver as cpu_driver
from rankseg import _threads
from rankseg._compile import aot as _aot

EXPECTED = os.environ.get("RANKSEG_EXPECT_AOT") == "1"


def _require_table() -> dict:
    table = _aot.table()
    if not table:
        reason = _aot.info()["reason"]
        if not EXPECTED:
            pytest.skip(f"no compiled kernels in this install: {reason}")
        pytest.fail(f"RANKSEG_EXPECT_AOT=1 but rankseg._kernels_aot is not used: {reason}")
    return table


def test_the_module_loads_and_matches_this_install():
    table = _require_table()
    import rankseg._kernels_aot as mod

    index = json.loads(mod.index())
    assert index["source"] == _aot.source_digest()
    assert set(index["versions"]) == {"numba", "llvmlite"}
    assert len(table) == len(index["exports"]) > 50
    info = _aot.info()
    assert info["built"] and info["used"] and info["exports"] == len(table)


def test_its_wrappers_release_the_gil():
    """pycc's wrappers hold the GIL unless the build sets ``release_gil`` (run_tasks
    runs the kernels on several Python threads)."""
    _require_table()
    import rankseg._kernels_aot as mod

    with open(mod.__file__, "rb") as fh:
        binary = fh.read()
    assert b"PyEval_SaveThread" in binary and b"PyEval_RestoreThread" in binary


def test_cpu_features_ok():
    assert _aot.cpu_features_ok("+avx2,-avx512f,+sse4.2", "+sse4.2,+avx2,+avx512f")
    assert _aot.cpu_features_ok("-avx512f", "")
    assert not _aot.cpu_features_ok("+avx2,+avx512f", "+avx2,-avx512f")


def test_signature_key_is_as_fine_as_numbas_typing(tmp_path):
    import numba

    frozen = np.zeros(3)
    frozen.flags.writeable = False
    mm = np.lib.format.open_memmap(tmp_path / "m.npy", mode="w+", dtype=np.float32, shape=(2, 2))
    args = [
        1,
        np.int64(2),
        np.int32(2),
        0.5,
        np.float32(0.5),
        True,
        np.bool_(True),
        np.zeros((2, 2), np.float32),
        mm,
        np.zeros((2, 2), np.float32, order="F"),
        np.zeros((4, 4))[:, ::2],
        frozen,
        np.zeros(3),
        np.zeros(3, np.float16),
        (np.zeros(1, np.int64), 3),
        (np.zeros(1, np.int64), 3.0),
    ]
    by_key: dict = {}
    for a in args:
        by_key.setdefault(_aot.signature_key([a]), set()).add(numba.typeof(a))
    assert all(len(types) == 1 for types in by_key.values()), by_key  # never two types
    assert _aot.signature_key([mm]) == _aot.signature_key([np.zeros((2, 2), np.float32)])
    assert numba.typeof(mm) == numba.typeof(np.zeros((2, 2), np.float32))
    assert _aot.signature_key([1 << 64]) is None
    assert _aot.signature_key([object()]) is None
    assert _aot.signature_key([(1, "s")]) is None


def test_a_signature_it_lacks_goes_to_numba():
    from rankseg.kernels.masks import threshold_tasks

    _require_table()
    args = (0, 1, np.zeros((1, 4), np.float32), np.zeros((1, 4), np.bool_), np.int64(4))
    assert _aot.find(threshold_tasks, args) is not threshold_tasks
    fortran = (0, 1, np.zeros((2, 4), np.float32, order="F"), args[3], args[4])
    assert _aot.find(threshold_tasks, fortran) is threshold_tasks
    with _aot.enabled(False):
        assert _aot.find(threshold_tasks, args) is threshold_tasks


def test_a_module_from_other_sources_is_not_used_and_says_so(monkeypatch, capsys):
    _require_table()
    assert _aot._load()
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_aot, "source_digest", lambda: "edited since the build")
    assert _aot._load() == {}
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "not used (built from other kernel sources)" in err and "first use" in err
    assert _aot.info()["reason"] == "built from other kernel sources"


def test_a_module_for_missing_cpu_features_is_not_used_and_says_so(monkeypatch, capsys):
    _require_table()
    monkeypatch.setattr(_aot, "host_features", lambda: "-avx,-avx2,-sse4.2")
    assert _aot._load() == {}
    err = capsys.readouterr().err
    assert "built for CPU features this machine lacks: " in err and "sse4.2" in err


def test_unusable_names_what_is_wrong(monkeypatch):
    monkeypatch.setattr(_aot, "host_features", lambda: "+sse4.2,+popcnt,-avx2")
    ok = {"source": _aot.source_digest(), "features": "+sse4.2,+popcnt"}
    assert _aot.unusable(ok) is None
    assert _aot.unusable({**ok, "source": "x"}) == "built from other kernel sources"
    assert _aot.unusable({**ok, "features": "+sse4.2,+avx2,+fma"}).endswith("lacks: avx2, fma")


def test_a_portable_build_targets_the_x86_64_v2_baseline(monkeypatch):
    import platform

    from rankseg._compile import build

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    cpu, features = build.portable_target()
    assert cpu == "x86-64-v2"
    assert set(features.split(",")) == {
        "+cx16",
        "+popcnt",
        "+sahf",
        "+sse3",
        "+sse4.1",
        "+sse4.2",
        "+ssse3",
    }
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert build.portable_target() == ("", "")


def test_the_module_targets_what_its_index_says():
    _require_table()
    import rankseg._kernels_aot as mod

    index = json.loads(mod.index())
    if index["cpu"] == "x86-64-v2":  # a portable build (the default): v2 features only
        assert not {f for f in index["features"].split(",") if "avx" in f}


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("RANKSEG_AOT", "0")
    assert _aot._load() == {}


def _count_hits(table: dict, monkeypatch) -> list:
    """Wrap every compiled function of ``table`` so that its calls are listed."""
    hits: list = []
    monkeypatch.setattr(cpu_driver, "_serial_ready", {})  # looked up in the table again
    for key, fn in list(table.items()):
        monkeypatch.setitem(table, key, lambda *a, _fn=fn, _k=key: (hits.append(_k), _fn(*a))[1])
    return hits


def _inputs(rng, dtype, nc, d):
    soft = rng.dirichlet(np.ones(nc), size=(2, d)).transpose(0, 2, 1)
    levels = rng.choice([0.05, 0.3, 0.5, 0.7, 0.95], size=(2, 1, d))  # ties
    tied = np.concatenate([levels, (1 - levels).repeat(nc - 1, axis=1) / (nc - 1)], axis=1)
    return [np.ascontiguousarray(a.astype(dtype)) for a in (soft, tied)]


CONFIGS = [
    dict(metric="dice"),
    dict(metric="dice", smooth=1.0),
    dict(metric="iou"),
    dict(metric="dice", solver="exact"),
    dict(metric="iou", solver="exact", smooth=0.5),
    dict(metric="dice", solver="ba"),
    dict(metric="dice", solver="trna"),
    dict(metric="dice", solver="ba+trna", smooth=1.0),
    dict(metric="dice", unassigned_policy="void"),
    dict(metric="acc"),
]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_results_equal_numbas(rng, dtype, mode, monkeypatch):
    """Same labels, masks and info with the compiled module as with numba's JIT.

    Rows of 2.5 work items (several threads); the compiled functions are counted to
    show they ran.
    """
    hits = _count_hits(_require_table(), monkeypatch)
    d = 5 * (1 << 16) // 2
    for nc in (2, 3):
        for probs in _inputs(rng, dtype, nc, d):
            if mode == "multilabel" and nc == 3:
                probs = np.ascontiguousarray(probs[:, :2])
            for kwargs in CONFIGS:
                info = kwargs["metric"] != "acc"
                if mode == "multilabel" and "unassigned_policy" in kwargs:
                    continue
                before = len(hits)
                got = rankseg.predict(probs, output_mode=mode, return_info=info, **kwargs)
                assert len(hits) > before, kwargs
                with _aot.enabled(False):
                    want = rankseg.predict(probs, output_mode=mode, return_info=info, **kwargs)
                if info:
                    (got, got_info), (want, want_info) = got, want
                    for field in ("tau", "threshold", "score", "pruned"):
                        np.testing.assert_array_equal(
                            getattr(got_info, field), getattr(want_info, field), err_msg=field
                        )
                np.testing.assert_array_equal(got, want, err_msg=f"{kwargs} nc={nc}")


def test_read_only_input_and_label_dtypes_use_it(rng, tmp_path, monkeypatch):
    table = _require_table()
    import rankseg._kernels_aot as mod

    exports = json.loads(mod.index())["exports"]
    types = [e["types"] for e in exports if e["name"] == "exclusive_tasks"]
    assert any("readonly array(float32" in t for t in types)
    hits = _count_hits(table, monkeypatch)
    np.save(tmp_path / "p.npy", _inputs(rng, "float32", 3, 100)[0])
    frozen = np.load(tmp_path / "p.npy", mmap_mode="r")  # a read-only memmap
    for label in ("uint8", "int32", "int64"):
        assert any(f"array({label}, 2d, C)" in t for t in types), label
        hits.clear()
        got = rankseg.predict(frozen, dtype=label)  # small: the one compiled call
        assert {k[1] for k in hits} == {"rma_labels_serial"}, label
        hits.clear()
        monkeypatch.setattr(cpu_driver, "SERIAL_CALL", "never")  # a larger call's passes
        launched = rankseg.predict(frozen, dtype=label)
        monkeypatch.setattr(cpu_driver, "SERIAL_CALL", "always")
        assert {k[1] for k in hits} >= {"row_stats_tasks", "exclusive_tasks"}, label
        np.testing.assert_array_equal(got, launched)
        with _aot.enabled(False):
            np.testing.assert_array_equal(got, rankseg.predict(frozen, dtype=label))


def test_a_first_call_compiles_nothing(tmp_path):
    """The first calls of benchmarks/first_call.py, in a process with an empty cache."""
    _require_table()
    probe = """
        import numpy as np
        from numba.core import event
        import rankseg
        rec = event.RecordingListener()
        event.register("numba:compile", rec)
        p = np.linspace(0.0, 1.0, 64).reshape(1, 1, 8, 8)
        for dtype in ("float16", "float32", "float64"):
            x = np.concatenate([p, 1 - p], axis=1).astype(dtype)
            rankseg.predict(x, metric="dice")
            rankseg.predict(x, metric="dice", solver="exact")
            rankseg.predict(x, metric="iou", output_mode="multilabel")
            rankseg.predict(x, metric="acc")
            rankseg.predict(x, metric="acc", output_mode="multilabel")
        names = [e.data["dispatcher"].py_func.__qualname__ for _, e in rec.buffer if e.is_start]
        print(names)
    """
    assert _probe(probe, NUMBA_CACHE_DIR=str(tmp_path), RANKSEG_AOT="1") == "[]"
    assert not any(tmp_path.rglob("*.nbi"))


def _probe(code: str, **env: str) -> str:
    """Run ``code`` in a fresh interpreter; return what it printed."""
    full = {**os.environ, **env}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def test_import_rankseg_does_not_import_numba():
    assert _probe("import sys, rankseg; print('numba' in sys.modules)") == "False"


def test_calls_the_module_answers_never_import_numba(tmp_path):
    """What makes the warm first call short: numba's import is most of it."""
    _require_table()
    code = """
        import sys
        import numpy as np
        import rankseg
        from rankseg._compile import jit as _config
        p = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(1, 1, 8, 8)
        x = np.concatenate([p, 1 - p], axis=1)
        big = np.concatenate([x] * 4096, axis=0)  # several work items and threads
        for probs in (x, big):
            rankseg.predict(probs)
            rankseg.predict(probs, solver="exact", output_mode="multilabel")
        print("numba" in sys.modules, _config._live)
    """
    assert _probe(code, NUMBA_CACHE_DIR=str(tmp_path)) == "False False"
    # the same calls without the module import numba and make the dispatchers
    assert _probe(code, NUMBA_CACHE_DIR=str(tmp_path), RANKSEG_AOT="0") == "True True"


def test_lazy_kernels_become_their_dispatchers():
    code = """
        import pickle
        import rankseg
        from rankseg._compile import jit as _config
        from rankseg._policies import DICE
        from rankseg.kernels import rma
        lazy = rma.rma_objective
        print(isinstance(lazy, _config.LazyKernel), pickle.loads(pickle.dumps(lazy)) is lazy)
        args = (DICE, 3.0, 4, 10.0, 0.5)
        print(lazy(*args) == lazy.py_func(*args))  # the call made every dispatcher
        live = rma.rma_objective
        again = pickle.loads(pickle.dumps(lazy))
        print(type(live).__name__, live is lazy.dispatcher, again is live)
        print(_config.KERNELS[("rankseg.kernels.rma", "rma_objective")] is live)
    """
    assert _probe(code, RANKSEG_AOT="0").splitlines() == [
        "True True",
        "True",
        "CPUDispatcher True True",
        "True",
    ]


def test_thread_count_without_numba():
    code = """
        import sys
        import numpy as np
        import rankseg
        from rankseg import _threads
        from rankseg._compile import jit as _config
        print(_threads._numba_cap(), _threads.threads())
        with rankseg.num_threads(1):
            print(_threads.threads())
        with rankseg.num_threads(99):
            print(_threads.threads(), rankseg.get_num_threads())
        rankseg.set_num_threads(2)
        print(rankseg.get_num_threads(), _threads.call_threads(1))
        print("numba" in sys.modules, _config.imported_numba())
        import numba
        print(_config.imported_numba() is numba, _threads._started_numba())
    """
    expected = min(3, _threads.cpu_count())
    assert _probe(code, NUMBA_NUM_THREADS="3", RANKSEG_NUM_THREADS="").splitlines() == [
        f"3 {expected}",
        "1",
        "99 99",
        "2 1",
        "False None",
        "True None",  # numba imported, its threads not started: never by rankseg
    ]


def test_a_failed_build_is_said_not_hidden(tmp_path, monkeypatch):
    """pip hides the output of a build that went on without the module: the note
    setup.py leaves beside the package is what says so, at first use and in --version."""
    assert _aot.build_failure(str(tmp_path)) is None
    (tmp_path / "_kernels_aot.failed").write_text("compiling failed (no C compiler)\n")
    assert _aot.build_failure(str(tmp_path)) == "compiling failed (no C compiler)"


def test_discovery_records_kernels_only(monkeypatch):
    """A Python function handed to run_tasks (the driver's ranges) is not recorded.

    Only kernels can be compiled ahead of time: the build looks every recorded call up
    among the kernels, and a closure's name there failed the wheel's build.
    """
    from rankseg.kernels.summary import blocks_in_order

    monkeypatch.setattr(_aot, "RECORD", [])

    def ranges(k0, k1):
        return None

    part = np.zeros((1, 2, 3))
    assert _aot.find(ranges, (0, 1)) is ranges
    _aot.find(blocks_in_order, (part, np.zeros((1, 3))))
    assert [(m, n) for m, n, _, _ in _aot.RECORD] == [
        ("rankseg.kernels.summary", "blocks_in_order")
    ]
