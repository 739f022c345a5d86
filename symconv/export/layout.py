"""Library layout: a ``Network`` and a dtype -> a ``Library``: kernel plans, parameter offsets, workspace buffers, calls.

Everything the standalone C library needs to know at generation time: which generated kernels it links (the same
plans as ``pipeline.compile_network``: ``codegen.lowering.lower`` for convolutions, ``layer_lowering.lower_layer``
for the other layers and the loss), where each parameter lives in the one flat parameter array, where each
activation, max-pooling winner and gradient lives in the caller's workspace (byte offsets, aligned), and the kernel
calls of the forward and backward passes in order, as function names and argument names for the template. A
transposed convolution runs on its convolution's kernels (without a bias), roles swapped as in
``runtime.transpose``; its bias and the input widened by output_padding are the library's own loops (``HELPERS``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Optional

from ..codegen.layer_lowering import CrossEntropyOp, LayerOp, LayerPlan, layer_op, loss_op, lower_layer
from ..codegen.lowering import KernelPlan, choose_strategy, kernel_prefix, lower
from ..codegen.plan import CTYPES, Kernel, check_dtype
from ..symbolic.losses import CrossEntropyLoss
from ..symbolic.network import Network
from ..symbolic.spec import ConvSpec
from ..symbolic.transpose import ConvTransposeSpec

__all__ = ["PORTABLE_STRATEGIES", "HELPERS", "ALIGNMENT", "Buffer", "Param", "Call", "Step", "Library", "plan_library"]

PORTABLE_STRATEGIES: Final = ("loops", "unrolled")
"""The convolution strategies whose C is plain C99: no vector intrinsics, no OpenMP, no thread argument."""

ALIGNMENT: Final = 16
"""Every workspace buffer starts at a multiple of this many bytes from the workspace's start."""

_INDEX_CTYPE: Final = "int64_t"


@dataclass(frozen=True)
class Buffer:
    """One array in the workspace: ``entries`` of ``ctype`` at byte ``offset`` (``ctype`` "real" is the dtype)."""

    name: str
    ctype: str
    offset: int
    entries: int
    what: str


@dataclass(frozen=True)
class Param:
    """One parameter tensor in the flat parameter array (offsets in entries, PyTorch's layout and key)."""

    key: str
    macro: str
    offset: int
    shape: tuple[int, ...]
    bound: float
    """U(-bound, bound): PyTorch's default initialisation law, 1/sqrt(fan_in), as ``Network.init_params``."""

    @property
    def entries(self) -> int:
        total = 1
        for n in self.shape:
            total *= n
        return total


@dataclass(frozen=True)
class Call:
    """One kernel call: the C function and its arguments (pointer names); ``guard`` a condition, or ""."""

    function: str
    args: tuple[str, ...]
    guard: str = ""


@dataclass(frozen=True)
class Step:
    """One layer of the network: what it is, which kernels it runs, its forward and backward calls."""

    index: int
    describe: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernels: str
    forward: tuple[Call, ...]
    backward: tuple[Call, ...]
    copy: Optional[tuple[str, str, int]] = None
    """Flatten as the first layer: (destination, source, entries) copied into the caller's input gradient."""


@dataclass(frozen=True)
class Library:
    """The whole library: what it is generated from, its kernels, memory layout and passes."""

    network: Network
    dtype: str
    strategy: str
    conv_plans: tuple[KernelPlan, ...]
    layer_plans: tuple[LayerPlan, ...]
    params: tuple[Param, ...]
    buffers: tuple[Buffer, ...]
    forward_bytes: int
    workspace_bytes: int
    steps: tuple[Step, ...]
    output: str
    loss_calls: tuple[Call, ...]
    grad_calls: tuple[Call, ...]

    @property
    def ctype(self) -> str:
        return CTYPES[self.dtype]

    @property
    def params_size(self) -> int:
        return sum(p.entries for p in self.params)

    @property
    def labels(self) -> bool:
        """True for cross-entropy (int64 class labels as targets), False for MSE (a real target array)."""
        return isinstance(self.network.loss, CrossEntropyLoss)

    @property
    def kernels(self) -> tuple[Kernel, ...]:
        """Every kernel the library links, convolutions first, each once."""
        found = [k for plan in self.conv_plans for k in plan.kernels]
        found += [k for plan in self.layer_plans for k in plan.kernels]
        return tuple(dict((k.name, k) for k in found).values())


def _entries(shape: tuple[int, ...]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total


def _aligned(offset: int) -> int:
    return -(-offset // ALIGNMENT) * ALIGNMENT


class _Workspace:
    """Hands out aligned byte ranges in order."""

    def __init__(self, itemsize: int) -> None:
        self.itemsize, self.end = itemsize, 0
        self.buffers: list[Buffer] = []

    def take(self, name: str, ctype: str, entries: int, what: str) -> str:
        size = entries * (8 if ctype == _INDEX_CTYPE else self.itemsize)
        self.buffers.append(Buffer(name, ctype, self.end, entries, what))
        self.end = _aligned(self.end + size)
        return name


def _params(network: Network) -> tuple[Param, ...]:
    found, offset = [], 0
    for key, shape in network.parameter_shapes().items():
        layer, name = key.split(".", 1)
        weight_shape = network.parameter_shapes()[f"{layer}.weight"]
        fan_in = _entries(tuple(weight_shape[1:]))
        found.append(Param(key, f"P{layer}_{name.upper()}", offset, tuple(shape), fan_in ** -0.5))
        offset += _entries(tuple(shape))
    return tuple(found)


def _channel_sizes(shape: tuple[int, ...]) -> tuple[str, str, str]:
    """(batch, channels, pixels per channel) of an NCHW shape, as C arguments."""
    return str(shape[0]), str(shape[1]), str(shape[2] * shape[3])


def _copy_planes(src: str, dst: str, src_shape: tuple[int, ...], dst_shape: tuple[int, ...]) -> Call:
    """Every channel plane of ``src`` into the top-left corner of ``dst``'s, the rest of ``dst`` zero."""
    planes = src_shape[0] * src_shape[1]
    return Call("copy_planes", (src, dst, str(planes), *map(str, src_shape[2:]), *map(str, dst_shape[2:])))


HELPERS: Final = ("copy_planes", "add_channel_bias", "sum_channels")
"""The library's own C functions (``templates/export_network.c.j2``) that transposed convolutions call."""


def plan_library(network: Network, dtype: str = "float32", strategy: Optional[str] = None) -> Library:
    """Lay out the library of ``network``: ``strategy`` for every convolution, ``loops`` or ``unrolled`` (None:
    unrolled for small layers, as ``lowering.choose_strategy``, else loops).

    >>> from symconv import Conv2d, ReLU, Flatten, Dense, MSELoss
    >>> lib = plan_library(Network([Conv2d(2, 3), ReLU(), Flatten(), Dense(3), MSELoss()], (1, 1, 5, 5)))
    >>> [s.kernels for s in lib.steps][:2], lib.params_size
    (['conv_5x5_k3x3_n1c1k2_f32', 'relu_1x2x3x3_f32'], 77)
    >>> plan_library(lib.network, strategy="direct")
    Traceback (most recent call last):
    ...
    ValueError: the export's convolutions must be portable C: strategy 'loops', 'unrolled' or None, got 'direct'
    """
    dtype = check_dtype(dtype)
    if strategy is not None and strategy not in PORTABLE_STRATEGIES:
        raise ValueError(f"the export's convolutions must be portable C: strategy 'loops', 'unrolled' or None, "
                         f"got {strategy!r}")
    params = _params(network)
    where = {p.key: p for p in params}
    space = _Workspace(4 if dtype == "float32" else 8)
    shapes, body = network.shapes, network.body
    conv_plans: dict[str, KernelPlan] = {}
    layer_plans: dict[str, LayerPlan] = {}
    acts, indices = ["input"], {}
    staged: dict[int, str] = {}  # a transposed convolution's input as its convolution's kernels read it
    ops: list[ConvSpec | ConvTransposeSpec | LayerOp | None] = []
    steps_forward: list[tuple[str, tuple[Call, ...]]] = []
    for i, layer in enumerate(body):  # forward: each layer's output gets its own buffer (backward reads them)
        op = layer_op(layer, shapes[i])
        ops.append(op)
        out = f"a{i + 1}"
        if op is None:  # Flatten: a view of the same C-contiguous memory
            acts.append(acts[-1])
            steps_forward.append(("(a view: no kernel)", ()))
            continue
        space.take(out, "real", _entries(shapes[i + 1]), f"layer {i} output {shapes[i + 1]}")
        acts.append(out)
        if isinstance(op, (ConvSpec, ConvTransposeSpec)):
            # a transposed layer's bias is added to its output, not by its convolution's kernels
            conv = op if isinstance(op, ConvSpec) else op.conv.with_bias(False)
            chosen = choose_strategy(conv, None) if strategy is None else strategy
            chosen = chosen if chosen in PORTABLE_STRATEGIES else "loops"
            plan = conv_plans.get(kernel_prefix(conv, dtype)) or lower(conv, dtype, chosen)
            conv_plans[plan.prefix] = plan
        if isinstance(op, ConvTransposeSpec):
            staged[i] = acts[i]
            forward_calls = []
            if op.excess != (0, 0):  # output_padding >= stride: the convolution's output has rows past the input
                staged[i] = space.take(f"x{i + 1}", "real", _entries(op.conv.output_shape),
                                       f"layer {i} input, widened to {op.conv.output_shape} (output_padding)")
                forward_calls.append(_copy_planes(acts[i], staged[i], op.input_shape, op.conv.output_shape))
            forward_calls.append(Call(f"{plan.prefix}_grad_input",
                                      (staged[i], f"params + {where[f'{i}.weight'].macro}", out)))
            if op.bias:
                forward_calls.append(Call("add_channel_bias", (out, f"params + {where[f'{i}.bias'].macro}",
                                                               *_channel_sizes(op.output_shape))))
            steps_forward.append((plan.prefix, tuple(forward_calls)))
            continue
        if isinstance(op, ConvSpec):
            bias = (f"params + {where[f'{i}.bias'].macro}",) if op.bias else ()
            forward = Call(f"{plan.prefix}_forward", (acts[i], f"params + {where[f'{i}.weight'].macro}", *bias, out))
            steps_forward.append((plan.prefix, (forward,)))
            continue
        lplan = lower_layer(op, dtype)
        lplan = layer_plans.setdefault(lplan.prefix, lplan)
        names = {k.family: k.name for k in lplan.kernels}
        args: tuple[str, ...] = (acts[i], out)
        if op.kind == "dense":
            args = (acts[i], f"params + {where[f'{i}.weight'].macro}", f"params + {where[f'{i}.bias'].macro}", out)
        elif op.kind == "maxpool":
            indices[i] = space.take(f"w{i + 1}", _INDEX_CTYPE, _entries(shapes[i + 1]), f"layer {i} winners")
            args = (acts[i], out, indices[i])
        steps_forward.append((lplan.prefix, (Call(names["forward"], args),)))
    forward_bytes = space.end
    loss = lower_layer(loss_op(network.loss, shapes[-1]), dtype)
    layer_plans.setdefault(loss.prefix, loss)
    loss_names = {k.family: k.name for k in loss.kernels}
    largest = max(_entries(s) for s in shapes[1:])
    grads = [space.take("g0", "real", largest, "gradient (ping)"), space.take("g1", "real", largest, "gradient (pong)")]
    target = "labels" if isinstance(loss.op, CrossEntropyOp) else "target"
    loss_calls = (Call(loss_names["loss"], (acts[-1], target, "loss")),)
    grad_calls = (Call(loss_names["grad"], (acts[-1], target, "g0")),)
    steps: list[Step] = []
    current, turn = "g0", 0
    for i in reversed(range(len(body))):  # backward: dE/d(output of layer i) is in ``current``
        op, below = ops[i], ("input_grad" if i == 0 else grads[1 - turn])
        guard = "input_grad" if i == 0 else ""
        calls: list[Call] = []
        copy = None
        if op is None:
            if i == 0:
                copy = ("input_grad", current, _entries(shapes[0]))
            below = current
        elif isinstance(op, ConvTransposeSpec):
            # The convolution's passes, roles swapped: its weight gradient (x = dE/dy, dy = the input), then its
            # forward for dE/dx, cropped when output_padding widened the input.
            family, w = f"{steps_forward[i][0]}_", where[f"{i}.weight"].macro
            calls.append(Call(f"{family}grad_weight", (current, staged[i], f"grads + {w}")))
            if op.bias:
                calls.append(Call("sum_channels", (current, f"grads + {where[f'{i}.bias'].macro}",
                                                   *_channel_sizes(op.output_shape))))
            if op.excess == (0, 0):
                calls.append(Call(f"{family}forward", (current, f"params + {w}", below), guard))
            else:
                calls += [Call(f"{family}forward", (current, f"params + {w}", staged[i]), guard),
                          replace(_copy_planes(staged[i], below, op.conv.output_shape, op.input_shape), guard=guard)]
        elif isinstance(op, ConvSpec) or op.kind == "dense":
            family = f"{steps_forward[i][0]}_"
            w = where[f"{i}.weight"].macro
            calls.append(Call(f"{family}grad_weight", (acts[i], current, f"grads + {w}")))
            if f"{i}.bias" in where:  # a convolution may have none
                calls.append(Call(f"{family}grad_bias", (current, f"grads + {where[f'{i}.bias'].macro}")))
            calls.append(Call(f"{family}grad_input", (current, f"params + {w}", below), guard))
        elif op.kind == "relu":
            calls.append(Call(f"{steps_forward[i][0]}_backward", (acts[i], current, below), guard))
        elif op.kind == "maxpool":
            calls.append(Call(f"{steps_forward[i][0]}_backward", (current, indices[i], below), guard))
        else:  # average pooling
            calls.append(Call(f"{steps_forward[i][0]}_backward", (current, below), guard))
        if op is not None:
            turn = 1 - turn
        current = below
        steps.append(Step(i, body[i].describe(), shapes[i], shapes[i + 1], steps_forward[i][0], steps_forward[i][1],
                          tuple(calls), copy))
    return Library(network, dtype, strategy or "by size: unrolled up to lowering.UNROLL_LIMIT, else loops", tuple(conv_plans.values()),
                   tuple(layer_plans.values()), params, tuple(space.buffers), forward_bytes, space.end,
                   tuple(reversed(steps)), acts[-1], loss_calls, grad_calls)
