"""Peak: the machine's own FMA rate -> GFLOP/s per dtype and thread count, from a C micro-benchmark.

The kernel benchmark reports each kernel as a fraction of this number, so it is measured, never assumed: a
loop of independent vector fused multiply-adds (``templates/peak_fma.c.j2``, 24 accumulator chains: more than
FMA latency x FMA pipes), compiled through the same build cache with the same flags as the kernels.

On a shared virtual machine single runs vary a lot (frequency ramps, other guests), so the rate is the best
of several runs after a warm-up run: the peak is what the hardware can do, not what one run happened to get.
"""

from __future__ import annotations

import os
import time
from typing import Any, Optional

from ..build.cache import DEFAULT_CFLAGS, BuildJob, build, cache_root, target_flags
from ..codegen.plan import CTYPES
from ..templating import keyed
from ..version import __version__

__all__ = ["peak_gflops"]

_TEMPLATES = {"c": "peak_fma.c.j2", "cdef": "peak_fma.cdef.j2"}


def _module(dtype: str, arch: str, cache_dir: Optional[os.PathLike[str] | str]) -> tuple[Any, str]:
    ctype = CTYPES[dtype]
    text = {kind: keyed(name, f"{dtype} peak", ctype=ctype) for kind, name in _TEMPLATES.items()}
    cflags, ldflags = target_flags(DEFAULT_CFLAGS, arch)
    job = BuildJob(text["c"], text["cdef"], cflags, f"symconv {__version__}; peak", ldflags)
    return build(job, cache_root(cache_dir)), ctype


def peak_gflops(dtype: str = "float32", threads: int = 1, *, seconds: float = 0.2, runs: int = 5,
                arch: str = "native", cache_dir: Optional[os.PathLike[str] | str] = None) -> float:
    """The FMA rate in GFLOP/s of ``threads`` threads together: best of ``runs`` runs of ``seconds / runs``.

    Divide by ``threads`` for the rate per thread (on SMT siblings it is lower than the single-thread rate).

    >>> peak_gflops("float64", seconds=0.01) > 0.1
    True
    """
    module, ctype = _module(dtype, arch, cache_dir)
    run = getattr(module.lib, f"peak_{ctype}_fma")
    per_iteration = getattr(module.lib, f"peak_{ctype}_flops_per_iteration")() * threads
    budget = seconds / max(1, runs)
    iterations = 1000
    while True:  # calibrate (and warm up: clocks ramp, threads start): grow until a run fills a quarter budget
        start = time.perf_counter()
        run(iterations, threads)
        elapsed = time.perf_counter() - start
        if elapsed > budget / 4:
            break
        iterations *= 4
    iterations = max(1, int(iterations * budget / elapsed))
    best = float("inf")
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        run(iterations, threads)
        best = min(best, time.perf_counter() - start)
    return per_iteration * iterations / best / 1e9
