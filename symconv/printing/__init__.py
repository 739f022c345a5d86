"""Printing: derivations and proof reports -> terminal text, LaTeX strings and standalone LaTeX documents.

``text`` writes the textbook equations for a terminal; ``latex_printer`` (a SymPy ``LatexPrinter``) and
``equations`` turn a ``Derivation`` into rows of equations; ``latex`` prints any result; ``document`` renders a
whole article through ``templates/document.tex.j2``; ``network`` prints a network's equations.
"""
