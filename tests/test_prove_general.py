"""The proofs for every size: each identity proved for symbolic sizes, wrong closed forms refuted with shapes the
concrete prover refutes too, certificates re-checked and doctored ones refused."""

from __future__ import annotations

import json
import shutil

import pytest
import sympy as sp

import symconv
from symconv import ConvSpec, check, derive, prove
from symconv.cli import main
from symconv.proofs.general import (
    IDENTITY_NAMES,
    GeneralSpec,
    ProverDisagreement,
    SolverDisagreement,
    check_general,
    prove_general,
)
from symconv.proofs.general import report as report_module
from symconv.proofs.general.certificate import recheck, write_certificate
from symconv.proofs.general.counterexample import check_candidate, concrete_candidate
from symconv.proofs.general.notation import (
    broadcast,
    correlate,
    crop,
    dilate,
    pad,
    plus,
    rot180,
    subsample,
    sum_entries,
)
from symconv.proofs.general.obligation import SolverRun
from symconv.proofs.general.sums import normalise
from symconv.proofs.general.theorems import Equation, derived_tensors


@pytest.fixture(scope="module")
def symbolic() -> symconv.GeneralProofReport:
    """The theorem of the README: 2-D, every size and channel count symbolic."""
    return prove_general()


@pytest.fixture(scope="module")
def fixed() -> symconv.GeneralProofReport:
    """Stride and dilation fixed (2 and 3): affine obligations, decided by z3 and by isl."""
    return prove_general(stride=2, dilation=3)


@pytest.mark.parametrize("name", IDENTITY_NAMES)
def test_each_identity_is_proved_with_every_size_symbolic(symbolic, name):
    proof = symbolic[name]
    assert proof.holds and proof.verdict == "proved", str(proof)
    assert proof.decisions and all(r.answer == "unsat" for d in proof.decisions for r in d.runs)
    assert proof.counterexample is None
    names = {s.name for s in symbolic.spec.parameters()}
    assert {"n_h", "k_h", "s_h", "p_h", "d_h", "n_w", "k_w", "s_w", "p_w", "d_w", "N", "C", "K"} <= names


@pytest.mark.parametrize("name", IDENTITY_NAMES)
def test_each_identity_is_proved_with_stride_and_dilation_fixed_by_both_solvers(fixed, name):
    proof = fixed[name]
    assert proof.holds, str(proof)
    assert set(proof.solvers) == {"z3", "isl"}
    for decision in proof.decisions:
        assert {r.solver for r in decision.runs} == {"z3", "isl"}
        assert [r.answer for r in decision.runs] == ["unsat", "subset"]


@pytest.mark.parametrize("options", [dict(axes=1, channels=False), dict(flip=True), dict(axes=1, flip=True, stride=3),
                                     dict(input_size=(7, 6), kernel_size=(3, 2), padding=(1, 0))],
                         ids=["1-D", "convolution", "1-D convolution stride 3", "sizes fixed"])
def test_every_identity_is_proved_in_other_configurations(options):
    report = prove_general(**options)
    assert report.holds, str(report)
    assert [p.name for p in report.proofs] == list(IDENTITY_NAMES)


def test_the_assumptions_are_the_rules_of_conv_spec():
    text = [str(c) for c in GeneralSpec.of(axes=1).assumptions()]
    # p < k_eff, k_eff <= n + 2p, and the output size n + 2p - k_eff = s q + a with 0 <= a < s.
    assert "d*k - d - p >= 0" in text and "-d*k + d + n + 2*p - 1 >= 0" in text
    assert "a + d*k - d - n - 2*p + q*s + 1 == 0" in text and "-a + s - 1 >= 0" in text
    with pytest.raises(ValueError, match="assumption"):
        GeneralSpec.of(axes=1, kernel_size=1, dilation=1, padding=2)  # padding >= effective kernel


def test_the_delta_with_a_coefficient_stays_a_guard():
    F = sp.IndexedBase("F")
    i, o, m, k = sp.symbols("i o m k", integer=True)
    expr = sp.Sum(sp.KroneckerDelta(i, o + 2 * m) * F[m], (m, 0, k - 1))
    assert expr.doit().has(sp.Rational(1, 2))  # SymPy's rewrite, without the condition 2 | i - o
    (term,) = normalise(expr, {"F": [k]})
    assert [str(g) for g in term.guard if g.relation == "=="] == ["i - 2*m - o == 0"]


# Wrong closed forms, written in the notation, each with the identity it claims.
def _forms(L: GeneralSpec) -> dict[str, tuple[str, object]]:
    e, p, s, d, a = L.k_eff, L.p, L.s, L.d, L.a
    kernel = rot180(dilate(L.F, d))
    return {
        "right grad_input": ("grad_input", correlate(pad(dilate(L.G, s), e - 1 - p, e - 1 - p + a), kernel)),
        "right grad_weight": ("grad_weight", subsample(crop(correlate(pad(L.X, p, p), dilate(L.G, s)), e), d)),
        "right grad_bias": ("grad_bias", sum_entries(L.G)),
        "padding k-p instead of k-1-p": ("grad_input", correlate(pad(dilate(L.G, s), e - p, e - p + a), kernel)),
        "no +a after the padding": ("grad_input", correlate(pad(dilate(L.G, s), e - 1 - p, e - 1 - p), kernel)),
        "no rotation": ("grad_input", correlate(pad(dilate(L.G, s), e - 1 - p, e - 1 - p + a), dilate(L.F, d))),
        "dilation by s-1 instead of s": ("grad_input", correlate(pad(dilate(L.G, s - 1), e - 1 - p, e - 1 - p + a), kernel)),
        "padding with k, not the effective kernel": ("grad_input", correlate(pad(dilate(L.G, s), L.k - 1 - p, L.k - 1 - p + a), kernel)),
        "the crop left out": ("grad_weight", subsample(correlate(pad(L.X, p, p), dilate(L.G, s)), d)),
        "the input not padded": ("grad_weight", subsample(crop(correlate(L.X, dilate(L.G, s)), e), d)),
        "the kernel's taps not every d-th": ("grad_weight", crop(correlate(pad(L.X, p, p), dilate(L.G, s)), L.k)),
    }


RIGHT = ["right grad_input", "right grad_weight", "right grad_bias"]
WRONG = [name for name in _forms(GeneralSpec.of(axes=1)) if name not in RIGHT]


@pytest.mark.parametrize("axes", [1, 2])
@pytest.mark.parametrize("form", RIGHT)
def test_check_general_proves_the_textbook_forms(axes, form):
    L = GeneralSpec.of(axes=axes)
    name, candidate = _forms(L)[form]
    assert check_general(L, name, candidate).holds


@pytest.mark.parametrize("axes", [1, 2])
@pytest.mark.parametrize("form", WRONG)
def test_a_wrong_closed_form_is_refuted_with_a_shape_the_concrete_prover_refutes(axes, form):
    L = GeneralSpec.of(axes=axes)
    name, candidate = _forms(L)[form]
    proof = check_general(L, name, candidate)
    assert proof.verdict == "refuted" and not proof.holds
    found = proof.counterexample
    assert found is not None and not found.concrete.holds
    # Independently of the general prover's own confirmation: rebuild the candidate at that shape and check it.
    spec = found.spec
    assert isinstance(spec, ConvSpec)
    again = check_candidate(L, name, candidate)(spec)
    assert not again.holds
    if found.concrete.counterexample.tensor == name:  # same extent: the entries differ, by check() itself
        d = derive(spec)
        assert not check(d, name, concrete_candidate(L, candidate, d, getattr(d, name).shape).tolist()).holds


def test_the_missing_leftover_is_refuted_only_where_a_is_positive():
    L = GeneralSpec.of(axes=1, stride=1)  # stride 1: a = 0, and the form without +a is right
    e, p, d = L.k_eff, L.p, L.d
    assert check_general(L, "grad_input", correlate(pad(dilate(L.G, 1), e - 1 - p, e - 1 - p), rot180(dilate(L.F, d)))).holds


def test_check_general_on_the_output_with_its_bias():
    L = GeneralSpec.of(axes=2, flip=True)
    linear = correlate(pad(L.X, L.p, L.p), rot180(dilate(L.F, L.d)), L.s)
    output = plus(linear, broadcast(sp.IndexedBase("B")[0], linear.extent, 2))
    assert check_general(L, "output", output).holds
    no_rotation = correlate(pad(L.X, L.p, L.p), dilate(L.F, L.d), L.s)
    proof = check_general(L, "output", plus(no_rotation, broadcast(sp.IndexedBase("B")[0], no_rotation.extent, 2)))
    assert proof.verdict == "refuted" and not proof.counterexample.concrete.holds


def test_a_general_failure_that_the_concrete_prover_proves_is_raised_as_a_bug():
    L = GeneralSpec.of(axes=1)
    wrong = correlate(pad(dilate(L.G, L.s), L.k_eff - 1 - L.p, L.k_eff - 1 - L.p), rot180(dilate(L.F, L.d)))
    base = derived_tensors(L)["grad_input"]
    eq = Equation("grad_input", base.entry, base.ranges, base.derived, wrong)
    # A concrete prover that (wrongly) proves every shape: the two provers disagree, loudly.
    def always(point):
        conv = L.to_conv_spec(point)
        return conv, prove(conv)["grad_bias"]
    with pytest.raises(ProverDisagreement, match="symconv bug"):
        report_module.prove_identity("grad_input", "", [eq], ("z3",), 10.0, lambda eqs: report_module.plan(L, eqs),
                                     always)


def test_unknown_is_not_proved_and_the_command_exits_1(monkeypatch, capsys):
    def unknown(o, timeout=10.0):
        return SolverRun("z3", "test", "", "unknown (incomplete)", False, 0.0)

    monkeypatch.setattr(report_module, "run_z3", unknown)
    report = prove_general(axes=1, channels=False, names=("grad_input",), solvers=("z3",))
    assert not report.holds and report["grad_input"].verdict == "not proved"
    assert main(["prove", "--all-sizes", "--axes", "1", "--one-channel", "--solvers", "z3"]) == 1
    assert "not proved" in capsys.readouterr().out


def test_z3_and_isl_must_agree(monkeypatch):
    def refuting(o):
        return SolverRun("isl", "test", "", "not subset", False, 0.0, ())

    monkeypatch.setattr(report_module, "run_isl", refuting)
    with pytest.raises(SolverDisagreement):
        prove_general(axes=1, channels=False, stride=2, dilation=1, names=("grad_bias",))


def test_prove_all_sizes_exits_0_and_writes_a_certificate_that_rechecks(tmp_path, capsys):
    folder = tmp_path / "cert"
    assert main(["prove", "--all-sizes", "--stride", "2", "--dilation", "1", "--certificate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "8 of 8 identities proved for every size" in out
    data = json.loads((folder / "certificate.json").read_text())
    assert data["holds"] and data["options"]["stride"] == [2, 2]
    obligation = data["identities"][3]["obligations"][2]
    assert {r["solver"] for r in obligation["runs"]} == {"z3", "isl"}
    assert data["identities"][3]["equations"][0]["bijections"][0]["phi"]  # the map and its inverse are written
    assert data["identities"][3]["equations"][0]["bijections"][0]["psi"]
    assert (folder / obligation["runs"][0]["file"]).read_text().rstrip().endswith("(check-sat)")
    assert main(["recheck", str(folder)]) == 0
    assert "every identity proved" in capsys.readouterr().out


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certificate")
    write_certificate(prove_general(axes=1, channels=False, names=("grad_input", "grad_weight")), folder)
    return folder


def _doctored(certificate, tmp_path, edit):
    copy = tmp_path / "doctored"
    shutil.copytree(certificate, copy)
    data = json.loads((copy / "certificate.json").read_text())
    edit(data, copy)
    (copy / "certificate.json").write_text(json.dumps(data))
    return copy


def test_a_saved_certificate_is_rechecked(certificate):
    result = recheck(certificate)
    assert result.genuine and result.holds and result.reruns > 0, str(result)


def _weaken_text(data, folder):
    run = data["identities"][0]["obligations"][1]["runs"][0]
    run["text"] = run["text"].replace("(check-sat)", "(assert false)\n(check-sat)")
    (folder / run["file"]).write_text(run["text"])


def _flip_answer(data, folder):
    data["identities"][0]["obligations"][1]["runs"][0]["answer"] = "sat"


def _edit_side(data, folder):
    eq = data["identities"][0]["equations"][0]
    assert " >= 0" in eq["closed_form"][0]
    eq["closed_form"][0] = eq["closed_form"][0].replace(" >= 0", " >= 1", 1)


def _edit_bijection(data, folder):
    phi = data["identities"][1]["equations"][0]["bijections"][0]["phi"]
    phi[next(iter(phi))] = "0"


def _drop_obligation(data, folder):
    del data["identities"][1]["obligations"][1]


def _edit_file_only(data, folder):
    run = data["identities"][0]["obligations"][0]["runs"][0]
    (folder / run["file"]).write_text("(assert false)\n(check-sat)\n")


def _claim_a_refuted_form(data, folder):
    data["identities"][0]["holds"] = False
    data["identities"][0]["verdict"] = "refuted"


@pytest.mark.parametrize("edit", [_weaken_text, _flip_answer, _edit_side, _edit_bijection, _drop_obligation,
                                  _edit_file_only, _claim_a_refuted_form], ids=lambda f: f.__name__.strip("_"))
def test_a_doctored_certificate_is_refused(certificate, tmp_path, edit, capsys):
    folder = _doctored(certificate, tmp_path, edit)
    result = recheck(folder)
    assert not result.genuine and not result.holds and result.problems
    assert main(["recheck", str(folder)]) == 1
    assert "REFUSED" in capsys.readouterr().out


def test_the_public_names(symbolic):
    namespace: dict = {}
    exec("from symconv import *", namespace)
    for name in ("prove_general", "check_general", "GeneralProofReport", "GeneralSpec"):
        assert name in symconv.__all__ and name in namespace
    assert isinstance(symbolic, symconv.GeneralProofReport) and symbolic.holds
    assert "every size" in str(symbolic) and "[ok] grad_input" in str(symbolic)


def test_a_bad_option_is_a_usage_error(capsys):
    assert main(["prove", "--all-sizes", "--solvers", "cvc5"]) == 2
    assert main(["prove", "--certificate", "x"]) == 2
    assert "error" in capsys.readouterr().err


def test_latex_states_the_theorems_with_their_assumptions(symbolic):
    tex = symconv.latex(symbolic)
    assert tex.startswith(r"\begin{aligned}") and "all proved" in tex
    assert r"k_{\mathrm{eff}} \ge p + 1" in tex and r"n + 2 p \ge k_{\mathrm{eff}}" in tex
    assert r"\operatorname{pad}_{k_{\mathrm{eff}} - p - 1,\,a + k_{\mathrm{eff}} - p - 1}" in tex
    assert r"\operatorname{rot}_{180}" in tex and r"\frac{\partial E}{\partial X_{b,c,i_{h},i_{w}}} = \sum" in tex
    one = symconv.latex(symbolic["grad_input"])
    assert r"\bigl[" in one and "proved for every size: z3" in one


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_a_document_with_the_section_for_every_size_compiles(symbolic, tmp_path):
    import subprocess

    spec = ConvSpec((3, 3), (2, 2))
    d = derive(spec)
    tex = symconv.latex_document(d, prove(d), symbolic)
    assert r"\section{For every size}" in tex and r"\paragraph{\texttt{grad\_input}}" in tex
    (tmp_path / "doc.tex").write_text(tex, encoding="utf-8")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]


def test_with_s_and_d_fixed_isl_refutes_too_and_its_point_is_refuted_concretely():
    from symconv.proofs.general.counterexample import confirm

    L = GeneralSpec.of(axes=1, stride=2, dilation=1)
    no_rotation = correlate(pad(dilate(L.G, L.s), L.k_eff - 1 - L.p, L.k_eff - 1 - L.p + L.a), dilate(L.F, L.d))
    proof = check_general(L, "grad_input", no_rotation)
    refuted = [r for d in proof.decisions for r in d.runs if r.model]
    assert {r.solver for r in refuted} == {"z3", "isl"}
    for d in proof.decisions:
        for run in d.runs:
            if run.solver == "isl" and run.model:
                conv = L.to_conv_spec(run.point)
                concrete = check_candidate(L, "grad_input", no_rotation)(conv)
                found = confirm(d.obligation.name, "isl", run.point, conv, concrete)
                assert not found.concrete.holds and found.spec.stride[0] == 2


# --- padding per side (issue 15): p before the input, p' after it ------------------------------------------


@pytest.mark.parametrize("options", [dict(), dict(axes=1, stride=2, dilation=1), dict(axes=1, flip=True)],
                         ids=["2-D every size symbolic", "1-D stride 2 (both solvers)", "1-D convolution"])
def test_every_identity_is_proved_with_the_padding_per_side(options):
    report = prove_general(per_side=True, **options)
    assert report.holds, str(report)
    assert "padding per side" in report.spec.describe()
    assert "k-1-p'+a" in report["grad_input"].statement


def test_per_side_assumptions_bound_each_side_and_give_the_output_size():
    L = GeneralSpec.of(axes=1, per_side=True)
    text = [str(c) for c in L.assumptions()]
    assert "pe >= 0" in text and "d*k - d - pe >= 0" in text  # 0 <= p' < k_eff
    assert "a + d*k - d - n - p - pe + q*s + 1 == 0" in text  # n + p + p' - k_eff = s q + a
    spec = L.to_conv_spec({"n": 5, "k": 2, "s": 2, "p": 0, "pe": 1, "d": 1, "q": 1, "a": 0, "N": 1, "C": 1, "K": 1})
    assert spec.pad_begin == (0, 0) and spec.pad_end == (1, 0)
    with pytest.raises(ValueError, match="per_side"):
        GeneralSpec.of(axes=1, pad_end=1)


def test_the_symmetric_full_padding_is_refuted_per_side_by_a_shape_with_unequal_sides():
    L = GeneralSpec.of(axes=1, per_side=True)
    e, p, pe, a, s, d = L.k_eff, L.p, L.p_end, L.a, L.s, L.d
    assert check_general(L, "grad_input", correlate(pad(dilate(L.G, s), e - 1 - p, e - 1 - pe + a),
                                                    rot180(dilate(L.F, d)))).holds
    proof = check_general(L, "grad_input", correlate(pad(dilate(L.G, s), e - 1 - p, e - 1 - p + a),
                                                     rot180(dilate(L.F, d))))
    assert proof.verdict == "refuted" and proof.counterexample is not None
    spec = proof.counterexample.spec
    assert not proof.counterexample.concrete.holds and spec.pad_begin != spec.pad_end


def _certified(folder, capsys, *flags: str) -> dict:
    """``prove --all-sizes`` in 1-D at stride and dilation 1 with ``flags``, its certificate written and read."""
    assert main(["prove", "--all-sizes", "--axes", "1", *flags, "--stride", "1", "--dilation", "1",
                 "--certificate", str(folder)]) == 0
    assert "8 of 8 identities proved for every size" in capsys.readouterr().out
    return json.loads((folder / "certificate.json").read_text())


def test_prove_all_sizes_with_both_sides_fixed_writes_a_certificate_that_rechecks(tmp_path, capsys):
    folder = tmp_path / "cert"
    data = _certified(folder, capsys, "--padding", "0,1,0,1")
    assert data["options"]["per_side"] and data["options"]["padding"] == [0] and data["options"]["pad_end"] == [1]
    assert main(["recheck", str(folder)]) == 0
    assert main(["prove", "--per-side"]) == 2 and "--per-side needs --all-sizes" in capsys.readouterr().err


# --- grouped layers (issue 15): G groups of C input channels and K filters, indexed by group ---------------


@pytest.mark.parametrize("options", [dict(), dict(axes=1, groups=3, stride=2, dilation=1, per_side=True, flip=True)],
                         ids=["2-D every size and G symbolic", "1-D 3 groups, stride 2, per side, convolution"])
def test_every_identity_is_proved_for_grouped_layers(options):
    report = prove_general(grouped=True, **options)
    assert report.holds, str(report)
    assert "groups of channels" in report.spec.describe()


def test_a_grouped_point_is_the_conv_spec_whose_channels_run_within_groups():
    L = GeneralSpec.of(axes=1, grouped=True, channels=True)
    assert L.shapes()["F"][:3] == (L.groups, *L.counts[2:], L.counts[1])  # F[g, f, c, m]
    spec = L.to_conv_spec({"n": 4, "k": 2, "s": 1, "p": 0, "d": 1, "q": 2, "a": 0, "N": 1, "C": 2, "K": 3, "G": 2})
    assert (spec.groups, spec.in_channels, spec.out_channels) == (2, 4, 6)
    with pytest.raises(ValueError, match="channels=True"):
        GeneralSpec.of(axes=1, grouped=True)


def test_reading_the_first_groups_filters_for_every_group_is_refuted_with_two_groups():
    # The fault the grouped LaTeX once had: each group's input gradient from group 0's filters.
    from symconv.proofs.general.notation import tensor, total
    from symconv.proofs.general.theorems import closed_forms
    from symconv.symbolic import forms
    from symconv.symbolic.symbols import to_numpy

    L = GeneralSpec.of(axes=1, grouped=True, channels=True, stride=1, dilation=1, padding=0)
    N, C, K = L.counts
    b, g, c, f = (sp.Symbol(v, integer=True) for v in "bgcf")
    right = closed_forms(L)["grad_input"]
    G, F0 = tensor("G", L.outputs, (b, g, f)), tensor("F", L.k, (0, f, c))
    wrong = total(correlate(pad(G, L.k_eff - 1 - L.p, L.k_eff - 1 - L.p), rot180(F0)), (f, 0, K - 1))
    base = derived_tensors(L)["grad_input"]

    def group_zero_filters(point):
        conv = L.to_conv_spec(point)
        d = derive(conv)
        weight = to_numpy(d.weight)
        first = weight[[k % conv.group_out_channels for k in range(conv.out_channels)]]
        return conv, check(d, "grad_input", forms.grad_input(conv, first, to_numpy(d.grad_output)).tolist())

    def decide(grid, concrete):
        eq = Equation("grad_input", base.entry, base.ranges, base.derived, grid)
        return report_module.prove_identity("grad_input", "", [eq], ("z3",), 10.0,
                                            lambda eqs: report_module.plan(L, eqs), concrete)

    assert decide(right, report_module._concrete(L, "grad_input")).holds
    proof = decide(wrong, group_zero_filters)
    assert proof.verdict == "refuted" and not proof.counterexample.concrete.holds
    assert proof.counterexample.spec.groups >= 2


def test_prove_all_sizes_with_groups_from_the_command_line(tmp_path, capsys):
    folder = tmp_path / "cert"
    data = _certified(folder, capsys, "--groups", "2")
    assert data["options"]["groups"] == 2 and data["options"]["grouped"]
    assert main(["recheck", str(folder)]) == 0
    assert main(["prove", "--all-sizes", "--axes", "1", "--grouped", "--stride", "1", "--dilation", "1"]) == 0
