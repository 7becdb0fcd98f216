"""A small RMA call as one compiled call (rankseg.kernels.rma_serial) equals the launchers.

Inputs below ``SERIAL_SIZE`` elements (and calls of one thread, batches of at
least as many samples as threads, a mid-sized sample on two threads:
``rankseg._threads.serial_threads``) run every pass of an RMA call in one compiled
function per range of samples; other calls, and this module with
``SERIAL_CALL = "never"``, run the launchers of rankseg.cpu.launchers.  The two must
agree bit for bit: labels, masks and every field of the info, for every dtype,
metric, output mode, smoothing, pruning and void policy, on ties, on rows of several
work items, and on bad values (which the serial call leaves to the launchers' path,
having written nothing).
"""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import rankseg.cpu.driver as cpu_driver
from rankseg import BadValuesError, ClassSumWarning, RankSEG
from rankseg._config import CHUNK, SERIAL_SIZE, SERIAL_TWO_SIZE
from rankseg._threads import num_threads
from rankseg.datasets import make_probs


def _inputs(dtype):
    """Named (probs, modes) cases: smooth maps, white noise, ties, several work items."""
    rng = np.random.default_rng(7)
    soft = make_probs((2, 3, 24, 20), kind="softmax", seed=1, dtype=dtype)
    sig = make_probs((2, 3, 24, 20), kind="sigmoid", seed=2, dtype=dtype)
    noise = rng.dirichlet(np.ones(4), size=(1, 17, 13)).transpose(0, 3, 1, 2).astype(dtype)
    ties = (np.round(rng.random((2, 2, 9, 11)) * 4) / 4).astype(dtype)
    flat = np.full((1, 3, 40), 1.0 / 3, dtype=dtype)
    faint = np.full((1, 2, 5, 5), 0.2, dtype=dtype)
    # a row of two work items (d > CHUNK) still below SERIAL_SIZE elements
    long = make_probs((1, 2, CHUNK + 777), kind="softmax", seed=3, dtype=dtype)
    return {
        "soft": soft,
        "sigmoid": sig,
        "noise": noise,
        "ties": ties,
        "flat": flat,
        "faint": faint,
        "long": long,
    }


def _both(model, probs, **kw):
    """(serial result, launchers' result) of one call; both with the info."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClassSumWarning)  # sigmoid maps as multiclass
        serial = model.predict(probs, return_info=True, **kw)
        cpu_driver.SERIAL_CALL = "never"
        try:
            launched = model.predict(probs, return_info=True, **kw)
        finally:
            cpu_driver.SERIAL_CALL = "always"
    return serial, launched


def _assert_same(a, b):
    (out_a, info_a), (out_b, info_b) = a, b
    assert out_a.dtype == out_b.dtype and out_a.shape == out_b.shape
    assert out_a.tobytes() == out_b.tobytes()
    for field in ("tau", "threshold", "score", "pruned"):
        fa, fb = getattr(info_a, field), getattr(info_b, field)
        assert fa.dtype == fb.dtype and fa.tobytes() == fb.tobytes(), field


def _recorder(real):
    """``(wrapper, results)``: the wrapper calls ``real`` and keeps what it returns."""
    results = []

    def recorded(*args):
        results.append(real(*args))
        return results[-1]

    return recorded, results


@pytest.fixture
def spy(monkeypatch):
    """Count the calls that took the launchers' path."""
    calls = []
    real = cpu_driver._predict

    def counted(*args):
        calls.append(args[1].shape)
        return real(*args)

    monkeypatch.setattr(cpu_driver, "_predict", counted)
    return calls


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("metric", ["dice", "iou"])
def test_serial_equals_launchers(dtype, metric, spy):
    for name, probs in _inputs(dtype).items():
        assert probs.size < SERIAL_SIZE
        for smooth in (0.0, 1.0):
            for prune in (None, 0.0, 0.95):
                kw = {} if prune is None else {"pruning_prob": prune}
                ml = RankSEG(metric=metric, smooth=smooth, output_mode="multilabel", **kw)
                serial, launched = _both(ml, probs)
                _assert_same(serial, launched)
                for void in ("max_score", "void"):
                    mc = RankSEG(metric=metric, smooth=smooth, unassigned_policy=void, **kw)
                    for label in ("int64", "uint8"):
                        serial, launched = _both(mc, probs, dtype=label)
                        _assert_same(serial, launched)
        assert len(spy) > 0 and all(s == probs.shape for s in spy[-1:]), name
    # the serial calls never reached the launchers: only the 'never' halves did
    ncalls = len(spy)
    RankSEG(metric=metric).predict(_inputs(dtype)["soft"])
    assert len(spy) == ncalls


def test_serial_path_is_taken_as_serial_threads_says(spy, monkeypatch):
    """RMA only; one thread, a batch of at least as many units as threads, or mid-sized.

    A multiclass call of fewer samples than threads forms its cuts by ranges of rows
    when it has as many rows as threads (``cut_threads``)."""
    cut_spy = []
    real = cpu_driver._predict_cut_ranges

    def cut_ranges(*args):
        done = real(*args)
        cut_spy.append(args[4])
        return done

    monkeypatch.setattr(cpu_driver, "_predict_cut_ranges", cut_ranges)
    small = make_probs((1, 3, 16, 16), seed=4)
    RankSEG().predict(small)
    RankSEG(output_mode="multilabel").predict(small)
    assert spy == []
    RankSEG(solver="exact").predict(small)  # another solver: the launchers
    RankSEG(metric="acc").predict(small)
    assert len(spy) == 2
    mid = np.full((1, 4, SERIAL_SIZE // 4), 0.25, np.float32)  # exactly SERIAL_SIZE
    large = np.full((1, 4, SERIAL_TWO_SIZE // 4), 0.25, np.float32)
    with num_threads(2):
        RankSEG().predict(mid)  # one sample below SERIAL_TWO_SIZE: one call
        assert len(spy) == 2 and cut_spy == []
        RankSEG().predict(large)  # one sample: cuts by ranges of rows, launched labels
        assert len(spy) == 2 and cut_spy == [2]
        RankSEG().predict(large.reshape(2, 2, -1) * 2)  # two samples: a call per range
        assert len(spy) == 2 and cut_spy == [2]
    with num_threads(3):
        RankSEG().predict(large.reshape(2, 2, -1) * 2)  # fewer samples than threads
        assert len(spy) == 2 and cut_spy == [2, 3]  # ... but four rows
        RankSEG().predict(large[:, :2].reshape(1, 2, -1) * 2)  # two rows: the launchers
        assert len(spy) == 3 and cut_spy == [2, 3]
    with num_threads(1):
        RankSEG().predict(large)  # one thread: one call, any size
        assert len(spy) == 3
    with num_threads(3):  # multilabel: each row decided alone, four rows for three threads
        RankSEG(output_mode="multilabel").predict(large)
        assert len(spy) == 3
        RankSEG(output_mode="multilabel").predict(large[:, :2] * 2)  # two rows: launchers
        assert len(spy) == 4 and cut_spy == [2, 3]  # (cut ranges are multiclass only)


def _split(monkeypatch, nthreads=2):
    """Make every RMA call run as compiled calls over ranges of samples on ``nthreads``."""
    monkeypatch.setattr(cpu_driver, "serial_threads", lambda size, nb, n: nthreads)


def _batch(dtype):
    """Ranges of one or more units: samples (multiclass) or rows (multilabel)."""
    rng = np.random.default_rng(11)
    cases = {k: v for k, v in _inputs(dtype).items() if v.shape[0] > 1}
    cases["many"] = make_probs((11, 3, 9, 10), kind="softmax", seed=12, dtype=dtype)
    # samples of two work items each, one of them tied throughout
    long = make_probs((3, 2, CHUNK + 5), kind="softmax", seed=13, dtype=dtype)
    long[1] = 0.5
    cases["long"] = long
    cases["ties"] = (np.round(rng.random((5, 2, 7, 7)) * 4) / 4).astype(dtype)
    # one sample: multilabel takes ranges of its rows, multiclass one call
    cases["one"] = make_probs((1, 5, 30, 31), kind="softmax", seed=17, dtype=dtype)
    return cases


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_ranges_of_samples_equal_launchers(dtype, spy, monkeypatch):
    _split(monkeypatch)
    for name, probs in _batch(dtype).items():
        for metric, smooth in (("dice", 0.0), ("iou", 1.0)):
            ml = RankSEG(metric=metric, smooth=smooth, output_mode="multilabel")
            _assert_same(*_both(ml, probs))
            for void in ("max_score", "void"):
                mc = RankSEG(metric=metric, smooth=smooth, unassigned_policy=void)
                _assert_same(*_both(mc, probs, dtype="uint8"))
        assert spy and spy[-1] == probs.shape, name
    ncalls = len(spy)
    RankSEG().predict(_batch(dtype)["many"])  # the ranges' calls never reach the launchers
    assert len(spy) == ncalls


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_ranges_fill_out_only_when_every_range_is_done(mode, spy, monkeypatch):
    """With ``out``: the ranges write into a new array, copied once all are valid.

    Multiclass ranges hold samples, multilabel ones rows: the NaN is in the last
    range either way."""
    _split(monkeypatch)
    probs = make_probs((6, 3, 10, 12), kind="softmax", seed=14)
    model = RankSEG(output_mode=mode)
    plan = model.plan(probs.shape, probs.dtype)
    out = np.full(plan.out_shape, 7, dtype=plan.out_dtype)
    assert model.predict(probs, out=out) is out and spy == []
    cpu_driver.SERIAL_CALL = "never"
    try:
        np.testing.assert_array_equal(out, model.predict(probs))
    finally:
        cpu_driver.SERIAL_CALL = "always"
    probs[5, 1, 3, 4] = np.nan  # in the last range: the others are done before it
    frozen = probs.copy()
    out[...] = 7
    before = out.copy()
    with pytest.raises(BadValuesError) as err:
        model.predict(probs, out=out)
    assert err.value.sample == 5 and err.value.class_ == 1
    np.testing.assert_array_equal(out, before)
    np.testing.assert_array_equal(probs, frozen)


def test_ranges_negative_zero_falls_back_and_agrees(spy, monkeypatch):
    _split(monkeypatch)
    probs = make_probs((4, 3, 8, 8), kind="sigmoid", seed=15)
    probs[2, 1] = -0.0  # one range's row: that range stops, the call takes the launchers
    out = np.zeros((4, 3, 8, 8), dtype=bool)
    model = RankSEG(output_mode="multilabel", smooth=1.0)
    serial, launched = _both(model, probs)
    _assert_same(serial, launched)
    assert len(spy) == 2
    assert model.predict(probs, out=out) is out
    np.testing.assert_array_equal(out, launched[0])


def _cut_ranges(monkeypatch, nthreads=2):
    """Make every multiclass RMA call form its cuts by ranges of rows on ``nthreads``."""
    monkeypatch.setattr(cpu_driver, "serial_threads", lambda size, units, n: 0)
    monkeypatch.setattr(cpu_driver, "cut_threads", lambda rows, n: nthreads)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_cut_ranges_equal_launchers(dtype, spy, monkeypatch):
    """Cuts by ranges of rows, then the launched labels: the launchers' bits."""
    _cut_ranges(monkeypatch)
    cases = {**_inputs(dtype), **_batch(dtype)}
    for name, probs in cases.items():
        for metric, smooth in (("dice", 0.0), ("iou", 1.0)):
            for prune in (None, 0.95):
                kw = {} if prune is None else {"pruning_prob": prune}
                for void in ("max_score", "void"):
                    mc = RankSEG(metric=metric, smooth=smooth, unassigned_policy=void, **kw)
                    _assert_same(*_both(mc, probs, dtype="int32"))
        assert spy and spy[-1] == probs.shape, name
    ncalls = len(spy)
    RankSEG().predict(cases["many"])  # the cut ranges never reached _predict
    assert len(spy) == ncalls


def test_cut_ranges_bad_values_write_nothing(spy, monkeypatch):
    _cut_ranges(monkeypatch)
    probs = make_probs((1, 5, 10, 12), kind="softmax", seed=18)
    probs[0, 4, 3, 4] = 1.5  # in the last range of rows
    out = np.full((1, 10, 12), 7, dtype=np.int64)
    with pytest.raises(BadValuesError) as err:
        RankSEG().predict(probs, out=out)
    assert err.value.class_ == 4
    assert (out == 7).all() and len(spy) == 1
    probs[0, 4, 3, 4] = -0.0  # valid: the launchers decide it, as they would anyway
    serial, launched = _both(RankSEG(), probs)
    _assert_same(serial, launched)


def test_ranges_class_sum_warning(spy, monkeypatch):
    _split(monkeypatch)
    sig = make_probs((3, 3, 10, 10), seed=16)
    sig[2] *= np.float32(0.5)  # the last sample sums to 0.5, not 1
    with pytest.warns(ClassSumWarning, match="sample 2"):
        RankSEG().predict(sig)
    assert spy == []


def test_out_is_filled_and_returned(spy):
    probs = make_probs((2, 4, 12, 12), seed=5)
    out = np.full((2, 12, 12), 99, dtype=np.int32)
    res = RankSEG().predict(probs, out=out)
    assert res is out and spy == []
    np.testing.assert_array_equal(out, RankSEG().predict(probs))


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -0.25, 1.5])
@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
def test_bad_values_raise_and_write_nothing(dtype, bad, mode, spy):
    probs = make_probs((1, 3, 8, 8), seed=6, dtype=dtype)
    probs[0, 1, 3, 4] = bad
    frozen = probs.copy()
    plan = RankSEG(output_mode=mode).plan(probs.shape, probs.dtype)
    out = np.full(plan.out_shape, 7, dtype=plan.out_dtype)
    before = out.copy()
    with pytest.raises(BadValuesError) as err:
        RankSEG(output_mode=mode).predict(probs, out=out)
    assert err.value.sample == 0 and err.value.class_ == 1
    np.testing.assert_array_equal(out, before)  # the serial call stopped before writing
    np.testing.assert_array_equal(probs, frozen)
    assert len(spy) == 1  # the launchers' path told which value and raised


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_negative_zero_rows_fall_back_and_agree(dtype, spy):
    probs = make_probs((1, 3, 8, 8), kind="sigmoid", seed=8, dtype=dtype)
    probs[0, 2] = -0.0  # a valid row whose largest bit pattern lies above 1.0's
    serial, launched = _both(RankSEG(output_mode="multilabel", smooth=1.0), probs)
    _assert_same(serial, launched)
    assert len(spy) == 2


def test_class_sum_warning_from_the_serial_call(spy):
    sig = make_probs((1, 3, 10, 10), seed=9) * np.float32(0.5)  # sums to 0.5, not 1
    with pytest.warns(ClassSumWarning, match="sample 0"):
        RankSEG().predict(sig)
    assert spy == []


def test_ready_policy_asks_whether_a_compile_is_needed(monkeypatch, spy):
    """By default the one call runs only when it needs no compile (aot.ready)."""
    probs = make_probs((1, 3, 12, 12), seed=10)
    expected = RankSEG().predict(probs)
    assert spy == []
    monkeypatch.setattr(cpu_driver, "SERIAL_CALL", "ready")
    monkeypatch.setattr(cpu_driver, "_serial_ready", {})  # nothing known ready yet
    monkeypatch.setattr(cpu_driver._aot, "find", lambda kernel, args: kernel)  # no AOT
    asked = []

    def not_compiled(kernel, args):
        asked.append(kernel)
        return False

    monkeypatch.setattr(cpu_driver._aot, "ready", not_compiled)
    np.testing.assert_array_equal(RankSEG().predict(probs), expected)
    assert len(spy) == 1 and len(asked) == 1  # the launchers' path, same labels
    monkeypatch.setattr(cpu_driver._aot, "ready", lambda kernel, args: True)
    np.testing.assert_array_equal(RankSEG().predict(probs), expected)
    assert len(spy) == 1
    monkeypatch.setattr(cpu_driver._aot, "ready", not_compiled)
    RankSEG().predict(probs)  # a yes is kept: not asked again
    assert len(spy) == 1 and len(asked) == 1


def test_aot_ready_sees_this_process_and_the_disk_cache(tmp_path):
    """ready() is False before a compile, True after it and in a later process."""
    (tmp_path / "tiny_kernel.py").write_text(
        textwrap.dedent(
            """
            from rankseg._compile.jit import jit

            @jit
            def double(x):
                return 2 * x
            """
        )
    )
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from rankseg._compile import aot
        from tiny_kernel import double
        args = (np.arange(3.0),)
        before = aot.ready(double, args)
        if sys.argv[1] == "compile":
            double(*args)
        print(before, aot.ready(double, args), aot.ready(double, (np.arange(3),)))
        """
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "RANKSEG_AOT": "0"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])

    def run(mode):
        out = subprocess.run(
            [sys.executable, "-c", code, mode], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert run("compile") == ["False", "True", "False"]  # compiled in this process
    assert run("ask") == ["True", "True", "False"]  # in the disk cache; int64 never was


@pytest.mark.parametrize("slots", [0, 1, 7])
@pytest.mark.parametrize("kind", ["soft", "noise", "long"])
def test_band_values_that_do_not_fit_their_slots(monkeypatch, slots, kind):
    """A work item whose band overflows its slots is gathered again from the input."""
    import rankseg.cpu.launchers as launchers

    probs = _inputs("float32")[kind]
    models = [
        RankSEG(solver=solver, output_mode=mode, metric=metric, smooth=1.0)
        for solver in ("rma", "exact")
        for mode, metric in (("multilabel", "dice"), ("multiclass", "iou"))
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClassSumWarning)
        refs = [m.predict(probs, return_info=True) for m in models]  # slots that fit
        monkeypatch.setattr(launchers, "BAND_SLOTS", slots)
        monkeypatch.setattr(cpu_driver, "SERIAL_CALL", "never")
        for model, ref in zip(models, refs, strict=True):
            _assert_same(model.predict(probs, return_info=True), ref)


@pytest.mark.parametrize("serial", ["always", "never"])
@pytest.mark.parametrize("slots", [0, 1, 4])
@pytest.mark.parametrize("kind", ["soft", "noise", "ties", "long"])
def test_unsettled_pixels_that_do_not_fit_their_log(monkeypatch, serial, slots, kind):
    """Pass A logs a work item's unsettled pixels; those past its slots are scanned.

    With 1 (asked: 0 or 1) or 4 slots per item the second pass resolves part of
    each item from the log and the rest in batches that it scans in the input: the
    labels must be those of a log that holds every pixel, with and without the
    void label, in the serial call and in the launchers (whose logs are looked at).
    """
    import rankseg.cpu.launchers as launchers

    probs = _inputs("float32")[kind]
    models = [
        RankSEG(metric=metric, smooth=smooth, **kw)
        for metric in ("dice", "iou")
        for smooth in (0.0, 1.0)
        for kw in ({}, {"unassigned_policy": "void", "void_index": 9})
    ]
    recorded, logs = _recorder(launchers.conflict_log)
    monkeypatch.setattr(launchers, "conflict_log", recorded)

    def run():
        return [m.predict(probs, return_info=True) for m in models]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClassSumWarning)
        monkeypatch.setattr(cpu_driver, "SERIAL_CALL", "never")
        monkeypatch.setattr(launchers, "CONFLICT_SHARE", 1)  # an item may log all its pixels
        refs = run()  # every pixel fits
        assert all((lg[2] <= lg[0].shape[1]).all() for lg in logs)
        assert max(int(lg[2].max()) for lg in logs) > slots  # the case has them to log
        monkeypatch.setattr(launchers, "CONFLICT_SLOTS", slots)
        logs.clear()
        small = run()
        assert all(lg[0].shape[1] == max(slots, 1) for lg in logs)  # one slot at least
        assert any((lg[2] > max(slots, 1)).any() for lg in logs)  # the scan ran
        monkeypatch.setattr(cpu_driver, "SERIAL_CALL", serial)
        if serial == "always":
            small = run()
    for got, ref in zip(small, refs, strict=True):
        _assert_same(got, ref)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_skipping_work_items_by_their_maximum_changes_nothing(monkeypatch, dtype):
    """Passes skip the work items whose maximum cannot reach a row's bound or cut.

    With every maximum reported as infinite nothing is skipped; the outputs must be
    the same bit for bit, on maps whose classes each cover a few of many work items.
    """
    import rankseg.cpu.launchers as launchers

    monkeypatch.setattr(cpu_driver, "CHUNK", 97)  # many work items per row
    monkeypatch.setattr(cpu_driver, "SERIAL_CALL", "never")
    organs = make_probs((2, 5, 30, 40), seed=11, bias=[3.0, -2.0, -2.0, -3.0, -4.0])
    ties = np.round(make_probs((1, 3, 25, 25), seed=12) * 6) / 6
    cases = [organs.astype(dtype), ties.astype(dtype), make_probs((1, 3, 700), seed=13)]
    models = [
        RankSEG(solver=solver, output_mode=mode, metric=metric, smooth=smooth)
        for solver in ("rma", "exact")
        for mode in ("multiclass", "multilabel")
        for metric in ("dice", "iou")
        for smooth in (0.0, 1.0)
    ]
    real = launchers.chunk_maxima
    recorded, seen = _recorder(real)
    monkeypatch.setattr(cpu_driver, "chunk_maxima", recorded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClassSumWarning)
        skipped = [[m.predict(p, return_info=True) for m in models] for p in cases]
        # the organs' rows have work items far below any cut (0.43-0.51 here): skipped
        assert (seen[0] < 0.2).sum() >= 10
        monkeypatch.setattr(cpu_driver, "chunk_maxima", lambda *a: np.full_like(real(*a), np.inf))
        for p, results in zip(cases, skipped, strict=True):
            for m, res in zip(models, results, strict=True):
                _assert_same(m.predict(p, return_info=True), res)


def test_the_compiled_call_is_kept_per_layout(monkeypatch):
    """Rows viewed F-ordered (a transposed input) are not run by the C-ordered kernel.

    The ahead-of-time kernels are compiled per layout: the kept function must be
    found again for another one (a wrong one would read the rows in the wrong order).
    """
    monkeypatch.setattr(cpu_driver, "_serial_ready", {})
    c_order = make_probs((1, 3, 13, 17), seed=14)
    # classes last in memory (a channels-last map viewed channels-first): its rows
    # (B*C, d) are an F-ordered view, used in place
    f_order = np.ascontiguousarray(c_order.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert f_order.reshape(3, -1).flags.f_contiguous
    model = RankSEG(output_mode="multilabel")
    model.predict(c_order)
    model.predict(f_order)
    layouts = {key[1].split(";")[0] for key in cpu_driver._serial_ready}
    assert layouts == {"<f4:2:C:11", "<f4:2:F:11"}
    _assert_same(*_both(model, f_order))


def test_the_compiled_call_is_kept_per_output_dtype(monkeypatch):
    """Labels of another dtype are not written by the kernel kept for the first one.

    The ahead-of-time kernels are compiled per label dtype: a kernel kept for
    int64 labels and run on uint8 ones writes past them (a crash with the wheel's
    kernels).  The key holds the rows and the output, the last argument.
    """
    monkeypatch.setattr(cpu_driver, "_serial_ready", {})
    probs = make_probs((2, 4, 6, 6), seed=15)
    model = RankSEG()
    for dtype in (np.int64, np.uint8, np.int16):
        got = model.predict(probs, dtype=dtype)
        assert got.dtype == dtype
    outs = {key[1].split(";")[-1] for key in cpu_driver._serial_ready}
    assert len(outs) == 3, cpu_driver._serial_ready.keys()
    ref = model.predict(probs)
    for dtype in (np.uint8, np.int16):
        np.testing.assert_array_equal(model.predict(probs, dtype=dtype), ref)
