"""Operands: one array argument of one compiled kernel -> its checks, its error messages and its pointer.

The checks every kernel argument passes before any C runs (type, dtype, shape, C-contiguity, alignment, and
for an output writability and no overlap with an input), with the error messages; ``checked_call`` runs the
common case of the same checks in C and leaves every other call to these.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..codegen.lowering import CTYPES, Param

__all__ = ["Operand", "check_apart"]

_AXES = {"x": "N, C, H, W", "w": "K, C, R, S", "b": "K", "y": "N, K, Ho, Wo", "dy": "N, K, Ho, Wo",
         "dx": "N, C, H, W", "dw": "K, C, R, S", "db": "K"}


# NumPy's flag bits (NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_ALIGNED, NPY_ARRAY_WRITEABLE), stable across 1.x and 2.x.
CONTIGUOUS_ALIGNED = 0x0001 | 0x0100
WRITABLE_OUT = CONTIGUOUS_ALIGNED | 0x0400


class Operand:
    """One argument of one kernel: checks an array and hands C a pointer to its data (no copy)."""

    __slots__ = ("where", "name", "axes", "shape", "dtype", "ctype", "ffi", "size")

    def __init__(self, where: str, param: Param, dtype: np.dtype, ffi: Any) -> None:
        # Errors name arguments as Python callers see them: an output is the keyword 'out'.
        self.where, self.name = where, "out" if param.output else param.name
        self.axes, self.shape, self.dtype, self.ffi = _AXES[param.name], param.shape, dtype, ffi
        self.ctype = ffi.typeof(CTYPES[dtype.name] + "[]")  # parsed once, not per call
        self.size = int(np.prod(param.shape))

    # One integer read (flags.num) tests contiguity, alignment and writeability together; the dtype is
    # usually the very same object (NumPy keeps one per builtin type), so `is` decides before `==` runs.
    def read(self, array: Any) -> Any:
        if (isinstance(array, np.ndarray) and (array.dtype is self.dtype or array.dtype == self.dtype)
                and array.shape == self.shape and array.flags.num & CONTIGUOUS_ALIGNED == CONTIGUOUS_ALIGNED):
            return self.ffi.from_buffer(self.ctype, array)
        raise self.problem(array)

    def write(self, array: Any) -> Any:
        if (isinstance(array, np.ndarray) and (array.dtype is self.dtype or array.dtype == self.dtype)
                and array.shape == self.shape and array.flags.num & WRITABLE_OUT == WRITABLE_OUT):
            return self.ffi.from_buffer(self.ctype, array)
        raise self.problem(array)

    def problem(self, array: Any) -> Exception:
        """The first thing wrong with ``array``, as an exception naming argument, expected and actual value."""
        who = f"{self.where}: argument {self.name!r}"
        if not isinstance(array, np.ndarray):
            return TypeError(f"{who} must be a numpy.ndarray, got {type(array).__name__}")
        if array.dtype != self.dtype:
            return ValueError(f"{who} must have dtype {self.dtype}, got {array.dtype}")
        if array.shape != self.shape:
            return ValueError(f"{who} must have shape {self.shape} ({self.axes}), got {array.shape}")
        if not array.flags.c_contiguous:
            return ValueError(f"{who} must be C-contiguous, got strides {array.strides} (use np.ascontiguousarray)")
        if not array.flags.aligned:
            return ValueError(
                f"{who} must be aligned to {self.dtype.alignment} bytes, got address {array.ctypes.data:#x}"
            )
        return ValueError(f"{who} must be writeable, got a read-only array")

    def fresh(self) -> tuple[np.ndarray, Any]:
        """A new output array and its pointer: nothing to check."""
        array = np.empty(self.shape, self.dtype)
        return array, self.ffi.from_buffer(self.ctype, array)


def check_apart(where: str, out: Any, out_op: Operand, inputs: tuple[tuple[Any, Operand], ...]) -> None:
    # The kernels declare their pointers restrict, so an output overlapping an input is undefined behaviour.
    end = out + out_op.size
    for pointer, operand in inputs:
        if out < pointer + operand.size and pointer < end:
            raise ValueError(f"{where}: argument 'out' overlaps {operand.name!r}; pass a separate array")
