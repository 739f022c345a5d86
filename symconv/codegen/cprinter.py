"""C printer: SymPy expressions over the layer's symbols -> C99 expressions over flat, strided array entries.

``ConvCPrinter`` is SymPy's ``C99CodePrinter`` with two changes: a symbol that lives in an array prints as
``array[offset]`` (the row-major offset of its index), and float32 literals get the ``f`` suffix. Everything
else (precedence, minimal parentheses, term order) is SymPy's, so the printed code reads like the equations.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter

from .plan import CTYPES, ArrayEntry

__all__ = ["ConvCPrinter", "ccode"]

_FLOAT_TYPES = {"float32": float32, "float64": float64}


class ConvCPrinter(C99CodePrinter):
    """Prints expressions whose symbols are array entries, for arrays of ``dtype``.

    >>> x = sp.Symbol("x")
    >>> ConvCPrinter({x: ArrayEntry("x", (1, 2), (3, 4))}, "float32").doprint(sp.Float(0.5) * x)
    '0.5f*x[6]'
    """

    # SymPy spells the float suffix 'F'; C programmers (and gcc's diagnostics) write 'f'.
    type_literal_suffixes = {**C99CodePrinter.type_literal_suffixes, float32: "f"}

    def __init__(
        self, arrays: Mapping[sp.Symbol, ArrayEntry], dtype: str, settings: Optional[dict[str, Any]] = None
    ) -> None:
        if dtype not in CTYPES:
            raise ValueError(f"dtype must be one of {sorted(CTYPES)}, got {dtype!r}")
        # Setting the type of 'real' gives literals their suffix and math functions theirs (sinf, ...).
        super().__init__({**(settings or {}), "type_aliases": {real: _FLOAT_TYPES[dtype]}})
        self._arrays = arrays

    @property
    def arrays(self) -> Mapping[sp.Symbol, ArrayEntry]:
        """Which symbols print as array entries."""
        return self._arrays

    def entry(self, entry: ArrayEntry) -> str:
        """An array entry as C, ``x[6]``: the flat offset, since the layout's strides are compile-time constants."""
        return f"{entry.array}[{entry.offset}]"

    def _print_Symbol(self, expr: sp.Symbol) -> str:
        entry = self._arrays.get(expr)
        if entry is None:  # a temporary introduced by cse: a C local of the same name
            return super()._print_Symbol(expr)
        return self.entry(entry)


def ccode(expr: sp.Expr, arrays: Mapping[sp.Symbol, ArrayEntry], dtype: str) -> str:
    """Print one expression; a convenience for tests and one-off use (``render`` keeps one printer).

    >>> a, b = sp.symbols("a b")
    >>> ccode(a * b - sp.Rational(1, 3), {a: ArrayEntry("x", (2,), (4,))}, "float64")
    'x[2]*b - 1.0/3.0'
    """
    return ConvCPrinter(arrays, dtype).doprint(expr)
