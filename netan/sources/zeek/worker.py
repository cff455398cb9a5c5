"""Parse one conn.log in a child process and stream the parsed lines to the parent.

Contract: ``python -m netan.sources.zeek.worker PATH KIND FMT GZIPPED`` writes
to stdout a sequence of frames, each an 8-byte big-endian length and a pickle
of ``(linenos, tuples, problems)`` (tuples ordered as ``CONN_FIELDS``,
problems as ``(file, where, reason, n)``), then a frame holding ``None``; a
failure is a frame ``("error", text)``.  ``stream_conn`` is the parent side.

Why a plain child process rather than ``multiprocessing``: a spawned
multiprocessing child re-imports the caller's ``__main__``, which breaks any
script that calls ``read_zeek`` at module level, and forking a process that
may hold threads and locks is unsafe.  The pickles only ever come from this
module's own child, never from input files.
"""
from __future__ import annotations

import logging
import os
import pickle
import struct
import subprocess
import sys
import tempfile
from typing import Any, Iterator

from netan.problems import Problems

__all__ = ["stream_conn", "main"]

log = logging.getLogger(__name__)

_LEN = struct.Struct("!Q")
BATCH = 4096  # conn lines per frame


class _Recorder(Problems):
    """The child's Problems: keeps each skip to send with the batch it belongs to."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[tuple[str, str, str, int]] = []

    def skip(self, file: str, where: str, reason: str, n: int = 1) -> None:
        if n > 0:
            self.pending.append((file, where, reason, n))


def _send(out: Any, obj: Any) -> None:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LEN.pack(len(blob)))
    out.write(blob)


def main(argv: list[str]) -> int:
    from netan.sources.zeek.discover import LogFile
    from netan.sources.zeek.reader import conn_lines

    path, kind, fmt, gz = argv
    out = sys.stdout.buffer
    rec = _Recorder()
    linenos: list[int] = []
    tuples: list[tuple[Any, ...]] = []
    try:
        for lineno, c in conn_lines(LogFile(path, kind, fmt, gz == "1"), rec, None):
            linenos.append(lineno)
            tuples.append(c)
            if len(tuples) >= BATCH:
                _send(out, (linenos, tuples, rec.pending))
                linenos, tuples, rec.pending = [], [], []
        _send(out, (linenos, tuples, rec.pending))
        _send(out, None)
    except BrokenPipeError:
        return 0  # the parent stopped reading: nothing left to do
    except Exception as e:  # reported by the parent as a problem of this file
        _send(out, ("error", f"{type(e).__name__}: {e}"))
    out.flush()
    return 0


def _read_exact(fh: Any, n: int) -> bytes | None:
    data = fh.read(n)
    return data if data is not None and len(data) == n else None


def stream_conn(path: str, kind: str, fmt: str, gzipped: bool,
                problems: Problems) -> Iterator[tuple[list[int], list[tuple[Any, ...]]]] | None:
    """Start the child; yield ``(linenos, tuples)`` batches. None if no child could be started."""
    import netan

    root = os.path.dirname(os.path.dirname(os.path.abspath(netan.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    errf = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "netan.sources.zeek.worker", path, kind, fmt, "1" if gzipped else "0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errf, env=env, bufsize=1 << 20,
        )
    except OSError as e:
        errf.close()
        log.info("zeek: no worker process (%s)", e)
        return None
    _grow_pipe(proc.stdout)
    return _frames(proc, errf, path, problems)


def _grow_pipe(fh: Any) -> None:
    """A 1 MiB pipe (Linux F_SETPIPE_SZ) holds a whole batch, so the child parses the
    next batch while the parent builds records from this one instead of waiting on the pipe."""
    try:
        import fcntl

        fcntl.fcntl(fh.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError, AttributeError):
        pass  # other systems, or a lower /proc/sys/fs/pipe-max-size: just slower


def _frames(proc: subprocess.Popen, errf: Any, path: str,
            problems: Problems) -> Iterator[tuple[list[int], list[tuple[Any, ...]]]]:
    last = 0
    try:
        out = proc.stdout
        assert out is not None
        while True:
            head = _read_exact(out, _LEN.size)
            if head is None:
                errf.seek(0)
                tail = errf.read()[-300:].decode("utf-8", "replace").strip().splitlines()
                problems.skip(path, f"after line {last}", "conn_worker_died" + (f": {tail[-1]}" if tail else ""))
                return
            blob = _read_exact(out, _LEN.unpack(head)[0])
            if blob is None:
                problems.skip(path, f"after line {last}", "conn_worker_died")
                return
            msg = pickle.loads(blob)  # noqa: S301 -- written by our own child process, never by input
            if msg is None:
                return
            if msg[0] == "error":
                problems.skip(path, f"after line {last}", f"conn_worker_failed: {msg[1]}")
                return
            linenos, tuples, pending = msg
            for file, where, reason, n in pending:
                problems.skip(file, where, reason, n)
            if linenos:
                last = linenos[-1]
            yield linenos, tuples
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        proc.wait()
        errf.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
