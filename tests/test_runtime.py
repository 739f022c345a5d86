"""Argument checks of ConvKernels: every bad argument is rejected, by name, before any C runs; the checks
run in C for the common case (symconv.runtime.checked_call) and in Python for every other call, with one meaning."""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from symconv import ConvSpec

SPEC = ConvSpec((5, 6), (2, 3), in_channels=2, out_channels=3, batch=2)


@pytest.fixture(scope="module", params=["checked in C", "Python only"])
def k(kernels, request):
    # Every test runs on both paths: the C fast path (which hands what it does not take to Python) and the
    # Python methods alone, as they run when the checked-call extension cannot be built.
    compiled = kernels(SPEC, "float32")
    return compiled if request.param == "checked in C" else replace(compiled, checked=None)


@pytest.fixture
def args():
    rng = np.random.default_rng(2)
    return {
        "x": rng.standard_normal(SPEC.input_shape).astype(np.float32),
        "w": rng.standard_normal(SPEC.weight_shape).astype(np.float32),
        "b": rng.standard_normal(SPEC.out_channels).astype(np.float32),
        "dy": rng.standard_normal(SPEC.output_shape).astype(np.float32),
    }


def misaligned(array: np.ndarray) -> np.ndarray:
    """The same values at an odd address: a view one byte into a larger buffer."""
    buffer = np.zeros(array.nbytes + 1, np.uint8)
    view = np.frombuffer(buffer.data, dtype=array.dtype, count=array.size, offset=1).reshape(array.shape)
    view[...] = array
    assert not view.flags.aligned
    return view


def read_only(array: np.ndarray) -> np.ndarray:
    copy = array.copy()
    copy.flags.writeable = False
    return copy


BAD = [
    ("x", lambda a: a.tolist(), TypeError, "argument 'x' must be a numpy.ndarray, got list"),
    ("x", lambda a: a.astype(np.float64), ValueError, "argument 'x' must have dtype float32, got float64"),
    ("x", lambda a: a.astype(">f4"), ValueError, "argument 'x' must have dtype float32, got >f4"),
    ("x", lambda a: a[..., :5], ValueError,
     "argument 'x' must have shape (2, 2, 5, 6) (N, C, H, W), got (2, 2, 5, 5)"),
    ("x", lambda a: a[None], ValueError, "argument 'x' must have shape (2, 2, 5, 6) (N, C, H, W), got (1, 2, 2, 5, 6)"),
    ("x", lambda a: np.asfortranarray(a), ValueError, "argument 'x' must be C-contiguous, got strides"),
    ("x", lambda a: np.concatenate([a, a], axis=3)[..., ::2], ValueError, "argument 'x' must be C-contiguous"),
    ("x", misaligned, ValueError, "argument 'x' must be aligned to 4 bytes, got address"),
    ("w", lambda a: a.transpose(1, 0, 2, 3), ValueError, "argument 'w' must have shape (3, 2, 2, 3) (K, C, R, S)"),
    ("b", lambda a: a[:2], ValueError, "argument 'b' must have shape (3,) (K), got (2,)"),
    ("b", lambda a: 1.0, TypeError, "argument 'b' must be a numpy.ndarray, got float"),
]


@pytest.mark.parametrize(("name", "spoil", "error", "message"), BAD, ids=[m for _, _, _, m in BAD])
def test_forward_rejects_bad_inputs(k, args, name, spoil, error, message):
    call = {"x": args["x"], "w": args["w"], "b": args["b"]}
    call[name] = spoil(call[name])
    out = np.full(SPEC.output_shape, 7.0, np.float32)
    with pytest.raises(error, match="^forward: " + re.escape(message)):
        k.forward(call["x"], call["w"], call["b"], out=out)
    assert np.all(out == 7.0)  # no C ran


@pytest.mark.parametrize(
    ("spoil", "error", "message"),
    [
        (lambda a: a[..., :3], ValueError,
         "argument 'out' must have shape (2, 3, 4, 4) (N, K, Ho, Wo), got (2, 3, 4, 3)"),
        (lambda a: a.astype(np.float64), ValueError, "argument 'out' must have dtype float32, got float64"),
        (read_only, ValueError, "argument 'out' must be writeable, got a read-only array"),
        (misaligned, ValueError, "argument 'out' must be aligned to 4 bytes"),
        (lambda a: np.asfortranarray(a), ValueError, "argument 'out' must be C-contiguous"),
        (lambda a: [0.0], TypeError, "argument 'out' must be a numpy.ndarray, got list"),
    ],
)
def test_forward_rejects_bad_out(k, args, spoil, error, message):
    out = spoil(np.zeros(SPEC.output_shape, np.float32))
    with pytest.raises(error, match="^forward: " + re.escape(message)):
        k.forward(args["x"], args["w"], args["b"], out=out)


def test_every_kernel_names_its_own_arguments(k, args):
    wrong = np.zeros((1, 1), np.float32)
    with pytest.raises(ValueError, match=r"^grad_input: argument 'dy' must have shape \(2, 3, 4, 4\)"):
        k.grad_input(wrong, args["w"])
    with pytest.raises(ValueError, match=r"^grad_input: argument 'w' must have shape"):
        k.grad_input(args["dy"], wrong)
    with pytest.raises(ValueError, match=r"^grad_weight: argument 'x' must have shape \(2, 2, 5, 6\)"):
        k.grad_weight(wrong, args["dy"])
    with pytest.raises(ValueError, match=r"^grad_weight: argument 'out' must have shape \(3, 2, 2, 3\) \(K, C, R, S\)"):
        k.grad_weight(args["x"], args["dy"], out=wrong)
    with pytest.raises(ValueError, match=r"^grad_bias: argument 'out' must have shape \(3,\) \(K\)"):
        k.grad_bias(args["dy"], out=wrong)
    with pytest.raises(ValueError, match=r"^grad_input: argument 'out' must have shape \(2, 2, 5, 6\) \(N, C, H, W\)"):
        k.grad_input(args["dy"], args["w"], out=wrong)


def test_out_overlapping_an_input_is_rejected(k, args):
    # The kernels' pointers are restrict: an output sharing memory with an input is refused, an adjacent one not.
    dy, x = args["dy"], args["x"]
    storage = np.zeros(dy.size + x.size, np.float32)
    shared_dy = storage[: dy.size].reshape(dy.shape)
    shared_dy[...] = dy
    with pytest.raises(ValueError, match="^grad_input: argument 'out' overlaps 'dy'; pass a separate array"):
        k.grad_input(shared_dy, args["w"], out=storage[10 : 10 + x.size].reshape(x.shape))
    adjacent = storage[dy.size :].reshape(x.shape)
    np.testing.assert_array_equal(k.grad_input(shared_dy, args["w"], out=adjacent), k.grad_input(dy, args["w"]))
    with pytest.raises(ValueError, match="^grad_bias: argument 'out' overlaps 'dy'"):
        k.grad_bias(dy, out=dy.reshape(-1)[: SPEC.out_channels])
    with pytest.raises(ValueError, match="^forward: argument 'out' overlaps 'b'"):
        both = np.zeros(int(np.prod(SPEC.output_shape)), np.float32)
        k.forward(x, args["w"], both[-SPEC.out_channels :], out=both.reshape(SPEC.output_shape))


def test_valid_views_and_read_only_inputs_are_accepted(k, args):
    x = read_only(args["x"])
    padded = np.zeros((2, 2, 7, 6), np.float32)
    padded[:, :, 1:6] = args["x"]
    expected = k.forward(args["x"], args["w"], args["b"])
    np.testing.assert_array_equal(k.forward(x, args["w"], args["b"]), expected)
    # A C-contiguous slice of a larger array is fine: zero copy, right offset.
    view = np.ascontiguousarray(padded[:, :, 1:6])
    np.testing.assert_array_equal(k.forward(view, args["w"], args["b"]), expected)
    batch = np.stack([args["x"], args["x"]])[1]
    assert batch.flags.c_contiguous and batch.base is not None
    np.testing.assert_array_equal(k.forward(batch, args["w"], args["b"]), expected)


def test_a_reused_array_changed_in_place_is_checked_again(k, args):
    # The runtime reuses the pointer of the array passed last time; what NumPy lets change in place is re-checked.
    x, w, b = args["x"].copy(), args["w"], args["b"]
    out = np.empty(SPEC.output_shape, np.float32)
    for _ in range(2):
        k.forward(x, w, b, out=out)
    x.shape = (2, 2, 6, 5)
    with pytest.raises(ValueError, match=r"^forward: argument 'x' must have shape \(2, 2, 5, 6\)"):
        k.forward(x, w, b, out=out)
    x.shape = SPEC.input_shape
    x.dtype = np.int32
    with pytest.raises(ValueError, match="^forward: argument 'x' must have dtype float32, got int32"):
        k.forward(x, w, b, out=out)
    x.dtype = np.float32
    out.flags.writeable = False
    with pytest.raises(ValueError, match="^forward: argument 'out' must be writeable"):
        k.forward(x, w, b, out=out)


def test_bind_runs_the_kernel_on_the_bound_memory(k, args):
    x, w, b, dy = args["x"].copy(), args["w"], args["b"], args["dy"]
    y, dx, dw, db = (np.empty(s, np.float32) for s in (SPEC.output_shape, SPEC.input_shape, SPEC.weight_shape, (3,)))
    forward = k.bind("forward", x, w, b, out=y)
    assert forward() is y
    np.testing.assert_array_equal(y, k.forward(x, w, b))
    x *= 2  # new values in the same memory: the next call sees them
    forward()
    np.testing.assert_array_equal(y, k.forward(x, w, b))
    k.bind("forward", x, w, None, out=y)()
    np.testing.assert_array_equal(y, k.forward(x, w))
    for family, arrays, out, method in (("grad_input", (dy, w), dx, k.grad_input),
                                        ("grad_weight", (x, dy), dw, k.grad_weight), ("grad_bias", (dy,), db, k.grad_bias)):
        assert k.bind(family, *arrays, out=out)() is out
        np.testing.assert_array_equal(out, method(*arrays))


def test_bind_checks_its_arguments_once(k, args):
    x, w, b, dy = args["x"], args["w"], args["b"], args["dy"]
    y = np.empty(SPEC.output_shape, np.float32)
    with pytest.raises(ValueError, match=r"^forward: argument 'x' must have shape \(2, 2, 5, 6\)"):
        k.bind("forward", x[..., :5], w, b, out=y)
    with pytest.raises(ValueError, match="^grad_weight: argument 'out' must have dtype float32, got float64"):
        k.bind("grad_weight", x, dy, out=np.empty(SPEC.weight_shape))
    with pytest.raises(ValueError, match="^grad_bias: argument 'out' overlaps 'dy'"):
        k.bind("grad_bias", dy, out=dy.reshape(-1)[: SPEC.out_channels])
    with pytest.raises(TypeError, match=r"^grad_input: bind takes the 2 input arrays \(dy, w\) and out=, got 3"):
        k.bind("grad_input", dy, w, w, out=np.empty(SPEC.input_shape, np.float32))
    with pytest.raises(ValueError, match="^bind: family must be one of"):
        k.bind("backward", x, out=y)
    with pytest.raises(TypeError, match="^grad_input: argument 'dy' must be a numpy.ndarray, got NoneType"):
        k.bind("grad_input", None, w, out=np.empty(SPEC.input_shape, np.float32))  # only forward's b may be None


def test_the_common_case_runs_in_c_with_the_meaning_of_the_python_method(kernels, args):
    k = kernels(SPEC, "float32")
    assert type(k.forward).__name__ == "CheckedCall" and k.forward.__name__ == "forward"
    python = replace(k, checked=None)
    assert type(python.forward).__name__ == "function"
    x, w, b, dy = args["x"], args["w"], args["b"], args["dy"]
    y = np.empty(SPEC.output_shape, np.float32)
    expected = python.forward(x, w, b)
    for call in (lambda: k.forward(x, w, b, y), lambda: k.forward(x, w, b, out=y),
                 lambda: k.forward(out=y, b=b, w=w, x=x), lambda: k.forward(x, w=w, b=b, out=y)):
        y[...] = np.nan
        assert call() is y
        np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(k.forward(x, w), python.forward(x, w))  # no bias: the zeros
    np.testing.assert_array_equal(k.forward(x, w, None, out=y), python.forward(x, w))
    fresh = k.forward(x, w, b)
    assert fresh.dtype == np.float32 and fresh.shape == SPEC.output_shape and fresh.flags.owndata
    assert fresh is not k.forward(x, w, b)
    for family, arrays in (("grad_input", (dy, w)), ("grad_weight", (x, dy)), ("grad_bias", (dy,))):
        np.testing.assert_array_equal(getattr(k, family)(*arrays), getattr(python, family)(*arrays))
    np.testing.assert_array_equal(k.grad_weight(dy=dy, x=x), python.grad_weight(x, dy))


def test_calls_the_c_path_does_not_take_go_to_python_unchanged(kernels, args):
    k = kernels(SPEC, "float32")
    x, w, b = args["x"], args["w"], args["b"]

    class Tagged(np.ndarray):
        pass

    np.testing.assert_array_equal(k.forward(x.view(Tagged), w, b), k.forward(x, w, b))
    same = np.dtype(np.float32).newbyteorder("=")  # equal to the layer's dtype, maybe not the same object
    np.testing.assert_array_equal(k.forward(x.astype(same), w, b), k.forward(x, w, b))
    for call, message in ((lambda: k.forward(x, w, b, None, None), "takes from 2 to 4 positional arguments"),
                          (lambda: k.forward(x, w, bias=b), "unexpected keyword argument 'bias'"),
                          (lambda: k.forward(x, w, x=x), "multiple values for argument 'x'"),
                          (lambda: k.grad_input(args["dy"]), "missing 1 required positional argument: 'w'")):
        with pytest.raises(TypeError, match=re.escape(message)):
            call()


def test_checked_calls_keep_no_references(kernels, args):
    k = kernels(SPEC, "float32")
    x, w, b = args["x"], args["w"], args["b"]
    y = np.empty(SPEC.output_shape, np.float32)
    before = [sys.getrefcount(a) for a in (x, w, b, y)]
    for _ in range(1000):
        k.forward(x, w, b, out=y)
        k.forward(x, w)
    assert [sys.getrefcount(a) for a in (x, w, b, y)] == before
    assert sys.getrefcount(k.forward(x, w, b)) == sys.getrefcount(np.empty(3))  # the caller's reference only


class _Liar(np.ndarray):
    """An ndarray that reports a shape and a dtype of its choosing: the checks must read the real buffer."""

    reported: tuple[tuple[int, ...], Any] = ((), None)

    @property  # type: ignore[override]
    def shape(self) -> tuple[int, ...]:
        return self.reported[0]

    @property  # type: ignore[override]
    def dtype(self) -> Any:
        return self.reported[1]


def test_an_array_that_lies_about_its_shape_or_dtype_is_refused_by_its_real_memory(kernels, args):
    k = kernels(SPEC, "float32")
    x, w, b = args["x"], args["w"], args["b"]
    for real, message in ((np.empty((1, *SPEC.output_shape[1:]), np.float32), "must have shape"),
                          (np.empty(SPEC.output_shape, np.float16), "must have dtype float32, got float16")):
        liar = real.view(_Liar)
        liar.reported = (SPEC.output_shape, np.dtype(np.float32))
        with pytest.raises(ValueError, match="^forward: argument 'out' " + message):
            k.forward(x, w, b, out=liar)
    small = np.empty((1, *SPEC.input_shape[1:]), np.float32).view(_Liar)
    small.reported = (SPEC.input_shape, np.dtype(np.float32))
    with pytest.raises(ValueError, match=r"^forward: argument 'x' must have shape \(2, 2, 5, 6\)"):
        k.forward(small, w, b)
    with pytest.raises(TypeError, match="^forward: argument 'x' must be a numpy.ndarray, got a masked array"):
        k.forward(np.ma.masked_array(x), w, b)
