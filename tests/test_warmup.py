"""``rankseg warmup`` fills numba's disk cache, so a later process compiles nothing."""

import os
import subprocess
import sys
import textwrap

import pytest

from rankseg.cli import main
from rankseg.cli._warmup import warmup


def test_warmup_runs_every_solver_of_a_metric():
    rows = warmup(("float64",), ("iou",), ("multilabel",))
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("float64", "iou", "rma", "multilabel"),
        ("float64", "iou", "exact", "multilabel"),
    ]
    assert all(r[4] >= 0.0 for r in rows)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dtypes": ("int8",)}, "unknown dtype 'int8'; expected one of float16, float32, float64"),
        ({"metrics": ("f1",)}, "unknown metric 'f1'"),
        ({"output_modes": ("onehot",)}, "unknown output mode 'onehot'"),
    ],
)
def test_warmup_refuses_unknown_names(kwargs, message):
    with pytest.raises(ValueError, match=message):
        warmup(**kwargs)


def test_warmup_command_prints_the_calls(capsys):
    assert main(["warmup", "--metrics", "acc", "--output-modes", "multilabel"]) == 0
    out = capsys.readouterr().out
    assert "float32  acc   tr       multilabel" in out and "1 calls in" in out


def test_warmup_command_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["warmup", "--dtypes", "int8"])
    assert exc.value.code == 2


def test_a_warmed_cache_needs_no_compile(tmp_path):
    """After ``rankseg warmup`` into a fresh cache, a new process loads every kernel."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    args = ["warmup", "--metrics", "acc", "--output-modes", "multilabel", "--quiet"]
    subprocess.run([sys.executable, "-m", "rankseg", *args], env=env, check=True)
    assert any(tmp_path.rglob("*.nbi"))  # the index files numba wrote
    probe = textwrap.dedent(
        """
        import numpy as np
        from numba.core import event
        import rankseg
        rec = event.RecordingListener()
        event.register("numba:compile", rec)
        p = np.linspace(0.0, 1.0, 64, dtype=np.float32).reshape(1, 1, 8, 8)
        rankseg.predict(np.concatenate([p, 1 - p], axis=1), metric="acc", output_mode="multilabel")
        print(sum(1 for _, e in rec.buffer if e.is_start))
        """
    )
    # without the kernels compiled ahead of time, which would make this pass anyway
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "RANKSEG_AOT": "0"},
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "0"
