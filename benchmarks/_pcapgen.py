"""Fast, deterministic building blocks for the benchmark capture generators.

Frames are assembled with ``struct`` from per-flow templates (link-layer
prefix, addresses, the constant part of the pseudo-header checksum), so a
million packets cost seconds, not the minutes a per-packet scapy object would.
Every IPv4 header, TCP, UDP and ICMP checksum is correct (RFC 791, RFC 793,
RFC 768, RFC 4443), as on a gateway capture without checksum offload.
Nothing here touches the clock or global random state: callers pass a seeded
``random.Random``.
"""
from __future__ import annotations

import hashlib
import json
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = [
    "PcapWriter",
    "manifest_path",
    "write_manifest",
    "Endpoint",
    "FlowPath",
    "ByteStream",
    "Bytes",
    "PoolStream",
    "RecordStream",
    "Concat",
    "Pool",
    "TCP_FIN",
    "TCP_SYN",
    "TCP_RST",
    "TCP_PSH",
    "TCP_ACK",
]

# TCP flag bits, RFC 9293 §3.1.
TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

ETH_IPV4, ETH_IPV6, ETH_8021Q, ETH_8021AD = 0x0800, 0x86DD, 0x8100, 0x88A8
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58

_PCAP_HDR = struct.Struct("<IHHiIII")
_REC_HDR = struct.Struct("<IIII")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")


def _wsum(data: bytes) -> int:
    """Ones' complement sum of 16-bit big-endian words, modulo 0xFFFF.

    2**16 == 1 (mod 0xFFFF), so the whole buffer read as one big integer has
    the same residue as the sum of its words (RFC 1071 §2): one C-level call
    instead of a Python loop over 730 words of an MTU-sized segment.
    """
    v = int.from_bytes(data, "big")
    if len(data) & 1:
        v <<= 8  # pad the odd byte with zero on the right (RFC 1071)
    return v % 0xFFFF


def _fold(total: int) -> int:
    """Checksum field from a residue: the complement of the ones' complement sum."""
    s = total % 0xFFFF
    return (~s) & 0xFFFF if s else 0xFFFF if total == 0 else 0


class PcapWriter:
    """Classic little-endian pcap (microsecond timestamps) with a running sha256."""

    def __init__(self, fh: BinaryIO, linktype: int = 1, snaplen: int = 65535) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.packets = 0
        self.bytes = 0
        self._buf: list[bytes] = []
        self._n = 0
        self._put(_PCAP_HDR.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))

    def _put(self, b: bytes) -> None:
        self._buf.append(b)
        self._n += len(b)
        if self._n >= 1 << 20:
            self.flush()

    def write(self, ts: float, frame: bytes) -> None:
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        n = len(frame)
        self._buf.append(_REC_HDR.pack(sec, usec, n, n))
        self._buf.append(frame)
        self._n += 16 + n
        self.packets += 1
        self.bytes += n
        if self._n >= 1 << 20:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            blob = b"".join(self._buf)
            self.sha.update(blob)
            self.fh.write(blob)
            self._buf.clear()
            self._n = 0


def manifest_path(capture: Path) -> Path:
    """Where a generated capture's manifest lives: beside it, ``<capture>.json``."""
    return capture.with_name(capture.name + ".json")


def write_manifest(capture: Path, manifest: dict) -> None:
    """Write ``manifest`` (indented JSON) to ``manifest_path(capture)``."""
    manifest_path(capture).write_text(json.dumps(manifest, indent=2) + "\n")


@dataclass(frozen=True)
class Endpoint:
    """One side of a flow: L2 address, L3 address (4 or 16 bytes), port."""

    mac: bytes
    ip: bytes
    port: int


class FlowPath:
    """Frame factory for one flow: precomputed L2 prefixes and checksum parts.

    ``vlans`` is the outer-to-inner list of VLAN ids; one tag is 802.1Q, two
    are QinQ (outer 802.1ad, IEEE 802.1Q-2018 §6.9).
    """

    __slots__ = ("cli", "srv", "proto", "v6", "_l2", "_ph", "_ipid", "_ttl", "_pair")

    def __init__(self, cli: Endpoint, srv: Endpoint, proto: int, vlans: tuple[int, ...],
                 rng: random.Random, srv_ttl: int = 54) -> None:
        self.cli, self.srv, self.proto = cli, srv, proto
        self.v6 = len(cli.ip) == 16
        et = ETH_IPV6 if self.v6 else ETH_IPV4
        def l2(dst: bytes, src: bytes) -> bytes:
            b = dst + src
            for i, vid in enumerate(vlans):
                tpid = ETH_8021AD if (len(vlans) > 1 and i == 0) else ETH_8021Q
                b += struct.pack("!HH", tpid, vid & 0x0FFF)
            return b + struct.pack("!H", et)

        self._l2 = (l2(srv.mac, cli.mac), l2(cli.mac, srv.mac))
        # Pseudo-header address part (RFC 793 §3.1, RFC 8200 §8.1), per direction.
        self._ph = (_wsum(cli.ip + srv.ip), _wsum(srv.ip + cli.ip))
        self._pair = ((cli.ip, srv.ip, cli.port, srv.port), (srv.ip, cli.ip, srv.port, cli.port))
        self._ipid = [rng.randrange(65536), rng.randrange(65536)]
        self._ttl = (64, srv_ttl)

    def _ip(self, d: int, proto: int, l4: bytes) -> bytes:
        src, dst = self._pair[d][0], self._pair[d][1]
        if self.v6:
            return self._l2[d] + _IPV6.pack(0x60000000, len(l4), proto, self._ttl[d], src, dst) + l4
        ipid = self._ipid[d]
        self._ipid[d] = (ipid + 1) & 0xFFFF
        hdr = _IPV4.pack(0x45, 0, 20 + len(l4), ipid, 0x4000, self._ttl[d], proto, 0, src, dst)
        c = _fold(_wsum(hdr))
        return self._l2[d] + hdr[:10] + struct.pack("!H", c) + hdr[12:] + l4

    def tcp(self, d: int, seq: int, ack: int, flags: int, payload: bytes = b"",
            win: int = 502, opts: bytes = b"") -> bytes:
        """A TCP segment; ``d`` is 0 for client->server, 1 for server->client."""
        _, _, sp, dp = self._pair[d]
        hdr = _TCP.pack(sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                        ((20 + len(opts)) // 4) << 4, flags, win, 0, 0) + opts
        ln = len(hdr) + len(payload)
        c = _fold(self._ph[d] + PROTO_TCP + ln + _wsum(hdr) + _wsum(payload))
        return self._ip(d, PROTO_TCP, hdr[:16] + struct.pack("!H", c) + hdr[18:] + payload)

    def udp(self, d: int, payload: bytes) -> bytes:
        _, _, sp, dp = self._pair[d]
        ln = 8 + len(payload)
        c = _fold(self._ph[d] + PROTO_UDP + ln + _wsum(_UDP.pack(sp, dp, ln, 0)) + _wsum(payload))
        c = c or 0xFFFF  # a computed zero is sent as all ones (RFC 768)
        return self._ip(d, PROTO_UDP, _UDP.pack(sp, dp, ln, c) + payload)

    def icmp_echo(self, d: int, ident: int, seq: int, payload: bytes) -> bytes:
        """Echo request (d=0) or reply (d=1): ICMP (RFC 792) or ICMPv6 (RFC 4443 §4)."""
        if self.v6:
            typ = 128 if d == 0 else 129
            body = struct.pack("!BBHHH", typ, 0, 0, ident, seq) + payload
            c = _fold(self._ph[d] + PROTO_ICMPV6 + len(body) + _wsum(body))
            return self._ip(d, PROTO_ICMPV6, body[:2] + struct.pack("!H", c) + body[4:])
        typ = 8 if d == 0 else 0
        body = struct.pack("!BBHHH", typ, 0, 0, ident, seq) + payload
        c = _fold(_wsum(body))
        return self._ip(d, PROTO_ICMP, body[:2] + struct.pack("!H", c) + body[4:])


class Pool:
    """A seeded block of bytes sliced cyclically: random (ciphertext-like) or text."""

    def __init__(self, data: bytes) -> None:
        self.n = len(data)
        self.data = data + data[:65536]

    def take(self, off: int, n: int) -> bytes:
        o = off % self.n
        return self.data[o:o + n]


class ByteStream(Protocol):
    length: int

    def slice(self, off: int, n: int) -> bytes: ...


class Bytes:
    """A materialised (small) stream: handshake flights, requests, headers."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def slice(self, off: int, n: int) -> bytes:
        return self.data[off:off + n]


class PoolStream:
    """``length`` bytes read from a pool at ``base``: a body never materialised."""

    def __init__(self, pool: Pool, base: int, length: int) -> None:
        self.pool, self.base, self.length = pool, base, length

    def slice(self, off: int, n: int) -> bytes:
        return self.pool.take(self.base + off, min(n, self.length - off))


class RecordStream:
    """TLS application_data records (RFC 8446 §5.2) of ``rec`` bytes each over a pool.

    Each record is a 5-byte header (type 23, legacy version 0x0303, length)
    followed by ciphertext-like pool bytes; the last record is shorter.
    """

    def __init__(self, pool: Pool, base: int, payload: int, rec: int = 16401) -> None:
        self.pool, self.base, self.rec = pool, base, rec
        body = rec - 5
        full, rest = divmod(payload, body)
        self.nrec = full + (1 if rest else 0)
        self.last = rest if rest else body
        self.length = payload + 5 * self.nrec

    def slice(self, off: int, n: int) -> bytes:
        n = min(n, self.length - off)
        out = bytearray(self.pool.take(self.base + off, n))
        rec = self.rec
        i = off // rec
        while i * rec < off + n and i < self.nrec:
            start = i * rec
            blen = (self.last if i == self.nrec - 1 else rec - 5)
            hdr = struct.pack("!BHH", 23, 0x0303, blen)
            for j in range(5):
                p = start + j - off
                if 0 <= p < n:
                    out[p] = hdr[j]
            i += 1
        return bytes(out)


class Concat:
    """Two streams back to back (an HTTP header block and its body)."""

    def __init__(self, a: ByteStream, b: ByteStream) -> None:
        self.a, self.b = a, b
        self.length = a.length + b.length

    def slice(self, off: int, n: int) -> bytes:
        n = min(n, self.length - off)
        la = self.a.length
        if off + n <= la:
            return self.a.slice(off, n)
        if off >= la:
            return self.b.slice(off - la, n)
        return self.a.slice(off, la - off) + self.b.slice(0, n - (la - off))
