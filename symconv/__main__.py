"""``python -m symconv`` and the ``symconv`` console script: the command line -> its exit status, Ctrl-C included.

Ctrl-C is caught from the first line of symconv on: the handler is installed before the commands' modules load
(SymPy and NumPy take about a second), and it fires once, so a second Ctrl-C cannot interrupt the line that
reports the first. ``import symconv`` loads nothing until a name is used, so that this module starts at once.
"""

from __future__ import annotations

import signal
import sys

TYPE_CHECKING = False  # not typing's: nothing slow may load before the handler is installed
if TYPE_CHECKING:
    from types import FrameType


def _interrupt_once(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def launch() -> int:
    """Install the Ctrl-C handler, then run ``symconv.cli.main`` on ``sys.argv`` -> the exit status."""
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not if Ctrl-C was ignored by whoever started us
        signal.signal(signal.SIGINT, _interrupt_once)
    try:
        try:
            from .cli import main

            status = main()
        except KeyboardInterrupt:  # while the modules load, or between the command's own guard and here
            status = _interrupted()
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the work is done: the exit itself is not interrupted
    except KeyboardInterrupt:  # in the instant after the inner handler: the handler ignores any further Ctrl-C
        status = _interrupted()
    return status


def _interrupted() -> int:
    """The line and status of ``console.run_command`` for Ctrl-C, without loading anything to say it."""
    try:
        print("symconv: interrupted", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):  # stderr closed: no one to tell
        pass
    return 130


if __name__ == "__main__":
    sys.exit(launch())
