"""Transposed-convolution closed forms and NumPy reference: a ``ConvTransposeSpec`` and arrays -> its passes.

The closed forms are the corresponding convolution's (``spec.conv``) operations from ``forms``, group by group:

- forward:     Y = conv.grad_input(dY := X, F) + b, the textbooks' full convolution of X with rot180(F);
- grad_input:  dE/dX = conv.forward(dE/dY, F) without bias (the convolution's forward pass applied to dE/dY);
- grad_weight: dE/dF = conv.grad_weight(x := dE/dY, dy := X), the roles of the two arrays swapped;
- grad_bias:   dE/db = Σ dE/dY over batch and space.

X is first padded with ``spec.excess`` zero rows and columns at the end (the convolution's extra outputs when
output_padding >= stride), and dE/dX cropped back. The entries may be SymPy expressions or ``sparse.Poly``s.
The NumPy reference is written independently, as the scatter of the definition, one strided slice per tap.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from . import forms
from .layer_base import ZERO, zeros
from .sparse import Poly
from .spec import ConvSpec
from .transpose import ConvTransposeSpec

__all__ = ["group_conv", "forward", "grad_input", "grad_weight", "grad_bias", "reference_forward", "reference_grad_input",
           "reference_grad_weight", "reference_grad_bias"]


def group_conv(spec: ConvTransposeSpec) -> ConvSpec:
    """The corresponding convolution of one group (groups = 1), whose closed forms each group's channels use."""
    c = spec.conv
    return ConvSpec(c.input_size, c.kernel_size, c.stride, c.padding_sides, c.dilation,
                    in_channels=spec.out_channels // spec.groups, out_channels=spec.in_channels // spec.groups,
                    batch=spec.batch)


def _groups(spec: ConvTransposeSpec) -> list[tuple[slice, slice]]:
    """(input channels, output channels) of each group."""
    cin, cout = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    return [(slice(g * cin, (g + 1) * cin), slice(g * cout, (g + 1) * cout)) for g in range(spec.groups)]


def _extended(spec: ConvTransposeSpec, X: np.ndarray) -> np.ndarray:
    """X with ``excess`` zero rows and columns appended: the corresponding convolution's output gradient."""
    (eh, ew), (n, c, h, w) = spec.excess, X.shape
    out = zeros((n, c, h + eh, w + ew)) if X.dtype == object else np.zeros((n, c, h + eh, w + ew), X.dtype)
    out[:, :, :h, :w] = X
    return out


def forward(spec: ConvTransposeSpec, X: np.ndarray, F: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Y = conv.grad_input(X, F) (+ b): the input gradient of the corresponding convolution, group by group."""
    conv, Xe = group_conv(spec), _extended(spec, X)
    Y = zeros(spec.output_shape)
    for c_in, c_out in _groups(spec):
        Y[:, c_out] = forms.grad_input(conv, F[c_in], Xe[:, c_in])
    if spec.bias:
        Y = Y + b[None, :, None, None]
    return Y


def grad_input(spec: ConvTransposeSpec, F: np.ndarray, G: np.ndarray) -> np.ndarray:
    """dE/dX = conv.forward(dE/dY, F) without bias, cropped to X: the convolution's forward applied to dE/dY."""
    conv, (h, w) = group_conv(spec), spec.input_size
    no_bias = np.full(conv.out_channels, ZERO, dtype=object)
    dX = zeros(spec.input_shape)
    for c_in, c_out in _groups(spec):
        dX[:, c_in] = forms.forward(conv, G[:, c_out], F[c_in], no_bias)[:, :, :h, :w]
    return dX


def grad_weight(spec: ConvTransposeSpec, X: np.ndarray, G: np.ndarray) -> np.ndarray:
    """dE/dF = conv.grad_weight(dE/dY, X): the convolution's weight gradient with input and gradient swapped."""
    conv, Xe = group_conv(spec), _extended(spec, X)
    dF = zeros(spec.weight_shape)
    for c_in, c_out in _groups(spec):
        dF[c_in] = forms.grad_weight(conv, G[:, c_out], Xe[:, c_in])
    return dF


def grad_bias(spec: ConvTransposeSpec, G: np.ndarray) -> np.ndarray:
    """dE/db_k = Σ_(n,i,j) dE/dY[n,k,i,j] (no entries without a bias)."""
    db = zeros((spec.out_channels if spec.bias else 0,))
    for k in range(db.shape[0]):
        terms = list(G[:, k].flat)
        db[k] = Poly.sum(terms) if isinstance(terms[0], Poly) else sp.Add(*terms)
    return db


def _tap(spec: ConvTransposeSpec, r: int, s: int) -> tuple[slice, slice]:
    """The rows and columns of the uncropped output that tap (r, s) writes, one per input position."""
    (h, w), (sh, sw), (dh, dw) = spec.input_size, spec.stride, spec.dilation
    return slice(r * dh, r * dh + (h - 1) * sh + 1, sh), slice(s * dw, s * dw + (w - 1) * sw + 1, sw)


def _uncropped_shape(spec: ConvTransposeSpec) -> tuple[int, int, int, int]:
    (ph, pw), (qh, qw), (m, n) = spec.pad_begin, spec.pad_end, spec.output_size
    return (spec.batch, spec.out_channels, m + ph + qh, n + pw + qw)


def _crop(spec: ConvTransposeSpec) -> tuple[slice, slice]:
    (ph, pw), (m, n) = spec.pad_begin, spec.output_size
    return slice(ph, ph + m), slice(pw, pw + n)


def reference_forward(spec: ConvTransposeSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """y = Σ_taps scatter of x w[:, :, r, s] into the uncropped output, cropped by the padding, plus b.

    >>> spec = ConvTransposeSpec((2, 2), (2, 2))
    >>> reference_forward(spec, np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)))[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    """
    full = np.zeros(_uncropped_shape(spec), dtype=np.result_type(x, w))
    for c_in, c_out in _groups(spec):
        for r, s in np.ndindex(*spec.kernel_size):
            rows, cols = _tap(spec, r, s)
            full[:, c_out, rows, cols] += np.einsum("nchw,ck->nkhw", x[:, c_in], w[c_in, :, r, s])
    rows, cols = _crop(spec)
    y = full[:, :, rows, cols].copy()
    if b is not None:
        y += b[None, :, None, None]
    return y


def _uncropped(spec: ConvTransposeSpec, dy: np.ndarray) -> np.ndarray:
    full = np.zeros(_uncropped_shape(spec), dtype=dy.dtype)
    rows, cols = _crop(spec)
    full[:, :, rows, cols] = dy
    return full


def reference_grad_input(spec: ConvTransposeSpec, dy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """dE/dx[n, c, i] = Σ over taps and the group's output channels of dy at the cell x[i] was scattered to."""
    full = _uncropped(spec, dy)
    dx = np.zeros(spec.input_shape, dtype=np.result_type(dy, w))
    for c_in, c_out in _groups(spec):
        for r, s in np.ndindex(*spec.kernel_size):
            rows, cols = _tap(spec, r, s)
            dx[:, c_in] += np.einsum("nkhw,ck->nchw", full[:, c_out, rows, cols], w[c_in, :, r, s])
    return dx


def reference_grad_weight(spec: ConvTransposeSpec, x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """dE/dw[c, k, r, s] = Σ over the batch and input positions of x[n, c, i] dy at the cell tap (r, s) wrote."""
    full = _uncropped(spec, dy)
    dw = np.zeros(spec.weight_shape, dtype=np.result_type(x, dy))
    for c_in, c_out in _groups(spec):
        for r, s in np.ndindex(*spec.kernel_size):
            rows, cols = _tap(spec, r, s)
            dw[c_in, :, r, s] = np.einsum("nchw,nkhw->ck", x[:, c_in], full[:, c_out, rows, cols])
    return dw


def reference_grad_bias(spec: ConvTransposeSpec, dy: np.ndarray) -> np.ndarray:
    """dE/db[k] = the sum of dy[:, k]."""
    return dy.sum(axis=(0, 2, 3))
