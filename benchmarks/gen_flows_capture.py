#!/usr/bin/env python3
"""Generate a capture with many distinct, short flows: the flow-table memory test.

Contract: ``gen_flows_capture.py [OUT] --flows N --seed S`` writes a classic
Ethernet pcap with exactly N distinct 5-tuples (default 1,000,000) and
``OUT.json`` (packets, flows per protocol, sha256). Three quarters are a TCP
SYN scan (nmap-style: closed ports answer RST/ACK, open ports SYN/ACK and the
scanner resets, filtered ports stay silent; RFC 9293 §3.10.7.1), one quarter
short UDP request/response exchanges (DNS-sized). About 10% of flows are
IPv6. Only the UDP quarter carries payload, a few dozen bytes each way. All
flows start within ``--span`` seconds (default 60, below the usual 120 s idle
timeout), so a flow meter holds every one of them at the end: peak RSS over
N is the memory per flow.
"""
from __future__ import annotations

import argparse
import heapq
import ipaddress
import json
import logging
import random
import struct
import sys
import time
from pathlib import Path

from _pcapgen import (
    TCP_ACK,
    TCP_RST,
    TCP_SYN,
    Endpoint,
    FlowPath,
    PcapWriter,
    write_manifest,
)

log = logging.getLogger("gen_flows_capture")

T0 = 1_767_229_200.0  # 2026-01-01T01:00:00Z
GW_MAC = bytes.fromhex("001a2b3c4d5e")
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "flows1m.pcap"
GENERATOR_VERSION = 1  # bump when the output changes for the same arguments
SCAN_PORTS = [21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1723,
              3306, 3389, 5900, 8080]
_SYN_OPTS = bytes.fromhex("020405b4")  # MSS 1460, as nmap's -sS probes carry


def _target(k: int, v6: bool) -> bytes:
    if v6:
        return ipaddress.IPv6Address((0x20010DB8_00AA << 80) + k).packed
    return struct.pack("!I", (10 << 24 | 128 << 16) + k)


def _udp_exchange(kind: int, rng: random.Random) -> tuple[bytes, bytes]:
    """A DNS A query and answer (RFC 1035 §4.1), an SNTP exchange (RFC 4330 §4),
    or an opaque app heartbeat with a random body."""
    if kind == 0:
        qid = rng.getrandbits(16)
        name = b"".join(bytes([len(p)]) + p for p in (b"h%x" % rng.getrandbits(24), b"example", b"com")) + b"\0"
        q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)
        ans = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + rng.randbytes(4)
        return q, struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q[12:] + ans
    if kind == 1:
        return bytes([0x23]) + bytes(39) + rng.randbytes(8), bytes([0x24, 2, 0, 0xE9]) + rng.randbytes(44)
    return rng.randbytes(rng.randrange(20, 60)), rng.randbytes(rng.randrange(30, 90))


def generate(out: Path, flows: int, seed: int, span: float) -> dict:
    t_wall = time.perf_counter()
    rng = random.Random(f"flows:{seed}")
    n_tcp = flows * 3 // 4
    n_udp = flows - n_tcp
    scanners = [(bytes([0x02, 0x5C, 0, 0, 0, i]), bytes([10, 0, 200, 1 + i]),
                 ipaddress.IPv6Address(f"2001:db8:5c::{i + 1:x}").packed) for i in range(4)]
    clients = [(bytes([0x02, 0x00, 0x5E, 0, i >> 8, i & 0xFF]), bytes([10, 0, 1 + i // 250, 1 + i % 250]),
                ipaddress.IPv6Address(f"2001:db8:1::{i + 2:x}").packed) for i in range(1000)]
    servers4 = [bytes([10, 0, 0, 53]), bytes([10, 0, 0, 123]), bytes([10, 0, 0, 70])]
    servers6 = [ipaddress.IPv6Address(f"2001:db8::{i + 53:x}").packed for i in range(3)]
    udp_ports = [53, 123, 40500]
    # Interleave the two kinds; each gets an evenly spaced start over the span.
    kinds = bytearray(b"\x00" * n_tcp + b"\x01" * n_udp)
    rng.shuffle(kinds)
    # A multiplicative permutation spreads the scan over hosts as nmap's
    # randomised host order does; 7919 is prime, so it is coprime to n_tcp
    # unless n_tcp is a multiple of it.
    mult = 7919 if n_tcp % 7919 else 7907
    dt = span / max(1, flows)
    pending: list[tuple[float, int, bytes]] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    counts = {"tcp": 0, "udp": 0}
    ti = ui = 0
    seq_no = 0
    with tmp.open("wb") as fh:
        wr = PcapWriter(fh)

        def push(ts: float, fr: bytes) -> None:
            nonlocal seq_no
            heapq.heappush(pending, (ts, seq_no, fr))
            seq_no += 1

        for i, kind in enumerate(kinds):
            t = T0 + i * dt
            while pending and pending[0][0] <= t:
                ts, _, fr = heapq.heappop(pending)
                wr.write(ts, fr)
            frng = random.Random(seed * 1_000_003 + i)
            v6 = frng.random() < 0.1
            if kind == 0:
                k = (ti * mult) % n_tcp
                ti += 1
                mac, ip4, ip6 = scanners[k % len(scanners)]
                dst = _target(k // len(SCAN_PORTS), v6)
                port = SCAN_PORTS[k % len(SCAN_PORTS)]
                sport = 40000 + (k // len(SCAN_PORTS)) % 20000
                p = FlowPath(Endpoint(mac, ip6 if v6 else ip4, sport), Endpoint(GW_MAC, dst, port), 6, (), frng)
                seq = frng.getrandbits(32)
                push(t, p.tcp(0, seq, 0, TCP_SYN, win=1024, opts=_SYN_OPTS))
                rtt = frng.uniform(0.0005, 0.05)
                r = frng.random()
                if r < 0.70:
                    push(t + rtt, p.tcp(1, 0, seq + 1, TCP_RST | TCP_ACK, win=0))
                elif r < 0.75:
                    sseq = frng.getrandbits(32)
                    push(t + rtt, p.tcp(1, sseq, seq + 1, TCP_SYN | TCP_ACK, win=64240, opts=_SYN_OPTS))
                    push(t + rtt + 0.0001, p.tcp(0, seq + 1, 0, TCP_RST, win=0))
                counts["tcp"] += 1
            else:
                c = clients[ui % len(clients)]
                sport = 1024 + (ui // len(clients)) % 64000
                ui += 1
                j = frng.randrange(3)
                srv = servers6[j] if v6 else servers4[j]
                p = FlowPath(Endpoint(c[0], c[2] if v6 else c[1], sport), Endpoint(GW_MAC, srv, udp_ports[j]),
                             17, (), frng)
                req, resp = _udp_exchange(j, frng)
                push(t, p.udp(0, req))
                push(t + frng.uniform(0.0005, 0.03), p.udp(1, resp))
                counts["udp"] += 1
        while pending:
            ts, _, fr = heapq.heappop(pending)
            wr.write(ts, fr)
        wr.flush()
    tmp.replace(out)
    manifest = {
        "generator": "gen_flows_capture", "version": GENERATOR_VERSION, "seed": seed,
        "packets": wr.packets, "frame_bytes": wr.bytes, "file_bytes": out.stat().st_size,
        "flows": {"total": counts["tcp"] + counts["udp"], **counts, "icmp": 0},
        "span_s": span, "sha256": wr.sha.hexdigest(), "linktype": "ethernet",
    }
    write_manifest(out, manifest)
    log.info("wrote %s: %d packets, %d flows in %.1f s", out, wr.packets, manifest["flows"]["total"],
             time.perf_counter() - t_wall)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--span", type=float, default=60.0)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if a.flows < 4:
        ap.error("--flows must be at least 4")
    m = generate(a.out, a.flows, a.seed, a.span)
    print(json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
