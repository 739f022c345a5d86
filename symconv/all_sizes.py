"""All sizes on the command line: ``prove --all-sizes`` flags -> the theorems proved; a certificate -> re-checked.

The layer flags that are given are fixed in the theorem, the others stay symbolic. Usage mistakes raise
``ValueError``, which the CLI reports in one line; z3 and isl are imported only when a proof runs.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_all_sizes_flags", "general_options", "prove_all_sizes", "recheck_certificate"]


def add_all_sizes_flags(prove_cmd: argparse.ArgumentParser) -> None:
    """The flags of ``symconv prove`` that choose and tune the proofs for every size."""
    g = prove_cmd.add_argument_group("for every size (--all-sizes)")
    g.add_argument("--all-sizes", action="store_true",
                   help="prove the identities for symbolic sizes: the layer flags given are fixed, the others symbolic")
    g.add_argument("--axes", type=int, choices=(1, 2), default=2, help="spatial axes of the theorem (default 2)")
    g.add_argument("--one-channel", action="store_true", help="one image, channel and filter (no channel sums)")
    g.add_argument("--solvers", default="z3,isl", metavar="LIST",
                   help="z3, isl or both (default z3,isl; isl decides the obligations affine in the sizes)")
    g.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per solver run (default 10)")
    g.add_argument("--certificate", metavar="DIR", help="write the certificate (JSON and solver files) to DIR")


def general_options(args: argparse.Namespace) -> dict[str, Any]:
    """The sizes given on the command line are fixed in the theorem, the others stay symbolic."""
    def axes_of(pair: Any) -> Any:
        return None if pair is None else (pair[0],) if args.axes == 1 else pair

    if args.groups is not None or args.no_bias or isinstance(args.padding, str) or (
            args.padding is not None and not isinstance(args.padding[0], int)):
        raise ValueError("prove --all-sizes covers dense layers with a bias and per-axis padding: leave out "
                         "--groups, --no-bias and --padding same/valid/per side (prove them per shape)")
    counts = {"batch": args.batch, "in_channels": args.channels, "out_channels": args.filters}
    return dict(axes=args.axes, channels=not args.one_channel, flip=args.convolution, input_size=axes_of(args.input),
                kernel_size=axes_of(args.kernel), stride=axes_of(args.stride), padding=axes_of(args.padding),
                dilation=axes_of(args.dilation), **({} if args.one_channel else counts))


def prove_all_sizes(args: argparse.Namespace) -> int:
    """``prove --all-sizes``: the report printed (and the certificate written); 0 iff every identity is proved."""
    from .proofs.general import prove_general  # imported on use: it loads z3 and isl
    from .proofs.general.certificate import write_certificate

    if args.one_channel and any(v is not None for v in (args.batch, args.channels, args.filters)):
        raise ValueError("--one-channel fixes one image, channel and filter: leave out --batch, --channels, --filters")
    solvers = tuple(s for s in args.solvers.split(",") if s)
    report = prove_general(**general_options(args), solvers=solvers, timeout=args.timeout)
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

    result = recheck(args.folder)
    print(result)
    return 0 if result.holds else 1
