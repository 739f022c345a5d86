"""Closed forms: SymPy entries in NumPy object arrays -> the textbook operations (correlate, rot180, dilate, pad, ...).

2-D maps are ``numpy`` arrays of SymPy expressions, which gives NumPy's slicing for rot180, dilation and padding
while every entry stays exact. The 4-D layer forms sum the 2-D ones over channels and batch as the layer does.
The entries may also be ``sparse.Poly``s (what the proofs compute with): the operations only add and multiply.
"""

from __future__ import annotations

from functools import reduce
from operator import add
from typing import Sequence

import numpy as np
import sympy as sp

from .sparse import Poly
from .spec import ConvSpec, Pair

__all__ = [
    "rot180",
    "dilate",
    "pad",
    "correlate",
    "convolve",
    "layer_kernel",
    "forward",
    "forward_by_the_other_operation",
    "grad_weight",
    "grad_input",
    "grad_bias",
    "upsample",
    "matrix",
]

ZERO = sp.S.Zero


def matrix(rows: list[list[object]]) -> np.ndarray:
    """A 2-D object array of SymPy entries.

    >>> x, y = sp.symbols("x y")
    >>> rot180(matrix([[x, y], [0, 1]]))
    array([[1, 0],
           [y, x]], dtype=object)
    """
    out = np.empty((len(rows), len(rows[0])), dtype=object)
    out[:] = [[sp.sympify(v) for v in row] for row in rows]
    return out


def _zeros(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, ZERO, dtype=object)


def rot180(m: np.ndarray) -> np.ndarray:
    """Rotate a map by 180 degrees (flip both axes)."""
    return m[::-1, ::-1]


def dilate(m: np.ndarray, factor: Pair) -> np.ndarray:
    """Insert ``factor - 1`` zeros between neighbouring entries (upsampling a gradient, dilating a kernel).

    >>> dilate(matrix([[1, 2]]), (1, 2))
    array([[1, 0, 2]], dtype=object)
    """
    out = _zeros(((m.shape[0] - 1) * factor[0] + 1, (m.shape[1] - 1) * factor[1] + 1))
    out[:: factor[0], :: factor[1]] = m
    return out


def pad(m: np.ndarray, before: Pair, after: Pair) -> np.ndarray:
    """Surround with zeros; a negative amount crops instead.

    >>> pad(matrix([[1, 2, 3]]), (1, 0), (0, -1))
    array([[0, 0],
           [1, 2]], dtype=object)
    """
    crop = m[max(-before[0], 0) : m.shape[0] - max(-after[0], 0), max(-before[1], 0) : m.shape[1] - max(-after[1], 0)]
    top, left, bottom, right = (max(v, 0) for v in (*before, *after))
    out = _zeros((crop.shape[0] + top + bottom, crop.shape[1] + left + right))
    out[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return out


def _total(terms: Sequence[object]) -> object:
    """Σ terms: one ``sp.Add`` for SymPy entries, one dictionary for ``Poly`` entries, ZERO for no terms."""
    if not terms:
        return ZERO
    if isinstance(terms[0], Poly):
        return Poly.sum(terms)  # type: ignore[arg-type]
    return sp.Add(*terms)


def _add_maps(maps: list[np.ndarray]) -> np.ndarray:
    return reduce(add, maps)


def _dot(pairs: list[tuple[object, object]]) -> object:
    """Σ a·b: for ``Poly`` factors fused into one dictionary, else through ``_total``.

    A map holds ``Poly``s or SymPy entries, never both (a ``Poly`` plus ZERO is a ``Poly``), so the first
    factor tells which.
    """
    if pairs and isinstance(pairs[0][0], Poly):
        return Poly.dot(pairs)  # type: ignore[arg-type]
    return _total([a * b for a, b in pairs])  # type: ignore[operator]


def _windows(x: np.ndarray, taps: list[tuple[int, int, object]], out_shape: tuple[int, int], stride: Pair) -> np.ndarray:
    """A map and a kernel's non-zero taps (row, column, value) -> out[i, j] = Σ value · x[i·s_h + row, j·s_w + column]."""
    # Zero factors are skipped rather than multiplied: padding and dilation make most of them zero, so the
    # kernel's own zeros are dropped once, and the map is read as nested lists (NumPy's scalar indexing of an
    # object array costs more than the product it fetches).
    rows = x.tolist()
    out = _zeros(out_shape)
    for i, j in np.ndindex(out_shape):
        i0, j0 = i * stride[0], j * stride[1]
        pairs = [(k, rows[i0 + r][j0 + c]) for r, c, k in taps]
        out[i, j] = _dot([(k, v) for k, v in pairs if v is not ZERO])
    return out


def _valid_size(x: np.ndarray, k: np.ndarray, stride: Pair) -> tuple[int, int]:
    """How many times ``k`` fits in ``x`` at ``stride``, per axis."""
    if k.shape[0] > x.shape[0] or k.shape[1] > x.shape[1]:
        raise ValueError(f"kernel {k.shape} is larger than the map {x.shape}")
    return ((x.shape[0] - k.shape[0]) // stride[0] + 1, (x.shape[1] - k.shape[1]) // stride[1] + 1)


def correlate(x: np.ndarray, k: np.ndarray, stride: Pair = (1, 1)) -> np.ndarray:
    """Valid cross-correlation: out_ij = Σ_mn k_mn x_(i·s+m)(j·s+n), the deep-learning "convolution".

    >>> correlate(matrix([[1, 2, 3]]), matrix([[1, 10]]))
    array([[21, 32]], dtype=object)
    """
    taps = [(r, s, k[r, s]) for r, s in np.ndindex(k.shape) if k[r, s] is not ZERO]
    return _windows(x, taps, _valid_size(x, k, stride), stride)


def convolve(x: np.ndarray, k: np.ndarray, stride: Pair = (1, 1)) -> np.ndarray:
    """Valid true convolution, out_ij = Σ_mn k_mn x_(i·s+K-1-m)(j·s+K-1-n): the kernel walks backwards.

    >>> convolve(matrix([[1, 2, 3]]), matrix([[1, 10]]))
    array([[12, 23]], dtype=object)
    """
    R, S = k.shape
    taps = [(R - 1 - r, S - 1 - s, k[r, s]) for r, s in np.ndindex(k.shape) if k[r, s] is not ZERO]
    return _windows(x, taps, _valid_size(x, k, stride), stride)


def layer_kernel(spec: ConvSpec, f: np.ndarray) -> np.ndarray:
    """The map the layer correlates with: the filter dilated, and rotated by 180 degrees for true convolution."""
    kernel = dilate(f, spec.dilation)
    return rot180(kernel) if spec.flip else kernel


def _padded_input(spec: ConvSpec, x: np.ndarray) -> np.ndarray:
    return pad(x, spec.pad_begin, spec.pad_end)


def _channels_of_filter(spec: ConvSpec, k: int) -> range:
    """The input channels output channel k reads: those of its group, k // (K/groups)."""
    first = (k // spec.group_out_channels) * spec.group_in_channels
    return range(first, first + spec.group_in_channels)


def _filters_of_channel(spec: ConvSpec, c: int) -> range:
    """The output channels that read input channel c: those of its group, c // (C/groups)."""
    first = (c // spec.group_in_channels) * spec.group_out_channels
    return range(first, first + spec.group_out_channels)


def forward(spec: ConvSpec, X: np.ndarray, F: np.ndarray, b: np.ndarray) -> np.ndarray:
    """O[n,k] = Σ_(c in k's group) Correlation(pad(X[n,c], p), kernel(F[k,c]), stride s) + b_k (if the layer has one)."""
    O = _zeros(spec.output_shape)
    for n in range(spec.batch):
        for k in range(spec.out_channels):
            total = _add_maps(
                [correlate(_padded_input(spec, X[n, c]), layer_kernel(spec, F[k, j]), spec.stride)
                 for j, c in enumerate(_channels_of_filter(spec, k))]
            )
            O[n, k] = total + b[k] if spec.bias else total
    return O


def forward_by_the_other_operation(spec: ConvSpec, X: np.ndarray, F: np.ndarray) -> np.ndarray:
    """The layer without bias, by the operation it is not: cross-correlation and true convolution each equal
    the other with the kernel rotated by 180 degrees."""
    other = correlate if spec.flip else convolve
    O = _zeros(spec.output_shape)
    for n, k in np.ndindex(spec.batch, spec.out_channels):
        O[n, k] = _add_maps(
            [
                other(_padded_input(spec, X[n, c]), rot180(dilate(F[k, j], spec.dilation)), spec.stride)
                for j, c in enumerate(_channels_of_filter(spec, k))
            ]
        )
    return O


def grad_weight(spec: ConvSpec, X: np.ndarray, G: np.ndarray) -> np.ndarray:
    """dE/dF[k,c] = Σ_n Correlation(pad(X[n,c], p), dilate(G[n,k], s)), cropped to the effective kernel.

    The correlation is a+k_eff wide, a the leftover; the effective kernel's gradient is its first k_eff rows and
    columns, and a dilated filter's own taps sit every d entries of it (rotated back for true convolution).
    Filter k's channel j is input channel j of k's group.
    """
    eh, ew = spec.effective_kernel
    dh, dw = spec.dilation
    out = _zeros(spec.weight_shape)
    for k in range(spec.out_channels):
        for j, c in enumerate(_channels_of_filter(spec, k)):
            full = _add_maps(
                [correlate(_padded_input(spec, X[n, c]), dilate(G[n, k], spec.stride)) for n in range(spec.batch)]
            )
            effective = full[:eh, :ew]
            out[k, j] = (rot180(effective) if spec.flip else effective)[::dh, ::dw]
    return out


def grad_input(spec: ConvSpec, F: np.ndarray, G: np.ndarray) -> np.ndarray:
    """dE/dX[n,c] = Σ_(k reading c) Correlation(pad(dilate(G[n,k], s), k_eff-1-p_begin, k_eff-1-p_end+a),
    rot180(kernel(F[k,c]))).

    This is the textbooks' "full convolution of the output gradient with the filter rotated by 180 degrees";
    for stride > 1 the gradient is first dilated (s-1 zeros between entries), and a negative pad crops. The
    sum runs over the output channels of c's group.
    """
    (bh, ah), (bw, aw) = spec.full_padding
    out = _zeros(spec.input_shape)
    for n in range(spec.batch):
        for c in range(spec.in_channels):
            j = c % spec.group_in_channels
            out[n, c] = _add_maps(
                [
                    correlate(pad(dilate(G[n, k], spec.stride), (bh, bw), (ah, aw)), rot180(layer_kernel(spec, F[k, j])))
                    for k in _filters_of_channel(spec, c)
                ]
            )
    return out


def grad_bias(spec: ConvSpec, G: np.ndarray) -> np.ndarray:
    """dE/db_k = Σ_(n,i,j) G[n,k,i,j]; empty for a layer without bias."""
    out = _zeros((spec.out_channels if spec.bias else 0,))
    for k in range(out.shape[0]):
        out[k] = _total(list(G[:, k].flat))
    return out


def upsample(spec: ConvSpec, G: np.ndarray) -> np.ndarray:
    """The stride-s output gradient as the stride-1 layer's: dilated by s, then a zero rows/columns appended."""
    out = _zeros((spec.batch, spec.out_channels, *spec.with_stride(1).output_size))
    for n in range(spec.batch):
        for k in range(spec.out_channels):
            out[n, k] = pad(dilate(G[n, k], spec.stride), (0, 0), spec.leftover)
    return out
