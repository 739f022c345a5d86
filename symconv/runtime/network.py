"""Compiled network: a ``Network`` and its layers' kernels -> ``CompiledNetwork``: forward, loss, backward, SGD step.

Every forward and backward computation runs in symconv's kernels (``pipeline.compile_network`` compiles them:
convolutions through ``compile_conv``, every other layer and the loss in one module through ``compile_layers``). NumPy only
allocates, reshapes (``Flatten`` is a view) and applies the SGD update. Shapes, the batch size included, are
compile-time constants: ``forward``, ``loss``, ``backward`` and ``step`` take batches of exactly the network's
``input_shape``; ``predict`` takes any number of samples (in padded batches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

from ..symbolic.losses import CrossEntropyLoss
from ..symbolic.network import Network
from .layer_kernels import LayerKernels

__all__ = ["CompiledNetwork", "NetworkGradients", "Stage", "own_params"]


@dataclass(frozen=True)
class NetworkGradients:
    """One backward pass: the loss, dE/dx (None when not asked for) and dE/dparam keyed as the parameters."""

    loss: float
    input: Optional[np.ndarray]
    params: dict[str, np.ndarray]


@dataclass(frozen=True)
class Stage:
    """One layer bound to its kernels: ``kind`` picks the calls, ``kernels`` is ConvKernels or LayerKernels."""

    index: int
    kind: str
    kernels: Any = None
    shape: tuple[int, ...] = ()  # Flatten: the output shape

    def forward(self, x: np.ndarray, params: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Any]:
        k = self.kernels
        if self.kind in ("conv", "dense"):
            return k.forward(x, params[f"{self.index}.weight"], params.get(f"{self.index}.bias")), None
        if self.kind == "conv_relu":
            return k.forward_relu(x, params[f"{self.index}.weight"], params.get(f"{self.index}.bias")), None
        if self.kind == "relu_fused":
            return x, None  # the convolution before it already applied the ReLU
        if self.kind == "maxpool":
            return k.forward(x)  # (y, winner indices): backward needs the indices
        if self.kind == "flatten":
            return x.reshape(self.shape), None  # a view of a C-contiguous array, still C-contiguous
        return k.forward(x), None

    def backward(self, x: np.ndarray, cache: Any, dy: np.ndarray, params: Mapping[str, np.ndarray],
                 need_input: bool) -> tuple[Optional[np.ndarray], dict[str, np.ndarray]]:
        k, weight = self.kernels, f"{self.index}.weight"
        if self.kind in ("conv", "conv_relu", "dense"):
            grads = {weight: k.grad_weight(x, dy)}
            if f"{self.index}.bias" in params:  # a convolution with bias=False has none
                grads[f"{self.index}.bias"] = k.grad_bias(dy)
            return (k.grad_input(dy, params[weight]) if need_input else None), grads
        if self.kind in ("relu", "relu_fused"):
            # After a fused convolution x is ReLU's output, not its input: x > 0 exactly where the input is > 0,
            # so the same kernel gives the same mask.
            return k.backward(x, dy), {}
        if self.kind == "maxpool":
            return k.backward(dy, cache), {}
        if self.kind == "avgpool":
            return k.backward(dy), {}
        return dy.reshape(x.shape), {}  # flatten


@dataclass(frozen=True, eq=False)
class CompiledNetwork:
    """A ``Network`` whose passes run in generated C; ``params`` (keyed ``"0.weight"``, ... as PyTorch's
    ``nn.Sequential``) are owned arrays that ``step`` updates in place. Build it with ``symconv.pipeline.compile_network``."""

    network: Network
    dtype: np.dtype
    params: dict[str, np.ndarray] = field(repr=False)
    _stages: tuple[Stage, ...] = field(repr=False)
    _loss: LayerKernels = field(repr=False)

    @property
    def batch(self) -> int:
        """The batch size every call takes (the network's ``input_shape[0]``)."""
        return self.network.input_shape[0]

    def _input(self, where: str, x: Any) -> np.ndarray:
        shape = self.network.input_shape
        if not isinstance(x, np.ndarray):
            raise TypeError(f"CompiledNetwork.{where}: argument 'x' must be a numpy.ndarray, got {type(x).__name__}")
        if x.dtype != self.dtype or x.shape != shape:
            empty = " (an empty batch)" if x.ndim and x.shape[0] == 0 else ""
            raise ValueError(f"CompiledNetwork.{where}: argument 'x' must be a {self.dtype} array of shape {shape}, "
                             f"got {x.dtype} {x.shape}{empty}")
        return x  # contiguity and alignment: the first kernel checks them and names the argument

    def _target(self, where: str, target: Any, output_shape: tuple[int, ...]) -> np.ndarray:
        t = np.asarray(target)
        if isinstance(self.network.loss, CrossEntropyLoss):
            if t.shape != (output_shape[0],) or not np.issubdtype(t.dtype, np.integer):
                raise ValueError(f"CompiledNetwork.{where}: argument 'target' must be {output_shape[0]} integer class "
                                 f"labels, got {t.dtype} {t.shape}")
            return np.ascontiguousarray(t, dtype=np.int64)  # the kernels check the range
        if t.shape != output_shape or t.dtype != self.dtype:
            raise ValueError(f"CompiledNetwork.{where}: argument 'target' must be a {self.dtype} array of shape "
                             f"{output_shape}, got {t.dtype} {t.shape}")
        return t

    def _run_forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[Any], np.ndarray]:
        inputs, caches = [], []
        for stage in self._stages:
            inputs.append(x)
            x, cache = stage.forward(x, self.params)
            caches.append(cache)
        return inputs, caches, x

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The network's output (logits for cross-entropy) for one batch of ``input_shape``."""
        return self._run_forward(self._input("forward", x))[2]

    def loss(self, x: np.ndarray, target: Any) -> float:
        """E for one batch: integer labels (N,) for cross-entropy, an array of the output's shape for MSE."""
        output = self.forward(x)
        return self._loss.loss(output, self._target("loss", target, output.shape))  # type: ignore[attr-defined]

    def backward(self, x: np.ndarray, target: Any, input_gradient: bool = True) -> NetworkGradients:
        """Backpropagation: the loss, dE/dx (unless ``input_gradient=False``) and every dE/dparam."""
        inputs, caches, output = self._run_forward(self._input("backward", x))
        labels = self._target("backward", target, output.shape)
        loss = self._loss.loss(output, labels)  # type: ignore[attr-defined]
        grad = self._loss.grad(output, labels)  # type: ignore[attr-defined]
        grads: dict[str, np.ndarray] = {}
        for i in reversed(range(len(self._stages))):
            need = input_gradient or i > 0  # the first layer's dE/dx is only the caller's to ask for
            grad, local = self._stages[i].backward(inputs[i], caches[i], grad, self.params, need)
            grads.update(local)
        return NetworkGradients(loss, grad if input_gradient else None, {k: grads[k] for k in self.params})

    def step(self, x: np.ndarray, target: Any, lr: float) -> float:
        """One SGD step, p -= lr * dE/dp for every parameter (in place); returns the loss before the step."""
        gradients = self.backward(x, target, input_gradient=False)
        for key, g in gradients.params.items():
            p = self.params[key]
            p -= p.dtype.type(lr) * g  # the update is NumPy's: the only arithmetic outside the kernels
        return gradients.loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The outputs for any number M >= 1 of samples (M, ...): batches of ``input_shape``, the last one padded.

        Padding samples are zeros; their outputs are dropped (every layer treats samples independently).
        """
        shape = self.network.input_shape
        if not isinstance(x, np.ndarray) or x.ndim != len(shape) or x.shape[1:] != shape[1:] or x.shape[0] < 1:
            raise ValueError(f"CompiledNetwork.predict: argument 'x' must be an array of shape (M, {', '.join(map(str, shape[1:]))}) "
                             f"with M >= 1, got {getattr(x, 'shape', type(x).__name__)}")
        batch, outputs = self.batch, []
        for start in range(0, x.shape[0], batch):
            chunk = np.zeros(shape, self.dtype)
            part = x[start:start + batch]
            chunk[:len(part)] = part
            outputs.append(self.forward(chunk)[:len(part)])
        return np.concatenate(outputs)


def own_params(network: Network, params: Mapping[str, np.ndarray], dtype: np.dtype) -> dict[str, np.ndarray]:
    """A network's parameters -> private C-contiguous copies in ``dtype`` (``step`` updates them in place)."""
    expected = network.parameter_shapes()
    if set(params) != set(expected):
        raise ValueError(f"params must have the keys {sorted(expected)}, got {sorted(params)}")
    owned = {}
    for key, shape in expected.items():
        value = np.asarray(params[key])
        if value.shape != shape:
            raise ValueError(f"params[{key!r}] must have shape {shape}, got {value.shape}")
        owned[key] = np.array(value, dtype=dtype, order="C")  # a private copy: step updates it in place
    return owned
