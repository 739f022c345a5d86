"""symconv: derive, prove, print and generate the backward pass of convolution layers, for any shape.

The names below load on first use (PEP 562), so that ``import symconv`` and the command line start at once and
Ctrl-C is caught from the start (see ``symconv.__main__``); ``from symconv import *`` loads them all.
"""

from __future__ import annotations

from .version import __version__ as __version__

# Not typing.TYPE_CHECKING: importing typing takes milliseconds in which Ctrl-C would still show a traceback.
# mypy treats any constant of this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
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

_HOMES = {
    ".pipeline": ("compile_conv", "compile_conv_transpose"),
    ".printing.document": ("latex_document",),
    ".printing.latex": ("latex",),
    ".proofs.conv": ("Proof", "ProofReport", "check", "prove"),
    ".proofs.general": ("GeneralProofReport", "GeneralSpec", "check_general", "prove_general"),
    ".proofs.transpose": ("TransposeProofReport", "prove_transpose"),
    ".runtime.kernels": ("ConvKernels",),
    ".runtime.transpose": ("ConvTransposeKernels",),
    ".symbolic": ("forms",),
    ".symbolic.derive": ("Derivation", "derive"),
    ".symbolic.layers": ("AvgPool2d", "Conv2d", "Dense", "Flatten", "MaxPool2d", "ReLU"),
    ".symbolic.losses": ("CrossEntropyLoss", "MSELoss"),
    ".symbolic.network": ("Network",),
    ".symbolic.spec": ("ConvSpec",),
    ".symbolic.transpose": ("ConvTransposeSpec",),
    ".symbolic.transpose_derive": ("TransposeDerivation", "derive_transpose"),
    ".symbolic.transpose_layer": ("ConvTranspose2d",),
    ".tuning.autotune": ("Tuning", "tune", "tuned_kernels"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

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


def __getattr__(name: str) -> object:
    from importlib import import_module

    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'symconv' has no attribute {name!r}")
    module = import_module(home, __name__)
    value = import_module(f"{home}.{name}", __name__) if name == "forms" else getattr(module, name)
    globals()[name] = value  # once loaded, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
