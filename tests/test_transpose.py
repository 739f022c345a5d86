"""Transposed convolution through every stage: spec, derivation, exact proofs, LaTeX, kernels, network."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from symconv import (
    ConvTranspose2d,
    ConvTransposeSpec,
    MSELoss,
    Network,
    ReLU,
    compile_conv_transpose,
    derive_transpose,
    prove_transpose,
)
from symconv.printing.transpose import transpose_latex
from symconv.symbolic import transpose_forms as closed
from symconv.symbolic.symbols import to_numpy

torch = pytest.importorskip("torch")
F = torch.nn.functional
CFLAGS = ("-O1", "-Wall", "-Wextra", "-Werror")


def test_spec_sizes_and_corresponding_conv() -> None:
    t = ConvTransposeSpec((3, 4), (3, 2), stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(1, 2),
                          in_channels=4, out_channels=6, batch=2, groups=2)
    assert t.output_size == (6, 14)
    assert t.weight_shape == (4, 3, 3, 2)
    c = t.conv
    assert (c.input_size, c.in_channels, c.out_channels, c.groups) == ((6, 14), 6, 4, 2)
    assert c.output_size == t.input_size and c.leftover == t.output_padding
    assert c.weight_shape == t.weight_shape


def test_output_padding_up_to_dilation_gives_excess_rows() -> None:
    t = ConvTransposeSpec(4, 3, dilation=2, output_padding=1)
    assert t.output_size == (9, 9) and t.excess == (1, 1) and t.conv.output_size == (5, 5)


@pytest.mark.parametrize("kwargs, field", [
    (dict(output_padding=2, stride=2), "output_padding"),
    (dict(output_padding=-1), "output_padding"),
    (dict(padding=3), "padding"),
    (dict(padding="same"), "padding"),
    (dict(groups=3, in_channels=4, out_channels=3), "in_channels"),
    (dict(stride=0), "stride"),
    (dict(bias=1), "bias"),
    (dict(kernel_size=(3, 3, 3)), "kernel_size"),
])
def test_spec_refuses_by_name(kwargs: dict, field: str) -> None:
    args = {"input_size": 4, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=field):
        ConvTransposeSpec(**args)


def test_padding_that_crops_everything_is_refused() -> None:
    with pytest.raises(ValueError, match="crops the whole output"):
        ConvTransposeSpec(1, 3, padding=2)


def test_derivation_is_the_scatter() -> None:
    d = derive_transpose(ConvTransposeSpec((2, 2), (2, 2), stride=2, bias=False))
    X, W = d.input, d.weight
    # stride 2, kernel 2: every output entry is exactly one product (no overlap)
    assert d.output[0, 0, 2, 3] == X[0, 0, 1, 1] * W[0, 0, 0, 1]
    assert d.grad_bias.shape == (0,)
    assert sum(t.local != 0 for t in d.chain_rule("weight", (0, 0, 0, 0))) == 4


GRID = [
    dict(),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=3, padding=2, output_padding=2, dilation=2),
    dict(stride=1, output_padding=1, dilation=2),  # output_padding >= stride: the convolution's excess row
    dict(stride=2, in_channels=4, out_channels=2, groups=2, bias=False),
    dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0), in_channels=2, out_channels=3, batch=2),
]


@pytest.mark.parametrize("kwargs", GRID)
def test_proved_exactly_on_a_grid(kwargs: dict) -> None:
    report = prove_transpose(ConvTransposeSpec((3, 2), (3, 2), **kwargs))
    assert report.holds, str(report)
    assert [p.name for p in report.proofs] == ["conv_input_gradient", "forward", "grad_input", "grad_weight",
                                               "grad_bias", "adjoint"]


def test_a_wrong_derivation_is_refuted() -> None:
    d = derive_transpose(ConvTransposeSpec((2, 2), (2, 2), stride=2, output_padding=1))
    Y = to_numpy(d.output)
    Y[0, 0, 1, 1] = Y[0, 0, 1, 1] + d.input[0, 0, 0, 0] * d.weight[0, 0, 1, 1]
    report = prove_transpose(replace(d, output=sp.Array(Y)))
    failed = [p.name for p in report.proofs if not p.holds]
    assert failed == ["conv_input_gradient", "forward", "adjoint"]
    assert report["forward"].counterexample is not None
    assert report["forward"].counterexample.index == (0, 0, 1, 1)


def test_latex() -> None:
    spec = ConvTransposeSpec((2, 2), (2, 2), stride=2)
    tex = transpose_latex(derive_transpose(spec))
    assert r"Y_{34} &= F_{12} X_{22} + b" in tex and r"Y_{44} &= F_{22} X_{22} + b" in tex
    assert r"\operatorname{pad}_{1,\,1}(\operatorname{dilate}_{2} X)" in tex
    assert r"\frac{\partial E}{\partial b}" in tex
    assert "all hold" in transpose_latex(prove_transpose(spec))
    assert r"\frac{\partial E}{\partial b}" not in transpose_latex(derive_transpose(spec), bias=False)
    with pytest.raises(TypeError, match="TransposeDerivation"):
        transpose_latex(spec)  # type: ignore[arg-type]


def _torch_passes(t: ConvTransposeSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
                  g: np.ndarray) -> list[np.ndarray]:
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    y = F.conv_transpose2d(tx, tw, tb, t.stride, t.pad_begin, t.output_padding, t.groups, t.dilation)
    y.backward(torch.tensor(g))
    out = [y.detach().numpy(), tx.grad.numpy(), tw.grad.numpy()]
    return out + ([] if tb is None else [tb.grad.numpy()])


def _close(actual: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10 * max(1.0, float(np.abs(expected).max())))


def _spec_or_none(n, k, s, d, a, p, cin, cout, batch, bias):  # type: ignore[no-untyped-def]
    padding = tuple(min(q, d_ * (k_ - 1)) for q, d_, k_ in zip(p, d, k))
    output_padding = tuple(min(o, max(s_, d_) - 1) for o, s_, d_ in zip(a, s, d))
    try:
        return ConvTransposeSpec(n, k, s, padding, output_padding, d, cin, cout, batch, bias=bias)
    except ValueError:  # padding that crops the whole output
        return None


pair = st.tuples
specs = st.builds(
    _spec_or_none,
    pair(st.integers(1, 5), st.integers(1, 5)), pair(st.integers(1, 3), st.integers(1, 3)),
    pair(st.integers(1, 3), st.integers(1, 3)), pair(st.integers(1, 2), st.integers(1, 2)),
    pair(st.integers(0, 2), st.integers(0, 2)), pair(st.integers(0, 2), st.integers(0, 2)),
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.booleans(),
).filter(lambda spec: spec is not None)


# Each example compiles a module (a few seconds): 6 random layers here, the fixed grids below cover the rest.
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, seed=st.integers(0, 2**16))
def test_reference_and_kernels_agree_with_pytorch(spec: ConvTransposeSpec, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape)
    b = rng.standard_normal(spec.out_channels) if spec.bias else None
    g = rng.standard_normal(spec.output_shape)
    expected = _torch_passes(spec, x, w, b, g)
    reference = [closed.reference_forward(spec, x, w, b), closed.reference_grad_input(spec, g, w),
                 closed.reference_grad_weight(spec, x, g)] + ([closed.reference_grad_bias(spec, g)] if b is not None else [])
    kernels = compile_conv_transpose(spec, "float64", "loops", cflags=CFLAGS)
    compiled = [kernels.forward(x, w, b), kernels.grad_input(g, w), kernels.grad_weight(x, g)]
    compiled += [kernels.grad_bias(g)] if b is not None else []
    for ours, theirs, kernel in zip(reference, expected, compiled):
        _close(ours, theirs)
        _close(kernel, theirs)


@pytest.mark.parametrize("strategy", ["unrolled", "loops", "gemm", "direct"])
@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1, output_padding=1),
                                    dict(stride=3, dilation=2, padding=2, output_padding=2),
                                    dict(stride=1, dilation=2, output_padding=1)])
def test_every_strategy_float64_against_pytorch(strategy: str, kwargs: dict) -> None:
    spec = ConvTransposeSpec((4, 3), (3, 2), in_channels=2, out_channels=3, batch=2, **kwargs)
    rng = np.random.default_rng(1)
    x, w, b = (rng.standard_normal(s) for s in (spec.input_shape, spec.weight_shape, (spec.out_channels,)))
    g = rng.standard_normal(spec.output_shape)
    kernels = compile_conv_transpose(spec, "float64", strategy, cflags=CFLAGS)
    out = np.empty(spec.input_shape)
    assert kernels.grad_input(g, w, out=out) is out
    for ours, theirs in zip([kernels.forward(x, w, b), out, kernels.grad_weight(x, g), kernels.grad_bias(g)],
                            _torch_passes(spec, x, w, b, g)):
        _close(ours, theirs)


@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1, output_padding=1, in_channels=4, out_channels=6, groups=2),
                                    dict(padding=1, dilation=2, in_channels=3, out_channels=3, groups=3),
                                    dict(stride=2, in_channels=2, out_channels=4, groups=2, bias=False)])
def test_grouped_and_depthwise_kernels_against_pytorch(kwargs: dict) -> None:
    """Grouped transposes run on the grouped convolution kernels (loops, depthwise) of the layer they invert."""
    spec = ConvTransposeSpec((5, 4), (3, 3), batch=2, **kwargs)
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape)
    b = rng.standard_normal(spec.out_channels) if spec.bias else None
    g = rng.standard_normal(spec.output_shape)
    kernels = compile_conv_transpose(spec, "float64", cflags=CFLAGS)
    compiled = [kernels.forward(x, w, b), kernels.grad_input(g, w), kernels.grad_weight(x, g)]
    compiled += [kernels.grad_bias(g)] if b is not None else []
    for ours, theirs in zip(compiled, _torch_passes(spec, x, w, b, g)):
        _close(ours, theirs)


def test_float32_kernels() -> None:
    spec = ConvTransposeSpec((5, 5), (3, 3), stride=2, padding=1, output_padding=1, in_channels=3, out_channels=2)
    rng = np.random.default_rng(2)
    x, w = (rng.standard_normal(s).astype(np.float32) for s in (spec.input_shape, spec.weight_shape))
    kernels = compile_conv_transpose(spec, "float32", cflags=CFLAGS)
    np.testing.assert_allclose(kernels.forward(x, w), closed.reference_forward(spec, x, w), rtol=1e-5, atol=1e-5)


def test_kernels_check_arguments_by_the_transposes_names() -> None:
    spec = ConvTransposeSpec((3, 3), (2, 2), stride=2, in_channels=2, out_channels=1)
    kernels = compile_conv_transpose(spec, "float64", "loops", cflags=CFLAGS)
    x, w, dy = np.zeros(spec.input_shape), np.zeros(spec.weight_shape), np.zeros(spec.output_shape)
    with pytest.raises(ValueError, match=r"ConvTranspose2d.forward: argument 'x' must have shape \(1, 2, 3, 3\)"):
        kernels.forward(np.zeros((1, 1, 3, 3)), w)
    with pytest.raises(ValueError, match="argument 'w' must have dtype float64"):
        kernels.grad_input(dy, w.astype(np.float32))
    with pytest.raises(ValueError, match="argument 'dy' must be C-contiguous"):
        kernels.grad_weight(x, np.asfortranarray(np.zeros((1, 1, 6, 6)).transpose(0, 1, 3, 2)))
    with pytest.raises(ValueError, match="argument 'b'"):
        kernels.forward(x, w, np.zeros(3))
    with pytest.raises(TypeError, match="ConvTransposeSpec"):
        compile_conv_transpose(spec.conv, "float64")  # type: ignore[arg-type]


def test_no_bias_refuses_a_bias() -> None:
    kernels = compile_conv_transpose(ConvTransposeSpec(3, 2, bias=False), "float64", "loops", cflags=CFLAGS)
    with pytest.raises(ValueError, match="no bias"):
        kernels.forward(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 2, 2)), np.zeros(1))


def test_network_derives_proves_and_compiles() -> None:
    net = Network([ConvTranspose2d(2, 2, stride=2, output_padding=1), ReLU(),
                   ConvTranspose2d(1, 2, padding=1, bias=False), MSELoss()], (1, 1, 2, 2))
    assert net.shapes[1:] == ((1, 2, 5, 5), (1, 2, 5, 5), (1, 1, 4, 4))
    assert set(net.parameter_shapes()) == {"0.weight", "0.bias", "2.weight"}
    assert net.prove().holds
    compiled = net.compile("float64", cflags=CFLAGS)
    rng = np.random.default_rng(3)
    x, target = rng.standard_normal(net.input_shape), rng.standard_normal(net.shapes[-1])
    ours, reference = compiled.backward(x, target), net.reference_backward(x, compiled.params, target)
    assert ours.loss == pytest.approx(float(reference.loss), rel=1e-12)
    for key, value in reference.params.items():
        _close(ours.params[key], value)
    assert ours.input is not None
    _close(ours.input, reference.input)


def test_layer_matches_torch_module() -> None:
    layer = ConvTranspose2d(3, 3, stride=2, padding=1, output_padding=1, dilation=1)
    module = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, dtype=torch.float64)
    x = np.random.default_rng(4).standard_normal((1, 2, 4, 4))
    params = {"weight": module.weight.detach().numpy(), "bias": module.bias.detach().numpy()}
    y, _ = layer.reference_forward(x, params)
    _close(y, module(torch.tensor(x)).detach().numpy())
