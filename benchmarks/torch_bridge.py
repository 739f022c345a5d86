"""PyTorch bridge benchmark: a training step of a small CNN, its convolutions and the kernel suite's layers ->
a table of nn.Conv2d's and symconv.torch.Conv2d's times side by side and their ratio.

    python benchmarks/torch_bridge.py            # float32, batch 16
    python benchmarks/torch_bridge.py --quick    # fewer repeats, no ResNet layer
    python benchmarks/torch_bridge.py --float64

Both models run in the same process on the same data and the same initial parameters, alternately (one run of
each in turn), so load on the machine hits both alike; each figure is the median of the repeats after warm-up
(the first calls compile symconv's kernels). Both use PyTorch's default thread count and symconv's (the CPUs this process may use).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

import symconv.torch as st
from symconv.tuning.benchmark import KERNEL_SUITE


def cnn(conv: type, dtype: torch.dtype) -> nn.Module:
    """LeNet-sized: two 3x3 convolutions with ReLU and max pooling, then a classifier, on 3x16x16 images."""
    torch.manual_seed(0)
    return nn.Sequential(conv(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), conv(16, 32, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 10)).to(dtype)


def median_seconds(theirs: Callable[[], object], ours: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The median time of each, their runs interleaved so that load on the machine hits both alike."""
    for _ in range(3):
        theirs(), ours()  # warm-up: kernel compiles, allocator, caches
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for run, times in zip((theirs, ours), samples):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return statistics.median(samples[0]), statistics.median(samples[1])


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
    parser.add_argument("--quick", action="store_true", help="10 repeats instead of 50, no ResNet layer")
    parser.add_argument("--float64", action="store_true", help="float64 instead of float32")
    args = parser.parse_args()
    repeats = 10 if args.quick else 50
    dtype = torch.float64 if args.float64 else torch.float32
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 3, 16, 16, generator=g, dtype=dtype)
    labels = torch.randint(0, 10, (args.batch,), generator=g)
    rows = [("training step, small CNN", training_step(cnn(nn.Conv2d, dtype), x, labels),
             training_step(cnn(st.Conv2d, dtype), x, labels))]
    layers = [(f"CNN conv 3->16 3x3 pad 1, 16x16, N={args.batch}", (3, 16, 3, 1, 1, 1), (args.batch, 3, 16, 16)),
              (f"CNN conv 16->32 3x3 pad 1, 8x8, N={args.batch}", (16, 32, 3, 1, 1, 1), (args.batch, 16, 8, 8))]
    for name, spec in KERNEL_SUITE:  # the layers of `symconv bench`, at their own batch sizes
        if not (args.quick and spec.batch * spec.in_channels * spec.out_channels > 20_000):
            layers.append((f"suite: {name}", (spec.in_channels, spec.out_channels, spec.kernel_size, spec.stride,
                                              spec.padding, spec.dilation), spec.input_shape))
    for name, arguments, shape in layers:
        inputs = torch.randn(*shape, generator=g, dtype=dtype)
        pair = []
        for conv in (nn.Conv2d, st.Conv2d):
            torch.manual_seed(1)
            pair.append(layer_pass(conv(*arguments, dtype=dtype), inputs))
        rows.append((f"{name} fwd+bwd", *pair))
    print(f"{str(dtype).split('.')[1]}, torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"median of {repeats}; fwd+bwd = forward and the input, weight and bias gradients")
    print(f"{'what':<46} {'nn.Conv2d ms':>13} {'symconv ms':>11} {'symconv/nn':>11}")
    for name, theirs, ours in rows:
        t_nn, t_sc = median_seconds(theirs, ours, repeats)
        print(f"{name:<46} {t_nn * 1e3:>13.3f} {t_sc * 1e3:>11.3f} {t_sc / t_nn:>10.2f}x")


if __name__ == "__main__":
    main()
