import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symconv import ConvSpec, check, derive, forms, prove
from symconv.symbolic.symbols import to_numpy

GRID = [
    ConvSpec((3, 3), (2, 2)),
    ConvSpec((3, 3), (2, 2), flip=True),
    ConvSpec((4, 5), (2, 3)),
    ConvSpec((5, 5), (3, 3), stride=2),
    ConvSpec((6, 6), (3, 3), stride=2),  # leftover a = 1
    ConvSpec((7, 7), (2, 2), stride=3),  # leftover a = 2
    ConvSpec((8, 7), (3, 2), stride=3, padding=1),
    ConvSpec((5, 5), (3, 3), padding=1),
    ConvSpec((5, 5), (3, 3), padding=2, stride=2),
    ConvSpec((6, 6), (2, 2), dilation=2),
    ConvSpec((7, 6), (3, 2), stride=(2, 3), padding=(1, 0), dilation=(2, 1)),
    ConvSpec((6, 6), (3, 3), stride=2, padding=1, dilation=2, flip=True),
    ConvSpec((4, 4), (2, 2), in_channels=2, out_channels=3, batch=2),
    ConvSpec((5, 5), (3, 3), stride=2, padding=1, in_channels=2, out_channels=2, batch=2, flip=True),
]
IDENTITIES = [
    "forward",
    "rotated_kernel",
    "grad_weight",
    "grad_input",
    "grad_bias",
    "upsample_then_stride_one",
    "adjoint_input",
    "adjoint_weight",
]


@pytest.mark.parametrize("spec", GRID, ids=lambda s: s.describe())
def test_every_identity_holds(spec):
    report = prove(spec)
    assert [p.name for p in report.proofs] == IDENTITIES
    assert report.holds, str(report)
    assert all(p.counterexample is None for p in report.proofs)


@settings(max_examples=15, deadline=None)
@given(
    i=st.integers(1, 7), j=st.integers(1, 7), r=st.integers(1, 3), s=st.integers(1, 3),
    sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
    dh=st.integers(1, 2), dw=st.integers(1, 2), flip=st.booleans(),
)
def test_identities_hold_for_random_shapes(i, j, r, s, sh, sw, ph, pw, dh, dw, flip):
    try:
        spec = ConvSpec((i, j), (r, s), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), flip=flip)
    except ValueError:
        return
    assert prove(spec).holds


def test_a_wrong_closed_form_is_refused_with_the_entry_and_difference():
    spec = ConvSpec((3, 3), (2, 2))
    d = derive(spec)
    F, G = to_numpy(d.weight), to_numpy(d.grad_output)
    # Full convolution with the filter NOT rotated: the classic mistake.
    unrotated = forms.correlate(forms.pad(G[0, 0], (1, 1), (1, 1)), F[0, 0])
    proof = check(d, "grad_input", unrotated.tolist())
    assert not proof.holds
    ce = proof.counterexample
    assert ce.tensor == "grad_input" and ce.index == (0, 0, 0, 0)
    assert ce.derived == F[0, 0, 0, 0] * G[0, 0, 0, 0] and ce.claimed == F[0, 0, 1, 1] * G[0, 0, 0, 0]
    assert ce.difference == sp.expand(ce.claimed - ce.derived)


def test_a_right_closed_form_is_accepted():
    spec = ConvSpec((6, 6), (3, 3), stride=2)
    d = derive(spec)
    X, G = to_numpy(d.input), to_numpy(d.grad_output)
    proof = check(d, "grad_weight", forms.grad_weight(spec, X, G).tolist())
    assert proof.holds and proof.counterexample is None
    # The same in a non-expanded form, e.g. factored by hand: equality is decided on the polynomial.
    dF = forms.grad_weight(spec, X, G)
    dF[0, 0, 0, 0] = sp.factor_terms(dF[0, 0, 0, 0] + X[0, 0, 0, 0] * G[0, 0, 0, 0]) - X[0, 0, 0, 0] * G[0, 0, 0, 0]
    assert check(d, "grad_weight", dF.tolist()).holds


def test_stride_two_without_dilating_the_gradient_is_refused():
    spec = ConvSpec((6, 6), (3, 3), stride=2)
    d = derive(spec)
    X, G = to_numpy(d.input), to_numpy(d.grad_output)
    naive = forms.correlate(X[0, 0], G[0, 0])[:3, :3]  # stride-1 recipe applied to a stride-2 layer
    proof = check(d, "grad_weight", naive.tolist())
    assert not proof.holds and proof.counterexample.index == (0, 0, 0, 0)


def test_a_broken_form_makes_prove_fail(monkeypatch):
    """The proofs can fail: forget the 180-degree rotation inside the closed forms."""
    monkeypatch.setattr(forms, "rot180", lambda m: m)
    report = prove(ConvSpec((3, 3), (2, 2)))
    assert not report.holds
    failed = {p.name for p in report.proofs if not p.holds}
    assert {"grad_input", "rotated_kernel", "adjoint_input"} <= failed
    assert "forward" not in failed and "grad_weight" not in failed
    assert "FAIL" in str(report)


def test_adjoint_failure_names_a_coefficient(monkeypatch):
    original = forms.grad_weight

    def off_by_one(spec, X, G):
        out = original(spec, X, G)
        out[0, 0, 0, 0] = out[0, 0, 0, 0] + X[0, 0, 0, 0] * G[0, 0, 0, 0]
        return out

    monkeypatch.setattr(forms, "grad_weight", off_by_one)
    proof = prove(ConvSpec((3, 3), (2, 2)))["adjoint_weight"]
    assert not proof.holds
    assert proof.counterexample.tensor.startswith("coefficient of")
    assert proof.counterexample.difference == 1


def test_check_rejects_bad_names_and_shapes():
    d = derive(ConvSpec((3, 3), (2, 2)))
    with pytest.raises(ValueError, match="name must be one of"):
        check(d, "grad_something", [[0]])
    with pytest.raises(ValueError, match="shape"):
        check(d, "grad_weight", [[0, 0, 0]])


def test_report_lookup_and_text():
    report = prove(ConvSpec((3, 3), (2, 2)))
    assert report["grad_input"].holds
    with pytest.raises(KeyError):
        report["nothing"]
    assert str(report).count("[ok]") == len(IDENTITIES)
