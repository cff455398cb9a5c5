"""Zeek-format outputs: ``netan_flows.log`` and ``netan_chains.log`` (TSV, or JSON lines).

Contract: ``write_zeek_logs(outdir, flows, chains, json=False)`` writes the two
logs the way Zeek's own ASCII writer would (``Log::WRITER_ASCII``: the header
block ``#separator \\x09``, ``#set_separator``, ``#empty_field (empty)``,
``#unset_field -``, ``#path``, ``#open``, ``#fields``, ``#types``, rows,
``#close``; values escaped as ``src/threading/formatters/Ascii.cc`` does), or
as Zeek's JSON writer would (``LogAscii::use_json=T``: one object per line,
dotted column names, unset columns omitted, times as epoch seconds).  Each
flow row carries Zeek's ``uid`` when the flow came from Zeek logs, and each
chain row the ``uids`` of its flows, so zeek-cut, Brim/Zed, Splunk or a Zeek
script can join them with conn.log.  Files are written atomically (temp
file in the same directory, then ``os.replace``).  Payload bytes are never
written; only the facts in the flow records.

The schema (column, Zeek type, getter) lives in ``FLOW_COLUMNS`` and
``CHAIN_COLUMNS``; it is the documentation of the two logs (docs/zeek.md).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import time
from typing import Any, Callable, Iterable, TextIO

from netan.sinks.atomic import atomic_open, dumps

__all__ = ["write_zeek_logs", "ZeekLogs", "FlowRows", "FLOW_COLUMNS", "CHAIN_COLUMNS", "FLOWS_LOG", "CHAINS_LOG", "escape_value"]

log = logging.getLogger(__name__)

FLOWS_LOG = "netan_flows.log"
CHAINS_LOG = "netan_chains.log"

_SEP = "\t"
_SET_SEP = ","
_EMPTY = "(empty)"
_UNSET = "-"


def _get(*path: str, then: Callable[[Any], Any] | None = None) -> Callable[[dict[str, Any]], Any]:
    """The value at ``path`` in nested dicts, None where a step is not a dict, passed through ``then``.

    ``path`` and ``then`` stay on the getter: the compiled rows use them directly.
    """
    def getter(r: dict[str, Any]) -> Any:
        v: Any = r
        for p in path:
            if not isinstance(v, dict):
                v = None
                break
            v = v.get(p)
        return v if then is None else then(v)

    getter.path = path  # type: ignore[attr-defined]
    getter.then = then  # type: ignore[attr-defined]
    return getter


def _cert(field: str, then: Callable[[Any], Any] | None = None) -> Callable[[dict[str, Any]], Any]:
    return _get("tls", "cert", field, then=then)


Column = tuple[str, str, Callable[[dict[str, Any]], Any]]

#: netan_flows.log: (column, Zeek type, value from a flow record).
FLOW_COLUMNS: tuple[Column, ...] = (
    ("ts", "time", _get("ts")),
    ("uid", "string", lambda r: r.get("zeek_uid") or r.get("flow_id")),
    ("flow_id", "string", _get("flow_id")),
    ("id.orig_h", "addr", _get("src_ip")),
    ("id.orig_p", "port", _get("src_port")),
    ("id.resp_h", "addr", _get("dst_ip")),
    ("id.resp_p", "port", _get("dst_port")),
    ("proto", "enum", _get("proto")),
    ("community_id", "string", _get("community_id")),
    ("ts_end", "time", _get("ts_end")),
    ("orig_l2_addr", "string", _get("src_mac")),
    ("bytes_out", "count", _get("bytes_out")),
    ("bytes_in", "count", _get("bytes_in")),
    ("pkts_out", "count", _get("pkts_out")),
    ("pkts_in", "count", _get("pkts_in")),
    ("l7", "string", _get("l7")),
    ("dst_name", "string", _get("dst_name")),
    ("payload.out.n", "count", _get("payload", "out", "n")),
    ("payload.out.entropy", "double", _get("payload", "out", "entropy")),
    ("payload.out.class", "string", _get("payload", "out", "class")),
    ("payload.in.n", "count", _get("payload", "in", "n")),
    ("payload.in.entropy", "double", _get("payload", "in", "entropy")),
    ("payload.in.class", "string", _get("payload", "in", "class")),
    ("framing", "set[string]", _get("framing")),
    ("tls.version", "string", _get("tls", "version")),
    ("tls.sni", "string", _get("tls", "sni")),
    ("tls.alpn", "string", _get("tls", "alpn", then=lambda v: _alpn(v))),
    ("tls.cipher", "string", _get("tls", "cipher")),
    ("tls.ja4", "string", _get("tls", "ja4")),
    ("tls.ja3", "string", _get("tls", "ja3")),
    ("tls.ja3s", "string", _get("tls", "ja3s")),
    ("tls.cert.subject", "string", _cert("subject")),
    ("tls.cert.issuer", "string", _cert("issuer")),
    ("tls.cert.self_signed", "bool", _cert("self_signed")),
    ("tls.cert.key_type", "string", _cert("key_type")),
    ("tls.cert.key_bits", "count", _cert("key_bits")),
    ("tls.cert.not_after", "time", _cert("not_after", then=lambda v: _epoch(v))),
    ("device", "string", _get("device")),
    ("app", "string", _get("app")),
    ("attribution", "string", _get("attribution")),
    ("app_state", "string", _get("app_state")),
)

#: netan_chains.log: (column, Zeek type, value from a chain record); ``uids``
#: is filled from the flows written alongside.
CHAIN_COLUMNS: tuple[Column, ...] = (
    ("ts", "time", _get("ts_start")),
    ("chain_id", "string", _get("chain_id")),
    ("ts_end", "time", _get("ts_end")),
    ("device", "string", _get("device")),
    ("app", "string", _get("app")),
    ("score", "count", _get("score")),
    ("severity", "enum", _get("severity")),
    ("analytics", "set[string]", _get("analytics")),
    ("uids", "vector[string]", _get("_uids")),
    ("flows", "vector[string]", _get("flows")),
    ("destinations", "vector[string]", _get("destinations")),
    ("keys", "vector[string]", _get("keys")),
    ("evidence.kind", "vector[string]", lambda c: [e.get("kind") for e in c.get("evidence") or []]),
    ("evidence.source", "vector[string]", lambda c: [e.get("source") for e in c.get("evidence") or []]),
    ("evidence.weight", "vector[double]", lambda c: [e.get("weight") for e in c.get("evidence") or []]),
    ("evidence.detail", "vector[string]", lambda c: [e.get("detail") for e in c.get("evidence") or []]),
)


def _alpn(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return ",".join(str(x) for x in v) if v else None
    return v


def _epoch(v: Any) -> Any:
    """A certificate time as epoch seconds (sources may give a number or ISO-8601 text)."""
    if v is None or isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        from datetime import datetime, timezone

        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    return None


# ------------------------------------------------------------------ TSV values


_NEEDS_ESCAPE = re.compile(r"[\x00-\x1f\x7f\\]")
_NEEDS_ESCAPE_IN_SET = re.compile(r"[\x00-\x1f\x7f\\" + _SET_SEP + "]")


def _escape_char(m: re.Match[str]) -> str:
    ch = m.group(0)
    return "\\\\" if ch == "\\" else "\\x%02x" % ord(ch)


def _escape_text(s: str, in_set: bool) -> str:
    """Zeek's ASCII escaping: backslash doubled, non-printables and separators as ``\\xNN``."""
    text = (_NEEDS_ESCAPE_IN_SET if in_set else _NEEDS_ESCAPE).sub(_escape_char, s)
    # A value that reads like the unset or empty marker gets its first byte
    # escaped, as Zeek does, so it round-trips as text.
    if text == _UNSET or text == _EMPTY:
        text = "\\x%02x" % ord(text[0]) + text[1:]
    return text


def _fmt_double(v: float) -> str:
    s = f"{v:.6f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def _scalar_tsv(v: Any, ztype: str, in_set: bool) -> str:
    if v is None:
        return _UNSET
    if ztype in ("time", "interval"):
        return f"{float(v):.6f}"
    if ztype == "double":
        return _fmt_double(float(v))
    if ztype in ("count", "int", "port"):
        return str(int(v))
    if ztype == "bool":
        return "T" if v else "F"
    s = str(v)
    if s == "" and not in_set:
        return _EMPTY
    return _escape_text(s, in_set)


def escape_value(v: Any, ztype: str) -> str:
    """One value in Zeek TSV form for a column of type ``ztype``."""
    if ztype.startswith(("set[", "vector[")):
        if v is None:
            return _UNSET
        if isinstance(v, (str, bytes)):
            v = [v]
        items = list(v)
        if not items:
            return _EMPTY
        inner = ztype[ztype.index("[") + 1 : -1]
        return _SET_SEP.join(_scalar_tsv(x, inner, True) for x in items)
    return _scalar_tsv(v, ztype, False)


# ------------------------------------------------------------------ JSON values


def _json_value(v: Any, ztype: str) -> Any:
    if v is None:
        return None
    if ztype.startswith(("set[", "vector[")):
        inner = ztype[ztype.index("[") + 1 : -1]
        if isinstance(v, (str, bytes)):
            v = [v]
        return [_json_value(x, inner) for x in v]
    if ztype in ("time", "interval", "double"):
        return round(float(v), 6)
    if ztype in ("count", "int", "port"):
        return int(v)
    if ztype == "bool":
        return bool(v)
    return str(v)


# ------------------------------------------------------------------ compiled rows
#
# A log row is one Python function per log and format, written from the column
# table when the writer is made: nested lookups shared between columns (``tls``,
# ``tls.cert``, ...) are done once per row, and each value is formatted inline
# by its Zeek type, with the common case of a plain string passed through. It
# gives exactly what ``escape_value`` / ``_json_value`` give column by column
# (tested), at a tenth of the cost: netan_flows.log gets a row per flow.

_TSV_INLINE = {
    "time": '"-" if {v} is None else "%.6f" % float({v})',
    "interval": '"-" if {v} is None else "%.6f" % float({v})',
    "double": '"-" if {v} is None else _fmt_double(float({v}))',
    "count": '"-" if {v} is None else str({v}) if type({v}) is int else str(int({v}))',
    "int": '"-" if {v} is None else str({v}) if type({v}) is int else str(int({v}))',
    "port": '"-" if {v} is None else str({v}) if type({v}) is int else str(int({v}))',
    "bool": '"-" if {v} is None else "T" if {v} else "F"',
}
# any other scalar type is text: unset, empty, escaped -- or the string itself when nothing needs escaping
_TSV_TEXT = ('"-" if {v} is None else {v} if type({v}) is str and {v} and {v}.isprintable() and "\\\\" not in {v} '
             'and {v} != "-" and {v} != "(empty)" else _scalar_tsv({v}, {t!r}, False)')
# The same for the usual row: a backslash is looked for once in the whole line, which then
# goes the careful way (``_TSV_TEXT``) if it has one.
_TSV_TEXT_QUICK = ('"-" if {v} is None else {v} if type({v}) is str and {v} not in _MARKERS and {v}.isprintable() '
                   'else _scalar_tsv({v}, {t!r}, False)')
_JSON_INLINE = {
    "time": "round(float({v}), 6)", "interval": "round(float({v}), 6)", "double": "round(float({v}), 6)",
    "count": "int({v})", "int": "int({v})", "port": "int({v})", "bool": "bool({v})",
}


def _compile_row(columns: tuple[Column, ...], as_json: bool, path: str,
                 quick: bool = True) -> Callable[[dict[str, Any]], str]:
    """The function that turns one record into its row (a line, newline included) of this log.

    Columns read through the same nested dict (``tls``, ``tls.cert``, ...) are
    grouped under one test of that dict, so a flow without TLS pays one test
    for all the ``tls.*`` columns. ``quick`` (TSV): text passes unchecked for
    backslashes, and a line that has one is made again by the careful row.
    """
    quick = quick and not as_json
    env: dict[str, Any] = {"_fmt_double": _fmt_double, "_scalar_tsv": _scalar_tsv, "escape_value": escape_value,
                           "_json_value": _json_value, "dumps": dumps, "_MARKERS": frozenset(("", _UNSET, _EMPTY))}
    text = _TSV_TEXT_QUICK if quick else _TSV_TEXT
    unset = "None" if as_json else repr(_UNSET)
    groups: dict[tuple[str, ...], list[int]] = {}
    body: list[str] = []
    for i, (name, ztype, get) in enumerate(columns):
        route = getattr(get, "path", None)
        if route:
            groups.setdefault(tuple(route[:-1]), []).append(i)
        else:
            env[f"g{i}"] = get
            body += [f"v = g{i}(r)", *_cell(i, name, ztype, as_json, text)]

    def emit(prefix: tuple[str, ...], holder: str, depth: int) -> list[str]:
        """Code for the columns under ``prefix``, whose dict is in ``holder``; nested prefixes recursively."""
        out: list[str] = []
        for i in groups.get(prefix, []):
            get = columns[i][2]
            out.append(f"v = {holder}.get({get.path[-1]!r})")
            if get.then is not None:
                env[f"t{i}"] = get.then
                out.append(f"v = t{i}(v)")
            out += _cell(i, columns[i][0], columns[i][1], as_json, text)
        for sub in sorted(p for p in groups if len(p) == len(prefix) + 1 and p[:-1] == prefix):
            inner = f"d{depth + 1}"
            nested = emit(sub, inner, depth + 1)
            cells = _cells_under(sub)
            out.append(f"{inner} = {holder}.get({sub[-1]!r})")
            out.append(f"if isinstance({inner}, dict):")
            out += ["    " + line for line in nested]
            out.append("else:")
            out.append("    " + " = ".join(f"c{i}" for i in cells) + f" = {unset}")
            # a column with ``then`` sees None when its dict is missing, as the getter does
            out += [f"    c{i} = {_value_of_none(columns[i], as_json, env, i)}" for i in cells
                    if columns[i][2].then is not None]
        return out

    def _cells_under(prefix: tuple[str, ...]) -> list[int]:
        return [i for p, idx in groups.items() if p[:len(prefix)] == prefix for i in idx]

    # every prefix chain starts at the record; prefixes whose parents have no columns still need their path
    for p in list(groups):
        for k in range(1, len(p)):
            groups.setdefault(p[:k], [])
    code = ["def row(r):"]
    code += ["    " + line for line in emit((), "r", 0) + body]
    if as_json:  # Zeek's JSON writer: the columns in order, unset ones left out
        code.append(f"    o = {{'_path': {path!r}}}")
        code += [f"    if c{i} is not None: o[{c[0]!r}] = c{i}" for i, c in enumerate(columns)]
        code.append('    return dumps(o) + "\\n"')
    else:
        code.append('    line = "\\t".join((' + ", ".join(f"c{i}" for i in range(len(columns))) + ',)) + "\\n"')
        if quick:
            env["careful"] = _compile_row(columns, as_json, path, quick=False)
            code.append('    return line if "\\\\" not in line else careful(r)')
        else:
            code.append("    return line")
    exec("\n".join(code), env)  # noqa: S102 -- source written here from the column table, never from input
    return env["row"]


def _value_of_none(column: Column, as_json: bool, env: dict[str, Any], i: int) -> str:
    """The cell of a column whose dict is missing, when its getter transforms None (worked out once, here)."""
    env[f"n{i}"] = _cell_value(column[2].then(None), column[1], as_json)
    return f"n{i}"


def _cell_value(v: Any, ztype: str, as_json: bool) -> Any:
    return _json_value(v, ztype) if as_json else escape_value(v, ztype)


def _cell(i: int, name: str, ztype: str, as_json: bool, text: str = _TSV_TEXT) -> list[str]:
    """Code formatting the value ``v`` of column ``i`` into ``c{i}`` (JSON: None when unset)."""
    container = ztype.startswith(("set[", "vector["))
    if as_json:
        value = f"_json_value(v, {ztype!r})" if container else \
            _JSON_INLINE.get(ztype, "v if type(v) is str else str(v)").format(v="v")
        return [f"c{i} = None if v is None else {value}"]
    if container:
        return [f'c{i} = "-" if v is None else "(empty)" if (type(v) is list or type(v) is tuple) and not v '
                f"else escape_value(v, {ztype!r})"]
    return [f"c{i} = " + _TSV_INLINE.get(ztype, text).format(v="v", t=ztype)]


def _careful_cell(i: int, name: str, ztype: str) -> Callable[[Any], str]:
    """Column ``i``'s TSV cell as a function of its value: the careful row's code for that column."""
    env: dict[str, Any] = {"_fmt_double": _fmt_double, "_scalar_tsv": _scalar_tsv, "escape_value": escape_value}
    code = ["def cell(v):", *("    " + line for line in _cell(i, name, ztype, False, _TSV_TEXT)), f"    return c{i}"]
    exec("\n".join(code), env)  # noqa: S102 -- source written here from the column table, never from input
    return env["cell"]


def _c_rows() -> Any:
    """The C module of ``netan.fastlane``, or None (not built, or turned off)."""
    from netan import fastlane

    return fastlane.C


@functools.lru_cache(maxsize=None)
def _flow_plan() -> tuple:
    from netan import fastlane

    return fastlane.row_plan(FLOW_COLUMNS, _careful_cell)


def _flow_row(as_json: bool) -> Callable[[dict[str, Any]], str]:
    """netan_flows.log's row function: the C row (``netan.fastlane``) for TSV when built, else compiled Python."""
    if _c_rows() is None or as_json:
        return _compile_row(FLOW_COLUMNS, as_json, "netan_flows")
    return functools.partial(_c_rows().tsv_row, _flow_plan())


def _utf8_bytes_under(fh: Any) -> Any:
    """The binary file under a UTF-8 text file, or None (a StringIO, another encoding)."""
    import codecs

    raw = getattr(fh, "buffer", None)
    encoding = getattr(fh, "encoding", None)
    if raw is None or not encoding or codecs.lookup(encoding).name != "utf-8":
        return None
    return raw


# ------------------------------------------------------------------ writing


def _zeek_time(t: float) -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(t))


def _header(path: str, columns: tuple[Column, ...], opened: float) -> str:
    return (
        "#separator \\x09\n"
        f"#set_separator{_SEP}{_SET_SEP}\n"
        f"#empty_field{_SEP}{_EMPTY}\n"
        f"#unset_field{_SEP}{_UNSET}\n"
        f"#path{_SEP}{path}\n"
        f"#open{_SEP}{_zeek_time(opened)}\n"
        f"#fields{_SEP}" + _SEP.join(c[0] for c in columns) + "\n"
        f"#types{_SEP}" + _SEP.join(c[1] for c in columns) + "\n"
    )


def _encoded(row: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], bytes]:
    def encoded(record: dict[str, Any]) -> bytes:
        return row(record).encode("utf-8")

    return encoded


class FlowRows:
    """Rows of ``netan_flows.log`` (no header) into an open text file, and the uids chains will need.

    Chains name flows by id; their ``uids`` column needs each flow's Zeek uid,
    which equals the flow id except for the rare repeated uid, so only those
    differences are kept.
    """

    def __init__(self, fh: TextIO, json: bool = False) -> None:
        self.fh = fh
        self.json = json
        self.rows = 0
        self.uid_differs: dict[Any, Any] = {}
        self._bytes = False  # whether rows go to the binary layer as bytes
        raw = _utf8_bytes_under(fh)
        if raw is not None and _c_rows() is not None:
            # Rows as bytes straight into the file's binary layer (TSV: the C row, no str at all);
            # the text layer is flushed first and written again only after the rows (#close).
            fh.flush()
            row = _flow_row(True) if json else functools.partial(_c_rows().tsv_row_bytes, _flow_plan())
            self._write, self._row, self._bytes = raw.write, _encoded(row) if json else row, True
        else:
            self._write, self._row = fh.write, _flow_row(json)

    def lane_outputs(self) -> tuple[Callable[[bytes], Any], Callable[[dict[str, Any]], bytes]] | None:
        """(write, row) for rows made elsewhere as bytes (``netan._fastlane.Lane``): the binary
        layer's write and the row function it is written with (Zeek TSV, or Zeek JSON when
        ``json``); None when rows are not written as bytes (another encoding, no C module).
        The maker counts its rows with ``count``."""
        return (self._write, self._row) if self._bytes else None

    def count(self, rows: int) -> None:
        self.rows += rows

    def flow(self, f: dict[str, Any]) -> None:
        self._write(self._row(f))
        self.rows += 1
        fid = f.get("flow_id")
        uid = f.get("zeek_uid") or fid
        if uid != fid:
            self.uid_differs[fid] = uid
        elif self.uid_differs:
            self.uid_differs.pop(fid, None)  # a later flow with this id decides, as a dict would


class ZeekLogs:
    """``netan_flows.log`` and ``netan_chains.log`` written together: flows as they come, chains at the end.

    Use as a context manager: ``flow(record)`` per flow (or ``count_rows`` of rows a
    ``FlowRows`` wrote elsewhere and another process places, see ``end``), ``chains(chains)`` once; both files are
    committed when the block ends normally and neither when it raises (temp
    files, ``netan.sinks.atomic``).
    """

    def __init__(self, outdir: str, json: bool = False, opened: float | None = None) -> None:
        os.makedirs(outdir, exist_ok=True)
        self.outdir = outdir
        self.as_json = json
        self.opened = opened
        self.chain_rows = 0
        self._stack = contextlib.ExitStack()
        self._chain_row = _compile_row(CHAIN_COLUMNS, json, "netan_chains")

    def __enter__(self) -> "ZeekLogs":
        stamp = time.time() if self.opened is None else self.opened
        with contextlib.ExitStack() as stack:
            self._ffh = stack.enter_context(atomic_open(os.path.join(self.outdir, FLOWS_LOG)))
            self._cfh = stack.enter_context(atomic_open(os.path.join(self.outdir, CHAINS_LOG)))
            self._stack = stack.pop_all()
        if not self.as_json:
            self._ffh.write(_header("netan_flows", FLOW_COLUMNS, stamp))
            self._cfh.write(_header("netan_chains", CHAIN_COLUMNS, stamp))
        self._flows = FlowRows(self._ffh, self.as_json)
        self.flow = self._flows.flow
        return self

    def flush(self) -> None:
        """Empty the write buffers (before a fork: a child must not inherit unwritten rows)."""
        self._ffh.flush()
        self._cfh.flush()

    def count_rows(self, rows: FlowRows | dict[str, Any]) -> None:
        """Account for rows a ``FlowRows`` wrote elsewhere that are (or will be) placed in netan_flows.log."""
        state = rows if isinstance(rows, dict) else vars(rows)
        self._flows.rows += state["rows"]
        self._flows.uid_differs.update(state["uid_differs"])

    def end(self) -> tuple[int, int]:
        """(file descriptor, byte offset after the last row) of netan_flows.log, buffers written out:
        where other processes may place rows (``netan.sinks.atomic.copy_into``)."""
        self._ffh.flush()
        return self._ffh.fileno(), self._ffh.buffer.tell()

    def skip_to(self, at: int) -> None:
        """Write the next rows from byte ``at`` on (the bytes before it are placed by others)."""
        self._ffh.flush()
        self._ffh.buffer.seek(at)

    def chains(self, chains: Iterable[dict[str, Any]]) -> None:
        uid_of = self._flows.uid_differs
        for c in chains:
            row = dict(c)
            row["_uids"] = [uid_of.get(fid, fid) for fid in c.get("flows") or []]
            self._cfh.write(self._chain_row(row))
            self.chain_rows += 1

    @property
    def flow_rows(self) -> FlowRows:
        """The ``FlowRows`` that ``flow`` writes with."""
        return self._flows

    @property
    def rows(self) -> dict[str, int]:
        return {FLOWS_LOG: self._flows.rows, CHAINS_LOG: self.chain_rows}

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None and not self.as_json:
            closed = _zeek_time(time.time() if self.opened is None else self.opened)
            self._ffh.write(f"#close{_SEP}{closed}\n")
            self._cfh.write(f"#close{_SEP}{closed}\n")
        self._stack.__exit__(*exc)
        if exc[0] is None:
            log.info("wrote %s (%d rows) and %s (%d rows) in %s", FLOWS_LOG, self._flows.rows, CHAINS_LOG,
                     self.chain_rows, self.outdir)


def write_zeek_logs(
    outdir: str,
    flows: Iterable[dict[str, Any]],
    chains: Iterable[dict[str, Any]],
    json: bool = False,
    *,
    opened: float | None = None,
) -> dict[str, int]:
    """Write ``netan_flows.log`` and ``netan_chains.log`` into ``outdir``; return row counts.

    ``flows`` is streamed (it may be a generator over millions of records).
    Both files appear together or not at all: each is written to a temp file
    and renamed only when both are complete (``netan.sinks.atomic``).
    ``opened`` fixes the ``#open``/``#close`` stamps (tests; default: now).
    """
    with ZeekLogs(outdir, json, opened) as out:
        for f in flows:
            out.flow(f)
        out.chains(chains)
    return dict(out.rows)
