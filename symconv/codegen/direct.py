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
k_eff - 1 - pad, with the kernel rotated by 180 degrees and its two channel axes swapped. A strided one splits
into phases: the input rows i = ph, ph + sh, ... (and columns likewise) receive dy only through the taps r with
(ph + pad - r dil) divisible by the stride, dy row (i - ph) / sh + (ph + pad - r dil) / sh. Those taps step by
sh / gcd(sh, dil) and their dy rows by dil / gcd(sh, dil): each phase is a stride-1 convolution of dy with a
rotated sub-kernel, written to the rows and columns of its phase in dx (``grad_input_phases``).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

from ..symbolic.spec import ConvSpec

__all__ = ["DirectGeometry", "bounded_stride", "direct_passes", "forward_geometry", "grad_input_geometry", "grad_input_phases",
           "live_outputs", "nhwc_run", "grad_weight_nhwc", "grad_input_nhwc"]


def live_outputs(size: int, out: int, taps: int, stride: int, pad: int,
                 dilation: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For each tap t along one axis, the outputs [begin, end) whose input o * stride + t * dilation - pad lies
    in [0, size): the others read padding. Returns (begins, ends).

    >>> live_outputs(3, 3, 3, 1, 1, 1)
    ((1, 0, 0), (3, 3, 2))
    """
    begin, end = [], []
    for t in range(taps):
        shift = t * dilation - pad
        first = max(0, -(shift // stride))  # smallest o with o*stride + shift >= 0 (ceil division)
        last = min(out, (size - 1 - shift) // stride + 1)  # floor division, right for negatives too
        begin.append(first)
        end.append(max(first, last))
    return tuple(begin), tuple(end)


@dataclass(frozen=True)
class DirectGeometry:
    """One direct convolution: ``outputs`` channels of ``out_h x out_w`` from ``channels`` of ``src_h x src_w``.

    ``pad_h``/``pad_w`` zero rows/columns lie before the source (fewer than 0: source rows skipped).
    ``transposed``: the weight of output channel o, source channel i and tap (r, s) is w[i][o] at layer tap
    (weight_h0 + (kernel_h - 1 - r) weight_step_h, weight_w0 + (kernel_w - 1 - s) weight_step_w), the rotated
    (sub-)kernel of the input gradient; else w[o][i] at (r, s). Output pixel (oh, ow) is stored at row
    dst_h0 + oh dst_step_h, column dst_w0 + ow dst_step_w of a dst_h x dst_w image (0: out_h x out_w).

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
    weight_h0: int = 0
    weight_w0: int = 0
    weight_step_h: int = 1
    weight_step_w: int = 1
    dst_h0: int = 0
    dst_w0: int = 0
    dst_step_h: int = 1
    dst_step_w: int = 1
    dst_h: int = 0
    dst_w: int = 0

    @property
    def dst_size(self) -> tuple[int, int]:
        """Rows and columns of each destination image (the output unless a phase writes into a larger one)."""
        return (self.dst_h or self.out_h, self.dst_w or self.out_w)

    @property
    def out_pixels(self) -> int:
        return self.out_h * self.out_w

    @property
    def phase(self) -> bool:
        """Whether this is one stride phase of a strided input gradient (``grad_input_phases``)."""
        return self.name.startswith("grad_input_")

    @property
    def strided_store(self) -> bool:
        """Whether the output lands on a sub-grid of the destination (a phase of a strided input gradient)."""
        return self.dst_size != (self.out_h, self.out_w)

    @property
    def plane_h(self) -> int:
        """Rows of a phase plane: the output rows plus the furthest row offset of a tap."""
        return self.out_h + (self.kernel_h - 1) * self.dilation_h // self.stride_h

    @property
    def plane_w(self) -> int:
        """Columns of a phase plane, also the row pitch of the wide output grid."""
        return self.out_w + (self.kernel_w - 1) * self.dilation_w // self.stride_w

    @property
    def live_rows(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """For each kernel row r, the output rows [begin, end) that read a row of the source, not padding."""
        return live_outputs(self.src_h, self.out_h, self.kernel_h, self.stride_h, self.pad_h, self.dilation_h)

    @property
    def wide(self) -> int:
        """Pixels of the wide output grid: out_h rows of plane_w."""
        return self.out_h * self.plane_w


def forward_geometry(spec: ConvSpec) -> DirectGeometry:
    """The forward pass (and the weight gradient, which reads the same planes): x -> y."""
    return DirectGeometry(
        "forward", spec.in_channels, spec.out_channels, *spec.input_size, *spec.output_size, *spec.kernel_size,
        *spec.stride, *spec.dilation, *spec.pad_begin, transposed=False,
    )


def grad_input_geometry(spec: ConvSpec) -> DirectGeometry:
    """The input gradient of a stride-1 layer as a direct convolution: dy -> dx (``ValueError`` otherwise)."""
    if spec.stride != (1, 1):
        raise ValueError(f"the input gradient is a direct convolution for stride 1 only, got {spec.stride}")
    # k_eff - 1 - pad_begin >= 0: ConvSpec keeps each side's padding below the effective kernel size. The end
    # needs no number: the planes end where the last input row's taps do.
    pads = (spec.effective_kernel[0] - 1 - spec.pad_begin[0], spec.effective_kernel[1] - 1 - spec.pad_begin[1])
    return DirectGeometry(
        "grad_input", spec.out_channels, spec.in_channels, *spec.output_size, *spec.input_size,
        *spec.kernel_size, 1, 1, *spec.dilation, *pads, transposed=True,
    )


def _axis_phase(size: int, taps: int, stride: int, pad: int, dilation: int, phase: int) -> tuple[int, ...]:
    # (outputs, sub-kernel taps, dilation, padding, first layer tap, layer tap step) of one phase along one axis
    out = (size - phase + stride - 1) // stride
    hits = [r for r in range(taps) if (phase + pad - r * dilation) % stride == 0]
    if not hits or out <= 0:
        return (max(out, 0), 0, 1, 0, 0, 1)
    g = gcd(stride, dilation)
    last = (phase + pad - hits[-1] * dilation) // stride  # the smallest dy offset: the rotated tap 0
    return (out, len(hits), dilation // g if len(hits) > 1 else 1, -last, hits[0], stride // g)


def grad_input_phases(spec: ConvSpec) -> tuple[DirectGeometry, ...]:
    """The input gradient as one stride-1 direct convolution of dy per stride phase that some tap reaches
    (phases no tap reaches are 0; the kernel zeroes dx first when there are any).

    >>> [(g.name, g.kernel_h, g.kernel_w, g.pad_h) for g in grad_input_phases(ConvSpec((16, 16), (3, 3), 2, 1))]
    [('grad_input_0_0', 1, 1, 0), ('grad_input_0_1', 1, 2, 0), ('grad_input_1_0', 2, 1, 0), ('grad_input_1_1', 2, 2, 0)]
    """
    if spec.stride == (1, 1):
        return (grad_input_geometry(spec),)
    phases = []
    # Phase p holds the input rows p, p + s, ...: one at or past the image's last row holds none, so the loops
    # stop there and a stride far beyond the image (2**100) costs no more than the image itself.
    for ph in range(min(spec.stride[0], spec.input_size[0])):
        rows = _axis_phase(spec.input_size[0], spec.kernel_size[0], spec.stride[0], spec.pad_begin[0],
                           spec.dilation[0], ph)
        for pw in range(min(spec.stride[1], spec.input_size[1])):
            cols = _axis_phase(spec.input_size[1], spec.kernel_size[1], spec.stride[1], spec.pad_begin[1],
                               spec.dilation[1], pw)
            if rows[0] == 0 or rows[1] == 0 or cols[0] == 0 or cols[1] == 0:
                continue
            phases.append(DirectGeometry(
                f"grad_input_{ph}_{pw}", spec.out_channels, spec.in_channels, *spec.output_size, rows[0], cols[0],
                rows[1], cols[1], 1, 1, rows[2], cols[2], rows[3], cols[3], transposed=True,
                weight_h0=rows[4], weight_w0=cols[4], weight_step_h=rows[5], weight_step_w=cols[5],
                dst_h0=ph, dst_w0=pw, dst_step_h=spec.stride[0], dst_step_w=spec.stride[1],
                dst_h=spec.input_size[0], dst_w=spec.input_size[1],
            ))
    return tuple(phases)


def direct_passes(spec: ConvSpec) -> tuple[DirectGeometry, ...]:
    """The geometries the ``direct`` strategy renders: the forward pass always (the weight gradient shares
    it), then the input gradient: one geometry at stride 1, else one per phase (``grad_input_phases``).

    >>> [g.name for g in direct_passes(ConvSpec((8, 8), (3, 3)))], len(direct_passes(ConvSpec((8, 8), (3, 3), 2)))
    (['forward', 'grad_input'], 5)
    """
    spec = bounded_stride(spec)
    return (forward_geometry(spec), *grad_input_phases(spec))


def bounded_stride(spec: ConvSpec) -> ConvSpec:
    """The same layer with each stride at most the span its kernel slides over (padded input - kernel + 1): past
    it an axis has one output, which reads the same taps whatever the stride, so that the phase planes (stride
    x stride per channel) stay as large as the image, not as the stride (2**30 would need 2**60 planes).

    >>> bounded_stride(ConvSpec((6, 6), (3, 3), stride=(2, 2**30))).stride
    (2, 4)
    """
    span = [spec.padded_size[a] - spec.effective_kernel[a] + 1 for a in (0, 1)]
    bounded = (min(spec.stride[0], span[0]), min(spec.stride[1], span[1]))
    return spec if bounded == spec.stride else spec.with_stride(bounded)


def nhwc_run(spec: ConvSpec) -> int:
    """Entries of the channels-last image that one output pixel reads contiguously through a kernel row: the
    whole row of taps (s, c) when the columns are not dilated, else the channels of one tap.

    >>> nhwc_run(ConvSpec((56, 56), (3, 3), padding=1, in_channels=64)), nhwc_run(ConvSpec((9, 9), (3, 3), dilation=2))
    (192, 1)
    """
    return spec.in_channels * (spec.kernel_size[1] if spec.dilation[1] == 1 else 1)


def grad_weight_nhwc(spec: ConvSpec, dtype: str) -> bool:
    """Whether the weight gradient runs on channels-last images (vectors along the taps and channels a pixel
    reads, ``direct_grad_weight_nhwc.c.j2``) rather than along wide pixels: when those runs fill at least 70 %
    of the lanes of the AVX-512 vectors that hold them (narrower vectors mostly waste fewer).

    Measured side by side (32x32, 3x3, N=16, K=32, 1 thread): runs of 12 (75 % of 16 float32 lanes) 10 %
    faster, 15 and 30 (94 %) 13-20 % faster, 24 (75 %) 5 % slower, 18 (56 %) 24 % slower; in float64 runs of 12
    to 36 (75-100 % of 8 lanes) 8-20 % faster; a cifar layer's 9 (56 %) 15 % slower in both.

    >>> resnet = ConvSpec((56, 56), (3, 3), padding=1, in_channels=64)
    >>> grad_weight_nhwc(resnet, "float32"), grad_weight_nhwc(ConvSpec((32, 32), (3, 3), in_channels=3), "float64")
    (True, False)
    """
    lanes = {"float32": 16, "float64": 8}[dtype]
    run = nhwc_run(spec)
    return run >= 0.7 * lanes * -(-run // lanes)


def grad_input_nhwc(spec: ConvSpec, dtype: str) -> bool:
    """Whether the input gradient runs on channels-last dy (vectors along its K channels, the lanes summed per
    pixel, ``direct_grad_input_nhwc.c.j2``) rather than along wide pixels: at stride 1, when K fills at least
    70 % of the AVX-512 lanes and the wide-pixel kernel's tile (C dx channels x pixel vectors) is thin: C = 1
    (in float32 with a kernel at least 5 wide), or in float64 C <= 4, K whole vectors and a kernel >= 5 wide.

    Measured side by side (N=32, 1 thread, new / old): float64 28x28 5x5: C=1 K=8, 16, 6: 0.47, 0.46, 0.67;
    C=2..4 K=8 or 16: 0.75-0.77, K=6: 0.94-1.02. float64 32x32 3x3 padding 1: C=1 K=8, 16, 6: 0.67, 0.82,
    0.93; C=2..4: 0.94-1.39. float32 28x28 5x5: C=1 K=16, 12: 0.57, 0.80; C=2..4: 0.92-1.29; float32 3x3:
    1.21-2.95 (the wide-pixel kernel fills 16 lanes with pixels; this one half-fills them when K=8).

    >>> mnist = ConvSpec((28, 28), (5, 5), in_channels=1, out_channels=8)
    >>> grad_input_nhwc(mnist, "float64"), grad_input_nhwc(mnist, "float32")
    (True, False)
    """
    lanes = {"float32": 16, "float64": 8}[dtype]
    k, c, wide = spec.out_channels, spec.in_channels, spec.kernel_size[1] >= 5
    if spec.stride != (1, 1) or k < 0.7 * lanes * -(-k // lanes):
        return False
    if c == 1:
        return dtype == "float64" or wide
    return dtype == "float64" and k % lanes == 0 and wide and c <= 4
