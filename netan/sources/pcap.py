"""Read classic pcap and pcapng files (plain or gzip'd) into raw packet records.

The reader yields bytes and where they came from, nothing else (dpkt's rule:
the reader yields bytes; decoders only ever receive bytes). Damage never stops
it: a corrupt record header makes it resynchronise on the next plausible
record, a truncated tail is reported with its byte offset, and every skipped
span is counted in ``Problems``.

Formats: pcap (both byte orders, micro- and nanosecond magic; libpcap's
"modified" magic too), pcapng (SHB in either byte order, several IDBs with
their own link types and ``if_tsresol``, EPB, SPB and the obsolete PB).
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, TypeVar

from netan.problems import InputError, Problems

__all__ = ["RawPacket", "read_packets", "open_capture", "open_input", "counted", "CaptureInfo", "sniff_format"]

T = TypeVar("T")

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    b"\x34\xcd\xb2\xa1": ("<", 1e-6),  # Alexey Kuznetsov's modified pcap
    b"\xa1\xb2\xcd\x34": (">", 1e-6),
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
#: A snaplen above this is not a real capture (the largest real one is 262144).
MAX_RECORD = 1 << 20
READ_CHUNK = 8 << 20


@dataclass(frozen=True, slots=True)
class RawPacket:
    """One captured frame: capture-clock time, bytes, original length, link type."""

    ts: float
    data: bytes
    wirelen: int
    linktype: int
    file: str
    offset: int  # byte offset of the record in the (decompressed) file
    interface: int = 0


@dataclass
class CaptureInfo:
    path: str
    format: str = "unknown"
    packets: int = 0
    bytes: int = 0
    linktypes: set[int] | None = None
    first_ts: float | None = None
    last_ts: float | None = None


def sniff_format(head: bytes) -> str:
    """Name the container from its first bytes: gzip, pcap, pcapng or unknown."""
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if len(head) >= 4 and struct.unpack("<I", head[:4])[0] == PCAPNG_SHB:
        return "pcapng"
    return "unknown"


def open_capture(path: str) -> tuple[BinaryIO, str]:
    """Open a capture, transparently gunzipping; raise InputError if unusable."""
    if os.path.isdir(path):
        raise InputError(path, "is a directory, not a capture file")
    try:
        fh: BinaryIO = open(path, "rb")
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except OSError as e:
        raise InputError(path, e.strerror or str(e)) from None
    head = fh.read(4)
    fh.seek(0)
    kind = sniff_format(head)
    if kind == "gzip":
        gz = gzip.GzipFile(fileobj=fh)
        try:
            head = gz.peek(4)[:4] if hasattr(gz, "peek") else b""
        except (OSError, EOFError, zlib.error) as e:
            fh.close()
            raise InputError(path, f"corrupt gzip stream ({e})") from None
        inner = sniff_format(head)
        if inner not in ("pcap", "pcapng"):
            fh.close()
            raise InputError(path, "gzip file does not contain a pcap or pcapng capture")
        return gz, inner  # type: ignore[return-value]
    if kind == "unknown":
        fh.close()
        if not head:
            raise InputError(path, "empty file")
        raise InputError(path, f"not a pcap or pcapng file (magic {head.hex()})")
    return fh, kind


class _Stream:
    """Buffered reader that knows its absolute offset and survives truncated gzip."""

    def __init__(self, fh: BinaryIO, path: str, problems: Problems, read=None) -> None:
        self.fh, self.path, self.problems = fh, path, problems
        #: a pipe is read with whatever is available (os.read), a file in large chunks
        self._read = read or fh.read
        self.buf = b""
        self.pos = 0  # position in buf
        self.base = 0  # absolute offset of buf[0]
        self.eof = False

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def _fill(self, need: int) -> None:
        while len(self.buf) - self.pos < need and not self.eof:
            try:
                chunk = self._read(max(READ_CHUNK, need))
            except (OSError, EOFError, zlib.error) as e:
                self.problems.skip(self.path, f"offset {self.offset + len(self.buf) - self.pos}",
                                   f"compressed stream ends early or is corrupt ({type(e).__name__})")
                chunk = b""
            if not chunk:
                self.eof = True
                break
            self.base += self.pos
            self.buf = self.buf[self.pos:] + chunk
            self.pos = 0

    def read(self, n: int) -> bytes | None:
        """Exactly n bytes, or None at end of data (the short tail is left in place)."""
        self._fill(n)
        if len(self.buf) - self.pos < n:
            return None
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self.buf[self.pos : self.pos + n]

    def skip(self, n: int) -> None:
        self._fill(n)
        self.pos = min(len(self.buf), self.pos + n)

    def remaining_tail(self) -> int:
        """Bytes left after a failed read (read() already filled to end of data)."""
        return len(self.buf) - self.pos


def read_packets(path: str, problems: Problems, info: CaptureInfo | None = None) -> Iterator[RawPacket]:
    """Yield every readable packet of a pcap/pcapng file (gzip'd or not).

    Raises InputError only when nothing of the file can be read (missing,
    unreadable, not a capture). Everything else is counted in ``problems``.
    """
    fh, kind = open_capture(path)
    info = info if info is not None else CaptureInfo(path)
    info.format = kind
    try:
        reader = _read_pcap if kind == "pcap" else _read_pcapng
        yield from counted(reader(_Stream(fh, path, problems), path, problems), info)
    finally:
        fh.close()


def counted(packets: Iterator[RawPacket], info: CaptureInfo) -> Iterator[RawPacket]:
    """The packets, passed on, with ``info``'s packet, byte, link type and time counts kept."""
    info.linktypes = set()
    for p in packets:
        info.packets += 1
        info.bytes += len(p.data)
        info.linktypes.add(p.linktype)
        if info.first_ts is None:
            info.first_ts = p.ts
        info.last_ts = p.ts
        yield p


def open_input(path: str, open_it: Callable[[CaptureInfo], T], infos: list[CaptureInfo],
               unreadable: list[InputError]) -> T | None:
    """``open_it(info)`` for one input of several, its CaptureInfo appended to ``infos``.

    An input that cannot be read at all is listed in ``unreadable`` (its info
    says so) and None returned: the other inputs are still read.
    """
    info = CaptureInfo(path)
    try:
        opened = open_it(info)
    except InputError as e:
        unreadable.append(e)
        info.format = "unreadable"
        opened = None
    infos.append(info)
    return opened


def _read_pcap(s: _Stream, path: str, problems: Problems) -> Iterator[RawPacket]:
    header = s.read(24)
    if header is None:
        problems.skip(path, "offset 0", "truncated pcap global header")
        return
    order, unit = PCAP_MAGICS[header[:4]]
    modified = header[:4] in (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34")
    _vmaj, _vmin, _zone, _sig, snaplen, network = struct.unpack(order + "HHiIII", header[4:])
    # Since libpcap 1.10 the top bits of `network` may carry FCS info; the link type is the low 16.
    linktype = network & 0xFFFF
    rec = struct.Struct(order + "IIII")
    hdr_len = 24 if modified else 16
    limit = max(snaplen, 65535) if 0 < snaplen <= MAX_RECORD else MAX_RECORD
    frac_max = 1_000_000_000 if unit < 1e-6 else 1_000_000
    last_sec: int | None = None
    while True:
        at = s.offset
        head = s.read(hdr_len)
        if head is None:
            tail = s.remaining_tail()
            if tail:
                problems.skip(path, f"offset {at}", f"truncated record header ({tail} bytes at end of file)")
            return
        sec, frac, incl, orig = rec.unpack_from(head)
        if incl > limit or (orig and incl > orig and incl > snaplen):
            problems.skip(path, f"offset {at}", f"corrupt record length {incl}")
            if not _resync_pcap(s, rec, hdr_len, limit, last_sec, frac_max):
                return
            continue
        data = s.read(incl)
        if data is None:
            problems.skip(path, f"offset {at}", f"truncated packet: record says {incl} bytes, file ends first")
            return
        last_sec = sec
        yield RawPacket(sec + frac * unit, data, orig or incl, linktype, path, at)


def _resync_pcap(s: _Stream, rec: struct.Struct, hdr_len: int, limit: int, last_sec: int | None,
                 frac_max: int) -> bool:
    """After a corrupt header, find the next offset where records chain plausibly.

    A candidate must have a sane length and fraction, a time near the last good
    record's, and be followed by two more records that pass the same checks (or
    end exactly at the end of the data).
    """
    s.skip(1)
    window = s.peek(4 << 20)

    def plausible(at: int, near: int | None) -> int | None:
        if at + hdr_len > len(window):
            return None
        sec, frac, incl, orig = rec.unpack_from(window, at)
        if incl > limit or frac >= frac_max or (orig and incl > orig) or orig > MAX_RECORD:
            return None
        if near is not None and abs(sec - near) > 86400:
            return None
        return at + hdr_len + incl

    for i in range(len(window) - hdr_len):
        nxt = plausible(i, last_sec)
        if nxt is None:
            continue
        ok = True
        for _ in range(2):
            if nxt == len(window):
                break
            sec = rec.unpack_from(window, i)[0]
            nxt2 = plausible(nxt, sec)
            if nxt2 is None:
                ok = False
                break
            nxt = nxt2
        if ok:
            s.skip(i)
            return True
    return False


# ---- pcapng (draft-ietf-opsawg-pcapng) ----------------------------------------------

BT_IDB, BT_PB, BT_SPB, BT_EPB, BT_ISB = 0x00000001, 0x00000002, 0x00000003, 0x00000006, 0x00000005


def _read_pcapng(s: _Stream, path: str, problems: Problems) -> Iterator[RawPacket]:
    order = "<"
    interfaces: list[tuple[int, float, int]] = []  # (linktype, ts unit, snaplen)
    block_index = 0
    while True:
        at = s.offset
        head = s.peek(12)
        if len(head) < 8:
            if head:
                problems.skip(path, f"offset {at}", f"truncated block header ({len(head)} bytes at end of file)")
            return
        btype_le = struct.unpack_from("<I", head)[0]
        if btype_le == PCAPNG_SHB:
            if len(head) < 12:
                problems.skip(path, f"offset {at}", "truncated section header block")
                return
            bom = head[8:12]
            order = "<" if struct.unpack("<I", bom)[0] == PCAPNG_BOM else ">"
            if struct.unpack(order + "I", bom)[0] != PCAPNG_BOM:
                problems.skip(path, f"offset {at}", "section header with a bad byte-order magic")
                return
            interfaces = []  # interface ids are per section
        btype, blen = struct.unpack_from(order + "II", head)
        if blen < 12 or blen % 4 or blen > MAX_RECORD + 4096:
            problems.skip(path, f"offset {at}", f"corrupt block length {blen} (block type {btype:#x})")
            if not _resync_pcapng(s, order):
                return
            continue
        block = s.read(blen)
        block_index += 1
        if block is None:
            problems.skip(path, f"offset {at}", f"truncated block: says {blen} bytes, file ends first")
            return
        if struct.unpack_from(order + "I", block, blen - 4)[0] != blen:
            problems.skip(path, f"offset {at}", "block trailer length does not match its header")
            continue
        body = block[8 : blen - 4]
        if btype == BT_IDB:
            if len(body) < 8:
                problems.skip(path, f"offset {at}", "interface description block too short")
                continue
            linktype, _res, snaplen = struct.unpack_from(order + "HHI", body)
            interfaces.append((linktype, _tsresol(body[8:], order), snaplen))
        elif btype in (BT_EPB, BT_PB):
            if len(body) < 20:
                problems.skip(path, f"offset {at}", "packet block too short")
                continue
            if btype == BT_EPB:
                ifid, ts_hi, ts_lo, caplen, orig = struct.unpack_from(order + "IIIII", body)
            else:
                ifid, _drops, ts_hi, ts_lo, caplen, orig = struct.unpack_from(order + "HHIIII", body)
            if ifid >= len(interfaces):
                problems.skip(path, f"offset {at}", f"packet for undeclared interface {ifid}")
                continue
            if caplen > len(body) - 20:
                problems.skip(path, f"offset {at}", f"captured length {caplen} exceeds its block")
                continue
            linktype, unit, _snap = interfaces[ifid]
            ts = ((ts_hi << 32) | ts_lo) * unit
            yield RawPacket(ts, body[20 : 20 + caplen], orig or caplen, linktype, path, at, ifid)
        elif btype == BT_SPB:
            if not interfaces or len(body) < 4:
                problems.skip(path, f"offset {at}", "simple packet block without an interface")
                continue
            linktype, _unit, snaplen = interfaces[0]
            orig = struct.unpack_from(order + "I", body)[0]
            cap = min(orig, len(body) - 4, snaplen or orig)
            # SPBs carry no timestamp; the spec says to use none. 0.0 sorts them first.
            yield RawPacket(0.0, body[4 : 4 + cap], orig, linktype, path, at)
        # SHB, ISB, NRB, DSB, custom blocks: nothing for the flow engine (PCAPdroid
        # custom blocks are read by netan.context.pcapdroid on their own pass).


def _tsresol(options: bytes, order: str) -> float:
    """if_tsresol (option 9): power of 10 or, with the top bit set, of 2. Default µs."""
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and length >= 1 and pos + 5 <= len(options):
            v = options[pos + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        pos += 4 + ((length + 3) & ~3)
    return 1e-6


def _resync_pcapng(s: _Stream, order: str) -> bool:
    s.skip(4)
    window = s.peek(4 << 20)
    known = {BT_IDB, BT_PB, BT_SPB, BT_EPB, BT_ISB, 0x4, 0xA, PCAPNG_SHB, 0xBAD, 0x40000BAD}
    for i in range(0, len(window) - 12, 4):
        btype, blen = struct.unpack_from(order + "II", window, i)
        if btype in known and 12 <= blen <= MAX_RECORD and blen % 4 == 0 and i + blen <= len(window):
            if struct.unpack_from(order + "I", window, i + blen - 4)[0] == blen:
                s.skip(i)
                return True
    return False
