"""ConvCPrinter on tiny expressions: exact strings, as SymPy tests its own printers."""

from __future__ import annotations

import pytest
import sympy as sp

from symconv.codegen.cprinter import ConvCPrinter, ccode
from symconv.codegen.lowering import ArrayEntry

X, F, B, G = sp.symbols("X_{12} F_{11} b dE/dO_{11}", real=True)
ARRAYS = {
    X: ArrayEntry("x", (0, 1, 2, 3), (2, 3, 4, 5)),  # (1*4 + 2)*5 + 3 = 33
    F: ArrayEntry("w", (0, 0, 0, 0), (1, 3, 2, 2)),
    B: ArrayEntry("b", (1,), (4,)),
    G: ArrayEntry("dy", (0, 0, 1, 1), (1, 1, 2, 2)),
}


@pytest.mark.parametrize(
    ("expr", "float64", "float32"),
    [
        (X, "x[33]", "x[33]"),
        (F * X + B, "w[0]*x[33] + b[1]", "w[0]*x[33] + b[1]"),
        (X * G, "x[33]*dy[3]", "x[33]*dy[3]"),
        (sp.Float(0.5) * X, "0.5*x[33]", "0.5f*x[33]"),
        (sp.Rational(1, 3) * F, "(1.0/3.0)*w[0]", "(1.0f/3.0f)*w[0]"),
        (2 * X - G, "2*x[33] - dy[3]", "2*x[33] - dy[3]"),
        (-(F + B) * X, "x[33]*(-w[0] - b[1])", "x[33]*(-w[0] - b[1])"),  # SymPy distributes the -1
        (sp.sqrt(X), "sqrt(x[33])", "sqrtf(x[33])"),
        (sp.Integer(0), "0", "0"),
    ],
)
def test_prints_flat_entries_and_typed_literals(expr, float64, float32):
    assert ccode(expr, ARRAYS, "float64") == float64
    assert ccode(expr, ARRAYS, "float32") == float32


def test_cse_temporaries_print_as_locals():
    t0 = sp.Symbol("t0")
    assert ConvCPrinter(ARRAYS, "float64").doprint(t0 * X + t0) == "x[33]*t0 + t0"


def test_entry_prints_an_assignment_target():
    assert ConvCPrinter({}, "float32").entry(ArrayEntry("dx", (0, 0, 2, 1), (1, 1, 3, 3))) == "dx[7]"


def test_offsets_are_row_major():
    shape = (2, 3, 4, 5)
    for index in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 0, 2)]:
        entry = ArrayEntry("x", index, shape)
        assert entry.offset == int(sp.Matrix(list(index)).dot([60, 20, 5, 1]))


def test_rejects_an_unknown_dtype():
    with pytest.raises(ValueError, match="float16"):
        ConvCPrinter(ARRAYS, "float16")
