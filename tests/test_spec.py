import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from symconv import ConvSpec


def brute_force_output_size(i: int, k: int, s: int, p: int, d: int) -> int:
    """Count the window positions whose dilated kernel fits in the padded input."""
    return sum(1 for start in range(0, i + 2 * p, s) if start + (k - 1) * d < i + 2 * p)


@given(
    i=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 4), p=st.integers(0, 6), d=st.integers(1, 3)
)
def test_output_size_matches_counting_windows(i, k, s, p, d):
    try:
        spec = ConvSpec((i, i + 1), (k, k), stride=s, padding=p, dilation=d)
    except ValueError:
        k_eff = (k - 1) * d + 1
        assert k_eff > i + 2 * p or p >= k_eff
        return
    assert spec.output_size[0] == brute_force_output_size(i, k, s, p, d)
    assert spec.output_size[1] == brute_force_output_size(i + 1, k, s, p, d)


def test_textbook_defaults():
    spec = ConvSpec((3, 3), (2, 2))
    assert spec.output_size == (2, 2)
    assert spec.stride == spec.dilation == (1, 1) and spec.padding == (0, 0)
    assert spec.input_shape == (1, 1, 3, 3) and spec.weight_shape == (1, 1, 2, 2) and spec.output_shape == (1, 1, 2, 2)
    assert spec.is_single and not spec.flip


def test_per_axis_values_and_leftover():
    spec = ConvSpec((7, 6), (3, 2), stride=(2, 3), padding=(1, 0), dilation=(2, 1))
    assert spec.effective_kernel == (5, 2)
    assert spec.output_size == ((7 + 2 - 5) // 2 + 1, (6 - 2) // 3 + 1)
    assert spec.leftover == ((7 + 2 - 5) % 2, (6 - 2) % 3)
    assert ConvSpec((6, 6), (3, 3), stride=2).leftover == (1, 1)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(input_size=(2, 2), kernel_size=(3, 3)), "kernel_size"),
        (dict(input_size=(0, 3), kernel_size=(1, 1)), "input_size"),
        (dict(input_size=(3, 3), kernel_size=(-1, 2)), "kernel_size"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), stride=0), "stride"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), dilation=(1, 0)), "dilation"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), padding=-1), "padding"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), padding=2), "padding"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), stride=1.5), "stride"),
        (dict(input_size=(3.0, 3), kernel_size=(2, 2)), "input_size"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), stride=True), "stride"),
        (dict(input_size=(3, 3, 3), kernel_size=(2, 2)), "input_size"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), in_channels=0), "in_channels"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), out_channels=-2), "out_channels"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), batch=1.0), "batch"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), flip="yes"), "flip"),
        (dict(input_size=(5, 5), kernel_size=(3, 3), dilation=3), "kernel_size"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), padding=((0, 2), (0, 0))), "padding"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), padding=((0, 0), (-1, 0))), "padding"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), padding=((0, 0), (0, 0), (0, 0))), "padding"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), padding=((0, 1.0), (0, 0))), "padding"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), padding="full"), "padding"),
        (dict(input_size=(5, 5), kernel_size=(3, 3), stride=2, padding="same"), "padding"),
        (dict(input_size=(1, 5), kernel_size=(3, 3), padding=((1, 0), (1, 1))), "kernel_size"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), in_channels=4, out_channels=6, groups=4), "out_channels"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), in_channels=3, out_channels=6, groups=2), "in_channels"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), groups=0), "groups"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), groups=True), "groups"),
        (dict(input_size=(3, 3), kernel_size=(2, 2), bias=1), "bias"),
    ],
)
def test_impossible_specs_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ConvSpec(**kwargs)


def test_frozen_hashable_printable():
    a, b = ConvSpec((3, 3), (2, 2), stride=1), ConvSpec([3, 3], [2, 2], stride=(1, 1))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.stride = (2, 2)  # type: ignore[misc]
    assert "input_size=(3, 3)" in repr(a)
    assert a.describe() == "3x3 input, 2x2 kernel, stride 1, cross-correlation"
    assert a.with_stride(2).stride == (2, 2)


@given(
    i=st.integers(1, 30), k=st.integers(1, 6), s=st.integers(1, 4), d=st.integers(1, 3),
    begin=st.integers(0, 6), end=st.integers(0, 6),
)
def test_per_side_output_size_matches_counting_windows(i, k, s, d, begin, end):
    k_eff = (k - 1) * d + 1
    try:
        spec = ConvSpec((i, 4), (k, 1), stride=(s, 1), padding=((begin, end), (0, 0)), dilation=(d, 1))
    except ValueError:
        assert max(begin, end) >= k_eff or k_eff > i + begin + end
        return
    windows = [start for start in range(0, i + begin + end, s) if start + k_eff <= i + begin + end]
    assert spec.output_size[0] == len(windows)
    assert spec.leftover[0] == i + begin + end - (windows[-1] + k_eff)
    assert spec.full_padding[0] == (k_eff - 1 - begin, k_eff - 1 - end + spec.leftover[0])


def test_padding_forms():
    per_side = ConvSpec((5, 6), (3, 3), padding=((0, 1), (2, 1)))
    assert (per_side.pad_begin, per_side.pad_end) == ((0, 2), (1, 1))
    assert per_side.padding_sides == ((0, 1), (2, 1)) and not per_side.is_symmetric
    assert per_side.output_size == (5 + 1 - 3 + 1, 6 + 3 - 3 + 1)
    with pytest.raises(ValueError, match="asymmetric padding .*pad_begin/pad_end"):
        _ = per_side.padding
    assert ConvSpec((5, 5), (3, 3), padding=(1, 2)).padding == (1, 2)
    assert ConvSpec((5, 5), (3, 3), padding=((1, 1), (2, 2))) == ConvSpec((5, 5), (3, 3), padding=(1, 2))
    assert ConvSpec((5, 5), (3, 3), padding="valid") == ConvSpec((5, 5), (3, 3))
    # "same": the total k_eff - 1, the odd one at the end (PyTorch's rule), so the output keeps the input size.
    same = ConvSpec((7, 6), (4, 3), padding="same", dilation=(1, 2))
    assert same.effective_kernel == (4, 5)
    assert (same.pad_begin, same.pad_end) == ((1, 2), (2, 2)) and same.output_size == (7, 6)
    assert ConvSpec((1, 1), (1, 1), padding="same").is_symmetric


@given(i=st.integers(1, 12), k=st.integers(1, 5), d=st.integers(1, 3))
def test_same_keeps_the_input_size(i, k, d):
    k_eff = (k - 1) * d + 1
    spec = ConvSpec((i, i + 1), (k, k), padding="same", dilation=d)
    assert spec.output_size == (i, i + 1)
    assert spec.pad_begin[0] + spec.pad_end[0] == k_eff - 1 and spec.pad_end[0] - spec.pad_begin[0] in (0, 1)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_same_matches_pytorch():
    torch = pytest.importorskip("torch", reason="the PyTorch check needs the torch extra")
    functional = torch.nn.functional
    x, w = torch.randn(1, 1, 7, 6, dtype=torch.float64), torch.randn(1, 1, 4, 3, dtype=torch.float64)
    spec = ConvSpec((7, 6), (4, 3), padding="same", dilation=(1, 2))
    (top, bottom), (left, right) = spec.padding_sides
    explicit = functional.conv2d(functional.pad(x, (left, right, top, bottom)), w, dilation=(1, 2))
    torch.testing.assert_close(functional.conv2d(x, w, padding="same", dilation=(1, 2)), explicit)


def test_groups_and_bias():
    spec = ConvSpec((8, 8), (3, 3), in_channels=6, out_channels=4, groups=2, batch=3)
    assert spec.groups == 2 and spec.bias
    assert (spec.group_in_channels, spec.group_out_channels) == (3, 2) and not spec.is_depthwise
    assert spec.weight_shape == (4, 3, 3, 3) and spec.input_shape == (3, 6, 8, 8) and spec.output_shape == (3, 4, 6, 6)
    depthwise = ConvSpec((8, 8), (3, 3), in_channels=5, out_channels=10, groups=5)
    assert depthwise.is_depthwise and depthwise.weight_shape == (10, 1, 3, 3)
    assert ConvSpec((3, 3), (2, 2)).is_depthwise  # one channel, one group: trivially depthwise
    textbook = ConvSpec((3, 3), (2, 2), bias=False)
    assert not textbook.bias and textbook != ConvSpec((3, 3), (2, 2))


def test_describe_and_with_stride_keep_the_new_fields():
    spec = ConvSpec((6, 6), (2, 2), padding="same", in_channels=4, out_channels=4, groups=4, bias=False)
    assert spec.describe() == ("6x6 input, 2x2 kernel, stride 1, padding top 0 bottom 1 left 0 right 1, "
                               "N=1 C=4 K=4, groups 4 (depthwise), no bias, cross-correlation")
    strided = spec.with_stride(2)
    assert strided.stride == (2, 2) and strided.padding_sides == spec.padding_sides
    assert (strided.groups, strided.bias) == (4, False)
    assert "padding 1x2" in ConvSpec((6, 6), (3, 3), padding=(1, 2)).describe()
    assert dataclasses.replace(spec, batch=3) == ConvSpec((6, 6), (2, 2), padding=((0, 1), (0, 1)), in_channels=4,
                                                          out_channels=4, groups=4, bias=False, batch=3)
    with pytest.raises(ValueError, match="padding"):
        ConvSpec((6, 6), (2, 2), padding=1, pad_begin=(0, 0), pad_end=(1, 1))
