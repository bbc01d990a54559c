"""Build script: maps the top-level ``kernels/`` folder to ``fastnn.kernels`` and
compiles the Cython/C kernels of the ``cython`` backend when it can.

The extension ``fastnn.kernels._cython._kernels`` is built from ``kernels/_cython``
(one ``.pyx`` plus plain C sources) with ``-O3`` and OpenMP. It is optional: if the
compiler or OpenMP is missing the build retries without OpenMP, and if that fails too
fastnn installs without it and the ``cython`` backend reports itself unavailable.

Environment variables read at build time:

* ``FASTNN_NATIVE=1``    add ``-march=native`` (fastest here, may crash on other CPUs);
  the default binary is portable and picks its SIMD code at run time.
* ``FASTNN_NO_OPENMP=1`` build without OpenMP (everything runs on one thread).
* ``FASTNN_SANITIZE=1``  compile and link with ``-fsanitize=address,undefined`` (see
  ``kernels/_cython/sanitize.sh``; use with ``--build-lib`` into a separate folder).
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

CYTHON_DIR = os.path.join("kernels", "_cython")
C_SOURCES = ["cpu.c", "ukernels.c", "gemm.c", "ops.c", "prims.c", "conv.c", "train.c"]
OPENMP_FLAG = "-fopenmp"


def _flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _warn(message):
    bar = "*" * 78
    print(f"\n{bar}\nWARNING: {message}\n{bar}\n", file=sys.stderr)


def _extensions():
    """The compiled-kernel extension, or [] when Cython or NumPy is not importable."""
    try:
        import numpy
        from Cython.Build import cythonize
    except ImportError as exc:
        _warn(f"fastnn's Cython backend is not built ({exc}); install Cython and NumPy "
              "to build it. The other backends work without it.")
        return []
    from setuptools import Extension

    compile_args, link_args = ["-O3", "-fno-math-errno"], []
    if not _flag("FASTNN_NO_OPENMP"):
        compile_args.append(OPENMP_FLAG)
        link_args.append(OPENMP_FLAG)
    if _flag("FASTNN_NATIVE"):
        compile_args.append("-march=native")
    if _flag("FASTNN_SANITIZE"):
        sanitize = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
        compile_args = [a for a in compile_args if a != "-O3"] + ["-O1"] + sanitize
        link_args += sanitize
    ext = Extension(
        "fastnn.kernels._cython._kernels",
        sources=[os.path.join(CYTHON_DIR, "_kernels.pyx")]
        + [os.path.join(CYTHON_DIR, name) for name in C_SOURCES],
        depends=[os.path.join(CYTHON_DIR, name) for name in os.listdir(CYTHON_DIR)
                 if name.endswith(".h")],
        include_dirs=[CYTHON_DIR, numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    try:  # generated C goes under build/ (git-ignored), not next to the .pyx
        return cythonize([ext], build_dir=os.path.join("build", "cython"), quiet=True,
                         compiler_directives={"language_level": 3})
    except Exception as exc:  # a Cython error must not stop the install
        _warn(f"Cython could not translate {ext.name} ({exc}); fastnn is installed "
              "without its Cython backend.")
        return []


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install: an extension that does not compile is
    retried without OpenMP, then dropped with a warning."""

    def build_extensions(self):
        for ext in list(self.extensions):
            if not self._try_build(ext):
                self.extensions.remove(ext)   # so install/copy steps do not look for it

    def _try_build(self, ext):
        try:
            self.build_extension(ext)
            return True
        except Exception as exc:  # compiler missing, OpenMP missing, ...: any failure
            first = exc
        if OPENMP_FLAG in ext.extra_compile_args:
            _warn(f"building {ext.name} with OpenMP failed ({first}); retrying without "
                  "OpenMP (its kernels will run on one thread)")
            ext.extra_compile_args = [a for a in ext.extra_compile_args if a != OPENMP_FLAG]
            ext.extra_link_args = [a for a in ext.extra_link_args if a != OPENMP_FLAG]
            try:
                self.build_extension(ext)
                return True
            except Exception as exc:
                first = exc
        _warn(f"could not build {ext.name}: {first}\nfastnn is installed without its "
              "Cython backend; `fastnn backends` shows the reason.")
        return False


setup(
    packages=["fastnn", "fastnn.data", "fastnn.teach", "fastnn.kernels", "fastnn.kernels._cython"],
    package_dir={"fastnn": "fastnn", "fastnn.kernels": "kernels"},
    package_data={"fastnn.data": ["*.npz", "*.md"], "fastnn.teach": ["*.html"]},
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
)
