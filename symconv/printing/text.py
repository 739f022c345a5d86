"""Plain text: a ``Derivation`` -> the textbook equations as terminal lines (LaTeX lives in ``latex``)."""

from __future__ import annotations

from itertools import islice
from typing import Iterator, Literal

import sympy as sp

from ..symbolic.derive import Derivation, Wrt
from ..symbolic.symbols import GRAD_PREFIX, positions

__all__ = ["forward_lines", "chain_rule_lines", "gradient_lines", "derivation_text"]


def _name(symbol: sp.Symbol) -> str:
    return symbol.name


def _output_name(d: Derivation, index: tuple[int, ...]) -> str:
    return d.grad_output[index].name[len(GRAD_PREFIX) :]


def _sum(terms: list[str]) -> str:
    return " + ".join(terms).replace("+ -", "- ") if terms else "0"


def forward_lines(d: Derivation) -> Iterator[str]:
    """``O_{11} = F_{11}*X_{11} + ... + b``, one line per output, terms in kernel order.

    >>> from symconv import ConvSpec, derive
    >>> next(forward_lines(derive(ConvSpec((3, 3), (2, 2)))))
    'O_{11} = F_{11}*X_{11} + F_{12}*X_{12} + F_{21}*X_{21} + F_{22}*X_{22} + b'
    """
    for p in positions(d.spec.output_shape):
        yield f"{_output_name(d, p)} = {_sum([sp.sstr(t) for t in d.forward_terms(p)])}"


def chain_rule_lines(d: Derivation, wrt: Wrt, index: tuple[int, ...]) -> tuple[str, str]:
    """The chain-rule sum for one entry, zero terms kept, and the same sum evaluated.

    >>> from symconv import ConvSpec, derive
    >>> chain, evaluated = chain_rule_lines(derive(ConvSpec((3, 3), (2, 2))), "input", (0, 0, 0, 1))
    >>> chain
    'dE/dX_{12} = dE/dO_{11}*dO_{11}/dX_{12} + dE/dO_{12}*dO_{12}/dX_{12} + dE/dO_{21}*dO_{21}/dX_{12} + dE/dO_{22}*dO_{22}/dX_{12}'
    >>> evaluated
    '           = dE/dO_{11}*F_{12} + dE/dO_{12}*F_{11} + dE/dO_{21}*0 + dE/dO_{22}*0'
    """
    theta = _name(d.tensor(wrt)[index])
    terms = d.chain_rule(wrt, index)
    lhs = f"{GRAD_PREFIX}{theta}"
    chain = _sum([f"{t.upstream.name}*d{_output_name(d, t.output_index)}/d{theta}" for t in terms])
    evaluated = _sum([f"{t.upstream.name}*{sp.sstr(t.local)}" for t in terms])
    return f"{lhs} = {chain}", f"{' ' * len(lhs)} = {evaluated}"


def gradient_lines(d: Derivation, wrt: Wrt) -> Iterator[str]:
    """``dE/dθ = <the summed gradient>`` for every entry of a tensor."""
    tensor, gradient = d.tensor(wrt), d.gradient(wrt)
    for index in positions(tensor.shape):
        yield f"{GRAD_PREFIX}{_name(tensor[index])} = {sp.sstr(gradient[index])}"


def derivation_text(d: Derivation, max_entries: int = 16) -> str:
    """Forward pass, chain rule and gradients, each list cut after ``max_entries`` lines."""

    def limited(lines: Iterator[str], total: int) -> list[str]:
        kept = list(islice(lines, max_entries))
        return kept + ([f"... ({total - max_entries} more)"] if total > max_entries else [])

    spec = d.spec
    out = [f"symconv: {spec.describe()}, output {spec.output_size[0]}x{spec.output_size[1]}", "", "Forward pass:"]
    out += limited(forward_lines(d), len(d.output))
    passes: tuple[tuple[Literal["input", "weight", "bias"], str], ...] = (("weight", "filter"), ("input", "input"))
    for wrt, title in passes:
        tensor = d.tensor(wrt)
        out += ["", f"Chain rule for the {title} gradient (every output, zero terms kept):"]
        chains = (line for index in positions(tensor.shape) for line in chain_rule_lines(d, wrt, index))
        out += limited(chains, 2 * len(tensor))
    for wrt, title in passes + (("bias", "bias"),):
        out += ["", f"Gradient of the {title}:"]
        out += limited(gradient_lines(d, wrt), len(d.tensor(wrt)))
    return "\n".join(out)
