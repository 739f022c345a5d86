"""Transposed-convolution derivation: a ``ConvTransposeSpec`` -> its symbolic forward Y and chain-rule gradients.

The forward pass is written from the transpose's own definition, a scatter: every input entry, through every
kernel tap m, adds x[i] w[m] to y[i s - p + d m] (taps that land on the cropped padding are dropped). The gradients
come from SymPy's ``diff`` of each output entry, summed by the chain rule dE/dθ = Σ_o dE/dY_o · dY_o/dθ; nothing
here knows that the forward is a convolution's input gradient, which ``proofs.transpose`` proves.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Literal, Optional

import numpy as np
import sympy as sp

from .budget import Progress, check_budget
from .derive import ChainTerm
from .sparse import SymbolTable
from .symbols import bias_symbols, grad_symbol_name, positions, tensor_symbols, to_numpy, to_sympy
from .transpose import ConvTransposeSpec

__all__ = ["TransposeDerivation", "derive_transpose", "scatter_taps", "transpose_symbols"]

Wrt = Literal["input", "weight", "bias"]
Index = tuple[int, ...]


def scatter_taps(spec: ConvTransposeSpec) -> Iterator[tuple[Index, Index, Index]]:
    """(input index, weight index, output index) of every product x[i] w[m] the forward pass adds up.

    y[n, g Cg_out + j, i s - p_begin + d m] += x[n, c, i] w[c, j, m] for input channel c of group g.

    >>> [o[2:] for _, _, o in scatter_taps(ConvTransposeSpec((2, 1), (2, 1), stride=2))]
    [(0, 0), (1, 0), (2, 0), (3, 0)]
    """
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.pad_begin, spec.dilation
    (R, S), (Ho, Wo) = spec.kernel_size, spec.output_size
    cin_g, cout_g = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    for n, c, i, j in positions(spec.input_shape):
        group = c // cin_g
        for k in range(cout_g):
            for r in range(R):
                oi = i * sh - ph + r * dh
                if not 0 <= oi < Ho:
                    continue
                for s in range(S):
                    oj = j * sw - pw + s * dw
                    if 0 <= oj < Wo:
                        yield (n, c, i, j), (c, k, r, s), (n, group * cout_g + k, oi, oj)


def transpose_symbols(spec: ConvTransposeSpec, index_base: int = 1) -> dict[str, sp.Array]:
    """The free tensors: input X, weight F, bias b (empty without one) and upstream gradient dE/dY."""
    if index_base not in (0, 1):
        raise ValueError(f"index_base must be 0 or 1, got {index_base!r}")
    single = spec.is_single
    grad_output = tensor_symbols("Y", spec.output_shape, single, index_base)
    bias = bias_symbols(spec.out_channels, single, index_base) if spec.bias else sp.ImmutableDenseNDimArray([], (0,))
    return {
        "input": tensor_symbols("X", spec.input_shape, single, index_base),
        "weight": tensor_symbols("F", spec.weight_shape, single, index_base),
        "bias": bias,
        "grad_output": grad_output.applyfunc(lambda y: sp.Symbol(grad_symbol_name(y.name), real=True)),
    }


@dataclass(frozen=True)
class TransposeDerivation:
    """The symbolic forward and backward pass of one transposed convolution (PyTorch layout, ``sympy.Array``s)."""

    spec: ConvTransposeSpec
    index_base: int
    input: sp.Array
    weight: sp.Array
    bias: sp.Array
    output: sp.Array
    grad_output: sp.Array
    grad_input: sp.Array
    grad_weight: sp.Array
    grad_bias: sp.Array

    def tensor(self, wrt: Wrt) -> sp.Array:
        return {"input": self.input, "weight": self.weight, "bias": self.bias}[wrt]

    def gradient(self, wrt: Wrt) -> sp.Array:
        return {"input": self.grad_input, "weight": self.grad_weight, "bias": self.grad_bias}[wrt]

    def chain_rule(self, wrt: Wrt, index: Index) -> tuple[ChainTerm, ...]:
        """The full chain-rule sum for one entry, a term for every output, zero terms kept.

        >>> d = derive_transpose(ConvTransposeSpec((2, 2), (2, 2)))
        >>> [t.local for t in d.chain_rule("input", (0, 0, 0, 0))]
        [F_{11}, F_{12}, 0, F_{21}, F_{22}, 0, 0, 0, 0]
        """
        theta = self.tensor(wrt)[index]
        return tuple(ChainTerm(o, self.grad_output[o], sp.diff(self.output[o], theta))
                     for o in positions(self.spec.output_shape))

    @cached_property
    def symbols(self) -> dict[sp.Symbol, tuple[str, Index]]:
        """Where each free symbol lives: symbol -> (tensor name, index)."""
        table: dict[sp.Symbol, tuple[str, Index]] = {}
        for name in ("input", "weight", "bias", "grad_output"):
            array = getattr(self, name)
            for index in positions(array.shape):
                table[array[index]] = (name, index)
        return table

    def _repr_latex_(self) -> str:
        from ..printing.transpose import transpose_latex  # lazily: a higher stage

        return f"$\\displaystyle {transpose_latex(self)}$"


def derive_transpose(spec: ConvTransposeSpec, index_base: int = 1, *, max_terms: Optional[int] = None,
                     progress: Optional[Progress] = None) -> TransposeDerivation:
    """Build Y from X, F, b by the scatter definition and differentiate a loss E through it.

    The sums have as many terms as the corresponding convolution's (the same products), so its budget
    (``max_terms``, default ``DEFAULT_MAX_TERMS``) refuses a layer too large before anything is built.

    >>> d = derive_transpose(ConvTransposeSpec((2, 2), (2, 2), bias=False))
    >>> d.output[0, 0, 1, 1]
    F_{11}*X_{22} + F_{12}*X_{21} + F_{21}*X_{12} + F_{22}*X_{11}
    >>> d.grad_input[0, 0, 0, 0]
    F_{11}*dE/dY_{11} + F_{12}*dE/dY_{12} + F_{21}*dE/dY_{21} + F_{22}*dE/dY_{22}
    """
    check_budget(spec.conv, max_terms, "derive")
    tensors = transpose_symbols(spec, index_base)
    X, F, b, G = (to_numpy(tensors[name]) for name in ("input", "weight", "bias", "grad_output"))
    table = SymbolTable(s for array in (X, F, b, G) for s in array.flat)
    products: dict[Index, list[tuple[sp.Symbol, sp.Symbol]]] = defaultdict(list)
    for x, w, o in scatter_taps(spec):
        products[o].append((X[x], F[w]))
    Y = np.empty(spec.output_shape, dtype=object)
    outputs = list(positions(spec.output_shape))
    # dE/dθ = Σ_o dE/dY_o · dY_o/dθ: SymPy differentiates each Y_o by each symbol that occurs in it (the
    # derivative by any other symbol is 0, the zero terms ``chain_rule`` shows).
    factors: dict[sp.Symbol, list[tuple[sp.Symbol, sp.Expr]]] = {s: [] for a in (X, F, b) for s in a.flat}
    for done, o in enumerate(outputs):
        Y[o] = table.sum_of_products(products[o], b[o[1]] if spec.bias else None)
        for theta in sorted(Y[o].free_symbols, key=table.ids.__getitem__):
            factors[theta].append((G[o], sp.diff(Y[o], theta)))
        if progress is not None and done % 256 == 0:
            progress("derive", done, len(outputs))

    def sum_of(theta: sp.Symbol) -> sp.Expr:
        pairs = factors[theta]
        if all(isinstance(f, sp.Symbol) for _, f in pairs):
            return table.sum_of_products(pairs)
        return sp.Add(*(g * f for g, f in pairs))  # the bias: a derivative of 1, SymPy collects the sum

    def gradient_of(array: np.ndarray) -> sp.Array:
        out = np.empty(array.shape, dtype=object)
        for index in positions(array.shape):
            out[index] = sum_of(array[index])
        return to_sympy(out) if array.size else sp.ImmutableDenseNDimArray([], array.shape)

    if progress is not None:
        progress("derive", len(outputs), len(outputs))
    return TransposeDerivation(spec, index_base, tensors["input"], tensors["weight"], tensors["bias"], to_sympy(Y),
                               tensors["grad_output"], gradient_of(X), gradient_of(F), gradient_of(b))
