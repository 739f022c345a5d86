"""Render: a ``KernelPlan`` -> ``Sources``, the text of the .c, the .h and the cffi cdef (Jinja templates).

The templates in ``TEMPLATES_DIR`` own the C layout: loops, indentation, comments. This module only hands
them data: names, shapes, constants, and the expressions printed by ``ConvCPrinter``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import jinja2

from .cprinter import ConvCPrinter
from .lowering import VECTOR_STRATEGIES, Kernel, KernelPlan, StraightLine, signatures
from ..symbolic.spec import ConvSpec

__all__ = [
    "TEMPLATES_DIR", "TEMPLATE_VERSION", "MODULE_TEMPLATES", "Sources", "environment", "generation_key", "render",
    "keyed",
]


def _templates_dir() -> Path:
    # An installed wheel carries the templates as package data in symconv/templates (pyproject.toml maps the
    # repository's templates/ there); a source checkout or an editable install finds them at the repo root.
    package = Path(__file__).resolve().parent.parent
    packaged = package / "templates"
    return packaged if packaged.is_dir() else package.parent / "templates"


TEMPLATES_DIR: Final[Path] = _templates_dir()
"""The one place templates are resolved from."""

TEMPLATE_VERSION: Final = 8
"""Version of the data model between lowering and the templates: bump it when the generated code changes
for the same spec (it enters both the banner key and the build cache key)."""

MODULE_TEMPLATES: Final = {"c": "conv_module.c.j2", "h": "conv_module.h.j2", "cdef": "conv_module.cdef.j2"}

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


@cache
def environment() -> jinja2.Environment:
    """The Jinja environment: strict about undefined names, whitespace controlled by the templates.

    >>> from symconv.codegen.lowering import Param
    >>> params = [Param("x", (2,)), Param("y", (2,), output=True)]
    >>> print(environment().get_template("prototype.c.j2").render(name="f", params=params, ctype="float"))
    void f(const float *restrict x, float *restrict y)
    <BLANKLINE>
    """
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # C, not HTML
    )


def keyed(template: str, description: str, **context: Any) -> str:
    """A standalone C template (no layer behind it: the peak benchmark, the checked calls) rendered with its
    banner, whose key is a hash of the text itself.

    >>> keyed("banner.c.j2", "a test").split("; ")[1][:4]
    'key '
    """
    from ..version import __version__

    text = environment().get_template(template).render(
        version=__version__, template=template, key="-", description=description, **context)
    return text.replace("key -;", "key " + hashlib.sha256(text.encode()).hexdigest()[:16] + ";", 1)


def generation_key(spec: ConvSpec, dtype: str, strategy: str, fuse_relu: bool = False) -> str:
    """A short content key of what was generated: no paths, no times, so regenerating is byte-identical.

    >>> len(generation_key(ConvSpec((3, 3), (2, 2)), "float32", "unrolled"))
    16
    """
    from ..version import __version__  # the package is initialised by the time anything renders

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
        "unread": [p.name for p in kernel.params if not p.output and p.name not in read],
    }


def _kernel_view(kernel: Kernel, ctype: str, printer: ConvCPrinter, threads: bool) -> dict[str, Any]:
    prototype = environment().get_template("prototype.c.j2").render(
        name=kernel.name, params=kernel.params, ctype=ctype, threads=threads
    )
    return {
        "family": kernel.family,
        "name": kernel.name,
        "prototype": prototype.rstrip("\n"),
        "body": None if kernel.body is None else _body(kernel, printer),
    }


def _arrays(spec: ConvSpec) -> list[dict[str, Any]]:
    shapes = {p.name: p.shape for params in signatures(spec).values() for p in params}
    return [{"name": name, "shape": shapes[name], "role": role} for name, role in _ROLES.items()]


def render(plan: KernelPlan) -> Sources:
    """Render the three files of a plan; every kernel's prototype is rendered once and shared by all three.

    >>> from symconv.codegen.lowering import lower
    >>> sources = render(lower(ConvSpec((3, 3), (2, 2)), "float32"))
    >>> print(sources.cdef.splitlines()[-1])
    void conv_3x3_k2x2_f32_grad_bias(const float *restrict dy, float *restrict db);
    """
    from ..version import __version__

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
        "arrays": _arrays(spec),
        "guard": f"SYMCONV_{plan.prefix.upper()}_H",
        "gemm_passes": plan.gemm_passes,
        "direct": {g.name: g for g in plan.direct},
        "grad_weight_nhwc": plan.grad_weight_nhwc,
        "grad_input_nhwc": plan.grad_input_nhwc,
        "output_entries": spec.batch * spec.out_channels * spec.output_size[0] * spec.output_size[1],
        # vector kernels take a thread count first and return a status (scratch memory can run out).
        "kernels": [_kernel_view(k, plan.ctype, printer, plan.strategy in VECTOR_STRATEGIES) for k in plan.kernels],
    }
    texts = {
        kind: environment().get_template(name).render(context, template=name)
        for kind, name in MODULE_TEMPLATES.items()
    }
    return Sources(prefix=plan.prefix, key=key, **texts)
