"""symconv: derive, prove, print and generate the backward pass of convolution layers, for any shape."""

from .pipeline import compile_conv
from .tuning.autotune import Tuning, tune
from .symbolic import forms
from .symbolic.derive import Derivation, derive
from .printing.latex import latex
from .printing.document import latex_document
from .symbolic.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from .symbolic.losses import CrossEntropyLoss, MSELoss
from .symbolic.network import Network
from .proofs.conv import Proof, ProofReport, check, prove
from .proofs.general import GeneralProofReport, GeneralSpec, check_general, prove_general
from .runtime.kernels import ConvKernels
from .symbolic.spec import ConvSpec
from .version import __version__


__all__ = [
    "ConvSpec",
    "Derivation",
    "derive",
    "prove",
    "check",
    "Proof",
    "ProofReport",
    "prove_general",
    "check_general",
    "GeneralProofReport",
    "GeneralSpec",
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
