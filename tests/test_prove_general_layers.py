"""The layers' theorems for every size (ReLU, max and average pooling, dense, MSE): each identity proved with every
size symbolic and with sizes fixed, wrong closed forms refuted with concrete layers that ``prove_layer`` /
``prove_loss`` refute too, the choice's facts needed, certificates re-checked and doctored ones refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy as sp

from symconv.cli import main
from symconv.proofs.general import ProverDisagreement
from symconv.proofs.general import layer_report as layer_report_module
from symconv.proofs.general import report as report_module
from symconv.proofs.general.bijection import _same_coefficient
from symconv.proofs.general.certificate import recheck, write_certificate
from symconv.proofs.general.counterexample import LayerShape
from symconv.proofs.general.layer_report import (
    candidate_backward,
    check_general_layer,
    layer_plan,
    prove_general_layer,
)
from symconv.proofs.general.layer_spec import GeneralLayer
from symconv.proofs.general.layer_theorems import (
    LAYER_IDENTITIES,
    box,
    label,
    layer_identities,
    masked,
    operands,
    route,
    scale,
)
from symconv.proofs.general.notation import Grid, correlate, dilate, pad
from symconv.proofs.general.obligation import SolverRun
from symconv.proofs.general.z3_backend import run_z3
from symconv.proofs.layers import prove_layer, prove_loss
from symconv.symbolic.layers import AvgPool2d, Dense, MaxPool2d, ReLU
from symconv.symbolic.losses import CrossEntropyLoss, MSELoss

CASES = [(layer, name) for layer, names in LAYER_IDENTITIES.items() for name in names]


@pytest.fixture(scope="module")
def symbolic() -> dict:
    """Every layer in 2-D, every size symbolic (the window, stride and padding per axis, and the counts)."""
    return {layer: prove_general_layer(layer) for layer in LAYER_IDENTITIES}


@pytest.mark.parametrize("layer,name", CASES)
def test_each_layer_identity_is_proved_with_every_size_symbolic(symbolic, layer, name):
    proof = symbolic[layer][name]
    assert proof.holds and proof.verdict == "proved", str(proof)
    assert proof.decisions and all(r.answer in ("unsat", "subset") for d in proof.decisions for r in d.runs)
    names = {s.name for s in symbolic[layer].spec.parameters()}
    expected = {"relu": {"n_h", "n_w", "N", "C"}, "dense": {"N", "I", "O"}, "mse": {"N", "M"},
                "crossentropy": {"N", "M"}}.get(
        layer, {"n_h", "k_h", "s_h", "p_h", "n_w", "k_w", "s_w", "p_w", "N", "C"})
    assert expected <= names


@pytest.mark.parametrize("layer", ["relu", "maxpool", "avgpool"])
def test_the_layers_are_proved_in_1d_and_with_sizes_fixed(layer):
    for options in (dict(axes=1), dict(axes=1, input_size=7), {} if layer == "relu" else dict(kernel_size=3, stride=2),
                    {} if layer == "relu" else dict(axes=1, kernel_size=2, stride=3, padding=1)):
        report = prove_general_layer(layer, **options)
        assert report.holds, str(report)


@pytest.mark.parametrize("layer", ["relu", "avgpool", "dense", "mse"])
def test_affine_obligations_are_decided_by_z3_and_isl_alike(layer):
    options = dict(kernel_size=3, stride=2) if layer == "avgpool" else {}
    report = prove_general_layer(layer, **options)
    assert report.holds
    for proof in report.proofs:
        for decision in proof.decisions:
            assert [r.answer for r in decision.runs] == ["unsat", "subset"], str(decision)


def test_the_argmax_is_a_choice_that_only_z3_decides_with_its_facts():
    report = prove_general_layer("maxpool", kernel_size=3, stride=2)
    assert report.holds and report.solvers == ("z3", "isl")
    chosen = [d for p in report.proofs for d in p.decisions if "R_h(" in str(d.obligation)]
    assert chosen and all([r.solver for r in d.runs] == ["z3"] and d.obligation.facts for d in chosen)
    assert all("declare-fun R_h" in d.runs[0].text for d in chosen)


def test_without_the_facts_of_the_choice_the_gradient_total_is_refuted():
    L = GeneralLayer.of("maxpool", axes=1)
    (identity,) = [i for i in layer_identities(L) if i.name == "grad_total"]
    _, with_facts, _ = layer_plan(L, identity.equations)
    _, without, _ = report_module.plan(L, identity.equations, L.index_names())
    assert all(run_z3(o).proved for o in with_facts)
    # A winner anywhere (outside the input) would lose its window's gradient: the facts carry the theorem.
    assert any(run_z3(o).answer == "sat" for o in without)


def test_the_mean_is_a_rational_coefficient_compared_exactly():
    k_h, k_w = sp.symbols("k_h k_w", integer=True)
    assert _same_coefficient(1 / (k_h * k_w), 1 / (k_w * k_h)) == ()
    goals = [str(c) for c in _same_coefficient(1 / (k_h * k_w), 1 / k_h**2)]
    assert goals[0] in ("k_h - k_w == 0", "-k_h + k_w == 0")
    assert "k_h**2*k_w**2 - 1 >= 0" in goals and "k_h**4 - 1 >= 0" in goals  # the denominators are not 0


def _candidates(axes: int) -> dict[str, tuple[GeneralLayer, str, Grid]]:
    relu, maxpool, avgpool = (GeneralLayer.of(k, axes=axes) for k in ("relu", "maxpool", "avgpool"))
    r, m, a = operands(relu), operands(maxpool), operands(avgpool)
    windows = maxpool.windows
    k, p, s, left = (tuple(getattr(w, f) for w in avgpool.windows) for f in ("k", "p", "s", "a"))

    def full(after: int, before_shift: int = 0) -> Grid:
        return pad(dilate(a.G, s), tuple(ki - 1 - pi + before_shift for ki, pi in zip(k, p)),
                   tuple(ki - 1 - pi + after * ai + before_shift for ki, pi, ai in zip(k, p, left)))

    mean = 1 / sp.Mul(*k)
    return {
        "right relu": (relu, "grad_input", masked(r.G, r.P)),
        "right maxpool": (maxpool, "grad_input", route(maxpool, m.b, m.c)),
        "right avgpool": (avgpool, "grad_input", scale(correlate(full(1), box(k)), mean)),
        "relu: no mask": (relu, "grad_input", r.G),
        "relu: the mask alone": (relu, "grad_input", masked(r.P, r.P)),
        "maxpool: every cell of the window": (maxpool, "grad_input", _window_spread(maxpool)),
        "maxpool: to the window's first cell": (maxpool, "grad_input", route(maxpool, m.b, m.c, cell=lambda o, R: tuple(
            w.s * oi - w.p for w, oi in zip(windows, o)))),
        "maxpool: no padding offset": (maxpool, "grad_input", route(maxpool, m.b, m.c, cell=lambda o, R: tuple(
            w.s * oi + ri for w, oi, ri in zip(windows, o, R)))),
        "maxpool: stride left out": (maxpool, "grad_input", route(maxpool, m.b, m.c, cell=lambda o, R: tuple(
            oi - w.p + ri for w, oi, ri in zip(windows, o, R)))),
        "avgpool: divisor k_h^2": (avgpool, "grad_input", scale(correlate(full(1), box(k)), 1 / k[0] ** 2)),
        "avgpool: no +a after the padding": (avgpool, "grad_input", scale(correlate(full(0), box(k)), mean)),
        "avgpool: padding k-p": (avgpool, "grad_input", scale(correlate(full(1, 1), box(k)), mean)),
        "avgpool: no divisor": (avgpool, "grad_input", correlate(full(1), box(k))),
    }


def _window_spread(L: GeneralLayer) -> Grid:
    """The average's routing written for max pooling: every cell of the window gets the whole gradient."""
    ops = operands(L)
    k = tuple(w.k for w in L.windows)
    G_full = pad(dilate(ops.G, tuple(w.s for w in L.windows)), tuple(w.k - 1 - w.p for w in L.windows),
                 tuple(w.k - 1 - w.p + w.a for w in L.windows))
    return correlate(G_full, box(k))


RIGHT = [n for n in _candidates(1) if n.startswith("right")]
WRONG = [n for n in _candidates(1) if not n.startswith("right")]


def _dense_and_mse() -> dict[str, tuple[GeneralLayer, str, Grid]]:
    D, S = GeneralLayer.of("dense"), GeneralLayer.of("mse")
    X, W, G, Y, T = (sp.IndexedBase(t) for t in "XWGYT")
    n, i, o, m, v = (sp.Symbol(x, integer=True) for x in ("n", "i", "o", "m", "v1"))
    N, I, O = D.counts
    Z = GeneralLayer.of("crossentropy")
    softmax = sp.IndexedBase("expZ")[n, m] * sp.IndexedBase("invS")[n]
    onehot = sp.KroneckerDelta(m, label(n))
    return {
        "right cross-entropy": (Z, "grad_input", Grid((), (), (softmax - onehot) / Z.counts[0])),
        "cross-entropy: summed, not averaged": (Z, "grad_input", Grid((), (), softmax - onehot)),
        "cross-entropy: no one-hot": (Z, "grad_input", Grid((), (), softmax / Z.counts[0])),
        "cross-entropy: the next class": (Z, "grad_input", Grid((), (), (softmax - sp.KroneckerDelta(m, label(n) + 1))
                                                               / Z.counts[0])),
        "right dense grad_input": (D, "grad_input", Grid((), (), sp.Sum(G[n, v] * W[v, i], (v, 0, O - 1)))),
        "right dense grad_weight": (D, "grad_weight", Grid((), (), sp.Sum(G[v, o] * X[v, i], (v, 0, N - 1)))),
        "right mse": (S, "grad_input", Grid((), (), Y[n, m] - T[n, m])),
        "dense: W transposed": (D, "grad_input", Grid((), (), sp.Sum(G[n, v] * W[i, v], (v, 0, O - 1)))),
        "dense: the last image left out": (D, "grad_weight", Grid((), (), sp.Sum(G[v, o] * X[v, i], (v, 0, N - 2)))),
        "mse: t - y": (S, "grad_input", Grid((), (), T[n, m] - Y[n, m])),
        "mse: half the gradient": (S, "grad_input", Grid((), (), (Y[n, m] - T[n, m]) / 2)),
    }


@pytest.mark.parametrize("axes", [1, 2])
@pytest.mark.parametrize("form", RIGHT)
def test_check_general_layer_proves_the_textbook_forms(axes, form):
    assert check_general_layer(*_candidates(axes)[form]).holds


@pytest.mark.parametrize("axes", [1, 2])
@pytest.mark.parametrize("form", WRONG)
def test_a_wrong_layer_form_is_refuted_with_a_layer_the_concrete_prover_refutes(axes, form):
    proof = check_general_layer(*_candidates(axes)[form])
    assert proof.verdict == "refuted" and not proof.holds
    found = proof.counterexample
    assert found is not None and isinstance(found.spec, LayerShape) and not found.concrete.holds


@pytest.mark.parametrize("form", list(_dense_and_mse()))
def test_dense_and_mse_forms_of_ones_own(form):
    proof = check_general_layer(*_dense_and_mse()[form])
    if form.startswith("right"):
        assert proof.holds
    elif proof.unconfirmed:
        # Cross-entropy's atoms forget that the softmax sums to 1: a point with M = 1 refutes the atoms only.
        assert form.startswith("cross-entropy") and proof.verdict == "not proved" and proof.counterexample is None
    else:
        assert proof.verdict == "refuted" and not proof.counterexample.concrete.holds


def test_a_refutation_of_an_abstraction_alone_is_not_proved_and_not_refuted():
    S, name, wrong = _dense_and_mse()["mse: t - y"]
    base = layer_report_module.derived_layer(S)[name]
    eq = report_module.Equation(name, base.entry, base.ranges, base.derived, wrong)
    holds = prove_loss(MSELoss(), (1, 1)).proofs[0]

    def concrete(point):  # a concrete prover that proves the point: it disagrees with the solver's model
        return S.concrete(point), holds

    def run(abstraction):
        return report_module.prove_identity("check", "", [eq], ("z3",), 10.0, lambda eqs: layer_plan(S, eqs),
                                            concrete, abstraction)
    proof = run("T and Y are atoms")
    assert proof.verdict == "not proved" and proof.counterexample is None
    assert "concrete prover proves MSELoss() on input (1, 1)" in proof.unconfirmed[0]
    with pytest.raises(ProverDisagreement):
        run("")


@pytest.mark.parametrize("layer,shape", [(ReLU(), (2, 2, 3, 2)), (MaxPool2d(3, stride=2, padding=1), (1, 2, 5, 4)),
                                         (AvgPool2d((3, 2), stride=(2, 1), padding=(1, 0)), (1, 1, 5, 3))])
def test_the_right_forms_evaluated_concretely_pass_prove_layer(layer, shape):
    # The concrete re-check is only as good as the evaluation of a closed form on one shape: check it on a right one.
    kind = {ReLU: "relu", MaxPool2d: "maxpool", AvgPool2d: "avgpool"}[type(layer)]
    general, name, grid = _candidates(2)[f"right {kind}"]
    backward = candidate_backward(general, name, grid, LayerShape(layer, shape))
    for seed in range(3):
        assert prove_layer(layer, shape, seed, backward).holds


def test_the_dense_and_mse_forms_evaluated_concretely_pass():
    forms = _dense_and_mse()
    for key in ("right dense grad_input", "right dense grad_weight"):
        general, name, grid = forms[key]
        assert prove_layer(Dense(3), (2, 4), backward=candidate_backward(general, name, grid, LayerShape(Dense(3), (2, 4)))).holds
    general, name, grid = forms["right mse"]
    assert prove_loss(MSELoss(), (2, 3), backward=candidate_backward(general, name, grid, LayerShape(MSELoss(), (2, 3)))).holds
    general, name, grid = forms["right cross-entropy"]
    loss = CrossEntropyLoss()
    for seed in range(3):
        assert prove_loss(loss, (3, 4), seed, candidate_backward(general, name, grid, LayerShape(loss, (3, 4)))).holds


def test_a_layer_refutation_the_concrete_prover_proves_is_raised_as_a_bug(monkeypatch):
    holds = prove_layer(ReLU(), (1, 1, 1, 1)).proofs[0]
    monkeypatch.setattr(layer_report_module, "_run", lambda spec, shape, backward: holds)
    relu = GeneralLayer.of("relu", axes=1)
    with pytest.raises(ProverDisagreement, match="symconv bug"):
        check_general_layer(relu, "grad_input", operands(relu).G)


def test_prove_layer_takes_the_values_of_a_region():
    values = np.array([[[[2, -1], [-3, 4]]]])
    report = prove_layer(ReLU(), (1, 1, 2, 2), values=values)
    assert report.holds and report.region == "2 of 4 inputs positive"
    with pytest.raises(ValueError, match="boundary"):
        prove_layer(ReLU(), (1, 1, 2, 2), values=np.array([[[[0, 1], [2, 3]]]]))
    with pytest.raises(ValueError, match="tie"):
        prove_layer(MaxPool2d(2), (1, 1, 2, 2), values=np.array([[[[5, 5], [1, 2]]]]))


def test_bad_layer_options_are_one_line_errors():
    with pytest.raises(ValueError, match="layer must be one of"):
        GeneralLayer.of("softmax")
    with pytest.raises(ValueError, match="at most half the window"):
        GeneralLayer.of("maxpool", kernel_size=3, padding=2)
    with pytest.raises(ValueError, match="no window"):
        GeneralLayer.of("relu", kernel_size=2)
    with pytest.raises(ValueError, match="unknown identities"):
        prove_general_layer("relu", names=("grad_weight",))


def test_a_layer_certificate_rechecks_and_a_doctored_one_is_refused(tmp_path):
    report = prove_general_layer("maxpool", axes=1, stride=2)
    folder = tmp_path / "cert"
    write_certificate(report, folder)
    assert recheck(folder).holds
    data = json.loads((folder / "certificate.json").read_text())
    assert data["options"]["layer"] == "maxpool"
    chosen = next(o for p in data["identities"] for o in p["obligations"] if o.get("facts"))
    chosen["facts"] = chosen["facts"][:-1] + ["(true) => (R(b, c, o) >= 0)"]  # a fact the choice does not have
    (folder / "certificate.json").write_text(json.dumps(data))
    result = recheck(folder)
    assert not result.genuine and any("facts" in p for p in result.problems)


def test_the_command_proves_a_layer_for_every_size(tmp_path, capsys):
    folder = tmp_path / "cert"
    assert main(["prove", "--all-sizes", "--layer", "avgpool", "--kernel", "2", "--certificate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "3 of 3 identities proved" in out and "avgpool" in out
    assert main(["recheck", str(folder)]) == 0
    assert main(["prove", "--all-sizes", "--layer", "relu", "--dilation", "2"]) == 2
    assert "convolutions only" in capsys.readouterr().err


def test_unknown_is_not_proved_for_a_layer_and_the_command_exits_1(monkeypatch, capsys):
    def unknown(o, timeout=10.0):
        return SolverRun("z3", "test", "", "unknown (incomplete)", False, 0.0)

    monkeypatch.setattr(report_module, "run_z3", unknown)
    assert prove_general_layer("mse", solvers=("z3",))["grad_input"].verdict == "not proved"
    assert main(["prove", "--all-sizes", "--layer", "maxpool", "--solvers", "z3"]) == 1
    assert "not proved" in capsys.readouterr().out


def test_the_layer_theorems_print_as_latex_with_the_choice_and_the_mean():
    from symconv import latex

    tex = latex(prove_general_layer("maxpool", axes=1, names=("grad_input",)))
    assert r"R{\left(b,c,o \right)}" in tex and r"\operatorname{route}_{R}" in tex and "k \\ge 2 p" in tex
    tex = latex(prove_general_layer("avgpool", names=("grad_input",)))
    assert r"\frac{1}{k_{h} k_{w}}" in tex and r"\mathbf{1}" in tex
