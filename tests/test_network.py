"""Network: shapes, the whole-loss derivation, the region-wise proof, wrong closed forms refused, the float NumPy
reference against finite differences, SymPy and PyTorch, hostile inputs, and the LaTeX."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp

import symconv
from symconv import (
    AvgPool2d,
    Conv2d,
    ConvTranspose2d,
    ConvTransposeSpec,
    CrossEntropyLoss,
    Dense,
    Flatten,
    MaxPool2d,
    MSELoss,
    Network,
    ReLU,
)
from symconv.printing.network import network_latex
from symconv.symbolic.layers import ZERO


def tiny() -> Network:
    """The issue's network: 6x6 input, 3x3 convolution, ReLU, 2x2 max pooling, flatten, dense, MSE."""
    return Network([Conv2d(1, 3), ReLU(), MaxPool2d(2), Flatten(), Dense(2), MSELoss()], (1, 1, 6, 6))


def small() -> Network:
    """A quicker network of the same kinds of layers, with overlapping pooling windows."""
    return Network([Conv2d(1, 2), ReLU(), MaxPool2d(2, stride=1), Flatten(), Dense(2), MSELoss()], (1, 1, 4, 4))


def test_shapes_and_parameters_are_inferred() -> None:
    net = tiny()
    assert net.shapes == ((1, 1, 6, 6), (1, 1, 4, 4), (1, 1, 4, 4), (1, 1, 2, 2), (1, 4), (1, 2))
    assert net.parameter_shapes() == {"0.weight": (1, 1, 3, 3), "0.bias": (1,), "4.weight": (2, 4), "4.bias": (2,)}
    assert "2: MaxPool2d(2, stride 2) -> (1, 1, 2, 2)" in net.describe()


def test_derive_builds_the_whole_piecewise_loss() -> None:
    d = tiny().derive()
    assert d.loss.has(sp.Max)
    names = {s.name for s in d.loss.free_symbols}
    assert {"X_{11}", "F^{[1]}_{33}", "b^{[1]}", "W^{[5]}_{24}", "b^{[5]}_{2}", "t_{2}"} <= names
    assert len(names) == 36 + 9 + 1 + 8 + 2 + 2
    # The symbolic loss is the reference's at any point.
    net, rng = tiny(), np.random.default_rng(0)
    x, params, t = rng.standard_normal((1, 1, 6, 6)), net.init_params(0), rng.standard_normal((1, 2))
    value = d.loss.xreplace(d.point_from(x, params, t))
    assert float(value) == pytest.approx(float(net.reference_loss(x, params, t)), rel=1e-12)


def test_the_tiny_network_proof_holds() -> None:
    report = tiny().prove()  # its time is the benchmarks' business, not a test's
    assert report.holds, str(report)
    assert [p.name for p in report.proofs] == [
        "grad_input",
        "grad_0.weight",
        "grad_0.bias",
        "grad_4.weight",
        "grad_4.bias",
        "piecewise_at_point",
        "region_loss_at_point",
    ]
    assert "ReLU" in report.region and "winners" in report.region


def test_another_region_of_the_tiny_network() -> None:
    first, second = tiny().prove(seed=0), tiny().prove(seed=1)
    assert second.holds, str(second)
    assert second.region != first.region


@pytest.mark.parametrize(
    "layers,shape",
    [
        ([Dense(3), ReLU(), Dense(2), MSELoss()], (2, 3)),
        ([Conv2d(2, 2, stride=2, padding=1), ReLU(), AvgPool2d(2), Flatten(), Dense(2), MSELoss()], (1, 1, 4, 4)),
        ([Conv2d(1, 2), ReLU(), MaxPool2d(2, stride=1), Flatten(), Dense(3), CrossEntropyLoss()], (2, 1, 3, 3)),
        ([MaxPool2d(2, stride=1, padding=1), ReLU(), Flatten(), MSELoss()], (1, 1, 2, 2)),
    ],
    ids=["dense-relu-dense", "strided-conv-avgpool", "cross-entropy", "pool-then-relu"],
)
def test_the_proof_holds_for_other_networks(layers, shape) -> None:
    report = Network(layers, shape).prove()
    assert report.holds, str(report)


def test_the_proof_at_a_given_point_from_floats() -> None:
    net, rng = small(), np.random.default_rng(5)
    d = net.derive()
    point = d.point_from(rng.standard_normal((1, 1, 4, 4)), net.init_params(5), rng.standard_normal((1, 2)))
    report = net.prove(point=point)
    assert report.holds and report.point == point


def test_a_point_on_a_region_boundary_is_refused() -> None:
    net = tiny()
    d = net.derive()
    zeros = {s: 0 for tensor in d.free_tensors().values() for s in tensor.flat}
    with pytest.raises(ValueError, match=r"region boundary.*ReLU.*exactly 0"):
        net.prove(point=zeros)
    with pytest.raises(ValueError, match="no value"):
        net.prove(point={d.input[0, 0, 0, 0]: 1})
    with pytest.raises(ValueError, match="not finite"):
        net.prove(point={**{s: 1 for s in zeros}, d.input[0, 0, 0, 0]: float("nan")})
    with pytest.raises(ValueError, match="exact rational"):
        net.prove(point={**{s: 1 for s in zeros}, d.input[0, 0, 0, 0]: sp.sqrt(2)})
    with pytest.raises(ValueError, match="not finite"):
        d.point_from(np.full((1, 1, 6, 6), np.inf), net.init_params(), np.zeros((1, 2)))


class _EveryUnitMaxPool(MaxPool2d):
    """A wrong closed form inside a network: the pooling gradient goes to every unit of the window."""

    def backward(self, x, params, grad_output, branch=None):
        grad = np.full(x.shape, ZERO, dtype=object)
        for p, cells in self.windows(x.shape):
            for r, c in cells:
                grad[p[0], p[1], r, c] += grad_output[p]
        return grad, {}


class _NoBiasGradient(Dense):
    def backward(self, x, params, grad_output, branch=None):
        grad, grads = super().backward(x, params, grad_output, branch)
        return grad, {**grads, "bias": np.full(grads["bias"].shape, ZERO, dtype=object)}


def test_a_wrong_layer_inside_a_network_is_refused_with_the_parameter_entry() -> None:
    net = Network([Conv2d(1, 2), ReLU(), _EveryUnitMaxPool(2, stride=1), Flatten(), Dense(2), MSELoss()], (1, 1, 4, 4))
    report = net.prove()
    assert not report.holds
    failing = [p for p in report.proofs if not p.holds]
    assert {p.name for p in failing} >= {"grad_input", "grad_0.weight", "piecewise_at_point"}
    counterexample = report["grad_0.weight"].counterexample
    assert counterexample.tensor == "0.weight (F^{[1]})" and len(counterexample.index) == 4
    assert counterexample.difference != 0
    assert report["grad_4.weight"].holds  # layers after the pooling are untouched

    report = Network([Flatten(), _NoBiasGradient(2), MSELoss()], (1, 3)).prove()
    assert not report["grad_1.bias"].holds and report["grad_1.weight"].holds


def test_incompatible_shapes_are_refused_naming_the_layer() -> None:
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d.*larger than the padded input"):
        Network([Conv2d(1, 7), MSELoss()], (1, 1, 6, 6))
    with pytest.raises(ValueError, match=r"layer 3 \(Dense\(2\)\).*Flatten"):
        Network([Conv2d(1, 3), ReLU(), MaxPool2d(2), Dense(2), MSELoss()], (1, 1, 6, 6))
    with pytest.raises(ValueError, match=r"layer 1 \(CrossEntropyLoss"):
        Network([Conv2d(3, 3), CrossEntropyLoss()], (1, 1, 6, 6))
    with pytest.raises(ValueError, match="ends with a loss"):
        Network([Conv2d(1, 3), ReLU()], (1, 1, 6, 6))
    with pytest.raises(ValueError, match="loss must come last"):
        Network([MSELoss(), Flatten(), MSELoss()], (1, 4))
    with pytest.raises(ValueError, match="empty batch"):
        Network([Flatten(), MSELoss()], (0, 1, 6, 6))
    with pytest.raises(ValueError, match=r"layer 0 .*out_channels"):
        Network([Conv2d(0, 3), MSELoss()], (1, 1, 6, 6))


# ---- the float NumPy reference -------------------------------------------------------------------------------


def _network_for_reference() -> tuple[Network, np.ndarray, np.ndarray]:
    net = Network(
        [
            Conv2d(2, 3, padding=1),
            ReLU(),
            MaxPool2d(2),
            Conv2d(2, 2),
            AvgPool2d(1),
            Flatten(),
            Dense(3),
            CrossEntropyLoss(),
        ],
        (2, 1, 6, 6),
    )
    rng = np.random.default_rng(7)
    return net, rng.standard_normal((3, 1, 6, 6)), np.array([0, 2, 1])  # batch 3: not input_shape's 2


def test_init_params_follow_pytorchs_law_and_are_seeded() -> None:
    net, _, _ = _network_for_reference()
    params = net.init_params(seed=3)
    assert {k: v.shape for k, v in params.items()} == net.parameter_shapes()
    assert np.abs(params["0.weight"]).max() <= 1 / 3 and np.abs(params["6.weight"]).max() <= 1 / np.sqrt(8)
    assert all(np.array_equal(params[k], net.init_params(seed=3)[k]) for k in params)
    assert net.init_params(dtype=np.float32)["0.bias"].dtype == np.float32


def test_reference_backward_against_central_differences() -> None:
    net, x, labels = _network_for_reference()
    params = net.init_params(0)
    grads = net.reference_backward(x, params, labels)
    h = 1e-6
    for name, tensor, grad in [("input", x, grads.input), *[(k, params[k], grads.params[k]) for k in params]]:
        numeric = np.zeros(tensor.shape)
        for index in np.ndindex(*tensor.shape):
            saved = tensor[index]
            tensor[index] = saved + h
            up = net.reference_loss(x, params, labels)
            tensor[index] = saved - h
            down = net.reference_loss(x, params, labels)
            tensor[index] = saved
            numeric[index] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_taylor_remainder_shrinks_as_h_squared() -> None:
    net, x, labels = _network_for_reference()
    params, rng = net.init_params(1), np.random.default_rng(2)
    grads = net.reference_backward(x, params, labels)
    directions = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    slope = sum(float(np.sum(grads.params[k] * directions[k])) for k in params)
    remainders = []
    for h in (1e-3, 5e-4, 2.5e-4):  # small enough that no ReLU or pooling kink is crossed
        moved = {k: params[k] + h * directions[k] for k in params}
        remainders.append(abs(net.reference_loss(x, moved, labels) - grads.loss - h * slope))
    assert remainders[0] / remainders[1] == pytest.approx(4, rel=0.15)
    assert remainders[1] / remainders[2] == pytest.approx(4, rel=0.15)


def test_reference_backward_equals_sympys_derivative_of_the_whole_loss() -> None:
    net, rng = tiny(), np.random.default_rng(4)
    x, params, t = rng.standard_normal((1, 1, 6, 6)), net.init_params(4), rng.standard_normal((1, 2))
    d = net.derive()
    point = d.point_from(x, params, t)
    grads = net.reference_backward(x, params, t)
    for key, tensor in {"input": d.input, **d.params}.items():
        exact = np.array([float(sp.diff(d.loss, s).xreplace(point)) for s in tensor.flat]).reshape(tensor.shape)
        got = grads.input if key == "input" else grads.params[key]
        np.testing.assert_allclose(got, exact, rtol=1e-12, atol=1e-14, err_msg=key)


def test_float32_reference_is_close_to_float64() -> None:
    net, x, labels = _network_for_reference()
    p64 = net.init_params(0)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    g64, g32 = net.reference_backward(x, p64, labels), net.reference_backward(x.astype(np.float32), p32, labels)
    assert g32.input.dtype == np.float32 and all(v.dtype == np.float32 for v in g32.params.values())
    np.testing.assert_allclose(g32.loss, g64.loss, rtol=1e-5)
    for k in p64:
        np.testing.assert_allclose(g32.params[k], g64.params[k], rtol=1e-3, atol=1e-5)


def test_hostile_reference_inputs() -> None:
    net, x, labels = _network_for_reference()
    params = net.init_params(0)
    with pytest.raises(ValueError, match=r"the network takes \(N, 1, 6, 6\)"):
        net.reference_forward(x[:, :, :5], params)
    with pytest.raises(ValueError, match="float32 or float64"):
        net.reference_forward(x.astype(int), params)
    with pytest.raises(ValueError, match="empty batch"):
        net.reference_forward(x[:0], params)
    with pytest.raises(ValueError, match="keys"):
        net.reference_forward(x, {k: v for k, v in params.items() if k != "0.bias"})
    with pytest.raises(ValueError, match=r"params\['0.weight'\] must be a float64 array of shape"):
        net.reference_forward(x, {**params, "0.weight": params["0.weight"].astype(np.float32)})
    with pytest.raises(ValueError, match="labels"):
        net.reference_loss(x, params, np.array([0, 1, 3]))
    mse = tiny()
    with pytest.raises(ValueError, match="target must have the output's shape"):
        mse.reference_loss(np.zeros((1, 1, 6, 6)), mse.init_params(), np.zeros((1, 3)))
    # NaN propagates to the loss and its gradients without an exception (documented IEEE behaviour).
    x_nan = x.copy()
    x_nan[0, 0, 0, 0] = np.nan
    grads = net.reference_backward(x_nan, params, labels)
    assert np.isnan(grads.loss) and np.isnan(grads.params["6.weight"]).any()


def test_reference_matches_pytorch() -> None:
    torch = pytest.importorskip("torch")
    net, x, labels = _network_for_reference()
    params = net.init_params(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(2, 2, 2),
        torch.nn.AvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 3),
    ).double()
    model.load_state_dict({k: torch.tensor(v) for k, v in params.items()})  # the keys are PyTorch's
    tx = torch.tensor(x, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(model(tx), torch.tensor(labels))
    loss.backward()
    grads = net.reference_backward(x, params, labels)
    assert float(grads.loss) == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(grads.input, tx.grad.numpy(), rtol=1e-10, atol=1e-14)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads.params[name], p.grad.numpy(), rtol=1e-10, atol=1e-14, err_msg=name)


# ---- LaTeX and the public API --------------------------------------------------------------------------------


def test_network_latex_lists_every_layer_and_the_backward_chain() -> None:
    text = network_latex(tiny())
    assert text.startswith("\\begin{align*}") and text.endswith("\\end{align*}")
    assert "\\max\\left(0, {a^{[1]}}_{n,c,i,j}\\right)" in text
    assert "{\\delta^{[5]}}_{n,o} &= {a^{[5]}}_{n,o} - {t}_{n,o}" in text
    assert "\\left[{a^{[1]}}_{n,c,i,j} > 0\\right]" in text
    assert "w^{[3]}_{n,c,i,j} = (u, v)" in text
    assert text.index("Forward") < text.index("Backward")
    assert "CrossEntropyLoss: mean over the batch" in network_latex(_network_for_reference()[0])


def _evaluate(expr: sp.Expr, at: dict[sp.Symbol, int], arrays: dict[str, np.ndarray]) -> float:
    """An indexed equation's value at the indices ``at``, its sums run term by term and an entry at a
    non-integer or outside index read as 0 (as the text says)."""
    def entry(e: sp.Indexed) -> float:
        array, index = arrays[str(e.base.label)], e.indices
        if not all(x.is_integer for x in index):
            return 0.0
        where = tuple(int(x) for x in index)
        return float(array[where]) if all(0 <= x < extent for x, extent in zip(where, array.shape)) else 0.0

    def value(term: sp.Expr) -> float:
        return float(term.xreplace({e: sp.Float(entry(e), 30) for e in term.atoms(sp.Indexed)}))

    total = 0.0
    for term in sp.Add.make_args(expr.xreplace({x: sp.Integer(v) for x, v in at.items()})):
        if not isinstance(term, sp.Sum):
            total += value(term)
            continue
        names = [limit[0] for limit in term.limits]
        for point in itertools.product(*(range(int(lo), int(hi) + 1) for _, lo, hi in term.limits)):
            total += value(term.function.xreplace(dict(zip(names, map(sp.Integer, point)))))
    return total


@pytest.mark.parametrize("spec", [
    ConvTransposeSpec((3, 4), (3, 2), stride=(2, 3), padding=((1, 0), (0, 1)), output_padding=(1, 2),
                      dilation=(1, 2), in_channels=4, out_channels=2, groups=2, batch=2),
    ConvTransposeSpec((3, 3), (2, 3), stride=2, padding=1, in_channels=2, out_channels=4, groups=2),
    ConvTransposeSpec((2, 3), (3, 3), padding=((2, 0), (1, 1)), in_channels=2, out_channels=3, bias=False),
], ids=lambda spec: spec.describe())
def test_transposed_convolution_equations_compute_the_reference(spec: ConvTransposeSpec) -> None:
    """Every printed equation of a transposed convolution, evaluated entry by entry, is the NumPy reference."""
    from symconv.printing.network import c, i, j, m, n, o, r, s, transpose_equations, u, v
    from symconv.symbolic import transpose_forms as closed

    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(spec.input_shape), rng.standard_normal(spec.weight_shape)
    b, dy = rng.standard_normal(spec.out_channels), rng.standard_normal(spec.output_shape)
    arrays = {"X": x, "F^{[1]}": w, "b^{[1]}": b, "\\delta^{[1]}": dy}
    equations = transpose_equations(spec, 1)
    expected = {"forward": ((n, o, u, v), closed.reference_forward(spec, x, w, b if spec.bias else None)),
                "grad_input": ((n, c, i, j), closed.reference_grad_input(spec, dy, w)),
                "grad_weight": ((c, m, r, s), closed.reference_grad_weight(spec, x, dy))}
    if spec.bias:
        expected["grad_bias"] = ((o,), closed.reference_grad_bias(spec, dy))
    assert set(equations) == set(expected)
    for name, (indices, reference) in expected.items():
        rhs = equations[name][1]
        ours = np.array([_evaluate(rhs, dict(zip(indices, at)), arrays)
                         for at in np.ndindex(*reference.shape)]).reshape(reference.shape)
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12, err_msg=name)


def test_network_latex_prints_transposed_convolutions() -> None:
    net = Network([ConvTranspose2d(4, 3, stride=2, padding=1, groups=2), ReLU(),
                   ConvTranspose2d(1, 2, bias=False), MSELoss()], (1, 2, 3, 3))
    text = network_latex(net)
    assert "ConvTranspose2d(4, 3, stride=2, padding=1, output_padding=0, groups=2)" in text
    assert "non-integer or outside indices give 0; c = m within o's group" in text
    assert "{\\partial b^{[1]}_{o}}" in text and "{\\partial b^{[3]}_{o}}" not in text
    assert text.count("the corresponding convolution's forward pass") == 2


def test_public_names() -> None:
    namespace: dict = {}
    exec("from symconv import *", namespace)
    for name in (
        "Network",
        "Conv2d",
        "ReLU",
        "MaxPool2d",
        "AvgPool2d",
        "Flatten",
        "Dense",
        "MSELoss",
        "CrossEntropyLoss",
    ):
        assert name in symconv.__all__ and name in namespace


def test_a_network_carries_its_weights() -> None:
    layers = [Conv2d(2, 2), ReLU(), Flatten(), Dense(3), CrossEntropyLoss()]
    bare = Network(layers, (2, 1, 4, 4))
    own = bare.init_params(seed=4, dtype=np.float32)
    net = bare.with_params(own)
    assert net == bare and bare.params is None  # the weights are data, not part of the layer chain's identity
    assert list(net.params) == list(bare.parameter_shapes())
    assert all(v.dtype == np.float64 and not v.flags.writeable for v in net.params.values())
    own["0.weight"][...] = 0  # a copy: changing the given arrays leaves the network's weights alone
    assert np.abs(net.params["0.weight"]).max() > 0
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4))
    explicit = bare.reference_forward(x, dict(net.params)).output
    np.testing.assert_array_equal(net.reference_forward(x).output, explicit)
    labels = np.array([0, 2])
    assert net.reference_loss(x, None, labels) == bare.reference_loss(x, dict(net.params), labels)
    assert net.reference_forward(x.astype(np.float32)).output.dtype == np.float32  # cast to the input's dtype


@pytest.mark.parametrize("params, message", [
    ({"0.weight": np.zeros((2, 1, 3, 3))}, "params must have the keys \\['0.bias', '0.weight'\\]"),
    ({"0.weight": np.zeros((2, 1, 2, 2)), "0.bias": np.zeros(2)}, "params\\['0.weight'\\] must be a float array of "
                                                                    "shape \\(2, 1, 3, 3\\)"),
    ({"0.weight": np.zeros((2, 1, 3, 3), dtype=np.int64), "0.bias": np.zeros(2)}, "got int64"),
    ([1, 2], "params must have the keys"),
])
def test_wrong_weights_are_refused(params: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Network([Conv2d(2, 3), MSELoss()], (1, 1, 4, 4), params)  # type: ignore[arg-type]


def test_a_network_without_weights_says_so() -> None:
    net = Network([Flatten(), Dense(2), MSELoss()], (1, 3))
    with pytest.raises(ValueError, match="no weights of its own: pass params"):
        net.reference_forward(np.zeros((1, 3)))
