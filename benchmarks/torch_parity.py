"""Side by side on the torch package's quick start: its RMA against ours, tensor in.

Usage::

    python benchmarks/torch_parity.py --upstream-python /tmp/rs008venv/bin/python
                                      [--repeat N] [--upstream-repeat N] [--quick]

The workload is the torch package's quick start shape, ``voc2d`` (4, 21, 256, 256)
float32 softmax, given as a CPU torch tensor, decided multiclass with Dice (the
defaults of both ``RankSEG(metric='dice')``).  In one run this script times

* the torch package (rankseg 0.0.8, in its own interpreter: ``--upstream-python``,
  isolated from this checkout) with ``safe_screening=False`` (its default) and
  ``'auto'`` (screening on CPU), ``torch.inference_mode()``;
* ours on the same tensor (``RankSEG(metric='dice').predict(tensor)``, a tensor out)
  and on its NumPy view (NumPy out), in interleaved rounds whose order alternates
  (half tensor first, half NumPy first), so the round trip's cost is their ratio;
* ``np.argmax(axis=1)`` in each process, the yardstick of the machine's speed.

It prints medians, the speed-ups (upstream median / ours on the tensor), the round
trip's overhead (by median and by minimum: on a loaded machine the medians of two
3 ms calls scatter by more than the round trip's ~10 µs), and the 1-minute load
average before and after.  Without a usable
upstream environment the upstream rows are skipped and ours are still timed.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: use this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
from collections.abc import Sequence  # noqa: E402

import numpy as np  # noqa: E402

import rankseg  # noqa: E402
from benchmarks import interleaved_times, load_workload  # noqa: E402
from benchmarks.compare import machine_line  # noqa: E402
from benchmarks.compare_upstream import _run_upstream, probe_upstream  # noqa: E402
from rankseg import _arrays  # noqa: E402

# Runs in the upstream interpreter: argv = npy path, repeat.  Prints one JSON object
# {"argmax": [...], "False": [...], "auto": [...]} (seconds) on its last line.
_UPSTREAM = """
import gc, json, sys, time
import numpy as np
import torch
from rankseg import RankSEG

path, repeat = sys.argv[1], int(sys.argv[2])
x = np.load(path)
t = torch.from_numpy(x)
funcs = {"argmax": lambda: np.argmax(x, axis=1)}
for mode in (False, "auto"):
    model = RankSEG(metric="dice", safe_screening=mode)
    funcs[str(mode)] = lambda model=model: model.predict(t)
times = {key: [] for key in funcs}
with torch.inference_mode():
    for func in funcs.values():
        func()  # warm-up
    gc.disable()
    for _ in range(repeat):
        for key, func in funcs.items():
            start = time.perf_counter()
            func()
            times[key].append(time.perf_counter() - start)
    gc.enable()
times["threads"] = torch.get_num_threads()
print(json.dumps(times))
"""


def measure_ours(probs: np.ndarray, repeat: int) -> dict[str, list[float]]:
    """Seconds of ours on the tensor and on the NumPy array, and of ``np.argmax``."""
    import torch

    tensor = torch.from_numpy(probs)
    model = rankseg.RankSEG(metric="dice")
    funcs = {
        "argmax": lambda: np.argmax(probs, axis=1),
        "tensor": lambda: model.predict(tensor),
        "numpy": lambda: model.predict(probs),
    }
    out = funcs["tensor"]()
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
    np.testing.assert_array_equal(out.numpy(), funcs["numpy"]())
    for func in funcs.values():  # warm-up (JIT compiled by the calls above)
        func()
    # The call right after np.argmax pays ~10 % more whatever its input (measured on
    # the 2-core machine: +10 % for the tensor after argmax, -1 % when the NumPy call
    # follows argmax instead), so argmax runs in rounds of its own and the two calls
    # compared alternate their order, half the rounds each way.
    times = interleaved_times({"argmax": funcs["argmax"]}, repeat)
    half = (repeat + 1) // 2
    for order in (("tensor", "numpy"), ("numpy", "tensor")):
        part = interleaved_times({key: funcs[key] for key in order}, half)
        for key in order:
            times.setdefault(key, []).extend(part[key])
    # the round trip alone (rankseg._arrays: view in, from_numpy out), best of 5 x 1000
    labels = funcs["numpy"]()

    def trip() -> None:
        _arrays.restore(labels, _arrays.prepare(tensor)[1])

    times["trip"] = [min(timeit.repeat(trip, number=1000, repeat=5)) / 1000]
    return times


def _ms(seconds: list[float]) -> str:
    return f"{1e3 * statistics.median(seconds):9.1f} ms"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream-python", help="Python of the rankseg 0.0.8 environment")
    parser.add_argument("--repeat", type=int, default=31, help="our rounds (default 31)")
    parser.add_argument(
        "--upstream-repeat", type=int, default=5, help="the torch package's rounds (default 5)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny arrays (smoke test)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.upstream_repeat < 1:
        parser.error("--repeat and --upstream-repeat must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print the table; 0 also when upstream is skipped."""
    args = parse_args(argv)
    probs = np.ascontiguousarray(load_workload("voc2d", small=args.quick))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rankseg-torch-parity-") as tmp:
        versions, why = probe_upstream(args.upstream_python, tmp)
        upstream = None
        if versions is not None:
            path = str(Path(tmp) / "voc2d.npy")
            np.save(path, probs)
            proc = _run_upstream(
                args.upstream_python, _UPSTREAM, [path, str(args.upstream_repeat)], tmp, 3600
            )
            if proc.returncode != 0:
                raise RuntimeError(f"the upstream run failed:\n{proc.stderr}")
            upstream = json.loads(proc.stdout.strip().splitlines()[-1])
        start = time.perf_counter()
        ours = measure_ours(probs, args.repeat)
        ours_wall = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    print(f"voc2d {probs.shape} {probs.dtype}, Dice, multiclass; CPU torch tensor in")
    print(machine_line())
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")
    if upstream is None:
        print(f"upstream skipped: {why}")
    else:
        print(
            f"upstream: rankseg {versions['rankseg']}, torch {versions['torch']}, "
            f"{upstream['threads']} torch threads; median of {args.upstream_repeat} rounds"
        )
    print(f"ours: median of {args.repeat} interleaved rounds ({ours_wall:.1f} s)")
    rows = [("np.argmax(axis=1), ours' process", ours["argmax"], None)]
    tensor = statistics.median(ours["tensor"])
    if upstream is not None:
        rows.insert(0, ("np.argmax(axis=1), upstream's process", upstream["argmax"], None))
        for mode in ("False", "auto"):
            label = f"rankseg 0.0.8 RMA, safe_screening={mode if mode == 'False' else repr(mode)}"
            rows.append((label, upstream[mode], statistics.median(upstream[mode]) / tensor))
    rows.append(("ours RMA, tensor in/out", ours["tensor"], None))
    rows.append(("ours RMA, NumPy in/out", ours["numpy"], None))
    for label, times, speedup in rows:
        extra = f"  ours {speedup:6.0f}x faster" if speedup else ""
        print(f"{label:<45} {_ms(times)}{extra}")
    overhead = tensor / statistics.median(ours["numpy"]) - 1
    best = min(ours["tensor"]) / min(ours["numpy"]) - 1
    print(
        f"round trip (tensor vs NumPy, same rounds): {100 * overhead:+.1f} % by median, "
        f"{100 * best:+.1f} % by minimum; the conversions alone (best of 5000): "
        f"{1e6 * ours['trip'][0]:.1f} µs = "
        f"{100 * ours['trip'][0] / min(ours['numpy']):.2f} % of the fastest NumPy call"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
