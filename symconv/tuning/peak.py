"""Peak: the machine's own FMA rate and memory bandwidth -> GFLOP/s and GB/s per thread count, from C
micro-benchmarks.

The kernel benchmark reports each kernel as a fraction of this number, so it is measured, never assumed: a
loop of independent vector fused multiply-adds (``templates/peak_fma.c.j2``, 24 accumulator chains: more than
FMA latency x FMA pipes), compiled through the same build cache with the same flags as the kernels.

On a shared virtual machine single runs vary a lot (frequency ramps, other guests), so the rate is the best
of several runs after a warm-up run: the peak is what the hardware can do, not what one run happened to get.
Memory-bound kernels (depthwise convolutions) are reported against the bandwidth instead: STREAM's "scale"
loop over two arrays of ``BANDWIDTH_BYTES`` each (``templates/peak_bandwidth.c.j2``), far beyond any cache.
"""

from __future__ import annotations

import os
import time
from typing import Any, Final, Optional

import numpy as np

from ..build.cache import DEFAULT_CFLAGS, BuildJob, build, cache_root, target_flags
from ..codegen.plan import CTYPES
from ..templating import keyed
from ..version import __version__

__all__ = ["BANDWIDTH_BYTES", "peak_gflops", "bandwidth_gbs"]

_TEMPLATES = {"c": "peak_fma.c.j2", "cdef": "peak_fma.cdef.j2"}
_BANDWIDTH_TEMPLATES: Final = {"c": "peak_bandwidth.c.j2", "cdef": "peak_bandwidth.cdef.j2"}
BANDWIDTH_BYTES: Final = 1 << 27
"""Bytes of each of the two arrays of the bandwidth loop: 128 MiB, far more than the last-level cache."""


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


def bandwidth_gbs(threads: int = 1, *, runs: int = 5, size: int = BANDWIDTH_BYTES, arch: str = "native",
                  cache_dir: Optional[os.PathLike[str] | str] = None) -> float:
    """The memory bandwidth in GB/s (10^9 bytes read plus written per second) of ``threads`` threads together:
    the best of ``runs`` sweeps of dst = 1.0001 src over two arrays of ``size`` bytes, after one warm-up sweep.

    >>> bandwidth_gbs(size=1 << 22, runs=2) > 0.1
    True
    """
    text = {kind: keyed(name, "memory bandwidth") for kind, name in _BANDWIDTH_TEMPLATES.items()}
    cflags, ldflags = target_flags(DEFAULT_CFLAGS, arch)
    module = build(BuildJob(text["c"], text["cdef"], cflags, f"symconv {__version__}; bandwidth", ldflags),
                   cache_root(cache_dir))
    count = size // 8
    dst, src = np.empty(count), np.empty(count)
    pointers = [module.ffi.from_buffer("double[]", a) for a in (dst, src)]
    module.lib.peak_bandwidth_touch(*pointers, count, threads)  # first touch by the threads that sweep them
    module.lib.peak_bandwidth_scale(*pointers, count, threads)  # warm-up: clocks ramp, the thread team starts
    best = float("inf")
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        module.lib.peak_bandwidth_scale(*pointers, count, threads)
        best = min(best, time.perf_counter() - start)
    return 2 * count * 8 / best / 1e9
