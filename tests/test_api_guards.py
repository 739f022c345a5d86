"""The Python API's guards: argument types, thread counts, unrolled code size, strides far beyond the image.

Each request is either refused with a TypeError / ValueError / IndexError naming the argument, or computed
correctly in time bounded by the image; none aborts the process, hangs or wraps around.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import sympy as sp

from symconv import ConvSpec, Network, check, compile_conv, derive
from symconv.codegen.direct import bounded_stride, direct_passes
from symconv.codegen.lowering import UNROLL_MAX, choose_strategy, lower, multiply_adds
from symconv.codegen.plan import check_dtype
from symconv.printing.figures.model import picture
from symconv.runtime.kernels import MAX_THREADS
from symconv.symbolic.budget import TermLimitError, _taps_inside, check_budget, estimate
from symconv.symbolic.layers import Dense, Flatten
from symconv.symbolic.losses import MSELoss
from symconv.symbolic.reference import conv2d_forward, conv2d_grad_input, conv2d_grad_weight

SMALL = ConvSpec((5, 5), (3, 3), in_channels=2, out_channels=2)


@pytest.fixture(scope="module")
def kernels():
    return compile_conv(SMALL, "float64", "direct", threads=1)


# --- threads ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("threads, error", [(True, TypeError), ("2", TypeError), (2.7, TypeError), (2.0, TypeError),
                                            (b"2", TypeError), (0, ValueError), (-1, ValueError),
                                            (MAX_THREADS + 1, ValueError), (2**31, ValueError)])
def test_bad_thread_counts_are_refused_by_name(threads: object, error: type, kernels) -> None:
    with pytest.raises(error, match="^threads must"):
        compile_conv(SMALL, "float64", "direct", threads=threads)  # type: ignore[arg-type]
    with pytest.raises(error, match="^threads must"):
        kernels.with_threads(threads)
    with pytest.raises(error, match="^threads must"):
        dataclasses.replace(kernels, threads=threads)  # threads=0 used to reach libgomp, which aborts


def test_numpy_thread_counts_are_integers(kernels) -> None:
    two = kernels.with_threads(np.int64(2))
    assert two.threads == 2 and type(two.threads) is int
    x = np.ones(SMALL.input_shape)
    np.testing.assert_array_equal(two.forward(x, np.ones(SMALL.weight_shape), None),
                                  kernels.forward(x, np.ones(SMALL.weight_shape), None))


# --- unrolled code size ----------------------------------------------------------------------------------------

def test_unrolled_is_refused_above_its_limit_before_anything_is_built() -> None:
    at = ConvSpec((128, 128), (1, 1))  # 128 x 128 = 16,384 multiply-adds per pass: the largest accepted
    over = ConvSpec((129, 128), (1, 1))
    assert multiply_adds(at) == UNROLL_MAX < multiply_adds(over)
    assert choose_strategy(at, "unrolled") == "unrolled"
    big = ConvSpec((64, 64), (3, 3), in_channels=4)
    for call in (lambda: choose_strategy(over, "unrolled"), lambda: lower(big, "float32", "unrolled"),
                 lambda: compile_conv(big, "float32", "unrolled"),
                 lambda: compile_conv(big, "float32", {"forward": "direct", "grad_input": "unrolled",
                                                        "grad_weight": "direct", "grad_bias": "direct"})):
        with pytest.raises(ValueError, match="UNROLL_MAX = 16,384"):
            call()


# --- strides and dilations far beyond the image ----------------------------------------------------------------

@pytest.mark.parametrize("stride, dilation", [((2**30, 2**30), (1, 1)), ((3, 2**20), (2, 1)), ((2**30, 1), (1, 1)),
                                              ((1, 2), (2**30, 1))])
def test_a_stride_or_dilation_far_beyond_the_image_is_computed_exactly(stride, dilation) -> None:
    kernel = (3, 2) if dilation[0] == 1 else (1, 2)
    spec = ConvSpec((7, 6), kernel, stride=stride, padding=(1 if kernel[0] > 1 else 0, 1), dilation=dilation,
                    in_channels=2, out_channels=3)
    assert len(direct_passes(spec)) <= 1 + 7 * 6  # one forward geometry, at most one phase per input pixel
    rng = np.random.default_rng(13)
    x, w = rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape)
    b, dy = rng.standard_normal(3), rng.standard_normal(spec.output_shape)
    for strategy in ("direct", "loops"):
        k = compile_conv(spec, "float64", strategy, threads=1)
        np.testing.assert_allclose(k.forward(x, w, b), conv2d_forward(spec, x, w, b), atol=1e-12)
        np.testing.assert_allclose(k.grad_input(dy, w), conv2d_grad_input(spec, dy, w), atol=1e-12)
        np.testing.assert_allclose(k.grad_weight(x, dy), conv2d_grad_weight(spec, x, dy), atol=1e-12)


def test_bounded_stride_is_the_same_layer() -> None:
    for size, k, s, p, d in itertools.product((1, 4, 7), (1, 2, 3), (1, 2, 5, 9, 2**40), (0, 1), (1, 2)):
        try:
            spec = ConvSpec((size, 3), (k, 1), stride=(s, 1), padding=(p, 0), dilation=(d, 1))
        except ValueError:
            continue
        bounded = bounded_stride(spec)
        assert bounded.output_size == spec.output_size and bounded.leftover == spec.leftover
        assert bounded.stride[0] <= size + 2 * p


def test_parameters_beyond_a_c_int_are_refused_by_name() -> None:
    for name, spec in [("stride", ConvSpec((6, 6), (3, 3), stride=2**100)),
                       ("dilation", ConvSpec((6, 6), (1, 1), dilation=(1, 2**40))),
                       ("input_size", ConvSpec((2**33, 1), (1, 1)))]:
        with pytest.raises(ValueError, match=f"^{name} .* beyond the C kernels' int"):
            lower(spec, "float32", "direct")


def test_term_counts_are_exact_along_either_axis() -> None:
    cases = 0
    for size, k, s, p, d in itertools.product(range(1, 9), range(1, 6), range(1, 5), range(4), range(1, 4)):
        eff = k + (k - 1) * (d - 1)
        if p >= eff or eff > size + 2 * p:
            continue
        out = (size + 2 * p - eff) // s + 1
        brute = sum(1 for r in range(k) for o in range(out) if 0 <= o * s + r * d - p < size)
        assert _taps_inside(size, out, k, s, p, d) == brute
        cases += 1
    assert cases > 900


def test_absurd_sizes_are_counted_at_once_and_refused() -> None:
    spec = ConvSpec((2**62, 2**62), (2**62, 2**62))  # out = 1: the count loops over outputs, not taps
    assert estimate(spec).products == 4**62
    for huge in (spec, ConvSpec((2**63 - 1, 5), (2**61, 3))):  # both axes large: the lower bound decides
        with pytest.raises(TermLimitError, match="terms"):
            check_budget(huge, 2**62, "derive")
    with pytest.raises(ValueError, match="figures draw maps up to"):
        picture(ConvSpec((10**9, 10**9), (3, 3)), "forward")


# --- API types -------------------------------------------------------------------------------------------------

def test_numpy_integers_are_sizes() -> None:
    spec = ConvSpec(np.int64(5), (np.int32(3), 3), stride=np.int64(2), padding=np.uint8(1),
                    in_channels=np.int64(2), out_channels=np.int16(3), batch=np.int64(2))
    assert spec == ConvSpec(5, 3, 2, 1, in_channels=2, out_channels=3, batch=2)
    assert all(type(v) is int for v in (*spec.input_size, *spec.stride, spec.in_channels, spec.batch))
    for bad in ("3", "３", 3.0, np.float64(3), True, np.bool_(True)):
        with pytest.raises(ValueError, match="input_size"):
            ConvSpec(bad, 2)  # type: ignore[arg-type]


def test_dtypes_by_name_or_numpy() -> None:
    assert check_dtype(np.dtype("float32")) == check_dtype(np.float32) == "float32"
    assert check_dtype(np.dtype(np.float64)) == "float64"
    with pytest.raises(ValueError, match="dtype must be one of"):
        check_dtype(np.dtype("int32"))
    for bad in (3, None, float):
        with pytest.raises(TypeError, match="dtype must be a str or a NumPy dtype"):
            check_dtype(bad)
    k = compile_conv(SMALL, np.dtype("float64"), "direct", threads=1)  # type: ignore[arg-type]
    assert k.dtype == np.float64 and k.forward(np.ones(SMALL.input_shape), np.ones(SMALL.weight_shape)).sum() > 0


def test_cflags_must_be_a_sequence_of_strings() -> None:
    for bad in ("-O3", b"-O3", ("-O3", 3)):
        with pytest.raises(TypeError, match="cflags must be a sequence of strings"):
            compile_conv(SMALL, "float64", "direct", cflags=bad)  # type: ignore[arg-type]


def test_derive_chain_rule_and_check_refuse_by_name() -> None:
    with pytest.raises(TypeError, match="derive takes a ConvSpec"):
        derive((3, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index_base"):
        derive(ConvSpec(3, 2), 2)
    d = derive(ConvSpec((3, 3), (2, 2)))
    for index in ((0, 0, 3, 0), (0, 0, -1, 0), (0, 1, 0, 0), (1, 0, 0, 0)):  # -1 used to wrap to the last row
        with pytest.raises(IndexError, match="outside input"):
            d.chain_rule("input", index)
    for index in ((0, 0, 0), [0, 0, 0, 0], (0, 0, 0.0, 0), (0, 0, True, 0)):
        with pytest.raises(TypeError, match="index of input"):
            d.chain_rule("input", index)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="wrt must be"):
        d.chain_rule("inputs", (0, 0, 0, 0))  # type: ignore[arg-type]
    assert d.chain_rule("weight", tuple(np.int64(i) for i in (0, 0, 1, 1))) == d.chain_rule("weight", (0, 0, 1, 1))
    good = d.output.tolist()
    for bad in ("x", None, object(), b"1", True):
        candidate = [row[:] for row in good[0][0]]
        candidate[1][1] = bad
        with pytest.raises(TypeError, match="candidate for output must hold SymPy expressions or numbers"):
            check(d, "output", candidate)
    assert check(d, "output", np.array(good, dtype=object)).holds
    assert not check(d, "output", [[0, 1.5], [np.float64(2), sp.Integer(3)]]).holds


def test_a_step_refuses_a_non_finite_learning_rate() -> None:
    net = Network([Flatten(), Dense(3), MSELoss()], (2, 1, 2, 2)).compile("float32", seed=3)
    x, target = np.ones((2, 1, 2, 2), np.float32), np.zeros((2, 3), np.float32)
    before = {key: p.copy() for key, p in net.params.items()}
    for lr in (float("nan"), float("inf"), 1e40, np.float64("nan")):
        with pytest.raises(ValueError, match="^lr must be finite in float32"):
            net.step(x, target, lr)
    for lr in ("0.1", None, True):
        with pytest.raises(TypeError, match="^lr must be a number"):
            net.step(x, target, lr)  # type: ignore[arg-type]
    assert all(np.array_equal(before[key], p) for key, p in net.params.items())  # nothing was touched
    assert np.isfinite(net.step(x, target, 0.1))
