"""Equations: a ``Derivation`` -> its textbook equations as ``Section``s of rows for amsmath ``aligned`` blocks.

Per section (forward pass, filter, input and bias gradient): the entry equations (the forward sums in kernel
order, or the chain rule with its zero terms and then evaluated), then the closed form, once in general and
once with the matrices written out. The closed forms are ``ClosedForm`` plans whose every operator carries
both its LaTeX and its NumPy function, so the printed formula can be checked against ``forms``.

Only what is printed is computed: a sum longer than ``max_terms`` asks SymPy for the kept terms alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterator, Literal, NamedTuple, Optional

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from ..symbolic import forms
from ..symbolic.derive import ChainTerm, Derivation, Wrt, forward_taps
from ..symbolic.spec import ConvSpec, Pair
from ..symbolic.symbols import GRAD_PREFIX, positions, to_numpy
from .latex_printer import VDOTS_ROW, ConvLatexPrinter, LatexOptions, elide, partial, pmatrix, sum_rows

__all__ = ["Section", "Op", "ClosedForm", "closed_form", "derivation_sections"]

Index = tuple[int, ...]
Form = Literal["output", "weight", "input"]
_MAX_SUMMED_MAPS = 3  # matrix terms of a channel/batch sum written out; wider sums stand behind \cdots
_MAX_COLUMNS_PER_ROW = 12  # matrix columns on one row of a written-out closed form before it is split


@dataclass(frozen=True)
class Section:
    """One part of a derivation, ``key`` forward, weight, input or bias: the rows of two ``aligned`` blocks,
    the equations entry by entry and the closed form."""

    key: str
    title: str
    entries: tuple[str, ...]
    closed_form: tuple[str, ...]

    @property
    def blocks(self) -> tuple[tuple[str, ...], ...]:
        return (self.entries, self.closed_form)


class Op(NamedTuple):
    """One operator of a closed form: how it is printed and what it does to a map."""

    tex: str
    apply: Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ClosedForm:
    """``outer(operation(left(A), right(B)))``, summed over one channel or batch axis."""

    operation: str  # Correlation or Convolution (valid, at ``stride``)
    stride: Pair
    left: tuple[Op, ...]
    right: tuple[Op, ...]
    outer: tuple[Op, ...]

    def evaluate(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """The closed form on two maps, with ``forms``' own operations."""
        run = forms.convolve if self.operation == "Convolution" else forms.correlate
        return _run(self.outer, run(_run(self.left, a), _run(self.right, b), self.stride))

    def tex(self, a: str, b: str, operands_applied: bool = False, split: bool = False) -> list[str]:
        """The closed form on two printed operands, as one row or (``split``) two, the second operand on the
        second; ``operands_applied`` when they are ``left(A)`` and ``right(B)`` written out already (zeros and
        all), so only the operation and the outer operators remain."""
        if not operands_applied:
            a, b = _wrap(self.left, a), _wrap(self.right, b)
        stride = "" if self.stride == (1, 1) else f"_{{s={_pair(self.stride)}}}"
        opens = "".join(rf"{op.tex}\left(" for op in reversed(self.outer))
        opens += rf"\operatorname{{{self.operation}}}{stride}\left("
        depth = len(self.outer) + 1
        if not split:
            return [f"{opens}{a}, {b}" + r"\right)" * depth]
        # A row's \left( must close on that row: \right. and \left. are the invisible halves across the break.
        return [f"{opens}{a}," + r"\right." * depth, r"\left." * depth + f" {b}" + r"\right)" * depth]


def _run(ops: tuple[Op, ...], m: np.ndarray) -> np.ndarray:
    for op in ops:
        m = op.apply(m)
    return m


def _wrap(ops: tuple[Op, ...], tex: str) -> str:
    for op in ops:
        tex = rf"{op.tex}\left({tex}\right)"
    return tex


def _pair(p: Pair) -> str:
    return str(p[0]) if p[0] == p[1] else f"({p[0]},{p[1]})"


def _pad(before: Pair, after: Pair) -> tuple[Op, ...]:
    if before == after == (0, 0):
        return ()
    sub = _pair(before) if before == after else f"{_pair(before)},{_pair(after)}"
    return (Op(rf"\operatorname{{pad}}_{{{sub}}}", lambda m: forms.pad(m, before, after)),)


def _dilate(factor: Pair) -> tuple[Op, ...]:
    if factor == (1, 1):
        return ()
    return (Op(rf"\operatorname{{dilate}}_{{{_pair(factor)}}}", lambda m: forms.dilate(m, factor)),)


def _rot180(when: bool) -> tuple[Op, ...]:
    return (Op(r"\operatorname{rot180}", forms.rot180),) if when else ()


def closed_form(spec: ConvSpec, form: Form) -> ClosedForm:
    r"""The closed form of ``output`` (on X, F), ``weight`` (on X, dE/dO) or ``input`` (on dE/dO, F).

    Operators: ``pad_{p}`` (p zeros around; ``pad_{b,a}``: b before, a after), ``dilate_{s}`` (s - 1 zeros
    between entries), ``rot180``, ``crop_{h\times w}`` (the top-left h x w block), ``subsample_{d}`` (every
    d-th row and column from the first); ``Correlation_{s=2}`` is valid correlation at stride 2.

    >>> f = closed_form(ConvSpec((6, 6), (3, 3), stride=2), "input")
    >>> f.operation, [op.tex for op in f.left], [op.tex for op in f.right]
    ('Correlation', ['\\operatorname{dilate}_{2}', '\\operatorname{pad}_{2,3}'], ['\\operatorname{rot180}'])
    >>> print(f.tex("G", "F")[0].replace(r"\left", "").replace(r"\right", ""))
    \operatorname{Correlation}(\operatorname{pad}_{2,3}(\operatorname{dilate}_{2}(G)), \operatorname{rot180}(F))
    """
    eh, ew = spec.effective_kernel
    if form == "output":
        return ClosedForm("Convolution" if spec.flip else "Correlation", spec.stride,
                          _pad(spec.pad_begin, spec.pad_end), _dilate(spec.dilation), ())
    if form == "weight":
        crop = () if spec.leftover == (0, 0) else (
            Op(rf"\operatorname{{crop}}_{{{eh}\times {ew}}}", lambda m: m[:eh, :ew]),)
        dh, dw = spec.dilation
        subsample = () if spec.dilation == (1, 1) else (
            Op(rf"\operatorname{{subsample}}_{{{_pair(spec.dilation)}}}", lambda m: m[::dh, ::dw]),)
        return ClosedForm("Correlation", (1, 1), _pad(spec.pad_begin, spec.pad_end), _dilate(spec.stride),
                          crop + _rot180(spec.flip) + subsample)
    if form == "input":
        (bh, ah_), (bw, aw_) = spec.full_padding  # k_eff-1-p_begin before, k_eff-1-p_end+a after
        before, after = (bh, bw), (ah_, aw_)
        # rot180 of the layer's kernel: for true convolution that kernel is rotated already, and the two cancel.
        return ClosedForm("Correlation", (1, 1), _dilate(spec.stride) + _pad(before, after),
                          _dilate(spec.dilation) + _rot180(not spec.flip), ())
    raise ValueError(f"form must be output, weight or input, got {form!r}")


class _Writer:
    """Prints one derivation; remembers which outputs use which entry, for cutting long chain-rule sums."""

    def __init__(self, d: Derivation, options: LatexOptions) -> None:
        # a layer without bias has no b to print, whatever the options say
        self.d, self.o, self.spec = d, options if d.spec.bias else replace(options, bias=False), d.spec
        self.printer = ConvLatexPrinter({"max_terms": options.max_terms})
        self._users: dict[str, dict[Index, list[int]]] = {}

    def tex(self, expr: sp.Expr) -> str:
        return self.printer.doprint(expr)

    def output_symbol(self, p: Index) -> sp.Symbol:
        return sp.Symbol(self.d.grad_output[p].name[len(GRAD_PREFIX) :])

    def entries(self, shape: tuple[int, ...]) -> Iterator[Optional[Index]]:
        """The indices of a list of equations, cut to ``max_entries``; ``None`` for the entries left out."""
        for i in elide(int(np.prod(shape)), self.o.max_entries):
            yield None if i is None else tuple(int(v) for v in np.unravel_index(i, shape))

    # -- forward pass --------------------------------------------------------------------------------------

    def forward_rows(self) -> list[str]:
        rows: list[str] = []
        for p in self.entries(self.spec.output_shape):
            if p is None:
                rows.append(VDOTS_ROW)
                continue
            terms = self.d.forward_terms(p)
            terms = terms[:-1] if self.spec.bias and not self.o.bias else terms  # the bias is the last term
            kept = elide(len(terms), self.o.max_terms)
            printed = [None if i is None else self.tex(terms[i]) for i in kept]
            rows += sum_rows(self.tex(self.output_symbol(p)), printed, self.o.terms_per_line)
        return rows

    # -- chain rule ----------------------------------------------------------------------------------------

    def users(self, wrt: Wrt) -> dict[Index, list[int]]:
        """Entry -> the flat indices of the outputs whose sum contains it, read off the forward definition."""
        if wrt not in self._users:
            table: dict[Index, list[int]] = {}
            for flat, p in enumerate(positions(self.spec.output_shape)):
                if wrt == "bias":
                    table.setdefault((p[1],), []).append(flat)
                    continue
                for w, x in forward_taps(self.spec, p):
                    table.setdefault(w if wrt == "weight" else x, []).append(flat)
            self._users[wrt] = table
        return self._users[wrt]

    def chain_terms(self, wrt: Wrt, index: Index) -> list[Optional[ChainTerm]]:
        """The chain-rule sum of one entry: all of it when short, else its non-zero terms first (``None`` = cut)."""
        n = len(self.d.output)
        if n <= self.o.max_terms:
            return list(self.d.chain_rule(wrt, index))
        theta, shape = self.d.tensor(wrt)[index], self.spec.output_shape
        out: list[Optional[ChainTerm]] = []
        for flat in elide(n, self.o.max_terms, self.users(wrt).get(index, [])):
            if flat is None:
                out.append(None)
                continue
            p = tuple(int(v) for v in np.unravel_index(flat, shape))
            # The same term Derivation.chain_rule builds, for the printed outputs only.
            out.append(ChainTerm(p, self.d.grad_output[p], sp.diff(self.d.output[p], theta)))
        return out

    def chain_rows(self, wrt: Wrt) -> list[str]:
        tensor, rows = self.d.tensor(wrt), []
        for index in self.entries(tensor.shape):
            if index is None:
                rows.append(VDOTS_ROW)
                continue
            theta = self.tex(tensor[index])
            terms = self.chain_terms(wrt, index)
            chain = [None if t is None else self.chain(t, theta) for t in terms]
            evaluated = [None if t is None else self.evaluated(t) for t in terms]
            rows += sum_rows(partial("E", theta), chain, self.o.terms_per_line)
            rows += sum_rows("", evaluated, self.o.terms_per_line)
        return rows

    def chain(self, term: ChainTerm, theta: str) -> str:
        """``dE/dO_p dO_p/dθ``: the chain-rule term before the local derivative is known."""
        return f"{self.tex(term.upstream)} {partial(self.tex(self.output_symbol(term.output_index)), theta)}"

    def evaluated(self, term: ChainTerm) -> str:
        """``dE/dO_p`` times its local derivative, upstream first and zeros kept, as the textbooks write it."""
        if term.local == 1:
            return self.tex(term.upstream)
        return f"{self.tex(term.upstream)} {self.printer.parenthesize(term.local, PRECEDENCE['Mul'])}"

    # -- closed forms --------------------------------------------------------------------------------------

    def names(self, form: Form) -> tuple[str, str, str, str, int]:
        """(lhs, left operand, right operand, summed index, size of the summed axis) as printed in general.

        The summed index is the subscript of the sum (``c``, or ``k = a`` with its range for a grouped input
        gradient). With groups, filter k reads the C/groups input channels of its group: the printed channel
        indices say which, as SymPy's floors of the group sizes.
        """
        s = self.spec
        if s.is_single:
            return {"output": ("O", "X", "F", "", 1), "weight": (partial("E", "F"), "X", partial("E", "O"), "", 1),
                    "input": (partial("E", "X"), partial("E", "O"), "F", "", 1)}[form]
        letter, size = {"output": ("c", s.group_in_channels), "weight": ("n", s.batch),
                        "input": ("k", s.group_out_channels)}[form]
        base = self.d.index_base
        n, k, c = (sp.Symbol(name, integer=True) for name in "nkc")
        # A summed axis of size one is no sum: its index is the one value it takes.
        index = {"n": n, "k": k, "c": c} | ({} if size > 1 else {letter: sp.Integer(base)})
        x_channel, f_channel = index["c"], index["c"]
        cg, kg = s.group_in_channels, s.group_out_channels
        if s.groups > 1 and form == "input":  # c is the input channel; the filters of its group read it
            first = kg * _floor_ratio(c - base, cg) + base
            if size > 1:
                letter = rf"k={sp.latex(first)}}}^{{{sp.latex(first + kg - 1)}"
            else:
                index["k"] = first
            f_channel = c - cg * _floor_ratio(c - base, cg)
        elif s.groups > 1:  # c counts the filter's own channels; its group's inputs start after the others'
            if cg == 1:
                index["c"] = sp.Integer(base)  # one channel per group: the filter's channel is always the first
            x_channel = cg * _floor_ratio(k - base, kg) + index["c"]
        tex = {name: sp.latex(value) for name, value in index.items()}
        x = f"X^{{({tex['n']},{sp.latex(x_channel)})}}"
        f = f"F^{{({tex['k']},{sp.latex(f_channel)})}}"
        g = partial("E", f"O^{{({tex['n']},{tex['k']})}}")
        return {"output": ("O^{(n,k)}", x, f, letter, size),
                "weight": (partial("E", "F^{(k,c)}"), x, g, letter, size),
                "input": (partial("E", "X^{(n,c)}"), g, f, letter, size)}[form]

    def operands(self, form: Form, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The two maps of the first instance of a closed form, ``i`` along its summed axis."""
        X, F, G = (to_numpy(t) for t in (self.d.input, self.d.weight, self.d.grad_output))
        if form == "output":
            return X[0, i], F[0, i]
        return (X[i, 0], G[i, 0]) if form == "weight" else (G[0, i], F[i, 0])

    def lhs_map(self, form: Form) -> np.ndarray:
        """The left-hand side of the first instance: O, dE/dF or dE/dX of the first image, channel and filter."""
        if form == "output":
            rows, cols = self.spec.output_size
            return forms.matrix([[self.output_symbol((0, 0, i, j)) for j in range(cols)] for i in range(rows)])
        tensor = to_numpy(self.d.tensor(form))[0, 0]
        return np.vectorize(lambda s: sp.Symbol(GRAD_PREFIX + s.name), otypes=[object])(tensor)

    def closed_form_rows(self, form: Form) -> list[str]:
        """The closed form in general, then with the matrices of the first image, channel and filter."""
        plan, limit = closed_form(self.spec, form), self.o.max_matrix
        lhs, left, right, letter, size = self.names(form)
        bias = ("b" if self.spec.is_single else "b_{k}") if self.o.bias and form == "output" else ""
        total = rf"\sum_{{{letter}}} " if size > 1 else ""
        rows = [f"{lhs} &= {total}{plan.tex(left, right)[0]}" + (f" + {bias}" if bias else "")]
        lhs_map = self.lhs_map(form)
        kept = elide(size, _MAX_SUMMED_MAPS)
        for position, i in enumerate(kept):
            prefix = f"{pmatrix(lhs_map, self.printer, limit)} &= " if position == 0 else r"&\quad + "
            if i is None:
                rows.append(prefix + r"\cdots")
                continue
            a, k = (_run(ops, m) for ops, m in zip((plan.left, plan.right), self.operands(form, i)))
            # Three matrices side by side overflow the page beyond a dozen columns: the kernel goes below.
            split = sum(min(m.shape[1], limit + 1) for m in (lhs_map, a, k)) > _MAX_COLUMNS_PER_ROW
            pieces = plan.tex(pmatrix(a, self.printer, limit), pmatrix(k, self.printer, limit), True, split)
            if bias and position == len(kept) - 1:
                pieces[-1] += f" + {self.tex(self.d.bias[0])}"
            rows += [prefix + pieces[0]] + [rf"&\qquad {piece}" for piece in pieces[1:]]
        return rows

    def bias_rows(self) -> list[str]:
        single = self.spec.is_single
        lhs = partial("E", "b" if single else "b_{k}")
        total = r"\sum_{i,j} " + partial("E", "O_{ij}") if single else r"\sum_{n,i,j} " + partial("E", "O^{(n,k)}_{ij}")
        return [f"{lhs} &= {total}"]


def derivation_sections(d: Derivation, options: Optional[LatexOptions] = None) -> list[Section]:
    """The printed derivation: forward pass, filter gradient, input gradient and (with the bias) bias gradient.

    >>> from symconv import ConvSpec, derive
    >>> forward = derivation_sections(derive(ConvSpec((3, 3), (2, 2))), LatexOptions(bias=False))[0]
    >>> forward.entries[0]
    'O_{11} &= F_{11} X_{11} + F_{12} X_{12} + F_{21} X_{21} + F_{22} X_{22}'
    """
    w = _Writer(d, options or LatexOptions())
    sections = [
        Section("forward", "Forward pass", tuple(w.forward_rows()), tuple(w.closed_form_rows("output"))),
        Section("weight", "Filter gradient", tuple(w.chain_rows("weight")), tuple(w.closed_form_rows("weight"))),
        Section("input", "Input gradient", tuple(w.chain_rows("input")), tuple(w.closed_form_rows("input"))),
    ]
    if w.o.bias:
        sections.append(Section("bias", "Bias gradient", tuple(w.chain_rows("bias")), tuple(w.bias_rows())))
    return sections


def _floor_ratio(numerator: sp.Expr, denominator: int) -> sp.Expr:
    """floor(numerator / denominator) as written, (k - 1)/2 rather than SymPy's k/2 - 1/2; the numerator alone if 1."""
    if denominator == 1:
        return numerator
    return sp.floor(sp.Mul(numerator, sp.Pow(denominator, -1, evaluate=False), evaluate=False), evaluate=False)
