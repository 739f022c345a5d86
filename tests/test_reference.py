"""The NumPy reference against the definition: loops over every output for the forward pass, and the
transposed Jacobian of that loop (built column by column) for the gradients."""

from __future__ import annotations

import numpy as np
import pytest

from symconv import ConvSpec
from symconv.symbolic.reference import conv2d_forward, conv2d_grad_bias, conv2d_grad_input, conv2d_grad_weight

SPECS = [
    ConvSpec((3, 3), (2, 2)),
    ConvSpec((6, 6), (3, 3), stride=2),
    ConvSpec((5, 7), (2, 3), stride=(2, 3), flip=True),
    ConvSpec((5, 5), (3, 3), padding=1, dilation=(1, 2)),
    ConvSpec((4, 5), (3, 2), padding=(2, 1), dilation=2, in_channels=2, out_channels=3, batch=2, flip=True),
    ConvSpec((1, 1), (3, 3), padding=1),
]


def direct_forward(spec: ConvSpec, x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The textbook sum, O_ij = b + sum F_mn X_(i s + m d - p)(j s + n d - p); for true convolution the
    kernel is walked from its far corner, X_(i s + (k_eff - 1) - m d - p)."""
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.padding, spec.dilation
    (eh, ew), (R, S), (H, W) = spec.effective_kernel, spec.kernel_size, spec.input_size
    y = np.zeros(spec.output_shape)
    for n, k, i, j in np.ndindex(*spec.output_shape):
        total = b[k]
        for c, m, q in np.ndindex(spec.in_channels, R, S):
            if spec.flip:
                row, col = i * sh + eh - 1 - m * dh - ph, j * sw + ew - 1 - q * dw - pw
            else:
                row, col = i * sh + m * dh - ph, j * sw + q * dw - pw
            if 0 <= row < H and 0 <= col < W:
                total += w[k, c, m, q] * x[n, c, row, col]
        y[n, k, i, j] = total
    return y


def jacobian(f, point: np.ndarray) -> np.ndarray:
    """The matrix of an affine map at ``point``, one column per unit direction (exact for affine maps)."""
    base = f(point).ravel()
    columns = []
    for e in np.eye(point.size):
        columns.append(f(point + e.reshape(point.shape)).ravel() - base)
    return np.array(columns).T


@pytest.fixture(params=SPECS, ids=lambda s: s.describe())
def case(request):
    spec = request.param
    rng = np.random.default_rng(7)
    x = rng.standard_normal(spec.input_shape)
    w = rng.standard_normal(spec.weight_shape)
    b = rng.standard_normal(spec.out_channels)
    dy = rng.standard_normal(spec.output_shape)
    return spec, x, w, b, dy


def test_forward_is_the_definition(case):
    spec, x, w, b, _ = case
    np.testing.assert_allclose(conv2d_forward(spec, x, w, b), direct_forward(spec, x, w, b), rtol=1e-12, atol=1e-12)


def test_gradients_are_transposed_jacobians(case):
    spec, x, w, b, dy = case
    by_x = jacobian(lambda v: direct_forward(spec, v, w, b), x)
    by_w = jacobian(lambda v: direct_forward(spec, x, v, b), w)
    by_b = jacobian(lambda v: direct_forward(spec, x, w, v), b)
    g = dy.ravel()
    np.testing.assert_allclose(conv2d_grad_input(spec, dy, w).ravel(), by_x.T @ g, atol=1e-10)
    np.testing.assert_allclose(conv2d_grad_weight(spec, x, dy).ravel(), by_w.T @ g, atol=1e-10)
    np.testing.assert_allclose(conv2d_grad_bias(spec, dy), by_b.T @ g, atol=1e-10)


def test_forward_without_bias_is_linear():
    spec = SPECS[4]
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape)
    np.testing.assert_allclose(conv2d_forward(spec, 2 * x, w), 2 * conv2d_forward(spec, x, w), rtol=1e-13)


def test_agrees_with_torch(case):
    torch = pytest.importorskip("torch")
    spec, x, w, b, dy = case
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w[:, :, ::-1, ::-1].copy() if spec.flip else w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=spec.stride, padding=spec.padding, dilation=spec.dilation)
    ty.backward(torch.tensor(dy))
    grad_w = tw.grad.numpy()[:, :, ::-1, ::-1] if spec.flip else tw.grad.numpy()
    np.testing.assert_allclose(conv2d_forward(spec, x, w, b), ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(conv2d_grad_input(spec, dy, w), tx.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(conv2d_grad_weight(spec, x, dy), grad_w, atol=1e-12)
    np.testing.assert_allclose(conv2d_grad_bias(spec, dy), tb.grad.numpy(), atol=1e-12)
