"""General layers: which sizes of ReLU, pooling, dense or MSE are fixed -> symbols, assumptions, choices, concrete layers.

A ``GeneralLayer`` is to a layer what a ``GeneralSpec`` is to a convolution. Its assumptions are the rules the
concrete layer enforces: a pooling window per axis (dilation 1) with n, k, s >= 1, 0 <= 2p <= k (PyTorch's
"padding at most half the window", which also puts a real cell in every window), k <= n + 2p and the output
size n + 2p - k = s·q + a, 0 <= a < s; the counts (N, C; N, I, O; N, M) are >= 1. Max pooling's winner is a
*choice*: ``R_h(b, c, o_h, o_w)`` is the row offset of the argmax inside window o, an uninterpreted function of
which the theorem knows only that it lies in the window and on a real cell (``facts``), whatever the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Union

import sympy as sp

from ...symbolic.layers import AvgPool2d, Dense, MaxPool2d, ReLU
from ...symbolic.losses import CrossEntropyLoss, MSELoss
from .counterexample import LayerShape
from .obligation import Constraint, Fact, Obligation, choices_in
from .spec import AXIS_NAMES, Axis

__all__ = ["GeneralLayer", "LAYER_KINDS", "LOSSES", "FLAT", "Plane"]

LAYER_KINDS = ("relu", "maxpool", "avgpool", "dense", "mse", "crossentropy")
LOSSES = ("mse", "crossentropy")
FLAT = ("dense",) + LOSSES
"""The layers without spatial axes."""
POOLS = ("maxpool", "avgpool")
Fixed = Union[None, int, tuple[int, ...]]


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True)


def _name(letter: str, axis: str) -> str:
    return f"{letter}_{axis}" if axis else letter


@dataclass(frozen=True)
class Plane:
    """One spatial axis of an elementwise layer (ReLU): only its size."""

    name: str
    n: sp.Expr


def _fixed(field: str, value: Fixed, axes: int) -> tuple[Optional[int], ...]:
    if value is None:
        return (None,) * axes
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,) * axes
    if len(items) != axes or any(v is not None and (isinstance(v, bool) or not isinstance(v, int)) for v in items):
        raise ValueError(f"{field} must be None, an int or {axes} ints, got {value!r}")
    return items


@dataclass(frozen=True)
class GeneralLayer:
    """A layer with symbolic sizes: ``axes`` are pooling windows (``Axis``, dilation 1) or ReLU's ``Plane``s;
    ``counts`` are N, C (ReLU, pooling), N, I, O (dense) or N, M (MSE)."""

    kind: str
    axes: tuple[Union[Axis, Plane], ...]
    counts: tuple[sp.Expr, ...]

    @classmethod
    def of(cls, layer: str, axes: int = 2, *, input_size: Fixed = None, kernel_size: Fixed = None,
           stride: Fixed = None, padding: Fixed = None) -> "GeneralLayer":
        """Every size symbolic except those given (an int, or one per axis); windows only for pooling.

        >>> GeneralLayer.of("maxpool", axes=1, stride=2).axes[0].s
        2
        """
        if layer not in LAYER_KINDS:
            raise ValueError(f"layer must be one of {', '.join(LAYER_KINDS)}, got {layer!r}")
        if axes not in AXIS_NAMES:
            raise ValueError(f"axes must be 1 or 2, got {axes!r}")
        if layer not in POOLS and (kernel_size, stride, padding) != (None, None, None):
            raise ValueError(f"{layer} has no window: kernel_size, stride and padding are for maxpool and avgpool")
        if layer in FLAT and input_size is not None:
            raise ValueError(f"{layer} has no spatial axes: input_size is for relu, maxpool and avgpool")
        fixed = {f: _fixed(f, v, axes) for f, v in (("input_size", input_size), ("kernel_size", kernel_size),
                                                     ("stride", stride), ("padding", padding))}

        def value(field: str, letter: str, i: int, axis: str) -> sp.Expr:
            v = fixed[field][i]
            return _sym(_name(letter, axis)) if v is None else sp.Integer(v)

        built: list[Union[Axis, Plane]] = []
        for i, axis in enumerate(AXIS_NAMES[axes]):
            if layer == "relu":
                built.append(Plane(axis, value("input_size", "n", i, axis)))
            elif layer in POOLS:
                built.append(Axis(axis, value("input_size", "n", i, axis), value("kernel_size", "k", i, axis),
                                  value("stride", "s", i, axis), value("padding", "p", i, axis), sp.S.One,
                                  _sym(_name("q", axis)), _sym(_name("a", axis))))
        counts = {"dense": ("N", "I", "O"), "mse": ("N", "M"), "crossentropy": ("N", "M")}.get(layer, ("N", "C"))
        for a in built:
            if isinstance(a, Axis) and a.k.is_Integer and a.p.is_Integer and 2 * a.p > a.k:
                raise ValueError(f"padding {a.p} must be at most half the window {a.k} (PyTorch's rule)")
        spec = cls(layer, tuple(built), tuple(_sym(c) for c in counts))
        for c in spec.assumptions():
            if c.truth is False:
                raise ValueError(f"the fixed sizes break an assumption: {c}")
        return spec

    @property
    def windows(self) -> tuple[Axis, ...]:
        return tuple(a for a in self.axes if isinstance(a, Axis))

    def parameters(self) -> tuple[sp.Symbol, ...]:
        sizes: list[sp.Expr] = []
        for a in self.axes:
            sizes += a.parameters() if isinstance(a, Axis) else [a.n]
        return tuple(s for s in sizes + list(self.counts) if isinstance(s, sp.Symbol))

    def assumptions(self) -> tuple[Constraint, ...]:
        out = [Constraint(">=", c - 1) for c in self.counts]
        for a in self.axes:
            if isinstance(a, Axis):
                out += list(a.assumptions()) + [Constraint(">=", a.k - 2 * a.p)]
            else:
                out.append(Constraint(">=", a.n - 1))
        return tuple(dict.fromkeys(c for c in out if c.truth is not True))

    def spatial(self, tensor: str) -> tuple[sp.Expr, ...]:
        """The spatial extent of the input ``X`` (and ReLU's ``G``, ``P``) or of the pooled output ``G``."""
        if tensor == "G" and self.kind in POOLS:
            return tuple(a.outputs for a in self.windows)
        return tuple(a.n for a in self.axes)

    def shapes(self) -> dict[str, tuple[sp.Expr, ...]]:
        """Tensor name -> extents, in PyTorch layout: X, G (= dE/dY), and P = [X > 0] (ReLU), W, B (dense), Y, T (MSE)."""
        if self.kind == "dense":
            N, I, O = self.counts
            return {"X": (N, I), "W": (O, I), "B": (O,), "G": (N, O)}
        if self.kind == "mse":
            return {"Y": self.counts, "T": self.counts}
        if self.kind == "crossentropy":  # the logits, exp of each, and 1 / (sum of exp) per image
            return {"Z": self.counts, "expZ": self.counts, "invS": self.counts[:1]}
        N, C = self.counts
        out = {"X": (N, C) + self.spatial("X"), "G": (N, C) + self.spatial("G")}
        return {**out, "P": out["X"]} if self.kind == "relu" else out

    def index_names(self) -> dict[str, tuple[str, ...]]:
        """How bound variables are named after the index they stand for."""
        if self.kind == "dense":
            return {"X": ("n", "i"), "W": ("o", "i"), "B": ("o",), "G": ("n", "o")}
        if self.kind == "mse":
            return {"Y": ("n", "m"), "T": ("n", "m")}
        if self.kind == "crossentropy":
            return {"Z": ("n", "m"), "expZ": ("n", "m"), "invS": ("n",)}
        x = tuple(_name("x", a.name) for a in self.axes)
        o = tuple(_name("o", a.name) for a in self.axes) if self.kind in POOLS else x
        return {"X": ("b", "c") + x, "P": ("b", "c") + x, "G": ("b", "c") + o}

    def choice(self, axis: Axis, b: sp.Expr, c: sp.Expr, o: tuple[sp.Expr, ...]) -> sp.Expr:
        """Max pooling's winner on ``axis`` of window (b, c, o): its offset inside the window, a choice."""
        return sp.Function(_name("R", axis.name))(b, c, *o)

    def facts(self, o: Obligation) -> Obligation:
        """``o`` with the facts of every choice it applies: for a window inside the output, the winner lies in
        the window and on a real cell. Instances of what holds for every window: sound; and a refutation stays one,
        every window having a real cell to choose."""
        applications = set().union(*(choices_in(c.expr) for c in o.assumptions + o.hypotheses + o.goals))
        if not applications:
            return o
        N, C = self.counts
        windows = {_name("R", a.name): (i, a) for i, a in enumerate(self.windows)}
        facts = []
        for f in sorted(applications, key=str):
            if self.kind == "crossentropy":  # the label t(n) of image n is one of the M classes
                (n,) = f.args
                facts.append(Fact((Constraint(">=", n), Constraint(">=", N - 1 - n)),
                                  (Constraint(">=", f), Constraint(">=", C - 1 - f))))
                continue
            i, a = windows[f.func.__name__]
            b, c, *out = f.args
            premises = [Constraint(">=", b), Constraint(">=", N - 1 - b), Constraint(">=", c), Constraint(">=", C - 1 - c)]
            premises += [x for w, v in zip(self.windows, out) for x in (Constraint(">=", v), Constraint(">=", w.q - v))]
            cell = a.s * out[i] - a.p + f
            conclusions = (Constraint(">=", f), Constraint(">=", a.k - 1 - f), Constraint(">=", cell),
                           Constraint(">=", a.n - 1 - cell))
            facts.append(Fact(tuple(premises), conclusions))
        return o if not facts else Obligation(o.name, o.statement, o.parameters, o.variables, o.assumptions,
                                              o.hypotheses, o.goals, o.facts + tuple(facts))

    def describe(self) -> str:
        """Which sizes are symbolic and which fixed, e.g. ``maxpool, 2-D, n k s p symbolic per axis, N, C``."""
        parts = [self.kind]
        if self.axes:
            parts.append(f"{len(self.axes)}-D")
            words = {"n": "input", "k": "window", "s": "stride", "p": "padding"}
            letters = [w for w in words if all(hasattr(a, w) for a in self.axes)]
            symbolic = [w for w in letters if all(isinstance(getattr(a, w), sp.Symbol) for a in self.axes)]
            if symbolic:
                parts.append(" ".join(symbolic) + " symbolic" + (" per axis" if len(self.axes) > 1 else ""))
            parts += [f"{words[w]} " + "x".join(str(getattr(a, w)) for a in self.axes) for w in letters
                      if w not in symbolic]
        parts.append("counts " + ", ".join(map(str, self.counts)))
        return ", ".join(parts)

    def size_values(self, point: Mapping[str, int]) -> dict[sp.Symbol, int]:
        """Every size symbol's value at a solver's point (by name); q and a follow from n, k, s, p."""
        values = {s: int(point[s.name]) for s in self.parameters() if s.name in point}

        def at(e: sp.Expr) -> int:
            return int(e.xreplace(values))
        for a in self.windows:
            for sym, v in ((a.q, (at(a.n) + 2 * at(a.p) - at(a.k)) // at(a.s)),
                           (a.a, (at(a.n) + 2 * at(a.p) - at(a.k)) % at(a.s))):
                values[sym] = v
        return values

    def concrete(self, point: Mapping[str, int]) -> LayerShape:
        """The concrete layer at a solver's point; a 1-D layer's second axis is trivial (size 1, window 1).

        ReLU and pooling act on every image and channel alike, so their layer gets one image and one channel
        (the concrete check stays small); the concrete prover must still refute it, or symconv raises."""
        values = self.size_values(point)

        def at(e: sp.Expr) -> int:
            return int(e.xreplace(values))
        counts = tuple(at(c) for c in self.counts) if self.kind in FLAT else (1, 1)
        if self.kind == "dense":
            return LayerShape(Dense(counts[2]), counts[:2])
        if self.kind in LOSSES:
            return LayerShape(MSELoss() if self.kind == "mse" else CrossEntropyLoss(), counts)
        pad1 = (lambda t, fill: t + (fill,)) if len(self.axes) == 1 else (lambda t, fill: t)
        shape = counts + pad1(tuple(at(a.n) for a in self.axes), 1)
        if self.kind == "relu":
            return LayerShape(ReLU(), shape)
        kernel, stride, padding = (pad1(tuple(at(getattr(a, f)) for a in self.windows), fill)
                                   for f, fill in (("k", 1), ("s", 1), ("p", 0)))
        pool = MaxPool2d if self.kind == "maxpool" else AvgPool2d
        return LayerShape(pool(kernel, stride, padding), shape)
