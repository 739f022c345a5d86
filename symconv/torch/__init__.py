"""PyTorch bridge: ``torch`` tensors and modules -> symconv's compiled kernels as PyTorch operators and modules.

``symconv::conv2d`` and its three gradients are real operators (``torch.library.custom_op`` with a fake kernel
for tracing and an autograd formula), so they work under ``torch.compile``; ``Conv2d`` is a drop-in
``torch.nn.Conv2d`` running them, and ``swap_conv2d`` puts it into a model wherever it supports the layer.
Optional: the core never imports this subpackage, which needs the extra ``symconv[torch]``.
"""

try:
    import torch  # noqa: F401  (the one place this subpackage checks for its library)
except ImportError:
    raise ImportError("symconv.torch needs PyTorch: pip install 'symconv[torch]' (the CPU build, torch==2.13.0)") from None

from .module import Conv2d, swap_conv2d, unsupported
from .ops import as_array, conv2d, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight

__all__ = [
    "Conv2d",
    "swap_conv2d",
    "unsupported",
    "conv2d",
    "conv2d_grad_input",
    "conv2d_grad_weight",
    "conv2d_grad_bias",
    "as_array",
]
