"""``rankseg evaluate``, ``calibrate`` and ``tune`` on a real dask.distributed cluster.

A ``dask scheduler`` and two ``dask worker --nthreads 1`` processes are started once
for the module (tests/_dask_cluster.py).  Each command runs locally and on the
cluster, from a folder the workers do not run in (relative paths: the workers must
get absolute ones), and everything it writes and prints must be the same; the
workers' test hook marks which worker ran which case, so a run that quietly stayed
local would fail.
"""

import json

import numpy as np
import pytest
from scipy.special import log_softmax, softmax

from rankseg.__main__ import main
from rankseg.cli import _batch

from _dask_cluster import dask_cluster

HOOK = _batch.TEST_HOOK_ENV


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The cluster: ``(scheduler file, worker processes, marks folder)``."""
    folder = tmp_path_factory.mktemp("cluster")
    marks = folder / "marks"  # CASE.PID: which worker started which case
    marks.mkdir()
    # a short sleep per case: both workers take cases
    with dask_cluster(folder, **{HOOK: f"*=mark:{marks};*=sleep:0.2"}) as (sched, workers):
        yield sched, workers, marks


def ran_on(marks, names):
    """The worker pids that ran each case of ``names`` (the hook's marks), then clear them."""
    started = {}
    for m in marks.iterdir():
        case, pid = m.name.rsplit(".", 1)
        started.setdefault(case, set()).add(int(pid))
        m.unlink()
    assert sorted(started) == sorted(names), started
    return set().union(*started.values())


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def errors(err):
    return [line for line in err.splitlines() if line.startswith("error:")]


def same_file_both_ways(capsys, here, sched, *args):
    """Run ``rankseg ARGS -o JSON`` locally and on the cluster: the same file, the same output."""
    code, out_local, err = run(capsys, *args, "-o", "local.json")
    assert code == 0, err
    code, out_remote, err = run(capsys, *args, "-o", "remote.json", "--scheduler-file", sched)
    assert code == 0, err
    assert (here / "remote.json").read_bytes() == (here / "local.json").read_bytes()
    assert out_remote == out_local
    return out_local


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Run from ``tmp_path`` (the workers run elsewhere: relative paths reach them absolute)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    return tmp_path


@pytest.fixture
def val(rng, here):
    """Six over-confident softmax cases with drawn ground truths, some of it void (255)."""
    (here / "val").mkdir()
    (here / "gt").mkdir()
    for k in range(6):
        logp = log_softmax(rng.standard_normal((3, 5, 24, 20)) * 1.5, axis=0)
        y = np.argmax(logp + rng.gumbel(size=logp.shape), axis=0).astype(np.uint8)  # a draw
        y[:, :2] = 255
        np.save(here / "val" / f"case{k}.npy", softmax(2.0 * logp, axis=0).astype(np.float32))
        np.save(here / "gt" / f"case{k}.npy", y)
    return [f"case{k}" for k in range(6)]


def test_evaluate_on_a_cluster_equals_a_local_run(rng, here, capsys, cluster):
    sched, workers, marks = cluster
    (here / "pred").mkdir()
    (here / "gt").mkdir()
    names = [f"c{k}" for k in range(7)]
    for k, name in enumerate(names):
        target = rng.integers(0, 4, (6, 9, 8)).astype(np.uint8)
        pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 4, target.shape))
        if k == 3:  # a pair that does not fit: an error line, the same in both runs
            pred = pred[:, :5]
        np.save(here / "pred" / f"{name}.npy", pred.astype(np.uint8))
        np.save(here / "gt" / f"{name}.npy", target)
    outputs = ("scores.csv", "summary.json", "report.md")

    def evaluate(tag, *extra):
        code, out, err = run(
            capsys,
            "evaluate", "pred", "--target", "gt",
            "--csv", f"{tag}-scores.csv", "--json", f"{tag}-summary.json",
            "--report", f"{tag}-report.md", *extra,
        )  # fmt: skip
        files = {o: (here / f"{tag}-{o}").read_bytes() for o in outputs}
        return code, out, errors(err), files

    local = evaluate("local")
    assert not list(marks.iterdir())  # the hook runs only on the workers
    remote = evaluate("remote", "--scheduler-file", sched)
    assert local[0] == remote[0] == 1  # the pair that does not fit
    assert remote[1] == local[1]  # the table
    assert (
        remote[2]
        == local[2]
        == ["error: pred/c3.npy: shape (6, 5, 8) differs from the target's (6, 9, 8) (gt/c3.npy)"]
    )
    for o in outputs:
        assert remote[3][o].replace(b"remote-", b"local-") == local[3][o], o
    assert json.loads(local[3]["summary.json"])["metric_per_case"][0]["prediction_file"]
    assert ran_on(marks, names) == {w.pid for w in workers}


def test_dask_scheduler_address_is_honoured(rng, here, capsys, cluster, monkeypatch):
    sched, workers, marks = cluster
    (here / "pred").mkdir()
    (here / "gt").mkdir()
    for name in ("a", "b"):
        np.save(here / "pred" / f"{name}.npy", rng.integers(0, 3, (5, 6)).astype(np.uint8))
        np.save(here / "gt" / f"{name}.npy", rng.integers(0, 3, (5, 6)).astype(np.uint8))
    code, local, err = run(capsys, "evaluate", "pred", "--target", "gt")
    assert code == 0, err
    assert not list(marks.iterdir())
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", json.loads(sched.read_text())["address"])
    code, remote, err = run(capsys, "evaluate", "pred", "--target", "gt")
    assert code == 0, err
    assert remote == local
    assert ran_on(marks, ["a", "b"]) <= {w.pid for w in workers}


@pytest.mark.parametrize(
    "method, extra",
    [
        # fewer pixels kept than the cases hold: the subsample spans the cases
        ("temperature", ["--max-pixels", "3000", "--seed", "7", "--ignore-index", "255"]),
        ("vector", ["--max-pixels", "100000", "--ignore-index", "255"]),
    ],
)
def test_calibrate_on_a_cluster_equals_a_local_run(
    val, here, capsys, cluster, monkeypatch, method, extra
):
    from rankseg import calibration as cal
    from rankseg.cli import _calibrate

    sched, workers, marks = cluster
    local_stream, local_collect = _calibrate.stream, cal._collect
    reads = []

    def recorded(real):
        def wrapper(*args, **kwargs):
            reads.append(real.__name__)
            return real(*args, **kwargs)

        return wrapper

    # on the cluster nothing is read or subsampled here: the workers do it
    monkeypatch.setattr(_calibrate, "stream", recorded(local_stream))
    monkeypatch.setattr(cal, "_collect", recorded(local_collect))
    common = ["calibrate", "val", "--target", "gt", "--method", method, *extra]
    # the same parameters, pixels kept and seen, NLL/Brier/ECE
    out = same_file_both_ways(capsys, here, sched, *common)
    assert reads == ["stream", "_collect", "stream"]  # the local run only
    if "3000" in extra:
        assert "fitted on 3000 of" in out
    ran_on(marks, val)  # the check pass: one task per case


def test_calibrate_multilabel_on_a_cluster(rng, here, capsys, cluster):
    sched, _, marks = cluster
    (here / "val").mkdir()
    (here / "gt").mkdir()
    for k in range(4):
        z = rng.standard_normal((2, 6, 16, 16)) * 2
        y = rng.random(z.shape) < 1 / (1 + np.exp(-z))  # masks
        np.save(here / "val" / f"m{k}.npy", (1 / (1 + np.exp(-2 * z))).astype(np.float32))
        np.save(here / "gt" / f"m{k}.npy", y)
    common = ["calibrate", "val", "--target", "gt", "--output-mode", "multilabel"]
    out = same_file_both_ways(capsys, here, sched, *common, "--max-pixels", "1000")
    assert "fitted on 1000 of" in out
    ran_on(marks, [f"m{k}" for k in range(4)])


def test_calibrate_failures_on_a_cluster_are_those_of_a_local_run(val, here, capsys, cluster):
    sched, _, marks = cluster
    # case2: every label void; case4: a target that does not fit
    np.save(here / "gt" / "case2.npy", np.full((5, 24, 20), 255, np.uint8))
    np.save(here / "gt" / "case4.npy", np.zeros((5, 24, 7), np.uint8))
    common = ["calibrate", "val", "--target", "gt", "--ignore-index", "255"]
    for first in ("case2", "case4"):
        code, _, local = run(capsys, *common, "-o", "local.json")
        code2, _, remote = run(capsys, *common, "-o", "remote.json", "--scheduler-file", sched)
        assert code == code2 == 1
        assert errors(remote) == errors(local)
        assert errors(local)[0].startswith(f"error: val/{first}.npy: ")
        assert not (here / "local.json").exists() and not (here / "remote.json").exists()
        np.save(here / "gt" / "case2.npy", np.zeros((5, 24, 20), np.uint8))  # now case4 fails
    assert "does not fit" in errors(local)[0]
    for m in marks.iterdir():
        m.unlink()


def test_tune_on_a_cluster_equals_a_local_run(val, here, capsys, cluster):
    sched, _, marks = cluster
    common = ["tune", "val", "--target", "gt", "--ignore-index", "255", "--folds", "2"]
    same_file_both_ways(capsys, here, sched, *common)
    ran_on(marks, val)


@pytest.mark.parametrize("command", ["evaluate", "calibrate", "tune"])
def test_scheduler_options_are_checked(here, capsys, command):
    (here / "a").mkdir()
    np.save(here / "a" / "x.npy", np.full((3, 4, 4), 1 / 3, np.float32))
    np.save(here / "x_gt.npy", np.zeros((4, 4), np.uint8))
    base = [command, "a", "--target", "x_gt.npy"]
    if command != "evaluate":
        base += ["-o", "out.json"]
    for extra, msg in [
        (
            ["--scheduler-file", "none.json"],
            "--scheduler-file none.json: no such file (start the scheduler first)",
        ),
        (
            ["--scheduler", "tcp://x:1", "--scheduler-file", "f.json"],
            "give --scheduler or --scheduler-file, not both",
        ),
    ]:
        with pytest.raises(SystemExit) as exc:
            main([*base, *extra])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"rankseg {command}: error: {msg}" in err, err
    assert not (here / "out.json").exists()
    # -j is predict's (its local workers); the other commands have no such option
    with pytest.raises(SystemExit):
        main([*base, "-j", "2", "--scheduler", "tcp://x:1"])
    assert "unrecognized arguments: -j 2" in capsys.readouterr().err
