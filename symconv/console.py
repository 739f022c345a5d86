"""Command-line plumbing: flag text -> checked values, and whatever a command raises -> one line and an exit status.

Every flag of every command is parsed by the types here (``Parser`` applies them to plain ``type=int`` and
``type=float`` flags too, so a new flag gets them without asking): ASCII digits only (``int()`` would take
``"３"`` but not ``"²"``), integers within 64 bits, counts >= 1, finite floats. Every command runs inside
``run_command``, which reports in one line on stderr: bad input (``UsageError``, ``ValueError``) and what the
system refuses (a full disk, a directory where a file should be, no permission: ``OSError``) exit with status 2,
Ctrl-C with 130; a closed stdout (``| head``) ends the command quietly with status 2, as there is no reader left
to tell. Standard library only, so that every module that adds flags may use it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, Callable, NoReturn, Optional, TextIO

__all__ = ["UsageError", "Parser", "integer", "positive", "natural", "positive_float", "finite_float",
           "run_command", "report", "USAGE", "INTERRUPTED", "INTERNAL"]

USAGE, INTERRUPTED, INTERNAL = 2, 130, 70
"""Exit statuses: bad input or a refusal by the system; Ctrl-C (128 + SIGINT, as shells report it); a bug."""

LARGEST = 2**63 - 1
"""No flag takes more: every count, size and seed fits a signed 64-bit integer (NumPy's and C's widest)."""

_DIGITS = re.compile(r"[+-]?[0-9]+")  # ASCII only: str.isdigit() and int() accept other scripts' digits
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")  # float() also takes "1_0", "３"


class UsageError(Exception):
    """A command-line mistake: reported in one line, exit status 2."""


def integer(text: str) -> int:
    """A flag's integer: ASCII digits, at most 2**63 - 1 in magnitude; argparse names the flag in the error.

    >>> integer("-12"), integer("007")
    (-12, 7)
    """
    stripped = text.strip()
    if not _DIGITS.fullmatch(stripped):
        raise argparse.ArgumentTypeError(f"expected an integer (ASCII digits), got {text!r}")
    if len(stripped) > 20 or abs(int(stripped)) > LARGEST:  # the length test first: int() of 10**6 digits is slow
        raise argparse.ArgumentTypeError(f"{text[:24]!r}{'...' * (len(text) > 24)} is out of range "
                                         f"(at most {LARGEST:,} in magnitude)")
    return int(stripped)


def positive(text: str) -> int:
    """A count: an ``integer`` >= 1."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def natural(text: str) -> int:
    """A seed or an index: an ``integer`` >= 0."""
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def finite_float(text: str) -> float:
    """A flag's real number: decimal, ASCII, finite (``nan``, ``inf`` and ``1e999`` are refused).

    >>> finite_float("2.5e-3")
    0.0025
    """
    if not _DECIMAL.fullmatch(text.strip()):
        if text.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        raise argparse.ArgumentTypeError(f"expected a decimal number (ASCII digits), got {text!r}")
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A rate or a time: a ``finite_float`` > 0."""
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises ``UsageError`` instead of exiting, and parses ``type=int`` and
    ``type=float`` flags with ``integer`` and ``finite_float`` (argparse looks types up in this registry)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.register("type", int, integer)
        self.register("type", float, finite_float)

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def report(program: str, message: str) -> None:
    """``program: message`` as one line on stderr, whatever the message holds; nothing if stderr is closed."""
    line = " ".join(message.split()) or "(no message)"
    try:
        print(f"{program}: {line}", file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):  # stderr closed or gone: no one to tell
        pass


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _os_message(error: OSError) -> str:
    reason = error.strerror or _first_line(error)
    return f"{error.filename}: {reason}" if error.filename is not None else reason


class _NamedStdout:
    """``sys.stdout`` while a command runs, whose write errors name it: print()'s OSError names no file, so a
    full disk under ``> FILE`` would read "No space left on device" with no hint of where."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def _named(self, error: OSError) -> OSError:
        return OSError(error.errno, error.strerror or str(error), "standard output")

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as error:
            raise self._named(error) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as error:
            raise self._named(error) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _silence_stdout() -> None:
    """Point stdout's descriptor at /dev/null, so that the interpreter's last flush of what is left in its buffer
    (the reader of the pipe has gone) fails no more (Python's documented idiom for SIGPIPE)."""
    try:
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture): nothing to silence
        pass


def run_command(command: Callable[[], int], *, program: str = "symconv",
                expected: tuple[type[BaseException], ...] = (),
                cleanup: Optional[Callable[[], None]] = None) -> int:
    """Run ``command`` -> its exit status; what it raises -> one line on stderr and 2 (bad input, a refusal by
    the system, or one of ``expected``), 130 (Ctrl-C) or 70 (a bug: an exception nobody expected; with
    ``SYMCONV_TRACEBACK=1`` the traceback is shown instead). ``cleanup`` runs first (it erases a progress bar).

    >>> run_command(lambda: int("x"), program="demo")
    2
    """
    refused: tuple[type[BaseException], ...] = (UsageError, ValueError, ImportError, *expected)
    stdout = sys.stdout
    try:
        try:
            if stdout is not None:  # None: started with stdout closed, and print() writes nothing
                sys.stdout = _NamedStdout(stdout)
            try:
                status = command()
            except SystemExit as done:  # argparse's --help: its text must reach a closed pipe's check below too
                status = done.code if isinstance(done.code, int) else (0 if done.code is None else USAGE)
            if stdout is not None:
                sys.stdout.flush()  # here, not at exit: a full disk or a closed pipe must still be reported
        finally:
            sys.stdout = stdout
            if cleanup is not None:
                cleanup()
        return status
    except KeyboardInterrupt:
        report(program, "interrupted")
        return INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return USAGE
    except MemoryError:
        report(program, "error: out of memory (the request is too large for this machine)")
        return USAGE
    except OSError as error:
        report(program, f"error: {_os_message(error)}")
        return USAGE
    except refused as error:
        report(program, f"error: {_first_line(error)}")
        return USAGE
    except Exception as error:
        if os.environ.get("SYMCONV_TRACEBACK") == "1":
            raise
        report(program, f"internal error (a bug: please report it; SYMCONV_TRACEBACK=1 shows where): "
                        f"{type(error).__name__}: {_first_line(error)}")
        return INTERNAL
