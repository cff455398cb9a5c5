"""netan: find Android apps that encrypt collected data and send it out behind the user's back.

The pipeline runs one way: sources -> flows -> analyzers -> flow records -> join -> chains -> sinks
(see README "Architecture"). Nothing happens at import time.
"""
__version__ = "0.1.0"
SCHEMA = "netan/1"
