"""Shared fixtures: a private kernel cache for the whole session, and strict compiler flags."""

from __future__ import annotations

import os
from typing import Callable, Iterator, Optional

import pytest
from sanitizers import SANITIZE_CFLAGS, SANITIZE_ENV

from symconv import ConvKernels, ConvSpec, compile_conv
from symconv.build.cache import CACHE_ENV

SANITIZED = os.environ.get(SANITIZE_ENV) == "1"
"""Set by ``python tests/sanitizers.py`` (``make test-sanitize``), which preloads the sanitizers' runtimes: then
every kernel built with the strict flags is built with the sanitizers, and so are its checked calls."""
# As pystencils does in its tests: any warning in the generated C fails loudly.
STRICT_CFLAGS = (*(SANITIZE_CFLAGS if SANITIZED else ("-O3",)), "-Wall", "-Wextra", "-Werror")


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every compile of the session goes to one temporary cache, never the user's ~/.cache."""
    path = str(tmp_path_factory.mktemp("symconv-cache"))
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = path
    yield path
    if previous is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = previous


@pytest.fixture(scope="session")
def kernels(kernel_cache: str) -> Callable[..., ConvKernels]:
    """compile_conv with the strict flags; one module per (spec, dtype, strategy), reused by every test."""

    def compile_strict(spec: ConvSpec, dtype: str = "float64", strategy: Optional[str] = None) -> ConvKernels:
        return compile_conv(spec, dtype, strategy, cflags=STRICT_CFLAGS)

    return compile_strict
