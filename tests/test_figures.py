"""Figures: what each picture says (cell kinds, labels, highlighted taps, the sum each frame shows) against
``forms`` and the chain-rule derivation, for a grid of shapes; then the files: GIF frames, PDF pages, PNG/SVG,
the TikZ document through pdflatex, and the CLI's one-line errors."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symconv import ConvSpec, derive, forms, latex_document, prove
from symconv.cli import main
from symconv.printing.figures import PASSES, figure, picture
from symconv.printing.figures.model import MAX_SIDE, Grid
from symconv.symbolic.symbols import spec_symbols, to_numpy

SPECS = [
    ConvSpec((3, 3), (2, 2)),
    ConvSpec((3, 3), (2, 2), flip=True),
    ConvSpec((5, 5), (3, 3), stride=2),
    ConvSpec((6, 6), (3, 3), stride=2),  # leftover a = 1
    ConvSpec((7, 7), (2, 2), stride=3),  # leftover a = 2
    ConvSpec((5, 5), (3, 3), padding=1),
    ConvSpec((6, 6), (2, 2), dilation=2),
    ConvSpec((7, 6), (3, 2), stride=(2, 3), padding=(1, 0), dilation=(2, 1)),
    ConvSpec((6, 6), (3, 3), stride=2, padding=1, dilation=2, flip=True),
    ConvSpec((4, 5), (2, 3), stride=(3, 1), padding=(1, 2)),
]
CASES = [(spec, name) for spec in SPECS for name in PASSES]
FRAC = re.compile(r"\\frac\{\\partial E\}\{\\partial (.+)\}")


def symbol(label: str) -> sp.Expr:
    """A picture's label back to the derivation's symbol: ``\\frac{\\partial E}{\\partial O_{11}}`` -> dE/dO_{11}."""
    if label == "0":
        return sp.S.Zero
    match = FRAC.fullmatch(label)
    return sp.Symbol(f"dE/d{match.group(1)}" if match else label, real=True)


def array(grid: Grid) -> np.ndarray:
    out = np.empty(grid.shape, dtype=object)
    for i, j in np.ndindex(grid.shape):
        out[i, j] = symbol(grid.labels[i][j]) if grid.kinds[i][j] == "data" else sp.S.Zero
    return out


def tensors(spec: ConvSpec) -> dict[str, np.ndarray]:
    return {name: to_numpy(t) for name, t in spec_symbols(spec).items()}


def expected(spec: ConvSpec, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What forms says the pass's static map, sliding map and result are, for the one channel pair."""
    t = tensors(spec)
    X, F, G = t["input"][0, 0], t["weight"][0, 0], t["grad_output"][0, 0]
    (eh, ew), (ph, pw), (ah, aw) = spec.effective_kernel, spec.padding, spec.leftover
    if name == "forward":
        result = forms.forward(spec, t["input"], t["weight"], np.zeros(1, dtype=object))[0, 0]
        return forms.pad(X, spec.padding, spec.padding), forms.layer_kernel(spec, F), result
    if name == "grad_weight":
        result = forms.grad_weight(spec, t["input"], t["grad_output"])[0, 0]
        return forms.pad(X, spec.padding, spec.padding), forms.dilate(G, spec.stride), result
    before, after = (eh - 1 - ph, ew - 1 - pw), (eh - 1 - ph + ah, ew - 1 - pw + aw)
    result = forms.grad_input(spec, t["weight"], t["grad_output"])[0, 0]
    kernel = forms.rot180(forms.layer_kernel(spec, F))
    return forms.pad(forms.dilate(G, spec.stride), before, after), kernel, result


@pytest.mark.parametrize("spec, name", CASES, ids=[f"{s.describe()}-{n}" for s, n in CASES])
def test_the_maps_are_what_forms_computes(spec: ConvSpec, name: str) -> None:
    p = picture(spec, name)
    static, sliding, _ = expected(spec, name)
    for grid, want in ((p.static, static), (p.sliding, sliding)):
        assert (array(grid) == want).all()
        assert grid.cells("data") == {cell for cell in np.ndindex(want.shape) if want[cell] != 0}
    # Padding is what pad adds around the (dilated) map; dilation zeros are the zeros inside it.
    inner = forms.dilate(np.ones(spec.output_size if name == "grad_input" else (1, 1), dtype=object), spec.stride)
    if name == "grad_input":
        (eh, ew), (ph, pw), (ah, aw) = spec.effective_kernel, spec.padding, spec.leftover
        ring = forms.pad(np.ones(inner.shape, dtype=object), (eh - 1 - ph, ew - 1 - pw), (eh - 1 - ph + ah, ew - 1 - pw + aw))
    else:
        ring = forms.pad(np.ones(spec.input_size, dtype=object), spec.padding, spec.padding)
    assert p.static.cells("padding") == {c for c in np.ndindex(ring.shape) if ring[c] == 0}
    assert p.static.cells("dilation") == {c for c in np.ndindex(ring.shape) if ring[c] != 0} - p.static.cells("data")
    assert p.sliding.cells("padding") == frozenset()


@pytest.mark.parametrize("spec, name", CASES, ids=[f"{s.describe()}-{n}" for s, n in CASES])
def test_each_frame_sums_what_forms_gives_for_its_output(spec: ConvSpec, name: str) -> None:
    p = picture(spec, name)
    static, sliding, result = (array(p.static), array(p.sliding), expected(spec, name)[2])
    taps_of_sliding = p.sliding.cells("data")
    values = []
    for frame in p.frames:
        u, v = frame.offset
        assert frame.taps == {(u + a, v + b) for a, b in taps_of_sliding}
        shown = sp.Add(*(sliding[a, b] * static[u + a, v + b] for a, b in taps_of_sliding))
        values.append(sp.expand(shown))
    # The frames are the outputs of the pass, each once, and each shows the entry forms computes there.
    assert sorted(values, key=sp.default_sort_key) == sorted((sp.expand(v) for v in result.flat), key=sp.default_sort_key)
    assert len(p.frames) == result.size == len({f.output for f in p.frames})
    for frame, value in zip(p.frames, values):
        assert symbol(p.result.labels[frame.output[0]][frame.output[1]]) in _names(spec, name, value, result)


def _names(spec: ConvSpec, name: str, value: sp.Expr, result: np.ndarray) -> set[sp.Expr]:
    """The symbols naming the result entries equal to ``value`` (dE/dX_ij for dE/dX's entry at ij, ...)."""
    t = tensors(spec)
    names = {"forward": [symbol(str(s).replace("dE/d", "")) for s in t["grad_output"][0, 0].flat],
             "grad_weight": [sp.Symbol(f"dE/d{s}", real=True) for s in t["weight"][0, 0].flat],
             "grad_input": [sp.Symbol(f"dE/d{s}", real=True) for s in t["input"][0, 0].flat]}[name]
    return {n for n, r in zip(names, result.flat) if sp.expand(r - value) == 0}


@pytest.mark.parametrize("spec", SPECS[:6], ids=[s.describe() for s in SPECS[:6]])
def test_the_taps_on_data_are_the_chain_rule_terms(spec: ConvSpec) -> None:
    """Independently of forms: the data entries a frame highlights are the ones SymPy's differentiation of E
    through O puts into that gradient entry."""
    d = derive(spec)
    for name, tensor, other in (("grad_input", d.grad_input, "dE/dO"), ("grad_weight", d.grad_weight, "X_")):
        p = picture(spec, name)
        for frame in p.frames:
            target = symbol(p.result.labels[frame.output[0]][frame.output[1]])
            index = next(i for i, s in np.ndenumerate(to_numpy(d.input if name == "grad_input" else d.weight))
                         if sp.Symbol(f"dE/d{s}", real=True) == target)
            read = {symbol(p.static.labels[i][j]) for i, j in frame.taps & p.static.cells("data")}
            terms = {s for s in sp.expand(tensor[index]).free_symbols if str(s).startswith(other)}
            assert read == terms


def test_several_channels_draw_one_pair_and_say_what_is_summed() -> None:
    spec = ConvSpec((4, 4), (2, 2), in_channels=3, out_channels=2, batch=2)
    for name, summed in (("forward", "3 input channels"), ("grad_weight", "2 images"), ("grad_input", "2 filters")):
        multi, single = picture(spec, name), picture(replace(spec, in_channels=1, out_channels=1, batch=1), name)
        assert (multi.static, multi.sliding, multi.result, multi.frames) == (single.static, single.sliding,
                                                                            single.result, single.frames)
        assert summed in multi.notes[0]


def test_leftover_and_dilation_are_stated() -> None:
    p = picture(ConvSpec((6, 6), (2, 2), stride=2, padding=1, dilation=2), "grad_weight")
    assert p.result.shape == (4, 4) and len(p.result.cells("cropped")) == 7 and len(p.result.cells("dilation")) == 5
    assert any("cropped" in n for n in p.notes) and any("Dilation" in n for n in p.notes)


@pytest.mark.parametrize("bad, error", [(("forward", 7), TypeError), (("backward",), ValueError)])
def test_bad_arguments_name_themselves(bad: tuple, error: type) -> None:
    args = (bad[1], bad[0]) if error is TypeError else (ConvSpec((3, 3), (2, 2)), bad[0])
    with pytest.raises(error, match="spec" if error is TypeError else "pass"):
        picture(*args)


def test_maps_past_the_limit_are_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match=str(MAX_SIDE)):
        picture(ConvSpec((MAX_SIDE + 1, 8), (3, 3)), "forward")


# --- the files -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, name", [(ConvSpec((3, 3), (2, 2)), "forward"),
                                        (ConvSpec((5, 5), (3, 3), stride=2), "grad_weight")])
def test_a_gif_has_one_frame_per_output_position(spec: ConvSpec, name: str, tmp_path: Path) -> None:
    from PIL import Image

    path = figure(spec, name).save(tmp_path / "pass.gif", animate=True)
    with Image.open(path) as gif:
        assert gif.n_frames == len(picture(spec, name).frames) == (4 if name == "forward" else 9)


def test_the_pdf_for_slides_has_one_page_per_output_position(tmp_path: Path) -> None:
    path = figure(ConvSpec((4, 4), (2, 2), stride=2, padding=1), "grad_input").save(tmp_path / "s.pdf", animate=True)
    pages = re.findall(rb"/Type\s*/Page\b", path.read_bytes())
    assert len(pages) == 16  # dE/dX is 4x4


def test_png_svg_and_jupyter(tmp_path: Path) -> None:
    f = figure(ConvSpec((5, 5), (3, 3), stride=2), "grad_input", frame=6)
    assert f._repr_png_().startswith(b"\x89PNG") and "<svg" in f._repr_svg_()
    assert f.save(tmp_path / "a.svg").read_text().count("<svg") == 1


def test_large_maps_are_shaded_and_bounded() -> None:
    from symconv.printing.figures.mpl import MAX_WIDTH_IN, draw

    small, large = (draw(picture(ConvSpec(size, (3, 3)), "forward")) for size in ((4, 4), (40, 40)))
    assert any("X_{11}" in t.get_text() for t in small.axes[0].texts)
    assert not any("X_{" in t.get_text() for t in large.axes[0].texts)
    assert large.get_figwidth() <= MAX_WIDTH_IN + 0.4 and large.get_figheight() < 10


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-o", "{tmp}/a.txt"], "must end in"),
        (["--animate", "-o", "{tmp}/a.png"], ".gif, .pdf"),
        (["-o", "{tmp}/missing/a.png"], "cannot write"),
        (["--frame", "5", "-o", "{tmp}/a.png"], "--frame must be from 1 to 4"),
        (["--pass", "backward", "-o", "{tmp}/a.png"], "invalid choice"),
        (["--input", "80x80", "-o", "{tmp}/a.png"], "64x64"),
        (["--input", "30x30", "--animate", "-o", "{tmp}/a.gif"], "841 frames"),
        ([], "-o/--output"),
    ],
)
def test_cli_errors_are_one_line(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["figure", *(a.format(tmp=tmp_path) for a in argv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_cli_writes_the_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    out = tmp_path / "s2.png"
    assert main(["figure", "--input", "5x5", "--kernel", "3x3", "--stride", "2", "--pass", "grad_input",
                 "--frame", "7", "-o", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] < 1400


def _tikz_missing() -> bool:
    if shutil.which("pdflatex") is None or shutil.which("kpsewhich") is None:
        return True
    return subprocess.run(["kpsewhich", "tikz.sty"], capture_output=True).returncode != 0


@pytest.mark.skipif(_tikz_missing(), reason="pdflatex or TikZ is not installed (.ci/run installs texlive-pictures)")
@pytest.mark.parametrize("spec", [ConvSpec((5, 5), (3, 3), stride=2),
                                  ConvSpec((6, 6), (2, 2), stride=2, padding=1, dilation=2, flip=True),
                                  ConvSpec((4, 4), (2, 2), in_channels=2, out_channels=2, batch=2)],
                         ids=lambda s: s.describe())
def test_the_document_with_figures_compiles(spec: ConvSpec, tmp_path: Path) -> None:
    d = derive(spec)
    tex = latex_document(d, prove(d), figures=True, max_entries=4)
    assert tex.count(r"\begin{tikzpicture}") == 3 and r"\usepackage{tikz}" in tex
    assert r"\usepackage{tikz}" not in latex_document(d)
    (tmp_path / "doc.tex").write_text(tex)
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
