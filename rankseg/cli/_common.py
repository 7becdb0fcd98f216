"""What every ``rankseg`` command shares: exit statuses, logging and progress on stderr.

Messages go through :mod:`logging`: the ``rankseg`` logger hierarchy (the commands log
to ``rankseg.cli``; library modules to ``logging.getLogger(__name__)`` and never add
handlers).  :func:`configure_logging` is called by :func:`rankseg.cli.main` only: it
gives the ``rankseg`` logger a stderr handler (plain ``%(message)s`` lines, written
above a tqdm bar when one is shown) for the time of the command and takes it away
afterwards.  ``-q`` leaves warnings and errors, ``-v`` adds DEBUG details.  What a
command computes (tables, summaries) is its output and goes to stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def check_output_file(path: str, option: str) -> str | None:
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


#: the logger of the commands (a child of ``rankseg``, which the CLI configures)
LOGGER = logging.getLogger("rankseg.cli")

_BAR: list[Any] = []  # the tqdm bar on screen, if any: messages are written above it


class _StderrHandler(logging.Handler):
    """Plain lines on the *current* ``sys.stderr``, above a tqdm bar when one is shown."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            if _BAR:
                _BAR[-1].write(msg, file=sys.stderr)
            else:
                print(msg, file=sys.stderr)
        except Exception:  # logging's own rule: a failing handler reports, never raises
            self.handleError(record)


def add_verbosity(parser: argparse.ArgumentParser) -> None:
    """Add ``-v/--verbose`` and ``-q/--quiet`` to ``parser``.

    The defaults are suppressed, so that ``rankseg -v predict ...`` and ``rankseg
    predict -v ...`` both work: :func:`rankseg.cli.main` reads what was given.
    """
    g = parser.add_argument_group("messages")
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="also print debugging details on stderr",
    )
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print only warnings and errors on stderr (the command's output, on stdout, stays)",
    )


@contextmanager
def configure_logging(verbose: int, quiet: bool) -> Iterator[logging.Logger]:
    """Send the ``rankseg`` loggers' messages to stderr for the time of a command.

    Parameters
    ----------
    verbose : int
        ``-v`` count: 1 or more shows DEBUG messages.
    quiet : bool
        ``-q``: only WARNING and above (wins over ``verbose``).

    Yields
    ------
    logging.Logger
        The ``rankseg`` logger, with the handler attached.
    """
    root = logging.getLogger("rankseg")
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = _StderrHandler(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = root.level, root.propagate
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False  # an application's root handlers would print every line twice
    try:
        yield root
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        root.propagate = saved[1]


class Log:
    """The commands' messages: :data:`LOGGER` at ERROR, WARNING, INFO and DEBUG.

    ``bar``: a tqdm bar on screen; messages are written above it while it is set.
    """

    def __init__(self, quiet: bool = False) -> None:
        # -q is applied by configure_logging (the level); kept for the callers' signature
        self.quiet = quiet
        self._bar: Any = None

    @property
    def bar(self) -> Any:
        """The tqdm bar messages are written above (None: plain lines)."""
        return self._bar

    @bar.setter
    def bar(self, bar: Any) -> None:
        if self._bar is not None and self._bar in _BAR:
            _BAR.remove(self._bar)
        self._bar = bar
        if bar is not None:
            _BAR.append(bar)

    def error(self, msg: str) -> None:
        LOGGER.error(msg)

    def warning(self, msg: str) -> None:
        LOGGER.warning(msg)

    def info(self, msg: str) -> None:
        LOGGER.info(msg)

    def debug(self, msg: str) -> None:
        LOGGER.debug(msg)


def progress(total: int, enabled: bool) -> Any:
    """Return a tqdm bar over ``total`` cases on stderr, or None (disabled, or no tqdm)."""
    if not enabled or not LOGGER.isEnabledFor(logging.INFO):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="case", file=sys.stderr, dynamic_ncols=True)


class Progress:
    """Progress over ``total`` items: a tqdm bar, or one INFO line per item.

    The bar is drawn when ``bar`` is true, stderr is a terminal and tqdm is installed;
    otherwise :meth:`step` logs ``[k/total] what`` at INFO (at DEBUG when ``lines``
    is false: ``--no-progress``), which a log file or a CI console keeps.
    """

    def __init__(
        self, total: int, log: Log, *, unit: str = "case", bar: bool = True, lines: bool = True
    ) -> None:
        self.total = total
        self.done = 0
        self.log = log
        self.lines = lines
        self.bar: Any = None
        if bar and sys.stderr.isatty() and LOGGER.isEnabledFor(logging.INFO):
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)
                log.bar = self.bar

    def step(self, what: str) -> None:
        """One item is done; ``what`` says which (and how it went)."""
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            return
        width = len(str(self.total))
        line = f"[{self.done:>{width}}/{self.total}] {what}"
        if self.lines:
            self.log.info(line)
        else:
            self.log.debug(line)

    def close(self) -> None:
        """Take the bar off the screen (if any)."""
        if self.bar is not None:
            self.bar.close()
            self.log.bar = None
            self.bar = None


def one_line(exc: BaseException) -> str:
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


def check_picture_path(path: str, option: str) -> str | None:
    """Say why matplotlib could not save ``option``'s figure to ``path``, else None."""
    from pathlib import Path

    why = check_output_file(path, option)
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
