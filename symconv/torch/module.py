"""Modules: ``torch.nn.Conv2d``'s arguments or a model -> ``Conv2d`` running symconv's kernels, swapped in by ``swap_conv2d``.

``Conv2d`` subclasses ``torch.nn.Conv2d``: the same constructor, parameters, initialisation and state-dict names
(``weight``, ``bias``), so a checkpoint of one loads into the other. Only ``forward`` differs: it calls the
``symconv::conv2d`` operator, which compiles kernels for each new input shape.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

import torch
from torch import Tensor, nn

from .ops import conv2d

__all__ = ["Conv2d", "swap_conv2d", "unsupported"]


def _symmetric_padding(conv: nn.Conv2d) -> Union[tuple[int, int], str]:
    """The per-axis padding symconv applies on both sides, or why there is none."""
    padding = conv.padding
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        totals = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        if any(total % 2 for total in totals):
            return (f"padding='same' with kernel {tuple(conv.kernel_size)} and dilation {tuple(conv.dilation)} "
                    f"pads {totals} in all, one more after than before, and symconv pads symmetrically only")
        return (totals[0] // 2, totals[1] // 2)
    return (int(padding[0]), int(padding[1]))


def unsupported(conv: nn.Conv2d) -> Optional[str]:
    """A ``torch.nn.Conv2d`` -> why symconv cannot run it (one phrase), or None when it can.

    >>> unsupported(nn.Conv2d(4, 4, 3, groups=2)), unsupported(nn.Conv2d(4, 4, 3, padding="same"))
    ('groups=2 (grouped convolution)', None)
    """
    if conv.groups != 1:
        return f"groups={conv.groups} (grouped convolution)"
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r} (only zero padding)"
    if conv.weight.device.type not in ("cpu", "meta"):  # meta: parameters still to come (as in _swapped)
        return f"parameters on device {conv.weight.device} (CPU only)"
    if conv.weight.dtype not in (torch.float32, torch.float64):
        return f"dtype {conv.weight.dtype} (float32 and float64 only)"
    padding = _symmetric_padding(conv)
    if isinstance(padding, str):
        return padding
    for p, d, k in zip(padding, conv.dilation, conv.kernel_size):
        if p >= d * (k - 1) + 1:  # ConvSpec's rule: else some outputs see only padding
            return f"padding {tuple(padding)} not smaller than the dilated kernel {d * (k - 1) + 1}"
    return None


class Conv2d(nn.Conv2d):
    """``torch.nn.Conv2d`` whose forward and backward passes run symconv's generated C kernels.

    Takes ``nn.Conv2d``'s arguments; what symconv does not support yet (groups != 1, a padding mode other than
    zeros, asymmetric "same" padding) is a ValueError naming it.

    >>> layer = Conv2d(1, 2, 3, padding="same", dtype=torch.float64)
    >>> x = torch.randn(1, 1, 5, 5, dtype=torch.float64)
    >>> bool(torch.allclose(layer(x), nn.functional.conv2d(x, layer.weight, layer.bias, padding=1)))
    True
    >>> Conv2d(4, 4, 3, groups=4)
    Traceback (most recent call last):
    ...
    ValueError: symconv.torch.Conv2d: groups=4 (grouped convolution) is not supported by symconv yet
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros",
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        problem = unsupported(self)
        if problem is not None:
            raise ValueError(f"symconv.torch.Conv2d: {problem} is not supported by symconv yet")

    def forward(self, input: Tensor) -> Tensor:
        """(N, C, H, W) or unbatched (C, H, W) -> the convolution, as ``nn.Conv2d`` computes it."""
        if input.dim() == 3:
            return self.forward(input.unsqueeze(0)).squeeze(0)
        if input.dim() != 4:
            raise ValueError(f"symconv.torch.Conv2d: expected a 3-D or 4-D input, got shape {tuple(input.shape)}")
        padding = _symmetric_padding(self)
        assert not isinstance(padding, str)  # the constructor refused it
        return conv2d(input, self.weight, self.bias, list(self.stride), list(padding), list(self.dilation))

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

    Layers ``unsupported`` names (grouped convolutions, ...) stay as they are; the swapped ones share the old
    parameters, so optimizers and state dicts carry over. Hooks on a replaced module are not carried over.

    >>> model = swap_conv2d(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3, groups=2)))
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
