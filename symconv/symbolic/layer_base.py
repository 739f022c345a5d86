"""Layer base: the interface every layer implements -> ``Layer`` and the helpers shared by the layer modules.

Tensors are NumPy object arrays of SymPy entries, (N, C, H, W) or (N, features). ``forward`` is the definition,
piecewise where the layer is (``Max``); ``backward`` is the closed form a kernel computes, given the *branch* the
forward pass took: for ReLU the mask of positive inputs, for max pooling the winner of every window (as the kernels
record it). ``branch`` reads it off exact or float values, ``forward_on`` is the forward pass on that branch (a
polynomial) and ``boundary`` names a point where the branch is not locally constant. ``reference_*`` run the same
layer in float NumPy (``layer_reference``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Mapping, Optional

import numpy as np
import sympy as sp

from .spec import Pair

__all__ = ["Layer", "Shape", "Params", "Grads", "ZERO", "entrywise", "maximum", "zeros", "four_d", "truth", "fmt_pair"]

Shape = tuple[int, ...]
Params = Mapping[str, np.ndarray]
Grads = dict[str, np.ndarray]
ZERO = sp.S.Zero


def zeros(shape: Shape) -> np.ndarray:
    """An object array of SymPy zeros."""
    return np.full(shape, ZERO, dtype=object)


def entrywise(f: Callable[[Any], Any], tensor: np.ndarray, dtype: Any = object) -> np.ndarray:
    """``f`` applied to every entry, same shape. A plain loop: ``np.vectorize`` on object arrays reports the
    floating-point flags SymPy's internal float estimates raise (e.g. overflow bounding exp(10^4)) as warnings."""
    out = np.empty(tensor.shape, dtype=dtype)
    for index in np.ndindex(*tensor.shape):
        out[index] = f(tensor[index])
    return out


def maximum(*args: Any) -> sp.Expr:
    """max of the arguments: a number for numbers, else a left fold of unevaluated two-argument ``Max``.

    SymPy's n-argument ``Max`` flattens nested ones and compares every pair of arguments to drop the smaller, and
    its derivative builds an (n-1)-argument ``Max`` again: seconds on a network's expressions. A two-argument node
    differentiates straight to ``Heaviside(a - b)``. The fold is the same function, pairwise in row-major order as
    a kernel's loop computes it.

    >>> x, y, z = sp.symbols("x y z", real=True)
    >>> maximum(x, y, z), maximum(1, sp.Rational(5, 2), 2)
    (Max(z, Max(x, y)), 5/2)
    """
    if all(sp.sympify(a).is_number for a in args):
        return sp.Max(*args)
    result = sp.sympify(args[0])
    for a in args[1:]:
        result = sp.Max(result, a, evaluate=False)
    return result


def truth(layer: "Layer", claim: Any) -> bool:
    """A comparison of exact or float values as a bool; symbols have no truth value, and no branch."""
    try:
        return bool(claim)
    except TypeError as error:
        raise ValueError(f"{layer.describe()}: the branch needs numeric values, not symbols ({error})") from None


class Layer(ABC):
    """One layer of a ``Network``: fixed hyperparameters, every shape inferred from the input shape."""

    piecewise: ClassVar[bool] = False

    @abstractmethod
    def describe(self) -> str:
        """A short name with the hyperparameters, e.g. ``MaxPool2d(2x2, stride 2)``."""

    @abstractmethod
    def output_shape(self, input_shape: Shape) -> Shape:
        """The output shape, or ValueError if the layer cannot take this input."""

    def parameter_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        """The trainable tensors and their shapes, PyTorch's names and layout (``weight``, ``bias``)."""
        return {}

    @abstractmethod
    def forward(self, x: np.ndarray, params: Params) -> np.ndarray:
        """The definition on SymPy entries (``Max`` for the piecewise layers)."""

    def branch(self, x: np.ndarray) -> Optional[np.ndarray]:
        """The branch the forward pass takes at numeric x (None for layers that are one polynomial)."""
        return None

    def forward_on(self, x: np.ndarray, params: Params, branch: Optional[np.ndarray]) -> np.ndarray:
        """The forward pass on a branch: a polynomial in x that equals ``forward`` on the branch's region."""
        return self.forward(x, params)

    def boundary(self, values: np.ndarray, region: np.ndarray) -> Optional[str]:
        """Where numeric ``values`` sit on a region boundary (a tie that changes the function), else None.

        ``region`` holds the same entries as expressions on the region, so that ties between expressions that are
        identical there (two inactive ReLUs, both 0) are not counted: either choice gives the same function.
        """
        return None

    @abstractmethod
    def backward(
        self, x: np.ndarray, params: Params, grad_output: np.ndarray, branch: Optional[np.ndarray] = None
    ) -> tuple[np.ndarray, Grads]:
        """The closed forms (dE/dx, {name: dE/dparam}) given dE/dy; the branch is read off x when not given."""

    @abstractmethod
    def reference_forward(self, x: np.ndarray, params: Params) -> tuple[np.ndarray, Any]:
        """Float NumPy: (y, whatever backward needs, e.g. the pooling indices)."""

    @abstractmethod
    def reference_backward(
        self, x: np.ndarray, params: Params, cache: Any, grad_output: np.ndarray
    ) -> tuple[np.ndarray, Grads]:
        """Float NumPy: (dE/dx, {name: dE/dparam})."""


def four_d(layer: Layer, shape: Shape) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise ValueError(f"{layer.describe()} needs an (N, C, H, W) input, got shape {shape}")
    return shape


def fmt_pair(pair: Pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"
