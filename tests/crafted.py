"""Write exact packets crafted with scapy into pcap files, for engine unit tests."""
from __future__ import annotations

import struct
from pathlib import Path


def write_pcap(path: Path, packets: list[tuple[float, bytes]], linktype: int = 1, nanos: bool = False,
               big_endian: bool = False) -> Path:
    """Classic pcap with the given link type; each packet is (ts, frame bytes)."""
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = [struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for ts, data in packets:
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if nanos else 1e6))
        out.append(struct.pack(e + "IIII", sec, frac, len(data), len(data)) + data)
    path.write_bytes(b"".join(out))
    return path


def write_pcapng(path: Path, packets: list[tuple[float, bytes, int]], linktypes: list[int],
                 simple: bool = False) -> Path:
    """pcapng with one IDB per link type; packets are (ts, frame, interface index)."""
    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for lt in linktypes:
        out.append(block(1, struct.pack("<HHI", lt, 0, 262144)))
    for ts, data, ifid in packets:
        if simple:
            out.append(block(3, struct.pack("<I", len(data)) + data))
        else:
            t = round(ts * 1e6)
            out.append(block(6, struct.pack("<IIIII", ifid, t >> 32, t & 0xFFFFFFFF, len(data), len(data)) + data))
    path.write_bytes(b"".join(out))
    return path


def udp_sample(client: list[bytes], server: list[bytes] = (), *, sport: int = 50000, dport: int = 443,
               server_t0: float = 10.0):
    """A UDP FlowSample from its datagrams: client ones at t = 0, 1, ...; server ones from ``server_t0``."""
    from netan.sample import IN, OUT, FlowSample, PacketMark

    out, inb, marks = b"", b"", []
    for i, d in enumerate(client):
        marks.append(PacketMark(OUT, float(i), len(out), len(d)))
        out += d
    for i, d in enumerate(server):
        marks.append(PacketMark(IN, server_t0 + i, len(inb), len(d)))
        inb += d
    return FlowSample("udp", "10.0.0.1", sport, "10.0.0.2", dport, out, inb, (), (), tuple(marks))
