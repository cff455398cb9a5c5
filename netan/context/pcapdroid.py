"""PCAPdroid app attribution: capture extensions and the connections CSV.

Three inputs, per ../shared/formats/android-context.md section 5 (verified
against emanuele-f/PCAPdroid ``pcap_dump.[ch]``, ``tools/pcapdroid.lua``):

* classic pcap, linktype 1, each frame ``[14 B zero Ethernet | IP | 0-3 B pad |
  trailer]`` with the 32-byte trailer ``magic 0x01072021 (BE) | uid i32 (BE) |
  appname[20] | fcs u32``. Frames without a trailer (snaplen too small) are legal.
* pcapng: Custom Block ``0x00000BAD`` with PEN 62652 (UID_MAP: uid, package,
  app name) and Enhanced Packet Blocks with an ``opt_comment`` ``u-<uid>``.
* the connections CSV export (``IPProto,SrcIP,SrcPort,DstIp,DstPort,UID,App,
  PackageName,Proto,Status,Info,BytesSent,BytesRcvd,PktsSent,PktsRcvd,FirstSeen,
  LastSeen[,Malicious]``), written without CSV quoting.

Captures are aggregated into one ``PcapdroidConnection`` per 5-tuple (bounded by
``max_connections``): memory grows with connections, not packets. Byte counts
from captures are transport payload bytes (``bytes_unit="payload"``); the CSV's
are PCAPdroid's IP-level counters (``bytes_unit="ip"``). ``parse_trailer`` is
sans-IO and usable by a capture source that wants to strip the extension.
"""
from __future__ import annotations

import ipaddress
import re
import struct
from dataclasses import dataclass, field
from typing import BinaryIO, Iterable, Iterator

from netan.context._util import TimeError, norm_ip, parse_rfc3339, to_int
from netan.context.model import PcapdroidConnection, Reject

__all__ = [
    "TRAILER_MAGIC",
    "PEN",
    "CSV_HEADER",
    "FORMAT_PCAP",
    "FORMAT_PCAPNG",
    "FORMAT_CSV",
    "parse_trailer",
    "parse_ip",
    "sniff_pcap",
    "sniff_pcapng",
    "parse_pcap",
    "parse_pcapng",
    "parse_csv",
    "Aggregator",
]

FORMAT_PCAP = "pcapdroid_pcap"
FORMAT_PCAPNG = "pcapdroid_pcapng"
FORMAT_CSV = "pcapdroid_csv"

TRAILER_MAGIC = 0x01072021
TRAILER_LEN = 32
PEN = 62652  # PCAPdroid's IANA Private Enterprise Number
CUSTOM_BLOCK_TYPES = (0x00000BAD, 0x40000BAD)  # pcapng draft section 4.8 (copyable / not)
CSV_HEADER = "IPProto,SrcIP,SrcPort,DstIp,DstPort,UID,App,PackageName,Proto,Status,Info"

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}
_MAX_FRAME = 262144


def parse_trailer(frame: bytes) -> tuple[bytes, int, str] | None:
    """``(ip_packet, uid, appname)`` of a PCAPdroid-extended Ethernet frame, or None.

    Detection follows the Lua dissector: zero MACs and the big-endian magic 32
    bytes before the end. The IP packet is cut at its own length field, which
    drops the alignment padding.
    """
    if len(frame) < 14 + 20 + TRAILER_LEN or frame[:12] != b"\x00" * 12:
        return None
    if frame[-TRAILER_LEN:-TRAILER_LEN + 4] != b"\x01\x07\x20\x21":
        return None
    uid = struct.unpack(">i", frame[-28:-24])[0]
    appname = frame[-24:-4].split(b"\x00", 1)[0].decode("utf-8", "replace")
    body = frame[14:-TRAILER_LEN]
    ver = body[0] >> 4 if body else 0
    if ver == 4 and len(body) >= 20:
        total = struct.unpack(">H", body[2:4])[0]
    elif ver == 6 and len(body) >= 40:
        total = 40 + struct.unpack(">H", body[4:6])[0]
    else:
        return None
    return body[: min(total, len(body))], uid, appname


@dataclass(frozen=True, slots=True)
class IpFacts:
    proto: str
    src: str
    dst: str
    sport: int
    dport: int
    payload: int
    syn: bool
    ack: bool


def parse_ip(pkt: bytes) -> IpFacts | None:
    """Addresses, ports, transport payload length and SYN/ACK of a raw IP packet."""
    if not pkt:
        return None
    ver = pkt[0] >> 4
    if ver == 4:
        if len(pkt) < 20:
            return None
        ihl = (pkt[0] & 0x0F) * 4
        total = struct.unpack(">H", pkt[2:4])[0]
        proto = pkt[9]
        frag = struct.unpack(">H", pkt[6:8])[0] & 0x1FFF
        src = str(ipaddress.IPv4Address(pkt[12:16]))
        dst = str(ipaddress.IPv4Address(pkt[16:20]))
        off, end = ihl, max(min(total, len(pkt)), ihl)
        if frag:
            return IpFacts(_PROTO_NAMES.get(proto, str(proto)), src, dst, 0, 0, 0, False, False)
        declared_end = total
    elif ver == 6:
        if len(pkt) < 40:
            return None
        proto = pkt[6]
        src = str(ipaddress.IPv6Address(pkt[8:24]))
        dst = str(ipaddress.IPv6Address(pkt[24:40]))
        off = 40
        declared_end = 40 + struct.unpack(">H", pkt[4:6])[0]
        end = min(declared_end, len(pkt))
        # skip hop-by-hop, routing, destination options (RFC 8200 section 4)
        while proto in (0, 43, 60) and off + 2 <= end:
            proto, off = pkt[off], off + (pkt[off + 1] + 1) * 8
    else:
        return None
    name = _PROTO_NAMES.get(proto, str(proto))
    if proto == 6 and off + 20 <= len(pkt):
        sport, dport = struct.unpack(">HH", pkt[off:off + 4])
        doff = (pkt[off + 12] >> 4) * 4
        flags = pkt[off + 13]
        return IpFacts(name, src, dst, sport, dport, max(declared_end - off - doff, 0),
                       bool(flags & 0x02), bool(flags & 0x10))
    if proto == 17 and off + 8 <= len(pkt):
        sport, dport = struct.unpack(">HH", pkt[off:off + 4])
        return IpFacts(name, src, dst, sport, dport, max(declared_end - off - 8, 0), False, False)
    return IpFacts(name, src, dst, 0, 0, max(declared_end - off, 0), False, False)


@dataclass(slots=True)
class _Conn:
    first: float
    last: float
    orig: tuple[str, int]
    resp: tuple[str, int]
    proto: str
    uid: int = -1
    app: str = ""
    syn: bool = False
    b_out: int = 0
    b_in: int = 0
    p_out: int = 0
    p_in: int = 0


@dataclass
class Aggregator:
    """Folds attributed packets into connections; memory bounded by ``max_connections``."""

    max_connections: int = 500_000
    conns: dict[tuple, _Conn] = field(default_factory=dict)
    uid_map: dict[int, tuple[str, str]] = field(default_factory=dict)
    dropped: int = 0

    def add(self, ts: float, facts: IpFacts, uid: int, app: str) -> None:
        a, b = (facts.src, facts.sport), (facts.dst, facts.dport)
        key = (facts.proto, a, b) if a <= b else (facts.proto, b, a)
        conn = self.conns.get(key)
        if conn is None:
            if len(self.conns) >= self.max_connections:
                self.dropped += 1
                return
            # originator: SYN sender, else the first packet's sender (CONTRACT.md)
            if facts.syn and facts.ack:
                a, b = b, a
            conn = _Conn(ts, ts, a, b, facts.proto, syn=facts.syn and not facts.ack)
            self.conns[key] = conn
        conn.first, conn.last = min(conn.first, ts), max(conn.last, ts)
        if uid != -1 and conn.uid == -1:
            conn.uid = uid
        if app and not conn.app:
            conn.app = app
        if (facts.src, facts.sport) == conn.orig:
            conn.b_out += facts.payload
            conn.p_out += 1
        else:
            conn.b_in += facts.payload
            conn.p_in += 1

    def connections(self, source: str) -> Iterator[PcapdroidConnection]:
        for conn in sorted(self.conns.values(), key=lambda c: c.first):
            package, label = self.uid_map.get(conn.uid, ("", ""))
            yield PcapdroidConnection(
                conn.first, conn.last, conn.proto, conn.orig[0], conn.orig[1], conn.resp[0],
                conn.resp[1], conn.uid, label or conn.app, package, conn.b_out, conn.b_in,
                conn.p_out, conn.p_in, "", "payload", conn.syn, None, 0, source,
            )


def sniff_pcap(head: bytes, max_frames: int = 64) -> bool:
    """A classic pcap with linktype 1 whose frames carry the PCAPdroid trailer."""
    if len(head) < 24 or head[:4] not in _PCAP_MAGICS:
        return False
    endian, _ = _PCAP_MAGICS[head[:4]]
    if struct.unpack(endian + "I", head[20:24])[0] & 0xFFFF != 1:
        return False
    off = 24
    for _ in range(max_frames):
        if off + 16 > len(head):
            return False
        incl = struct.unpack(endian + "I", head[off + 8:off + 12])[0]
        frame = head[off + 16:off + 16 + incl]
        if len(frame) < incl:
            return False
        if parse_trailer(frame) is not None:
            return True
        off += 16 + incl
    return False


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    return data if data is not None else b""


def parse_pcap(stream: BinaryIO, agg: Aggregator) -> Iterator[Reject]:
    """Stream a trailer pcap into ``agg``; yields Rejects (record index as "line")."""
    header = _read_exact(stream, 24)
    if len(header) < 24 or header[:4] not in _PCAP_MAGICS:
        yield Reject(0, "not a pcap file")
        return
    endian, scale = _PCAP_MAGICS[header[:4]]
    n = 0
    while True:
        rec = _read_exact(stream, 16)
        if not rec:
            return
        n += 1
        if len(rec) < 16:
            yield Reject(n, "truncated pcap record header")
            return
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", rec)
        if incl > _MAX_FRAME:
            yield Reject(n, f"pcap record length {incl} exceeds {_MAX_FRAME}; rest of file skipped")
            return
        frame = _read_exact(stream, incl)
        if len(frame) < incl:
            yield Reject(n, "truncated pcap record")
            return
        parsed = parse_trailer(frame)
        if parsed is None:
            continue  # a frame without trailer (snaplen) carries no attribution
        ip, uid, app = parsed
        facts = parse_ip(ip)
        if facts is None:
            yield Reject(n, "frame with trailer but no parsable IP packet")
            continue
        agg.add(sec + frac * scale, facts, uid, app)


def sniff_pcapng(head: bytes) -> bool:
    """A pcapng with a PCAPdroid custom block or ``u-<uid>`` packet comments."""
    if len(head) < 28 or head[:4] != b"\x0a\x0d\x0d\x0a":
        return False
    return any(True for _ in _pcapng_marks(head))


def _pcapng_marks(head: bytes) -> Iterator[None]:
    endian = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    off = 0
    while off + 12 <= len(head):
        btype, blen = struct.unpack(endian + "II", head[off:off + 8])
        if blen < 12 or blen % 4:
            return
        body = head[off + 8:off + blen - 4]
        if btype in CUSTOM_BLOCK_TYPES and len(body) >= 4 and struct.unpack(endian + "I", body[:4])[0] == PEN:
            yield None
            return
        if btype == 6 and re.search(rb"u-(-?\d+)", body[20:]):
            yield None
            return
        off += blen


def _options(data: bytes, endian: str) -> Iterator[tuple[int, bytes]]:
    off = 0
    while off + 4 <= len(data):
        code, length = struct.unpack(endian + "HH", data[off:off + 4])
        if code == 0:
            return
        yield code, data[off + 4:off + 4 + length]
        off += 4 + length + (-length % 4)


def parse_pcapng(stream: BinaryIO, agg: Aggregator) -> Iterator[Reject]:
    """Stream a PCAPdroid pcapng into ``agg`` (blocks numbered as "lines")."""
    endian = "<"
    ifaces: list[tuple[int, float]] = []  # (linktype, seconds per tick)
    n = 0
    while True:
        hdr = _read_exact(stream, 8)
        if not hdr:
            return
        n += 1
        if len(hdr) < 8:
            yield Reject(n, "truncated pcapng block header")
            return
        if hdr[:4] == b"\x0a\x0d\x0d\x0a":
            bom = _read_exact(stream, 4)
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            blen = struct.unpack(endian + "I", hdr[4:8])[0]
            if blen < 28 or blen % 4 or blen > _MAX_FRAME:
                yield Reject(n, "bad section header block length; rest of file skipped")
                return
            _read_exact(stream, blen - 12)
            ifaces = []
            continue
        btype, blen = struct.unpack(endian + "II", hdr)
        if blen < 12 or blen % 4 or blen > _MAX_FRAME + 1024:
            yield Reject(n, f"bad pcapng block length {blen}; rest of file skipped")
            return
        body = _read_exact(stream, blen - 8)
        if len(body) < blen - 8:
            yield Reject(n, "truncated pcapng block")
            return
        body = body[:-4]
        if btype == 1 and len(body) >= 8:
            linktype = struct.unpack(endian + "H", body[:2])[0]
            tsres = 1e-6
            for code, val in _options(body[8:], endian):
                if code == 9 and val:  # if_tsresol
                    tsres = 2.0 ** -(val[0] & 0x7F) if val[0] & 0x80 else 10.0 ** -val[0]
            ifaces.append((linktype, tsres))
        elif btype in CUSTOM_BLOCK_TYPES and len(body) >= 4:
            _uid_map_block(body, endian, agg)
        elif btype == 6 and len(body) >= 20:
            ifid, hi, lo, caplen, _orig = struct.unpack(endian + "IIIII", body[:20])
            if ifid >= len(ifaces) or caplen > len(body) - 20:
                yield Reject(n, "enhanced packet block with bad interface or length")
                continue
            linktype, tsres = ifaces[ifid]
            data = body[20:20 + caplen]
            uid = -1
            for code, val in _options(body[20 + caplen + (-caplen % 4):], endian):
                m = re.fullmatch(rb"u-(-?\d+)", val.rstrip(b"\x00")) if code == 1 else None
                if m:
                    uid = int(m.group(1))
            app = ""
            if linktype == 1:
                parsed = parse_trailer(data)
                if parsed is not None:
                    data, t_uid, app = parsed
                    uid = t_uid if uid == -1 else uid
                else:
                    data = data[14:]
            elif linktype not in (101, 228, 229):  # RAW, IPV4, IPV6
                continue
            facts = parse_ip(data)
            if facts is None:
                yield Reject(n, "packet without a parsable IP header")
                continue
            agg.add(((hi << 32) | lo) * tsres, facts, uid, app)


def _uid_map_block(body: bytes, endian: str, agg: Aggregator) -> None:
    # pen u32 | version u16 | type u8 | pad u8 | uid i32 | pkg_len u8 | app_len u8 | pkg | app
    if len(body) < 14 or struct.unpack(endian + "I", body[:4])[0] != PEN:
        return
    _version, btype = struct.unpack(endian + "HB", body[4:7])
    if btype != 1:
        return
    uid = struct.unpack(endian + "i", body[8:12])[0]
    plen, alen = body[12], body[13]
    pkg = body[14:14 + plen].decode("utf-8", "replace")
    app = body[14 + plen:14 + plen + alen].decode("utf-8", "replace")
    agg.uid_map[uid] = (pkg, app)


_PKG = re.compile(r"^[A-Za-z][\w]*(\.[\w]+)*$")
_IPPROTO = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmp6"}


def parse_csv(lines: Iterable[str]) -> Iterator[PcapdroidConnection | Reject]:
    """The connections CSV; commas inside App/Info are resolved around the fixed columns."""
    header: list[str] | None = None
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if line.startswith("IPProto,"):
            header = line.split(",")
            continue
        if header is None:
            yield Reject(n, "CSV row before the header")
            continue
        cols = line.split(",")
        n_tail = len(header) - 11  # BytesSent..LastSeen[,Malicious]
        if len(cols) < len(header) or n_tail < 6:
            yield Reject(n, f"CSV row has {len(cols)} columns, expected {len(header)}")
            continue
        head, tail = cols[:6], cols[len(cols) - n_tail:]
        mid = cols[6:len(cols) - n_tail]
        # App may contain commas, PackageName/Proto/Status never do, Info may.
        split = _split_middle(mid)
        if split is None:
            yield Reject(n, "cannot place App/PackageName/Info columns (unquoted commas)")
            continue
        app, package, _l7, _status, info = split
        proto = _IPPROTO.get(head[0].strip(), head[0].strip().lower())
        src, dst = norm_ip(head[1]), norm_ip(head[3])
        sport, dport, uid = to_int(head[2]), to_int(head[4]), to_int(head[5])
        nums = [to_int(x) for x in tail[:4]]
        if not dst or dport is None or uid is None or sport is None or any(x is None for x in nums):
            yield Reject(n, "CSV row with a bad address, port, uid or counter")
            continue
        try:
            first, last = parse_rfc3339(tail[4]), parse_rfc3339(tail[5])
        except TimeError as exc:
            yield Reject(n, f"FirstSeen/LastSeen: {exc}")
            continue
        yield PcapdroidConnection(
            first, last, proto, src, sport, dst, dport, uid, app, package,
            nums[0], nums[1], nums[2], nums[3], info, "ip", proto == "tcp", None, n, FORMAT_CSV,
        )


def _split_middle(mid: list[str]) -> tuple[str, str, str, str, str] | None:
    if len(mid) == 5:
        return mid[0], mid[1], mid[2], mid[3], mid[4]
    fits = [k for k in range(len(mid) - 3)
            if _PKG.match(mid[k + 1]) and "." not in mid[k + 2] and mid[k + 3].strip()]
    # a real package name has a dot; "Inc" from "Foo, Inc" does not
    dotted = [k for k in fits if "." in mid[k + 1]]
    pick = dotted or fits
    if len(pick) != 1 and not dotted:
        return None
    k = pick[0]
    return ",".join(mid[:k + 1]), mid[k + 1], mid[k + 2], mid[k + 3], ",".join(mid[k + 4:])
