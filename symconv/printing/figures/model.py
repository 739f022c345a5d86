"""Picture model: a ``ConvSpec`` and a pass -> the grids of that pass, each cell's kind and label, and per frame
the cells one output reads (a frozen ``PassPicture``; no drawing library here).

Every layout is made by applying ``symconv.symbolic.forms`` (``dilate``, ``pad``, ``rot180``, ``correlate``) to
object arrays of the textbook labels and, alongside, to arrays of kind tags: a zero that ``dilate`` inserts is a
dilation zero, one that ``pad`` inserts is padding. The highlighted taps of a frame are the cells whose
position symbols ``forms.correlate`` multiplies by a non-zero entry of the sliding map, so the picture is the
computation itself, by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, get_args

import numpy as np
import sympy as sp

from ...symbolic import forms
from ...symbolic.spec import ConvSpec, Pair, as_pair
from ...symbolic.symbols import GRAD_PREFIX, spec_symbols, to_numpy

__all__ = ["Pass", "PASSES", "Kind", "KINDS", "Grid", "Frame", "PassPicture", "picture", "MAX_SIDE", "LABEL_SIDE"]

Pass = Literal["forward", "grad_weight", "grad_input"]
PASSES: tuple[Pass, ...] = get_args(Pass)
Kind = Literal["data", "padding", "dilation", "cropped"]
KINDS: tuple[Kind, ...] = get_args(Kind)
Cell = tuple[int, int]

MAX_SIDE = 64
"""Largest grid side drawn: beyond it a picture is neither readable nor cheap to derive symbolically."""

LABEL_SIDE = 12
"""Largest grid side whose cells are labelled by every renderer; larger maps are shaded only."""

# Kind tags travel through forms' operations next to the labels; forms fills what it inserts with zero.
_TAG = {kind: sp.Symbol(f"<{kind}>") for kind in KINDS}
_KIND_OF_TAG = {tag: kind for kind, tag in _TAG.items()}


@dataclass(frozen=True)
class Grid:
    """One map of a pass: ``labels[i][j]`` is a LaTeX name (``X_{11}``, ``0``), ``kinds[i][j]`` one of ``KINDS``."""

    title: str
    labels: tuple[tuple[str, ...], ...]
    kinds: tuple[tuple[Kind, ...], ...]

    @property
    def shape(self) -> Pair:
        return (len(self.labels), len(self.labels[0]))

    def cells(self, kind: Kind) -> frozenset[Cell]:
        """The cells of one kind.

        >>> g = Grid("A", (("x", "0"),), (("data", "padding"),))
        >>> sorted(g.cells("padding"))
        [(0, 1)]
        """
        return frozenset((i, j) for i, row in enumerate(self.kinds) for j, k in enumerate(row) if k == kind)


@dataclass(frozen=True)
class Frame:
    """One output position: the result cell it computes, where the sliding map's top-left lies on the static
    map, and the static cells multiplied by a non-zero entry of the sliding map (padding among them)."""

    output: Cell
    offset: Cell
    taps: frozenset[Cell]


@dataclass(frozen=True)
class PassPicture:
    """A pass as a teacher draws it: ``result = Correlation(static, sliding)``, one frame per result entry."""

    spec: ConvSpec
    pass_name: Pass
    equation: str  # LaTeX, also valid matplotlib mathtext
    static: Grid
    sliding: Grid
    result: Grid
    frames: tuple[Frame, ...]
    notes: tuple[str, ...]  # plain sentences: what is cropped, never read, or summed over channels

    def window(self, frame: Frame) -> tuple[Cell, Cell]:
        """The static cells the sliding map covers in ``frame``: (first row, first column), (rows, columns)."""
        return frame.offset, self.sliding.shape


def _fmt(pair: Pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]},{pair[1]}"


def _op(name: str, amount: Pair, operand: str) -> str:
    """``\\mathrm{name}_{amount}(operand)``, or the operand alone when the operation does nothing."""
    trivial = {"pad": (0, 0), "dilate": (1, 1)}[name]
    return operand if amount == trivial else rf"\mathrm{{{name}}}_{{{_fmt(amount)}}}({operand})"


def _tagged(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return labels, np.full(labels.shape, _TAG["data"], dtype=object)


def _through(op: str, fill: Kind, layout: tuple[np.ndarray, np.ndarray], *args: object) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``forms.<op>`` to the labels and the tags alike; what it fills with zero becomes ``fill``."""
    labels, tags = layout
    function = getattr(forms, op)
    new_tags = function(tags, *args)
    new_tags = np.where(new_tags == 0, _TAG[fill], new_tags)
    return function(labels, *args), new_tags


def _grid(title: str, layout: tuple[np.ndarray, np.ndarray], zero: str = "0") -> Grid:
    labels, tags = layout
    return Grid(
        title,
        tuple(tuple(zero if v == 0 else str(v) for v in row) for row in labels),
        tuple(tuple(_KIND_OF_TAG[t] for t in row) for row in tags),
    )


def _frames(static: np.ndarray, sliding: np.ndarray, stride: Pair, outputs: list[Cell]) -> tuple[Frame, ...]:
    """Per output cell, the static cells ``forms.correlate`` multiplies by a non-zero sliding entry."""
    where = {sp.Symbol(f"cell_{i}_{j}"): (i, j) for i, j in np.ndindex(static.shape)}
    positions = np.empty(static.shape, dtype=object)
    for symbol, cell in where.items():
        positions[cell] = symbol
    # Only which cells appear matters: the sliding entries become 1 where non-zero, so products stay plain.
    ones = np.where(sliding == 0, forms.ZERO, sp.S.One)
    sums = forms.correlate(positions, ones, stride)
    return tuple(
        Frame(out, (out[0] * stride[0], out[1] * stride[1]), frozenset(where[s] for s in sp.sympify(sums[out]).free_symbols))
        for out in outputs
    )


def _renamed(rename: Callable[[str], str], array: np.ndarray) -> np.ndarray:
    """An object array of symbols named ``rename(name)`` of each entry's name."""
    out = np.empty(array.shape, dtype=object)
    for cell in np.ndindex(array.shape):
        out[cell] = sp.Symbol(rename(str(array[cell])))
    return out


def _frac(name: str) -> str:
    return rf"\frac{{\partial E}}{{\partial {name}}}"


def _channel_note(spec: ConvSpec, pass_name: Pass) -> tuple[str, ...]:
    if spec.is_single:
        return ()
    summed = {"forward": ("input channels", spec.in_channels), "grad_weight": ("images", spec.batch),
              "grad_input": ("filters", spec.out_channels)}[pass_name]
    return (f"Shown: image 1, input channel 1, filter 1; the layer sums this picture over the {summed[1]} "
            f"{summed[0]} (N={spec.batch}, C={spec.in_channels}, K={spec.out_channels}).",)


def picture(spec: ConvSpec, pass_name: str, index_base: int = 1) -> PassPicture:
    """A ``ConvSpec`` and a pass name -> its ``PassPicture``.

    >>> p = picture(ConvSpec((3, 3), (2, 2)), "forward")
    >>> p.static.labels[0], p.result.labels[1][1], len(p.frames), sorted(p.frames[3].taps)
    (('X_{11}', 'X_{12}', 'X_{13}'), 'O_{22}', 4, [(1, 1), (1, 2), (2, 1), (2, 2)])
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__}")
    if pass_name not in PASSES:
        raise ValueError(f"pass must be one of {', '.join(PASSES)}; got {pass_name!r}")
    # Every pass draws a map at least as large as the input and as the dilated kernel: refuse before a single
    # symbol is made (a 10**9 input would otherwise build for ever); stride and padding are bounded by these.
    if max(spec.input_size + spec.effective_kernel) > MAX_SIDE:
        raise ValueError(f"spec has a {spec.input_size[0]}x{spec.input_size[1]} input and a "
                         f"{spec.effective_kernel[0]}x{spec.effective_kernel[1]} dilated kernel; figures draw maps up "
                         f"to {MAX_SIDE}x{MAX_SIDE}")
    # ConvSpec stores pairs; as_pair says so to the type checker.
    strides, dilations = (as_pair(name, getattr(spec, name)) for name in ("stride", "dilation"))
    paddings, pad_after = spec.pad_begin, spec.pad_end
    single = ConvSpec(spec.input_size, spec.kernel_size, spec.stride, spec.padding_sides, spec.dilation,
                      flip=spec.flip, bias=spec.bias)
    symbols = {name: to_numpy(array)[0, 0] for name, array in spec_symbols(single, index_base).items() if name != "bias"}
    grad_names = _renamed(lambda name: name.replace(GRAD_PREFIX, ""), symbols["grad_output"])
    (eh, ew), (ah, aw) = spec.effective_kernel, spec.leftover
    kernel_title = _op("dilate", dilations, "F")
    kernel_title = rf"\mathrm{{rot180}}({kernel_title})" if spec.flip else kernel_title
    x_title = (_op("pad", paddings, "X") if spec.is_symmetric else
               rf"\mathrm{{pad}}_{{({paddings[0]},{paddings[1]}),({pad_after[0]},{pad_after[1]})}}(X)")
    padded_x = _through("pad", "padding", _tagged(symbols["input"]), paddings, pad_after)
    kernel = _through("dilate", "dilation", _tagged(symbols["weight"]), dilations)
    if spec.flip:
        kernel = _through("rot180", "data", kernel)
    notes = list(_channel_note(spec, pass_name))
    if pass_name == "forward":
        static, sliding, stride = padded_x, kernel, strides
        result = _tagged(_renamed(lambda name: name, grad_names))
        titles = (x_title, kernel_title, "O")
        equation = rf"O = \mathrm{{Correlation}}_{{s={_fmt(strides)}}}({x_title}, {kernel_title})"
        if (ah, aw) != (0, 0):
            notes.append(f"Leftover a = ({ah}, {aw}): the last {ah} row(s) and {aw} column(s) of the padded "
                         "input are never read.")
        outputs = [cell for cell in np.ndindex(spec.output_size)]
    elif pass_name == "grad_weight":
        g = _through("dilate", "dilation", _tagged(_renamed(_frac, grad_names)), strides)
        static, sliding, stride = padded_x, g, (1, 1)
        # The correlation is k_eff + a wide: the filter's taps sit every d entries of its first k_eff (rotated
        # back for true convolution, as forms.grad_weight takes them); the rest is discarded.
        filt = _through("dilate", "dilation", _tagged(_renamed(_frac, symbols["weight"])), dilations)
        if spec.flip:
            filt = _through("rot180", "data", filt)
        result = _through("pad", "cropped", filt, (0, 0), spec.leftover)
        grad_title = _op("dilate", strides, r"\partial E/\partial O")
        titles = (x_title, grad_title, r"\partial E/\partial F")
        inner = rf"\mathrm{{Correlation}}({x_title}, {grad_title})"
        inner = inner if (ah, aw) == (0, 0) else rf"\mathrm{{crop}}_{{{eh}\times{ew}}}({inner})"
        inner = rf"\mathrm{{rot180}}({inner})" if spec.flip else inner
        inner = rf"\mathrm{{subsample}}_{{{_fmt(dilations)}}}({inner})" if dilations != (1, 1) else inner
        equation = rf"\frac{{\partial E}}{{\partial F}} = {inner}"
        if (ah, aw) != (0, 0):
            notes.append(f"Leftover a = ({ah}, {aw}): the correlation is {eh + ah}x{ew + aw}; its last {ah} row(s) "
                         f"and {aw} column(s) are cropped away.")
        if dilations != (1, 1):
            notes.append(f"Dilation {_fmt(dilations)}: only every d-th entry is a filter tap; the others "
                         "are the gradients of the filter's dilation zeros, discarded.")
        outputs = sorted(_grid("", result).cells("data"))
    else:
        (bh, ah_), (bw, aw_) = spec.full_padding  # k_eff-1-p_begin before, k_eff-1-p_end+a after
        before, after = (bh, bw), (ah_, aw_)
        g = _through("dilate", "dilation", _tagged(_renamed(_frac, grad_names)), strides)
        static = _through("pad", "padding", g, before, after)
        sliding = _through("rot180", "data", kernel)
        stride = (1, 1)
        result = _tagged(_renamed(_frac, symbols["input"]))
        dilated_g = _op("dilate", strides, r"\partial E/\partial O")
        g_title = (rf"\mathrm{{pad}}_{{({before[0]},{before[1]}),({after[0]},{after[1]})}}"
                   rf"({dilated_g})")
        rot_title = rf"\mathrm{{rot180}}({kernel_title})"
        titles = (g_title, rot_title, r"\partial E/\partial X")
        equation = rf"\frac{{\partial E}}{{\partial X}} = \mathrm{{Correlation}}({g_title}, {rot_title})"
        if min(before + after) < 0:
            notes.append("Negative padding: the dilated gradient is cropped before the correlation.")
        outputs = [cell for cell in np.ndindex(spec.input_size)]
    if max(static[0].shape + result[0].shape) > MAX_SIDE:
        raise ValueError(f"spec gives a {static[0].shape[0]}x{static[0].shape[1]} map; figures draw maps up to "
                         f"{MAX_SIDE}x{MAX_SIDE}")
    return PassPicture(
        spec=spec,
        pass_name=pass_name,
        equation=equation,
        static=_grid(titles[0], static),
        sliding=_grid(titles[1], sliding),
        result=_grid(titles[2], result, zero=""),  # a discarded gradient entry is not zero: left blank
        frames=_frames(static[0], sliding[0], stride, outputs),
        notes=tuple(notes),
    )
