"""Convolution kernels: a loaded kernel module and NumPy arrays -> ``ConvKernels``, checked zero-copy calls.

Every argument is checked before any C runs (``operands``: type, dtype, shape, C-contiguity, alignment, and for
``out`` writability and no overlap with an input), so the kernels, which trust their fixed sizes, can never read or
write outside an array. Each method is a Python function that checks through a ``KernelCall`` and calls the
kernel through cffi; in front of it a ``checked_call`` object takes the common case and runs the same checks and
the kernel in C, ~0.1 µs in all where the Python checks cost ~1 µs, handing everything else to the Python
function. The other layers' kernels (``layer_kernels``) are called the same way."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any, Callable, Optional

import numpy as np

from ..codegen.lowering import VECTOR_STRATEGIES, kernels_of
from ..symbolic.spec import ConvSpec
from .checked_call import checked_call
from .operands import KernelCall

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


def _methods(spec: ConvSpec, calls: dict[str, KernelCall]) -> dict[str, Callable[..., np.ndarray]]:
    """The methods with their documented parameters (``checked_call`` takes keywords by these names too)."""
    forward, forward_relu = calls["forward"], calls.get("forward_relu")
    grad_input, grad_weight, grad_bias = calls["grad_input"], calls["grad_weight"], calls.get("grad_bias")

    def inputs(where: str, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray]) -> tuple[Any, ...]:
        if spec.bias:
            return (x, w, b)
        if b is not None:  # the kernel has no b argument: a bias given here would be silently dropped
            raise ValueError(f"{where}: this layer has no bias (bias=False), got b; pass b=None")
        return (x, w)

    def conv(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
             out: Optional[np.ndarray] = None) -> np.ndarray:
        return forward.run(inputs("forward", x, w, b), (out,))

    def conv_relu(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray] = None,
                  out: Optional[np.ndarray] = None) -> np.ndarray:
        if forward_relu is None:
            raise RuntimeError("forward_relu: these kernels were compiled without it; pass fuse_relu=True to "
                               "compile_conv")
        return forward_relu.run(inputs("forward_relu", x, w, b), (out,))

    def input_gradient(dy: np.ndarray, w: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return grad_input.run((dy, w), (out,))

    def weight_gradient(x: np.ndarray, dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        return grad_weight.run((x, dy), (out,))

    def bias_gradient(dy: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        if grad_bias is None:
            raise ValueError("grad_bias: this layer has no bias (bias=False), so there is no dE/db")
        return grad_bias.run((dy,), (out,))

    methods: dict[str, Callable[..., np.ndarray]] = {"forward": conv, "forward_relu": conv_relu, "grad_input": input_gradient,
               "grad_weight": weight_gradient, "grad_bias": bias_gradient}
    for name, method in methods.items():
        method.__name__ = method.__qualname__ = name
    return methods


_BORROWABLE = ("grad_input", "grad_weight", "grad_bias")


@dataclass(frozen=True, eq=False)
class ConvKernels:
    """The forward pass and the three gradients of one layer, compiled for one dtype.

    Every method takes C-contiguous NumPy arrays of the layer's dtype in PyTorch layout and returns a new
    array, or fills and returns ``out``; every argument is checked before the kernel runs (``Operand.pointer``, and
    ``out`` against overlap with the inputs):

    - ``forward(x, w, b=None, out=None)``: y = conv(x, w) + b, shape (N, K, Ho, Wo); ``b=None`` means no bias.
    - ``forward_relu(x, w, b=None, out=None)``: max(forward, 0) in one kernel (compiled with ``fuse_relu``).
    - ``grad_input(dy, w, out=None)``: dE/dx given dy = dE/dy, shape (N, C, H, W).
    - ``grad_weight(x, dy, out=None)``: dE/dw given the input x and dy = dE/dy, shape (K, C, R, S).
    - ``grad_bias(dy, out=None)``: dE/db given dy = dE/dy, shape (K,).

    A layer without bias (``spec.bias`` False) has a C forward pass without ``b`` and no ``grad_bias`` kernel:
    ``forward`` then refuses a ``b`` and ``grad_bias`` raises ``ValueError``.

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
    _calls: dict[str, KernelCall] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lib = self.module.lib
        plan_kernels = {k.family: k for k in kernels_of(self.spec, self.dtype.name, self.fuse_relu)}
        threads = self.threads if self.strategy in VECTOR_STRATEGIES else None
        zeros = np.zeros(self.spec.out_channels, self.dtype)
        zeros.flags.writeable = False
        # The C forward of a layer with bias always adds it; b=None passes these zeros, kept alive by the calls
        # with their pointer.
        with_b = self.spec.bias
        calls = {family: KernelCall(family, kernel, getattr(lib, kernel.name), self.module.ffi, threads,
                                    {"b": zeros} if family.startswith("forward") and with_b else None)
                 for family, kernel in plan_kernels.items()}
        methods = _methods(self.spec, calls)
        if self.checked is not None:  # the common case of each method checked and run in C
            for family, call in calls.items():
                # the fast path maps the method's parameters onto the kernel's arguments one to one: a forward
                # without bias has a b parameter (to refuse it) and no b argument, so it stays in Python
                if with_b or not family.startswith("forward"):
                    methods[family] = checked_call(self.checked, call, self.module, methods[family])
        for name, method in methods.items():
            object.__setattr__(self, name, method)
        for family, other in self.borrowed:
            if family not in _BORROWABLE:
                raise ValueError(f"borrowed: family must be one of {_BORROWABLE}, got {family!r}")
            if (other.spec, other.dtype) != (self.spec, self.dtype):
                raise ValueError(f"borrowed {family}: kernels of {other.spec.describe()} ({other.dtype}), "
                                 f"not of this layer")
            other = other if other.threads == self.threads else other.with_threads(self.threads)
            object.__setattr__(self, family, getattr(other, family))
            calls[family] = other._calls[family]
        object.__setattr__(self, "_calls", calls)

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
        if family.startswith("forward") and not self.spec.bias and len(arrays) == 3:
            if arrays[2] is not None:
                raise ValueError(f"bind {family}: this layer has no bias (bias=False), got b; pass None")
            arrays = arrays[:2]
        if family not in self._calls:
            raise ValueError(f"bind: family must be one of {sorted(self._calls)}, got {family!r}"
                             + ("" if family != "forward_relu" else " (compile with fuse_relu=True)"))
        return self._calls[family].bind(arrays, (out,))

    @property
    def strategies(self) -> dict[str, str]:
        """The strategy of each pass: ``strategy`` unless the pass is borrowed from other kernels."""
        families = ("forward", "grad_input", "grad_weight") + (("grad_bias",) if self.spec.bias else ())
        own = {family: self.strategy for family in families}
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
