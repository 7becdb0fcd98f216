"""What every ``rankseg`` command shares: exit statuses and one-line messages on stderr."""

from __future__ import annotations

import sys
from typing import Any

_EXIT_FAILED = 1
_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130


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
    if isinstance(exc, FileNotFoundError):
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
