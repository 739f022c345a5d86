"""LaTeX pieces: SymPy expressions and NumPy object maps -> LaTeX strings (symbols, elided sums, ``pmatrix``).

The symbol names of ``symbols`` are already LaTeX (``X_{11}``, ``F^{(1,2)}_{11}``), so the printer keeps them
verbatim and only spells the upstream gradients ``dE/dO_{11}`` as ``\\frac{\\partial E}{\\partial O_{11}}``.
Everything long is cut to a readable size here: sums to ``max_terms`` terms, lists to ``max_entries`` entries,
matrices to ``max_matrix`` rows and columns, the rest standing behind ``\\cdots``, ``\\vdots`` and ``\\ddots``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, Iterable, Optional, Sequence

import numpy as np
import sympy as sp
from sympy.printing.latex import LatexPrinter

from ..symbolic.symbols import GRAD_PREFIX

__all__ = ["LatexOptions", "ConvLatexPrinter", "partial", "elide", "sum_rows", "pmatrix", "escape", "text", "VDOTS_ROW"]

CDOTS = r"\cdots"
VDOTS_ROW = r"&\;\vdots"
"""The row of an ``aligned`` list that stands for the entries left out."""


@dataclass(frozen=True)
class LatexOptions:
    """How much is printed. ``bias=False`` leaves ``+ b`` and dE/db out, as the textbooks that have no bias do.

    >>> LatexOptions(max_terms=2)
    Traceback (most recent call last):
    ...
    ValueError: max_terms must be an integer >= 3, got 2
    """

    bias: bool = True
    max_entries: int = 16  # equations per list (outputs, filter entries, input entries)
    max_terms: int = 12  # terms per sum
    max_matrix: int = 5  # rows and columns per written-out matrix
    terms_per_line: int = 5  # terms per row before a sum continues on the next row

    def __post_init__(self) -> None:
        minimum = {"max_entries": 2, "max_terms": 3, "max_matrix": 3, "terms_per_line": 1}
        for name, low in minimum.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.bias, bool):
            raise ValueError(f"bias must be a bool, got {self.bias!r}")

    @classmethod
    def of(cls, options: dict[str, Any]) -> "LatexOptions":
        """Options from keyword arguments, naming any unknown one."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown LaTeX option(s) {unknown}; known: {sorted(known)}")
        return cls(**options)


def partial(numerator: str, denominator: str) -> str:
    r"""The Leibniz notation for a partial derivative of two printed names.

    >>> partial("E", "F_{11}")
    '\\frac{\\partial E}{\\partial F_{11}}'
    """
    return rf"\frac{{\partial {numerator}}}{{\partial {denominator}}}"


def elide(n: int, limit: int, important: Optional[Iterable[int]] = None) -> list[Optional[int]]:
    """Which of ``n`` items to print, at most ``limit``: the first, the last and the first ``important`` ones
    (all items if none are named); ``None`` stands for each run of items left out.

    >>> elide(4, 12)
    [0, 1, 2, 3]
    >>> elide(100, 5)
    [0, 1, 2, 3, None, 99]
    >>> elide(100, 5, important=[40, 41])
    [0, None, 40, 41, None, 99]
    """
    if n <= limit:
        return list(range(n))
    candidates = range(n) if important is None else important
    inner = [i for i in candidates if i not in (0, n - 1)][: limit - 2]
    out: list[Optional[int]] = []
    previous = -1
    for i in sorted({0, n - 1, *inner}):
        if i != previous + 1:
            out.append(None)
        out.append(i)
        previous = i
    return out


class ConvLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer with symconv's names kept verbatim and long sums cut after ``max_terms`` terms.

    >>> x, g = sp.Symbol("X_{11}"), sp.Symbol("dE/dO_{11}")
    >>> ConvLatexPrinter().doprint(2 * x * g)
    '2 X_{11} \\\\frac{\\\\partial E}{\\\\partial O_{11}}'
    >>> ConvLatexPrinter({"max_terms": 3}).doprint(sp.Add(*sp.symbols("a:9")))
    'a_{0} + a_{1} + \\\\cdots + a_{8}'
    """

    _default_settings = {**LatexPrinter._default_settings, "max_terms": None}

    def _print_Symbol(self, expr: sp.Symbol, style: str = "plain") -> str:
        name = expr.name
        if name.startswith(GRAD_PREFIX):
            return partial("E", name[len(GRAD_PREFIX) :])
        # symconv's names are LaTeX already; SymPy's own splitting of sub/superscripts is for plain names.
        if "{" in name or "\\" in name:
            return name
        return super()._print_Symbol(expr, style)

    def _as_ordered_terms(self, expr: sp.Expr, order: Optional[str] = None) -> list[sp.Expr]:
        # The one place SymPy lists a sum's terms: cutting the list here keeps SymPy's own signs and brackets.
        terms = super()._as_ordered_terms(expr, order)
        limit = self._settings["max_terms"]
        if limit is None or len(terms) <= limit:
            return terms
        return [sp.Symbol(CDOTS) if i is None else terms[i] for i in elide(len(terms), limit)]


def sum_rows(lhs: str, terms: Sequence[Optional[str]], per_line: int) -> list[str]:
    r"""Rows of an ``aligned`` block for ``lhs = t_1 + t_2 + ...``, ``per_line`` terms a row; ``None`` is a gap.

    >>> sum_rows("O", ["a", "b", None, "z"], per_line=2)
    ['O &= a + b', '&\\quad + \\cdots + z']
    >>> sum_rows("", [], per_line=2)
    ['&= 0']
    """
    pieces = [CDOTS if t is None else t for t in terms] or ["0"]
    chunks = [" + ".join(pieces[i : i + per_line]) for i in range(0, len(pieces), per_line)]
    first = f"{lhs} &= {chunks[0]}" if lhs else f"&= {chunks[0]}"
    return [first] + [rf"&\quad + {chunk}" for chunk in chunks[1:]]


def pmatrix(m: np.ndarray, printer: ConvLatexPrinter, limit: int) -> str:
    r"""A 2-D map as a ``pmatrix``: ``limit`` rows and columns written out, the rest behind dots.

    >>> from symconv.symbolic.forms import matrix
    >>> pmatrix(matrix([[1, 2], [3, 4]]), ConvLatexPrinter(), limit=6)
    '\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}'
    >>> pmatrix(matrix([list(range(9))]), ConvLatexPrinter(), limit=4)
    '\\begin{pmatrix} 0 & 1 & 2 & \\cdots & 8 \\end{pmatrix}'
    """
    rows, cols = elide(m.shape[0], limit), elide(m.shape[1], limit)

    def cell(i: Optional[int], j: Optional[int]) -> str:
        if i is None:
            return r"\ddots" if j is None else r"\vdots"
        return CDOTS if j is None else printer.doprint(m[i, j])

    body = r" \\ ".join(" & ".join(cell(i, j) for j in cols) for i in rows)
    return rf"\begin{{pmatrix}} {body} \end{{pmatrix}}"


_TEXT_ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "&": r"\&", "%": r"\%",
                 "$": r"\$", "#": r"\#", "^": r"\^{}", "~": r"\~{}",
                 "<": r"\ensuremath{\langle}", ">": r"\ensuremath{\rangle}"}


def escape(plain: str) -> str:
    r"""Plain prose as text-mode LaTeX; ``<`` and ``>`` (inner products here) become angle brackets.

    >>> escape("<conv(X), Y> & 100%_")
    '\\ensuremath{\\langle}conv(X), Y\\ensuremath{\\rangle} \\& 100\\%\\_'
    """
    return "".join(_TEXT_ESCAPES.get(char, char) for char in plain)


def text(plain: str) -> str:
    r"""Plain prose as math-mode LaTeX: ``\text{...}`` pieces, with ``<`` and ``>`` as ``\langle``, ``\rangle``.

    >>> text("<a, b_1> = 0")
    '\\langle \\text{a, b\\_1} \\rangle \\text{ = 0}'
    """
    out: list[str] = []
    for piece in re.split(r"([<>])", plain):
        if piece in ("<", ">"):
            out.append(r"\langle" if piece == "<" else r"\rangle")
        elif piece:
            out.append(rf"\text{{{escape(piece)}}}")
    return " ".join(out)
