"""Symbols: a ``ConvSpec`` -> named SymPy symbol tensors X, F, b and dE/dO in PyTorch layout.

Names follow the textbooks: ``X_{11}``, ``F_{12}`` (1-based by default), ``X^{(1,2)}_{11}`` when there are
several images or channels, ``X_{3,12}`` once an index has two digits. The names are valid LaTeX, so SymPy's
own ``latex`` prints them as they are.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import sympy as sp

from .spec import ConvSpec

__all__ = ["tensor_symbols", "bias_symbols", "spec_symbols", "grad_symbol_name", "positions", "entries", "to_numpy", "to_sympy", "GRAD_PREFIX"]

GRAD_PREFIX = "dE/d"
"""Prefix of an upstream-gradient symbol's name: ``dE/dO_{11}`` stands for the partial of E by O_11."""


def positions(shape: tuple[int, ...]) -> product:
    """All indices of a tensor of ``shape`` in row-major order."""
    return product(*(range(n) for n in shape))


def entries(array: sp.Array) -> list[sp.Expr]:
    """The entries of a SymPy array in row-major order (iterating an Array yields sub-arrays, not entries)."""
    return list(array.reshape(len(array)))


def to_numpy(array: sp.Array) -> np.ndarray:
    """A SymPy array as a NumPy object array: the same entries, with NumPy's fast indexing and slicing."""
    out = np.empty(len(array), dtype=object)
    out[:] = entries(array)
    return out.reshape(array.shape)


def to_sympy(array: np.ndarray) -> sp.Array:
    """The inverse of ``to_numpy``."""
    return sp.ImmutableDenseNDimArray(array.ravel().tolist(), array.shape)


def _index_text(index: tuple[int, ...], base: int, wide: bool) -> str:
    return ("," if wide else "").join(str(i + base) for i in index)


def tensor_symbols(letter: str, shape: tuple[int, int, int, int], single: bool, index_base: int = 1) -> sp.Array:
    """A 4-D array of real symbols ``letter`` with textbook names.

    >>> tensor_symbols("X", (1, 1, 2, 2), single=True)
    [[[[X_{11}, X_{12}], [X_{21}, X_{22}]]]]
    >>> tensor_symbols("F", (2, 1, 1, 1), single=False, index_base=0)[1, 0, 0, 0]
    F^{(1,0)}_{00}
    """
    spatial_wide = max(shape[2:]) - 1 + index_base >= 10
    entries = []
    for n, c, i, j in positions(shape):
        name = f"{letter}_{{{_index_text((i, j), index_base, spatial_wide)}}}"
        if not single:
            name = f"{letter}^{{({n + index_base},{c + index_base})}}_{{{_index_text((i, j), index_base, spatial_wide)}}}"
        entries.append(sp.Symbol(name, real=True))
    return sp.ImmutableDenseNDimArray(entries, shape)


def bias_symbols(out_channels: int, single: bool, index_base: int = 1) -> sp.Array:
    """One real bias symbol per output channel: ``b`` alone in the single-channel case, else ``b_{k}``.

    >>> bias_symbols(2, single=False)
    [b_{1}, b_{2}]
    """
    if single:
        return sp.ImmutableDenseNDimArray([sp.Symbol("b", real=True)], (1,))
    return sp.ImmutableDenseNDimArray(
        [sp.Symbol(f"b_{{{k + index_base}}}", real=True) for k in range(out_channels)], (out_channels,)
    )


def grad_symbol_name(symbol_name: str) -> str:
    """The name of the upstream gradient of a symbol: ``O_{11}`` -> ``dE/dO_{11}``."""
    return GRAD_PREFIX + symbol_name


def spec_symbols(spec: ConvSpec, index_base: int = 1) -> dict[str, sp.Array]:
    """The four free tensors of a layer: input X, weight F, bias b (empty without bias) and upstream gradient dE/dO."""
    if index_base not in (0, 1):
        raise ValueError(f"index_base must be 0 or 1, got {index_base!r}")
    single = spec.is_single
    grad_output = tensor_symbols("O", spec.output_shape, single, index_base)
    return {
        "input": tensor_symbols("X", spec.input_shape, single, index_base),
        "weight": tensor_symbols("F", spec.weight_shape, single, index_base),
        "bias": bias_symbols(spec.out_channels, single, index_base) if spec.bias
        else sp.ImmutableDenseNDimArray([], (0,)),
        "grad_output": grad_output.applyfunc(lambda o: sp.Symbol(grad_symbol_name(o.name), real=True)),
    }
