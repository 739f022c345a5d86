"""Kernels under AddressSanitizer and UndefinedBehaviorSanitizer: the sanitized run sees a kernel that writes past
its buffer (as class 2's lying arrays made them do), and a grid of kernels runs clean under it.

The grid runs only in ``make test-sanitize`` (``python tests/sanitizers.py``), whose runtimes are preloaded; the
first tests start such a process themselves, and so run in every suite where GCC's libasan and libubsan exist.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sanitizers import OPTIONS, SANITIZE_CFLAGS, sanitized_environment

from conftest import SANITIZED, STRICT_CFLAGS
from symconv import ConvSpec, compile_conv
from symconv.build.cache import CACHE_ENV
from symconv.codegen.lowering import STRATEGIES, refusal
from symconv.pipeline import compile_network
from symconv.symbolic import reference as ref
from symconv.symbolic.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from symconv.symbolic.losses import CrossEntropyLoss
from symconv.symbolic.network import Network

REPO = Path(__file__).resolve().parent.parent
ASAN_EXIT, UBSAN_EXIT = (int(OPTIONS[name].rpartition("exitcode=")[2]) for name in ("ASAN_OPTIONS", "UBSAN_OPTIONS"))

# A convolution's forward kernel called through its unchecked entry (cffi's lib), its output checked as symconv
# checked it before issue 13's class 2 was fixed: by the .shape and .dtype the Python object reports.
PROBE = textwrap.dedent(
    f"""
    import sys
    import numpy as np
    from symconv import ConvSpec, compile_conv
    from symconv.codegen.lowering import kernels_of
    spec = ConvSpec((5, 6), (2, 3), in_channels=2, out_channels=3, batch=2)
    k = compile_conv(spec, "float32", "loops", cflags={SANITIZE_CFLAGS!r})
    class Liar(np.ndarray):
        shape = property(lambda self: spec.output_shape)
    rows = spec.output_shape[0] if sys.argv[1] == "honest" else spec.output_shape[0] - 1
    out = np.empty((rows, *spec.output_shape[1:]), np.float32).view(Liar)
    assert out.shape == spec.output_shape and out.dtype == np.float32  # the old check: passed
    x, w, b = (np.ones(s, np.float32) for s in (spec.input_shape, spec.weight_shape, (spec.out_channels,)))
    ffi, lib = k.module.ffi, k.module.lib
    forward = getattr(lib, next(kernel.name for kernel in kernels_of(spec, "float32") if kernel.family == "forward"))
    forward(*(ffi.from_buffer("float[]", a) for a in (x, w, b, out)))
    print("returned", flush=True)
    """
)

# Undefined behaviour in C that UBSan must report: a shift by more than the width (Python's own -fwrapv makes
# signed overflow defined, so that one is not).
OVERFLOW = textwrap.dedent(
    f"""
    import sys
    from symconv.build.cache import BuildJob, build, cache_root, linked_flags
    flags = {SANITIZE_CFLAGS!r}
    job = BuildJob("int shift(int a, int b) {{ return a << b; }}", "int shift(int a, int b);", flags,
                   ldflags=linked_flags(flags))
    print(build(job, cache_root()).lib.shift(1, int(sys.argv[1])), flush=True)
    """
)

sanitizers = sanitized_environment()
needs_runtimes = pytest.mark.skipif(sanitizers is None, reason="the compiler has no libasan.so and libubsan.so")


def run_sanitized(script: str, tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    assert sanitizers is not None
    env = {**sanitizers, CACHE_ENV: str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", script, *arguments], env=env, capture_output=True, text=True,
                          timeout=600)


@needs_runtimes
def test_the_sanitizer_reports_a_kernel_writing_past_a_buffer_the_old_checks_let_through(tmp_path: Path) -> None:
    honest = run_sanitized(PROBE, tmp_path, "honest")
    assert honest.returncode == 0 and "returned" in honest.stdout and "Sanitizer" not in honest.stderr, honest.stderr
    lying = run_sanitized(PROBE, tmp_path, "lying")
    assert lying.returncode == ASAN_EXIT, lying.stderr
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in lying.stderr and "WRITE of size 4" in lying.stderr
    assert "_forward" in lying.stderr  # the report's stack names the kernel that wrote
    assert "returned" not in lying.stdout  # halted at the first bad write


@needs_runtimes
def test_undefined_behaviour_halts_the_sanitized_process(tmp_path: Path) -> None:
    assert run_sanitized(OVERFLOW, tmp_path, "30").stdout.strip() == str(1 << 30)
    overflow = run_sanitized(OVERFLOW, tmp_path, "40")
    assert overflow.returncode == UBSAN_EXIT, overflow.stderr
    assert "runtime error: shift exponent 40 is too large" in overflow.stderr and not overflow.stdout


# --- the grid, under the sanitizers ---------------------------------------------------------------------------

under_sanitizers = pytest.mark.skipif(not SANITIZED, reason="runs in `make test-sanitize` (python tests/sanitizers.py), "
                                                            "with the sanitizer runtimes preloaded")
SPECS = [  # small: UBSan makes the unrolled strategy's straight-line code slow to compile (600 products per pass here)
    ConvSpec((4, 5), (2, 3), padding=1, in_channels=2, out_channels=2, batch=1),
    ConvSpec((7, 6), (3, 2), stride=(2, 3)),  # the README's wide example
    ConvSpec((6, 5), (3, 3), stride=2, padding=(2, 1), dilation=2, in_channels=2, out_channels=2),
    ConvSpec((5, 6), (3, 3), stride=2, padding=1, in_channels=3, out_channels=6, groups=3, batch=2),  # depthwise
    ConvSpec((4, 5), (1, 1), in_channels=3, out_channels=2, batch=2),  # pointwise
    ConvSpec((5, 4), (2, 3), padding="same", in_channels=4, out_channels=2, groups=2),  # grouped, asymmetric
    ConvSpec((5, 6), (2, 2), padding="same", in_channels=2, out_channels=3),  # dense, asymmetric
]
# Every strategy on every spec it computes (``refusal``), fused with a ReLU; unfused on the first such spec.
GRID = [(spec, dtype, strategy, True) for spec in SPECS for dtype in ("float32", "float64") for strategy in STRATEGIES
        if refusal(spec, strategy) is None]
GRID += [(next(spec for spec in SPECS if refusal(spec, strategy) is None), dtype, strategy, False)
         for dtype in ("float32", "float64") for strategy in STRATEGIES]
# Pointwise alone (too many products for the unrolled strategy under UBSan): more channels than its passes read or
# write in place, both through their scratch; output channels a whole number of vectors, the weight gradient as
# outer products.
GRID += [(ConvSpec((7, 8), (1, 1), in_channels=33, out_channels=34), dtype, "pointwise", True)
         for dtype in ("float32", "float64")]
GRID += [(ConvSpec((5, 7), (1, 1), in_channels=30, out_channels=48), dtype, "pointwise", True)
         for dtype in ("float32", "float64")]
TOL = {"float64": dict(rtol=1e-12, atol=1e-12), "float32": dict(rtol=1e-5, atol=1e-5)}


def _arrays(spec: ConvSpec, dtype: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(13)
    shapes = {"x": spec.input_shape, "w": spec.weight_shape, "b": (spec.out_channels,), "dy": spec.output_shape}
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in shapes.items()}


class _Liar(np.ndarray):
    shape = property(lambda self: self.reported)  # type: ignore[assignment]
    reported: tuple[int, ...] = ()


@under_sanitizers
@pytest.mark.parametrize(("spec", "dtype", "strategy", "fuse_relu"), GRID,
                         ids=[f"{s.describe()}-{d}-{st}-{'fused' if f else 'plain'}" for s, d, st, f in GRID])
def test_kernels_run_clean_under_the_sanitizers(spec: ConvSpec, dtype: str, strategy: str, fuse_relu: bool) -> None:
    compiled = compile_conv(spec, dtype, strategy, cflags=STRICT_CFLAGS, threads=2, fuse_relu=fuse_relu)
    a = _arrays(spec, dtype)
    x, w, b, dy = a["x"], a["w"], a["b"], a["dy"]
    expected: dict[str, tuple[tuple[np.ndarray, ...], np.ndarray]] = {
        "forward": ((x, w, b), ref.conv2d_forward(spec, x, w, b)),
        "grad_input": ((dy, w), ref.conv2d_grad_input(spec, dy, w)),
        "grad_weight": ((x, dy), ref.conv2d_grad_weight(spec, x, dy)),
        "grad_bias": ((dy,), ref.conv2d_grad_bias(spec, dy)),
    }
    if fuse_relu:
        expected["forward_relu"] = ((x, w, b), np.maximum(expected["forward"][1], 0))
    for k in (compiled, compiled.with_threads(1), replace(compiled, checked=None)):
        for family, (arrays, result) in expected.items():
            np.testing.assert_allclose(getattr(k, family)(*arrays), result, **TOL[dtype])
            out = np.empty(result.shape, dtype)
            assert k.bind(family, *arrays, out=out)() is out
            np.testing.assert_allclose(out, result, **TOL[dtype])
        _hostile(k, a, expected["forward"][1].shape)


def _hostile(k: Any, a: dict[str, np.ndarray], out_shape: tuple[int, ...]) -> None:
    """Arguments that would make a kernel write or read past a buffer, each refused before any C runs."""
    x, w, b, dy = a["x"], a["w"], a["b"], a["dy"]
    small = np.empty((out_shape[0] - 1, *out_shape[1:]) if out_shape[0] > 1 else (1, 1), x.dtype).view(_Liar)
    small.reported = out_shape
    narrow = np.empty(out_shape, np.float16 if x.dtype == np.float32 else np.float32)
    for call in (lambda: k.forward(x, w, b, out=small), lambda: k.forward(x, w, b, out=narrow),
                 lambda: k.forward(x[:, :, :-1], w, b), lambda: k.grad_input(dy.reshape(-1), w),
                 lambda: k.grad_bias(dy, out=b[:-1] if b.size > 1 else b[:0]),
                 lambda: k.grad_weight(x, dy, out=np.empty_like(w).T), lambda: k.bind("forward", x, w, b, out=small)):
        with pytest.raises(ValueError):
            call()


@under_sanitizers
def test_the_run_is_sanitized() -> None:
    # A sanitized run whose kernels were not instrumented would pass for the wrong reason.
    assert set(SANITIZE_CFLAGS) <= set(STRICT_CFLAGS)
    with open("/proc/self/maps", encoding="utf-8") as maps:
        loaded = maps.read()
    assert "libasan" in loaded and "libubsan" in loaded
    compiled = compile_conv(SPECS[1], "float64", "loops", cflags=STRICT_CFLAGS)
    assert "__asan_report" in Path(compiled.library).read_bytes().decode("latin-1")
    assert compiled.checked is not None and "__asan_report" in Path(compiled.checked.__file__).read_bytes().decode("latin-1")



@under_sanitizers
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_compiled_network_runs_clean_under_the_sanitizers(dtype: str) -> None:
    # Small: every layer kind (a fused conv + ReLU, both poolings, dense, the loss) in a few seconds of compiling.
    net = compile_network(Network([Conv2d(2, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(2, 2), AvgPool2d(2),
                                   Flatten(), Dense(3), CrossEntropyLoss()], (2, 1, 6, 6)), dtype,
                          cflags=STRICT_CFLAGS, threads=2)
    rng = np.random.default_rng(4)
    x, labels = rng.standard_normal((2, 1, 6, 6)).astype(dtype), np.array([0, 2])
    got, want = net.backward(x, labels), net.network.reference_backward(x, net.params, labels)
    for key in want.params:
        np.testing.assert_allclose(got.params[key], want.params[key], **TOL[dtype], err_msg=key)
    np.testing.assert_allclose(net.predict(x[:1]).shape, (1, 3))
    assert np.isfinite(net.step(x, labels, 0.1))
    for call in (lambda: net.forward(x[:, :, :5]), lambda: net.backward(x, np.array([0, 3])),
                 lambda: net.loss(x, labels[:1]), lambda: net.forward(x.astype(np.float16))):
        with pytest.raises(ValueError):
            call()
