"""Agreement: an ``ImportedModel`` and a seed -> the compiled network's and the NumPy reference's distance to ONNX Runtime.

Both run on the same seeded random input of the network's shape; errors are relative to the largest output
magnitude, so a float32 graph is judged at float32's precision whatever the scale of its outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime

from .load import ImportedModel

__all__ = ["Agreement", "agreement", "onnxruntime_output"]


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


def onnxruntime_output(model: onnx.ModelProto, name: str, x: np.ndarray) -> np.ndarray:
    """ONNX Runtime's output of ``model`` (CPU) for input ``name`` = x, cast to the model's input type."""
    elem = model.graph.input[[v.name for v in model.graph.input].index(name)].type.tensor_type.elem_type
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = x.astype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    return np.asarray(session.run(None, {name: x})[0], dtype=np.float64)


def agreement(imported: ImportedModel, seed: int = 0, dtype: str = "float32", tolerance: float = 1e-4,
              **options: Any) -> Agreement:
    """The imported network, compiled for ``dtype`` (``options`` go to ``Network.compile``), against ONNX Runtime.

    The default tolerance is float32's: ONNX Runtime computes a float graph in float32.
    """
    x = np.random.default_rng(seed).standard_normal(imported.network.input_shape)
    expected = onnxruntime_output(imported.model, imported.input_name, x)
    compiled = imported.compile(dtype, **options)
    ours = imported.output(compiled.forward(x.astype(dtype)).astype(np.float64))
    if ours.shape != expected.shape:
        raise ValueError(f"the network outputs shape {ours.shape}, ONNX Runtime {expected.shape}")
    scale = max(float(np.abs(expected).max()), np.finfo(np.float64).tiny)
    return Agreement(float(np.abs(ours - expected).max()) / scale,
                     float(np.abs(imported.reference(x) - expected).max()) / scale, tolerance, dtype)
