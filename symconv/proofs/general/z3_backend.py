"""z3: an ``Obligation`` -> SMT-LIB text and z3's answer on it (nonlinear integer arithmetic: symbolic s and d).

The negation (assumptions, hypotheses and not all goals) is asserted: ``unsat`` proves the obligation, ``sat``
refutes it with a model, and ``unknown`` (z3 is incomplete for nonlinear integers) or a timeout proves nothing.
"""

from __future__ import annotations

import time
from typing import Mapping

import sympy as sp
import z3
from sympy.core.function import AppliedUndef

from .obligation import Constraint, Obligation, SolverRun

__all__ = ["smtlib", "run_z3", "rerun_z3", "VERSION"]

VERSION = z3.get_version_string()
SMALL = (4, 8, 16, 64)
"""Bounds tried in turn on every symbol once the obligation is refuted, for a small counterexample."""


def _term(expr: sp.Expr, symbols: Mapping[sp.Symbol, z3.ArithRef]) -> z3.ArithRef:
    if expr.is_Integer:
        return z3.IntVal(int(expr))
    if expr.is_Symbol:
        return symbols[expr]
    if isinstance(expr, AppliedUndef):
        # A choice (the argmax of a window): an uninterpreted integer function, the same declaration per name.
        f = z3.Function(expr.func.__name__, *([z3.IntSort()] * (len(expr.args) + 1)))
        return f(*(_term(a, symbols) for a in expr.args))
    if isinstance(expr, sp.Add):
        return z3.Sum([_term(a, symbols) for a in expr.args])
    if isinstance(expr, sp.Mul):
        return z3.Product([_term(a, symbols) for a in expr.args])
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        return z3.Product([_term(expr.base, symbols)] * int(expr.exp))
    raise ValueError(f"not an integer polynomial: {expr}")


def _formula(c: Constraint, symbols: Mapping[sp.Symbol, z3.ArithRef]) -> z3.BoolRef:
    e = _term(c.expr, symbols)
    return e == 0 if c.relation == "==" else e >= 0


def _solver(o: Obligation, timeout: float) -> tuple[z3.Solver, dict[sp.Symbol, z3.ArithRef]]:
    symbols = {s: z3.Int(s.name) for s in o.parameters + o.variables}
    solver = z3.Solver()
    solver.set("timeout", max(1, int(timeout * 1000)))
    for c in dict.fromkeys(o.assumptions + o.hypotheses):
        solver.add(_formula(c, symbols))
    for fact in o.facts:
        solver.add(z3.Implies(z3.And([_formula(c, symbols) for c in fact.premises]),
                              z3.And([_formula(c, symbols) for c in fact.conclusions])))
    solver.add(z3.Not(z3.And([_formula(c, symbols) for c in o.goals])))
    return solver, symbols


def _script(o: Obligation, solver: z3.Solver) -> str:
    return f"; {o.name}: {o.statement}\n(set-logic ALL)\n" + solver.sexpr() + "(check-sat)\n"


def smtlib(o: Obligation) -> str:
    """The obligation's negation as an SMT-LIB script (``(check-sat)`` answers ``unsat`` iff it holds)."""
    return _script(o, _solver(o, 1.0)[0])


def _model(solver: z3.Solver, symbols: Mapping[sp.Symbol, z3.ArithRef]) -> tuple[tuple[str, int], ...]:
    model = solver.model()
    return tuple((s.name, model.eval(v, model_completion=True).as_long()) for s, v in symbols.items())


def _small_model(o: Obligation, timeout: float) -> tuple[tuple[str, int], ...] | None:
    for bound in SMALL:
        solver, symbols = _solver(o, timeout)
        solver.add(z3.And([z3.And(v >= -bound, v <= bound) for v in symbols.values()]))
        if solver.check() == z3.sat:
            return _model(solver, symbols)
    return None


def run_z3(o: Obligation, timeout: float = 10.0) -> SolverRun:
    """z3 on one obligation; a refutation comes with the smallest model found under the bounds ``SMALL``."""
    start = time.perf_counter()
    solver, symbols = _solver(o, timeout)
    text = _script(o, solver)
    result = solver.check()
    seconds = time.perf_counter() - start
    if result == z3.unsat:
        return SolverRun("z3", VERSION, text, "unsat", True, seconds)
    if result == z3.sat:
        model = _small_model(o, timeout) or _model(solver, symbols)
        return SolverRun("z3", VERSION, text, "sat", False, seconds, model)
    reason = solver.reason_unknown()
    answer = "timeout" if "timeout" in reason or "canceled" in reason else f"unknown ({reason})"
    return SolverRun("z3", VERSION, text, answer, False, seconds)


def rerun_z3(text: str, timeout: float = 10.0) -> str:
    """z3's answer on an SMT-LIB script as written in a certificate: ``unsat``, ``sat`` or ``unknown``."""
    solver = z3.Solver()
    solver.set("timeout", max(1, int(timeout * 1000)))
    solver.from_string(text)
    result = solver.check()
    return "unsat" if result == z3.unsat else "sat" if result == z3.sat else "unknown"

