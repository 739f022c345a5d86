r"""Transposed-convolution LaTeX: a ``TransposeDerivation`` or ``TransposeProofReport`` -> math-mode LaTeX.

``transpose_latex(obj, **options)`` returns ``aligned`` blocks, as ``latex`` does for a convolution: the scatter
definition, the closed forms with the layer's sizes (the corresponding convolution's passes), and the derived
entries of Y and of every gradient; for a report, one row per proof. Options are ``LatexOptions``' fields.
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np
import sympy as sp

from ..proofs.transpose import TransposeProofReport
from ..symbolic.budget import check_budget
from ..symbolic.symbols import to_numpy
from ..symbolic.transpose import ConvTransposeSpec
from ..symbolic.transpose_derive import TransposeDerivation
from .latex import proof_rows
from .latex_printer import VDOTS_ROW, ConvLatexPrinter, LatexOptions, elide, partial, text

__all__ = ["transpose_latex", "closed_form_rows"]


def _aligned(rows: list[str]) -> str:
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def _pair(values: tuple[int, int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"({values[0]},{values[1]})"


def closed_form_rows(spec: ConvTransposeSpec, bias: bool = True) -> list[str]:
    r"""The definition and the closed forms with this layer's sizes, one ``aligned`` row each.

    >>> rows = closed_form_rows(ConvTransposeSpec((3, 3), (3, 3), stride=2, padding=1, output_padding=1))
    >>> rows[1]
    'Y &= \\operatorname{Corr}\\big(\\operatorname{pad}_{1,\\,2}(\\operatorname{dilate}_{2} X),\\ \\operatorname{rot180}(F)\\big) + b'
    """
    conv = spec.conv
    (before, after) = conv.full_padding[0] if conv.full_padding[0] == conv.full_padding[1] else (None, None)
    pads = (rf"{before},\,{after}" if before is not None
            else rf"{_pair((conv.full_padding[0][0], conv.full_padding[1][0]))},\,"
                 rf"{_pair((conv.full_padding[0][1], conv.full_padding[1][1]))}")
    s, d = _pair(spec.stride), _pair(spec.dilation)
    p = _pair(spec.pad_begin) if spec.is_symmetric else rf"{_pair(spec.pad_begin)},\,{_pair(spec.pad_end)}"
    dilated_F = r"F" if spec.dilation == (1, 1) else rf"\operatorname{{dilate}}_{{{d}}} F"
    dilated_X = r"X" if spec.stride == (1, 1) else rf"\operatorname{{dilate}}_{{{s}}} X"
    b = " + b" if bias and spec.bias else ""
    groups = r",\ \text{channel sums within a group}" if spec.groups > 1 else ""
    rows = [
        rf"Y_{{o}} &= \sum_{{i\, s - p + d\, m = o}} X_{{i}} F_{{m}}{b} \quad \text{{(the scatter: }}s = {s},\ "
        rf"p = {p},\ d = {d},\ a = {_pair(spec.output_padding)}\text{{)}}",
        rf"Y &= \operatorname{{Corr}}\big(\operatorname{{pad}}_{{{pads}}}({dilated_X}),\ "
        rf"\operatorname{{rot180}}({dilated_F})\big){b}",
        r"&" + text(f"= the input gradient of the convolution {conv.describe()}") + groups,
        rf"\frac{{\partial E}}{{\partial X}} &= \operatorname{{Corr}}_{{s = {s}}}\big(\operatorname{{pad}}_{{{p}}}"
        rf"(\tfrac{{\partial E}}{{\partial Y}}),\ {dilated_F}\big) \quad \text{{(the convolution's forward pass)}}",
        rf"\frac{{\partial E}}{{\partial F}} &= \operatorname{{Corr}}\big(\operatorname{{pad}}_{{{p}}}"
        rf"(\tfrac{{\partial E}}{{\partial Y}}),\ {dilated_X}\big)\big|_{{k_{{\mathrm{{eff}}}}}}"
        r" \quad \text{(the convolution's weight gradient, arrays swapped)}",
    ]
    if bias and spec.bias:
        rows.append(r"\frac{\partial E}{\partial b_k} &= \sum_{n,i,j} \frac{\partial E}{\partial Y^{(n,k)}_{ij}}")
    return rows


def _rows(lhs: list[str], values: list[Any], printer: ConvLatexPrinter, limit: int) -> list[str]:
    """``lhs &= value`` for up to ``limit`` entries, the rest behind a row of dots."""
    return [VDOTS_ROW if i is None else f"{lhs[i]} &= {printer.doprint(values[i])}" for i in elide(len(lhs), limit)]


def transpose_latex(obj: Union[TransposeDerivation, TransposeProofReport], *, term_limit: Optional[int] = None,
                    **options: Any) -> str:
    r"""The LaTeX of a transposed convolution's derivation or proof report, as ``aligned`` blocks.

    >>> from symconv import ConvTransposeSpec, derive_transpose
    >>> tex = transpose_latex(derive_transpose(ConvTransposeSpec((2, 2), (2, 2))), bias=False)
    >>> [line for line in tex.splitlines() if line.startswith("Y_{11}")]
    ['Y_{11} &= F_{11} X_{11} \\\\']
    """
    o = LatexOptions.of(options)
    if isinstance(obj, TransposeProofReport):
        verdict = "all hold" if obj.holds else "some FAIL"
        header = "&" + text(f"Proofs for {obj.spec.describe()}: {verdict}")
        return _aligned([header] + [row for proof in obj.proofs for row in proof_rows(proof, o)])
    if not isinstance(obj, TransposeDerivation):
        raise TypeError(f"transpose_latex() prints a TransposeDerivation or TransposeProofReport, "
                        f"not {type(obj).__name__}")
    check_budget(obj.spec.conv, term_limit, "latex", keyword="term_limit")
    printer = ConvLatexPrinter({"max_terms": o.max_terms})
    b = to_numpy(obj.bias)
    drop_bias = {s: 0 for s in b.flat} if not o.bias else {}
    output = np.array([sp.sympify(v).xreplace(drop_bias) for v in to_numpy(obj.output).flat], dtype=object)
    names = [f"Y{str(s)[len('dE/dY'):]}" for s in to_numpy(obj.grad_output).flat]
    blocks = [closed_form_rows(obj.spec, o.bias), _rows(names, list(output), printer, o.max_entries)]
    for wrt in ("input", "weight", "bias") if o.bias and obj.spec.bias else ("input", "weight"):
        lhs = [partial("E", printer.doprint(t)) for t in to_numpy(obj.tensor(wrt)).flat]
        blocks.append(_rows(lhs, list(to_numpy(obj.gradient(wrt)).flat), printer, o.max_entries))
    return "\\begin{gathered}\n" + " \\\\[2ex]\n".join(_aligned(rows) for rows in blocks) + "\n\\end{gathered}"
