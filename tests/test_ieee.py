"""Non-finite inputs in IEEE arithmetic: an output entry is inf or NaN only if a term of its own defining sum is.

A kernel that multiplies zero padding, or the columns of a wide row that no output reads, by data turns one
``inf`` into NaNs in entries whose sums never contain it. The reference here is the definition itself: the set of
entries with a non-finite term, computed by the NumPy reference on indicator arrays (padding adds nothing), and
the values of the other entries, which cannot depend on the non-finite inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

from symconv import ConvSpec, compile_conv
from symconv.codegen.lowering import UNROLL_LIMIT, multiply_adds
from symconv.pipeline import FLOAT32_UNIT_ROUNDOFF
from symconv.symbolic.reference import conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight

SPECS = [
    ConvSpec((5, 5), (3, 3), padding=1, in_channels=2),  # the example: 9 entries of dE/dF went NaN
    ConvSpec((6, 6), (3, 3), stride=2, in_channels=2, out_channels=2),  # a = 1: the last row is read by no output
    ConvSpec((8, 9), (3, 3), stride=3, padding=(1, 2), dilation=(2, 1), in_channels=2, out_channels=2),
    ConvSpec((7, 7), (3, 3), stride=2, padding=1, dilation=2, in_channels=2, out_channels=3, batch=2),
    ConvSpec((12, 10), (3, 3), stride=2, padding=1, in_channels=3, out_channels=4, batch=2),
    ConvSpec((9, 9), (4, 4), stride=(3, 1), padding=(3, 0), in_channels=2, out_channels=2, flip=True),
]
STRATEGIES = ("unrolled", "loops", "gemm", "direct")
# Layers only some strategies compute: grouped and depthwise (asymmetric padding, multiplier 2), and 1x1.
OWN_STRATEGIES = [
    (ConvSpec((7, 7), (3, 3), stride=2, padding=1, in_channels=3, out_channels=3, groups=3, batch=2), "depthwise"),
    (ConvSpec((6, 5), (3, 3), padding=((1, 0), (2, 1)), in_channels=2, out_channels=4, groups=2), "depthwise"),
    (ConvSpec((6, 5), (3, 3), padding=((1, 0), (2, 1)), in_channels=2, out_channels=4, groups=2), "loops"),
    (ConvSpec((6, 6), (3, 3), padding=1, in_channels=4, out_channels=2, groups=2), "unrolled"),
    (ConvSpec((5, 6), (1, 1), in_channels=3, out_channels=4, batch=2), "pointwise"),
]
CASES = [(s, st, dt) for s in SPECS for st in STRATEGIES for dt in ("float32", "float64")
         if st != "unrolled" or multiply_adds(s) <= UNROLL_LIMIT]
CASES += [(s, st, dt) for s, st in OWN_STRATEGIES for dt in ("float32", "float64")]

# pass -> (the two inputs by name, the reference)
PASSES = {
    "forward": (("x", "w"), lambda s, a: conv2d_forward(s, a["x"], a["w"], a["b"])),
    "grad_input": (("dy", "w"), lambda s, a: conv2d_grad_input(s, a["dy"], a["w"])),
    "grad_weight": (("x", "dy"), lambda s, a: conv2d_grad_weight(s, a["x"], a["dy"])),
    "grad_bias": (("dy",), lambda s, a: conv2d_grad_bias(s, a["dy"])),
}


def arrays(spec: ConvSpec, dtype: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"x": spec.input_shape, "w": spec.weight_shape, "b": (spec.out_channels,), "dy": spec.output_shape}
    return {name: rng.uniform(0.5, 1.5, shape).astype(dtype) for name, shape in shapes.items()}


def expected(spec: ConvSpec, name: str, given: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The definition's answer: (which entries have a non-finite term, the values of the others)."""
    inputs, reference = PASSES[name]
    # Positive indicators: a sum of them is > 0 iff a term has a non-finite factor (padding contributes none).
    marks = {k: (~np.isfinite(v)).astype(np.float64) for k, v in given.items()}
    ones = {k: np.ones(v.shape) for k, v in given.items()}
    reach = sum(reference(spec, {**ones, "b": marks["b"], name_: marks[name_]}) for name_ in inputs)
    cleaned = {k: np.where(np.isfinite(v), v, 0).astype(np.float64) for k, v in given.items()}
    return np.asarray(reach) > 0, reference(spec, cleaned)


def call(kernels, name: str, a: dict[str, np.ndarray]) -> np.ndarray:
    return getattr(kernels, name)(*(a[k] for k in (("x", "w", "b") if name == "forward" else PASSES[name][0])))


def poisonings(spec: ConvSpec, name: str, seed: int) -> list[tuple[str, tuple[int, ...], float]]:
    """(array, index, value): a non-finite value at a corner, the border, the last channel, and at random."""
    rng = np.random.default_rng(seed)
    shapes = {"x": spec.input_shape, "w": spec.weight_shape, "dy": spec.output_shape}
    found = []
    for array in PASSES[name][0]:
        shape = shapes[array]
        corners = [tuple(0 for _ in shape), tuple(n - 1 for n in shape)]
        last_channel = (0, shape[1] - 1, *(n // 2 for n in shape[2:]))
        randoms = [tuple(int(rng.integers(n)) for n in shape) for _ in range(2)]
        for index, value in zip([*corners, last_channel, *randoms], [np.inf, -np.inf, np.nan, np.inf, np.nan]):
            found.append((array, index, value))
    return found


@pytest.mark.parametrize("spec, strategy, dtype", CASES,
                         ids=[f"{s.describe()}|{st}|{dt}" for s, st, dt in CASES])
def test_non_finite_inputs_reach_only_the_entries_whose_sums_read_them(kernels, spec, strategy, dtype) -> None:
    k = kernels(spec, dtype, strategy)
    rtol = 64 * FLOAT32_UNIT_ROUNDOFF if dtype == "float32" else 1e-12
    for seed, name in enumerate(PASSES):
        for array, index, value in poisonings(spec, name, seed):
            given = arrays(spec, dtype, seed=1)
            given[array][index] = value
            got = call(k, name, given)
            non_finite, values = expected(spec, name, given)
            where = f"{name} with {value} at {array}{list(index)}"
            np.testing.assert_array_equal(~np.isfinite(got), non_finite, err_msg=f"non-finite entries of {where}")
            np.testing.assert_allclose(got[~non_finite], values[~non_finite], rtol=rtol, atol=rtol,
                                       err_msg=f"finite entries of {where}")


def test_the_reference_set_is_the_definitions() -> None:
    """The indicator reference, checked by hand on the issue's example: one inf in channel 1 of x."""
    spec = ConvSpec((5, 5), (3, 3), padding=1, in_channels=2)
    given = arrays(spec, "float64", seed=0)
    given["x"][0, 1, 0, 0] = np.inf
    non_finite, _ = expected(spec, "grad_weight", given)
    # dE/dF[k, c, r, s] reads x[c, r + i - 1, s + j - 1] for outputs (i, j): only channel 1, and only the taps
    # (r, s) with r + i - 1 = 0 and s + j - 1 = 0 for some output (i, j) >= 0, that is r, s in {0, 1}.
    assert non_finite[0, 0].sum() == 0
    assert set(zip(*np.nonzero(non_finite[0, 1]))) == {(0, 0), (0, 1), (1, 0), (1, 1)}


@pytest.mark.parametrize("strategy", ["gemm", "direct"])
def test_the_fused_relu_keeps_the_definition_too(kernel_cache, strategy) -> None:
    """forward_relu: NaN stays NaN (as in the ReLU layer), and only in the entries whose sums read it."""
    spec = ConvSpec((5, 5), (3, 3), padding=1, in_channels=2, out_channels=2)
    k = compile_conv(spec, "float32", strategy, fuse_relu=True)
    for array, index in [("x", (0, 1, 0, 0)), ("w", (1, 0, 2, 2)), ("x", (0, 0, 4, 2))]:
        given = arrays(spec, "float32", seed=2)
        given[array][index] = np.nan
        got = k.forward_relu(given["x"], given["w"], given["b"])
        non_finite, values = expected(spec, "forward", given)
        np.testing.assert_array_equal(np.isnan(got), non_finite, err_msg=f"NaN at {array}{list(index)}")
        np.testing.assert_allclose(got[~non_finite], np.maximum(values[~non_finite], 0), rtol=1e-5, atol=1e-6)
