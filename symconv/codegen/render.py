"""Render: kernel plans -> C text: a convolution's ``KernelPlan`` -> ``Sources`` (.c, .h, cffi cdef), the other
layers' ``LayerPlan``s -> one module's ``LayerSources`` (.c, cdef), every prototype from one template.

The templates in ``templating.TEMPLATES_DIR`` own the C layout: loops, indentation, comments. This module only hands
them data: names, shapes, constants, and the expressions printed by ``ConvCPrinter``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Final

import sympy as sp

from ..symbolic.spec import ConvSpec
from ..templating import environment
from ..version import __version__
from .cprinter import ConvCPrinter
from .layer_lowering import AvgPoolOp, LayerPlan
from .lowering import VECTOR_STRATEGIES, KernelPlan, signatures
from .plan import Kernel, StraightLine

__all__ = [
    "TEMPLATE_VERSION", "LAYER_TEMPLATE_VERSION", "Sources", "LayerSources", "generation_key", "prototype", "render",
    "render_layers",
]


TEMPLATE_VERSION: Final = 9
"""Version of the data model between lowering and the templates: bump it when the generated code changes
for the same spec (it enters both the banner key and the build cache key)."""

LAYER_TEMPLATE_VERSION: Final = 1
"""Version of the data model between layer lowering and the layer templates; it enters the banner and the build."""

MODULE_TEMPLATES: Final = {"c": "conv_module.c.j2", "h": "conv_module.h.j2", "cdef": "conv_module.cdef.j2"}
LAYER_MODULE_TEMPLATES: Final = {"c": "layer_module.c.j2", "cdef": "layer_module.cdef.j2"}

_ROLES: Final = {
    "x": "input",
    "w": "weight",
    "b": "bias",
    "y": "output",
    "dy": "upstream gradient dE/dy",
    "dx": "input gradient dE/dx",
    "dw": "weight gradient dE/dw",
    "db": "bias gradient dE/db",
}


@dataclass(frozen=True)
class Sources:
    """The generated text for one layer and dtype; ``prefix`` names files and functions."""

    prefix: str
    key: str
    c: str
    h: str
    cdef: str

    def files(self) -> dict[str, str]:
        """File name -> contents, as ``write_sources`` writes them."""
        return {f"{self.prefix}.c": self.c, f"{self.prefix}.h": self.h, f"{self.prefix}.cdef": self.cdef}


@dataclass(frozen=True)
class LayerSources:
    """The generated text of one module of layer kernels."""

    key: str
    c: str
    cdef: str


def generation_key(spec: ConvSpec, dtype: str, strategy: str, fuse_relu: bool = False) -> str:
    """A short content key of what was generated: no paths, no times, so regenerating is byte-identical.

    >>> len(generation_key(ConvSpec((3, 3), (2, 2)), "float32", "unrolled"))
    16
    """

    recipe = {"version": __version__, "templates": TEMPLATE_VERSION, "spec": asdict(spec), "dtype": dtype,
              "strategy": strategy}
    if fuse_relu:  # only when set: the keys (and banners) of plain modules stay what they were
        recipe["fuse_relu"] = True
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _body(kernel: Kernel, printer: ConvCPrinter) -> dict[str, list[Any]]:
    body: StraightLine = kernel.body  # type: ignore[assignment]  # only called for unrolled kernels
    values = [value for _, value in body.temporaries] + [a.value for a in body.assignments]
    read = {entry.array for value in values for entry in map(printer.arrays.get, value.free_symbols) if entry}
    return {
        "temporaries": [(printer.doprint(name), printer.doprint(value)) for name, value in body.temporaries],
        "assignments": [
            (printer.entry(a.target), printer.doprint(a.value), a.label) for a in body.assignments
        ],
        # Inputs no equation reads: possible when dilation puts every tap of some pass on padding.
        "unread": [a.name for a in kernel.inputs if a.name not in read],
    }


def prototype(kernel: Kernel, threads: bool = False) -> str:
    """A kernel -> its C prototype (no semicolon), the one text the .c, the .h and the cdef share.

    >>> from symconv.codegen.layer_lowering import ReLUOp, lower_layer
    >>> prototype(lower_layer(ReLUOp((2, 3)), "float64").kernels[0])
    'void relu_2x3_f64_forward(const double *restrict x, double *restrict y)'
    """
    text = environment().get_template("prototype.c.j2").render(name=kernel.name, args=kernel.args, threads=threads)
    return text.rstrip("\n")


def _kernel_view(kernel: Kernel, printer: ConvCPrinter, threads: bool) -> dict[str, Any]:
    return {
        "family": kernel.family,
        "name": kernel.name,
        "prototype": prototype(kernel, threads),
        "body": None if kernel.body is None else _body(kernel, printer),
    }


def _arrays(spec: ConvSpec, dtype: str) -> list[dict[str, Any]]:
    shapes = {a.name: a.shape for args in signatures(spec, dtype).values() for a in args}
    return [{"name": name, "shape": shapes[name], "role": role} for name, role in _ROLES.items() if name in shapes]


def render(plan: KernelPlan) -> Sources:
    """Render the three files of a plan; every kernel's prototype is rendered once and shared by all three.

    >>> from symconv.codegen.lowering import lower
    >>> sources = render(lower(ConvSpec((3, 3), (2, 2)), "float32"))
    >>> print(sources.cdef.splitlines()[-1])
    void conv_3x3_k2x2_f32_grad_bias(const float *restrict dy, float *restrict db);
    """

    printer = ConvCPrinter(plan.arrays, plan.dtype)
    spec = plan.spec
    key = generation_key(spec, plan.dtype, plan.strategy, plan.fuse_relu)
    context = {
        "version": __version__,
        "key": key,
        "description": f"{spec.describe()}; {plan.dtype}; {plan.strategy}",
        "spec": spec,
        "strategy": plan.strategy,
        "ctype": plan.ctype,
        "rows": plan.rows,
        "cols": plan.cols,
        "arrays": _arrays(spec, plan.dtype),
        "guard": f"SYMCONV_{plan.prefix.upper()}_H",
        "gemm_passes": plan.gemm_passes,
        "direct": {g.name: g for g in plan.direct},
        "grad_weight_nhwc": plan.grad_weight_nhwc,
        "grad_input_nhwc": plan.grad_input_nhwc,
        "output_entries": spec.batch * spec.out_channels * spec.output_size[0] * spec.output_size[1],
        # vector kernels take a thread count first and return a status (scratch memory can run out).
        "kernels": [_kernel_view(k, printer, plan.strategy in VECTOR_STRATEGIES) for k in plan.kernels],
    }
    texts = {
        kind: environment().get_template(name).render(context, template=name)
        for kind, name in MODULE_TEMPLATES.items()
    }
    return Sources(prefix=plan.prefix, key=key, **texts)


def _layer_key(plans: list[LayerPlan]) -> str:
    recipe = {"version": __version__, "templates": LAYER_TEMPLATE_VERSION, "plans": [repr(p.op) for p in plans],
              "dtypes": [p.dtype for p in plans]}
    return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:16]


def _layer_view(plan: LayerPlan) -> dict[str, Any]:
    view: dict[str, Any] = {
        "description": f"{plan.prefix}: {plan.op!r}",
        "template": plan.template,
        "ctype": plan.ctype,
        "math_suffix": "f" if plan.dtype == "float32" else "",  # expf for float, exp for double
        "constants": plan.constants,
        "kernels": {k.family: {"name": k.name, "prototype": prototype(k)} for k in plan.kernels},
    }
    if isinstance(plan.op, AvgPoolOp):
        # Printed by the SymPy C printer, so the literal carries the dtype's suffix (4.0f, 4.0).
        view["divisor"] = ConvCPrinter({}, plan.dtype).doprint(sp.Float(plan.op.kernel[0] * plan.op.kernel[1]))
    return view


def render_layers(plans: list[LayerPlan]) -> LayerSources:
    """The .c and the cffi cdef of one module holding every plan's kernels (duplicates dropped).

    >>> from symconv.codegen.layer_lowering import ReLUOp, lower_layer
    >>> sources = render_layers([lower_layer(ReLUOp((2, 3)), "float64")])
    >>> print(sources.cdef.splitlines()[-1])
    void relu_2x3_f64_backward(const double *restrict x, const double *restrict dy, double *restrict dx);
    """
    unique = list(dict.fromkeys(plans))
    key = _layer_key(unique)
    context = {"version": __version__, "key": key, "plans": [_layer_view(p) for p in unique],
               "description": "; ".join(p.prefix for p in unique)}
    texts = {kind: environment().get_template(name).render(context, template=name)
             for kind, name in LAYER_MODULE_TEMPLATES.items()}
    return LayerSources(key=key, **texts)
