"""Layer driver: layer operations and a dtype -> C source and cdef (Jinja) -> one cached cffi module -> checked kernels.

One line per stage, as ``codegen.compile_conv``: lower (``layer_lowering``) -> render (``templates/layer_*.c.j2``
in ``render.environment()``) -> build (``build.build``, the same persistent cache as the convolutions) -> runtime
(``layer_runtime``). Several operations go into one module, so a whole network's layers cost one compiler run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Final, Optional, Sequence

import sympy as sp

from ..build.cache import DEFAULT_CFLAGS, BuildJob, build, cache_root, target_flags
from .cprinter import ConvCPrinter
from .layer_lowering import FLOAT_DTYPES, AvgPoolOp, LayerOp, LayerPlan, lower_layer
from ..runtime.layer_kernels import KERNEL_CLASSES, LayerKernels
from .render import environment

__all__ = ["LAYER_TEMPLATE_VERSION", "LayerSources", "render_layers", "compile_layers"]

LAYER_TEMPLATE_VERSION: Final = 1
"""Version of the data model between layer lowering and the layer templates; it enters the banner and the build."""

MODULE_TEMPLATES: Final = {"c": "layer_module.c.j2", "cdef": "layer_module.cdef.j2"}


@dataclass(frozen=True)
class LayerSources:
    """The generated text of one module of layer kernels."""

    key: str
    c: str
    cdef: str


def _key(plans: Sequence[LayerPlan]) -> str:
    from ..version import __version__

    recipe = {"version": __version__, "templates": LAYER_TEMPLATE_VERSION, "plans": [repr(p.op) for p in plans],
              "dtypes": [p.dtype for p in plans]}
    return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:16]


def _plan_view(plan: LayerPlan) -> dict[str, Any]:
    prototype = environment().get_template("layer_prototype.c.j2")
    kernels = {k.family: {"name": k.name, "prototype": prototype.render(name=k.name, args=k.args).rstrip("\n")}
               for k in plan.kernels}
    view: dict[str, Any] = {
        "description": f"{plan.prefix}: {plan.op!r}",
        "template": plan.template,
        "ctype": plan.ctype,
        "math_suffix": "f" if plan.dtype == "float32" else "",  # expf for float, exp for double
        "constants": plan.constants,
        "kernels": kernels,
    }
    if isinstance(plan.op, AvgPoolOp):
        # Printed by the SymPy C printer, so the literal carries the dtype's suffix (4.0f, 4.0).
        view["divisor"] = ConvCPrinter({}, plan.dtype).doprint(sp.Float(plan.op.kernel[0] * plan.op.kernel[1]))
    return view


def render_layers(plans: Sequence[LayerPlan]) -> LayerSources:
    """The .c and the cffi cdef of one module holding every plan's kernels (duplicates dropped).

    >>> from symconv.codegen.layer_lowering import ReLUOp
    >>> sources = render_layers([lower_layer(ReLUOp((2, 3)), "float64")])
    >>> print(sources.cdef.splitlines()[-1])
    void relu_2x3_f64_backward(const double *restrict x, const double *restrict dy, double *restrict dx);
    """
    from ..version import __version__

    unique = list(dict.fromkeys(plans))
    key = _key(unique)
    context = {"version": __version__, "key": key, "plans": [_plan_view(p) for p in unique],
               "description": "; ".join(p.prefix for p in unique)}
    texts = {kind: environment().get_template(name).render(context, template=name)
             for kind, name in MODULE_TEMPLATES.items()}
    return LayerSources(key=key, **texts)


def _generator() -> str:
    from ..version import __version__

    return f"symconv {__version__}; layer templates {LAYER_TEMPLATE_VERSION}"


def compile_layers(ops: Sequence[LayerOp], dtype: str = "float32", *, cflags: Optional[Sequence[str]] = None,
                   arch: str = "native", cache_dir: Optional[os.PathLike[str] | str] = None) -> list[LayerKernels]:
    """Compile (or load from the build cache) the kernels of ``ops`` in one module; one checked object per op.

    ``cflags`` default to ``("-O3",)`` (the tests add ``-Wall -Wextra -Werror``); ``arch`` and ``cache_dir`` as
    for ``compile_conv``. Each result is the op's class in ``layer_runtime`` (``ReLUKernels``, ...).

    >>> compile_layers([], "float16")
    Traceback (most recent call last):
    ...
    ValueError: dtype must be one of ['float32', 'float64'], got 'float16'
    """
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be one of {list(FLOAT_DTYPES)}, got {dtype!r}")
    plans = [lower_layer(op, dtype) for op in ops]                               # ops -> kernel signatures
    if not plans:
        return []
    sources = render_layers(plans)                                              # -> C text (Jinja)
    flags, ldflags = target_flags(DEFAULT_CFLAGS if cflags is None else tuple(cflags), arch)
    module = build(BuildJob(sources.c, sources.cdef, flags, _generator(), ldflags), cache_root(cache_dir))
    return [KERNEL_CLASSES[plan.op.kind](plan, module) for plan in plans]      # -> checked NumPy calls
