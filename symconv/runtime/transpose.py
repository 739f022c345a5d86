"""Transposed-convolution kernels: the corresponding convolution's ``ConvKernels`` -> ``ConvTransposeKernels``.

No kernel of its own: the transpose's forward is the convolution's ``grad_input`` kernel, its ``grad_input`` the
convolution's ``forward`` kernel and its ``grad_weight`` the convolution's ``grad_weight`` kernel with the two
arrays swapped. Each runs behind a ``KernelCall`` whose arguments carry the transpose's names, so a bad array is
refused before any C runs with the message a transpose's caller understands (``argument 'x'``, not ``'dy'``).
The bias (add and gradient, one pass over Y each) is NumPy's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

import numpy as np

from ..codegen.plan import Arg, Kernel
from ..symbolic.transpose import ConvTransposeSpec
from .kernels import ConvKernels
from .operands import KernelCall, Operand

__all__ = ["ConvTransposeKernels"]

_IMAGE, _WEIGHT, _OUTPUT = "N, C_in, H, W", "C_in, C_out/groups, R, S", "N, C_out, Ho, Wo"
# The transpose's pass -> the convolution's kernel family and the transpose's names for that kernel's arguments.
_RENAMED = {
    "forward": ("grad_input", (("x", _IMAGE), ("w", _WEIGHT), ("y", _OUTPUT))),
    "grad_input": ("forward", (("dy", _OUTPUT), ("w", _WEIGHT), ("b", "C_in"), ("dx", _IMAGE))),
    "grad_weight": ("grad_weight", (("dy", _OUTPUT), ("x", _IMAGE), ("dw", _WEIGHT))),
}


def _renamed_call(family: str, call: KernelCall, dtype: np.dtype) -> KernelCall:
    conv_family, names = _RENAMED[family]
    with_bias = any(a.name == "b" for a in call.kernel.args)  # a convolution with bias=False takes no b
    names = tuple(n for n in names if with_bias or n[0] != "b")
    args = tuple(replace(a, name=name, axes=axes) for a, (name, axes) in zip(call.kernel.args, names, strict=True))
    kernel = Kernel(family, call.kernel.name, args, call.kernel.body)
    ffi = call.operands[0].ffi
    defaults = {"b": np.zeros(args[2].shape, dtype)} if conv_family == "forward" and with_bias else None
    if defaults:
        defaults["b"].flags.writeable = False
    # ``call.function`` already has the thread count bound (vector strategies), so none is passed again.
    return KernelCall(f"ConvTranspose2d.{family}", kernel, call.function, ffi, None, defaults)


@dataclass(frozen=True, eq=False)
class ConvTransposeKernels:
    """The forward pass and the three gradients of one transposed convolution, compiled for one dtype.

    C-contiguous arrays of the layer's dtype in PyTorch layout, checked before any kernel runs:

    - ``forward(x, w, b=None, out=None)``: y = conv_transpose2d(x, w) + b, shape (N, C_out, Ho, Wo).
    - ``grad_input(dy, w, out=None)``: dE/dx, shape (N, C_in, H, W).
    - ``grad_weight(x, dy, out=None)``: dE/dw, shape (C_in, C_out / groups, R, S).
    - ``grad_bias(dy, out=None)``: dE/db, shape (C_out,).

    Build it with ``symconv.pipeline.compile_conv_transpose``; ``conv`` holds the convolution's kernels.
    """

    spec: ConvTransposeSpec
    conv: ConvKernels = field(repr=False)
    _calls: dict[str, KernelCall] = field(init=False, repr=False)
    _own: dict[str, Operand] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.conv.spec != self.spec.conv:
            raise ValueError(f"ConvTransposeKernels: kernels of {self.conv.spec.describe()}, not of the "
                             f"corresponding convolution {self.spec.conv.describe()}")
        dtype = self.conv.dtype
        calls = {family: _renamed_call(family, self.conv._calls[conv_family], dtype)
                 for family, (conv_family, _) in _RENAMED.items()}
        ffi, s, name = calls["forward"].operands[0].ffi, self.spec, dtype.name
        # The arrays whose shape is the transpose's own where the convolution's differs (output_padding >= stride).
        own = {
            "x": Arg("x", s.input_shape, name, _IMAGE), "dx": Arg("out", s.input_shape, name, _IMAGE, True),
            "b": Arg("b", (s.out_channels,), name, "C_out"), "dy": Arg("dy", s.output_shape, name, _OUTPUT),
            "db": Arg("out", (s.out_channels,), name, "C_out", True),
        }
        object.__setattr__(self, "_calls", calls)
        object.__setattr__(self, "_own", {k: Operand(f"ConvTranspose2d.{k}", a, a.name, ffi) for k, a in own.items()})

    @property
    def dtype(self) -> np.dtype:
        return self.conv.dtype

    @property
    def strategies(self) -> dict[str, str]:
        """The strategy of each of the transpose's passes (the convolution kernel that runs it)."""
        conv = self.conv.strategies
        return {family: conv[conv_family] for family, (conv_family, _) in _RENAMED.items()} | {"grad_bias": "numpy"}

    def _staged(self, x: Any) -> Any:
        """x as the convolution's output gradient: zero rows and columns appended when output_padding >= stride."""
        if self.spec.excess == (0, 0):
            return x
        self._own["x"].pointer(x)  # refuses a bad x by name before the copy
        (n, c, h, w), (eh, ew) = self.spec.input_shape, self.spec.excess
        staged = np.zeros((n, c, h + eh, w + ew), self.dtype)
        staged[:, :, :h, :w] = x
        return staged

    def forward(self, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
                out: Optional[np.ndarray] = None) -> np.ndarray:
        if b is not None:
            if not self.spec.bias:
                raise ValueError("ConvTranspose2d.forward: this layer has no bias (bias=False); pass b=None")
            self._own["b"].pointer(b)
        y = self._calls["forward"].run((self._staged(x), w), (out,))
        if b is not None:
            y += b[None, :, None, None]
        return y

    def grad_input(self, dy: np.ndarray, w: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        # The convolution's forward, with its zero bias where it has one.
        inputs = (dy, w, None) if self.spec.conv.bias else (dy, w)
        if self.spec.excess == (0, 0):
            return self._calls["grad_input"].run(inputs, (out,))
        if out is not None:
            self._own["dx"].pointer(out)
        full = self._calls["grad_input"].run(inputs, (None,))
        h, wd = self.spec.input_size
        if out is None:
            return full[:, :, :h, :wd].copy()
        out[...] = full[:, :, :h, :wd]
        return out

    def grad_weight(self, x: np.ndarray, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return self._calls["grad_weight"].run((dy, self._staged(x)), (out,))

    def grad_bias(self, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        if not self.spec.bias:
            raise ValueError("ConvTranspose2d.grad_bias: this layer has no bias (bias=False)")
        self._own["dy"].pointer(dy)
        if out is None:
            return dy.sum(axis=(0, 2, 3))
        self._own["db"].pointer(out)
        return np.sum(dy, axis=(0, 2, 3), out=out)
