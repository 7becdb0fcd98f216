"""``python -m rankseg`` (and the ``rankseg`` command).

With no arguments it runs the demo: a seeded 3-D softmax probability volume is
labelled by ``np.argmax`` and by every available RankSEG solver, and the table
shows the expected and realized Dice/IoU and the time as a ratio to ``np.argmax``.
``rankseg predict``, ``rankseg evaluate`` and ``rankseg demo`` are described in
``docs/cli.rst`` and by ``rankseg COMMAND --help``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m rankseg`` and of the ``rankseg`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        Command-line arguments (default: ``sys.argv[1:]``); none runs the demo.

    Returns
    -------
    int
        The exit status (0 success, 1 some cases failed, 2 usage error).

    Raises
    ------
    SystemExit
        With status 2 for a usage error found in the arguments or options
        (argparse's behaviour: the message is printed to stderr first).
    """
    from rankseg.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
