"""Index notation: maps of symbolic size and the textbook operations on them -> SymPy entries (``Sum``, ``Indexed``).

A ``Grid`` is a map whose entry at an index is a SymPy expression: ``Sum``s over ``Indexed`` tensor entries and
``KroneckerDelta``s, and 0 outside its extent. A range bracket [lo <= t <= hi] is written Σ_{u=lo}^{hi} δ(t, u),
not as a ``Piecewise``: SymPy folds products of ``Piecewise`` into many-branched ones, while sums of deltas stay
as written (and ``sums.normalise`` turns each back into two inequalities).
``pad``, ``dilate``, ``rot180``, ``crop``, ``subsample``, ``correlate`` and ``convolve`` act per axis, with sizes
that are SymPy expressions in the symbolic n, k, s, p, d; a negative pad crops. This is the notation of
``check_general``: write a closed form with these helpers over the tensors of a ``GeneralSpec``.

>>> from symconv.proofs.general.spec import GeneralSpec
>>> L = GeneralSpec.of(axes=1)
>>> dX = correlate(pad(dilate(L.G, L.s), L.k_eff - 1 - L.p, L.k_eff - 1 - L.p + L.a), rot180(dilate(L.F, L.d)))
>>> dX.extent  # = n, since n + 2p - k_eff = s*q + a: what the proof's size obligation shows
(a + d*k - d - 2*p + q*s + 1,)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping, Sequence, Union

import sympy as sp

from .obligation import Constraint

__all__ = ["Vec", "Grid", "tensor", "dilate", "pad", "crop", "rot180", "subsample", "correlate", "convolve",
           "total", "plus", "sum_entries", "inner", "inside", "broadcast", "tex_size", "plain"]


@dataclass(frozen=True)
class Vec:
    """One size per axis, with elementwise arithmetic (a number stands for the same value on every axis)."""

    items: tuple[sp.Expr, ...]

    def _zip(self, other: object, op) -> "Vec":
        theirs = other.items if isinstance(other, Vec) else (sp.sympify(other),) * len(self.items)
        if len(theirs) != len(self.items):
            raise ValueError(f"sizes for {len(theirs)} axes combined with sizes for {len(self.items)}")
        return Vec(tuple(sp.expand(op(a, b)) for a, b in zip(self.items, theirs)))

    def __add__(self, other: object) -> "Vec":
        return self._zip(other, lambda a, b: a + b)

    __radd__ = __add__

    def __sub__(self, other: object) -> "Vec":
        return self._zip(other, lambda a, b: a - b)

    def __rsub__(self, other: object) -> "Vec":
        return self._zip(other, lambda a, b: b - a)

    def __mul__(self, other: object) -> "Vec":
        return self._zip(other, lambda a, b: a * b)

    __rmul__ = __mul__

    def __neg__(self) -> "Vec":
        return Vec(tuple(-a for a in self.items))

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, axis: int) -> sp.Expr:
        return self.items[axis]


Sizes = Union[Vec, Sequence[object], int, sp.Expr]


def _per_axis(value: Sizes, axes: int) -> tuple[sp.Expr, ...]:
    if isinstance(value, Vec):
        items = value.items
    elif isinstance(value, (tuple, list)):
        items = tuple(sp.sympify(v) for v in value)
    else:
        items = (sp.sympify(value),) * axes
    if len(items) != axes:
        raise ValueError(f"expected sizes for {axes} axes, got {len(items)}")
    return tuple(sp.expand(v) for v in items)


@dataclass(frozen=True)
class Grid:
    """A map of symbolic extent: its entry at ``index`` is ``body`` (0 outside the extent).

    ``floors`` are the auxiliary symbols of the extents, each (z, x, y) for z = floor(x / y) with y >= 1; a
    proof assumes their ``definitions``, y·z <= x <= y·z + y - 1."""

    index: tuple[sp.Symbol, ...]
    extent: tuple[sp.Expr, ...]
    body: sp.Expr
    floors: tuple[tuple[sp.Symbol, sp.Expr, sp.Expr], ...] = ()
    depth: int = 0
    tex: str = ""
    """The map in operator notation, for LaTeX: pad, dil, rot, corr, ... applied per axis."""

    @property
    def definitions(self) -> tuple[Constraint, ...]:
        return tuple(c for z, x, y in self.floors for c in (Constraint(">=", x - y * z), Constraint(">=", y * z + y - 1 - x)))

    @property
    def auxiliaries(self) -> tuple[sp.Symbol, ...]:
        return tuple(z for z, _, _ in self.floors)

    def floor_values(self, values: Mapping[sp.Symbol, int]) -> dict[sp.Symbol, int]:
        """The auxiliary symbols' values once the sizes have values."""
        out: dict[sp.Symbol, int] = {}
        for z, x, y in self.floors:
            known = {**values, **out}
            out[z] = int(x.xreplace(known)) // int(y.xreplace(known))
        return out

    @property
    def axes(self) -> int:
        return len(self.index)

    def at(self, *where: object) -> sp.Expr:
        """The entry at ``where`` (one expression per axis)."""
        if len(where) != self.axes:
            raise ValueError(f"a map with {self.axes} axes indexed with {len(where)} values")
        return self.body.xreplace({i: sp.sympify(w) for i, w in zip(self.index, where)})


def inside(index: Sequence[sp.Expr], extent: Sequence[sp.Expr], depth: int, first: Sequence[sp.Expr] | None = None) -> sp.Expr:
    """The bracket [first <= index <= extent - 1] on every axis (first = 0), as Σ_u δ(index, u)."""
    u = _symbols("u", depth, len(index))
    first = first or (0,) * len(index)
    deltas = sp.Mul(*(sp.KroneckerDelta(i, ui) for i, ui in zip(index, u)))
    return sp.Sum(deltas, *((ui, f, e - 1) for ui, f, e in zip(u, first, extent)))


K_EFF = sp.Symbol(r"k_{\mathrm{eff}}")


def plain(x: sp.Expr) -> sp.Expr:
    """A size for print: the axis letter dropped (n for n_h), d·k - d + 1 written k_eff, pe (the padding after
    the input) written p'."""
    x = sp.sympify(x)
    strip = {v: sp.Symbol(v.name.rsplit("_", 1)[0]) for v in x.free_symbols if v.name.endswith(("_h", "_w"))}
    x = x.xreplace(strip)
    x = x.xreplace({v: sp.Symbol("p'") for v in x.free_symbols if v.name == "pe"})
    named = {v.name: v for v in x.free_symbols}
    d, k = named.get("d"), named.get("k")
    if d is not None and k is not None and x.has(d * k):
        x = sp.expand(x.subs(d * k, K_EFF + d - 1))
    return x


def tex_size(items: Sequence[sp.Expr]) -> str:
    """Sizes in LaTeX, the same letters on every axis (n for n_h and n_w) unless the axes differ."""
    plain_items = [plain(x) for x in items]
    if all(x == plain_items[0] for x in plain_items):
        return sp.latex(plain_items[0])
    return "(" + ", ".join(sp.latex(x) for x in plain_items) + ")"


def _op(name: str, sub: str, *args: Grid) -> str:
    subscript = f"_{{{sub}}}" if sub else ""
    return rf"\operatorname{{{name}}}{subscript}\left({', '.join(a.tex for a in args)}\right)"


def _symbols(letter: str, depth: int, axes: int) -> tuple[sp.Symbol, ...]:
    return tuple(sp.Symbol(f"{letter}{depth}_{a}", integer=True) for a in range(axes))


def _merged(*floor_lists: Sequence[tuple]) -> tuple[tuple[sp.Symbol, sp.Expr, sp.Expr], ...]:
    return tuple(dict.fromkeys(f for fl in floor_lists for f in fl))


def _new(children: Sequence[Grid], extent: Sequence[sp.Expr], make, extra: Sequence[tuple] = (), tex: str = "") -> Grid:
    """A grid one level above ``children``: ``make(index, depth)`` gives its body."""
    depth = 1 + max((c.depth for c in children), default=0)
    index = _symbols("t", depth, len(extent))
    floors = _merged(*(c.floors for c in children), extra)
    return Grid(index, tuple(sp.expand(e) for e in extent), make(index, depth), floors, depth, tex)


def _floor(x: sp.Expr, y: sp.Expr) -> tuple[sp.Expr, list[tuple]]:
    """floor(x / y) for y >= 1: itself for numbers and y = 1, else an auxiliary symbol z (named by x and y, so
    one floor is one symbol) with the triple (z, x, y)."""
    x, y = sp.expand(x), sp.expand(y)
    if y == 1:
        return x, []
    if x.is_Integer and y.is_Integer:
        return x // y, []
    z = sp.Symbol("z_" + hashlib.sha1(f"{x}/{y}".encode()).hexdigest()[:6], integer=True)
    return z, [(z, x, y)]


def tensor(name: str, extent: Sizes, prefix: Sequence[sp.Expr] = (), axes: int | None = None, tex: str | None = None) -> Grid:
    """The tensor ``name`` as a map: entry ``name[prefix..., index...]`` inside ``extent``, 0 outside."""
    extent = _per_axis(extent, axes or (len(extent) if isinstance(extent, (Vec, tuple, list)) else 1))
    index = _symbols("t", 0, len(extent))
    base = sp.IndexedBase(name)
    label = tex or (name + (f"_{{{','.join(map(sp.latex, prefix))}}}" if prefix else ""))
    return Grid(index, extent, base[tuple(prefix) + index] * inside(index, extent, 0), (), 0, label)


def dilate(a: Grid, factor: Sizes) -> Grid:
    """``factor - 1`` zeros between neighbours: entry e is a[w] where e = factor·w (extent (L-1)·factor + 1)."""
    f = _per_axis(factor, a.axes)

    def body(index, depth):
        w = _symbols("w", depth, a.axes)
        deltas = sp.Mul(*(sp.KroneckerDelta(e, fi * wi) for e, fi, wi in zip(index, f, w)))
        return sp.Sum(a.at(*w) * deltas, *((wi, 0, L - 1) for wi, L in zip(w, a.extent)))

    return _new([a], [(L - 1) * fi + 1 for L, fi in zip(a.extent, f)], body, tex=_op("dil", tex_size(f), a))


def pad(a: Grid, before: Sizes, after: Sizes) -> Grid:
    """Zeros around ``a``: ``before`` in front and ``after`` behind on each axis; a negative amount crops."""
    b, e = _per_axis(before, a.axes), _per_axis(after, a.axes)
    extent = [L + bi + ei for L, bi, ei in zip(a.extent, b, e)]
    return _new([a], extent, lambda index, depth: a.at(*(t - bi for t, bi in zip(index, b))) * inside(index, extent, depth),
                tex=_op("pad", tex_size(b) if b == e else rf"{tex_size(b)},\,{tex_size(e)}", a))


def crop(a: Grid, size: Sizes) -> Grid:
    """The first ``size`` entries on each axis."""
    extent = _per_axis(size, a.axes)
    return _new([a], extent, lambda index, depth: a.at(*index) * inside(index, extent, depth),
                tex=_op("crop", tex_size(extent), a))


def rot180(a: Grid) -> Grid:
    """Reversed on every axis: entry e is a[L - 1 - e]."""
    return _new([a], a.extent, lambda index, _: a.at(*(L - 1 - t for t, L in zip(index, a.extent))),
                tex=_op("rot", "180", a))


def subsample(a: Grid, step: Sizes) -> Grid:
    """Every ``step``-th entry from the first: entry m is a[step·m] (extent floor((L-1)/step) + 1)."""
    st = _per_axis(step, a.axes)
    floors = [_floor(L - 1, si) for L, si in zip(a.extent, st)]
    return _new([a], [z + 1 for z, _ in floors], lambda index, _: a.at(*(si * m for si, m in zip(st, index))),
                [f for _, extra in floors for f in extra], tex=_op("sub", tex_size(st), a))


def _valid(a: Grid, k: Grid, stride: Sizes, tap, name: str) -> Grid:
    if a.axes != k.axes:
        raise ValueError(f"a map with {a.axes} axes correlated with a kernel of {k.axes}")
    st = _per_axis(stride, a.axes)
    floors = [_floor(La - Lk, si) for La, Lk, si in zip(a.extent, k.extent, st)]

    def body(index, depth):
        r = _symbols("r", depth, a.axes)
        where = [tap(si * i, ri, Lk) for si, i, ri, Lk in zip(st, index, r, k.extent)]
        # The window fits: 0 <= stride·i <= La - Lk (so i >= 0, the stride being >= 1).
        fits = inside([si * i for si, i in zip(st, index)], [La - Lk + 1 for La, Lk in zip(a.extent, k.extent)], depth)
        window = sp.Sum(a.at(*where) * k.at(*r), *((ri, 0, Lk - 1) for ri, Lk in zip(r, k.extent)))
        return window * fits

    sub = "" if all(si == 1 for si in st) else tex_size(st)
    return _new([a, k], [z + 1 for z, _ in floors], body, [f for _, extra in floors for f in extra],
                tex=_op(name, sub, a, k))


def correlate(a: Grid, k: Grid, stride: Sizes = 1) -> Grid:
    """Valid cross-correlation: out[i] = Σ_r a[stride·i + r] k[r], extent floor((La - Lk)/stride) + 1."""
    return _valid(a, k, stride, lambda start, r, Lk: start + r, "corr")


def convolve(a: Grid, k: Grid, stride: Sizes = 1) -> Grid:
    """Valid true convolution: out[i] = Σ_r a[stride·i + Lk - 1 - r] k[r]."""
    return _valid(a, k, stride, lambda start, r, Lk: start + Lk - 1 - r, "conv")


def total(a: Grid, *limits: tuple[sp.Symbol, object, object]) -> Grid:
    """Σ over channel (or image) variables, each ``(variable, first, last)``, of the map's entries."""
    sums = "".join(rf"\sum_{{{sp.latex(v)}={sp.latex(lo)}}}^{{{sp.latex(hi)}}}" for v, lo, hi in limits)
    return Grid(a.index, a.extent, sp.Sum(a.body, *limits), a.floors, a.depth, f"{sums} {a.tex}")


def plus(a: Grid, b: Grid) -> Grid:
    """The entrywise sum of two maps of the same extent."""
    if a.extent != b.extent:
        raise ValueError(f"maps of extents {a.extent} and {b.extent} added")
    return _new([a, b], a.extent, lambda index, _: a.at(*index) + b.at(*index), tex=f"{a.tex} + {b.tex}")


def sum_entries(a: Grid) -> Grid:
    """Σ of all entries: a map with no axes."""
    v = _symbols("v", a.depth + 1, a.axes)
    body = sp.Sum(a.at(*v), *((vi, 0, L - 1) for vi, L in zip(v, a.extent)))
    return Grid((), (), body, a.floors, a.depth + 1, rf"\textstyle\sum_{{\text{{entries}}}} {a.tex}")


def inner(a: Grid, b: Grid) -> Grid:
    """<a, b> = Σ_v a[v] b[v] over the extent of ``a``: a map with no axes."""
    if a.axes != b.axes:
        raise ValueError("inner product of maps with different numbers of axes")
    depth = max(a.depth, b.depth) + 1
    v = _symbols("v", depth, a.axes)
    body = sp.Sum(a.at(*v) * b.at(*v), *((vi, 0, L - 1) for vi, L in zip(v, a.extent)))
    return Grid((), (), body, _merged(a.floors, b.floors), depth, rf"\left\langle {a.tex},\, {b.tex} \right\rangle")


def broadcast(value: sp.Expr, extent: Sizes, axes: int) -> Grid:
    """The same ``value`` at every entry inside ``extent`` (a bias added to every output)."""
    e = _per_axis(extent, axes)
    index = _symbols("t", 1, axes)
    return Grid(index, e, value * inside(index, e, 1), (), 1, sp.latex(value))
