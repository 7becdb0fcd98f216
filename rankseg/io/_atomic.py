"""Atomic writes: a temporary file in the destination folder, renamed over the final name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from rankseg.io._naming import file_suffix


def check_folder(final: Path) -> None:
    """Raise FileNotFoundError naming the folder of ``final`` if it does not exist.

    Writers never create folders on the way: a typo in a path is an error, not a
    new directory tree.
    """
    if not final.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {str(final)!r}: the folder {str(final.parent)!r} does not exist "
            "(create it first)"
        )


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write a file atomically: ``write(tmp)`` then rename ``tmp`` to ``path``.

    Parameters
    ----------
    path : str or path-like
        The final file name.
    write : callable
        Called with a temporary path in the same folder, ending with the same
        suffix as ``path`` (so writers that choose a format from the name work);
        what it returns is ignored.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist (named in the message).

    Notes
    -----
    If ``write`` raises (or the rename fails), the temporary file is removed and
    the exception propagates: the final name is either absent, its previous
    content, or the complete new file.  A process killed mid-write may leave a
    hidden ``.NAME.rankseg-tmp-*`` file, never a partial file under the final name.
    """
    final = Path(path)
    check_folder(final)
    suffix = file_suffix(final)
    stem = final.name[: len(final.name) - len(suffix)] if suffix else final.name
    tmp = final.with_name(f".{stem}.rankseg-tmp-{uuid.uuid4().hex[:12]}{suffix}")
    try:
        write(tmp)
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    return final
