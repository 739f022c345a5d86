"""The depthwise strategy, numerically: every pass against the NumPy reference (both dtypes, float32 within its
error bound) and PyTorch's autograd; per-side padding, strides, dilation, channel multipliers, leftover a != 0;
its choice by default, the autotuner's candidates, and the strategies that refuse what they cannot compute."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import STRICT_CFLAGS
from symconv import ConvSpec
from symconv.codegen.depthwise import depthwise_geometry, is_depthwise
from symconv.codegen.lowering import choose_strategy, lower, refusal
from symconv.pipeline import FLOAT32_UNIT_ROUNDOFF
from symconv.symbolic.reference import conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight
from symconv.tuning.autotune import default_candidates, tune


def depthwise(size, kernel, channels=3, multiplier=1, **kwargs) -> ConvSpec:
    return ConvSpec(size, kernel, in_channels=channels, out_channels=channels * multiplier, groups=channels,
                    **kwargs)


GRID = [
    depthwise((9, 10), (3, 3), padding=1, batch=2),
    depthwise((56, 56), (3, 3), padding=1, channels=4, batch=2),  # the MobileNet shape, fewer channels
    depthwise((56, 56), (3, 3), stride=2, padding=1, channels=4),  # leftover a = 1
    depthwise((11, 13), (3, 3), stride=2, padding=((1, 0), (2, 1)), channels=2, multiplier=2, batch=2),
    depthwise((40, 37), (3, 2), stride=(2, 3), padding=((1, 2), (0, 1)), dilation=(2, 1), multiplier=2, flip=True),
    depthwise((30, 41), (5, 5), padding="same", dilation=2, channels=2),
    depthwise((8, 8), (2, 2), padding="same", channels=2),  # the extra row and column at the end
    depthwise((2, 2), (3, 3), padding=2, channels=2),  # wider kernel than image: border columns only
    depthwise((20, 33), (3, 3), stride=3, channels=2, bias=False),  # leftover (2, 0)
]


def ids(spec: ConvSpec) -> str:
    return spec.describe()


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


@pytest.mark.parametrize("spec", GRID, ids=ids)
def test_float64_matches_the_numpy_reference(kernels, spec: ConvSpec) -> None:
    k = kernels(spec, "float64")
    assert k.strategy == "depthwise"
    a = random_args(spec, "float64")
    got, expected = passes(k, a), reference(spec, a)
    for name in got:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("spec", GRID, ids=ids)
def test_float32_within_the_error_bound_of_the_exact_sums(kernels, spec: ConvSpec) -> None:
    """|y32 - y| <= gamma_m (sum of |terms|), m = terms per entry, against the float64 reference of the same numbers."""
    k = kernels(spec, "float32")
    a32 = random_args(spec, "float32", seed=3)
    a64 = {name: v.astype(np.float64) for name, v in a32.items()}
    magnitude = reference(spec, {name: np.abs(v) for name, v in a64.items()})
    n, _, oh, ow = spec.output_shape
    taps = spec.kernel_size[0] * spec.kernel_size[1]
    terms = {"forward": taps + 1, "grad_input": spec.group_out_channels * taps, "grad_weight": n * oh * ow,
             "grad_bias": n * oh * ow}
    got, exact = passes(k, a32), reference(spec, a64)
    for name, m in terms.items():
        if name not in got:
            continue
        gamma = m * FLOAT32_UNIT_ROUNDOFF / (1 - m * FLOAT32_UNIT_ROUNDOFF)
        assert got[name].dtype == np.float32
        assert np.all(np.abs(got[name] - exact[name]) <= gamma * magnitude[name] + 1e-30), name


@pytest.mark.parametrize("spec", [GRID[1], GRID[3]], ids=ids)
def test_the_fused_relu_is_max_of_the_forward_pass_and_zero(kernel_cache, spec: ConvSpec) -> None:
    from symconv import compile_conv

    k = compile_conv(spec, "float64", fuse_relu=True, cflags=STRICT_CFLAGS)
    a = random_args(spec, "float64", seed=5)
    np.testing.assert_allclose(k.forward_relu(a["x"], a["w"], a["b"]),
                               np.maximum(conv2d_forward(spec, a["x"], a["w"], a["b"]), 0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_an_infinite_input_gives_infinite_weight_gradients_never_nan(kernels, dtype: str) -> None:
    """The weight gradient's last interior columns run as an overlapping vector whose repeated lanes are cleared;
    clearing dy there instead of the products would turn inf into 0 x inf = NaN. An inf at every column of a
    row in turn: NaN exactly where the reference has NaN (nowhere, all entries positive)."""
    spec = GRID[2]  # 28 output columns: 11 (float32) or 3 (float64) of them after the whole vectors
    k = kernels(spec, dtype, "depthwise")
    rng = np.random.default_rng(5)
    x = rng.uniform(0.5, 1.5, spec.input_shape).astype(dtype)
    dy = rng.uniform(0.5, 1.5, spec.output_shape).astype(dtype)
    for column in range(spec.input_size[1]):
        poisoned = x.copy()
        poisoned[0, 0, 20, column] = np.inf
        got = k.grad_weight(poisoned, dy)
        expected = conv2d_grad_weight(spec, poisoned.astype(np.float64), dy.astype(np.float64))
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=f"inf at column {column}")
        np.testing.assert_array_equal(np.isinf(got), np.isinf(expected), err_msg=f"inf at column {column}")


def test_several_threads_give_the_one_thread_result(kernels) -> None:
    spec = depthwise((56, 56), (3, 3), stride=2, padding=1, channels=6, multiplier=2, batch=2)
    one = kernels(spec, "float32")
    two = one.with_threads(2)
    a = random_args(spec, "float32", seed=7)
    for name, value in passes(one, a).items():
        np.testing.assert_array_equal(passes(two, a)[name], value, err_msg=name)  # same sums in the same order


@st.composite
def depthwise_specs(draw) -> ConvSpec:
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    k_eff = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    sides = tuple((draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))) for k in k_eff)
    size = tuple(draw(st.integers(max(1, k - b - e), 24)) for k, (b, e) in zip(k_eff, sides))
    return depthwise(size, kernel, channels=draw(st.integers(2, 3)), multiplier=draw(st.integers(1, 2)),
                     stride=stride, padding=sides, dilation=dilation, batch=draw(st.integers(1, 2)),
                     flip=draw(st.booleans()), bias=draw(st.booleans()))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=depthwise_specs())
def test_random_depthwise_layers_agree_with_pytorch_autograd(kernels, spec: ConvSpec) -> None:
    torch = pytest.importorskip("torch")
    a = random_args(spec, "float64", seed=11)
    t = {name: torch.tensor(value, requires_grad=name != "dy") for name, value in a.items()}
    (top, bottom), (left, right) = spec.padding_sides
    weight = t["w"].flip(2, 3) if spec.flip else t["w"]
    bias = t["b"] if spec.bias else None
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(t["x"], (left, right, top, bottom)), weight, bias,
                                   stride=spec.stride, dilation=spec.dilation, groups=spec.groups)
    y.backward(t["dy"])
    expected = {"forward": y.detach().numpy(), "grad_input": t["x"].grad.numpy(), "grad_weight": t["w"].grad.numpy()}
    if spec.bias:
        expected["grad_bias"] = t["b"].grad.numpy()
    got = passes(kernels(spec, "float64"), a)
    for name in got:
        value = expected[name]
        scale = max(1.0, float(np.abs(value).max(initial=0)))
        np.testing.assert_allclose(got[name], value, rtol=1e-10, atol=1e-10 * scale, err_msg=name)


def test_depthwise_layers_choose_the_depthwise_strategy_and_dense_ones_do_not() -> None:
    mobilenet = depthwise((56, 56), (3, 3), padding=1, channels=96, batch=8)
    assert choose_strategy(mobilenet) == "depthwise" and lower(mobilenet).depthwise is not None
    assert choose_strategy(depthwise((3, 3), (2, 2), channels=2)) == "depthwise"  # small ones too
    assert not is_depthwise(ConvSpec((3, 3), (2, 2)))  # one channel, one group: the textbook layer stays unrolled
    assert choose_strategy(ConvSpec((3, 3), (2, 2))) == "unrolled"
    assert choose_strategy(ConvSpec((64, 64), (3, 3), padding=((1, 0), (1, 0)), bias=False)) == "direct"
    assert choose_strategy(ConvSpec((8, 8), (3, 3), in_channels=4, out_channels=4, groups=2)) == "loops"


@pytest.mark.parametrize("spec, strategy, message", [
    (ConvSpec((8, 8), (3, 3), in_channels=4, out_channels=4, groups=2), "gemm", "dense layers \\(groups 1\\) only"),
    (ConvSpec((8, 8), (3, 3), in_channels=4, out_channels=4, groups=4), "direct", "groups 4"),
    (ConvSpec((8, 8), (3, 3), padding="same"), "pointwise", "dense 1x1 kernel, stride 1 and no padding"),
    (ConvSpec((8, 8), (3, 3), in_channels=2, out_channels=2), "depthwise", "groups == in_channels > 1"),
])
def test_a_strategy_refuses_a_layer_it_cannot_compute(spec: ConvSpec, strategy: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        lower(spec, "float32", strategy)
    assert refusal(spec, strategy) is not None
    with pytest.raises(ValueError, match="groups == in_channels"):
        depthwise_geometry(ConvSpec((8, 8), (3, 3)))


def test_the_autotuner_considers_the_depthwise_strategy(kernel_cache) -> None:
    spec = depthwise((16, 16), (3, 3), padding=1, channels=8, batch=2)
    assert default_candidates(spec) == ("depthwise",)
    tuning = tune(spec, "float32", threads=1, cflags=STRICT_CFLAGS)
    assert set(tuning.winners.values()) == {"depthwise"} and tuning.seconds["depthwise"]["forward"] > 0
    with pytest.raises(ValueError, match="candidate 'direct' cannot compute"):
        tune(spec, "float32", threads=1, candidates=["direct", "depthwise"])


@pytest.mark.parametrize("spec", [
    ConvSpec((9, 8), (3, 2), stride=2, padding=((2, 0), (1, 1)), in_channels=4, out_channels=6, groups=2, batch=2,
             flip=True),
    ConvSpec((12, 11), (3, 3), padding=1, dilation=(1, 2), in_channels=6, out_channels=9, groups=3, batch=2),
], ids=ids)
def test_grouped_layers_fall_back_to_loops(kernels, spec: ConvSpec) -> None:
    """gemm and direct refuse grouped layers that are not depthwise (``refusal``), so the default is the loop
    nests, which compute groups and per-side padding; both dtypes against the NumPy reference."""
    assert choose_strategy(spec) == "loops"
    for dtype, tol in (("float64", 1e-12), ("float32", 1e-5)):
        k = kernels(spec, dtype)
        a = random_args(spec, dtype, seed=1)
        got, expected = passes(k, a), reference(spec, {n: v.astype(np.float64) for n, v in a.items()})
        for name in got:
            np.testing.assert_allclose(got[name], expected[name], rtol=tol, atol=tol, err_msg=f"{dtype} {name}")
