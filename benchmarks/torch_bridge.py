"""PyTorch bridge benchmark: a training step of a small CNN, and each of its convolutions, symconv vs nn.Conv2d.

    python benchmarks/torch_bridge.py            # float32, batch 16
    python benchmarks/torch_bridge.py --quick    # fewer repeats

Both models run in the same process on the same data and the same initial parameters, alternately, so load
on the machine hits both alike; each figure is the median of the repeats after warm-up (the first calls compile
symconv's kernels). Both use PyTorch's default thread count and symconv's (the CPUs this process may use).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

import symconv.torch as st


def cnn(conv: type) -> nn.Module:
    """LeNet-sized: two 3x3 convolutions with ReLU and max pooling, then a classifier, on 3x16x16 images."""
    torch.manual_seed(0)
    return nn.Sequential(conv(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), conv(16, 32, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 10))


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        run()  # warm-up: kernel compiles, allocator, caches
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def training_step(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> Callable[[], object]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def step() -> object:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        return loss

    return step


def layer_pass(layer: nn.Module, x: torch.Tensor) -> Callable[[], object]:
    x = x.clone().requires_grad_()

    def run() -> object:
        y = layer(x)
        y.backward(torch.ones_like(y))
        return y

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="10 repeats instead of 50")
    args = parser.parse_args()
    repeats = 10 if args.quick else 50
    g = torch.Generator().manual_seed(0)
    x, labels = torch.randn(args.batch, 3, 16, 16, generator=g), torch.randint(0, 10, (args.batch,), generator=g)
    rows = [("training step, small CNN", training_step(cnn(nn.Conv2d), x, labels),
             training_step(cnn(st.Conv2d), x, labels))]
    for name, make, shape in (("conv 3->16 3x3 pad 1, 16x16", lambda c: c(3, 16, 3, padding=1), (3, 16, 16)),
                              ("conv 16->32 3x3 pad 1, 8x8", lambda c: c(16, 32, 3, padding=1), (16, 8, 8))):
        torch.manual_seed(1)
        inputs = torch.randn(args.batch, *shape, generator=g)
        rows.append((f"{name} fwd+bwd", layer_pass(make(nn.Conv2d), inputs), layer_pass(make(st.Conv2d), inputs)))
    print(f"float32, batch {args.batch}, torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"median of {repeats}")
    print(f"{'what':<40} {'nn.Conv2d ms':>13} {'symconv ms':>11} {'symconv/nn':>11}")
    for name, theirs, ours in rows:
        t_nn, t_sc = median_seconds(theirs, repeats), median_seconds(ours, repeats)
        print(f"{name:<40} {t_nn * 1e3:>13.3f} {t_sc * 1e3:>11.3f} {t_sc / t_nn:>10.2f}x")


if __name__ == "__main__":
    main()
