"""Bijections: the guarded sums of two sides -> a map between their bound variables and its obligations.

Summation by reindexing: Σ_{t in S} c·A(t) = Σ_{u in T} c'·A'(u) when u = φ(t) maps S onto T with equal atoms
and coefficients. The map is solved from the atoms (X[e(t)] = X[e'(u)], ...), so a term is determined by its
atoms on each side (the atom map is injective) and the two sums are equal exactly when both supports map into
each other: a failed obligation is a real difference, not a weakness of the map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import sympy as sp

from .obligation import FALSE, Constraint, Obligation, inside_choice
from .sums import GuardedSum

__all__ = ["Matching", "match", "solve_for", "obligations"]

Map = tuple[tuple[sp.Symbol, sp.Expr], ...]


@dataclass(frozen=True)
class Matching:
    """The terms of one signature on each side and, if solvable, φ (left -> right) and ψ (right -> left).

    ``problem`` says why no obligation can decide it (several terms over the same tensors, a map that is not
    determined by the atoms or not integral); such a matching is not proved."""

    signature: tuple[str, ...]
    left: GuardedSum | None
    right: GuardedSum | None
    forward: Map = ()
    backward: Map = ()
    forward_residue: tuple[sp.Expr, ...] = ()
    backward_residue: tuple[sp.Expr, ...] = ()
    problem: str | None = None


def solve_for(equations: Sequence[sp.Expr], unknowns: Sequence[sp.Symbol]) -> tuple[Map, tuple[sp.Expr, ...]] | None:
    """The unknowns as integer polynomials of the other symbols, and the equations left over (which must then
    hold); None when an unknown is not determined or only with a division.

    >>> o, w, m, r, i, s = sp.symbols("o w m r i s", integer=True)
    >>> solve_for([w - o, r - m, i - s * w - m], [o, m])
    (((o, w), (m, r)), (i - r - s*w,))
    """
    eqs = [sp.expand(e) for e in equations]
    solution: dict[sp.Symbol, sp.Expr] = {}
    pending = list(unknowns)
    while pending:
        for e in eqs:
            found = None
            for v in pending:
                if e.has(v) and not inside_choice(v, e):
                    poly = sp.Poly(e, v)
                    if poly.degree() == 1 and poly.LC() in (1, -1) and not (e - poly.LC() * v).has(v):
                        found = (v, sp.expand(-(e - poly.LC() * v) / poly.LC()))
                        break
            if found:
                break
        else:
            return None
        v, value = found
        pending.remove(v)
        solution = {u: sp.expand(x.xreplace({v: value})) for u, x in solution.items()}
        solution[v] = value
        eqs = [sp.expand(x.xreplace({v: value})) for x in eqs if x is not e]
    residue = tuple(dict.fromkeys(e for e in eqs if e != 0))
    return tuple((v, solution[v]) for v in unknowns), residue


def _primed(term: GuardedSum, taken: set[str]) -> GuardedSum:
    """The right side's bound variables renamed apart from the left's (``o_h`` -> ``o_h'``)."""
    mapping = {}
    for v in term.bound:
        name = v.name + "'"
        while name in taken:
            name += "'"
        mapping[v] = sp.Symbol(name, integer=True)
    return GuardedSum(term.coefficient.xreplace(mapping), tuple(a.xreplace(mapping) for a in term.atoms),
                      tuple(mapping[v] for v in term.bound), tuple(g.subs(mapping) for g in term.guard))


def _atom_equations(left: GuardedSum, right: GuardedSum) -> list[sp.Expr] | None:
    if len(set(left.signature)) != len(left.signature):
        return None  # a tensor twice in one product: the atoms do not pair up by name
    eqs = []
    for a, b in zip(left.atoms, right.atoms):
        eqs += [x - y for x, y in zip(a.indices, b.indices)]
    return eqs


def match(left: Sequence[GuardedSum], right: Sequence[GuardedSum]) -> tuple[Matching, ...]:
    """Pair the terms of two sides by the tensors they multiply and solve each pair's bijection."""
    signatures = list(dict.fromkeys([t.signature for t in left] + [t.signature for t in right]))
    out = []
    for sig in signatures:
        ls, rs = [t for t in left if t.signature == sig], [t for t in right if t.signature == sig]
        if len(ls) > 1 or len(rs) > 1:
            out.append(Matching(sig, ls[0] if ls else None, rs[0] if rs else None,
                                problem=f"several terms over {'·'.join(sig)} on one side"))
            continue
        lt, rt = (ls[0] if ls else None), (rs[0] if rs else None)
        if lt is None or rt is None:
            out.append(Matching(sig, lt, rt))
            continue
        taken = {s.name for t in (lt, rt) for a in t.atoms for s in a.free_symbols} | {v.name for v in lt.bound}
        rt = _primed(rt, taken)
        eqs = _atom_equations(lt, rt)
        forward = solve_for(eqs, rt.bound) if eqs is not None else None
        backward = solve_for(eqs, lt.bound) if eqs is not None else None
        if forward is None or backward is None:
            out.append(Matching(sig, lt, rt, problem="the terms are not determined by their atoms"))
            continue
        out.append(Matching(sig, lt, rt, forward[0], backward[0], forward[1], backward[1]))
    return tuple(out)


def _guarded(term: GuardedSum, mapping: Map) -> tuple[Constraint, ...]:
    return tuple(g.subs(dict(mapping)) for g in term.guard)


def _same_coefficient(left: sp.Expr, right: sp.Expr) -> tuple[Constraint, ...]:
    """Goals that say two coefficients are equal, exactly: rational functions of the sizes (1/(k_h k_w) of an
    average) are equal iff the numerator of their difference is 0 *and* every denominator is not 0 (d^2 >= 1)."""
    difference = sp.together(sp.expand(left - right))
    if difference == 0:
        return ()
    numerator, _ = sp.fraction(difference)
    nonzero = []
    for c in (left, right):
        denominator = sp.fraction(sp.together(c))[1]
        if not denominator.is_Number:
            nonzero.append(Constraint(">=", sp.expand(denominator ** 2 - 1)))
    return (Constraint("==", sp.expand(numerator)),) + tuple(dict.fromkeys(nonzero))


def obligations(prefix: str, m: Matching, parameters: tuple[sp.Symbol, ...], entry: tuple[sp.Symbol, ...],
                assumptions: tuple[Constraint, ...], entry_range: tuple[Constraint, ...]) -> tuple[Obligation, ...]:
    """The obligations of one matching: the left support into the right (with equal coefficients), the right
    back into the left; a term present on one side only must have an empty support."""
    what = "·".join(m.signature) or "1"
    if m.left is None or m.right is None:
        term, side = (m.left, "derivation") if m.right is None else (m.right, "closed form")
        assert term is not None  # a matching pairs at least one term
        return (Obligation(f"{prefix} {what}: none", f"the {side} has no term {what} the other side lacks",
                           parameters, entry + term.bound, assumptions, entry_range + term.guard, (FALSE,)),)
    l, r = m.left, m.right
    same = _same_coefficient(l.coefficient, r.coefficient.xreplace(dict(m.forward)))
    into = Obligation(f"{prefix} {what}: into", "every term of the derivation is one of the closed form, φ(t)",
                      parameters, entry + l.bound, assumptions, entry_range + l.guard,
                      tuple(Constraint("==", e) for e in m.forward_residue) + _guarded(r, m.forward) + same)
    back = Obligation(f"{prefix} {what}: back", "every term of the closed form is one of the derivation, ψ(u)",
                      parameters, entry + r.bound, assumptions, entry_range + r.guard,
                      tuple(Constraint("==", e) for e in m.backward_residue) + _guarded(l, m.backward))
    return (into, back)
