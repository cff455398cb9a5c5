"""``read_zeek``: Zeek logs (TSV or JSON, plain or gzip, any file names) -> netan flow records.

Contract: ``read_zeek(paths, problems)`` yields one flow record per conn.log
line, then one per ssl/dns/http connection that had no conn.log line, joined
by ``uid``.  Order of work, chosen for memory: every non-conn log is loaded
first (they are small next to conn.log, and certificates are shared), then
conn.log is streamed and each line pops its uid's side entries, so memory
does not grow with conn.log.  Bad lines are reported to ``problems`` with file
and line number and skipped; a bad value inside a good line is reported and
set to None; nothing raises for bad input.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

from netan.problems import Problems
from netan.sources.zeek.convert import CONN_FIELDS, SIDE_FIELDS, Joiner, normalise
from netan.sources.zeek.discover import LogFile, discover, open_lines
from netan.sources.zeek.jsonlog import json_time, read_json
from netan.sources.zeek.tsv import TsvHeader, decode_lenient, decoder, read_tsv, unescape

__all__ = ["read_zeek", "iter_side_records", "iter_conn_tuples"]

log = logging.getLogger(__name__)

_CONN_NAMES = tuple(name for name, _ in CONN_FIELDS)
_CONN_KINDS = tuple(kind for _, kind in CONN_FIELDS)
_CONN_INT = tuple(i for i, k in enumerate(_CONN_KINDS) if k == "int")
_CONN_STR = tuple(i for i, k in enumerate(_CONN_KINDS) if k == "str")


def read_zeek(paths: list[str], problems: Problems) -> Iterator[dict[str, Any]]:
    """Flow records from the Zeek logs in ``paths`` (files or directories)."""
    files = discover(list(paths), problems)
    joiner = Joiner()
    conn_files: list[LogFile] = []
    for lf in files:
        if lf.kind == "conn":
            conn_files.append(lf)
            continue
        n = 0
        for rec in iter_side_records(lf, problems):
            joiner.add(lf.kind, rec)
            n += 1
        log.info("%s: %d %s records (%s)", lf.path, n, lf.kind, lf.fmt)
    for lf in conn_files:
        n = 0
        for where, c in iter_conn_tuples(lf, problems):
            try:
                flow = joiner.conn_flow(c)
            except (OSError, ValueError, TypeError) as e:
                # An address that is not an address, a port that is not a number
                # in an untyped log: the line cannot be a flow.
                log.debug("%s %s: %s", lf.path, where, e)
                problems.skip(lf.path, where, "conn_bad_record")
                continue
            n += 1
            yield flow
        log.info("%s: %d conn records (%s)", lf.path, n, lf.fmt)
    yield from joiner.leftover_flows()
    log.info("zeek join: %s", joiner.counts)


# ------------------------------------------------------------------ side logs


def iter_side_records(lf: LogFile, problems: Problems) -> Iterator[dict[str, Any]]:
    """Normalised records (``SIDE_FIELDS[kind]`` names) of one non-conn log."""
    spec = SIDE_FIELDS[lf.kind]
    lines = open_lines(lf.path, lf.gzipped, problems)
    if lf.fmt == "json":
        for lineno, obj in read_json(lines, lf.path, problems):
            out: dict[str, Any] = {}
            for name, kind in spec:
                try:
                    out[name] = normalise(kind, obj.get(name))
                except (ValueError, TypeError):
                    problems.skip(lf.path, f"line {lineno} field {name}", "bad_value")
                    out[name] = None
            yield out
        return
    cache: tuple[TsvHeader | None, Any] = (None, None)
    names = [name for name, _ in spec]
    for header, lineno, parts in read_tsv(lines, lf.path, problems):
        if cache[0] is not header:
            cache = (header, decoder(header, names))
        rec = decode_lenient(cache[1], parts, lf.path, f"line {lineno}", problems)
        if not header.types:
            # No #types line: values are text, typed here by what the column is.
            for name, kind in spec:
                if name in rec:
                    try:
                        rec[name] = normalise(kind, rec[name])
                    except (ValueError, TypeError):
                        problems.skip(lf.path, f"line {lineno} field {name}", "bad_value")
                        rec[name] = None
        for name, _ in spec:
            rec.setdefault(name, None)
        yield rec


# ------------------------------------------------------------------ conn.log


def iter_conn_tuples(lf: LogFile, problems: Problems) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``(where, tuple ordered as CONN_FIELDS)`` per usable conn.log line."""
    lines = open_lines(lf.path, lf.gzipped, problems)
    if lf.fmt == "json":
        yield from _conn_json(lines, lf.path, problems)
    else:
        yield from _conn_tsv(lines, lf.path, problems)


def _usable(c: tuple[Any, ...] | list[Any]) -> bool:
    return c[0] is not None and bool(c[2]) and bool(c[4])


def _conn_json(lines: Any, path: str, problems: Problems) -> Iterator[tuple[str, tuple[Any, ...]]]:
    for lineno, obj in read_json(lines, path, problems):
        g = obj.get
        vals = [g(n) for n in _CONN_NAMES]
        try:
            vals[0] = json_time(vals[0])
            if vals[8] is not None:
                vals[8] = round(float(vals[8]), 6)
        except (ValueError, TypeError):
            vals = _conn_json_lenient(obj, path, lineno, problems)
        for i in _CONN_INT:
            v = vals[i]
            if v is not None and type(v) is not int:
                try:
                    vals[i] = normalise("int", v)
                except (ValueError, TypeError):
                    problems.skip(path, f"line {lineno} field {_CONN_NAMES[i]}", "bad_value")
                    vals[i] = None
        for i in _CONN_STR:
            v = vals[i]
            if v is not None and type(v) is not str:
                vals[i] = normalise("str", v)
        if not _usable(vals):
            problems.skip(path, f"line {lineno}", "conn_missing_ts_or_id")
            continue
        yield f"line {lineno}", tuple(vals)


def _conn_json_lenient(obj: dict[str, Any], path: str, lineno: int, problems: Problems) -> list[Any]:
    vals = []
    for name, kind in CONN_FIELDS:
        try:
            vals.append(normalise(kind, obj.get(name)))
        except (ValueError, TypeError):
            problems.skip(path, f"line {lineno} field {name}", "bad_value")
            vals.append(None)
    return vals


def _tsv_conn_extractor(header: TsvHeader) -> Callable[[list[str]], tuple[Any, ...]]:
    """A fast converter from one conn.log line's columns to the ``CONN_FIELDS`` tuple.

    Written out by hand because this is the hot loop of Zeek mode (one call per
    conn.log line); column positions come from this header's ``#fields``, and a
    column the header lacks reads the unset sentinel appended to the line.
    Raises ValueError for a value that does not convert (the caller then
    decodes the line leniently).
    """
    idx = {name: i for i, name in enumerate(header.fields)}
    miss = len(header.fields)
    (its, iuid, ioh, iop, irh, irp, iproto, isvc, idur, iob, irb, ist, imiss, ihist,
     iopk, irpk, imac, icid, iipp) = (idx.get(name, miss) for name in _CONN_NAMES)
    U = header.unset_field

    def extract(p: list[str]) -> tuple[Any, ...]:
        p.append(U)
        svc = p[isvc]
        if svc == U:
            svc = None
        elif "\\" in svc:
            svc = unescape(svc)
        v = p[idur]
        dur = float(v) if v != U else None
        v = p[iob]
        ob = int(v) if v != U else None
        v = p[irb]
        rb = int(v) if v != U else None
        v = p[imiss]
        missed = int(v) if v != U else None
        v = p[iopk]
        opk = int(v) if v != U else None
        v = p[irpk]
        rpk = int(v) if v != U else None
        v = p[iipp]
        ipp = int(v) if v != U else None
        v = p[iop]
        op = int(v) if v != U else None
        v = p[irp]
        rp = int(v) if v != U else None
        st = p[ist]
        hist = p[ihist]
        mac = p[imac]
        cid = p[icid]
        return (
            float(p[its]),
            p[iuid] if p[iuid] != U else None,
            p[ioh],
            op,
            p[irh],
            rp,
            p[iproto] if p[iproto] != U else None,
            svc,
            dur,
            ob,
            rb,
            st if st != U else None,
            missed,
            hist if hist != U else None,
            opk,
            rpk,
            mac if mac != U else None,
            cid if cid != U else None,
            ipp,
        )

    return extract


def _conn_tsv(lines: Any, path: str, problems: Problems) -> Iterator[tuple[str, tuple[Any, ...]]]:
    header: TsvHeader | None = None
    extract: Callable[[list[str]], tuple[Any, ...]] | None = None
    lenient: Any = None
    U = "-"
    for h, lineno, parts in read_tsv(lines, path, problems):
        if h is not header:
            header = h
            U = h.unset_field
            extract = _tsv_conn_extractor(h) if h.types else None
            lenient = decoder(h, _CONN_NAMES)
        try:
            if extract is None:
                raise ValueError("untyped header")
            c = extract(parts)
        except ValueError:
            del parts[len(h.fields):]
            rec = decode_lenient(lenient, parts, path, f"line {lineno}", problems)
            vals = []
            for name, kind in CONN_FIELDS:
                v = rec.get(name)
                if isinstance(v, str) and kind != "str":
                    try:
                        v = normalise(kind, v)
                    except (ValueError, TypeError):
                        problems.skip(path, f"line {lineno} field {name}", "bad_value")
                        v = None
                elif kind == "str" and not isinstance(v, (str, type(None))):
                    v = normalise("str", v)
                vals.append(v)
            c = tuple(vals)
        if c[2] == U or c[4] == U or not _usable(c):
            problems.skip(path, f"line {lineno}", "conn_missing_ts_or_id")
            continue
        yield f"line {lineno}", c
