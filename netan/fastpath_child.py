"""Read and decode a capture in a child process while the flow engine works: a second core.

Why a process: reading (the record walk, page faults on the mapped file) and
the vectorized decode are about a quarter of the engine's time, but they hold
the GIL often enough that a reader thread made replay slower, not faster
(measured: 2.33 s against 2.19 s on benchmarks/data/bench.pcap). Both are
pure with respect to the engine, so a child can run them one chunk ahead.

What crosses the process boundary: each chunk's arrays and its decode
results (``Decodedv``), pickled. Packet bytes do not: parent and child map
the same file, so the parent puts its own map back into each chunk. Chunks
that do not point into the map (the per-packet reader's, after damage) carry
their bytes. Reader bookkeeping (capture infos, unreadable files) comes back
at the end. The result is exactly what ``read_chunks`` + ``decode_chunk``
give in one process; tests/test_fastpath_child.py checks it.

Only a single regular, uncompressed capture file goes to a child (the case
that is large enough to matter); anything else, or ``NETAN_READER=inline``,
reads in line.
"""
from __future__ import annotations

import logging
import mmap
import multiprocessing as mp
import os
import pickle
import queue
from typing import Iterator

import numpy as np

from netan.fastpath_decode import Decodedv, decode_chunk
from netan.fastpath_read import Chunk, _drop_pages, _map, read_chunks, widen_pipe
from netan.problems import InputError
from netan.sources.pcap import CaptureInfo, open_capture

__all__ = ["decoded_chunks"]

log = logging.getLogger(__name__)

#: Chunks the child may run ahead of the engine (each up to ~8 MB of arrays).
AHEAD = 4
_CHUNK, _END, _ERROR = "chunk", "end", "error"


def decoded_chunks(paths: list[str], infos: list[CaptureInfo],
                   unreadable: list[InputError]) -> Iterator[tuple[Chunk, Decodedv | None]]:
    """``(chunk, decode_chunk(chunk))`` for every chunk of ``paths`` (None for an empty chunk)."""
    mapped = _mapped_capture(paths)
    if mapped is None:
        yield from _inline(paths, infos, unreadable)
        return
    yield from _from_child(paths[0], mapped, infos, unreadable)


def _mapped_capture(paths: list[str]) -> mmap.mmap | None:
    """A read-only map of the one capture file when a child process is worth it, else None."""
    if len(paths) != 1 or os.environ.get("NETAN_READER", "child") == "inline":
        return None
    if "fork" not in mp.get_all_start_methods():
        return None
    try:
        fh, _kind = open_capture(paths[0])
    except InputError:
        return None  # read_chunks reports it
    with fh:
        return _map(fh)


def _child(path: str, out: mp.Queue) -> None:
    """In the child: read and decode, send each chunk without the mapped bytes."""
    infos: list[CaptureInfo] = []
    unreadable: list[InputError] = []
    try:
        for chunk in read_chunks([path], infos, unreadable):
            dv = decode_chunk(chunk) if len(chunk) else None
            if isinstance(chunk.buf, mmap.mmap):
                chunk.buf = None  # type: ignore[assignment]  # the parent has its own map
            out.put((_CHUNK, _narrowed(chunk), _narrowed(dv)))
        out.put((_END, infos, unreadable))
    except BaseException as e:  # the parent raises it where the read failed
        out.put((_ERROR, e, None))
    finally:
        out.close()
        out.join_thread()


_NARROW = (np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32)


def _narrowed(obj):  # noqa: ANN001, ANN202 - a Chunk or Decodedv (or None)
    """Integer arrays of ``obj`` in the smallest type that holds their values, with the
    original type kept alongside: most fields are ports, flags and lengths, so the pipe
    carries about a third of the bytes. ``_widened`` restores the exact arrays."""
    if obj is None:
        return None
    for name, value in vars(obj).items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "iu" and value.itemsize > 1 and len(value):
            lo, hi = int(value.min()), int(value.max())
            small = next((t for t in _NARROW if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max
                          and np.dtype(t).itemsize < value.itemsize), None)
            if small is not None:
                setattr(obj, name, (_Narrow, value.dtype.str, value.astype(small)))
    return obj


class _Narrow:
    """Marks a narrowed array in transit."""


def _widened(obj):  # noqa: ANN001, ANN202
    if obj is None:
        return None
    for name, value in vars(obj).items():
        if isinstance(value, tuple) and len(value) == 3 and value[0] is _Narrow:
            setattr(obj, name, value[2].astype(value[1]))
    return obj


def _inline(paths: list[str], infos: list[CaptureInfo], unreadable: list[InputError],
            skip: int = 0) -> Iterator[tuple[Chunk, Decodedv | None]]:
    """Read and decode in this process; the first ``skip`` chunks (and their problems) are
    left out: a child that died had handed them on already."""
    for i, chunk in enumerate(read_chunks(paths, infos, unreadable)):
        if i >= skip:
            yield chunk, decode_chunk(chunk) if len(chunk) else None


def _from_child(path: str, mm: mmap.mmap, infos: list[CaptureInfo],
                unreadable: list[InputError]) -> Iterator[tuple[Chunk, Decodedv | None]]:
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue(maxsize=AHEAD)
    widen_pipe(q._reader.fileno())  # type: ignore[attr-defined]  # a chunk's arrays in few writes
    child = ctx.Process(target=_child, args=(path, q), name="netan-reader", daemon=True)
    child.start()
    try:
        q._writer.close()  # type: ignore[attr-defined]  # only the child writes: its death is an EOF here
    except (AttributeError, OSError):
        pass
    dropped = 0
    delivered = 0  # chunks handed on: the in-line reader makes the same chunks, in the same order
    try:
        while True:
            try:
                kind, a, b = q.get(timeout=1.0)
            except queue.Empty:
                if child.is_alive():
                    continue
                kind = None
            except (EOFError, OSError, pickle.UnpicklingError):
                kind = None
            if kind is None:  # the child died (killed, out of memory): go on without it
                child.join(timeout=1.0)
                log.warning("the reader process for %s ended (exit status %s); reading on in this process",
                            path, child.exitcode)
                yield from _inline([path], infos, unreadable, skip=delivered)
                return
            if kind == _ERROR:
                raise a
            if kind == _END:
                infos.extend(a)
                unreadable.extend(b)
                return
            chunk: Chunk = _widened(a)
            b = _widened(b)
            if chunk.buf is None:
                chunk.buf = mm  # type: ignore[assignment]
            yield chunk, b
            delivered += 1
            if len(chunk) and chunk.buf is mm:
                # pages before this chunk are done with: keep the resident set flat
                dropped = _drop_pages(mm, dropped, int(chunk.roff[0]))
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        q.close()
