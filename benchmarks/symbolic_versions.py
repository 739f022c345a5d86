"""Two versions of symconv, side by side -> a table of derive + prove seconds and peak memory per layer.

    python benchmarks/symbolic_versions.py [--before REV] [--after REV] [--repeats N] [--quick]

Each version is a git revision (``--after`` defaults to the working tree). Every row runs in a fresh process per
version, the versions alternating, ``--repeats`` times; the table gives the fastest run of each and the ratio.
The machines this project runs on are shared and noisy: read the ratio, which both versions see alike.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS = {
    "32x32 input, 5x5 kernel, stride 2": "ConvSpec((32, 32), (5, 5), stride=2)",
    "64x64 input, 5x5 kernel, stride 2": "ConvSpec((64, 64), (5, 5), stride=2)",
    "128x128 input, 5x5 kernel, stride 2": "ConvSpec((128, 128), (5, 5), stride=2)",
    "32x32 input, 3x3 kernel, 4 -> 4 channels": "ConvSpec((32, 32), (3, 3), in_channels=4, out_channels=4)",
}

# One measurement in a fresh interpreter: the peak RSS growth is then this row's alone.
MEASURE = """
import json, resource, sys, time
from symconv import ConvSpec, derive, prove
spec = {spec}
kwargs = {{}}
try:
    from symconv.symbolic.budget import estimate
    kwargs = {{"max_terms": estimate(spec).terms}}
except ImportError:  # a version before the term limits
    pass
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
d = derive(spec, **kwargs)
derived = time.perf_counter()
holds = prove(d, **kwargs).holds
done = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(json.dumps({{"derive": derived - start, "prove": done - derived, "peak_mb": peak / 1024, "holds": holds}}))
"""


def checkout(revision: str, into: Path) -> Path:
    """The package at ``revision`` -> a folder to put first on PYTHONPATH."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "symconv"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def measure(path: Path, spec: str) -> dict:
    """One derive + prove of ``spec`` with the package under ``path`` -> its times, peak memory and verdict."""
    # cwd outside the repository, else the interpreter would import the working tree's package first.
    done = subprocess.run([sys.executable, "-c", MEASURE.format(spec=spec)], env={"PYTHONPATH": str(path)},
                          cwd=tempfile.gettempdir(), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"error: {spec} failed under {path}: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="87d3a92^1", help="git revision (default: the commit before issue 18)")
    parser.add_argument("--after", default=None, help="git revision (default: the working tree)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the 32x32 and 64x64 rows only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        before = checkout(args.before, Path(scratch, "before").resolve())
        after = checkout(args.after, Path(scratch, "after")) if args.after else ROOT
        print("| layer | before: derive + prove s | after: derive + prove s | speed-up | before: peak MB | after: peak MB |")
        print("|---|---|---|---|---|---|")
        for name, spec in list(LAYERS.items())[: 2 if args.quick else None]:
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(args.repeats):
                for label, path in (("before", before), ("after", after)):
                    runs[label].append(measure(path, spec))
            best = {label: min(r, key=lambda m: m["derive"] + m["prove"]) for label, r in runs.items()}
            if not all(b["holds"] for b in best.values()):
                raise SystemExit(f"error: a proof of {name} failed")
            total = {label: b["derive"] + b["prove"] for label, b in best.items()}
            cells = [f"{b['derive']:.2f} + {b['prove']:.2f} = {total[label]:.2f}" for label, b in best.items()]
            print(f"| {name} | {cells[0]} | {cells[1]} | {total['before'] / total['after']:.1f}x "
                  f"| {best['before']['peak_mb']:.0f} | {best['after']['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
