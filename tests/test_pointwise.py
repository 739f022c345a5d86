"""The pointwise strategy (dense 1x1 layers, stride 1, no padding), numerically: every pass against the NumPy
reference in both dtypes, with channel counts and pixel counts that leave partial tiles; the fused ReLU, thread
counts, its choice by default and its refusals."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import STRICT_CFLAGS
from symconv import ConvSpec, compile_conv
from symconv.codegen.lowering import choose_strategy, lower
from symconv.pipeline import FLOAT32_UNIT_ROUNDOFF
from symconv.symbolic.reference import conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight

GRID = [
    ConvSpec((56, 56), (1, 1), batch=2, in_channels=96, out_channels=24),  # whole tiles
    ConvSpec((7, 9), (1, 1), batch=3, in_channels=13, out_channels=11, flip=True),  # partial tiles, 63 pixels
    ConvSpec((1, 3), (1, 1), in_channels=5, out_channels=7),  # fewer pixels than a vector
    ConvSpec((16, 16), (1, 1), batch=2, in_channels=1, out_channels=30, dilation=3),
]
BUFFERED = [  # the layers that go through the passes' scratch and the weight gradient's two forms
    # more than 32 rows read and written: both through scratch, two chunks of an image (the second shorter)
    ConvSpec((40, 40), (1, 1), batch=2, in_channels=40, out_channels=37),
    ConvSpec((7, 8), (1, 1), in_channels=3000, out_channels=2),  # a block's panel alone past the scratch budget
    ConvSpec((4, 5), (1, 1), in_channels=20, out_channels=2047),  # the weight gradient's columns in panels
    # output channels a whole number of vectors: the weight gradient as outer products, partial tiles of columns
    # and (float64, 6 vectors of AVX-512) two tiles of channels
    ConvSpec((5, 7), (1, 1), batch=2, in_channels=30, out_channels=48),
]
GRID += BUFFERED


def random_args(spec: ConvSpec, dtype: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"x": spec.input_shape, "w": spec.weight_shape, "b": (spec.out_channels,), "dy": spec.output_shape}
    return {name: rng.uniform(-1, 1, shape).astype(dtype) for name, shape in shapes.items()}


def passes(k, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every pass of ``k`` on ``a``; a layer without bias has no ``b`` and no ``grad_bias``."""
    if not k.spec.bias:
        return {"forward": k.forward(a["x"], a["w"]), "grad_input": k.grad_input(a["dy"], a["w"]),
                "grad_weight": k.grad_weight(a["x"], a["dy"])}
    return {"forward": k.forward(a["x"], a["w"], a["b"]), "grad_input": k.grad_input(a["dy"], a["w"]),
            "grad_weight": k.grad_weight(a["x"], a["dy"]), "grad_bias": k.grad_bias(a["dy"])}


def reference(spec: ConvSpec, a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    b = a["b"] if spec.bias else None
    return {"forward": conv2d_forward(spec, a["x"], a["w"], b), "grad_input": conv2d_grad_input(spec, a["dy"], a["w"]),
            "grad_weight": conv2d_grad_weight(spec, a["x"], a["dy"]), "grad_bias": conv2d_grad_bias(spec, a["dy"])}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spec", GRID, ids=lambda s: s.describe())
def test_every_pass_matches_the_numpy_reference(kernels, spec: ConvSpec, dtype: str) -> None:
    assert_passes_within_rounding(kernels(spec, dtype, "pointwise"), dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spec", BUFFERED, ids=lambda s: s.describe())
def test_portable_builds_match_the_numpy_reference(kernel_cache, spec: ConvSpec, dtype: str) -> None:
    """Without -march=native: narrower vectors, 12 accumulators in the weight gradient instead of 24."""
    k = compile_conv(spec, dtype, "pointwise", cflags=STRICT_CFLAGS, arch="portable", threads=2)
    assert_passes_within_rounding(k, dtype)


def assert_passes_within_rounding(k, dtype: str) -> None:
    """Every pass of ``k`` within the rounding bound of its sums (m terms: m u / (1 - m u) of their magnitude)."""
    spec = k.spec
    a = random_args(spec, dtype, seed=2)
    exact = {name: v.astype(np.float64) for name, v in a.items()}
    got, expected = passes(k, a), reference(spec, exact)
    magnitude = reference(spec, {name: np.abs(v) for name, v in exact.items()})
    n, _, oh, ow = spec.output_shape
    terms = {"forward": spec.in_channels + 1, "grad_input": spec.out_channels, "grad_weight": n * oh * ow,
             "grad_bias": n * oh * ow}
    for name, m in terms.items():
        unit = FLOAT32_UNIT_ROUNDOFF if dtype == "float32" else 2.0**-53
        bound = m * unit / (1 - m * unit) * magnitude[name] + 1e-300
        assert got[name].dtype == np.dtype(dtype)
        assert np.all(np.abs(got[name] - expected[name]) <= bound), name


@pytest.mark.parametrize("dtype", ["float32", "float64"])  # the weight gradient as dot products, as outer products
def test_the_fused_relu_and_two_threads(kernel_cache, dtype: str) -> None:
    spec = GRID[0]
    k = compile_conv(spec, dtype, "pointwise", fuse_relu=True, cflags=STRICT_CFLAGS, threads=1)
    a = random_args(spec, dtype, seed=4)
    np.testing.assert_array_equal(k.forward_relu(a["x"], a["w"], a["b"]), np.maximum(k.forward(a["x"], a["w"], a["b"]), 0))
    two = k.with_threads(2)
    for name, value in passes(k, a).items():
        np.testing.assert_array_equal(passes(two, a)[name], value, err_msg=name)


def test_large_pointwise_layers_choose_it_and_others_are_refused() -> None:
    assert choose_strategy(GRID[0]) == "pointwise"
    assert choose_strategy(ConvSpec((3, 3), (1, 1))) == "unrolled"  # small: the equations themselves
    for spec in (ConvSpec((8, 8), (3, 3)), ConvSpec((8, 8), (1, 1), stride=2),
                 ConvSpec((8, 8), (1, 1), in_channels=2, out_channels=2, groups=2)):
        with pytest.raises(ValueError, match="the pointwise strategy needs a dense 1x1 kernel"):
            lower(spec, "float32", "pointwise")
