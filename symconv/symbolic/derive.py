"""Derivation: a ``ConvSpec`` -> the symbolic forward pass O and its chain-rule gradients (a frozen ``Derivation``).

The forward pass is written from the definition (a sum of products, one per kernel tap), and the gradients are
obtained by differentiating E through O with SymPy, dE/dθ = Σ_p dE/dO_p · dO_p/dθ: nothing here knows the
closed forms that ``prove`` checks them against.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Literal, Optional

import numpy as np
import sympy as sp

from .budget import Progress, check_budget
from .sparse import SymbolTable
from .spec import ConvSpec
from .symbols import positions, spec_symbols, to_numpy, to_sympy

__all__ = ["Derivation", "ChainTerm", "derive", "Wrt"]

Wrt = Literal["input", "weight", "bias"]
Index = tuple[int, ...]


@dataclass(frozen=True)
class ChainTerm:
    """One term dE/dO_p · dO_p/dθ of the chain-rule sum for a parameter θ (``local`` may be 0)."""

    output_index: Index
    upstream: sp.Symbol
    local: sp.Expr

    @property
    def value(self) -> sp.Expr:
        return self.upstream * self.local


def forward_taps(spec: ConvSpec, out_index: Index) -> Iterator[tuple[Index, Index]]:
    """(weight index, input index) of every product in the output entry ``out_index``, in kernel order.

    Taps that fall on padding are skipped: they multiply a zero. For ``flip=True`` the kernel is walked from
    its far corner, which is the definition of true convolution, O_ij = Σ F_mn X_(i-m)(j-n). Output channel k
    reads the input channels of its group g = k // (K/groups) only; the weight's channel index is the one
    within that group.
    """
    n, k, oi, oj = out_index
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.pad_begin, spec.dilation
    (eh, ew), (R, S), (H, W) = spec.effective_kernel, spec.kernel_size, spec.input_size
    first = (k // spec.group_out_channels) * spec.group_in_channels
    for c in range(spec.group_in_channels):
        for r in range(R):
            for s in range(S):
                if spec.flip:
                    i, j = oi * sh + eh - 1 - r * dh - ph, oj * sw + ew - 1 - s * dw - pw
                else:
                    i, j = oi * sh + r * dh - ph, oj * sw + s * dw - pw
                if 0 <= i < H and 0 <= j < W:
                    yield (k, c, r, s), (n, first + c, i, j)


@dataclass(frozen=True)
class Derivation:
    """The symbolic forward and backward pass of one layer; 4-D ``sympy.Array``s in PyTorch layout.

    A layer without bias (``spec.bias`` False) has empty ``bias`` and ``grad_bias`` arrays (shape (0,)).
    """

    spec: ConvSpec
    index_base: int
    input: sp.Array
    weight: sp.Array
    bias: sp.Array
    output: sp.Array
    grad_output: sp.Array
    grad_input: sp.Array
    grad_weight: sp.Array
    grad_bias: sp.Array

    def forward_terms(self, out_index: Index) -> tuple[sp.Expr, ...]:
        """The products F·X of one output entry in kernel order (the bias last), as the textbooks list them."""
        terms = tuple(self.weight[w] * self.input[x] for w, x in forward_taps(self.spec, out_index))
        return terms + ((self.bias[out_index[1]],) if self.spec.bias else ())

    def tensor(self, wrt: Wrt) -> sp.Array:
        return {"input": self.input, "weight": self.weight, "bias": self.bias}[wrt]

    def gradient(self, wrt: Wrt) -> sp.Array:
        return {"input": self.grad_input, "weight": self.grad_weight, "bias": self.grad_bias}[wrt]

    def chain_rule(self, wrt: Wrt, index: Index) -> tuple[ChainTerm, ...]:
        """The full chain-rule sum for one entry: a term for every output, zero terms kept.

        Built on request, since all of them together grow as (outputs x parameters).

        >>> d = derive(ConvSpec((3, 3), (2, 2)))
        >>> [t.local for t in d.chain_rule("input", (0, 0, 0, 0))]
        [F_{11}, 0, 0, 0]
        """
        theta = self.tensor(wrt)[index]
        return tuple(
            ChainTerm(p, self.grad_output[p], sp.diff(self.output[p], theta)) for p in positions(self.spec.output_shape)
        )

    @cached_property
    def symbols(self) -> dict[sp.Symbol, tuple[Wrt | Literal["grad_output"], Index]]:
        """Where each free symbol lives: symbol -> (tensor name, index)."""
        table: dict = {}
        for name in ("input", "weight", "bias", "grad_output"):
            array = getattr(self, name)
            for index in positions(array.shape):
                table[array[index]] = (name, index)
        return table

    def _repr_latex_(self) -> str:
        from ..printing.latex import latex  # lazily: latex imports this module
        return f"$\\displaystyle {latex(self)}$"


@dataclass(frozen=True)
class _Template:
    """One output as a template, Σ_t w_t x_t + β over the taps t = (c, r, s), and its derivatives."""

    weight: dict[Index, sp.Symbol]
    input: dict[Index, sp.Symbol]
    bias: sp.Symbol
    by_weight: dict[Index, sp.Expr]
    by_input: dict[Index, sp.Expr]
    by_bias: sp.Expr


def _template_derivatives(spec: ConvSpec) -> _Template:
    taps = list(positions((spec.group_in_channels, *spec.kernel_size)))
    w = {t: sp.Dummy("w", real=True) for t in taps}
    x = {t: sp.Dummy("x", real=True) for t in taps}
    beta = sp.Dummy("beta", real=True)
    output = sp.Add(*(w[t] * x[t] for t in taps), *([beta] if spec.bias else []))
    return _Template(
        weight=w,
        input=x,
        bias=beta,
        by_weight={t: sp.diff(output, w[t]) for t in taps},
        by_input={t: sp.diff(output, x[t]) for t in taps},
        by_bias=sp.diff(output, beta),
    )


def derive(spec: ConvSpec, index_base: int = 1, *, max_terms: Optional[int] = None,
           progress: Optional[Progress] = None) -> Derivation:
    """Build O from X, F, b and differentiate a loss E through it by the chain rule.

    A layer whose sums would hold more than ``max_terms`` terms (default ``DEFAULT_MAX_TERMS``) is refused with
    a ``TermLimitError`` before anything is built; ``progress`` is called as the outputs are done.

    >>> d = derive(ConvSpec((3, 3), (2, 2)))
    >>> d.output[0, 0, 0, 0]
    F_{11}*X_{11} + F_{12}*X_{12} + F_{21}*X_{21} + F_{22}*X_{22} + b
    >>> d.grad_weight[0, 0, 0, 1]
    X_{12}*dE/dO_{11} + X_{13}*dE/dO_{12} + X_{22}*dE/dO_{21} + X_{23}*dE/dO_{22}
    """
    check_budget(spec, max_terms, "derive")
    tensors = spec_symbols(spec, index_base)
    X, F, b, G = (to_numpy(tensors[name]) for name in ("input", "weight", "bias", "grad_output"))
    # Every entry is a sum of distinct products of two symbols: the table builds SymPy's canonical trees from
    # that structure directly, instead of having ``Mul`` and ``Add`` sort and collect each one again.
    table = SymbolTable(s for array in (X, F, b, G) for s in array.flat)

    # The chain rule, dE/dθ = Σ_p dE/dO_p · dO_p/dθ, where dO_p/dθ is zero unless θ occurs in O_p: only the
    # non-zero terms are summed here (``chain_rule`` shows the full sum with its zeros). Every O_p is one
    # template, Σ_t w_t x_t + β, with its symbols renamed; SymPy differentiates the template once per tap and
    # renaming carries the derivatives to every output, which keeps large layers fast.
    local = _template_derivatives(spec)
    O = np.empty(spec.output_shape, dtype=object)
    factors: dict[sp.Symbol, list[tuple[sp.Symbol, sp.Expr]]] = {theta: [] for a in (X, F, b) for theta in a.flat}
    outputs = list(positions(spec.output_shape))
    for done, p in enumerate(outputs):
        taps = list(forward_taps(spec, p))
        O[p] = table.sum_of_products([(F[w], X[x]) for w, x in taps], b[p[1]] if spec.bias else None)
        renaming = {local.bias: b[p[1]]} if spec.bias else {}
        for w, x in taps:
            renaming[local.weight[w[1:]]] = F[w]
            renaming[local.input[w[1:]]] = X[x]
        for w, x in taps:
            factors[F[w]].append((G[p], _renamed(local.by_weight[w[1:]], renaming)))
            factors[X[x]].append((G[p], _renamed(local.by_input[w[1:]], renaming)))
        if spec.bias:
            factors[b[p[1]]].append((G[p], _renamed(local.by_bias, renaming)))
        if progress is not None and done % 256 == 0:
            progress("derive", done, len(outputs))

    def sum_of(theta: sp.Symbol) -> sp.Expr:
        pairs = factors[theta]
        if all(isinstance(f, sp.Symbol) for _, f in pairs):
            return table.sum_of_products(pairs)
        return sp.Add(*(g * f for g, f in pairs))  # a constant derivative (the bias): SymPy collects it

    def gradient_of(array: np.ndarray) -> sp.Array:
        return to_sympy(np.vectorize(sum_of, otypes=[object])(array))

    if progress is not None:
        progress("derive", len(outputs), len(outputs))
    return Derivation(
        spec=spec,
        index_base=index_base,
        input=tensors["input"],
        weight=tensors["weight"],
        bias=tensors["bias"],
        output=to_sympy(O),
        grad_output=tensors["grad_output"],
        grad_input=gradient_of(X),
        grad_weight=gradient_of(F),
        grad_bias=gradient_of(b),
    )


def _renamed(derivative: sp.Expr, renaming: dict[sp.Symbol, sp.Symbol]) -> sp.Expr:
    """A template derivative in one output's symbols; a lone template symbol is a lookup, not a tree walk."""
    found = renaming.get(derivative) if isinstance(derivative, sp.Symbol) else None
    return found if found is not None else derivative.xreplace(renaming)
