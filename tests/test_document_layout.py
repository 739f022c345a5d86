"""Documents fit the page: the README's LaTeX documents, compiled by pdflatex, run past no margin (no overfull
box), the wide matrices of the closed forms scaled down to the text width instead."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from symconv import ConvSpec, derive, latex_document, prove
from symconv.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"

needs_pdflatex = pytest.mark.skipif(
    shutil.which("pdflatex") is None,
    reason="pdflatex not on PATH: apt-get install texlive-latex-base texlive-latex-recommended (.ci/run does)",
)


def _tikz_missing() -> bool:
    if shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None:
        return True
    return subprocess.run(["kpsewhich", "tikz.sty"], capture_output=True).returncode != 0


def readme_documents() -> list[list[str]]:
    """The arguments of every ``symconv latex ... --document`` command in the README, without ``-o``, and the
    README's widest layer (``symconv prove --input 7x6 ...``) as a document too."""
    commands = []
    for line in README.read_text(encoding="utf-8").splitlines():
        if not line.startswith("symconv "):
            continue
        words = shlex.split(line.partition("#")[0])
        if words[:2] == ["symconv", "latex"] and "--document" in words:
            output = words.index("-o")
            commands.append(words[2:output] + words[output + 2:])
        elif words[:2] == ["symconv", "prove"] and "7x6" in words:
            commands.append([*words[2:], "--document"])
    return commands


DOCUMENTS = readme_documents()


def overfull_boxes(tex: str, directory: Path) -> list[str]:
    """pdflatex's complaints about lines wider than the text, from the log of compiling ``tex``."""
    (directory / "doc.tex").write_text(tex, encoding="utf-8")
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=directory,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:]
    log = (directory / "doc.log").read_text(encoding="utf-8", errors="replace")
    return re.findall(r"^Overfull \\hbox .*$", log, re.M)


def test_the_readme_names_the_documents_this_test_compiles() -> None:
    assert len(DOCUMENTS) >= 3 and any("--figures" in c for c in DOCUMENTS)
    assert ["--input", "7x6", "--kernel", "3x2", "--stride", "2x3"] == next(c for c in DOCUMENTS if "7x6" in c)[:6]


@needs_pdflatex
@pytest.mark.parametrize("arguments", DOCUMENTS, ids=" ".join)
def test_the_readme_documents_fit_the_page(arguments: list[str], tmp_path: Path) -> None:
    if "--figures" in arguments and _tikz_missing():
        pytest.skip("TikZ is not installed (.ci/run installs texlive-pictures)")
    target = tmp_path / "layer.tex"
    assert main(["latex", *arguments, "-o", str(target)]) == 0
    assert overfull_boxes(target.read_text(encoding="utf-8"), tmp_path) == []


WIDE = ConvSpec((7, 6), (3, 2), stride=(2, 3), padding=(1, 0), dilation=(2, 1), in_channels=2, out_channels=3,
                batch=2, flip=True)


@needs_pdflatex
@pytest.mark.parametrize("spec", [ConvSpec((3, 3), (2, 2)), WIDE], ids=lambda s: s.describe())
def test_documents_with_their_proofs_fit_the_page(spec: ConvSpec, tmp_path: Path) -> None:
    d = derive(spec)
    tex = latex_document(d, prove(d))
    assert r"\fitwidth{\begin{aligned}" in tex and r"\section{Proofs}" in tex
    assert overfull_boxes(tex, tmp_path) == []


@needs_pdflatex
def test_the_check_sees_a_line_past_the_margin(tmp_path: Path) -> None:
    # The same closed forms in a plain alignment, as before they were fitted: pdflatex reports them.
    tex = latex_document(derive(WIDE))
    plain = re.sub(r"\\\[\n\\fitwidth\{\\begin\{aligned\}\n(.*?)\\end\{aligned\}\}\n\\\]",
                   r"\\begin{align*}\n\1\\end{align*}", tex, flags=re.S)
    assert plain != tex
    assert len(overfull_boxes(plain, tmp_path)) >= 1
