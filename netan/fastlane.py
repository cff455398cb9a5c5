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

The ``Lane`` goes one step further for a `netan zeek` run: it writes a plain
record's flows.jsonl line and netan_flows.log row itself, from templates that
``lane_plan`` cuts out of what ``dumps_line`` and the row function write of a
record holding marker values (and checks against them), and it notes the flow
for the chains; see ``netan.sources.zeek.lane``.

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

__all__ = ["C", "RECORD_KEYS", "LANE_NAMES", "LANE_SLOTS", "conn_plan", "lane_plan", "row_plan"]

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


# ---- the lane: pass 2 of a plain conn record in one call (``_fastlane.Lane``)

#: The lane's values by index: ``RECORD_KEYS``' up to missed_bytes (its K indexes), then not_observable
#: and dst_name (the name DNS gave the destination, when DNS answers were read).
LANE_NAMES = RECORD_KEYS[:RECORD_KEYS.index("missed_bytes") + 1] + ("not_observable", "dst_name")
#: The record keys whose values the lane fills in (indexes of ``LANE_NAMES``); the rest of a plain
#: record is the same for every line: payload, framing and tls included.
LANE_SLOTS = tuple(k for k, name in enumerate(LANE_NAMES) if name not in ("payload", "framing", "tls"))
#: Slots a plain record may hold None in (Zeek's unset MAC, state, history, missed bytes).
_NULLABLE = ("src_mac", "conn_state", "history", "missed_bytes", "dst_name")
_FLOATS = ("ts", "ts_end")
_INTS = ("src_port", "dst_port", "bytes_out", "bytes_in", "pkts_out", "pkts_in", "missed_bytes")


def _markers(variant: int) -> dict[str, Any]:
    """A value per slot that nothing else in a line or row can spell: text of letters, and
    numbers whose digits are long and distinct. Each ``variant`` spells them at another length,
    so that a column computed from a value's length shows up as a difference."""
    out: dict[str, Any] = {}
    for k in LANE_SLOTS:
        name = LANE_NAMES[k]
        if name == "not_observable":
            out[name] = (f"Qz{variant}Nobs", f"Qz{variant}Nobs2" + "z" * variant)
        elif name in _FLOATS:
            out[name] = 1234567000.125 + k if variant % 2 == 0 else 234567000.25 + 10 * k
        elif name in _INTS:
            out[name] = int(f"{73 + variant}{k:02d}" + "1" * (9 + variant))
        else:
            out[name] = f"Qz{variant}k{k:02d}mArK" + "z" * variant
    return out


def _spelled(value: Any, as_json: bool) -> bytes:
    """How flows.jsonl or a Zeek JSON row (``as_json``), or a Zeek TSV row, spells a marker (the
    float markers have fewer than six decimals: the JSON row's rounding keeps them)."""
    if isinstance(value, tuple):
        return ("[" + ",".join(f'"{v}"' for v in value) + "]").encode() if as_json else b"\0"
    if isinstance(value, float):
        return (repr(value) if as_json else f"{value:.6f}").encode()
    if isinstance(value, int):
        return str(value).encode()
    return (f'"{value}"' if as_json else value).encode()


def _cut(text: bytes, marks: dict[str, Any], as_json: bool) -> tuple | None:
    """``text`` as (pieces, slots) around every marker in it, or None when markers overlap."""
    found = []
    for k in LANE_SLOTS:
        spelled = _spelled(marks[LANE_NAMES[k]], as_json)
        at = text.find(spelled)
        while at >= 0:
            found.append((at, at + len(spelled), k))
            at = text.find(spelled, at + 1)
    found.sort()
    pieces, slots, last = [], [], 0
    for start, end, k in found:
        if start < last:
            return None
        pieces.append(text[last:start])
        slots.append(k)
        last = end
    pieces.append(text[last:])
    return tuple(pieces), tuple(slots)


def _values(record: dict[str, Any]) -> tuple:
    """A record's slot values in K order, as ``Lane.render`` takes them."""
    return tuple(record.get(name) for name in LANE_NAMES)


def _zeek_json_row(template: tuple) -> tuple:
    """A template of a Zeek JSON row: times rounded to microseconds as the row rounds them (mode 2),
    and a value that may be None written with its key only when it is not (the key's text, the
    ``,"name":`` before it, is what ``drops`` takes back)."""
    pieces, slots = template
    modes = tuple(2 if LANE_NAMES[k] in _FLOATS else 1 for k in slots)
    drops = []
    for piece, k in zip(pieces, slots):
        cut = piece.rfind(b',"')
        drops.append(len(piece) - cut if LANE_NAMES[k] in _NULLABLE and cut >= 0 and piece.endswith(b'":') else 0)
    return pieces, slots, modes, tuple(drops)


def lane_plan(record: dict[str, Any], dumps_line: Callable[[dict], bytes], row: Callable[[dict], bytes],
              not_observable: tuple, json_rows: bool = False) -> tuple[tuple, tuple] | None:
    """The lane's two templates (flows.jsonl line, netan_flows.log row) for plain records shaped
    like ``record`` (a plain record as ``conn_record`` makes it), cut from what ``dumps_line`` and
    ``row`` write of it with marker values; None when they are not simply the values put in place.
    ``json_rows``: the rows are Zeek JSON (``--zeek-json``), not TSV.

    Checked before use: a second set of markers, and None in every slot that may hold it, must
    come out of the templates exactly as the two Python functions write them, as must each value
    of ``not_observable`` (the Lane's table of it). So a column or key
    derived from a value (rather than the value itself) turns the lane off instead of being
    written wrong.
    """
    if C is None:
        return None

    def filled(marks: dict[str, Any]) -> dict[str, Any]:
        r = dict(record)
        r.update(marks)
        return r

    marks = _markers(0)
    shown = filled(marks)
    json_t, row_t = _cut(dumps_line(shown), marks, True), _cut(row(shown), marks, json_rows)
    if json_t is None or row_t is None or sorted(json_t[1]) != sorted(LANE_SLOTS):
        return None  # every value is in the JSON line once
    if json_rows:
        row_t = _zeek_json_row(row_t)
    probe = C.Lane(json_t, row_t, None, None, None, None, {}, not_observable, 0)
    nulls = dict(_markers(2), **{name: None for name in _NULLABLE})
    checks = [shown, filled(_markers(1)), filled(nulls)]
    checks += [filled(dict(_markers(3), not_observable=value)) for value in not_observable]
    for check in checks:
        if probe.render(_values(check)) != (dumps_line(check), row(check)):
            return None
    return json_t, row_t
