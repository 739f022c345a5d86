"""ONNX operators: one node, the input shape and its constant inputs -> the symconv layer and weights it stands for.

Each handler reads the attributes it understands through ``Node.attr``; any attribute left unread is refused by
``Node.check_consumed``, so an attribute symconv would silently ignore is an error instead. Padding must be the
same before and after on each axis for the pooling layers; a Conv and a ConvTranspose take any pads (per side)
and groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np
import onnx

from symconv import AvgPool2d, Conv2d, ConvTranspose2d, Dense, Flatten, MaxPool2d, ReLU

__all__ = ["Node", "HANDLERS", "unsupported"]

Shape = tuple[int, ...]
Result = Optional[tuple[Any, dict[str, np.ndarray]]]


@dataclass
class Node:
    """An ONNX node with its attributes decoded and a record of which of them a handler has read."""

    proto: onnx.NodeProto
    opset: int
    index: int
    attrs: dict[str, Any]
    read: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, proto: onnx.NodeProto, opset: int, index: int = 0) -> "Node":
        return cls(proto, opset, index, {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute})

    @property
    def op_type(self) -> str:
        return str(self.proto.op_type)

    @property
    def inputs(self) -> list[str]:
        return list(self.proto.input)

    @property
    def label(self) -> str:
        name = repr(self.proto.name) if self.proto.name else f"#{self.index}"
        return f"node {name} ({self.op_type})"

    def attr(self, name: str, default: Any) -> Any:
        self.read.add(name)
        value = self.attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value

    def check_consumed(self) -> None:
        left = sorted(set(self.attrs) - self.read)
        if left:
            raise unsupported(self, f"the attribute {left[0]!r} is not supported by symconv's import")


def unsupported(node: Node, message: str) -> ValueError:
    """The one-line error of a node: ``node 'name' (Op): message``."""
    return ValueError(f"{node.label}: {message}")


def _four_d(node: Node, shape: Shape) -> None:
    if len(shape) != 4:
        raise unsupported(node, f"needs an (N, C, H, W) input, got shape {shape}")


def _pair(node: Node, name: str, default: int) -> tuple[int, int]:
    value = [int(v) for v in node.attr(name, [default, default])]
    if len(value) != 2:
        raise unsupported(node, f"{name}={value}: symconv's layers are 2-D (two values)")
    return (value[0], value[1])


Sides = tuple[tuple[int, int], tuple[int, int]]


def _sides(node: Node, size: Shape, kernel: tuple[int, int], stride: tuple[int, int]) -> Sides:
    """((top, bottom), (left, right)) from ``pads`` or ``auto_pad``, for a window of ``kernel`` cells (dilated)
    every ``stride``; SAME_UPPER puts an odd cell of padding at the end, SAME_LOWER at the beginning."""
    auto, pads = node.attr("auto_pad", "NOTSET"), node.attr("pads", None)
    if auto == "VALID":
        return ((0, 0), (0, 0))
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        sides = []
        for i, k, s in zip(size, kernel, stride):
            total = max((-(-i // s) - 1) * s + k - i, 0)  # the padding that makes the output ceil(i / s)
            small = total // 2
            sides.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
        return (sides[0], sides[1])
    if auto != "NOTSET":
        raise unsupported(node, f"auto_pad={auto!r} is not an ONNX value")
    pads = [0, 0, 0, 0] if pads is None else [int(p) for p in pads]
    if len(pads) != 4:
        raise unsupported(node, f"pads={pads}: symconv's layers are 2-D (four values)")
    return ((pads[0], pads[2]), (pads[1], pads[3]))  # ONNX: [top, left, bottom, right]


def _padding(node: Node, size: Shape, kernel: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """(ph, pw) of a layer padded alike on both sides (the pooling layers); asymmetric padding is refused."""
    (top, bottom), (left, right) = _sides(node, size, kernel, stride)
    if (top, left) != (bottom, right):
        raise unsupported(node, f"padding top {top} bottom {bottom} left {left} right {right} (begin != end) is "
                                "not supported by symconv's pooling layers")
    return (top, left)


def _made(node: Node, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except ValueError as error:
        raise unsupported(node, str(error)) from None


def _float(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.float64)


def _conv(node: Node, shape: Shape, weights: dict[str, np.ndarray], layers: list[Any],
          params: dict[str, np.ndarray]) -> Result:
    _four_d(node, shape)
    w = weights[node.inputs[1]]
    if w.ndim != 4:
        raise unsupported(node, f"a {w.ndim - 2}-D convolution is not supported (symconv's are 2-D)")
    K, C, R, S = w.shape
    group = int(node.attr("group", 1))
    if group < 1 or C * group != shape[1] or K % group:
        raise unsupported(node, f"the weight {w.shape} with group={group} does not fit an input of {shape[1]} "
                                "channels (it takes C / group channels, and K must be divisible by group)")
    if tuple(node.attr("kernel_shape", [R, S])) != (R, S):
        raise unsupported(node, f"kernel_shape {node.attrs['kernel_shape']} differs from the weight's {(R, S)}")
    stride, dilation = _pair(node, "strides", 1), _pair(node, "dilations", 1)
    (top, bottom), (left, right) = _sides(node, shape[2:], (dilation[0] * (R - 1) + 1, dilation[1] * (S - 1) + 1),
                                          stride)
    padding: Any = (top, left) if (top, left) == (bottom, right) else ((top, bottom), (left, right))
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    layer = _made(node, lambda: Conv2d(int(K), (int(R), int(S)), stride, padding, dilation, groups=group,
                                       bias=has_bias))
    params = {"weight": _float(w)}
    if has_bias:
        params["bias"] = _float(weights[node.inputs[2]]).reshape(K)
    return layer, params


def _conv_transpose(node: Node, shape: Shape, weights: dict[str, np.ndarray], layers: list[Any],
                    params: dict[str, np.ndarray]) -> Result:
    _four_d(node, shape)
    w = weights[node.inputs[1]]
    if w.ndim != 4:
        raise unsupported(node, f"a {w.ndim - 2}-D transposed convolution is not supported (symconv's are 2-D)")
    C, Kg, R, S = w.shape  # ONNX and PyTorch: (C_in, C_out / group, kH, kW)
    group = int(node.attr("group", 1))
    if group < 1 or C != shape[1] or C % group:
        raise unsupported(node, f"the weight {w.shape} with group={group} does not fit an input of {shape[1]} "
                                "channels (it takes all C channels, and C must be divisible by group)")
    if tuple(node.attr("kernel_shape", [R, S])) != (R, S):
        raise unsupported(node, f"kernel_shape {node.attrs['kernel_shape']} differs from the weight's {(R, S)}")
    if node.attr("output_shape", None) is not None:
        raise unsupported(node, "the output_shape attribute is not supported: give pads and output_padding")
    # ONNX's SAME_* for ConvTranspose splits the padding the other way round from Conv's; refused rather than
    # guessed at.
    auto = node.attr("auto_pad", "NOTSET")
    if auto not in ("NOTSET", "VALID"):
        raise unsupported(node, f"auto_pad={auto!r} is not supported for ConvTranspose: give pads")
    stride, dilation = _pair(node, "strides", 1), _pair(node, "dilations", 1)
    output_padding = _pair(node, "output_padding", 0)
    pads = node.attr("pads", None)
    pads = [0, 0, 0, 0] if pads is None or auto == "VALID" else [int(p) for p in pads]
    if len(pads) != 4:
        raise unsupported(node, f"pads={pads}: symconv's layers are 2-D (four values)")
    padding: Any = ((pads[0], pads[2]), (pads[1], pads[3]))  # ONNX: [top, left, bottom, right]
    has_bias = len(node.inputs) > 2 and bool(node.inputs[2])
    layer = _made(node, lambda: ConvTranspose2d(int(Kg * group), (int(R), int(S)), stride, padding, output_padding,
                                                group, has_bias, dilation))
    _made(node, lambda: layer.spec(shape))  # an impossible shape is the node's error, named now
    params = {"weight": _float(w)}
    if has_bias:
        params["bias"] = _float(weights[node.inputs[2]]).reshape(Kg * group)
    return layer, params


def _pool(node: Node, shape: Shape, weights: dict[str, np.ndarray], layers: list[Any],
          params: dict[str, np.ndarray]) -> Result:
    _four_d(node, shape)
    kernel = _pair(node, "kernel_shape", 0)
    stride = _pair(node, "strides", 1)  # ONNX's default stride is 1, not the window as in PyTorch
    if _pair(node, "dilations", 1) != (1, 1):
        raise unsupported(node, f"dilations {node.attrs['dilations']} in pooling are not supported by symconv")
    if node.attr("ceil_mode", 0):
        raise unsupported(node, "ceil_mode=1 is not supported: symconv's pooling rounds the output size down")
    padding = _padding(node, shape[2:], kernel, stride)
    if node.op_type == "MaxPool":
        node.attr("storage_order", 0)  # only changes the Indices output, refused next
        if len(node.proto.output) > 1 and node.proto.output[1]:
            raise unsupported(node, "the Indices output is not supported")
        return _made(node, lambda: MaxPool2d(kernel, stride, padding)), {}
    if node.attr("count_include_pad", 0) == 0 and padding != (0, 0):
        raise unsupported(node, f"count_include_pad=0 with padding {padding} is not supported: symconv's "
                                "AvgPool2d divides by the whole window (count_include_pad=1)")
    return _made(node, lambda: AvgPool2d(kernel, stride, padding)), {}


def _global_pool(node: Node, shape: Shape, weights: dict[str, np.ndarray], layers: list[Any],
                 params: dict[str, np.ndarray]) -> Result:
    _four_d(node, shape)
    return AvgPool2d((shape[2], shape[3])), {}


def _relu(node: Node, shape: Shape, weights: dict[str, np.ndarray], layers: list[Any],
          params: dict[str, np.ndarray]) -> Result:
    return ReLU(), {}


def _flatten(node: Node, shape: Shape, weights: dict[str, np.ndarray], layers: list[Any],
             params: dict[str, np.ndarray]) -> Result:
    axis = node.attr("axis", 1)
    if axis not in (1, 1 - len(shape)):
        raise unsupported(node, f"axis={axis} is not supported: symconv flattens to (N, features), axis 1")
    return Flatten(), {}


def _reshape(node: Node, shape: Shape, weights: dict[str, np.ndarray], layers: list[Any],
             params: dict[str, np.ndarray]) -> Result:
    target = [int(n) for n in weights[node.inputs[1]].reshape(-1)]
    if not node.attr("allowzero", 0):  # 0 copies the input's extent on that axis
        target = [shape[a] if n == 0 and a < len(shape) else n for a, n in enumerate(target)]
    features = int(np.prod(shape[1:]))
    if len(target) != 2 or target[0] not in (shape[0], -1) or target[1] not in (features, -1) or target == [-1, -1]:
        raise unsupported(node, f"Reshape of {shape} to {target} is not supported: only to (N, features)")
    return Flatten(), {}


def _dense(node: Node, shape: Shape, weights: dict[str, np.ndarray], layers: list[Any],
           params: dict[str, np.ndarray]) -> Result:
    if len(shape) != 2:
        raise unsupported(node, f"needs an (N, features) input, got shape {shape}; flatten it first")
    b = weights[node.inputs[1]]
    if b.ndim != 2:
        raise unsupported(node, f"a weight of shape {b.shape} is not supported: it must be a matrix")
    if node.op_type == "MatMul":
        w, bias = b.T, np.zeros(b.shape[1])
    else:
        if node.attr("transA", 0):
            raise unsupported(node, "transA=1 is not supported: the input is the batch of rows")
        w = b if node.attr("transB", 0) else b.T
        alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
        c = weights[node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] else np.zeros(w.shape[0])
        w, bias = alpha * w, beta * _per_unit(node, c, (1, w.shape[0]))
    if w.shape[1] != shape[1]:
        raise unsupported(node, f"the weight takes {w.shape[1]} features, the input has {shape[1]}")
    return Dense(int(w.shape[0])), {"weight": _float(w), "bias": _float(bias).reshape(-1)}


def _per_unit(node: Node, c: np.ndarray, layout: Shape) -> np.ndarray:
    try:
        return np.broadcast_to(c, layout).reshape(-1)
    except ValueError:
        raise unsupported(node, f"a constant of shape {c.shape} is not one bias per output "
                                f"(it must broadcast to {layout})") from None


def _add(node: Node, shape: Shape, weights: dict[str, np.ndarray], layers: list[Any],
         params: dict[str, np.ndarray]) -> Result:
    # The bias of MatMul + Add (and a bias added after any Conv or Gemm): folded into the layer before it.
    if not layers or not isinstance(layers[-1], (Conv2d, ConvTranspose2d, Dense)) or node.inputs[0] == node.inputs[1]:
        raise unsupported(node, "only an Add of a constant bias right after Conv, ConvTranspose, Gemm or MatMul is "
                                "supported")
    (c,) = weights.values()
    layout = (1, shape[1]) if isinstance(layers[-1], Dense) else (1, shape[1], 1, 1)
    key = f"{len(layers) - 1}.bias"
    if isinstance(layers[-1], (Conv2d, ConvTranspose2d)) and key not in params:  # no B: the Add gives it one
        layers[-1] = replace(layers[-1], bias=True)
        params[key] = np.zeros(shape[1])
    params[key] = params[key] + _per_unit(node, c, layout)
    return None


def _softmax(node: Node, shape: Shape, weights: dict[str, np.ndarray], layers: list[Any],
             params: dict[str, np.ndarray]) -> Result:
    axis = node.attr("axis", -1 if node.opset >= 13 else 1)
    if len(shape) != 2 or axis not in (1, -1):
        raise unsupported(node, f"Softmax on axis {axis} of shape {shape} is not supported: only over the classes "
                                "of (N, classes)")
    return None


Handler = Callable[[Node, Shape, dict[str, np.ndarray], list[Any], dict[str, np.ndarray]], Result]

HANDLERS: dict[str, Handler] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Relu": _relu,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "GlobalAveragePool": _global_pool,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Gemm": _dense,
    "MatMul": _dense,
    "Add": _add,
    "Softmax": _softmax,
}
