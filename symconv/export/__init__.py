"""Export: a ``Network`` with its parameters -> a standalone C99 library directory (inference and on-device training).

The stage after ``codegen`` that ``README``'s architecture names "a new backend": it takes the same kernel plans and
the same rendered kernels as the cffi build, in their portable variants (``loops``/``unrolled`` convolutions, the
layer templates), and adds what a microcontroller or an edge board needs: one header with the C API and every
memory size as a macro, the network's passes calling the kernels on the caller's memory, the parameters as const
arrays, a Makefile, a CMakeLists.txt and a host test program that checks the C against Python's compiled network.
"""

from .layout import Library, plan_library
from .write import export_network

__all__ = ["Library", "plan_library", "export_network"]
