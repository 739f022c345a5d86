"""Compiler runs: a build job's source, cdef and flags -> an extension in a work directory, compiled by a child
process group that never outlives the process that started it.

The child interpreter runs cffi (or setuptools' ``build_ext``), which runs the C compiler, which runs ``cc1``,
``as`` and ``ld``. All of them share one process group of their own (``start_new_session``). The parent ends the
group on any exception (Ctrl-C's ``KeyboardInterrupt`` included); if the parent dies without a chance to do so
(``SIGKILL``, or ``SIGTERM``, whose default action runs no Python), the child notices that the parent's end of
its stdin pipe closed, the *lifeline*, and ends the group itself.

Environment variables that change the binary are part of every cache key (``build_environment``): those that
setuptools' ``customize_compiler`` reads to form the command lines (``CC``, ``CFLAGS``, ``LDSHARED``, ...) and
those that GCC and Clang read to find headers, libraries and their own passes (``CPATH``, ``LIBRARY_PATH``,
``COMPILER_PATH``, ...); the compiler found on ``PATH`` enters as its resolved path.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import IO, Final, Optional

__all__ = ["BUILD_ENVIRONMENT", "CompilerError", "build_environment", "check_compiler", "compiler_command",
           "library_name", "run_compiler"]

BUILD_ENVIRONMENT: Final = (
    # read by setuptools' distutils (compilers/C/unix.py, customize_compiler) to form the command lines
    "CC", "CXX", "CPP", "LDSHARED", "LDCXXSHARED", "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "AR", "ARFLAGS",
    "RANLIB", "ARCHFLAGS", "MACOSX_DEPLOYMENT_TARGET", "_PYTHON_HOST_PLATFORM", "_PYTHON_SYSCONFIGDATA_NAME",
    # read by GCC and Clang themselves: where headers, libraries and the compiler's own passes are found
    "CPATH", "C_INCLUDE_PATH", "LIBRARY_PATH", "COMPILER_PATH", "GCC_EXEC_PREFIX", "SDKROOT",
)
"""The environment variables that can change a built module: each one set enters the cache key."""

# Runs in the child interpreter: cffi's compile() changes the working directory and distutils' global state,
# which must not happen to the caller's process (threads share the cwd). The child sees only this job, which
# comes as the first line of stdin; the rest of stdin stays open as the lifeline until the parent closes it.
_COMPILE_SCRIPT: Final = """\
import json, os, signal, sys, threading
job = json.loads(sys.stdin.readline())
def lifeline():
    sys.stdin.read()  # returns only at EOF: the parent died (a finished child has exited before that)
    os.killpg(0, signal.SIGKILL)
threading.Thread(target=lifeline, daemon=True).start()
import cffi
if job["cdef"] is None:  # a CPython extension of its own: setuptools' build_ext, as cffi itself runs it
    from setuptools import Distribution, Extension
    with open(job["module"] + ".c", "w", encoding="utf-8") as source:
        source.write(job["source"])
    extension = Extension(job["module"], [job["module"] + ".c"], include_dirs=job["include_dirs"],
                          define_macros=[("SYMCONV_MODULE", job["module"])], extra_compile_args=job["cflags"],
                          extra_link_args=job["ldflags"])
    dist = Distribution({"ext_modules": [extension]})
    options = dist.get_option_dict("build_ext")
    options["build_lib"] = options["build_temp"] = ("symconv", ".")
    dist.run_command("build_ext")
else:
    ffi = cffi.FFI()
    ffi.cdef(job["cdef"])
    ffi.set_source(job["module"], job["source"], extra_compile_args=job["cflags"], extra_link_args=job["ldflags"])
    ffi.compile(tmpdir=".", verbose=False)
"""


class CompilerError(RuntimeError):
    """The C compiler is missing or rejected the generated code; the message says which and why."""


def compiler_command() -> list[str]:
    """The C compiler cffi will run: ``$CC`` if set (as distutils does), else the one Python was built with.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"CC": "ccache gcc -m64"}):
    ...     compiler_command()
    ['ccache', 'gcc', '-m64']
    """
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")


def build_environment() -> dict[str, str]:
    """The variables of ``BUILD_ENVIRONMENT`` that are set, and the compiler's resolved path: for the cache key.

    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"CFLAGS": "-O0"}):
    ...     build_environment()["CFLAGS"]
    '-O0'
    """
    found = {name: os.environ[name] for name in BUILD_ENVIRONMENT if name in os.environ}
    command = compiler_command()
    resolved = shutil.which(command[0]) if command else None
    # Another gcc earlier on PATH is another compiler: the real file (gcc -> gcc-12) names it and its version.
    found["compiler path"] = os.path.realpath(resolved) if resolved else ""
    return found


def check_compiler() -> None:
    """Raise ``CompilerError``, naming where it came from, if the C compiler is not found."""
    command = compiler_command()
    if not command or shutil.which(command[0]) is None:
        origin = "the CC environment variable" if os.environ.get("CC") else "Python's build configuration"
        shown = command[0] if command else os.environ.get("CC", "")
        raise CompilerError(
            f"C compiler {shown!r} (from {origin}) was not found; install a C compiler such as gcc, "
            "or set CC to one"
        )


def library_name(name: str) -> str:
    """The file name of extension module ``name`` for this Python (``name`` + ``EXT_SUFFIX``)."""
    return name + sysconfig.get_config_var("EXT_SUFFIX")


def _compiler_failure(name: str, stderr: str) -> CompilerError:
    # The compiler's own diagnostics come before the Python traceback; keep them and the final error line.
    diagnostics, _, traceback = stderr.partition("Traceback (most recent call last):")
    lines = traceback.strip().splitlines()
    summary = lines[-1] if lines else ""
    command = " ".join(compiler_command())
    return CompilerError(f"compiling {name} with {command!r} failed:\n{diagnostics.strip()}\n{summary}".rstrip())


def _end_group(child: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)  # the child leads its group: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already
    child.wait()


def run_compiler(name: str, source: str, cdef: Optional[str], cflags: tuple[str, ...], ldflags: tuple[str, ...],
                 include_dirs: tuple[str, ...], workdir: Path) -> Path:
    """Compile module ``name`` in ``workdir`` with a child interpreter; return the path of the extension.

    The compiler's output goes to ``workdir/compiler.log``; a failure raises ``CompilerError`` with it.
    """
    payload = json.dumps({"module": name, "source": source, "cdef": cdef, "cflags": list(cflags),
                          "ldflags": list(ldflags), "include_dirs": list(include_dirs)})
    log_path = workdir / "compiler.log"
    with open(log_path, "wb") as log:
        child = subprocess.Popen([sys.executable, "-c", _COMPILE_SCRIPT], stdin=subprocess.PIPE, stdout=log,
                                 stderr=subprocess.STDOUT, cwd=workdir, start_new_session=os.name == "posix")
        lifeline: IO[bytes] = child.stdin  # type: ignore[assignment]
        try:
            lifeline.write(payload.encode() + b"\n")
            lifeline.flush()
            returncode = child.wait()
        except BaseException:  # KeyboardInterrupt, SystemExit from a signal handler, a failed write...
            if os.name == "posix":
                _end_group(child)
            else:
                child.kill()
                child.wait()
            raise
        finally:
            try:
                lifeline.close()
            except OSError:
                pass  # a child that died first leaves a broken pipe
    library = workdir / library_name(name)
    if returncode != 0 or not library.is_file():
        raise _compiler_failure(name, log_path.read_text(encoding="utf-8", errors="replace"))
    return library
