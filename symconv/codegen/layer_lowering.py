"""Layer lowering: a layer operation (ReLU, pooling, dense, a loss) and a dtype -> a ``LayerPlan`` of C kernel signatures.

Every shape is a compile-time constant of the generated C, as for the convolution kernels: an operation is one
layer on inputs of one shape. The plan lists each kernel's arguments (shape, dtype, in or out), which the template
(``templates/layer_<kind>.c.j2``), the cffi cdef and the runtime checks all read, and the integer constants the
template's loops use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from ..symbolic.layer_base import Layer
from ..symbolic.layers import AvgPool2d, Conv2d, Dense, Flatten, MaxPool2d, ReLU
from ..symbolic.losses import CrossEntropyLoss, Loss, MSELoss
from ..symbolic.spec import ConvSpec, Pair, as_pair
from ..symbolic.transpose import ConvTransposeSpec
from ..symbolic.transpose_layer import ConvTranspose2d
from .plan import CTYPES, INDEX_DTYPE, Arg, Kernel, check_dtype

__all__ = [
    "LayerOp", "ReLUOp", "MaxPoolOp", "AvgPoolOp", "DenseOp", "MSEOp", "CrossEntropyOp", "LayerPlan", "lower_layer",
    "layer_op", "loss_op",
]

_INT_MAX: Final = 2**31 - 1  # the generated loops index with C int


def _positive(owner: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    if shape and shape[0] == 0:
        raise ValueError(f"{owner}: empty batch (N = 0) in shape {shape}; a kernel needs at least one sample")
    if any(n < 1 for n in shape):
        raise ValueError(f"{owner}: every extent must be positive, got shape {shape}")
    total = 1
    for n in shape:
        total *= n
    if total > _INT_MAX:
        raise ValueError(f"{owner}: shape {shape} has {total} entries; the C kernels index with int")
    return shape


class LayerOp:
    """A layer (or loss) on inputs of one fixed shape; subclasses are frozen dataclasses."""

    kind: ClassVar[str]
    template: ClassVar[str]
    """The template in ``templating.TEMPLATES_DIR`` that writes this kind's kernels."""

    def tag(self) -> str:
        """The shape part of every C name of this operation."""
        raise NotImplementedError

    def signatures(self, dtype: str) -> dict[str, tuple[Arg, ...]]:
        """Kernel family -> arguments in C order (inputs, then outputs)."""
        raise NotImplementedError

    def constants(self) -> dict[str, int]:
        """Named integer constants for the template (sizes, window geometry)."""
        raise NotImplementedError


def _nchw(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class ReLUOp(LayerOp):
    """ReLU on an array of ``shape``: forward y = max(0, x), backward dx = dy * [x > 0].

    >>> [a.name for a in ReLUOp((2, 3)).signatures("float32")["backward"]]
    ['x', 'dy', 'dx']
    """

    shape: tuple[int, ...]
    kind: ClassVar[str] = "relu"
    template: ClassVar[str] = "layer_relu.c.j2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _positive("ReLU", self.shape))

    def tag(self) -> str:
        return _nchw(self.shape)

    def signatures(self, dtype: str) -> dict[str, tuple[Arg, ...]]:
        axes = "N, C, H, W" if len(self.shape) == 4 else "N, features" if len(self.shape) == 2 else "any"
        x, dy = Arg("x", self.shape, dtype, axes), Arg("dy", self.shape, dtype, axes)
        return {"forward": (x, Arg("y", self.shape, dtype, axes, True)),
                "backward": (x, dy, Arg("dx", self.shape, dtype, axes, True))}

    def constants(self) -> dict[str, int]:
        size = 1
        for n in self.shape:
            size *= n
        return {"SIZE": size}


@dataclass(frozen=True)
class _PoolOp(LayerOp):
    """Windows of ``kernel`` every ``stride`` over an (N, C, H, W) input padded by ``padding`` on each side."""

    input_shape: tuple[int, int, int, int]
    kernel: Pair
    stride: Pair
    padding: Pair

    def __post_init__(self) -> None:
        name = type(self).__name__
        if len(self.input_shape) != 4:
            raise ValueError(f"{name}: input must be (N, C, H, W), got shape {self.input_shape}")
        object.__setattr__(self, "input_shape", _positive(name, self.input_shape))
        for field_name in ("kernel", "stride", "padding"):
            object.__setattr__(self, field_name, as_pair(field_name, getattr(self, field_name)))
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"{name}: kernel and stride must be >= 1, padding >= 0")
        # PyTorch's rule; it also means every window holds at least one real cell.
        if self.padding[0] > self.kernel[0] // 2 or self.padding[1] > self.kernel[1] // 2:
            raise ValueError(f"{name}: padding {self.padding} must be at most half the kernel {self.kernel}")
        if min(self.output_shape[2:]) < 1:
            raise ValueError(f"{name}: window {self.kernel} is larger than the padded input {self.input_shape[2:]}")

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        (n, c, h, w), (kh, kw), (sh, sw), (ph, pw) = self.input_shape, self.kernel, self.stride, self.padding
        return (n, c, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)

    def tag(self) -> str:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        return f"{_nchw(self.input_shape)}_k{kh}x{kw}_s{sh}x{sw}_p{ph}x{pw}"

    def constants(self) -> dict[str, int]:
        n, c, h, w = self.input_shape
        return {"PLANES": n * c, "IN_H": h, "IN_W": w, "OUT_H": self.output_shape[2], "OUT_W": self.output_shape[3],
                "KERNEL_H": self.kernel[0], "KERNEL_W": self.kernel[1], "STRIDE_H": self.stride[0],
                "STRIDE_W": self.stride[1], "PAD_H": self.padding[0], "PAD_W": self.padding[1]}


@dataclass(frozen=True)
class MaxPoolOp(_PoolOp):
    """Max pooling: forward (y, winner indices h * W + w per plane), backward routes dy to the winners.

    >>> op = MaxPoolOp((1, 1, 4, 4), 2, 2, 0)
    >>> op.output_shape, [(a.name, a.dtype) for a in op.signatures("float32")["forward"]]
    ((1, 1, 2, 2), [('x', 'float32'), ('y', 'float32'), ('indices', 'int64')])
    """

    kind: ClassVar[str] = "maxpool"
    template: ClassVar[str] = "layer_maxpool.c.j2"

    def signatures(self, dtype: str) -> dict[str, tuple[Arg, ...]]:
        x_shape, y_shape = self.input_shape, self.output_shape
        return {"forward": (Arg("x", x_shape, dtype, "N, C, H, W"), Arg("y", y_shape, dtype, "N, C, Ho, Wo", True),
                            Arg("indices", y_shape, INDEX_DTYPE, "N, C, Ho, Wo", True)),
                "backward": (Arg("dy", y_shape, dtype, "N, C, Ho, Wo"),
                             Arg("indices", y_shape, INDEX_DTYPE, "N, C, Ho, Wo", bound=x_shape[2] * x_shape[3],
                                 what="flat positions h * W + w"),
                             Arg("dx", x_shape, dtype, "N, C, H, W", True))}


@dataclass(frozen=True)
class AvgPoolOp(_PoolOp):
    """Average pooling with ``count_include_pad=True``: every window divides by kh * kw.

    >>> AvgPoolOp((2, 3, 5, 5), 3, 2, 1).output_shape
    (2, 3, 3, 3)
    """

    kind: ClassVar[str] = "avgpool"
    template: ClassVar[str] = "layer_avgpool.c.j2"

    def signatures(self, dtype: str) -> dict[str, tuple[Arg, ...]]:
        x_shape, y_shape = self.input_shape, self.output_shape
        return {"forward": (Arg("x", x_shape, dtype, "N, C, H, W"), Arg("y", y_shape, dtype, "N, C, Ho, Wo", True)),
                "backward": (Arg("dy", y_shape, dtype, "N, C, Ho, Wo"), Arg("dx", x_shape, dtype, "N, C, H, W", True))}


@dataclass(frozen=True)
class DenseOp(LayerOp):
    """y = x W^T + b with x (N, in), W (out, in) as ``torch.nn.Linear``, b (out,); and the three gradients.

    >>> [a.shape for a in DenseOp(4, 3, 2).signatures("float64")["grad_weight"]]
    [(4, 3), (4, 2), (2, 3)]
    """

    batch: int
    in_features: int
    out_features: int
    kind: ClassVar[str] = "dense"
    template: ClassVar[str] = "layer_dense.c.j2"

    def __post_init__(self) -> None:
        _positive("Dense", (self.batch, self.in_features))
        _positive("Dense", (self.batch, self.out_features))
        _positive("Dense", (self.out_features, self.in_features))

    def tag(self) -> str:
        return f"n{self.batch}_i{self.in_features}_o{self.out_features}"

    def signatures(self, dtype: str) -> dict[str, tuple[Arg, ...]]:
        n, i, o = self.batch, self.in_features, self.out_features
        x, w, dy = Arg("x", (n, i), dtype, "N, in"), Arg("w", (o, i), dtype, "out, in"), Arg("dy", (n, o), dtype, "N, out")
        return {"forward": (x, w, Arg("b", (o,), dtype, "out"), Arg("y", (n, o), dtype, "N, out", True)),
                "grad_input": (dy, w, Arg("dx", (n, i), dtype, "N, in", True)),
                "grad_weight": (x, dy, Arg("dw", (o, i), dtype, "out, in", True)),
                "grad_bias": (dy, Arg("db", (o,), dtype, "out", True))}

    def constants(self) -> dict[str, int]:
        return {"BATCH": self.batch, "IN": self.in_features, "OUT": self.out_features}


@dataclass(frozen=True)
class MSEOp(LayerOp):
    """E = 1/2 sum (t - y)^2 over every entry (a 1-entry output), and dE/dy = y - t.

    >>> [a.name for a in MSEOp((3, 2)).signatures("float32")["loss"]]
    ['y', 't', 'loss']
    """

    shape: tuple[int, ...]
    kind: ClassVar[str] = "mse"
    template: ClassVar[str] = "layer_mse.c.j2"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _positive("MSE", self.shape))

    def tag(self) -> str:
        return _nchw(self.shape)

    def signatures(self, dtype: str) -> dict[str, tuple[Arg, ...]]:
        y, t = Arg("y", self.shape, dtype, "output"), Arg("t", self.shape, dtype, "output")
        return {"loss": (y, t, Arg("loss", (1,), dtype, "1", True)), "grad": (y, t, Arg("dy", self.shape, dtype, "output", True))}

    def constants(self) -> dict[str, int]:
        return ReLUOp(self.shape).constants()


@dataclass(frozen=True)
class CrossEntropyOp(LayerOp):
    """Softmax cross-entropy of logits z (N, M) and int64 labels (N,), mean over the batch; dE/dz = (softmax - onehot)/N.

    >>> [(a.name, a.dtype) for a in CrossEntropyOp(4, 10).signatures("float32")["grad"]]
    [('z', 'float32'), ('labels', 'int64'), ('dz', 'float32')]
    """

    batch: int
    classes: int
    kind: ClassVar[str] = "cross_entropy"
    template: ClassVar[str] = "layer_cross_entropy.c.j2"

    def __post_init__(self) -> None:
        _positive("CrossEntropy", (self.batch, self.classes))

    def tag(self) -> str:
        return f"n{self.batch}_m{self.classes}"

    def signatures(self, dtype: str) -> dict[str, tuple[Arg, ...]]:
        z, labels = Arg("z", (self.batch, self.classes), dtype, "N, classes"), Arg("labels", (self.batch,), INDEX_DTYPE, "N",
                                                                          bound=self.classes, what="class labels")
        return {"loss": (z, labels, Arg("loss", (1,), dtype, "1", True)),
                "grad": (z, labels, Arg("dz", (self.batch, self.classes), dtype, "N, classes", True))}

    def constants(self) -> dict[str, int]:
        return {"BATCH": self.batch, "CLASSES": self.classes}


@dataclass(frozen=True)
class LayerPlan:
    """What the template of one operation needs: its kernels, constants and the C types of the dtype."""

    op: LayerOp
    dtype: str
    prefix: str
    kernels: tuple[Kernel, ...]
    constants: tuple[tuple[str, int], ...]

    @property
    def ctype(self) -> str:
        return CTYPES[self.dtype]

    @property
    def template(self) -> str:
        return self.op.template


def lower_layer(op: LayerOp, dtype: str) -> LayerPlan:
    """Name the kernels of ``op`` for ``dtype``: ``<kind>_<shape tag>_f32_<family>``.

    >>> [k.name for k in lower_layer(ReLUOp((2, 3)), "float32").kernels]
    ['relu_2x3_f32_forward', 'relu_2x3_f32_backward']
    """
    dtype = check_dtype(dtype)
    prefix = f"{op.kind}_{op.tag()}_f{dtype.removeprefix('float')}"
    kernels = tuple(Kernel(family, f"{prefix}_{family}", args) for family, args in op.signatures(dtype).items())
    return LayerPlan(op, dtype, prefix, kernels, tuple(op.constants().items()))


def layer_op(layer: Layer, input_shape: tuple[int, ...]) -> ConvSpec | ConvTransposeSpec | LayerOp | None:
    """A network's layer on its input shape -> what its kernels are lowered from: a convolution's ``ConvSpec``
    (``lowering.lower``; a transposed convolution's ``ConvTransposeSpec``, run by its convolution's kernels), the other layers' ``LayerOp`` (``lower_layer``), or None for ``Flatten`` (a view).

    >>> layer_op(ReLU(), (2, 3))
    ReLUOp(shape=(2, 3))
    """
    if isinstance(layer, (Conv2d, ConvTranspose2d)):
        return layer.spec(input_shape)
    if isinstance(layer, ReLU):
        return ReLUOp(input_shape)
    if isinstance(layer, (MaxPool2d, AvgPool2d)):
        op = MaxPoolOp if isinstance(layer, MaxPool2d) else AvgPoolOp
        return op(input_shape, layer.kernel_size, layer.stride, layer.padding)  # type: ignore[arg-type]
    if isinstance(layer, Dense):
        return DenseOp(input_shape[0], input_shape[1], layer.out_features)
    if isinstance(layer, Flatten):
        return None
    raise NotImplementedError(f"{layer.describe()} has no compiled kernels")


def loss_op(loss: Loss, output_shape: tuple[int, ...]) -> LayerOp:
    """A network's loss on its output shape -> the ``LayerOp`` its kernels are lowered from."""
    if isinstance(loss, CrossEntropyLoss):
        return CrossEntropyOp(output_shape[0], output_shape[1])
    if isinstance(loss, MSELoss):
        return MSEOp(output_shape)
    raise NotImplementedError(f"loss {loss.describe()} has no compiled kernels")
