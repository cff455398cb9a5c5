"""Build the one optional C extension (netan/_walk.c); everything else is in pyproject.toml.

``optional=True``: where no compiler exists the install still succeeds and
netan.walk uses its pure-Python loop (same results, slower).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("netan._walk", ["netan/_walk.c"], optional=True,
                             extra_compile_args=["-O2"])])
