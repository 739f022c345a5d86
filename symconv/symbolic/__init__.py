"""Symbolic: a ``ConvSpec`` or a layer and its input shape -> SymPy tensors, derivations and closed forms.

``spec`` validates shapes; ``symbols`` names the textbook tensors; ``derive`` builds the forward pass O and its
chain-rule gradients; ``forms`` holds the textbook operations (correlate, rot180, dilate, pad, crop) that the
closed forms are made of; ``exact`` is the exact zero test. Every layer (``layers``, ``pooling``, ``losses``, on the
one interface of ``layer_base``) has its symbolic forward, its closed-form backward and its NumPy reference
(``reference``, ``layer_reference``); ``network`` chains them. Nothing here knows C, LaTeX or proofs.
"""
