"""Batch runs that survive (dead workers, dead parents, concurrent runs, leftovers) and
``rankseg predict`` on a real dask.distributed cluster."""

import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from rankseg import io as rio
from rankseg import predict
from rankseg.__main__ import main
from rankseg.cli import _batch

from _cli_helpers import run, softmax
from _dask_cluster import dask_cluster, env

HOOK = _batch.TEST_HOOK_ENV


def make_cases(rng, folder, n):
    folder.mkdir()
    probs = {}
    for i in range(n):
        probs[f"c{i}"] = softmax(rng, (3, 4, 6, 5))
        np.save(folder / f"c{i}.npy", probs[f"c{i}"])
    return probs


def expected(p):
    return predict(p[None])[0].astype(np.uint8)


def dead_pid():
    """A pid that just ended (reaped), for a stale claim."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_claim(out, pid, host=None, start=""):
    path = _batch.claim_path(out)
    path.write_text(f"{pid} {host or socket.gethostname()} {start}\n")
    return path


# ------------------------------------------------------------------ dead workers


def test_killed_worker_retried_once_then_reported(rng, tmp_path, capsys, monkeypatch):
    probs = make_cases(rng, tmp_path / "in", 5)
    marker = tmp_path / "killed-once"
    # c1 kills its worker every time; c3 only the first time (the retry succeeds)
    monkeypatch.setenv(HOOK, f"c1=kill;c3=kill-once:{marker}")
    out = tmp_path / "out"
    code, _, err = run(capsys, "predict", tmp_path / "in", "-o", out, "-j", 2)
    assert code == 1, err
    assert marker.exists()  # c3's first worker was killed
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "c1.npy" in lines[0], err
    assert "killed by SIGKILL" in lines[0] and "again in a fresh worker" in lines[0]
    assert "memory" in lines[0] and "-j" in lines[0]
    assert "4 written, 0 skipped (output exists), 1 failed, of 5 case(s)" in err
    assert not (out / "c1.npy").exists()
    for name in ("c0", "c2", "c3", "c4"):
        np.testing.assert_array_equal(np.load(out / f"{name}.npy"), expected(probs[name]))
    assert not list(out.glob(".*"))  # no claim or temporary file left


def _children(pid):
    psutil = pytest.importorskip("psutil")
    return psutil.Process(pid).children()


def test_workers_end_when_the_parent_is_killed(rng, tmp_path):
    psutil = pytest.importorskip("psutil")
    make_cases(rng, tmp_path / "in", 4)
    cmd = [sys.executable, "-m", "rankseg", "predict", str(tmp_path / "in"), "-o"]
    proc = subprocess.Popen(
        [*cmd, str(tmp_path / "out"), "-j", "2", "--quiet"],
        env=env(**{HOOK: "*=sleep:60"}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 40
        workers = []
        while time.monotonic() < deadline:
            workers = [
                c for c in _children(proc.pid) if "spawn_main" in " ".join(c.cmdline() or [])
            ]
            if len(workers) == 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2, "the two workers did not start"
        proc.kill()
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers outlived their parent: {alive}"
    finally:
        proc.kill()
        for c in psutil.Process().children(recursive=True):
            if c.pid != os.getpid():
                try:
                    if "spawn_main" in " ".join(c.cmdline() or []):
                        c.kill()
                except psutil.NoSuchProcess:
                    pass


# ------------------------------------------------------------------ overwrite


def test_existing_outputs_need_overwrite_or_continue(rng, tmp_path, capsys):
    probs = make_cases(rng, tmp_path / "in", 2)
    out = tmp_path / "out"
    assert run(capsys, "predict", tmp_path / "in", "-o", out)[0] == 0
    np.save(out / "c0.npy", np.zeros((6, 5), np.uint8))  # an output to keep or replace
    before = (out / "c0.npy").read_bytes()
    (out / "c1.npy").unlink()
    code, _, err = run(capsys, "predict", tmp_path / "in", "-o", out)
    assert code == 2
    assert "1 output(s) exist already" in err and "c0.npy" in err
    assert "--overwrite" in err and "--continue" in err
    assert (out / "c0.npy").read_bytes() == before and not (out / "c1.npy").exists()

    code, _, err = run(capsys, "predict", tmp_path / "in", "-o", out, "--continue")
    assert code == 0 and "1 written, 1 skipped (output exists)" in err
    assert (out / "c0.npy").read_bytes() == before

    code, _, err = run(capsys, "predict", tmp_path / "in", "-o", out, "--overwrite")
    assert code == 0 and "2 written, 0 skipped" in err
    for name, p in probs.items():
        np.testing.assert_array_equal(np.load(out / f"{name}.npy"), expected(p))

    with pytest.raises(SystemExit) as exc:
        main(["predict", str(tmp_path / "in"), "-o", str(out), "--overwrite", "--continue"])
    assert exc.value.code == 2
    assert "--overwrite replaces existing outputs, --continue keeps them" in capsys.readouterr().err


# ------------------------------------------------------------------ claims


def test_claims(tmp_path):
    out = tmp_path / "case.npy"
    claims = _batch.Claims()
    other = _batch.Claims()
    assert claims.take(out) is None
    path = _batch.claim_path(out)
    assert path.read_text().split()[:2] == [str(os.getpid()), socket.gethostname()]
    assert other._holder(path) == f"pid {os.getpid()} on {socket.gethostname()}"
    claims.release(out)
    assert not path.exists()

    # a live process of this host holds it; once dead, its claim is taken over
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_claim(out, sleeper.pid, start=_batch._start_time(sleeper.pid))
        assert claims.take(out) == f"pid {sleeper.pid} on {socket.gethostname()}"
    finally:
        sleeper.kill()
        sleeper.wait()
    assert claims.take(out) is None and path.read_text() == claims.me
    claims.release_all()

    # the pid alive but started at another time: a reused pid, not the claimant
    write_claim(out, os.getpid(), start="1")
    assert claims.take(out) is None
    claims.release_all()

    # another host: live while refreshed, stale after STALE_OTHER_HOST seconds
    write_claim(out, 12345, host="elsewhere.example")
    assert claims.take(out) == "pid 12345 on elsewhere.example"
    old = time.time() - _batch.STALE_OTHER_HOST - 5
    os.utime(path, (old, old))
    assert claims.take(out) is None
    claims.release_all()

    # an empty claim (its writer killed at once): held for a moment, then stale
    path.write_text("")
    assert claims.take(out) == "another run (starting)"
    old = time.time() - _batch.STALE_EMPTY - 5
    os.utime(path, (old, old))
    assert claims.take(out) is None
    claims.release_all()
    assert not path.exists()


def test_a_case_claimed_by_a_live_run_is_left_to_it(rng, tmp_path, capsys):
    probs = make_cases(rng, tmp_path / "in", 3)
    out = tmp_path / "out"
    out.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_claim(out / "c1.npy", sleeper.pid, start=_batch._start_time(sleeper.pid))
        code, _, err = run(capsys, "predict", tmp_path / "in", "-o", out)
        assert code == 0, err
        assert f"c1.npy: claimed by another run (pid {sleeper.pid}" in err
        assert "2 written, 0 skipped (output exists), 1 left to another run, 0 failed" in err
        assert not (out / "c1.npy").exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    # the claimant died without writing: the next --continue run takes the case over
    code, _, err = run(capsys, "predict", tmp_path / "in", "-o", out, "--continue")
    assert code == 0 and "1 written, 2 skipped (output exists), 0 failed" in err
    np.testing.assert_array_equal(np.load(out / "c1.npy"), expected(probs["c1"]))
    assert not _batch.claim_path(out / "c1.npy").exists()


def test_concurrent_continue_runs_share_the_cases(rng, tmp_path):
    n = 8
    probs = make_cases(rng, tmp_path / "in", n)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rankseg", "predict", str(tmp_path / "in"), "-o", str(out)]
    runs = [
        subprocess.Popen(
            [*cmd, "--continue", "-j", "2"],
            env=env(**{HOOK: "*=sleep:0.7"}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    errs = []
    try:
        for r in runs:
            _, e = r.communicate(timeout=120)
            assert r.returncode == 0, e
            errs.append(e)
    finally:
        for r in runs:
            r.kill()
    written = []
    for e in errs:
        summary = [ln for ln in e.splitlines() if ln.startswith("rankseg predict:")][-1]
        written.append(int(summary.split(": ")[1].split(" written")[0]))
    assert sum(written) == n, errs  # every case done once, by one of the two runs
    for name, p in probs.items():
        np.testing.assert_array_equal(np.load(out / f"{name}.npy"), expected(p))
    assert not list(out.glob(".*"))


# ------------------------------------------------------------------ leftovers


def test_leftovers_of_killed_runs_are_removed(rng, tmp_path, capsys):
    probs = make_cases(rng, tmp_path / "in", 2)
    out = tmp_path / "out"
    out.mkdir()
    # the names the writers give their temporary files, captured from the writers
    names = []

    def capture(tmp):
        names.append(tmp.name)
        tmp.write_bytes(b"partial")

    rio.atomic_write(out / "c0.npy", capture)
    rio.atomic_write(out / "c1.npy", capture)
    (out / "c0.npy").unlink()
    for name in names:  # as a kill -9 mid-write leaves them
        (out / name).write_bytes(b"partial")
    zarr_tmp = out / ".c0.npy.rankseg-tmp-0123456789ab"  # save_dataarray's folder naming
    zarr_tmp.mkdir()
    (zarr_tmp / "chunk").write_bytes(b"x")
    stale = write_claim(out / "c0.npy", dead_pid())
    unrelated = [out / ".notes", out / ".c0.npy.rankseg-tmp-short", out / "c9.npy"]
    for u in unrelated:
        u.write_bytes(b"keep")
    code, _, err = run(capsys, "predict", tmp_path / "in", "-o", out, "--continue")
    assert code == 0, err
    assert "1 written, 1 skipped (output exists)" in err
    for name in names:
        assert not (out / name).exists(), name
    assert not zarr_tmp.exists() and not stale.exists()
    for u in unrelated:
        assert u.read_bytes() == b"keep"
    np.testing.assert_array_equal(np.load(out / "c0.npy"), expected(probs["c0"]))


# ------------------------------------------------------------------ dask cluster


@pytest.fixture
def cluster(tmp_path):
    """A `dask scheduler` and two `dask worker --nthreads 1` processes (no nanny)."""
    marks = tmp_path / "marks"  # CASE.PID: which worker started which case
    marks.mkdir()
    with dask_cluster(tmp_path, **{HOOK: f"*=mark:{marks};*=sleep:1"}) as (sched_file, workers):
        yield sched_file, workers, marks


def test_predict_on_a_dask_cluster_survives_a_lost_worker(rng, tmp_path, capsys, cluster):
    sched_file, workers, marks = cluster
    n = 6
    make_cases(rng, tmp_path / "in", n)
    local = tmp_path / "local"
    assert (
        run(capsys, "predict", tmp_path / "in", "-o", local, "--info", tmp_path / "l.csv")[0] == 0
    )
    remote = tmp_path / "remote"
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rankseg",
            "predict",
            "in",
            "-o",
            "remote",
            "--scheduler-file",
            str(sched_file),
            "--info",
            "r.csv",
        ],  # fmt: skip
        cwd=tmp_path,  # relative paths: the workers get absolute ones
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not any(remote.glob("c*.npy")):
            time.sleep(0.05)
        assert any(remote.glob("c*.npy")), "no case was written"
        workers[0].send_signal(signal.SIGKILL)  # mid-run: the workers sleep 1 s per case
        workers[0].wait(timeout=10)
        _, err = cli.communicate(timeout=60)
    finally:
        cli.kill()
    assert cli.returncode == 0, err
    assert f"{n} written, 0 skipped (output exists), 0 failed, of {n} case(s)" in err
    for name in (f"c{i}.npy" for i in range(n)):
        assert (remote / name).read_bytes() == (local / name).read_bytes(), name
    assert (tmp_path / "r.csv").read_text() == (tmp_path / "l.csv").read_text()
    assert not list(remote.glob(".*"))
    # the killed worker was running a case: the other worker ran it again
    started = {}
    for m in marks.iterdir():
        case, pid = m.name.split(".")
        started.setdefault(case, set()).add(int(pid))
    assert sorted(started) == [f"c{i}" for i in range(n)]
    assert any(pids == {workers[0].pid, workers[1].pid} for pids in started.values()), started


def test_scheduler_options_are_checked(tmp_path, capsys, monkeypatch):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", np.full((2, 3, 3), 0.5, np.float32))
    base = ["predict", str(tmp_path / "in"), "-o", str(tmp_path / "out")]
    cases = [
        (["--scheduler", "tcp://x:1", "--scheduler-file", "f.json"], "not both"),
        (["--scheduler-file", str(tmp_path / "none.json")], "no such file"),
        (["--scheduler", "tcp://127.0.0.1:1", "-j", "2"], "drop -j"),
    ]
    for extra, msg in cases:
        with pytest.raises(SystemExit) as exc:
            main([*base, *extra])
        assert exc.value.code == 2
        assert msg in capsys.readouterr().err
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://127.0.0.1:1")
    with pytest.raises(SystemExit) as exc:
        main([*base, "-j", "2"])
    assert exc.value.code == 2
    assert "DASK_SCHEDULER_ADDRESS" in capsys.readouterr().err


def test_a_dask_task_shares_its_workers_threads(monkeypatch):
    distributed = pytest.importorskip("distributed")
    import dask

    from rankseg import get_num_threads

    class State:
        nthreads = 4
        executing_count = 2  # this case and one other

    class Worker:
        state = State()

    class Job:
        path = "case.npy"

    def probe(job):
        return get_num_threads(), dask.config.get("scheduler")

    monkeypatch.delenv(HOOK, raising=False)
    monkeypatch.delenv("RANKSEG_NUM_THREADS", raising=False)
    monkeypatch.setattr(distributed, "get_worker", lambda: Worker())
    assert _batch.run_on_dask_worker(probe, Job()) == (2, "synchronous")
    State.executing_count = 1
    assert _batch.run_on_dask_worker(probe, Job()) == (4, "synchronous")
