"""Theorems: a ``GeneralSpec`` -> the identities of ``prove``, each side a SymPy expression of symbolic size.

The derivation side is SymPy's: the forward output written from the definition as a ``Sum`` over ``Indexed``
entries (the padded input as Σ_x X[x]·δ(t, x + p)), and each gradient the chain rule Σ_o dE/dO[o]·∂O[o]/∂θ with
``sympy.diff``, which gives ``KroneckerDelta``s. The closed-form side is written in ``notation``: the
textbook operations, as ``symconv.symbolic.forms`` applies them to one shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import sympy as sp

from .notation import (
    Grid,
    broadcast,
    convolve,
    correlate,
    crop,
    dilate,
    inner,
    pad,
    plus,
    rot180,
    subsample,
    sum_entries,
    tensor,
    total,
)
from .spec import GeneralSpec

__all__ = ["Equation", "Identity", "identities", "derived_tensors", "closed_forms", "IDENTITY_NAMES", "index_names"]

IDENTITY_NAMES = ("forward", "rotated_kernel", "grad_weight", "grad_input", "grad_bias", "upsample_then_stride_one",
                  "adjoint_input", "adjoint_weight")


@dataclass(frozen=True)
class Equation:
    """tensor[entry] = closed.at(spatial part of entry) for every entry inside ``ranges``."""

    tensor: str
    entry: tuple[sp.Symbol, ...]
    ranges: tuple[sp.Expr, ...]
    derived: sp.Expr
    closed: Grid

    @property
    def spatial(self) -> tuple[sp.Symbol, ...]:
        return self.entry[len(self.entry) - self.closed.axes:] if self.closed.axes else ()

    @property
    def extent(self) -> tuple[sp.Expr, ...]:
        """The derived tensor's spatial extent, which the closed form's must equal."""
        return self.ranges[len(self.ranges) - self.closed.axes:] if self.closed.axes else ()


@dataclass(frozen=True)
class Identity:
    name: str
    statement: str
    equations: tuple[Equation, ...]


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True)


def _axis_syms(spec: GeneralSpec, letter: str) -> tuple[sp.Symbol, ...]:
    return tuple(_sym(f"{letter}_{a.name}" if a.name else letter) for a in spec.axes)


def index_names(spec: GeneralSpec) -> dict[str, tuple[str, ...]]:
    """How bound variables are named after the tensor index they stand for: X[b, c, x], F[f, c, m], G[b, f, o]
    (X[b, g, c, x], F[g, f, c, m], G[b, g, f, o] and B[g, f] in a grouped layer)."""
    spatial = {t: tuple(s.name for s in _axis_syms(spec, letter)) for t, letter in (("X", "x"), ("F", "m"), ("G", "o"))}
    if spec.counts is None:
        return {**spatial, "B": ("f",)}
    g = _group(spec, "g")
    return {"X": ("b", *g, "c") + spatial["X"], "F": (*g, "f", "c") + spatial["F"], "G": ("b", *g, "f") + spatial["G"],
            "B": (*g, "f")}


def _tensors(spec: GeneralSpec):
    """Indexed bases and how to index them with (image, group, in-channel, out-channel) prefixes; the group
    index is dropped in a dense layer, every prefix in the one-channel case."""
    X, F, G, B = (sp.IndexedBase(n) for n in "XFGB")
    if spec.counts is None:
        return (lambda b, g, c, x: X[tuple(x)], lambda g, f, c, m: F[tuple(m)], lambda b, g, f, o: G[tuple(o)],
                lambda g, f: B[0])
    return (lambda b, g, c, x: X[(b, *_group(spec, g), c) + tuple(x)],
            lambda g, f, c, m: F[(*_group(spec, g), f, c) + tuple(m)],
            lambda b, g, f, o: G[(b, *_group(spec, g), f) + tuple(o)], lambda g, f: B[_group(spec, g) + (f,)])


def _counts(spec: GeneralSpec) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
    return spec.counts if spec.counts is not None else (sp.S.One,) * 3


def _group(spec: GeneralSpec, g: Any) -> tuple[Any, ...]:
    """The group index of a tensor's entry: (g,) in a grouped layer, none in a dense one."""
    return (g,) if spec.groups is not None else ()


def _group_sum(spec: GeneralSpec, g: sp.Symbol) -> tuple[tuple[sp.Expr, ...], ...]:
    """The limits of a sum over the groups: none in a dense layer."""
    return ((g, 0, spec.groups - 1),) if spec.groups is not None else ()


def _channel_sum(spec: GeneralSpec, body: sp.Expr, *limits) -> sp.Expr:
    return sp.Sum(body, *limits) if spec.counts is not None else body


def forward_output(spec: GeneralSpec, b: sp.Expr, g: sp.Expr, f: sp.Expr, o: tuple[sp.Expr, ...],
                   bias: bool = True) -> sp.Expr:
    """O[b, (g,) f, o] from the definition: Σ_c Σ_m Σ_x F[f, c, m] X[b, c, x] Π δ(tap(o, m), x + p) (+ B[f]),
    the channels c those of group g in a grouped layer.

    The tap of output o and kernel entry m reads the padded input at s·o + d·m, or at s·o + k_eff - 1 - d·m
    for true convolution (the kernel walks from its far end)."""
    Xt, Ft, _, Bt = _tensors(spec)
    N, C, K = _counts(spec)
    c, m, x = _sym("c0"), _axis_syms(spec, "m0"), _axis_syms(spec, "x0")
    taps = []
    for ax, oi, mi, xi in zip(spec.axes, o, m, x):
        tap = ax.s * oi + (ax.k_eff - 1 - ax.d * mi if spec.flip else ax.d * mi)
        taps.append(sp.KroneckerDelta(tap, xi + ax.p))
    body = Ft(g, f, c, m) * Xt(b, g, c, x) * sp.Mul(*taps)
    limits = [(mi, 0, ax.k - 1) for mi, ax in zip(m, spec.axes)] + [(xi, 0, ax.n - 1) for xi, ax in zip(x, spec.axes)]
    linear = sp.Sum(body, *limits)
    linear = sp.Sum(linear, (c, 0, C - 1)) if spec.counts is not None else linear.xreplace({c: 0})
    return linear + Bt(g, f) if bias else linear


def derived_tensors(spec: GeneralSpec) -> dict[str, Equation]:
    """The derivation side of each tensor, with its entry symbols and ranges (closed form left empty)."""
    Xt, Ft, Gt, Bt = _tensors(spec)
    N, C, K = _counts(spec)
    b, g, c, f = _sym("b"), _sym("g"), _sym("c"), _sym("f")
    i, j, o = _axis_syms(spec, "i"), _axis_syms(spec, "j"), _axis_syms(spec, "o")
    b0, g0, f0, o0 = _sym("b0"), _sym("g0"), _sym("f0"), _axis_syms(spec, "o0")
    if spec.counts is None:
        b = c = f = b0 = f0 = sp.S.Zero
    if spec.groups is None:
        g = g0 = sp.S.Zero
    O = forward_output(spec, b0, g0, f0, o0)
    outputs = [(oi, 0, ax.q) for oi, ax in zip(o0, spec.axes)]

    def chain(theta: sp.Indexed) -> sp.Expr:
        body = sp.Sum(Gt(b0, g0, f0, o0) * sp.diff(O, theta), *outputs)
        return _channel_sum(spec, body, (f0, 0, K - 1), *_group_sum(spec, g0), (b0, 0, N - 1))

    def entry(*head: sp.Expr) -> tuple[sp.Symbol, ...]:
        return tuple(h for h in head if isinstance(h, sp.Symbol))

    def counted(*counts: sp.Expr) -> tuple[sp.Expr, ...]:
        return tuple(n for n in counts if n is not None) if spec.counts is not None else ()

    G = spec.groups
    empty = Grid((), (), sp.S.Zero)
    return {
        "output": Equation("output", entry(b, g, f) + o, counted(N, G, K) + spec.outputs.items,
                           forward_output(spec, b, g, f, o), empty),
        "grad_input": Equation("grad_input", entry(b, g, c) + i, counted(N, G, C) + spec.n.items,
                               chain(Xt(b, g, c, i)), empty),
        "grad_weight": Equation("grad_weight", entry(g, f, c) + j, counted(G, K, C) + spec.k.items,
                                chain(Ft(g, f, c, j)), empty),
        "grad_bias": Equation("grad_bias", entry(g, f), counted(G, K), chain(Bt(g, f)), empty),
    }


def closed_forms(spec: GeneralSpec, stride_one: bool = False) -> dict[str, Grid]:
    """The textbook closed forms (``forms``) for symbolic sizes; ``stride_one``: the stride-1 backward of the
    upsampled output gradient."""
    N, C, K = _counts(spec)
    b, c, f = (_sym(v) for v in "bcf") if spec.counts is not None else (sp.S.Zero,) * 3
    gs = _group(spec, _sym("g"))
    prefix = (lambda *ix: ix) if spec.counts is not None else (lambda *ix: ())
    X = tensor("X", spec.n, prefix(b, *gs, c))
    F = tensor("F", spec.k, prefix(*gs, f, c))
    G = tensor("G", spec.outputs, prefix(b, *gs, f), tex=r"\frac{\partial E}{\partial O%s}" % (
        ("_{b,g,f}" if gs else "_{b,f}") if spec.counts is not None else ""))
    sum_c = (lambda g: total(g, (c, 0, C - 1))) if spec.counts is not None else (lambda g: g)
    sum_f = (lambda g: total(g, (f, 0, K - 1))) if spec.counts is not None else (lambda g: g)
    sum_b = (lambda g: total(g, (b, 0, N - 1))) if spec.counts is not None else (lambda g: g)
    e, p, pe, s, d, a = spec.k_eff, spec.p, spec.p_end, spec.s, spec.d, spec.a

    kernel = rot180(dilate(F, d)) if spec.flip else dilate(F, d)
    linear = sum_c(correlate(pad(X, p, pe), kernel, s))
    other = (correlate if spec.flip else convolve)(pad(X, p, pe), rot180(dilate(F, d)), s)
    bias = broadcast(sp.IndexedBase("B")[gs + (f,)], linear.extent, len(spec.axes))
    if stride_one:
        G = pad(dilate(G, s), 0, a)
        s, a = 1, 0
    full = crop(correlate(pad(X, p, pe), dilate(G, s)), e)
    grad_weight = sum_b(subsample(rot180(full) if spec.flip else full, d))
    grad_input = sum_f(correlate(pad(dilate(G, s), e - 1 - p, e - 1 - pe + a), rot180(kernel)))
    return {
        "output": plus(linear, bias),
        "linear": linear,
        "other": sum_c(other),
        "grad_weight": grad_weight,
        "grad_input": grad_input,
        "grad_bias": sum_b(sum_entries(G)),
    }


def _adjoint(spec: GeneralSpec, wrt: str, closed: Grid) -> Equation:
    """<conv(X), Y> = <θ, conv^T_θ(Y)>: the left side from the definition, the right from the closed form."""
    _, _, Gt, _ = _tensors(spec)
    N, C, K = _counts(spec)
    b0, g0, f0, o0 = _sym("b0"), _sym("g0"), _sym("f0"), _axis_syms(spec, "o0")
    if spec.counts is None:
        b0 = f0 = sp.S.Zero
    if spec.groups is None:
        g0 = sp.S.Zero
    lhs = sp.Sum(forward_output(spec, b0, g0, f0, o0, bias=False) * Gt(b0, g0, f0, o0),
                 *((oi, 0, ax.q) for oi, ax in zip(o0, spec.axes)))
    lhs = _channel_sum(spec, lhs, (f0, 0, K - 1), *_group_sum(spec, g0), (b0, 0, N - 1))
    b, g, c, f = (_sym(v) for v in "bgcf")
    gs = _group(spec, g)
    theta = tensor("X", spec.n, (b, *gs, c)) if wrt == "input" else tensor("F", spec.k, (*gs, f, c))
    if spec.counts is None:
        theta = tensor("X", spec.n) if wrt == "input" else tensor("F", spec.k)
        rhs = inner(theta, closed)
    else:
        first = (b, 0, N - 1) if wrt == "input" else (f, 0, K - 1)
        rhs = total(inner(theta, closed), first, *_group_sum(spec, g), (c, 0, C - 1))
    return Equation(f"<conv, dE/dO> = <{'X' if wrt == 'input' else 'F'}, ...>", (), (), lhs, rhs)


def identities(spec: GeneralSpec) -> tuple[Identity, ...]:
    """The identities ``prove(spec)`` proves per shape, stated for the sizes of ``spec``."""
    derived = derived_tensors(spec)
    closed, one = closed_forms(spec), closed_forms(spec, stride_one=True)

    def eq(name: str, grid: Grid, tensor_name: Optional[str] = None) -> Equation:
        base = derived[name]
        return Equation(tensor_name or name, base.entry, base.ranges, base.derived, grid)

    out = derived["output"]
    heads = out.entry[:len(out.entry) - len(spec.axes)]  # (b, f), (b, g, f) or none
    entry_b, entry_f = (heads[0], heads[-1]) if heads else (sp.S.Zero, sp.S.Zero)
    entry_g = heads[1] if spec.groups is not None else sp.S.Zero
    linear = Equation("output - b", out.entry, out.ranges,
                      forward_output(spec, entry_b, entry_g, entry_f, out.entry[len(out.entry) - len(spec.axes):],
                                     bias=False),
                      closed["other"])
    other = "cross-correlation" if spec.flip else "true convolution"
    pads, end = ("p, p'", "p'") if spec.per_side else ("p", "p")  # p' the padding after the input
    return (
        Identity("forward", f"O = Correlation(pad(X, {pads}), dilate(F, d), stride s) + b, summed over input channels",
                 (eq("output", closed["output"]),)),
        Identity("rotated_kernel", f"the layer's output equals {other} with the kernel rotated by 180 degrees (plus b)",
                 (linear,)),
        Identity("grad_weight", f"dE/dF = Correlation(pad(X, {pads}), dilate(dE/dO, s)) cropped to the kernel, summed over the batch",
                 (eq("grad_weight", closed["grad_weight"]),)),
        Identity("grad_input", f"dE/dX = full convolution: Correlation(pad(dilate(dE/dO, s), k-1-p, k-1-{end}+a), rot180(F)), summed over filters",
                 (eq("grad_input", closed["grad_input"]),)),
        Identity("grad_bias", "dE/db = sum of dE/dO over batch and space", (eq("grad_bias", closed["grad_bias"]),)),
        Identity("upsample_then_stride_one",
                 "stride-s backward = upsample dE/dO (dilate by s, append a zeros), then stride-1 backward",
                 (eq("grad_input", one["grad_input"]), eq("grad_weight", one["grad_weight"]))),
        Identity("adjoint_input", "<conv(X), Y> = <X, conv^T(Y)> with conv^T the full convolution",
                 (_adjoint(spec, "input", closed["grad_input"]),)),
        Identity("adjoint_weight", "<conv(F), Y> = <F, Correlation(X, dilate(Y))>",
                 (_adjoint(spec, "weight", closed["grad_weight"]),)),
    )
