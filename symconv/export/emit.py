"""Emit: a ``Library``, its parameters and the host test's data -> the text of every file of the exported directory.

The kernels are the text ``codegen.render`` writes for the cffi build (``render`` for a convolution's plan,
``render_layers`` for the other layers and the loss), each preceded by the export's banner and the include that
gives its functions the library's prefix; everything else comes from the ``templates/export_*`` templates.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final, Mapping, Optional, Sequence

import numpy as np

from ..codegen.render import LAYER_MODULE_TEMPLATES, MODULE_TEMPLATES, prototype, render, render_layers
from ..templating import environment
from ..version import __version__
from .layout import HELPERS, Call, Library

__all__ = ["TestData", "c_literal", "rows", "render_library", "EXPORT_TEMPLATE_VERSION"]

EXPORT_TEMPLATE_VERSION: Final = 1
"""Version of the data model between the export and its templates; it enters every file's key."""

_PER_ROW: Final = 6


@dataclass(frozen=True)
class TestData:
    """What the host test reads: batches and targets in, and Python's results for them."""

    params: np.ndarray
    inputs: np.ndarray
    targets: np.ndarray
    output: np.ndarray
    input_grad: np.ndarray
    grads: np.ndarray
    losses: np.ndarray
    trained: np.ndarray
    learning_rate: float
    tolerance: float
    step_tolerance: float


def c_literal(value: float, dtype: str) -> str:
    """A float -> its exact C99 hexadecimal literal (suffix ``f`` for float32).

    >>> c_literal(0.75, "float32"), c_literal(-3.0, "float64"), c_literal(0.0, "float32")
    ('0x1.8p-1f', '-0x1.8p+1', '0x0p+0f')
    """
    if not np.isfinite(value):
        raise ValueError(f"cannot export a non-finite value ({value}) as a C constant")
    text = float(value).hex()
    mantissa, exponent = text.split("p")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}p{exponent}" + ("f" if dtype == "float32" else "")


def rows(values: np.ndarray, dtype: Optional[str]) -> list[list[str]]:
    """Values -> C literals in rows of a few (``dtype`` None: integers)."""
    flat = [str(int(v)) for v in values.ravel()] if dtype is None else [c_literal(v, dtype) for v in values.ravel()]
    return [flat[i:i + _PER_ROW] for i in range(0, len(flat), _PER_ROW)]


def _key(lib: Library, name: str, weights: bool) -> str:
    recipe = {"version": __version__, "templates": EXPORT_TEMPLATE_VERSION, "network": repr(lib.network),
              "dtype": lib.dtype, "strategy": lib.strategy, "name": name, "weights": weights}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _used(calls: Sequence[Call], extra: Sequence[str] = ()) -> set[str]:
    return {arg for call in calls for arg in call.args} | set(extra)


def _context(lib: Library, name: str, weights: bool, proofs: Sequence[str]) -> dict[str, Any]:
    net = lib.network
    forward = [c for step in lib.steps for c in step.forward]
    backward = [c for step in lib.steps for c in step.backward] + list(lib.grad_calls)
    copies = [step.copy[1] for step in lib.steps if step.copy]
    target_size = lib.network.shapes[-1][0] if lib.labels else int(np.prod(net.shapes[-1]))
    return {
        "version": __version__, "key": _key(lib, name, weights), "name": name, "NAME": name.upper(),
        "dtype": lib.dtype, "ctype": lib.ctype, "strategy": lib.strategy,
        "network": net.describe().splitlines(), "proofs": list(proofs),
        "labels": lib.labels, "target": "labels" if lib.labels else "target",
        "batch": net.input_shape[0], "input_shape": net.input_shape, "output_shape": net.shapes[-1],
        "input_size": int(np.prod(net.input_shape)), "output_size": int(np.prod(net.shapes[-1])),
        "target_size": target_size, "params": lib.params, "params_size": lib.params_size,
        "forward_bytes": lib.forward_bytes, "workspace_bytes": -(-lib.workspace_bytes // 8) * 8,
        "buffers": lib.buffers, "steps": lib.steps, "output": lib.output, "loss_calls": lib.loss_calls,
        "grad_calls": lib.grad_calls, "weights": weights,
        "forward_used": _used(forward, (lib.output,)),
        "backward_used": _used(backward + list(lib.loss_calls), copies),
        "input_grad_used": any("input_grad" in c.args for c in backward) or bool(copies),
        "kernels": [{"name": k.name, "prototype": prototype(k)} for k in lib.kernels],
        "helpers": {c.function for c in forward + backward if c.function in HELPERS},
    }


def _with_banner(banner: str, name: str, text: str) -> str:
    # The kernels' own banner (template, key, spec, strategy) follows the export's; the include renames them.
    note = (f"/* In this library only {name}.c calls these kernels, always on arrays of exactly their shapes and with\n"
            f" * class labels it checked first: the argument checks of the Python runtime are not needed here. */\n")
    return f"{banner}{note}#include \"{name}_kernels.h\"\n\n{text}"


def render_library(lib: Library, name: str, params: Optional[Mapping[str, np.ndarray]], proofs: Sequence[str],
                   test: Optional[TestData] = None, source: str = "") -> dict[str, str]:
    """File name -> text for the whole exported directory; ``params`` None leaves out ``<name>_weights.c``.

    >>> from symconv import Network, Flatten, Dense, MSELoss
    >>> from symconv.export.layout import plan_library
    >>> files = render_library(plan_library(Network([Flatten(), Dense(2), MSELoss()], (1, 3))), "tiny", None, [])
    >>> sorted(files)[:4]
    ['CMakeLists.txt', 'Makefile', 'tiny.c', 'tiny.h']
    """
    if not name.isidentifier() or not name.isascii():
        raise ValueError(f"the library name must be a C identifier, got {name!r}")
    context = _context(lib, name, params is not None, proofs)
    env = environment()

    def text(template: str, shown: str = "", **extra: Any) -> str:
        return env.get_template(template).render(context, template=shown or template, **extra)

    files = {f"{name}.h": text("export_network.h.j2"), f"{name}.c": text("export_network.c.j2"),
             f"{name}_kernels.h": text("export_kernels.h.j2")}
    for plan in lib.conv_plans:
        banner = text("export_banner.c.j2", f"{MODULE_TEMPLATES['c']} (below), through templates/export_banner.c.j2")
        files[f"{name}_{plan.prefix}.c"] = _with_banner(banner, name, render(plan).c)
    if lib.layer_plans:
        banner = text("export_banner.c.j2", f"{LAYER_MODULE_TEMPLATES['c']} (below), through "
                      "templates/export_banner.c.j2")
        files[f"{name}_layers.c"] = _with_banner(banner, name, render_layers(list(lib.layer_plans)).c)
    if params is not None:
        tensors = [{"key": p.key, "shape": p.shape, "macro": p.macro,
                    "rows": rows(np.asarray(params[p.key], dtype=lib.dtype), lib.dtype)} for p in lib.params]
        files[f"{name}_weights.c"] = text("export_weights.c.j2", tensors=tensors, source=source or "given")
    sources = [f for f in files if f.endswith(".c")]
    if test is not None:
        arrays = _test_arrays(lib, test)
        extra: dict[str, Any] = {"arrays": arrays, "steps": len(test.losses), "learning_rate": c_literal(test.learning_rate, "float64"),
                 "tolerance": f"{test.tolerance:g}", "step_tolerance": f"{test.step_tolerance:g}"}
        files[f"{name}_test_data.h"] = text("export_test_data.h.j2", **extra)
        files[f"{name}_test_data.c"] = text("export_test_data.c.j2", **extra)
        files[f"{name}_test.c"] = text("export_test.c.j2")
    files["Makefile"] = text("export_Makefile.j2", sources=sources, test=test is not None)
    files["CMakeLists.txt"] = text("export_CMakeLists.txt.j2", sources=sources, test=test is not None)
    return files


def _test_arrays(lib: Library, test: TestData) -> list[dict[str, Any]]:
    real, dtype = f"{lib.ctype}", lib.dtype
    target_ctype, target_dtype = ("int64_t", None) if lib.labels else (real, dtype)
    found = [("test_params", real, test.params, dtype, "the parameters before the steps"),
             ("test_inputs", real, test.inputs, dtype, "one batch per step"),
             ("test_targets", target_ctype, test.targets, target_dtype, "one target per step"),
             ("test_output", real, test.output, dtype, "Python's forward of the first batch"),
             ("test_input_grad", real, test.input_grad, dtype, "Python's dE/dinput of the first batch"),
             ("test_grads", real, test.grads, dtype, "Python's dE/dparams of the first batch"),
             ("test_losses", real, test.losses, dtype, "Python's loss before each step"),
             ("test_trained", real, test.trained, dtype, "Python's parameters after the steps")]
    return [{"name": n, "ctype": c, "size": int(v.size), "rows": rows(v, d), "what": w} for n, c, v, d, w in found]
