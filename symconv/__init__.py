"""symconv: derive, prove, print and generate the backward pass of convolution layers, for any shape."""

from .codegen import compile_conv
from .autotune import Tuning, tune
from . import forms
from .derive import Derivation, derive
from .latex import latex
from .latex_document import latex_document
from .layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from .losses import CrossEntropyLoss, MSELoss
from .network import Network
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
    "tune",
    "Tuning",
    "latex",
    "latex_document",
    "Network",
    "Conv2d",
    "ReLU",
    "MaxPool2d",
    "AvgPool2d",
    "Flatten",
    "Dense",
    "MSELoss",
    "CrossEntropyLoss",
]
