"""Depthwise convolution: a depthwise ``ConvSpec`` (groups = in_channels) -> the ``DepthwiseGeometry`` its
memory-bound kernels (``templates/depthwise_common.c.j2``) are written from.

A depthwise layer does R S multiply-adds per output entry where a dense one does C R S: it reads and writes
about as many bytes as it computes flops, so the dense kernels' register tiles over output channels have
nothing to tile. Its kernels instead take one image channel at a time (OpenMP over images x channels, so each
thread streams whole planes through its caches) and vectorise along the image rows: a vector of consecutive
output columns, through tap (r, s), reads a vector of consecutive input columns. Strided columns are made
consecutive by splitting each input plane once into ``stride_w`` column phases (phase q holds the columns q,
q + stride_w, ...); output column ow, through tap s, then reads column ow + offset of phase q, with
s dw - pw = offset * stride_w + q. The input gradient uses the same split the other way round: dx columns of
phase q receive dy only through the taps s with (q + pw - s dw) divisible by the stride.

Taps on padding are never computed (no zero-padded copy): the interior columns, which every tap reaches, run
as vectors; the few border columns run one at a time and skip the taps that fall on padding, so a non-finite
weight never meets a padding zero (the definition sums over the taps inside the image only).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..symbolic.spec import ConvSpec

__all__ = ["ColumnTap", "PhaseTaps", "DepthwiseGeometry", "depthwise_geometry", "is_depthwise"]


def is_depthwise(spec: ConvSpec) -> bool:
    """Whether the ``depthwise`` strategy computes ``spec``: one group per input channel, more than one channel
    (a single-channel layer is dense, and the dense strategies tile its output channels).

    >>> is_depthwise(ConvSpec((8, 8), (3, 3), in_channels=4, out_channels=8, groups=4)), is_depthwise(ConvSpec((3, 3), (2, 2)))
    (True, False)
    """
    return spec.groups == spec.in_channels and spec.groups > 1


@dataclass(frozen=True)
class ColumnTap:
    """Kernel column ``s`` read through column phase ``phase`` at offset ``offset`` from the output column."""

    s: int
    phase: int
    offset: int


@dataclass(frozen=True)
class PhaseTaps:
    """One column phase of the input gradient: dx columns phase, phase + stride_w, ... (``columns`` of them),
    the kernel columns that reach them with their dy column offsets, and the ``interior`` [begin, end) of
    phase columns that every one of those taps reaches."""

    phase: int
    columns: int
    taps: tuple[ColumnTap, ...]
    interior: tuple[int, int]


@dataclass(frozen=True)
class DepthwiseGeometry:
    """What the depthwise templates need beyond the layer's constants.

    ``multiplier`` = K / C output channels per input channel (channel k reads input channel k // multiplier).
    ``phase_w``: columns of one column phase of an input plane (the row pitch of the split plane).
    ``forward_taps``: per kernel column s, where output column ow reads (for the forward pass and the weight
    gradient); ``forward_interior``: the output columns [begin, end) that every tap reaches.
    ``grad_input_phases``: per dx column phase, the taps that reach it.

    >>> g = depthwise_geometry(ConvSpec((56, 56), (3, 3), stride=2, padding=1, in_channels=96, out_channels=96, groups=96))
    >>> g.phase_w, [(t.phase, t.offset) for t in g.forward_taps], g.forward_interior
    (28, [(1, -1), (0, 0), (1, 0)], (1, 28))
    >>> [(p.phase, [(t.s, t.offset) for t in p.taps]) for p in g.grad_input_phases]
    [(0, [(1, 0)]), (1, [(0, 1), (2, 0)])]
    """

    multiplier: int
    phase_w: int
    split_columns: bool
    forward_taps: tuple[ColumnTap, ...]
    forward_interior: tuple[int, int]
    grad_input_phases: tuple[PhaseTaps, ...]


def _phase_columns(width: int, stride: int, phase: int) -> int:
    """Columns phase, phase + stride, ... below ``width``."""
    return max(0, (width - phase + stride - 1) // stride)


def _interior(count: int, taps: tuple[ColumnTap, ...], source: dict[int, int]) -> tuple[int, int]:
    """Columns t in [0, count) with 0 <= t + offset < source[phase] for every tap (begin >= end: none)."""
    begin = min(count, max([0, *(-t.offset for t in taps)]))
    end = min([count, *(source[t.phase] - t.offset for t in taps)])
    return begin, max(begin, end)


def depthwise_geometry(spec: ConvSpec) -> DepthwiseGeometry:
    """The geometry of a depthwise layer; ValueError if ``spec`` is not depthwise (``is_depthwise``)."""
    if not is_depthwise(spec):
        raise ValueError(f"the depthwise strategy needs groups == in_channels > 1, got groups {spec.groups} and "
                         f"in_channels {spec.in_channels}")
    width, out_w = spec.input_size[1], spec.output_size[1]
    stride, pad, dil = spec.stride[1], spec.pad_begin[1], spec.dilation[1]
    phases = {q: _phase_columns(width, stride, q) for q in range(stride)}
    forward = tuple(ColumnTap(s, (s * dil - pad) % stride, (s * dil - pad) // stride)
                    for s in range(spec.kernel_size[1]))
    backward = []
    for q in range(stride):
        taps = tuple(ColumnTap(s, q, (q + pad - s * dil) // stride) for s in range(spec.kernel_size[1])
                     if (q + pad - s * dil) % stride == 0)
        columns = phases[q]
        backward.append(PhaseTaps(q, columns, taps, _interior(columns, taps, {q: out_w})))
    return DepthwiseGeometry(spec.out_channels // spec.in_channels, phases[0], stride > 1, forward,
                             _interior(out_w, forward, phases), tuple(backward))
