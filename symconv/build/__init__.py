"""Build: C source and a cffi cdef -> a loaded extension module, through a persistent cache.

``cache`` keys every module on its source, flags, compiler and Python ABI, builds it in a private temporary
directory under a lock, installs it atomically and checks its manifest before every load.
"""
