"""Demo: a ``Derivation`` and its compiled kernels -> the kernels' numbers beside the symbolic results.

The inputs are small integers, so the symbolic value of every entry is an exact integer and a float64
kernel must reproduce it exactly: the table shows the equations becoming code.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from .pipeline import compile_conv
from .symbolic.derive import Derivation
from .symbolic.symbols import GRAD_PREFIX, positions

__all__ = ["numeric_comparison"]


def _random_integers(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-3, 4, size=shape).astype(np.float64)


def numeric_comparison(d: Derivation, seed: int = 0, max_rows: int = 12) -> tuple[str, bool]:
    """Run the float64 kernels of ``d.spec`` on seeded integer data and compare with the derivation.

    Returns the table and whether every entry matched exactly.
    """
    spec = d.spec
    rng = np.random.default_rng(seed)
    x, w = _random_integers(rng, spec.input_shape), _random_integers(rng, spec.weight_shape)
    b, dy = _random_integers(rng, (spec.out_channels,)), _random_integers(rng, spec.output_shape)
    kernels = compile_conv(spec, "float64")
    values: dict[sp.Symbol, int] = {}
    b = b[: d.bias.shape[0]]  # a layer without bias has no b
    for symbols, data in ((d.input, x), (d.weight, w), (d.bias, b), (d.grad_output, dy)):
        for index in positions(data.shape):
            values[symbols[index]] = int(data[index])

    results = (
        ("forward", "", d.output, kernels.forward(x, w, b if spec.bias else None),
         lambda i: d.grad_output[i].name[len(GRAD_PREFIX):]),
        ("grad_input", GRAD_PREFIX, d.grad_input, kernels.grad_input(dy, w), lambda i: d.input[i].name),
        ("grad_weight", GRAD_PREFIX, d.grad_weight, kernels.grad_weight(x, dy), lambda i: d.weight[i].name),
    ) + ((("grad_bias", GRAD_PREFIX, d.grad_bias, kernels.grad_bias(dy), lambda i: d.bias[i].name),)
         if spec.bias else ())
    lines = [
        f"C kernels ({kernels.strategy}, float64) on seeded integer data, beside the symbolic result:",
        f"  {'entry':<16} {'kernel':>10} {'symbolic':>10}",
    ]
    all_match = True
    for family, prefix, symbolic, numeric, name in results:
        shown = 0
        for index in positions(numeric.shape):
            exact = symbolic[index].xreplace(values)
            match = float(exact) == numeric[index]
            all_match &= match
            if shown < max_rows or not match:
                mark = "" if match else "   <- differs"
                lines.append(f"  {prefix + name(index):<16} {numeric[index]:>10.1f} {str(exact):>10}{mark}")
                shown += 1
        if numeric.size > shown:
            lines.append(f"  ... ({numeric.size - shown} more {family} entries)")
    lines.append("every entry matches" if all_match else "MISMATCH between kernels and derivation")
    return "\n".join(lines), all_match
