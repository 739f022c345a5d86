"""Operands: a kernel's ``Arg``s and NumPy arrays -> checked pointers, and ``KernelCall``, the checked Python call.

Every argument of every kernel (convolutions and the other layers alike) passes the same checks before any C
runs: type, dtype, shape, C-contiguity, alignment; for an output writability and no overlap with another
argument; for an index array (max-pooling winners, class labels) every value inside [0, bound). The checks read
the array's own memory, never what a subclass says about it: an ndarray subclass is looked at through a plain
ndarray view of the same buffer, so an overridden ``shape`` or ``dtype`` cannot make a kernel write past the end
of a buffer. ``checked_call`` runs the common case of the same checks in C and leaves every other call to these.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Mapping, Optional

import numpy as np

from ..codegen.plan import Arg, Kernel

__all__ = ["Operand", "KernelCall", "CONTIGUOUS_ALIGNED", "WRITABLE_OUT"]

# NumPy's flag bits (NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_ALIGNED, NPY_ARRAY_WRITEABLE), stable across 1.x and 2.x.
CONTIGUOUS_ALIGNED = 0x0001 | 0x0100
WRITABLE_OUT = CONTIGUOUS_ALIGNED | 0x0400


def _memory(array: Any) -> Optional[np.ndarray]:
    """The array as NumPy itself describes its buffer, or None if it is no ndarray (or a masked one)."""
    kind = type(array)
    if kind is np.ndarray:
        return array
    if not issubclass(kind, np.ndarray) or issubclass(kind, np.ma.MaskedArray):  # a mask C would ignore
        return None
    # The unbound base method: a subclass may override view() and every attribute, not the buffer's layout.
    return np.ndarray.view(array, np.ndarray)


class Operand:
    """One argument of one kernel: checks an array and hands C a pointer to its data (no copy).

    ``keyword`` is the name a Python caller uses (an output is ``out``, or its own name for a second output).
    """

    __slots__ = ("where", "name", "arg", "shape", "dtype", "ctype", "ffi", "size", "flags")

    def __init__(self, where: str, arg: Arg, keyword: str, ffi: Any) -> None:
        self.where, self.name, self.arg, self.ffi = where, keyword, arg, ffi
        self.shape, self.dtype, self.size = arg.shape, np.dtype(arg.dtype), arg.size
        self.ctype = ffi.typeof(arg.ctype + "[]")  # parsed once, not per call
        self.flags = WRITABLE_OUT if arg.output else CONTIGUOUS_ALIGNED

    # One integer read (flags.num) tests contiguity, alignment and writeability together; the dtype is
    # usually the very same object (NumPy keeps one per builtin type), so `is` decides before `==` runs.
    def pointer(self, array: Any) -> Any:
        """A cffi pointer to the array's data, or the exception naming the first thing wrong with it."""
        memory = _memory(array)
        if (memory is not None and (memory.dtype is self.dtype or memory.dtype == self.dtype)
                and memory.shape == self.shape and memory.flags.num & self.flags == self.flags):
            if self.arg.bound is not None:
                self._check_range(memory)
            return self.ffi.from_buffer(self.ctype, memory)
        raise self.problem(array)

    def problem(self, array: Any) -> Exception:
        """The first thing wrong with ``array``, as an exception naming argument, expected and actual value."""
        who = f"{self.where}: argument {self.name!r}"
        if isinstance(array, np.ma.MaskedArray):
            return TypeError(f"{who} must be a numpy.ndarray, got a masked array (the kernel would ignore its mask)")
        memory = _memory(array)
        if memory is None:
            return TypeError(f"{who} must be a numpy.ndarray, got {type(array).__name__}")
        if memory.dtype != self.dtype:
            return ValueError(f"{who} must have dtype {self.dtype}, got {memory.dtype}")
        if memory.shape != self.shape:
            empty = " (an empty batch: at least one sample is needed)" if memory.ndim and memory.shape[0] == 0 else ""
            return ValueError(f"{who} must have shape {self.shape} ({self.arg.axes}), got {memory.shape}{empty}")
        if not memory.flags.c_contiguous:
            return ValueError(f"{who} must be C-contiguous, got strides {memory.strides} (use np.ascontiguousarray)")
        if not memory.flags.aligned:
            return ValueError(f"{who} must be aligned to {self.dtype.alignment} bytes, got address "
                              f"{memory.ctypes.data:#x}")
        return ValueError(f"{who} must be writeable, got a read-only array")

    def _check_range(self, values: np.ndarray) -> None:
        # C uses these values as offsets: out of range would be an out-of-bounds access, so refuse before the call.
        stop = self.arg.bound
        assert stop is not None
        if values.size and (values.min() < 0 or values.max() >= stop):
            bad = values[(values < 0) | (values >= stop)][0]
            raise ValueError(f"{self.where}: argument {self.name!r} must hold {self.arg.what} in [0, {stop}), "
                             f"got {bad}")

    def fresh(self) -> tuple[np.ndarray, Any]:
        """A new output array and its pointer: nothing to check."""
        array = np.empty(self.shape, self.dtype)
        return array, self.ffi.from_buffer(self.ctype, array)


def keywords(kernel: Kernel) -> tuple[str, ...]:
    """The names Python callers give a kernel's arguments: inputs by their own names, the first output ``out``.

    >>> from symconv.codegen.layer_lowering import MaxPoolOp, lower_layer
    >>> keywords(lower_layer(MaxPoolOp((1, 1, 4, 4), 2, 2, 0), "float32").kernels[0])
    ('x', 'out', 'indices')
    """
    first = len(kernel.inputs)
    return tuple("out" if i == first else a.name for i, a in enumerate(kernel.args))


class KernelCall:
    """One compiled kernel behind its checks: (input arrays, output arrays or None) -> the outputs.

    ``threads``, if not None, is the kernel's first argument, and the kernel then returns a status (non-zero:
    its scratch memory could not be allocated). ``defaults`` maps an input's name to the checked array that a
    None stands for (the zero bias of a convolution's forward pass).
    """

    __slots__ = ("where", "kernel", "operands", "function", "threads", "defaults", "inputs")

    def __init__(self, where: str, kernel: Kernel, function: Callable[..., Any], ffi: Any,
                 threads: Optional[int] = None, defaults: Optional[Mapping[str, np.ndarray]] = None) -> None:
        self.where, self.kernel, self.threads = where, kernel, threads
        self.operands = tuple(Operand(where, a, k, ffi) for a, k in zip(kernel.args, keywords(kernel)))
        self.inputs = len(kernel.inputs)
        # a thread count is bound in C by partial: no Python frame per call
        self.function = function if threads is None else partial(function, threads)
        by_name = {o.arg.name: o for o in self.operands}
        self.defaults = {name: (a, by_name[name].pointer(a)) for name, a in (defaults or {}).items()}

    def pointers(self, inputs: tuple[Any, ...], outs: tuple[Any, ...]) -> tuple[list[np.ndarray], list[Any]]:
        """Check every array (a None output: a new array); return the outputs and every pointer in C order."""
        pointers = []
        for operand, array in zip(self.operands, inputs):
            default = self.defaults.get(operand.arg.name) if array is None else None
            pointers.append(default[1] if default is not None else operand.pointer(array))
        results = []
        for operand, out in zip(self.operands[self.inputs:], outs):
            if out is None:
                out, pointer = operand.fresh()
            else:
                pointer = operand.pointer(out)
                # The kernels declare every pointer restrict: an output sharing memory with another argument is UB.
                for other, seen in zip(self.operands, pointers):
                    if pointer < seen + other.size and seen < pointer + operand.size:
                        raise ValueError(f"{self.where}: argument {operand.name!r} overlaps {other.name!r}; "
                                         f"pass a separate array")
            pointers.append(pointer)
            results.append(out)
        return results, pointers

    def _finish(self, status: Any, results: list[np.ndarray]) -> Any:
        if status:
            raise MemoryError(f"{self.where}: the kernel could not allocate its scratch memory")
        return results[0] if len(results) == 1 else tuple(results)

    def run(self, inputs: tuple[Any, ...], outs: tuple[Any, ...]) -> Any:
        """Check, run, and return the output (or the tuple of outputs)."""
        results, pointers = self.pointers(inputs, outs)
        return self._finish(self.function(*pointers), results)

    def bind(self, inputs: tuple[Any, ...], outs: tuple[Any, ...]) -> Callable[[], Any]:
        """Every argument checked once, then a call without arguments of the kernel on the same memory."""
        if len(inputs) != self.inputs:
            names = ", ".join(o.name for o in self.operands[: self.inputs])
            raise TypeError(f"{self.where}: bind takes the {self.inputs} input arrays ({names}) and out=, "
                            f"got {len(inputs)}")
        for operand, out in zip(self.operands[self.inputs:], outs):
            if out is None:
                raise operand.problem(out)  # a new array per call is what bind exists to avoid
        results, pointers = self.pointers(inputs, outs)
        # from_buffer holds a buffer export of each array: its memory stays allocated and in place (NumPy refuses
        # to resize an exported array) for as long as this call exists, so nothing is left to check per call.
        run_kernel = partial(self.function, *pointers)
        finish = self._finish

        def bound() -> Any:
            return finish(run_kernel(), results)

        bound.__name__ = bound.__qualname__ = f"{self.where}_bound"
        return bound
