"""Layer kernels (ReLU, pooling, dense, losses) in generated C: against the NumPy reference, finite differences,
PyTorch where installed, IEEE special values, and hostile arguments. One module per dtype holds the whole grid."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest

from conftest import STRICT_CFLAGS
from symconv.codegen.layer_lowering import (
    AvgPoolOp,
    CrossEntropyOp,
    DenseOp,
    LayerOp,
    MaxPoolOp,
    MSEOp,
    ReLUOp,
    lower_layer,
)
from symconv.codegen.render import render_layers
from symconv.pipeline import compile_layers
from symconv.symbolic import layer_reference as ref

RELU = [ReLUOp((1, 1, 1, 1)), ReLUOp((2, 3, 5, 7)), ReLUOp((4, 10))]
POOLS = [  # (input shape, kernel, stride, padding): plain, padded, rectangular, overlapping, gaps between windows
    ((1, 1, 4, 4), 2, 2, 0), ((2, 3, 5, 5), 3, 2, 1), ((2, 2, 7, 6), (3, 2), (2, 1), (1, 1)),
    ((1, 2, 6, 6), 3, 1, 1), ((1, 1, 5, 5), 2, 3, 0),
]
MAXPOOL = [MaxPoolOp(*p) for p in POOLS]
AVGPOOL = [AvgPoolOp(*p) for p in POOLS]
DENSE = [DenseOp(1, 1, 1), DenseOp(3, 17, 5), DenseOp(4, 64, 10)]
MSE = [MSEOp((3, 4)), MSEOp((2, 3, 4, 4))]
CE = [CrossEntropyOp(1, 2), CrossEntropyOp(5, 10)]
OPS: list[LayerOp] = [*RELU, *MAXPOOL, *AVGPOOL, *DENSE, *MSE, *CE]
TOL = {"float64": dict(rtol=1e-12, atol=1e-13), "float32": dict(rtol=2e-5, atol=2e-6)}


@pytest.fixture(scope="module", params=["float64", "float32"])
def lib(request: pytest.FixtureRequest, kernel_cache: str) -> dict[LayerOp, Any]:
    """Every op of the grid, compiled in one module per dtype with -Wall -Wextra -Werror."""
    return dict(zip(OPS, compile_layers(OPS, request.param, cflags=STRICT_CFLAGS)))


@pytest.fixture(scope="module")
def lib64(kernel_cache: str) -> dict[LayerOp, Any]:
    return dict(zip(OPS, compile_layers(OPS, "float64", cflags=STRICT_CFLAGS)))


def _rng(*key: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))  # str hash() is salted per process: crc32 is not


def _normal(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def _pool_args(op: Any) -> tuple[Any, Any, Any]:
    return op.kernel, op.stride, op.padding


# --- against the NumPy reference ------------------------------------------------------------------------------

@pytest.mark.parametrize("op", RELU, ids=repr)
def test_relu_matches_reference(lib: dict, op: ReLUOp) -> None:
    k = lib[op]
    rng = _rng(op)
    x, dy = _normal(rng, op.shape, k.dtype), _normal(rng, op.shape, k.dtype)
    np.testing.assert_array_equal(k.forward(x), ref.relu_forward(x))
    np.testing.assert_array_equal(k.backward(x, dy), ref.relu_backward(x, dy))


@pytest.mark.parametrize("op", MAXPOOL, ids=repr)
def test_maxpool_matches_reference(lib: dict, op: MaxPoolOp) -> None:
    k = lib[op]
    rng = _rng(op)
    x = _normal(rng, op.input_shape, k.dtype)
    y, idx = k.forward(x)
    ry, ridx = ref.maxpool2d_forward(x, *_pool_args(op))
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    assert idx.dtype == np.int64
    dy = _normal(rng, y.shape, k.dtype)
    np.testing.assert_allclose(k.backward(dy, idx), ref.maxpool2d_backward(dy, ridx, op.input_shape[2:]), **TOL[k.dtype.name])


@pytest.mark.parametrize("op", AVGPOOL, ids=repr)
def test_avgpool_matches_reference(lib: dict, op: AvgPoolOp) -> None:
    k = lib[op]
    rng = _rng(op)
    x = _normal(rng, op.input_shape, k.dtype)
    y = k.forward(x)
    np.testing.assert_allclose(y, ref.avgpool2d_forward(x, *_pool_args(op)), **TOL[k.dtype.name])
    dy = _normal(rng, y.shape, k.dtype)
    expected = ref.avgpool2d_backward(dy, op.input_shape[2:], *_pool_args(op))
    np.testing.assert_allclose(k.backward(dy), expected, **TOL[k.dtype.name])


@pytest.mark.parametrize("op", DENSE, ids=repr)
def test_dense_matches_reference(lib: dict, op: DenseOp) -> None:
    k = lib[op]
    rng = _rng(op)
    x, w = _normal(rng, (op.batch, op.in_features), k.dtype), _normal(rng, (op.out_features, op.in_features), k.dtype)
    b, dy = _normal(rng, (op.out_features,), k.dtype), _normal(rng, (op.batch, op.out_features), k.dtype)
    tol = TOL[k.dtype.name]
    np.testing.assert_allclose(k.forward(x, w, b), ref.dense_forward(x, w, b), **tol)
    dx, dw, db = ref.dense_backward(x, w, dy)
    np.testing.assert_allclose(k.grad_input(dy, w), dx, **tol)
    np.testing.assert_allclose(k.grad_weight(x, dy), dw, **tol)
    np.testing.assert_allclose(k.grad_bias(dy), db, **tol)


@pytest.mark.parametrize("op", MSE + CE, ids=repr)
def test_losses_match_reference(lib: dict, op: Any) -> None:
    k = lib[op]
    rng = _rng(op)
    tol = TOL[k.dtype.name]
    if isinstance(op, MSEOp):
        y, t = _normal(rng, op.shape, k.dtype), _normal(rng, op.shape, k.dtype)
        np.testing.assert_allclose(k.loss(y, t), ref.mse_loss(y, t), **tol)
        np.testing.assert_allclose(k.grad(y, t), ref.mse_loss_grad(y, t), **tol)
    else:
        z, labels = 5 * _normal(rng, (op.batch, op.classes), k.dtype), rng.integers(0, op.classes, op.batch)
        np.testing.assert_allclose(k.loss(z, labels), ref.cross_entropy_loss(z, labels), **tol)
        np.testing.assert_allclose(k.grad(z, labels), ref.cross_entropy_loss_grad(z, labels), **tol)


def test_cross_entropy_is_stable_for_huge_logits(lib: dict) -> None:
    k = lib[CE[0]]
    z = np.array([[1000.0, 0.0]], k.dtype)  # exp(1000) overflows; the shifted log-sum-exp does not
    assert k.loss(z, np.array([1])) == pytest.approx(1000.0)
    np.testing.assert_allclose(k.grad(z, np.array([0])), [[0.0, 0.0]], atol=1e-30)


# --- finite differences and dot tests (float64) -----------------------------------------------------------------

def _directional(f: Any, x: np.ndarray, v: np.ndarray, h: float = 1e-6) -> float:
    return float((f(x + h * v) - f(x - h * v)) / (2 * h))


@pytest.mark.parametrize("op", [RELU[1], MAXPOOL[1], MAXPOOL[3], AVGPOOL[2], MSE[0], CE[1]], ids=repr)
def test_gradients_match_finite_differences(lib64: dict, op: Any) -> None:
    k, rng = lib64[op], _rng("fd", op)
    if isinstance(op, (MSEOp, CrossEntropyOp)):
        shape = op.shape if isinstance(op, MSEOp) else (op.batch, op.classes)
        other = _normal(rng, shape, np.float64) if isinstance(op, MSEOp) else rng.integers(0, op.classes, op.batch)
        x, v = _normal(rng, shape, np.float64), _normal(rng, shape, np.float64)
        expected = float(np.sum(k.grad(x, other) * v))
        assert _directional(lambda a: k.loss(a, other), x, v) == pytest.approx(expected, rel=1e-7, abs=1e-9)
        return
    shape = op.shape if isinstance(op, ReLUOp) else op.input_shape
    x, v = _normal(rng, shape, np.float64), _normal(rng, shape, np.float64)
    out = k.forward(x)[0] if isinstance(op, MaxPoolOp) else k.forward(x)
    r = _normal(rng, out.shape, np.float64)  # E = <forward(x), r>, so dE/dy = r

    def energy(a: np.ndarray) -> float:
        y = k.forward(a)
        return float(np.sum((y[0] if isinstance(op, MaxPoolOp) else y) * r))

    if isinstance(op, ReLUOp):
        grad = k.backward(x, r)
    elif isinstance(op, MaxPoolOp):
        grad = k.backward(r, k.forward(x)[1])
    else:
        grad = k.backward(r)
    assert _directional(energy, x, v) == pytest.approx(float(np.sum(grad * v)), rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("op", DENSE[1:], ids=repr)
def test_dense_dot_tests(lib64: dict, op: DenseOp) -> None:
    """<dense(x, W), r> is bilinear: its gradients by x and W are exact adjoints, to rounding (Devito's dot test)."""
    k, rng = lib64[op], _rng("dot", op)
    x, w = _normal(rng, (op.batch, op.in_features), np.float64), _normal(rng, (op.out_features, op.in_features), np.float64)
    zero, r = np.zeros(op.out_features), _normal(rng, (op.batch, op.out_features), np.float64)
    lhs = np.sum(k.forward(x, w, zero) * r)
    assert np.sum(x * k.grad_input(r, w)) == pytest.approx(lhs, rel=1e-12)
    assert np.sum(w * k.grad_weight(x, r)) == pytest.approx(lhs, rel=1e-12)
    ones = np.ones(op.out_features)  # <dense(0, W, b), r> = <b, grad_bias(r)>
    assert np.sum(ones * k.grad_bias(r)) == pytest.approx(np.sum(k.forward(np.zeros_like(x), w, ones) * r), rel=1e-12)


# --- PyTorch ------------------------------------------------------------------------------------------------

def test_layers_agree_with_torch(lib64: dict) -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = _rng("torch")
    for op in MAXPOOL + AVGPOOL:
        x = torch.tensor(_normal(rng, op.input_shape, np.float64), requires_grad=True)
        args = dict(kernel_size=op.kernel, stride=op.stride, padding=op.padding)
        if isinstance(op, MaxPoolOp):
            ty, tidx = F.max_pool2d(x, return_indices=True, **args)
            y, idx = lib64[op].forward(x.detach().numpy())
            np.testing.assert_array_equal(idx, tidx.numpy())
        else:
            ty = F.avg_pool2d(x, count_include_pad=True, **args)
            y = lib64[op].forward(x.detach().numpy())
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
        dy = _normal(rng, y.shape, np.float64)
        ty.backward(torch.tensor(dy))
        dx = lib64[op].backward(dy, idx) if isinstance(op, MaxPoolOp) else lib64[op].backward(dy)
        np.testing.assert_allclose(dx, x.grad.numpy(), rtol=1e-12, atol=1e-14)
    op = DENSE[2]
    x = torch.tensor(_normal(rng, (op.batch, op.in_features), np.float64), requires_grad=True)
    linear = torch.nn.Linear(op.in_features, op.out_features).double()
    ty = linear(x)
    w, b = linear.weight.detach().numpy(), linear.bias.detach().numpy()
    np.testing.assert_allclose(lib64[op].forward(x.detach().numpy(), w, b), ty.detach().numpy(), rtol=1e-12)
    z = torch.tensor(_normal(rng, (5, 10), np.float64), requires_grad=True)
    labels = rng.integers(0, 10, 5)
    loss = F.cross_entropy(z, torch.tensor(labels))
    loss.backward()
    assert lib64[CE[1]].loss(z.detach().numpy(), labels) == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(lib64[CE[1]].grad(z.detach().numpy(), labels), z.grad.numpy(), rtol=1e-10, atol=1e-15)
    t = torch.tensor(_normal(rng, (3, 4), np.float64))
    yv = torch.tensor(_normal(rng, (3, 4), np.float64))
    assert lib64[MSE[0]].loss(yv.numpy(), t.numpy()) == pytest.approx(0.5 * F.mse_loss(yv, t, reduction="sum").item())
    x = _normal(rng, RELU[1].shape, np.float64)
    x[0, 0, 0, :3] = [0.0, -0.0, np.nan]  # the derivative at 0 is 0 in both; NaN propagates in both
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.relu(tx)
    dy = _normal(rng, x.shape, np.float64)
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(lib64[RELU[1]].forward(x), ty.detach().numpy())
    grad, tgrad = lib64[RELU[1]].backward(x, dy), tx.grad.numpy()
    # At x = NaN PyTorch passes dy through (it tests the output, NaN <= 0 is false); we and the reference give 0.
    assert grad[0, 0, 0, 2] == 0 and tgrad[0, 0, 0, 2] == dy[0, 0, 0, 2]
    tgrad[0, 0, 0, 2] = 0
    np.testing.assert_array_equal(grad, tgrad)


# --- ties and IEEE special values ---------------------------------------------------------------------------

def test_maxpool_ties_go_to_the_first_maximum_in_row_major_order(lib: dict) -> None:
    op = MAXPOOL[3]  # 3x3 windows, stride 1, padding 1: overlapping, every window holds ties
    x = np.zeros(op.input_shape, lib[op].dtype)
    x[0, 0, 2:5, 2:5] = 1.0
    y, idx = lib[op].forward(x)
    ry, ridx = ref.maxpool2d_forward(x, *_pool_args(op))
    np.testing.assert_array_equal(idx, ridx)
    assert idx[0, 0, 0, 0] == 0 and idx[0, 0, 3, 3] == 2 * 6 + 2  # first cell of the window / first 1 in it
    dx = lib[op].backward(np.ones(y.shape, lib[op].dtype), idx)
    assert dx[0, 0, 2, 2] == 9  # overlapping windows that share a winner accumulate
    torch = pytest.importorskip("torch")
    _, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 1, 1, return_indices=True)
    np.testing.assert_array_equal(idx, tidx.numpy())


def test_special_values_follow_ieee_and_the_reference(lib: dict) -> None:
    nan, inf = np.nan, np.inf
    relu = lib[RELU[2]]
    x = np.zeros((4, 10), relu.dtype)
    x[0, :4] = [nan, inf, -inf, 0.0]
    y = relu.forward(x)
    np.testing.assert_array_equal(y[0, :4], [nan, inf, 0.0, 0.0])  # NaN propagates, as torch.relu
    np.testing.assert_array_equal(relu.backward(x, np.ones_like(x))[0, :4], [0.0, 1.0, 0.0, 0.0])  # 0 at 0 and NaN
    pool = lib[MAXPOOL[0]]  # 2x2 windows of a 4x4 plane
    x = np.arange(16, dtype=pool.dtype).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = nan  # two NaNs in the first window: NaN out, the last NaN wins (PyTorch)
    x[0, 0, 2:4, 0:2] = -inf  # a window of -inf: -inf out, its first cell wins
    y, idx = pool.forward(x)
    ry, ridx = ref.maxpool2d_forward(x, *_pool_args(MAXPOOL[0]))
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 4 and y[0, 0, 1, 0] == -inf and idx[0, 0, 1, 0] == 8
    avg = lib[AVGPOOL[0]]
    assert np.isnan(avg.forward(x)[0, 0, 0, 0]) and avg.forward(x)[0, 0, 1, 0] == -inf
    ce = lib[CE[1]]
    z = np.zeros((5, 10), ce.dtype)
    z[0, 3] = nan
    assert np.isnan(ce.loss(z, np.zeros(5, np.int64))) and np.isnan(ce.grad(z, np.zeros(5, np.int64))[0]).all()
    z[0, 3] = inf  # inf - inf in the shifted log-sum-exp: NaN, as the reference and PyTorch
    assert np.isnan(ce.loss(z, np.zeros(5, np.int64)))
    mse = lib[MSE[0]]
    y = np.zeros((3, 4), mse.dtype)
    y[1, 1] = inf
    assert mse.loss(y, np.zeros_like(y)) == inf


# --- hostile arguments ------------------------------------------------------------------------------------

def _misaligned(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer(bytearray(size + 1), dtype=dtype, offset=1).reshape(shape)


def test_hostile_arguments_are_refused_before_any_c(lib64: dict) -> None:
    relu, pool, dense, ce = lib64[RELU[1]], lib64[MAXPOOL[1]], lib64[DENSE[1]], lib64[CE[1]]
    x = np.zeros((2, 3, 5, 7))
    cases = [
        (lambda: relu.forward([[1.0]]), TypeError, "'x' must be a numpy.ndarray, got list"),
        (lambda: relu.forward(x.astype(np.float32)), ValueError, "'x' must have dtype float64, got float32"),
        (lambda: relu.forward(x[:1]), ValueError, "must have shape (2, 3, 5, 7) (N, C, H, W), got (1, 3, 5, 7)"),
        (lambda: relu.forward(x[:0]), ValueError, "an empty batch"),
        (lambda: relu.forward(np.zeros((2, 3, 5, 14))[..., ::2]), ValueError, "'x' must be C-contiguous"),
        (lambda: relu.forward(_misaligned(x.shape, np.float64)), ValueError, "'x' must be aligned to 8 bytes"),
        (lambda: relu.forward(x, out=np.zeros((2, 3, 5, 7), np.float32)), ValueError, "'out' must have dtype"),
        (lambda: relu.forward(x, out=np.zeros_like(x).T), ValueError, "'out' must have shape"),
        (lambda: relu.forward(x, out=x), ValueError, "'out' overlaps 'x'; pass a separate array"),
        (lambda: relu.backward(x, x, out=np.broadcast_to(np.zeros(7), x.shape)), ValueError, "'out' must be"),
        (lambda: pool.backward(np.zeros((2, 3, 3, 3)), np.full((2, 3, 3, 3), 25)), ValueError, "'indices' must hold flat positions h * W + w in [0, 25), got 25"),
        (lambda: pool.backward(np.zeros((2, 3, 3, 3)), np.full((2, 3, 3, 3), -1)), ValueError, "got -1"),
        (lambda: pool.backward(np.zeros((2, 3, 3, 3)), np.zeros((2, 3, 3, 3), np.int32)), ValueError, "'indices' must have dtype int64"),
        (lambda: dense.forward(np.zeros((3, 17)), np.zeros((17, 5)), np.zeros(5)), ValueError, "'w' must have shape (5, 17) (out, in)"),
        (lambda: ce.loss(np.zeros((5, 10)), np.array([0, 1, 2, 3, 10])), ValueError, "'labels' must hold class labels in [0, 10), got 10"),
        (lambda: ce.grad(np.zeros((5, 10)), np.zeros(5, np.int32)), ValueError, "'labels' must have dtype int64"),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as caught:
            call()
        assert message in str(caught.value), (message, str(caught.value))


def test_impossible_layers_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"empty batch \(N = 0\)"):
        ReLUOp((0, 3))
    with pytest.raises(ValueError, match="at most half the kernel"):
        MaxPoolOp((1, 1, 4, 4), 2, 2, 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        AvgPoolOp((1, 1, 2, 2), 5, 1, 1)
    with pytest.raises(ValueError, match="dtype must be one of"):
        lower_layer(ReLUOp((1,)), "int8")


def test_generated_source_has_the_banner_and_shared_prototypes() -> None:
    sources = render_layers([lower_layer(op, "float32") for op in (RELU[0], CE[0], RELU[0])])
    assert sources.c.startswith("/*\n * Generated by symconv ") and "do not edit" in sources.c
    for line in sources.cdef.splitlines():
        if line.startswith("void "):
            assert line.rstrip(";") in sources.c  # one prototype text for the .c and the cdef
    assert sources.c.count("void relu_1x1x1x1_f32_forward(") == 1  # duplicates rendered once
    assert "expf(" in sources.c and "int64_t *restrict labels" in sources.c


def test_maxpool_nan_agrees_with_torch(lib: dict) -> None:
    torch = pytest.importorskip("torch")
    op = MAXPOOL[3]  # overlapping 3x3 windows with padding
    x = _normal(_rng("nan"), op.input_shape, lib[op].dtype)
    x[0, 0, 1, 1] = x[0, 0, 2, 3] = x[0, 1, 4, 4] = np.nan
    y, idx = lib[op].forward(x)
    ty, tidx = torch.nn.functional.max_pool2d(torch.tensor(x), 3, 1, 1, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())


# --- one runtime: the layer kernels' common case runs in C, with the meaning of their Python methods --------------

def _python_twin(kernels: Any) -> Any:
    """The same loaded module behind the Python checks alone (as when the C extension cannot be built)."""
    return type(kernels)(kernels.plan, kernels.module, None)


def test_layer_methods_run_in_c_and_mean_what_their_python_methods_mean(lib64: dict) -> None:
    relu, pool, dense, mse, ce = (lib64[op] for op in (RELU[1], MAXPOOL[1], DENSE[1], MSE[0], CE[1]))
    rng = _rng("c path")
    for kernels, names in ((relu, ("forward", "backward")), (pool, ("forward", "backward")), (mse, ("grad",)),
                           (dense, ("forward", "grad_input", "grad_weight", "grad_bias")), (ce, ("grad",))):
        for name in names:
            assert type(getattr(kernels, name)).__name__ == "CheckedCall", (kernels, name)
            assert type(getattr(_python_twin(kernels), name)).__name__ == "method"
    x = _normal(rng, RELU[1].shape, np.float64)
    dy = _normal(rng, RELU[1].shape, np.float64)
    python = _python_twin(relu)
    np.testing.assert_array_equal(relu.forward(x), python.forward(x))
    out = np.empty_like(x)
    assert relu.backward(x, dy, out=out) is out
    np.testing.assert_array_equal(out, python.backward(x, dy))
    # Two outputs come back as a tuple, from C as from Python; given outputs are filled in place.
    px = _normal(rng, MAXPOOL[1].input_shape, np.float64)
    y, indices = pool.forward(px)
    y_py, indices_py = _python_twin(pool).forward(px)
    np.testing.assert_array_equal(y, y_py)
    np.testing.assert_array_equal(indices, indices_py)
    y_out, i_out = np.empty_like(y), np.empty_like(indices)
    got = pool.forward(px, out=y_out, indices=i_out)
    assert got[0] is y_out and got[1] is i_out
    np.testing.assert_array_equal(pool.backward(y, indices), _python_twin(pool).backward(y, indices))
    # A loss returns a float on both paths; in-range labels run in C, out-of-range ones are refused by Python.
    z = _normal(rng, (5, 10), np.float64)
    labels = np.array([0, 9, 3, 3, 1])
    assert ce.loss(z, labels) == _python_twin(ce).loss(z, labels)
    np.testing.assert_array_equal(ce.grad(z, labels), _python_twin(ce).grad(z, labels))
    with pytest.raises(ValueError, match=r"'labels' must hold class labels in \[0, 10\), got -3"):
        ce.grad(z, np.array([0, 9, -3, 3, 1]))


class _Liar(np.ndarray):
    """An ndarray that reports a shape and a dtype of its choosing: the checks must read the real buffer."""

    reported_shape: tuple[int, ...] = ()
    reported_dtype: Any = None

    @property  # type: ignore[override]
    def shape(self) -> tuple[int, ...]:
        return self.reported_shape

    @property  # type: ignore[override]
    def dtype(self) -> Any:
        return self.reported_dtype


def _lying(array: np.ndarray, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    liar = array.view(_Liar)
    liar.reported_shape, liar.reported_dtype = shape, np.dtype(dtype)
    return liar


def test_an_array_that_lies_about_its_shape_or_dtype_is_refused_by_its_real_memory(lib64: dict) -> None:
    relu = lib64[RELU[1]]
    shape = RELU[1].shape
    small = np.zeros((1, 3, 5, 7))  # half the entries the kernel would write
    with pytest.raises(ValueError, match=r"'out' must have shape \(2, 3, 5, 7\) \(N, C, H, W\), got \(1, 3, 5, 7\)"):
        relu.forward(np.zeros(shape), out=_lying(small, shape, np.float64))
    narrow = np.zeros(shape, np.float32)  # float64 written into float32 memory would run past its end
    with pytest.raises(ValueError, match="'out' must have dtype float64, got float32"):
        relu.forward(np.zeros(shape), out=_lying(narrow, shape, np.float64))
    with pytest.raises(ValueError, match=r"'x' must have shape \(2, 3, 5, 7\)"):
        relu.forward(_lying(small, shape, np.float64))
    masked = np.ma.masked_array(np.zeros(shape), mask=np.zeros(shape, bool))
    with pytest.raises(TypeError, match="got a masked array"):
        relu.forward(masked)
    honest = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) - 50
    np.testing.assert_array_equal(relu.forward(honest.view(_Liar)), np.maximum(honest, 0))  # a subclass is fine
