"""Counterexamples: a solver's model of a failed obligation -> a ``ConvSpec`` and the concrete prover's verdict.

The model gives n, k, s, p, d (and the channel counts) where the general proof fails; the concrete prover
(``prove``, or ``check`` for a closed form of one's own) must refute that shape too. If it proves it instead,
the two provers disagree and symconv has a bug: ``ProverDisagreement`` is raised, never one verdict picked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Union

import numpy as np
import sympy as sp
from sympy.core.function import AppliedUndef

from ...symbolic.derive import Derivation, derive
from ...symbolic.layers import Layer
from ...symbolic.losses import Loss
from ...symbolic.spec import ConvSpec
from ...symbolic.symbols import positions
from ..conv import Checkable, Counterexample, Proof, check
from .notation import Grid
from .spec import GeneralSpec

__all__ = ["GeneralCounterexample", "ProverDisagreement", "SolverDisagreement", "confirm", "concrete_candidate",
           "size_values", "LayerShape", "Concrete", "evaluate"]


class ProverDisagreement(AssertionError):
    """The general and the concrete prover disagree on one shape: a bug in symconv."""


class SolverDisagreement(AssertionError):
    """z3 and isl gave opposite answers on one obligation: a bug in symconv or in a solver."""


@dataclass(frozen=True)
class LayerShape:
    """A concrete layer (or loss) on one input shape: what a layer theorem's counterexample is rebuilt as."""

    layer: Union[Layer, Loss]
    input_shape: tuple[int, ...]

    def describe(self) -> str:
        return f"{self.layer.describe()} on input {self.input_shape}"


Concrete = Union[ConvSpec, LayerShape]


@dataclass(frozen=True)
class GeneralCounterexample:
    """Where a general proof fails: the obligation, the solver's point, the shape, and the concrete refutation."""

    obligation: str
    solver: str
    point: tuple[tuple[str, int], ...]
    spec: Concrete
    concrete: Proof

    def __str__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.point)
        return (f"{self.obligation} fails at {where} ({self.solver}); {self.spec.describe()}: concrete "
                f"{'refutes' if not self.concrete.holds else 'PROVES'} it"
                + (f" at {self.concrete.counterexample}" if self.concrete.counterexample else ""))


def size_values(general: GeneralSpec, spec: ConvSpec) -> dict[sp.Symbol, int]:
    """The value of every symbol of ``general`` (n, k, s, p, p', d, q, a, N, C, K, G) for the concrete ``spec``."""
    values: dict[sp.Symbol, int] = {}
    fields = {"n": spec.input_size, "k": spec.kernel_size, "s": spec.stride, "p": spec.pad_begin, "pe": spec.pad_end,
              "d": spec.dilation, "q": tuple(o - 1 for o in spec.output_size), "a": spec.leftover}
    for i, axis in enumerate(general.axes):
        for letter, pair in fields.items():
            symbol = getattr(axis, letter)
            if isinstance(symbol, sp.Symbol):
                values[symbol] = pair[i]
    if general.counts is not None:
        counts = (spec.batch, spec.group_in_channels, spec.group_out_channels, spec.groups)
        for symbol, v in zip((*general.counts, general.groups), counts):
            if isinstance(symbol, sp.Symbol):
                values[symbol] = v
    return values


def _entry_symbols(d: Derivation, axes: int) -> Callable[[sp.Indexed], sp.Expr]:
    arrays = {"X": d.input, "F": d.weight, "G": d.grad_output}

    def lookup(atom: sp.Indexed) -> sp.Expr:
        name, index = str(atom.base), tuple(int(i) for i in atom.indices)
        if name == "B":
            return d.bias[index[0]]
        index = (0, 0) + index + ((0,) if axes == 1 else ())
        array = arrays[name]
        if any(not 0 <= i < n for i, n in zip(index, array.shape)):
            return sp.S.Zero  # outside the tensor: 0, as everywhere in the notation
        return array[index]

    return lookup


def evaluate(expr: sp.Expr, env: Mapping[sp.Symbol, int], lookup: Callable[[sp.Indexed], sp.Expr]) -> sp.Expr:
    """A ``notation`` entry with numbers for every symbol but the tensors': sums iterated, deltas compared.

    The same value as ``expr.xreplace(env).doit()`` (exact there, every bound being a number), much faster: a
    product stops at its first delta that is 0.

    >>> G, o, i = sp.IndexedBase("G"), sp.Symbol("o", integer=True), sp.Symbol("i", integer=True)
    >>> evaluate(sp.Sum(G[o] * sp.KroneckerDelta(i, 2 * o), (o, 0, 3)), {i: 4}, lambda a: sp.Symbol(f"g{a.indices[0]}"))
    g2
    """
    if expr.is_Number:
        return expr
    if expr.is_Symbol:
        return sp.Integer(env[expr])
    if isinstance(expr, sp.Indexed):
        return lookup(sp.IndexedBase(expr.base)[tuple(int(evaluate(i, env, lookup)) for i in expr.indices)])
    if isinstance(expr, AppliedUndef):
        return lookup(expr.func(*(int(evaluate(a, env, lookup)) for a in expr.args)))  # a choice, e.g. an argmax
    if isinstance(expr, sp.KroneckerDelta):
        return sp.S.One if evaluate(expr.args[0], env, lookup) == evaluate(expr.args[1], env, lookup) else sp.S.Zero
    if isinstance(expr, sp.Add):
        return sp.Add(*(evaluate(a, env, lookup) for a in expr.args))
    if isinstance(expr, sp.Mul):
        # Deltas and numbers first, then sums (brackets), tensor entries last.
        factors = sorted(expr.args, key=lambda f: 2 if f.has(sp.Indexed) and not isinstance(f, sp.Sum) else isinstance(f, sp.Sum))
        out = []
        for f in factors:
            value = evaluate(f, env, lookup)
            if value == 0:
                return sp.S.Zero
            out.append(value)
        return sp.Mul(*out)
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer:
        return evaluate(expr.base, env, lookup) ** expr.exp
    if isinstance(expr, sp.Sum):
        return sp.Add(*_iterate(expr.function, list(expr.limits), dict(env), lookup))
    raise NotImplementedError(f"cannot evaluate {type(expr).__name__}: {expr}")


def _iterate(body: sp.Expr, limits: list, env: dict, lookup) -> list[sp.Expr]:
    # SymPy's first limit is the innermost sum: iterate the last one outermost.
    if not limits:
        return [evaluate(body, env, lookup)]
    (v, lo, hi), inner = limits[-1], limits[:-1]
    out = []
    for value in range(int(evaluate(lo, env, lookup)), int(evaluate(hi, env, lookup)) + 1):
        env[v] = value
        out += _iterate(body, inner, env, lookup)
    env.pop(v, None)
    return out


def concrete_candidate(general: GeneralSpec, grid: Grid, d: Derivation, shape: tuple[int, ...]) -> np.ndarray:
    """A one-channel closed form written in ``notation``, evaluated entry by entry for the concrete layer of
    ``d``, in the derivation's symbols; entries outside the candidate's own extent are 0 (``check_candidate``
    compares the extents first)."""
    values = size_values(general, d.spec)
    values.update(grid.floor_values(values))
    lookup = _entry_symbols(d, len(general.axes))
    out = np.empty(shape, dtype=object)
    for index in positions(shape):
        spatial = index[len(index) - grid.axes:] if grid.axes else ()
        if len(general.axes) == 1 and grid.axes:
            spatial, rest = index[2:3], index[3:]
            if any(rest):
                out[index] = sp.S.Zero
                continue
        out[index] = sp.expand(evaluate(grid.at(*spatial), values, lookup))
    return out


def confirm(obligation: str, solver: str, point: Mapping[str, int], spec: Concrete, proof: Proof) -> GeneralCounterexample:
    """The shape rebuilt from a solver's point and the concrete prover's verdict on it, which must be a refutation."""
    found = GeneralCounterexample(obligation, solver, tuple(point.items()), spec, proof)
    if proof.holds:
        raise ProverDisagreement(f"symconv bug: the general proof fails but the concrete prover proves it: {found}")
    return found


def check_candidate(general: GeneralSpec, name: Checkable, grid: Grid) -> Callable[[ConvSpec], Proof]:
    """The concrete check of a one-channel closed form at one shape, as ``confirm`` wants it."""
    def run(spec: ConvSpec) -> Proof:
        d = derive(spec)
        shape = getattr(d, name).shape
        values = size_values(general, spec)
        values.update(grid.floor_values(values))
        extent = tuple(int(e.xreplace(values)) for e in grid.extent)
        spatial = tuple(shape[2:2 + len(extent)]) if extent else ()
        if extent != spatial:
            # What check() would reject as a shape mismatch: a refutation, with the two shapes as the entries.
            return Proof(f"check_{name}", f"{name} equals the given closed form", False,
                         Counterexample(f"{name} shape", (), sp.Tuple(*spatial), sp.Tuple(*extent),
                                        sp.Tuple(*(e - s for e, s in zip(extent, spatial)))))
        return check(d, name, concrete_candidate(general, grid, d, shape).tolist())
    return run
