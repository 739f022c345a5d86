"""Guarded sums: a SymPy expression (``Sum`` over ``Indexed``, ``KroneckerDelta``, ``Piecewise``) -> ``GuardedSum`` terms.

Each term is Σ over integer bound variables of coefficient · atoms · [guard], the guard a conjunction of integer
equalities and inequalities. Kronecker deltas become equalities and stay guards: they are never evaluated by
``Sum.doit()``, which drops the divisibility condition of a delta whose index has a coefficient other than 1.
An equality is solved for a bound variable only where that variable's coefficient is ±1 (exact over the
integers); a tensor entry outside its shape is 0, so each atom brings the range guard of its indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import sympy as sp

from .obligation import Constraint, constraints, inside_choice, simplified

__all__ = ["GuardedSum", "normalise", "Shapes"]

Shapes = Mapping[str, Sequence[sp.Expr]]
"""Tensor name -> its extent per index, for the range guards of the atoms."""


@dataclass(frozen=True)
class GuardedSum:
    """Σ_{bound} coefficient · Π atoms · [guard]."""

    coefficient: sp.Expr
    atoms: tuple[sp.Indexed, ...]
    bound: tuple[sp.Symbol, ...]
    guard: tuple[Constraint, ...]

    @property
    def signature(self) -> tuple[str, ...]:
        """The tensors multiplied, by name: terms of two sides are matched on it."""
        return tuple(str(a.base) for a in self.atoms)

    def sympy(self) -> sp.Expr:
        """As one SymPy expression (an unevaluated sum over all integers of the bound variables, Iverson bracket)."""
        bracket = sp.Piecewise((1, sp.And(*(c.relational() for c in self.guard))), (0, True))
        body = self.coefficient * sp.Mul(*self.atoms) * bracket
        return sp.Sum(body, *((v, -sp.oo, sp.oo) for v in self.bound)) if self.bound else body

    def __str__(self) -> str:
        over = f"sum over {', '.join(map(str, self.bound))} of " if self.bound else ""
        guard = " and ".join(map(str, self.guard)) or "True"
        return f"{over}{self.coefficient * sp.Mul(*self.atoms)} [{guard}]"


@dataclass
class _Raw:
    coefficient: sp.Expr = sp.S.One
    atoms: list[sp.Indexed] = field(default_factory=list)
    bound: list[sp.Symbol] = field(default_factory=list)
    guard: list[Constraint] = field(default_factory=list)

    def times(self, other: "_Raw") -> "_Raw":
        return _Raw(self.coefficient * other.coefficient, self.atoms + other.atoms, self.bound + other.bound,
                    self.guard + other.guard)


class _Fresh:
    """Fresh bound-variable names, unique within one normalisation (no global counter)."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = set(taken)

    def __call__(self, like: sp.Symbol | str) -> sp.Symbol:
        base = (like if isinstance(like, str) else like.name).rstrip("0123456789") or "v"
        count = 0
        name = base
        while name in self.taken:
            count += 1
            name = f"{base}{count}"
        self.taken.add(name)
        return sp.Symbol(name, integer=True)


def _is_structure(expr: sp.Basic) -> bool:
    return expr.has(sp.Indexed, sp.Sum, sp.KroneckerDelta, sp.Piecewise)


def _raw(expr: sp.Expr, fresh: _Fresh) -> list[_Raw]:
    if isinstance(expr, sp.Add):
        return [t for arg in expr.args for t in _raw(arg, fresh)]
    if isinstance(expr, sp.Mul):
        terms = [_Raw()]
        for factor in expr.args:
            terms = [a.times(b) for a in terms for b in _raw(factor, fresh)]
        return terms
    if isinstance(expr, sp.Pow) and _is_structure(expr.base):
        if not (expr.exp.is_Integer and expr.exp > 0):
            raise NotImplementedError(f"a power of a tensor expression: {expr}")
        return _raw(sp.Mul(*([expr.base] * int(expr.exp)), evaluate=False), fresh)
    if isinstance(expr, sp.Sum):
        body, renaming, limits = expr.function, {}, []
        for v, lo, hi in expr.limits:
            new = fresh(v)
            renaming[v] = new
            limits.append((new, lo.xreplace(renaming), hi.xreplace(renaming)))
        body = body.xreplace(renaming)
        box = [Constraint(">=", v - lo) for v, lo, _ in limits] + [Constraint(">=", hi - v) for v, _, hi in limits]
        return [_Raw(t.coefficient, t.atoms, [v for v, _, _ in limits] + t.bound, box + t.guard) for t in _raw(body, fresh)]
    if isinstance(expr, sp.Piecewise):
        (value, condition), *rest = expr.args
        if len(rest) != 1 or rest[0][1] is not sp.true or rest[0][0] != 0:
            raise NotImplementedError(f"only Piecewise((value, condition), (0, True)) is a guard: {expr}")
        return [_Raw(t.coefficient, t.atoms, t.bound, list(constraints(condition)) + t.guard) for t in _raw(value, fresh)]
    if isinstance(expr, sp.KroneckerDelta):
        return [_Raw(guard=[Constraint("==", expr.args[0] - expr.args[1])])]
    if isinstance(expr, sp.Indexed):
        return [_Raw(atoms=[expr])]
    if _is_structure(expr):
        raise NotImplementedError(f"cannot normalise {type(expr).__name__}: {expr}")
    return [_Raw(coefficient=expr)]


def _unit_solution(c: Constraint, bound: Sequence[sp.Symbol]) -> tuple[sp.Symbol, sp.Expr] | None:
    """The first bound variable an equality determines with coefficient ±1, and its value."""
    for v in bound:
        if not c.expr.has(v) or inside_choice(v, c.expr):
            continue
        poly = sp.Poly(c.expr, v)
        if poly.degree() == 1 and poly.LC() in (1, -1):
            rest = c.expr - poly.LC() * v
            if not rest.has(v):
                return v, sp.expand(-rest / poly.LC())
    return None


def _eliminate(t: _Raw) -> _Raw | None:
    """Substitute every bound variable that an equality of the guard fixes with a unit coefficient."""
    guard = simplified(t.guard)
    if guard is None:
        return None
    bound, atoms, coefficient = list(t.bound), list(t.atoms), t.coefficient
    changed = True
    while changed:
        changed = False
        for c in guard:
            if c.relation != "==":
                continue
            solution = _unit_solution(c, bound)
            if solution is None:
                continue
            v, value = solution
            bound.remove(v)
            guard = simplified(g.subs({v: value}) for g in guard if g != c)
            if guard is None:
                return None
            atoms = [a.xreplace({v: value}) for a in atoms]
            coefficient = sp.expand(coefficient.xreplace({v: value}))
            changed = True
            break
    # A bound variable left in no atom still counts (each of its values is a term): it stays.
    return _Raw(coefficient, atoms, bound, list(guard))


def _ranges(atoms: Iterable[sp.Indexed], shapes: Shapes) -> list[Constraint]:
    out = []
    for a in atoms:
        extent = shapes[str(a.base)]
        if len(extent) != len(a.indices):
            raise ValueError(f"{a}: {str(a.base)} has {len(extent)} indices")
        for index, size in zip(a.indices, extent):
            out += [Constraint(">=", index), Constraint(">=", size - 1 - index)]
    return out


def _rename(t: _Raw, free: set[str], names: Mapping[str, Sequence[str]]) -> GuardedSum:
    """Readable, deterministic names for the bound variables, clear of the free symbols: a variable that is an
    index of an atom is named after that index (``names``), the others keep their own."""
    fresh = _Fresh(free)
    preferred: dict[sp.Symbol, str] = {}
    for a in t.atoms:
        for j, index in enumerate(a.indices):
            if index in t.bound and index not in preferred and str(a.base) in names:
                preferred[index] = names[str(a.base)][j]
    mapping = {v: fresh(preferred.get(v, v.name)) for v in t.bound}
    atoms = tuple(sorted((a.xreplace(mapping) for a in t.atoms), key=lambda a: str(a.base)))
    guard = tuple(g.subs(mapping) for g in t.guard)
    return GuardedSum(t.coefficient.xreplace(mapping), atoms, tuple(mapping[v] for v in t.bound), guard)


def normalise(expr: sp.Expr, shapes: Shapes, names: Mapping[str, Sequence[str]] | None = None) -> tuple[GuardedSum, ...]:
    """The guarded sums whose total is ``expr``; a term whose guard is a false constant is dropped.

    The delta of ``o + 2*m`` stays a guard (``Sum.doit()`` would give ``F[i/2 - o/2]`` with no condition that 2
    divides ``i - o``); the delta of ``o + m`` is solved for ``m``:

    >>> F = sp.IndexedBase("F")
    >>> i, o, m, k = sp.symbols("i o m k", integer=True)
    >>> [str(t) for t in normalise(sp.Sum(F[m] * sp.KroneckerDelta(i, o + 2 * m), (m, 0, k - 1)), {"F": [k]})]
    ['sum over m of F[m] [m >= 0 and k - m - 1 >= 0 and i - 2*m - o == 0]']
    >>> [str(t) for t in normalise(sp.Sum(F[m] * sp.KroneckerDelta(i, o + m), (m, 0, k - 1)), {"F": [k]})]
    ['F[i - o] [i - o >= 0 and -i + k + o - 1 >= 0]']
    """
    free = {s.name for s in expr.free_symbols}
    fresh = _Fresh(free)
    out = []
    for raw in _raw(sp.sympify(expr), fresh):
        raw.guard = raw.guard + _ranges(raw.atoms, shapes)
        t = _eliminate(raw)
        if t is None:
            continue
        t.guard = list(simplified(t.guard + _ranges(t.atoms, shapes)) or ())
        out.append(_rename(t, free, names or {}))
    return tuple(out)
