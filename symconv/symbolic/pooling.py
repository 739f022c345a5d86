"""Pooling: window, stride and padding per axis -> the max and average pooling layers (symbolic, closed form, NumPy).

Windows follow PyTorch: stride defaults to the window, padding is at most half the window, ``ceil_mode`` is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np
import sympy as sp

from . import layer_reference as ref
from .layer_base import Grads, Layer, Params, Shape, fmt_pair, four_d, maximum, truth, zeros
from .spec import IntOrPair, Pair, as_pair

__all__ = ["MaxPool2d", "AvgPool2d"]


@dataclass(frozen=True)
class _Pool(Layer):
    """Windows of ``kernel_size`` every ``stride`` (default: the kernel size) over an input padded by ``padding``."""

    kernel_size: IntOrPair
    stride: Optional[IntOrPair] = None
    padding: IntOrPair = 0

    def __post_init__(self) -> None:
        kernel = as_pair("kernel_size", self.kernel_size)
        stride = kernel if self.stride is None else as_pair("stride", self.stride)
        padding = as_pair("padding", self.padding)
        if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
            raise ValueError(f"{type(self).__name__}: kernel_size and stride must be >= 1, padding >= 0")
        # PyTorch's rule; it also guarantees every window holds at least one real cell.
        if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
            raise ValueError(f"{type(self).__name__}: padding {padding} must be at most half the kernel {kernel}")
        for name, value in (("kernel_size", kernel), ("stride", stride), ("padding", padding)):
            object.__setattr__(self, name, value)

    def describe(self) -> str:
        pairs: tuple[Pair, ...] = (self.kernel_size, self.stride, self.padding)  # type: ignore[assignment]
        kernel, stride, padding = (fmt_pair(p) for p in pairs)
        return f"{type(self).__name__}({kernel}, stride {stride}" + (f", padding {padding})" if padding != "0" else ")")

    def output_shape(self, input_shape: Shape) -> Shape:
        N, C, H, W = four_d(self, input_shape)
        (kh, kw), (ph, pw) = self.kernel_size, self.padding  # type: ignore[misc]
        if kh > H + 2 * ph or kw > W + 2 * pw:
            raise ValueError(
                f"{self.describe()}: the window is larger than the padded input {(H + 2 * ph, W + 2 * pw)}"
            )
        size = ref.pool_output_size((H, W), self.kernel_size, self.stride, self.padding)  # type: ignore[arg-type]
        return (N, C, *size)

    def cells(self, size: Pair, i: int, j: int) -> list[tuple[int, int]]:
        """The real (unpadded) cells of window (i, j) of an (H, W) plane, in row-major order."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding  # type: ignore[misc]
        rows = [i * sh - ph + r for r in range(kh) if 0 <= i * sh - ph + r < size[0]]
        cols = [j * sw - pw + s for s in range(kw) if 0 <= j * sw - pw + s < size[1]]
        return [(r, c) for r in rows for c in cols]

    def windows(self, shape: Shape) -> list[tuple[tuple[int, ...], list[tuple[int, int]]]]:
        """Every output index of an input of ``shape`` with its window's real cells."""
        out = self.output_shape(shape)
        return [(p, self.cells(shape[2:], p[2], p[3])) for p in np.ndindex(*out)]  # type: ignore[arg-type]


@dataclass(frozen=True)
class MaxPool2d(_Pool):
    """The maximum of every window; the gradient goes to the winner only, and overlapping windows add up.

    Padding counts as -inf (PyTorch), i.e. a window is the Max of its real cells. The winner is recorded as the
    flat index h * W + w in the (H, W) plane (PyTorch's ``return_indices``); ties go to the first maximum in
    row-major order, as PyTorch and the kernels do.

    >>> MaxPool2d(2).output_shape((1, 1, 5, 4)), MaxPool2d(3, stride=1, padding=1).output_shape((1, 1, 5, 4))
    ((1, 1, 2, 2), (1, 1, 5, 4))
    """

    piecewise: ClassVar[bool] = True

    def forward(self, x: np.ndarray, params: Params) -> np.ndarray:
        y = zeros(self.output_shape(x.shape))
        for p, cells in self.windows(x.shape):
            y[p] = maximum(*(x[p[0], p[1], r, c] for r, c in cells))
        return y

    def branch(self, x: np.ndarray) -> np.ndarray:
        """The winners' flat indices: the first maximum in row-major order."""
        W = x.shape[3]
        winners = np.zeros(self.output_shape(x.shape), dtype=np.int64)
        for p, cells in self.windows(x.shape):
            best = cells[0]
            for cell in cells[1:]:
                if truth(self, x[p[0], p[1], cell[0], cell[1]] > x[p[0], p[1], best[0], best[1]]):
                    best = cell  # strictly greater only: an equal later cell does not take over
            winners[p] = best[0] * W + best[1]
        return winners

    def forward_on(self, x: np.ndarray, params: Params, branch: Optional[np.ndarray]) -> np.ndarray:
        winners = self.branch(x) if branch is None else branch
        n, c = np.indices(winners.shape)[:2]
        return x.reshape(*x.shape[:2], -1)[n, c, winners]

    def boundary(self, values: np.ndarray, region: np.ndarray) -> Optional[str]:
        for p, cells in self.windows(values.shape):
            entries = [(values[p[0], p[1], r, c], region[p[0], p[1], r, c]) for r, c in cells]
            top = max(v for v, _ in entries)
            tied = [e for v, e in entries if v == top]
            if any(sp.expand(e - tied[0]) != 0 for e in tied[1:]):
                return f"{self.describe()} window {list(p)} has a tie between different units at its maximum"
        return None

    def backward(
        self, x: np.ndarray, params: Params, grad_output: np.ndarray, branch: Optional[np.ndarray] = None
    ) -> tuple[np.ndarray, Grads]:
        winners = self.branch(x) if branch is None else branch
        grad = zeros(x.shape)
        plane = grad.reshape(*x.shape[:2], -1)  # a view: writing to it writes grad
        for p in np.ndindex(*winners.shape):
            plane[p[0], p[1], winners[p]] += grad_output[p]
        return grad, {}

    def reference_forward(self, x: np.ndarray, params: Params) -> tuple[np.ndarray, Any]:
        return ref.maxpool2d_forward(x, self.kernel_size, self.stride, self.padding)  # type: ignore[arg-type]

    def reference_backward(
        self, x: np.ndarray, params: Params, cache: Any, grad_output: np.ndarray
    ) -> tuple[np.ndarray, Grads]:
        return ref.maxpool2d_backward(grad_output, cache, x.shape[2:]), {}


@dataclass(frozen=True)
class AvgPool2d(_Pool):
    """The window sum over kh * kw: padded cells count as zeros in the divisor (PyTorch's ``count_include_pad=True``).

    >>> x = np.array([[[[1, 2], [3, 4]]]], dtype=object)
    >>> pool, g = AvgPool2d(2), np.array([[[[8]]]], dtype=object)
    >>> pool.forward(x, {})[0, 0, 0, 0], pool.backward(x, {}, g)[0][0, 0]
    (5/2, array([[2, 2],
           [2, 2]], dtype=object))
    """

    def _divisor(self) -> sp.Integer:
        return sp.Integer(self.kernel_size[0] * self.kernel_size[1])  # type: ignore[index]

    def forward(self, x: np.ndarray, params: Params) -> np.ndarray:
        y = zeros(self.output_shape(x.shape))
        for p, cells in self.windows(x.shape):
            y[p] = sp.Add(*(x[p[0], p[1], r, c] for r, c in cells)) / self._divisor()
        return y

    def backward(
        self, x: np.ndarray, params: Params, grad_output: np.ndarray, branch: Optional[np.ndarray] = None
    ) -> tuple[np.ndarray, Grads]:
        grad = zeros(x.shape)
        for p, cells in self.windows(x.shape):
            for r, c in cells:
                grad[p[0], p[1], r, c] += grad_output[p] / self._divisor()
        return grad, {}

    def reference_forward(self, x: np.ndarray, params: Params) -> tuple[np.ndarray, Any]:
        return ref.avgpool2d_forward(x, self.kernel_size, self.stride, self.padding), None  # type: ignore[arg-type]

    def reference_backward(
        self, x: np.ndarray, params: Params, cache: Any, grad_output: np.ndarray
    ) -> tuple[np.ndarray, Grads]:
        args = (self.kernel_size, self.stride, self.padding)
        return ref.avgpool2d_backward(grad_output, x.shape[2:], *args), {}  # type: ignore[arg-type]
