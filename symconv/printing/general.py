r"""LaTeX of the proofs for every size: a ``GeneralProof`` or ``GeneralProofReport`` -> ``aligned`` rows.

Each identity is printed as the theorem it is: the derivation side as the guarded sum that was proved (index
sums with their ranges, an Iverson bracket for the rest of the guard), equal to the closed form in operator
notation (pad, dil, rot, corr, sub, crop, per axis), for every entry; the assumptions head the report.
"""

from __future__ import annotations

import sympy as sp

from ..proofs.general.notation import plain
from ..proofs.general.obligation import Constraint, inside_choice
from ..proofs.general.report import GeneralProof, GeneralProofReport, Sides
from ..proofs.general.spec import GeneralSpec
from ..proofs.general.sums import GuardedSum
from .latex_printer import text

WEDGE = r" \wedge "

__all__ = ["general_rows", "guarded_sum_latex", "assumption_latex", "assumption_parts", "report_rows"]

_ENTRY = {"output": "O_{%s}", "output - b": "O_{%s} - B", "grad_input": r"\frac{\partial E}{\partial X_{%s}}",
          "sum of dE/dX": r"\sum_i \frac{\partial E}{\partial X_{%s,i}}",
          "grad_weight": r"\frac{\partial E}{\partial F_{%s}}", "grad_bias": r"\frac{\partial E}{\partial B_{%s}}"}


def _atom(a: sp.Indexed) -> str:
    index = ",".join(sp.latex(i) for i in a.indices)
    if str(a.base) == "G":
        return rf"\frac{{\partial E}}{{\partial O_{{{index}}}}}"
    return f"{a.base}_{{{index}}}"


def _relation(c: Constraint) -> str:
    """e == 0 as lhs = rhs with the positive terms on the left; e >= 0 likewise as lhs >= rhs."""
    plus = [t for t in sp.Add.make_args(c.expr) if t.as_coeff_Mul()[0] > 0]
    minus = [-t for t in sp.Add.make_args(c.expr) if t.as_coeff_Mul()[0] < 0]
    lhs, rhs = sp.latex(sp.Add(*plus)), sp.latex(sp.Add(*minus))
    return f"{lhs} = {rhs}" if c.relation == "==" else rf"{lhs} \ge {rhs}"


def _bounds(term: GuardedSum) -> tuple[dict[sp.Symbol, sp.Expr], list[Constraint]]:
    """Each bound variable's range read off its guard (v >= lo, hi >= v), and what is left."""
    low: dict[sp.Symbol, sp.Expr] = {}
    high: dict[sp.Symbol, sp.Expr] = {}
    rest: list[Constraint] = []
    for c in term.guard:
        found = False
        if c.relation == ">=":
            for v in term.bound:
                if inside_choice(v, c.expr):  # v inside a choice (an argmax R(o)): no bound to read off
                    continue
                poly = sp.Poly(c.expr, v)
                other = c.expr - poly.LC() * v if poly.degree() == 1 else None
                if other is None or other.has(*term.bound) or poly.LC() not in (1, -1):
                    continue
                target = low if poly.LC() == 1 else high
                if v not in target:
                    target[v] = sp.expand(-other) if poly.LC() == 1 else sp.expand(other)
                    found = True
                    break
        if not found:
            rest.append(c)
    return {v: (low.get(v), high.get(v)) for v in term.bound}, rest


def guarded_sum_pieces(term: GuardedSum, omit: frozenset = frozenset()) -> tuple[str, list[str], str]:
    """(the sums with their ranges, the conditions of the Iverson bracket, the coefficient and atoms)."""
    ranges, rest = _bounds(term)
    rest = [c for c in rest if c not in omit]
    sums = ""
    for v, (lo, hi) in ranges.items():
        sums += rf"\sum_{{{sp.latex(v)}" + (f"={sp.latex(lo)}" if lo is not None else "") + "}"
        sums += f"^{{{sp.latex(hi)}}}" if hi is not None else ""
        sums += " "
    coefficient = "" if term.coefficient == 1 else sp.latex(term.coefficient) + " "
    return sums.strip(), [_relation(c) for c in rest], f"{coefficient}{' '.join(_atom(a) for a in term.atoms)}"


def guarded_sum_latex(term: GuardedSum, omit: frozenset = frozenset()) -> str:
    r"""Σ over the bound variables with their ranges, the rest of the guard as an Iverson bracket.

    >>> from symconv.proofs.general.sums import normalise
    >>> F, i, o, m, k = sp.IndexedBase("F"), *sp.symbols("i o m k", integer=True)
    >>> (t,) = normalise(sp.Sum(F[m] * sp.KroneckerDelta(i, o + 2 * m), (m, 0, k - 1)), {"F": [k]})
    >>> guarded_sum_latex(t)
    '\\sum_{m=0}^{k - 1} \\bigl[ i = 2 m + o \\bigr] F_{m}'
    """
    sums, conditions, atoms = guarded_sum_pieces(term, omit)
    joined = WEDGE.join(conditions)
    bracket = [rf"\bigl[ {joined} \bigr]"] if conditions else []
    return " ".join([x for x in [sums] + bracket + [atoms] if x])


def _entry(sides: Sides) -> str:
    index = ",".join(sp.latex(e) for e in sides.entry)
    if sides.tensor in _ENTRY:
        return (_ENTRY[sides.tensor] % index).replace("_{}", "")
    if sides.tensor.startswith("<Y,"):  # a layer's adjoint
        return r"\left\langle Y, \frac{\partial E}{\partial Y} \right\rangle"
    return r"\left\langle O - B, \frac{\partial E}{\partial O} \right\rangle"


def _equation_rows(sides: Sides, split: bool) -> list[str]:
    # The entry's own range is the "for every entry" of the theorem: not repeated inside the brackets.
    entry_range = frozenset(c for e, r in zip(sides.entry, sides.ranges) for c in (Constraint(">=", e), Constraint(">=", r - 1 - e)))
    if not split:
        derived = " + ".join(guarded_sum_latex(t, entry_range) for t in sides.derived) or "0"
        rows = [rf"&{_entry(sides)} = {derived}"]
    else:  # a document: the bracket's conditions two to a row, so that a 2-D sum fits the page
        rows, lead = [], rf"&{_entry(sides)} = "
        for n, t in enumerate(sides.derived):
            sums, conditions, atoms = guarded_sum_pieces(t, entry_range)
            plus = "+ " if n else ""
            if not conditions:
                rows.append(f"{lead}{plus}{sums} {atoms}")
            else:
                pairs = [WEDGE.join(conditions[i:i + 2]) for i in range(0, len(conditions), 2)]
                rows.append(rf"{lead}{plus}{sums} \bigl[ {pairs[0]}" + ("" if len(pairs) > 1 else rf" \bigr] {atoms}"))
                rows += [rf"&\qquad \wedge {x}" for x in pairs[1:-1]]
                if len(pairs) > 1:
                    rows.append(rf"&\qquad \wedge {pairs[-1]} \bigr] {atoms}")
            lead = r"&\quad "
    if sides.closed_tex:
        rows.append(rf"&\qquad = {sides.closed_tex}")
    return rows


def general_rows(proof: GeneralProof, split: bool = False) -> list[str]:
    """The rows of one identity: name, statement and verdict, then each equation as a theorem."""
    verdict = {"proved": r"\text{(proved for every size: %s)}" % "+".join(proof.solvers),
               "refuted": r"\text{(REFUTED)}", "not proved": r"\text{(NOT proved)}"}[proof.verdict]
    name = rf"\mathtt{{{proof.name}}}".replace("_", r"\_")
    rows = [rf"{name} &\colon {text(proof.statement)} \quad {verdict}"]
    for sides in proof.sides:
        rows += _equation_rows(sides, split)
    if proof.counterexample is not None:
        rows.append(rf"&\quad {text('counterexample: ' + str(proof.counterexample.spec.describe()))}")
    return rows


def assumption_parts(report: GeneralProofReport) -> list[str]:
    """The assumptions as relations, per axis with the letters of the first axis (the others are the same)."""
    if not isinstance(report.spec, GeneralSpec):  # a layer's: each relation once, the axis letters dropped
        return list(dict.fromkeys(_relation(Constraint(c.relation, plain(c.expr))) for c in report.assumptions))
    first = report.spec.axes[0]
    per_axis = [Constraint(c.relation, plain(c.expr)) for c in first.assumptions() if c.truth is not True]
    counts = [] if report.spec.counts is None else [
        r"N, C, K, G \ge 1" if report.spec.groups is not None else r"N, C, K \ge 1"]
    return [_relation(c) for c in per_axis] + counts


def assumption_latex(report: GeneralProofReport) -> str:
    """The assumptions in one line."""
    where = r" \text{ on each axis}" if len(report.spec.axes) > 1 else ""
    return r"\text{for all integers with } " + r",\ ".join(assumption_parts(report)) + where


def report_rows(report: GeneralProofReport) -> list[str]:
    """A report: the title, the assumptions, then every identity."""
    verdict = "all proved" if report.holds else "NOT all proved"
    rows = ["&" + text(f"Proofs for every size ({report.spec.describe()}): {verdict}"), "&" + assumption_latex(report)]
    for proof in report.proofs:
        rows += general_rows(proof)
    return rows
