"""Layer reference: NumPy float arrays -> each layer's forward pass and its gradients, in plain NumPy (no SymPy, no C).

These are the numbers the generated C kernels of whole networks are checked against. Every function keeps the dtype
of its floating inputs (float32 stays float32). Non-finite values follow IEEE arithmetic and are documented per
function; nothing here raises on NaN or inf. The convolution itself is ``symconv.symbolic.reference``'s.

Conventions are PyTorch's: (N, C, H, W) layout; max pooling pads with -inf, returns the winner's flat index
h * W + w in its (H, W) plane and breaks ties by the first maximum in row-major order; average pooling counts padded
cells in the divisor (``count_include_pad=True``); a dense weight has shape (out, in) as ``torch.nn.Linear``'s.
"""

from __future__ import annotations

import numpy as np

from .spec import Pair

__all__ = [
    "pool_output_size",
    "relu_forward",
    "relu_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "dense_forward",
    "dense_backward",
    "mse_loss",
    "mse_loss_grad",
    "cross_entropy_loss",
    "cross_entropy_loss_grad",
]


def relu_forward(x: np.ndarray) -> np.ndarray:
    """max(0, x); NaN stays NaN (as ``torch.relu``), +inf stays +inf.

    >>> relu_forward(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    # np.maximum propagates NaN, where np.where(x > 0, x, 0) would silently turn it into 0.
    return np.maximum(x, np.zeros((), dtype=x.dtype))


def relu_backward(x: np.ndarray, grad_output: np.ndarray) -> np.ndarray:
    """grad_output * [x > 0]: the derivative at x = 0 is taken as 0 (PyTorch's choice); at x = NaN it is 0 too.

    >>> relu_backward(np.array([-1.0, 0.0, 2.0]), np.ones(3))
    array([0., 0., 1.])
    """
    return np.where(x > 0, grad_output, np.zeros((), dtype=grad_output.dtype))


def _windows(x: np.ndarray, kernel: Pair, stride: Pair) -> np.ndarray:
    """(N, C, Ho, Wo, kh * kw): the cells of every window of an already padded x, in row-major order."""
    view = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3))[:, :, :: stride[0], :: stride[1]]
    return view.reshape(*view.shape[:4], kernel[0] * kernel[1])


def pool_output_size(size: Pair, kernel: Pair, stride: Pair, padding: Pair) -> Pair:
    """floor((i + 2p - k) / s) + 1 per axis, PyTorch's pooling output size (``ceil_mode=False``)."""
    return tuple((size[a] + 2 * padding[a] - kernel[a]) // stride[a] + 1 for a in (0, 1))  # type: ignore[return-value]


def maxpool2d_forward(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair) -> tuple[np.ndarray, np.ndarray]:
    """The maximum of every window and its winner's flat index h * W + w in the (H, W) plane (PyTorch's indices).

    Padding counts as -inf, so it never wins. Ties go to the first maximum in row-major order (the kernels do the
    same). NaN propagates as in PyTorch's CPU kernel, where a NaN always takes over (``v > best || isnan(v)``): the
    window's output is NaN and the winner its *last* NaN. A window whose real cells are all -inf outputs -inf with
    its first real cell as the winner.

    >>> y, idx = maxpool2d_forward(np.array([[[[1.0, 3.0], [3.0, 0.0]]]]), (2, 2), (2, 2), (0, 0))
    >>> float(y[0, 0, 0, 0]), int(idx[0, 0, 0, 0])
    (3.0, 1)
    """
    (ph, pw), (H, W) = padding, x.shape[2:]
    pad = ((0, 0), (0, 0), (ph, ph), (pw, pw))
    cells = _windows(np.pad(x, pad, constant_values=-np.inf), kernel, stride)
    real = _windows(np.pad(np.ones((1, 1, H, W), dtype=bool), pad, constant_values=False), kernel, stride)
    # np.argmax returns the first maximum: the tie rule. Only when the maximum is -inf could a padded cell (also
    # -inf) come first; then the first real cell wins instead. A NaN overrides both: the last one wins.
    local = np.argmax(cells, axis=-1)
    first_real = np.argmax(real, axis=-1)
    best = np.take_along_axis(cells, local[..., None], axis=-1)[..., 0]
    local = np.where(best == -np.inf, first_real, local)
    nan = np.isnan(cells)
    last_nan = cells.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
    local = np.where(nan.any(axis=-1), last_nan, local)
    best = np.take_along_axis(cells, local[..., None], axis=-1)[..., 0]
    Ho, Wo = cells.shape[2:4]
    r, s = np.divmod(local, kernel[1])
    rows = np.arange(Ho)[:, None] * stride[0] - ph + r
    cols = np.arange(Wo)[None, :] * stride[1] - pw + s
    return best, rows * W + cols


def maxpool2d_backward(grad_output: np.ndarray, indices: np.ndarray, input_size: Pair) -> np.ndarray:
    """Route each output gradient to its window's winner; overlapping windows that share a winner add up.

    >>> maxpool2d_backward(np.array([[[[5.0]]]]), np.array([[[[1]]]]), (2, 2))[0, 0]
    array([[0., 5.],
           [0., 0.]])
    """
    N, C = grad_output.shape[:2]
    out = np.zeros((N, C, input_size[0] * input_size[1]), dtype=grad_output.dtype)
    n, c = np.indices(grad_output.shape)[:2]
    np.add.at(out, (n, c, indices), grad_output)  # add.at, unlike fancy +=, accumulates repeated winners
    return out.reshape(N, C, *input_size)


def avgpool2d_forward(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """The window sum over kh * kw, padded cells counted as zeros in the divisor (``count_include_pad=True``).

    >>> avgpool2d_forward(np.ones((1, 1, 2, 2)), (2, 2), (2, 2), (1, 1))[0, 0]
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    ph, pw = padding
    cells = _windows(np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))), kernel, stride)
    return cells.sum(axis=-1) / np.asarray(kernel[0] * kernel[1], dtype=x.dtype)


def avgpool2d_backward(
    grad_output: np.ndarray, input_size: Pair, kernel: Pair, stride: Pair, padding: Pair
) -> np.ndarray:
    """Spread each output gradient evenly, g / (kh * kw), over its window; the share of padded cells is dropped.

    >>> avgpool2d_backward(np.ones((1, 1, 1, 1)), (2, 2), (2, 2), (2, 2), (0, 0))[0, 0]
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    (ph, pw), (H, W) = padding, input_size
    Ho, Wo = grad_output.shape[2:]
    share = grad_output / np.asarray(kernel[0] * kernel[1], dtype=grad_output.dtype)
    padded = np.zeros((*grad_output.shape[:2], H + 2 * ph, W + 2 * pw), dtype=grad_output.dtype)
    for r in range(kernel[0]):
        for s in range(kernel[1]):
            padded[
                :, :, r : r + (Ho - 1) * stride[0] + 1 : stride[0], s : s + (Wo - 1) * stride[1] + 1 : stride[1]
            ] += share
    return padded[:, :, ph : ph + H, pw : pw + W]


def dense_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """y = x W^T + b for a batch x of shape (N, in), W of shape (out, in) as ``torch.nn.Linear``.

    >>> dense_forward(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0]]), np.array([0.5]))
    array([[3.5]])
    """
    return x @ weight.T + bias


def dense_backward(
    x: np.ndarray, weight: np.ndarray, grad_output: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dE/dx, dE/dW, dE/db) = (G W, G^T x, the column sums of G).

    >>> [g.tolist() for g in dense_backward(np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]]), np.array([[1.0]]))]
    [[[3.0, 4.0]], [[1.0, 2.0]], [1.0]]
    """
    return grad_output @ weight, grad_output.T @ x, grad_output.sum(axis=0)


def mse_loss(y: np.ndarray, target: np.ndarray) -> np.floating:
    """E = 1/2 * sum (t - y)^2 over every entry and sample: 0.5 * ``MSELoss(reduction="sum")``, not PyTorch's mean.

    An empty batch gives 0 (the empty sum). NaN or inf in y or t give NaN or inf, as IEEE arithmetic does.

    >>> float(mse_loss(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]])))
    2.5
    """
    difference = target - y
    return np.asarray(0.5, dtype=difference.dtype) * np.sum(difference * difference)


def mse_loss_grad(y: np.ndarray, target: np.ndarray) -> np.ndarray:
    """dE/dy = y - t."""
    return y - target


def _check_labels(z: np.ndarray, labels: np.ndarray) -> None:
    if z.ndim != 2 or labels.shape != z.shape[:1]:
        raise ValueError(f"cross-entropy needs logits (N, classes) and labels (N,), got {z.shape} and {labels.shape}")
    if z.shape[0] == 0:
        raise ValueError("cross-entropy of an empty batch: the mean over zero samples is undefined (PyTorch gives nan)")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= z.shape[1]:
        raise ValueError(f"labels must be integers in [0, {z.shape[1]}), got {labels!r}")


def _log_softmax(z: np.ndarray) -> np.ndarray:
    # Subtracting the row maximum keeps exp from overflowing; it cancels exactly in the softmax.
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def cross_entropy_loss(z: np.ndarray, labels: np.ndarray) -> np.floating:
    """E = mean over the batch of (log sum_k exp z_nk - z_n,t_n): ``torch.nn.CrossEntropyLoss()`` (reduction mean).

    Logits of +inf give NaN (inf - inf in the stable log-sum-exp); an empty batch raises ValueError.

    >>> round(float(cross_entropy_loss(np.zeros((2, 4)), np.array([0, 3]))), 6)  # log 4
    1.386294
    """
    _check_labels(z, labels)
    return -np.mean(_log_softmax(z)[np.arange(z.shape[0]), labels])


def cross_entropy_loss_grad(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """dE/dz = (softmax(z) - onehot(t)) / N, the 1/N from the batch mean."""
    _check_labels(z, labels)
    grad = np.exp(_log_softmax(z))
    grad[np.arange(z.shape[0]), labels] -= 1
    return grad / np.asarray(z.shape[0], dtype=grad.dtype)
