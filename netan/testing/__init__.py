"""Test and demo helpers: a network-namespace lab, real traffic generators, and
writers of device-context logs that tell the truth about a recorded session.

Nothing here is used by ``netan`` at run time; the tests, the demo recorder
(``scripts/record_demo.py``) and the evaluation suite build on it. Importing
the package does nothing: each module is imported by name.
"""
