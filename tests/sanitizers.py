"""Sanitized test runs: a pytest command line -> the same run with every kernel built with AddressSanitizer and
UndefinedBehaviorSanitizer and their runtimes preloaded into Python (``make test-sanitize``).

Python itself is not instrumented, so the runtimes must be the first libraries loaded (``LD_PRELOAD``); the
kernels and the checked-call extension are compiled with ``SANITIZE_CFLAGS`` (``tests/conftest.py`` adds them
when ``SANITIZE_ENV`` is set). Leak detection is off: CPython frees little at exit, by design. Any report aborts
the process (``halt_on_error``), so a run passes only if no sanitizer reported anything.

    python tests/sanitizers.py [pytest options] [tests]    # default tests: SANITIZED_TESTS
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

SANITIZE_ENV = "SYMCONV_TEST_SANITIZE"
SANITIZE_CFLAGS = ("-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                   "-fno-sanitize-recover=all")
"""-O1: UBSan makes straight-line code slow to compile at -O3, and -O1 keeps the reports' lines exact."""
RUNTIMES = ("libasan.so", "libubsan.so")
OPTIONS = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=86",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87"}
"""Exit codes of their own, so that a test can tell a sanitizer's report from any other failure."""

TESTS = Path(__file__).resolve().parent
SANITIZED_TESTS = (
    "tests/test_sanitizers.py",  # the grid: every strategy, both dtypes, fuse_relu, bind; a compiled network
    "tests/test_runtime.py",  # every hostile argument of a convolution, on the C and the Python path
    "tests/test_layer_kernels.py::test_hostile_arguments_are_refused_before_any_c",
    "tests/test_layer_kernels.py::test_an_array_that_lies_about_its_shape_or_dtype_is_refused_by_its_real_memory",
    "tests/test_layer_kernels.py::test_layer_methods_run_in_c_and_mean_what_their_python_methods_mean",
)


def compiler() -> str:
    """The compiler that builds the kernels (as ``symconv.build.compiler.compiler_command``)."""
    from symconv.build.compiler import compiler_command

    return compiler_command()[0]


def runtime_libraries() -> Optional[list[str]]:
    """The compiler's ASan and UBSan runtimes (``-print-file-name``), or None if it has not both."""
    found = []
    for name in RUNTIMES:
        try:
            path = subprocess.run([compiler(), f"-print-file-name={name}"], capture_output=True, text=True,
                                  check=True, timeout=60).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
        if not os.path.isabs(path) or not os.path.exists(path):  # the bare name back: not installed
            return None
        found.append(os.path.realpath(path))
    return found


def sanitized_environment() -> Optional[dict[str, str]]:
    """``os.environ`` with the runtimes preloaded, their options set and ``SANITIZE_ENV`` on; None without them."""
    libraries = runtime_libraries()
    if libraries is None:
        return None
    preload = " ".join([*libraries, os.environ.get("LD_PRELOAD", "")]).strip()
    return {**os.environ, **OPTIONS, "LD_PRELOAD": preload, SANITIZE_ENV: "1"}


def main(arguments: list[str]) -> int:
    environment = sanitized_environment()
    if environment is None:
        print(f"sanitizers: {compiler()} has no {' or '.join(RUNTIMES)}; install GCC's libasan and libubsan",
              file=sys.stderr)
        return 2
    # Options alone (``--durations=10``) apply to the default tests: never the whole suite by accident.
    tests = [] if any(not a.startswith("-") for a in arguments) else list(SANITIZED_TESTS)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *arguments, *tests]
    return subprocess.run(command, env=environment, cwd=TESTS.parent).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
