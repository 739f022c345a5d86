"""Obligations: integer constraints over SymPy polynomials -> frozen data (assumptions, hypotheses, goals).

An ``Obligation`` says: for all integer values of its parameters and variables, the assumptions and the
hypotheses imply every goal. It is data before it is a solver call; ``z3_backend`` and ``isl_backend`` print it
for their solver, as SymPy's printers print one expression for several languages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Mapping

import sympy as sp
from sympy.core.function import AppliedUndef

__all__ = ["Constraint", "Fact", "Obligation", "SolverRun", "constraints", "FALSE", "choices_in", "inside_choice"]

Relation = Literal["==", ">="]


def _canonical(expr: sp.Expr, relation: Relation) -> sp.Expr:
    expr = sp.expand(expr)
    if relation == "==" and expr != 0:
        # e == 0 and -e == 0 are one constraint: the first term (in SymPy's order) gets a positive sign.
        lead = sp.Add.make_args(expr)[0].as_coeff_Mul()[0]
        if lead < 0:
            expr = -expr
    return expr


@dataclass(frozen=True)
class Constraint:
    """``expr == 0`` or ``expr >= 0``, over the integers (so ``a < b`` is ``b - a - 1 >= 0``).

    >>> i, n = sp.symbols("i n", integer=True)
    >>> constraints(sp.And(i >= 0, i < n))
    (Constraint(relation='>=', expr=i), Constraint(relation='>=', expr=-i + n - 1))
    """

    relation: Relation
    expr: sp.Expr

    def __post_init__(self) -> None:
        object.__setattr__(self, "expr", _canonical(sp.sympify(self.expr), self.relation))

    @property
    def truth(self) -> bool | None:
        """True or False when the constraint is a number, else None."""
        if not self.expr.is_Number:
            return None
        return bool(self.expr == 0) if self.relation == "==" else bool(self.expr >= 0)

    def subs(self, mapping: Mapping[sp.Symbol, sp.Expr]) -> "Constraint":
        return Constraint(self.relation, self.expr.xreplace(dict(mapping)))

    def relational(self) -> sp.Basic:
        """As a SymPy relation, for printing."""
        return sp.Eq(self.expr, 0) if self.relation == "==" else sp.Ge(self.expr, 0)

    @property
    def free_symbols(self) -> set[sp.Symbol]:
        return self.expr.free_symbols

    def __str__(self) -> str:
        return f"{self.expr} {self.relation} 0"


FALSE = Constraint(">=", -1)


def choices_in(expr: sp.Basic) -> set[AppliedUndef]:
    """The applications of uninterpreted functions (``sympy.Function("R")(o)``: a choice, such as the argmax of
    a window) in an expression; z3 reads them as uninterpreted functions, isl cannot."""
    return set(expr.atoms(AppliedUndef))


def inside_choice(v: sp.Symbol, expr: sp.Basic) -> bool:
    """Whether ``v`` occurs inside an uninterpreted application of ``expr`` (then ``expr`` is no polynomial in v)."""
    return any(v in f.free_symbols for f in choices_in(expr))


@dataclass(frozen=True)
class Fact:
    """premises imply conclusions: a property of a choice function instantiated at one of its applications
    (an instance of a universally true statement, so adding it as a hypothesis is sound)."""

    premises: tuple[Constraint, ...]
    conclusions: tuple[Constraint, ...]

    def __str__(self) -> str:
        join = lambda cs: " and ".join(map(str, cs)) or "true"
        return f"({join(self.premises)}) => ({join(self.conclusions)})"


def constraints(condition: sp.Basic) -> tuple[Constraint, ...]:
    """A conjunction of SymPy relations (``And``, ``Eq``, ``<``, ``<=``, ``>``, ``>=``, ``True``) as constraints."""
    if condition is sp.true or condition is True:
        return ()
    if condition is sp.false or condition is False:
        return (FALSE,)
    if isinstance(condition, sp.And):
        return tuple(c for arg in condition.args for c in constraints(arg))
    if isinstance(condition, sp.Eq):
        return (Constraint("==", condition.lhs - condition.rhs),)
    if isinstance(condition, (sp.Ge, sp.Gt, sp.Le, sp.Lt)):
        big, small = (condition.lhs, condition.rhs) if isinstance(condition, (sp.Ge, sp.Gt)) else (condition.rhs, condition.lhs)
        strict = isinstance(condition, (sp.Gt, sp.Lt))
        return (Constraint(">=", big - small - (1 if strict else 0)),)
    raise NotImplementedError(f"not a conjunction of integer (in)equalities: {condition}")


def simplified(items: Iterable[Constraint]) -> tuple[Constraint, ...] | None:
    """Constraints without duplicates and true constants; None if one is a false constant.

    A pair e >= 0, -e >= 0 becomes e == 0, so that a range of one value can be solved for."""
    out: dict[Constraint, None] = {}
    for c in items:
        truth = c.truth
        if truth is False:
            return None
        if truth is None:
            out[c] = None
    for c in [c for c in out if c.relation == ">="]:
        opposite = Constraint(">=", -c.expr)
        if c in out and opposite in out:
            del out[opposite]
            out = {(Constraint("==", c.expr) if x == c else x): None for x in out}
    return tuple(out)


@dataclass(frozen=True)
class Obligation:
    """For all integer parameters and variables: assumptions and hypotheses imply every goal."""

    name: str
    statement: str
    parameters: tuple[sp.Symbol, ...]
    variables: tuple[sp.Symbol, ...]
    assumptions: tuple[Constraint, ...]
    hypotheses: tuple[Constraint, ...]
    goals: tuple[Constraint, ...]
    facts: tuple[Fact, ...] = ()
    """What is known of the choice functions at their applications in this obligation."""

    @property
    def is_linear(self) -> bool:
        """Presburger: every constraint is affine in the parameters and variables together (and no choice)."""
        symbols = self.parameters + self.variables
        everything = self.assumptions + self.hypotheses + self.goals
        if self.facts or any(choices_in(c.expr) for c in everything):
            return False
        for c in everything:
            if c.expr.free_symbols and sp.Poly(c.expr, *symbols).total_degree() > 1:
                return False
        return True

    def __str__(self) -> str:
        join = lambda cs: " and ".join(map(str, cs)) or "true"
        return f"{self.name}: for all {', '.join(map(str, self.variables))}: {join(self.hypotheses)} => {join(self.goals)}"


@dataclass(frozen=True)
class SolverRun:
    """One solver's run on one obligation: its own text, its answer, and a counterexample point if it found one.

    ``proved`` is True only for the answer that means valid (z3 ``unsat`` of the negation, isl ``subset``);
    ``unknown`` and timeouts are answers too, and never proofs."""

    solver: str
    version: str
    text: str
    answer: str
    proved: bool
    seconds: float
    model: tuple[tuple[str, int], ...] = ()

    @property
    def point(self) -> dict[str, int]:
        return dict(self.model)
