"""Reports: a ``GeneralSpec`` (or one closed form of one's own) -> a ``GeneralProofReport`` of obligations decided.

For each equation of an identity: both sides normalised into guarded sums, their terms matched (``bijection``),
one obligation per size and per direction of the map, each decided by z3 and, when it is affine (s and d fixed),
by isl too; the two must agree. An identity is proved when every obligation is; a refuted one carries a
counterexample shape that the concrete prover refutes as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Protocol, Sequence

import sympy as sp

from ..conv import Checkable, Proof, Proofs, prove
from .bijection import Matching, match, obligations
from .counterexample import Concrete, GeneralCounterexample, SolverDisagreement, check_candidate, confirm
from .isl_backend import run_isl
from .notation import Grid
from .obligation import Constraint, Obligation, SolverRun
from .spec import GeneralSpec
from .sums import GuardedSum, normalise
from .theorems import IDENTITY_NAMES, Equation, Identity, derived_tensors, identities, index_names
from .z3_backend import run_z3

__all__ = ["Decision", "Sides", "GeneralProof", "GeneralProofReport", "prove_general", "check_general", "plan",
           "SOLVERS", "Domain", "prove_identity"]

SOLVERS = ("z3", "isl")


class Domain(Protocol):
    """What a theorem is stated over: a ``GeneralSpec`` (a convolution) or a ``GeneralLayer`` (ReLU, pooling,
    dense, a loss): its symbols, assumptions, tensor shapes and the names of its spatial axes."""

    @property
    def axes(self) -> Sequence: ...

    def parameters(self) -> tuple[sp.Symbol, ...]: ...

    def assumptions(self) -> tuple[Constraint, ...]: ...

    def shapes(self) -> dict[str, tuple[sp.Expr, ...]]: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Decision:
    """One obligation and every solver's run on it."""

    obligation: Obligation
    runs: tuple[SolverRun, ...]

    @property
    def proved(self) -> bool:
        return bool(self.runs) and all(r.proved for r in self.runs)

    @property
    def refuted(self) -> bool:
        return any(r.answer in ("sat", "not subset") for r in self.runs)

    def __str__(self) -> str:
        answers = ", ".join(f"{r.solver} {r.answer}" for r in self.runs)
        return f"{self.obligation.name}: {answers}"


@dataclass(frozen=True)
class Sides:
    """One equation's two sides as guarded sums, their extents and the bijections between their terms."""

    tensor: str
    entry: tuple[sp.Symbol, ...]
    ranges: tuple[sp.Expr, ...]
    derived: tuple[GuardedSum, ...]
    closed: tuple[GuardedSum, ...]
    derived_extent: tuple[sp.Expr, ...]
    closed_extent: tuple[sp.Expr, ...]
    floors: tuple[tuple[sp.Symbol, sp.Expr, sp.Expr], ...]
    matchings: tuple[Matching, ...]
    closed_tex: str = ""


@dataclass(frozen=True)
class GeneralProof:
    """One identity for every size allowed by the assumptions: proved, refuted, or not proved (unknown)."""

    name: str
    statement: str
    sides: tuple[Sides, ...]
    decisions: tuple[Decision, ...]
    problems: tuple[str, ...] = ()
    counterexample: Optional[GeneralCounterexample] = None
    seconds: float = 0.0
    unconfirmed: tuple[str, ...] = ()
    """A refutation of an abstraction that the concrete prover does not confirm (verdict: not proved)."""

    @property
    def holds(self) -> bool:
        return not self.problems and bool(self.decisions) and all(d.proved for d in self.decisions)

    @property
    def verdict(self) -> str:
        if self.holds:
            return "proved"
        if self.unconfirmed:
            return "not proved"
        return "refuted" if any(d.refuted for d in self.decisions) else "not proved"

    @property
    def solvers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.solver for d in self.decisions for r in d.runs))

    def __str__(self) -> str:
        text = f"{self.name}: {self.statement} -- {self.verdict} ({len(self.decisions)} obligations, " \
               f"{'+'.join(self.solvers) or 'no solver'}, {self.seconds:.2f} s)"
        for problem in self.problems + self.unconfirmed:
            text += f"\n      not decided: {problem}"
        for d in self.decisions:
            if not d.proved:
                text += f"\n      {d}"
        if self.counterexample is not None:
            text += f"\n      counterexample: {self.counterexample}"
        return text


@dataclass(frozen=True)
class GeneralProofReport(Proofs[GeneralProof]):
    """Every identity of ``prove``, for all sizes the assumptions allow; ``holds`` iff each is proved."""

    spec: Domain
    proofs: tuple[GeneralProof, ...]
    solvers: tuple[str, ...] = SOLVERS
    timeout: float = 10.0
    options: tuple[tuple[str, object], ...] = ()
    """The arguments of ``prove_general`` that made the spec: a certificate is re-derived from them."""

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.proofs)

    @property
    def assumptions(self) -> tuple[Constraint, ...]:
        return self.spec.assumptions()

    def title(self) -> str:
        return f"every size ({self.spec.describe()}), assuming " + ", ".join(
            str(c.relational()) for c in self.assumptions)

    def _repr_latex_(self) -> str:
        from ...printing.latex import latex

        return f"$\\displaystyle {latex(self)}$"


def _decide(o: Obligation, solvers: Sequence[str], timeout: float) -> Decision:
    runs = []
    if "z3" in solvers:
        runs.append(run_z3(o, timeout))
    if "isl" in solvers and o.is_linear:
        runs.append(run_isl(o))
    conclusive = {r.proved for r in runs if r.proved or r.answer in ("sat", "not subset")}
    if len(conclusive) > 1:
        raise SolverDisagreement(f"z3 and isl disagree on {o}: " + ", ".join(f"{r.solver} {r.answer}" for r in runs))
    return Decision(o, tuple(runs))


def _entry_range(eq: Equation) -> tuple[Constraint, ...]:
    return tuple(c for e, r in zip(eq.entry, eq.ranges) for c in (Constraint(">=", e), Constraint(">=", r - 1 - e)))


def sides_of(spec: Domain, eq: Equation, names: Optional[Mapping[str, Sequence[str]]] = None) -> Sides:
    """Both sides of one equation normalised, and their terms matched (bound variables named by ``names``)."""
    shapes = spec.shapes()
    names = names if names is not None else index_names(spec)  # type: ignore[arg-type]
    left = normalise(eq.derived, shapes, names)
    right = normalise(eq.closed.at(*eq.spatial), shapes, names)
    return Sides(eq.tensor, eq.entry, eq.ranges, left, right, eq.extent, eq.closed.extent, eq.closed.floors,
                 match(left, right), eq.closed.tex)


def equation_obligations(spec: Domain, sides: Sides, prefix: str) -> tuple[tuple[Obligation, ...], tuple[str, ...]]:
    """The obligations of one equation (sizes, then each matching's), and the matchings no obligation decides."""
    parameters = spec.parameters() + tuple(z for z, _, _ in sides.floors)
    definitions = tuple(c for z, x, y in sides.floors for c in (Constraint(">=", x - y * z), Constraint(">=", y * z + y - 1 - x)))
    assumptions = spec.assumptions() + definitions
    entry_range = tuple(c for e, r in zip(sides.entry, sides.ranges) for c in (Constraint(">=", e), Constraint(">=", r - 1 - e)))
    out: list[Obligation] = []
    axes = [a.name or "x" for a in spec.axes]
    for axis, left, right in zip(axes, sides.derived_extent, sides.closed_extent):
        out.append(Obligation(f"{prefix} size {axis}", f"the closed form has {left} entries on axis {axis}",
                              parameters, (), assumptions, (), (Constraint("==", right - left),)))
    problems = []
    for m in sides.matchings:
        if m.problem is not None:
            problems.append(f"{prefix} {'·'.join(m.signature)}: {m.problem}")
            continue
        out += obligations(prefix, m, parameters, sides.entry, assumptions, entry_range)
    return tuple(out), tuple(problems)


def plan(spec: Domain, equations: Sequence[Equation], names: Optional[Mapping[str, Sequence[str]]] = None
         ) -> tuple[tuple[Sides, ...], tuple[Obligation, ...], tuple[str, ...]]:
    """Everything of a proof but the solver runs: the sides, the obligations, and what no obligation decides."""
    all_sides: list[Sides] = []
    obligations_: list[Obligation] = []
    problems: list[str] = []
    for eq in equations:
        sides = sides_of(spec, eq, names)
        obls, probs = equation_obligations(spec, sides, eq.tensor)
        all_sides.append(sides)
        obligations_ += obls
        problems += probs
    return tuple(all_sides), tuple(obligations_), tuple(problems)


def _concrete(spec: GeneralSpec, name: str) -> Callable[[Mapping[str, int]], tuple[Concrete, Proof]]:
    """The same identity proved by the concrete prover on the shape of a solver's point."""
    def run(point: Mapping[str, int]) -> tuple[Concrete, Proof]:
        conv = spec.to_conv_spec(point)
        return conv, prove(conv)[name]
    return run


Planner = Callable[[Sequence[Equation]], tuple[tuple[Sides, ...], tuple[Obligation, ...], tuple[str, ...]]]


def prove_identity(name: str, statement: str, equations: Sequence[Equation], solvers: Sequence[str], timeout: float,
                   planner: Planner, concrete: Callable[[Mapping[str, int]], tuple[Concrete, Proof]],
                   abstraction: str = "") -> GeneralProof:
    """One identity: planned (sides, obligations), decided, and a refutation rebuilt and re-checked concretely.

    ``abstraction`` names what the guarded sums forget (functions of the tensors read as atoms): a solver's
    point then refutes the abstracted identity only, and where the concrete prover proves it the identity is
    *not proved* (``unconfirmed``), not refuted; without one, that disagreement is a bug and raises."""
    start = time.perf_counter()
    all_sides, obls, problems = planner(equations)
    decisions = [_decide(o, solvers, timeout) for o in obls]
    counterexample: Optional[GeneralCounterexample] = None
    unconfirmed: tuple[str, ...] = ()
    for d in decisions:
        refuting = [r for r in d.runs if r.model]
        if refuting:
            run = refuting[0]
            shape, proof = concrete(run.point)
            if abstraction and proof.holds:
                # The point refutes the abstracted identity only: not a counterexample, not a proof either.
                unconfirmed = (f"{d.obligation.name} fails at {run.point} once {abstraction}, but the concrete prover "
                               f"proves {shape.describe()}",)
                break
            counterexample = confirm(d.obligation.name, run.solver, run.point, shape, proof)
            break
    return GeneralProof(name, statement, tuple(all_sides), tuple(decisions), tuple(problems), counterexample,
                        time.perf_counter() - start, unconfirmed)


def prove_general(*, axes: int = 2, channels: bool = True, flip: bool = False, input_size=None, kernel_size=None,
                  stride=None, padding=None, dilation=None, batch: Optional[int] = None,
                  in_channels: Optional[int] = None, out_channels: Optional[int] = None,
                  per_side: bool = False, pad_end=None, grouped: bool = False, groups: Optional[int] = None,
                  names: Sequence[str] = IDENTITY_NAMES, solvers: Sequence[str] = SOLVERS,
                  timeout: float = 10.0) -> GeneralProofReport:
    """Prove the identities of ``prove`` for every size: symbolic n, k, s, p, d per axis (and channel counts),
    except those given; ``per_side``: the padding after the input is a size of its own; ``grouped``: G groups
    (``groups`` fixes G) of C input channels and K filters each (``GeneralSpec.of``).

    >>> report = prove_general(axes=1, channels=False, names=("grad_input",))
    >>> report.holds, report["grad_input"].verdict
    (True, 'proved')
    """
    options = dict(axes=axes, channels=channels, flip=flip, input_size=input_size, kernel_size=kernel_size,
                   stride=stride, padding=padding, dilation=dilation, batch=batch, in_channels=in_channels,
                   out_channels=out_channels, per_side=per_side, pad_end=pad_end, grouped=grouped, groups=groups)
    spec = GeneralSpec.of(**options)
    unknown = set(names) - set(IDENTITY_NAMES)
    if unknown:
        raise ValueError(f"unknown identities {sorted(unknown)}; choose from {', '.join(IDENTITY_NAMES)}")
    unknown = set(solvers) - set(SOLVERS)
    if unknown or not solvers:
        raise ValueError(f"solvers must be some of {', '.join(SOLVERS)}, got {list(solvers)}")
    chosen: list[Identity] = [i for i in identities(spec) if i.name in names]
    proofs = tuple(prove_identity(i.name, i.statement, i.equations, solvers, timeout,
                                  lambda eqs: plan(spec, eqs), _concrete(spec, i.name)) for i in chosen)
    return GeneralProofReport(spec, proofs, tuple(solvers), timeout, tuple(options.items()))


def check_general(spec: GeneralSpec, name: Checkable, candidate: Grid, *, solvers: Sequence[str] = SOLVERS,
                  timeout: float = 10.0) -> GeneralProof:
    """Prove a closed form of one's own for every size of ``spec``, or refute it with a shape that the concrete
    ``check`` refutes too. ``candidate`` is written in ``notation`` over ``spec.X``, ``spec.F``, ``spec.G``
    (one image, one channel, one filter: ``GeneralSpec.of(channels=False)``).

    >>> from symconv.proofs.general.notation import correlate, dilate, pad, rot180
    >>> L = GeneralSpec.of(axes=1)
    >>> no_rotation = correlate(pad(dilate(L.G, L.s), L.k_eff - 1 - L.p, L.k_eff - 1 - L.p + L.a), dilate(L.F, L.d))
    >>> proof = check_general(L, "grad_input", no_rotation)
    >>> proof.verdict, proof.counterexample.concrete.holds
    ('refuted', False)
    """
    if spec.counts is not None:
        raise ValueError("check_general takes the one-channel closed form: GeneralSpec.of(..., channels=False)")
    table = derived_tensors(spec)
    if name not in table:
        raise ValueError(f"name must be one of {', '.join(table)}, got {name!r}")
    base = table[name]
    if candidate.axes != len(base.ranges):
        raise ValueError(f"{name} has {len(base.ranges)} spatial axes, the candidate {candidate.axes}")
    eq = Equation(name, base.entry, base.ranges, base.derived, candidate)
    check = check_candidate(spec, name, candidate)

    def concrete(point: Mapping[str, int]) -> tuple[Concrete, Proof]:
        conv = spec.to_conv_spec(point)
        return conv, check(conv)
    return prove_identity(f"check_{name}", f"{name} equals the given closed form", [eq], solvers, timeout,
                          lambda eqs: plan(spec, eqs), concrete)
