"""Layers: hyperparameters and an input shape -> output shape, symbolic forward, closed-form backward (object arrays).

Conv2d, ReLU, Flatten and Dense are here, the pooling layers in ``pooling`` (re-exported, so that every layer
imports from this module); ``layer_base`` describes the interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np
import sympy as sp

from . import forms
from . import layer_reference as ref
from .derive import forward_taps
from .layer_base import ZERO, Grads, Layer, Params, Shape, entrywise, four_d, maximum, truth, zeros
from .pooling import AvgPool2d, MaxPool2d
from .reference import conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight
from .spec import ConvSpec, IntOrPair, PaddingArg

__all__ = [
    "Layer",
    "Conv2d",
    "ReLU",
    "MaxPool2d",
    "AvgPool2d",
    "Flatten",
    "Dense",
    "Shape",
    "Params",
    "Grads",
    "ZERO",
    "entrywise",
    "maximum",
]


@dataclass(frozen=True)
class Conv2d(Layer):
    """A convolution layer; ``in_channels`` is inferred from the input, as ``torch.nn.LazyConv2d`` does.

    The bias is one per output channel (none with ``bias=False``). ``padding`` takes every form ``ConvSpec``
    does (per side, ``"same"``, ``"valid"``); ``groups`` splits the channels; ``flip=True`` is true
    convolution, as in ``ConvSpec``.

    >>> Conv2d(2, 3).output_shape((1, 1, 6, 6)), Conv2d(2, 3).parameter_shapes((1, 1, 6, 6))
    ((1, 2, 4, 4), {'weight': (2, 1, 3, 3), 'bias': (2,)})
    >>> Conv2d(4, 2, padding="same", groups=2, bias=False).parameter_shapes((1, 2, 5, 5))
    {'weight': (4, 1, 2, 2)}
    """

    out_channels: int
    kernel_size: IntOrPair
    stride: IntOrPair = 1
    padding: PaddingArg = 0
    dilation: IntOrPair = 1
    flip: bool = False
    groups: int = 1
    bias: bool = True

    @classmethod
    def from_spec(cls, spec: ConvSpec) -> "Conv2d":
        """The layer of a ``ConvSpec`` (its input shape goes to the ``Network``)."""
        padding = spec.padding if spec.is_symmetric else spec.padding_sides
        return cls(spec.out_channels, spec.kernel_size, spec.stride, padding, spec.dilation, spec.flip,
                   spec.groups, spec.bias)

    def describe(self) -> str:
        extra = (f", groups={self.groups}" if self.groups != 1 else "") + ("" if self.bias else ", bias=False")
        return (f"Conv2d({self.out_channels}, {self.kernel_size!r}, stride={self.stride!r}, "
                f"padding={self.padding!r}{extra})")

    def spec(self, input_shape: Shape) -> ConvSpec:
        """The ``ConvSpec`` of this layer on an input of ``input_shape``."""
        N, C, H, W = four_d(self, input_shape)
        return ConvSpec((H, W), self.kernel_size, self.stride, self.padding, self.dilation, C, self.out_channels, N,
                        self.flip, self.groups, self.bias)

    def output_shape(self, input_shape: Shape) -> Shape:
        return self.spec(input_shape).output_shape

    def parameter_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        shapes: dict[str, Shape] = {"weight": self.spec(input_shape).weight_shape}
        if self.bias:
            shapes["bias"] = (self.out_channels,)
        return shapes

    def forward(self, x: np.ndarray, params: Params) -> np.ndarray:
        # The definition, one product per kernel tap (derive.forward_taps); the closed forms stay in backward.
        spec, F = self.spec(x.shape), params["weight"]
        y = zeros(spec.output_shape)
        for p in np.ndindex(*spec.output_shape):
            bias = (params["bias"][p[1]],) if self.bias else ()
            y[p] = sp.Add(*(F[w] * x[i] for w, i in forward_taps(spec, p) if x[i] is not ZERO), *bias)
        return y

    def backward(
        self, x: np.ndarray, params: Params, grad_output: np.ndarray, branch: Optional[np.ndarray] = None
    ) -> tuple[np.ndarray, Grads]:
        spec = self.spec(x.shape)
        grads = {"weight": forms.grad_weight(spec, x, grad_output)}
        if self.bias:
            grads["bias"] = forms.grad_bias(spec, grad_output)
        return forms.grad_input(spec, params["weight"], grad_output), grads

    def reference_forward(self, x: np.ndarray, params: Params) -> tuple[np.ndarray, Any]:
        return conv2d_forward(self.spec(x.shape), x, params["weight"], params.get("bias") if self.bias else None), None

    def reference_backward(
        self, x: np.ndarray, params: Params, cache: Any, grad_output: np.ndarray
    ) -> tuple[np.ndarray, Grads]:
        spec = self.spec(x.shape)
        grads = {"weight": conv2d_grad_weight(spec, x, grad_output)}
        if self.bias:
            grads["bias"] = conv2d_grad_bias(spec, grad_output)
        return conv2d_grad_input(spec, grad_output, params["weight"]), grads


@dataclass(frozen=True)
class ReLU(Layer):
    """max(0, x) entrywise; its derivative is taken as 0 at x = 0, as PyTorch does (``Heaviside(x, 0)``).

    >>> x = np.array([sp.Rational(-1), sp.Rational(2)], dtype=object)
    >>> ReLU().forward(x, {}), ReLU().backward(x, {}, np.array([5, 7], dtype=object))[0]
    (array([0, 2], dtype=object), array([0, 7], dtype=object))
    """

    piecewise: ClassVar[bool] = True

    def describe(self) -> str:
        return "ReLU()"

    def output_shape(self, input_shape: Shape) -> Shape:
        return tuple(input_shape)

    def forward(self, x: np.ndarray, params: Params) -> np.ndarray:
        return entrywise(lambda v: maximum(ZERO, v), x)

    def branch(self, x: np.ndarray) -> np.ndarray:
        """The mask [x > 0]."""
        return entrywise(lambda v: truth(self, v > 0), x, bool)

    def forward_on(self, x: np.ndarray, params: Params, branch: Optional[np.ndarray]) -> np.ndarray:
        return np.where(self.branch(x) if branch is None else branch, x, ZERO)

    def boundary(self, values: np.ndarray, region: np.ndarray) -> Optional[str]:
        for index in np.ndindex(*values.shape):
            if values[index] == 0 and region[index] is not ZERO and sp.expand(region[index]) != 0:
                return f"{self.describe()} input {list(index)} is exactly 0, where the derivative does not exist"
        return None

    def backward(
        self, x: np.ndarray, params: Params, grad_output: np.ndarray, branch: Optional[np.ndarray] = None
    ) -> tuple[np.ndarray, Grads]:
        return np.where(self.branch(x) if branch is None else branch, grad_output, ZERO), {}

    def reference_forward(self, x: np.ndarray, params: Params) -> tuple[np.ndarray, Any]:
        return ref.relu_forward(x), None

    def reference_backward(
        self, x: np.ndarray, params: Params, cache: Any, grad_output: np.ndarray
    ) -> tuple[np.ndarray, Grads]:
        return ref.relu_backward(x, grad_output), {}


@dataclass(frozen=True)
class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in row-major order, as ``torch.flatten(x, 1)``.

    >>> Flatten().output_shape((2, 3, 4, 5))
    (2, 60)
    """

    def describe(self) -> str:
        return "Flatten()"

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) < 2:
            raise ValueError(f"Flatten() needs a batch axis and at least one feature axis, got shape {input_shape}")
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def forward(self, x: np.ndarray, params: Params) -> np.ndarray:
        return x.reshape(self.output_shape(x.shape))

    def backward(
        self, x: np.ndarray, params: Params, grad_output: np.ndarray, branch: Optional[np.ndarray] = None
    ) -> tuple[np.ndarray, Grads]:
        return grad_output.reshape(x.shape), {}

    def reference_forward(self, x: np.ndarray, params: Params) -> tuple[np.ndarray, Any]:
        return x.reshape(self.output_shape(x.shape)), None

    def reference_backward(
        self, x: np.ndarray, params: Params, cache: Any, grad_output: np.ndarray
    ) -> tuple[np.ndarray, Grads]:
        return grad_output.reshape(x.shape), {}


def _dot(terms: list[tuple[Any, Any]]) -> sp.Expr:
    # One Add of all products, zeros skipped: repeated binary + would re-flatten the sum at every step.
    return sp.Add(*(a * b for a, b in terms if a is not ZERO and b is not ZERO))


@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected, y = W x + b with W of shape (out, in), as ``torch.nn.Linear``; ``in`` is inferred.

    >>> Dense(3).parameter_shapes((2, 8))
    {'weight': (3, 8), 'bias': (3,)}
    """

    out_features: int

    def __post_init__(self) -> None:
        if isinstance(self.out_features, bool) or not isinstance(self.out_features, int) or self.out_features < 1:
            raise ValueError(f"Dense: out_features must be a positive integer, got {self.out_features!r}")

    def describe(self) -> str:
        return f"Dense({self.out_features})"

    def output_shape(self, input_shape: Shape) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(
                f"{self.describe()} needs an (N, features) input, got shape {input_shape}; put Flatten() before it"
            )
        return (input_shape[0], self.out_features)

    def parameter_shapes(self, input_shape: Shape) -> dict[str, Shape]:
        self.output_shape(input_shape)
        return {"weight": (self.out_features, input_shape[1]), "bias": (self.out_features,)}

    def forward(self, x: np.ndarray, params: Params) -> np.ndarray:
        W, b = params["weight"], params["bias"]
        y = zeros(self.output_shape(x.shape))
        for n, o in np.ndindex(*y.shape):
            y[n, o] = _dot([(W[o, i], x[n, i]) for i in range(x.shape[1])]) + b[o]
        return y

    def backward(
        self, x: np.ndarray, params: Params, grad_output: np.ndarray, branch: Optional[np.ndarray] = None
    ) -> tuple[np.ndarray, Grads]:
        W, G = params["weight"], grad_output
        (N, I), O = x.shape, self.out_features
        dx, dW, db = zeros((N, I)), zeros((O, I)), zeros((O,))
        for n, i in np.ndindex(N, I):
            dx[n, i] = _dot([(G[n, o], W[o, i]) for o in range(O)])  # G W
        for o, i in np.ndindex(O, I):
            dW[o, i] = _dot([(G[n, o], x[n, i]) for n in range(N)])  # G^T x
        for o in range(O):
            db[o] = sp.Add(*G[:, o])
        return dx, {"weight": dW, "bias": db}

    def reference_forward(self, x: np.ndarray, params: Params) -> tuple[np.ndarray, Any]:
        return ref.dense_forward(x, params["weight"], params["bias"]), None

    def reference_backward(
        self, x: np.ndarray, params: Params, cache: Any, grad_output: np.ndarray
    ) -> tuple[np.ndarray, Grads]:
        dx, dW, db = ref.dense_backward(x, params["weight"], grad_output)
        return dx, {"weight": dW, "bias": db}
