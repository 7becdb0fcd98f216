"""Our outputs equal the torch package's (rankseg 0.0.8), recorded by that package.

``tests/torch_reference/fixtures.npz`` holds its outputs on a grid of inputs and
configurations, written by ``tests/torch_reference/record.py`` run in a virtualenv
with rankseg 0.0.8 and torch (see that script).  These tests need neither: they
decide the recorded NumPy inputs with this package.  With the environment variable
``RANKSEG_REFERENCE_PYTHON`` set to a Python that has rankseg 0.0.8 installed, the
live test re-records the grid with it first and checks against the fresh file.

Every recorded output is compared exactly: on this grid the two packages agree on
every pixel (RMA, BA, TRNA, BA+TRNA, accuracy; float16/32/64, ties, exact 0/1,
``smooth``, ``pruning_prob``, ``unassigned_policy``, ``void_index``, ``eps``,
``safe_screening``).  docs/coming_from_torch.rst lists where they may differ on
other inputs (the torch package decides in float32).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import rankseg
from rankseg.distribution import RefinedNormal, RefinedNormalPB

HERE = Path(__file__).resolve().parent / "torch_reference"
FIXTURES = HERE / "fixtures.npz"


def load(path: Path = FIXTURES) -> tuple[dict, dict]:
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    return arrays, json.loads(str(arrays.pop("meta")))


ARRAYS, META = load()


def ours(cfg: dict, x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # arbitrary class sums on purpose (sigmoid maps decided multiclass too)
        warnings.simplefilter("ignore", rankseg.ClassSumWarning)
        return rankseg.RankSEG(**cfg).predict(x)


def check_results(arrays: dict, meta: dict) -> int:
    """Compare every recorded result; return how many were compared."""
    n = 0
    for rec in meta["results"]:
        cfg = meta["configs"][rec["config"]]
        x = arrays[f"in/{rec['case']}"]
        where = f"{rec['case']} with {cfg}"
        if "error" in rec:
            with pytest.raises(Exception) as info:
                ours(cfg, x)
            assert type(info.value).__name__ == rec["error"], where
            continue
        want = arrays[f"out/{rec['case']}/{rec['config']}"]
        got = ours(cfg, x)
        assert got.dtype == np.dtype(rec["dtype"]), where
        assert got.shape == want.shape, where
        np.testing.assert_array_equal(got, want, err_msg=where)
        n += 1
    return n


def test_fixtures_are_small_and_cover_the_grid():
    assert FIXTURES.stat().st_size < 500_000
    solvers = {c["solver"].lower() for c in META["configs"]}
    assert solvers == {"rma", "ba", "trna", "ba+trna", "argmax", "tr"}
    assert META["rankseg"] == "0.0.8"
    dtypes = {ARRAYS[f"in/{r['case']}"].dtype for r in META["results"]}
    assert dtypes == {np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)}
    compared = [r for r in META["results"] if "error" not in r]
    assert len(compared) > 500


def test_outputs_equal_the_torch_package():
    assert check_results(ARRAYS, META) > 500


def bad_inputs(lib) -> dict:
    """The inputs record.py gave the torch package, built with ``lib`` (numpy or torch)."""
    ok = lib.full((1, 2, 3, 3), 0.5)
    nan = ok * 1.0
    nan[0, 0, 0, 0] = float("nan")
    return {
        "int": lib.ones((1, 2, 3, 3), dtype=lib.int64),
        "bool": lib.ones((1, 2, 3, 3), dtype=lib.bool_ if lib is np else lib.bool),
        "nan": nan,
        "above_one": ok * 3,
        "negative": -ok,
        "two_dims": lib.full((2, 3), 0.5),
        "no_classes": lib.zeros((1, 0, 3, 3)),
        "empty_spatial": lib.zeros((1, 2, 0, 3)),
        "single_class_multiclass": lib.full((1, 1, 3, 3), 0.5),
    }


@pytest.mark.parametrize("name", sorted(META["bad_inputs"]))
def test_bad_inputs_raise_the_torch_package_types(name):
    want = META["bad_inputs"][name]
    assert want in ("TypeError", "ValueError")
    with pytest.raises(Exception) as info:
        ours({"output_mode": "multiclass"}, bad_inputs(np)[name])
    # ours may be a subclass (BadValuesError): the torch package's callers catch the builtin
    builtin = next(c for c in type(info.value).__mro__ if c.__module__ == "builtins")
    assert builtin.__name__ == want


def test_bad_params_raise_the_torch_package_types():
    x = ARRAYS["in/softmax"]
    for cfg, want in META["bad_params"]:
        with pytest.raises(Exception) as info:
            ours(cfg, x)
        assert type(info.value).__name__ == want, cfg


def test_distribution_equals_the_torch_package():
    a = ARRAYS
    rv = RefinedNormalPB(dim=60, loc=a["dist/loc"], scale=a["dist/scale"], skew=a["dist/skew"])
    k = np.broadcast_to(np.arange(60.0), (4, 60))
    np.testing.assert_allclose(rv.cdf(k), a["dist/cdf"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rv.pmf(k), a["dist/pmf"], rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(rv.pdf(k), a["dist/pdf"], rtol=1e-12, atol=1e-15)
    p = np.broadcast_to(np.array([[0.1, 0.5, 0.9]]), (4, 3))
    np.testing.assert_allclose(rv.icdf(p), a["dist/icdf"], atol=1e-6)  # its tol
    for eps in (1e-4, 1e-2, 0.2):
        lq, uq = rv.interval(eps)
        np.testing.assert_array_equal(np.stack([lq, uq]), a[f"dist/interval/{eps}"])
    lo, hi = RefinedNormal().interval(0.9, skew=np.array([0.0, 0.5, -0.5]))
    np.testing.assert_allclose(np.stack([lo, hi]), a["dist/scipy_interval"], rtol=1e-8)


@pytest.mark.skipif(
    not os.environ.get("RANKSEG_REFERENCE_PYTHON"),
    reason="set RANKSEG_REFERENCE_PYTHON to a Python with rankseg 0.0.8 and torch",
)
def test_live_against_the_torch_package(tmp_path):
    out = tmp_path / "fresh.npz"
    python = os.environ["RANKSEG_REFERENCE_PYTHON"]
    # outside the repository and without PYTHONPATH: it must import the installed 0.0.8
    env = {k: val for k, val in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run(
        [python, str(HERE / "record.py"), str(out)],
        check=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    arrays, meta = load(out)
    assert check_results(arrays, meta) > 500
    assert sys.modules["rankseg"] is rankseg
