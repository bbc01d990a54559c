"""Sources and compiled module of the ``cython`` backend (see ``kernels/cython_backend.py``).

``_kernels`` is the extension built by ``setup.py`` from ``_kernels.pyx`` and the C
files here; it is absent when the build was skipped.
"""
