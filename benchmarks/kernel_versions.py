"""Two versions of symconv's compiled kernels, side by side -> per layer and pass, the time of each and the ratio.

    python benchmarks/kernel_versions.py --before REV [--after REV] [--strategy direct] [--threads 1] [--rounds 3]

Each version is a git revision (``--after`` defaults to the working tree), compiled into its own cache. Every
(layer, version) is timed in a fresh process, the versions alternating for ``--rounds`` rounds; the table gives
the fastest median of each. The machines are shared and noisy: read the ratio, which both versions see alike.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# One timing in a fresh interpreter: each pass bound once (checked once), then called in a loop.
MEASURE = """
import json, sys, timeit
import numpy as np
from symconv import compile_conv
from symconv.tuning.benchmark import KERNEL_SUITE
name, strategy, dtype, threads = sys.argv[1:5]
spec = dict(KERNEL_SUITE)[name]
k = compile_conv(spec, dtype, strategy).with_threads(int(threads))
rng = np.random.default_rng(0)
x, w, b, dy = (rng.uniform(-1, 1, s).astype(dtype) for s in
               (spec.input_shape, spec.weight_shape, (spec.out_channels,), spec.output_shape))
calls = {
    "forward": k.bind("forward", x, w, b, out=np.empty(spec.output_shape, dtype)),
    "grad_input": k.bind("grad_input", dy, w, out=np.empty(spec.input_shape, dtype)),
    "grad_weight": k.bind("grad_weight", x, dy, out=np.empty(spec.weight_shape, dtype)),
}
result = {}
for family, call in calls.items():
    number = max(1, int(0.05 / min(timeit.repeat(call, number=1, repeat=3))))
    result[family] = sorted(timeit.repeat(call, number=number, repeat=7))[3] / number
print(json.dumps(result))
"""


def checkout(revision: str, into: Path) -> Path:
    """The package and templates at ``revision`` -> a folder to put first on PYTHONPATH."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "symconv", "templates"],
                             capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def measure(path: Path, cache: Path, layer: str, args: argparse.Namespace) -> dict[str, float]:
    env = {"PYTHONPATH": str(path), "SYMCONV_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", MEASURE, layer, args.strategy, args.dtype, str(args.threads)],
                          env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise SystemExit(f"error: {layer} failed under {path}: {lines[-1]}")
    return json.loads(done.stdout)


def main() -> None:
    from symconv.tuning.benchmark import KERNEL_SUITE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision")
    parser.add_argument("--after", default=None, help="git revision (default: the working tree)")
    parser.add_argument("--strategy", default="direct")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated parts of layer names")
    args = parser.parse_args()
    layers = [n for n, _ in KERNEL_SUITE if not args.only or any(p in n for p in args.only.split(","))]
    with tempfile.TemporaryDirectory() as scratch:
        before = checkout(args.before, Path(scratch, "before"))
        after = checkout(args.after, Path(scratch, "after")) if args.after else ROOT
        print(f"{args.strategy}, {args.dtype}, {args.threads} thread(s); median µs per call, fastest of "
              f"{args.rounds} rounds")
        print("| layer | pass | before µs | after µs | after / before |")
        print("|---|---|---|---|---|")
        for layer in layers:
            best: dict[str, dict[str, float]] = {"before": {}, "after": {}}
            for _ in range(args.rounds):
                for label, path in (("before", before), ("after", after)):
                    for family, t in measure(path, Path(scratch, "cache-" + label), layer, args).items():
                        best[label][family] = min(t, best[label].get(family, t))
            for family in best["before"]:
                b, a = best["before"][family], best["after"][family]
                print(f"| {layer} | {family} | {1e6 * b:.1f} | {1e6 * a:.1f} | {a / b:.3f} |", flush=True)


if __name__ == "__main__":
    main()
