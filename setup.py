"""Builds the optional C parts of the per-token hot path (loadtest/transport/_chunked.c and
loadtest/_sse.c); everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and the pure-Python versions
are used, which give the same results at a higher CPU cost per streamed token.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("loadtest.transport._chunked", ["loadtest/transport/_chunked.c"], optional=True),
    Extension("loadtest._sse", ["loadtest/_sse.c"], optional=True),
])
