"""Transposed convolution spec: user-given sizes -> a validated, frozen ``ConvTransposeSpec`` and its ``ConvSpec``.

PyTorch's ``ConvTranspose2d``: input (N, C_in, n), weight (C_in, C_out / groups, R, S), output size
m = (n - 1) s - p_begin - p_end + d (k - 1) + output_padding + 1 per axis. It is the input gradient of one
convolution, ``spec.conv``: input size m, the same kernel, stride, padding, dilation and groups, the channels
swapped (C_out in, C_in out), whose leftover is output_padding mod s. When output_padding >= s (PyTorch allows
it up to max(s, d) - 1) that convolution has ``excess`` = output_padding // s more output rows or columns than
the transpose has input: they are zero in the transpose's forward and dropped from its input gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import ConvSpec, IntOrPair, PaddingArg, Pair, set_geometry

__all__ = ["ConvTransposeSpec"]


@dataclass(frozen=True, init=False)
class ConvTransposeSpec:
    """One 2-D transposed convolution of fixed shape, as ``torch.nn.ConvTranspose2d`` defines it.

    ``padding`` takes an int, a per-axis pair or per side ``((top, bottom), (left, right))`` (ONNX's
    ``pads``); ``output_padding`` adds rows and columns at the bottom and right, each < max(stride, dilation).

    >>> t = ConvTransposeSpec((3, 3), (3, 3), stride=2, padding=1, output_padding=1, in_channels=4, out_channels=2)
    >>> t.output_size, t.weight_shape
    ((6, 6), (4, 2, 3, 3))
    >>> c = t.conv
    >>> c.input_size, c.in_channels, c.out_channels, c.output_size, c.leftover
    ((6, 6), 2, 4, (3, 3), (1, 1))
    """

    input_size: Pair
    kernel_size: Pair
    stride: Pair
    pad_begin: Pair
    pad_end: Pair
    output_padding: Pair
    dilation: Pair
    in_channels: int
    out_channels: int
    batch: int
    groups: int
    bias: bool

    def __init__(self, input_size: IntOrPair, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: PaddingArg = 0, output_padding: IntOrPair = 0, dilation: IntOrPair = 1,
                 in_channels: int = 1, out_channels: int = 1, batch: int = 1, groups: int = 1,
                 bias: bool = True) -> None:
        if isinstance(padding, str):  # "same" has no meaning for a transpose, and PyTorch refuses strings too
            raise ValueError(f"padding must be an int, a pair or ((top, bottom), (left, right)), got {padding!r}")
        set_geometry(self, {"input_size": input_size, "kernel_size": kernel_size, "stride": stride,
                            "dilation": dilation, "output_padding": output_padding}, padding,
                     {"in_channels": in_channels, "out_channels": out_channels, "batch": batch, "groups": groups})
        if not isinstance(bias, bool):
            raise ValueError(f"bias must be a bool, got {bias!r}")
        object.__setattr__(self, "bias", bias)
        for axis in (0, 1):
            a, s, d = self.output_padding[axis], self.stride[axis], self.dilation[axis]
            if not 0 <= a < max(s, d):
                raise ValueError(f"output_padding {self.output_padding} must be >= 0 and smaller than stride "
                                 f"{self.stride} or dilation {self.dilation} on each axis (PyTorch's rule)")
            if max(self.pad_begin[axis], self.pad_end[axis]) >= self.effective_kernel[axis]:
                raise ValueError(f"padding {self.padding_sides} must be smaller than the effective kernel size "
                                 f"{self.effective_kernel} on each side (else the corresponding convolution has "
                                 f"outputs that see only padding)")
        if min(self.output_size) < 1:
            raise ValueError(f"padding {self.padding_sides} crops the whole output: output size {self.output_size}")

    @property
    def effective_kernel(self) -> Pair:
        """Extent of the dilated kernel: d (k - 1) + 1 per axis."""
        return tuple(self.dilation[a] * (self.kernel_size[a] - 1) + 1 for a in (0, 1))  # type: ignore[return-value]

    @property
    def output_size(self) -> Pair:
        """m = (n - 1) s - p_begin - p_end + d (k - 1) + output_padding + 1 per axis (PyTorch's formula)."""
        return tuple(  # type: ignore[return-value]
            (self.input_size[a] - 1) * self.stride[a] - self.pad_begin[a] - self.pad_end[a]
            + self.effective_kernel[a] + self.output_padding[a] for a in (0, 1)
        )

    @property
    def padding_sides(self) -> tuple[Pair, Pair]:
        """((top, bottom), (left, right))."""
        return (self.pad_begin[0], self.pad_end[0]), (self.pad_begin[1], self.pad_end[1])

    @property
    def is_symmetric(self) -> bool:
        return self.pad_begin == self.pad_end

    @property
    def excess(self) -> Pair:
        """output_padding // stride: rows/columns of the corresponding convolution's output past the input."""
        return tuple(self.output_padding[a] // self.stride[a] for a in (0, 1))  # type: ignore[return-value]

    @property
    def conv(self) -> ConvSpec:
        """The convolution whose input gradient this transpose is (channels swapped, input = this output)."""
        return ConvSpec(self.output_size, self.kernel_size, self.stride, self.padding_sides, self.dilation,
                        in_channels=self.out_channels, out_channels=self.in_channels, batch=self.batch,
                        groups=self.groups, bias=self.bias)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """(N, C_in, H, W)."""
        return (self.batch, self.in_channels, *self.input_size)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """(C_in, C_out / groups, R, S): PyTorch's layout, the same array as the corresponding convolution's."""
        return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """(N, C_out, Ho, Wo)."""
        return (self.batch, self.out_channels, *self.output_size)

    @property
    def is_single(self) -> bool:
        """One image, one channel in and out: printed without channel indices."""
        return self.batch == self.in_channels == self.out_channels == 1

    def describe(self) -> str:
        """A short summary, e.g. ``transposed convolution: 3x3 input, 3x3 kernel, stride 2, ...``."""

        def fmt(pair: Pair) -> str:
            return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"

        parts = [f"{self.input_size[0]}x{self.input_size[1]} input",
                 f"{self.kernel_size[0]}x{self.kernel_size[1]} kernel", f"stride {fmt(self.stride)}"]
        if self.pad_begin != (0, 0) or self.pad_end != (0, 0):
            parts.append(f"padding {fmt(self.pad_begin)}" if self.is_symmetric
                         else f"padding {self.padding_sides}")
        if self.output_padding != (0, 0):
            parts.append(f"output_padding {fmt(self.output_padding)}")
        if self.dilation != (1, 1):
            parts.append(f"dilation {fmt(self.dilation)}")
        if not self.is_single:
            parts.append(f"N={self.batch} C_in={self.in_channels} C_out={self.out_channels}")
        if self.groups > 1:
            parts.append(f"groups {self.groups}")
        if not self.bias:
            parts.append("no bias")
        return "transposed convolution: " + ", ".join(parts)
