"""Grouped, depthwise, asymmetrically padded, "same" and bias-free layers: derived, proved, and checked against
PyTorch's autograd (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symconv import ConvSpec, check, derive, prove
from symconv.symbolic import forms
from symconv.symbolic import reference as ref
from symconv.symbolic.symbols import entries, to_numpy

torch = pytest.importorskip("torch", reason="the autograd comparison needs the torch extra")
functional = torch.nn.functional


@st.composite
def layer_specs(draw: st.DrawFn, max_size: int = 6, max_channels: int = 4) -> ConvSpec:
    """Random grouped / depthwise layers with asymmetric or "same" padding, with or without bias."""
    groups = draw(st.integers(1, 3))
    per_group_in, per_group_out = draw(st.integers(1, max_channels // 2)), draw(st.integers(1, 2))
    depthwise = draw(st.booleans())
    if depthwise:
        per_group_in = 1
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    k_eff = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    size = (draw(st.integers(k_eff[0], k_eff[0] + max_size)), draw(st.integers(k_eff[1], k_eff[1] + max_size)))
    if draw(st.booleans()):
        padding: object = "same"
        stride = (1, 1)
    else:
        padding = tuple((draw(st.integers(0, e - 1)), draw(st.integers(0, e - 1))) for e in k_eff)
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    return ConvSpec(size, kernel, stride, padding, dilation, in_channels=groups * per_group_in,  # type: ignore[arg-type]
                    out_channels=groups * per_group_out, batch=draw(st.integers(1, 2)), flip=False,
                    groups=groups, bias=draw(st.booleans()))


def autograd(spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray, dy: np.ndarray) -> dict[str, np.ndarray]:
    """PyTorch's forward and gradients, the asymmetric padding applied with F.pad (conv2d pads symmetrically)."""
    X, W = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    B = torch.tensor(b, requires_grad=True) if spec.bias else None
    (top, bottom), (left, right) = spec.padding_sides
    y = functional.conv2d(functional.pad(X, (left, right, top, bottom)), W, B, stride=spec.stride,
                          dilation=spec.dilation, groups=spec.groups)
    y.backward(torch.tensor(dy))
    out = {"output": y.detach().numpy(), "grad_input": X.grad.numpy(), "grad_weight": W.grad.numpy()}
    out["grad_bias"] = B.grad.numpy() if B is not None else np.zeros((0,))
    return out


def assert_relative(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, what
    scale = max(float(np.abs(expected).max(initial=0.0)), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10 * scale, err_msg=what)


def random_operands(spec: ConvSpec, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape),
            rng.standard_normal(spec.out_channels), rng.standard_normal(spec.output_shape))


@settings(max_examples=60, deadline=None)
@given(spec=layer_specs(), seed=st.integers(0, 2**32 - 1))
def test_numpy_reference_agrees_with_pytorch_autograd(spec, seed):
    x, w, b, dy = random_operands(spec, seed)
    expected = autograd(spec, x, w, b, dy)
    assert_relative(ref.conv2d_forward(spec, x, w, b if spec.bias else None), expected["output"], "output")
    assert_relative(ref.conv2d_grad_input(spec, dy, w), expected["grad_input"], "grad_input")
    assert_relative(ref.conv2d_grad_weight(spec, x, dy), expected["grad_weight"], "grad_weight")
    assert_relative(ref.conv2d_grad_bias(spec, dy), expected["grad_bias"], "grad_bias")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=layer_specs(max_size=3, max_channels=2), seed=st.integers(0, 2**32 - 1))
def test_symbolic_derivation_agrees_with_pytorch_autograd(spec, seed):
    d = derive(spec)
    x, w, b, dy = random_operands(spec, seed)
    values = {}
    for symbols, data in ((d.input, x), (d.weight, w), (d.bias, b[: d.bias.shape[0]]), (d.grad_output, dy)):
        values.update(zip(entries(symbols), data.ravel().tolist()))
    expected = autograd(spec, x, w, b, dy)
    for name in ("output", "grad_input", "grad_weight", "grad_bias"):
        tensor = getattr(d, name)
        at = np.array([float(sp.sympify(e).xreplace(values)) for e in entries(tensor)]).reshape(tensor.shape)
        assert_relative(at, expected[name], name)


GRID = [
    ConvSpec((5, 4), (2, 2), stride=2, padding=((0, 1), (1, 0)), in_channels=4, out_channels=2, groups=2, batch=2),
    ConvSpec((6, 5), (3, 2), stride=(2, 3), dilation=(1, 2), padding=((2, 0), (1, 1)), in_channels=2, out_channels=4,
             groups=2),
    ConvSpec((5, 5), (2, 3), padding="same", in_channels=3, out_channels=3, groups=3, bias=False),
    ConvSpec((6, 6), (2, 2), padding="same", in_channels=2, out_channels=2, groups=2, flip=True),
    ConvSpec((7, 6), (3, 3), stride=2, padding=((0, 2), (2, 1)), in_channels=3, out_channels=6, groups=3, bias=False),
    ConvSpec((4, 4), (3, 3), stride=3, padding=((1, 0), (0, 1)), in_channels=2, out_channels=2, flip=True),
    ConvSpec((3, 3), (2, 2), bias=False),
]


@pytest.mark.parametrize("spec", GRID, ids=lambda s: s.describe())
def test_every_identity_is_proved_exactly(spec):
    report = prove(spec)
    assert report.holds, str(report)
    assert ("grad_bias" in [p.name for p in report.proofs]) == spec.bias


def test_the_grid_has_leftovers():
    assert any(max(s.leftover) > 0 and not s.is_symmetric and s.groups > 1 for s in GRID)


@pytest.mark.parametrize("spec", [s for s in GRID if not s.is_symmetric and s.leftover != (0, 0)][:2],
                         ids=lambda s: s.describe())
def test_full_padding_with_the_sides_swapped_is_refuted(spec):
    """before = k_eff-1-p_begin, after = k_eff-1-p_end+a; taking p_end before and p_begin after is wrong."""
    d = derive(spec)
    F, G = (np.vectorize(sp.sympify, otypes=[object])(to_numpy(t)) for t in (d.weight, d.grad_output))
    (eh, ew), (ah, aw) = spec.effective_kernel, spec.leftover
    (pbh, pbw), (peh, pew) = spec.pad_begin, spec.pad_end
    swapped = np.empty(spec.input_shape, dtype=object)
    for n in range(spec.batch):
        for c in range(spec.in_channels):
            first = (c // spec.group_in_channels) * spec.group_out_channels
            swapped[n, c] = sum(
                forms.correlate(forms.pad(forms.dilate(G[n, k], spec.stride), (eh - 1 - peh, ew - 1 - pew),
                                          (eh - 1 - pbh + ah, ew - 1 - pbw + aw)),
                                forms.rot180(forms.layer_kernel(spec, F[k, c % spec.group_in_channels])))
                for k in range(first, first + spec.group_out_channels)
            )
    assert not check(d, "grad_input", swapped.tolist()).holds
    assert check(d, "grad_input", forms.grad_input(spec, F, G).tolist()).holds


def test_a_channel_sum_over_every_filter_is_refuted():
    """The grouped input gradient sums over the filters of the channel's group only."""
    spec = ConvSpec((3, 3), (2, 2), in_channels=2, out_channels=2, groups=2, bias=False)
    d = derive(spec)
    F, G = (to_numpy(t) for t in (d.weight, d.grad_output))
    dense = np.empty(spec.input_shape, dtype=object)
    for c in range(2):
        dense[0, c] = sum(forms.correlate(forms.pad(G[0, k], (1, 1), (1, 1)), forms.rot180(F[k, 0])) for k in range(2))
    assert not check(d, "grad_input", dense.tolist()).holds


KERNEL_SPECS = [
    ConvSpec((7, 6), (3, 2), stride=(2, 1), padding=((0, 2), (1, 0)), dilation=(1, 2), in_channels=6, out_channels=4,
             groups=2, batch=2),
    ConvSpec((5, 5), (2, 2), padding="same", in_channels=3, out_channels=6, groups=3, bias=False),
    ConvSpec((6, 5), (3, 3), stride=2, padding=((1, 0), (2, 1)), in_channels=4, out_channels=4, groups=4, flip=True),
    ConvSpec((3, 3), (2, 2), bias=False),
]


# Dense layers the vector strategies tile: asymmetric and "same" padding (even kernels), strides and dilations
# beside it, no bias; C = 4 with a 3x3 kernel and C = 1, K = 8 at stride 1 take the channels-last gradients.
DENSE_SPECS = [
    ConvSpec((12, 11), (4, 4), padding="same", in_channels=3, out_channels=5, batch=2, bias=False),
    ConvSpec((13, 12), (3, 2), stride=(2, 3), padding=((0, 2), (1, 0)), dilation=(1, 2), in_channels=2,
             out_channels=3, batch=2),
    ConvSpec((10, 10), (3, 3), padding=((2, 0), (0, 1)), in_channels=4, out_channels=6, bias=False),
    ConvSpec((9, 10), (5, 5), padding=((1, 4), (3, 0)), in_channels=1, out_channels=8, batch=2, bias=False),
    ConvSpec((11, 11), (3, 3), stride=2, padding=((1, 2), (2, 1)), dilation=2, in_channels=3, out_channels=4),
]


def check_kernels(k, spec: ConvSpec, dtype: str) -> None:
    """Every pass of ``k`` against the NumPy reference, and the bias argument refused when the layer has none."""
    x, w, b, dy = (a.astype(dtype) for a in random_operands(spec, 7))
    tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    bias = b if spec.bias else None
    np.testing.assert_allclose(k.forward(x, w, bias), ref.conv2d_forward(spec, x, w, bias), **tolerance)
    np.testing.assert_allclose(k.grad_input(dy, w), ref.conv2d_grad_input(spec, dy, w), **tolerance)
    np.testing.assert_allclose(k.grad_weight(x, dy), ref.conv2d_grad_weight(spec, x, dy), **tolerance)
    if spec.bias:
        np.testing.assert_allclose(k.grad_bias(dy), ref.conv2d_grad_bias(spec, dy), **tolerance)
    else:
        with pytest.raises(ValueError, match="no bias"):
            k.forward(x, w, b)
        with pytest.raises(ValueError, match="no bias"):
            k.grad_bias(dy)
        assert "grad_bias" not in k.strategies
    with pytest.raises(ValueError, match="shape"):
        k.grad_input(dy, np.zeros((spec.out_channels, spec.in_channels + 1, *spec.kernel_size), dtype))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("strategy", ["loops", "unrolled"])
@pytest.mark.parametrize("spec", KERNEL_SPECS, ids=lambda s: s.describe())
def test_kernels_equal_the_numpy_reference(kernels, spec, strategy, dtype):
    check_kernels(kernels(spec, dtype, strategy), spec, dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("strategy", ["gemm", "direct"])
@pytest.mark.parametrize("spec", DENSE_SPECS, ids=lambda s: s.describe())
def test_vector_kernels_of_asymmetric_and_bias_free_layers_equal_the_numpy_reference(kernels, spec, strategy, dtype):
    check_kernels(kernels(spec, dtype, strategy), spec, dtype)


def test_kernels_without_bias_bind_and_have_no_b_argument(kernels):
    spec = ConvSpec((3, 3), (2, 2), bias=False)
    k = kernels(spec, "float64", "loops")
    x, w = np.arange(9.0).reshape(1, 1, 3, 3), np.ones((1, 1, 2, 2))
    out = np.empty(spec.output_shape)
    step = k.bind("forward", x, w, None, out=out)
    np.testing.assert_array_equal(step()[0, 0], [[8.0, 12.0], [20.0, 24.0]])
    with pytest.raises(ValueError, match="no bias"):
        k.bind("forward", x, w, np.zeros(1), out=out)


@pytest.mark.parametrize("strategy", ["gemm", "direct"])
def test_strategies_that_cannot_compile_a_layer_refuse_it(strategy):
    from symconv import compile_conv
    from symconv.codegen.lowering import choose_strategy, refusal

    spec = ConvSpec((40, 40), (3, 3), padding="same", in_channels=4, out_channels=4, groups=2)
    if refusal(spec, strategy) is None:
        pytest.skip(f"{strategy} supports this layer now")
    with pytest.raises(ValueError, match=f"the {strategy} strategy computes dense layers \\(groups 1\\) only, got groups 2"):
        compile_conv(spec, "float32", strategy)
    assert choose_strategy(spec) == "loops"


def test_a_network_of_grouped_same_and_bias_free_convolutions_runs_in_c():
    from symconv import Conv2d, Dense, Flatten, MSELoss, Network, ReLU

    net = Network([Conv2d(4, 2, padding="same", groups=2, bias=False), ReLU(),
                   Conv2d(2, 3, padding=((0, 1), (1, 0)), groups=2), Flatten(), Dense(2), MSELoss()], (2, 2, 4, 4))
    assert "0.bias" not in net.parameter_shapes() and net.parameter_shapes()["0.weight"] == (4, 1, 2, 2)
    params = net.init_params(0)
    x = np.random.default_rng(1).standard_normal((2, 2, 4, 4))
    target = np.random.default_rng(2).standard_normal((2, 2))
    expected = net.reference_backward(x, params, target)
    got = net.compile("float64", params=params).backward(x, target)
    assert set(got.params) == set(expected.params)
    for name in expected.params:
        np.testing.assert_allclose(got.params[name], expected.params[name], rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(got.input, expected.input, rtol=1e-12, atol=1e-12)


def test_cli_flags_build_the_spec():
    from symconv.cli import build_parser, spec_from_args

    parser = build_parser()
    args = parser.parse_args(["prove", "--input", "5x5", "--padding", "0,1,1,0", "--channels", "4", "--filters", "2",
                              "--groups", "2", "--no-bias"])
    assert spec_from_args(args) == ConvSpec((5, 5), (2, 2), padding=((0, 1), (1, 0)), in_channels=4, out_channels=2,
                                            groups=2, bias=False)
    assert spec_from_args(parser.parse_args(["derive", "--padding", "same"])).pad_end == (1, 1)
    assert not spec_from_args(parser.parse_args(["demo"])).bias  # the textbook case as the seeds write it
    assert spec_from_args(parser.parse_args(["demo", "--bias"])).bias


def test_the_latex_closed_forms_name_each_groups_channels() -> None:
    """A grouped layer's closed forms in general: the input channels a filter reads are its group's."""
    from symconv import latex

    def general_rows(**kwargs: int) -> list[str]:
        text = latex(derive(ConvSpec((3, 3), (2, 2), **kwargs)))
        return [line for line in text.splitlines() if line.startswith(("O^{(n,k)}", r"\frac{\partial E}{\partial X^{(n,c)}}"))]

    depthwise = general_rows(in_channels=2, out_channels=2, groups=2)
    assert depthwise[0].startswith(r"O^{(n,k)} &= \operatorname{Correlation}\left(X^{(n,k)}, F^{(k,1)}\right)")
    assert r"\frac{\partial E}{\partial O^{(n,c)}}" in depthwise[1] and "F^{(c,1)}" in depthwise[1]
    grouped = general_rows(in_channels=4, out_channels=4, groups=2)
    assert r"X^{(n,c + 2 \left\lfloor{\frac{k - 1}{2}}\right\rfloor)}, F^{(k,c)}" in grouped[0]
    assert (r"\sum_{k=2 \left\lfloor{\frac{c - 1}{2}}\right\rfloor + 1}^{2 \left\lfloor{\frac{c - 1}{2}}\right\rfloor + 2}"
            in grouped[1])
    multiplier = general_rows(in_channels=2, out_channels=4, groups=2)
    assert r"\sum_{k=2 c - 1}^{2 c}" in multiplier[1] and "F^{(k,1)}" in multiplier[1]
