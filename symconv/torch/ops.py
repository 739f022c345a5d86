"""Operators: CPU tensors and a convolution's geometry -> ``symconv::conv2d`` and its gradients, run by symconv's C.

Each operator builds the ``ConvSpec`` of its tensors' shapes and compiles (or finds in the cache) its kernels, so
every new input shape gets its own kernels. Tensors reach the kernels as NumPy views of their memory when they are
contiguous, as a contiguous copy otherwise. The backward formula calls the three gradient operators, and each of
those has its own (they are linear in each argument), so second derivatives work too.

No ``from __future__ import annotations`` here: ``custom_op`` reads the operator schema off the annotations.
"""

from functools import lru_cache
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from symconv import ConvKernels, ConvSpec, compile_conv

__all__ = ["as_array", "kernels_for", "conv2d", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias"]

_DTYPES = {torch.float32: "float32", torch.float64: "float64"}


def as_array(where: str, name: str, tensor: Tensor) -> np.ndarray:
    """A dense float CPU tensor -> a C-contiguous NumPy array on its memory (a copy only if it is not contiguous).

    >>> t = torch.arange(6.0).reshape(2, 3)
    >>> as_array("f", "x", t).ctypes.data == t.data_ptr(), as_array("f", "x", t.T).flags.c_contiguous
    (True, True)
    """
    if tensor.device.type != "cpu":
        raise ValueError(f"{where}: {name} is on device {tensor.device}; symconv's kernels take CPU tensors (.cpu())")
    if tensor.layout != torch.strided:
        raise ValueError(f"{where}: {name} is a {tensor.layout} tensor; symconv's kernels take dense tensors")
    if tensor.dtype not in _DTYPES:
        raise ValueError(f"{where}: {name} has dtype {tensor.dtype}; symconv's kernels take float32 or float64")
    tensor = tensor.detach().resolve_conj().resolve_neg()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()
    try:
        return tensor.numpy()
    except (RuntimeError, TypeError) as error:  # fake, functorch-wrapped or storage-less tensors
        raise ValueError(f"{where}: {name} has no memory NumPy can view ({str(error).splitlines()[0]})") from None


@lru_cache(maxsize=None)
def kernels_for(input_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: tuple[int, ...],
                padding: tuple[int, ...], dilation: tuple[int, ...], dtype: str, groups: int = 1) -> ConvKernels:
    """The compiled kernels of one geometry and dtype (``compile_conv`` once per new shape).

    ``padding`` is (ph, pw), both sides alike, or (top, bottom, left, right).
    """
    if len(input_shape) != 4 or len(weight_shape) != 4:
        raise ValueError(f"symconv::conv2d takes an (N, C, H, W) input and a (K, C / groups, R, S) weight, "
                         f"got {input_shape} and {weight_shape}")
    (N, C, H, W), (K, C_w, R, S) = input_shape, weight_shape
    if C != C_w * groups:
        raise ValueError(f"symconv::conv2d: the input has {C} channels, the weight {weight_shape} with groups="
                         f"{groups} takes {C_w * groups}")
    spec = ConvSpec((H, W), (R, S), _pair(stride), _sides(padding), _pair(dilation), C, K, N, groups=groups)
    return compile_conv(spec, dtype)


def _pair(values: tuple[int, ...]) -> tuple[int, int]:
    if len(values) != 2:
        raise ValueError(f"symconv::conv2d: stride and dilation are (height, width) pairs, got {values}")
    return (int(values[0]), int(values[1]))


def _sides(values: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(ph, pw) or (top, bottom, left, right) -> ((top, bottom), (left, right)), ConvSpec's per-side form."""
    if len(values) == 2:
        return (int(values[0]), int(values[0])), (int(values[1]), int(values[1]))
    if len(values) == 4:
        return (int(values[0]), int(values[1])), (int(values[2]), int(values[3]))
    raise ValueError(f"symconv::conv2d: padding is (ph, pw) or (top, bottom, left, right), got {values}")


def _kernels(where: str, tensor: Tensor, input_shape: Any, weight_shape: Any, stride: list[int],
             padding: list[int], dilation: list[int], groups: int) -> ConvKernels:
    if tensor.dtype not in _DTYPES:
        raise ValueError(f"{where}: dtype {tensor.dtype}; symconv's kernels take float32 or float64")
    return kernels_for(tuple(input_shape), tuple(weight_shape), tuple(stride), tuple(padding), tuple(dilation),
                       _DTYPES[tensor.dtype], groups)


def _output_size(size: Any, kernel: Any, stride: list[int], padding: list[int], dilation: list[int]) -> list[Any]:
    # ConvSpec.output_size, written on (possibly symbolic) sizes for the fake kernel.
    (top, bottom), (left, right) = _sides(tuple(padding))
    padded = [size[0] + top + bottom, size[1] + left + right]
    return [(padded[a] - dilation[a] * (kernel[a] - 1) - 1) // stride[a] + 1 for a in (0, 1)]


@torch.library.custom_op("symconv::conv2d", mutates_args=())
def conv2d(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: list[int], padding: list[int],
           dilation: list[int], groups: int = 1) -> Tensor:
    """(x (N, C, H, W), weight (K, C / groups, R, S), bias (K,) or None) -> the cross-correlation (N, K, Ho, Wo).

    ``padding`` is (ph, pw) or, per side, (top, bottom, left, right).
    """
    where = "symconv::conv2d"
    k = _kernels(where, x, x.shape, weight.shape, stride, padding, dilation, groups)
    y = torch.empty(k.spec.output_shape, dtype=x.dtype)
    b = None if bias is None else as_array(where, "bias", bias)
    k.forward(as_array(where, "x", x), as_array(where, "weight", weight), b, out=y.numpy())
    return y


@conv2d.register_fake
def _conv2d_fake(x: Tensor, weight: Tensor, bias: Optional[Tensor], stride: list[int], padding: list[int],
                 dilation: list[int], groups: int = 1) -> Tensor:
    size = _output_size(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    return x.new_empty((x.shape[0], weight.shape[0], *size))


@torch.library.custom_op("symconv::conv2d_grad_input", mutates_args=())
def conv2d_grad_input(dy: Tensor, weight: Tensor, input_shape: list[int], stride: list[int], padding: list[int],
                      dilation: list[int], groups: int = 1) -> Tensor:
    """(dy = dE/dy (N, K, Ho, Wo), weight, the input's shape) -> dE/dx (N, C, H, W)."""
    where = "symconv::conv2d_grad_input"
    k = _kernels(where, dy, input_shape, weight.shape, stride, padding, dilation, groups)
    dx = torch.empty(input_shape, dtype=dy.dtype)
    k.grad_input(as_array(where, "dy", dy), as_array(where, "weight", weight), out=dx.numpy())
    return dx


@conv2d_grad_input.register_fake
def _grad_input_fake(dy: Tensor, weight: Tensor, input_shape: list[int], stride: list[int], padding: list[int],
                     dilation: list[int], groups: int = 1) -> Tensor:
    return dy.new_empty(input_shape)


@torch.library.custom_op("symconv::conv2d_grad_weight", mutates_args=())
def conv2d_grad_weight(x: Tensor, dy: Tensor, weight_shape: list[int], stride: list[int], padding: list[int],
                       dilation: list[int], groups: int = 1) -> Tensor:
    """(x (N, C, H, W), dy = dE/dy, the weight's shape) -> dE/dweight (K, C / groups, R, S)."""
    where = "symconv::conv2d_grad_weight"
    k = _kernels(where, x, x.shape, weight_shape, stride, padding, dilation, groups)
    dw = torch.empty(weight_shape, dtype=x.dtype)
    k.grad_weight(as_array(where, "x", x), as_array(where, "dy", dy), out=dw.numpy())
    return dw


@conv2d_grad_weight.register_fake
def _grad_weight_fake(x: Tensor, dy: Tensor, weight_shape: list[int], stride: list[int], padding: list[int],
                      dilation: list[int], groups: int = 1) -> Tensor:
    return x.new_empty(weight_shape)


@torch.library.custom_op("symconv::conv2d_grad_bias", mutates_args=())
def conv2d_grad_bias(dy: Tensor, input_shape: list[int], weight_shape: list[int], stride: list[int],
                     padding: list[int], dilation: list[int], groups: int = 1) -> Tensor:
    """(dy = dE/dy (N, K, Ho, Wo), the input's and the weight's shapes) -> dE/dbias (K,)."""
    where = "symconv::conv2d_grad_bias"
    k = _kernels(where, dy, input_shape, weight_shape, stride, padding, dilation, groups)
    db = torch.empty((weight_shape[0],), dtype=dy.dtype)
    k.grad_bias(as_array(where, "dy", dy), out=db.numpy())
    return db


@conv2d_grad_bias.register_fake
def _grad_bias_fake(dy: Tensor, input_shape: list[int], weight_shape: list[int], stride: list[int],
                    padding: list[int], dilation: list[int], groups: int = 1) -> Tensor:
    return dy.new_empty((weight_shape[0],))


def _conv2d_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    x, weight, bias, *geometry = inputs  # geometry: stride, padding, dilation, groups
    ctx.save_for_backward(x, weight)
    ctx.geometry, ctx.has_bias = geometry, bias is not None


def _conv2d_backward(ctx: Any, dy: Tensor) -> tuple[Optional[Tensor], ...]:
    x, weight = ctx.saved_tensors
    geometry, (need_x, need_w, need_b) = ctx.geometry, ctx.needs_input_grad[:3]
    dx = conv2d_grad_input(dy, weight, list(x.shape), *geometry) if need_x else None
    dw = conv2d_grad_weight(x, dy, list(weight.shape), *geometry) if need_w else None
    db = conv2d_grad_bias(dy, list(x.shape), list(weight.shape), *geometry) if need_b and ctx.has_bias else None
    return dx, dw, db, None, None, None, None


conv2d.register_autograd(_conv2d_backward, setup_context=_conv2d_setup)


# The gradients are linear in each argument, so their adjoints are the other kernels of the same geometry:
# grad_input(dy, w) = J_x^T dy gives back forward(g, w) for dy and grad_weight(g, dy) for w; likewise below.
def _grad_input_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    dy, weight, input_shape, *geometry = inputs
    ctx.save_for_backward(dy, weight)
    ctx.geometry = geometry


def _grad_input_backward(ctx: Any, g: Tensor) -> tuple[Optional[Tensor], ...]:
    dy, weight = ctx.saved_tensors
    d_dy = conv2d(g, weight, None, *ctx.geometry) if ctx.needs_input_grad[0] else None
    d_w = conv2d_grad_weight(g, dy, list(weight.shape), *ctx.geometry) if ctx.needs_input_grad[1] else None
    return d_dy, d_w, None, None, None, None, None


conv2d_grad_input.register_autograd(_grad_input_backward, setup_context=_grad_input_setup)


def _grad_weight_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    x, dy, weight_shape, *geometry = inputs
    ctx.save_for_backward(x, dy)
    ctx.geometry = geometry


def _grad_weight_backward(ctx: Any, g: Tensor) -> tuple[Optional[Tensor], ...]:
    x, dy = ctx.saved_tensors
    d_x = conv2d_grad_input(dy, g, list(x.shape), *ctx.geometry) if ctx.needs_input_grad[0] else None
    d_dy = conv2d(x, g, None, *ctx.geometry) if ctx.needs_input_grad[1] else None
    return d_x, d_dy, None, None, None, None, None


conv2d_grad_weight.register_autograd(_grad_weight_backward, setup_context=_grad_weight_setup)


def _grad_bias_backward(ctx: Any, g: Tensor) -> tuple[Optional[Tensor], ...]:
    # dE/db = sum of dy over (n, i, j): its adjoint broadcasts g over the output's shape.
    return g.view(1, -1, 1, 1).expand(ctx.output_shape).clone(), None, None, None, None, None, None


def _grad_bias_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.output_shape = inputs[0].shape


conv2d_grad_bias.register_autograd(_grad_bias_backward, setup_context=_grad_bias_setup)
