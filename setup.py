"""Builds the optional C part of the per-token hot path, ``loadtest._speedups`` (loadtest/csrc/);
everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the pure-Python versions
run (see loadtest/_accel.py), which give the same results at a higher CPU cost per streamed token.
"""

from setuptools import Extension, setup

SOURCES = ["module.c", "pieces.c", "chunked.c", "sse.c"]

setup(ext_modules=[
    Extension("loadtest._speedups", [f"loadtest/csrc/{name}" for name in SOURCES],
              depends=["loadtest/csrc/speedups.h"], optional=True),
])
