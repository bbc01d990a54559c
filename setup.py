"""Build script: maps the top-level ``kernels/`` folder to ``fastnn.kernels`` and
compiles the Cython/C kernels when their sources are present."""

from setuptools import setup

setup(
    packages=["fastnn", "fastnn.data", "fastnn.kernels"],
    package_dir={"fastnn": "fastnn", "fastnn.kernels": "kernels"},
    package_data={"fastnn.data": ["*.npz", "*.md"]},
)
