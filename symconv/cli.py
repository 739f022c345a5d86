"""Command line: ``symconv <command> <spec flags>`` -> the derivation, proofs, LaTeX or kernels on stdout or disk.

Bad arguments, impossible shapes, layers over the term limit and what the system refuses (a full disk, a path
that is a directory, no permission) exit with status 2 and one line naming the problem, never a traceback;
Ctrl-C exits with status 130 and one line; a closed stdout ends quietly (``symconv.console.run_command``
does all of that for every command, and its flag types check every value). Long derivations and proofs draw a
progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Callable, Sequence

from .all_sizes import add_all_sizes_flags, prove_all_sizes, recheck_certificate
from .build.cache import CompilerError
from .build.safety import UnsafeCacheError
from .console import Parser, UsageError, integer, natural, positive, run_command
from .export.command import add_export_flags
from .printing.text import derivation_text
from .progress import ProgressBar, clear
from .proofs.conv import prove
from .symbolic.derive import Derivation, derive
from .symbolic.spec import ConvSpec
from .train import add_train_flags
from .tuning.autotune import TuningError
from .tuning.benchmark import add_kernel_flags

__all__ = ["main", "parse_pair", "spec_from_args", "UsageError"]


def parse_pair(text: str) -> tuple[int, int]:
    """``"3x3"`` or ``"3"`` -> (3, 3); ``"2x1"`` -> (2, 1).

    >>> parse_pair("6x4"), parse_pair("2")
    ((6, 4), (2, 2))
    """
    parts = text.lower().split("x")
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected N or HxW with integers, got {text!r}")
    values = [integer(p) for p in parts]  # ASCII digits within 64 bits, or one line naming the flag
    return (values[0], values[-1])


def parse_padding(text: str) -> object:
    """``--padding``: ``"same"``, ``"valid"``, ``P``, ``PHxPW`` or per side ``TOP,BOTTOM,LEFT,RIGHT``.

    >>> parse_padding("1x2"), parse_padding("0,1,0,1"), parse_padding("same")
    ((1, 2), ((0, 1), (0, 1)), 'same')
    """
    if text.strip().lower() in ("same", "valid"):
        return text.strip().lower()
    if "," in text:
        parts = text.split(",")
        if len(parts) != 4:
            raise argparse.ArgumentTypeError(f"expected TOP,BOTTOM,LEFT,RIGHT with integers, got {text!r}")
        top, bottom, left, right = (integer(p) for p in parts)  # ASCII digits within 64 bits
        return ((top, bottom), (left, right))
    try:
        return parse_pair(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected P, PHxPW, TOP,BOTTOM,LEFT,RIGHT, same or valid, got {text!r}") from None


SPEC_DEFAULTS = {"input": (3, 3), "kernel": (2, 2), "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1),
                 "channels": 1, "filters": 1, "batch": 1,
                 "groups": 1}
"""The layer of a command given no flags. The flags default to None so that ``prove --all-sizes`` can tell a
size given (fixed in the theorem) from one left out (symbolic)."""


def add_spec_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that describe one layer, shared by every command."""
    g = parser.add_argument_group("layer")
    g.add_argument("--input", type=parse_pair, metavar="HxW", help="input size (default 3x3)")
    g.add_argument("--kernel", type=parse_pair, metavar="RxS", help="kernel size (default 2x2)")
    g.add_argument("--stride", type=parse_pair, metavar="S|SHxSW", help="stride (default 1)")
    g.add_argument("--padding", type=parse_padding, metavar="P|PHxPW|T,B,L,R|same|valid",
                   help="zero padding: per axis, per side (top,bottom,left,right), or same/valid (default 0)")
    g.add_argument("--dilation", type=parse_pair, metavar="D|DHxDW", help="dilation (default 1)")
    g.add_argument("--channels", type=positive, metavar="C", help="input channels (default 1)")
    g.add_argument("--filters", type=positive, metavar="K", help="output channels (default 1)")
    g.add_argument("--batch", type=positive, metavar="N", help="images per batch (default 1)")
    g.add_argument("--groups", type=positive, metavar="G", help="channel groups, G = C for depthwise (default 1)")
    g.add_argument("--no-bias", action="store_true", help="a layer without bias: no + b and no dE/db, as the textbooks")
    g.add_argument("--convolution", action="store_true", help="true convolution (kernel rotated 180 degrees)")
    g.add_argument("--zero-based", action="store_true", help="name entries from 0 (X_00) instead of 1 (X_11)")


def spec_from_args(args: argparse.Namespace) -> ConvSpec:
    try:
        return _spec(args)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _given(args: argparse.Namespace, name: str):
    value = getattr(args, name)
    return SPEC_DEFAULTS[name] if value is None else value


def _spec(args: argparse.Namespace) -> ConvSpec:
    return ConvSpec(
        input_size=_given(args, "input"),
        kernel_size=_given(args, "kernel"),
        stride=_given(args, "stride"),
        padding=_given(args, "padding"),
        dilation=_given(args, "dilation"),
        in_channels=_given(args, "channels"),
        out_channels=_given(args, "filters"),
        batch=_given(args, "batch"),
        flip=args.convolution,
        groups=_given(args, "groups"),
        bias=not args.no_bias,
    )


def _index_base(args: argparse.Namespace) -> int:
    return 0 if args.zero_based else 1


def _derive(args: argparse.Namespace) -> Derivation:
    return derive(spec_from_args(args), _index_base(args), max_terms=args.max_terms, progress=args.progress)


def _cmd_derive(args: argparse.Namespace) -> int:
    print(derivation_text(_derive(args), max_entries=args.max_entries))
    return 0


def _cmd_prove(args: argparse.Namespace) -> int:
    if args.all_sizes:
        try:
            return prove_all_sizes(args)
        except ValueError as error:
            raise UsageError(str(error)) from None
    for flag, given in (("--certificate", args.certificate is not None), ("--per-side", args.per_side),
                        ("--grouped", args.grouped)):
        if given:
            raise UsageError(f"{flag} needs --all-sizes")
    report = prove(_derive(args), max_terms=args.max_terms, progress=args.progress)
    print(report)
    return 0 if report.holds else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    d = _derive(args)
    print(derivation_text(d, max_entries=args.max_entries))
    print()
    report = prove(d, max_terms=args.max_terms, progress=args.progress)
    print(report)
    print()
    from .demo import numeric_comparison  # imported on use: it compiles C

    table, kernels_match = numeric_comparison(d, max_rows=args.max_entries)
    print(table)
    return 0 if report.holds and kernels_match else 1


def _cmd_bench(args: argparse.Namespace) -> int:
    from .tuning.benchmark import run_kernel_benchmark, symbolic_table

    if args.general:
        from .proofs.general.bench import general_table

        table, ok = general_table()
        print(table)
        return 0 if ok else 1
    print(symbolic_table(quick=args.quick) if args.symbolic else run_kernel_benchmark(args))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .train import MissingExtra, run_from_args

    try:
        return run_from_args(args)
    except (MissingExtra, ValueError) as error:
        raise UsageError(str(error)) from None


def _cmd_import(args: argparse.Namespace) -> int:
    try:  # imported on use: ONNX is an optional extra that the core never imports
        from .onnx.command import run_import

        return run_import(args)
    except (ImportError, ValueError) as error:
        raise UsageError(str(error)) from None


def _cmd_export(args: argparse.Namespace) -> int:
    from .export.command import run_export
    from .train import lenet_digits

    try:
        if not args.onnx:
            return run_export(args, lenet_digits(args.batch), None)
        # imported on use: ONNX is an optional extra that the core never imports
        from .onnx.load import load

        network = load(args.onnx, _ints(args.input_shape) if args.input_shape else None)
        return run_export(args, network, network.params)
    except (ImportError, ValueError) as error:
        raise UsageError(str(error)) from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(n) for n in text.split(","))
    except ValueError:
        raise UsageError(f"expected integers separated by commas, got {text!r}") from None


def _cmd_generate(args: argparse.Namespace) -> int:
    from .pipeline import write_sources  # imported on use: jinja2 and the printer are not needed elsewhere

    for path in write_sources(spec_from_args(args), args.dtype, args.output, args.strategy):
        print(path)
    return 0


def _cmd_latex(args: argparse.Namespace) -> int:
    from .printing.document import latex_document
    from .printing.latex import latex  # imported on use, like generate: the document needs the Jinja environment

    d = _derive(args)
    try:
        options = {"max_entries": args.max_entries, "bias": not args.no_bias}
        if args.figures and not args.document:
            raise ValueError("--figures needs --document: the figures are TikZ pictures inside the document")
        if args.all_sizes and not args.document:
            raise UsageError("--all-sizes adds a section to the document: give --document too")
        if args.document:
            general = None
            if args.all_sizes:
                from .proofs.general import prove_general  # imported on use: z3 and isl

                general = prove_general(flip=args.convolution, per_side=not d.spec.is_symmetric,
                                        grouped=d.spec.groups > 1)
            tex = latex_document(d, prove(d, max_terms=args.max_terms, progress=args.progress), general,
                                 term_limit=args.max_terms, figures=args.figures, **options)
        else:
            tex = latex(d, term_limit=args.max_terms, **options) + "\n"
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.output is None:
        sys.stdout.write(tex)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(tex)
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error.strerror}") from None
    print(args.output)
    return 0


def _cmd_figure(args: argparse.Namespace) -> int:
    from .printing.figures import figure  # imported on use: matplotlib loads when the figure is drawn

    try:
        drawn = figure(spec_from_args(args), args.pass_name, 0, _index_base(args))
        count = len(drawn.picture.frames)
        if not 1 <= args.frame <= count:
            raise ValueError(f"--frame must be from 1 to {count} for this pass, got {args.frame}")
        replace(drawn, frame=args.frame - 1).save(args.output, animate=args.animate)
    except ValueError as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot write {args.output}: {error.strerror or error}") from None
    print(args.output)
    return 0


Command = Callable[[argparse.Namespace], int]


def add_max_terms(parser: argparse.ArgumentParser) -> None:
    """``--max-terms``: the most terms a derivation may create (default ``DEFAULT_MAX_TERMS``)."""
    from .symbolic.budget import DEFAULT_MAX_TERMS

    parser.add_argument("--max-terms", type=positive, default=None, metavar="N",
                        help=f"refuse layers whose sums hold more terms (default {DEFAULT_MAX_TERMS:,})")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="symconv", description="Derive, prove, print and generate convolution backpropagation.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name: str, run: Command, help: str, spec_flags: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        if spec_flags:
            add_spec_flags(sub)
        sub.set_defaults(run=run)
        return sub

    for name, run, help in (
        ("derive", _cmd_derive, "print the forward equations, the chain rule and the gradients"),
        ("demo", _cmd_demo, "the textbook walk-through: derive, then prove (default 3x3 input, 2x2 kernel)"),
    ):
        sub = command(name, run, help)
        sub.add_argument("--max-entries", type=positive, default=16, help="lines per list before eliding (default 16)")
        if name == "demo":  # the textbook case as the source documents write it: without a bias
            sub.set_defaults(no_bias=True)
            sub.add_argument("--bias", dest="no_bias", action="store_false", help="with a bias b (the seeds have none)")
        add_max_terms(sub)
    prove_cmd = command("prove", _cmd_prove, "prove the closed forms exactly; exit 0 iff all hold, 1 if one fails")
    add_max_terms(prove_cmd)
    add_all_sizes_flags(prove_cmd)
    recheck = command("recheck", recheck_certificate, "re-derive and re-run a certificate of prove --all-sizes; exit 0 "
                      "iff it is genuine and proves every identity", spec_flags=False)
    recheck.add_argument("folder", metavar="DIR", help="the folder prove --all-sizes --certificate wrote")
    generate = command("generate", _cmd_generate, "write the C kernels (.c, .h) and the cffi cdef of the layer")
    generate.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="default float32")
    generate.add_argument("--strategy", choices=("unrolled", "loops", "gemm", "direct", "depthwise", "pointwise"),
                          help="default: depthwise for depthwise layers, unrolled for small ones, else direct")
    generate.add_argument("-o", "--output", default=".", metavar="DIR", help="directory to write (default .)")
    tex = command("latex", _cmd_latex, "print the derivation as LaTeX equations, or write a standalone .tex document")
    tex.add_argument("--document", action="store_true", help="a complete article with the proofs, for pdflatex")
    tex.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    tex.add_argument("--max-entries", type=positive, default=16, help="equations per list before eliding (default 16)")
    add_max_terms(tex)
    tex.add_argument("--figures", action="store_true", help="with --document: a TikZ picture of each pass")
    fig = command("figure", _cmd_figure, "draw a pass (grids, padding, dilation zeros, the taps one output reads)")
    fig.add_argument("--pass", dest="pass_name", choices=("forward", "grad_weight", "grad_input"), default="forward",
                     help="default forward")
    fig.add_argument("--frame", type=positive, default=1, metavar="N", help="the output position drawn, 1 = first")
    fig.add_argument("--animate", action="store_true", help="every output position: one GIF frame or PDF page each")
    fig.add_argument("-o", "--output", required=True, metavar="FILE", help=".png, .svg, .pdf or .gif (animated)")
    tex.add_argument("--all-sizes", action="store_true",
                     help="with --document: add the section 'For every size', the identities proved as theorems")
    bench = command("bench", _cmd_bench, "time the kernels against PyTorch and NumPy (--symbolic: derive, prove)",
                    spec_flags=False)
    bench.add_argument("--symbolic", action="store_true", help="time the symbolic derivation and proof instead")
    bench.add_argument("--general", action="store_true", help="time the proofs for every size (prove --all-sizes)")
    bench.add_argument("--quick", action="store_true", help="small sizes only (symbolic); few short samples (kernels)")
    add_kernel_flags(bench)
    train = command("train", _cmd_train, "train a LeNet-style CNN on scikit-learn's 8x8 digits in generated C",
                    spec_flags=False)
    add_train_flags(train)
    imported = command("import", _cmd_import, "load an ONNX model: its layers, the backprop proof, a LaTeX "
                       "document, the compiled kernels against ONNX Runtime", spec_flags=False)
    imported.add_argument("model", metavar="MODEL.onnx", help="the ONNX file")
    imported.add_argument("--input-shape", metavar="N,C,H,W", help="pins the model's symbolic dimensions")
    imported.add_argument("--latex", metavar="FILE", help="write the equations and the proof as a LaTeX document")
    imported.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                          help="of the compiled kernels (default float32)")
    imported.add_argument("--no-prove", action="store_true",
                          help="skip the proof (SymPy on every entry: minutes beyond a few hundred inputs)")
    imported.add_argument("--seed", type=natural, default=0, help="of the random input and the proof (default 0)")
    add_export_flags(command("export", _cmd_export, "write a standalone C99 library of a network: inference, "
                             "backward, SGD, Makefile, CMakeLists.txt, host test", spec_flags=False))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``symconv <command> ...`` -> the exit status: 0 done, 1 a proof or kernel check failed, 2 an error (one
    line on stderr), 130 Ctrl-C. The console script starts in ``symconv.__main__``, which catches Ctrl-C before
    this module loads."""
    # Only a terminal gets a bar: a pipe or a file receives the results alone.
    bar = ProgressBar(sys.stderr) if sys.stderr is not None and sys.stderr.isatty() else None

    def run() -> int:
        args = build_parser().parse_args(argv)
        args.progress = bar
        return int(args.run(args))

    return run_command(run, expected=(UnsafeCacheError, CompilerError, TuningError), cleanup=lambda: clear(bar))


if __name__ == "__main__":
    sys.exit(main())
