"""Build the optional C extensions; everything else is in pyproject.toml.

* ``netan/_walk.c``: the pcap record walk (netan.walk);
* ``netan/_fastlane.c``: the plain case of the per-record hot paths (netan.fastlane): Zeek conn
  lines, netan_flows.log rows, the chain builder's bookkeeping.

``optional=True``: where no compiler exists the install still succeeds and
netan uses the Python code each of them accelerates (same results, slower).
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension(name, [f"netan/{name.split('.')[-1]}.c"], optional=True, extra_compile_args=["-O2"])
                   for name in ("netan._walk", "netan._fastlane")])
