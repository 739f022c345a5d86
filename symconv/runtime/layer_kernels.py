"""Layer runtime: a loaded layer module and NumPy arrays -> checked, zero-copy calls of its C kernels.

As ``kernels.ConvKernels``, and through the same ``KernelCall``s and C checked calls: every argument is checked
before any C runs (type, dtype, shape, C-contiguity, alignment; for outputs writability and no overlap with
another argument), and so are the values C would use as addresses (max-pooling indices, class labels), so a
kernel can never read or write outside an array. Errors name the kernel, the argument, what was expected and
what was given.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, ClassVar, Final, Mapping, Optional

import numpy as np

from ..codegen.layer_lowering import CrossEntropyOp, LayerPlan, MaxPoolOp
from .checked_call import checked_call
from .operands import KernelCall

__all__ = ["LayerKernels", "ReLUKernels", "MaxPoolKernels", "AvgPoolKernels", "DenseKernels", "MSEKernels",
           "CrossEntropyKernels", "KERNEL_CLASSES"]


class LayerKernels:
    """The kernels of one layer operation (``plan.op``) for one dtype; methods are per-kind subclasses'.

    ``checked`` is the compiled checked-call extension (``checked_call.checked_call_module``), or None: then
    every call runs behind its Python checks alone. The methods named in ``c_methods`` are replaced, per
    instance, by C objects that check and run their common case and hand every other call to the method.
    """

    c_methods: ClassVar[Mapping[str, str]] = {}
    """Method -> kernel family, for the methods whose parameters are the kernel's arguments in C order (so that
    the C path can stand for them)."""

    def __init__(self, plan: LayerPlan, module: ModuleType, checked: Optional[ModuleType] = None) -> None:
        self.plan, self.op, self.dtype, self.module = plan, plan.op, np.dtype(plan.dtype), module
        self._calls = {k.family: KernelCall(f"{type(self).__name__}.{k.family}", k, getattr(module.lib, k.name),
                                            module.ffi) for k in plan.kernels}
        if checked is not None:
            for name, family in self.c_methods.items():
                setattr(self, name, checked_call(checked, self._calls[family], module, getattr(self, name)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.op!r}, {self.dtype.name})"

    @property
    def library(self) -> str:
        """Path of the loaded extension in the build cache (its ``.c`` sits next to it)."""
        return str(self.module.__file__)

    def _run(self, family: str, *inputs: Any, outs: tuple[Optional[np.ndarray], ...] = (None,)) -> Any:
        return self._calls[family].run(inputs, outs)


class ReLUKernels(LayerKernels):
    """ReLU: ``forward(x)`` = max(0, x) (NaN propagates); ``backward(x, dy)`` = dy * [x > 0] (0 at x = 0, as PyTorch).

    At x = NaN the gradient is 0 here and in ``layer_reference``; PyTorch passes dy through there.
    """

    c_methods = {"forward": "forward", "backward": "backward"}

    def forward(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("forward", x, outs=(out,))

    def backward(self, x: np.ndarray, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("backward", x, dy, outs=(out,))


class MaxPoolKernels(LayerKernels):
    """Max pooling: ``forward(x)`` -> (y, indices), the winner of each window as h * W + w in its plane (int64).

    Ties go to the first maximum in row-major window order, as PyTorch. A NaN always takes over, as in
    PyTorch's CPU kernel: a window holding NaN outputs NaN and its winner is its last NaN. ``backward(dy,
    indices)`` routes dy to the winners; overlapping windows add up.
    """

    c_methods = {"forward": "forward", "backward": "backward"}
    op: MaxPoolOp

    def forward(self, x: np.ndarray, out: Optional[np.ndarray] = None,
                indices: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        return self._run("forward", x, outs=(out, indices))

    def backward(self, dy: np.ndarray, indices: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("backward", dy, indices, outs=(out,))


class AvgPoolKernels(LayerKernels):
    """Average pooling, ``count_include_pad=True``: ``forward(x)`` -> y, ``backward(dy)`` -> dx."""

    c_methods = {"forward": "forward", "backward": "backward"}

    def forward(self, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("forward", x, outs=(out,))

    def backward(self, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("backward", dy, outs=(out,))


class DenseKernels(LayerKernels):
    """Dense, y = x W^T + b with W (out, in): ``forward``, ``grad_input``, ``grad_weight``, ``grad_bias`` (as ConvKernels)."""

    c_methods = {name: name for name in ("forward", "grad_input", "grad_weight", "grad_bias")}

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("forward", x, w, b, outs=(out,))

    def grad_input(self, dy: np.ndarray, w: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("grad_input", dy, w, outs=(out,))

    def grad_weight(self, x: np.ndarray, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("grad_weight", x, dy, outs=(out,))

    def grad_bias(self, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("grad_bias", dy, outs=(out,))


class _LossKernels(LayerKernels):
    """A loss: ``loss(y, target)`` -> float (its kernel writes one entry), ``grad(y, target)`` -> dE/dy."""

    c_methods = {"grad": "grad", "_loss": "loss"}

    def _loss(self, y: np.ndarray, target: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("loss", y, target, outs=(out,))

    def loss(self, y: np.ndarray, target: np.ndarray) -> float:
        return float(self._loss(y, target)[0])

    def grad(self, y: np.ndarray, target: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._run("grad", y, target, outs=(out,))


class MSEKernels(_LossKernels):
    """``loss(y, t)`` = 1/2 sum (t - y)^2 (summed in double), ``grad(y, t)`` = y - t."""


class CrossEntropyKernels(_LossKernels):
    """Softmax cross-entropy of logits (N, M) and int64 labels (N,): ``loss`` (mean over N), ``grad`` (softmax - onehot)/N."""

    op: CrossEntropyOp


KERNEL_CLASSES: Final[Mapping[str, type[LayerKernels]]] = {
    "relu": ReLUKernels, "maxpool": MaxPoolKernels, "avgpool": AvgPoolKernels, "dense": DenseKernels,
    "mse": MSEKernels, "cross_entropy": CrossEntropyKernels,
}
"""``LayerOp.kind`` -> the class wrapping its kernels."""
