import pytest
import sympy as sp

from symconv import ConvSpec, derive
from symconv.symbolic.symbols import entries, positions

TEXTBOOK = ConvSpec((3, 3), (2, 2))


def sym(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


def products(line: str) -> set[tuple[str, str]]:
    """'F_{11} X_{11} + F_{12} X_{12}' -> {('F_{11}', 'X_{11}'), ...}"""
    return {tuple(term.split()) for term in line.split(" + ")}


# The published equations of the 3x3 / 2x2 example (seed 001), written as in the source.
PUBLISHED_FORWARD = {
    (0, 0): "F_{11} X_{11} + F_{12} X_{12} + F_{21} X_{21} + F_{22} X_{22}",
    (0, 1): "F_{11} X_{12} + F_{12} X_{13} + F_{21} X_{22} + F_{22} X_{23}",
    (1, 0): "F_{11} X_{21} + F_{12} X_{22} + F_{21} X_{31} + F_{22} X_{32}",
    (1, 1): "F_{11} X_{22} + F_{12} X_{23} + F_{21} X_{32} + F_{22} X_{33}",
}
PUBLISHED_GRAD_WEIGHT = {
    (0, 0): "O_{11} X_{11} + O_{12} X_{12} + O_{21} X_{21} + O_{22} X_{22}",
    (0, 1): "O_{11} X_{12} + O_{12} X_{13} + O_{21} X_{22} + O_{22} X_{23}",
    (1, 0): "O_{11} X_{21} + O_{12} X_{22} + O_{21} X_{31} + O_{22} X_{32}",
    (1, 1): "O_{11} X_{22} + O_{12} X_{23} + O_{21} X_{32} + O_{22} X_{33}",
}
# dE/dX_ij = sum over the four outputs of dE/dO_p * (F_mn or 0), zero terms included (001's f_12 read as F_12).
PUBLISHED_GRAD_INPUT = {
    (0, 0): ["F_{11}", "0", "0", "0"],
    (0, 1): ["F_{12}", "F_{11}", "0", "0"],
    (0, 2): ["0", "F_{12}", "0", "0"],
    (1, 0): ["F_{21}", "0", "F_{11}", "0"],
    (1, 1): ["F_{22}", "F_{21}", "F_{12}", "F_{11}"],
    (1, 2): ["0", "F_{22}", "0", "F_{12}"],
    (2, 0): ["0", "0", "F_{21}", "0"],
    (2, 1): ["0", "0", "F_{22}", "F_{21}"],
    (2, 2): ["0", "0", "0", "F_{22}"],
}


def test_textbook_forward_equations_are_the_published_ones():
    d = derive(TEXTBOOK)
    assert d.output.shape == (1, 1, 2, 2)
    for (i, j), line in PUBLISHED_FORWARD.items():
        expected = sp.Add(*(sym(f) * sym(x) for f, x in products(line)), sym("b"))
        assert d.output[0, 0, i, j] == expected
        assert [sp.sstr(t) for t in d.forward_terms((0, 0, i, j))[:-1]] == [f"{f}*{x}" for f, x in
                                                                          (t.split() for t in line.split(" + "))]


def test_textbook_filter_gradient_is_the_published_one():
    d = derive(TEXTBOOK)
    for (m, n), line in PUBLISHED_GRAD_WEIGHT.items():
        expected = sp.Add(*(sym("dE/d" + o) * sym(x) for o, x in products(line)))
        assert d.grad_weight[0, 0, m, n] == expected
        chain = d.chain_rule("weight", (0, 0, m, n))
        assert len(chain) == 4 and all(t.local != 0 for t in chain)


def test_textbook_input_gradient_has_the_published_nine_equations_with_zero_terms():
    d = derive(TEXTBOOK)
    outputs = ["O_{11}", "O_{12}", "O_{21}", "O_{22}"]
    for (i, j), locals_ in PUBLISHED_GRAD_INPUT.items():
        chain = d.chain_rule("input", (0, 0, i, j))
        assert [t.upstream.name for t in chain] == ["dE/d" + o for o in outputs]
        assert [sp.sstr(t.local) for t in chain] == locals_
        expected = sp.Add(*(sym("dE/d" + o) * (0 if f == "0" else sym(f)) for o, f in zip(outputs, locals_)))
        assert d.grad_input[0, 0, i, j] == expected


def test_bias_gradient_and_zero_based_names():
    d = derive(TEXTBOOK, index_base=0)
    assert d.input[0, 0, 0, 0].name == "X_{00}" and d.weight[0, 0, 1, 1].name == "F_{11}"
    assert d.grad_bias[0] == sp.Add(*entries(d.grad_output))
    with pytest.raises(ValueError, match="index_base"):
        derive(TEXTBOOK, index_base=2)


def test_names_with_channels_batch_and_two_digit_indices():
    d = derive(ConvSpec((12, 3), (2, 2), in_channels=2, out_channels=3, batch=2))
    assert d.input[1, 0, 11, 2].name == "X^{(2,1)}_{12,3}"
    assert d.weight[2, 1, 0, 1].name == "F^{(3,2)}_{12}"
    assert d.bias[2].name == "b_{3}"
    assert d.grad_output[0, 2, 0, 0].name == "dE/dO^{(1,3)}_{1,1}"
    assert len(d.symbols) == len(d.input) + len(d.weight) + len(d.bias) + len(d.grad_output)


@pytest.mark.parametrize(
    "spec",
    [
        TEXTBOOK,
        ConvSpec((3, 3), (2, 2), flip=True),
        ConvSpec((6, 6), (3, 3), stride=2),
        ConvSpec((5, 4), (3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2)),
        ConvSpec((4, 4), (2, 2), padding=1, in_channels=2, out_channels=2, batch=2, flip=True),
    ],
)
def test_gradients_equal_the_full_chain_rule_sum(spec):
    """The derivation sums only the non-zero terms; the full sum of SymPy derivatives must agree."""
    d = derive(spec)
    for wrt in ("input", "weight", "bias"):
        tensor, gradient = d.tensor(wrt), d.gradient(wrt)
        for index in positions(tensor.shape):
            full = sp.Add(*(t.value for t in d.chain_rule(wrt, index)))
            # The textbook definition of the chain rule, with E an unknown function of the outputs.
            assert sp.expand(full - gradient[index]) == 0


def test_true_convolution_walks_the_kernel_backwards():
    d = derive(ConvSpec((3, 3), (2, 2), flip=True))
    F, X = d.weight, d.input
    assert d.output[0, 0, 0, 0] == F[0, 0, 0, 0] * X[0, 0, 1, 1] + F[0, 0, 0, 1] * X[0, 0, 1, 0] + \
        F[0, 0, 1, 0] * X[0, 0, 0, 1] + F[0, 0, 1, 1] * X[0, 0, 0, 0] + d.bias[0]


def test_padding_taps_are_dropped():
    d = derive(ConvSpec((2, 2), (3, 3), padding=1))
    # The corner output sees only the four real inputs under the bottom-right of the kernel.
    assert len(d.forward_terms((0, 0, 0, 0))) == 4 + 1


@pytest.mark.parametrize("spec", [
    ConvSpec((3, 3), (2, 2)),
    ConvSpec((6, 5), (3, 2), stride=(2, 1), padding=(1, 0)),
    ConvSpec((7, 7), (3, 3), padding=2, dilation=2, in_channels=2, out_channels=2, batch=2),
    ConvSpec((5, 5), (3, 3), stride=2, flip=True),
])
def test_entries_are_the_trees_sympys_own_constructors_build(spec):
    # derive builds its sums of products directly (symbolic/sparse.py, through SymPy's private constructors):
    # each must be the very tree sp.Add(*sp.Mul(...)) gives, or results would compare unequal to SymPy's own.
    d = derive(spec)
    for name in ("output", "grad_input", "grad_weight", "grad_bias"):
        for entry in entries(getattr(d, name)):
            rebuilt = sp.Add(*(sp.Mul(*term.args) if term.is_Mul else term for term in sp.Add.make_args(entry)))
            # == and .args see the stored order of the terms (srepr prints them sorted whatever it is)
            assert entry == rebuilt and entry.args == rebuilt.args and hash(entry) == hash(rebuilt), (name, entry)


def test_without_bias_the_textbook_case_is_exactly_the_seeds_4_4_9_equations():
    d = derive(ConvSpec((3, 3), (2, 2), bias=False))
    assert d.bias.shape == d.grad_bias.shape == (0,)
    assert set(d.symbols.values()) == {(name, index) for name, shape in
                                       (("input", (1, 1, 3, 3)), ("weight", (1, 1, 2, 2)), ("grad_output", (1, 1, 2, 2)))
                                       for index in positions(shape)}
    forward = {(i, j): d.output[0, 0, i, j] for i, j in positions((2, 2))}
    assert forward == {ij: sp.Add(*(sym(f) * sym(x) for f, x in products(line)))
                       for ij, line in PUBLISHED_FORWARD.items()}
    assert [sp.sstr(t) for t in d.forward_terms((0, 0, 0, 0))] == ["F_{11}*X_{11}", "F_{12}*X_{12}",
                                                                  "F_{21}*X_{21}", "F_{22}*X_{22}"]
    grad_weight = {(m, n): d.grad_weight[0, 0, m, n] for m, n in positions((2, 2))}
    assert grad_weight == {mn: sp.Add(*(sym("dE/d" + o) * sym(x) for o, x in products(line)))
                           for mn, line in PUBLISHED_GRAD_WEIGHT.items()}
    outputs = ["O_{11}", "O_{12}", "O_{21}", "O_{22}"]
    grad_input = {(i, j): [sp.sstr(t.local) for t in d.chain_rule("input", (0, 0, i, j))] for i, j in positions((3, 3))}
    assert grad_input == PUBLISHED_GRAD_INPUT
    for (i, j), locals_ in PUBLISHED_GRAD_INPUT.items():
        assert d.grad_input[0, 0, i, j] == sp.Add(*(sym("dE/d" + o) * (0 if f == "0" else sym(f))
                                                     for o, f in zip(outputs, locals_)))


def test_grouped_outputs_read_only_their_group():
    spec = ConvSpec((3, 3), (2, 2), in_channels=4, out_channels=6, groups=2)
    d = derive(spec)
    for k in range(6):
        channels = {d.symbols[s][1][1] for s in d.output[0, k, 0, 0].free_symbols if d.symbols[s][0] == "input"}
        assert channels == ({0, 1} if k < 3 else {2, 3})
    assert d.weight.shape == (6, 2, 2, 2)


def test_asymmetric_padding_taps():
    # top 0, bottom 1, left 1, right 0: the last row and the first column of the output read padding.
    d = derive(ConvSpec((2, 2), (2, 2), padding=((0, 1), (1, 0)), bias=False))
    assert d.output.shape == (1, 1, 2, 2)
    assert d.output[0, 0, 0, 0] == sym("F_{12}") * sym("X_{11}") + sym("F_{22}") * sym("X_{21}")
    assert d.output[0, 0, 1, 1] == sym("F_{11}") * sym("X_{21}") + sym("F_{12}") * sym("X_{22}")
