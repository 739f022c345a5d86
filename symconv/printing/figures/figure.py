"""Figure object: a ``ConvSpec``, a pass and a frame -> a ``ConvFigure`` that saves itself as PNG, SVG, PDF or
GIF (by the file's suffix), prints itself as TikZ, and shows itself in Jupyter.

matplotlib is imported when a picture is first drawn, not with this module, as SymPy's ``_repr_png_`` does.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ...symbolic.spec import ConvSpec
from .model import PassPicture, picture

__all__ = ["ConvFigure", "figure", "STILL_SUFFIXES", "ANIMATED_SUFFIXES"]

STILL_SUFFIXES = (".png", ".svg", ".pdf")
ANIMATED_SUFFIXES = (".gif", ".pdf")


@dataclass(frozen=True)
class ConvFigure:
    """One pass of one layer, drawn at ``frame`` (an index into ``picture.frames``)."""

    picture: PassPicture
    frame: int = 0

    def __post_init__(self) -> None:
        count = len(self.picture.frames)
        if isinstance(self.frame, bool) or not isinstance(self.frame, int) or not 0 <= self.frame < count:
            raise ValueError(f"frame must be an integer from 0 to {count - 1}, got {self.frame!r}")

    def _bytes(self, fmt: str, dpi: int = 100) -> bytes:
        from .mpl import draw

        buffer = io.BytesIO()
        draw(self.picture, self.frame).savefig(buffer, format=fmt, dpi=dpi)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self._bytes("png")

    def _repr_svg_(self) -> str:
        return self._bytes("svg").decode("utf-8")

    def tikz(self) -> str:
        """The frame as a ``tikzpicture`` (needs ``\\usepackage{tikz}``)."""
        from .tikz import tikz

        return tikz(self.picture, self.frame)

    def save(self, path: Union[str, Path], animate: bool = False, dpi: int = 100) -> Path:
        """Write the frame, or with ``animate`` every frame (GIF; PDF one page each); the suffix picks the format.

        A ``.gif`` is always the animation. Raises ValueError naming the suffix, OSError if it cannot write.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        allowed = ANIMATED_SUFFIXES if animate else STILL_SUFFIXES + (".gif",)
        if suffix not in allowed:
            kind = "an animation" if animate else "a figure"
            raise ValueError(f"path must end in {', '.join(allowed)} for {kind}, got {path.name!r}")
        if not path.parent.is_dir():
            raise FileNotFoundError(2, "No such directory", str(path.parent))
        from .mpl import draw, write_gif, write_pdf_pages

        if suffix == ".gif":
            return write_gif(self.picture, path)
        if animate:
            return write_pdf_pages(self.picture, path)
        draw(self.picture, self.frame).savefig(path, dpi=dpi)
        return path


def figure(spec: ConvSpec, pass_name: str = "forward", frame: int = 0, index_base: int = 1) -> ConvFigure:
    """A layer, a pass (``forward``, ``grad_weight``, ``grad_input``) and a frame -> its ``ConvFigure``.

    >>> f = figure(ConvSpec((5, 5), (3, 3), stride=2), "grad_input", frame=2)
    >>> f.picture.result.labels[0][2], len(f.picture.frames)
    ('\\\\frac{\\\\partial E}{\\\\partial X_{13}}', 25)
    """
    return ConvFigure(picture(spec, pass_name, index_base), frame)
