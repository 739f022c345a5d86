"""Kernel plans: what every layer's lowering hands on -> the C functions, their array arguments and element types.

The one data model between lowering (convolutions in ``lowering``, the other layers in ``layer_lowering``), the
templates (one prototype for every kernel) and the runtime, which checks each call against the same ``Arg``s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Mapping, Optional

import numpy as np
import sympy as sp

__all__ = [
    "FLOAT_DTYPES", "INDEX_DTYPE", "CTYPES", "ARG_CTYPES", "Arg", "ArrayEntry", "Assignment", "StraightLine", "Kernel",
    "check_dtype",
]

FLOAT_DTYPES: Final = ("float32", "float64")
"""The dtypes a layer is compiled for; every float array of its kernels has it."""

INDEX_DTYPE: Final = "int64"
"""Max-pooling winners and class labels: int64, as PyTorch's ``return_indices`` and ``CrossEntropyLoss`` targets."""

CTYPES: Final[Mapping[str, str]] = {"float32": "float", "float64": "double"}
"""A layer's dtype -> the C type of its float arrays."""

ARG_CTYPES: Final[Mapping[str, str]] = {**CTYPES, INDEX_DTYPE: "int64_t"}
"""Any argument's dtype -> its C element type."""


def check_dtype(dtype: object) -> str:
    """A layer's dtype (a name, a ``np.dtype`` or a NumPy scalar type) -> its name, or ValueError naming the ones
    there are (TypeError for what is no dtype at all).

    >>> check_dtype("float16")
    Traceback (most recent call last):
    ...
    ValueError: dtype must be one of ['float32', 'float64'], got 'float16'
    """
    if isinstance(dtype, np.dtype) or isinstance(dtype, type) and issubclass(dtype, np.generic):
        dtype = np.dtype(dtype).name  # np.dtype("float32") and np.float32 name the same layers as "float32"
    elif not isinstance(dtype, str):
        raise TypeError(f"dtype must be a str or a NumPy dtype, got {dtype!r} ({type(dtype).__name__})")
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {list(FLOAT_DTYPES)}, got {dtype!r}")
    return dtype


@dataclass(frozen=True)
class Arg:
    """One pointer argument: a C-contiguous array of ``shape`` and ``dtype``, read-only unless ``output``.

    ``axes`` names the axes for error messages; ``bound``, for an index array, is the stop of the values C may
    use as offsets (every value must lie in [0, bound)), which the runtime checks before the call.

    >>> Arg("indices", (2,), "int64", "N", output=True).ctype
    'int64_t'
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    axes: str
    output: bool = False
    bound: Optional[int] = None
    what: str = ""
    """What the values of a bounded argument are, for the error message (e.g. ``class labels``)."""

    @property
    def ctype(self) -> str:
        return ARG_CTYPES[self.dtype]

    @property
    def size(self) -> int:
        """The number of entries."""
        total = 1
        for n in self.shape:
            total *= n
        return total


@dataclass(frozen=True)
class ArrayEntry:
    """Where a SymPy symbol lives in C: entry ``index`` of the row-major array ``array`` of ``shape``."""

    array: str
    index: tuple[int, ...]
    shape: tuple[int, ...]

    @property
    def offset(self) -> int:
        """The flat row-major offset, e.g. (0, 1, 2) in shape (2, 3, 4) -> 1*4 + 2 = 6.

        >>> ArrayEntry("x", (0, 1, 2), (2, 3, 4)).offset
        6
        """
        flat = 0
        for i, n in zip(self.index, self.shape):
            flat = flat * n + i
        return flat


@dataclass(frozen=True)
class Assignment:
    """``array[offset] = value``; ``label`` is the textbook name of the entry, e.g. ``dE/dX_{11}``."""

    target: ArrayEntry
    value: sp.Expr
    label: str


@dataclass(frozen=True)
class StraightLine:
    """The body of an unrolled kernel: common subexpressions first, then one assignment per output entry."""

    temporaries: tuple[tuple[sp.Symbol, sp.Expr], ...]
    assignments: tuple[Assignment, ...]


@dataclass(frozen=True)
class Kernel:
    """One C function: ``family`` (``forward``, ``grad_input``, ``backward``, ``loss``, ...), its full C name, its
    arguments in C order (inputs, then outputs), and for unrolled convolutions the straight-line ``body``
    (None: the loop nest its template writes)."""

    family: str
    name: str
    args: tuple[Arg, ...]
    body: Optional[StraightLine] = None

    @property
    def inputs(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if not a.output)

    @property
    def outputs(self) -> tuple[Arg, ...]:
        return tuple(a for a in self.args if a.output)
