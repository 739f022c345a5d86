"""Runtime: a loaded kernel module and NumPy arrays -> checked, zero-copy calls of the C kernels.

Every argument is checked before any C runs (``symconv.operands``: type, dtype, shape, C-contiguity,
alignment, and for ``out`` writability and no overlap with an input), so the kernels, which trust their fixed
sizes, can never read or write outside an array. The checks are a few attribute reads per argument (flags
as one integer, the dtype by identity first), written inline in one closure per kernel; cffi's
``from_buffer`` (~0.15 µs per array, once the largest part) runs only for an array other than the one last
passed in that argument; arrays that own their memory skip the pointer arithmetic of the overlap test. A call
with ``out=`` on a small layer costs about 1 µs of Python on the 2-core development machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import partial
from types import ModuleType
from typing import Any, Callable, Optional

import numpy as np

from .lowering import VECTOR_STRATEGIES, kernel_prefix, signatures
from .operands import CONTIGUOUS_ALIGNED, WRITABLE_OUT, Operand, check_apart, own_buffers
from .spec import ConvSpec

__all__ = ["ConvKernels", "default_threads"]


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's count).

    >>> default_threads() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1

def _conv_call(where: str, ops: tuple[Operand, ...], call: Callable[..., Any],
               zero_bias: tuple[np.ndarray, Any]) -> Callable[..., np.ndarray]:
    """``forward`` (or ``forward_relu``) as a closure: every constant it checks against is a local cell.

    The common case (an exact ndarray of the layer's dtype object) is tested inline, without a method call
    per argument; anything else (a subclass, an equal but distinct dtype, a wrong argument) goes through
    ``Operand.read``/``write``, which accepts the former and raises for the latter. Same checks either way.
    The checks are written out per argument on purpose: one generic closure looping over the arguments
    measured 2.3-4.2 µs per textbook call against 1.0-2.0 µs for this one, side by side.
    """
    ox, ow, ob, oy = ops
    ndarray, dtype, ctype, from_buffer = np.ndarray, ox.dtype, ox.ctype, ox.ffi.from_buffer
    sx, sw, sb, sy = ox.shape, ow.shape, ob.shape, oy.shape
    ready, ready_out, pb0 = CONTIGUOUS_ALIGNED, WRITABLE_OUT, zero_bias[1]
    fresh, read_x, read_w, read_b, write_y = oy.fresh, ox.read, ow.read, ob.read, oy.write
    # The last array seen in each argument and its pointer: the same array again (a training loop's buffers)
    # reuses the pointer and skips from_buffer (~0.15 µs). Identity is enough: the pointer's buffer export
    # keeps the array alive and forbids NumPy to move its data (resize), and an ndarray's type cannot change;
    # dtype, shape and flags are checked on every call, as they can be reassigned in place. Each pair is read
    # once per call (`seen`) and replaced whole, so a concurrent call never sees half of one.
    last_x = last_w = last_b = last_y = (None, None)

    def conv(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
             out: Optional[np.ndarray] = None) -> np.ndarray:
        nonlocal last_x, last_w, last_b, last_y
        seen = last_x
        if seen[0] is x and x.dtype is dtype and x.shape == sx and x.flags.c_contiguous:
            px = seen[1]
        elif type(x) is ndarray and x.dtype is dtype and x.shape == sx and x.flags.num & ready == ready:
            px = from_buffer(ctype, x)
            last_x = (x, px)
        else:
            px = read_x(x)
        seen = last_w
        if seen[0] is w and w.dtype is dtype and w.shape == sw and w.flags.c_contiguous:
            pw = seen[1]
        elif type(w) is ndarray and w.dtype is dtype and w.shape == sw and w.flags.num & ready == ready:
            pw = from_buffer(ctype, w)
            last_w = (w, pw)
        else:
            pw = read_w(w)
        if b is None:
            pb = pb0
        else:
            seen = last_b
            if seen[0] is b and b.dtype is dtype and b.shape == sb and b.flags.c_contiguous:
                pb = seen[1]
            elif type(b) is ndarray and b.dtype is dtype and b.shape == sb and b.flags.num & ready == ready:
                pb = from_buffer(ctype, b)
                last_b = (b, pb)
            else:
                pb = read_b(b)
        if out is None:
            out, py = fresh()
        else:
            seen = last_y
            if seen[0] is out and out.dtype is dtype and out.shape == sy and out.flags.num & ready_out == ready_out:
                py = seen[1]
            elif type(out) is ndarray and out.dtype is dtype and out.shape == sy and out.flags.num & ready_out == ready_out:
                py = from_buffer(ctype, out)
                last_y = (out, py)
            else:
                py = write_y(out)
            # own_buffers, inlined: distinct arrays owning their memory cannot overlap (the common case)
            if (out.base is not None or x.base is not None or w.base is not None or out is x or out is w
                    or (b is not None and (b.base is not None or out is b))):
                inputs = ((px, ox), (pw, ow)) if b is None else ((px, ox), (pw, ow), (pb, ob))
                check_apart(where, py, oy, inputs)
        if call(px, pw, pb, py):
            raise MemoryError(f"{where}: the kernel could not allocate its scratch memory")
        return out

    conv.__name__ = conv.__qualname__ = where
    return conv


def _pair_call(where: str, ops: tuple[Operand, ...], call: Callable[..., Any]) -> Callable[..., np.ndarray]:
    """``grad_input`` or ``grad_weight`` (two inputs and an output) as a closure, checked as ``_conv_call``."""
    oa, ob, oo = ops
    ndarray, dtype, ctype, from_buffer = np.ndarray, oa.dtype, oa.ctype, oa.ffi.from_buffer
    sa, sb, so = oa.shape, ob.shape, oo.shape
    ready, ready_out = CONTIGUOUS_ALIGNED, WRITABLE_OUT
    fresh, read_a, read_b, write_o = oo.fresh, oa.read, ob.read, oo.write
    last_a = last_b = last_o = (None, None)  # as in _conv_call

    def pair(a: np.ndarray, b: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        nonlocal last_a, last_b, last_o
        seen = last_a
        if seen[0] is a and a.dtype is dtype and a.shape == sa and a.flags.c_contiguous:
            pa = seen[1]
        elif type(a) is ndarray and a.dtype is dtype and a.shape == sa and a.flags.num & ready == ready:
            pa = from_buffer(ctype, a)
            last_a = (a, pa)
        else:
            pa = read_a(a)
        seen = last_b
        if seen[0] is b and b.dtype is dtype and b.shape == sb and b.flags.c_contiguous:
            pb = seen[1]
        elif type(b) is ndarray and b.dtype is dtype and b.shape == sb and b.flags.num & ready == ready:
            pb = from_buffer(ctype, b)
            last_b = (b, pb)
        else:
            pb = read_b(b)
        if out is None:
            out, po = fresh()
        else:
            seen = last_o
            if seen[0] is out and out.dtype is dtype and out.shape == so and out.flags.num & ready_out == ready_out:
                po = seen[1]
            elif type(out) is ndarray and out.dtype is dtype and out.shape == so and out.flags.num & ready_out == ready_out:
                po = from_buffer(ctype, out)
                last_o = (out, po)
            else:
                po = write_o(out)
            if out.base is not None or a.base is not None or b.base is not None or out is a or out is b:
                check_apart(where, po, oo, ((pa, oa), (pb, ob)))
        if call(pa, pb, po):
            raise MemoryError(f"{where}: the kernel could not allocate its scratch memory")
        return out

    pair.__name__ = pair.__qualname__ = where
    return pair


def _bias_call(ops: tuple[Operand, ...], call: Callable[..., Any]) -> Callable[..., np.ndarray]:
    ody, odb = ops

    def grad_bias(dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        pdy = ody.read(dy)
        if out is None:
            out, pdb = odb.fresh()
        else:
            pdb = odb.write(out)
            if not own_buffers(out, dy):
                check_apart("grad_bias", pdb, odb, ((pdy, ody),))
        if call(pdy, pdb):
            raise MemoryError("grad_bias: the kernel could not allocate its scratch memory")
        return out

    return grad_bias


def _bound_call(where: str, ops: tuple[Operand, ...], call: Callable[..., Any], arrays: tuple[Any, ...],
                out: Any, zero_bias: Optional[tuple[np.ndarray, Any]]) -> Callable[[], np.ndarray]:
    """``ConvKernels.bind``: every argument checked once, then a call of the kernel on the same memory."""
    *inputs, out_op = ops
    if len(arrays) != len(inputs):
        names = ", ".join(op.name for op in inputs)
        raise TypeError(f"{where}: bind takes the {len(inputs)} input arrays ({names}) and out=, got {len(arrays)}")
    pointers = []
    for operand, array in zip(inputs, arrays):
        if array is None and operand.name == "b" and zero_bias is not None:
            pointers.append(zero_bias[1])  # no bias: the zeros, as forward(b=None) adds
        else:
            pointers.append(operand.read(array))
    pointer = out_op.write(out)
    check_apart(where, pointer, out_op, tuple(zip(pointers, inputs)))
    # from_buffer holds a buffer export of each array: its memory stays allocated and in place (NumPy refuses to
    # resize an exported array) for as long as this call exists, so nothing is left to check per call.
    run_kernel = partial(call, *pointers, pointer)

    def bound() -> np.ndarray:
        if run_kernel():
            raise MemoryError(f"{where}: the kernel could not allocate its scratch memory")
        return out

    bound.__name__ = bound.__qualname__ = f"{where}_bound"
    return bound


_BORROWABLE = ("grad_input", "grad_weight", "grad_bias")


def _not_fused(x: Any, w: Any, b: Any = None, out: Any = None) -> np.ndarray:
    raise RuntimeError("forward_relu: these kernels were compiled without it; pass fuse_relu=True to compile_conv")


@dataclass(frozen=True, eq=False)
class ConvKernels:
    """The forward pass and the three gradients of one layer, compiled for one dtype.

    Every method takes C-contiguous NumPy arrays of the layer's dtype in PyTorch layout and returns a new
    array, or fills and returns ``out``; every argument is checked before the kernel runs (inputs as
    ``Operand.read``, ``out`` as ``Operand.write`` and against overlap with the inputs):

    - ``forward(x, w, b=None, out=None)``: y = conv(x, w) + b, shape (N, K, Ho, Wo); ``b=None`` means no bias.
    - ``forward_relu(x, w, b=None, out=None)``: max(forward, 0) in one kernel (compiled with ``fuse_relu``).
    - ``grad_input(dy, w, out=None)``: dE/dx given dy = dE/dy, shape (N, C, H, W).
    - ``grad_weight(x, dy, out=None)``: dE/dw given the input x and dy = dE/dy, shape (K, C, R, S).
    - ``grad_bias(dy, out=None)``: dE/db given dy = dE/dy, shape (K,).

    The methods are closures made per instance (``__post_init__``), so that a call on a small layer pays
    for its checks and little else: no bound method, no attribute lookups. Build instances with
    ``symconv.compile_conv``. ``threads`` bounds the OpenMP threads of one call (``gemm`` and ``direct``
    kernels; the others run on the calling thread).
    """

    spec: ConvSpec
    dtype: np.dtype
    strategy: str
    module: ModuleType = field(repr=False)
    threads: int = 1
    fuse_relu: bool = False
    # passes run by other kernels of the same layer and dtype (the autotuner's winners), as (family, kernels)
    borrowed: tuple[tuple[str, "ConvKernels"], ...] = field(default=(), repr=False)
    forward: Callable[..., np.ndarray] = field(init=False, repr=False)
    forward_relu: Callable[..., np.ndarray] = field(init=False, repr=False)
    grad_input: Callable[..., np.ndarray] = field(init=False, repr=False)
    grad_weight: Callable[..., np.ndarray] = field(init=False, repr=False)
    grad_bias: Callable[..., np.ndarray] = field(init=False, repr=False)
    _kernels: dict[str, tuple[tuple[Operand, ...], Callable[..., Any]]] = field(init=False, repr=False)
    _zero_bias: tuple[np.ndarray, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ffi, lib = self.module.ffi, self.module.lib
        prefix = kernel_prefix(self.spec, self.dtype.name)
        sig = signatures(self.spec)
        if self.fuse_relu:
            sig["forward_relu"] = sig["forward"]
        ops = {family: tuple(Operand(family, p, self.dtype, ffi) for p in params) for family, params in sig.items()}
        calls = {family: getattr(lib, f"{prefix}_{family}") for family in ops}
        if self.strategy in VECTOR_STRATEGIES:  # these take the thread count first (partial binds it in C, no frame)
            calls = {family: partial(call, self.threads) for family, call in calls.items()}
        zeros = np.zeros(self.spec.out_channels, self.dtype)
        zeros.flags.writeable = False
        # The C forward always adds a bias; b=None passes this one, kept alive by the closure with its pointer.
        zero_bias = (zeros, ops["forward"][2].read(zeros))
        methods = {
            "forward": _conv_call("forward", ops["forward"], calls["forward"], zero_bias),
            "forward_relu": (_conv_call("forward_relu", ops["forward_relu"], calls["forward_relu"], zero_bias)
                             if self.fuse_relu else _not_fused),
            "grad_input": _pair_call("grad_input", ops["grad_input"], calls["grad_input"]),
            "grad_weight": _pair_call("grad_weight", ops["grad_weight"], calls["grad_weight"]),
            "grad_bias": _bias_call(ops["grad_bias"], calls["grad_bias"]),
        }
        for name, method in methods.items():
            object.__setattr__(self, name, method)
        kernels = {family: (ops[family], calls[family]) for family in ops}
        for family, other in self.borrowed:
            if family not in _BORROWABLE:
                raise ValueError(f"borrowed: family must be one of {_BORROWABLE}, got {family!r}")
            if (other.spec, other.dtype) != (self.spec, self.dtype):
                raise ValueError(f"borrowed {family}: kernels of {other.spec.describe()} ({other.dtype}), "
                                 f"not of this layer")
            other = other if other.threads == self.threads else other.with_threads(self.threads)
            object.__setattr__(self, family, getattr(other, family))
            kernels[family] = other._kernels[family]
        object.__setattr__(self, "_kernels", kernels)
        object.__setattr__(self, "_zero_bias", zero_bias)

    def bind(self, family: str, *arrays: Any, out: np.ndarray) -> Callable[[], np.ndarray]:
        """The kernel ``family`` on these arrays, checked once: a call without arguments that runs it and
        returns ``out``, with no per-call checks (the ~1 µs of Python of a small layer's method call).

        ``family`` is ``"forward"`` (arrays x, w, b; ``b`` may be None), ``"forward_relu"``, ``"grad_input"``
        (dy, w), ``"grad_weight"`` (x, dy) or ``"grad_bias"`` (dy). The arrays are checked as the methods
        check them. The call reads and writes the memory the arrays have now (it keeps them alive): change
        their values between calls, as a training loop does with its buffers; an array re-shaped or
        re-typed in place after ``bind`` is not noticed.

        >>> import numpy as np
        >>> from symconv import ConvSpec, compile_conv
        >>> kernels = compile_conv(ConvSpec((3, 3), (2, 2)), "float64")
        >>> x, w, y = np.arange(9.0).reshape(1, 1, 3, 3), np.ones((1, 1, 2, 2)), np.empty((1, 1, 2, 2))
        >>> step = kernels.bind("forward", x, w, None, out=y)
        >>> step()[0, 0]
        array([[ 8., 12.],
               [20., 24.]])
        >>> x += 1; float(step()[0, 0, 0, 0])
        12.0
        """
        if family not in self._kernels:
            raise ValueError(f"bind: family must be one of {sorted(self._kernels)}, got {family!r}"
                             + ("" if family != "forward_relu" else " (compile with fuse_relu=True)"))
        operands, call = self._kernels[family]
        zero_bias = self._zero_bias if family.startswith("forward") else None
        return _bound_call(family, operands, call, arrays, out, zero_bias)

    @property
    def strategies(self) -> dict[str, str]:
        """The strategy of each pass: ``strategy`` unless the pass is borrowed from other kernels."""
        own = {family: self.strategy for family in ("forward", "grad_input", "grad_weight", "grad_bias")}
        return own | {family: other.strategy for family, other in self.borrowed}

    def with_threads(self, threads: int) -> "ConvKernels":
        """The same kernels (same loaded modules, borrowed passes included) run on at most ``threads``
        threads per call."""
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        return replace(self, threads=threads)

    @property
    def library(self) -> str:
        """Path of the loaded extension in the build cache (its ``.c`` sits next to it)."""
        return str(self.module.__file__)
