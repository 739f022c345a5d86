"""Layer reports: a layer kind and the sizes to fix -> a ``GeneralProofReport`` of its identities for every size.

The same stages as the convolution's (guarded sums, bijections, obligations, z3 and isl, certificates); the
obligations that apply max pooling's choice of winners also get that choice's facts, and only z3 decides them
(an uninterpreted function is beyond Presburger arithmetic). A refutation is rebuilt as a concrete layer on one
input shape and re-checked by ``prove_layer`` (``prove_loss`` for MSE), with the closed form under test as the
backward: the concrete prover must refute it too.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import sympy as sp

from ...symbolic.layers import Layer, MaxPool2d, ReLU
from ..conv import Counterexample, Proof
from ..layers import LayerProofReport, prove_layer, prove_loss
from .counterexample import Concrete, LayerShape, evaluate
from .layer_spec import FLAT, LOSSES, GeneralLayer
from .layer_theorems import LAYER_IDENTITIES, derived_layer, layer_identities
from .notation import Grid
from .obligation import Obligation
from .report import SOLVERS, GeneralProof, GeneralProofReport, Sides, plan, prove_identity
from .spec import Axis
from .theorems import Equation

__all__ = ["prove_general_layer", "check_general_layer", "layer_plan", "candidate_backward"]


def layer_plan(spec: GeneralLayer, equations: Sequence[Equation]
               ) -> tuple[tuple[Sides, ...], tuple[Obligation, ...], tuple[str, ...]]:
    """``plan`` with the layer's index names, and the facts of the choices each obligation applies."""
    sides, obligations, problems = plan(spec, equations, spec.index_names())
    return sides, tuple(spec.facts(o) for o in obligations), problems


def _first_failure(report: LayerProofReport) -> Proof:
    return next((p for p in report.proofs if not p.holds), report.proofs[0])


SWEEP = 6
"""An input of at most this many entries is checked on every region (ReLU: every sign pattern; max pooling:
every order of its entries), a larger one on 16 seeded regions: a closed form wrong on one region only is caught."""


def _regions(shape: LayerShape) -> Iterator[tuple[int, Optional[np.ndarray]]]:
    """(seed, input values) of the regions the concrete prover is run on; None: the seeded point's."""
    yield 0, None
    size = int(np.prod(shape.input_shape))
    if size > SWEEP:
        yield from ((seed, None) for seed in range(1, 16))
    elif isinstance(shape.layer, ReLU):
        for signs in itertools.product((1, -1), repeat=size):
            yield 0, np.array([sign * (i + 1) for i, sign in enumerate(signs)]).reshape(shape.input_shape)
    elif isinstance(shape.layer, MaxPool2d):
        seen = set()
        for order in itertools.permutations(range(1, size + 1)):
            values = np.array(order).reshape(shape.input_shape)
            winners = shape.layer.branch(values.astype(object)).tobytes()
            if winners not in seen:
                seen.add(winners)
                yield 0, values


def _run(spec: GeneralLayer, shape: LayerShape, backward: Optional[Callable[..., Any]]) -> Proof:
    """The concrete prover's verdict: its first refutation on the regions swept, or its proof."""
    if spec.kind in LOSSES:
        return _first_failure(prove_loss(shape.layer, shape.input_shape, backward=backward))  # type: ignore[arg-type]
    report = None
    for seed, values in _regions(shape) if shape.layer.piecewise else iter([(0, None)]):  # type: ignore[union-attr]
        report = prove_layer(shape.layer, shape.input_shape, seed, backward, values)  # type: ignore[arg-type]
        if not report.holds:
            break
    assert report is not None
    return _first_failure(report)


def _grid_values(values: dict[sp.Symbol, int], grid: Grid, entry: tuple[sp.Symbol, ...],
                 out_shape: tuple[int, ...], lookup: Callable[[sp.Basic], sp.Expr]) -> np.ndarray:
    """The closed form evaluated at every entry of a concrete tensor of ``out_shape``, the sizes being ``values``;
    a 1-D theorem's entries off its axis (the trivial second one) are 0."""
    values = dict(values)
    values.update(grid.floor_values(values))
    out = np.empty(out_shape, dtype=object)
    for index in np.ndindex(*out_shape):
        if len(index) > len(entry) and any(index[len(entry):]):
            out[index] = sp.S.Zero
            continue
        env = {**values, **dict(zip(entry, index))}
        spatial = tuple(int(env[s]) for s in entry[len(entry) - grid.axes:]) if grid.axes else ()
        out[index] = sp.expand(evaluate(grid.at(*spatial), env, lookup))
    return out


def _sizes(spec: GeneralLayer, layer: Any, dims: tuple[int, ...]) -> dict[sp.Symbol, int]:
    """The size symbols' values for a concrete layer (or loss) on an input of shape ``dims``."""
    if spec.kind == "dense":
        return spec.size_values({"N": dims[0], "I": dims[1], "O": layer.out_features})
    if spec.kind in LOSSES:
        return spec.size_values({"N": dims[0], "M": dims[1]})
    point = {"N": dims[0], "C": dims[1]}
    for i, a in enumerate(spec.axes):
        fields: list[tuple[str, int]] = [("n", dims[2 + i])]
        if isinstance(a, Axis):
            fields += [(f, getattr(layer, attr)[i]) for f, attr in (("k", "kernel_size"), ("s", "stride"),
                                                                    ("p", "padding"))]
        for f, v in fields:
            symbol = getattr(a, f)
            if isinstance(symbol, sp.Symbol):
                point[symbol.name] = v
    return spec.size_values(point)


def _softmax_lookup(z: np.ndarray, labels: np.ndarray) -> Callable[[sp.Basic], sp.Expr]:
    """The cross-entropy atoms at concrete logits: expZ[n, m] = exp(z[n, m]), invS[n] = 1 / Σ_k exp(z[n, k]),
    and the choice t(n) = the label of image n (0 outside the tensors)."""
    def lookup(atom: sp.Basic) -> sp.Expr:
        index = tuple(int(i) for i in (atom.indices if isinstance(atom, sp.Indexed) else atom.args))
        name = str(atom.base) if isinstance(atom, sp.Indexed) else atom.func.__name__
        if name == "t":
            return sp.Integer(int(labels[index[0]])) if 0 <= index[0] < len(labels) else sp.S.Zero
        if not 0 <= index[0] < z.shape[0] or (name == "expZ" and not 0 <= index[1] < z.shape[1]):
            return sp.S.Zero
        return sp.exp(z[index]) if name == "expZ" else 1 / sp.Add(*(sp.exp(v) for v in z[index[0]]))
    return lookup


def candidate_backward(spec: GeneralLayer, name: str, grid: Grid, shape: LayerShape) -> Callable[..., Any]:
    """A backward (as ``prove_layer`` or ``prove_loss`` call it) whose tensor ``name`` is the closed form ``grid``,
    the others the layer's own."""
    entry = derived_layer(spec)[name].entry
    layer = shape.layer

    def table(arrays: Mapping[str, np.ndarray], winners: Optional[np.ndarray]) -> Callable[[sp.Basic], sp.Expr]:
        widths = [arrays["X"].shape[-1]] if "X" in arrays else [1]
        def lookup(atom: sp.Basic) -> sp.Expr:
            if isinstance(atom, sp.Indexed):
                array, index = arrays[str(atom.base)], tuple(int(i) for i in atom.indices)
                index += (0,) * (array.ndim - len(index))  # a 1-D theorem: the trivial second axis
                inside = len(index) == array.ndim and all(0 <= i < n for i, n in zip(index, array.shape))
                return sp.sympify(array[index]) if inside else sp.S.Zero
            # A choice R_h(b, c, o_h, o_w): the winner's offset inside window o, read off the recorded winners.
            assert winners is not None and isinstance(layer, MaxPool2d)
            b, c, *o = (int(v) for v in atom.args)
            axis = [w.name for w in spec.windows].index(atom.func.__name__.partition("_")[2])
            if not all(0 <= v < n for v, n in zip([b, c, *o], winners.shape)):
                return sp.S.Zero
            where = (b, c) + tuple(o) + (0,) * (2 - len(o))
            flat, width = int(winners[where]), widths[0]
            cell = (flat // width, flat % width)[axis]
            stride, padding = layer.stride[axis], layer.padding[axis]  # type: ignore[index]
            return sp.Integer(cell - (stride * o[axis] - padding))
        return lookup

    if spec.kind in LOSSES:
        def loss_backward(y: np.ndarray, target: np.ndarray) -> np.ndarray:
            lookup = table({"Y": y, "T": target}, None) if spec.kind == "mse" else _softmax_lookup(y, target)
            return _grid_values(_sizes(spec, layer, y.shape), grid, entry, y.shape, lookup)
        return loss_backward

    assert isinstance(layer, Layer)

    def backward(x: np.ndarray, params: Mapping[str, np.ndarray], G: np.ndarray, branch: Optional[np.ndarray] = None):
        own_input, own = layer.backward(x, params, G, branch)
        if x.ndim != len(shape.input_shape):  # ReLU's scalar pieces (x > 0, x < 0, x = 0): one row of a 4-D map
            row = (1, 1, x.size, 1) if len(spec.axes) == 1 else (1, 1, 1, x.size)
            grad, _ = backward(x.reshape(row), params, G.reshape(row), None if branch is None else branch.reshape(row))
            return grad.reshape(x.shape), own
        arrays = {"X": x, "G": G, **({"W": params["weight"], "B": params["bias"]} if spec.kind == "dense" else {})}
        winners = branch
        if isinstance(layer, ReLU):
            mask = layer.branch(x) if branch is None else branch
            arrays["P"] = np.vectorize(lambda v: sp.Integer(int(bool(v))), otypes=[object])(mask)
        elif isinstance(layer, MaxPool2d) and winners is None:
            winners = layer.branch(x)
        target = own_input if name == "grad_input" else own[name.removeprefix("grad_")]
        values = _grid_values(_sizes(spec, layer, x.shape), grid, entry, target.shape, table(arrays, winners))
        if name == "grad_input":
            return values, own
        return own_input, {**own, name.removeprefix("grad_"): values}
    return backward


def _concrete(spec: GeneralLayer, check: Optional[tuple[str, Grid]]) -> Callable[[Mapping[str, int]], tuple[Concrete, Proof]]:
    """A solver's point -> the concrete layer and the concrete prover's verdict (on ``check``'s closed form)."""
    def run(point: Mapping[str, int]) -> tuple[Concrete, Proof]:
        shape = spec.concrete(point)
        if check is None:
            return shape, _run(spec, shape, None)
        name, grid = check
        mismatch = _extent_mismatch(spec, shape, name, grid)
        return shape, mismatch or _run(spec, shape, candidate_backward(spec, name, grid, shape))
    return run


def _extent_mismatch(spec: GeneralLayer, shape: LayerShape, name: str, grid: Grid) -> Optional[Proof]:
    """A closed form whose extent is not the input's at this shape is refuted as ``check`` refutes a shape
    mismatch: the two shapes as the entries (its entries inside both could all agree)."""
    if not grid.axes:
        return None
    values = _sizes(spec, shape.layer, shape.input_shape)
    values.update(grid.floor_values(values))
    extent = tuple(int(e.xreplace(values)) for e in grid.extent)
    spatial = tuple(shape.input_shape[2:2 + len(extent)])
    if extent == spatial:
        return None
    return Proof(f"check_{name}", f"{name} equals the given closed form", False,
                 Counterexample(f"{name} shape", (), sp.Tuple(*spatial), sp.Tuple(*extent),
                                sp.Tuple(*(e - s for e, s in zip(extent, spatial)))))


def _abstraction(spec: GeneralLayer) -> str:
    """What the guarded sums of ``spec`` forget: cross-entropy's exp and 1/Σ exp are atoms (their relation, e.g.
    Σ_m expZ[n, m]·invS[n] = 1, is lost), so a refutation is only one if the concrete prover confirms it."""
    return "exp(Z) and 1/sum(exp(Z)) are atoms" if spec.kind == "crossentropy" else ""


def _options(layer: str, axes: int, input_size: Any, kernel_size: Any, stride: Any, padding: Any) -> dict[str, Any]:
    return dict(layer=layer, axes=axes, input_size=input_size, kernel_size=kernel_size, stride=stride, padding=padding)


def prove_general_layer(layer: str, *, axes: int = 2, input_size=None, kernel_size=None, stride=None, padding=None,
                        names: Optional[Sequence[str]] = None, solvers: Sequence[str] = SOLVERS,
                        timeout: float = 10.0) -> GeneralProofReport:
    """Prove the identities of a layer (``relu``, ``maxpool``, ``avgpool``, ``dense``, ``mse``, ``crossentropy``)
    for every size:
    symbolic n, k, s, p per axis and the counts, except those given.

    >>> report = prove_general_layer("maxpool", axes=1)
    >>> report.holds, [p.name for p in report.proofs]
    (True, ['grad_input', 'grad_total', 'adjoint_input'])
    """
    options = _options(layer, axes, input_size, kernel_size, stride, padding)
    spec = GeneralLayer.of(**options)
    chosen = LAYER_IDENTITIES[layer] if names is None else tuple(names)
    unknown = set(chosen) - set(LAYER_IDENTITIES[layer])
    if unknown:
        raise ValueError(f"unknown identities {sorted(unknown)} of {layer}; choose from {', '.join(LAYER_IDENTITIES[layer])}")
    if set(solvers) - set(SOLVERS) or not solvers:
        raise ValueError(f"solvers must be some of {', '.join(SOLVERS)}, got {list(solvers)}")
    proofs = tuple(prove_identity(i.name, i.statement, i.equations, solvers, timeout,
                                  lambda eqs: layer_plan(spec, eqs), _concrete(spec, None), _abstraction(spec))
                   for i in layer_identities(spec) if i.name in chosen)
    return GeneralProofReport(spec, proofs, tuple(solvers), timeout, tuple(options.items()))


def check_general_layer(spec: GeneralLayer, name: str, candidate: Grid, *, solvers: Sequence[str] = SOLVERS,
                        timeout: float = 10.0) -> GeneralProof:
    """Prove a layer's closed form of one's own for every size of ``spec``, or refute it with a concrete layer
    and input shape on which ``prove_layer`` (``prove_loss``) refutes it too. ``candidate`` is written in
    ``notation`` over ``layer_theorems.operands(spec)`` (ReLU, pooling), or is a map without axes over the entry
    symbols n, i, o, m (dense, MSE).

    >>> from symconv.proofs.general.layer_theorems import operands
    >>> L = GeneralLayer.of("relu", axes=1)
    >>> proof = check_general_layer(L, "grad_input", operands(L).G)  # the mask left out
    >>> proof.verdict, proof.counterexample.concrete.holds
    ('refuted', False)
    """
    table = derived_layer(spec)
    if name not in table or name == "output":
        raise ValueError(f"name must be one of {', '.join(n for n in table if n != 'output')}, got {name!r}")
    base = table[name]
    spatial = 0 if spec.kind in FLAT else len(base.ranges) - 2
    if candidate.axes != spatial:
        raise ValueError(f"{name} has {spatial} spatial axes, the candidate {candidate.axes}")
    eq = Equation(name, base.entry, base.ranges, base.derived, candidate)
    return prove_identity(f"check_{name}", f"{name} equals the given closed form", [eq], solvers, timeout,
                          lambda eqs: layer_plan(spec, eqs), _concrete(spec, (name, candidate)), _abstraction(spec))
