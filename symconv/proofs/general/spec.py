"""General specs: which of n, k, s, p, d (per axis) and the channel counts are fixed -> symbols and assumptions.

A ``GeneralSpec`` is a ``ConvSpec`` with some sizes left symbolic. Its assumptions are exactly the rules
``ConvSpec`` enforces: n, k, s, d >= 1, 0 <= p < k_eff, k_eff <= n + 2p (k_eff = d(k-1)+1), plus the output size
as integer arithmetic: n + 2p - k_eff = s·q + a with 0 <= a < s, so the output has q + 1 entries and a is the
leftover. With ``per_side`` the padding after the input (bottom, right) is a size of its own, p' (PyTorch's
"same" and ONNX's SAME_UPPER give p' = p + 1 for even kernels): then 0 <= p, p' < k_eff and n + p + p' - k_eff
= s·q + a. A grouped layer (``groups``) has G groups of C input channels and K filters each, its tensors
indexed by group as PyTorch's grouped kernels view them, X[b, g, c, x], F[g, f, c, m], dE/dO[b, g, f, o] and
B[g, f]: channel g·C + c of the layer is channel c of group g. A model of these (a value for every symbol) is a
``ConvSpec``: ``to_conv_spec``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Union

import sympy as sp

from ...symbolic.spec import ConvSpec
from .notation import Grid, Vec, tensor
from .obligation import Constraint

__all__ = ["Axis", "GeneralSpec", "AXIS_NAMES"]

AXIS_NAMES = {1: ("",), 2: ("h", "w")}
Fixed = Union[None, int, tuple[int, ...]]


def _name(letter: str, axis: str) -> str:
    return f"{letter}_{axis}" if axis else letter


@dataclass(frozen=True)
class Axis:
    """The sizes of one spatial axis: symbols, or integers where fixed; q + 1 outputs and leftover a."""

    name: str
    n: sp.Expr
    k: sp.Expr
    s: sp.Expr
    p: sp.Expr
    d: sp.Expr
    q: sp.Symbol
    a: sp.Symbol
    pe: Optional[sp.Expr] = None
    """The padding after the input, where it is not ``p`` (``per_side``)."""

    @property
    def p_end(self) -> sp.Expr:
        return self.p if self.pe is None else self.pe

    @property
    def k_eff(self) -> sp.Expr:
        return sp.expand(self.d * (self.k - 1) + 1)

    @property
    def outputs(self) -> sp.Expr:
        return self.q + 1

    def assumptions(self) -> tuple[Constraint, ...]:
        n, k, s, p, d, q, a, e, pe = self.n, self.k, self.s, self.p, self.d, self.q, self.a, self.k_eff, self.p_end
        end = (Constraint(">=", pe), Constraint(">=", e - 1 - pe)) if self.pe is not None else ()
        return (
            Constraint(">=", n - 1), Constraint(">=", k - 1), Constraint(">=", s - 1), Constraint(">=", d - 1),
            Constraint(">=", p), Constraint(">=", e - 1 - p), *end, Constraint(">=", n + p + pe - e),
            Constraint("==", n + p + pe - e - s * q - a), Constraint(">=", a), Constraint(">=", s - 1 - a),
        )

    def parameters(self) -> tuple[sp.Symbol, ...]:
        return tuple(v for v in (self.n, self.k, self.s, self.p, self.pe, self.d, self.q, self.a)
                     if isinstance(v, sp.Symbol))


def _fixed(field: str, value: Fixed, axes: int) -> tuple[Optional[int], ...]:
    if value is None:
        return (None,) * axes
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * axes
    if len(items) != axes or any(v is not None and (isinstance(v, bool) or not isinstance(v, int)) for v in items):
        raise ValueError(f"{field} must be None, an int or {axes} ints, got {value!r}")
    return items


@dataclass(frozen=True)
class GeneralSpec:
    """A convolution layer with symbolic sizes; ``counts`` (N, C, K) is None for the one-channel textbook case;
    ``groups`` (G) is None for a dense layer, else C and K are each group's."""

    axes: tuple[Axis, ...]
    counts: Optional[tuple[sp.Expr, sp.Expr, sp.Expr]]
    flip: bool = False
    groups: Optional[sp.Expr] = None

    @classmethod
    def of(cls, axes: int = 2, *, input_size: Fixed = None, kernel_size: Fixed = None, stride: Fixed = None,
           padding: Fixed = None, dilation: Fixed = None, channels: bool = False, batch: Optional[int] = None,
           in_channels: Optional[int] = None, out_channels: Optional[int] = None, flip: bool = False,
           per_side: bool = False, pad_end: Fixed = None, grouped: bool = False,
           groups: Optional[int] = None) -> "GeneralSpec":
        """Every size symbolic except those given (an int, or one per axis). ``per_side``: the padding after the
        input is a size of its own (``pad_end`` fixes it; ``padding`` is then the padding before). ``grouped``:
        G groups (``groups`` fixes G), ``in_channels`` and ``out_channels`` then per group.

        >>> GeneralSpec.of(axes=1, stride=2).axes[0].s
        2
        >>> GeneralSpec.of(axes=1, per_side=True, padding=0).axes[0].p_end
        pe
        """
        if axes not in AXIS_NAMES:
            raise ValueError(f"axes must be 1 or 2, got {axes!r}")
        fixed = {f: _fixed(f, v, axes) for f, v in
                 (("input_size", input_size), ("kernel_size", kernel_size), ("stride", stride), ("padding", padding),
                  ("dilation", dilation), ("pad_end", pad_end))}
        if pad_end is not None and not per_side:
            raise ValueError("pad_end needs per_side=True (without it the padding after the input is padding)")
        built = []
        for i, name in enumerate(AXIS_NAMES[axes]):
            def value(field: str, letter: str, i: int = i, name: str = name) -> sp.Expr:
                v = fixed[field][i]
                return sp.Symbol(_name(letter, name), integer=True) if v is None else sp.Integer(v)
            built.append(Axis(name, value("input_size", "n"), value("kernel_size", "k"), value("stride", "s"),
                              value("padding", "p"), value("dilation", "d"), sp.Symbol(_name("q", name), integer=True),
                              sp.Symbol(_name("a", name), integer=True),
                              value("pad_end", "pe") if per_side else None))
        counts = None
        if channels:
            counts = tuple(sp.Symbol(letter, integer=True) if v is None else sp.Integer(v)
                           for letter, v in (("N", batch), ("C", in_channels), ("K", out_channels)))
        elif (batch, in_channels, out_channels) != (None, None, None):
            raise ValueError("batch, in_channels and out_channels need channels=True")
        if groups is not None and (isinstance(groups, bool) or not isinstance(groups, int)):
            raise ValueError(f"groups must be None or an int, got {groups!r}")
        group_count = None
        if grouped or groups is not None:
            if not channels:
                raise ValueError("a grouped layer needs channels=True")
            group_count = sp.Symbol("G", integer=True) if groups is None else sp.Integer(groups)
        spec = cls(tuple(built), counts, bool(flip), group_count)
        for c in spec.assumptions():
            if c.truth is False:
                raise ValueError(f"the fixed sizes break an assumption: {c}")
        return spec

    @property
    def per_side(self) -> bool:
        return any(a.pe is not None for a in self.axes)

    def _vec(self, field: str) -> Vec:
        return Vec(tuple(getattr(a, field) for a in self.axes))

    n = property(lambda self: self._vec("n"))
    k = property(lambda self: self._vec("k"))
    s = property(lambda self: self._vec("s"))
    p = property(lambda self: self._vec("p"))
    p_end = property(lambda self: self._vec("p_end"))
    d = property(lambda self: self._vec("d"))
    q = property(lambda self: self._vec("q"))
    a = property(lambda self: self._vec("a"))
    k_eff = property(lambda self: self._vec("k_eff"))
    outputs = property(lambda self: self._vec("outputs"))

    @property
    def X(self) -> Grid:
        """The input of the one-channel layer, as a map (indices of ``X``: the spatial ones only)."""
        return tensor("X", self.n)

    @property
    def F(self) -> Grid:
        return tensor("F", self.k)

    @property
    def G(self) -> Grid:
        """The output gradient dE/dO."""
        return tensor("G", self.outputs)

    def shapes(self) -> dict[str, tuple[sp.Expr, ...]]:
        """Tensor name -> extents: X, F, G, B (the bias) in PyTorch layout."""
        spatial = {"X": self.n.items, "F": self.k.items, "G": self.outputs.items}
        if self.counts is None:
            return {**spatial, "B": (sp.Integer(1),)}
        N, C, K = self.counts
        g = (self.groups,) if self.groups is not None else ()
        return {"X": (N, *g, C) + spatial["X"], "F": (*g, K, C) + spatial["F"], "G": (N, *g, K) + spatial["G"],
                "B": (*g, K)}

    def _counts(self) -> tuple[sp.Expr, ...]:
        return (*(self.counts or ()), *((self.groups,) if self.groups is not None else ()))

    def parameters(self) -> tuple[sp.Symbol, ...]:
        counts = tuple(c for c in self._counts() if isinstance(c, sp.Symbol))
        return tuple(p for a in self.axes for p in a.parameters()) + counts

    def assumptions(self) -> tuple[Constraint, ...]:
        out = [c for a in self.axes for c in a.assumptions()]
        out += [Constraint(">=", c - 1) for c in self._counts()]
        return tuple(c for c in out if c.truth is not True)

    def describe(self) -> str:
        """Which sizes are symbolic and which fixed, e.g. ``2-D, n k p symbolic, stride 2, dilation 1, ...``."""
        words = {"n": "input", "k": "kernel", "s": "stride", "p": "padding", "d": "dilation"}
        symbolic, fixed = [], []
        for letter, word in words.items():
            values = [getattr(a, letter) for a in self.axes]
            if all(isinstance(v, sp.Symbol) for v in values):
                symbolic.append(letter)
            else:
                fixed.append(f"{word} " + "x".join(map(str, values)))
        parts = [f"{len(self.axes)}-D"]
        parts.append((" ".join(symbolic) + " symbolic" + (" per axis" if len(self.axes) > 1 else "")) if symbolic else "")
        parts += fixed
        if self.per_side:
            ends = [a.pe for a in self.axes]
            parts.append("padding per side" + ("" if all(isinstance(v, sp.Symbol) for v in ends)
                                               else " (after: " + "x".join(map(str, ends)) + ")"))
        if self.counts is None:
            parts.append("one channel")
        elif self.groups is not None:
            parts.append(f"{self.groups} groups of channels " + ", ".join(map(str, self.counts)))
        else:
            parts.append("channels " + ", ".join(map(str, self.counts)))
        parts.append("convolution" if self.flip else "cross-correlation")
        return ", ".join(p for p in parts if p)

    def to_conv_spec(self, point: Mapping[str, int]) -> ConvSpec:
        """The concrete layer at a model of the assumptions (values by symbol name); the other axis of a 1-D
        spec is trivial (size 1, kernel 1)."""
        def value(expr: sp.Expr) -> int:
            return int(expr.xreplace({sp.Symbol(k, integer=True): v for k, v in point.items()}))

        fields = ("n", "k", "s", "p", "p_end", "d")
        per = {f: tuple(value(getattr(a, f)) for a in self.axes) for f in fields}
        if len(self.axes) == 1:
            per = {f: v + ({"n": 1, "k": 1, "s": 1, "p": 0, "p_end": 0, "d": 1}[f],) for f, v in per.items()}
        N, C, K = (value(c) for c in self.counts) if self.counts is not None else (1, 1, 1)
        n, k, s, p, pe, d = (per[f][:2] for f in fields)
        G = value(self.groups) if self.groups is not None else 1
        return ConvSpec((n[0], n[1]), (k[0], k[1]), (s[0], s[1]), ((p[0], pe[0]), (p[1], pe[1])), (d[0], d[1]),
                        in_channels=G * C, out_channels=G * K, batch=N, flip=self.flip, groups=G)
