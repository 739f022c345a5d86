"""All sizes on the command line: ``prove --all-sizes`` flags -> the theorems proved; a certificate -> re-checked.

The layer flags that are given are fixed in the theorem, the others stay symbolic. Usage mistakes raise
``ValueError``, which the CLI reports in one line; z3 and isl are imported only when a proof runs.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .console import positive_float

__all__ = ["add_all_sizes_flags", "general_options", "layer_options", "prove_all_sizes", "recheck_certificate"]

LAYERS = ("conv", "relu", "maxpool", "avgpool", "dense", "mse", "crossentropy")
CONV_ONLY = {"dilation": "--dilation", "batch": "--batch", "channels": "--channels", "filters": "--filters",
             "convolution": "--convolution", "one_channel": "--one-channel", "per_side": "--per-side",
             "grouped": "--grouped", "groups": "--groups"}


def add_all_sizes_flags(prove_cmd: argparse.ArgumentParser) -> None:
    """The flags of ``symconv prove`` that choose and tune the proofs for every size."""
    g = prove_cmd.add_argument_group("for every size (--all-sizes)")
    g.add_argument("--all-sizes", action="store_true",
                   help="prove the identities for symbolic sizes: the layer flags given are fixed, the others symbolic")
    g.add_argument("--layer", choices=LAYERS, default="conv",
                   help="the layer whose theorems to prove (default conv; relu, maxpool, avgpool, dense, mse, "
                        "crossentropy: "
                        "--input, and for pooling --kernel (the window), --stride, --padding fix sizes)")
    g.add_argument("--axes", type=int, choices=(1, 2), default=2, help="spatial axes of the theorem (default 2)")
    g.add_argument("--one-channel", action="store_true", help="one image, channel and filter (no channel sums)")
    g.add_argument("--grouped", action="store_true",
                   help="G groups, G symbolic (--groups fixes G); channels and filters then run within a group")
    g.add_argument("--per-side", action="store_true",
                   help="the padding after the input (bottom, right) a size of its own, as 'same' padding makes it")
    g.add_argument("--solvers", default="z3,isl", metavar="LIST",
                   help="z3, isl or both (default z3,isl; isl decides the obligations affine in the sizes)")
    g.add_argument("--timeout", type=positive_float, default=10.0, metavar="SECONDS", help="per solver run (default 10)")
    g.add_argument("--certificate", metavar="DIR", help="write the certificate (JSON and solver files) to DIR")


def general_options(args: argparse.Namespace) -> dict[str, Any]:
    """The sizes given on the command line are fixed in the theorem, the others stay symbolic."""
    def axes_of(pair: Any) -> Any:
        return None if pair is None else (pair[0],) if args.axes == 1 else pair

    if args.no_bias or isinstance(args.padding, str):
        raise ValueError("prove --all-sizes covers layers with a bias and numeric padding: leave out "
                         "--no-bias and --padding same/valid (prove them per shape)")
    counts = {"batch": args.batch, "in_channels": args.channels, "out_channels": args.filters}
    grouping: dict[str, Any] = {}
    if args.groups is not None or args.grouped:
        if args.one_channel:
            raise ValueError("--groups and --grouped need channels: leave out --one-channel")
        grouping = {"grouped": True, "groups": args.groups}
        for key, flag in (("in_channels", "--channels"), ("out_channels", "--filters")):
            given = counts[key]
            if given is None:
                continue
            if args.groups is None:
                raise ValueError(f"{flag} with --grouped needs --groups (the theorem counts each group's channels)")
            if given % args.groups:
                raise ValueError(f"{flag} {given} is not divisible by --groups {args.groups}")
            counts[key] = given // args.groups
    padding, sides = args.padding, {}
    if padding is not None and not isinstance(padding[0], int):  # T,B,L,R: both sides fixed
        padding, sides = tuple(b for b, _ in padding), {"per_side": True, "pad_end": axes_of(tuple(e for _, e in padding))}
    elif args.per_side:
        sides = {"per_side": True}
    return dict(axes=args.axes, channels=not args.one_channel, flip=args.convolution, input_size=axes_of(args.input),
                kernel_size=axes_of(args.kernel), stride=axes_of(args.stride), padding=axes_of(padding),
                dilation=axes_of(args.dilation), **sides, **grouping, **({} if args.one_channel else counts))


def layer_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--layer relu|maxpool|avgpool|dense|mse``: the sizes given are fixed (the counts stay symbolic)."""
    given = [flag for name, flag in CONV_ONLY.items() if getattr(args, name) not in (None, False)]
    if given:
        raise ValueError(f"{', '.join(given)} apply to convolutions only, not to --layer {args.layer}")

    def axes_of(pair: Any) -> Any:
        return None if pair is None else (pair[0],) if args.axes == 1 else pair

    return dict(layer=args.layer, axes=args.axes, input_size=axes_of(args.input), kernel_size=axes_of(args.kernel),
                stride=axes_of(args.stride), padding=axes_of(args.padding))


def prove_all_sizes(args: argparse.Namespace) -> int:
    """``prove --all-sizes``: the report printed (and the certificate written); 0 iff every identity is proved."""
    from .proofs.general import prove_general  # imported on use: it loads z3 and isl
    from .proofs.general.certificate import write_certificate
    from .proofs.general.layer_report import prove_general_layer

    if args.one_channel and any(v is not None for v in (args.batch, args.channels, args.filters)):
        raise ValueError("--one-channel fixes one image, channel and filter: leave out --batch, --channels, --filters")
    solvers = tuple(s for s in args.solvers.split(",") if s)
    if args.layer == "conv":
        report = prove_general(**general_options(args), solvers=solvers, timeout=args.timeout)
    else:
        report = prove_general_layer(**layer_options(args), solvers=solvers, timeout=args.timeout)
    print(report)
    print(f"{sum(p.holds for p in report.proofs)} of {len(report.proofs)} identities proved for every size "
          f"in {report.seconds:.1f} s")
    if args.certificate is not None:
        try:
            print(f"certificate: {write_certificate(report, args.certificate)}")
        except OSError as error:
            raise ValueError(f"cannot write {args.certificate}: {error.strerror}") from None
    return 0 if report.holds else 1


def recheck_certificate(args: argparse.Namespace) -> int:
    """``symconv recheck DIR``: the certificate re-derived and re-run; 0 iff it is genuine and proves every identity."""
    from .proofs.general.certificate import recheck

    if not os.path.isdir(args.folder):  # nothing to recheck is bad input (2), not a refuted certificate (1)
        raise ValueError(f"{args.folder} is not a folder: give the DIR that prove --all-sizes --certificate wrote")
    result = recheck(args.folder)
    print(result)
    return 0 if result.holds else 1
