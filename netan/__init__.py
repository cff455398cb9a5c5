"""netan: find Android apps that encrypt collected data and send it out behind the user's back.

The pipeline runs one way: sources -> flows -> analyzers -> flow records -> join -> chains -> sinks
(see README "Architecture"). Nothing happens at import time, except one default below.
"""
import os as _os

# netan's numpy work is on small vectors, where OpenBLAS's worker threads only cost: after a
# BLAS call they spin for a while on the cores netan's own processes need (measured: ~5 % of
# a Zeek run's CPU). A user's explicit setting wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
SCHEMA = "netan/1"
