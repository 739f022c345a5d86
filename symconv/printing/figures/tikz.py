"""TikZ renderer: a ``PassPicture`` and a frame -> the source of a ``tikzpicture`` (``templates/figure.tikz.j2``).

This module hands the template numbers and names only; the template owns the styles and the drawing. Cells are
placed in units of one cell, top row first (y grows upwards in TikZ, so row i sits at y = -i-1).
"""

from __future__ import annotations

from typing import Any

from ..latex_printer import escape
from .model import LABEL_SIDE, Grid, PassPicture

__all__ = ["tikz", "tikz_data", "caption", "FIGURE_TEMPLATE", "WIDTH_CM"]

FIGURE_TEMPLATE = "figure.tikz.j2"
WIDTH_CM = 16.0  # the text width of the documents (a4, 2 cm margins) less a little: figures never overflow it
MAX_UNIT_CM, MIN_LABEL_UNIT_CM = 0.75, 0.55
GAP = 1.6


def _n(value: float) -> str:
    """A coordinate as TikZ reads it, without float noise."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _grid(grid: Grid, x0: float) -> dict[str, Any]:
    return {
        "name": grid.title,
        "title": grid.title,
        "rows": grid.shape[0],
        "columns": grid.shape[1],
        "center": _n(x0 + grid.shape[1] / 2),
        "cells": [
            {"x": _n(x0 + j), "y": -i - 1, "lx": _n(x0 + j + 0.5), "ly": -i - 0.5, "kind": kind,
             "label": grid.labels[i][j], "font": "tiny" if grid.labels[i][j].startswith(r"\frac") else "scriptsize"}
            for i, row in enumerate(grid.kinds)
            for j, kind in enumerate(row)
        ],
    }


def tikz_data(p: PassPicture, frame: int = 0) -> dict[str, Any]:
    """What the template draws for one frame: grids placed side by side, the frame's taps, window and output."""
    if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < len(p.frames):
        raise ValueError(f"frame must be an integer from 0 to {len(p.frames) - 1}, got {frame!r}")
    grids = (p.static, p.sliding, p.result)
    x, starts = 0.0, []
    for grid in grids:
        starts.append(x)
        x += grid.shape[1] + GAP
    width, height = x - GAP, max(g.shape[0] for g in grids)
    unit = min(MAX_UNIT_CM, WIDTH_CM / width)
    f = p.frames[frame]
    (top, left), (rows, columns) = p.window(f)
    return {
        "unit": f"{unit:.3f}",
        "labelled": max(max(g.shape) for g in grids) <= LABEL_SIDE and unit >= MIN_LABEL_UNIT_CM,
        "grids": [_grid(g, x0) for g, x0 in zip(grids, starts)],
        "taps": [{"x": _n(starts[0] + j), "y": -i - 1} for i, j in sorted(f.taps)],
        "output": {"x": _n(starts[2] + f.output[1]), "y": -f.output[0] - 1},
        "window": {"x": _n(starts[0] + left), "y": -top - rows, "rows": rows, "columns": columns},
        "signs": [{"x": _n(x0 - GAP / 2), "y": _n(-height / 2), "text": sign} for x0, sign in zip(starts[1:], (r"\star", "="))],
    }


def tikz(p: PassPicture, frame: int = 0) -> str:
    r"""One frame as a ``tikzpicture``.

    >>> from symconv import ConvSpec
    >>> from symconv.printing.figures import picture
    >>> source = tikz(picture(ConvSpec((3, 3), (2, 2)), "forward"))
    >>> source.splitlines()[0][:36], source.count(r"\path[tap]")
    ('\\begin{tikzpicture}[x=0.750cm, y=0.7', 4)
    """
    from ...templating import environment  # the project's one Jinja environment, on the one templates folder

    return str(environment().get_template(FIGURE_TEMPLATE).module.picture(tikz_data(p, frame)))  # type: ignore[attr-defined]


def caption(p: PassPicture, frame: int = 0) -> str:
    """The sentences under a figure in a document: the frame's output, then the model's notes, as LaTeX text."""
    f = p.frames[frame]
    label = p.result.labels[f.output[0]][f.output[1]]
    on_data = len(f.taps & p.static.cells("data"))
    first = (f"Highlighted: the {len(f.taps)} entries that ${label}$ sums products over ({on_data} of them data); "
             "hatched grey: zero padding; dotted blue: zeros from dilation; cross-hatched red: cropped away.")
    return " ".join([first] + [escape(note) for note in p.notes])
