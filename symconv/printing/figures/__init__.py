"""Figures: a ``ConvSpec`` and a pass -> pictures of it. ``model`` computes the grids, cell kinds and frames from
``forms``; ``mpl`` draws them with matplotlib (PNG, SVG, PDF, GIF), ``tikz`` as TikZ for the LaTeX documents;
``figure`` wraps one frame as an object that saves itself and shows in Jupyter. Only the model is loaded here:
matplotlib is imported when a picture is first drawn."""

from .figure import ConvFigure, figure
from .model import PASSES, PassPicture, picture

__all__ = ["ConvFigure", "figure", "PASSES", "PassPicture", "picture"]
