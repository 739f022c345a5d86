"""Layers: the proofs on a grid of shapes, wrong closed forms refused, the NumPy reference against finite
differences and the exact closed forms, hostile inputs, and PyTorch's conventions when torch is importable."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symconv import AvgPool2d, Conv2d, CrossEntropyLoss, Dense, Flatten, MaxPool2d, MSELoss, ReLU
from symconv.proofs.layers import draw_rational, is_zero, prove_layer, prove_loss, reduce_difference
from symconv.symbolic import layer_reference as ref
from symconv.symbolic.layers import ZERO, Layer, entrywise, maximum

LAYER_GRID = [
    (Conv2d(1, 2), (1, 1, 3, 3)),
    (Conv2d(2, 3, stride=2, padding=1), (2, 2, 5, 5)),
    (Conv2d(1, (2, 3), dilation=(2, 1), flip=True), (1, 2, 5, 5)),
    (ReLU(), (1, 1, 3, 3)),
    (ReLU(), (2, 5)),
    (MaxPool2d(2), (1, 2, 4, 4)),
    (MaxPool2d(2, stride=1), (1, 1, 3, 3)),  # overlapping windows: gradients accumulate
    (MaxPool2d((2, 3), stride=(1, 2), padding=(1, 1)), (2, 1, 4, 5)),
    (MaxPool2d(3, stride=2, padding=1), (1, 1, 5, 5)),  # windows of 4, 6 and 9 real cells
    (MaxPool2d(2), (1, 1, 5, 5)),  # the last row and column are in no window
    (AvgPool2d(2), (1, 1, 4, 4)),
    (AvgPool2d(3, stride=2, padding=1), (2, 1, 5, 5)),
    (AvgPool2d((2, 1), stride=1), (1, 2, 3, 3)),
    (Flatten(), (2, 2, 2, 3)),
    (Flatten(), (3, 4)),
    (Dense(3), (2, 4)),
    (Dense(1), (1, 1)),
]


@pytest.mark.parametrize("layer,shape", LAYER_GRID, ids=lambda v: v.describe() if isinstance(v, Layer) else str(v))
def test_every_layer_proof_holds(layer: Layer, shape: tuple[int, ...]) -> None:
    report = prove_layer(layer, shape)
    assert report.holds, str(report)
    names = [p.name for p in report.proofs]
    assert names[0] == "grad_input"
    assert ("grad_weight" in names) == bool(layer.parameter_shapes(shape))
    if layer.piecewise:
        assert "piecewise_at_point" in names and report.region


def test_the_convolution_bias_gradient_is_proved_as_a_sum_over_batch_and_space() -> None:
    report = prove_layer(Conv2d(2, 2, stride=2), (3, 1, 5, 5))
    assert report["grad_bias"].holds and "sum" in report["grad_bias"].statement


@pytest.mark.parametrize(
    "loss,shape",
    [(MSELoss(), (2, 3)), (MSELoss(), (1, 1, 2, 2)), (CrossEntropyLoss(), (3, 4)), (CrossEntropyLoss(), (1, 2))],
)
def test_every_loss_proof_holds(loss, shape) -> None:
    assert prove_loss(loss, shape).holds


# ---- deliberately wrong closed forms -------------------------------------------------------------------------


def _every_unit(layer: MaxPool2d):
    """The classic mistake: the max-pool gradient sent to every unit of the window, not only to the winner."""

    def backward(x, params, grad_output, branch=None):
        grad = np.full(x.shape, ZERO, dtype=object)
        for p, cells in layer.windows(x.shape):
            for r, c in cells:
                grad[p[0], p[1], r, c] += grad_output[p]
        return grad, {}

    return backward


def test_routing_the_max_pool_gradient_to_every_unit_is_refused() -> None:
    layer = MaxPool2d(2)
    report = prove_layer(layer, (1, 1, 4, 4), backward=_every_unit(layer))
    assert not report["grad_input"].holds and not report["max_routing"].holds
    counterexample = report["grad_input"].counterexample
    assert counterexample.tensor == "grad_input" and len(counterexample.index) == 4
    assert counterexample.derived == 0 and counterexample.difference != 0  # a loser got a gradient


def test_routing_to_the_last_maximum_instead_of_the_recorded_winner_is_refused() -> None:
    layer = MaxPool2d(2, stride=1)

    def last_cell(x, params, grad_output, branch=None):
        return layer.backward(x, params, grad_output, np.full_like(branch, 4))  # always cell (1, 1)

    assert not prove_layer(layer, (1, 1, 3, 3), backward=last_cell).holds


def test_a_relu_gradient_of_1_at_0_breaks_only_the_convention() -> None:
    def at_zero_one(x, params, grad_output, branch=None):
        # [x >= 0], derivative 1 at 0; on a region's symbols (never 0 there) the recorded branch stands for it.
        mask = branch if branch is not None else entrywise(lambda v: bool(v >= 0), x, bool)
        return np.where(mask, grad_output, ZERO), {}

    report = prove_layer(ReLU(), (1, 1, 2, 2), backward=at_zero_one)
    # Away from 0 the two agree, and so does SymPy's derivative: only the convention at 0 tells them apart.
    assert report["grad_input"].holds and report["relu_derivative"].holds
    convention = report["relu_heaviside"]
    assert not convention.holds and convention.counterexample.index == (2,)  # the x = 0 piece
    assert convention.counterexample.derived == 0 and convention.counterexample.claimed == 1


def test_a_relu_that_passes_every_gradient_is_refused() -> None:
    report = prove_layer(ReLU(), (1, 1, 3, 3), backward=lambda x, p, g, b=None: (g, {}))
    assert not report["grad_input"].holds and not report["relu_derivative"].holds


def test_average_pooling_without_the_padded_cells_in_the_divisor_is_refused_only_with_padding() -> None:
    def count_exclude_pad(layer):
        def backward(x, params, grad_output, branch=None):
            grad = np.full(x.shape, ZERO, dtype=object)
            for p, cells in layer.windows(x.shape):
                for r, c in cells:
                    grad[p[0], p[1], r, c] += grad_output[p] / len(cells)
            return grad, {}

        return backward

    padded, unpadded = AvgPool2d(3, stride=2, padding=1), AvgPool2d(2)
    assert not prove_layer(padded, (1, 1, 5, 5), backward=count_exclude_pad(padded)).holds
    assert prove_layer(unpadded, (1, 1, 4, 4), backward=count_exclude_pad(unpadded)).holds


def test_a_bias_gradient_summed_over_the_batch_only_is_refused() -> None:
    layer = Conv2d(2, 2)

    def batch_only(x, params, grad_output, branch=None):
        grad, grads = layer.backward(x, params, grad_output, branch)
        grads["bias"] = np.array([sp.Add(*grad_output[:, k, 0, 0]) for k in range(2)], dtype=object)
        return grad, grads

    report = prove_layer(layer, (2, 1, 3, 3), backward=batch_only)
    assert report["grad_weight"].holds and not report["grad_bias"].holds


def test_a_dense_weight_gradient_from_the_first_sample_only_is_refused() -> None:
    layer = Dense(2)

    def first_sample(x, params, grad_output, branch=None):
        grad, grads = layer.backward(x, params, grad_output, branch)
        grads["weight"] = np.outer(grad_output[0], x[0])
        return grad, grads

    report = prove_layer(layer, (2, 3), backward=first_sample)
    assert not report["grad_weight"].holds and report["grad_bias"].holds


def test_wrong_loss_gradients_are_refused() -> None:
    assert not prove_loss(MSELoss(), (2, 2), backward=lambda y, t: t - y).holds
    summed = lambda z, t: CrossEntropyLoss().backward(z, t) * z.shape[0]  # reduction "sum", not the mean
    assert not prove_loss(CrossEntropyLoss(), (2, 3), backward=summed).holds
    assert prove_loss(CrossEntropyLoss(), (1, 3), backward=summed).holds  # N = 1: mean and sum agree


def test_exact_zero_test() -> None:
    a, b = sp.symbols("a b", real=True)
    assert is_zero((a + b) ** 3 - a**3 - 3 * a**2 * b - 3 * a * b**2 - b**3)
    assert is_zero(sp.exp(a) / (sp.exp(a) + sp.exp(b)) + sp.exp(b) / (sp.exp(a) + sp.exp(b)) - 1)
    assert reduce_difference(a * (a + 1) - a**2) == a
    assert not is_zero(sp.Heaviside(a) - sp.Heaviside(a, 0))


def test_maximum_is_the_max_and_differentiates_to_heaviside() -> None:
    x, y, z = sp.symbols("x y z", real=True)
    m = maximum(x, y, z)
    assert m.subs({x: 1, y: 3, z: 2}) == 3
    assert sp.diff(maximum(x, y), x) == sp.Heaviside(x - y)


# ---- the NumPy reference -------------------------------------------------------------------------------------

REFERENCE_GRID = [item for item in LAYER_GRID if not isinstance(item[0], Flatten)] + [(Flatten(), (2, 2, 2, 3))]


def _random_params(layer: Layer, shape, rng) -> dict[str, np.ndarray]:
    return {k: rng.standard_normal(s) for k, s in layer.parameter_shapes(shape).items()}


@pytest.mark.parametrize("layer,shape", REFERENCE_GRID, ids=lambda v: v.describe() if isinstance(v, Layer) else str(v))
def test_reference_backward_against_central_differences(layer: Layer, shape) -> None:
    rng = np.random.default_rng(1)
    x, params = rng.standard_normal(shape), _random_params(layer, shape, rng)
    y, cache = layer.reference_forward(x, params)
    g = rng.standard_normal(y.shape)
    dx, dparams = layer.reference_backward(x, params, cache, g)

    def E(x_: np.ndarray, p_: dict[str, np.ndarray]) -> float:
        return float(np.sum(layer.reference_forward(x_, p_)[0] * g))

    h = 1e-6
    for name, tensor, grad in [("input", x, dx), *[(k, params[k], dparams[k]) for k in params]]:
        numeric = np.zeros(tensor.shape)
        for index in np.ndindex(*tensor.shape):
            saved = tensor[index]
            tensor[index] = saved + h
            up = E(x, params)
            tensor[index] = saved - h
            down = E(x, params)
            tensor[index] = saved
            numeric[index] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("layer,shape", REFERENCE_GRID, ids=lambda v: v.describe() if isinstance(v, Layer) else str(v))
def test_reference_equals_the_exact_closed_forms(layer: Layer, shape) -> None:
    rng = np.random.default_rng(2)

    def exact(s) -> np.ndarray:
        return entrywise(lambda _: draw_rational(rng), np.empty(s, dtype=object))

    x, G = exact(shape), exact(layer.output_shape(shape))
    params = {k: exact(s) for k, s in layer.parameter_shapes(shape).items()}
    floats = lambda a: a.astype(np.float64)
    y, cache = layer.reference_forward(floats(x), {k: floats(v) for k, v in params.items()})
    np.testing.assert_allclose(y, floats(layer.forward(x, params)), rtol=1e-12)
    dx, dparams = layer.reference_backward(floats(x), {k: floats(v) for k, v in params.items()}, cache, floats(G))
    exact_dx, exact_dparams = layer.backward(x, params, G)
    np.testing.assert_allclose(dx, floats(exact_dx), rtol=1e-12, atol=1e-12)
    for k in params:
        np.testing.assert_allclose(dparams[k], floats(exact_dparams[k]), rtol=1e-12, atol=1e-12)


def test_reference_keeps_float32() -> None:
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32)
    assert ref.relu_forward(x).dtype == np.float32
    y, idx = ref.maxpool2d_forward(x, (2, 2), (2, 2), (1, 1))
    assert y.dtype == np.float32 and ref.maxpool2d_backward(y, idx, (4, 4)).dtype == np.float32
    assert ref.avgpool2d_forward(x, (2, 2), (1, 1), (0, 0)).dtype == np.float32
    assert ref.mse_loss(x, np.zeros_like(x)).dtype == np.float32


def test_max_pool_ties_go_to_the_first_maximum_in_row_major_order() -> None:
    x = np.array([[[[1.0, 5.0, 5.0], [5.0, 0.0, 5.0]]]])
    y, idx = ref.maxpool2d_forward(x, (2, 3), (1, 1), (0, 0))
    assert y[0, 0, 0, 0] == 5.0 and idx[0, 0, 0, 0] == 1
    exact = np.array([[[[sp.Integer(v) for v in row] for row in x[0, 0]]]], dtype=object)
    assert MaxPool2d((2, 3), stride=1).branch(exact)[0, 0, 0, 0] == 1  # the symbolic side agrees


def test_overlapping_windows_accumulate_at_a_shared_winner() -> None:
    x = np.array([[[[0.0, 0.0, 0.0], [0.0, 9.0, 0.0], [0.0, 0.0, 0.0]]]])
    y, idx = ref.maxpool2d_forward(x, (2, 2), (1, 1), (0, 0))
    assert (idx == 4).all()
    grad = ref.maxpool2d_backward(np.ones_like(y), idx, (3, 3))
    assert grad[0, 0, 1, 1] == 4.0 and grad.sum() == 4.0


def test_non_finite_values_follow_documented_ieee_rules() -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0])
    np.testing.assert_array_equal(ref.relu_forward(x), [np.nan, np.inf, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(ref.relu_backward(x, np.ones(5)), [0.0, 1.0, 0.0, 0.0, 0.0])
    window = np.array([[[[1.0, np.nan], [np.nan, 2.0]]]])
    y, idx = ref.maxpool2d_forward(window, (2, 2), (2, 2), (0, 0))
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 2  # NaN takes over, so the last NaN wins (PyTorch CPU)
    ninf = np.full((1, 1, 2, 2), -np.inf)
    y, idx = ref.maxpool2d_forward(ninf, (2, 2), (1, 1), (1, 1))
    assert (y == -np.inf).all() and idx[0, 0, 0, 0] == 0  # padding never wins, even against -inf
    with np.errstate(invalid="ignore"):  # inf - inf in the stable log-sum-exp: NumPy warns, the result is NaN
        assert np.isnan(ref.cross_entropy_loss(np.array([[np.inf, 0.0]]), np.array([0])))
    assert np.isnan(ref.mse_loss(np.array([np.nan]), np.array([0.0])))


def test_empty_batches_and_bad_labels() -> None:
    assert ref.mse_loss(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0
    with pytest.raises(ValueError, match="empty batch"):
        ref.cross_entropy_loss(np.zeros((0, 3)), np.zeros(0, dtype=int))
    with pytest.raises(ValueError, match="labels"):
        ref.cross_entropy_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        ref.cross_entropy_loss(np.zeros((2, 3)), np.array([0.0, 1.0]))
    y, idx = ref.maxpool2d_forward(np.zeros((0, 1, 4, 4)), (2, 2), (2, 2), (0, 0))
    assert y.shape == (0, 1, 2, 2) and ref.maxpool2d_backward(y, idx, (4, 4)).shape == (0, 1, 4, 4)


def test_hostile_shapes_and_hyperparameters_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"Conv2d.*\(N, C, H, W\)"):
        Conv2d(1, 3).output_shape((2, 9))
    with pytest.raises(ValueError, match="Flatten"):
        Dense(3).output_shape((1, 1, 2, 2))
    with pytest.raises(ValueError, match="at most half"):
        MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        AvgPool2d(5).output_shape((1, 1, 3, 3))
    with pytest.raises(ValueError, match="out_features"):
        Dense(0)
    with pytest.raises(ValueError, match="kernel_size"):
        MaxPool2d((2, 2, 2))
    with pytest.raises(ValueError, match="numeric values"):
        ReLU().branch(np.array([sp.Symbol("x")], dtype=object))


def test_relu_branch_convention_at_zero() -> None:
    x = np.array([sp.Integer(-1), sp.Integer(0), sp.Rational(1, 3)], dtype=object)
    assert ReLU().branch(x).tolist() == [False, False, True]


# ---- PyTorch, when importable ---------------------------------------------------------------------------------


def test_the_reference_layers_match_pytorch() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 4, (2, 2, 5, 5)).astype(np.float64)  # small integers: plenty of ties
    tx = torch.tensor(x, requires_grad=True)
    for k, s, p in [(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 1)]:
        y, idx = ref.maxpool2d_forward(x, (k, k), (s, s), (p, p))
        ty, tidx = F.max_pool2d(tx, k, s, p, return_indices=True)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(idx, tidx.numpy())
        g = rng.standard_normal(y.shape)
        (tgrad,) = torch.autograd.grad(ty, tx, torch.tensor(g))
        np.testing.assert_allclose(ref.maxpool2d_backward(g, idx, (5, 5)), tgrad.numpy(), rtol=1e-12)
        a = ref.avgpool2d_forward(x, (k, k), (s, s), (p, p))
        ta = F.avg_pool2d(tx, k, s, p, count_include_pad=True)
        np.testing.assert_allclose(a, ta.detach().numpy(), rtol=1e-12)
        (tgrad,) = torch.autograd.grad(ta, tx, torch.tensor(np.ones(a.shape)))
        np.testing.assert_allclose(
            ref.avgpool2d_backward(np.ones(a.shape), (5, 5), (k, k), (s, s), (p, p)), tgrad.numpy(), rtol=1e-12
        )
    nan = x.copy()
    nan[0, 0, 1, 1:3] = np.nan
    nan[1, 1, 0, 0] = np.nan
    y, idx = ref.maxpool2d_forward(nan, (3, 3), (1, 1), (1, 1))
    ty, tidx = F.max_pool2d(torch.tensor(nan), 3, 1, 1, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    y, idx = ref.maxpool2d_forward(np.full((1, 1, 2, 2), -np.inf), (2, 2), (1, 1), (1, 1))
    ty, tidx = F.max_pool2d(torch.full((1, 1, 2, 2), -np.inf, dtype=torch.float64), 2, 1, 1, return_indices=True)
    np.testing.assert_array_equal(idx, tidx.numpy())
    (tgrad,) = torch.autograd.grad(F.relu(tx).sum(), tx)
    np.testing.assert_array_equal(ref.relu_backward(x, np.ones_like(x)), tgrad.numpy())  # 0 at x = 0 too
    z, labels = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])
    tz = torch.tensor(z, requires_grad=True)
    tloss = F.cross_entropy(tz, torch.tensor(labels))
    (tgrad,) = torch.autograd.grad(tloss, tz)
    np.testing.assert_allclose(ref.cross_entropy_loss(z, labels), tloss.item(), rtol=1e-12)
    np.testing.assert_allclose(ref.cross_entropy_loss_grad(z, labels), tgrad.numpy(), rtol=1e-12)
    t = rng.standard_normal((4, 3))
    torch_mean = F.mse_loss(torch.tensor(z), torch.tensor(t)).item()
    np.testing.assert_allclose(ref.mse_loss(z, t), torch_mean * z.size / 2, rtol=1e-12)  # the documented factor
