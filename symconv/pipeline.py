"""Driver: a ``ConvSpec`` and a dtype -> C sources on disk (``write_sources``) or loaded ``ConvKernels``.

One line per pipeline stage, as in pystencils' and Devito's drivers:
spec -> lowering (kernel description, sp.cse) -> C printer + Jinja render -> cffi build -> runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from functools import cache
from pathlib import Path
from typing import Final, Optional, Sequence

import numpy as np

from .build.cache import DEFAULT_CFLAGS, BuildJob, build, cache_root, environment_key, flags_key, load_indexed, target_flags
from .runtime.checked_call import checked_call_module
from .codegen.lowering import CTYPES, choose_strategy, lower
from .codegen.render import TEMPLATE_VERSION, TEMPLATES_DIR, generation_key, render
from .runtime.kernels import ConvKernels, default_threads
from .symbolic.spec import ConvSpec

__all__ = ["compile_conv", "build_options", "write_sources", "FLOAT32_UNIT_ROUNDOFF"]

FLOAT32_UNIT_ROUNDOFF: Final = 2.0**-24

# The stages whose code shapes the generated C: a cache hit must not survive an edit to any of them.
_GENERATOR_MODULES: Final = ("symbolic/spec.py", "symbolic/symbols.py", "symbolic/derive.py", "codegen/direct.py",
                              "codegen/lowering.py", "codegen/cprinter.py", "codegen/render.py")

_loaded: dict[tuple[object, ...], ConvKernels] = {}
_loaded_lock = threading.Lock()


def generator_fingerprint() -> str:
    """sha256 of the generator's stages and conv templates: it changes with any edit that can change a kernel.

    >>> len(generator_fingerprint())
    64
    """
    return _generator_fingerprint()


@cache
def _generator_fingerprint() -> str:
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    # Every C template but those of the other modules (layers, peak, checked calls), whose edits do not touch a conv kernel.
    c_templates = [
        p
        for p in sorted(TEMPLATES_DIR.glob("*.j2"))
        if p.name.endswith((".c.j2", ".h.j2", ".cdef.j2")) and not p.name.startswith(("layer_", "peak_", "checked_"))
    ]
    for path in [package / name for name in _GENERATOR_MODULES] + c_templates:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _generator_version() -> str:
    from .version import __version__

    return f"symconv {__version__}; templates {TEMPLATE_VERSION}"


def _recipe_key(spec: ConvSpec, dtype: str, strategy: str, cflags: tuple[str, ...],
                ldflags: tuple[str, ...], fuse_relu: bool = False) -> str:
    # Known before any lowering, so a cache hit in a new process costs a file read and a dlopen. With
    # -march=native the key holds the host CPU's fingerprint: such code must not be loaded on another CPU.
    recipe = {"generated": generation_key(spec, dtype, strategy, fuse_relu), "generator": _generator_fingerprint(),
              **flags_key(cflags), "ldflags": list(ldflags), **environment_key()}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def build_options(cflags: Optional[Sequence[str]], arch: str,
                  threads: Optional[int]) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """The compiler flags, link flags and thread count that ``compile_conv`` takes from its arguments."""
    flags, ldflags = target_flags(DEFAULT_CFLAGS if cflags is None else tuple(cflags), arch)
    count = default_threads() if threads is None else int(threads)
    if count < 1:
        raise ValueError(f"threads must be >= 1, got {threads!r}")
    return flags, ldflags, count


def compile_conv(spec: ConvSpec, dtype: str = "float32", strategy: Optional[str] = None, *,
                 cflags: Optional[Sequence[str]] = None, arch: str = "native", threads: Optional[int] = None,
                 cache_dir: Optional[os.PathLike[str] | str] = None, fuse_relu: bool = False) -> ConvKernels:
    """Compile (or load from the cache) the forward pass and the three gradients of ``spec``.

    ``dtype`` is ``"float32"`` or ``"float64"``. ``strategy`` is ``"unrolled"`` (the derived equations as
    straight-line code), ``"loops"`` (loop nests), ``"gemm"`` (packed matrix products), ``"direct"`` (direct
    convolutions on padded images; ``symconv.codegen.direct``), None to choose by size (``lowering.UNROLL_LIMIT``), or
    ``"tuned"``: the fastest of them per pass, timed once on this machine and cached (``symconv.tuning.autotune``).
    ``cflags`` are added to Python's own compiler flags (default ``("-O3",)``; the tests add
    ``-Wall -Wextra -Werror``). ``arch`` is ``"native"`` (``-march=native``: every vector instruction of this
    CPU; the cache key then holds the CPU's fingerprint) or ``"portable"`` (the compiler's baseline). Every
    module is built with OpenMP; ``threads`` is how many threads a call may use (default: the CPUs this
    process may run on; small layers stay on one thread whatever it says). ``cache_dir`` overrides
    ``$SYMCONV_CACHE_DIR``. ``fuse_relu`` adds ``ConvKernels.forward_relu``, max(forward, 0) in one kernel
    (``direct`` applies the ReLU to the accumulators, in registers; the other strategies run the forward pass,
    then one loop over y). Raises ``build.CompilerError`` when the C compiler is missing or fails.

    Accuracy: float64 kernels match the exact result to a few ulps of the sum of magnitudes. float32
    kernels compute in float32, so each entry lies within gamma_m * (sum of |terms|) of the exact value,
    where m is the number of terms added for that entry (one product per tap that reads inside the image,
    plus the bias) and gamma_m = m u / (1 - m u) with u = 2**-24 (``FLOAT32_UNIT_ROUNDOFF``), the classic
    worst-case bound for floating-point sums (Higham, Accuracy and Stability, ch. 3) that holds for any
    summation order and so for both strategies. Typical errors are far smaller, around sqrt(m) u.

    A second call with the same arguments in the same process returns the same object; in a new process
    it loads the cached module without lowering, rendering or compiling anything.

    >>> compile_conv(ConvSpec((3, 3), (2, 2)), "float16")
    Traceback (most recent call last):
    ...
    ValueError: dtype must be one of ['float32', 'float64'], got 'float16'
    """
    if dtype not in CTYPES:
        raise ValueError(f"dtype must be one of {sorted(CTYPES)}, got {dtype!r}")
    if strategy == "tuned":  # spec -> timed winners (symconv.tuning.autotune), each compiled below; one object
        from .tuning.autotune import tuned_kernels

        return tuned_kernels(spec, dtype, cflags=cflags, arch=arch, threads=threads, cache_dir=cache_dir,
                             fuse_relu=fuse_relu)
    chosen = choose_strategy(spec, strategy)
    flags, ldflags, count = build_options(cflags, arch, threads)
    cache_path = cache_root(cache_dir)
    fuse_relu = bool(fuse_relu)
    memo = (spec, dtype, chosen, fuse_relu, flags, count, str(cache_path), json.dumps(environment_key(), sort_keys=True))
    kernels = _loaded.get(memo)
    if kernels is not None:
        return kernels
    key = _recipe_key(spec, dtype, chosen, flags, ldflags, fuse_relu)
    module = load_indexed(cache_path, key)
    if module is None:
        plan = lower(spec, dtype, chosen, fuse_relu=fuse_relu)                  # spec -> kernel description
        sources = render(plan)                                                  # -> C text (printer, Jinja)
        job = BuildJob(sources.c, sources.cdef, flags, _generator_version(), ldflags)
        module = build(job, cache_path, key)                                    # -> cached cffi extension
    kernels = ConvKernels(spec, np.dtype(dtype), chosen, module, count, fuse_relu,  # -> checked NumPy calls
                          checked=checked_call_module(cache_path))
    with _loaded_lock:
        return _loaded.setdefault(memo, kernels)


def write_sources(spec: ConvSpec, dtype: str, directory: os.PathLike[str] | str,
                  strategy: Optional[str] = None) -> list[Path]:
    """Write ``<prefix>.c``, ``<prefix>.h`` and ``<prefix>.cdef`` for a layer; return their paths.

    The .c compiles on its own (``gcc -std=c99 -c``), the .h declares its kernels, and the .cdef holds the
    same prototypes for ``cffi.FFI().cdef``. Nothing is compiled here.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as out:
    ...     [p.name for p in write_sources(ConvSpec((3, 3), (2, 2)), "float32", out)]
    ['conv_3x3_k2x2_f32.c', 'conv_3x3_k2x2_f32.h', 'conv_3x3_k2x2_f32.cdef']
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    sources = render(lower(spec, dtype, strategy))
    paths = []
    for name, text in sources.files().items():
        path = target / name
        path.write_text(text, newline="\n")  # byte-identical on every platform
        paths.append(path)
    return paths
