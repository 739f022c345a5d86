"""Network: layers, a loss and an input shape -> inferred shapes, the symbolic whole loss, a float NumPy backprop.

Parameters are a flat dict keyed as PyTorch's ``nn.Sequential`` names them (``"0.weight"``, ``"0.bias"``, ...), so the
same dict serves the symbolic derivation, the NumPy reference, later C kernels, and ``load_state_dict`` in tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import numpy as np
import sympy as sp

from .layer_symbols import exact_rational, parameter_letter, symbol_tensor
from .layers import Grads, Layer, Shape
from .losses import CrossEntropyLoss, Loss, MSELoss

if TYPE_CHECKING:  # what the conveniences of the higher stages (prove, compile) return
    from ..proofs.network import NetworkProofReport
    from ..runtime.network import CompiledNetwork

__all__ = ["Network", "NetworkDerivation", "ReferenceTrace", "ReferenceGradients"]


@dataclass(frozen=True)
class NetworkDerivation:
    """The whole network in SymPy: symbol tensors, every layer's (piecewise) output and the loss E."""

    network: "Network"
    input: np.ndarray
    params: dict[str, np.ndarray]
    target: np.ndarray
    activations: tuple[np.ndarray, ...]
    loss: sp.Expr

    def layer_params(self, i: int) -> dict[str, np.ndarray]:
        """Layer i's parameters under their layer-local names (``weight``, ``bias``)."""
        prefix = f"{i}."
        return {key[len(prefix) :]: value for key, value in self.params.items() if key.startswith(prefix)}

    def free_tensors(self) -> dict[str, np.ndarray]:
        """Every tensor of free symbols: the input, the parameters and, for MSE, the target."""
        tensors = {"input": self.input, **self.params}
        if self.target.dtype == object:
            tensors["target"] = self.target
        return tensors

    def point_from(
        self, x: np.ndarray, params: Mapping[str, np.ndarray], target: Optional[np.ndarray] = None
    ) -> dict[sp.Symbol, sp.Rational]:
        """Numbers for the symbols, converted exactly (a float is the binary rational it stores)."""
        values = {"input": x, **params, **({} if target is None else {"target": target})}
        point: dict[sp.Symbol, sp.Rational] = {}
        for key, tensor in self.free_tensors().items():
            if key not in values or np.shape(values[key]) != tensor.shape:
                raise ValueError(f"point_from: {key} needs shape {tensor.shape}")
            point.update(
                (s, exact_rational(float(v), str(s))) for s, v in zip(tensor.flat, np.asarray(values[key]).flat)
            )
        return point


@dataclass(frozen=True)
class ReferenceTrace:
    """A float forward pass: each layer's input, what its backward needs (pooling indices), the network output."""

    inputs: tuple[np.ndarray, ...]
    caches: tuple[Any, ...]
    output: np.ndarray


@dataclass(frozen=True)
class ReferenceGradients:
    """The loss and dE/d(everything) of one float backward pass; ``params`` keyed like the parameters."""

    loss: np.floating
    input: np.ndarray
    params: dict[str, np.ndarray]


@dataclass(frozen=True)
class Network:
    """A chain of layers ending in a loss, on inputs of a fixed shape; each layer infers its shapes.

    ``params`` (optional) are the network's own weights, keyed as ``parameter_shapes`` (an imported model's,
    say): stored as read-only float64 copies, they are what ``compile``, ``export`` and the ``reference_*``
    methods use when not given others.

    >>> from symconv import Conv2d, ReLU, MaxPool2d, Flatten, Dense, MSELoss
    >>> net = Network([Conv2d(1, 3), ReLU(), MaxPool2d(2), Flatten(), Dense(2), MSELoss()], (1, 1, 6, 6))
    >>> net.shapes[-1], net.parameter_shapes()
    ((1, 2), {'0.weight': (1, 1, 3, 3), '0.bias': (1,), '4.weight': (2, 4), '4.bias': (2,)})
    >>> net.prove().holds
    True
    """

    layers: tuple[Union[Layer, Loss], ...]
    input_shape: Shape
    params: Optional[Mapping[str, np.ndarray]] = field(default=None, repr=False, compare=False)
    shapes: tuple[Shape, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers or not isinstance(layers[-1], Loss):
            raise ValueError("a Network ends with a loss (MSELoss() or CrossEntropyLoss())")
        for i, layer in enumerate(layers[:-1]):
            if not isinstance(layer, Layer):
                raise ValueError(
                    f"layer {i} ({layer!r}) is not a layer"
                    + (" (the loss must come last)" if isinstance(layer, Loss) else "")
                )
        shape = tuple(self.input_shape)
        if len(shape) < 2 or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape):
            raise ValueError(
                "input_shape must be (N, C, H, W) or (N, features) of positive integers (no empty batch),"
                f" got {self.input_shape!r}"
            )
        shape = tuple(int(n) for n in shape)
        object.__setattr__(self, "input_shape", shape)
        shapes = [shape]
        for i, layer in enumerate(layers):
            try:
                if isinstance(layer, Loss):
                    layer.target_shape(shapes[-1])
                else:
                    layer.parameter_shapes(shapes[-1])
                    shapes.append(tuple(layer.output_shape(shapes[-1])))
            except ValueError as error:
                raise ValueError(f"layer {i} ({layer.describe()}) on input {shapes[-1]}: {error}") from None
        object.__setattr__(self, "shapes", tuple(shapes))
        if self.params is not None:
            object.__setattr__(self, "params", self._own(self.params))

    def _own(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Given weights -> read-only float64 copies in parameter order; wrong keys or shapes are refused."""
        expected = self.parameter_shapes()
        if not isinstance(params, Mapping) or set(params) != set(expected):
            keys = sorted(params) if isinstance(params, Mapping) else type(params).__name__
            raise ValueError(f"params must have the keys {sorted(expected)}, got {keys}")
        owned = {}
        for key, shape in expected.items():
            value = params[key]
            if np.shape(value) != shape or not np.issubdtype(np.asarray(value).dtype, np.floating):
                raise ValueError(f"params[{key!r}] must be a float array of shape {shape}, got "
                                 f"{getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}")
            copy = np.array(value, dtype=np.float64)
            copy.flags.writeable = False
            owned[key] = copy
        return owned

    def with_params(self, params: Optional[Mapping[str, np.ndarray]]) -> "Network":
        """The same layers and input shape carrying ``params`` as their weights (None: without weights)."""
        return Network(self.layers, self.input_shape, params)

    def _given(self, params: Optional[Mapping[str, np.ndarray]], dtype: Any) -> Mapping[str, np.ndarray]:
        """The parameters a reference method runs with: those given, else the network's own in ``dtype``."""
        if params is not None:
            return params
        if self.params is None:
            raise ValueError("this network has no weights of its own: pass params (e.g. net.init_params())")
        return {key: value.astype(dtype) for key, value in self.params.items()}

    @property
    def body(self) -> tuple[Layer, ...]:
        return self.layers[:-1]  # type: ignore[return-value]

    @property
    def loss(self) -> Loss:
        return self.layers[-1]  # type: ignore[return-value]

    def parameter_shapes(self) -> dict[str, Shape]:
        """``{"i.name": shape}`` in layer order, PyTorch's layout (conv (K, C, R, S), dense (out, in))."""
        return {
            f"{i}.{k}": s
            for i, layer in enumerate(self.body)
            for k, s in layer.parameter_shapes(self.shapes[i]).items()
        }

    def describe(self) -> str:
        lines = [f"input {self.input_shape}"]
        lines += [f"{i}: {layer.describe()} -> {self.shapes[i + 1]}" for i, layer in enumerate(self.body)]
        return "\n".join(lines + [f"{len(self.body)}: {self.loss.describe()}"])

    def init_params(self, seed: int = 0, dtype: Any = np.float64) -> dict[str, np.ndarray]:
        """PyTorch's default initialisation law, seeded: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

        (kaiming_uniform_ with a = sqrt(5) gives that bound for the weights; fan_in = C*R*S for a convolution,
        ``in`` for a dense layer.) Same law and shapes as PyTorch, not the same numbers: the generator is NumPy's.
        """
        rng = np.random.default_rng(seed)
        params: dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.body):
            shapes = layer.parameter_shapes(self.shapes[i])
            if shapes:
                bound = 1.0 / np.sqrt(float(np.prod(shapes["weight"][1:])))  # fan_in: all but the output axis
                params.update({f"{i}.{k}": rng.uniform(-bound, bound, s).astype(dtype) for k, s in shapes.items()})
        return params

    def _check(self, x: np.ndarray, params: Mapping[str, np.ndarray]) -> None:
        if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
            raise ValueError(
                f"x must be a float32 or float64 NumPy array, got {type(x).__name__} {getattr(x, 'dtype', '')}"
            )
        if x.ndim != len(self.input_shape) or x.shape[1:] != self.input_shape[1:]:
            raise ValueError(
                f"x has shape {x.shape}, the network takes (N, {', '.join(map(str, self.input_shape[1:]))})"
            )
        if x.shape[0] == 0:
            raise ValueError("x is an empty batch (N = 0)")
        expected = self.parameter_shapes()
        if set(params) != set(expected):
            raise ValueError(f"params must have the keys {sorted(expected)}, got {sorted(params)}")
        for key, shape in expected.items():
            value = params[key]
            if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != x.dtype:
                raise ValueError(
                    f"params[{key!r}] must be a {x.dtype} array of shape {shape},"
                    f" got {getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}"
                )

    def _layer_params(self, params: Mapping[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
        return {k.split(".", 1)[1]: v for k, v in params.items() if k.split(".", 1)[0] == str(i)}

    def reference_forward(self, x: np.ndarray, params: Optional[Mapping[str, np.ndarray]] = None) -> ReferenceTrace:
        """Float NumPy forward (float32 or float64, kept); the batch may differ from ``input_shape``'s.

        ``params`` default to the network's own. NaN and inf propagate by IEEE arithmetic; ``layer_reference``
        documents each layer's rule.
        """
        params = self._given(params, getattr(x, "dtype", None))
        self._check(x, params)
        inputs, caches = [], []
        for i, layer in enumerate(self.body):
            inputs.append(x)
            x, cache = layer.reference_forward(x, self._layer_params(params, i))
            caches.append(cache)
        return ReferenceTrace(tuple(inputs), tuple(caches), x)

    def _check_target(self, output: np.ndarray, target: np.ndarray) -> None:
        if isinstance(self.loss, MSELoss) and np.shape(target) != output.shape:
            raise ValueError(f"the MSE target must have the output's shape {output.shape}, got {np.shape(target)}")

    def reference_loss(
        self, x: np.ndarray, params: Optional[Mapping[str, np.ndarray]], target: np.ndarray
    ) -> np.floating:
        """E for a batch: float NumPy (params None: the network's own)."""
        output = self.reference_forward(x, params).output
        self._check_target(output, target)
        return self.loss.reference_forward(output, target)

    def reference_backward(
        self, x: np.ndarray, params: Optional[Mapping[str, np.ndarray]], target: np.ndarray
    ) -> ReferenceGradients:
        """Float NumPy backpropagation: the loss, dE/dx and dE/dparam for every parameter (None: the own)."""
        params = self._given(params, getattr(x, "dtype", None))
        trace = self.reference_forward(x, params)
        self._check_target(trace.output, target)
        grad = self.loss.reference_backward(trace.output, target)
        grads: Grads = {}
        for i in reversed(range(len(self.body))):
            grad, local = self.body[i].reference_backward(
                trace.inputs[i], self._layer_params(params, i), trace.caches[i], grad
            )
            grads.update({f"{i}.{k}": v for k, v in local.items()})
        ordered = {key: grads[key] for key in self.parameter_shapes()}
        return ReferenceGradients(self.loss.reference_forward(trace.output, target), grad, ordered)

    def derive(self, target: Optional[Sequence[int]] = None) -> NetworkDerivation:
        """The whole loss in SymPy, layer after layer from the definitions (``Max`` for ReLU and max pooling).

        Symbols: input ``X``, layer l's parameters ``F^{[l]}``, ``W^{[l]}``, ``b^{[l]}`` (l = 1, 2, ...), MSE
        target ``t``. Cross-entropy needs fixed integer labels: ``target``, by default sample n has label n mod M.
        """
        x = symbol_tensor("X", self.input_shape)
        params: dict[str, np.ndarray] = {}
        activations, y = [], x
        for i, layer in enumerate(self.body):
            local = {
                k: symbol_tensor(parameter_letter(layer, k), s, layer=i + 1)
                for k, s in layer.parameter_shapes(y.shape).items()
            }
            params.update({f"{i}.{k}": v for k, v in local.items()})
            y = layer.forward(y, local)
            activations.append(y)
        if isinstance(self.loss, CrossEntropyLoss):
            N, M = y.shape
            labels = np.arange(N) % M if target is None else np.asarray(target, dtype=np.int64)
        else:
            labels = symbol_tensor("t", self.loss.target_shape(y.shape))
        return NetworkDerivation(self, x, params, labels, tuple(activations), self.loss.forward(y, labels))

    def prove(
        self, point: Optional[Mapping[sp.Symbol, Any]] = None, seed: int = 0, target: Optional[Sequence[int]] = None
    ) -> "NetworkProofReport":
        """Prove that layer-by-layer backpropagation is SymPy's derivative of the whole loss, exactly, on a region.

        The region is the one holding ``point`` (exact values for every free symbol, e.g. from
        ``derive().point_from``) or a seeded random rational point; see ``symconv.proofs.network``.
        """
        from ..proofs.network import prove_network  # imported on use: a convenience of a higher stage

        return prove_network(self.derive(target), point, seed)

    def compile(self, dtype: str = "float32", **options: Any) -> "CompiledNetwork":
        """The network in generated C: forward, loss, backward and SGD steps.

        ``options`` go to ``symconv.pipeline.compile_network``: params (by default the network's own, if it
        has weights, else ``init_params(seed)``), seed, cflags, arch, threads, cache_dir.
        """
        from ..pipeline import compile_network  # imported on use: a convenience of a higher stage, as _repr_latex_

        if options.get("params") is None and self.params is not None:
            options["params"] = self.params
        return compile_network(self, dtype, **options)

    def export(self, directory: "os.PathLike[str] | str", name: str = "net", **options: Any) -> "list[Path]":
        """Write the network as a standalone C99 library into ``directory``; the paths written.

        ``options`` go to ``symconv.export.export_network``: params (by default the network's own, if it has
        weights), seed, dtype, strategy, weights, test_steps, ...
        """
        from ..export.write import export_network  # imported on use: a convenience of a higher stage, as compile

        if options.get("params") is None and self.params is not None:
            options["params"] = self.params
        return export_network(self, directory, name, **options)
