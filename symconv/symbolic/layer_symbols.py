"""Layer symbols: a letter, a shape and a layer's place -> real SymPy symbol tensors; numbers -> exact rationals.

The names every layer's symbolic tensors carry (``X``, ``F^{[1]}_{11}``, ``W^{[3]}_{2}``, ``b``, ``t``), shared by
``Network.derive`` and the proofs, and the exact value of a float that a proof point is built from.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import sympy as sp

from .layer_base import Layer, Shape
from .layers import Conv2d
from .transpose_layer import ConvTranspose2d

__all__ = ["symbol_tensor", "parameter_letter", "exact_rational"]


def symbol_tensor(letter: str, shape: Shape, layer: Optional[int] = None) -> np.ndarray:
    """Real symbols ``letter^{[layer]}_{ij}``, 1-based, axes of extent 1 left out, commas once an index is >= 10.

    >>> symbol_tensor("W", (1, 3), layer=2)
    array([[W^{[2]}_{1}, W^{[2]}_{2}, W^{[2]}_{3}]], dtype=object)
    """
    axes = [a for a, n in enumerate(shape) if n > 1]
    comma = "," if any(shape[a] >= 10 for a in axes) else ""
    top = "" if layer is None else f"^{{[{layer}]}}"
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        sub = comma.join(str(index[a] + 1) for a in axes)
        out[index] = sp.Symbol(f"{letter}{top}_{{{sub}}}" if sub else f"{letter}{top}", real=True)
    return out


def parameter_letter(layer: Layer, name: str) -> str:
    """F for a convolution's filter (as ``symbols``), W for a dense weight, b for biases."""
    return "b" if name == "bias" else ("F" if isinstance(layer, (Conv2d, ConvTranspose2d)) else "W")


def exact_rational(value: Any, name: str) -> sp.Rational:
    """A number as the exact rational it is (a float: the binary fraction it stores); NaN, inf and irrationals
    are refused (``sympy.Rational(float("nan"))`` would silently give 0)."""
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"the value for {name} is not finite: {value!r}")
        return sp.Rational(float(value))
    converted = sp.sympify(value)
    if not converted.is_Rational:
        raise ValueError(f"the value for {name} must be an exact rational or a finite float, got {value!r}")
    return converted
