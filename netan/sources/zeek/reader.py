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
import os
import struct
from typing import Any, Callable, Iterator

from netan import fastlane
from netan.problems import Problems
from netan.sources.zeek.convert import CONN_FIELDS, SIDE_FIELDS, Joiner, normalise
from netan.sources.zeek.discover import (
    GZIP_ERRORS,
    MAX_LINE,
    LogFile,
    Span,
    discover,
    open_lines,
    open_text,
    skip_rest_of_line,
)
from netan.sources.zeek.jsonlog import _SECONDS as _ISO_SECONDS, json_interval, json_time, read_json
from netan.sources.zeek.split import Segment, plan
from netan.sources.zeek.tsv import (
    TsvHeader,
    decode_lenient,
    decoder,
    header_line,
    read_tsv,
    unescape,
)

__all__ = ["read_zeek", "ZeekRead", "iter_side_records", "iter_conn", "iter_conn_tuples", "conn_lines"]

log = logging.getLogger(__name__)

#: Builds what a conn line becomes (a flow record, or the tuple itself in tests).
Make = Callable[[tuple[Any, ...]], Any]

_CONN_NAMES = tuple(name for name, _ in CONN_FIELDS)
_CONN_KINDS = tuple(kind for _, kind in CONN_FIELDS)
_CONN_INT = tuple(i for i, k in enumerate(_CONN_KINDS) if k == "int")
_CONN_STR = tuple(i for i, k in enumerate(_CONN_KINDS) if k == "str")


def read_zeek(paths: list[str], problems: Problems, *, parallel: bool | None = None) -> Iterator[dict[str, Any]]:
    """Flow records from the Zeek logs in ``paths`` (files or directories).

    ``parallel``: parse each conn.log in a child process while this one builds
    records (True), never (False), or when the file is big and a core is idle
    (None, the default).  The records and problems are the same either way.
    """
    zr = ZeekRead(paths, problems)
    yield from zr.conn(parallel)  # delegation: no Python frame per record
    yield from zr.rest()


class ZeekRead:
    """``read_zeek`` in its three steps, so that a run can share its conn lines out among processes.

    Making it finds the logs and loads every side log; ``conn`` streams the
    conn.log records (or ``segment`` one segment of ``plan``, see
    ``netan.sources.zeek.fanout``); ``rest`` gives the flows of side records no
    conn line took, and reports the join's counts.
    """

    def __init__(self, paths: list[str], problems: Problems) -> None:
        if isinstance(paths, (str, bytes)):  # one path given bare: not a list of characters
            paths = [paths]  # type: ignore[list-item]
        self.problems = problems
        self.joiner = Joiner()
        self.conn_files: list[LogFile] = []
        for lf in discover([str(p) for p in paths], problems):
            if lf.kind == "conn":
                self.conn_files.append(lf)
                continue
            n = 0
            for rec in iter_side_records(lf, problems):
                self.joiner.add(lf.kind, rec)
                n += 1
            log.info("%s: %d %s records (%s)", lf.path, n, lf.kind, lf.fmt)
        self.joiner.start_conn()

    def conn(self, parallel: bool | None = None) -> Iterator[dict[str, Any]]:
        """Every conn.log record, file by file (``parallel``: see ``read_zeek``)."""
        joiner = self.joiner
        for lf in self.conn_files:
            before = joiner.conn_count
            yield from iter_conn(lf, self.problems, joiner.conn_flow, parallel)
            log.info("%s: %d conn records (%s)", lf.path, joiner.conn_count - before, lf.fmt)

    def plan(self, parts: int, weights: tuple[float, ...] | None = None) -> list[Segment]:
        """The conn lines cut into at most ``parts`` segments (``netan.sources.zeek.split``)."""
        return plan(self.conn_files, parts, weights)

    def segment(self, seg: Segment, problems: Problems) -> Iterator[dict[str, Any]]:
        """The conn records of one segment, parsed in this process; its bad lines go to ``problems``."""
        make = self.joiner.conn_flow
        for lf, span in seg:
            yield from conn_lines(lf, problems, make, span)

    def rest(self) -> Iterator[dict[str, Any]]:
        """Flows of the side records no conn line took; then the join's counts as problems."""
        joiner = self.joiner
        yield from joiner.leftover_flows()
        # Side-log records that could not become or join a flow, counted in the join.
        for reason in ("side_without_uid", "side_without_ts_or_id", "side_bad_id", "dns_names_dropped"):
            self.problems.skip("(zeek join)", "ssl/dns/http records", reason, joiner.counts[reason])
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


#: What the conn.log loops catch around ``make``: an address that is not an
#: address, a port out of range -- the line cannot be a flow.
_BAD_RECORD = (OSError, ValueError, TypeError, struct.error)
_SKIP = object()


def _made(make: Make, c: tuple[Any, ...], path: str, lineno: int, problems: Problems) -> Any:
    """``make(c)``, or _SKIP with the line counted as a bad record (one place for every conn reader)."""
    try:
        return make(c)
    except _BAD_RECORD as e:
        log.debug("%s line %d: %s", path, lineno, e)
        problems.skip(path, f"line {lineno}", "conn_bad_record")
        return _SKIP


def _tuple(c: tuple[Any, ...]) -> tuple[Any, ...]:
    return c


def iter_conn_tuples(lf: LogFile, problems: Problems) -> Iterator[tuple[Any, ...]]:
    """One tuple ordered as ``CONN_FIELDS`` per usable conn.log line."""
    return iter_conn(lf, problems, _tuple, parallel=False)


def iter_conn(lf: LogFile, problems: Problems, make: Make, parallel: bool | None = None) -> Iterator[Any]:
    """``make(tuple ordered as CONN_FIELDS)`` per usable conn.log line.

    ``parallel`` (default: decided by ``_worth_parallel``) parses the file in
    a second process while this one builds records; the output, its order and
    the problems reported are the same either way.
    """
    if parallel is None:
        joiner = _joiner_of(make)
        # a lane writes plain lines whole here: a child parsing them would only add work
        parallel = (joiner is None or joiner.lane is None) and _worth_parallel(lf)
    if parallel:
        return _conn_parallel(lf, problems, make)
    return conn_lines(lf, problems, make)


def conn_lines(lf: LogFile, problems: Problems, make: Make | None, span: Span | None = None) -> Iterator[Any]:
    """``make(tuple)`` per usable line in this process; ``make=None`` yields ``(line number, tuple)``.

    ``span``: only that range of the file's lines (``netan.sources.zeek.split``).
    """
    if lf.fmt == "json":
        return _conn_json(open_lines(lf.path, lf.gzipped, problems, span), lf.path, problems, make,
                          span.first_line if span is not None else 1)
    return _conn_tsv(lf, problems, make, span)


# ---- the two-process path: parse in a child, build records here.
#
# Per conn line, parsing (read, split, convert columns) and building the
# record (Community ID, the 31-key dict) cost about the same, so on two free
# cores handing parsed tuples over (pickled in batches, ~1 us per line to
# unpickle) is faster end to end.  Only worth it for big files: the child
# costs ~0.2 s to start.  See netan.sources.zeek.worker.

#: Files at least this large (bytes on disk; gzip'd ones a quarter of it) use a child.
PARALLEL_MIN_BYTES = 48 << 20


def _worth_parallel(lf: LogFile) -> bool:
    """A big file and a core to spare: on a busy machine the child only adds work."""
    cpus = os.cpu_count() or 1
    if cpus < 2:
        return False
    try:
        size = os.path.getsize(lf.path)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float(cpus)
    except OSError:
        return False
    return size >= (PARALLEL_MIN_BYTES // 4 if lf.gzipped else PARALLEL_MIN_BYTES) and load <= cpus - 1


def _conn_parallel(lf: LogFile, problems: Problems, make: Make) -> Iterator[Any]:
    from netan.sources.zeek.worker import stream_conn

    batches = stream_conn(lf.path, lf.kind, lf.fmt, lf.gzipped, problems)
    if batches is None:  # no child process to be had: do it here
        yield from conn_lines(lf, problems, make)
        return
    for linenos, tuples in batches:
        for lineno, c in zip(linenos, tuples):
            out = _made(make, c, lf.path, lineno, problems)
            if out is not _SKIP:
                yield out


def _usable(c: tuple[Any, ...] | list[Any]) -> bool:
    return c[0] is not None and bool(c[2]) and bool(c[4])


def _conn_json(lines: Any, path: str, problems: Problems, make: Make | None, first_line: int = 1) -> Iterator[Any]:
    joiner = _joiner_of(make)
    lane = joiner.lane if joiner is not None else None
    if lane is None:
        yield from _conn_json_objects(read_json(lines, path, problems, first_line), path, problems, make, None)
        return
    # The lane reads a plain line itself (no JSON parser) and writes its record; any other line is
    # parsed by read_json and goes the usual way.
    made = 0
    try:
        for lineno, line in enumerate(lines, first_line):
            c = lane.json_line(line, _CONN_NAMES, _ISO_SECONDS, joiner._fast)  # type: ignore[union-attr]
            if c is True:
                made += 1
            elif c is not None:  # a plain line whose record the lane leaves to the joiner
                out = _made(make, c, path, lineno, problems)  # type: ignore[arg-type]
                if out is not _SKIP:
                    yield out
            else:
                yield from _conn_json_objects(read_json((line,), path, problems, lineno), path, problems, make,
                                              joiner)
    finally:
        joiner.conn_count += made  # type: ignore[union-attr]


def _conn_json_objects(objects: Iterator[tuple[int, dict[str, Any]]], path: str, problems: Problems,
                       make: Make | None, joiner: Joiner | None) -> Iterator[Any]:
    # Written out field by field: this is the per-line path of JSON conn logs (the plain case in C).
    jfast = fastlane.C.json_conn if fastlane.C is not None else None
    lane = joiner.lane if joiner is not None else None
    for lineno, obj in objects:
        if jfast is not None:
            c = jfast(obj, _CONN_NAMES, _ISO_SECONDS)
            if c is not None:
                if lane is not None and lane.conn(c, joiner._fast):  # type: ignore[union-attr]
                    joiner.conn_count += 1  # type: ignore[union-attr]
                    continue
                out = (lineno, c) if make is None else _made(make, c, path, lineno, problems)
                if out is not _SKIP:
                    yield out
                continue
        g = obj.get
        op, rp, ob, rb, missed, opk, rpk, ipp = (g("id.orig_p"), g("id.resp_p"), g("orig_bytes"), g("resp_bytes"),
                                                 g("missed_bytes"), g("orig_pkts"), g("resp_pkts"), g("ip_proto"))
        uid, oh, rh, proto, svc, st, hist, mac, cid = (g("uid"), g("id.orig_h"), g("id.resp_h"), g("proto"),
                                                       g("service"), g("conn_state"), g("history"),
                                                       g("orig_l2_addr"), g("community_id"))
        try:
            ts = json_time(g("ts"))
            dur = g("duration")
            if dur is not None:
                dur = json_interval(dur)
            ok = (type(op) is int and type(rp) is int
                  and (ob is None or type(ob) is int) and (rb is None or type(rb) is int)
                  and (missed is None or type(missed) is int) and (opk is None or type(opk) is int)
                  and (rpk is None or type(rpk) is int) and (ipp is None or type(ipp) is int)
                  and type(uid) is str and type(oh) is str and type(rh) is str
                  and (proto is None or type(proto) is str) and (svc is None or type(svc) is str)
                  and (st is None or type(st) is str) and (hist is None or type(hist) is str)
                  and (mac is None or type(mac) is str) and (cid is None or type(cid) is str))
        except (ValueError, TypeError):
            ok = False
        if ok:
            c: tuple[Any, ...] = (ts, uid, oh, op, rh, rp, proto, svc, dur, ob, rb, st, missed, hist, opk, rpk,
                                  mac, cid, ipp)
        else:
            c = _conn_json_slow(obj, path, lineno, problems)
        if not _usable(c):
            problems.skip(path, f"line {lineno}", "conn_missing_ts_or_id")
            continue
        out = (lineno, c) if make is None else _made(make, c, path, lineno, problems)
        if out is not _SKIP:
            yield out


def _conn_json_slow(obj: dict[str, Any], path: str, lineno: int, problems: Problems) -> tuple[Any, ...]:
    """A JSON conn record with unusual spellings (strings for numbers, ...) or bad values."""
    vals = [obj.get(n) for n in _CONN_NAMES]
    try:
        vals[0] = json_time(vals[0])
        if vals[8] is not None:
            vals[8] = json_interval(vals[8])
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
    return tuple(vals)


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
        # Ports, packet counts, missed_bytes and ip_proto are always set by
        # Zeek; were one "-", int() raises and the lenient path takes the line.
        p.append(U)
        svc = p[isvc]
        if svc == U:
            svc = None
        elif "\\" in svc:
            svc = unescape(svc)
        v = p[idur]
        if v != U:
            dur = float(v)
            if dur - dur != 0.0:
                raise ValueError("non-finite duration")  # the lenient path reports it
        else:
            dur = None
        v = p[iob]
        ob = int(v) if v != U else None
        v = p[irb]
        rb = int(v) if v != U else None
        v = p[iipp]
        ipp = int(v) if v != U else None
        v = p[imiss]
        missed = int(v) if v != U else None
        st = p[ist]
        hist = p[ihist]
        mac = p[imac]
        cid = p[icid]
        proto = p[iproto]
        uid = p[iuid]
        return (
            float(p[its]),
            uid if uid != U else None,
            p[ioh],
            int(p[iop]) if iop != miss else None,
            p[irh],
            int(p[irp]) if irp != miss else None,
            proto if proto != U else None,
            svc,
            dur,
            ob,
            rb,
            st if st != U else None,
            missed,
            hist if hist != U else None,
            int(p[iopk]) if iopk != miss else None,
            int(p[irpk]) if irpk != miss else None,
            mac if mac != U else None,
            cid if cid != U else None,
            ipp,
        )

    return extract


def _conn_tsv(lf: LogFile, problems: Problems, make: Make | None, span: Span | None = None) -> Iterator[Any]:
    """read_tsv's loop, specialised: this is the hot path (one pass per conn.log line).

    It iterates the text file itself (no generator in between) and strips the
    newline from the last column only, instead of copying every line. With a
    ``span`` it starts under the header lines above the span (their problems
    were reported by whoever read them) and stops after its last line.
    """
    path = lf.path
    header = TsvHeader()
    lineno = span.first_line - 1 if span is not None else 0
    stop = span.last_line if span is not None else None
    if span is not None:
        for line in span.header:
            header = header_line(header, line, path, 0, Problems())
    extract: Callable[[list[str]], tuple[Any, ...]] | None = _tsv_conn_extractor(header) if header.types else None
    lenient: Any = decoder(header, _CONN_NAMES) if header.fields else None
    sep, U, nfields = header.separator, header.unset_field, len(header.fields)
    fast, layout = _fast_lane(header)
    joiner = _joiner_of(make)
    fused = fastlane.C.tsv_record if joiner is not None and joiner.plain_context() is not None else None
    lane = joiner.lane if joiner is not None else None
    made = 0  # records the C lane made whole, counted into the joiner at the end
    try:
        text = open_text(path, lf.gzipped, span.start if span is not None else 0)
    except OSError as e:
        if lineno == 0:
            problems.skip(path, "file", f"unreadable: {e.strerror or e}")
        return
    with text:
        readline = text.readline
        try:
            while True:
                if lineno == stop:
                    break
                line = readline(MAX_LINE)
                if not line:
                    break
                lineno += 1
                if len(line) == MAX_LINE and line[-1] != "\n":
                    skip_rest_of_line(readline)
                    problems.skip(path, f"line {lineno}", "line_too_long")
                    continue
                c0 = line[0]
                if c0 == "#":
                    new = header_line(header, line.rstrip("\r\n"), path, lineno, problems)
                    if new is not header:
                        header = new
                        sep, U, nfields = header.separator, header.unset_field, len(header.fields)
                        extract = _tsv_conn_extractor(header) if header.types else None
                        lenient = decoder(header, _CONN_NAMES)
                        fast, layout = _fast_lane(header)
                    continue
                if c0 == "\n" or c0 == "\r":
                    continue
                if fast is not None:
                    # C: a usable tuple, or None (not the plain case); fused, the record itself when it can;
                    # the lane writes the record itself (True) when it can
                    if lane is not None:
                        c = lane.line(line, layout, joiner._fast)  # type: ignore[union-attr]
                        if c is True:
                            made += 1
                            continue
                    else:
                        c = fast(line, layout) if fused is None else fused(line, layout, joiner._fast)
                    if c is not None:
                        if type(c) is dict:
                            made += 1
                            yield c
                            continue
                        out = (lineno, c) if make is None else _made(make, c, path, lineno, problems)
                        if out is not _SKIP:
                            yield out
                        continue
                parts = line.split(sep)
                last = parts[-1]
                if last[-1:] == "\n":
                    last = last[:-1]
                    if last[-1:] == "\r":
                        last = last[:-1]
                    parts[-1] = last
                if len(parts) != nfields:
                    problems.skip(path, f"line {lineno}", "tsv_no_header" if not nfields else "tsv_wrong_column_count")
                    continue
                try:
                    if extract is None:
                        raise ValueError("untyped header")
                    c = extract(parts)
                except ValueError:
                    c = _conn_tsv_lenient(lenient, parts[:nfields], path, lineno, problems)
                if c[0] is None or not c[2] or not c[4] or c[2] == U or c[4] == U:
                    problems.skip(path, f"line {lineno}", "conn_missing_ts_or_id")
                    continue
                out = (lineno, c) if make is None else _made(make, c, path, lineno, problems)
                if out is not _SKIP:
                    yield out
        except GZIP_ERRORS as e:
            problems.skip(path, f"line {lineno + 1}", "gzip_corrupt")
            log.debug("%s: gzip stream ends at line %d: %s", path, lineno + 1, e)
        finally:
            if made:
                joiner.conn_count += made  # type: ignore[union-attr]


def _joiner_of(make: Make | None) -> Joiner | None:
    """The joiner whose ``conn_flow`` is ``make`` (its C lanes apply: ``tsv_record`` when it has a
    ``plain_context``, its ``lane`` while a pass runs), else None."""
    joiner = getattr(make, "__self__", None)
    return joiner if type(joiner) is Joiner and make == joiner.conn_flow else None


def _fast_lane(header: TsvHeader) -> tuple[Callable[[str, tuple], tuple[Any, ...] | None] | None, tuple | None]:
    """The C lane for this header's lines (``netan.fastlane``: the plain lines, exactly as
    ``_tsv_conn_extractor`` reads them), or (None, None) without it or without ``#types``."""
    if fastlane.C is None or not header.types:
        return None, None
    layout = fastlane.conn_plan(header.separator, header.unset_field, header.fields, _CONN_NAMES)
    return (fastlane.C.tsv_conn, layout) if layout is not None else (None, None)


def _conn_tsv_lenient(lenient: Any, parts: list[str], path: str, lineno: int, problems: Problems) -> tuple[Any, ...]:
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
    return tuple(vals)
