"""Proofs: derivations -> reports that the chain-rule results equal the closed forms, exactly.

``conv`` proves a convolution's identities for one shape (``prove``, ``check``); ``layers`` proves every other
layer's backward against SymPy's derivative; ``network`` proves a whole network's backpropagation. The reports are
data (``Proof``, ``ProofReport``); printing turns them into text and LaTeX.
"""
