"""symconv: derive, prove, print and generate the backward pass of convolution layers, for any shape."""

from .derive import Derivation, derive
from .spec import ConvSpec

__version__ = "0.1.0"

__all__ = ["ConvSpec", "Derivation", "derive"]
