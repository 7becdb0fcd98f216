"""Work items of the CPU passes: which pixels of which row one item covers.

The passes of a call are split into fixed work items (a ``chunk`` of one row, or one
row), and every work item writes its own slots of the outputs, so results do not
depend on how items are spread over threads.  A pass is a serial ``@jit`` kernel
over a range of items, ``body(i0, i1, *args)``; the host side that hands ranges of
items to threads is :func:`rankseg.cpu.tasks.run_tasks`.
"""

from __future__ import annotations

from rankseg._compile.jit import jit

__all__ = ["work_item"]


@jit(inline="always")
def work_item(task: int, nch: int, chunk: int, d: int) -> tuple[int, int, int]:
    """``(row, j0, j1)`` of work item ``task``: pixels ``j0 <= j < j1`` of that row.

    Rows of ``d`` pixels are cut into ``nch`` items of ``chunk`` pixels (the last
    one shorter), numbered row by row.
    """
    j0 = (task % nch) * chunk
    return task // nch, j0, min(d, j0 + chunk)
