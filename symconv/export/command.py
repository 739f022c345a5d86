"""The ``symconv export`` command: parsed flags and a network (with its parameters, if any) -> the library on disk.

``cli`` chooses the network (the digits CNN of ``symconv train``, or an ONNX model) and calls ``run_export``; the
flags are added here, as ``train.add_train_flags`` does for ``symconv train``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Mapping, Optional, TextIO

import numpy as np

from ..console import natural, positive, positive_float
from ..symbolic.network import Network
from .write import export_network

__all__ = ["add_export_flags", "run_export"]


def add_export_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of ``symconv export``."""
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write")
    parser.add_argument("--name", default="net", help="C prefix of the files and functions (default net)")
    parser.add_argument("--onnx", metavar="MODEL.onnx", help="the network and its weights from ONNX (default: the "
                        "digits CNN of symconv train)")
    parser.add_argument("--input-shape", metavar="N,C,H,W", help="with --onnx: pins the model's symbolic dimensions")
    parser.add_argument("--batch", type=positive, default=32, help="the digits CNN's batch (default 32)")
    parser.add_argument("--params", metavar="FILE.npz", help='parameters keyed as PyTorch\'s ("0.weight", ...)')
    parser.add_argument("--weights", choices=("params", "none"), default="params",
                        help="none: no const weights, train from <name>_init_params (default params)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default float32")
    parser.add_argument("--strategy", choices=("loops", "unrolled"),
                        help="of the convolutions (default: unrolled for small layers, else loops)")
    parser.add_argument("--test-steps", type=natural, default=3, metavar="K",
                        help="SGD steps of the host test (default 3; 0: no host test)")
    parser.add_argument("--lr", type=positive_float, default=0.1, help="learning rate of the host test (default 0.1)")
    parser.add_argument("--seed", type=natural, default=0, help="of the initial parameters and test data (default 0)")
    parser.add_argument("--prove", action="store_true", help="prove every layer on its shape first")


def run_export(args: argparse.Namespace, network: Network, params: Optional[Mapping[str, np.ndarray]],
               stream: Optional[TextIO] = None) -> int:
    """Export ``network``; print the paths written. ``--params`` replaces ``params``; ValueError for bad input."""
    stream = sys.stdout if stream is None else stream
    if args.params:
        with np.load(args.params) as saved:
            params = {key: saved[key] for key in saved.files}
    paths = export_network(network, args.output, args.name, params=params, seed=args.seed, dtype=args.dtype,
                           strategy=args.strategy, weights=args.weights != "none", test_steps=args.test_steps,
                           learning_rate=args.lr, prove=args.prove)
    stream.write("".join(f"{path}\n" for path in paths))
    return 0
