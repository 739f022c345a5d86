"""Matplotlib renderer: a ``PassPicture`` -> a ``matplotlib.figure.Figure`` of one frame, or every frame written
as a GIF (``PillowWriter``) or as the pages of a PDF (``PdfPages``).

Only matplotlib's object API on the Agg canvas: no pyplot, so nothing global changes and no window opens. (The
module is not called ``matplotlib`` so that it can never shadow the library it imports.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

from matplotlib.animation import PillowWriter
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .model import LABEL_SIDE, Frame, Grid, Kind, PassPicture

__all__ = ["draw", "write_gif", "write_pdf_pages", "STYLE", "MAX_FRAMES"]

STYLE: dict[Kind, tuple[str, str]] = {
    "data": ("#ffffff", ""),
    "padding": ("#d0d0d0", "///"),
    "dilation": ("#cfe2f3", "..."),
    "cropped": ("#f4cccc", "xx"),
}
"""Face colour and hatch of each kind of cell: padding and dilation zeros look different from data and from
each other even in greyscale."""
LEGEND: dict[Kind, str] = {"data": "data", "padding": "zero padding", "dilation": "zero from dilation",
                           "cropped": "cropped away"}
TAP, WINDOW, OUTPUT = "#fdb863", "#b35806", "#e66101"
MAX_WIDTH_IN = 13.0  # the widest figure: beyond it cells shrink, so large maps never grow the file
MAX_CELL_IN = 0.62
MAX_FRAMES = 256
GAP = 1.6  # cells between two grids, room for the operator sign


def _layout(p: PassPicture) -> tuple[list[tuple[Grid, float]], float, int]:
    x, placed = 0.0, []
    for grid in (p.static, p.sliding, p.result):
        placed.append((grid, x))
        x += grid.shape[1] + GAP
    return placed, x - GAP, max(g.shape[0] for g in (p.static, p.sliding, p.result))


def _labelled(p: PassPicture, cell_in: float) -> bool:
    side = max(max(g.shape) for g in (p.static, p.sliding, p.result))
    return side <= LABEL_SIDE and cell_in >= 0.3


def _label_size(label: str, cell_in: float) -> float:
    # A stacked fraction is about as wide as its denominator: it may be set larger than a long inline name.
    points = cell_in * 72
    return max(4.0, min(points * (0.3 if label.startswith(r"\frac") else 0.26), 11.0))


def _draw_grid(ax: Axes, grid: Grid, x0: float, labels: bool, cell_in: float) -> None:
    for i, row in enumerate(grid.kinds):
        for j, kind in enumerate(row):
            face, hatch = STYLE[kind]
            ax.add_patch(Rectangle((x0 + j, -i - 1), 1, 1, facecolor=face, hatch=hatch, edgecolor="#7f7f7f",
                                   linewidth=0.6, zorder=1))
            text = grid.labels[i][j]
            if labels and text:
                ax.text(x0 + j + 0.5, -i - 0.5, f"${text}$", ha="center", va="center", zorder=4,
                        fontsize=_label_size(text, cell_in), color="#000000" if kind == "data" else "#555555")
    ax.text(x0 + grid.shape[1] / 2, 0.35, f"${grid.title}$", ha="center", va="bottom", fontsize=10)


def _highlight(ax: Axes, p: PassPicture, frame: Frame, placed: list[tuple[Grid, float]]) -> list[Artist]:
    """The frame's artists: its taps and window on the static map, its cell of the result."""
    (_, xs), _, (_, xr) = placed
    artists: list[Artist] = [
        ax.add_patch(Rectangle((xs + j, -i - 1), 1, 1, facecolor=TAP, alpha=0.55, edgecolor="none", zorder=2))
        for i, j in sorted(frame.taps)
    ]
    (top, left), (rows, cols) = p.window(frame)
    artists.append(ax.add_patch(Rectangle((xs + left, -top - rows), cols, rows, fill=False, edgecolor=WINDOW,
                                          linewidth=2.4, zorder=3)))
    i, j = frame.output
    artists.append(ax.add_patch(Rectangle((xr + j, -i - 1), 1, 1, facecolor=OUTPUT, alpha=0.75, edgecolor=WINDOW,
                                          linewidth=2.0, zorder=2)))
    # A stacked fraction is unreadable at the text's size: the line spells it dE/dF_11 inline.
    label = re.sub(r"\\frac\{(.+?)\}\{(.+)\}", r"\1/\2", p.result.labels[i][j])
    on_data = len(frame.taps & p.static.cells("data"))
    line = (f"frame {p.frames.index(frame) + 1} of {len(p.frames)}: ${label}$ sums the {len(frame.taps)} highlighted "
            f"products, {on_data} of them on data")
    fig = ax.get_figure(root=True)
    assert isinstance(fig, Figure)
    artists.append(fig.text(0.1, _below_in(p) - 0.3, line, fontsize=10, color=WINDOW, va="bottom",
                            transform=_inches(fig)))
    return artists


def _below_in(p: PassPicture) -> float:
    """Height of the band under the grids: the frame line, the legend, a line per note."""
    return 0.8 + 0.24 * len(p.notes)


def _inches(fig: Figure) -> Any:
    return fig.dpi_scale_trans


def _base(p: PassPicture) -> tuple[Figure, Axes, list[tuple[Grid, float]]]:
    placed, width, height = _layout(p)
    cell_in = min(MAX_CELL_IN, MAX_WIDTH_IN / width)
    notes = len(p.notes)
    # Text keeps its size in inches whatever the cells' size, so the bands above the grids (equation, titles)
    # and below them (frame line, legend, notes) are laid out in inches.
    above_in, below_in = 0.95, _below_in(p)
    fig = Figure(figsize=(max(width * cell_in + 0.4, 6.0), height * cell_in + above_in + below_in))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, below_in / fig.get_figheight(), 1, height * cell_in / fig.get_figheight()))
    ax.set_xlim(-0.2, max(width + 0.2, (fig.get_figwidth() - 0.4) / cell_in))
    ax.set_ylim(-height - 0.05, 0.05)  # the outer borders are drawn on the limits: keep them inside
    ax.set_aspect("equal", anchor="N")
    ax.axis("off")
    labels = _labelled(p, cell_in)
    for grid, x0 in placed:
        _draw_grid(ax, grid, x0, labels, cell_in)
    for (_grid, x0), sign in zip(placed[1:], ("\u22c6", "=")):
        ax.text(x0 - GAP / 2, -height / 2, sign, ha="center", va="center", fontsize=30)
    fig.suptitle(f"${p.equation}$", fontsize=12, y=1 - 0.12 / fig.get_figheight(), va="top")
    kinds = [k for k in STYLE if any(g.cells(k) for g, _ in placed)]
    handles = [Patch(facecolor=STYLE[k][0], hatch=STYLE[k][1], edgecolor="#7f7f7f", label=LEGEND[k]) for k in kinds]
    handles.append(Patch(facecolor=TAP, alpha=0.55, edgecolor=WINDOW, label="read by this output"))
    fig.legend(handles=handles, loc="lower left", ncol=len(handles), fontsize=9, frameon=False,
               bbox_to_anchor=(0.0, 0.05 + 0.24 * notes), bbox_transform=_inches(fig))
    for n, note in enumerate(p.notes):
        fig.text(0.1, 0.1 + 0.24 * (notes - 1 - n), note, fontsize=9, va="bottom", transform=_inches(fig))
    return fig, ax, placed


def draw(p: PassPicture, frame: int = 0) -> Figure:
    """A picture and a frame number -> the ``Figure`` of that frame.

    >>> from symconv import ConvSpec
    >>> from symconv.printing.figures import picture
    >>> fig = draw(picture(ConvSpec((3, 3), (2, 2)), "forward"))
    >>> bool(fig.get_figwidth() <= MAX_WIDTH_IN + 0.4)
    True
    """
    if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < len(p.frames):
        raise ValueError(f"frame must be an integer from 0 to {len(p.frames) - 1}, got {frame!r}")
    fig, ax, placed = _base(p)
    _highlight(ax, p, p.frames[frame], placed)
    return fig


def _check_frames(p: PassPicture) -> None:
    # Checked before a writer opens its file, so a refused animation leaves no half-written file behind.
    if len(p.frames) > MAX_FRAMES:
        raise ValueError(f"an animation of this spec has {len(p.frames)} frames; at most {MAX_FRAMES} are drawn")


def _frames(p: PassPicture) -> Iterator[Figure]:
    """The same figure, re-highlighted once per frame (the grids are drawn once)."""
    fig, ax, placed = _base(p)
    for frame in p.frames:
        artists = _highlight(ax, p, frame, placed)
        yield fig
        for artist in artists:
            artist.remove()


def write_gif(p: PassPicture, path: Path, dpi: int = 80, fps: int = 2) -> Path:
    """Every frame into one GIF, through matplotlib's Pillow writer."""
    _check_frames(p)
    frames = _frames(p)
    fig = next(frames)
    writer = PillowWriter(fps=fps)
    with writer.saving(fig, str(path), dpi):
        writer.grab_frame()
        for _ in frames:
            writer.grab_frame()
    return path


def write_pdf_pages(p: PassPicture, path: Path) -> Path:
    """Every frame on its own page of one PDF, for slides."""
    _check_frames(p)
    with PdfPages(path) as pdf:
        for fig in _frames(p):
            pdf.savefig(fig)
    return path
