"""Exact zero test: an expression -> a canonical form that is 0 iff the expression is identically 0.

Shared by every proof (``prove`` for the layer identities, ``layer_proofs`` and ``network_proofs`` for the
piecewise layers and losses): expanded polynomials through SymPy's sparse polynomial ring, and rational functions
of ``exp`` atoms through their expanded numerator. Exact throughout: no floats, no ``simplify``.
"""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

__all__ = ["reduce_difference", "is_zero"]


def _is_rational_function(expr: sp.Expr) -> bool:
    return bool(expr.atoms(sp.exp)) or any(p.exp.is_negative and not p.base.is_number for p in expr.atoms(sp.Pow))


@lru_cache(maxsize=64)
def _ring(symbols: tuple[sp.Symbol, ...]) -> sp.polys.rings.PolyRing:
    return sp.ring(symbols, sp.QQ)[0]


def reduce_difference(given: object) -> sp.Expr:
    """A canonical form that is 0 iff ``expr`` is identically 0: the expanded polynomial, or for expressions with
    ``exp`` and fractions, the expanded numerator over the denominator with every ``exp(z)`` an independent unknown.

    A rational function of independent unknowns that vanishes identically vanishes whatever values they take, so
    replacing the exp atoms keeps the test sound; it is exact throughout (no floats, no ``simplify``).
    """
    expr: sp.Expr = sp.sympify(given)
    if expr.is_Rational:
        return expr
    if not _is_rational_function(expr):
        symbols = tuple(sorted(expr.free_symbols, key=sp.default_sort_key))
        if symbols:
            try:
                # SymPy's sparse polynomial ring multiplies out an order of magnitude faster than ``expand``.
                return _ring(symbols).from_expr(expr).as_expr()
            except ValueError:  # not a polynomial in its symbols (a Heaviside, a Max): expand instead
                pass
        return sp.expand(expr)
    atoms = sorted(expr.atoms(sp.exp), key=sp.default_sort_key)
    unknowns = {atom: sp.Dummy("u", positive=True) for atom in atoms}
    numerator, denominator = sp.together(expr.xreplace(unknowns)).as_numer_denom()
    numerator = sp.expand(numerator)
    back = {u: atom for atom, u in unknowns.items()}
    return sp.S.Zero if numerator == 0 else (numerator / denominator).xreplace(back)


def is_zero(expr: object) -> bool:
    """Whether ``expr`` is identically zero, decided exactly (see ``reduce_difference``).

    >>> a, b = sp.symbols("a b")
    >>> is_zero((a + b) ** 2 - a**2 - 2*a*b - b**2), is_zero(sp.exp(a) / (sp.exp(a) + sp.exp(b)) - 1)
    (True, False)
    """
    return reduce_difference(expr) == 0
