"""Codegen: a layer and a dtype -> kernel plans -> C source text (SymPy's C printer, sp.cse, Jinja templates).

``plan`` is the data model every stage after it reads (``Arg``, ``Kernel``); ``lowering`` lowers a convolution
(strategies ``unrolled``, ``loops``, ``gemm``, ``direct``, the last with ``direct``'s geometry) and
``layer_lowering`` every other layer; ``cprinter`` prints SymPy expressions as C; ``render`` fills the templates
in ``templates/``. Nothing here compiles: ``build`` does.
"""
