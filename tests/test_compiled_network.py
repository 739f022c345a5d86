"""Whole networks in generated C: against the NumPy reference backpropagation, step for step against PyTorch's SGD,
and hostile arguments."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conftest import STRICT_CFLAGS
from symconv.pipeline import compile_network
from symconv.runtime.network import CompiledNetwork
from symconv.symbolic.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from symconv.symbolic.losses import CrossEntropyLoss, MSELoss
from symconv.symbolic.network import Network


def small_cnn(loss: Any, batch: int = 8) -> Network:
    """Every layer kind: conv (padded and not), ReLU, both poolings, Flatten, two dense layers."""
    return Network([Conv2d(4, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(6, 3, padding=1), ReLU(), AvgPool2d(2),
                    Flatten(), Dense(16), ReLU(), Dense(5), loss], (batch, 1, 8, 8))


def _data(net: Network, seed: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(net.input_shape).astype(dtype)
    if isinstance(net.loss, CrossEntropyLoss):
        return x, rng.integers(0, net.shapes[-1][1], net.input_shape[0])
    return x, rng.standard_normal(net.shapes[-1]).astype(dtype)


@pytest.fixture(scope="module")
def compiled(kernel_cache: str) -> dict[tuple[str, str], CompiledNetwork]:
    nets = {"ce": small_cnn(CrossEntropyLoss()), "mse": small_cnn(MSELoss())}
    return {(name, dtype): compile_network(net, dtype, cflags=STRICT_CFLAGS, threads=1)
            for name, net in nets.items() for dtype in ("float64", "float32")}


@pytest.mark.parametrize("loss", ["ce", "mse"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_backward_matches_the_reference(compiled: dict, loss: str, dtype: str) -> None:
    net = compiled[loss, dtype]
    x, target = _data(net.network, 1, dtype)
    got = net.backward(x, target)
    want = net.network.reference_backward(x, net.params, target)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-6)
    assert got.loss == pytest.approx(float(want.loss), rel=tol["rtol"])
    np.testing.assert_allclose(got.input, want.input, **tol)
    assert list(got.params) == list(want.params)
    for key in want.params:
        np.testing.assert_allclose(got.params[key], want.params[key], **tol, err_msg=key)
    np.testing.assert_allclose(net.forward(x), net.network.reference_forward(x, net.params).output, **tol)
    assert net.loss(x, target) == pytest.approx(got.loss, rel=1e-6)


def test_step_is_sgd_on_the_backward_gradients(compiled: dict) -> None:
    net = compiled["ce", "float64"]
    x, labels = _data(net.network, 2, "float64")
    before = {k: v.copy() for k, v in net.params.items()}
    grads = net.backward(x, labels, input_gradient=False)
    assert grads.input is None
    loss = net.step(x, labels, 0.05)
    assert loss == grads.loss
    for key, value in net.params.items():
        np.testing.assert_allclose(value, before[key] - 0.05 * grads.params[key], rtol=1e-15, atol=1e-17)
        value[...] = before[key]  # leave the shared fixture as it was


def test_predict_takes_any_number_of_samples(compiled: dict) -> None:
    net = compiled["ce", "float32"]
    x, _ = _data(small_cnn(CrossEntropyLoss(), batch=19), 3, "float32")  # two full batches of 8 and one of 3
    out = net.predict(x)
    assert out.shape == (19, 5)
    np.testing.assert_array_equal(out[8:16], net.forward(np.ascontiguousarray(x[8:16])))
    np.testing.assert_allclose(out, net.network.reference_forward(x, net.params).output, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_twenty_sgd_steps_agree_with_torch(kernel_cache: str, loss: str) -> None:
    """The whole chain: the same model and initial weights in PyTorch; losses and parameters after each of the
    first 20 SGD steps agree to float32 tolerance."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    network = small_cnn(CrossEntropyLoss() if loss == "ce" else MSELoss())
    net = compile_network(network, "float32", seed=3, cflags=STRICT_CFLAGS, threads=1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1),
                          nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(24, 16), nn.ReLU(), nn.Linear(16, 5))
    model.load_state_dict({k: torch.tensor(v) for k, v in net.params.items()})  # nn.Sequential's own names
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def criterion(out: Any, target: Any) -> Any:  # ours: mean cross-entropy; MSE is 1/2 the sum of squares
        return nn.functional.cross_entropy(out, target) if loss == "ce" else 0.5 * nn.functional.mse_loss(out, target, reduction="sum")

    lr = 0.1 if loss == "ce" else 0.01
    for group in optimizer.param_groups:
        group["lr"] = lr
    for step in range(20):
        x, target = _data(network, 100 + step, "float32")
        optimizer.zero_grad()
        expected = criterion(model(torch.tensor(x)), torch.tensor(target))
        expected.backward()
        optimizer.step()
        got = net.step(x, target, lr)
        assert got == pytest.approx(expected.item(), rel=1e-4, abs=1e-6), f"loss at step {step}"
        for key, value in model.state_dict().items():
            np.testing.assert_allclose(net.params[key], value.numpy(), rtol=1e-4, atol=1e-5, err_msg=f"{key} at step {step}")


def test_hostile_arguments_give_clear_errors(compiled: dict) -> None:
    net = compiled["ce", "float32"]
    x, labels = _data(net.network, 4, "float32")
    cases = [
        (lambda: net.forward(x.astype(np.float64)), ValueError, "'x' must be a float32 array of shape (8, 1, 8, 8), got float64"),
        (lambda: net.forward(x[:0]), ValueError, "an empty batch"),
        (lambda: net.forward(list(x)), TypeError, "'x' must be a numpy.ndarray"),
        (lambda: net.forward(np.asfortranarray(x)), ValueError, "must be C-contiguous"),
        (lambda: net.loss(x, labels[:3]), ValueError, "'target' must be 8 integer class labels"),
        (lambda: net.loss(x, labels.astype(float)), ValueError, "'target' must be 8 integer class labels"),
        (lambda: net.backward(x, np.full(8, 5)), ValueError, "'labels' must hold class labels in [0, 5), got 5"),
        (lambda: net.predict(x[:0]), ValueError, "M >= 1"),
        (lambda: compiled["mse", "float32"].loss(x, np.zeros((8, 5))), ValueError, "'target' must be a float32 array"),
        (lambda: compile_network(net.network, params={"0.weight": np.zeros(1)}), ValueError, "params must have the keys"),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as caught:
            call()
        assert message in str(caught.value), (message, str(caught.value))
    with pytest.raises(ValueError, match=r"empty batch"):
        small_cnn(CrossEntropyLoss(), batch=0)


def test_network_compile_is_compile_network(kernel_cache: str) -> None:
    net = Network([Flatten(), Dense(3), MSELoss()], (2, 1, 2, 2))
    compiled = net.compile("float64", cflags=STRICT_CFLAGS, seed=3)
    direct = compile_network(net, "float64", cflags=STRICT_CFLAGS, seed=3)
    x, t = _data(net, 0, "float64")
    np.testing.assert_array_equal(compiled.forward(x), direct.forward(x))


@pytest.mark.parametrize("loss", [CrossEntropyLoss(), MSELoss()])
def test_fused_conv_relu_gives_the_unfused_results(kernel_cache: str, loss: Any) -> None:
    net = small_cnn(loss)
    fused = compile_network(net, "float64", cflags=STRICT_CFLAGS, threads=1)
    plain = compile_network(net, "float64", cflags=STRICT_CFLAGS, threads=1, fuse=False)
    assert [s.kind for s in fused._stages][:2] == ["conv_relu", "relu_fused"]
    assert [s.kind for s in plain._stages][:2] == ["conv", "relu"]
    x, t = _data(net, 5, "float64")
    a, b = fused.backward(x, t), plain.backward(x, t)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-13)
    np.testing.assert_allclose(a.input, b.input, rtol=1e-12, atol=1e-14)
    for key in a.params:
        np.testing.assert_allclose(a.params[key], b.params[key], rtol=1e-12, atol=1e-14, err_msg=key)
