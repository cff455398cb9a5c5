"""Test helper: a capture file in, one ``FlowSample`` per bidirectional flow out.

A deliberately small stand-in for ``netan.engine`` so the TLS/QUIC/DTLS
analyzers can be run on real captures: dpkt decoding (pcap and pcapng;
Ethernet/VLAN, raw IP, Linux SLL/SLL2, BSD loopback), TCP reassembled per
direction in sequence order (first copy of a byte wins, so retransmissions and
overlaps count once; holes are zero-filled and listed as gaps), UDP datagrams
laid end to end. Not for production: no IP fragment reassembly, no tunnels.
"""
from __future__ import annotations

import gzip
import socket
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from netan.sample import IN, OUT, FlowSample, PacketMark

__all__ = ["flow_samples", "read_packets"]

DEFAULT_CAP = 65536


@dataclass
class _Side:
    base: int | None = None  # TCP: sequence number of stream offset 0
    chunks: dict[int, bytes] = field(default_factory=dict)
    dgram: bytearray = field(default_factory=bytearray)
    dgram_len: int = 0


@dataclass
class _Flow:
    proto: str
    src: tuple[str, int]
    dst: tuple[str, int]
    syn_seq: int | None = None
    sides: tuple[_Side, _Side] = field(default_factory=lambda: (_Side(), _Side()))
    marks: list[PacketMark] = field(default_factory=list)
    closed: bool = False


def _ip_of(buf: bytes, linktype: int):
    if linktype in (1,):  # Ethernet (dpkt strips 802.1Q tags)
        eth = dpkt.ethernet.Ethernet(buf)
        return eth.data
    if linktype in (101, 12, 14, 228, 229):  # raw IP
        return dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
    if linktype == 113:
        return dpkt.sll.SLL(buf).data
    if linktype == 276:
        return dpkt.sll2.SLL2(buf).data
    if linktype in (9, 50):  # PPP: optional ff03, then a 2-byte protocol
        inner = buf[4:] if buf[:2] == b"\xff\x03" else buf[2:]
        return dpkt.ip.IP(inner) if inner[0] >> 4 == 4 else dpkt.ip6.IP6(inner)
    if linktype in (0, 108):  # BSD loopback: 4-byte family
        inner = buf[4:]
        return dpkt.ip.IP(inner) if inner[0] >> 4 == 4 else dpkt.ip6.IP6(inner)
    return None


def read_packets(path: str | Path):
    """Yield (ts, ip_packet) for every IPv4/IPv6 packet in a pcap or pcapng file."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as fh:
        magic = fh.read(4)
        fh.seek(0)  # gzip files seek by re-reading: fine for test captures
        reader = dpkt.pcapng.Reader(fh) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(fh)
        linktype = reader.datalink()
        for ts, buf in reader:
            try:
                ip = _ip_of(buf, linktype)
            except (dpkt.UnpackError, IndexError, ValueError):
                continue
            if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                yield float(ts), ip


def _addr(ip) -> tuple[str, str]:
    fam = socket.AF_INET if isinstance(ip, dpkt.ip.IP) else socket.AF_INET6
    return socket.inet_ntop(fam, ip.src), socket.inet_ntop(fam, ip.dst)


def flow_samples(path: str | Path, cap: int = DEFAULT_CAP) -> list[FlowSample]:
    """Group a capture into bidirectional TCP/UDP flows, in order of first packet."""
    flows: dict[tuple, _Flow] = {}
    done: list[_Flow] = []
    order: list[_Flow] = []
    for ts, ip in read_packets(path):
        l4 = ip.data
        if isinstance(l4, dpkt.tcp.TCP):
            proto = "tcp"
        elif isinstance(l4, dpkt.udp.UDP):
            proto = "udp"
        else:
            continue
        if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset):
            continue  # fragments are out of scope for this helper
        s, d = _addr(ip)
        a, b = (s, l4.sport), (d, l4.dport)
        key = (proto, *sorted((a, b)))
        flow = flows.get(key)
        is_syn = proto == "tcp" and (l4.flags & dpkt.tcp.TH_SYN) and not (l4.flags & dpkt.tcp.TH_ACK)
        if flow is not None and is_syn and flow.syn_seq is not None and flow.syn_seq != l4.seq:
            done.append(flow)  # port reuse: a new connection
            flow = None
        if flow is None:
            synack = proto == "tcp" and (l4.flags & dpkt.tcp.TH_SYN) and (l4.flags & dpkt.tcp.TH_ACK)
            # The originator is the SYN sender; a capture that starts at the
            # SYN-ACK still knows who that was.
            flow = _Flow(proto, b, a) if synack else _Flow(proto, a, b)
            flows[key] = flow
            order.append(flow)
        direction = OUT if a == flow.src else IN
        side = flow.sides[direction]
        payload = bytes(l4.data)
        if proto == "tcp":
            if l4.flags & dpkt.tcp.TH_SYN:
                side.base = (l4.seq + 1) & 0xFFFFFFFF
                if is_syn:
                    flow.syn_seq = l4.seq
            if not payload:
                continue
            if side.base is None:
                side.base = l4.seq
            off = (l4.seq - side.base) & 0xFFFFFFFF
            if off >= 0x80000000:  # before the base: old data, ignore
                continue
            flow.marks.append(PacketMark(direction, ts, off, len(payload)))
            if off < cap:
                side.chunks.setdefault(off, payload[: cap - off])
        else:
            off = side.dgram_len
            flow.marks.append(PacketMark(direction, ts, off, len(payload)))
            side.dgram_len += len(payload)
            if len(side.dgram) < cap:
                side.dgram += payload[: cap - len(side.dgram)]
    out: list[FlowSample] = []
    for flow in order:
        streams: list[bytes] = []
        gaps: list[tuple[tuple[int, int], ...]] = []
        for side in flow.sides:
            if flow.proto == "udp":
                streams.append(bytes(side.dgram))
                gaps.append(())
                continue
            buf = bytearray()
            holes: list[tuple[int, int]] = []
            for off in sorted(side.chunks):
                chunk = side.chunks[off]
                end = off + len(chunk)
                if end <= len(buf):
                    continue
                if off > len(buf):
                    holes.append((len(buf), off - len(buf)))
                    buf += b"\x00" * (off - len(buf))
                buf += chunk[len(buf) - off :]
            streams.append(bytes(buf[:cap]))
            gaps.append(tuple(holes))
        out.append(
            FlowSample(
                proto=flow.proto,
                src_ip=flow.src[0],
                src_port=flow.src[1],
                dst_ip=flow.dst[0],
                dst_port=flow.dst[1],
                out=streams[OUT],
                inb=streams[IN],
                gaps_out=gaps[OUT],
                gaps_in=gaps[IN],
                packets=tuple(flow.marks),
            )
        )
    return out
