"""Atomic file writes: a reader sees the old file or the whole new one, never half.

Write to a temporary file in the same directory, fsync, then ``os.replace``
(atomic on POSIX within one file system). On error the temporary is removed.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import IO, Any, Iterable, Iterator

__all__ = ["atomic_open", "copy_into", "write_json", "write_jsonl", "dumps", "dumps_line", "loads"]


try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency; json is the fallback
    _orjson = None
_LINE = (_orjson.OPT_NON_STR_KEYS | _orjson.OPT_APPEND_NEWLINE) if _orjson is not None else 0
# Without OPT_NON_STR_KEYS orjson takes its faster path (a third cheaper per flow record); a dict
# with a non-text key raises TypeError there and is written again with the option.
_LINE_STR_KEYS = _orjson.OPT_APPEND_NEWLINE if _orjson is not None else 0
#: Buffer of the files atomic_open writes: outputs run to hundreds of MB, written line by line.
BUFFER = 1 << 20


def dumps(obj: Any) -> str:
    """Compact JSON, the same text with orjson (fast) or json; NaN/inf are refused (not JSON)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, option=_orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            pass  # a type orjson does not know: json says what is wrong
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps_line(obj: Any) -> bytes:
    """``dumps(obj) + "\\n"`` as UTF-8 bytes, for files opened in binary mode (no decode/encode round trip)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, option=_LINE_STR_KEYS)
        except TypeError:
            pass
        try:
            return _orjson.dumps(obj, option=_LINE)
        except TypeError:
            pass
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def loads(text: str | bytes) -> Any:
    return _orjson.loads(text) if _orjson is not None else json.loads(text)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w") -> Iterator[IO]:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp's 0600 would hide outputs from the tools that read them
    try:
        with os.fdopen(fd, mode, buffering=BUFFER, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def copy_into(out: int, at: int, path: str, start: int = 0, end: int | None = None) -> int:
    """Write bytes ``start:end`` of the file ``path`` (to its end by default) into the file descriptor
    ``out`` from byte ``at``, in the kernel where it can (``copy_file_range``), else with ``pwrite``;
    ``out``'s own position does not move, so another process may be writing elsewhere in the same
    file. Returns the number of bytes."""
    total = 0
    with open(path, "rb") as src:
        size = (os.fstat(src.fileno()).st_size if end is None else end) - start
        copy = getattr(os, "copy_file_range", None)
        while total < size:
            try:
                n = copy(src.fileno(), out, size - total, start + total, at + total) if copy is not None else 0
            except OSError:
                n = 0
            if n <= 0:  # no kernel copy here (other systems, file systems): plain reads and writes
                src.seek(start + total)
                while total < size and (chunk := src.read(min(BUFFER, size - total))):
                    view = memoryview(chunk)
                    while view:
                        done = os.pwrite(out, view, at + total)
                        view = view[done:]
                        total += done
                break
            total += n
    return total


def reopen(fd: int, flags: int = os.O_WRONLY) -> int | None:
    """A new file description of the file open as ``fd`` (its own position), where the system gives
    one by path (Linux: /proc/self/fd); else None."""
    try:
        return os.open(f"/proc/self/fd/{fd}", flags)
    except OSError:
        return None


def write_json(path: str, obj: Any) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False, allow_nan=False)
        fh.write("\n")


def write_jsonl(path: str, records: Iterable[dict]) -> int:
    n = 0
    with atomic_open(path) as fh:
        for rec in records:
            fh.write(dumps(rec))
            fh.write("\n")
            n += 1
    return n
