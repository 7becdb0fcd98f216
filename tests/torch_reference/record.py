"""Record the torch package's (``rankseg`` 0.0.8) outputs into ``fixtures.npz``.

Run it with a Python that has rankseg 0.0.8 and torch installed, and NOT this
repository's rankseg (it must import the reference package)::

    python -m venv /tmp/rs008venv
    /tmp/rs008venv/bin/pip install torch==2.13.0 numpy scipy
    /tmp/rs008venv/bin/pip install rankseg==0.0.8 --no-deps
    cd tests/torch_reference && /tmp/rs008venv/bin/python record.py

It writes ``fixtures.npz`` beside this file (or the path given as its argument):
the inputs (a seeded grid of small probability maps: softmax and sigmoid maps, ties,
exact 0/1 values, soft maps, float16/32/64, 2-D and 3-D), every configuration the
torch package supports (each solver, metric and output mode; ``smooth``, ``pruning_prob``,
``unassigned_policy``, ``void_index``, ``eps``, ``safe_screening``), its output for
each, the exception type it raises for bad inputs, and values of its
``rankseg.distribution`` classes.  ``tests/test_torch_reference.py`` checks ours
against the file (docs/coming_from_torch.rst lists the allowed differences).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

import rankseg

HERE = Path(__file__).resolve().parent
if Path(rankseg.__file__).resolve().is_relative_to(HERE.parents[1]):
    sys.exit("record.py imported this repository's rankseg; run it in the 0.0.8 venv")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def inputs() -> dict[str, np.ndarray]:
    """The probability maps of the grid, each named for what it exercises."""
    rng = np.random.default_rng(20260)
    out = {}
    z = rng.normal(scale=2.5, size=(3, 4, 6, 7))
    out["softmax"] = softmax(z).astype(np.float32)
    out["softmax_f16"] = softmax(z).astype(np.float16)
    out["sigmoid"] = (1 / (1 + np.exp(-rng.normal(scale=3, size=(2, 3, 5, 6))))).astype(np.float32)
    # ties: probabilities on a coarse grid (many equal values within a row)
    out["ties"] = (np.round(softmax(rng.normal(scale=2, size=(2, 3, 5, 5))) * 8) / 8).astype(
        np.float32
    )
    # exact 0 and 1: one-hot pixels mixed with soft ones
    hard = softmax(rng.normal(scale=2, size=(2, 3, 4, 6)))
    onehot = np.eye(3)[rng.integers(0, 3, size=(2, 4, 6))].transpose(0, 3, 1, 2)
    keep = rng.random((2, 1, 4, 6)) < 0.5
    out["exact01"] = np.where(keep, onehot, hard).astype(np.float32)
    # soft model: no probability above 0.5 (pruned at the default)
    out["soft"] = softmax(rng.normal(scale=0.3, size=(2, 4, 5, 5))).astype(np.float32)
    out["two_class"] = softmax(rng.normal(scale=2, size=(2, 2, 6, 6))).astype(np.float32)
    out["volume"] = softmax(rng.normal(scale=2, size=(1, 3, 3, 4, 5))).astype(np.float32)
    out["float64"] = softmax(rng.normal(scale=2, size=(2, 3, 6, 6)))
    # a larger single-class sigmoid map: BA+TRNA picks BA where sd > 5
    out["large"] = (1 / (1 + np.exp(-rng.normal(scale=1.5, size=(2, 1, 12, 16))))).astype(
        np.float32
    )
    return out


def configs() -> list[dict]:
    """Every solver / metric / mode the torch package supports, with its parameters."""
    out = []
    for metric in ("dice", "iou"):
        for mode in ("multiclass", "multilabel"):
            for smooth in (0.0, 1.0):
                for pruning in (0.5, 0.0):
                    base = dict(
                        metric=metric,
                        output_mode=mode,
                        solver="RMA",
                        smooth=smooth,
                        pruning_prob=pruning,
                    )
                    out.append(base)
                    if metric == "dice" and smooth == 0.0:
                        out.append({**base, "safe_screening": True})
                    if mode == "multiclass":
                        out.append({**base, "unassigned_policy": "void"})
                        out.append({**base, "unassigned_policy": "void", "void_index": -1})
    for solver in ("BA", "TRNA", "BA+TRNA"):
        for smooth in (0.0, 0.5):
            for pruning in (0.5, 0.0):
                for eps in (1e-4, 1e-2):
                    out.append(
                        dict(
                            metric="dice",
                            output_mode="multilabel",
                            solver=solver,
                            smooth=smooth,
                            pruning_prob=pruning,
                            eps=eps,
                        )
                    )
    out.append(dict(metric="acc", output_mode="multiclass", solver="argmax"))
    out.append(dict(metric="Acc", output_mode="multilabel", solver="TR"))
    return out


def bad_inputs() -> dict[str, torch.Tensor]:
    """Inputs the torch package refuses, for their exception types."""
    ok = torch.full((1, 2, 3, 3), 0.5)
    nan = ok.clone()
    nan[0, 0, 0, 0] = float("nan")
    return {
        "int": torch.ones((1, 2, 3, 3), dtype=torch.int64),
        "bool": torch.ones((1, 2, 3, 3), dtype=torch.bool),
        "nan": nan,
        "above_one": ok * 3,
        "negative": -ok,
        "two_dims": torch.full((2, 3), 0.5),
        "no_classes": torch.zeros((1, 0, 3, 3)),
        "empty_spatial": torch.zeros((1, 2, 0, 3)),
        "single_class_multiclass": torch.full((1, 1, 3, 3), 0.5),
    }


def bad_params() -> list[dict]:
    """Parameter combinations the torch package refuses (on a valid input)."""
    return [
        dict(metric="dice", solver="nope"),
        dict(metric="f1"),
        dict(output_mode="multi"),
        dict(smooth=-1.0),
        dict(pruning_prob=1.5),
        dict(metric="dice", output_mode="multilabel", solver="BA", eps=0.0),
        dict(metric="dice", output_mode="multiclass", unassigned_policy="nope"),
        dict(metric="dice", output_mode="multiclass", void_index=3),
        dict(metric="dice", output_mode="multiclass", unassigned_policy="void", void_index=1),
        dict(metric="iou", output_mode="multiclass", solver="TR"),
        dict(metric="dice", output_mode="multilabel", solver="RMA", safe_screening="yes"),
    ]


def call(cfg: dict, x: torch.Tensor) -> torch.Tensor:
    params = dict(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return rankseg.RankSEG(**params).predict(x)


def distribution_values() -> dict[str, np.ndarray]:
    from rankseg.distribution import RefinedNormal, RefinedNormalPB

    loc = torch.tensor([3.2, 10.0, 0.4, 40.0], dtype=torch.float64)
    scale = torch.tensor([1.1, 2.5, 0.5, 4.0], dtype=torch.float64)
    skew = torch.tensor([0.3, -0.1, 1.2, 0.02], dtype=torch.float64)
    rv = RefinedNormalPB(
        dim=torch.tensor(60.0, dtype=torch.float64), loc=loc, scale=scale, skew=skew
    )
    k = torch.arange(0, 60, dtype=torch.float64).view(1, -1).expand(4, -1)
    out = {
        "dist/loc": loc.numpy(),
        "dist/scale": scale.numpy(),
        "dist/skew": skew.numpy(),
        "dist/cdf": rv.cdf(k).numpy(),
        "dist/pmf": rv.pmf(k).numpy(),
        "dist/pdf": rv.pdf(k).numpy(),
        "dist/icdf": rv.icdf(
            torch.tensor([[0.1, 0.5, 0.9]], dtype=torch.float64).expand(4, -1)
        ).numpy(),
    }
    for eps in (1e-4, 1e-2, 0.2):
        lq, uq = rv.interval(eps)
        out[f"dist/interval/{eps}"] = np.stack([lq.numpy(), uq.numpy()])
    lo, hi = RefinedNormal().interval(0.9, skew=np.array([0.0, 0.5, -0.5]))
    out["dist/scipy_interval"] = np.stack([lo, hi])
    return out


def main(path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    cases = inputs()
    cfgs = configs()
    table = []
    for name, x in cases.items():
        arrays[f"in/{name}"] = x
        for i, cfg in enumerate(cfgs):
            try:
                res = call(cfg, torch.from_numpy(x)).numpy()
            except Exception as exc:  # unsupported here (e.g. multiclass with C=1)
                table.append({"case": name, "config": i, "error": type(exc).__name__})
                continue
            key = f"out/{name}/{i}"
            arrays[key] = res.astype(np.int16) if res.dtype == np.int64 else res
            table.append({"case": name, "config": i, "dtype": str(res.dtype)})
    errors = {}
    for name, x in bad_inputs().items():
        try:
            call({"output_mode": "multiclass"}, x)
            errors[name] = None
        except Exception as exc:
            errors[name] = type(exc).__name__
    param_errors = []
    ok = torch.from_numpy(cases["softmax"])
    for cfg in bad_params():
        try:
            call(cfg, ok)
            param_errors.append([cfg, None])
        except Exception as exc:
            param_errors.append([cfg, type(exc).__name__])
    arrays.update(distribution_values())
    meta = {
        "rankseg": rankseg.__version__,
        "torch": torch.__version__,
        "configs": cfgs,
        "results": table,
        "bad_inputs": errors,
        "bad_params": param_errors,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(path, **arrays)
    print(f"wrote {path}: {len(table)} results")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "fixtures.npz")
