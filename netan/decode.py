"""Decode link, IP and transport headers of one frame into a flat ``Decoded`` tuple.

This is the per-packet path: plain ``struct`` over bytes, no dissector objects
(DESIGN.md principle 2). It covers the link types netan supports (Ethernet with
802.1Q/802.1ad/QinQ tags, Linux cooked v1/v2, raw IPv4/IPv6, BSD loopback),
IPv4 options, IPv6 extension headers (hop-by-hop, routing, destination options,
fragment, AH, mobility), and hands fragments to ``Defragmenter`` so that a
fragmented datagram becomes one packet. Any other IP protocol (ESP, GRE, OSPF,
SCTP, ...) still yields a packet keyed by address pair and protocol.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["Decoded", "Decoder", "LINKTYPES", "PROTO_NAMES", "DecodeError"]

# LINKTYPE_* values from https://www.tcpdump.org/linktypes.html
LT_NULL, LT_ETHERNET, LT_RAW, LT_LOOP, LT_SLL, LT_IPV4, LT_IPV6, LT_SLL2 = 0, 1, 101, 108, 113, 228, 229, 276
LT_PPP, LT_PPP_HDLC, LT_PPP_PPPD = 9, 50, 166
#: PPP protocol numbers (RFC 1661 / IANA PPP DLL protocol numbers) for IP
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057
LINKTYPES = {
    LT_NULL: "null", LT_ETHERNET: "ethernet", LT_RAW: "raw", 12: "raw", 14: "raw",
    LT_LOOP: "loop", LT_SLL: "linux_sll", LT_IPV4: "ipv4", LT_IPV6: "ipv6", LT_SLL2: "linux_sll2",
    LT_PPP: "ppp", LT_PPP_HDLC: "ppp_hdlc", LT_PPP_PPPD: "ppp_pppd",
}
ETH_IPV4, ETH_IPV6, ETH_VLAN, ETH_QINQ, ETH_VLAN_OLD = 0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100
TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
#: IANA protocol numbers we name; others are reported as their number.
PROTO_NAMES = {1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp",
               51: "ah", 58: "icmp6", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp", 136: "udplite"}
#: IPv6 extension headers that are walked over (RFC 8200 §4; AH is RFC 4302, its length in 4-octet units).
IPV6_EXT = {0, 43, 60, 135, 139, 140}
IPV6_FRAG, IPV6_AH, IPV6_NONE = 44, 51, 59

_u16 = struct.Struct("!H").unpack_from
_tcp = struct.Struct("!HHIIBB").unpack_from
_udp = struct.Struct("!HHH").unpack_from


class DecodeError(Exception):
    """A frame that cannot be decoded; ``reason`` is what summary.json counts."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Decoded(NamedTuple):
    ts: float
    src: bytes  # 4 or 16 address bytes
    dst: bytes
    proto: int
    sport: int  # 0 for protocols without ports; ICMP: type
    dport: int  # ICMP: code
    flags: int  # TCP flags, 0 otherwise
    seq: int  # TCP sequence number, 0 otherwise
    payload: bytes  # transport payload as captured (may be shorter than plen)
    plen: int  # transport payload length on the wire
    ip_len: int  # IP datagram length on the wire (after reassembly)
    src_mac: bytes | None
    vlans: tuple[int, ...]


class NotIP(Exception):
    """A frame that is not IP (ARP, LLDP, ...): counted, not a problem."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


@dataclass
class _Pending:
    first_seen: float
    parts: dict[int, bytes] = field(default_factory=dict)  # offset -> bytes
    total: int | None = None  # known once the last fragment arrived
    header: tuple | None = None  # (version, src, dst, proto, src_mac, vlans)


class Decoder:
    """Stateful only for IP fragment reassembly (bounded, with a timeout)."""

    FRAG_TIMEOUT = 30.0  # seconds, like Linux's ipfrag_time
    MAX_PENDING = 4096

    def __init__(self) -> None:
        self.pending: dict[tuple, _Pending] = {}
        self.non_ip: dict[str, int] = {}
        self.fragments = 0
        self.reassembled = 0
        self.incomplete: list[Decoded] = []  # datagrams given up on, kept partially

    # ---- link layer -------------------------------------------------------------------
    def decode(self, ts: float, data: bytes, linktype: int) -> Decoded | None:
        """Decode one frame; None while a fragmented datagram is incomplete."""
        mac = None
        vlans: tuple[int, ...] = ()
        if linktype == LT_ETHERNET:
            if len(data) < 14:
                raise DecodeError("frame shorter than an Ethernet header")
            mac = data[6:12]
            etype = _u16(data, 12)[0]
            off = 14
            while etype in (ETH_VLAN, ETH_QINQ, ETH_VLAN_OLD):
                if len(data) < off + 4:
                    raise DecodeError("truncated VLAN tag")
                vlans += (_u16(data, off)[0] & 0x0FFF,)
                etype = _u16(data, off + 2)[0]
                off += 4
            if etype < 0x0600:
                raise NotIP("802.3/LLC")
        elif linktype == LT_SLL:
            if len(data) < 16:
                raise DecodeError("frame shorter than a Linux cooked header")
            halen = _u16(data, 4)[0]
            mac = data[6:12] if halen == 6 else None
            etype, off = _u16(data, 14)[0], 16
        elif linktype == LT_SLL2:
            if len(data) < 20:
                raise DecodeError("frame shorter than a Linux cooked v2 header")
            etype, off = _u16(data, 0)[0], 20
            mac = data[12:18] if data[11] == 6 else None
        elif linktype in (LT_RAW, 12, 14, LT_IPV4, LT_IPV6):
            off = 0
            if not data:
                raise DecodeError("empty frame")
            etype = ETH_IPV4 if data[0] >> 4 == 4 else ETH_IPV6 if data[0] >> 4 == 6 else 0
        elif linktype in (LT_NULL, LT_LOOP):
            if len(data) < 4:
                raise DecodeError("frame shorter than a loopback header")
            fam = struct.unpack_from("!I" if linktype == LT_LOOP else "=I", data)[0]
            if linktype == LT_NULL and fam > 0xFFFF:  # written on a host of the other byte order
                fam = struct.unpack_from("<I" if struct.pack("=I", 1) == struct.pack(">I", 1) else ">I", data)[0]
            etype = ETH_IPV4 if fam == 2 else ETH_IPV6 if fam in (10, 24, 28, 30) else 0
            off = 4
        elif linktype in (LT_PPP, LT_PPP_HDLC, LT_PPP_PPPD):
            off = 2 if data[:2] == b"\xff\x03" else 0  # HDLC address/control, often compressed away
            if len(data) < off + 2:
                raise DecodeError("frame shorter than a PPP header")
            if data[off] & 1:  # protocol-field compression: one byte
                proto, off = data[off], off + 1
            else:
                proto, off = _u16(data, off)[0], off + 2
            etype = ETH_IPV4 if proto == PPP_IPV4 else ETH_IPV6 if proto == PPP_IPV6 else 0
            if not etype:
                raise NotIP(f"ppp protocol 0x{proto:04x}")
        else:
            raise DecodeError(f"unsupported link type {linktype}")
        if etype == ETH_IPV4:
            return self._ipv4(ts, data, off, mac, vlans)
        if etype == ETH_IPV6:
            return self._ipv6(ts, data, off, mac, vlans)
        raise NotIP(f"ethertype 0x{etype:04x}")

    # ---- network layer ----------------------------------------------------------------
    def _ipv4(self, ts: float, data: bytes, off: int, mac, vlans) -> Decoded | None:
        if len(data) < off + 20:
            raise DecodeError("truncated IPv4 header")
        vihl = data[off]
        if vihl >> 4 != 4:
            raise DecodeError("IPv4 version field is not 4")
        ihl = (vihl & 0x0F) * 4
        if ihl < 20:
            raise DecodeError("IPv4 header length below 20")
        total = _u16(data, off + 2)[0]
        if total < ihl:
            if total == 0:  # TSO: length left to the NIC; trust the capture
                total = len(data) - off
            else:
                raise DecodeError("IPv4 total length shorter than its header")
        ident = _u16(data, off + 4)[0]
        frag = _u16(data, off + 6)[0]
        proto = data[off + 9]
        src, dst = data[off + 12 : off + 16], data[off + 16 : off + 20]
        body = data[off + ihl : off + total]
        body_wire = total - ihl
        mf, foff = frag & 0x2000, (frag & 0x1FFF) * 8
        if mf or foff:
            return self._fragment(ts, (src, dst, ident, proto, 4), foff, bool(mf), body,
                                  (4, src, dst, proto, mac, vlans), ihl)
        return self._transport(ts, src, dst, proto, body, body_wire, total, mac, vlans)

    def _ipv6(self, ts: float, data: bytes, off: int, mac, vlans) -> Decoded | None:
        if len(data) < off + 40:
            raise DecodeError("truncated IPv6 header")
        if data[off] >> 4 != 6:
            raise DecodeError("IPv6 version field is not 6")
        plen = _u16(data, off + 4)[0]
        nxt = data[off + 6]
        src, dst = data[off + 8 : off + 24], data[off + 24 : off + 40]
        if plen == 0:  # jumbogram or TSO; use what was captured
            plen = len(data) - off - 40
        end = off + 40 + plen
        pos = off + 40
        hops = 0
        while nxt in IPV6_EXT or nxt in (IPV6_FRAG, IPV6_AH):
            hops += 1
            if hops > 16 or pos + 8 > len(data):
                raise DecodeError("truncated or looping IPv6 extension headers")
            if nxt == IPV6_FRAG:
                nh = data[pos]
                fo = _u16(data, pos + 2)[0]
                ident = struct.unpack_from("!I", data, pos + 4)[0]
                pos += 8
                body = data[pos:end]
                return self._fragment(ts, (src, dst, ident, 6), fo & 0xFFF8, bool(fo & 1), body,
                                      (6, src, dst, nh, mac, vlans), pos - off, hdr_wire=pos - off)
            hlen = (data[pos + 1] + 2) * 4 if nxt == IPV6_AH else (data[pos + 1] + 1) * 8
            nxt = data[pos]
            pos += hlen
        if nxt == IPV6_NONE:
            return Decoded(ts, src, dst, nxt, 0, 0, 0, 0, b"", 0, 40 + plen, mac, vlans)
        return self._transport(ts, src, dst, nxt, data[pos:end], end - pos, 40 + plen, mac, vlans)

    # ---- fragments (RFC 791 / RFC 8200 §4.5) ---------------------------------------------
    def _fragment(self, ts, key, foff, more, body, header, hdr_len, hdr_wire=None) -> Decoded | None:
        self.fragments += 1
        pend = self.pending.get(key)
        if pend is None:
            if len(self.pending) >= self.MAX_PENDING:
                self._give_up(next(iter(self.pending)))
            pend = self.pending[key] = _Pending(ts)
        if foff == 0 or pend.header is None:
            pend.header = header
        pend.parts.setdefault(foff, body)
        if not more:
            pend.total = foff + len(body)
        if pend.total is None or 0 not in pend.parts:
            return None
        # complete when the parts cover [0, total) without a hole
        covered = 0
        for o in sorted(pend.parts):
            if o > covered:
                return None
            covered = max(covered, o + len(pend.parts[o]))
        if covered < pend.total:
            return None
        del self.pending[key]
        self.reassembled += 1
        buf = bytearray(pend.total)
        for o in sorted(pend.parts):
            part = pend.parts[o][: pend.total - o]
            buf[o : o + len(part)] = part
        version, src, dst, proto, mac, vlans = pend.header
        ip_len = pend.total + (hdr_wire if hdr_wire is not None else hdr_len)
        return self._transport(ts, src, dst, proto, bytes(buf), pend.total, ip_len, mac, vlans)

    def expire_fragments(self, now: float) -> None:
        """Give up on datagrams older than FRAG_TIMEOUT (kept partially, never lost)."""
        for key in [k for k, p in self.pending.items() if now - p.first_seen > self.FRAG_TIMEOUT]:
            self._give_up(key)

    def flush_fragments(self) -> None:
        for key in list(self.pending):
            self._give_up(key)

    def _give_up(self, key: tuple) -> None:
        pend = self.pending.pop(key)
        if pend.header is None:
            return
        version, src, dst, proto, mac, vlans = pend.header
        first = pend.parts.get(0)
        size = sum(len(p) for p in pend.parts.values())
        if first is not None:
            try:
                d = self._transport(pend.first_seen, src, dst, proto, first, size, size, mac, vlans)
            except DecodeError:
                d = None
            if d is not None:
                self.incomplete.append(d)
                return
        # No first fragment: we know the endpoints and protocol but not the ports.
        self.incomplete.append(Decoded(pend.first_seen, src, dst, proto, 0, 0, 0, 0, b"", size, size, mac, vlans))

    # ---- transport layer --------------------------------------------------------------
    @staticmethod
    def _transport(ts, src, dst, proto, body, body_wire, ip_len, mac, vlans) -> Decoded:
        if proto == TCP:
            if len(body) < 20:
                raise DecodeError("truncated TCP header")
            sport, dport, seq, _ack, doff, flags = _tcp(body)
            hl = (doff >> 4) * 4
            if hl < 20:
                raise DecodeError("TCP data offset below 20")
            flags |= (doff & 1) << 8  # NS / AE bit
            return Decoded(ts, src, dst, proto, sport, dport, flags, seq, body[hl:],
                           max(0, body_wire - hl), ip_len, mac, vlans)
        if proto == UDP or proto == 136:
            if len(body) < 8:
                raise DecodeError("truncated UDP header")
            sport, dport, ulen = _udp(body)
            wire = ulen - 8 if 8 <= ulen <= body_wire else body_wire - 8
            return Decoded(ts, src, dst, proto, sport, dport, 0, 0, body[8 : 8 + wire], max(0, wire),
                           ip_len, mac, vlans)
        if proto == ICMP or proto == ICMP6:
            if len(body) < 4:
                raise DecodeError("truncated ICMP header")
            return Decoded(ts, src, dst, proto, body[0], body[1], 0, 0, body[4:], max(0, body_wire - 4),
                           ip_len, mac, vlans)
        return Decoded(ts, src, dst, proto, 0, 0, 0, 0, body, body_wire, ip_len, mac, vlans)
