"""The kernel benchmark as a script: symconv against PyTorch CPU (if importable) and NumPy, per layer and pass.

    python benchmarks/kernels.py                 # float32, 1 and 2 threads, every layer
    python benchmarks/kernels.py --quick         # under a minute
    python benchmarks/kernels.py --float64 --threads 1 --only textbook,resnet

The same table as ``symconv bench``; see ``symconv.tuning.benchmark.kernel_rows`` for how it is measured.
"""

from __future__ import annotations

import argparse
import sys

from symconv.tuning.benchmark import add_kernel_flags, run_kernel_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_kernel_flags(parser)
    parser.add_argument("--quick", action="store_true", help="3 repeats of short samples")
    print(run_kernel_benchmark(parser.parse_args()))
    sys.exit(0)
