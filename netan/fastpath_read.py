"""Batch reader for the fast path: captures in, ``Chunk``s of packets out.

Contract: the packets (and their order), their fields, the ``CaptureInfo``
counts and the reader problems are exactly those ``netan.engine.merged_packets``
yields for the same paths; only the shape differs. A ``Chunk`` holds one
buffer of bytes and numpy arrays of per-record fields (time, captured and wire
length, where the data starts, record offset in its file, link type), so the
decoder can work on all records at once.

Classic pcap (a regular file is memory-mapped; gzip is read in the
per-packet reader's exact read pattern) and pcapng in a regular file are
walked by a minimal Python loop over record/block headers, with numpy
gathering the header fields. Several files are merged exactly as
``heapq.merge`` in ``merged_packets`` orders them. Every odd case -- damage
after the first anomaly, gzip'd pcapng, simple/obsolete packet blocks -- goes
through the per-packet reader (``netan.sources.pcap``) and is repacked into
chunks, so there is one implementation of it. Reader problems are not
written to ``Problems`` directly; each is tagged with the index of the packet
it precedes so the engine can replay them in the order the per-packet engine
would have recorded them.
"""
from __future__ import annotations

import fcntl
import io
import mmap
import os
import select
import struct
import termios
import time
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import numpy as np

from netan.problems import InputError, Problem, Problems
from netan.walk import walk_pcap
from netan.sources.pcap import (BT_EPB, BT_IDB, BT_SPB, MAX_RECORD, PCAP_MAGICS, PCAPNG_BOM, PCAPNG_SHB, READ_CHUNK,
                                _tsresol, CaptureInfo, RawPacket, _read_pcap, _read_pcapng, _Stream,
                                counted, open_capture, open_input, read_packets, sniff_format)

__all__ = ["Chunk", "PipeSource", "pipe_chunks", "read_chunks", "CHUNK_BYTES"]

#: Bytes read per piece (pcap fast path), and packets per repacked chunk (fallback).
CHUNK_BYTES = 8 << 20
CHUNK_PACKETS = 1 << 16
#: A live stream hands a chunk on this many seconds after its first bytes arrived (sooner when full).
LIVE_MAX_AGE = 0.05
#: A pipe read waits for this many bytes (or the chunk's age) before reading.
PIPE_PIECE = 256 << 10
_MODIFIED = (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34")


@dataclass
class Chunk:
    """Consecutive packets of the merged capture, in the order they are processed."""

    buf: bytes
    ts: np.ndarray  # float64, identical to RawPacket.ts
    caplen: np.ndarray  # int64
    wirelen: np.ndarray  # int64
    doff: np.ndarray  # int64: where each packet's bytes start in buf
    roff: np.ndarray  # int64: record offset in its file (RawPacket.offset)
    linktype: np.ndarray  # int64
    fidx: np.ndarray  # int64 index into files
    files: list[str]
    iface: np.ndarray | None = None  # pcapng interface ids (fallback only)
    #: reader problems, each before the packet with that (chunk) index; len(ts) = after the last
    events: list[tuple[int, Problem]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)

    def raw(self, i: int) -> RawPacket:
        """Packet i as the per-packet reader would have yielded it."""
        s = int(self.doff[i])
        return RawPacket(float(self.ts[i]), self.buf[s : s + int(self.caplen[i])], int(self.wirelen[i]),
                         int(self.linktype[i]), self.files[int(self.fidx[i])], int(self.roff[i]),
                         int(self.iface[i]) if self.iface is not None else 0)


class _EventProblems(Problems):
    """Problems sink that tags each reader problem with the packet count so far."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Problem] = []

    def skip(self, file: str, where: str, reason: str, n: int = 1) -> None:  # noqa: D102
        for _ in range(max(0, n)):
            self.pending.append(Problem(file, where, reason))


def read_chunks(paths: list[str], infos: list[CaptureInfo], unreadable: list[InputError]) -> Iterator[Chunk]:
    """Every packet of ``paths`` as one capture, in chunks (see the module contract)."""
    if len(paths) == 1:
        it = open_input(paths[0], lambda info: _file_chunks(paths[0], info), infos, unreadable)
        if it is not None:
            yield from it
        return
    yield from _merge(paths, infos, unreadable)


def _file_chunks(path: str, info: CaptureInfo) -> Iterator[Chunk]:
    """One file's chunks; opens it now (InputError here, not at the first ``next``)."""
    fh, kind = open_capture(path)
    mm = _map(fh)
    if kind == "pcap":
        return _pcap_mmap_chunks(path, fh, mm, info) if mm is not None else _pcap_chunks(path, fh, info)
    if mm is not None:
        return _pcapng_mmap_chunks(path, fh, mm, info)
    fh.close()
    ev = _EventProblems()
    return _repack(read_packets(path, ev, info), ev)


class _Source:
    """One file of a merge: its chunks, a cursor, and the running maximum of its times."""

    def __init__(self, index: int, chunks: Iterator[Chunk]) -> None:
        self.index = index
        self.chunks = chunks
        self.chunk: Chunk | None = None
        self.key = np.zeros(0)  # running max of ts (heapq.merge's effective order key)
        self.cur = 0
        self.top = -np.inf
        self.ev = 0  # next event of the current chunk

    def load(self) -> bool:
        """The next non-empty chunk (events of empty ones are returned by ``pending_events``)."""
        self.chunk = next(self.chunks, None)
        self.cur = 0
        self.ev = 0
        if self.chunk is None:
            return False
        ts = self.chunk.ts
        if len(ts):
            self.key = np.maximum.accumulate(np.maximum(ts, self.top))
            self.top = float(self.key[-1])
        else:
            self.key = ts
        return True

    def events_upto(self, j: int) -> list[Problem]:
        """Events of the current chunk that precede its packet j (or follow its last, j = len)."""
        out = []
        ev = self.chunk.events if self.chunk is not None else []
        while self.ev < len(ev) and ev[self.ev][0] <= j:
            out.append(ev[self.ev][1])
            self.ev += 1
        return out


def _merge(paths: list[str], infos: list[CaptureInfo], unreadable: list[InputError]) -> Iterator[Chunk]:
    """Several files as one capture, in the exact order ``engine.merged_packets`` yields.

    ``heapq.merge`` over streams that may step back in time yields, among the
    streams' current heads, the smallest time, ties to the earlier file; a
    packet cannot leave before its predecessor in its own file, so its
    effective key is the running maximum of its file's times. The merge is
    therefore a stable sort by (running max, file), done chunk by chunk: a
    packet is released once every other open file has buffered a later key.
    Reader problems are placed where ``heapq.merge`` would have pulled them:
    after the file's previous packet left (at the start for the first).
    """
    sources: list[_Source] = []
    head_events: list[Problem] = []
    for path in paths:
        chunks = open_input(path, lambda info, path=path: _file_chunks(path, info), infos, unreadable)
        if chunks is None:
            continue
        src = _Source(len(sources), chunks)
        # merged_packets pulls every file's first packet before yielding anything
        while src.load():
            head_events += src.events_upto(0)
            if len(src.chunk):  # type: ignore[arg-type]
                break
            head_events += src.events_upto(1 << 62)
        if src.chunk is not None:
            sources.append(src)
    pending = head_events
    while sources:
        # what each source may release: keys below every other source's buffered maximum
        tops = [(s.top, s.index) for s in sources]
        picks = []
        for s in sources:
            bound = min((t for t in tops if t[1] != s.index), default=None)
            keys = s.key[s.cur:]
            if bound is None:
                n = len(keys)
            else:
                n = int(np.searchsorted(keys, bound[0], "right" if s.index < bound[1] else "left"))
            if n:
                picks.append((s, n))
        # order the released packets: (key, file), each file's own order kept
        kk = np.concatenate([s.key[s.cur : s.cur + n] for s, n in picks])
        ff = np.concatenate([np.full(n, s.index) for s, n in picks])
        order = np.lexsort((np.arange(len(kk)), ff, kk))
        part = np.concatenate([np.arange(n) for _s, n in picks])[order]
        which = np.repeat(np.arange(len(picks)), [n for _s, n in picks])[order]
        chunk, events = _gather(picks, which, part, pending)
        pending = []
        # advance cursors; a source at the end of its chunk loads the next one now, so the
        # problems met before that chunk's first packet land right after this packet
        alive = []
        for s, n in picks:
            s.cur += n
        last_pos = {}
        for pos, w in enumerate(which.tolist()):
            last_pos[w] = pos
        for w, (s, n) in enumerate(picks):
            if s.cur < len(s.chunk):  # type: ignore[arg-type]
                continue
            at = last_pos[w] + 1
            while True:
                if not s.load():
                    break
                events += [(at, q) for q in s.events_upto(0)]
                if len(s.chunk):  # type: ignore[arg-type]
                    break
                events += [(at, q) for q in s.events_upto(1 << 62)]
        for s in sources:
            if s.chunk is not None:
                alive.append(s)
        sources = alive
        events.sort(key=lambda e: e[0])
        chunk.events = events
        yield chunk
    if pending:
        yield _empty_chunk([(0, q) for q in pending])


def _gather(picks: list, which: np.ndarray, part: np.ndarray,
            head: list[Problem]) -> tuple[Chunk, list[tuple[int, Problem]]]:
    """One chunk of the released packets (their bytes copied into one buffer), with the events
    of their own chunks placed after the packet they follow."""
    m = len(which)
    ts = np.empty(m)
    cols = {k: np.empty(m, np.int64) for k in ("caplen", "wirelen", "roff", "linktype", "fidx", "iface")}
    events: list[tuple[int, Problem]] = [(0, q) for q in head]
    files: list[str] = []
    file_at: dict[str, int] = {}
    per_src_rows = []
    for w, (s, n) in enumerate(picks):
        rows = np.flatnonzero(which == w)
        src_idx = s.cur + part[rows]
        c = s.chunk
        ts[rows] = c.ts[src_idx]
        cols["caplen"][rows] = c.caplen[src_idx]
        cols["wirelen"][rows] = c.wirelen[src_idx]
        cols["roff"][rows] = c.roff[src_idx]
        cols["linktype"][rows] = c.linktype[src_idx]
        cols["iface"][rows] = c.iface[src_idx] if c.iface is not None else 0
        fmap = np.array([file_at.setdefault(f, len(file_at)) for f in c.files], np.int64)
        cols["fidx"][rows] = fmap[c.fidx[src_idx]]
        per_src_rows.append((s, rows, src_idx))
        # events of this source's chunk before its packets j (j > cursor): after the merged row of j-1
        if c.events:
            for r, j in zip(rows.tolist(), src_idx.tolist()):
                for q in s.events_upto(j + 1):
                    events.append((r + 1, q))
    files = list(file_at)
    # bytes in merged order
    starts = np.empty(m, np.int64)
    bufs = np.empty(m, np.int64)
    for w, (s, rows, src_idx) in enumerate(per_src_rows):
        starts[rows] = s.chunk.doff[src_idx]
        bufs[rows] = w
    caps = cols["caplen"].tolist()
    st_l = starts.tolist()
    srcbufs = [s.chunk.buf for s, _r, _i in per_src_rows]
    datas = [srcbufs[b][a : a + n] for b, a, n in zip(bufs.tolist(), st_l, caps)]
    doff = np.zeros(m, np.int64)
    if m > 1:
        np.cumsum(cols["caplen"][:-1], out=doff[1:])
    chunk = Chunk(buf=b"".join(datas), ts=ts, caplen=cols["caplen"], wirelen=cols["wirelen"], doff=doff,
                  roff=cols["roff"], linktype=cols["linktype"], fidx=cols["fidx"], files=files or ["?"],
                  iface=cols["iface"])
    return chunk, events


def _repack(packets: Iterator[RawPacket], ev: _EventProblems, max_age: float | None = None) -> Iterator[Chunk]:
    """RawPackets (the general reader) into chunks, keeping reader problems in place.

    ``max_age``: a live stream also ends a chunk when its first packet has waited
    this many seconds (checked as packets arrive), so a slow network is not held back.
    """
    files: dict[str, int] = {}
    rows: list[RawPacket] = []
    events: list[tuple[int, Problem]] = []

    def flush() -> Chunk:
        datas = [p.data for p in rows]
        lens = np.fromiter((len(d) for d in datas), np.int64, len(datas))
        doff = np.zeros(len(rows), np.int64)
        if len(rows) > 1:
            np.cumsum(lens[:-1], out=doff[1:])
        return Chunk(
            buf=b"".join(datas), ts=np.array([p.ts for p in rows], np.float64), caplen=lens,
            wirelen=np.array([p.wirelen for p in rows], np.int64), doff=doff,
            roff=np.array([p.offset for p in rows], np.int64),
            linktype=np.array([p.linktype for p in rows], np.int64),
            fidx=np.array([files.setdefault(p.file, len(files)) for p in rows], np.int64),
            files=list(files), iface=np.array([p.interface for p in rows], np.int64), events=list(events))

    it = iter(packets)
    started = time.monotonic()
    while True:
        try:
            p = next(it)
        except StopIteration:
            p = None
        if ev.pending:
            events.extend((len(rows), q) for q in ev.pending)
            ev.pending.clear()
        if p is None:
            break
        if not rows:
            started = time.monotonic()
        rows.append(p)
        if len(rows) >= CHUNK_PACKETS or (max_age is not None and time.monotonic() - started >= max_age):
            chunk = flush()
            chunk.files = list(files)
            yield chunk
            rows, events = [], []
    if rows or events:
        chunk = flush() if rows else _empty_chunk(events)
        chunk.files = list(files) or ["?"]
        yield chunk


def _empty_chunk(events: list[tuple[int, Problem]]) -> Chunk:
    z = np.zeros(0, np.int64)
    return Chunk(b"", np.zeros(0, np.float64), z, z, z, z, z, z, ["?"], None, list(events))


def _whole_records(buf: bytes, hdr_len: int, big_endian: bool, limit: int) -> tuple[np.ndarray, int, bool]:
    """The records of ``buf`` that are whole, up to the first that is not or is too long.

    Returns ``(offsets, pos, too_long)``: ``pos`` is where the first record not
    taken starts (``len(buf)`` when every byte was used); ``too_long`` when that
    record's length is over ``limit`` (damage, not just a record cut by the end).
    """
    n = len(buf)
    o, end, _ = walk_pcap(buf, 0, n, hdr_len, big_endian)
    if not len(o):
        return o, end, False
    has_hdr = o + hdr_len <= n
    incl = np.zeros(len(o), np.int64)
    at = o[has_hdr] + 8
    raw = np.frombuffer(buf, np.uint8)
    incl[has_hdr] = raw[at[:, None] + np.arange(4)].view(">u4" if big_endian else "<u4")[:, 0]
    stop = ~has_hdr | (incl > limit) | (o + hdr_len + incl > n)
    first = int(np.argmax(stop)) if stop.any() else len(o)
    pos = int(o[first]) if first < len(o) else end
    return o[:first], pos, bool(first < len(o) and has_hdr[first] and incl[first] > limit)


def widen_pipe(fd: int, size: int = 1 << 20) -> None:
    """Make the pipe ``fd`` hold ``size`` bytes (Linux F_SETPIPE_SZ): fewer, larger reads
    and writes, each of which would otherwise wake the other side every 64 KB. A best
    effort: not a pipe, or above /proc/sys/fs/pipe-max-size, keeps the default size."""
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except OSError:
        pass


class PipeSource:
    """A capture pipe for the chunk reader: a chunk holds what arrived within
    ``LIVE_MAX_AGE`` of its first bytes (``more_now``), so packets reach the engine
    quickly on a quiet network and in large chunks (cheap per packet) on a busy one."""

    def __init__(self, fd: int, head: bytes = b"") -> None:
        self.fd, self.head = fd, head
        widen_pipe(fd)  # room for the capture process while netan is busy

    def read(self, n: int = READ_CHUNK) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            return out
        return os.read(self.fd, min(n, READ_CHUNK))

    def more_now(self, first_at: float) -> bool:
        """Whether to read more into the chunk started at ``first_at``: yes once a large piece
        is waiting in the pipe, no when the chunk is due (``LIVE_MAX_AGE``).

        Why not read whatever is there: a capture process writes packet by packet, so
        reading at every write costs a wake-up and a read per packet or two. Waiting for
        a piece to gather costs a few milliseconds of latency and saves most of that.
        """
        if self.head:
            return True
        due = first_at + LIVE_MAX_AGE
        while True:
            if self._waiting() >= PIPE_PIECE:
                return True
            left = due - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.002))

    def _waiting(self) -> int:
        """Bytes waiting in the pipe (FIONREAD); a large number when that cannot be known."""
        try:
            return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return PIPE_PIECE if select.select([self.fd], [], [], 0)[0] else 0

    def close(self) -> None:
        """The capture process owns the pipe."""


def pipe_chunks(fd: int, name: str) -> Iterator[Chunk]:
    """Chunks from a capture process writing pcap (or pcapng) to a pipe, as they arrive.

    Classic pcap -- what tcpdump writes -- goes through the same chunk reader
    as files (records walked in C, no per-packet objects), damage handed to
    the per-packet reader like everywhere else; pcapng through the per-packet
    reader, repacked. Reader problems travel in the chunks' events.
    """
    head = b""
    while len(head) < 24:
        data = os.read(fd, 24 - len(head))
        if not data:
            break
        head += data
    info = CaptureInfo(name)
    if sniff_format(head) == "pcap" and len(head) >= 24:
        yield from _pcap_chunks(name, PipeSource(fd, head), info)  # type: ignore[arg-type]
        return
    ev = _EventProblems()
    source = PipeSource(fd, head)
    stream = _Stream(None, name, ev, read=source.read)  # type: ignore[arg-type]
    kind = sniff_format(stream.peek(4))
    if kind == "pcapng":
        yield from _repack(_read_pcapng(stream, name, ev), ev, max_age=LIVE_MAX_AGE)
    elif stream.peek(1):
        ev.skip(name, "offset 0", f"capture stream is not pcap or pcapng (magic {stream.peek(4).hex()})")
        yield _empty_chunk(list((0, q) for q in ev.pending))


def _pcap_chunks(path: str, fh: BinaryIO, info: CaptureInfo) -> Iterator[Chunk]:
    """The fast path for one classic pcap file (see the module docstring).

    Reads follow the per-packet reader's pattern exactly (``READ_CHUNK`` pieces
    from offset 0), so a damaged gzip stream fails at the same place and the
    same packets survive.
    """
    info.format = "pcap"
    info.linktypes = set()
    failure: BaseException | None = None

    def piece() -> bytes:
        nonlocal failure
        if failure is not None:
            return b""
        try:
            return fh.read(READ_CHUNK)
        except (OSError, EOFError, zlib.error) as e:
            failure = e
            return b""

    plain = isinstance(fh, io.BufferedReader)
    first = piece()
    if len(first) < 24:
        fh.close()
        yield from _handoff_fresh(path, info)
        return
    header = first[:24]
    order, unit = PCAP_MAGICS[header[:4]]
    hdr_len = 24 if header[:4] in _MODIFIED else 16
    snaplen = struct.unpack(order + "I", header[16:20])[0]
    linktype = struct.unpack(order + "I", header[20:24])[0] & 0xFFFF
    limit = max(snaplen, 65535) if 0 < snaplen <= MAX_RECORD else MAX_RECORD
    big_endian = order == ">"
    eager = hasattr(fh, "more_now")
    dt = np.dtype(order + "u4")
    base = 24  # file offset of buf[0] (and of carry[0])
    carry = first[24:]
    eof = anomaly = False
    want = CHUNK_BYTES
    try:
        while True:
            if plain and base > 24:
                # A regular file: read the next piece where the held-back record starts
                # instead of joining buffers (no copy of the piece).
                try:
                    fh.seek(base)
                    buf = fh.read(want)
                except OSError as e:
                    failure, buf = e, b""
                eof = len(buf) < want
            else:
                parts = [carry]
                size = len(carry)
                first_at = 0.0
                while size < want:
                    # a pipe: hand on what arrived within LIVE_MAX_AGE instead of waiting for a full piece
                    if eager and len(parts) > 1 and not fh.more_now(first_at):  # type: ignore[attr-defined]
                        break
                    data = piece()
                    if not data:
                        eof = True
                        break
                    if len(parts) == 1:
                        first_at = time.monotonic()
                    parts.append(data)
                    size += len(data)
                buf = b"".join(parts) if len(parts) > 1 else parts[0]
            n = len(buf)
            o, pos, too_long = _whole_records(buf, hdr_len, big_endian, limit)
            anomaly = anomaly or too_long
            if eof and pos != n:
                anomaly = True  # a truncated tail: the per-packet reader words the problem
            if failure is not None:
                anomaly = True
            if not len(o):
                carry = buf
                if anomaly or eof:
                    break
                want *= 2  # a record longer than a piece
                continue
            want = CHUNK_BYTES
            arr = np.frombuffer(buf, np.uint8)
            h = arr[o[:, None] + np.arange(16)].view(dt).reshape(-1, 4).astype(np.int64)
            sec, frac, incl_a, orig = h[:, 0], h[:, 1], h[:, 2], h[:, 3]
            bad = np.flatnonzero((orig != 0) & (incl_a > orig) & (incl_a > snaplen))
            keep = len(o)
            if len(bad):
                anomaly = True
                keep = int(bad[0])
            if anomaly or not eof:
                keep = min(keep, len(o) - 1)  # hold the last good record back (see _handoff)
            if keep > 0:
                ts = sec[:keep].astype(np.float64) + frac[:keep].astype(np.float64) * unit
                cap = incl_a[:keep]
                chunk = Chunk(buf=buf, ts=ts, caplen=cap, wirelen=np.where(orig[:keep] != 0, orig[:keep], cap),
                              doff=o[:keep] + hdr_len, roff=o[:keep] + base,
                              linktype=np.full(keep, linktype, np.int64), fidx=np.zeros(keep, np.int64),
                              files=[path])
                _account(info, chunk, linktype)
                yield chunk
            held = int(o[keep]) if keep < len(o) else pos
            carry = buf[held:]
            base += held
            if anomaly or eof:
                break
    except BaseException:
        fh.close()
        raise
    if not (anomaly or carry):
        fh.close()
        return
    # Hand the rest to the per-packet reader, its buffer primed with what was read.
    ev = _EventProblems()
    stream = _Stream(_Resume(fh, failure), path, ev)
    stream.buf = header + carry
    stream.base = base - 24
    stream.eof = eof and failure is None
    sub = CaptureInfo(path)
    yield from _repack(counted(_closing(_read_pcap(stream, path, ev), fh), sub), ev,
                       max_age=LIVE_MAX_AGE if eager else None)
    _add_info(info, sub)


def _map(fh: BinaryIO) -> mmap.mmap | None:
    """A read-only map of a regular, non-empty, uncompressed file; None otherwise."""
    if not isinstance(fh, io.BufferedReader):
        return None
    try:
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None


def _drop_pages(mm: mmap.mmap, dropped: int, upto: int) -> int:
    """Let the kernel take back the mapped pages below ``upto`` (processed): RSS stays flat."""
    upto = (upto // mmap.PAGESIZE) * mmap.PAGESIZE
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None or upto <= dropped:
        return dropped
    try:
        mm.madvise(advice, dropped, upto - dropped)
    except (OSError, ValueError):
        return dropped
    return upto


def _pcap_mmap_chunks(path: str, fh: BinaryIO, mm: mmap.mmap, info: CaptureInfo) -> Iterator[Chunk]:
    """Classic pcap in a regular file: walk the mapped file, no copies.

    Record headers are walked in windows of ``CHUNK_BYTES``; a chunk's ``buf``
    is the whole map and its offsets are file offsets. Pages of finished
    windows are dropped from the process (MADV_DONTNEED) so the resident set
    does not grow with the file. Any damage hands the rest to the per-packet
    reader at the last good record (``_Resume`` explains why that record).
    """
    info.format = "pcap"
    info.linktypes = set()
    size = len(mm)
    header = mm[:24]
    if len(header) < 24:
        mm.close()
        fh.close()
        yield from _handoff_fresh(path, info)
        return
    order, unit = PCAP_MAGICS[header[:4]]
    hdr_len = 24 if header[:4] in _MODIFIED else 16
    snaplen = struct.unpack(order + "I", header[16:20])[0]
    linktype = struct.unpack(order + "I", header[20:24])[0] & 0xFFFF
    limit = max(snaplen, 65535) if 0 < snaplen <= MAX_RECORD else MAX_RECORD
    dt = np.dtype(order + "u4")
    arr = np.frombuffer(mm, np.uint8)
    view16 = np.lib.stride_tricks.as_strided(arr, shape=(max(0, size - 15), 16), strides=(1, 1), writeable=False)
    dropped = 0
    base = 24
    anomaly = False
    want = min(CHUNK_BYTES, 1 << 20)
    per_record = 0  # average record size so far: windows hold about CHUNK_PACKETS records
    while True:
        if per_record:
            want = max(want, min(CHUNK_BYTES, CHUNK_PACKETS * per_record))
        wend = min(size, base + want)
        # a header cut by the end of the file is listed and found below
        o, pos, _ = walk_pcap(mm, base, wend, hdr_len, order == ">")
        if not len(o):
            break
        # 16 header bytes per record through a strided view (a header cut by the end of the
        # file is read from an earlier place and flagged below)
        h = view16[np.minimum(o, size - 16)].view(dt).reshape(-1, 4).astype(np.int64)
        sec, frac, incl_a, orig = h[:, 0], h[:, 1], h[:, 2], h[:, 3]
        bad = np.flatnonzero((o + hdr_len > size) | (incl_a > limit) | (o + hdr_len + incl_a > size)
                             | ((orig != 0) & (incl_a > orig) & (incl_a > snaplen)))
        keep = len(o)
        if len(bad):
            anomaly = True
            keep = int(bad[0])
        last = not anomaly and pos >= size
        if not last:
            keep = min(keep, len(o) - 1)  # hold the last good record back
        if keep > 0:
            ts = sec[:keep].astype(np.float64) + frac[:keep].astype(np.float64) * unit
            cap = incl_a[:keep]
            chunk = Chunk(buf=mm, ts=ts, caplen=cap, wirelen=np.where(orig[:keep] != 0, orig[:keep], cap),  # type: ignore[arg-type]
                          doff=o[:keep] + hdr_len, roff=o[:keep], linktype=np.full(keep, linktype, np.int64),
                          fidx=np.zeros(keep, np.int64), files=[path])
            _account(info, chunk, linktype)
            yield chunk
        if last:
            base = size
            break
        if keep == 0 and not anomaly:
            want *= 2  # one record longer than the window
            continue
        if keep:
            per_record = max(1, (int(o[keep]) - base) // keep)
        want = 1 << 16
        base = int(o[keep])
        if anomaly:
            break
        dropped = _drop_pages(mm, dropped, base)
    del arr, view16
    fh.close()
    if base >= size:
        return
    # Damage (or a cut tail): the per-packet reader from the last good record on.
    ev = _EventProblems()
    fh2 = open(path, "rb")
    fh2.seek(base)
    stream = _Stream(fh2, path, ev)
    stream.buf = header
    stream.base = base - 24
    sub = CaptureInfo(path)
    yield from _repack(counted(_closing(_read_pcap(stream, path, ev), fh2), sub), ev)
    _add_info(info, sub)


class _Resume:
    """The rest of a file for the per-packet reader: raises a read failure seen earlier once."""

    def __init__(self, fh: BinaryIO, failure: BaseException | None) -> None:
        self.fh, self.failure = fh, failure

    def read(self, n: int = -1) -> bytes:
        if self.failure is not None:
            e, self.failure = self.failure, None
            raise e
        return self.fh.read(n)


def _handoff_fresh(path: str, info: CaptureInfo) -> Iterator[Chunk]:
    """A file too short or broken for the fast walk: the per-packet reader from the start."""
    ev = _EventProblems()
    sub = CaptureInfo(path)
    yield from _repack(counted(read_packets(path, ev, CaptureInfo(path)), sub), ev)
    _add_info(info, sub)


def _add_info(info: CaptureInfo, sub: CaptureInfo) -> None:
    if not sub.packets:
        return
    info.packets += sub.packets
    info.bytes += sub.bytes
    assert info.linktypes is not None
    info.linktypes.update(sub.linktypes or ())
    if info.first_ts is None:
        info.first_ts = sub.first_ts
    info.last_ts = sub.last_ts


def _account(info: CaptureInfo, chunk: Chunk, linktype: int | None = None) -> None:
    n = len(chunk)
    if not n:
        return
    info.packets += n
    info.bytes += int(chunk.caplen.sum())
    assert info.linktypes is not None
    if linktype is not None:
        info.linktypes.add(linktype)
    else:
        info.linktypes.update(np.unique(chunk.linktype).tolist())
    if info.first_ts is None:
        info.first_ts = float(chunk.ts[0])
    info.last_ts = float(chunk.ts[-1])


def _closing(gen: Iterator[RawPacket], fh: BinaryIO) -> Iterator[RawPacket]:
    try:
        yield from gen
    finally:
        fh.close()


def _pcapng_mmap_chunks(path: str, fh: BinaryIO, mm: mmap.mmap, info: CaptureInfo) -> Iterator[Chunk]:
    """pcapng in a regular file: walk the blocks, gather enhanced packet blocks with numpy.

    Only the plain case is done here: one byte order, interfaces declared
    before use, EPBs whose lengths and trailers agree. At anything else (a
    damaged block, a simple or obsolete packet block, another byte order) the
    per-packet reader reads the file from the start and the packets already
    delivered are skipped: it keeps section and interface state, so it cannot
    be started in the middle of a file.
    """
    info.format = "pcapng"
    info.linktypes = set()
    sent = 0
    try:
        for chunk in _pcapng_walk(path, mm):
            _account(info, chunk)
            sent += len(chunk)
            yield chunk
        return
    except _HandOff:
        pass
    finally:
        fh.close()
    ev = _EventProblems()
    sub = CaptureInfo(path)
    gen = read_packets(path, ev, CaptureInfo(path))
    for _ in range(sent):
        if next(gen, None) is None:
            break
    ev.pending.clear()  # nothing was wrong before the hand-off point (it would have been the hand-off)
    yield from _repack(counted(gen, sub), ev)
    _add_info(info, sub)


class _HandOff(Exception):
    """The fast pcapng walk met something only the per-packet reader handles."""


def _pcapng_walk(path: str, mm: mmap.mmap) -> Iterator[Chunk]:
    size = len(mm)
    head = mm[:12]
    if size < 28 or struct.unpack_from("<I", head)[0] != PCAPNG_SHB:
        raise _HandOff
    order = "<" if struct.unpack_from("<I", head, 8)[0] == PCAPNG_BOM else ">"
    if struct.unpack_from(order + "I", head, 8)[0] != PCAPNG_BOM:
        raise _HandOff
    u32 = struct.Struct(order + "I").unpack_from
    hdr = struct.Struct(order + "II").unpack_from
    dt = np.dtype(order + "u4")
    arr = np.frombuffer(mm, np.uint8)
    view = np.lib.stride_tricks.as_strided(arr, shape=(size - 27, 28), strides=(1, 1), writeable=False)
    interfaces: list[tuple[int, float, int]] = []
    limit = MAX_RECORD + 4096
    pos = dropped = 0
    while pos < size:
        wend = min(size, pos + CHUNK_BYTES)
        epb: list[int] = []
        app = epb.append
        while pos < wend:
            if pos + 8 > size:
                raise _HandOff
            btype, blen = hdr(mm, pos)
            if blen < 12 or blen % 4 or blen > limit or pos + blen > size or u32(mm, pos + blen - 4)[0] != blen:
                raise _HandOff
            if btype == BT_EPB:
                app(pos)
            elif btype in (PCAPNG_SHB, BT_IDB, BT_SPB, 2):
                if epb:
                    break  # deliver the packets before a section or interface change
                if btype == PCAPNG_SHB:
                    if mm[pos + 8 : pos + 12] != head[8:12]:
                        raise _HandOff  # another byte order, or a damaged magic
                    interfaces = []  # interface ids are per section
                elif btype == BT_IDB:
                    body = mm[pos + 8 : pos + blen - 4]
                    if len(body) < 8:
                        raise _HandOff
                    lt, _res, snap = struct.unpack_from(order + "HHI", body)
                    interfaces.append((lt, _tsresol(body[8:], order), snap))
                else:
                    raise _HandOff  # simple or obsolete packet blocks: rare, per packet
            pos += blen
        if not epb:
            continue
        o = np.array(epb, np.int64)
        h = view[np.minimum(o, size - 28)].view(dt).reshape(-1, 7).astype(np.int64)
        blen_a, ifid, ts_hi, ts_lo, cap, orig = h[:, 1], h[:, 2], h[:, 3], h[:, 4], h[:, 5], h[:, 6]
        bad = (blen_a < 32) | (ifid >= len(interfaces)) | (cap > blen_a - 32)
        keep = int(np.argmax(bad)) if bad.any() else len(o)
        if keep:
            sel = slice(0, keep)
            units = np.array([u for _lt, u, _s in interfaces], np.float64)
            lts = np.array([lt for lt, _u, _s in interfaces], np.int64)
            # ((hi << 32) | lo) * unit as the per-packet reader computes it (int -> float rounds alike)
            ticks = ((ts_hi[sel].astype(np.uint64) << np.uint64(32)) | ts_lo[sel].astype(np.uint64))
            c = cap[sel]
            yield Chunk(buf=mm, ts=ticks.astype(np.float64) * units[ifid[sel]], caplen=c,  # type: ignore[arg-type]
                        wirelen=np.where(orig[sel] != 0, orig[sel], c), doff=o[sel] + 28, roff=o[sel].copy(),
                        linktype=lts[ifid[sel]], fidx=np.zeros(keep, np.int64), files=[path],
                        iface=ifid[sel].copy())
        if keep < len(o):
            raise _HandOff
        dropped = _drop_pages(mm, dropped, pos)
