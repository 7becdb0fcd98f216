"""Kernel tuning constants (compiled into the kernels: part of the ahead-of-time digest).

The JIT options and the rest of the compile machinery live in :mod:`rankseg._compile`;
how many threads a call uses is decided in :mod:`rankseg._threads`.
"""

from __future__ import annotations

__all__ = [
    "BAND_SLOTS",
    "CHUNK",
    "CONFLICT_MIN",
    "CONFLICT_SHARE",
    "CONFLICT_SLOTS",
    "CONFLICT_VALUES",
    "COUNT_BLOCK",
    "MAX_BAND_BYTES",
    "PASS_WORK",
    "SERIAL_SIZE",
    "SERIAL_TWO_SIZE",
    "SKIP_BLOCK",
    "SOLVE_WEIGHT",
    "SUB_BLOCK",
]

#: Pixels per work item when a row is split for parallel passes.  It is a fixed
#: constant (not derived from the thread count) so that partial sums, and hence
#: every result, are identical for any number of threads.
CHUNK = 1 << 16

#: Pixels the multiclass resolution counts at a time inside a work item: the
#: per-pixel counters of a sub-block (2 x 8 KiB) stay in the L1 cache while every
#: class row streams past.  The work item's sums still add its pixels in order.
SUB_BLOCK = 2048

#: Band values (float64) a work item keeps in its own slots while its chunk is in
#: the cache (rankseg.cpu.launchers.band_values): the band is a thin layer (0.1-1 %
#: of the pixels of the workloads of benchmarks/limit.py, 65-650 of a chunk); an
#: item with more is gathered again from the input.  8 KiB per work item.
BAND_SLOTS = 1024

#: Pixels of a work item that the multiclass resolution's first pass logs with
#: every class's value (rankseg.cpu.launchers.conflict_log), while their class rows
#: are in the cache: the pixels no class or several classes select, 0.1-0.7 % of the
#: workloads of benchmarks/limit.py.  The second pass resolves them from the log
#: instead of reading each class row at each of them; an item with more scans the
#: rest of its chunk and logs it batch by batch into the same slots.
CONFLICT_SLOTS = 2048

#: At most this many logged values (float64) per work item: 128 KiB, so that many
#: classes log fewer pixels (2048 up to 8 classes, 780 for 21, 54 for 300).
CONFLICT_VALUES = 16384

#: A work item of few pixels (an image smaller than ``CHUNK``) logs at most one
#: pixel in ``CONFLICT_SHARE`` of its own, and at least ``CONFLICT_MIN`` (below the
#: other two caps): a batch of many small images has as many work items, and slots
#: sized for a whole chunk made its log tens of MiB for a few pixels each (1 000
#: images of 32 x 32: 62.5 MiB, 14 pixels logged per image on average).
CONFLICT_SHARE = 8
CONFLICT_MIN = 64

#: Values that the band count adds up at once (vectorized) before it copies the
#: block's band values, while the block is in the cache, into its work item's
#: slots: large enough that a block's totals cost little, small enough to stay in
#: the first-level cache.
COUNT_BLOCK = 1024

#: Values whose band count the gather takes at once (branch-free, vectorized);
#: a block without band values is not read again.
SKIP_BLOCK = 64

#: Inputs with fewer elements (B * C * d) than this run their kernels on one thread
#: (``RankSEG.predict``), and an RMA call among them as one compiled call when that
#: needs no compile (``kernels/rma_serial.py``): none of its passes would reach
#: ``PASS_WORK``, and when another process holds a core every parallel pass waits
#: for a paused thread.  Results do not depend on the thread count.
SERIAL_SIZE = 16 * CHUNK

#: A call of one sample (or of fewer samples than threads) that may use two threads
#: still runs as one compiled call on one thread below this many elements, when
#: that needs no compile (``rankseg.cpu.driver``): on the 2-core VM of
#: docs/performance.rst the two threads' launches and the host's steps between
#: them cost more than the second thread saves up to 2-4 M elements (tumor3d, 1.6 M:
#: 0.62 -> 0.52 ms).  Counts of three threads or more keep ``SERIAL_SIZE``: none
#: was measured.
SERIAL_TWO_SIZE = 32 * CHUNK

#: A pass of a larger call that streams fewer values than this (its launcher's
#: estimate: the values it reads, a solved value counting as ``SOLVE_WEIGHT``) runs
#: on the calling thread alone: handing ranges to a pool thread costs 60-90 us on
#: the 2-core VM (the thread wakes up), more than a second thread saves on about a
#: millisecond of work, one thread's share of 2**20 values.
PASS_WORK = SERIAL_SIZE

#: The weight of one band value solved by a row's rank search (bucketing, sorting
#: and scanning) against one value streamed, in ``PASS_WORK``'s estimate.
SOLVE_WEIGHT = 32

#: Default memory (bytes) the chunked path (:mod:`rankseg.dask`) may spend in the
#: calling process on gathered values: ``max_band_bytes`` of the dask and xarray
#: ``predict`` and ``--max-band-bytes`` of the CLI.
MAX_BAND_BYTES = 2 << 30
