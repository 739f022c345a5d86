"""Transposed-convolution proofs: a ``TransposeDerivation`` -> a ``TransposeProofReport``, exactly, for one shape.

The transpose's forward (derived from its scatter definition) is proved equal to the input gradient of the
corresponding convolution, and its chain-rule gradients to their closed forms (the convolution's forward and
weight gradient); the adjoint identity <T(X), Y> = <X, conv(Y)> pairs the layer with the convolution. Both sides
are exact sparse polynomials (``symbolic.sparse.Poly``), so equality is equality of integer coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

import numpy as np

from ..symbolic import transpose_forms as closed
from ..symbolic.budget import Progress, check_budget
from ..symbolic.derive import derive
from ..symbolic.sparse import Poly, SymbolTable
from ..symbolic.symbols import positions, to_numpy
from ..symbolic.transpose import ConvTransposeSpec
from ..symbolic.transpose_derive import TransposeDerivation, derive_transpose
from .conv import Counterexample, Proof, Proofs

__all__ = ["TransposeProofReport", "prove_transpose"]


@dataclass(frozen=True)
class TransposeProofReport(Proofs[Proof]):
    """All identities of one transposed convolution; ``holds`` iff every one does."""

    spec: ConvTransposeSpec
    proofs: tuple[Proof, ...]

    def title(self) -> str:
        return self.spec.describe()

    def _repr_latex_(self) -> str:
        from ..printing.transpose import transpose_latex

        return f"$\\displaystyle {transpose_latex(self)}$"


def _first_difference(tensor: str, derived: np.ndarray, claimed: np.ndarray,
                      table: SymbolTable) -> Optional[Counterexample]:
    for index in positions(derived.shape):
        if derived[index] != claimed[index]:  # the same polynomial iff the same coefficients: exact
            lhs, rhs = derived[index], claimed[index]
            return Counterexample(tensor, index, table.decode(lhs), table.decode(rhs), table.decode(rhs - lhs))
    return None


def _compare(name: str, statement: str, pairs: list[tuple[str, np.ndarray, np.ndarray]],
             table: SymbolTable) -> Proof:
    for tensor, derived, claimed in pairs:
        if derived.shape != claimed.shape:
            raise ValueError(f"{name}: {tensor} has shape {derived.shape}, the claimed form {claimed.shape}")
        counterexample = _first_difference(tensor, derived, claimed, table)
        if counterexample is not None:
            return Proof(name, statement, False, counterexample)
    return Proof(name, statement, True)


def prove_transpose(spec_or_derivation: Union[ConvTransposeSpec, TransposeDerivation], *,
                    max_terms: Optional[int] = None, progress: Optional[Progress] = None) -> TransposeProofReport:
    """Prove every identity of one transposed convolution.

    ``conv_input_gradient`` also checks the claim against the convolution's own derivation: the transpose's
    output equals SymPy's chain-rule dE/dX of ``spec.conv`` (``symbolic.derive``) with dE/dO := X, entry by entry.

    >>> report = prove_transpose(ConvTransposeSpec((3, 3), (3, 3), stride=2, padding=1, output_padding=1))
    >>> report.holds, [p.name for p in report.proofs][:2]
    (True, ['conv_input_gradient', 'forward'])
    """
    spec = spec_or_derivation.spec if isinstance(spec_or_derivation, TransposeDerivation) else spec_or_derivation
    check_budget(spec.conv, max_terms, "prove")
    d = (spec_or_derivation if isinstance(spec_or_derivation, TransposeDerivation)
         else derive_transpose(spec, max_terms=max_terms))
    table = SymbolTable(d.symbols)

    def polys(array: object) -> np.ndarray:
        values = to_numpy(array)
        out = np.empty(values.shape, dtype=object)
        for index in positions(values.shape):
            out[index] = table.encode(values[index])
        return out

    X, F, b, G = (polys(t) for t in (d.input, d.weight, d.bias, d.grad_output))
    Y, dX, dF, db = (polys(t) for t in (d.output, d.grad_input, d.grad_weight, d.grad_bias))
    Y_linear = Y - b[None, :, None, None] if spec.bias else Y

    def against_conv_derivation() -> Proof:
        # One group's convolution (groups = 1) derived by SymPy with its own symbols; renaming its F to the
        # group's filters and its dE/dO to the group's X (zeros past the input when output_padding >= stride)
        # turns its chain-rule dE/dX into the claimed output channels of the group.
        conv = closed.group_conv(spec)
        c = derive(conv)
        cF, cG, cdX = to_numpy(c.weight), to_numpy(c.grad_output), to_numpy(c.grad_input)
        dF_, dX_ = to_numpy(d.weight), to_numpy(d.input)
        (h, w), (cin, cout) = spec.input_size, (conv.out_channels, conv.in_channels)
        claimed = np.empty(Y_linear.shape, dtype=object)
        for g in range(spec.groups):
            renaming = {s: 0 for s in cG.flat}
            renaming.update(zip(cF.flat, dF_[g * cin:(g + 1) * cin].flat))
            renaming.update(zip(cG[:, :, :h, :w].flat, dX_[:, g * cin:(g + 1) * cin].flat))
            for n, k, i, j in positions(cdX.shape):
                claimed[n, g * cout + k, i, j] = table.encode(cdX[n, k, i, j].xreplace(renaming))
        return _compare("conv_input_gradient",
                        f"Y - b equals SymPy's chain-rule dE/dX of the convolution ({conv.describe()}), "
                        "group by group, at dE/dO = X",
                        [("output", Y_linear, claimed)], table)

    steps: list[Callable[[], Proof]] = [
        against_conv_derivation,
        lambda: _compare("forward",
                         "Y = Correlation(pad(dilate(X, s), k_eff-1-p, k_eff-1-p+a), rot180(dilate(F, d))) + b: the "
                         "full convolution that is the corresponding convolution's input gradient",
                         [("output", Y, closed.forward(spec, X, F, b))], table),
        lambda: _compare("grad_input",
                         "dE/dX = Correlation(pad(dE/dY, p), dilate(F, d), stride s): the corresponding "
                         "convolution's forward pass applied to dE/dY",
                         [("grad_input", dX, closed.grad_input(spec, F, G))], table),
        lambda: _compare("grad_weight",
                         "dE/dF = Correlation(pad(dE/dY, p), dilate(X, s)) cropped to the kernel: the "
                         "convolution's weight gradient with input and output gradient swapped",
                         [("grad_weight", dF, closed.grad_weight(spec, X, G))], table),
        lambda: _compare("grad_bias", "dE/db = sum of dE/dY over batch and space",
                         [("grad_bias", db, closed.grad_bias(spec, G))], table),
        lambda: _adjoint(Y_linear, G, X, closed.grad_input(spec, F, G), table),
    ]
    proofs = []
    for done, step in enumerate(steps):
        if progress is not None:
            progress("prove", done, len(steps))
        proofs.append(step())
    if progress is not None:
        progress("prove", len(steps), len(steps))
    return TransposeProofReport(spec, tuple(proofs))


def _adjoint(Y: np.ndarray, G: np.ndarray, X: np.ndarray, conv_of_G: np.ndarray, table: SymbolTable) -> Proof:
    name, statement = "adjoint", "<conv^T(X), Y> = <X, conv(Y)> as polynomials: the transpose is the adjoint"
    lhs, rhs = Poly.inner(Y.flat, G.flat), Poly.inner(X.flat, conv_of_G.flat)
    if lhs == rhs:
        return Proof(name, statement, True)
    return Proof(name, statement, False, Counterexample("<conv^T(X), Y> - <X, conv(Y)>", (), table.decode(lhs),
                                                       table.decode(rhs), table.decode(rhs - lhs)))
