"""ONNX bridge: an ONNX file or ``ModelProto`` -> a symconv ``Network`` with its weights, checked against ONNX Runtime.

``load`` maps a chain of Conv, Relu, MaxPool, AveragePool, GlobalAveragePool, Gemm (or MatMul + Add), Flatten /
Reshape and a final Softmax onto symconv's layers, the weights in ``Network.params``; ``agreement`` runs the
compiled network and ONNX Runtime on the same random input. Optional: the core never imports this subpackage, which needs the extra ``symconv[onnx]``.
"""

try:
    import onnx  # noqa: F401  (the one place this subpackage checks for its libraries)
    import onnxruntime  # noqa: F401
except ImportError as error:
    raise ImportError(f"symconv.onnx needs {error.name}: pip install 'symconv[onnx]' (onnx, onnxruntime)") from None

from .check import Agreement, agreement, graph_output, onnxruntime_output
from .load import load

__all__ = ["load", "agreement", "Agreement", "graph_output", "onnxruntime_output"]
