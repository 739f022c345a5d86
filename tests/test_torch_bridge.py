"""symconv.torch: the operators against PyTorch's own checks, the module against nn.Conv2d, the swap helper."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="the PyTorch bridge needs the extra: pip install 'symconv[torch]'")
st = pytest.importorskip("symconv.torch", reason="symconv.torch did not import")
nn = torch.nn
F = torch.nn.functional

# (input (N, C, H, W), weight (K, C, R, S), stride, padding, dilation): small, each one kernel compile.
# Padding (ph, pw) or per side (top, bottom, left, right); groups last (depthwise in the fifth, groups=2 in the sixth).
GRID = [
    ((1, 1, 4, 4), (1, 1, 2, 2), (1, 1), (0, 0), (1, 1), 1),
    ((2, 2, 5, 5), (3, 2, 3, 3), (2, 2), (1, 1), (1, 1), 1),
    ((1, 2, 6, 5), (2, 2, 2, 3), (1, 2), (1, 0), (2, 1), 1),
    ((2, 1, 7, 7), (2, 1, 3, 3), (3, 2), (2, 1), (1, 2), 1),
    ((2, 3, 5, 6), (3, 1, 3, 2), (1, 1), (1, 1, 0, 1), (1, 1), 3),
    ((1, 4, 6, 6), (6, 2, 2, 3), (2, 1), (0, 1, 2, 1), (1, 2), 2),
]


def _operands(shapes: tuple[Any, ...], bias: bool, seed: int = 0) -> tuple[Any, ...]:
    g = torch.Generator().manual_seed(seed)
    x_shape, w_shape, stride, padding, dilation, groups = shapes
    x = torch.randn(x_shape, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(w_shape, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(w_shape[0], dtype=torch.float64, generator=g, requires_grad=True) if bias else None
    return x, w, b, list(stride), list(padding), list(dilation), groups


def _torch_conv(x: Any, w: Any, b: Any, stride: list[int], padding: list[int], dilation: list[int],
                groups: int) -> Any:
    """PyTorch's convolution, per-side padding applied by F.pad (left, right, top, bottom)."""
    if len(padding) == 4:
        x, padding = F.pad(x, (padding[2], padding[3], padding[0], padding[1])), [0, 0]
    return F.conv2d(x, w, b, stride, padding, dilation, groups)


@pytest.mark.parametrize("shapes", GRID)
def test_forward_equals_pytorch(shapes: tuple[Any, ...]) -> None:
    x, w, b, *geometry = _operands(shapes, bias=True)
    expected = _torch_conv(x, w, b, *geometry)
    torch.testing.assert_close(st.conv2d(x, w, b, *geometry), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shapes", GRID)
def test_gradcheck_float64(shapes: tuple[Any, ...], bias: bool) -> None:
    x, w, b, *geometry = _operands(shapes, bias)
    inputs = (x, w) if b is None else (x, w, b)
    assert torch.autograd.gradcheck(lambda *t: st.conv2d(t[0], t[1], t[2] if bias else None, *geometry), inputs)


def test_second_derivatives() -> None:
    x, w, b, *geometry = _operands(GRID[1], bias=True)
    assert torch.autograd.gradgradcheck(lambda x, w, b: st.conv2d(x, w, b, *geometry), (x, w, b))


@pytest.mark.parametrize("shapes", [GRID[0], GRID[1], GRID[5]])
def test_opcheck(shapes: tuple[Any, ...]) -> None:
    x, w, b, *geometry = _operands(shapes, bias=True)
    dy = torch.randn_like(_torch_conv(x, w, b, *geometry)).requires_grad_()
    cases = [
        (torch.ops.symconv.conv2d.default, (x, w, b, *geometry)),
        (torch.ops.symconv.conv2d.default, (x, w, None, *geometry)),
        (torch.ops.symconv.conv2d_grad_input.default, (dy, w, list(x.shape), *geometry)),
        (torch.ops.symconv.conv2d_grad_weight.default, (x, dy, list(w.shape), *geometry)),
        (torch.ops.symconv.conv2d_grad_bias.default, (dy, list(x.shape), list(w.shape), *geometry)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)


def test_zero_copy_for_contiguous_tensors_and_a_copy_otherwise() -> None:
    x = torch.randn(2, 3, 4, 5)
    assert st.as_array("f", "x", x).ctypes.data == x.data_ptr()
    view = x[1]  # contiguous, at an offset into the same storage
    assert st.as_array("f", "x", view).ctypes.data == view.data_ptr()
    strided = x.permute(0, 2, 3, 1)
    copy = st.as_array("f", "x", strided)
    assert copy.flags.c_contiguous and copy.ctypes.data != strided.data_ptr()
    assert (copy == strided.numpy()).all()


@pytest.mark.parametrize("tensor, problem", [
    (torch.empty(1, 1, 4, 4, device="meta"), "device meta"),
    (torch.zeros(4, 4).to_sparse(), "torch.sparse_coo"),
    (torch.zeros(1, 1, 4, 4, dtype=torch.float16), "torch.float16"),
    (torch.zeros(1, 1, 4, 4, dtype=torch.int64), "torch.int64"),
])
def test_tensors_the_kernels_cannot_take_are_clear_errors(tensor: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as error:
        st.as_array("symconv::conv2d", "x", tensor)
    assert "\n" not in str(error.value)


def test_channels_last_input_is_copied_and_correct() -> None:
    x, w, b, *geometry = _operands(GRID[1], bias=True)
    x_last = x.detach().to(memory_format=torch.channels_last)
    torch.testing.assert_close(st.conv2d(x_last, w, b, *geometry), _torch_conv(x, w, b, *geometry))


def test_module_has_nn_conv2ds_state_dict_and_results() -> None:
    torch.manual_seed(0)
    ours = st.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0), dtype=torch.float64)
    theirs = nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 0), dtype=torch.float64)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
    ours.load_state_dict(theirs.state_dict())
    for shape in ((1, 2, 6, 6), (3, 2, 5, 7), (2, 6, 6)):  # a new shape compiles new kernels; unbatched too
        x = torch.randn(shape, dtype=torch.float64)
        torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize("kwargs, problem", [
    ({"padding_mode": "reflect", "padding": 1}, "padding_mode='reflect'"),
    ({"padding": 3}, "padding \\(3, 3\\)"),
])
def test_unsupported_layers_are_refused_in_one_line(kwargs: dict[str, Any], problem: str) -> None:
    args = {"in_channels": 2, "out_channels": 2, "kernel_size": 3, **kwargs}
    with pytest.raises(ValueError, match=problem) as error:
        st.Conv2d(**args)
    assert "\n" not in str(error.value) and "not supported" in str(error.value)
    assert st.unsupported(nn.Conv2d(**args)) is not None


@pytest.mark.parametrize("kwargs", [
    {"kernel_size": (3, 5), "dilation": (2, 1)},  # an even total: both sides alike
    {"kernel_size": (2, 3)},  # an odd total on the first axis: the extra row at the bottom
    {"kernel_size": (4, 2), "dilation": (1, 3), "groups": 2, "bias": False},
])
def test_same_padding_groups_and_no_bias_equal_pytorch(kwargs: dict[str, Any]) -> None:
    torch.manual_seed(0)
    theirs = nn.Conv2d(2, 4, padding="same", dtype=torch.float64, **kwargs)
    ours = st.Conv2d(2, 4, padding="same", dtype=torch.float64, **kwargs)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    y, expected = ours(x), theirs(x)
    torch.testing.assert_close(y, expected)
    dy = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *ours.parameters()], dy)
    for ours_g, their_g in zip(grads, torch.autograd.grad(expected, [x, *theirs.parameters()], dy)):
        torch.testing.assert_close(ours_g, their_g)


@pytest.mark.parametrize("padding", [(1, 0, 0, 1), (0, 2, 1, 1)])
def test_gradcheck_per_side_padding_without_bias(padding: tuple[int, ...]) -> None:
    x, w, _, stride, _, dilation, groups = _operands(((1, 2, 5, 5), (2, 1, 3, 3), (1, 1), (0, 0), (1, 1), 2), False)
    assert torch.autograd.gradcheck(lambda x, w: st.conv2d(x, w, None, stride, list(padding), dilation, groups),
                                    (x, w))


def test_swap_replaces_supported_layers_only_and_shares_parameters() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sequential(nn.ReLU(), nn.Conv2d(4, 4, 3, groups=2, bias=False)),
                          nn.Conv2d(4, 2, 2, padding="same"), nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"))
    weight = model[0].weight
    before = model.state_dict()
    swap_conv2d = st.swap_conv2d
    assert swap_conv2d(model) is model
    assert type(model[0]) is st.Conv2d and model[0].weight is weight
    assert type(model[1][1]) is st.Conv2d and model[1][1].bias is None  # grouped, no bias
    assert type(model[2]) is st.Conv2d  # "same" with an even kernel: one more row and column at the end
    assert type(model[3]) is nn.Conv2d  # circular padding: left alone
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _cnn(conv: type) -> Any:
    """A convolution, then MobileNet's block (depthwise 3x3 without bias, pointwise 1x1), then a strided one."""
    torch.manual_seed(0)
    return nn.Sequential(conv(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         conv(4, 4, 3, padding="same", groups=4, bias=False), nn.ReLU(), conv(4, 8, 1), nn.ReLU(),
                         conv(8, 6, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(6, 3))


def test_training_a_small_cnn_matches_nn_conv2d() -> None:
    models = [_cnn(nn.Conv2d), _cnn(st.Conv2d)]  # same seed: the same initial parameters
    g = torch.Generator().manual_seed(1)
    x, labels = torch.randn(4, 1, 6, 6, generator=g), torch.tensor([0, 1, 2, 1])
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in models]
    for _ in range(5):
        losses = []
        for model, opt in zip(models, optimizers):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), labels)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (name, p), (_, q) in zip(models[0].named_parameters(), models[1].named_parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6, msg=name)


def test_torch_compile_runs_and_agrees() -> None:
    model = _cnn(st.Conv2d)
    x = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    expected = model(x)
    expected.sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    try:
        compiled = torch.compile(model, fullgraph=True)
        out = compiled(x)
    except Exception as error:  # inductor needs a working C++ compiler; a machine without one is not our bug
        if "compiler" in str(error).lower() or "cpp" in str(error).lower():
            pytest.skip(f"torch.compile cannot build here: {str(error).splitlines()[0]}")
        raise
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    for p, g in zip(model.parameters(), grads):
        torch.testing.assert_close(p.grad, g)
