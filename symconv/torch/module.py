"""Modules: ``torch.nn.Conv2d``'s arguments or a model -> ``Conv2d`` running symconv's kernels, swapped in by ``swap_conv2d``.

``Conv2d`` subclasses ``torch.nn.Conv2d``: the same constructor, parameters, initialisation and state-dict names
(``weight``, ``bias``), so a checkpoint of one loads into the other. Only ``forward`` differs: it calls the
``symconv::conv2d`` operator, which compiles kernels for each new input shape.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from torch import Tensor, nn

from .ops import conv2d

__all__ = ["Conv2d", "swap_conv2d", "unsupported"]


def _padding(conv: nn.Conv2d) -> list[int]:
    """The padding the operator takes: (ph, pw) when both sides agree, else (top, bottom, left, right)."""
    padding = conv.padding
    if isinstance(padding, str):
        if padding == "valid":
            return [0, 0]
        # "same", PyTorch's rule: the odd row or column of padding goes at the end
        totals = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        (top, left), (bottom, right) = [t // 2 for t in totals], [t - t // 2 for t in totals]
    else:
        (top, left), (bottom, right) = padding, padding
    return [int(top), int(left)] if (top, left) == (bottom, right) else [int(top), int(bottom), int(left), int(right)]


def unsupported(conv: nn.Conv2d) -> Optional[str]:
    """A ``torch.nn.Conv2d`` -> why symconv cannot run it (one phrase), or None when it can.

    >>> unsupported(nn.Conv2d(4, 4, 3, padding_mode="reflect"))
    "padding_mode='reflect' (only zero padding)"
    >>> unsupported(nn.Conv2d(4, 4, 2, groups=2, padding="same")) is None
    True
    """
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r} (only zero padding)"
    if conv.weight.device.type not in ("cpu", "meta"):  # meta: parameters still to come (as in _swapped)
        return f"parameters on device {conv.weight.device} (CPU only)"
    if conv.weight.dtype not in (torch.float32, torch.float64):
        return f"dtype {conv.weight.dtype} (float32 and float64 only)"
    padding = _padding(conv)
    per_axis = padding if len(padding) == 2 else [max(padding[:2]), max(padding[2:])]
    for p, d, k in zip(per_axis, conv.dilation, conv.kernel_size):
        if p >= d * (k - 1) + 1:  # ConvSpec's rule: else some outputs see only padding
            return f"padding {tuple(conv.padding)} not smaller than the dilated kernel {d * (k - 1) + 1}"
    return None


class Conv2d(nn.Conv2d):
    """``torch.nn.Conv2d`` whose forward and backward passes run symconv's generated C kernels.

    Takes ``nn.Conv2d``'s arguments (groups, padding as ints, pairs, "valid" or "same", bias=False); what symconv
    does not support (a padding mode other than zeros, padding as large as the dilated kernel) is a ValueError
    naming it.

    >>> layer = Conv2d(4, 4, 2, padding="same", groups=4, bias=False, dtype=torch.float64)
    >>> x = torch.randn(1, 4, 5, 5, dtype=torch.float64)
    >>> bool(torch.allclose(layer(x), nn.functional.conv2d(x, layer.weight, None, padding="same", groups=4)))
    True
    >>> Conv2d(4, 4, 3, padding_mode="circular")
    Traceback (most recent call last):
    ...
    ValueError: symconv.torch.Conv2d: padding_mode='circular' (only zero padding) is not supported by symconv
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros",
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        problem = unsupported(self)
        if problem is not None:
            raise ValueError(f"symconv.torch.Conv2d: {problem} is not supported by symconv")

    def forward(self, input: Tensor) -> Tensor:
        """(N, C, H, W) or unbatched (C, H, W) -> the convolution, as ``nn.Conv2d`` computes it."""
        if input.dim() == 3:
            return self.forward(input.unsqueeze(0)).squeeze(0)
        if input.dim() != 4:
            raise ValueError(f"symconv.torch.Conv2d: expected a 3-D or 4-D input, got shape {tuple(input.shape)}")
        return conv2d(input, self.weight, self.bias, list(self.stride), _padding(self), list(self.dilation),
                      self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", kernels=symconv"


def _swapped(conv: nn.Conv2d) -> Conv2d:
    new = Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                 conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
                 device="meta", dtype=conv.weight.dtype)  # meta: no initialisation, the parameters come next
    # The very same Parameter objects: an optimizer built on the model before the swap keeps working.
    new.weight = conv.weight
    new.bias = conv.bias
    return new.train(conv.training)


def swap_conv2d(model: nn.Module) -> nn.Module:
    """A model -> the same model (changed in place) with every supported ``nn.Conv2d`` replaced by ``Conv2d``.

    Layers ``unsupported`` names (other padding modes, ...) stay as they are; the swapped ones share the old
    parameters, so optimizers and state dicts carry over. Hooks on a replaced module are not carried over.

    >>> model = swap_conv2d(nn.Sequential(nn.Conv2d(1, 2, 3, groups=1), nn.ReLU(),
    ...                                   nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")))
    >>> [type(m).__module__.split(".")[0] for m in model]
    ['symconv', 'torch', 'torch']
    """
    if type(model) is nn.Conv2d:
        return _swapped(model) if unsupported(model) is None else model
    for name, child in model.named_children():
        if type(child) is nn.Conv2d:
            if unsupported(child) is None:
                setattr(model, name, _swapped(child))
        else:
            swap_conv2d(child)
    return model
