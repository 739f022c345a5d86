"""Proofs: a ``Derivation`` -> a ``ProofReport`` that its chain-rule results equal the textbook closed forms, exactly.

Every entry here is a polynomial (bilinear in the layer, trilinear in the adjoint identities), so two sides are
equal iff their expanded difference is the zero polynomial: comparing exact coefficients, never ``simplify``,
and never sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Union

import numpy as np
import sympy as sp

from ..symbolic import forms
from ..symbolic.derive import Derivation, derive
from ..symbolic.exact import reduce_difference
from ..symbolic.spec import ConvSpec
from ..symbolic.symbols import positions, to_numpy

__all__ = ["Proof", "Proofs", "Counterexample", "ProofReport", "prove", "check", "compare", "Checkable"]

Checkable = Literal["output", "grad_input", "grad_weight", "grad_bias"]


@dataclass(frozen=True)
class Counterexample:
    """The first entry where the two sides differ: ``difference = claimed - derived``."""

    tensor: str
    index: tuple[int, ...]
    derived: sp.Expr
    claimed: sp.Expr
    difference: sp.Expr

    def __str__(self) -> str:
        return f"{self.tensor}{list(self.index)}: derived {self.derived}, claimed {self.claimed}, differ by {self.difference}"


@dataclass(frozen=True)
class Proof:
    """One identity, checked exactly for one spec."""

    name: str
    statement: str
    holds: bool
    counterexample: Counterexample | None = None

    def __str__(self) -> str:
        verdict = "holds" if self.holds else f"FAILS at {self.counterexample}"
        return f"{self.name}: {self.statement} -- {verdict}"

    def _repr_latex_(self) -> str:
        from ..printing.latex import latex

        return f"$\\displaystyle {latex(self)}$"


class Proofs:
    """What every report of proofs has: ``holds`` iff each proof does, lookup by name, one line per proof."""

    proofs: tuple[Proof, ...]

    @property
    def holds(self) -> bool:
        return all(p.holds for p in self.proofs)

    def __getitem__(self, name: str) -> Proof:
        for proof in self.proofs:
            if proof.name == name:
                return proof
        raise KeyError(name)

    def title(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        lines = [f"Proofs for {self.title()}:"]
        lines += [f"  [{'ok' if p.holds else 'FAIL'}] {p}" for p in self.proofs]
        return "\n".join(lines)


@dataclass(frozen=True)
class ProofReport(Proofs):
    """All identities of one spec; ``holds`` iff every one does."""

    spec: ConvSpec
    proofs: tuple[Proof, ...]

    def title(self) -> str:
        return self.spec.describe()

    def _repr_latex_(self) -> str:
        from ..printing.latex import latex

        return f"$\\displaystyle {latex(self)}$"


def _first_difference(tensor: str, derived: np.ndarray, claimed: np.ndarray) -> Counterexample | None:
    for index in positions(derived.shape):
        lhs, rhs = sp.sympify(derived[index]), sp.sympify(claimed[index])
        # SymPy keeps sums and products in a canonical order, so two expanded polynomials with the same
        # coefficients are the same tree: structural equality proves equality at once. Otherwise the reduced
        # difference decides, exactly.
        if lhs == rhs:
            continue
        difference = reduce_difference(rhs - lhs)
        if difference != 0:
            return Counterexample(tensor, index, lhs, rhs, difference)
    return None


def compare(name: str, statement: str, pairs: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> Proof:
    """One proof over pairs (tensor name, derived, claimed): the first entry whose difference is not 0 refutes."""
    for tensor, derived, claimed in pairs:
        if derived.shape != claimed.shape:
            raise ValueError(f"{name}: {tensor} has shape {derived.shape}, the claimed form {claimed.shape}")
        counterexample = _first_difference(tensor, derived, claimed)
        if counterexample is not None:
            return Proof(name, statement, False, counterexample)
    return Proof(name, statement, True)


Monomial = tuple[sp.Expr, ...]


def _factors(term: sp.Expr) -> tuple[sp.Expr, Monomial]:
    """A monomial as (coefficient, its factors with powers spelled out), the factors in a fixed order."""
    coefficient, rest = term.as_coeff_Mul()
    factors: list[sp.Expr] = []
    for f in sp.Mul.make_args(rest):
        if f.is_Pow and f.exp.is_Integer and f.exp > 0:
            factors += [f.base] * int(f.exp)
        elif f != 1:
            factors.append(f)
    return coefficient, tuple(sorted(factors, key=hash))


def _monomials(x: sp.Expr) -> list[tuple[sp.Expr, Monomial]]:
    terms = sp.Add.make_args(x)
    if any(t.is_Mul and any(f.is_Add for f in t.args) for t in terms):
        terms = sp.Add.make_args(sp.expand(x))
    return [_factors(t) for t in terms]


def _inner(a: np.ndarray, b: np.ndarray) -> dict[Monomial, sp.Expr]:
    """<a, b> as a polynomial {monomial: coefficient}, distributing every product term by term.

    Building the trilinear sums as SymPy trees would cost most of the proof's time; a dictionary of exact
    coefficients is the same polynomial."""
    poly: dict[Monomial, sp.Expr] = {}
    for x, y in zip(a.flat, b.flat):
        for cs, fs in _monomials(x):
            for ct, ft in _monomials(y):
                key = tuple(sorted(fs + ft, key=hash))
                poly[key] = poly.get(key, 0) + cs * ct
    return {m: c for m, c in poly.items() if c != 0}


def _compare_polynomials(name: str, statement: str, lhs: dict[Monomial, sp.Expr], rhs: dict[Monomial, sp.Expr]) -> Proof:
    if lhs == rhs:
        return Proof(name, statement, True)
    for monomial in sorted(lhs.keys() | rhs.keys(), key=lambda m: sp.default_sort_key(sp.Mul(*m))):
        derived, claimed = lhs.get(monomial, sp.S.Zero), rhs.get(monomial, sp.S.Zero)
        if derived != claimed:
            where = f"coefficient of {sp.Mul(*monomial)} in"
            return Proof(name, statement, False, Counterexample(where, (), derived, claimed, claimed - derived))
    raise AssertionError("unequal polynomials with no differing coefficient")


def prove(spec_or_derivation: Union[ConvSpec, Derivation]) -> ProofReport:
    """Prove every identity for one spec.

    >>> report = prove(ConvSpec((6, 6), (3, 3), stride=2))
    >>> report.holds, [p.name for p in report.proofs if not p.holds]
    (True, [])
    """
    d = spec_or_derivation if isinstance(spec_or_derivation, Derivation) else derive(spec_or_derivation)
    spec = d.spec
    X, F, b, G = (to_numpy(t) for t in (d.input, d.weight, d.bias, d.grad_output))
    O, dX, dF, db = (to_numpy(t) for t in (d.output, d.grad_input, d.grad_weight, d.grad_bias))
    O_linear = O - b[None, :, None, None]

    other = "true convolution" if not spec.flip else "cross-correlation"
    stride_one = spec.with_stride(1)
    G_up = forms.upsample(spec, G)
    closed_dX, closed_dF = forms.grad_input(spec, F, G), forms.grad_weight(spec, X, G)
    conv_inner_G = _inner(O_linear, G)
    proofs = [
        compare(
            "forward",
            "O = Correlation(pad(X, p), dilate(F, d), stride s) + b, summed over input channels",
            [("output", O, forms.forward(spec, X, F, b))],
        ),
        compare(
            "rotated_kernel",
            f"the layer's output equals {other} with the kernel rotated by 180 degrees (plus b)",
            [("output", O_linear, forms.forward_by_the_other_operation(spec, X, F))],
        ),
        compare(
            "grad_weight",
            "dE/dF = Correlation(pad(X, p), dilate(dE/dO, s)) cropped to the kernel, summed over the batch",
            [("grad_weight", dF, closed_dF)],
        ),
        compare(
            "grad_input",
            "dE/dX = full convolution: Correlation(pad(dilate(dE/dO, s), k-1-p, k-1-p+a), rot180(F)), summed over filters",
            [("grad_input", dX, closed_dX)],
        ),
        compare("grad_bias", "dE/db = sum of dE/dO over batch and space", [("grad_bias", db, forms.grad_bias(spec, G))]),
        compare(
            "upsample_then_stride_one",
            "stride-s backward = upsample dE/dO (dilate by s, append a zeros), then stride-1 backward",
            [
                ("grad_input", dX, forms.grad_input(stride_one, F, G_up)),
                ("grad_weight", dF, forms.grad_weight(stride_one, X, G_up)),
            ],
        ),
        _compare_polynomials(
            "adjoint_input",
            "<conv(X), Y> = <X, conv^T(Y)> with conv^T the full convolution, as polynomials",
            conv_inner_G,
            _inner(X, closed_dX),
        ),
        _compare_polynomials(
            "adjoint_weight",
            "<conv(F), Y> = <F, Correlation(X, dilate(Y))> as polynomials",
            conv_inner_G,
            _inner(F, closed_dF),
        ),
    ]
    return ProofReport(spec, tuple(proofs))


def check(spec_or_derivation: Union[ConvSpec, Derivation], name: Checkable, candidate: object) -> Proof:
    """Prove or refute a closed form of one's own for ``output``, ``grad_input``, ``grad_weight`` or ``grad_bias``.

    ``candidate`` is anything ``sympy.Array`` accepts (nested lists, a Matrix, an Array) in the derivation's
    symbols, shaped like the tensor or, for the single-channel textbook case, like its 2-D map.

    >>> d = derive(ConvSpec((3, 3), (2, 2)))
    >>> F, G = d.weight, d.grad_output
    >>> wrong = [[F[0, 0, 0, 0] * G[0, 0, 0, 0], 0, 0], [0] * 3, [0] * 3]  # forgets most terms
    >>> proof = check(d, "grad_input", wrong)
    >>> proof.holds, proof.counterexample.index
    (False, (0, 0, 0, 1))
    """
    d = spec_or_derivation if isinstance(spec_or_derivation, Derivation) else derive(spec_or_derivation)
    if name not in ("output", "grad_input", "grad_weight", "grad_bias"):
        raise ValueError(f"name must be one of output, grad_input, grad_weight, grad_bias, got {name!r}")
    derived = to_numpy(getattr(d, name))
    claimed = to_numpy(sp.Array(candidate))
    if claimed.shape != derived.shape and claimed.size == derived.size and d.spec.is_single:
        claimed = claimed.reshape(derived.shape)
    if claimed.shape != derived.shape:
        raise ValueError(f"candidate for {name} has shape {claimed.shape}, expected {derived.shape}")
    return compare(f"check_{name}", f"{name} equals the given closed form", [(name, derived, claimed)])
