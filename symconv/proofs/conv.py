"""Proofs: a ``Derivation`` -> a ``ProofReport`` that its chain-rule results equal the textbook closed forms, exactly.

Every entry here is a polynomial (bilinear in the layer, trilinear in the adjoint identities), so two sides are
equal iff their expanded difference is the zero polynomial: comparing exact coefficients, never ``simplify``,
and never sampling.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Callable, Generic, Iterable, Literal, Optional, Protocol, TypeVar, Union

import numpy as np
import sympy as sp

from ..symbolic import forms
from ..symbolic.budget import Progress, check_budget
from ..symbolic.derive import Derivation, derive
from ..symbolic.exact import reduce_difference
from ..symbolic.sparse import Poly, SymbolTable
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


class _Named(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def holds(self) -> bool: ...


P = TypeVar("P", bound=_Named)


class Proofs(Generic[P]):
    """What every report of proofs has: ``holds`` iff each proof does, lookup by name, one line per proof."""

    proofs: tuple[P, ...]

    @property
    def holds(self) -> bool:
        return all(p.holds for p in self.proofs)

    def __getitem__(self, name: str) -> P:
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
class ProofReport(Proofs[Proof]):
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


def _first_poly_difference(tensor: str, derived: np.ndarray, claimed: np.ndarray,
                           table: SymbolTable) -> Counterexample | None:
    for index in positions(derived.shape):
        if derived[index] != claimed[index]:  # the same polynomial iff the same coefficients: exact
            lhs, rhs = derived[index], claimed[index]
            return Counterexample(tensor, index, table.decode(lhs), table.decode(rhs), table.decode(rhs - lhs))
    return None


def _compare_polynomials(name: str, statement: str, lhs: Poly, rhs: Poly, table: SymbolTable) -> Proof:
    if lhs == rhs:
        return Proof(name, statement, True)
    differing = [m for m in lhs.terms.keys() | rhs.terms.keys() if lhs.terms.get(m, 0) != rhs.terms.get(m, 0)]
    monomial = min(differing, key=lambda m: sp.default_sort_key(table.monomial_expr(m)))
    derived, claimed = (sp.Integer(p.terms.get(monomial, 0)) for p in (lhs, rhs))
    where = f"coefficient of {table.monomial_expr(monomial)} in"
    return Proof(name, statement, False, Counterexample(where, (), derived, claimed, claimed - derived))


class _Sides:
    """The derived tensors of one derivation as ``Poly`` arrays, compared with closed forms computed on ``Poly``s."""

    def __init__(self, d: Derivation) -> None:
        self.table = SymbolTable(d.symbols)
        encode = np.vectorize(self.table.encode, otypes=[object])
        self.polys = {name: encode(to_numpy(getattr(d, name)))
                      for name in ("output", "grad_input", "grad_weight", "grad_bias")}

    def tensor(self, array: sp.Array) -> np.ndarray:
        return np.vectorize(self.table.poly, otypes=[object])(to_numpy(array))

    def compare(self, name: str, statement: str, pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> Proof:
        for tensor, derived, claimed in pairs:
            if derived.shape != claimed.shape:
                raise ValueError(f"{name}: {tensor} has shape {derived.shape}, the claimed form {claimed.shape}")
            counterexample = _first_poly_difference(tensor, derived, claimed, self.table)
            if counterexample is not None:
                return Proof(name, statement, False, counterexample)
        return Proof(name, statement, True)


def prove(spec_or_derivation: Union[ConvSpec, Derivation], *, max_terms: Optional[int] = None,
          progress: Optional[Progress] = None) -> ProofReport:
    """Prove every identity for one spec.

    Both sides become exact sparse polynomials (``symbolic.sparse.Poly``): the derived SymPy entries are read
    into coefficient dictionaries and the closed forms are computed on them, so equality is equality of
    integer coefficients. A layer over ``max_terms`` terms (default ``DEFAULT_MAX_TERMS``) is refused first.

    >>> report = prove(ConvSpec((6, 6), (3, 3), stride=2))
    >>> report.holds, [p.name for p in report.proofs if not p.holds]
    (True, [])
    """
    spec = spec_or_derivation.spec if isinstance(spec_or_derivation, Derivation) else spec_or_derivation
    check_budget(spec, max_terms, "prove")
    d = spec_or_derivation if isinstance(spec_or_derivation, Derivation) else derive(spec, max_terms=max_terms)
    sides = _Sides(d)
    X, F, b, G = (sides.tensor(t) for t in (d.input, d.weight, d.bias, d.grad_output))
    O, dX, dF, db = (sides.polys[name] for name in ("output", "grad_input", "grad_weight", "grad_bias"))
    O_linear = O - b[None, :, None, None] if spec.bias else O
    plus_b = " + b" if spec.bias else ""
    per_group = ", summed over the input channels of the filter's group" if spec.groups > 1 else ", summed over input channels"

    other = "true convolution" if not spec.flip else "cross-correlation"
    stride_one = spec.with_stride(1)
    # Closed forms used by two proofs are computed once, when the first of them needs it.
    closed_dX = cache(lambda: forms.grad_input(spec, F, G))
    closed_dF = cache(lambda: forms.grad_weight(spec, X, G))
    G_up = cache(lambda: forms.upsample(spec, G))
    conv_inner_G = cache(lambda: Poly.inner(O_linear.flat, G.flat))
    steps: list[Callable[[], Proof]] = [
        lambda: sides.compare(
            "forward",
            f"O = Correlation(pad(X, p), dilate(F, d), stride s){plus_b}{per_group}",
            [("output", O, forms.forward(spec, X, F, b))],
        ),
        lambda: sides.compare(
            "rotated_kernel",
            f"the layer's output equals {other} with the kernel rotated by 180 degrees" + (" (plus b)" if spec.bias else ""),
            [("output", O_linear, forms.forward_by_the_other_operation(spec, X, F))],
        ),
        lambda: sides.compare(
            "grad_weight",
            "dE/dF = Correlation(pad(X, p), dilate(dE/dO, s)) cropped to the kernel, summed over the batch",
            [("grad_weight", dF, closed_dF())],
        ),
        lambda: sides.compare(
            "grad_input",
            "dE/dX = full convolution: Correlation(pad(dilate(dE/dO, s), "
            + ("k-1-p, k-1-p+a" if spec.is_symmetric else "k-1-p_begin before, k-1-p_end+a after")
            + "), rot180(F)), summed over " + ("the filters of the channel's group" if spec.groups > 1 else "filters"),
            [("grad_input", dX, closed_dX())],
        ),
        # A layer without bias has no dE/db: no identity to prove, so none is listed.
        *([lambda: sides.compare(
            "grad_bias", "dE/db = sum of dE/dO over batch and space", [("grad_bias", db, forms.grad_bias(spec, G))]
        )] if spec.bias else []),
        lambda: sides.compare(
            "upsample_then_stride_one",
            "stride-s backward = upsample dE/dO (dilate by s, append a zeros), then stride-1 backward",
            [
                ("grad_input", dX, forms.grad_input(stride_one, F, G_up())),
                ("grad_weight", dF, forms.grad_weight(stride_one, X, G_up())),
            ],
        ),
        # The adjoint identities pair the closed forms (not the derived gradients) with the layer itself.
        lambda: _compare_polynomials(
            "adjoint_input",
            "<conv(X), Y> = <X, conv^T(Y)> with conv^T the full convolution, as polynomials",
            conv_inner_G(),
            Poly.inner(X.flat, closed_dX().flat),
            sides.table,
        ),
        lambda: _compare_polynomials(
            "adjoint_weight",
            "<conv(F), Y> = <F, Correlation(X, dilate(Y))> as polynomials",
            conv_inner_G(),
            Poly.inner(F.flat, closed_dF().flat),
            sides.table,
        ),
    ]
    proofs = []
    for done, step in enumerate(steps):
        if progress is not None:
            progress("prove", done, len(steps))
        proofs.append(step())
    if progress is not None:
        progress("prove", len(steps), len(steps))
    return ProofReport(spec, tuple(proofs))


def _check_entries(name: str, candidate: object) -> None:
    """TypeError naming the first entry that is neither a SymPy expression nor a number (a string would be
    parsed by ``sympify``, an arbitrary object sent into infinite recursion)."""
    if isinstance(candidate, (sp.NDimArray, sp.MatrixBase)):
        return  # SymPy's own containers hold SymPy objects only
    items = candidate.ravel().tolist() if isinstance(candidate, np.ndarray) else candidate
    if isinstance(items, (list, tuple)):
        for item in items:
            _check_entries(name, item)
    elif isinstance(items, (bool, np.bool_)) or not isinstance(items, (sp.Basic, int, float, np.number)):
        raise TypeError(f"candidate for {name} must hold SymPy expressions or numbers, got {items!r} "
                        f"({type(items).__name__})")


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
    _check_entries(name, candidate)
    claimed = to_numpy(sp.Array(candidate))
    if claimed.shape != derived.shape and claimed.size == derived.size and d.spec.is_single:
        claimed = claimed.reshape(derived.shape)
    if claimed.shape != derived.shape:
        raise ValueError(f"candidate for {name} has shape {claimed.shape}, expected {derived.shape}")
    return compare(f"check_{name}", f"{name} equals the given closed form", [(name, derived, claimed)])
