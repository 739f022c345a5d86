"""Runtime: a loaded kernel module and NumPy arrays -> checked, zero-copy calls of the C kernels.

Every argument is checked before any C runs (type, dtype, shape, C-contiguity, alignment, and for ``out``
writability and no overlap with an input), so the kernels, which trust their fixed sizes, can never read or
write outside an array. Each method is a Python function that checks with ``symconv.runtime.operands`` and calls the
kernel through cffi; in front of it, a ``symconv.runtime.checked_call`` object takes the common case (exact ndarrays of
the layer's dtype, shape and layout, ``out`` apart from the inputs) and runs the same checks and the kernel in
C, ~0.1 µs in all where the Python checks cost ~1 µs, handing everything else to the Python function."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import partial
from types import ModuleType
from typing import Any, Callable, Optional

import numpy as np

from .checked_call import checked_call
from ..codegen.lowering import VECTOR_STRATEGIES, kernel_prefix, signatures
from .operands import Operand, check_apart
from ..symbolic.spec import ConvSpec

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


Checked = Callable[[tuple[Any, ...], Optional[np.ndarray]], np.ndarray]
"""A kernel behind its Python checks: (input arrays, out or None) -> out."""


def _pointers(where: str, ops: tuple[Operand, ...], arrays: tuple[Any, ...], out: Optional[np.ndarray],
              zero_bias: Optional[tuple[np.ndarray, Any]]) -> tuple[np.ndarray, list[Any]]:
    """Check ``arrays`` and ``out`` (None: a new array) against ``ops``; return ``out`` and every pointer."""
    *inputs, out_op = ops
    pointers = []
    for operand, array in zip(inputs, arrays):
        if array is None and operand.name == "b" and zero_bias is not None:
            pointers.append(zero_bias[1])  # no bias: the zeros, as the C forward always adds one
        else:
            pointers.append(operand.read(array))
    if out is None:
        out, pointer = out_op.fresh()
    else:
        pointer = out_op.write(out)
        check_apart(where, pointer, out_op, tuple(zip(pointers, inputs)))
    return out, pointers + [pointer]


def _checked(where: str, ops: tuple[Operand, ...], call: Callable[..., Any],
             zero_bias: Optional[tuple[np.ndarray, Any]]) -> Checked:
    def checked(arrays: tuple[Any, ...], out: Optional[np.ndarray]) -> np.ndarray:
        out, pointers = _pointers(where, ops, arrays, out, zero_bias)
        if call(*pointers):
            raise MemoryError(f"{where}: the kernel could not allocate its scratch memory")
        return out

    return checked


def _methods(checked: dict[str, Checked]) -> dict[str, Callable[..., np.ndarray]]:
    """The methods with their documented parameters (``checked_call`` takes keywords by these names too)."""
    forward, forward_relu = checked["forward"], checked.get("forward_relu")
    grad_input, grad_weight, grad_bias = checked["grad_input"], checked["grad_weight"], checked["grad_bias"]

    def conv(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
             out: Optional[np.ndarray] = None) -> np.ndarray:
        return forward((x, w, b), out)

    def conv_relu(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
                  out: Optional[np.ndarray] = None) -> np.ndarray:
        if forward_relu is None:
            raise RuntimeError("forward_relu: these kernels were compiled without it; pass fuse_relu=True to "
                               "compile_conv")
        return forward_relu((x, w, b), out)

    def input_gradient(dy: np.ndarray, w: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return grad_input((dy, w), out)

    def weight_gradient(x: np.ndarray, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return grad_weight((x, dy), out)

    def bias_gradient(dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return grad_bias((dy,), out)

    methods = {"forward": conv, "forward_relu": conv_relu, "grad_input": input_gradient,
               "grad_weight": weight_gradient, "grad_bias": bias_gradient}
    for name, method in methods.items():
        method.__name__ = method.__qualname__ = name
    return methods


def _bound_call(where: str, ops: tuple[Operand, ...], call: Callable[..., Any], arrays: tuple[Any, ...],
                out: Any, zero_bias: Optional[tuple[np.ndarray, Any]]) -> Callable[[], np.ndarray]:
    """``ConvKernels.bind``: every argument checked once, then a call of the kernel on the same memory."""
    if len(arrays) != len(ops) - 1:
        names = ", ".join(op.name for op in ops[:-1])
        raise TypeError(f"{where}: bind takes the {len(ops) - 1} input arrays ({names}) and out=, got {len(arrays)}")
    if out is None:
        raise ops[-1].problem(out)  # a new array per call is what bind exists to avoid
    out, pointers = _pointers(where, ops, arrays, out, zero_bias)
    # from_buffer holds a buffer export of each array: its memory stays allocated and in place (NumPy refuses to
    # resize an exported array) for as long as this call exists, so nothing is left to check per call.
    run_kernel = partial(call, *pointers)

    def bound() -> np.ndarray:
        if run_kernel():
            raise MemoryError(f"{where}: the kernel could not allocate its scratch memory")
        return out

    bound.__name__ = bound.__qualname__ = f"{where}_bound"
    return bound


_BORROWABLE = ("grad_input", "grad_weight", "grad_bias")


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

    The methods are made per instance (``__post_init__``): with ``checked`` (the compiled
    ``symconv.runtime.checked_call`` extension, which ``compile_conv`` passes) each is a C object that checks and runs
    a common call in ~0.1 µs on top of the kernel and hands any other call to the Python function; without
    it, the Python functions alone. Build instances with ``symconv.compile_conv``. ``threads`` bounds the OpenMP threads of one call (``gemm`` and ``direct``
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
    # the compiled checked calls (symconv.runtime.checked_call): the methods' common case checked and run in C
    checked: Optional[ModuleType] = field(default=None, repr=False)
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
        checked = {family: _checked(family, ops[family], calls[family], zero_bias if family.startswith("forward")
                                    else None) for family in ops}
        methods = _methods(checked)
        if self.checked is not None:  # the common case of each method checked and run in C
            threads = self.threads if self.strategy in VECTOR_STRATEGIES else None
            for family in ops:
                method = methods[family]
                names = method.__code__.co_varnames[:method.__code__.co_argcount]
                methods[family] = checked_call(
                    self.checked, family, self.module, f"{prefix}_{family}", threads, names, self.dtype,
                    [op.shape for op in ops[family]], [zeros if op.name == "b" else None for op in ops[family]],
                    method)
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
        returns ``out``, with no per-call checks.

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
