"""Layer runtime: a loaded layer module and NumPy arrays -> checked, zero-copy calls of its C kernels.

As ``runtime.ConvKernels``: every argument is checked before any C runs (type, dtype, shape, C-contiguity,
alignment; for outputs writability and no overlap with another argument), and so are the values C would
use as addresses (max-pooling indices, class labels), so a kernel can never read or write outside an array.
Errors name the kernel, the argument, what was expected and what was given.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable, Final, Mapping, Optional

import numpy as np

from ..codegen.layer_lowering import Arg, LayerPlan

__all__ = ["LayerKernels", "ReLUKernels", "MaxPoolKernels", "AvgPoolKernels", "DenseKernels", "MSEKernels",
           "CrossEntropyKernels", "KERNEL_CLASSES"]


class _Operand:
    """One argument of one kernel: checks an array and hands C a pointer to its data (no copy)."""

    __slots__ = ("who", "arg", "dtype", "ffi", "ctype")

    def __init__(self, where: str, arg: Arg, ffi: Any) -> None:
        # Outputs are keyword arguments named out (or indices): errors name them as the caller wrote them.
        self.who = f"{where}: argument {('out' if arg.output and arg.name != 'indices' else arg.name)!r}"
        self.arg, self.dtype, self.ffi = arg, np.dtype(arg.dtype), ffi
        self.ctype = ffi.typeof(arg.ctype + "[]")  # parsed once, not per call

    def pointer(self, array: Any, writing: bool = False) -> Any:
        if isinstance(array, np.ndarray) and array.dtype == self.dtype and array.shape == self.arg.shape:
            flags = array.flags
            if flags.c_contiguous and flags.aligned and (flags.writeable or not writing):
                return self.ffi.from_buffer(self.ctype, array)
        raise self.problem(array)

    def problem(self, array: Any) -> Exception:
        """The first thing wrong with ``array``, naming argument, expected and actual value."""
        if not isinstance(array, np.ndarray):
            return TypeError(f"{self.who} must be a numpy.ndarray, got {type(array).__name__}")
        if array.dtype != self.dtype:
            return ValueError(f"{self.who} must have dtype {self.dtype}, got {array.dtype}")
        if array.shape != self.arg.shape:
            empty = " (an empty batch: at least one sample is needed)" if array.ndim and array.shape[0] == 0 else ""
            return ValueError(f"{self.who} must have shape {self.arg.shape} ({self.arg.axes}), got {array.shape}{empty}")
        if not array.flags.c_contiguous:
            return ValueError(f"{self.who} must be C-contiguous, got strides {array.strides} (use np.ascontiguousarray)")
        if not array.flags.aligned:
            return ValueError(f"{self.who} must be aligned to {self.dtype.alignment} bytes, got address {array.ctypes.data:#x}")
        return ValueError(f"{self.who} must be writeable, got a read-only array")


class LayerKernels:
    """The kernels of one layer operation (``plan.op``) for one dtype; methods are per-kind subclasses'."""

    def __init__(self, plan: LayerPlan, module: ModuleType) -> None:
        self.plan, self.op, self.dtype, self.module = plan, plan.op, np.dtype(plan.dtype), module
        ffi, lib = module.ffi, module.lib
        self._ops: dict[str, tuple[_Operand, ...]] = {
            k.family: tuple(_Operand(f"{type(self).__name__}.{k.family}", a, ffi) for a in k.args) for k in plan.kernels
        }
        self._calls: dict[str, Callable[..., None]] = {k.family: getattr(lib, k.name) for k in plan.kernels}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.op!r}, {self.dtype.name})"

    @property
    def library(self) -> str:
        """Path of the loaded extension in the build cache (its ``.c`` sits next to it)."""
        return str(self.module.__file__)

    def _run(self, family: str, inputs: tuple[Any, ...], outs: tuple[Optional[np.ndarray], ...]) -> list[np.ndarray]:
        operands = self._ops[family]
        pointers = [op.pointer(a) for op, a in zip(operands, inputs)]
        results: list[np.ndarray] = []
        for op, out in zip(operands[len(inputs):], outs):
            fresh = out is None
            array = np.empty(op.arg.shape, op.dtype) if out is None else out
            pointers.append(op.pointer(array, writing=True))
            # The kernels declare every pointer restrict: an output sharing memory with another argument is UB.
            if not fresh and any(np.may_share_memory(array, other) for other in (*inputs, *results)):
                raise ValueError(f"{op.who} overlaps another argument; pass a separate array")
            results.append(array)
        self._calls[family](*pointers)
        return results

    def _check_range(self, family: str, name: str, values: np.ndarray, stop: int, what: str) -> None:
        # C uses these values as offsets: out of range would be an out-of-bounds access, so refuse before the call.
        if values.size and (values.min() < 0 or values.max() >= stop):
            bad = values[(values < 0) | (values >= stop)][0]
            raise ValueError(f"{type(self).__name__}.{family}: argument {name!r} must hold {what} in [0, {stop}), got {bad}")


class ReLUKernels(LayerKernels):
    """ReLU: ``forward(x)`` = max(0, x) (NaN propagates); ``backward(x, dy)`` = dy * [x > 0] (0 at x = 0, as PyTorch).

    At x = NaN the gradient is 0 here and in ``layer_reference``; PyTorch passes dy through there.
    """

    def forward(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("forward", (x,), (out,))[0]

    def backward(self, x: np.ndarray, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("backward", (x, dy), (out,))[0]


class MaxPoolKernels(LayerKernels):
    """Max pooling: ``forward(x)`` -> (y, indices), the winner of each window as h * W + w in its plane (int64).

    Ties go to the first maximum in row-major window order, as PyTorch. A NaN always takes over, as in
    PyTorch's CPU kernel: a window holding NaN outputs NaN and its winner is its last NaN. ``backward(dy,
    indices)`` routes dy to the winners; overlapping windows add up.
    """

    def forward(self, x: np.ndarray, out: Optional[np.ndarray] = None,
                indices: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        y, winners = self._run("forward", (x,), (out, indices))
        return y, winners

    def backward(self, dy: np.ndarray, indices: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        operand = self._ops["backward"][1]
        operand.pointer(indices)  # type, dtype, shape first: only then are its values worth reading
        height, width = self.op.input_shape[2:]  # type: ignore[attr-defined]
        self._check_range("backward", "indices", indices, height * width, "flat positions h * W + w")
        return self._run("backward", (dy, indices), (out,))[0]


class AvgPoolKernels(LayerKernels):
    """Average pooling, ``count_include_pad=True``: ``forward(x)`` -> y, ``backward(dy)`` -> dx."""

    def forward(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("forward", (x,), (out,))[0]

    def backward(self, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("backward", (dy,), (out,))[0]


class DenseKernels(LayerKernels):
    """Dense, y = x W^T + b with W (out, in): ``forward``, ``grad_input``, ``grad_weight``, ``grad_bias`` (as ConvKernels)."""

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("forward", (x, w, b), (out,))[0]

    def grad_input(self, dy: np.ndarray, w: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("grad_input", (dy, w), (out,))[0]

    def grad_weight(self, x: np.ndarray, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("grad_weight", (x, dy), (out,))[0]

    def grad_bias(self, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("grad_bias", (dy,), (out,))[0]


class MSEKernels(LayerKernels):
    """``loss(y, t)`` = 1/2 sum (t - y)^2 (summed in double), ``grad(y, t)`` = y - t."""

    def loss(self, y: np.ndarray, t: np.ndarray) -> float:
        return float(self._run("loss", (y, t), (None,))[0][0])

    def grad(self, y: np.ndarray, t: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("grad", (y, t), (out,))[0]


class CrossEntropyKernels(LayerKernels):
    """Softmax cross-entropy of logits (N, M) and int64 labels (N,): ``loss`` (mean over N), ``grad`` (softmax - onehot)/N."""

    def _labels(self, family: str, labels: np.ndarray) -> None:
        self._ops[family][1].pointer(labels)
        self._check_range(family, "labels", labels, self.op.classes, "class labels")  # type: ignore[attr-defined]

    def loss(self, z: np.ndarray, labels: np.ndarray) -> float:
        self._labels("loss", labels)
        return float(self._run("loss", (z, labels), (None,))[0][0])

    def grad(self, z: np.ndarray, labels: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        self._labels("grad", labels)
        return self._run("grad", (z, labels), (out,))[0]


KERNEL_CLASSES: Final[Mapping[str, type[LayerKernels]]] = {
    "relu": ReLUKernels, "maxpool": MaxPoolKernels, "avgpool": AvgPoolKernels, "dense": DenseKernels,
    "mse": MSEKernels, "cross_entropy": CrossEntropyKernels,
}
"""``LayerOp.kind`` -> the class wrapping its kernels."""
