"""Network LaTeX: a ``Network`` -> an ``align*`` block of every layer's equation and the backward chain (sympy.latex).

Notation (the article's): a^{[0]} = X is the input, a^{[l]} the output of layer l = 1, 2, ...; its parameters are
F^{[l]} (convolution), W^{[l]} (dense) and b^{[l]}; delta^{[l]} = dE/da^{[l]}. Indices are 0-based, an entry
outside a tensor (padding, or between the strides of a gradient) is 0 and a padded cell of max pooling is -inf.
"""

from __future__ import annotations

from functools import singledispatch
from typing import TYPE_CHECKING

import sympy as sp

from ..symbolic.layers import AvgPool2d, Conv2d, Dense, Flatten, Layer, MaxPool2d, ReLU
from ..symbolic.losses import CrossEntropyLoss, Loss, MSELoss
from ..symbolic.spec import ConvSpec
from ..symbolic.transpose import ConvTransposeSpec
from ..symbolic.transpose_layer import ConvTranspose2d

if TYPE_CHECKING:  # network.py does not import this module, but keeping the import lazy costs nothing
    from ..symbolic.network import Network

__all__ = ["network_latex", "transpose_equations"]

n, c, k, i, j, r, s, u, v, m, o = sp.symbols("n c k i j r s u v m o", integer=True)
Shape = tuple[int, ...]


def _a(l: int) -> sp.IndexedBase:
    return sp.IndexedBase("X" if l == 0 else f"a^{{[{l}]}}")


def _delta(l: int) -> sp.IndexedBase:
    return sp.IndexedBase(f"\\delta^{{[{l}]}}")


def _p(letter: str, l: int) -> sp.IndexedBase:
    return sp.IndexedBase(f"{letter}^{{[{l}]}}")


def _tex(lhs: sp.Expr, rhs: sp.Expr, note: str = "") -> str:
    return f"{sp.latex(lhs)} &= {sp.latex(rhs)}" + (f" && \\text{{{note}}}" if note else "")


def _sum(expr: sp.Expr, *ranges: tuple[sp.Symbol, int]) -> sp.Expr:
    """A Sum over 0 <= index < extent; extents of 1 need no sum sign."""
    limits = [(x, 0, n_ - 1) for x, n_ in ranges if n_ > 1]
    zeroed = {x: 0 for x, n_ in ranges if n_ == 1}
    return sp.Sum(expr.xreplace(zeroed), *limits) if limits else expr.xreplace(zeroed)


def _window(layer: Conv2d | MaxPool2d | AvgPool2d, shape: Shape, i_: sp.Expr, j_: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """The input row and column that tap (r, s) of output (i, j) reads."""
    if isinstance(layer, Conv2d):
        spec = layer.spec(shape)
        (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.pad_begin, spec.dilation
        R, S = spec.kernel_size
        rr, ss = ((R - 1 - r), (S - 1 - s)) if spec.flip else (r, s)
        return sh * i_ + dh * rr - ph, sw * j_ + dw * ss - pw
    (sh, sw), (ph, pw) = layer.stride, layer.padding  # type: ignore[misc]
    return sh * i_ + r - ph, sw * j_ + s - pw


@singledispatch
def _forward(layer: Layer, l: int, shape: Shape) -> list[str]:
    raise NotImplementedError(type(layer).__name__)


@singledispatch
def _backward(layer: Layer, l: int, shape: Shape) -> list[str]:
    raise NotImplementedError(type(layer).__name__)


@_forward.register
def _(layer: Conv2d, l: int, shape: Shape) -> list[str]:
    spec = layer.spec(shape)
    R, S = spec.kernel_size
    row, col = _window(layer, shape, i, j)
    channel = _group_channel(spec)
    rhs = _sum(_p("F", l)[k, c, r, s] * _a(l - 1)[n, channel, row, col], (c, spec.group_in_channels), (r, R), (s, S))
    return [_tex(_a(l)[n, k, i, j], rhs + _p("b", l)[k] if spec.bias else rhs, layer.describe())]


def _group_channel(spec: ConvSpec) -> sp.Expr:
    """The input channel that channel c of filter k reads: c within k's group, g = floor(k / (K/groups))."""
    if spec.groups == 1:
        return c
    return sp.floor(k / spec.group_out_channels) * spec.group_in_channels + c


@_backward.register
def _(layer: Conv2d, l: int, shape: Shape) -> list[str]:
    spec = layer.spec(shape)
    (R, S), (Ho, Wo), (sh, sw), (ph, pw), (dh, dw) = (
        spec.kernel_size,
        spec.output_size,
        spec.stride,
        spec.pad_begin,
        spec.dilation,
    )
    row, col = _window(layer, shape, i, j)
    d = _delta(l)
    # The input gradient solves row = sh*i + dh*r - ph for i: the full convolution with the rotated filter.
    rr, ss = ((R - 1 - r), (S - 1 - s)) if spec.flip else (r, s)
    back = d[n, k, (u + ph - dh * rr) / sh, (v + pw - dw * ss) / sw]
    return [
        _tex(
            sp.Symbol(f"\\frac{{\\partial E}}{{\\partial F^{{[{l}]}}_{{k,c,r,s}}}}"),
            _sum(d[n, k, i, j] * _a(l - 1)[n, _group_channel(spec), row, col], (n, spec.batch), (i, Ho), (j, Wo)),
        ),
        *([_tex(
            sp.Symbol(f"\\frac{{\\partial E}}{{\\partial b^{{[{l}]}}_{{k}}}}"),
            _sum(d[n, k, i, j], (n, spec.batch), (i, Ho), (j, Wo)),
        )] if spec.bias else []),
        _tex(
            _delta(l - 1)[n, c, u, v],
            _grad_input_sum(spec, _p("F", l), back, R, S),
            "full convolution, rotated filter; non-integer or outside indices give 0"
            + ("; k over the filters of c's group" if spec.groups > 1 else ""),
        ),
    ]


def _grad_input_sum(spec: ConvSpec, F: sp.IndexedBase, back: sp.Expr, R: int, S: int) -> sp.Expr:
    if spec.groups == 1:
        return _sum(F[k, c, r, s] * back, (k, spec.out_channels), (r, R), (s, S))
    # k runs over c's group: k = floor(c / (C/groups)) * (K/groups) + m
    first = sp.floor(c / spec.group_in_channels) * spec.group_out_channels
    term = (F[k, sp.Mod(c, spec.group_in_channels), r, s] * back).xreplace({k: first + m})
    return _sum(term, (m, spec.group_out_channels), (r, R), (s, S))


def transpose_equations(spec: ConvTransposeSpec, l: int) -> dict[str, tuple[sp.Expr, sp.Expr]]:
    """A transposed convolution's spec and layer number -> (lhs, rhs) of its forward pass and its gradients,
    indexed: output a[n, o, u, v], input a[n, c, i, j], weight F[c, m, r, s] (m: the output channel within c's
    group; in the forward pass m runs over the input channels of o's group). Keys "forward", "grad_weight",
    "grad_bias" (with a bias) and "grad_input".

    An input entry i reaches output row u = s i + d r - p through tap r, so the forward reads the input at
    (u + p - d r) / s (0 when it is not an integer or lies outside), and both gradients read dE/da at s i + d r - p:
    the input gradient is a plain strided convolution of delta, the corresponding convolution's forward pass.
    """
    (R, S), (H, W), (Ho, Wo) = spec.kernel_size, spec.input_size, spec.output_size
    (sh, sw), (ph, pw), (dh, dw) = spec.stride, spec.pad_begin, spec.dilation
    per_in, per_out = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    X, F, b, d, dX = _a(l - 1), _p("F", l), _p("b", l), _delta(l), _delta(l - 1)
    # c runs over o's group: c = floor(o / per_out) per_in + m; the weight's second index is o within the group
    first_in = sp.floor(o / per_out) * per_in if spec.groups > 1 else sp.Integer(0)
    within = sp.Mod(o, per_out) if spec.groups > 1 else o
    read = X[n, first_in + m, (u + ph - dh * r) / sh, (v + pw - dw * s) / sw]
    forward = _sum(F[first_in + m, within, r, s] * read, (m, per_in), (r, R), (s, S))
    # the output channel of filter (c, m): m within c's group
    out_channel = sp.floor(c / per_in) * per_out + m if spec.groups > 1 else m
    scattered = d[n, out_channel, sh * i + dh * r - ph, sw * j + dw * s - pw]
    equations = {
        "forward": (_a(l)[n, o, u, v], forward + b[o] if spec.bias else forward),
        "grad_weight": (sp.Symbol(f"\\frac{{\\partial E}}{{\\partial F^{{[{l}]}}_{{c,m,r,s}}}}"),
                        _sum(X[n, c, i, j] * scattered, (n, spec.batch), (i, H), (j, W))),
        "grad_input": (dX[n, c, i, j], _sum(F[c, m, r, s] * scattered, (m, per_out), (r, R), (s, S))),
    }
    if spec.bias:
        equations["grad_bias"] = (sp.Symbol(f"\\frac{{\\partial E}}{{\\partial b^{{[{l}]}}_{{o}}}}"),
                                  _sum(d[n, o, u, v], (n, spec.batch), (u, Ho), (v, Wo)))
    return equations


@_forward.register
def _(layer: ConvTranspose2d, l: int, shape: Shape) -> list[str]:
    spec = layer.spec(shape)
    group = "; c = m within o's group" if spec.groups > 1 else ""
    return [_tex(*transpose_equations(spec, l)["forward"],
                 layer.describe() + ": non-integer or outside indices give 0" + group)]


@_backward.register
def _(layer: ConvTranspose2d, l: int, shape: Shape) -> list[str]:
    equations = transpose_equations(layer.spec(shape), l)
    rows = [_tex(*equations["grad_weight"]), *([_tex(*equations["grad_bias"])] if "grad_bias" in equations else [])]
    return rows + [_tex(*equations["grad_input"], "the corresponding convolution's forward pass; outside indices give 0")]


@_forward.register
def _(layer: ReLU, l: int, shape: Shape) -> list[str]:
    index = (n, c, i, j)[: len(shape)] if len(shape) == 4 else (n, m)
    return [_tex(_a(l)[index], sp.Max(0, _a(l - 1)[index]), "ReLU")]


@_backward.register
def _(layer: ReLU, l: int, shape: Shape) -> list[str]:
    index = (n, c, i, j) if len(shape) == 4 else (n, m)
    rhs = f"{sp.latex(_delta(l)[index])} \\left[{sp.latex(_a(l - 1)[index])} > 0\\right]"
    return [f"{sp.latex(_delta(l - 1)[index])} &= {rhs} && \\text{{derivative 0 at 0: Heaviside}}(x, 0)"]


@_forward.register
def _(layer: MaxPool2d, l: int, shape: Shape) -> list[str]:
    kh, kw = layer.kernel_size  # type: ignore[misc]
    row, col = _window(layer, shape, i, j)
    rhs = f"\\max_{{0 \\le r < {kh},\\ 0 \\le s < {kw}}} {sp.latex(_a(l - 1)[n, c, row, col])}"
    return [f"{sp.latex(_a(l)[n, c, i, j])} &= {rhs} && \\text{{{layer.describe()}, padding $-\\infty$}}"]


@_backward.register
def _(layer: MaxPool2d, l: int, shape: Shape) -> list[str]:
    rhs = f"\\sum_{{(i, j) \\,:\\, w^{{[{l}]}}_{{n,c,i,j}} = (u, v)}} {sp.latex(_delta(l)[n, c, i, j])}"
    return [f"{sp.latex(_delta(l - 1)[n, c, u, v])} &= {rhs} && \\text{{$w$: the window's first maximum, row-major}}"]


@_forward.register
def _(layer: AvgPool2d, l: int, shape: Shape) -> list[str]:
    kh, kw = layer.kernel_size  # type: ignore[misc]
    row, col = _window(layer, shape, i, j)
    rhs = sp.Rational(1, kh * kw) * _sum(_a(l - 1)[n, c, row, col], (r, kh), (s, kw))
    return [_tex(_a(l)[n, c, i, j], rhs, f"{layer.describe()}, padding counted in the divisor")]


@_backward.register
def _(layer: AvgPool2d, l: int, shape: Shape) -> list[str]:
    kh, kw = layer.kernel_size  # type: ignore[misc]
    where = "(i, j) \\,:\\, (u, v) \\in \\text{window}(i, j)"
    rhs = f"\\frac{{1}}{{{kh * kw}}} \\sum_{{{where}}} {sp.latex(_delta(l)[n, c, i, j])}"
    return [f"{sp.latex(_delta(l - 1)[n, c, u, v])} &= {rhs}"]


@_forward.register
def _(layer: Flatten, l: int, shape: Shape) -> list[str]:
    if len(shape) != 4:
        return [_tex(_a(l)[n, m], _a(l - 1)[n, m], "Flatten")]
    H, W = shape[2:]
    return [_tex(_a(l)[n, c * H * W + i * W + j], _a(l - 1)[n, c, i, j], "Flatten, row-major")]


@_backward.register
def _(layer: Flatten, l: int, shape: Shape) -> list[str]:
    if len(shape) != 4:
        return [_tex(_delta(l - 1)[n, m], _delta(l)[n, m])]
    H, W = shape[2:]
    return [_tex(_delta(l - 1)[n, c, i, j], _delta(l)[n, c * H * W + i * W + j])]


@_forward.register
def _(layer: Dense, l: int, shape: Shape) -> list[str]:
    return [
        _tex(_a(l)[n, o], _sum(_p("W", l)[o, m] * _a(l - 1)[n, m], (m, shape[1])) + _p("b", l)[o], layer.describe())
    ]


@_backward.register
def _(layer: Dense, l: int, shape: Shape) -> list[str]:
    N, d = shape[0], _delta(l)
    return [
        _tex(
            sp.Symbol(f"\\frac{{\\partial E}}{{\\partial W^{{[{l}]}}_{{o,m}}}}"),
            _sum(d[n, o] * _a(l - 1)[n, m], (n, N)),
        ),
        _tex(sp.Symbol(f"\\frac{{\\partial E}}{{\\partial b^{{[{l}]}}_{{o}}}}"), _sum(d[n, o], (n, N))),
        _tex(_delta(l - 1)[n, m], _sum(_p("W", l)[o, m] * d[n, o], (o, layer.out_features))),
    ]


def _loss_lines(loss: Loss, L: int, shape: Shape) -> tuple[str, str]:
    y, t = _a(L), sp.IndexedBase("t")
    E = sp.Symbol("E")
    if isinstance(loss, MSELoss):
        forward = _tex(
            E,
            sp.Rational(1, 2)
            * _sum((t[n, o] - y[n, o]) ** 2, (n, shape[0]), (o, shape[1]) if len(shape) > 1 else (o, 1)),
            "MSELoss: half the sum of squares",
        )
        return forward, _tex(_delta(L)[n, o], y[n, o] - t[n, o])
    if isinstance(loss, CrossEntropyLoss):
        N, M = shape
        lse = sp.log(_sum(sp.exp(y[n, k]), (k, M)))
        forward = _tex(E, sp.Rational(1, N) * _sum(lse - y[n, t[n]], (n, N)), "CrossEntropyLoss: mean over the batch")
        backward = _tex(
            _delta(L)[n, k],
            sp.Rational(1, N) * (sp.exp(y[n, k]) / _sum(sp.exp(y[n, m]), (m, M)) - sp.KroneckerDelta(k, t[n])),
        )
        return forward, backward
    raise NotImplementedError(type(loss).__name__)


def network_latex(network: "Network") -> str:
    """The forward equations, then the backward chain from the loss down to the input, as one ``align*`` block.

    >>> from symconv import Network, Dense, ReLU, MSELoss
    >>> text = network_latex(Network([Dense(2), ReLU(), MSELoss()], (1, 3)))
    >>> print(text.splitlines()[2])
    {a^{[1]}}_{n,o} &= {b^{[1]}}_{o} + \\sum_{m=0}^{2} {W^{[1]}}_{o,m} {X}_{n,m} && \\text{Dense(2)} \\\\
    """
    body, L = network.body, len(network.body)
    lines = ["\\intertext{Forward}"]
    for index, layer in enumerate(body):
        lines += _forward(layer, index + 1, network.shapes[index])
    loss_forward, loss_backward = _loss_lines(network.loss, L, network.shapes[-1])
    lines += [
        loss_forward,
        "\\intertext{Backward, with $\\delta^{[l]} = \\partial E / \\partial a^{[l]}$}",
        loss_backward,
    ]
    for index in reversed(range(L)):
        lines += _backward(body[index], index + 1, network.shapes[index])
    rows = [line if line.startswith("\\intertext") else line + " \\\\" for line in lines]
    return "\\begin{align*}\n" + "\n".join(rows) + "\n\\end{align*}"
