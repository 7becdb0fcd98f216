"""What every ``rankseg`` command shares: exit statuses and one-line messages on stderr."""

from __future__ import annotations

import sys
from typing import Any

_EXIT_FAILED = 1
_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130


def _check_output_file(path: str, option: str) -> str | None:
    """Say why ``option`` cannot write ``path`` (missing folder, or a folder), else None.

    Checked before any work is done, so a typo does not cost a whole run.
    """
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        return f"{option} {path}: is a folder; expected a file name"
    if not p.parent.is_dir():
        return f"{option} {path}: the folder {p.parent} does not exist"
    return None


class _Log:
    """Messages to stderr that do not break a tqdm progress bar."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def _write(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr)

    def error(self, msg: str) -> None:
        self._write(msg)

    def info(self, msg: str) -> None:
        if not self.quiet:
            self._write(msg)


def _one_line(exc: BaseException) -> str:
    """One line describing ``exc`` for an ``error: FILE: ...`` message."""
    if isinstance(exc, FileNotFoundError):
        if exc.filename is not None:  # raised by the OS: name the file it could not find
            msg = f"no such file: {exc.filename}"
        elif exc.args and isinstance(exc.args[0], str):  # ours: already says what and where
            msg = exc.args[0]
        else:
            msg = "no such file"
    elif isinstance(exc, KeyError) and exc.args:
        msg = str(exc.args[0])
    elif isinstance(exc, (TypeError, ValueError, ImportError)):
        msg = str(exc)
    elif isinstance(exc, OSError):
        msg = f"cannot read or write ({exc.strerror or exc})"
    else:
        msg = f"{type(exc).__name__}: {exc}"
    return " ".join(msg.split())


def _check_picture_path(path: str, option: str) -> str | None:
    """Say why matplotlib could not save ``option``'s figure to ``path``, else None."""
    from pathlib import Path

    why = _check_output_file(path, option)
    if why:
        return why
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        return f"{option} needs matplotlib (pip install 'rankseg-numba[plot]')"
    kinds = FigureCanvasBase.get_supported_filetypes()
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in kinds:
        return f"{option} {path}: unknown image type {suffix!r}; expected one of " + ", ".join(
            f".{k}" for k in sorted(kinds)
        )
    return None
