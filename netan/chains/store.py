"""Where the chain builder finds a flow record again when a chain needs it.

The builder keeps a few numbers per flow (``netan.chains.builder``); the
evidence details, the context questions and the graph need whole records, but
only for the flows that end up in a chain. So each observed record gets a
*handle* and is read back by it at the end:

* ``JsonlLines(path)``: the handle is the byte offset of the record's line in
  a JSON-lines file someone else writes anyway (the pipeline's flows.jsonl):
  nothing is stored twice.
* ``JsonlAt(fd, parts)``: the same while that file is still being written (``netan zeek``
  scores chains while other processes copy their parts into flows.jsonl; those stretches are
  read from the parts' own files).
* ``Spool()``: the builder's own anonymous temporary file, for callers that
  have no such file (tests, ``netan live``'s re-scoring).

Records come back as JSON read back (``loads``), so a tuple reads as a list;
the chain code only reads fields, so this does not change a chain.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Iterable, Protocol

from netan.sinks.atomic import dumps_line, loads

__all__ = ["RecordStore", "JsonlLines", "JsonlAt", "Spool"]


class RecordStore(Protocol):
    def get(self, handles: Iterable[int]) -> list[dict[str, Any]]:
        """The records of ``handles``, in that order."""


def _read_lines(fh: Any, handles: Iterable[int]) -> list[dict[str, Any]]:
    out = []
    for h in handles:
        fh.seek(h)
        out.append(loads(fh.readline()))
    return out


class JsonlLines:
    """Records by the byte offset of their line in a JSON-lines file (read when asked, not before)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def get(self, handles: Iterable[int]) -> list[dict[str, Any]]:
        with open(self.path, "rb") as fh:
            return _read_lines(fh, handles)


class JsonlAt:
    """Records by byte offset in a JSON-lines file still open for writing (its descriptor, read with
    ``pread``, so the writer's position stays where it is), some stretches of which are still in
    other files: ``parts`` lists (offset, length, path) of each stretch another process is
    copying in, read from its own file meanwhile. The descriptor must be readable:
    ``atomic_open``'s temporary file is (``mkstemp`` opens it read-write)."""

    def __init__(self, fd: int, parts: list[tuple[int, int, str]] | None = None) -> None:
        self.fd = fd
        self.parts = sorted(parts or [])

    def get(self, handles: Iterable[int]) -> list[dict[str, Any]]:
        opened: dict[str, int] = {}
        try:
            out = []
            for h in handles:
                fd, at = self.fd, h
                for start, length, path in self.parts:
                    if start <= h < start + length:
                        if path not in opened:
                            opened[path] = os.open(path, os.O_RDONLY)
                        fd, at = opened[path], h - start
                        break
                out.append(loads(_pread_line(fd, at)))
            return out
        finally:
            for fd in opened.values():
                os.close(fd)


def _pread_line(fd: int, at: int) -> bytes:
    """The line starting at byte ``at`` (its newline included): read in pieces that grow from 2 KB
    (a flow record's line is about 0.8 KB; each piece is a copy out of the page cache)."""
    parts = []
    size = 2048
    while True:
        chunk = os.pread(fd, size, at)
        size = min(size * 4, 1 << 20)
        nl = chunk.find(b"\n")
        if nl >= 0 or not chunk:
            parts.append(chunk[:nl + 1] if nl >= 0 else chunk)
            return b"".join(parts)
        parts.append(chunk)
        at += len(chunk)


class Spool:
    """An anonymous temporary JSON-lines file: ``put`` returns the handle ``get`` takes."""

    def __init__(self) -> None:
        self._fh = tempfile.TemporaryFile()
        self._end = 0

    def put(self, record: dict[str, Any]) -> int:
        line = dumps_line(record)
        at = self._end
        self._fh.write(line)
        self._end += len(line)
        return at

    def get(self, handles: Iterable[int]) -> list[dict[str, Any]]:
        self._fh.flush()
        out = _read_lines(self._fh, handles)
        self._fh.seek(0, 2)
        return out

    def close(self) -> None:
        self._fh.close()
