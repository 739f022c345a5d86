"""Training: a ``TrainConfig`` -> a LeNet-style CNN trained by SGD in generated C on scikit-learn's 8x8 digits -> ``TrainResult``.

The digits (1797 images of 8x8 pixels, shipped inside scikit-learn, nothing downloaded) are split once, seeded,
into a training and a held-out test set. Every forward and backward pass runs in ``CompiledNetwork``'s kernels.
scikit-learn is an optional extra (``pip install 'symconv[examples]'``); without it ``load_digits_split`` raises
``MissingExtra`` with that advice.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Callable, Optional, Sequence, TextIO

import numpy as np

from .codegen.plan import check_dtype
from .console import Parser, natural, positive, positive_float, run_command
from .symbolic.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU
from .symbolic.losses import CrossEntropyLoss
from .symbolic.network import Network

__all__ = ["MissingExtra", "TrainConfig", "TrainResult", "Split", "load_digits_split", "lenet_digits", "train",
           "progress_printer", "add_train_flags", "run_from_args"]


class MissingExtra(ImportError):
    """An optional dependency is missing; the message says what to install."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one run; the defaults reach >= 97% test accuracy (see examples/train_digits.py).

    ``threads`` is how many threads each convolution may use: one by default, since these layers are tiny
    and a second OpenMP thread on a busy 2-core machine made a step 8x slower, not faster.

    >>> TrainConfig().epochs, TrainConfig(epochs=2).batch
    (40, 32)
    """

    epochs: int = 40
    batch: int = 32
    lr: float = 0.1
    seed: int = 0
    test_fraction: float = 0.2
    dtype: str = "float32"
    threads: int = 1

    def __post_init__(self) -> None:
        # One message per field, naming it as the flag of ``symconv train`` does.
        object.__setattr__(self, "dtype", check_dtype(self.dtype))
        for name in ("epochs", "batch", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise TypeError(f"{name} must be an integer, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, Integral) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        for name in ("lr", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Real):
                raise TypeError(f"{name} must be a number, got {value!r}")
        with np.errstate(over="ignore"):  # nan > 0 is False, but inf > 0 is True; 1e40 is inf in float32
            finite = math.isfinite(self.lr) and bool(np.isfinite(np.dtype(self.dtype).type(self.lr)))
        if not (finite and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0 (in {self.dtype}), got {self.lr!r}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction must be between 0 and 1, got {self.test_fraction!r}")


@dataclass(frozen=True)
class Split:
    """Images (N, 1, 8, 8), standardized, and integer labels, for training and for the held-out test."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


@dataclass(frozen=True)
class TrainResult:
    """Mean training loss per epoch, final accuracies on both sets, and the wall time of the training loop."""

    epoch_losses: tuple[float, ...]
    train_accuracy: float
    test_accuracy: float
    seconds: float


def load_digits_split(test_fraction: float = 0.2, seed: int = 0, dtype: str = "float32") -> Split:
    """scikit-learn's digits, shuffled with ``seed`` and split; pixels standardized with the training set's mean
    and standard deviation (the test set's statistics stay unseen)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise MissingExtra("training on the digits needs scikit-learn, an optional extra: "
                           "pip install 'symconv[examples]' (or pip install scikit-learn)") from error
    digits = load_digits()
    images, labels = digits.images[:, None, :, :], digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_test = int(round(test_fraction * len(labels)))
    test, train_ = order[:n_test], order[n_test:]
    mean, std = images[train_].mean(), images[train_].std()

    def scaled(chosen: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((images[chosen] - mean) / std, dtype=dtype)

    return Split(scaled(train_), labels[train_], scaled(test), labels[test])


def lenet_digits(batch: int) -> Network:
    """The LeNet-style CNN for 8x8 digits: two conv-ReLU-maxpool blocks, then two dense layers.

    >>> print(lenet_digits(32).describe().splitlines()[-2])
    9: Dense(10) -> (32, 10)
    """
    return Network((Conv2d(8, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(16, 3, padding=1), ReLU(), MaxPool2d(2),
                    Flatten(), Dense(64), ReLU(), Dense(10), CrossEntropyLoss()), (batch, 1, 8, 8))


Progress = Callable[[int, int, int, int, float], None]
"""Called after every step with (epoch, epochs, step, steps per epoch, mean loss so far this epoch)."""


def progress_printer(stream: Optional[TextIO] = None, width: int = 30) -> Progress:
    """A text progress bar on ``stream`` (default: ``sys.stdout`` at call time): redrawn in place on a terminal,
    one line per finished epoch elsewhere.

    >>> import io
    >>> out = io.StringIO()
    >>> progress_printer(out, width=4)(1, 2, 3, 3, 0.25)
    >>> print(out.getvalue(), end="")
    epoch   1/2 [####]    3/3 loss 0.2500
    """
    stream = sys.stdout if stream is None else stream
    live = stream.isatty()

    def show(epoch: int, epochs: int, step: int, steps: int, loss: float) -> None:
        if not live and step < steps:
            return
        done = width * step // steps
        line = f"epoch {epoch:>3}/{epochs} [{'#' * done}{'.' * (width - done)}] {step:>4}/{steps} loss {loss:.4f}"
        stream.write(("\r" + line if live else line) + ("\n" if step == steps else ""))
        stream.flush()

    return show


def _accuracy(net: object, x: np.ndarray, y: np.ndarray) -> float:
    logits = net.predict(x)  # type: ignore[attr-defined]
    return float(np.mean(np.argmax(logits, axis=1) == y))


def train(config: TrainConfig = TrainConfig(), progress: Optional[Progress] = None, *,
          split: Optional[Split] = None, **compile_options: object) -> TrainResult:
    """Train ``lenet_digits`` by plain SGD; the last incomplete batch of each epoch is dropped (shapes are fixed).

    ``compile_options`` go to ``compile_network`` (``cflags``, ``cache_dir``, ...).
    """
    from .pipeline import compile_network  # imported on use: it compiles C

    data = load_digits_split(config.test_fraction, config.seed, config.dtype) if split is None else split
    options = {"threads": config.threads, **compile_options}
    net = compile_network(lenet_digits(config.batch), config.dtype, seed=config.seed, **options)  # type: ignore[arg-type]
    rng = np.random.default_rng(config.seed + 1)
    steps = len(data.train_y) // config.batch
    if steps < 1:
        raise ValueError(f"batch {config.batch} is larger than the training set ({len(data.train_y)} samples)")
    losses = []
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(len(data.train_y))
        total = 0.0
        for step in range(steps):
            chosen = order[step * config.batch:(step + 1) * config.batch]
            total += net.step(np.ascontiguousarray(data.train_x[chosen]), data.train_y[chosen], config.lr)
            if progress is not None:
                progress(epoch, config.epochs, step + 1, steps, total / (step + 1))
        losses.append(total / steps)
    seconds = time.perf_counter() - start
    return TrainResult(tuple(losses), _accuracy(net, data.train_x, data.train_y),
                       _accuracy(net, data.test_x, data.test_y), seconds)


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``symconv train``; defaults are ``TrainConfig``'s."""
    defaults = TrainConfig()
    parser.add_argument("--epochs", type=positive, default=defaults.epochs, help=f"passes over the data (default {defaults.epochs})")
    parser.add_argument("--batch", type=positive, default=defaults.batch, help=f"samples per SGD step (default {defaults.batch})")
    parser.add_argument("--lr", type=positive_float, default=defaults.lr, help=f"learning rate (default {defaults.lr})")
    parser.add_argument("--seed", type=natural, default=defaults.seed, help="seed of the split, init and shuffles (default 0)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=defaults.dtype, help="default float32")
    parser.add_argument("--threads", type=positive, default=defaults.threads, help="threads per convolution (default 1)")


def run_from_args(args: argparse.Namespace, stream: Optional[TextIO] = None) -> int:
    """Run ``symconv train``: progress, then the accuracies; ValueError or MissingExtra for bad input."""
    stream = sys.stdout if stream is None else stream
    config = TrainConfig(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed, dtype=args.dtype,
                         threads=args.threads)
    split = load_digits_split(config.test_fraction, config.seed, config.dtype)  # first: it may lack scikit-learn
    stream.write(f"LeNet-style CNN on scikit-learn's 8x8 digits ({len(split.train_y)} training, {len(split.test_y)} "
                 f"test images), {config.dtype}, SGD lr {config.lr}, batch {config.batch}:\n")
    stream.write(lenet_digits(config.batch).describe() + "\n")
    result = train(config, progress_printer(stream), split=split)
    stream.write(f"trained {config.epochs} epochs in {result.seconds:.1f} s; train accuracy "
                 f"{100 * result.train_accuracy:.2f}%, test accuracy {100 * result.test_accuracy:.2f}% (held-out "
                 f"{config.test_fraction:.0%})\n")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m symconv.train``: the same as ``symconv train``."""
    parser = Parser(prog="symconv train", description="train a CNN on 8x8 digits in generated C")
    add_train_flags(parser)
    return run_command(lambda: run_from_args(parser.parse_args(argv)), program="symconv train")


if __name__ == "__main__":
    sys.exit(main())
