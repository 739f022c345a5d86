"""Runtime: a loaded kernel module and NumPy arrays -> checked, zero-copy calls of the four C kernels.

Every argument is checked before any C runs (type, dtype, shape, C-contiguity, alignment, and for ``out``
writability and no overlap with an input), so the kernels, which trust their fixed sizes, can never read
or write outside an array. The checks are a few attribute reads per argument (~0.3 µs with the pointer);
a whole call on a small layer costs about 2-3 µs of Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Optional

import numpy as np

from .lowering import CTYPES, Param, kernel_prefix, signatures
from .spec import ConvSpec

__all__ = ["ConvKernels"]

_AXES = {"x": "N, C, H, W", "w": "K, C, R, S", "b": "K", "y": "N, K, Ho, Wo", "dy": "N, K, Ho, Wo",
         "dx": "N, C, H, W", "dw": "K, C, R, S", "db": "K"}


class _Operand:
    """One argument of one kernel: checks an array and hands C a pointer to its data (no copy)."""

    __slots__ = ("where", "name", "axes", "shape", "dtype", "ctype", "ffi", "size")

    def __init__(self, where: str, param: Param, dtype: np.dtype, ffi: Any) -> None:
        # Errors name arguments as Python callers see them: an output is the keyword 'out'.
        self.where, self.name = where, "out" if param.output else param.name
        self.axes, self.shape, self.dtype, self.ffi = _AXES[param.name], param.shape, dtype, ffi
        self.ctype = ffi.typeof(CTYPES[dtype.name] + "[]")  # parsed once, not per call
        self.size = int(np.prod(param.shape))

    def read(self, array: Any) -> Any:
        if isinstance(array, np.ndarray) and array.dtype == self.dtype and array.shape == self.shape:
            flags = array.flags
            if flags.c_contiguous and flags.aligned:
                return self.ffi.from_buffer(self.ctype, array)
        raise self.problem(array)

    def write(self, array: Any) -> Any:
        if isinstance(array, np.ndarray) and array.dtype == self.dtype and array.shape == self.shape:
            flags = array.flags
            if flags.c_contiguous and flags.aligned and flags.writeable:
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


@dataclass(frozen=True, eq=False)
class ConvKernels:
    """The forward pass and the three gradients of one layer, compiled for one dtype.

    Every method takes C-contiguous NumPy arrays of the layer's dtype in PyTorch layout and returns a new
    array, or fills and returns ``out``. Build instances with ``symconv.compile_conv``.
    """

    spec: ConvSpec
    dtype: np.dtype
    strategy: str
    module: ModuleType = field(repr=False)
    _ops: dict[str, tuple[_Operand, ...]] = field(init=False, repr=False)
    _calls: dict[str, Callable[..., None]] = field(init=False, repr=False)
    _zero_bias: tuple[np.ndarray, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ffi, lib = self.module.ffi, self.module.lib
        prefix = kernel_prefix(self.spec, self.dtype.name)
        ops = {
            family: tuple(_Operand(family, p, self.dtype, ffi) for p in params)
            for family, params in signatures(self.spec).items()
        }
        object.__setattr__(self, "_ops", ops)
        object.__setattr__(self, "_calls", {family: getattr(lib, f"{prefix}_{family}") for family in ops})
        zeros = np.zeros(self.spec.out_channels, self.dtype)
        zeros.flags.writeable = False
        # The C forward always adds a bias; b=None passes this one, kept alive alongside its pointer.
        object.__setattr__(self, "_zero_bias", (zeros, ops["forward"][2].read(zeros)))

    @property
    def library(self) -> str:
        """Path of the loaded extension in the build cache (its ``.c`` sits next to it)."""
        return str(self.module.__file__)

    def forward(self, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
                out: Optional[np.ndarray] = None) -> np.ndarray:
        """y = conv(x, w) + b, shape (N, K, Ho, Wo); ``b=None`` means no bias."""
        ox, ow, ob, oy = self._ops["forward"]
        px, pw = ox.read(x), ow.read(w)
        if b is None:
            return self._finish("forward", out, oy, (px, pw, self._zero_bias[1]), ((px, ox), (pw, ow)))
        pb = ob.read(b)
        return self._finish("forward", out, oy, (px, pw, pb), ((px, ox), (pw, ow), (pb, ob)))

    def grad_input(self, dy: np.ndarray, w: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """dE/dx given dy = dE/dy, shape (N, C, H, W)."""
        ody, ow, odx = self._ops["grad_input"]
        pdy, pw = ody.read(dy), ow.read(w)
        return self._finish("grad_input", out, odx, (pdy, pw), ((pdy, ody), (pw, ow)))

    def grad_weight(self, x: np.ndarray, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """dE/dw given the input x and dy = dE/dy, shape (K, C, R, S)."""
        ox, ody, odw = self._ops["grad_weight"]
        px, pdy = ox.read(x), ody.read(dy)
        return self._finish("grad_weight", out, odw, (px, pdy), ((px, ox), (pdy, ody)))

    def grad_bias(self, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """dE/db given dy = dE/dy, shape (K,)."""
        ody, odb = self._ops["grad_bias"]
        pdy = ody.read(dy)
        return self._finish("grad_bias", out, odb, (pdy,), ((pdy, ody),))

    def _finish(self, family: str, out: Optional[np.ndarray], out_op: _Operand, pointers: tuple[Any, ...],
                inputs: tuple[tuple[Any, _Operand], ...]) -> np.ndarray:
        if out is None:
            out, pout = out_op.fresh()
        else:
            pout = out_op.write(out)
            _check_apart(family, pout, out_op, inputs)
        self._calls[family](*pointers, pout)
        return out
