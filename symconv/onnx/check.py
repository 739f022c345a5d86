"""Agreement: a loaded ``Network``, its ONNX model and a seed -> the compiled network's and the NumPy reference's
distance to ONNX Runtime.

Both run on the same seeded random input of the network's shape; errors are relative to the largest output
magnitude, so a float32 graph is judged at float32's precision whatever the scale of its outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime

from symconv import CrossEntropyLoss, Network

from .load import Source, graph_input, read_model

__all__ = ["Agreement", "agreement", "graph_output", "onnxruntime_output"]


@dataclass(frozen=True)
class Agreement:
    """Max |ours - ONNX Runtime| / max |ONNX Runtime| for the compiled kernels and the float64 reference."""

    compiled: float
    reference: float
    tolerance: float
    dtype: str

    @property
    def holds(self) -> bool:
        return self.compiled <= self.tolerance and self.reference <= self.tolerance

    def __str__(self) -> str:
        verdict = "agree" if self.holds else "DISAGREE"
        return (f"against ONNX Runtime (relative max error, tolerance {self.tolerance:.0e}): compiled {self.dtype} "
                f"{self.compiled:.2e}, NumPy float64 reference {self.reference:.2e}: {verdict}")


def graph_output(network: Network, output: np.ndarray) -> np.ndarray:
    """A loaded network's output -> the ONNX graph's: the softmax over the classes if the graph ended in Softmax
    (which ``load`` turned into the cross-entropy loss on the logits)."""
    if not isinstance(network.loss, CrossEntropyLoss):
        return output
    shifted = np.exp(output - output.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def onnxruntime_output(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's output of ``model`` (CPU) for its one input = x, cast to the model's input type."""
    value = graph_input(model)
    elem = value.type.tensor_type.elem_type
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = x.astype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    return np.asarray(session.run(None, {value.name: x})[0], dtype=np.float64)


def agreement(network: Network, source: Source, seed: int = 0, dtype: str = "float32", tolerance: float = 1e-4,
              **options: Any) -> Agreement:
    """``network`` (as ``load(source)`` made it), compiled for ``dtype`` with its weights (``options`` go to
    ``Network.compile``), and its float64 reference, against ONNX Runtime running ``source``.

    The default tolerance is float32's: ONNX Runtime computes a float graph in float32.
    """
    if network.params is None:
        raise ValueError("agreement needs the network with its weights, as symconv.onnx.load returns it")
    model = read_model(source)
    x = np.random.default_rng(seed).standard_normal(network.input_shape)
    expected = onnxruntime_output(model, x)
    compiled = network.compile(dtype, **options)
    ours = graph_output(network, compiled.forward(x.astype(dtype)).astype(np.float64))
    if ours.shape != expected.shape:
        raise ValueError(f"the network outputs shape {ours.shape}, ONNX Runtime {expected.shape}")
    scale = max(float(np.abs(expected).max()), np.finfo(np.float64).tiny)
    reference = graph_output(network, network.reference_forward(x).output)
    return Agreement(float(np.abs(ours - expected).max()) / scale,
                     float(np.abs(reference - expected).max()) / scale, tolerance, dtype)
