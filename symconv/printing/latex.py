r"""LaTeX: a ``Derivation``, ``Proof``, ``ProofReport`` or tensor (``sympy.Array``) -> math-mode amsmath LaTeX.

``latex(obj, **options)`` returns what goes inside a display (``\[ ... \]``, or ``$\displaystyle ...$`` as
the ``_repr_latex_`` methods wrap it): ``aligned`` blocks of textbook equations. The standalone document is
``latex_document``. Options are the fields of ``LatexOptions``: ``bias`` (show ``+ b`` and dE/db; the
textbooks without a bias are ``bias=False``), ``max_entries``, ``max_terms``, ``max_matrix``, ``terms_per_line``. A derivation over the term budget
(``symbolic.budget``) is refused unless ``term_limit`` raises it.
"""

from __future__ import annotations

import re
from typing import Any, Optional, Sequence, Union

import numpy as np
import sympy as sp

from ..proofs.conv import Counterexample, Proof, ProofReport
from ..proofs.general.report import GeneralProof, GeneralProofReport
from ..symbolic.budget import check_budget
from ..symbolic.derive import Derivation
from ..symbolic.symbols import positions, to_numpy
from .equations import derivation_sections
from .general import general_rows, report_rows
from .latex_printer import VDOTS_ROW, ConvLatexPrinter, LatexOptions, elide, pmatrix, text

__all__ = ["latex", "LatexOptions", "proof_rows", "counterexample_rows"]

Printable = Union[Derivation, Proof, ProofReport, GeneralProof, GeneralProofReport, sp.NDimArray, sp.MatrixBase]


def latex(obj: Printable, *, term_limit: Optional[int] = None, **options: Any) -> str:
    r"""The LaTeX of a derivation, a proof, a proof report or a tensor, as math-mode ``aligned`` blocks.

    >>> from symconv import ConvSpec, derive
    >>> d = derive(ConvSpec((3, 3), (2, 2)))
    >>> print(latex(d, bias=False).splitlines()[2])
    O_{11} &= F_{11} X_{11} + F_{12} X_{12} + F_{21} X_{21} + F_{22} X_{22} \\
    >>> print(latex(d.weight))
    \begin{pmatrix} F_{11} & F_{12} \\ F_{21} & F_{22} \end{pmatrix}
    """
    o = LatexOptions.of(options)
    if isinstance(obj, Derivation):
        # ``max_terms`` already names the printed terms per sum; the budget of the layer is ``term_limit``.
        check_budget(obj.spec, term_limit, "latex", keyword="term_limit")
        blocks = [block for section in derivation_sections(obj, o) for block in section.blocks]
        return _gathered([_aligned(rows) for rows in blocks])
    if isinstance(obj, ProofReport):
        verdict = "all hold" if obj.holds else "some FAIL"
        header = "&" + text(f"Proofs for {obj.spec.describe()}: {verdict}")
        return _aligned([header] + [row for proof in obj.proofs for row in proof_rows(proof, o)])
    if isinstance(obj, Proof):
        return _aligned(proof_rows(obj, o))
    if isinstance(obj, GeneralProofReport):
        return _aligned(report_rows(obj))
    if isinstance(obj, GeneralProof):
        return _aligned(general_rows(obj))
    if isinstance(obj, (sp.NDimArray, sp.MatrixBase)):
        return _tensor(to_numpy(sp.Array(obj)), o)
    raise TypeError(f"latex() prints a Derivation, Proof, ProofReport, GeneralProof(Report) or sympy Array, "
                    f"not {type(obj).__name__}")


def _aligned(rows: Sequence[str]) -> str:
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def _gathered(blocks: list[str]) -> str:
    # Space between the blocks (forward sums, matrix form, chain rule, ...), as between a textbook's displays.
    return "\\begin{gathered}\n" + " \\\\[2ex]\n".join(blocks) + "\n\\end{gathered}"


def _name(identifier: str) -> str:
    return rf"\mathtt{{{identifier}}}".replace("_", r"\_")


def proof_rows(proof: Proof, options: LatexOptions | None = None) -> list[str]:
    r"""Rows of an ``aligned`` block: the proof's name, statement and verdict, then any counterexample.

    >>> from symconv import ConvSpec
    >>> from symconv.proofs.conv import prove
    >>> proof_rows(prove(ConvSpec((3, 3), (2, 2)))["grad_bias"])
    ['\\mathtt{grad\\_bias} &\\colon \\text{dE/db = sum of dE/dO over batch and space} \\quad \\text{(holds)}']
    """
    verdict = r"\text{(holds)}" if proof.holds else r"\text{(FAILS)}"
    rows = [rf"{_name(proof.name)} &\colon {text(proof.statement)} \quad {verdict}"]
    if proof.counterexample is not None:
        rows += counterexample_rows(proof.counterexample, options or LatexOptions())
    return rows


def counterexample_rows(c: Counterexample, options: LatexOptions) -> list[str]:
    """Where the two sides of a failed proof differ, and by what; long sums are cut like everywhere else."""
    printer = ConvLatexPrinter({"max_terms": options.max_terms})
    # A tensor entry is printed as code, tensor[i, j, ...]; a polynomial coefficient's description as prose.
    where = _name(c.tensor) + str(list(c.index)) if re.fullmatch(r"\w+", c.tensor) else text(c.tensor)
    return [
        rf"&\quad \text{{at }} {where}\colon",
        rf"&\quad \text{{derived }} {printer.doprint(c.derived)}",
        rf"&\quad \text{{claimed }} {printer.doprint(c.claimed)}",
        rf"&\quad \text{{difference }} {printer.doprint(c.difference)}",
    ]


def _tensor(m: np.ndarray, o: LatexOptions) -> str:
    """A map as a ``pmatrix``; a higher tensor as one ``pmatrix`` per leading index (``[n, c, :, :]``)."""
    printer = ConvLatexPrinter({"max_terms": o.max_terms})
    if m.ndim <= 2:
        return pmatrix(m.reshape((1,) * (2 - m.ndim) + m.shape), printer, o.max_matrix)
    lead = m.shape[:-2]
    if int(np.prod(lead)) == 1:
        return pmatrix(m.reshape(m.shape[-2:]), printer, o.max_matrix)
    indices = list(positions(lead))
    rows = []
    for i in elide(len(indices), o.max_entries):
        if i is None:
            rows.append(VDOTS_ROW)
            continue
        label = ", ".join(map(str, indices[i])) + ", :, :"
        rows.append(rf"[{label}] &= {pmatrix(m[indices[i]], printer, o.max_matrix)}")
    return _aligned(rows)
