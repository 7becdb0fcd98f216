"""Write a small text file (a JSON of fitted parameters) atomically: all or nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_text_atomic"]


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename.

    Parameters
    ----------
    path : str or path-like
        The file.  On any failure nothing is left: neither a partial file under this
        name nor the temporary file (a process killed mid-write may leave a hidden
        ``.NAME.*.tmp``).
    text : str
        The content, written as UTF-8.

    Raises
    ------
    FileNotFoundError
        If the folder of ``path`` does not exist (named in the message).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from rankseg._textfile import write_text_atomic
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.json"
    >>> write_text_atomic(p, "{}")
    >>> p.read_text()
    '{}'
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} of {str(path)!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
