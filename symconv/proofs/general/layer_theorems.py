"""Layer theorems: a ``GeneralLayer`` -> its identities (ReLU, max and average pooling, dense, MSE) for symbolic sizes.

As for the convolution, the derivation side is SymPy's: the forward pass as a ``Sum`` over ``Indexed`` entries
and ``sympy.diff`` of E = <Y, dE/dY>. ReLU's derivative comes out of SymPy as ``Heaviside(X[e])``: it is read as
the mask P[e] = [X[e] > 0], the derivative PyTorch takes (0 at 0; ``prove_layer`` proves that scalar fact on the
whole real line). Max pooling is proved on every region at once: the winner of window o is the choice
``R(b, c, o)`` (``GeneralLayer.choice``), so Y[o] = X[s·o - p + R(o)] is the forward pass on the region
where that cell wins, whatever the winners are. The average's 1/(k_h k_w) is a coefficient of the guarded sums,
compared exactly as a rational function of the window sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp

from .layer_spec import GeneralLayer
from .notation import Grid, correlate, dilate, inner, inside, pad, tensor, total
from .theorems import Equation, Identity

__all__ = ["label", "layer_identities", "LAYER_IDENTITIES", "operands", "box", "scale", "masked", "route", "derived_layer",
           "Operands"]

LAYER_IDENTITIES = {
    "relu": ("grad_input",),
    "maxpool": ("grad_input", "grad_total", "adjoint_input"),
    "avgpool": ("forward", "grad_input", "adjoint_input"),
    "dense": ("grad_input", "grad_weight", "grad_bias", "adjoint_input"),
    "mse": ("grad_input",),
    "crossentropy": ("grad_input",),
}


def _sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, integer=True)


def _axis_syms(spec: GeneralLayer, letter: str) -> tuple[sp.Symbol, ...]:
    return tuple(_sym(f"{letter}_{a.name}" if a.name else letter) for a in spec.axes)


@dataclass(frozen=True)
class Operands:
    """The maps of one image b and channel c (free symbols ``b``, ``c``) for closed forms of one's own:
    X, G (= dE/dY) and, for ReLU, the mask P = [X > 0]."""

    X: Grid
    G: Grid
    P: Grid
    b: sp.Symbol
    c: sp.Symbol


def operands(spec: GeneralLayer) -> Operands:
    """The maps a ReLU or pooling closed form is written over (``notation`` applies to them)."""
    b, c = _sym("b"), _sym("c")
    X = tensor("X", spec.spatial("X"), (b, c))
    G = tensor("G", spec.spatial("G"), (b, c), tex=r"\frac{\partial E}{\partial Y_{b,c}}")
    P = tensor("P", spec.spatial("X"), (b, c), tex=r"[X_{b,c} > 0]")
    return Operands(X, G, P, b, c)


def box(extent: tuple[sp.Expr, ...]) -> Grid:
    """The map of ones inside ``extent``: the averaging window (before the 1/(k_h k_w))."""
    index = tuple(sp.Symbol(f"t0_{a}", integer=True) for a in range(len(extent)))
    return Grid(index, tuple(extent), inside(index, extent, 0), (), 0, r"\mathbf{1}")


def scale(a: Grid, factor: sp.Expr) -> Grid:
    """Every entry times ``factor`` (a rational function of the sizes)."""
    return Grid(a.index, a.extent, factor * a.body, a.floors, a.depth, rf"{sp.latex(factor)}\,{a.tex}")


def masked(a: Grid, mask: Grid) -> Grid:
    """The entrywise product a ⊙ mask (same extent)."""
    if a.extent != mask.extent:
        raise ValueError(f"maps of extents {a.extent} and {mask.extent} multiplied")
    return Grid(a.index, a.extent, a.body * mask.at(*a.index), a.floors + mask.floors, max(a.depth, mask.depth) + 1,
                rf"{a.tex} \odot {mask.tex}")


def route(spec: GeneralLayer, b: sp.Expr, c: sp.Expr, cell: Callable[..., tuple[sp.Expr, ...]] | None = None,
          in_window: bool = True) -> Grid:
    """Max pooling's input gradient gathered: entry i is Σ_o dE/dY[o]·[window o holds i]·[i is o's winner].

    ``cell(o, R)`` gives the winner's input index per axis (default s·o - p + R(o)); ``in_window=False`` leaves
    the window bracket out (it follows from the choice's facts)."""
    G = sp.IndexedBase("G")
    depth = 1
    index = tuple(sp.Symbol(f"t{depth}_{a}", integer=True) for a in range(len(spec.axes)))
    o = tuple(sp.Symbol(f"o{depth}_{a}", integer=True) for a in range(len(spec.axes)))
    R = tuple(spec.choice(w, b, c, o) for w in spec.windows)
    winner = cell(o, R) if cell is not None else tuple(w.s * oi - w.p + r for w, oi, r in zip(spec.windows, o, R))
    body = G[(b, c) + o] * sp.Mul(*(sp.KroneckerDelta(i, x) for i, x in zip(index, winner)))
    if in_window:
        starts = [w.s * oi - w.p for w, oi in zip(spec.windows, o)]
        ends = [st + w.k for st, w in zip(starts, spec.windows)]
        body *= inside(index, ends, depth + 1, starts)
    body *= inside(index, spec.spatial("X"), depth + 2)
    sums = sp.Sum(body, *((oi, 0, w.q) for oi, w in zip(o, spec.windows)))
    return Grid(index, spec.spatial("X"), sums, (), depth + 2, r"\operatorname{route}_{R}\left(\frac{\partial E}{\partial Y_{b,c}}\right)")


def _pool_forward(spec: GeneralLayer, b: sp.Expr, c: sp.Expr, o: tuple[sp.Expr, ...]) -> sp.Expr:
    """Y[b, c, o]: the winner's entry (max) or the window's sum over k_h k_w, padded cells counted (average)."""
    X = sp.IndexedBase("X")
    if spec.kind == "maxpool":
        return X[(b, c) + tuple(w.s * oi - w.p + spec.choice(w, b, c, o) for w, oi in zip(spec.windows, o))]
    m, x = _axis_syms(spec, "m0"), _axis_syms(spec, "x0")
    taps = sp.Mul(*(sp.KroneckerDelta(w.s * oi + mi, xi + w.p) for w, oi, mi, xi in zip(spec.windows, o, m, x)))
    limits = [(mi, 0, w.k - 1) for mi, w in zip(m, spec.windows)] + [(xi, 0, w.n - 1) for xi, w in zip(x, spec.windows)]
    return sp.Sum(X[(b, c) + x] * taps, *limits) / sp.Mul(*(w.k for w in spec.windows))


def derived_layer(spec: GeneralLayer) -> dict[str, Equation]:
    """The derivation side of each tensor, with its entry symbols and ranges (closed form left empty)."""
    empty = Grid((), (), sp.S.Zero)
    if spec.kind == "dense":
        X, W, B, G = (sp.IndexedBase(t) for t in "XWBG")
        N, I, O = spec.counts
        n, i, o, n0, i0, o0 = (_sym(v) for v in ("n", "i", "o", "n0", "i0", "o0"))
        Y = sp.Sum(W[o0, i0] * X[n0, i0], (i0, 0, I - 1)) + B[o0]
        E = sp.Sum(G[n0, o0] * Y, (o0, 0, O - 1), (n0, 0, N - 1))
        return {"grad_input": Equation("grad_input", (n, i), (N, I), sp.diff(E, X[n, i]), empty),
                "grad_weight": Equation("grad_weight", (o, i), (O, I), sp.diff(E, W[o, i]), empty),
                "grad_bias": Equation("grad_bias", (o,), (O,), sp.diff(E, B[o]), empty)}
    if spec.kind == "mse":
        Yb, T = sp.IndexedBase("Y"), sp.IndexedBase("T")
        N, M = spec.counts
        n, m, n0, m0 = (_sym(v) for v in ("n", "m", "n0", "m0"))
        E = sp.Sum((T[n0, m0] - Yb[n0, m0]) ** 2, (m0, 0, M - 1), (n0, 0, N - 1)) / 2
        return {"grad_input": Equation("grad_input", (n, m), (N, M), sp.diff(E, Yb[n, m]), empty)}
    if spec.kind == "crossentropy":
        return {"grad_input": Equation("grad_input", (_sym("n"), _sym("m")), tuple(spec.counts),
                                       _cross_entropy_derivative(spec), empty)}
    X, G, P = (sp.IndexedBase(t) for t in "XGP")
    N, C = spec.counts
    b, c, b0, c0 = (_sym(v) for v in ("b", "c", "b0", "c0"))
    i, o0 = _axis_syms(spec, "i"), _axis_syms(spec, "o0")
    channels = ((c0, 0, C - 1), (b0, 0, N - 1))
    if spec.kind == "relu":
        E = sp.Sum(G[(b0, c0) + o0] * sp.Max(0, X[(b0, c0) + o0]), *((oi, 0, a.n - 1) for oi, a in zip(o0, spec.axes)),
                   *channels)
        # SymPy's d max(0, x)/dx is Heaviside(x): the mask [x > 0] (PyTorch's value 0 at x = 0).
        derived = sp.diff(E, X[(b, c) + i]).replace(lambda e: isinstance(e, sp.Heaviside),
                                                     lambda e: P[e.args[0].indices])
        return {"grad_input": Equation("grad_input", (b, c) + i, (N, C) + spec.spatial("X"), derived, empty)}
    E = sp.Sum(G[(b0, c0) + o0] * _pool_forward(spec, b0, c0, o0), *((oi, 0, w.q) for oi, w in zip(o0, spec.windows)),
               *channels)
    o = _axis_syms(spec, "o")
    return {"output": Equation("output", (b, c) + o, (N, C) + spec.spatial("G"), _pool_forward(spec, b, c, o), empty),
            "grad_input": Equation("grad_input", (b, c) + i, (N, C) + spec.spatial("X"), sp.diff(E, X[(b, c) + i]),
                                   empty)}


def label(n: sp.Expr) -> sp.Expr:
    """The class label of image n: a choice (one of the M classes, ``GeneralLayer.facts``)."""
    return sp.Function("t")(n)


def _softmax_atoms(expr: sp.Expr) -> sp.Expr:
    """exp(Z[e]) as the atom expZ[e] and 1/Σ_k exp(Z[n, k]) as invS[n]: the same functions of the logits on
    both sides, so an identity of the atoms is one of the functions (the atoms forget only how they relate)."""
    Z, expZ, invS = sp.IndexedBase("Z"), sp.IndexedBase("expZ"), sp.IndexedBase("invS")

    def normaliser(e: sp.Basic) -> bool:
        if not (isinstance(e, sp.Pow) and e.exp == -1 and isinstance(e.base, sp.Sum)):
            return False
        body, (k, _, _) = e.base.function, e.base.limits[0]
        return isinstance(body, sp.exp) and isinstance(body.args[0], sp.Indexed) and body.args[0].base == Z \
            and len(e.base.limits) == 1 and body.args[0].indices[1] == k and not body.args[0].indices[0].has(k)

    expr = expr.replace(normaliser, lambda e: invS[e.base.function.args[0].indices[0]])
    return expr.replace(lambda e: isinstance(e, sp.exp) and isinstance(e.args[0], sp.Indexed),
                        lambda e: expZ[e.args[0].indices])


def _cross_entropy_derivative(spec: GeneralLayer) -> sp.Expr:
    """SymPy's dE/dZ[n, m] of E = 1/N Σ_n (log Σ_k exp Z[n, k] - Z[n, t(n)]), softmax's functions as atoms."""
    Z = sp.IndexedBase("Z")
    N, M = spec.counts
    n0, k0 = _sym("n0"), _sym("k0")
    E = sp.Sum(sp.log(sp.Sum(sp.exp(Z[n0, k0]), (k0, 0, M - 1))) - Z[n0, label(n0)], (n0, 0, N - 1)) / N
    return _softmax_atoms(sp.diff(E, Z[_sym("n"), _sym("m")]))


def _closed(spec: GeneralLayer) -> dict[str, Grid]:
    """The textbook closed forms."""
    if spec.kind == "dense":
        X, W, G = (sp.IndexedBase(t) for t in "XWG")
        N, I, O = spec.counts
        n, i, o, v = (_sym(x) for x in ("n", "i", "o", "v1"))
        return {"grad_input": Grid((), (), sp.Sum(G[n, v] * W[v, i], (v, 0, O - 1)), tex="(G W)_{n,i}"),
                "grad_weight": Grid((), (), sp.Sum(G[v, o] * X[v, i], (v, 0, N - 1)), tex="(G^T X)_{o,i}"),
                "grad_bias": Grid((), (), sp.Sum(G[v, o], (v, 0, N - 1)), tex=r"\sum_n G_{n,o}")}
    if spec.kind == "crossentropy":
        n, m, N = _sym("n"), _sym("m"), spec.counts[0]
        softmax = sp.IndexedBase("expZ")[n, m] * sp.IndexedBase("invS")[n]
        return {"grad_input": Grid((), (), (softmax - sp.KroneckerDelta(m, label(n))) / N,
                                   tex=r"\frac{1}{N}\left(\operatorname{softmax}(Z)_{n,m} - [m = t_n]\right)")}
    if spec.kind == "mse":
        n, m = _sym("n"), _sym("m")
        return {"grad_input": Grid((), (), sp.IndexedBase("Y")[n, m] - sp.IndexedBase("T")[n, m], tex="Y - T")}
    ops = operands(spec)
    if spec.kind == "relu":
        return {"grad_input": masked(ops.G, ops.P)}
    if spec.kind == "maxpool":
        return {"grad_input": route(spec, ops.b, ops.c)}
    k, p, s, a = (tuple(getattr(w, f) for w in spec.windows) for f in ("k", "p", "s", "a"))
    mean = 1 / sp.Mul(*k)
    full = pad(dilate(ops.G, s), tuple(ki - 1 - pi for ki, pi in zip(k, p)),
               tuple(ki - 1 - pi + ai for ki, pi, ai in zip(k, p, a)))
    return {"output": scale(correlate(pad(ops.X, p, p), box(k), s), mean),
            "grad_input": scale(correlate(full, box(k)), mean)}


def _adjoint(spec: GeneralLayer, closed: Grid) -> Equation:
    """<Y(X), G> = <X, the closed-form input gradient>: the left side from the definition."""
    if spec.kind == "dense":
        X, W, G = (sp.IndexedBase(t) for t in "XWG")
        N, I, O = spec.counts
        n0, i0, o0, n, i = (_sym(v) for v in ("n0", "i0", "o0", "n", "i"))
        lhs = sp.Sum(G[n0, o0] * sp.Sum(W[o0, i0] * X[n0, i0], (i0, 0, I - 1)), (o0, 0, O - 1), (n0, 0, N - 1))
        rhs = Grid((), (), sp.Sum(X[n, i] * closed.body, (i, 0, I - 1), (n, 0, N - 1)), tex=r"\langle X, G W\rangle")
        return Equation("<Y, dE/dY> = <X, dE/dX>", (), (), lhs, rhs)
    G = sp.IndexedBase("G")
    N, C = spec.counts
    b0, c0 = _sym("b0"), _sym("c0")
    o0 = _axis_syms(spec, "o0")
    y = _pool_forward(spec, b0, c0, o0)
    lhs = sp.Sum(G[(b0, c0) + o0] * y, *((oi, 0, w.q) for oi, w in zip(o0, spec.windows)), (c0, 0, C - 1),
                 (b0, 0, N - 1))
    ops = operands(spec)
    rhs = total(inner(ops.X, closed), (ops.b, 0, N - 1), (ops.c, 0, C - 1))
    return Equation("<Y, dE/dY> = <X, dE/dX>", (), (), lhs, rhs)


def _grad_total(spec: GeneralLayer, derived: Equation) -> Equation:
    """Σ_i dE/dX[b, c, i] = Σ_o dE/dY[b, c, o]: each window passes its gradient on once, to one real cell."""
    G = sp.IndexedBase("G")
    spatial = derived.entry[2:]
    summed = sp.Sum(derived.derived, *((i, 0, n - 1) for i, n in zip(spatial, spec.spatial("X"))))
    b, c = derived.entry[:2]
    o = _axis_syms(spec, "o1")
    closed = Grid((), (), sp.Sum(G[(b, c) + o], *((oi, 0, w.q) for oi, w in zip(o, spec.windows))),
                  tex=r"\sum_o \frac{\partial E}{\partial Y_{b,c,o}}")
    return Equation("sum of dE/dX", (b, c), tuple(spec.counts), summed, closed)


STATEMENTS = {
    ("relu", "grad_input"): "dE/dX = dE/dY * [X > 0] (the mask of the pre-activation's sign), entrywise",
    ("maxpool", "grad_input"): "dE/dX[i] = sum over the windows o that hold i and whose winner R(o) is i of dE/dY[o], "
                               "for every choice of winners",
    ("maxpool", "grad_total"): "sum of dE/dX = sum of dE/dY over each image and channel: every window routes its "
                               "gradient to exactly one real cell",
    ("maxpool", "adjoint_input"): "<maxpool_R(X), dE/dY> = <X, route_R(dE/dY)> for every choice of winners R",
    ("avgpool", "forward"): "Y = Correlation(pad(X, p), ones(k), stride s) / (k_h k_w), padded cells counted",
    ("avgpool", "grad_input"): "dE/dX = Correlation(pad(dilate(dE/dY, s), k-1-p, k-1-p+a), ones(k)) / (k_h k_w)",
    ("avgpool", "adjoint_input"): "<avgpool(X), dE/dY> = <X, the full correlation with ones(k) / (k_h k_w)>",
    ("dense", "grad_input"): "dE/dX = dE/dY W",
    ("dense", "grad_weight"): "dE/dW = dE/dY^T X",
    ("dense", "grad_bias"): "dE/db = sum of dE/dY over the batch",
    ("dense", "adjoint_input"): "<W X, dE/dY> = <X, dE/dY W>",
    ("mse", "grad_input"): "E = 1/2 sum (T - Y)^2: dE/dY = Y - T",
    ("crossentropy", "grad_input"): "E = 1/N sum_n (log sum_k exp Z[n, k] - Z[n, t(n)]): dE/dZ = (softmax(Z) - "
                                    "onehot(t)) / N, for every choice of labels t",
}


def layer_identities(spec: GeneralLayer) -> tuple[Identity, ...]:
    """The identities of ``spec``'s layer, stated for its sizes."""
    derived, closed = derived_layer(spec), _closed(spec)
    out = []
    for name in LAYER_IDENTITIES[spec.kind]:
        statement = STATEMENTS[(spec.kind, name)]
        if name == "adjoint_input":
            eq = _adjoint(spec, closed["grad_input"])
        elif name == "grad_total":
            eq = _grad_total(spec, derived["grad_input"])
        else:
            key = "output" if name == "forward" else name
            base = derived[key]
            eq = Equation(base.tensor, base.entry, base.ranges, base.derived, closed[key])
        out.append(Identity(name, statement, (eq,)))
    return tuple(out)
