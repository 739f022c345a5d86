"""ONNX import: a ``ModelProto`` (or its file) and an optional input shape -> a ``Network`` carrying its weights.

The graph must be a chain: every node reads the previous node's output and constants (initializers or
``Constant`` nodes). Each operator maps onto one symconv layer (``ops``); a Softmax may close the chain and then
becomes the cross-entropy loss on the logits before it (else the loss is MSE): the network then outputs the
logits, and ``symconv.onnx.check.graph_output`` applies the softmax back. Anything else, an unknown operator
or attribute or a value symconv cannot express, is a ValueError naming the node and what is missing.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Union

import numpy as np
import onnx
from onnx import numpy_helper

from symconv import CrossEntropyLoss, MSELoss, Network

from .ops import HANDLERS, Node, unsupported

__all__ = ["load", "read_model", "graph_input"]

Source = Union[str, "os.PathLike[str]", onnx.ModelProto]


def read_model(source: Source) -> onnx.ModelProto:
    """A path or a ``ModelProto`` -> the checked ``ModelProto``; unreadable or invalid files are one-line errors."""
    if isinstance(source, onnx.ModelProto):
        model, name = source, "the model"
    else:
        name = os.fspath(source)
        if os.path.exists(name) and not os.path.isfile(name):  # onnx.load reads all: /dev/zero would never end
            raise ValueError(f"cannot read {name}: not a regular file (a directory, a device or a FIFO)")
        try:
            model = onnx.load(name)
        except OSError as error:
            raise ValueError(f"cannot read {name}: {error.strerror}") from None
        except Exception as error:  # protobuf's DecodeError and kin: not an ONNX file
            raise ValueError(f"{name} is not an ONNX model ({_first_line(error)})") from None
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as error:
        raise ValueError(f"{name} is not a valid ONNX model: {_first_line(error)}") from None
    return model


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _input_shape(value: onnx.ValueInfoProto, pinned: Optional[Sequence[int]]) -> tuple[int, ...]:
    """The graph input's shape: its fixed dimensions, symbolic ones taken from ``pinned`` (or refused)."""
    dims: list[Union[int, str]] = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim
    ]
    if pinned is None:
        for axis, d in enumerate(dims):
            if isinstance(d, str):
                raise ValueError(f"input {value.name!r} has the symbolic dimension {d!r} on axis {axis}: "
                                 f"pass input_shape (e.g. {tuple(1 if isinstance(n, str) else n for n in dims)})")
        return tuple(int(d) for d in dims)
    shape = tuple(int(n) for n in pinned)
    if len(shape) != len(dims):
        raise ValueError(f"input_shape {shape} has {len(shape)} axes, input {value.name!r} has {len(dims)}: {dims}")
    for axis, (d, n) in enumerate(zip(dims, shape)):
        if isinstance(d, int) and d != n:
            raise ValueError(f"input_shape {shape} sets axis {axis} to {n}, input {value.name!r} fixes it at {d}")
    return shape


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            attribute = {a.name: a for a in node.attribute}
            if "value" not in attribute:
                raise unsupported(Node.of(node, 0), "only a Constant holding a tensor 'value' is supported")
            values[node.output[0]] = numpy_helper.to_array(attribute["value"].t)
    return values


def graph_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The one graph input that is not a constant (initializers may be listed as inputs too); else a ValueError."""
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    inputs = [value for value in graph.input if value.name not in constants]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ValueError(f"symconv imports graphs of one input and one output, this one has {len(inputs)} inputs "
                         f"({', '.join(v.name for v in inputs)}) and {len(graph.output)} outputs")
    return inputs[0]


def load(source: Source, input_shape: Optional[Sequence[int]] = None) -> Network:
    """An ONNX model (path or ``ModelProto``) -> its ``Network``, weights in ``.params``; ``input_shape`` pins
    symbolic dimensions.

    >>> from onnx import helper, numpy_helper, TensorProto
    >>> w = numpy_helper.from_array(np.full((3, 4), 0.5, dtype=np.float32), "w")
    >>> nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["y"])]
    >>> graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    >>> net = load(helper.make_model(graph), input_shape=(2, 3))
    >>> print(net.describe())
    input (2, 3)
    0: ReLU() -> (2, 3)
    1: Dense(4) -> (2, 4)
    2: MSELoss()
    >>> net.params["1.weight"].shape, net.reference_forward(np.ones((1, 3))).output
    ((4, 3), array([[1.5, 1.5, 1.5, 1.5]]))
    """
    model = read_model(source)
    graph = model.graph
    constants = _constants(graph)
    value = graph_input(model)
    elem = value.type.tensor_type.elem_type
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
        raise ValueError(f"input {value.name!r} holds {onnx.TensorProto.DataType.Name(elem)}; "
                         "symconv takes float or double")
    shape = first = _input_shape(value, input_shape)
    current, softmax = value.name, False
    layers: list[Any] = []
    params: dict[str, np.ndarray] = {}
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=1)
    for index, proto in enumerate(n for n in graph.node if n.op_type != "Constant"):
        node = Node.of(proto, opset, index)
        if softmax:
            raise unsupported(node, "follows the Softmax, which must close the chain")
        if node.op_type not in HANDLERS:
            raise unsupported(node, f"the operator is not supported (symconv imports {', '.join(sorted(HANDLERS))})")
        data = node.inputs if node.op_type == "Add" else node.inputs[:1]
        if current not in data:
            raise unsupported(node, f"does not read the previous node's output {current!r}: symconv imports chains")
        weights = {}
        for name in node.inputs:
            if name and name != current:
                if name not in constants:
                    raise unsupported(node, f"its input {name!r} is not a constant (an initializer): "
                                            "symconv imports chains of layers")
                weights[name] = constants[name]
        result = HANDLERS[node.op_type](node, shape, weights, layers, params)
        node.check_consumed()
        if result is None:  # Softmax: no layer; Add: folded into the previous layer's bias
            softmax = softmax or node.op_type == "Softmax"
        else:
            layer, local = result
            try:
                shape = tuple(layer.output_shape(shape))
            except ValueError as error:
                raise ValueError(f"{node.label}: {error}") from None
            params.update({f"{len(layers)}.{k}": v for k, v in local.items()})
            layers.append(layer)
        current = proto.output[0]
    if graph.output[0].name != current:
        raise ValueError(f"the graph's output {graph.output[0].name!r} is not the end of the chain {current!r}")
    if not layers:
        raise ValueError("the graph has no layer symconv can import")
    return Network((*layers, CrossEntropyLoss() if softmax else MSELoss()), first, params)
