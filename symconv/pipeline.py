"""Driver: layers and a dtype -> loaded, checked kernels; the one pipeline every layer goes through.

One line per stage, as in pystencils' and Devito's drivers:
    lower (``codegen.lowering`` / ``codegen.layer_lowering``: a kernel plan)
    -> render (``codegen.render``: SymPy's C printer, sp.cse, Jinja)
    -> build (``build.cache``: cffi, the persistent cache)
    -> runtime (``runtime``: checked calls, in C for the common case).
``compile_conv`` runs it for a convolution, ``compile_layers`` for the other layers of one module, and
``compile_network`` for a whole ``Network`` (both of them). What chooses among strategies (the autotuner,
``symconv.tuning``) sits above this driver and hands it its choice.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Final, Mapping, Optional, Sequence

import numpy as np

from .build.cache import (
    DEFAULT_CFLAGS,
    BuildJob,
    build,
    cache_root,
    environment_key,
    flags_key,
    linked_flags,
    load_indexed,
    target_flags,
)
from .codegen.layer_lowering import LayerOp, layer_op, loss_op, lower_layer
from .codegen.lowering import FAMILIES, STRATEGIES, choose_strategy, lower
from .codegen.plan import check_dtype
from .codegen.render import LAYER_TEMPLATE_VERSION, TEMPLATE_VERSION, generation_key, render, render_layers
from .runtime.checked_call import checked_call_module
from .runtime.kernels import ConvKernels, check_threads, default_threads
from .runtime.layer_kernels import KERNEL_CLASSES, LayerKernels
from .runtime.network import CompiledNetwork, Stage, own_params
from .runtime.transpose import ConvTransposeKernels
from .symbolic.layers import Conv2d, ReLU
from .symbolic.network import Network
from .symbolic.spec import ConvSpec
from .symbolic.transpose import ConvTransposeSpec
from .templating import TEMPLATES_DIR
from .version import __version__

__all__ = ["compile_conv", "compile_conv_transpose", "compile_layers", "compile_network", "build_options", "write_sources",
           "FLOAT32_UNIT_ROUNDOFF"]

FLOAT32_UNIT_ROUNDOFF: Final = 2.0**-24

# The stages whose code shapes the generated C: a cache hit must not survive an edit to any of them.
_GENERATOR_MODULES: Final = ("symbolic/spec.py", "symbolic/symbols.py", "symbolic/derive.py", "codegen/direct.py",
                              "codegen/lowering.py", "codegen/cprinter.py", "codegen/render.py")

_loaded: dict[tuple[object, ...], ConvKernels] = {}
_assembled: dict[tuple[ConvKernels, tuple[tuple[str, str], ...]], ConvKernels] = {}  # per-pass strategies
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
    return f"symconv {__version__}; templates {TEMPLATE_VERSION}"


def _recipe_key(spec: ConvSpec, dtype: str, strategy: str, cflags: tuple[str, ...],
                ldflags: tuple[str, ...], fuse_relu: bool = False) -> str:
    # Known before any lowering, so a cache hit in a new process costs a file read and a dlopen. With
    # -march=native the key holds the host CPU's fingerprint: such code must not be loaded on another CPU.
    recipe = {"generated": generation_key(spec, dtype, strategy, fuse_relu), "generator": _generator_fingerprint(),
              **flags_key(cflags), "ldflags": list(ldflags), **environment_key()}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def check_cflags(cflags: Optional[Sequence[str]]) -> tuple[str, ...]:
    """Compiler flags (None: ``DEFAULT_CFLAGS``) -> a tuple of strings; a lone string is refused, not split
    into letters."""
    if cflags is None:
        return DEFAULT_CFLAGS
    if isinstance(cflags, (str, bytes)) or not all(isinstance(flag, str) for flag in cflags):
        raise TypeError(f"cflags must be a sequence of strings, such as ('-O3', '-Wall'), got {cflags!r}")
    return tuple(cflags)


def build_options(cflags: Optional[Sequence[str]], arch: str,
                  threads: Optional[int]) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """The compiler flags, link flags and thread count that ``compile_conv`` takes from its arguments."""
    flags, ldflags = target_flags(check_cflags(cflags), arch)
    return flags, ldflags, default_threads() if threads is None else check_threads(threads)


def compile_conv(spec: ConvSpec, dtype: str = "float32", strategy: Optional[str | Mapping[str, str]] = None, *,
                 cflags: Optional[Sequence[str]] = None, arch: str = "native", threads: Optional[int] = None,
                 cache_dir: Optional[os.PathLike[str] | str] = None, fuse_relu: bool = False) -> ConvKernels:
    """Compile (or load from the cache) the forward pass and the three gradients of ``spec``.

    ``dtype`` is ``"float32"`` or ``"float64"``. ``strategy`` is ``"unrolled"`` (the derived equations as
    straight-line code), ``"loops"`` (loop nests), ``"gemm"`` (packed matrix products), ``"direct"`` (direct
    convolutions on padded images; ``codegen.direct``), None to choose by size (``lowering.UNROLL_LIMIT``), or
    a strategy per pass, ``{"forward": ..., "grad_input": ..., "grad_weight": ..., "grad_bias": ...}``, such as
    the autotuner's ``tune(spec, dtype).winners`` (``symconv.tuning``; ``tuned_kernels`` does both steps).
    ``cflags`` are added to Python's own compiler flags (default ``("-O3",)``; the tests add
    ``-Wall -Wextra -Werror``). ``arch`` is ``"native"`` (``-march=native``: every vector instruction of this
    CPU; the cache key then holds the CPU's fingerprint) or ``"portable"`` (the compiler's baseline). Every
    module is built with OpenMP; ``threads`` is how many threads a call may use (default: the CPUs this
    process may run on; small layers stay on one thread whatever it says). ``cache_dir`` overrides
    ``$SYMCONV_CACHE_DIR``. ``fuse_relu`` adds ``ConvKernels.forward_relu``, max(forward, 0) in one kernel
    (``direct`` applies the ReLU to the accumulators, in registers; the other strategies run the forward pass,
    then one loop over y). Raises ``build.cache.CompilerError`` when the C compiler is missing or fails.

    Accuracy: float64 kernels match the exact result to a few ulps of the sum of magnitudes. float32
    kernels compute in float32, so each entry lies within gamma_m * (sum of |terms|) of the exact value,
    where m is the number of terms added for that entry (one product per tap that reads inside the image,
    plus the bias) and gamma_m = m u / (1 - m u) with u = 2**-24 (``FLOAT32_UNIT_ROUNDOFF``), the classic
    worst-case bound for floating-point sums (Higham, Accuracy and Stability, ch. 3) that holds for any
    summation order and so for every strategy. Typical errors are far smaller, around sqrt(m) u.

    A second call with the same arguments in the same process returns the same object; in a new process
    it loads the cached module without lowering, rendering or compiling anything.

    >>> compile_conv(ConvSpec((3, 3), (2, 2)), "float16")
    Traceback (most recent call last):
    ...
    ValueError: dtype must be one of ['float32', 'float64'], got 'float16'
    """
    dtype = check_dtype(dtype)
    if isinstance(strategy, Mapping):  # a strategy per pass: forward's kernels borrow the others' passes
        per_pass = _per_pass(strategy)
        options = dict(cflags=cflags, arch=arch, threads=threads, cache_dir=cache_dir)
        kernels = compile_conv(spec, dtype, per_pass["forward"], fuse_relu=fuse_relu, **options)  # type: ignore[arg-type]
        others = tuple((name, s) for name, s in per_pass.items() if s != kernels.strategy and name != "forward")
        if not others:
            return kernels
        found = _assembled.get((kernels, others))
        if found is not None:
            return found
        borrowed = tuple((name, compile_conv(spec, dtype, s, **options)) for name, s in others)  # type: ignore[arg-type]
        with _loaded_lock:
            return _assembled.setdefault((kernels, others), replace(kernels, borrowed=borrowed))
    chosen = choose_strategy(spec, strategy)
    flags, ldflags, count = build_options(cflags, arch, threads)
    cache_path = cache_root(cache_dir)
    fuse_relu = bool(fuse_relu)
    memo = (spec, dtype, chosen, fuse_relu, flags, count, str(cache_path), json.dumps(environment_key(), sort_keys=True))
    loaded = _loaded.get(memo)
    if loaded is not None:
        return loaded
    key = _recipe_key(spec, dtype, chosen, flags, ldflags, fuse_relu)
    module = load_indexed(cache_path, key)
    if module is None:
        plan = lower(spec, dtype, chosen, fuse_relu=fuse_relu)                  # spec -> kernel plan
        sources = render(plan)                                                  # -> C text (printer, Jinja)
        job = BuildJob(sources.c, sources.cdef, flags, _generator_version(), ldflags)
        module = build(job, cache_path, key)                                    # -> cached cffi extension
    compiled = ConvKernels(spec, np.dtype(dtype), chosen, module, count, fuse_relu,  # -> checked NumPy calls
                           checked=checked_call_module(cache_path, linked_flags(flags)))
    with _loaded_lock:
        return _loaded.setdefault(memo, compiled)


def compile_conv_transpose(spec: ConvTransposeSpec, dtype: str = "float32",
                           strategy: Optional[str | Mapping[str, str]] = None, **options: object) -> ConvTransposeKernels:
    """Compile the kernels of a transposed convolution: those of its corresponding convolution, ``spec.conv``.

    The transpose's forward runs the convolution's ``grad_input`` kernel, its ``grad_input`` the convolution's
    ``forward`` and its ``grad_weight`` the convolution's ``grad_weight`` (arrays swapped). ``strategy`` and
    ``options`` (cflags, arch, threads, cache_dir) are ``compile_conv``'s, for the convolution's passes.
    ``bias=False`` specs compile the same kernels; their ``forward`` takes ``b=None`` only.

    >>> compile_conv_transpose(ConvTransposeSpec((3, 3), (2, 2)), "float16")
    Traceback (most recent call last):
    ...
    ValueError: dtype must be one of ['float32', 'float64'], got 'float16'
    """
    if not isinstance(spec, ConvTransposeSpec):
        raise TypeError(f"spec must be a ConvTransposeSpec, got {type(spec).__name__}")
    return ConvTransposeKernels(spec, compile_conv(spec.conv, dtype, strategy, **options))  # type: ignore[arg-type]


def _per_pass(strategy: Mapping[str, str]) -> dict[str, str]:
    if set(strategy) != set(FAMILIES):
        raise ValueError(f"a strategy per pass must name the passes {list(FAMILIES)}, got {sorted(strategy)}")
    unknown = sorted({s for s in strategy.values() if s not in STRATEGIES}, key=str)
    if unknown:
        raise ValueError(f"strategy must be one of {list(STRATEGIES)} for every pass, got {unknown}")
    return {name: strategy[name] for name in FAMILIES}


def compile_layers(ops: Sequence[LayerOp], dtype: str = "float32", *, cflags: Optional[Sequence[str]] = None,
                   arch: str = "native", cache_dir: Optional[os.PathLike[str] | str] = None) -> list[LayerKernels]:
    """Compile (or load from the build cache) the kernels of ``ops`` in one module; one checked object per op.

    ``cflags`` default to ``("-O3",)`` (the tests add ``-Wall -Wextra -Werror``); ``arch`` and ``cache_dir`` as
    for ``compile_conv``. Each result is the op's class in ``runtime.layer_kernels`` (``ReLUKernels``, ...).

    >>> compile_layers([], "float16")
    Traceback (most recent call last):
    ...
    ValueError: dtype must be one of ['float32', 'float64'], got 'float16'
    """
    dtype = check_dtype(dtype)
    plans = [lower_layer(op, dtype) for op in ops]                               # ops -> kernel plans
    if not plans:
        return []
    sources = render_layers(plans)                                              # -> C text (Jinja)
    flags, ldflags = target_flags(check_cflags(cflags), arch)
    job = BuildJob(sources.c, sources.cdef, flags, f"symconv {__version__}; layer templates {LAYER_TEMPLATE_VERSION}",
                   ldflags)
    cache_path = cache_root(cache_dir)
    module = build(job, cache_path)                                             # -> cached cffi extension
    checked = checked_call_module(cache_path, linked_flags(flags))
    return [KERNEL_CLASSES[plan.op.kind](plan, module, checked) for plan in plans]  # -> checked NumPy calls


def compile_network(network: Network, dtype: str = "float32", *, params: Optional[Mapping[str, np.ndarray]] = None,
                    seed: int = 0, cflags: Optional[Sequence[str]] = None, arch: str = "native",
                    threads: Optional[int] = None, fuse: bool = True,
                    cache_dir: Optional[os.PathLike[str] | str] = None) -> CompiledNetwork:
    """Compile every layer and the loss of ``network`` for ``dtype`` (``"float32"`` or ``"float64"``).

    ``params`` are copied (converted to ``dtype``); by default ``network.init_params(seed)``. ``cflags``,
    ``arch`` and ``cache_dir`` go to every build (as for ``compile_conv``), ``threads`` to the convolutions.
    ``fuse`` runs each convolution followed by a ReLU as one fused kernel (``ConvKernels.forward_relu``),
    which measured 0.6-0.96x the time of the two separately.

    >>> from symconv.symbolic.layers import Flatten, Dense
    >>> from symconv.symbolic.losses import MSELoss
    >>> compile_network(Network([Flatten(), Dense(2), MSELoss()], (1, 3)), "float16")
    Traceback (most recent call last):
    ...
    ValueError: dtype must be one of ['float32', 'float64'], got 'float16'
    """
    dtype = check_dtype(dtype)
    owned = own_params(network, network.init_params(seed) if params is None else params, np.dtype(dtype))
    body, shapes = network.body, network.shapes
    lowered = [layer_op(layer, shapes[i]) for i, layer in enumerate(body)]      # layers -> specs and ops
    ops = [op for op in lowered if isinstance(op, LayerOp)] + [loss_op(network.loss, shapes[-1])]
    built = iter(compile_layers(ops, dtype, cflags=cflags, arch=arch, cache_dir=cache_dir))  # one module
    fused = {i for i in range(len(body) - 1) if fuse and isinstance(body[i], Conv2d) and isinstance(body[i + 1], ReLU)}
    stages = []
    for i, op in enumerate(lowered):
        if isinstance(op, ConvSpec):
            kernels = compile_conv(op, dtype, cflags=cflags, arch=arch, threads=threads, cache_dir=cache_dir,
                                   fuse_relu=i in fused)
            stages.append(Stage(i, "conv_relu" if i in fused else "conv", kernels, shapes[i + 1]))
        elif isinstance(op, ConvTransposeSpec):  # the convolution's kernels, behind the transpose's names
            transpose = compile_conv_transpose(op, dtype, cflags=cflags, arch=arch, threads=threads, cache_dir=cache_dir)
            stages.append(Stage(i, "conv", transpose, shapes[i + 1]))
        elif op is None:
            stages.append(Stage(i, "flatten", None, shapes[i + 1]))
        else:
            kind = "relu_fused" if i - 1 in fused else op.kind
            stages.append(Stage(i, kind, next(built), shapes[i + 1]))
    return CompiledNetwork(network, np.dtype(dtype), owned, tuple(stages), next(built))


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
