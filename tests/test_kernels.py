"""The compiled kernels, numerically: against the NumPy reference, the symbolic derivation, the dot and Taylor
tests, across strategies and dtypes; and every bad argument rejected before any C runs."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from symconv import ConvSpec, derive
from symconv.codegen.lowering import UNROLL_LIMIT, multiply_adds
from symconv.pipeline import FLOAT32_UNIT_ROUNDOFF
from symconv.symbolic.reference import conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight

GRID = [
    ConvSpec((3, 3), (2, 2)),
    ConvSpec((6, 6), (3, 3), stride=2),  # leftover a = 1
    ConvSpec((7, 5), (3, 2), stride=(2, 3)),  # per-axis stride, leftover (0, 0)
    ConvSpec((8, 9), (3, 3), stride=3, padding=(1, 2), dilation=(2, 1)),  # leftover (1, 2)
    ConvSpec((5, 5), (3, 3), padding=1),
    ConvSpec((7, 7), (3, 3), dilation=2, flip=True),
    ConvSpec((5, 6), (2, 3), in_channels=2, out_channels=3, batch=2, flip=True),
    ConvSpec((6, 6), (3, 3), padding=2, dilation=2, in_channels=2, flip=True),
    ConvSpec((4, 4), (1, 1), out_channels=2),
    ConvSpec((1, 1), (3, 3), padding=1),  # eight of nine taps on padding
    ConvSpec((9, 9), (4, 4), stride=(3, 1), padding=(3, 0), in_channels=2, out_channels=2, flip=True),
    ConvSpec((7, 7), (3, 3), stride=2, padding=1, dilation=2, in_channels=2, out_channels=3),  # dx phases no tap reaches
    ConvSpec((12, 10), (3, 3), stride=2, padding=1, in_channels=3, out_channels=4, batch=2),  # loops only
]
SMALL = [s for s in GRID if multiply_adds(s) <= UNROLL_LIMIT]
CASES = [(s, "unrolled") for s in SMALL] + [(s, strategy) for strategy in ("loops", "gemm", "direct") for s in GRID]


def ids(case) -> str:
    spec, strategy = case
    return f"{spec.describe()}|{strategy}"


def random_args(spec: ConvSpec, dtype: str = "float64", seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.uniform(-1, 1, spec.input_shape).astype(dtype),
        "w": rng.uniform(-1, 1, spec.weight_shape).astype(dtype),
        "b": rng.uniform(-1, 1, spec.out_channels).astype(dtype),
        "dy": rng.uniform(-1, 1, spec.output_shape).astype(dtype),
    }


def dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.ravel(), b.ravel()))


@pytest.fixture(params=CASES, ids=[ids(c) for c in CASES])
def case(request, kernels):
    spec, strategy = request.param
    k = kernels(spec, "float64", strategy)
    assert k.strategy == strategy
    return spec, k, random_args(spec)


def test_matches_the_reference(case):
    spec, k, a = case
    close = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.forward(a["x"], a["w"], a["b"]), conv2d_forward(spec, a["x"], a["w"], a["b"]), **close)
    np.testing.assert_allclose(k.forward(a["x"], a["w"]), conv2d_forward(spec, a["x"], a["w"]), **close)
    np.testing.assert_allclose(k.grad_input(a["dy"], a["w"]), conv2d_grad_input(spec, a["dy"], a["w"]), **close)
    np.testing.assert_allclose(k.grad_weight(a["x"], a["dy"]), conv2d_grad_weight(spec, a["x"], a["dy"]), **close)
    np.testing.assert_allclose(k.grad_bias(a["dy"]), conv2d_grad_bias(spec, a["dy"]), **close)


def test_dot_tests(case):
    """<conv(x; w), y> = <x, grad_input(y)> = <w, grad_weight(x, y)>: the gradients are the adjoints."""
    _, k, a = case
    x, w, b, y = a["x"], a["w"], a["b"], a["dy"]
    forward = dot(k.forward(x, w), y)
    scale = np.abs(x).sum() * np.abs(w).sum() * np.abs(y).max()
    assert abs(forward - dot(x, k.grad_input(y, w))) <= 1e-12 * scale
    assert abs(forward - dot(w, k.grad_weight(x, y))) <= 1e-12 * scale
    assert abs(dot(k.forward(x, w, b) - k.forward(x, w), y) - dot(b, k.grad_bias(y))) <= 1e-12 * scale


@pytest.mark.parametrize("wrt", ["input", "weight"])
def test_taylor_remainder_shrinks_quadratically(case, wrt):
    """E = ||conv(x; w) + b - t||^2 / 2: f(p + h v) - f(p) - h <g, v> must fall as h^2 (ratio 4 per halving)."""
    spec, k, a = case
    rng = np.random.default_rng(3)
    x, w, b, target = a["x"], a["w"], a["b"], a["dy"]

    def loss(x_: np.ndarray, w_: np.ndarray) -> float:
        r = k.forward(x_, w_, b) - target
        return 0.5 * dot(r, r)

    residual = k.forward(x, w, b) - target
    if wrt == "input":
        point, grad = x, k.grad_input(residual, w)
        f = lambda p: loss(p, w)  # noqa: E731
    else:
        point, grad = w, k.grad_weight(x, residual)
        f = lambda p: loss(x, p)  # noqa: E731
    v = rng.uniform(-1, 1, point.shape)
    remainders = [abs(f(point + h * v) - f(point) - h * dot(grad, v)) for h in (1e-1, 5e-2, 2.5e-2)]
    for bigger, smaller in zip(remainders, remainders[1:]):
        assert 3.5 < bigger / smaller < 4.5, remainders


def symbol_values(d, a: dict[str, np.ndarray]) -> dict[sp.Symbol, float]:
    """Every symbol of the derivation ``d`` (x, w, b, dy) -> its value in the arrays ``a``."""
    values = {}
    for name, array in (("x", d.input), ("w", d.weight), ("b", d.bias), ("dy", d.grad_output)):
        values.update(zip(array.reshape(len(array)), a[name].ravel().tolist()))
    return values


def evaluate(array: sp.Array, values: dict[sp.Symbol, float]) -> np.ndarray:
    flat = [float(e.xreplace(values)) for e in array.reshape(len(array))]
    return np.array(flat).reshape(array.shape)


@pytest.mark.parametrize("spec", SMALL[:6], ids=lambda s: s.describe())
@pytest.mark.parametrize("strategy", ["unrolled", "loops", "gemm", "direct"])
def test_matches_the_symbolic_derivation(kernels, spec, strategy):
    d = derive(spec)
    a = random_args(spec, seed=11)
    values = symbol_values(d, a)
    k = kernels(spec, "float64", strategy)
    close = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.forward(a["x"], a["w"], a["b"]), evaluate(d.output, values), **close)
    np.testing.assert_allclose(k.grad_input(a["dy"], a["w"]), evaluate(d.grad_input, values), **close)
    np.testing.assert_allclose(k.grad_weight(a["x"], a["dy"]), evaluate(d.grad_weight, values), **close)
    np.testing.assert_allclose(k.grad_bias(a["dy"]), evaluate(d.grad_bias, values), **close)


@pytest.mark.parametrize("spec", SMALL[:4], ids=lambda s: s.describe())
def test_unrolled_and_loops_agree(kernels, spec):
    unrolled, loops = kernels(spec, "float64", "unrolled"), kernels(spec, "float64", "loops")
    a = random_args(spec, seed=5)
    for method, args in (("forward", ("x", "w", "b")), ("grad_input", ("dy", "w")), ("grad_weight", ("x", "dy")),
                         ("grad_bias", ("dy",))):
        got = [getattr(k, method)(*(a[n] for n in args)) for k in (unrolled, loops)]
        np.testing.assert_allclose(got[0], got[1], rtol=1e-13, atol=1e-14, err_msg=method)


def gamma(m: int) -> float:
    u = FLOAT32_UNIT_ROUNDOFF
    return m * u / (1 - m * u)


@pytest.mark.parametrize("spec", [GRID[1], GRID[6], GRID[-1]], ids=lambda s: s.describe())
def test_float32_within_the_documented_bound_of_float64(kernels, spec):
    """|y32 - y| <= gamma_m * (sum of |terms|), m = terms per entry (compile_conv's docstring)."""
    k32, k64 = kernels(spec, "float32"), kernels(spec, "float64")
    a32 = random_args(spec, "float32", seed=9)
    a64 = {name: v.astype(np.float64) for name, v in a32.items()}  # the same numbers, exactly
    ab = {name: np.abs(v) for name, v in a64.items()}
    n, k, oh, ow = spec.output_shape
    taps = spec.in_channels * spec.kernel_size[0] * spec.kernel_size[1]
    checks = [
        (k32.forward(a32["x"], a32["w"], a32["b"]), k64.forward(a64["x"], a64["w"], a64["b"]),
         conv2d_forward(spec, ab["x"], ab["w"], ab["b"]), taps + 1),
        (k32.grad_input(a32["dy"], a32["w"]), k64.grad_input(a64["dy"], a64["w"]),
         conv2d_grad_input(spec, ab["dy"], ab["w"]), k * spec.kernel_size[0] * spec.kernel_size[1]),
        (k32.grad_weight(a32["x"], a32["dy"]), k64.grad_weight(a64["x"], a64["dy"]),
         conv2d_grad_weight(spec, ab["x"], ab["dy"]), n * oh * ow),
        (k32.grad_bias(a32["dy"]), k64.grad_bias(a64["dy"]), conv2d_grad_bias(spec, ab["dy"]), n * oh * ow),
    ]
    for got, exact, magnitude, m in checks:
        assert got.dtype == np.float32
        assert np.all(np.abs(got - exact) <= gamma(m) * magnitude + 1e-30)


@st.composite
def specs(draw) -> ConvSpec:
    kwargs = dict(
        input_size=(draw(st.integers(1, 9)), draw(st.integers(1, 9))),
        kernel_size=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        stride=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        padding=(draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        dilation=(draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        in_channels=draw(st.integers(1, 3)),
        out_channels=draw(st.integers(1, 3)),
        batch=draw(st.integers(1, 2)),
        flip=draw(st.booleans()),
    )
    try:
        return ConvSpec(**kwargs)
    except ValueError:
        assume(False)
        raise


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=specs(), seed=st.integers(0, 2**16))
# Found by hypothesis: dilation puts both taps on padding, so no equation reads x or w (C must not warn).
@example(spec=ConvSpec((1, 1), (1, 2), padding=(0, 1), dilation=(1, 2)), seed=0)
def test_random_specs_match_the_reference(kernels, spec, seed):
    k = kernels(spec, "float64")
    a = random_args(spec, seed=seed)
    close = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.forward(a["x"], a["w"], a["b"]), conv2d_forward(spec, a["x"], a["w"], a["b"]), **close)
    np.testing.assert_allclose(k.grad_input(a["dy"], a["w"]), conv2d_grad_input(spec, a["dy"], a["w"]), **close)
    np.testing.assert_allclose(k.grad_weight(a["x"], a["dy"]), conv2d_grad_weight(spec, a["x"], a["dy"]), **close)
    np.testing.assert_allclose(k.grad_bias(a["dy"]), conv2d_grad_bias(spec, a["dy"]), **close)


def test_out_is_filled_and_returned(kernels):
    spec = GRID[6]
    k, a = kernels(spec), random_args(spec)
    for method, args, shape in (("forward", (a["x"], a["w"], a["b"]), spec.output_shape),
                                ("grad_input", (a["dy"], a["w"]), spec.input_shape),
                                ("grad_weight", (a["x"], a["dy"]), spec.weight_shape),
                                ("grad_bias", (a["dy"],), (spec.out_channels,))):
        out = np.full(shape, np.nan)
        assert getattr(k, method)(*args, out=out) is out
        np.testing.assert_array_equal(out, getattr(k, method)(*args))


# Above the kernels' PARALLEL_WORK (1e5 multiply-adds), so a team of threads really starts.
THREADED = [
    ConvSpec((12, 12), (3, 3), padding=1, in_channels=4, out_channels=8, batch=3),
    ConvSpec((13, 11), (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), in_channels=5, out_channels=9,
             batch=7, flip=True),
    # 4x4 outputs: compact pixel vectors in the direct forward pass (a vector holds whole output rows)
    ConvSpec((8, 8), (3, 3), stride=2, padding=1, in_channels=8, out_channels=12, batch=8),
    # stride 3 with leftover rows and columns: the direct input gradient's phases on a team of threads
    ConvSpec((14, 13), (3, 3), stride=3, padding=(1, 2), dilation=(2, 1), in_channels=6, out_channels=10, batch=12),
]


# Register tiles of the direct strategy by number of output channels (1 -> 1 x 8 vectors, 3 -> 3 x 8, 5 -> 5 x 4,
# 12 -> two blocks of 6 x 4, 16 -> 8 x 3) on images wide enough for full strips and every kind of tail, with
# padding and dilation so that strips skip the kernel rows that read only padding.
TILES = [
    ConvSpec((28, 28), (5, 5), in_channels=1, out_channels=3, batch=2),
    ConvSpec((20, 17), (3, 3), padding=1, in_channels=5, out_channels=5),
    ConvSpec((30, 29), (3, 3), padding=2, dilation=2, in_channels=12, out_channels=12, batch=2),
    ConvSpec((23, 31), (5, 3), stride=2, padding=(2, 1), in_channels=16, out_channels=1),
    ConvSpec((19, 19), (3, 3), padding=1, in_channels=3, out_channels=16, batch=2, flip=True),
]


@pytest.mark.parametrize("spec", TILES, ids=lambda s: s.describe())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_direct_tiles_match_the_reference(kernels, spec, dtype):
    k = kernels(spec, dtype, "direct")
    a = random_args(spec, dtype, seed=5)
    exact = {name: value.astype(np.float64) for name, value in a.items()}
    close = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-4)
    np.testing.assert_allclose(k.forward(a["x"], a["w"], a["b"]),
                               conv2d_forward(spec, exact["x"], exact["w"], exact["b"]), **close)
    np.testing.assert_allclose(k.grad_input(a["dy"], a["w"]), conv2d_grad_input(spec, exact["dy"], exact["w"]), **close)
    np.testing.assert_allclose(k.grad_weight(a["x"], a["dy"]), conv2d_grad_weight(spec, exact["x"], exact["dy"]),
                               **close)


# The channels-last weight gradient (direct.grad_weight_nhwc): output channels that the register tile does not
# divide, runs of taps and channels that the vectors do not divide, stride 2, padding, dilation (dilated columns:
# one run per tap), a row that no tap reaches, batches split unevenly over 2 threads; images wider and narrower
# than a vector, with more and fewer channels, so that both parts of the packing (vector transposes, the rest) run.
NHWC = [
    ConvSpec((19, 21), (3, 3), padding=1, in_channels=20, out_channels=13, batch=3),
    ConvSpec((17, 18), (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), in_channels=12, out_channels=9,
             batch=3),
    ConvSpec((20, 23), (3, 3), stride=2, padding=2, dilation=2, in_channels=24, out_channels=11, batch=3),
    ConvSpec((9, 10), (2, 3), stride=(1, 2), padding=(0, 1), in_channels=4, out_channels=7, batch=16, flip=True),
    ConvSpec((16, 17), (3, 3), stride=2, in_channels=16, out_channels=32, batch=3),
]


# The channels-last input gradient (direct.grad_input_nhwc): channel counts that the vectors do not divide (padded
# with zero channels), 1 to 3 dx channels, padding, dilated rows and columns, a rotated kernel wider than tall and
# taller than wide; dx rows narrower than a tile (only the last tile), of two tiles and of a middle one too;
# batches split unevenly over 2 threads. float32 takes this kernel for single-channel dx only.
NHWC_INPUT = [
    ConvSpec((13, 11), (3, 5), padding=(1, 2), dilation=(2, 1), in_channels=1, out_channels=14, batch=5, flip=True),
    ConvSpec((9, 20), (5, 5), padding=(0, 3), dilation=(1, 2), in_channels=1, out_channels=12, batch=5),
    ConvSpec((9, 9), (7, 5), padding=(3, 1), in_channels=1, out_channels=7, batch=9),
    ConvSpec((10, 7), (5, 5), padding=2, in_channels=2, out_channels=16, batch=5),
    ConvSpec((12, 30), (5, 6), in_channels=3, out_channels=8, batch=3),
]
NHWC_INPUT_CASES = [(spec, dtype) for spec in NHWC_INPUT for dtype in ("float32", "float64")
                    if dtype == "float64" or spec.in_channels == 1 and spec.out_channels >= 12]


CHANNELS_LAST = ([("grad_weight", spec, dtype) for spec in NHWC for dtype in ("float32", "float64")]
                 + [("grad_input", spec, dtype) for spec, dtype in NHWC_INPUT_CASES])
PASS_INPUTS = {"grad_weight": (("x", "dy"), conv2d_grad_weight), "grad_input": (("dy", "w"), conv2d_grad_input)}


@pytest.mark.parametrize("family, spec, dtype", CHANNELS_LAST,
                         ids=lambda v: v if isinstance(v, str) else v.describe())
@pytest.mark.parametrize("arch", ["native", "portable"])
def test_channels_last_kernels_match_the_reference(kernel_cache, family, spec, dtype, arch):
    from conftest import STRICT_CFLAGS
    from symconv import compile_conv
    from symconv.codegen.lowering import lower

    assert getattr(lower(spec, dtype, "direct"), f"{family}_nhwc") and multiply_adds(spec) > 100_000
    k = compile_conv(spec, dtype, "direct", cflags=STRICT_CFLAGS, arch=arch)
    a = random_args(spec, dtype, seed=6)
    names, reference = PASS_INPUTS[family]
    expected = reference(spec, *(a[name].astype(np.float64) for name in names))
    close = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-4)
    for threads in (1, 2):
        np.testing.assert_allclose(getattr(k.with_threads(threads), family)(*(a[name] for name in names)), expected,
                                   **close)


@pytest.mark.parametrize("spec", THREADED, ids=lambda s: s.describe())
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("strategy", ["gemm", "direct"])
def test_threads_match_the_reference_and_the_dot_test(kernels, spec, threads, strategy):
    k = kernels(spec, "float64", strategy).with_threads(threads)
    assert multiply_adds(spec) > 100_000 and k.threads == threads
    a = random_args(spec, seed=threads)
    close = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.forward(a["x"], a["w"], a["b"]), conv2d_forward(spec, a["x"], a["w"], a["b"]), **close)
    np.testing.assert_allclose(k.grad_input(a["dy"], a["w"]), conv2d_grad_input(spec, a["dy"], a["w"]), **close)
    np.testing.assert_allclose(k.grad_weight(a["x"], a["dy"]), conv2d_grad_weight(spec, a["x"], a["dy"]), **close)
    x, w, y = a["x"], a["w"], a["dy"]
    forward, scale = dot(k.forward(x, w), y), np.abs(x).sum() * np.abs(w).sum() * np.abs(y).max()
    assert abs(forward - dot(x, k.grad_input(y, w))) <= 1e-12 * scale
    assert abs(forward - dot(w, k.grad_weight(x, y))) <= 1e-12 * scale


def test_direct_input_gradient_with_every_tap_on_padding(kernels):
    """A strided layer whose every tap falls on padding: the direct input gradient has no phase and is 0."""
    spec = ConvSpec((1, 1), (2, 2), stride=2, padding=1, dilation=2)
    k = kernels(spec, "float64", "direct")
    a = random_args(spec)
    out = np.full(spec.input_shape, np.nan)
    assert k.grad_input(a["dy"], a["w"], out=out) is out
    np.testing.assert_array_equal(out, conv2d_grad_input(spec, a["dy"], a["w"]))
    np.testing.assert_array_equal(out, 0)


@pytest.mark.parametrize("strategy", ["gemm", "direct"])
def test_thread_counts_agree_in_float32(kernels, strategy):
    spec = THREADED[0]
    k = kernels(spec, "float32", strategy)
    a = random_args(spec, "float32", seed=4)
    one, two = k.with_threads(1), k.with_threads(2)
    np.testing.assert_array_equal(one.forward(a["x"], a["w"], a["b"]), two.forward(a["x"], a["w"], a["b"]))
    np.testing.assert_array_equal(one.grad_input(a["dy"], a["w"]), two.grad_input(a["dy"], a["w"]))
    # grad_weight adds per-thread partial sums, so only the rounding may differ
    np.testing.assert_allclose(one.grad_weight(a["x"], a["dy"]), two.grad_weight(a["x"], a["dy"]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="threads must be from 1 to 1024, got 0"):
        k.with_threads(0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("strategy", ["gemm", "direct"])
@pytest.mark.parametrize("spec", THREADED, ids=lambda s: s.describe())
def test_portable_vector_kernels_match_the_reference(kernel_cache, dtype, strategy, spec):
    """arch='portable' builds the same templates without -march=native (narrower vectors, other tile sizes)."""
    from conftest import STRICT_CFLAGS
    from symconv import compile_conv

    k = compile_conv(spec, dtype, strategy, cflags=STRICT_CFLAGS, arch="portable", threads=2)
    a = random_args(spec, dtype, seed=8)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(k.forward(a["x"], a["w"], a["b"]), conv2d_forward(spec, a["x"], a["w"], a["b"]), **tol)
    np.testing.assert_allclose(k.grad_input(a["dy"], a["w"]), conv2d_grad_input(spec, a["dy"], a["w"]), **tol)
    np.testing.assert_allclose(k.grad_weight(a["x"], a["dy"]), conv2d_grad_weight(spec, a["x"], a["dy"]), **tol)


# The fused forward + ReLU (compile_conv(..., fuse_relu=True)): an extra kernel in the same module.
def fused(spec: ConvSpec, dtype: str = "float64", strategy=None, **options):
    from conftest import STRICT_CFLAGS
    from symconv import compile_conv

    return compile_conv(spec, dtype, strategy, cflags=STRICT_CFLAGS, fuse_relu=True, **options)


def check_relu_dot_tests(k, a: dict[str, np.ndarray]) -> None:
    """relu(A x) = D A x with D the mask of positive outputs, linear in x and in w once D is fixed, so
    <relu(A x), y> = <x, A^T (D y)> = <w, grad_weight(x, D y)>: the fused kernel and the gradients agree."""
    x, w, y = a["x"], a["w"], a["dy"]
    fused_y = k.forward_relu(x, w)
    masked = y * (k.forward(x, w) > 0)
    value, scale = dot(fused_y, y), np.abs(x).sum() * np.abs(w).sum() * np.abs(y).max()
    assert abs(value - dot(x, k.grad_input(masked, w))) <= 1e-12 * scale
    assert abs(value - dot(w, k.grad_weight(x, masked))) <= 1e-12 * scale


@pytest.mark.parametrize("spec, strategy", CASES, ids=[ids(c) for c in CASES])
def test_forward_relu_matches_the_relu_of_the_reference(kernel_cache, spec, strategy):
    k = fused(spec, "float64", strategy)
    assert k.strategy == strategy and k.fuse_relu
    a = random_args(spec, seed=5)
    close = dict(rtol=1e-12, atol=1e-12)
    reference = conv2d_forward(spec, a["x"], a["w"], a["b"])
    np.testing.assert_allclose(k.forward_relu(a["x"], a["w"], a["b"]), np.maximum(reference, 0), **close)
    np.testing.assert_allclose(k.forward_relu(a["x"], a["w"]), np.maximum(conv2d_forward(spec, a["x"], a["w"]), 0),
                               **close)
    np.testing.assert_allclose(k.forward(a["x"], a["w"], a["b"]), reference, **close)  # the plain kernel stays
    out = np.full(spec.output_shape, np.nan)
    assert k.forward_relu(a["x"], a["w"], a["b"], out=out) is out
    np.testing.assert_array_equal(out, k.forward_relu(a["x"], a["w"], a["b"]))
    check_relu_dot_tests(k, a)


@pytest.mark.parametrize("spec", SMALL[:6], ids=lambda s: s.describe())
@pytest.mark.parametrize("strategy", ["unrolled", "loops", "gemm", "direct"])
def test_forward_relu_matches_the_symbolic_derivation(kernel_cache, spec, strategy):
    d = derive(spec)
    a = random_args(spec, seed=12)
    values = symbol_values(d, a)
    expected = np.maximum(evaluate(d.output, values), 0)
    np.testing.assert_allclose(fused(spec, "float64", strategy).forward_relu(a["x"], a["w"], a["b"]), expected,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", THREADED, ids=lambda s: s.describe())
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("strategy", ["gemm", "direct"])
def test_forward_relu_threads_match_the_reference(kernel_cache, spec, threads, strategy):
    k = fused(spec, "float64", strategy).with_threads(threads)
    assert k.threads == threads and k.fuse_relu
    a = random_args(spec, seed=20 + threads)
    expected = np.maximum(conv2d_forward(spec, a["x"], a["w"], a["b"]), 0)
    np.testing.assert_allclose(k.forward_relu(a["x"], a["w"], a["b"]), expected, rtol=1e-12, atol=1e-12)
    check_relu_dot_tests(k, a)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_portable_forward_relu_matches_the_reference(kernel_cache, dtype):
    spec = THREADED[1]
    k = fused(spec, dtype, "direct", arch="portable", threads=2)
    a = random_args(spec, dtype, seed=9)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-4)
    expected = np.maximum(conv2d_forward(spec, a["x"], a["w"], a["b"]), 0)
    np.testing.assert_allclose(k.forward_relu(a["x"], a["w"], a["b"]), expected, **tol)


def test_forward_relu_is_checked_and_needs_the_flag(kernels):
    spec = GRID[6]
    a = random_args(spec)
    with pytest.raises(RuntimeError, match="fuse_relu=True"):
        kernels(spec, "float64", "direct").forward_relu(a["x"], a["w"])
    k = fused(spec, "float64", "direct")
    with pytest.raises(ValueError, match="forward_relu: argument 'x' must have dtype float64, got float32"):
        k.forward_relu(a["x"].astype(np.float32), a["w"])
    with pytest.raises(ValueError, match="forward_relu: argument 'out' overlaps 'x'"):
        k.forward_relu(a["x"], a["w"], out=a["x"].reshape(-1)[:np.prod(spec.output_shape)].reshape(spec.output_shape))
