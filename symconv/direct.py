"""Direct convolution: a ``ConvSpec`` -> the ``DirectGeometry`` of each pass the ``direct`` strategy computes
as a convolution on a zero-padded, stride-split copy of the image (no im2col panels).

The trick that keeps every inner loop a run of contiguous vector loads, whatever the stride and dilation:
the source image is copied once per call and image into *phase planes*. Plane (c, a, b) holds the entries
of rows a, a + stride_h, ... and columns b, b + stride_w, ... of channel c of the zero-padded image, as a
``plane_h x plane_w`` matrix. Output pixel (oh, ow), through tap (r, s), then reads plane
(c, r dh mod sh, s dw mod sw) at row oh + r dh div sh and column ow + s dw div sw: with "wide" pixel
numbers p = oh * plane_w + ow, that is ``tap_base(c, r, s) + p``. A block of consecutive wide pixels is one
vector load per tap, for every stride. The columns ow >= out_w of the wide grid are computed and thrown
away (the waste is (plane_w - out_w) / plane_w: 3 % on a 56-wide ResNet layer).

The input gradient of a stride-1 layer is itself such a convolution: of dy (K channels), zero-padded by
k_eff - 1 - pad, with the kernel rotated by 180 degrees and its two channel axes swapped.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import ConvSpec

__all__ = ["DirectGeometry", "direct_passes", "forward_geometry", "grad_input_geometry"]


@dataclass(frozen=True)
class DirectGeometry:
    """One direct convolution: ``outputs`` channels of ``out_h x out_w`` from ``channels`` of ``src_h x src_w``.

    ``pad_h``/``pad_w`` zero rows/columns lie before the source. ``transposed``: the weight of output channel
    o, source channel i and tap (r, s) is w[i][o] at the rotated tap (the input gradient), else w[o][i] at (r, s).

    >>> g = forward_geometry(ConvSpec((56, 56), (3, 3), padding=1, in_channels=64, out_channels=64))
    >>> g.plane_h, g.plane_w, g.wide
    (58, 58, 3248)
    """

    name: str
    channels: int
    outputs: int
    src_h: int
    src_w: int
    out_h: int
    out_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    pad_h: int
    pad_w: int
    transposed: bool

    @property
    def plane_h(self) -> int:
        """Rows of a phase plane: the output rows plus the furthest row offset of a tap."""
        return self.out_h + (self.kernel_h - 1) * self.dilation_h // self.stride_h

    @property
    def plane_w(self) -> int:
        """Columns of a phase plane, also the row pitch of the wide output grid."""
        return self.out_w + (self.kernel_w - 1) * self.dilation_w // self.stride_w

    @property
    def wide(self) -> int:
        """Pixels of the wide output grid: out_h rows of plane_w."""
        return self.out_h * self.plane_w


def forward_geometry(spec: ConvSpec) -> DirectGeometry:
    """The forward pass (and the weight gradient, which reads the same planes): x -> y."""
    return DirectGeometry(
        "forward", spec.in_channels, spec.out_channels, *spec.input_size, *spec.output_size, *spec.kernel_size,
        *spec.stride, *spec.dilation, *spec.padding, transposed=False,
    )


def grad_input_geometry(spec: ConvSpec) -> DirectGeometry:
    """The input gradient of a stride-1 layer as a direct convolution: dy -> dx (``ValueError`` otherwise)."""
    if spec.stride != (1, 1):
        raise ValueError(f"the input gradient is a direct convolution for stride 1 only, got {spec.stride}")
    # k_eff - 1 - pad >= 0: ConvSpec keeps the padding below the effective kernel size.
    pads = [spec.effective_kernel[a] - 1 - spec.padding[a] for a in (0, 1)]
    return DirectGeometry(
        "grad_input", spec.out_channels, spec.in_channels, *spec.output_size, *spec.input_size,
        *spec.kernel_size, 1, 1, *spec.dilation, *pads, transposed=True,
    )


def direct_passes(spec: ConvSpec) -> tuple[DirectGeometry, ...]:
    """The geometries the ``direct`` strategy renders: the forward pass always (the weight gradient shares
    it), the input gradient at stride 1 (a strided one stays a packed GEMM: its adjoint scatters).

    >>> [g.name for g in direct_passes(ConvSpec((8, 8), (3, 3)))], len(direct_passes(ConvSpec((8, 8), (3, 3), 2)))
    (['forward', 'grad_input'], 1)
    """
    if spec.stride == (1, 1):
        return forward_geometry(spec), grad_input_geometry(spec)
    return (forward_geometry(spec),)
