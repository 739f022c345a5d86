"""Autotuning: a ``ConvSpec``, a dtype and candidate strategies -> the fastest strategy per pass, cached as JSON.

The candidates are compiled (or loaded from the build cache), checked against the NumPy reference, then timed
side by side: every sample of every (strategy, pass) is taken round-robin (``benchmark.measure``), so that all
of them see the same state of a shared, noisy machine. The winners are written to ``tuned/<key>.json`` in the
build cache, next to the compiled modules; ``<key>`` is a sha256 of the layer, the dtype, the thread count,
the candidates, the compiler flags, the build environment, this CPU and the generator's sources, so a later
``tune`` with the same inputs reads the record and times nothing. ``compile_conv(spec, dtype, tuning.winners)``
assembles one ``ConvKernels`` from the winners (``tuned_kernels`` does both). The tuner sits above the driver
(``symconv.pipeline``) and calls it; the driver never calls up into the tuner.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Mapping, Optional, Sequence

import numpy as np

from .. import pipeline
from ..build.cache import cache_root, environment_key, flags_key, host_fingerprint, locked, write_atomic
from ..build.safety import check_root, private_dir, read_private
from ..codegen.lowering import STRATEGIES, UNROLL_LIMIT, multiply_adds, refusal
from ..codegen.plan import check_dtype
from ..runtime.kernels import ConvKernels
from ..symbolic.reference import conv2d_forward, conv2d_grad_input, conv2d_grad_weight
from ..symbolic.spec import ConvSpec
from ..version import __version__
from . import benchmark

__all__ = ["Tuning", "TuningError", "TIMED_PASSES", "SAMPLES", "SAMPLE_SECONDS", "default_candidates", "tune",
           "tuned_kernels"]

TIMED_PASSES: Final = benchmark.PASSES
"""The passes timed per candidate; ``grad_bias`` (a sum over dy) runs with the forward pass's winner."""
_ALL_PASSES: Final = (*TIMED_PASSES, "grad_bias")
SAMPLES: Final = 7
"""Samples per (strategy, pass); the median decides."""
SAMPLE_SECONDS: Final = 0.004
"""Each sample repeats its call for about this long (timer resolution, loop overhead)."""
_BUDGET: Final = 1.0  # seconds per (strategy, pass): only a pathologically slow candidate gets fewer samples
_FORMAT: Final = 1  # version of the record's layout; it enters the key
_UNIT_ROUNDOFF: Final = {"float32": pipeline.FLOAT32_UNIT_ROUNDOFF, "float64": 2.0**-53}


class TuningError(RuntimeError):
    """A candidate strategy disagrees with the NumPy reference: it is never timed, let alone chosen."""


@dataclass(frozen=True)
class Tuning:
    """The outcome of ``tune``: the winning strategy per pass and the median seconds per (strategy, pass).

    ``winners`` maps ``forward``, ``grad_input``, ``grad_weight`` and ``grad_bias`` to a strategy;
    ``seconds[strategy][pass]`` is the median over ``SAMPLES`` samples of one call with ``out=`` (the forward
    pass with a bias). ``record`` is the JSON file holding it in the build cache.
    """

    spec: ConvSpec
    dtype: str
    threads: int
    candidates: tuple[str, ...]
    winners: Mapping[str, str] = field(hash=False)
    seconds: Mapping[str, Mapping[str, float]] = field(hash=False)
    record: Optional[Path] = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "winners", MappingProxyType(dict(self.winners)))
        object.__setattr__(self, "seconds",
                           MappingProxyType({s: MappingProxyType(dict(row)) for s, row in self.seconds.items()}))

    def __str__(self) -> str:
        header = ["strategy", *(f"{name} µs" for name in TIMED_PASSES)]
        rows = [[strategy, *(f"{self.seconds[strategy][name] * 1e6:.1f}" + ("*" if self.winners[name] == strategy
                                                                             else " ") for name in TIMED_PASSES)]
                for strategy in self.candidates]
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = [f"{self.spec.describe()}; {self.dtype}, {self.threads} thread{'s' * (self.threads > 1)}"]
        lines += ["  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])
                  for row in [header, *rows]]
        lines.append(f"* fastest median of {SAMPLES}; grad_bias runs with {self.winners['grad_bias']!r}")
        return "\n".join(lines)


def default_candidates(spec: ConvSpec) -> tuple[str, ...]:
    """The vector strategies that can compute ``spec`` (``gemm`` and ``direct`` for dense layers, ``depthwise``
    for depthwise ones), plus ``unrolled`` and ``loops`` up to ``UNROLL_LIMIT`` multiply-adds (above it, derive
    + cse of ``unrolled`` alone takes longer than tuning is worth) and ``loops`` when no vector strategy can.

    >>> default_candidates(ConvSpec((3, 3), (2, 2))), default_candidates(ConvSpec((64, 64), (3, 3)))
    (('unrolled', 'loops', 'gemm', 'direct'), ('gemm', 'direct'))
    >>> default_candidates(ConvSpec((56, 56), (3, 3), padding=1, in_channels=96, out_channels=96, groups=96))
    ('depthwise',)
    """
    small = multiply_adds(spec) <= UNROLL_LIMIT
    able = [s for s in STRATEGIES if refusal(spec, s) is None]
    vector = [s for s in able if s in ("gemm", "direct", "depthwise", "pointwise")]
    return tuple(s for s in able if small or s in vector or (not vector and s == "loops"))


def _candidates(spec: ConvSpec, candidates: Optional[Sequence[str]]) -> tuple[str, ...]:
    if candidates is None:
        return default_candidates(spec)
    if isinstance(candidates, str):
        raise ValueError(f"candidates must be a sequence of strategy names, got the string {candidates!r}")
    names = list(candidates)
    unknown = [name for name in names if name not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown candidate strategies {unknown!r}; choose from {list(STRATEGIES)}")
    if not names:
        raise ValueError(f"candidates must name at least one of {list(STRATEGIES)}")
    for name in names:
        reason = refusal(spec, name)
        if reason:
            raise ValueError(f"candidate {name!r} cannot compute {spec.describe()}: {reason}")
    return tuple(s for s in STRATEGIES if s in names)  # one order, so that equal sets share a record


def _gamma(terms: int, unit: float) -> float:
    """gamma_m = m u / (1 - m u), the worst-case relative error of a floating-point sum of m terms."""
    return terms * unit / (1 - terms * unit) if terms * unit < 1 else math.inf


def _check_agreement(spec: ConvSpec, dtype: str, kernels: Mapping[str, ConvKernels],
                     a: Mapping[str, np.ndarray]) -> None:
    """Raise ``TuningError`` naming the first candidate whose result on ``a`` leaves the error bound of
    ``compile_conv``: gamma_m (sum of |terms|), plus the same for the float64 reference, per pass."""
    x, w, b, dy = (a[name].astype(np.float64) for name in ("x", "w", "b", "dy"))
    r, s = spec.kernel_size
    per_output = spec.batch * spec.output_size[0] * spec.output_size[1]
    expected = {  # pass -> (reference, sum of |terms| per entry, most terms of one entry)
        "forward": (conv2d_forward(spec, x, w, b), conv2d_forward(spec, abs(x), abs(w), abs(b)),
                    spec.in_channels * r * s + 1),
        "grad_input": (conv2d_grad_input(spec, dy, w), conv2d_grad_input(spec, abs(dy), abs(w)),
                       spec.out_channels * r * s),
        "grad_weight": (conv2d_grad_weight(spec, x, dy), conv2d_grad_weight(spec, abs(x), abs(dy)), per_output),
        "grad_bias": (dy.sum(axis=(0, 2, 3)), abs(dy).sum(axis=(0, 2, 3)), per_output),
    }
    for strategy, k in kernels.items():
        got = {"forward": k.forward(a["x"], a["w"], a["b"]), "grad_input": k.grad_input(a["dy"], a["w"]),
               "grad_weight": k.grad_weight(a["x"], a["dy"]), "grad_bias": k.grad_bias(a["dy"])}
        for name, (exact, magnitude, terms) in expected.items():
            bound = (_gamma(terms, _UNIT_ROUNDOFF[dtype]) + _gamma(terms, 2.0**-53)) * float(magnitude.max())
            try:
                np.testing.assert_allclose(got[name], exact, rtol=0, atol=bound)
            except AssertionError as error:
                raise TuningError(f"strategy {strategy!r} disagrees with the NumPy reference on {name} of "
                                  f"{spec.describe()} ({dtype}), beyond the float error bound {bound:.3g}; "
                                  f"it is not a valid candidate:{error}") from None


def _record_key(spec: ConvSpec, dtype: str, threads: int, candidates: tuple[str, ...], flags: tuple[str, ...],
                ldflags: tuple[str, ...]) -> str:
    # Timings belong to this CPU whatever the flags: the host's fingerprint enters even without -march=native.
    recipe = {"format": _FORMAT, "symconv": __version__, "spec": asdict(spec), "dtype": dtype, "threads": threads,
              "candidates": list(candidates), **flags_key(flags), "ldflags": list(ldflags),
              "environment": environment_key(), "machine": host_fingerprint(),
              "generator": pipeline.generator_fingerprint()}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _parse(data: Any, spec: ConvSpec, dtype: str, threads: int, candidates: tuple[str, ...], path: Path) -> Tuning:
    """The ``Tuning`` a record holds; ValueError saying what is wrong if it is not exactly what was asked for."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    expected = {"format": _FORMAT, "spec": json.loads(json.dumps(asdict(spec))), "dtype": dtype,
                "threads": threads, "candidates": list(candidates)}
    for name, value in expected.items():
        if data.get(name) != value:
            raise ValueError(f"field {name!r} is {data.get(name)!r}, expected {value!r}")
    winners, seconds = data.get("winners"), data.get("seconds")
    if not isinstance(winners, dict) or sorted(winners) != sorted(_ALL_PASSES):
        raise ValueError(f"field 'winners' must map each of {list(_ALL_PASSES)} to a strategy, got {winners!r}")
    for name, strategy in winners.items():
        if strategy not in candidates:
            raise ValueError(f"the winner of {name} is {strategy!r}, not one of the candidates {list(candidates)}")
    if not isinstance(seconds, dict) or sorted(seconds) != sorted(candidates):
        raise ValueError(f"field 'seconds' must have one entry per candidate {list(candidates)}, got {seconds!r}")
    for strategy, row in seconds.items():
        if not isinstance(row, dict) or sorted(row) != sorted(TIMED_PASSES) or not all(
                type(t) in (int, float) and math.isfinite(t) and t > 0 for t in row.values()):
            raise ValueError(f"seconds of {strategy!r} must map {list(TIMED_PASSES)} to times > 0, got {row!r}")
    return Tuning(spec, dtype, threads, candidates, winners, seconds, path)


def _read_record(path: Path, spec: ConvSpec, dtype: str, threads: int, candidates: tuple[str, ...]) -> Optional[Tuning]:
    """The record at ``path`` if it is whole and matches; None if missing; broken: a warning, then None."""
    try:
        text = read_private(path, 1 << 24).decode("utf-8")  # never a link, a FIFO or another user's file
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:  # unreadable, or not UTF-8
        problem = f"cannot be read ({error})"
    else:
        try:
            data = json.loads(text)
        except ValueError as error:
            problem = f"is not valid JSON ({error})"
        else:
            try:
                return _parse(data, spec, dtype, threads, candidates, path)
            except (ValueError, TypeError) as error:
                problem = f"is not a valid tuning record ({error})"
    warnings.warn(f"symconv.tuning.autotune: the tuning record {path} {problem}; timing the candidates again",
                  stacklevel=3)
    return None


def tune(spec: ConvSpec, dtype: str = "float32", *, threads: Optional[int] = None,
         candidates: Optional[Sequence[str]] = None, arch: str = "native", cflags: Optional[Sequence[str]] = None,
         cache_dir: Optional[os.PathLike[str] | str] = None, retune: bool = False) -> Tuning:
    """Time the candidate strategies of a layer once and return (and cache) the fastest per pass.

    ``candidates`` defaults to ``default_candidates(spec)``; ``threads``, ``arch``, ``cflags`` and
    ``cache_dir`` mean what they mean for ``compile_conv``, which builds (or loads) each candidate. Every
    candidate is first checked against the NumPy reference on seeded random data (``TuningError`` names one
    outside the float error bound), then the forward pass (with a bias), ``grad_input`` and ``grad_weight``,
    all with ``out=``, are sampled round-robin across candidates, ``SAMPLES`` samples of about
    ``SAMPLE_SECONDS`` each; the lowest median wins each pass. A record for the same inputs in the cache is
    returned without timing anything unless ``retune``; a broken one is reported with a warning and replaced.

    >>> tune(ConvSpec((3, 3), (2, 2)), candidates=["gemm", "bogus"])
    Traceback (most recent call last):
    ...
    ValueError: unknown candidate strategies ['bogus']; choose from ['unrolled', 'loops', 'gemm', 'direct', 'depthwise', 'pointwise']
    """
    if not isinstance(spec, ConvSpec):
        raise TypeError(f"spec must be a ConvSpec, got {type(spec).__name__}")
    dtype = check_dtype(dtype)
    chosen = _candidates(spec, candidates)
    flags, ldflags, count = pipeline.build_options(cflags, arch, threads)
    cache = check_root(cache_root(cache_dir))
    key = _record_key(spec, dtype, count, chosen, flags, ldflags)
    path = private_dir(cache, "tuned") / f"{key}.json"
    with locked(private_dir(cache, "locks") / f"tuned-{key[:40]}.lock"):
        found = None if retune else _read_record(path, spec, dtype, count, chosen)
        if found is not None:
            return found
        kernels = {s: pipeline.compile_conv(spec, dtype, s, cflags=cflags, arch=arch, threads=count,
                                           cache_dir=cache_dir) for s in chosen}
        a = benchmark.arguments(spec, dtype)
        _check_agreement(spec, dtype, kernels, a)
        medians = benchmark.measure({s: benchmark.symconv_calls(k, a) for s, k in kernels.items()},
                                    SAMPLES, SAMPLE_SECONDS, _BUDGET)
        seconds = {s: {name: medians[s, name] for name in TIMED_PASSES} for s in chosen}
        winners = {name: min(chosen, key=lambda s: seconds[s][name]) for name in TIMED_PASSES}
        winners["grad_bias"] = winners["forward"]
        record = {"format": _FORMAT, "spec": asdict(spec), "dtype": dtype, "threads": count,
                  "candidates": list(chosen), "winners": winners, "seconds": seconds}
        write_atomic(path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return Tuning(spec, dtype, count, chosen, winners, seconds, path)


def tuned_kernels(spec: ConvSpec, dtype: str = "float32", *, cflags: Optional[Sequence[str]] = None,
                  arch: str = "native", threads: Optional[int] = None,
                  cache_dir: Optional[os.PathLike[str] | str] = None, fuse_relu: bool = False) -> ConvKernels:
    """``tune``, then ``compile_conv(spec, dtype, tuning.winners, ...)``: one ``ConvKernels`` whose every pass
    runs its winner.

    ``.strategy``, ``.module`` and ``forward``/``forward_relu`` (compiled with ``fuse_relu``) are those of the
    forward pass's winner; ``grad_input``, ``grad_weight`` and ``grad_bias`` are the methods of their winners'
    own ``ConvKernels`` (whose closures keep their modules loaded; ``.strategies`` names each pass's). ``tune``
    with the same arguments returns the ``Tuning`` behind it. A second call with the same arguments returns the
    same object, unless a retune changed the winners.
    """
    tuning = tune(spec, dtype, threads=threads, arch=arch, cflags=cflags, cache_dir=cache_dir)
    return pipeline.compile_conv(spec, dtype, tuning.winners, cflags=cflags, arch=arch, threads=tuning.threads,
                                 cache_dir=cache_dir, fuse_relu=fuse_relu)
