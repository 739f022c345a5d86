"""Runtime: loaded kernel modules and NumPy arrays -> checked, zero-copy calls of the C kernels.

``operands`` checks every argument of every kernel (one ``Operand``, one ``KernelCall``); ``checked_call`` runs the
common case of the same checks in C; ``kernels`` (``ConvKernels``) and ``layer_kernels`` give each layer its
methods; ``network`` (``CompiledNetwork``) runs a whole network's forward, backward and SGD steps.
"""
