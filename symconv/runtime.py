"""Runtime: a loaded kernel module and NumPy arrays -> checked, zero-copy calls of the four C kernels.

Every argument is checked before any C runs (type, dtype, shape, C-contiguity, alignment, and for ``out``
writability and no overlap with an input), so the kernels, which trust their fixed sizes, can never read
or write outside an array. The checks are a few attribute reads per argument (flags as one integer, the
dtype by identity first) plus cffi's ``from_buffer`` (~0.25 µs, the largest part); arrays that own their
memory skip the pointer arithmetic of the overlap test. A call with ``out=`` on a small layer costs about
2 µs of Python on the 2-core development machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import partial
from types import ModuleType
from typing import Any, Callable, Optional

import numpy as np

from .lowering import CTYPES, VECTOR_STRATEGIES, Param, kernel_prefix, signatures
from .spec import ConvSpec

__all__ = ["ConvKernels", "default_threads"]


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count).

    >>> default_threads() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1

_AXES = {"x": "N, C, H, W", "w": "K, C, R, S", "b": "K", "y": "N, K, Ho, Wo", "dy": "N, K, Ho, Wo",
         "dx": "N, C, H, W", "dw": "K, C, R, S", "db": "K"}


# NumPy's flag bits (NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_ALIGNED, NPY_ARRAY_WRITEABLE), stable across 1.x and 2.x.
_CONTIGUOUS_ALIGNED = 0x0001 | 0x0100
_WRITABLE_OUT = _CONTIGUOUS_ALIGNED | 0x0400


class _Operand:
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
                and array.shape == self.shape and array.flags.num & _CONTIGUOUS_ALIGNED == _CONTIGUOUS_ALIGNED):
            return self.ffi.from_buffer(self.ctype, array)
        raise self.problem(array)

    def write(self, array: Any) -> Any:
        if (isinstance(array, np.ndarray) and (array.dtype is self.dtype or array.dtype == self.dtype)
                and array.shape == self.shape and array.flags.num & _WRITABLE_OUT == _WRITABLE_OUT):
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


def _check_apart(where: str, out: Any, out_op: _Operand, inputs: tuple[tuple[Any, _Operand], ...]) -> None:
    # The kernels declare their pointers restrict, so an output overlapping an input is undefined behaviour.
    end = out + out_op.size
    for pointer, operand in inputs:
        if out < pointer + operand.size and pointer < end:
            raise ValueError(f"{where}: argument 'out' overlaps {operand.name!r}; pass a separate array")


def _own_buffers(out: np.ndarray, *arrays: np.ndarray) -> bool:
    """True when out and every array own their memory and are distinct objects: distinct allocations, so no
    overlap is possible and the pointer comparisons of ``_check_apart`` can be skipped (the common case)."""
    if out.base is not None:
        return False
    for array in arrays:
        if array.base is not None or array is out:
            return False
    return True


@dataclass(frozen=True, eq=False)
class ConvKernels:
    """The forward pass and the three gradients of one layer, compiled for one dtype.

    Every method takes C-contiguous NumPy arrays of the layer's dtype in PyTorch layout and returns a new
    array, or fills and returns ``out``. Build instances with ``symconv.compile_conv``. ``threads`` bounds
    the OpenMP threads of one call (``gemm`` and ``direct`` kernels; the others run on the calling thread).
    """

    spec: ConvSpec
    dtype: np.dtype
    strategy: str
    module: ModuleType = field(repr=False)
    threads: int = 1
    _ops: dict[str, tuple[_Operand, ...]] = field(init=False, repr=False)
    _forward: Callable[..., Any] = field(init=False, repr=False)
    _grad_input: Callable[..., Any] = field(init=False, repr=False)
    _grad_weight: Callable[..., Any] = field(init=False, repr=False)
    _grad_bias: Callable[..., Any] = field(init=False, repr=False)
    _zero_bias: tuple[np.ndarray, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ffi, lib = self.module.ffi, self.module.lib
        prefix = kernel_prefix(self.spec, self.dtype.name)
        ops = {
            family: tuple(_Operand(family, p, self.dtype, ffi) for p in params)
            for family, params in signatures(self.spec).items()
        }
        object.__setattr__(self, "_ops", ops)
        calls = {family: getattr(lib, f"{prefix}_{family}") for family in ops}
        if self.strategy in VECTOR_STRATEGIES:  # these take the thread count first (partial binds it in C, no frame)
            calls = {family: partial(call, self.threads) for family, call in calls.items()}
        for family, call in calls.items():  # one attribute per kernel: no dict lookup per call
            object.__setattr__(self, f"_{family}", call)
        zeros = np.zeros(self.spec.out_channels, self.dtype)
        zeros.flags.writeable = False
        # The C forward always adds a bias; b=None passes this one, kept alive alongside its pointer.
        object.__setattr__(self, "_zero_bias", (zeros, ops["forward"][2].read(zeros)))

    def with_threads(self, threads: int) -> "ConvKernels":
        """The same kernels (same loaded module) run on at most ``threads`` threads per call."""
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        return replace(self, threads=threads)

    @property
    def library(self) -> str:
        """Path of the loaded extension in the build cache (its ``.c`` sits next to it)."""
        return str(self.module.__file__)

    # Each method checks every argument before the kernel runs: inputs by ``read``, ``out`` by ``write`` and
    # against overlap with the inputs. Written out per method, without generic tuples, to keep the call cheap.
    def forward(self, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
                out: Optional[np.ndarray] = None) -> np.ndarray:
        """y = conv(x, w) + b, shape (N, K, Ho, Wo); ``b=None`` means no bias."""
        ox, ow, ob, oy = self._ops["forward"]
        px, pw = ox.read(x), ow.read(w)
        if b is None:
            pb = self._zero_bias[1]
            if out is None:
                out, py = oy.fresh()
            else:
                py = oy.write(out)
                if (out.base is not None or x.base is not None or w.base is not None  # _own_buffers, inlined
                        or out is x or out is w):
                    _check_apart("forward", py, oy, ((px, ox), (pw, ow)))
        else:
            pb = ob.read(b)
            if out is None:
                out, py = oy.fresh()
            else:
                py = oy.write(out)
                if (out.base is not None or x.base is not None or w.base is not None or b.base is not None
                        or out is x or out is w or out is b):  # _own_buffers, inlined: it is the common case
                    _check_apart("forward", py, oy, ((px, ox), (pw, ow), (pb, ob)))
        if self._forward(px, pw, pb, py):
            raise MemoryError("forward: the kernel could not allocate its scratch memory")
        return out

    def grad_input(self, dy: np.ndarray, w: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """dE/dx given dy = dE/dy, shape (N, C, H, W)."""
        ody, ow, odx = self._ops["grad_input"]
        pdy, pw = ody.read(dy), ow.read(w)
        if out is None:
            out, pdx = odx.fresh()
        else:
            pdx = odx.write(out)
            if out.base is not None or dy.base is not None or w.base is not None or out is dy or out is w:
                _check_apart("grad_input", pdx, odx, ((pdy, ody), (pw, ow)))
        if self._grad_input(pdy, pw, pdx):
            raise MemoryError("grad_input: the kernel could not allocate its scratch memory")
        return out

    def grad_weight(self, x: np.ndarray, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """dE/dw given the input x and dy = dE/dy, shape (K, C, R, S)."""
        ox, ody, odw = self._ops["grad_weight"]
        px, pdy = ox.read(x), ody.read(dy)
        if out is None:
            out, pdw = odw.fresh()
        else:
            pdw = odw.write(out)
            if out.base is not None or x.base is not None or dy.base is not None or out is x or out is dy:
                _check_apart("grad_weight", pdw, odw, ((px, ox), (pdy, ody)))
        if self._grad_weight(px, pdy, pdw):
            raise MemoryError("grad_weight: the kernel could not allocate its scratch memory")
        return out

    def grad_bias(self, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """dE/db given dy = dE/dy, shape (K,)."""
        ody, odb = self._ops["grad_bias"]
        pdy = ody.read(dy)
        if out is None:
            out, pdb = odb.fresh()
        else:
            pdb = odb.write(out)
            if not _own_buffers(out, dy):
                _check_apart("grad_bias", pdb, odb, ((pdy, ody),))
        if self._grad_bias(pdy, pdb):
            raise MemoryError("grad_bias: the kernel could not allocate its scratch memory")
        return out
