"""How close each solver comes to the memory limit: times as multiples of one read.

Usage::

    python benchmarks/limit.py [--workloads voc2d ct3d ct_full tumor3d] [--repeat N]
                               [--threads N] [--quick] [--passes]
                               [--cache {order,warm,cold}]

For each workload this script times, in interleaved rounds on the same array,

* ``read``: one streaming read of the input, ``p.max()`` (the yardstick);
* ``copy``: ``np.copyto(buf, p)``, one read and one write of the input's size;
* ``np.argmax(axis=1)``;
* every configuration of :data:`CONFIGS` (RMA Dice/IoU in both output modes, the
  exact solver, BA, TRNA, BA+TRNA, multilabel),

and prints each median as a multiple of the read's and of the copy's median.
The rounds take the orders of a Williams design
(:func:`benchmarks.balanced_orders`), so that each function follows every other
one equally often (a call after ``np.argmax`` is 0.3-0.5 ms slower: RMA Dice
multiclass, which followed it in every round, looked slower than IoU).
``--cache`` (:func:`cache_hook`) can make every timed call start alike: after a
read of the input (``warm``: the read of an input that fits in the L3 is then
served from it) or after a read of another 128 MiB
(``cold``: every function reads its input from memory).  A second table gives
the fixed cost of a call: ``RankSEG.predict`` on a tiny (1, 4, 32, 32) softmax
map against ``np.argmax`` on it (microseconds), once as one
compiled call (``rankseg.kernels.rma_serial``, compiled first as ``rankseg warmup``
does) and once on the launchers' path that a larger input takes; a third gives a list
of 1,000 such inputs: ``np.argmax`` over each, ``RankSEG.predict`` on each, and
``RankSEG.predict`` on the list (one call, :meth:`rankseg.RankSEG.predict`), in
milliseconds and as a multiple of the ``np.argmax`` loop.  The 1-minute
load average is printed before and after: only a quiet run (load well below the
number of cores) says something about the kernels.

The physical floor of RMA is about two reads and one write (row statistics in one
pass, the labels in a second one).  docs/performance.rst ("Near the memory limit")
holds the table of a quiet run.  ``--quick`` uses tiny arrays (for the smoke test).

``--passes`` adds, per workload, where one call's time goes: each pass's kernel
(the compiled ``*_tasks`` functions the CPU launchers run over work items, each
launch timed, on one thread, median of 5 calls) as a multiple of one read, and the
rest of the call (Python, NumPy bookkeeping, allocation) as ``host``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: use this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

import numpy as np  # noqa: E402

import rankseg  # noqa: E402
from benchmarks import interleaved_times, warmup_input  # noqa: E402
from benchmarks.compare import machine_line  # noqa: E402
from rankseg.datasets import ct3d, make_probs, tumor3d, voc2d  # noqa: E402

#: name -> (generator, full shape, quick shape)
WORKLOADS: dict[str, tuple[Callable[..., np.ndarray], tuple[int, ...], tuple[int, ...]]] = {
    "voc2d": (voc2d, (4, 21, 256, 256), (2, 21, 32, 32)),
    "ct3d": (ct3d, (1, 8, 64, 128, 128), (1, 8, 8, 16, 16)),
    "ct_full": (ct3d, (1, 14, 128, 192, 192), (1, 14, 8, 12, 12)),
    "tumor3d": (tumor3d, (1, 1, 96, 128, 128), (1, 1, 12, 16, 16)),
}

#: label -> predict keyword arguments
CONFIGS: dict[str, dict[str, str]] = {
    "rma dice multiclass": {"metric": "dice", "output_mode": "multiclass"},
    "rma iou multiclass": {"metric": "iou", "output_mode": "multiclass"},
    "rma dice multilabel": {"metric": "dice", "output_mode": "multilabel"},
    "rma iou multilabel": {"metric": "iou", "output_mode": "multilabel"},
    "exact dice multilabel": {"metric": "dice", "output_mode": "multilabel", "solver": "exact"},
    "exact iou multilabel": {"metric": "iou", "output_mode": "multilabel", "solver": "exact"},
    "ba dice multilabel": {"metric": "dice", "output_mode": "multilabel", "solver": "ba"},
    "trna dice multilabel": {"metric": "dice", "output_mode": "multilabel", "solver": "trna"},
    "ba+trna dice multilabel": {
        "metric": "dice",
        "output_mode": "multilabel",
        "solver": "ba+trna",
    },
}

#: the issue's goals, as multiples of one read
GOALS = {"rma": 3.0, "exact": 6.0, "ba": 8.0, "trna": 8.0, "ba+trna": 8.0}

TINY_SHAPE = (1, 4, 32, 32)


def load_average() -> str:
    """The 1-minute load average, or ``n/a``."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "n/a"


def _configs_for(probs: np.ndarray) -> dict[str, dict[str, str]]:
    single = probs.shape[1] == 1
    return {k: v for k, v in CONFIGS.items() if not (single and v["output_mode"] == "multiclass")}


#: bytes read before each timed call by ``--cache cold``: several times any L3
EVICT_BYTES = 128 * 2**20

#: what runs, untimed, before each timed call
CACHE_PROTOCOLS = ("order", "warm", "cold")


def cache_hook(probs: np.ndarray, protocol: str) -> Callable[[], object] | None:
    """What to run before each timed call, if anything.

    ``order`` (the default): nothing, as in the issue's own table; a function
    starts with what the one before it left in the caches (the rounds' orders are
    balanced, so each function follows each other one equally often).  ``warm``: one read of the
    input (``probs.max()``), so every function -- the read itself included --
    starts with as much of the input in the caches as they hold: on an input that
    fits in the L3 (tumor3d, voc2d) the read is then served from it.  ``cold``: a
    read of :data:`EVICT_BYTES` of another array (clean lines: nothing to write
    back), so every function reads its input from memory.
    """
    if protocol == "warm":
        return probs.max
    if protocol == "cold":
        scratch = np.ones(EVICT_BYTES // 8)
        return scratch.max
    if protocol == "order":
        return None
    raise ValueError(f"cache protocol must be one of {CACHE_PROTOCOLS}; got {protocol!r}")


def measure_workload(probs: np.ndarray, repeat: int, cache: str = "order") -> dict[str, float]:
    """Median seconds of the yardsticks and of every configuration, interleaved.

    ``cache`` is the protocol of :func:`cache_hook`.
    """
    buf = np.empty_like(probs)
    models = {k: rankseg.RankSEG(**kw) for k, kw in _configs_for(probs).items()}
    warm = warmup_input(probs)
    for model in models.values():  # compile (or load) every kernel before timing
        model.predict(warm)
        model.predict(probs)
    funcs: dict[str, Callable[[], object]] = {
        "read": probs.max,
        "copy": lambda: np.copyto(buf, probs),
        "np.argmax(axis=1)": lambda: np.argmax(probs, axis=1),
    }
    for label, model in models.items():
        funcs[label] = lambda m=model: m.predict(probs)
    times = interleaved_times(funcs, repeat, before=cache_hook(probs, cache), balanced=True)
    return {k: statistics.median(v) for k, v in times.items()}


def measure_tiny(repeat: int) -> dict[str, float]:
    """Median seconds of one call on a tiny input: fixed cost against ``np.argmax``."""
    from rankseg.cpu import driver

    probs = make_probs(TINY_SHAPE, kind="softmax", seed=3, dtype=np.float32)
    model = rankseg.RankSEG(metric="dice")
    driver.SERIAL_CALL = "always"  # compile the one compiled call, as `rankseg warmup` does
    try:
        model.predict(probs)
    finally:
        driver.SERIAL_CALL = "ready"

    def launched() -> object:
        driver.SERIAL_CALL = "never"
        try:
            return model.predict(probs)
        finally:
            driver.SERIAL_CALL = "ready"

    funcs: dict[str, Callable[[], object]] = {
        "np.argmax(axis=1)": lambda: np.argmax(probs, axis=1),
        "RankSEG.predict (rma dice)": lambda: model.predict(probs),
    }
    times = interleaved_times(funcs, repeat)
    # the launchers' path in rounds of its own: between the others it would evict
    # what they keep in the caches
    times.update(interleaved_times({"  the same, launchers' path": launched}, repeat))
    return {k: statistics.median(v) for k, v in times.items()}


#: how many tiny inputs :func:`measure_list` passes in one list
LIST_LENGTH = 1000


def measure_list(repeat: int, length: int = LIST_LENGTH) -> dict[str, float]:
    """Median seconds over a list of ``length`` tiny inputs (:data:`TINY_SHAPE`).

    ``np.argmax`` over each (a loop), ``RankSEG.predict`` called on each (a loop),
    and ``RankSEG.predict`` on the list (one call: the inputs are decided together).
    """
    items = [
        make_probs(TINY_SHAPE, kind="softmax", seed=k, dtype=np.float32) for k in range(length)
    ]
    model = rankseg.RankSEG(metric="dice")
    model.predict(items)
    funcs: dict[str, Callable[[], object]] = {
        "np.argmax, a loop": lambda: [np.argmax(p, axis=1) for p in items],
        "RankSEG.predict, a loop": lambda: [model.predict(p) for p in items],
        "RankSEG.predict on the list": lambda: model.predict(items),
    }
    times = interleaved_times(funcs, repeat, balanced=True)
    return {k: statistics.median(v) for k, v in times.items()}


#: the configurations broken down by ``--passes``
PASS_CONFIGS = (
    "rma dice multiclass",
    "rma dice multilabel",
    "exact dice multilabel",
    "ba dice multilabel",
)


def pass_breakdown(probs: np.ndarray, label: str, calls: int = 5) -> dict[str, float]:
    """Seconds per call of each compiled pass of one configuration (one thread).

    Every pass is a compiled kernel that :mod:`rankseg.cpu.launchers` hands to
    ``run_tasks`` (the same whether the kernels were compiled ahead of time or by
    the JIT); each such call is timed.  Keys are the kernels' names, in the order of
    their cost, then ``host`` (what the passes' medians leave of the median call)
    and ``total``.
    """
    from rankseg.cpu import driver, launchers

    model = rankseg.RankSEG(**CONFIGS[label])
    real = launchers.run_tasks
    serial = driver.SERIAL_CALL
    driver.SERIAL_CALL = "never"  # a small input's one compiled call has no passes to time
    spent: dict[str, float] = {}

    def timed(body: Callable[..., object], ntasks: int, *args: object, **kw: object) -> None:
        start = time.perf_counter()
        real(body, ntasks, *args, **kw)
        name = getattr(body, "__name__", str(body))
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - start

    per_call: dict[str, list[float]] = {}
    launchers.run_tasks = timed
    try:
        with rankseg.num_threads(1):
            model.predict(probs)
            for _ in range(calls):
                spent.clear()
                start = time.perf_counter()
                model.predict(probs)
                total = time.perf_counter() - start
                for key, t in {**spent, "total": total}.items():
                    per_call.setdefault(key, []).append(t)
    finally:
        launchers.run_tasks = real
        driver.SERIAL_CALL = serial
    med = {k: statistics.median(v) for k, v in per_call.items()}
    order = sorted((k for k in med if k != "total"), key=lambda k: -med[k])
    # the host share of the median call: what its passes' medians leave of it
    med["host"] = med["total"] - sum(med[k] for k in order)
    return {k: med[k] for k in [*order, "host", "total"]}


def goal_of(label: str) -> float:
    """The issue's goal for a configuration label (multiple of one read)."""
    return GOALS[label.split()[0]]


def main(argv: Sequence[str] | None = None) -> int:
    """Print the tables; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--repeat", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument(
        "--threads", type=int, default=None, help="kernel threads (default: rankseg's rule)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny arrays, for the smoke test")
    parser.add_argument(
        "--passes", action="store_true", help="also break each call down by pass (one thread)"
    )
    parser.add_argument(
        "--cache",
        choices=CACHE_PROTOCOLS,
        default="order",
        help="before each timed call: nothing (order, the default), a read of the "
        "input (warm), or a read of another 128 MiB (cold)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1; got {args.repeat}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1; got {args.threads}")

    print(machine_line())
    print(f"load average (1 min) before: {load_average()}")
    ctx = rankseg.num_threads(args.threads) if args.threads else None
    if ctx is not None:
        ctx.__enter__()
    try:
        for name in args.workloads:
            make, full, quick = WORKLOADS[name]
            shape = quick if args.quick else full
            probs = make(seed=0, shape=shape).astype(np.float32, copy=False)
            med = measure_workload(probs, args.repeat, args.cache)
            print(
                f"\n{name}: shape {shape}, {probs.nbytes / 2**20:.1f} MiB float32, "
                f"cache protocol {args.cache}"
            )
            print(f"  {'configuration':<26} {'median ms':>10} {'x read':>8} {'x copy':>8}  goal")
            for label, t in med.items():
                goal = "" if label in ("read", "copy", "np.argmax(axis=1)") else goal_of(label)
                mark = "" if goal == "" else ("ok" if t / med["read"] <= goal else "over")
                print(
                    f"  {label:<26} {t * 1e3:>10.3f} {t / med['read']:>8.2f} "
                    f"{t / med['copy']:>8.2f}  {goal and f'<= {goal:g}x ' + mark}"
                )
            if args.passes:
                for label in PASS_CONFIGS:
                    if label not in _configs_for(probs):
                        continue
                    parts = pass_breakdown(probs, label)
                    row = ", ".join(f"{k} {v / med['read']:.2f}" for k, v in parts.items())
                    print(f"  passes of {label} (x read, one thread): {row}")
        tiny = measure_tiny(args.repeat * 20)
        print(f"\nfixed cost, shape {TINY_SHAPE} float32 (median of {args.repeat * 20} calls):")
        for label, t in tiny.items():
            print(f"  {label:<28} {t * 1e6:>9.1f} us")
        length = 20 if args.quick else LIST_LENGTH
        listed = measure_list(max(3, args.repeat // 2), length)
        base = listed["np.argmax, a loop"]
        print(f"\na list of {length} such inputs (median of {max(3, args.repeat // 2)} rounds):")
        for label, t in listed.items():
            print(f"  {label:<28} {t * 1e3:>9.2f} ms {t / base:>6.2f} x argmax")
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
    print(f"\nload average (1 min) after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
