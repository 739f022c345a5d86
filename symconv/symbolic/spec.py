"""Shape specification: user-given sizes -> a validated, frozen ``ConvSpec`` with its output-size arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Optional, Union

Pair = tuple[int, int]
IntOrPair = Union[int, Pair]
# An int, a per-axis pair (ph, pw), per side ((top, bottom), (left, right)), or "valid" / "same".
PaddingArg = Union[int, Pair, tuple[Pair, Pair], str]

__all__ = ["ConvSpec", "Pair", "IntOrPair", "PaddingArg", "as_pair"]


def as_pair(field: str, value: object) -> Pair:
    """Normalise an int or a 2-sequence of ints to a pair, rejecting anything else by name."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{field} must be an int or a pair (height, width), got {value!r}")
        items = tuple(value)
    else:
        items = (value, value)
    for item in items:
        # bool is an int subclass, but True as a stride is almost certainly a mistake; NumPy's integers are
        # Integral (a size read off an array's shape), its floats and strings are not.
        if isinstance(item, bool) or not isinstance(item, Integral):
            raise ValueError(f"{field} must hold integers, got {value!r}")
    return (int(items[0]), int(items[1]))


def _as_count(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{field} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{field} must be >= 1, got {value}")
    return int(value)


def _padding_sides(padding: object, effective_kernel: Pair, stride: Pair) -> tuple[Pair, Pair]:
    """Any accepted padding form -> (pad_begin, pad_end), i.e. ((top, left), (bottom, right))."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"padding='same' needs stride 1 on each axis (as in PyTorch), got stride {stride}")
            # PyTorch's rule: the total is k_eff - 1, and the odd row or column goes at the end.
            total = (effective_kernel[0] - 1, effective_kernel[1] - 1)
            begin = (total[0] // 2, total[1] // 2)
            return begin, (total[0] - begin[0], total[1] - begin[1])
        raise ValueError(f"padding must be an int, a pair, ((top, bottom), (left, right)), 'valid' or 'same', "
                         f"got {padding!r}")
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(isinstance(p, (tuple, list)) for p in padding):
        (top, bottom), (left, right) = (as_pair("padding", side) for side in padding)
        return (top, left), (bottom, right)
    both = as_pair("padding", padding)
    return both, both


def set_geometry(target: object, sizes: dict[str, object], padding: object, counts: dict[str, object]) -> None:
    """A layer's sizes (pairs), padding and counts -> validated fields set on the frozen ``target``.

    Shared by ``ConvSpec`` and ``ConvTransposeSpec``: ``sizes`` holds input_size, kernel_size, stride and dilation
    (each >= 1; any other pair, such as output_padding, is only normalised), ``counts`` the channels, batch and
    groups; the padding becomes ``pad_begin`` and ``pad_end``.
    """
    pairs = {name: as_pair(name, value) for name, value in sizes.items()}
    for name in ("input_size", "kernel_size", "stride", "dilation"):
        if min(pairs[name]) < 1:
            raise ValueError(f"{name} must be >= 1 on each axis, got {pairs[name]}")
    for name, value in pairs.items():
        object.__setattr__(target, name, value)
    k, d = pairs["kernel_size"], pairs["dilation"]
    effective = (k[0] + (k[0] - 1) * (d[0] - 1), k[1] + (k[1] - 1) * (d[1] - 1))
    begin, end = _padding_sides(padding, effective, pairs["stride"])
    if min(begin + end) < 0:
        raise ValueError(f"padding must be >= 0 on each side, got {padding!r}")
    object.__setattr__(target, "pad_begin", begin)
    object.__setattr__(target, "pad_end", end)
    checked = {name: _as_count(name, count) for name, count in counts.items()}
    for name, count in checked.items():
        object.__setattr__(target, name, count)
    for name in ("in_channels", "out_channels"):
        if checked[name] % checked["groups"]:
            raise ValueError(f"{name} {checked[name]} must be divisible by groups {checked['groups']}")


@dataclass(frozen=True, init=False)
class ConvSpec:
    """One 2-D convolution layer of fixed shape (PyTorch conventions).

    ``stride`` and ``dilation`` take an int or a per-axis pair (height, width). ``padding`` takes an int, a
    per-axis pair, per side ``((top, bottom), (left, right))``, ``"valid"`` (none) or ``"same"`` (stride 1,
    the output as large as the input; the odd row or column goes at the end, as in PyTorch). It is stored
    as ``pad_begin`` (top, left) and ``pad_end`` (bottom, right). ``groups`` splits the channels: output
    channel k reads only the input channels of its group (depthwise when groups = in_channels).
    ``bias=False`` leaves out the bias term. ``flip=True`` is true convolution (kernel rotated by 180
    degrees); the default is cross-correlation, the deep-learning convention.

    >>> spec = ConvSpec(input_size=(3, 3), kernel_size=(2, 2))
    >>> spec.output_size
    (2, 2)
    >>> ConvSpec((6, 6), (3, 3), stride=2).leftover
    (1, 1)
    >>> same = ConvSpec((5, 5), (2, 2), padding="same")
    >>> same.pad_begin, same.pad_end, same.output_size
    ((0, 0), (1, 1), (5, 5))
    >>> ConvSpec((8, 8), (3, 3), in_channels=4, out_channels=8, groups=4).weight_shape
    (8, 1, 3, 3)
    """

    input_size: Pair
    kernel_size: Pair
    stride: Pair
    pad_begin: Pair
    pad_end: Pair
    dilation: Pair
    in_channels: int
    out_channels: int
    batch: int
    flip: bool
    groups: int
    bias: bool

    # Written out rather than generated: the sizes are given in several forms, and stored as pairs.
    def __init__(self, input_size: IntOrPair, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: PaddingArg = 0, dilation: IntOrPair = 1, in_channels: int = 1, out_channels: int = 1,
                 batch: int = 1, flip: bool = False, groups: int = 1, bias: bool = True, *,
                 pad_begin: Optional[Pair] = None, pad_end: Optional[Pair] = None) -> None:
        # pad_begin/pad_end (both, instead of padding) are the stored form: dataclasses.replace passes them.
        if pad_begin is not None or pad_end is not None:
            if pad_begin is None or pad_end is None or padding != 0:
                raise ValueError("padding: give either padding or both pad_begin and pad_end")
            (top, left), (bottom, right) = as_pair("pad_begin", pad_begin), as_pair("pad_end", pad_end)
            padding = ((top, bottom), (left, right))
        set_geometry(self, {"input_size": input_size, "kernel_size": kernel_size, "stride": stride,
                            "dilation": dilation}, padding,
                     {"in_channels": in_channels, "out_channels": out_channels, "batch": batch, "groups": groups})
        for name, flag in (("flip", flip), ("bias", bias)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be a bool, got {flag!r}")
            object.__setattr__(self, name, flag)

        for axis in (0, 1):
            k_eff, sides = self.effective_kernel[axis], (self.pad_begin[axis], self.pad_end[axis])
            if max(sides) >= k_eff:
                raise ValueError(
                    f"padding {self._padding_text()} must be smaller than the effective kernel size "
                    f"{self.effective_kernel} on each side (else some outputs see only padding)"
                )
            if k_eff > self.input_size[axis] + sum(sides):
                raise ValueError(
                    f"kernel_size {self.kernel_size} (effective {self.effective_kernel} with dilation "
                    f"{self.dilation}) is larger than the padded input {self.padded_size}"
                )

    @property
    def padding(self) -> Pair:
        """The per-axis padding (ph, pw) of a symmetrically padded layer; refused when the sides differ."""
        if not self.is_symmetric:
            raise ValueError(f"this layer has asymmetric padding {self._padding_text()}; use pad_begin/pad_end")
        return self.pad_begin

    @property
    def is_symmetric(self) -> bool:
        """True when every axis is padded equally at both ends."""
        return self.pad_begin == self.pad_end

    @property
    def padding_sides(self) -> tuple[Pair, Pair]:
        """((top, bottom), (left, right)): the per-side form ``padding`` accepts."""
        return (self.pad_begin[0], self.pad_end[0]), (self.pad_begin[1], self.pad_end[1])

    @property
    def padded_size(self) -> Pair:
        """n + p_begin + p_end per axis."""
        return tuple(self.input_size[a] + self.pad_begin[a] + self.pad_end[a] for a in (0, 1))  # type: ignore[return-value]

    @property
    def effective_kernel(self) -> Pair:
        """Extent of the dilated kernel: k + (k - 1)(d - 1) per axis."""
        k, d = self.kernel_size, self.dilation
        return (k[0] + (k[0] - 1) * (d[0] - 1), k[1] + (k[1] - 1) * (d[1] - 1))

    @property
    def output_size(self) -> Pair:
        """o = floor((i + p_begin + p_end - k - (k-1)(d-1)) / s) + 1 per axis (Dumoulin & Visin)."""
        return tuple(  # type: ignore[return-value]
            (self.padded_size[a] - self.effective_kernel[a]) // self.stride[a] + 1 for a in (0, 1)
        )

    @property
    def leftover(self) -> Pair:
        """a = (i + p_begin + p_end - k_eff) mod s: padded input rows/columns the last window never reaches."""
        return tuple(  # type: ignore[return-value]
            (self.padded_size[a] - self.effective_kernel[a]) % self.stride[a] for a in (0, 1)
        )

    @property
    def full_padding(self) -> tuple[Pair, Pair]:
        """Padding of the stride-dilated output gradient in the input gradient's full convolution.

        (before, after) per axis: before = k_eff - 1 - p_begin, after = k_eff - 1 - p_end + a (negative crops).
        """
        return tuple(  # type: ignore[return-value]
            (self.effective_kernel[a] - 1 - self.pad_begin[a],
             self.effective_kernel[a] - 1 - self.pad_end[a] + self.leftover[a]) for a in (0, 1)
        )

    @property
    def group_in_channels(self) -> int:
        """C / groups: the input channels one output channel reads."""
        return self.in_channels // self.groups

    @property
    def group_out_channels(self) -> int:
        """K / groups: the output channels of one group."""
        return self.out_channels // self.groups

    @property
    def is_depthwise(self) -> bool:
        """One group per input channel (groups = C), as in MobileNet."""
        return self.groups == self.in_channels

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W)."""
        return (self.batch, self.in_channels, *self.input_size)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """(K, C / groups, R, S)."""
        return (self.out_channels, self.group_in_channels, *self.kernel_size)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """(N, K, Ho, Wo)."""
        return (self.batch, self.out_channels, *self.output_size)

    @property
    def is_single(self) -> bool:
        """One image, one input channel, one filter: the textbook case, printed without channel indices."""
        return self.batch == self.in_channels == self.out_channels == 1

    def with_stride(self, stride: IntOrPair) -> "ConvSpec":
        """The same layer with another stride."""
        return self._with(stride, self.bias)

    def with_bias(self, bias: bool) -> "ConvSpec":
        """The same layer with or without a bias."""
        return self._with(self.stride, bias)

    def _with(self, stride: IntOrPair, bias: bool) -> "ConvSpec":
        return ConvSpec(self.input_size, self.kernel_size, stride, self.padding_sides, self.dilation,
                        self.in_channels, self.out_channels, self.batch, self.flip, self.groups, bias)

    def _padding_text(self) -> str:
        if self.is_symmetric:
            p = self.pad_begin
            return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"
        (top, bottom), (left, right) = self.padding_sides
        return f"top {top} bottom {bottom} left {left} right {right}"

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``3x3 input, 2x2 kernel, stride 1``."""

        def fmt(pair: Pair) -> str:
            return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"

        parts = [
            f"{self.input_size[0]}x{self.input_size[1]} input",
            f"{self.kernel_size[0]}x{self.kernel_size[1]} kernel",
            f"stride {fmt(self.stride)}",
        ]
        if self.pad_begin != (0, 0) or self.pad_end != (0, 0):
            parts.append(f"padding {self._padding_text()}")
        if self.dilation != (1, 1):
            parts.append(f"dilation {fmt(self.dilation)}")
        if not self.is_single:
            parts.append(f"N={self.batch} C={self.in_channels} K={self.out_channels}")
        if self.groups > 1:
            parts.append(f"groups {self.groups}" + (" (depthwise)" if self.is_depthwise else ""))
        if not self.bias:
            parts.append("no bias")
        parts.append("convolution" if self.flip else "cross-correlation")
        return ", ".join(parts)
