"""Network proofs: a ``NetworkDerivation`` and a point -> a ``NetworkProofReport``: backprop is SymPy's derivative.

The whole loss is piecewise (ReLU and max pooling are ``Max``), so the proof is on a region, exactly:

1. take an exact rational point (given, or seeded random) and run the forward pass on it, in exact arithmetic,
   recording each piecewise layer's branch there: which ReLU inputs are positive, which unit wins each window;
2. rebuild the loss with every ``Max`` replaced by its branch (``forward_on``): a polynomial (MSE) or a
   log-sum-exp of polynomials (cross-entropy) that equals the loss on the whole open region around the point;
3. compose the layers' closed forms backwards from the loss's (backpropagation), and compare them with SymPy's
   derivative of the region's loss by every input and parameter entry: the difference reduces to 0 exactly;
4. confirm that SymPy's derivative of the piecewise loss itself (``Heaviside`` from ``Max``), evaluated at the
   point, gives the same numbers, and that the region's loss equals the piecewise loss there.

A point on a region boundary (a ReLU input exactly 0, a tie for a window's maximum between units that differ) has
no derivative; a given point there is refused, a random one redrawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np
import sympy as sp

from ..symbolic.layer_symbols import exact_rational
from ..symbolic.layers import MaxPool2d, ReLU, entrywise
from .conv import Proof
from .layers import LayerProofReport, compare, draw_rational, gradient

if TYPE_CHECKING:  # network.py imports this module; the annotation alone needs the class
    from ..symbolic.network import NetworkDerivation

__all__ = ["NetworkProofReport", "prove_network", "RegionPass", "region_pass", "exact_rational"]


@dataclass(frozen=True)
class NetworkProofReport(LayerProofReport):
    """The proofs for a whole network on one region; ``point`` is the exact point that picked the region."""

    point: Mapping[sp.Symbol, sp.Rational] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class RegionPass:
    """A forward pass on one region: each layer's input as an expression on the region, and its branch."""

    inputs: tuple[np.ndarray, ...]
    branches: tuple[Optional[np.ndarray], ...]
    output: np.ndarray


def _at(tensor: np.ndarray, point: Mapping[sp.Symbol, Any]) -> np.ndarray:
    return entrywise(lambda v: sp.sympify(v).xreplace(point), tensor)


def region_pass(d: "NetworkDerivation", point: Mapping[sp.Symbol, sp.Rational]) -> tuple[Optional[RegionPass], str]:
    """The forward pass on the region of ``point``, symbolic and exact side by side; (None, why) on a boundary."""
    expressions, values = d.input, _at(d.input, point)
    inputs, branches = [], []
    for i, layer in enumerate(d.network.body):
        local = d.layer_params(i)
        branch = layer.branch(values) if layer.piecewise else None
        issue = layer.boundary(values, expressions)
        if issue is not None:
            return None, f"layer {i}: {issue}"
        inputs.append(expressions)
        branches.append(branch)
        expressions = layer.forward_on(expressions, local, branch)
        values = layer.forward_on(values, {k: _at(v, point) for k, v in local.items()}, branch)
    return RegionPass(tuple(inputs), tuple(branches), expressions), ""


def _describe_region(d: "NetworkDerivation", region: RegionPass) -> str:
    parts = []
    for i, (layer, branch) in enumerate(zip(d.network.body, region.branches)):
        if branch is None:  # a layer that is one polynomial has no branch to describe
            continue
        if isinstance(layer, ReLU):
            parts.append(f"layer {i} ReLU: {int(branch.sum())} of {branch.size} positive")
        elif isinstance(layer, MaxPool2d):
            parts.append(f"layer {i} MaxPool2d winners {branch.ravel().tolist()}")
    return "; ".join(parts)


def _exact_point(d: "NetworkDerivation", point: Mapping[sp.Symbol, Any]) -> dict[sp.Symbol, sp.Rational]:
    symbols = [s for tensor in d.free_tensors().values() for s in tensor.flat]
    missing = [s for s in symbols if s not in point]
    if missing:
        raise ValueError(f"the point gives no value for {len(missing)} symbols, e.g. {missing[0]}")
    return {s: exact_rational(point[s], str(s)) for s in symbols}



def _choose_region(
    d: "NetworkDerivation", point: Optional[Mapping[sp.Symbol, Any]], seed: int
) -> tuple[dict[sp.Symbol, sp.Rational], RegionPass]:
    if point is not None:
        exact = _exact_point(d, point)
        region, issue = region_pass(d, exact)
        if region is None:
            raise ValueError(f"the point lies on a region boundary, where the loss has no derivative: {issue}")
        return exact, region
    rng = np.random.default_rng(seed)
    symbols = [s for tensor in d.free_tensors().values() for s in tensor.flat]
    for _ in range(100):
        exact = {s: draw_rational(rng) for s in symbols}
        region, _issue = region_pass(d, exact)
        if region is not None:
            return exact, region
    raise RuntimeError("no random point off the region boundaries in 100 draws")


def prove_network(
    d: "NetworkDerivation", point: Optional[Mapping[sp.Symbol, Any]] = None, seed: int = 0
) -> NetworkProofReport:
    """Backpropagation through the closed forms equals SymPy's derivative of the whole loss, on one region.

    One proof per tensor (``grad_input``, ``grad_0.weight``, ...: PyTorch's parameter names), then the checks at
    the point. A counterexample names the tensor and entry, e.g. ``0.weight (F^{[1]})`` at [0, 0, 1, 2].
    """
    network = d.network
    exact, region = _choose_region(d, point, seed)
    region_loss = network.loss.forward(region.output, d.target)

    # Backpropagation: the loss's closed form, then each layer's, from the last layer to the first.
    grad = network.loss.backward(region.output, d.target)
    claimed: dict[str, np.ndarray] = {}
    for i in reversed(range(len(network.body))):
        grad, local = network.body[i].backward(region.inputs[i], d.layer_params(i), grad, region.branches[i])
        claimed.update({f"{i}.{k}": v for k, v in local.items()})
    claimed["input"] = grad

    tensors = {"input": d.input, **d.params}
    proofs: list[Proof] = []
    for key, tensor in tensors.items():
        letter = str(tensor.flat[0]).split("_")[0]
        proofs.append(
            compare(
                f"grad_{key}",
                f"backpropagation through the closed forms = SymPy's dE/d{letter} of the whole loss on the region",
                [(f"{key} ({letter})", gradient(region_loss, tensor), claimed[key])],
            )
        )

    # SymPy's own derivative of the piecewise loss (Max -> Heaviside), at the point: numbers, exact.
    derived_at = {k: entrywise(lambda s: sp.diff(d.loss, s).xreplace(exact), t) for k, t in tensors.items()}
    proofs.append(
        compare(
            "piecewise_at_point",
            "SymPy's derivative of the piecewise loss (Heaviside from Max) equals backpropagation"
            " at the region's point",
            [(key, derived_at[key], _at(claimed[key], exact)) for key in tensors],
        )
    )
    loss_values = (
        np.array([d.loss.xreplace(exact)], dtype=object),
        np.array([region_loss.xreplace(exact)], dtype=object),
    )
    proofs.append(
        compare(
            "region_loss_at_point", "the region's loss equals the piecewise loss at the point", [("E", *loss_values)]
        )
    )

    subject = " -> ".join(layer.describe() for layer in network.layers) + f" on input {network.input_shape}"
    return NetworkProofReport(subject, tuple(proofs), _describe_region(d, region), exact)
