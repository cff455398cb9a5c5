"""Find Zeek logs among files and directories, and say what each one is by its content.

Contract: ``discover(paths, problems)`` walks directories (Zeek's rotated
layout ``YYYY-MM-DD/conn.HH:MM:SS-HH:MM:SS.log.gz`` included, in path order,
which is time order there) and returns one ``LogFile`` per file that is a Zeek
log of a kind netan reads.  Names are never trusted: gzip is recognised by
its magic bytes, TSV by its ``#`` directives, JSON by a leading ``{``, and the
log kind by ``#path`` / ``_path`` or, failing that, by the column names.
Files that are not Zeek logs, or logs netan does not use, are reported to
``problems`` once per file.  ``open_lines`` yields a file's lines and reports
(instead of raising) a corrupt gzip stream, keeping every line before it.
"""
from __future__ import annotations

import gzip
import io
import json
import logging
import os
import zlib
from dataclasses import dataclass
from typing import Iterator

from netan.problems import Problems
from netan.sources.zeek.tsv import TsvHeader

__all__ = ["LogFile", "Span", "KINDS", "GZIP_ERRORS", "MAX_LINE", "discover", "open_lines", "open_text", "kind_from_fields",
           "skip_rest_of_line"]

log = logging.getLogger(__name__)

#: The log kinds netan reads, in the order the reader loads them (conn last).
KINDS = ("x509", "ssl", "dns", "http", "files", "quic", "conn")

_GZIP_MAGIC = b"\x1f\x8b"
#: How much of a file the sniffer reads to find a TSV header or a first JSON object.
_SNIFF_LINES = 64


@dataclass(frozen=True, slots=True)
class Span:
    """A range of whole lines of a plain log file: where it starts, its line numbers, the header before it."""

    start: int  # byte offset of the first line
    first_line: int  # its line number (1-based)
    last_line: int | None  # number of the last line in the range; None: to the end of the file
    header: tuple[str, ...] = ()  # the "#" lines before ``start`` (TSV: the header in force there)


@dataclass(frozen=True, slots=True)
class LogFile:
    path: str
    kind: str  # one of KINDS
    fmt: str  # "tsv" or "json"
    gzipped: bool


def kind_from_fields(fields: set[str] | frozenset[str]) -> str | None:
    """The log kind from its column names, for logs whose path is missing or custom."""
    if "conn_state" in fields or {"orig_bytes", "resp_bytes", "history"} <= fields:
        return "conn"
    if "cipher" in fields and ("server_name" in fields or "ssl_history" in fields or "established" in fields):
        return "ssl"
    if "certificate.subject" in fields or "certificate.serial" in fields:
        return "x509"
    if "query" in fields and ("qtype" in fields or "answers" in fields or "trans_id" in fields):
        return "dns"
    if "method" in fields and ("uri" in fields or "status_code" in fields):
        return "http"
    if "fuid" in fields and ("seen_bytes" in fields or "mime_type" in fields or "source" in fields):
        return "files"
    if "client_initial_dcid" in fields or ("server_scid" in fields and "version" in fields):
        return "quic"
    return None


def _kind_from_path(path: str | None, fields: set[str]) -> tuple[str | None, str | None]:
    """(kind, unused path) from a #path/_path value and the column names."""
    if path in KINDS:
        return path, None
    kind = kind_from_fields(fields)
    if kind is not None:
        return kind, None
    return None, path


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


#: What reading a damaged gzip stream raises: gzip.BadGzipFile (an OSError),
#: EOFError for a truncated stream, zlib.error for bad deflate data.
GZIP_ERRORS = (OSError, EOFError, zlib.error)


#: Longest line read whole (1 MiB of text); Zeek's lines are far shorter, and a
#: file without newlines must not be read into memory at once.
MAX_LINE = 1 << 20


def skip_rest_of_line(readline) -> None:  # type: ignore[no-untyped-def]
    """Consume the rest of an over-long line, MAX_LINE characters at a time."""
    while True:
        chunk = readline(MAX_LINE)
        if not chunk or chunk[-1] == "\n":
            return


def open_text(path: str, gzipped: bool, start: int = 0) -> io.TextIOWrapper:
    """A (gzip'd) log as text; bytes that are not UTF-8 become ``\\xNN`` text.

    ``backslashreplace`` turns a stray byte into exactly the escape Zeek would
    have written for it, so no line is lost to a decoding error; ``newline``
    is ``\\n`` so a ``\\r`` inside a value never splits a line. ``start``
    (a plain file only) is a byte offset at the start of a line: a newline byte
    is never inside a UTF-8 sequence, so the text from there is the same.
    """
    raw = gzip.open(path, "rb") if gzipped else open(path, "rb")
    if start:
        raw.seek(start)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", newline="\n")


def open_lines(path: str, gzipped: bool, problems: Problems | None, span: Span | None = None) -> Iterator[str]:
    """The lines of a log (see ``open_text``); a corrupt gzip stream ends it with a reported problem.

    ``span`` restricts it to a range of lines of a plain file (``netan.sources.zeek.split``).
    """
    n = span.first_line - 1 if span is not None else 0
    last = span.last_line if span is not None else None
    try:
        text = open_text(path, gzipped, span.start if span is not None else 0)
    except OSError as e:
        if problems is not None and (span is None or span.first_line == 1):
            problems.skip(path, "file", f"unreadable: {e.strerror or e}")
        return
    try:
        with text:
            readline = text.readline
            while True:
                if n == last:
                    return
                line = readline(MAX_LINE)
                if not line:
                    return
                n += 1
                if len(line) == MAX_LINE and line[-1] != "\n":
                    skip_rest_of_line(readline)
                    if problems is not None:
                        problems.skip(path, f"line {n}", "line_too_long")
                    continue
                yield line
    except GZIP_ERRORS as e:
        if problems is not None:
            problems.skip(path, f"line {n + 1}", "gzip_corrupt")
        log.debug("%s: gzip stream ends at line %d: %s", path, n + 1, e)


def _sniff(path: str, problems: Problems) -> LogFile | None:
    try:
        gz = _is_gzip(path)
    except OSError as e:
        problems.skip(path, "file", f"unreadable: {e.strerror or e}")
        return None
    sniff = Problems()  # errors while sniffing are counted when the file is read for real
    head: list[str] = []
    for line in open_lines(path, gz, sniff):
        if line.strip():
            head.append(line)
        if len(head) >= _SNIFF_LINES:
            break
    if sniff.count and not head:
        problems.skip(path, "line 1", "gzip_corrupt")
        return None
    if not head:
        problems.skip(path, "file", "empty_file")
        return None
    first = head[0].lstrip("\ufeff")
    if first.startswith("{"):
        for line in head:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                fields = set(_flat_keys(obj))
                kind, unused = _kind_from_path(obj.get("_path") if isinstance(obj.get("_path"), str) else None, fields)
                return _decide(path, kind, unused, "json", gz, problems)
        problems.skip(path, "file", "not_a_zeek_log")
        return None
    if first.startswith("#") or "\t" in first:
        header = TsvHeader()
        for line in head:
            if not line.startswith("#"):
                break
            new = header.absorb(line.rstrip("\r\n"))
            if new is not None:
                header = new
        if header.fields:
            kind, unused = _kind_from_path(header.path, set(header.fields))
            return _decide(path, kind, unused, "tsv", gz, problems)
        if header.path in KINDS:
            # A header without #fields: every data line will be reported by the reader.
            return LogFile(path, header.path, "tsv", gz)
    problems.skip(path, "file", "not_a_zeek_log")
    return None


def _flat_keys(obj: dict, prefix: str = "") -> Iterator[str]:
    for k, v in obj.items():
        if isinstance(v, dict):
            yield from _flat_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def _decide(path: str, kind: str | None, unused: str | None, fmt: str, gz: bool, problems: Problems) -> LogFile | None:
    if kind is None:
        problems.skip(path, "file", f"zeek_log_not_used:{unused or 'unknown'}")
        return None
    return LogFile(path, kind, fmt, gz)


def _walk(path: str) -> Iterator[str]:
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                yield os.path.join(root, name)
    else:
        yield path


def discover(paths: list[str], problems: Problems) -> list[LogFile]:
    """Every Zeek log under ``paths``, sorted by kind (``KINDS`` order) then path."""
    found: list[LogFile] = []
    seen: set[str] = set()
    for top in paths:
        if not os.path.exists(top):
            problems.skip(top, "file", "not_found")
            continue
        for path in _walk(top):
            real = os.path.realpath(path)
            if real in seen or not os.path.isfile(path):
                continue
            seen.add(real)
            lf = _sniff(path, problems)
            if lf is not None:
                found.append(lf)
    order = {k: i for i, k in enumerate(KINDS)}
    found.sort(key=lambda lf: (order[lf.kind], lf.path))
    return found
