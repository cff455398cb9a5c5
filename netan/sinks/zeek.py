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
import logging
import os
import time
from typing import Any, Callable, Iterable, TextIO

from netan.sinks.atomic import atomic_open, dumps

__all__ = ["write_zeek_logs", "FLOW_COLUMNS", "CHAIN_COLUMNS", "FLOWS_LOG", "CHAINS_LOG", "escape_value"]

log = logging.getLogger(__name__)

FLOWS_LOG = "netan_flows.log"
CHAINS_LOG = "netan_chains.log"

_SEP = "\t"
_SET_SEP = ","
_EMPTY = "(empty)"
_UNSET = "-"


def _get(*path: str) -> Callable[[dict[str, Any]], Any]:
    def getter(r: dict[str, Any]) -> Any:
        v: Any = r
        for p in path:
            if not isinstance(v, dict):
                return None
            v = v.get(p)
        return v

    return getter


def _cert(field: str) -> Callable[[dict[str, Any]], Any]:
    return _get("tls", "cert", field)


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
    ("tls.alpn", "string", lambda r: _alpn(_get("tls", "alpn")(r))),
    ("tls.cipher", "string", _get("tls", "cipher")),
    ("tls.ja4", "string", _get("tls", "ja4")),
    ("tls.ja3", "string", _get("tls", "ja3")),
    ("tls.ja3s", "string", _get("tls", "ja3s")),
    ("tls.cert.subject", "string", _cert("subject")),
    ("tls.cert.issuer", "string", _cert("issuer")),
    ("tls.cert.self_signed", "bool", _cert("self_signed")),
    ("tls.cert.key_type", "string", _cert("key_type")),
    ("tls.cert.key_bits", "count", _cert("key_bits")),
    ("tls.cert.not_after", "time", lambda r: _epoch(_cert("not_after")(r))),
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


def _escape_text(s: str, in_set: bool) -> str:
    """Zeek's ASCII escaping: backslash doubled, non-printables and separators as ``\\xNN``."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif o < 0x20 or o == 0x7F or ch == _SEP or (in_set and ch == _SET_SEP):
            out.append("\\x%02x" % o)
        else:
            out.append(ch)
    text = "".join(out)
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


# ------------------------------------------------------------------ writing


def _zeek_time(t: float) -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(t))


class _LogWriter:
    """One Zeek log: the header on creation, a row per ``write``, ``#close`` on ``close``."""

    def __init__(self, fh: TextIO, path: str, columns: tuple[Column, ...], as_json: bool, opened: float):
        self.fh = fh
        self.columns = columns
        self.as_json = as_json
        self.path = path
        self.rows = 0
        if not as_json:
            fh.write(
                "#separator \\x09\n"
                f"#set_separator{_SEP}{_SET_SEP}\n"
                f"#empty_field{_SEP}{_EMPTY}\n"
                f"#unset_field{_SEP}{_UNSET}\n"
                f"#path{_SEP}{path}\n"
                f"#open{_SEP}{_zeek_time(opened)}\n"
                f"#fields{_SEP}" + _SEP.join(c[0] for c in columns) + "\n"
                f"#types{_SEP}" + _SEP.join(c[1] for c in columns) + "\n"
            )

    def write(self, rec: dict[str, Any]) -> None:
        if self.as_json:
            obj: dict[str, Any] = {"_path": self.path}
            for name, ztype, get in self.columns:
                v = _json_value(get(rec), ztype)
                if v is not None:  # Zeek's JSON writer omits unset fields
                    obj[name] = v
            self.fh.write(dumps(obj) + "\n")
        else:
            self.fh.write(_SEP.join(escape_value(get(rec), ztype) for _, ztype, get in self.columns) + "\n")
        self.rows += 1

    def close(self, closed: float) -> None:
        if not self.as_json:
            self.fh.write(f"#close{_SEP}{_zeek_time(closed)}\n")


def write_zeek_logs(
    outdir: str,
    flows: Iterable[dict[str, Any]],
    chains: Iterable[dict[str, Any]],
    json: bool = False,
    *,
    opened: float | None = None,
) -> dict[str, int]:
    """Write ``netan_flows.log`` and ``netan_chains.log`` into ``outdir``; return row counts.

    ``flows`` is streamed (it may be a generator over millions of records);
    ``chains`` is read first so that only the uids its flows need are kept.
    Both files appear together or not at all: each is written to a temp file
    and renamed only when both are complete (``netan.sinks.atomic``).
    ``opened`` fixes the ``#open``/``#close`` stamps (tests; default: now).
    """
    os.makedirs(outdir, exist_ok=True)
    chain_list = list(chains)
    wanted = {fid for c in chain_list for fid in (c.get("flows") or [])}
    uid_of: dict[str, str] = {}
    stamp = time.time() if opened is None else opened
    with contextlib.ExitStack() as stack:
        ffh = stack.enter_context(atomic_open(os.path.join(outdir, FLOWS_LOG)))
        cfh = stack.enter_context(atomic_open(os.path.join(outdir, CHAINS_LOG)))
        fw = _LogWriter(ffh, "netan_flows", FLOW_COLUMNS, json, stamp)
        cw = _LogWriter(cfh, "netan_chains", CHAIN_COLUMNS, json, stamp)
        for f in flows:
            fw.write(f)
            fid = f.get("flow_id")
            if fid in wanted:
                uid_of[fid] = f.get("zeek_uid") or fid
        for c in chain_list:
            row = dict(c)
            row["_uids"] = [uid_of.get(fid, fid) for fid in c.get("flows") or []]
            cw.write(row)
        closed = time.time() if opened is None else opened
        fw.close(closed)
        cw.close(closed)
    log.info("wrote %s (%d rows) and %s (%d rows) in %s", FLOWS_LOG, fw.rows, CHAINS_LOG, cw.rows, outdir)
    return {FLOWS_LOG: fw.rows, CHAINS_LOG: cw.rows}
