"""symconv: derive, prove, print and generate the backward pass of convolution layers, for any shape."""

from . import forms
from .codegen import compile_conv
from .derive import Derivation, derive
from .latex import latex
from .latex_document import latex_document
from .prove import Proof, ProofReport, check, prove
from .runtime import ConvKernels
from .spec import ConvSpec

__version__ = "0.1.0"

__all__ = [
    "ConvSpec",
    "Derivation",
    "derive",
    "prove",
    "check",
    "Proof",
    "ProofReport",
    "compile_conv",
    "ConvKernels",
    "latex",
    "latex_document",
]
