"""symconv: derive, prove, print and generate the backward pass of convolution layers, for any shape."""

from .pipeline import compile_conv, compile_conv_transpose
from .printing.document import latex_document
from .printing.latex import latex
from .proofs.conv import Proof, ProofReport, check, prove
from .proofs.general import GeneralProofReport, GeneralSpec, check_general, prove_general
from .proofs.transpose import TransposeProofReport, prove_transpose
from .runtime.kernels import ConvKernels
from .runtime.transpose import ConvTransposeKernels
from .symbolic import forms as forms
from .symbolic.derive import Derivation, derive
from .symbolic.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from .symbolic.losses import CrossEntropyLoss, MSELoss
from .symbolic.network import Network
from .symbolic.spec import ConvSpec
from .symbolic.transpose import ConvTransposeSpec
from .symbolic.transpose_derive import TransposeDerivation, derive_transpose
from .symbolic.transpose_layer import ConvTranspose2d
from .tuning.autotune import Tuning, tune, tuned_kernels
from .version import __version__ as __version__

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
    "tuned_kernels",
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
    "ConvTransposeSpec",
    "ConvTranspose2d",
    "TransposeDerivation",
    "derive_transpose",
    "prove_transpose",
    "TransposeProofReport",
    "compile_conv_transpose",
    "ConvTransposeKernels",
]
