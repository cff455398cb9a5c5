"""Build the optional C extensions; everything else is in pyproject.toml.

* ``netan/_walk.c``: the pcap record walk (netan.walk);
* ``netan/_zeekfast.c``: the plain-case lane of ``netan zeek`` (netan.zeekfast).

``optional=True``: where no compiler exists the install still succeeds and
netan uses the Python code each of them accelerates (same results, slower).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension(name, [f"netan/{name.split('.')[-1]}.c"], optional=True, extra_compile_args=["-O2"])
                   for name in ("netan._walk", "netan._zeekfast")])
