"""Benchmarks: a suite of shapes -> tables of measured times (symbolic derivation and proof; compiled kernels)."""

from __future__ import annotations

import importlib
import statistics
import time
import timeit
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..codegen.depthwise import is_depthwise
from ..codegen.lowering import kernel_prefix, multiply_adds
from ..codegen.plan import CTYPES
from ..console import positive
from ..proofs.conv import prove
from ..symbolic.budget import estimate
from ..symbolic.derive import derive
from ..symbolic.reference import conv2d_forward, conv2d_grad_input, conv2d_grad_weight
from ..symbolic.spec import ConvSpec

__all__ = ["SYMBOLIC_SUITE", "symbolic_table", "KERNEL_SUITE", "PASSES", "KernelRow", "kernel_rows", "kernel_table",
           "add_kernel_flags", "call_overhead", "run_kernel_benchmark", "arguments", "symconv_calls", "measure",
           "moved_bytes"]

SYMBOLIC_SUITE: tuple[ConvSpec, ...] = (
    ConvSpec((3, 3), (2, 2)),
    ConvSpec((6, 6), (3, 3), stride=2),
    ConvSpec((8, 8), (3, 3), padding=1, in_channels=2, out_channels=2, batch=2),
    ConvSpec((16, 16), (3, 3), stride=2),
    ConvSpec((32, 32), (5, 5), stride=2),
    ConvSpec((48, 48), (5, 5), stride=2),
    ConvSpec((64, 64), (5, 5), stride=2),
    ConvSpec((128, 128), (5, 5), stride=2),
    ConvSpec((32, 32), (3, 3), in_channels=4, out_channels=4),
)


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) for c, w in zip(cells, widths))


def _derive_and_prove(spec: ConvSpec) -> tuple[float, float, bool]:
    limit = estimate(spec).terms  # the suite is chosen, so every row runs whatever the default limit
    start = time.perf_counter()
    d = derive(spec, max_terms=limit)
    derived = time.perf_counter()
    holds = prove(d, max_terms=limit).holds
    return derived - start, time.perf_counter() - derived, holds


def _peak_bytes(spec: ConvSpec) -> int:
    """Peak Python allocation of derive then prove, by tracemalloc (a second run: tracing slows the first)."""
    tracemalloc.start()
    try:
        _derive_and_prove(spec)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def symbolic_table(quick: bool = False) -> str:
    """Time ``derive`` and ``prove`` for each spec of the suite; one row each, with the number of products
    (multiply-adds of the forward pass) and of terms, so that the growth of time with size can be read off,
    and the peak memory of the two."""
    suite = [s for s in SYMBOLIC_SUITE if not quick or s.input_size[0] <= 16]
    header = ["layer", "products", "terms", "derive s", "prove s", "total s", "us/product", "peak MB", "holds"]
    rows = []
    for spec in suite:
        derive_s, prove_s, holds = _derive_and_prove(spec)
        found = estimate(spec)
        total = derive_s + prove_s
        rows.append(
            [
                spec.describe().replace(", cross-correlation", ""),
                str(found.products),
                str(found.terms),
                f"{derive_s:.3f}",
                f"{prove_s:.3f}",
                f"{total:.3f}",
                f"{1e6 * total / found.products:.0f}",
                f"{_peak_bytes(spec) / 1e6:.1f}",
                "yes" if holds else "NO",
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join([_row(header, widths), *(_row(r, widths) for r in rows)])


# ---------------------------------------------------------------------------------------------------------
# Kernel benchmark: the compiled kernels against PyTorch (when importable) and the NumPy reference.

KERNEL_SUITE: tuple[tuple[str, ConvSpec], ...] = (
    ("textbook", ConvSpec((3, 3), (2, 2))),
    ("28x28 5x5", ConvSpec((28, 28), (5, 5))),
    ("mnist 64x1->8", ConvSpec((28, 28), (5, 5), batch=64, in_channels=1, out_channels=8)),
    ("cifar 32x3->16", ConvSpec((32, 32), (3, 3), padding=1, batch=32, in_channels=3, out_channels=16)),
    ("s2 32x16->32", ConvSpec((16, 16), (3, 3), stride=2, padding=1, batch=32, in_channels=16, out_channels=32)),
    ("resnet 8x64->64", ConvSpec((56, 56), (3, 3), padding=1, batch=8, in_channels=64, out_channels=64)),
    ("mobilenet dw 8x96", ConvSpec((56, 56), (3, 3), padding=1, batch=8, in_channels=96, out_channels=96, groups=96)),
    ("mobilenet dw s2 8x96", ConvSpec((56, 56), (3, 3), stride=2, padding=1, batch=8, in_channels=96,
                                      out_channels=96, groups=96)),
    ("pointwise 8x96->24", ConvSpec((56, 56), (1, 1), batch=8, in_channels=96, out_channels=24)),
)
"""(name, layer) of the kernel benchmark: from the textbook example to a ResNet stage and a MobileNet block's
depthwise and pointwise layers."""

PASSES: tuple[str, ...] = ("forward", "grad_input", "grad_weight")


@dataclass(frozen=True)
class KernelRow:
    """Median seconds per call of one pass of one layer at one thread count; None where not measured."""

    name: str
    spec: ConvSpec
    family: str
    threads: int
    symconv: float
    torch: Optional[float]
    numpy: Optional[float]
    peak: float  # the machine's measured GFLOP/s at this dtype and thread count
    moved: int = 0  # bytes a pass must read and write at least (its arrays once), for memory-bound layers
    bandwidth: Optional[float] = None  # the machine's measured GB/s at this thread count, for those layers

    @property
    def gflops(self) -> float:
        """Useful work (2 N K (C / groups) Ho Wo R S flops, taps on padding included, as is customary) over time."""
        return 2 * multiply_adds(self.spec) / self.symconv / 1e9

    @property
    def gbs(self) -> float:
        """The bytes of the pass's arrays over time: the memory bandwidth the kernel sustains at least."""
        return self.moved / self.symconv / 1e9


def moved_bytes(spec: ConvSpec, family: str, itemsize: int) -> int:
    """Bytes of the arrays a pass reads and writes, each once: its least memory traffic.

    >>> moved_bytes(ConvSpec((3, 3), (2, 2)), "forward", 4)  # x 9, w 4, b 1, y 4 entries
    72
    """
    sizes = {"x": spec.input_shape, "w": spec.weight_shape, "b": (spec.out_channels,), "y": spec.output_shape}
    arrays = {"forward": ("x", "w", "b", "y"), "grad_input": ("y", "w", "x"), "grad_weight": ("x", "y", "w")}
    return itemsize * sum(int(np.prod(sizes[name])) for name in arrays[family])


def arguments(spec: ConvSpec, dtype: str) -> dict[str, np.ndarray]:
    """Seeded random x, w, b and dy of a layer, uniform in [-1, 1): the same data on every run."""
    rng = np.random.default_rng(0)
    shapes = {"x": spec.input_shape, "w": spec.weight_shape, "b": (spec.out_channels,), "dy": spec.output_shape}
    return {name: rng.uniform(-1, 1, shape).astype(dtype) for name, shape in shapes.items()}


def symconv_calls(kernels: Any, a: dict[str, np.ndarray]) -> dict[str, Callable[[], object]]:
    """Argument-free calls of each pass of ``kernels`` on ``a`` (forward with a bias), each with its own ``out=``."""
    # The preallocated out= path: what a training loop that keeps its buffers pays per call.
    y, dx, dw = (np.empty_like(a[n]) for n in ("dy", "x", "w"))
    return {
        "forward": lambda: kernels.forward(a["x"], a["w"], a["b"], out=y),
        "grad_input": lambda: kernels.grad_input(a["dy"], a["w"], out=dx),
        "grad_weight": lambda: kernels.grad_weight(a["x"], a["dy"], out=dw),
    }


def _numpy_calls(spec: ConvSpec, a: dict[str, np.ndarray]) -> dict[str, Callable[[], object]]:
    return {
        "forward": lambda: conv2d_forward(spec, a["x"], a["w"], a["b"]),
        "grad_input": lambda: conv2d_grad_input(spec, a["dy"], a["w"]),
        "grad_weight": lambda: conv2d_grad_weight(spec, a["x"], a["dy"]),
    }


def _torch_calls(torch: Any, spec: ConvSpec, a: dict[str, np.ndarray]) -> dict[str, Callable[[], object]]:
    t = {name: torch.from_numpy(value) for name, value in a.items()}  # shares memory, no copy
    geometry = dict(stride=list(spec.stride), padding=list(spec.padding), dilation=list(spec.dilation),
                    groups=spec.groups)
    conv = torch.nn.functional.conv2d
    backward = torch.ops.aten.convolution_backward

    def grad(mask: list[bool]) -> Callable[[], object]:
        return lambda: backward(t["dy"], t["x"], t["w"], None, geometry["stride"], geometry["padding"],
                                geometry["dilation"], False, [0, 0], spec.groups, mask)

    return {"forward": lambda: conv(t["x"], t["w"], t["b"], **geometry),
            "grad_input": grad([True, False, False]), "grad_weight": grad([False, True, False])}


def _calibrate(call: Callable[[], object], target: float) -> int:
    """Calls per sample so that one sample lasts about ``target`` seconds (timer resolution, loop overhead)."""
    call()  # warm: first-touch page faults, lazy initialisation
    inner = 1
    while True:
        start = time.perf_counter()
        for _ in range(inner):
            call()
        elapsed = time.perf_counter() - start
        if elapsed >= target / 4 or inner >= 1 << 20:
            return max(1, int(inner * target / max(elapsed, 1e-9)))
        inner *= 8


def _sample(call: Callable[[], object], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        call()
    return (time.perf_counter() - start) / inner


def measure(impls: dict[str, dict[str, Callable[[], object]]], repeats: int, target: float,
            budget: float) -> dict[tuple[str, str], float]:
    """Median seconds per call of every (implementation, pass), sampled round-robin so that all of them see
    the same machine state (frequency, other load) over the run; a slow implementation (NumPy on the big
    layers) takes fewer samples, at least one, so that it stays within ``budget`` seconds."""
    keys = [(impl, family) for impl, calls in impls.items() for family in calls]
    inner = {key: _calibrate(impls[key[0]][key[1]], target) for key in keys}
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    for round_ in range(repeats):
        for key in keys:
            if round_ and sum(samples[key]) * inner[key] > budget:
                continue
            samples[key].append(_sample(impls[key[0]][key[1]], inner[key]))
    return {key: statistics.median(values) for key, values in samples.items()}


def kernel_rows(dtype: str = "float32", threads: Sequence[int] = (1, 2), repeats: int = 7,
                names: Optional[Sequence[str]] = None, numpy: bool = True, target: float = 0.02,
                budget: float = 2.0) -> list[KernelRow]:
    """Measure the suite (or the layers whose names contain one of ``names``) at each thread count."""
    from ..pipeline import compile_conv
    from .peak import bandwidth_gbs, peak_gflops

    try:  # by name: a plain import is typed differently with and without torch installed (mypy)
        torch: Any = importlib.import_module("torch")
    except ImportError:  # optional: its columns are left empty
        torch = None
    suite = [(n, s) for n, s in KERNEL_SUITE if not names or any(part in n for part in names)]
    rows = []
    for count in threads:
        peak = peak_gflops(dtype, count, seconds=1.0)  # best of 5 runs of 0.2 s: robust on a noisy machine
        memory = bandwidth_gbs(count, runs=10) if any(is_depthwise(s) for _, s in suite) else None
        if torch is not None:
            torch.set_num_threads(count)
        for name, spec in suite:
            a = arguments(spec, dtype)
            impls = {"symconv": symconv_calls(compile_conv(spec, dtype, threads=count), a)}
            if torch is not None:
                impls["torch"] = _torch_calls(torch, spec, a)
            if numpy:
                impls["numpy"] = _numpy_calls(spec, a)
            times = measure(impls, repeats, target, budget)
            bound = is_depthwise(spec)  # memory-bound: reported against the bandwidth too
            for family in PASSES:
                rows.append(KernelRow(name, spec, family, count, times["symconv", family],
                                      times.get(("torch", family)), times.get(("numpy", family)), peak,
                                      moved_bytes(spec, family, np.dtype(dtype).itemsize) if bound else 0,
                                      memory if bound else None))
    return rows


def _us(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:.1f}" if seconds < 1e-3 else f"{seconds * 1e6:.0f}"


def kernel_table(rows: Sequence[KernelRow]) -> str:
    """A Markdown table of ``kernel_rows``: times in µs, symconv/PyTorch, GFLOP/s and % of the peak."""
    has_torch = any(r.torch is not None for r in rows)
    has_numpy = any(r.numpy is not None for r in rows)
    header = ["layer", "pass", "thr", "symconv µs"] + ["torch µs"] * has_torch + ["numpy µs"] * has_numpy
    has_memory = any(r.bandwidth is not None for r in rows)
    header += ["sym/torch"] * has_torch + ["GFLOP/s", "% peak"] + ["GB/s", "% bw"] * has_memory
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r.name, r.family, str(r.threads), _us(r.symconv)]
        cells += [_us(r.torch)] * has_torch + [_us(r.numpy)] * has_numpy
        if has_torch:
            cells.append("-" if r.torch is None else f"{r.symconv / r.torch:.2f}")
        cells += [f"{r.gflops:.1f}", f"{100 * r.gflops / r.peak:.0f}"]
        if has_memory:
            cells += ["-", "-"] if r.bandwidth is None else [f"{r.gbs:.1f}", f"{100 * r.gbs / r.bandwidth:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    peaks = sorted({(r.threads, r.peak) for r in rows})
    lines.append("")
    lines.append("Measured FMA peak: " + ", ".join(
        f"{p:.0f} GFLOP/s at {t} thread{'s' * (t > 1)} ({p / t:.0f} per thread)" for t, p in peaks))
    memory = sorted({(r.threads, r.bandwidth) for r in rows if r.bandwidth is not None})
    if memory:
        lines.append("Measured memory bandwidth (STREAM scale, read + write): " + ", ".join(
            f"{b:.1f} GB/s at {t} thread{'s' * (t > 1)}" for t, b in memory)
            + "; GB/s of a depthwise pass: the bytes of its arrays, each once, over its time")
    return "\n".join(lines)


def call_overhead(dtype: str = "float32", number: int = 20000, repeats: int = 7) -> dict[str, float]:
    """Seconds per whole call of the textbook forward pass with ``out=``, by path: ``checked`` (the method:
    its checks run in C, ``symconv.runtime.checked_call``), ``python`` (the same method with its checks in Python, as
    without that extension), ``cffi`` (the bare cffi call on ready pointers, no checks) and ``bound``
    (``ConvKernels.bind``: checked once, nothing per call). Best of ``repeats``: the least-disturbed run."""
    from dataclasses import replace

    from ..pipeline import compile_conv

    spec = KERNEL_SUITE[0][1]
    kernels = compile_conv(spec, dtype, threads=1)
    python = replace(kernels, checked=None)
    x, w, b = (arguments(spec, dtype)[name] for name in ("x", "w", "b"))
    out = np.empty(spec.output_shape, dtype)
    ffi, lib = kernels.module.ffi, kernels.module.lib
    pointers = [ffi.from_buffer(CTYPES[dtype] + "[]", v) for v in (x, w, b, out)]
    bare = getattr(lib, f"{kernel_prefix(spec, dtype)}_forward")
    calls = {"checked": lambda: kernels.forward(x, w, b, out=out), "python": lambda: python.forward(x, w, b, out=out),
             "cffi": lambda: bare(*pointers), "bound": kernels.bind("forward", x, w, b, out=out)}
    return {name: min(timeit.repeat(call, number=number, repeat=repeats)) / number for name, call in calls.items()}


def thread_counts(text: str) -> tuple[int, ...]:
    """``--threads 1,2`` -> (1, 2): positive integers, one at least."""
    counts = tuple(positive(t) for t in text.split(",") if t.strip())
    if not counts:
        raise ValueError(f"expected thread counts separated by commas, got {text!r}")
    return counts


def add_kernel_flags(parser: Any) -> None:
    """The options of the kernel benchmark, shared by ``symconv bench`` and ``benchmarks/kernels.py``."""
    parser.add_argument("--float64", action="store_true", help="double precision (default float32)")
    parser.add_argument("--threads", type=thread_counts, default=(1, 2), help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--repeats", type=positive, default=7, help="samples per median (default 7)")
    parser.add_argument("--only", default="", help="comma-separated parts of layer names to run")
    parser.add_argument("--no-numpy", action="store_true", help="skip the NumPy reference column")


def run_kernel_benchmark(args: Any) -> str:
    """The kernel table for parsed ``add_kernel_flags`` options; ``--quick`` means 3 repeats, short samples."""
    quick = getattr(args, "quick", False)
    rows = kernel_rows(
        "float64" if args.float64 else "float32",
        threads=args.threads,
        repeats=3 if quick else args.repeats,
        names=[n for n in args.only.split(",") if n] or None,
        numpy=not args.no_numpy,
        target=0.005 if quick else 0.02,
        budget=0.5 if quick else 2.0,
    )
    us = {path: f"{seconds * 1e6:.2f} µs" for path, seconds in call_overhead(
        "float64" if args.float64 else "float32").items()}
    return kernel_table(rows) + (f"\nA whole textbook forward call with out=: {us['checked']} checked (in C), "
                                 f"{us['python']} with the checks in Python, {us['cffi']} for the bare cffi call "
                                 f"(no checks), {us['bound']} bound (ConvKernels.bind)")
