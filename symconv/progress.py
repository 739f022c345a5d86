"""Progress: (stage, done, total) reports of a long derivation or proof -> a one-line bar on a terminal.

The programs (the CLI) show it on stderr when stderr is a terminal, and nothing on a pipe or a file; the stages
take any callable of that signature (``progress=``) and know nothing of terminals.
"""

from __future__ import annotations

from typing import Optional, TextIO

__all__ = ["ProgressBar", "clear"]


class ProgressBar:
    """A one-line bar on a terminal, redrawn as (stage, done, total) arrive; nothing at all on a pipe or file."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.shown = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        filled = self.WIDTH * done // max(total, 1)
        self.shown = True  # before writing: a Ctrl-C during the write must still erase the half-drawn bar
        self.stream.write(f"\r{stage:>6} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {100 * done // max(total, 1):3d}%")
        self.stream.flush()

    def clear(self) -> None:
        if self.shown:  # erase the bar, so that what follows (a result, an error) starts a clean line
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


def clear(bar: Optional[ProgressBar]) -> None:
    """Erase ``bar``'s line, if there is a bar and it was drawn."""
    if bar is not None:
        bar.clear()
