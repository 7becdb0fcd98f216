"""Decide a probability store larger than the workers' memory with ``rankseg.dask``.

Usage::

    python benchmarks/dask_chunked.py [--gb 8] [--classes 3] [--chunk 4096]
                                      [--workers 2] [--memory-limit 2GB]
                                      [--rounds 2] [--dir DIR] [--keep] [--check]

Writes a seeded ``(class, y, x)`` float32 softmax store of about ``--gb`` GB to
``DIR/probs.zarr`` (uncompressed, ``--chunk`` x ``--chunk`` spatial chunks, all
classes in one chunk; smooth random fields, mostly confident pixels with uncertain
boundaries; the side is rounded down to a multiple of the chunk), then times, on a
:class:`distributed.LocalCluster` of ``--workers`` worker processes (one thread
each, ``memory_limit=--memory-limit``),

* the yardstick: ``probs.argmax(axis=0)`` written to a uint8 zarr store, and
* ``rankseg.dask.predict`` (Dice, RMA, multiclass, uint8 labels) written the same way,

``--rounds`` times each, alternating, each run on a fresh cluster (warmed up on a
two-chunk window, not timed) so that each worker's peak resident memory
(``ru_maxrss``, read on the worker) belongs to one method.  Prints the wall times,
their ratio (best of the rounds) and each worker's peak memory.  ``--check``
compares the labels with ``rankseg.predict`` on the whole store in this process
(small stores only); ``--keep`` keeps the store for reruns.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script: use this checkout, not an installed copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402


def _make_block(block_info=None, *, seed: int, classes: int) -> np.ndarray:
    """One seeded chunk of the store: softmax of smooth fields plus a little noise."""
    loc = block_info[None]["array-location"]
    shape = block_info[None]["chunk-shape"]
    ys, xs = loc[1][0], loc[2][0]
    rng = np.random.default_rng([seed, ys, xs])
    yy = (np.arange(ys, ys + shape[1], dtype=np.float32) / 700.0)[:, None]
    xx = (np.arange(xs, xs + shape[2], dtype=np.float32) / 900.0)[None, :]
    out = np.empty(shape, dtype=np.float32)
    for c in range(classes):
        out[c] = 6.0 * np.sin(yy * (c + 1) + 1.3 * c) * np.cos(xx * (c + 2) - 0.7 * c)
    out += rng.normal(scale=0.3, size=shape).astype(np.float32)
    out -= out.max(axis=0)
    np.exp(out, out=out)
    out /= out.sum(axis=0)
    return out


def write_store(path: Path, gb: float, classes: int, chunk: int, seed: int = 0) -> tuple:
    """Write the probability store; return its shape."""
    side = int(math.sqrt(gb * 1e9 / 4 / classes))
    side = max(chunk, side // chunk * chunk)
    shape = (classes, side, side)
    arr = da.map_blocks(
        _make_block,
        dtype=np.float32,
        chunks=((classes,), (chunk,) * (side // chunk), (chunk,) * (side // chunk)),
        seed=seed,
        classes=classes,
        meta=np.empty((0, 0, 0), np.float32),
    )
    arr.to_zarr(str(path), overwrite=True, compressors=None)
    return shape


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print its figures; return them as a dict."""
    from distributed import Client, LocalCluster

    import rankseg.dask

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gb", type=float, default=8.0)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="2GB")
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each method, alternating")
    ap.add_argument("--keep", action="store_true", help="keep the store for a rerun")
    ap.add_argument("--check", action="store_true", help="compare with rankseg.predict")
    args = ap.parse_args(argv)

    work = args.dir or Path(tempfile.mkdtemp(prefix="rankseg-dask-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    store = work / "probs.zarr"

    def cluster() -> LocalCluster:
        return LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            memory_limit=args.memory_limit,
            dashboard_address=":0",  # any free port: 8787 may be taken
        )

    try:
        t0 = time.perf_counter()
        if not (store / "zarr.json").exists():
            with cluster() as c, Client(c):
                write_store(store, args.gb, args.classes, args.chunk)
        probs = da.from_zarr(str(store))
        print(
            f"store {store}: shape {probs.shape} float32, {probs.nbytes / 1e9:.2f} GB, chunks "
            f"{probs.chunksize}; written/opened in {time.perf_counter() - t0:.1f} s"
        )
        small = probs[:, : args.chunk, : 2 * args.chunk]
        figures: dict[str, list] = {}
        for name in ("argmax", "rankseg") * args.rounds:
            # a fresh cluster per run, so that each worker's peak memory is one method's
            with cluster() as c, Client(c) as client:
                # warm up the workers (imports, kernels from Numba's cache), not timed
                small.argmax(axis=0).compute()
                rankseg.dask.predict(small[None], dtype=np.uint8).compute()
                out = work / f"{name}.zarr"
                t0 = time.perf_counter()
                if name == "argmax":
                    labels = probs.argmax(axis=0).astype(np.uint8)
                else:
                    labels = rankseg.dask.predict(probs[None], dtype=np.uint8)[0]
                labels.to_zarr(str(out), overwrite=True, compressors=None)
                wall = time.perf_counter() - t0
                peaks = sorted(client.run(_peak_rss).values())
            figures.setdefault(name, []).append((wall, peaks))
            print(
                f"{name:8s} {wall:7.1f} s; worker peak RSS "
                + ", ".join(f"{v / 1e9:.2f} GB" for v in peaks)
            )
        ta = min(w for w, _ in figures["argmax"])
        tr = min(w for w, _ in figures["rankseg"])
        print(
            f"ratio rankseg/argmax {tr / ta:.2f} (best of {args.rounds} each); memory_limit "
            f"{args.memory_limit} per worker, store {probs.nbytes / 1e9:.2f} GB"
        )
        if args.check:
            got = da.from_zarr(str(work / "rankseg.zarr")).compute()
            ref = rankseg.predict(probs.compute()[None], dtype=np.uint8)[0]
            print("identical to rankseg.predict:", bool((got == ref).all()))
        return {"ratio": tr / ta, "figures": figures}
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for name in ("argmax.zarr", "rankseg.zarr"):
                shutil.rmtree(work / name, ignore_errors=True)


if __name__ == "__main__":
    main()
