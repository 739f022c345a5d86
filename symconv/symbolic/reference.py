"""NumPy reference: a ``ConvSpec`` and NumPy arrays -> the forward pass and its three gradients, without C.

Every pass is a sum over the kernel taps (r, s) of one strided window of the zero-padded input: the window of
tap (r, s) holds, for every output position, the input entry that tap multiplies. NumPy's ``einsum`` then
contracts the channels within each group (axes split as (groups, channels of a group)). This is independent of the SymPy derivation and of the generated C, so both are
checked against it.
"""

from __future__ import annotations

import numpy as np

from .spec import ConvSpec

__all__ = ["conv2d_forward", "conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias"]


def _tap_window(spec: ConvSpec, r: int, s: int) -> tuple[slice, slice]:
    """The rows and columns of the padded input that kernel tap (r, s) multiplies, one per output position."""
    (oh, ow), (sh, sw), (dh, dw) = spec.output_size, spec.stride, spec.dilation
    return slice(r * dh, r * dh + (oh - 1) * sh + 1, sh), slice(s * dw, s * dw + (ow - 1) * sw + 1, sw)


def _oriented(spec: ConvSpec, weight: np.ndarray) -> np.ndarray:
    """The weight as cross-correlation sees it: rotated by 180 degrees for true convolution."""
    return weight[:, :, ::-1, ::-1] if spec.flip else weight


def _padded(spec: ConvSpec, x: np.ndarray) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), *spec.padding_sides))


def _grouped(spec: ConvSpec, a: np.ndarray) -> np.ndarray:
    """Split axis 1 (channels) of ``a`` into (groups, channels per group): a view."""
    return a.reshape(a.shape[0], spec.groups, a.shape[1] // spec.groups, *a.shape[2:])


def _grouped_weight(spec: ConvSpec, w: np.ndarray) -> np.ndarray:
    """(K, C/g, R, S) -> (g, K/g, C/g, R, S): a view."""
    return w.reshape(spec.groups, spec.group_out_channels, *w.shape[1:])


def conv2d_forward(spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """y[n, k] = b[k] + sum over c, r, s of w[k, c, r, s] * (window (r, s) of the padded x)[n, c].

    >>> spec = ConvSpec((3, 3), (2, 2))
    >>> conv2d_forward(spec, np.arange(9.0).reshape(1, 1, 3, 3), np.ones((1, 1, 2, 2)))[0, 0]
    array([[ 8., 12.],
           [20., 24.]])
    """
    xp, wt = _grouped(spec, _padded(spec, x)), _grouped_weight(spec, _oriented(spec, w))
    y = np.zeros(spec.output_shape, dtype=np.result_type(x, w))
    yg = _grouped(spec, y)
    for r in range(spec.kernel_size[0]):
        for s in range(spec.kernel_size[1]):
            rows, cols = _tap_window(spec, r, s)
            yg += np.einsum("ngchw,gkc->ngkhw", xp[..., rows, cols], wt[..., r, s])
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_grad_input(spec: ConvSpec, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dE/dx: every output gradient sent back, through each tap, to the input entry that tap read.

    >>> spec = ConvSpec((3, 3), (2, 2))
    >>> conv2d_grad_input(spec, np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)))[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    wt, dyg = _grouped_weight(spec, _oriented(spec, w)), _grouped(spec, dy)
    (ph, pw), (h, wd) = spec.pad_begin, spec.input_size
    dxp = np.zeros((spec.batch, spec.in_channels, *spec.padded_size), dtype=np.result_type(dy, w))
    dxg = _grouped(spec, dxp)
    for r in range(spec.kernel_size[0]):
        for s in range(spec.kernel_size[1]):
            rows, cols = _tap_window(spec, r, s)
            dxg[..., rows, cols] += np.einsum("ngkhw,gkc->ngchw", dyg, wt[..., r, s])
    # Gradients that land on padding belong to no input entry: crop them away.
    return dxp[:, :, ph : ph + h, pw : pw + wd]


def conv2d_grad_weight(spec: ConvSpec, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dE/dw[k, c, r, s] = sum over n and output positions of dy[n, k] * (window (r, s) of the padded x)[n, c].

    >>> spec = ConvSpec((3, 3), (2, 2))
    >>> conv2d_grad_weight(spec, np.arange(9.0).reshape(1, 1, 3, 3), np.ones((1, 1, 2, 2)))[0, 0]
    array([[ 8., 12.],
           [20., 24.]])
    """
    xp, dyg = _grouped(spec, _padded(spec, x)), _grouped(spec, dy)
    dw = np.zeros(spec.weight_shape, dtype=np.result_type(x, dy))
    dwg = _grouped_weight(spec, dw)
    for r in range(spec.kernel_size[0]):
        for s in range(spec.kernel_size[1]):
            rows, cols = _tap_window(spec, r, s)
            dwg[..., r, s] = np.einsum("ngkhw,ngchw->gkc", dyg, xp[..., rows, cols])
    return _oriented(spec, dw).copy()


def conv2d_grad_bias(spec: ConvSpec, dy: np.ndarray) -> np.ndarray:
    """dE/db[k] = the sum of dy[:, k] (every output of channel k adds b[k] once); empty for a layer without bias.

    >>> conv2d_grad_bias(ConvSpec((3, 3), (2, 2)), np.ones((1, 1, 2, 2)))
    array([4.])
    """
    return dy.sum(axis=(0, 2, 3)) if spec.bias else np.zeros((0,), dtype=dy.dtype)
