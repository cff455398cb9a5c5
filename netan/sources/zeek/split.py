"""Cut the conn.log lines of a run into contiguous segments, one per process.

Contract: ``plan(conn_files, parts)`` returns ``parts`` (or fewer) segments,
each a list of ``(LogFile, Span | None)`` in reading order, whose
concatenation is every conn line exactly once, in order. A plain file may be
cut at a line boundary near a byte share of the total; a gzip'd file cannot
be entered in the middle, so it stays whole (counted at four times its size).
Each cut carries what a reader starting there needs to behave exactly as one
reading from the top: the line number, and for TSV the ``#`` header lines
above it. A file with a line of ``MAX_LINE`` bytes or more before the cut is
not cut: the JSON reader numbers the lines it keeps, and an over-long line is
not kept.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np

from netan.sources.zeek.discover import MAX_LINE, LogFile, Span

__all__ = ["plan", "Segment"]

Segment = list[tuple[LogFile, Optional[Span]]]

_CHUNK = 16 << 20


def _size(lf: LogFile) -> int:
    try:
        size = os.path.getsize(lf.path)
    except OSError:
        return 0
    return size * 4 if lf.gzipped else size


#: Every aligned block of this many bytes holding a newline proves no line reaches ``MAX_LINE``
#: (a line of ``2 * _BLOCK - 1`` bytes or more covers a whole block); ``_CHUNK`` is a multiple.
_BLOCK = MAX_LINE // 2


def _short_lines(chunk: bytes) -> bool:
    """True when each whole ``_BLOCK`` of ``chunk`` has a newline (``bytes.find``: a few us a block)."""
    return all(chunk.find(b"\n", at, at + _BLOCK) >= 0 for at in range(0, len(chunk) - _BLOCK + 1, _BLOCK))


def _prefix(path: str, end: int) -> tuple[int, list[bytes]] | None:
    """(newlines before ``end``, the ``#`` lines before it), or None if the file has an over-long
    line before ``end``. Read in chunks; newlines counted with ``bytes.count`` (the lengths of lines
    measured with numpy only in a chunk ``_short_lines`` cannot clear), header lines with ``find``."""
    lines = 0
    heads: list[int] = []  # offsets of lines starting with "#"
    line_start = 0
    with open(path, "rb") as fh:
        pos = 0
        prev = b"\n"  # a line starts at offset 0
        while pos < end:
            chunk = fh.read(min(_CHUNK, end - pos))
            if not chunk:
                break
            if _short_lines(chunk) and pos - line_start < _BLOCK:
                n = chunk.count(b"\n")
                if n:
                    lines += n
                    line_start = pos + chunk.rfind(b"\n") + 1
            else:
                nl = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
                if len(nl):
                    starts = np.concatenate(([line_start - pos], nl[:-1] + 1))
                    if int((nl - starts).max()) >= MAX_LINE:
                        return None
                    lines += len(nl)
                    line_start = pos + int(nl[-1]) + 1
            at = chunk.find(b"#")  # one byte, rare in log lines: memchr speed
            while at >= 0:
                if (chunk[at - 1] if at else prev[0]) == 10:  # at a line start
                    heads.append(pos + at)
                at = chunk.find(b"#", at + 1)
            prev = chunk[-1:]
            pos += len(chunk)
        if end - line_start >= MAX_LINE:
            return None
        header = []
        for at in heads:
            fh.seek(at)
            header.append(fh.readline(MAX_LINE))
    return lines, header


def _cut(lf: LogFile, at: int) -> tuple[int, Span] | None:
    """The first line boundary at or after byte ``at`` of a plain file, as (offset, the span from there)."""
    with open(lf.path, "rb") as fh:
        fh.seek(at)
        tail = fh.read(MAX_LINE)
    nl = tail.find(b"\n")
    if nl < 0:
        return None
    boundary = at + nl + 1
    if boundary >= os.path.getsize(lf.path):
        return None
    pre = _prefix(lf.path, boundary)
    if pre is None:
        return None
    lines, header = pre
    text = tuple(h.decode("utf-8", "backslashreplace").rstrip("\r\n") for h in header) if lf.fmt == "tsv" else ()
    return boundary, Span(boundary, lines + 1, None, text)


def plan(conn_files: list[LogFile], parts: int, weights: tuple[float, ...] | None = None) -> list[Segment]:
    """Up to ``parts`` segments of about equal size, or of sizes in proportion to ``weights`` (one
    per segment); see the module docstring."""
    sizes = [_size(lf) for lf in conn_files]
    total = sum(sizes)
    if parts <= 1 or total == 0:
        return [[(lf, None) for lf in conn_files]]
    w = list(weights) if weights is not None and len(weights) == parts else [1.0] * parts
    ends = [total * float(x) for x in np.cumsum(w) / sum(w)]  # where each segment should end
    segments: list[Segment] = [[]]
    done = 0  # bytes (weighted) of whole files already placed
    for lf, size in zip(conn_files, sizes):
        span: Span | None = None
        pos = 0  # byte offset in this file where the current piece starts
        while True:
            room = ends[len(segments) - 1] - (done + pos)  # what the current segment can still take
            if room <= 0 and len(segments) < parts and segments[-1]:
                segments.append([])
                continue
            if len(segments) >= parts or size - pos <= room or lf.gzipped:
                segments[-1].append((lf, span))
                break
            cut = _cut(lf, pos + max(0, int(room)))
            if cut is None:
                segments[-1].append((lf, span))
                break
            boundary, nxt = cut
            first = span.first_line if span is not None else 1
            segments[-1].append((lf, Span(pos, first, nxt.first_line - 1, span.header if span else ())))
            segments.append([])
            span, pos = nxt, boundary
        done += size
        if lf.gzipped and len(segments) < parts and done >= ends[len(segments) - 1]:
            segments.append([])
    return [s for s in segments if s]
