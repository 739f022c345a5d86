"""isl: an ``Obligation`` affine in its symbols (fixed s and d) -> two isl sets and whether one is a subset.

Presburger arithmetic with parameters is decidable and isl decides it exactly: the obligation holds iff
{variables : assumptions and hypotheses} is a subset of {variables : goals} for every value of the parameters.
A point of the difference is a counterexample.
"""

from __future__ import annotations

import re
import time

import islpy as isl
import sympy as sp

from .obligation import Constraint, Obligation, SolverRun

__all__ = ["isl_text", "run_isl", "rerun_isl", "VERSION"]

VERSION = f"islpy {isl.VERSION_TEXT.strip()} ({isl.isl_version().strip()})"


def _names(o: Obligation) -> dict[sp.Symbol, str]:
    """isl identifiers: letters, digits and underscores (o_h' -> o_h_p)."""
    out: dict[sp.Symbol, str] = {}
    for s in o.parameters + o.variables:
        name = re.sub(r"\W", "_", s.name.replace("'", "_p"))
        while name in out.values():
            name += "_"
        out[s] = name
    return out


def _affine(expr: sp.Expr, names: dict[sp.Symbol, str]) -> str:
    poly = sp.Poly(expr, *names) if names else None
    if poly is None:
        return str(int(expr))
    parts = []
    for monomial, coefficient in poly.terms():
        variables = [names[s] for s, power in zip(names, monomial) for _ in range(power)]
        if len(variables) > 1:
            raise ValueError(f"not affine: {expr}")
        parts.append(f"{int(coefficient)}*{variables[0]}" if variables else f"{int(coefficient)}")
    return " + ".join(parts) or "0"


def _conjunction(cs: tuple[Constraint, ...], names: dict[sp.Symbol, str]) -> str:
    rel = {"==": "=", ">=": ">="}
    return " and ".join(f"{_affine(c.expr, names)} {rel[c.relation]} 0" for c in cs) or "0 = 0"


def isl_text(o: Obligation) -> tuple[str, str]:
    """(hypothesis set, goal set) in isl's notation."""
    names = _names(o)
    params = ", ".join(names[s] for s in o.parameters)
    dims = ", ".join(names[s] for s in o.variables)
    hyp = f"[{params}] -> {{ [{dims}] : {_conjunction(o.assumptions + o.hypotheses, names)} }}"
    goal = f"[{params}] -> {{ [{dims}] : {_conjunction(o.goals, names)} }}"
    return hyp, goal


def script(hyp: str, goal: str) -> str:
    return f"H := {hyp};\nG := {goal};\nH <= G;\n"


def _parse(text: str) -> tuple[str, str]:
    h = re.search(r"^H := (.*);$", text, re.M)
    g = re.search(r"^G := (.*);$", text, re.M)
    if not h or not g or "H <= G;" not in text:
        raise ValueError("not an isl obligation script (H := ...; G := ...; H <= G;)")
    return h.group(1), g.group(1)


def run_isl(o: Obligation) -> SolverRun:
    """isl on one affine obligation: ``subset`` proves it; otherwise a sample point of H \\ G refutes it."""
    start = time.perf_counter()
    hyp, goal = isl_text(o)
    h, g = isl.Set(hyp), isl.Set(goal)
    holds = h.is_subset(g)
    model: tuple[tuple[str, int], ...] = ()
    if not holds:
        point = h.subtract(g).sample_point()
        params = [(s.name, point.get_coordinate_val(isl.dim_type.param, i).to_python()) for i, s in enumerate(o.parameters)]
        dims = [(s.name, point.get_coordinate_val(isl.dim_type.set, i).to_python()) for i, s in enumerate(o.variables)]
        model = tuple(params + dims)
    seconds = time.perf_counter() - start
    return SolverRun("isl", VERSION, script(hyp, goal), "subset" if holds else "not subset", holds, seconds, model)


def rerun_isl(text: str) -> str:
    """isl's answer on a script as written in a certificate: ``subset`` or ``not subset``."""
    hyp, goal = _parse(text)
    return "subset" if isl.Set(hyp).is_subset(isl.Set(goal)) else "not subset"
