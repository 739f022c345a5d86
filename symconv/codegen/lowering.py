"""Lowering: a ``ConvSpec``, a dtype and a strategy -> a ``KernelPlan`` describing the four C kernels.

Four strategies. ``unrolled``: the derived equations themselves, one assignment per output entry after
``sympy.cse``, for small layers. ``loops``: a fixed loop nest per kernel family (it lives in the family's
template), driven by the layer's constants and by the tap ranges computed here. ``gemm``: each pass as a
matrix product on packed blocks (im2col a panel at a time) with a register-blocked vector micro-kernel and
OpenMP threads; it uses the same constants and tap ranges as ``loops``. ``direct``: the forward pass, the
weight gradient and (at stride 1) the input gradient as direct convolutions on a zero-padded, stride-split copy
of each image (``symconv.codegen.direct``), with the same vectors, register tiles and threads as ``gemm`` but no im2col
panels; a strided input gradient splits into one stride-1 convolution per stride phase. ``direct`` is the default for everything not small.
``depthwise``: depthwise layers (groups = in_channels > 1), memory-bound, one channel plane at a time with
vectors along the image rows (``symconv.codegen.depthwise``); the default for them. ``gemm`` and ``direct``
compute dense layers (groups 1) only, with any padding, with or without a bias (ValueError otherwise);
``loops`` and ``unrolled`` take any.
``pointwise``: dense 1x1 layers of stride 1 without padding, each pass a matrix product on the images as they
lie in memory (``templates/pointwise_common.c.j2``); the default for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, Mapping, Optional

import sympy as sp

from ..symbolic.derive import Derivation, derive
from ..symbolic.spec import ConvSpec
from ..symbolic.symbols import GRAD_PREFIX, entries, grad_symbol_name, positions
from .depthwise import DepthwiseGeometry, depthwise_geometry, is_depthwise
from .direct import DirectGeometry, direct_passes, grad_input_nhwc, grad_weight_nhwc, live_outputs
from .plan import CTYPES, Arg, ArrayEntry, Assignment, Kernel, StraightLine, check_dtype

__all__ = [
    "Strategy", "STRATEGIES", "VECTOR_STRATEGIES", "FAMILIES", "UNROLL_LIMIT", "UNROLL_MAX", "TapRanges", "KernelPlan",
    "multiply_adds", "is_pointwise", "refusal", "choose_strategy", "kernel_prefix", "signatures", "kernels_of",
    "tap_ranges", "lower",
]

Strategy = Literal["unrolled", "loops", "gemm", "direct", "depthwise", "pointwise"]
STRATEGIES: Final = ("unrolled", "loops", "gemm", "direct", "depthwise", "pointwise")
VECTOR_STRATEGIES: Final = ("gemm", "direct", "depthwise", "pointwise")
"""The strategies whose kernels take a thread count first and return a status (scratch memory can run out)."""

FAMILIES: Final = ("forward", "grad_input", "grad_weight", "grad_bias")

UNROLL_LIMIT: Final = 1024
"""Largest number of multiply-adds per pass that ``unrolled`` takes by default: there derive + cse + gcc
stay under about a second, and straight-line code beats loops whose trip counts are tiny."""

UNROLL_MAX: Final = 16_384
"""Most multiply-adds per pass that ``strategy="unrolled"`` accepts even when asked for: straight-line code
grows with them and gcc's time faster (on the 2-core development machine, loaded: 900 took 12 s to derive,
render and compile, 4,356 took 90 s), so past this a build would take many minutes and GBs."""

_INT_MAX: Final = 2**31 - 1  # the generated loops index with C int


@dataclass(frozen=True)
class TapRanges:
    """For each kernel tap along one axis, the outputs [begin, end) whose input index falls inside the image."""

    begin: tuple[int, ...]
    end: tuple[int, ...]


@dataclass(frozen=True)
class KernelPlan:
    """Everything the printer and the templates need for one layer, dtype and strategy."""

    spec: ConvSpec
    dtype: str
    strategy: Strategy
    prefix: str
    kernels: tuple[Kernel, ...]
    rows: TapRanges
    cols: TapRanges
    # the passes computed as direct convolutions (``direct`` strategy), by name: "forward", then "grad_input"
    # (stride 1) or one "grad_input_<ph>_<pw>" per stride phase
    direct: tuple[DirectGeometry, ...] = ()
    # an extra kernel ``forward_relu``: max(forward, 0) in one call (``direct``: the ReLU on the accumulators)
    fuse_relu: bool = False
    # ``direct``: the weight gradient on channels-last images (``direct.grad_weight_nhwc``), else along wide pixels
    grad_weight_nhwc: bool = False
    # ``direct`` at stride 1: the input gradient's geometry when it runs on channels-last dy
    # (``direct.grad_input_nhwc``; ``direct`` then leaves it out), else None: along wide pixels
    grad_input_nhwc: Optional[DirectGeometry] = None
    # ``depthwise``: where each tap reads along the rows (``depthwise.depthwise_geometry``)
    depthwise: Optional[DepthwiseGeometry] = None
    # symbol -> array entry, for the printer; empty for loops. Not compared: the kernels already are.
    arrays: Mapping[sp.Symbol, ArrayEntry] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ctype(self) -> str:
        return CTYPES[self.dtype]

    @property
    def gemm_passes(self) -> tuple[str, ...]:
        """The passes computed as packed matrix products."""
        if self.strategy == "gemm":
            return ("forward", "grad_input", "grad_weight")
        return ()  # ``direct``: every pass direct (a strided input gradient with no phase is 0)


def multiply_adds(spec: ConvSpec) -> int:
    """Multiply-adds of one pass if no tap fell on padding: N K (C / groups) Ho Wo R S.

    >>> multiply_adds(ConvSpec((3, 3), (2, 2)))
    16
    """
    n, k, oh, ow = spec.output_shape
    return n * k * oh * ow * spec.group_in_channels * spec.kernel_size[0] * spec.kernel_size[1]


def is_pointwise(spec: ConvSpec) -> bool:
    """Whether ``spec`` is a dense 1x1 layer of stride 1 without padding (a matrix product per image).

    >>> is_pointwise(ConvSpec((56, 56), (1, 1), in_channels=96, out_channels=24)), is_pointwise(ConvSpec((8, 8), (1, 1), 2))
    (True, False)
    """
    return (spec.kernel_size == (1, 1) and spec.stride == (1, 1) and spec.groups == 1
            and spec.pad_begin == (0, 0) and spec.pad_end == (0, 0))


def refusal(spec: ConvSpec, strategy: str) -> Optional[str]:
    """Why ``strategy`` cannot compute ``spec``, or None if it can: ``gemm`` and ``direct`` tile dense layers
    (any padding, with or without a bias); ``depthwise`` needs groups == in_channels > 1; ``pointwise`` a dense
    1x1 layer of stride 1 without padding.

    >>> refusal(ConvSpec((8, 8), (3, 3), in_channels=2, out_channels=2, groups=2), "gemm")
    'the gemm strategy computes dense layers (groups 1) only, got groups 2'
    >>> refusal(ConvSpec((8, 8), (2, 2), padding="same", bias=False), "direct") is None
    True
    """
    if strategy in ("gemm", "direct") and spec.groups != 1:
        return f"the {strategy} strategy computes dense layers (groups 1) only, got groups {spec.groups}"
    if strategy == "pointwise" and not is_pointwise(spec):
        return (f"the pointwise strategy needs a dense 1x1 kernel, stride 1 and no padding, got "
                f"{spec.describe()}")
    if strategy == "depthwise" and not is_depthwise(spec):
        return (f"the depthwise strategy needs groups == in_channels > 1, got groups {spec.groups} and "
                f"in_channels {spec.in_channels}")
    return None


def choose_strategy(spec: ConvSpec, strategy: Optional[str] = None) -> Strategy:
    """The strategy asked for (ValueError if it cannot compute ``spec``: ``refusal``), or by the layer:
    ``depthwise`` for depthwise layers, else ``unrolled`` up to ``UNROLL_LIMIT`` multiply-adds, else
    ``direct`` (``loops`` for grouped layers that are not depthwise, which ``direct`` refuses).

    >>> choose_strategy(ConvSpec((3, 3), (2, 2))), choose_strategy(ConvSpec((64, 64), (3, 3)))
    ('unrolled', 'direct')
    >>> choose_strategy(ConvSpec((56, 56), (3, 3), padding=1, in_channels=96, out_channels=96, groups=96))
    'depthwise'
    """
    if strategy is None:
        if is_depthwise(spec):
            return "depthwise"
        if refusal(spec, "direct"):
            return "loops"
        if multiply_adds(spec) <= UNROLL_LIMIT:
            return "unrolled"
        return "pointwise" if is_pointwise(spec) else "direct"
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be {', '.join(map(repr, STRATEGIES))} or None, got {strategy!r}")
    if strategy == "unrolled" and multiply_adds(spec) > UNROLL_MAX:
        raise ValueError(f"strategy 'unrolled' is refused for {spec.describe()}: {multiply_adds(spec):,} "
                         f"multiply-adds per pass, over UNROLL_MAX = {UNROLL_MAX:,} (straight-line code that large "
                         f"takes many minutes and GBs to compile); use 'direct', 'gemm' or 'loops'")
    reason = refusal(spec, strategy)
    if reason:
        raise ValueError(reason)
    return strategy  # type: ignore[return-value]


def _pair_text(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def kernel_prefix(spec: ConvSpec, dtype: str) -> str:
    """A C identifier naming the layer and dtype; file and function names start with it.

    >>> kernel_prefix(ConvSpec((7, 7), (3, 3), padding=2, dilation=2, in_channels=3), "float32")
    'conv_7x7_k3x3_p2_d2_n1c3k1_f32'
    """
    dtype = check_dtype(dtype)
    parts = [f"conv_{spec.input_size[0]}x{spec.input_size[1]}", f"k{spec.kernel_size[0]}x{spec.kernel_size[1]}"]
    if spec.stride != (1, 1):
        parts.append("s" + _pair_text(spec.stride))
    if not spec.is_symmetric:
        parts.append("p" + "_".join(str(p) for side in spec.padding_sides for p in side))
    elif spec.padding != (0, 0):
        parts.append("p" + _pair_text(spec.padding))
    if spec.dilation != (1, 1):
        parts.append("d" + _pair_text(spec.dilation))
    if not spec.is_single:
        parts.append(f"n{spec.batch}c{spec.in_channels}k{spec.out_channels}")
    if spec.groups > 1:
        parts.append(f"g{spec.groups}")
    if not spec.bias:
        parts.append("nobias")
    if spec.flip:
        parts.append("flip")
    parts.append("f" + dtype.removeprefix("float"))
    return "_".join(parts)


def signatures(spec: ConvSpec, dtype: str) -> dict[str, tuple[Arg, ...]]:
    """The arguments of each kernel family, in C order (outputs last); the runtime checks against these.

    A layer without bias has a forward pass without ``b`` and no ``grad_bias`` kernel.

    >>> [(a.name, a.shape) for a in signatures(ConvSpec((3, 3), (2, 2)), "float32")["grad_input"]]
    [('dy', (1, 1, 2, 2)), ('w', (1, 1, 2, 2)), ('dx', (1, 1, 3, 3))]
    """
    image, output, bias = "N, C, H, W", "N, K, Ho, Wo", "K"
    weight = "K, C, R, S" if spec.groups == 1 else "K, C/groups, R, S"
    x = Arg("x", spec.input_shape, dtype, image)
    w = Arg("w", spec.weight_shape, dtype, weight)
    dy = Arg("dy", spec.output_shape, dtype, output)
    b = (Arg("b", (spec.out_channels,), dtype, bias),) if spec.bias else ()
    families = {
        "forward": (x, w, *b, Arg("y", spec.output_shape, dtype, output, True)),
        "grad_input": (dy, w, Arg("dx", spec.input_shape, dtype, image, True)),
        "grad_weight": (x, dy, Arg("dw", spec.weight_shape, dtype, weight, True)),
    }
    if spec.bias:
        families["grad_bias"] = (dy, Arg("db", (spec.out_channels,), dtype, bias, True))
    return families


def kernels_of(spec: ConvSpec, dtype: str, fuse_relu: bool = False,
               bodies: Optional[Mapping[str, StraightLine]] = None) -> tuple[Kernel, ...]:
    """A layer's kernels with their C names and arguments; ``bodies``, of unrolled kernels, come from ``lower``.

    >>> [k.name for k in kernels_of(ConvSpec((3, 3), (2, 2)), "float32", fuse_relu=True)][-1]
    'conv_3x3_k2x2_f32_forward_relu'
    """
    prefix, sig, bodies = kernel_prefix(spec, dtype), signatures(spec, dtype), bodies or {}
    kernels = tuple(Kernel(family, f"{prefix}_{family}", args, bodies.get(family)) for family, args in sig.items())
    if fuse_relu:
        kernels += (Kernel("forward_relu", f"{prefix}_forward_relu", sig["forward"]),)
    return kernels


def tap_ranges(spec: ConvSpec) -> tuple[TapRanges, TapRanges]:
    """Valid output rows and columns per kernel row and column (the loop bounds that skip padding).

    >>> tap_ranges(ConvSpec((3, 3), (3, 3), padding=1))[0]
    TapRanges(begin=(1, 0, 0), end=(3, 3, 2))
    """
    return tuple(  # type: ignore[return-value]
        TapRanges(*live_outputs(spec.input_size[a], spec.output_size[a], spec.kernel_size[a], spec.stride[a],
                                spec.pad_begin[a], spec.dilation[a]))
        for a in (0, 1)
    )


def _array_entries(derivation: Derivation, names: Mapping[str, str]) -> dict[sp.Symbol, ArrayEntry]:
    table = {}
    for symbol, (tensor, index) in derivation.symbols.items():
        table[symbol] = ArrayEntry(names[tensor], index, getattr(derivation, tensor).shape)
    return table


def _straight_line(target: Arg, gradient: sp.Array, labels: sp.Array) -> StraightLine:
    values = entries(gradient)
    # cse finds shared products or partial sums across the entries; for plain convolutions it mostly finds
    # none, but it keeps the door open for fused layers and costs little at unrolled sizes.
    temporaries, reduced = sp.cse(values, symbols=sp.numbered_symbols("t"), order="canonical")
    assignments = tuple(
        Assignment(ArrayEntry(target.name, index, target.shape), value, label.name)
        for index, value, label in zip(positions(target.shape), reduced, entries(labels))
    )
    return StraightLine(tuple(temporaries), assignments)


def _unrolled_bodies(spec: ConvSpec, dtype: str) -> tuple[dict[str, StraightLine], dict[sp.Symbol, ArrayEntry]]:
    d = derive(spec)
    sig = signatures(spec, dtype)
    # Labels are the textbook names of the assigned entries: O_{11} for outputs, dE/dX_{11} for gradients.
    gradient_labels = {
        name: getattr(d, name).applyfunc(lambda s: sp.Symbol(grad_symbol_name(s.name)))
        for name in ("input", "weight", "bias")[: 3 if spec.bias else 2]
    }
    out_labels = d.grad_output.applyfunc(lambda g: sp.Symbol(g.name.removeprefix(GRAD_PREFIX)))
    bodies = {
        "forward": _straight_line(sig["forward"][-1], d.output, out_labels),
        "grad_input": _straight_line(sig["grad_input"][-1], d.grad_input, gradient_labels["input"]),
        "grad_weight": _straight_line(sig["grad_weight"][-1], d.grad_weight, gradient_labels["weight"]),
    }
    if spec.bias:
        bodies["grad_bias"] = _straight_line(sig["grad_bias"][-1], d.grad_bias, gradient_labels["bias"])
    names = {"input": "x", "weight": "w", "bias": "b", "grad_output": "dy"}
    return bodies, _array_entries(d, names)


def _check_size(spec: ConvSpec) -> None:
    for name in ("input_size", "kernel_size", "stride", "pad_begin", "pad_end", "dilation"):
        if max(getattr(spec, name)) > _INT_MAX:  # each is a C int constant of the kernels
            raise ValueError(f"{name} {getattr(spec, name)} is beyond the C kernels' int (at most {_INT_MAX:,})")
    for name in ("input_shape", "weight_shape", "output_shape"):
        n = 1
        for extent in getattr(spec, name):
            n *= extent
        if n > _INT_MAX:
            raise ValueError(f"{name} {getattr(spec, name)} has {n} entries; the C kernels index with int")


def lower(spec: ConvSpec, dtype: str = "float32", strategy: Optional[str] = None, *,
          fuse_relu: bool = False) -> KernelPlan:
    """Describe the four kernels of a layer: straight-line assignments or a loop nest; with ``fuse_relu`` a
    fifth, ``forward_relu`` (same arguments as ``forward``), computing max(conv(x, w) + b, 0).

    >>> plan = lower(ConvSpec((3, 3), (2, 2)), "float64")
    >>> plan.strategy, [k.name for k in plan.kernels][:2]
    ('unrolled', ['conv_3x3_k2x2_f64_forward', 'conv_3x3_k2x2_f64_grad_input'])
    >>> plan.kernels[0].body.assignments[0].value
    F_{11}*X_{11} + F_{12}*X_{12} + F_{21}*X_{21} + F_{22}*X_{22} + b
    """
    _check_size(spec)
    chosen = choose_strategy(spec, strategy)  # ValueError if ``strategy`` cannot compute ``spec``
    prefix = kernel_prefix(spec, dtype)
    bodies: dict[str, StraightLine] = {}
    arrays: dict[sp.Symbol, ArrayEntry] = {}
    if chosen == "unrolled":
        bodies, arrays = _unrolled_bodies(spec, dtype)
    kernels = kernels_of(spec, dtype, fuse_relu, bodies)
    rows, cols = tap_ranges(spec)
    direct = direct_passes(spec) if chosen == "direct" else ()
    nhwc = chosen == "direct" and grad_weight_nhwc(spec, dtype)
    nhwc_input = None
    if chosen == "direct" and grad_input_nhwc(spec, dtype):
        nhwc_input, direct = direct[-1], direct[:-1]
    depthwise = depthwise_geometry(spec) if chosen == "depthwise" else None
    return KernelPlan(spec, dtype, chosen, prefix, kernels, rows, cols, direct, fuse_relu, nhwc, nhwc_input,
                      depthwise, arrays)
