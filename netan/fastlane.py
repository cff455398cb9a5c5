"""The plain case of netan's per-record hot paths in C (``netan._fastlane``), and the plans it runs on.

Per conn.log line, Zeek mode parses the columns, builds the flow record, writes
a netan_flows.log row and notes the flow for the chains; in Python that was
about 15 us a line, most of it the same few operations on ordinary values.
The C module does exactly those operations for the *plain* case and answers
None for anything else, so the Python code (``reader._tsv_conn_extractor``,
``reader._conn_json``, ``Joiner.conn_flow``, ``sinks.zeek._compile_row``,
``ChainBuilder.observe``) remains the one definition: it handles and reports
every unusual record, and the tests hold the two lanes to identical output on
Zeek's own logs, the corpus and random and hostile input
(tests/test_fastlane.py, tests/test_chain_speed.py).

Plans are built here and in those modules from the Python definitions
(column positions, record keys, the row's column table), so the C code never
decides what a field means.

``C`` is the module, or None where it was not built (no compiler) or when
``NETAN_PURE_PYTHON=1`` is set; tests set it to None to run the Python lane.
"""
from __future__ import annotations

import os
from typing import Any, Callable

try:
    from netan import _fastlane
except ImportError:  # pragma: no cover - exercised by setting C = None in tests
    _fastlane = None

__all__ = ["C", "RECORD_KEYS", "conn_plan", "row_plan"]

C: Any = None if os.environ.get("NETAN_PURE_PYTHON") == "1" else _fastlane

#: The record keys ``conn_record`` sets, in the order of its ``K_*`` constants, then
#: the payload-side keys and the protocol / class strings it uses.
RECORD_KEYS = (
    "flow_id", "community_id", "ts", "ts_end", "proto", "src_ip", "src_port", "dst_ip", "dst_port", "src_mac",
    "bytes_out", "bytes_in", "pkts_out", "pkts_in", "l7", "payload", "framing", "tls", "zeek_uid", "conn_state",
    "history", "missed_bytes",
    "n", "entropy", "class", "observable", "out", "in",
    "tcp", "udp", "icmp", "icmp6", "unknown",
)


def conn_plan(separator: str, unset: str, fields: tuple[str, ...], names: tuple[str, ...]) -> tuple | None:
    """What ``tsv_conn`` needs of a TSV header: separator, unset marker, column count and the
    position of each of ``names`` (-1 if absent; the last column of a repeated name, as a dict
    of the header's fields gives). None when the header is not one the C lane reads."""
    if len(separator) != 1 or not separator.isascii() or not unset.isascii() or not fields or len(fields) > 256:
        return None
    idx = {name: i for i, name in enumerate(fields)}
    return (separator, unset, len(fields), tuple(idx.get(name, -1) for name in names))


#: Zeek types the C row formats itself (``sinks.zeek._TSV_INLINE``'s types); other scalars are text (4),
#: containers always go to the Python cell (5).
_ROW_KINDS = {"time": 0, "interval": 0, "double": 1, "count": 2, "int": 2, "port": 2, "bool": 3}


def row_plan(columns: tuple, careful_cell: Callable[[int, str, str], Callable[[Any], str]]) -> tuple:
    """``tsv_row``'s plan for a column table (``sinks.zeek.FLOW_COLUMNS``): per column its kind,
    its route (the getter's key path, or the getter itself), the getter's ``then``, the
    Python cell function for everything the C code does not format itself, and the cell of a
    value that is None before ``then`` (worked out once, as the compiled Python row does)."""
    plan = []
    for i, (name, ztype, get) in enumerate(columns):
        path = getattr(get, "path", None)
        kind = 5 if ztype.startswith(("set[", "vector[")) else _ROW_KINDS.get(ztype, 4)
        route = tuple(path) if path else get
        then = getattr(get, "then", None) if path else None
        careful = careful_cell(i, name, ztype)
        plan.append((kind, route, then, careful, careful(then(None)) if then is not None else "-"))
    return tuple(plan)
