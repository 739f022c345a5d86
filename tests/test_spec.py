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
