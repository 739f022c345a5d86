"""LaTeX: the textbook lines term for term, a parse of every printed equation back into SymPy, the closed forms
against ``forms``, elision of big layers, and every document compiled by pdflatex."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symconv import ConvSpec, check, derive, forms, latex, latex_document, prove
from symconv.cli import main
from symconv.printing.equations import closed_form, derivation_sections
from symconv.printing.latex_printer import VDOTS_ROW, LatexOptions
from symconv.proofs.conv import ProofReport
from symconv.symbolic.derive import Derivation
from symconv.symbolic.symbols import GRAD_PREFIX, positions, to_numpy

TEXTBOOK = ConvSpec((3, 3), (2, 2))

# The published derivation (Sujit Rai, "Forward and backpropagation in convolutional neural network", 2017),
# copied line for line, with two misprints corrected: its dE/dX_22 line writes f_{12} for F_{12}, and its
# dE/dX_23 line ends in F_{11} where O_22 = ... + F_12 X_23 + ... gives F_{12} (as its own delta X_23 line has).
SEED_FORWARD = [
    r"O_{11} = F_{11}X_{11} + F_{12}X_{12} + F_{21}X_{21} + F_{22}X_{22}",
    r"O_{12} = F_{11}X_{12} + F_{12}X_{13} + F_{21}X_{22} + F_{22}X_{23}",
    r"O_{21} = F_{11}X_{21} + F_{12}X_{22} + F_{21}X_{31} + F_{22}X_{32}",
    r"O_{22} = F_{11}X_{22} + F_{12}X_{23} + F_{21}X_{32} + F_{22}X_{33}",
]
SEED_FILTER_CHAIN = [
    rf"\frac{{\partial E}}{{\partial F_{{{f}}}}} &= "
    + " + ".join(rf"\frac{{\partial E}}{{\partial O_{{{o}}}}} \frac{{\partial O_{{{o}}}}}{{\partial F_{{{f}}}}}"
                 for o in ("11", "12", "21", "22"))
    for f in ("11", "12", "21", "22")
]
SEED_FILTER_EVALUATED = [
    r"\frac{\partial E}{\partial F_{11}} = \frac{\partial E}{\partial O_{11}} X_{11} + \frac{\partial E}{\partial O_{12}} X_{12} + \frac{\partial E}{\partial O_{21}} X_{21} + \frac{\partial E}{\partial O_{22}} X_{22}",
    r"\frac{\partial E}{\partial F_{12}} = \frac{\partial E}{\partial O_{11}} X_{12} + \frac{\partial E}{\partial O_{12}} X_{13} + \frac{\partial E}{\partial O_{21}} X_{22} + \frac{\partial E}{\partial O_{22}} X_{23}",
    r"\frac{\partial E}{\partial F_{21}} = \frac{\partial E}{\partial O_{11}} X_{21} + \frac{\partial E}{\partial O_{12}} X_{22} + \frac{\partial E}{\partial O_{21}} X_{31} + \frac{\partial E}{\partial O_{22}} X_{32}",
    r"\frac{\partial E}{\partial F_{22}} = \frac{\partial E}{\partial O_{11}} X_{22} + \frac{\partial E}{\partial O_{12}} X_{23} + \frac{\partial E}{\partial O_{21}} X_{32} + \frac{\partial E}{\partial O_{22}} X_{33}",
]
SEED_INPUT_EVALUATED = [
    r"\frac{\partial E}{\partial X_{11}} &= \frac{\partial E}{\partial O_{11}} F_{11} + \frac{\partial E}{\partial O_{12}} 0 + \frac{\partial E}{\partial O_{21}} 0 + \frac{\partial E}{\partial O_{22}} 0",
    r"\frac{\partial E}{\partial X_{12}} &= \frac{\partial E}{\partial O_{11}} F_{12} + \frac{\partial E}{\partial O_{12}} F_{11} + \frac{\partial E}{\partial O_{21}} 0 + \frac{\partial E}{\partial O_{22}} 0",
    r"\frac{\partial E}{\partial X_{13}} &= \frac{\partial E}{\partial O_{11}} 0 + \frac{\partial E}{\partial O_{12}} F_{12} + \frac{\partial E}{\partial O_{21}} 0 + \frac{\partial E}{\partial O_{22}} 0",
    r"\frac{\partial E}{\partial X_{21}} &= \frac{\partial E}{\partial O_{11}} F_{21} + \frac{\partial E}{\partial O_{12}} 0 + \frac{\partial E}{\partial O_{21}} F_{11} + \frac{\partial E}{\partial O_{22}} 0",
    r"\frac{\partial E}{\partial X_{22}} &= \frac{\partial E}{\partial O_{11}} F_{22} + \frac{\partial E}{\partial O_{12}} F_{21} + \frac{\partial E}{\partial O_{21}} F_{12} + \frac{\partial E}{\partial O_{22}} F_{11}",
    r"\frac{\partial E}{\partial X_{23}} &= \frac{\partial E}{\partial O_{11}} 0 + \frac{\partial E}{\partial O_{12}} F_{22} + \frac{\partial E}{\partial O_{21}} 0 + \frac{\partial E}{\partial O_{22}} F_{12}",
    r"\frac{\partial E}{\partial X_{31}} &= \frac{\partial E}{\partial O_{11}} 0 + \frac{\partial E}{\partial O_{12}} 0 + \frac{\partial E}{\partial O_{21}} F_{21} + \frac{\partial E}{\partial O_{22}} 0",
    r"\frac{\partial E}{\partial X_{32}} &= \frac{\partial E}{\partial O_{11}} 0 + \frac{\partial E}{\partial O_{12}} 0 + \frac{\partial E}{\partial O_{21}} F_{22} + \frac{\partial E}{\partial O_{22}} F_{21}",
    r"\frac{\partial E}{\partial X_{33}} &= \frac{\partial E}{\partial O_{11}} 0 + \frac{\partial E}{\partial O_{12}} 0 + \frac{\partial E}{\partial O_{21}} 0 + \frac{\partial E}{\partial O_{22}} F_{22}",
]

GRID = [
    TEXTBOOK,
    ConvSpec((3, 3), (2, 2), flip=True),
    ConvSpec((4, 5), (2, 3)),
    ConvSpec((5, 5), (3, 3), stride=2),
    ConvSpec((6, 6), (3, 3), stride=2),  # leftover a = 1: the filter gradient is cropped
    ConvSpec((5, 5), (3, 3), padding=1),
    ConvSpec((6, 6), (2, 2), dilation=2),
    ConvSpec((7, 6), (3, 2), stride=(2, 3), padding=(1, 0), dilation=(2, 1)),
    ConvSpec((6, 6), (3, 3), stride=2, padding=1, dilation=2, flip=True),
    ConvSpec((4, 4), (2, 2), in_channels=2, out_channels=3, batch=2),
    ConvSpec((5, 5), (3, 3), stride=2, padding=1, in_channels=2, out_channels=2, batch=2, flip=True),
]
EVERYTHING = dict(max_entries=10**6, max_terms=10**6, max_matrix=10**6)


@pytest.fixture(scope="module")
def textbook() -> dict[str, list[tuple[str, list[str]]]]:
    sections = derivation_sections(derive(TEXTBOOK), LatexOptions(bias=False))
    return {s.key: equations(s.entries) for s in sections}


# -- a small parser of the printed equations, for the tests only -------------------------------------------

NAME = r"[A-Za-z](?:\^\{\(\d+,\d+\)\})?(?:_\{\d+(?:,\d+)?\})?"
FRAC = rf"\\frac\{{\\partial (?P<num>{NAME})\}}\{{\\partial (?P<den>{NAME})\}}"
TOKEN = re.compile(rf"\s*(?:{FRAC}|(?P<name>{NAME})|(?P<int>\d+))")


def equations(rows: tuple[str, ...] | list[str]) -> list[tuple[str, list[str]]]:
    """Rows of an aligned block -> [(lhs, [rhs, rhs, ...])]: ``&= ...`` adds a right-hand side to the last
    equation, ``&\\quad + ...`` continues the last right-hand side."""
    out: list[tuple[str, list[str]]] = []
    for row in rows:
        if row == VDOTS_ROW:
            continue
        lhs, _, rhs = row.partition("&")
        if rhs.startswith("= ") and lhs.strip():
            out.append((lhs.strip(), [rhs[2:]]))
        elif rhs.startswith("= "):
            out[-1][1].append(rhs[2:])
        else:
            assert rhs.startswith(r"\quad + "), row
            out[-1][1][-1] += " + " + rhs[len(r"\quad + ") :]
    return out


def factors(term: str) -> list[tuple[str, ...]]:
    """One printed product -> its factors: ("sym", name), ("grad", name) for dE/dname, ("d", num, den), ("int", n)."""
    out, pos = [], 0
    while pos < len(term.rstrip()):
        m = TOKEN.match(term, pos)
        assert m is not None and m.end() > pos, f"cannot read {term[pos:]!r} in {term!r}"
        if m["num"] == "E":
            out.append(("grad", m["den"]))
        elif m["num"]:
            out.append(("d", m["num"], m["den"]))
        elif m["name"]:
            out.append(("sym", m["name"]))
        else:
            out.append(("int", m["int"]))
        pos = m.end()
    return out


def value(term: str, d: Derivation) -> sp.Expr:
    """A printed product of symbols and integers as the SymPy product of the derivation's own symbols."""
    names = {s.name: s for s in d.symbols}
    result = sp.S.One
    for f in factors(term):
        assert f[0] != "d", f"a derivative in an evaluated term: {term!r}"
        result *= sp.Integer(f[1]) if f[0] == "int" else names[GRAD_PREFIX + f[1] if f[0] == "grad" else f[1]]
    return result


def terms(rhs: str) -> list[str]:
    return rhs.split(" + ")


def squeeze(text: str) -> str:
    return re.sub(r"\s|&", "", text)


# -- the textbook, term for term ---------------------------------------------------------------------------


def test_textbook_lines_exactly():
    sections = {s.key: s for s in derivation_sections(derive(TEXTBOOK), LatexOptions(bias=False))}
    assert sections["forward"].entries[0] == r"O_{11} &= F_{11} X_{11} + F_{12} X_{12} + F_{21} X_{21} + F_{22} X_{22}"
    weight, inputs = sections["weight"].entries, sections["input"].entries
    assert weight[3] == (
        r"&= \frac{\partial E}{\partial O_{11}} X_{12} + \frac{\partial E}{\partial O_{12}} X_{13}"
        r" + \frac{\partial E}{\partial O_{21}} X_{22} + \frac{\partial E}{\partial O_{22}} X_{23}"
    )
    assert inputs[8] == (
        r"\frac{\partial E}{\partial X_{22}} &= \frac{\partial E}{\partial O_{11}} \frac{\partial O_{11}}{\partial X_{22}}"
        r" + \frac{\partial E}{\partial O_{12}} \frac{\partial O_{12}}{\partial X_{22}}"
        r" + \frac{\partial E}{\partial O_{21}} \frac{\partial O_{21}}{\partial X_{22}}"
        r" + \frac{\partial E}{\partial O_{22}} \frac{\partial O_{22}}{\partial X_{22}}"
    )
    assert inputs[9] == "&= " + SEED_INPUT_EVALUATED[4].split("&= ")[1]
    assert inputs[3] == (
        r"&= \frac{\partial E}{\partial O_{11}} F_{12} + \frac{\partial E}{\partial O_{12}} F_{11}"
        r" + \frac{\partial E}{\partial O_{21}} 0 + \frac{\partial E}{\partial O_{22}} 0"
    )


def test_every_published_line_term_for_term(textbook):
    def check_against(published: list[str], key: str, which: int) -> None:
        printed = {squeeze(lhs): [squeeze(rhs) for rhs in sides] for lhs, sides in textbook[key]}
        for line in published:
            lhs, rhs = squeeze(line).split("=", 1)
            assert printed[lhs][which] == rhs, line

    check_against(SEED_FORWARD, "forward", 0)
    check_against(SEED_FILTER_CHAIN, "weight", 0)
    check_against(SEED_FILTER_EVALUATED, "weight", 1)
    check_against(SEED_INPUT_EVALUATED, "input", 1)


def test_textbook_structure(textbook):
    assert [len(textbook[k]) for k in ("forward", "weight", "input")] == [4, 4, 9]
    for _lhs, sides in textbook["forward"]:
        assert len(sides) == 1 and len(terms(sides[0])) == 4
    for key in ("weight", "input"):
        for lhs, sides in textbook[key]:
            assert len(sides) == 2 and [len(terms(s)) for s in sides] == [4, 4], lhs


def test_bias_is_shown_by_default_and_has_its_section():
    sections = {s.key: s for s in derivation_sections(derive(TEXTBOOK))}
    assert sections["forward"].entries[0].endswith(r"F_{22} X_{22} + b")
    assert sections["bias"].entries[1] == r"&= " + " + ".join(
        rf"\frac{{\partial E}}{{\partial O_{{{o}}}}}" for o in ("11", "12", "21", "22"))
    assert "bias" not in {s.key for s in derivation_sections(derive(TEXTBOOK), LatexOptions(bias=False))}


def test_zero_based_names():
    rows = derivation_sections(derive(TEXTBOOK, index_base=0))[0].entries
    assert rows[0] == r"O_{00} &= F_{00} X_{00} + F_{01} X_{01} + F_{10} X_{10} + F_{11} X_{11} + b"


# -- round trip: the printed equations parsed back are the derivation's expressions -------------------------


@pytest.mark.parametrize("spec", GRID, ids=lambda s: s.describe())
def test_printed_equations_parse_back_to_the_derivation(spec):
    d = derive(spec)
    sections = {s.key: s for s in derivation_sections(d, LatexOptions(**EVERYTHING))}
    outputs = list(positions(spec.output_shape))
    forward = equations(sections["forward"].entries)
    assert len(forward) == len(outputs)
    for (lhs, [rhs]), p in zip(forward, outputs):
        assert GRAD_PREFIX + lhs == d.grad_output[p].name
        assert sp.Add(*(value(t, d) for t in terms(rhs))) == d.output[p]
    for wrt in ("weight", "input", "bias"):
        tensor = d.tensor(wrt)
        printed = equations(sections[wrt].entries)
        assert len(printed) == len(tensor)
        for (lhs, [chain, evaluated]), index in zip(printed, positions(tensor.shape)):
            theta = tensor[index].name
            assert factors(lhs) == [("grad", theta)]
            # The chain rule: dE/dO_p dO_p/dtheta for every output p, in order.
            names = [d.grad_output[p].name[len(GRAD_PREFIX) :] for p in outputs]
            assert [factors(t) for t in terms(chain)] == [[("grad", o), ("d", o, theta)] for o in names]
            # Evaluated: term by term the chain-rule terms, and in sum the gradient.
            evaluated_terms = [value(t, d) for t in terms(evaluated)]
            assert evaluated_terms == [t.value for t in d.chain_rule(wrt, index)]
            assert sp.Add(*evaluated_terms) == d.gradient(wrt)[index]


def test_cut_sums_keep_the_non_zero_terms_and_read_back_exactly():
    # 16 outputs, sums cut to 6 terms: an inner input entry keeps its 4 non-zero terms, so the printed terms
    # still add up to its gradient, and every printed term is the chain-rule term of its output.
    d = derive(ConvSpec((5, 5), (2, 2)))
    rows = {s.key: s for s in derivation_sections(d, LatexOptions(max_terms=6, max_entries=100))}["input"].entries
    for (lhs, [_chain, evaluated]), index in zip(equations(rows), positions(d.input.shape)):
        full = {t.upstream: t for t in d.chain_rule("input", index)}
        kept = [t for t in terms(evaluated) if t != r"\cdots"]
        assert len(kept) <= 6 and r"\cdots" in evaluated
        for t in kept:
            kind, upstream = factors(t)[0]
            assert kind == "grad"
            assert value(t, d) == full[value(rf"\frac{{\partial E}}{{\partial {upstream}}}", d)].value, (lhs, t)
        assert sp.Add(*(value(t, d) for t in kept)) == d.grad_input[index]


# -- closed forms: the printed operators are the ones forms computes ---------------------------------------


@pytest.mark.parametrize("spec", GRID, ids=lambda s: s.describe())
def test_closed_form_plans_compute_the_forms(spec):
    d = derive(spec)
    X, F, b, G = (to_numpy(t) for t in (d.input, d.weight, d.bias, d.grad_output))
    N, K, C = spec.batch, spec.out_channels, spec.in_channels
    output, weight, inputs = (closed_form(spec, form) for form in ("output", "weight", "input"))

    def same(a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and all(sp.expand(x - y) == 0 for x, y in zip(a.flat, b.flat))

    for n, k in np.ndindex(N, K):
        assert same(sum(output.evaluate(X[n, c], F[k, c]) for c in range(C)) + b[k], forms.forward(spec, X, F, b)[n, k])
    dF, dX = forms.grad_weight(spec, X, G), forms.grad_input(spec, F, G)
    for k, c in np.ndindex(K, C):
        assert same(sum(weight.evaluate(X[n, c], G[n, k]) for n in range(N)), dF[k, c])
    for n, c in np.ndindex(N, C):
        assert same(sum(inputs.evaluate(G[n, k], F[k, c]) for k in range(K)), dX[n, c])


def test_stride_two_shows_the_dilated_and_padded_output_gradient():
    d = derive(ConvSpec((5, 5), (3, 3), stride=2))
    rows = {s.key: s for s in derivation_sections(d, LatexOptions(max_matrix=10))}["input"].closed_form
    G = to_numpy(d.grad_output)[0, 0]
    upsampled = forms.pad(forms.dilate(G, (2, 2)), (2, 2), (2, 2))
    assert upsampled.shape == (7, 7)
    assert rows[0] == (
        r"\frac{\partial E}{\partial X} &= \operatorname{Correlation}\left(\operatorname{pad}_{2}\left("
        r"\operatorname{dilate}_{2}\left(\frac{\partial E}{\partial O}\right)\right), \operatorname{rot180}\left(F\right)\right)"
    )
    printed = latex(sp.Array(upsampled.tolist()), max_matrix=10)
    assert printed in "".join(rows[1:])
    assert r"\frac{\partial E}{\partial O_{11}} & 0 & \frac{\partial E}{\partial O_{12}}" in printed


def test_channels_are_summed_in_the_matrix_forms():
    d = derive(ConvSpec((4, 4), (2, 2), in_channels=2, out_channels=3, batch=2))
    sections = {s.key: s for s in derivation_sections(d)}
    assert sections["forward"].closed_form[0] == (
        r"O^{(n,k)} &= \sum_{c} \operatorname{Correlation}\left(X^{(n,c)}, F^{(k,c)}\right) + b_{k}")
    assert sections["weight"].closed_form[0].startswith(r"\frac{\partial E}{\partial F^{(k,c)}} &= \sum_{n} ")
    assert sections["input"].closed_form[0].startswith(r"\frac{\partial E}{\partial X^{(n,c)}} &= \sum_{k} ")
    assert "X^{(2,1)}_{44}" in "".join(sections["weight"].closed_form)  # the second image's term is written out


# -- big layers stay small and quick -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def big() -> Derivation:
    return derive(ConvSpec((64, 64), (2, 2)))


def test_a_64x64_layer_prints_quickly_and_cut(big):
    start = time.perf_counter()
    tex = latex(big)
    seconds = time.perf_counter() - start
    assert seconds < 10, f"latex of a 64x64 layer took {seconds:.1f} s"
    assert len(tex) < 100_000
    for dots in (r"\cdots", r"\vdots", r"\ddots"):
        assert dots in tex
    assert r"\frac{\partial E}{\partial X_{64,64}}" in tex and "X_{1,17}" not in tex


def test_options_are_checked():
    with pytest.raises(TypeError, match="max_rows"):
        latex(derive(TEXTBOOK), max_rows=3)
    with pytest.raises(ValueError, match="max_matrix"):
        LatexOptions(max_matrix=1)


# -- proofs, tensors, notebooks ----------------------------------------------------------------------------


def test_proofs_print_statement_verdict_and_counterexample():
    d = derive(TEXTBOOK)
    report = prove(d)
    tex = latex(report)
    assert tex.count(r"\text{(holds)}") == len(report.proofs) and r"\mathtt{adjoint\_input}" in tex
    assert r"\langle \text{conv(X), Y} \rangle" in tex
    F, G = d.weight, d.grad_output
    failed = check(d, "grad_input", [[F[0, 0, 0, 0] * G[0, 0, 0, 0], 0, 0], [0] * 3, [0] * 3])
    tex = latex(failed)
    assert r"\text{(FAILS)}" in tex
    assert r"\text{at } \mathtt{grad\_input}[0, 0, 0, 1]" in tex
    assert r"\text{derived } F_{11} \frac{\partial E}{\partial O_{12}} + F_{12} \frac{\partial E}{\partial O_{11}}" in tex


def test_tensors():
    d = derive(ConvSpec((3, 3), (2, 2), in_channels=2))
    assert latex(derive(TEXTBOOK).weight) == r"\begin{pmatrix} F_{11} & F_{12} \\ F_{21} & F_{22} \end{pmatrix}"
    tex = latex(d.input)
    assert r"[0, 1, :, :] &= \begin{pmatrix} X^{(1,2)}_{11}" in tex
    assert latex(d.grad_bias, max_terms=3) == (
        r"\begin{pmatrix} \frac{\partial E}{\partial O^{(1,1)}_{11}} + \frac{\partial E}{\partial O^{(1,1)}_{12}}"
        r" + \cdots + \frac{\partial E}{\partial O^{(1,1)}_{22}} \end{pmatrix}")


def test_repr_latex_for_notebooks():
    d = derive(TEXTBOOK)
    report = prove(d)
    for obj in (d, report, report.proofs[0]):
        tex = obj._repr_latex_()
        assert tex.startswith(r"$\displaystyle \begin{") and tex.endswith("$")


# -- documents ---------------------------------------------------------------------------------------------

needs_pdflatex = pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="pdflatex not on PATH: apt-get install texlive-latex-base texlive-latex-recommended (.ci/run does)",
)


def compile_tex(tex: str, directory: Path) -> None:
    (directory / "doc.tex").write_text(tex, encoding="utf-8")
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=directory, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert (directory / "doc.pdf").stat().st_size > 0


def test_document_sections():
    tex = latex_document(derive(TEXTBOOK), prove(TEXTBOOK))
    for title in ("Forward pass", "Filter gradient", "Input gradient", "Bias gradient", "Proofs"):
        assert rf"\section{{{title}}}" in tex
    assert tex.startswith("% generated by symconv") and r"\usepackage{amsmath}" in tex
    assert r"\allowdisplaybreaks" in tex and r"\begin{align*}" in tex


@needs_pdflatex
@pytest.mark.parametrize("spec", GRID, ids=lambda s: s.describe())
def test_documents_compile(spec, tmp_path):
    d = derive(spec)
    compile_tex(latex_document(d, prove(d)), tmp_path)


@needs_pdflatex
def test_big_document_compiles(big, tmp_path):
    compile_tex(latex_document(big), tmp_path)


@needs_pdflatex
def test_long_lists_are_split_into_several_alignments_and_compile(tmp_path):
    tex = latex_document(derive(ConvSpec((8, 8), (2, 2))), max_entries=10**6)
    assert tex.count(r"\begin{align*}") > 4  # the entry lists, split; the closed forms are fitted displays
    assert tex.count(r"\begin{align*}") + tex.count(r"\fitwidth{\begin{aligned}") > 8
    assert r"\frac{\partial E}{\partial X_{88}}" in tex
    compile_tex(tex, tmp_path)


@needs_pdflatex
def test_document_without_bias_and_with_a_failed_proof_compiles(tmp_path):
    d = derive(TEXTBOOK)
    failed = check(d, "grad_weight", [[0, 0], [0, 0]])
    tex = latex_document(d, ProofReport(TEXTBOOK, (failed,)), bias=False, max_entries=2, max_matrix=3)
    assert r"\textbf{fails}" in tex and "Bias gradient" not in tex
    compile_tex(tex, tmp_path)


# -- command line ------------------------------------------------------------------------------------------


def test_cli_prints_and_writes(capsys, tmp_path):
    assert main(["latex", "--no-bias"]) == 0
    assert r"O_{11} &= F_{11} X_{11} + F_{12} X_{12} + F_{21} X_{21} + F_{22} X_{22} \\" in capsys.readouterr().out
    target = tmp_path / "layer.tex"
    assert main(["latex", "--input", "6x6", "--kernel", "3x3", "--stride", "2", "--document", "-o", str(target)]) == 0
    assert target.read_text().rstrip().endswith(r"\end{document}")
    assert main(["latex", "--max-entries", "1"]) == 2
    assert "max_entries" in capsys.readouterr().err
