"""Layer proofs: a layer or loss and an input shape -> a ``LayerProofReport``: its backward is SymPy's derivative.

ReLU and max pooling are piecewise: their derivatives are proved on a *region*, an open set where the branch (which
inputs are positive, which unit wins each window) is fixed and the layer is a polynomial. Two kinds of proof:

* ``grad_*``: on the region of a seeded exact rational point, SymPy's derivative of E = <forward_on(x), G> by every
  input and parameter entry equals ``backward`` exactly (the expanded difference is 0). Since the branch's
  polynomial equals the layer on the whole open region, the derivatives agree on all of it, not just at the point.
* the piecewise derivative itself: SymPy differentiates ``Max`` to ``Heaviside``; ``piecewise_at_point`` evaluates
  that at the point, and ``relu_*``/``max_routing`` prove it on every region symbolically, by parametrizing the
  region with positive symbols (x = d > 0; x_w = t, x_j = t - d_j) so that SymPy itself decides every sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Mapping, Optional

import numpy as np
import sympy as sp

from ..symbolic.exact import is_zero, reduce_difference  # re-exported: the zero test the layer proofs rely on
from ..symbolic.layer_symbols import parameter_letter, symbol_tensor
from ..symbolic.layers import Layer, MaxPool2d, ReLU, Shape, entrywise
from ..symbolic.losses import CrossEntropyLoss, Loss
from .conv import Proof, Proofs, compare

__all__ = [
    "LayerProofReport",
    "prove_layer",
    "prove_loss",
    "symbol_tensor",
    "is_zero",
    "reduce_difference",
    "compare",
    "draw_rational",
]

Backward = Callable[..., tuple[np.ndarray, dict[str, np.ndarray]]]

STATEMENTS: dict[str, dict[str, str]] = {
    "Conv2d": {
        "input": "dE/dX = full convolution of dilate(dE/dY, s) with rot180(F), summed over filters",
        "weight": "dE/dF = Correlation(pad(X, p), dilate(dE/dY, s)), summed over the batch",
        "bias": "dE/db_k = sum of dE/dY[:, k] over batch and space",
    },
    "ConvTranspose2d": {
        "input": "dE/dX = Correlation(pad(dE/dY, p), dilate(F, d), stride s): the convolution's forward pass",
        "weight": "dE/dF = Correlation(pad(dE/dY, p), dilate(X, s)): the convolution's weight gradient, swapped",
        "bias": "dE/db_k = sum of dE/dY[:, k] over batch and space",
    },
    "ReLU": {"input": "dE/dX = dE/dY * [X > 0]"},
    "MaxPool2d": {"input": "dE/dX = dE/dY routed to each window's winner, overlapping windows adding up"},
    "AvgPool2d": {"input": "dE/dX = dE/dY / (kh*kw) spread evenly over each window's real cells, windows adding up"},
    "Flatten": {"input": "dE/dX = dE/dY reshaped back to X's shape"},
    "Dense": {"input": "dE/dX = dE/dY W", "weight": "dE/dW = dE/dY^T X", "bias": "dE/db = sum of dE/dY over the batch"},
}


@dataclass(frozen=True)
class LayerProofReport(Proofs[Proof]):
    """The proofs of one layer on one input shape; ``region`` names the branch the region proofs are on."""

    subject: str
    proofs: tuple[Proof, ...]
    region: str = ""

    def title(self) -> str:
        return self.subject + (f" (region: {self.region})" if self.region else "")


def draw_rational(rng: np.random.Generator) -> sp.Rational:
    """A non-zero exact rational with a spread of numerators and denominators, so that ties are rare."""
    sign = 1 if rng.random() < 0.5 else -1
    return sp.Rational(sign * int(rng.integers(1, 100)), int(rng.integers(1, 10)))


def gradient(E: sp.Expr, tensor: np.ndarray) -> np.ndarray:
    """SymPy's derivative of E by every entry of a symbol tensor."""
    return entrywise(lambda theta: sp.diff(E, theta), tensor)


def _inner(a: np.ndarray, b: np.ndarray) -> sp.Expr:
    return sp.Add(*(u * v for u, v in zip(a.flat, b.flat)))


def _values(tensor: np.ndarray, point: Mapping[sp.Symbol, sp.Rational]) -> np.ndarray:
    return entrywise(lambda s: point[s], tensor)


def _relu_proofs(backward: Backward) -> list[Proof]:
    x, d = sp.Symbol("x", real=True), sp.Symbol("d", positive=True)
    derivative = sp.diff(sp.Max(0, x), x)  # SymPy: Heaviside(x), whose value at 0 is SymPy's default 1/2
    pieces = np.array([d, -d, sp.S.Zero], dtype=object)  # x > 0, x < 0, x = 0: the whole real line
    # d is a positive symbol, so the branch [x > 0] is decided by SymPy's assumptions on the whole half-line.
    claimed, _ = backward(pieces, {}, np.ones(3, dtype=object) * sp.S.One, None)
    on_sides = np.array([derivative.xreplace({x: v}) for v in pieces[:2]], dtype=object)
    heaviside = np.array([sp.Heaviside(v, 0) for v in pieces], dtype=object)
    return [
        compare(
            "relu_derivative",
            f"on x > 0 and on x < 0, SymPy's d max(0, x)/dx = {derivative} equals the closed form [x > 0]",
            [("x = d > 0, x = -d < 0", on_sides, claimed[:2])],
        ),
        compare(
            "relu_heaviside",
            "the closed form [x > 0] equals Heaviside(x, 0) on x > 0, x < 0 and at x = 0"
            " (derivative 0 at 0, PyTorch's convention)",
            [("x = d > 0, x = -d < 0, x = 0", heaviside, claimed)],
        ),
    ]


@lru_cache(maxsize=None)
def _max_derivative_template(size: int) -> tuple[tuple[sp.Expr, ...], ...]:
    """For Max(x_1..x_k): row w holds SymPy's d Max/d x_j on the region where x_w wins, for every j.

    Each region x_w > x_j (j != w) is covered by a parametrization SymPy can decide signs on: for j = w,
    x_w = Max(others) + e with e > 0 (the derivative Heaviside(x_w - Max(others)) becomes Heaviside(e)); for j != w,
    x_w = t and x_j = t - d_j with d_j > 0 (Max of the others of x_j reduces to t, leaving Heaviside(-d_j)).
    """
    xs = sp.symbols(f"x1:{size + 1}", real=True)
    t, e = sp.Symbol("t", real=True), sp.Symbol("e", positive=True)
    ds = sp.symbols(f"d1:{size + 1}", positive=True)
    maximum = sp.Max(*xs)
    derivatives = [sp.diff(maximum, v) for v in xs]
    rows = []
    for w in range(size):
        others = [xs[j] for j in range(size) if j != w]
        winner = {xs[w]: sp.Max(*others) + e} if others else {}
        losers = {xs[j]: (t if j == w else t - ds[j]) for j in range(size)}
        rows.append(tuple(derivatives[j].xreplace(winner if j == w else losers) for j in range(size)))
    return tuple(rows)


def _max_routing_proof(layer: MaxPool2d, input_shape: Shape, backward: Backward) -> Proof:
    """For every window and candidate winner w: the closed form routes exactly SymPy's d Max/d x_j = [j == w]."""
    statement = (
        "for each window and each candidate winner w, on the region x_w > x_j (j != w),"
        " SymPy's d Max/d x_j equals the routed gradient [j == w]"
    )
    x = np.full(input_shape, sp.S.Zero, dtype=object)  # backward reads only the winners here
    out_shape = layer.output_shape(input_shape)
    for p, cells in layer.windows(input_shape):
        template = _max_derivative_template(len(cells))
        one_hot = np.full(out_shape, sp.S.Zero, dtype=object)
        one_hot[p] = sp.S.One
        for w, (r, c) in enumerate(cells):
            winners = np.zeros(out_shape, dtype=np.int64)
            winners[p] = r * input_shape[3] + c
            routed, _ = backward(x, {}, one_hot, winners)
            claimed = np.array([routed[p[0], p[1], i, j] for i, j in cells], dtype=object)
            proof = compare(
                "max_routing",
                statement,
                [(f"window {list(p)}, winner {(r, c)}", np.array(template[w], dtype=object), claimed)],
            )
            if not proof.holds:
                return proof
    return Proof("max_routing", statement, True)


def _region_point(
    layer: Layer, x: np.ndarray, params: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[sp.Symbol, sp.Rational]:
    """A seeded exact point off every region boundary (redrawn on the rare tie)."""
    for _ in range(100):
        point = {s: draw_rational(rng) for t in (x, *params.values()) for s in t.flat}
        if layer.boundary(_values(x, point), x) is None:
            return point
    raise RuntimeError(f"{layer.describe()}: no point off the region boundaries in 100 draws")


def prove_layer(
    layer: Layer,
    input_shape: Shape,
    seed: int = 0,
    backward: Optional[Backward] = None,
    values: Optional[np.ndarray] = None,
) -> LayerProofReport:
    """Prove a layer's closed-form backward (``layer.backward``, or a candidate ``backward`` to test) on one shape;
    ``values`` (exact input values off every region boundary) choose the region instead of the seeded point.

    >>> report = prove_layer(MaxPool2d(2, stride=1), (1, 1, 3, 3))
    >>> report.holds, [p.name for p in report.proofs]
    (True, ['grad_input', 'piecewise_at_point', 'max_routing'])
    """
    backward = backward or layer.backward
    name = type(layer).__name__
    x = symbol_tensor("X", input_shape)
    params = {k: symbol_tensor(parameter_letter(layer, k), s) for k, s in layer.parameter_shapes(input_shape).items()}
    G = symbol_tensor("dE/dY", layer.output_shape(input_shape))
    point = _region_point(layer, x, params, np.random.default_rng(seed))
    if values is not None:
        if np.shape(values) != tuple(input_shape):
            raise ValueError(f"values of shape {np.shape(values)} for an input of shape {tuple(input_shape)}")
        point.update({s: sp.Rational(v) for s, v in zip(x.flat, np.asarray(values).flat)})
        tie = layer.boundary(_values(x, point), x)
        if tie is not None:
            raise ValueError(f"the values given lie on a region boundary: {tie}")
    branch = layer.branch(_values(x, point)) if layer.piecewise else None
    E = _inner(layer.forward_on(x, params, branch), G)
    claimed_input, claimed_params = backward(x, params, G, branch)
    claimed = {"input": claimed_input, **claimed_params}
    proofs = [
        compare(
            f"grad_{k}",
            STATEMENTS.get(name, {}).get(k, f"dE/d{k} is the closed form"),
            [(f"grad_{k}", gradient(E, t), claimed[k])],
        )
        for k, t in {"input": x, **params}.items()
    ]
    region = ""
    if layer.piecewise:
        E_piecewise = _inner(layer.forward(x, params), G)
        derived = entrywise(lambda s: sp.diff(E_piecewise, s).xreplace(point), x)
        at_point = entrywise(lambda v: sp.sympify(v).xreplace(point), claimed_input)
        proofs.append(
            compare(
                "piecewise_at_point",
                "SymPy's derivative of the piecewise layer (Heaviside) equals the closed form at the region's point",
                [("grad_input", derived, at_point)],
            )
        )
        assert branch is not None  # the piecewise layers have one
        if isinstance(layer, ReLU):
            proofs += _relu_proofs(backward)
            region = f"{int(branch.sum())} of {branch.size} inputs positive"
        elif isinstance(layer, MaxPool2d):
            proofs.append(_max_routing_proof(layer, input_shape, backward))
            region = f"winners {branch.ravel().tolist()}"
    return LayerProofReport(f"{layer.describe()} on input {tuple(input_shape)}", tuple(proofs), region)


def prove_loss(
    loss: Loss,
    input_shape: Shape,
    seed: int = 0,
    backward: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]] = None,
) -> LayerProofReport:
    """Prove a loss's closed-form gradient dE/dy; cross-entropy labels are drawn with ``seed``.

    >>> prove_loss(CrossEntropyLoss(), (2, 3)).holds
    True
    """
    y = symbol_tensor("Y", input_shape)
    if isinstance(loss, CrossEntropyLoss):
        loss.target_shape(input_shape)
        target: np.ndarray = np.random.default_rng(seed).integers(0, input_shape[1], input_shape[0])
        statement, region = "dE/dz = (softmax(z) - onehot(t)) / N", f"labels {target.tolist()}"
    else:
        target, statement, region = symbol_tensor("T", loss.target_shape(input_shape)), "dE/dy = y - t", ""
    claimed = (backward or loss.backward)(y, target)
    proof = compare("grad_input", statement, [("grad_input", gradient(loss.forward(y, target), y), claimed)])
    return LayerProofReport(f"{loss.describe()} on input {tuple(input_shape)}", (proof,), region)
