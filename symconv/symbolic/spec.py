"""Shape specification: user-given sizes -> a validated, frozen ``ConvSpec`` with its output-size arithmetic."""

from __future__ import annotations

from dataclasses import dataclass, replace
from numbers import Integral
from typing import Union

Pair = tuple[int, int]
IntOrPair = Union[int, Pair]

__all__ = ["ConvSpec", "Pair", "IntOrPair", "as_pair"]


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


@dataclass(frozen=True, init=False)
class ConvSpec:
    """One 2-D convolution layer of fixed shape (PyTorch conventions).

    ``stride``, ``padding`` and ``dilation`` take an int or a per-axis pair (height, width).
    ``flip=True`` is true convolution (kernel rotated by 180 degrees); the default is
    cross-correlation, the deep-learning convention.

    >>> spec = ConvSpec(input_size=(3, 3), kernel_size=(2, 2))
    >>> spec.output_size
    (2, 2)
    >>> ConvSpec((6, 6), (3, 3), stride=2).leftover
    (1, 1)
    """

    input_size: Pair
    kernel_size: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    in_channels: int
    out_channels: int
    batch: int
    flip: bool

    # Written out rather than generated: the sizes are given as an int or a pair, and stored as pairs.
    def __init__(self, input_size: IntOrPair, kernel_size: IntOrPair, stride: IntOrPair = 1, padding: IntOrPair = 0,
                 dilation: IntOrPair = 1, in_channels: int = 1, out_channels: int = 1, batch: int = 1,
                 flip: bool = False) -> None:
        given = {"input_size": input_size, "kernel_size": kernel_size, "stride": stride, "padding": padding,
                 "dilation": dilation}
        pairs = {name: as_pair(name, value) for name, value in given.items()}
        for name in ("input_size", "kernel_size", "stride", "dilation"):
            if min(pairs[name]) < 1:
                raise ValueError(f"{name} must be >= 1 on each axis, got {pairs[name]}")
        if min(pairs["padding"]) < 0:
            raise ValueError(f"padding must be >= 0 on each axis, got {pairs['padding']}")
        for name, value in pairs.items():
            object.__setattr__(self, name, value)
        counts = {"in_channels": in_channels, "out_channels": out_channels, "batch": batch}
        for name, count in counts.items():
            object.__setattr__(self, name, _as_count(name, count))
        if not isinstance(flip, bool):
            raise ValueError(f"flip must be a bool, got {flip!r}")
        object.__setattr__(self, "flip", flip)

        for axis in (0, 1):
            k_eff, p = self.effective_kernel[axis], self.padding[axis]
            if p >= k_eff:
                raise ValueError(
                    f"padding {self.padding} must be smaller than the effective kernel size "
                    f"{self.effective_kernel} on each axis (else some outputs see only padding)"
                )
            if k_eff > self.input_size[axis] + 2 * p:
                raise ValueError(
                    f"kernel_size {self.kernel_size} (effective {self.effective_kernel} with dilation "
                    f"{self.dilation}) is larger than the padded input "
                    f"{tuple(i + 2 * q for i, q in zip(self.input_size, self.padding))}"
                )

    @property
    def effective_kernel(self) -> Pair:
        """Extent of the dilated kernel: k + (k - 1)(d - 1) per axis."""
        k, d = self.kernel_size, self.dilation
        return (k[0] + (k[0] - 1) * (d[0] - 1), k[1] + (k[1] - 1) * (d[1] - 1))

    @property
    def output_size(self) -> Pair:
        """o = floor((i + 2p - k - (k-1)(d-1)) / s) + 1 per axis (Dumoulin & Visin)."""
        return tuple(  # type: ignore[return-value]
            (self.input_size[a] + 2 * self.padding[a] - self.effective_kernel[a]) // self.stride[a] + 1
            for a in (0, 1)
        )

    @property
    def leftover(self) -> Pair:
        """a = (i + 2p - k_eff) mod s: padded input rows/columns the last window never reaches."""
        return tuple(  # type: ignore[return-value]
            (self.input_size[a] + 2 * self.padding[a] - self.effective_kernel[a]) % self.stride[a]
            for a in (0, 1)
        )

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W)."""
        return (self.batch, self.in_channels, *self.input_size)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """(K, C, R, S)."""
        return (self.out_channels, self.in_channels, *self.kernel_size)

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
        return replace(self, stride=as_pair("stride", stride))

    def describe(self) -> str:
        """A short human-readable summary, e.g. ``3x3 input, 2x2 kernel, stride 1``."""

        def fmt(pair: Pair) -> str:
            return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"

        parts = [
            f"{self.input_size[0]}x{self.input_size[1]} input",
            f"{self.kernel_size[0]}x{self.kernel_size[1]} kernel",
            f"stride {fmt(self.stride)}",
        ]
        if self.padding != (0, 0):
            parts.append(f"padding {fmt(self.padding)}")
        if self.dilation != (1, 1):
            parts.append(f"dilation {fmt(self.dilation)}")
        if not self.is_single:
            parts.append(f"N={self.batch} C={self.in_channels} K={self.out_channels}")
        parts.append("convolution" if self.flip else "cross-correlation")
        return ", ".join(parts)
