"""``symconv import``: parsed flags -> the layers, the backprop proof, a LaTeX document, the agreement with ONNX Runtime.

``cli`` defines the flags and imports this module on use only (the core never imports ONNX); ``run_import``
returns the exit status and raises ValueError for what the command line reports in one line (exit 2).
"""

from __future__ import annotations

import argparse
from typing import Optional

from symconv import CrossEntropyLoss, Network
from symconv.printing.network import network_latex

from .check import agreement
from .load import load, read_model

__all__ = ["run_import", "import_document"]


def _shape(text: Optional[str]) -> Optional[tuple[int, ...]]:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--input-shape must be integers separated by commas, got {text!r}") from None


def import_document(network: Network, source: str, proof: Optional[str]) -> str:
    """A standalone LaTeX article: the network's forward and backward equations and the proof's report."""
    times = " \\times ".join(map(str, network.input_shape))
    lines = ["\\documentclass{article}", "\\usepackage{amsmath}", "\\begin{document}",
             "\\section*{Backpropagation of an imported ONNX model}",
             f"\\noindent Imported from \\texttt{{{_tex_text(source)}}}, input shape ${times}$.",
             network_latex(network)]
    if proof is not None:
        lines += ["\\subsection*{Proof}", "\\begin{verbatim}", proof, "\\end{verbatim}"]
    return "\n".join(lines + ["\\end{document}", ""])


_TEX = {"\\": "\\textbackslash{}", "_": "\\_", "&": "\\&", "%": "\\%", "#": "\\#", "$": "\\$", "{": "\\{",
        "}": "\\}", "~": "\\~{}", "^": "\\^{}"}


def _tex_text(text: str) -> str:
    return "".join(_TEX.get(char, char) for char in text)


def run_import(args: argparse.Namespace) -> int:
    """Load, print, prove, write, compile and compare; 0 iff the proof (unless skipped) and the agreement hold."""
    model = read_model(args.model)
    network = load(model, _shape(args.input_shape))
    softmax = isinstance(network.loss, CrossEntropyLoss)
    print(f"{args.model}: {len(model.graph.node)} ONNX nodes -> {len(network.body)} symconv layers"
          + (" (the final Softmax is the cross-entropy loss's)" if softmax else ""))
    print(network.describe())
    proof = None
    holds = True
    if not args.no_prove:
        report = network.prove(seed=args.seed)
        proof, holds = str(report), report.holds
        print(proof)
    if args.latex:
        try:
            with open(args.latex, "w", encoding="utf-8") as out:
                out.write(import_document(network, args.model, proof))
        except OSError as error:
            raise ValueError(f"cannot write {args.latex}: {error.strerror}") from None
        print(f"wrote {args.latex}")
    result = agreement(network, model, seed=args.seed, dtype=args.dtype)
    print(result)
    return 0 if holds and result.holds else 1
