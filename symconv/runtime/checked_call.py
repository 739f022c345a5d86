"""Checked calls: a kernel of a loaded module and its Python method -> one callable whose common case is checked
and run in C (``templates/checked_call.c.j2``), ~0.1 µs of overhead where Python's checks cost ~1 µs.

The C object takes a call only when every array is exactly an ndarray of its argument's dtype object, shape
and layout, every index array holds values in range and every output lies apart from the other arguments; it hands any other call, unchanged, to the Python method,
which defines what every call means (it accepts subclasses and equal dtypes, and raises the errors). The
extension is compiled once per Python, NumPy and compiler into the build cache, like the kernels.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import warnings
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional

import numpy as np

from ..build.cache import DEFAULT_CFLAGS, BuildJob, CompilerError, build, environment_key, load_indexed
from ..templating import TEMPLATES_DIR, keyed
from ..version import __version__
from .operands import KernelCall

__all__ = ["checked_call_module", "checked_call"]

_TEMPLATE = "checked_call.c.j2"


@cache
def checked_call_module(cache: os.PathLike[str] | str, instrument: tuple[str, ...] = ()) -> Optional[ModuleType]:
    """The compiled extension in the build cache ``cache`` (built on first use), or None with a warning if it
    cannot be built: the kernels then run behind their Python checks, correct but slower per call.

    ``instrument``: the kernels' sanitizer flags (``build.cache.linked_flags``), compiled into the checks too.
    """
    generator = f"symconv {__version__}; checked calls; numpy {np.__version__}"
    # A cache hit in a new process reads the index and loads the extension: no Jinja, no hashing of the text.
    templates = [(TEMPLATES_DIR / name).read_bytes() for name in (_TEMPLATE, "banner.c.j2")]
    recipe = {"templates": [hashlib.sha256(t).hexdigest() for t in templates], "generator": generator,
              "include": np.get_include(), **environment_key()}
    if instrument:  # only then: the plain build keeps its key
        recipe["instrument"] = list(instrument)
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    module = load_indexed(Path(cache), key)
    if module is not None:
        return module
    text = keyed(_TEMPLATE, f"checked kernel calls; NumPy {np.__version__}")
    job = BuildJob(text, None, DEFAULT_CFLAGS + tuple(instrument), generator, tuple(instrument),
                   include_dirs=(np.get_include(),))
    try:
        return build(job, Path(cache), key)
    except (CompilerError, ImportError) as error:
        warnings.warn(f"symconv: checked kernel calls run in Python, a few µs slower per call: {error}",
                      RuntimeWarning, stacklevel=2)
        return None


def checked_call(extension: ModuleType, call: KernelCall, module: ModuleType,
                 fallback: Callable[..., Any]) -> Any:
    """``fallback`` (the Python method of ``call``) with its common case checked and run in C by ``extension``.

    The method's parameters name the kernel's arguments in C order (inputs, then outputs: ``out`` first); a
    default array of ``call`` (forward's zero bias) stands for a missing or None input in C as in Python.
    """
    ffi, lib = module.ffi, module.lib
    code = fallback.__code__
    names = code.co_varnames[1 if inspect.ismethod(fallback) else 0: code.co_argcount]
    address = int(ffi.cast("uintptr_t", ffi.addressof(lib, call.kernel.name)))
    operands = call.operands
    return extension.CheckedCall(
        call.where, address, -1 if call.threads is None else call.threads, tuple(names),
        tuple(o.dtype for o in operands), tuple(o.shape for o in operands),
        tuple(call.defaults[o.arg.name][0] if o.arg.name in call.defaults else None for o in operands),
        tuple(-1 if o.arg.bound is None else o.arg.bound for o in operands), len(operands) - call.inputs,
        fallback, module)
