"""Transposed-convolution layer: hyperparameters and an input shape -> ``ConvTranspose2d``, a ``Network`` layer.

Like ``torch.nn.LazyConvTranspose2d``: ``in_channels`` is inferred from the input. The forward pass is the scatter
definition (``transpose_derive.scatter_taps``), the backward the closed forms (``transpose_forms``), the float
passes the NumPy reference; the kernels are the corresponding convolution's (``pipeline.compile_conv_transpose``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import sympy as sp

from . import transpose_forms as closed
from .layer_base import ZERO, Grads, Layer, Params, Shape, four_d, zeros
from .spec import IntOrPair, PaddingArg
from .transpose import ConvTransposeSpec
from .transpose_derive import scatter_taps

__all__ = ["ConvTranspose2d"]


@dataclass(frozen=True)
class ConvTranspose2d(Layer):
    """A transposed convolution, ``torch.nn.ConvTranspose2d``'s arguments after ``in_channels``.

    >>> layer = ConvTranspose2d(2, 3, stride=2, padding=1, output_padding=1)
    >>> layer.output_shape((1, 4, 5, 5)), layer.parameter_shapes((1, 4, 5, 5))
    ((1, 2, 10, 10), {'weight': (4, 2, 3, 3), 'bias': (2,)})
    """

    out_channels: int
    kernel_size: IntOrPair
    stride: IntOrPair = 1
    padding: PaddingArg = 0
    output_padding: IntOrPair = 0
    groups: int = 1
    bias: bool = True
    dilation: IntOrPair = 1

    @classmethod
    def from_spec(cls, spec: ConvTransposeSpec) -> "ConvTranspose2d":
        """The layer of a ``ConvTransposeSpec`` (its input shape goes to the ``Network``)."""
        return cls(spec.out_channels, spec.kernel_size, spec.stride, spec.padding_sides, spec.output_padding,
                   spec.groups, spec.bias, spec.dilation)

    def describe(self) -> str:
        return (f"ConvTranspose2d({self.out_channels}, {self.kernel_size!r}, stride={self.stride!r}, "
                f"padding={self.padding!r}, output_padding={self.output_padding!r}"
                + (f", groups={self.groups}" if self.groups != 1 else "")
                + (", bias=False" if not self.bias else "")
                + (f", dilation={self.dilation!r}" if self.dilation != 1 else "") + ")")

    def spec(self, input_shape: Shape) -> ConvTransposeSpec:
        """The ``ConvTransposeSpec`` of this layer on an input of ``input_shape``."""
        N, C, H, W = four_d(self, input_shape)
        return ConvTransposeSpec((H, W), self.kernel_size, self.stride, self.padding, self.output_padding,
                                 self.dilation, C, self.out_channels, N, self.groups, self.bias)

    def output_shape(self, input_shape: Shape) -> Shape:
        return self.spec(input_shape).output_shape

    def parameter_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        spec = self.spec(input_shape)
        return {"weight": spec.weight_shape, **({"bias": (self.out_channels,)} if self.bias else {})}

    def forward(self, x: np.ndarray, params: Params) -> np.ndarray:
        # The definition: every input entry scattered through every tap; the closed forms stay in backward.
        spec, F = self.spec(x.shape), params["weight"]
        y = zeros(spec.output_shape)
        terms: dict[tuple[int, ...], list[Any]] = {}
        for i, w, o in scatter_taps(spec):
            if x[i] is not ZERO:
                terms.setdefault(o, []).append(F[w] * x[i])
        for o in np.ndindex(*spec.output_shape):
            y[o] = sp.Add(*terms.get(o, ()), *((params["bias"][o[1]],) if self.bias else ()))
        return y

    def backward(self, x: np.ndarray, params: Params, grad_output: np.ndarray,
                 branch: Optional[np.ndarray] = None) -> tuple[np.ndarray, Grads]:
        spec, F = self.spec(x.shape), params["weight"]
        grads = {"weight": closed.grad_weight(spec, x, grad_output)}
        if self.bias:
            grads["bias"] = closed.grad_bias(spec, grad_output)
        return closed.grad_input(spec, F, grad_output), grads

    def reference_forward(self, x: np.ndarray, params: Params) -> tuple[np.ndarray, Any]:
        return closed.reference_forward(self.spec(x.shape), x, params["weight"], params.get("bias")), None

    def reference_backward(self, x: np.ndarray, params: Params, cache: Any,
                           grad_output: np.ndarray) -> tuple[np.ndarray, Grads]:
        spec = self.spec(x.shape)
        grads = {"weight": closed.reference_grad_weight(spec, x, grad_output)}
        if self.bias:
            grads["bias"] = closed.reference_grad_bias(spec, grad_output)
        return closed.reference_grad_input(spec, grad_output, params["weight"]), grads
