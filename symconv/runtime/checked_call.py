"""Checked calls: a kernel of a loaded module and its Python method -> one callable whose common case is checked
and run in C (``templates/checked_call.c.j2``), ~0.1 µs of overhead where Python's checks cost ~1 µs.

The C object takes a call only when every array is exactly an ndarray of the layer's dtype object, shape and
layout and ``out`` lies apart from the inputs; it hands any other call, unchanged, to the Python method,
which defines what every call means (it accepts subclasses and equal dtypes, and raises the errors). The
extension is compiled once per Python, NumPy and compiler into the build cache, like the kernels.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..build.cache import DEFAULT_CFLAGS, BuildJob, CompilerError, build, environment_key, load_indexed
from ..codegen.render import TEMPLATES_DIR, keyed

__all__ = ["checked_call_module", "checked_call"]

_TEMPLATE = "checked_call.c.j2"


@cache
def checked_call_module(cache: os.PathLike[str] | str) -> Optional[ModuleType]:
    """The compiled extension in the build cache ``cache`` (built on first use), or None with a warning if it
    cannot be built: the kernels then run behind their Python checks, correct but slower per call."""
    from ..version import __version__

    generator = f"symconv {__version__}; checked calls; numpy {np.__version__}"
    # A cache hit in a new process reads the index and loads the extension: no Jinja, no hashing of the text.
    templates = [(TEMPLATES_DIR / name).read_bytes() for name in (_TEMPLATE, "banner.c.j2")]
    recipe = {"templates": [hashlib.sha256(t).hexdigest() for t in templates], "generator": generator,
              "include": np.get_include(), **environment_key()}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    module = load_indexed(Path(cache), key)
    if module is not None:
        return module
    text = keyed(_TEMPLATE, f"checked kernel calls; NumPy {np.__version__}")
    job = BuildJob(text, None, DEFAULT_CFLAGS, generator, include_dirs=(np.get_include(),))
    try:
        return build(job, Path(cache), key)
    except (CompilerError, ImportError) as error:
        warnings.warn(f"symconv: checked kernel calls run in Python, a few µs slower per call: {error}",
                      RuntimeWarning, stacklevel=2)
        return None


def checked_call(extension: ModuleType, where: str, module: ModuleType, function: str, threads: Optional[int],
                 names: Sequence[str], dtype: np.dtype, shapes: Sequence[tuple[int, ...]],
                 defaults: Sequence[Optional[np.ndarray]], fallback: Callable[..., np.ndarray]) -> Any:
    """``fallback`` with its common case run in C: the cffi kernel ``function`` of ``module`` on arrays named
    ``names`` (the output last, named ``out``) of ``shapes`` and ``dtype``. ``threads`` is the kernel's first
    argument, or None if it takes none. ``defaults[i]``, if not None, is the array a missing or None input i
    stands for (the zero bias of forward). The arrays in ``defaults`` must already have been checked."""
    ffi, lib = module.ffi, module.lib
    address = int(ffi.cast("uintptr_t", ffi.addressof(lib, function)))
    return extension.CheckedCall(where, address, -1 if threads is None else threads, tuple(names), dtype,
                                 tuple(tuple(shape) for shape in shapes), tuple(defaults), fallback, module)
