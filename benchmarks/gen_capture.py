#!/usr/bin/env python3
"""Generate the realistic benchmark capture, deterministically and fast.

Contract: ``gen_capture.py [OUT] --packets N --seed S`` writes a classic
Ethernet pcap of exactly N packets (default 1,000,000) and ``OUT.json``, a
manifest with the packet count, the distinct flows per protocol, the span and
the file's sha256. The same seed on the same machine gives the same bytes.

What is in it, per session (one session is one 5-tuple): TCP with the
three-way handshake and FIN/RST teardown carrying real TLS 1.3 and 1.2
handshakes recorded from Python's ``ssl`` (see ``_tlstemplates``), then TLS
application-data records; plaintext HTTP/1.1 keep-alive exchanges; DNS
queries and answers; QUIC-looking UDP; RTP-like voice; NTP; ICMP echo; failed
connections (RST, unanswered SYNs). Bulk transfers use MSS-sized segments
(1514-byte frames), so the capture mixes MTU-sized packets with small ACKs,
DNS and RTP. About 20% of sessions are IPv6, about 20% of clients sit on
802.1Q VLANs (a few QinQ), a small share of segments are retransmitted or
arrive out of order. Sessions start uniformly over ``--span`` seconds.
Sessions are lazy generators merged by time, so memory stays flat.
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
from collections.abc import Iterator
from pathlib import Path

from _pcapgen import (TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, ByteStream, Bytes,
                      Concat, Endpoint, FlowPath, PcapWriter, Pool, PoolStream, RecordStream,
                      write_manifest)
from _tlstemplates import Handshake, record_handshakes

log = logging.getLogger("gen_capture")

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a fixed epoch keeps output stable
GW_MAC = bytes.fromhex("001a2b3c4d5e")
DEFAULT_OUT = Path(__file__).resolve().parent / "data" / "bench.pcap"
GENERATOR_VERSION = 1  # bump when the output changes for the same arguments

Pkt = tuple[float, bytes]

_LABELS = ["api", "cdn", "img", "static", "push", "telemetry", "sync", "auth", "www", "graph",
           "ads", "metrics", "upload", "media", "config", "chat", "maps", "store", "video", "log"]
_ZONES = ["example.com", "example.net", "example.org", "netan-bench.test", "app.example",
          "cloud.example.com"]
_WORDS = ("the of and to in is for on that with as by this are from at be or an it not have "
          "data user device app network send key value session token account update cache "
          "image video request response server client message error status content type "
          "length html body div span class href script style title meta link").split()
_UAS = ["okhttp/4.12.0", "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240205.004)",
        "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Mobile Safari/537.36", "com.example.app/5.2.1 (Android 12)"]
_SYN_OPTS4 = bytes.fromhex("020405b4010303070402" "0000")  # MSS 1460, NOP, WS 7, SACK-perm, pad
_SYN_OPTS6 = bytes.fromhex("020405a0010303070402" "0000")  # MSS 1440


class World:
    """Hosts, names, templates and byte pools shared by all sessions."""

    def __init__(self, seed: int, n_clients: int) -> None:
        rng = random.Random(f"world:{seed}")
        self.rand_pool = Pool(rng.randbytes(4 << 20))
        words = [rng.choice(_WORDS) for _ in range(200_000)]
        self.text_pool = Pool(" ".join(words).encode()[: 1 << 20])
        self.hosts = [f"{_LABELS[i % len(_LABELS)]}{i // len(_LABELS) or ''}.{_ZONES[i % len(_ZONES)]}"
                      for i in range(96)]
        doc_nets = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]
        v4 = [a.packed for n in doc_nets for a in list(n.hosts())]
        rng.shuffle(v4)
        self.host_v4 = {h: [v4[2 * i], v4[2 * i + 1]] for i, h in enumerate(self.hosts)}
        self.host_v6 = {h: [ipaddress.IPv6Address(f"2001:db8:f000::{i + 1:x}").packed]
                        for i, h in enumerate(self.hosts)}
        self.tls: list[Handshake] = record_handshakes(self.hosts[:24], seed)
        # Clients: a MAC, v4 and v6 addresses, a VLAN stack and a port counter.
        self.clients = []
        for i in range(n_clients):
            # A fixed pattern, not a draw, so even a tiny capture has tagged
            # clients: 20% on 802.1Q VLANs 10/20, 2% behind QinQ (100 over 30).
            vl: tuple[int, ...] = ((100, 30) if i % 50 == 19 else (10,) if i % 10 == 3
                                   else (20,) if i % 10 == 7 else ())
            grp = 0 if not vl else vl[-1]
            mac = bytes([0x02, 0x00, 0x5E, grp & 0xFF, i >> 8, i & 0xFF])
            ip4 = bytes([10, grp & 0xFF, 1 + i // 250, 1 + i % 250])
            ip6 = ipaddress.IPv6Address(f"2001:db8:{grp:x}::{i + 2:x}").packed
            self.clients.append([mac, ip4, ip6, vl, 32768 + rng.randrange(20000)])
        self.icmp_pairs: set[tuple[bytes, bytes]] = set()

    def next_port(self, c: list) -> int:
        p = c[4]
        c[4] = 32768 + (p - 32768 + 1) % 28000
        return p


class Tcp:
    """Sequence-number bookkeeping and segmenting for one TCP connection.

    Direction 0 is the client. ``p_retx`` / ``p_ooo`` are per-segment
    probabilities of a retransmitted duplicate and of two segments swapped.
    """

    def __init__(self, path: FlowPath, rng: random.Random, t: float, rtt: float) -> None:
        self.p, self.rng, self.t, self.rtt = path, rng, t, rtt
        self.mss = 1440 if path.v6 else 1460
        self.seq = [rng.getrandbits(32), rng.getrandbits(32)]
        self.p_retx, self.p_ooo = 0.004, 0.003

    def handshake(self) -> Iterator[Pkt]:
        opts = _SYN_OPTS6 if self.p.v6 else _SYN_OPTS4
        yield self.t, self.p.tcp(0, self.seq[0], 0, TCP_SYN, win=64240, opts=opts)
        self.seq[0] += 1
        self.t += self.rtt
        yield self.t, self.p.tcp(1, self.seq[1], self.seq[0], TCP_SYN | TCP_ACK, win=65160, opts=opts)
        self.seq[1] += 1
        self.t += 0.0002
        yield self.t, self.p.tcp(0, self.seq[0], self.seq[1], TCP_ACK)

    def send(self, d: int, stream: ByteStream, bw: float) -> Iterator[Pkt]:
        """Segments of ``stream`` from ``d``; the receiver ACKs every second segment."""
        rng, mss, r = self.rng, self.mss, 1 - d
        n = stream.length
        if n <= 0:
            return
        nseg = (n + mss - 1) // mss
        order = list(range(nseg))
        i = 0
        while i < nseg - 1:
            if rng.random() < self.p_ooo:
                order[i], order[i + 1] = order[i + 1], order[i]
                i += 1
            i += 1
        gap = (mss + 54) * 8 / bw
        base = self.seq[d]
        nxt, ooo, since = 0, set(), 0
        retx: list[tuple[int, int]] = []  # (emit after k more segments, segment)
        emitted = 0
        queue = order
        qi = 0
        while qi < len(queue) or retx:
            if retx and (retx[0][0] <= emitted or qi >= len(queue)):
                seg = retx.pop(0)[1]
            else:
                seg = queue[qi]
                qi += 1
                if rng.random() < self.p_retx:
                    retx.append((emitted + 3, seg))
            off = seg * mss
            ln = min(mss, n - off)
            flags = TCP_ACK | (TCP_PSH if off + ln == n else 0)
            self.t += gap * (0.8 + 0.4 * rng.random())
            yield self.t, self.p.tcp(d, base + off, self.seq[r], flags, stream.slice(off, ln))
            emitted += 1
            if seg == nxt:
                nxt += 1
                while nxt in ooo:
                    ooo.discard(nxt)
                    nxt += 1
            elif seg > nxt:
                ooo.add(seg)
            since += 1
            if since >= 2 or nxt >= nseg or ooo:
                since = 0
                self.t += 0.00005 + 0.0002 * rng.random()
                yield self.t, self.p.tcp(r, self.seq[r], base + min(nxt * mss, n), TCP_ACK)
        self.seq[d] = base + n

    def close(self, d: int) -> Iterator[Pkt]:
        r = 1 - d
        roll = self.rng.random()
        if roll < 0.06:  # abortive close (RFC 9293 §3.6.1)
            self.t += 0.001
            yield self.t, self.p.tcp(d, self.seq[d], self.seq[r], TCP_RST | TCP_ACK)
            return
        if roll < 0.14:  # still open when the capture ends or the flow idles out
            return
        self.t += 0.001
        yield self.t, self.p.tcp(d, self.seq[d], self.seq[r], TCP_FIN | TCP_ACK)
        self.seq[d] += 1
        self.t += self.rtt
        yield self.t, self.p.tcp(r, self.seq[r], self.seq[d], TCP_FIN | TCP_ACK)
        self.seq[r] += 1
        self.t += 0.0002
        yield self.t, self.p.tcp(d, self.seq[d], self.seq[r], TCP_ACK)


def _app_record(w: World, rng: random.Random, n: int) -> Bytes:
    return Bytes(struct.pack("!BHH", 23, 0x0303, n) + w.rand_pool.take(rng.randrange(1 << 22), n))


def _bw(rng: random.Random) -> float:
    return rng.choice([5e6, 10e6, 20e6, 50e6, 100e6]) * (0.5 + rng.random())


def tls_session(w: World, rng: random.Random, path: FlowPath, t: float, hs: Handshake,
                upload: bool) -> Iterator[Pkt]:
    rtt = rng.lognormvariate(-3.5, 0.6)
    c = Tcp(path, rng, t, rtt)
    yield from c.handshake()
    for i, (d, data) in enumerate(hs.flights):
        if i == 0:
            b = bytearray(data)
            b[hs.client_random_at:hs.client_random_at + 32] = rng.randbytes(32)
            b[hs.sid_at:hs.sid_at + hs.sid_len] = rng.randbytes(hs.sid_len)
            data = bytes(b)
        c.t += rtt / 2
        yield from c.send(d, Bytes(data), 50e6)
    for _ in range(1 + int(rng.expovariate(0.7))):
        c.t += rng.expovariate(2.0)
        if upload:
            size = int(min(rng.lognormvariate(11.5, 1.4), 20e6))
            yield from c.send(0, RecordStream(w.rand_pool, rng.randrange(1 << 22), size), _bw(rng) / 4)
            c.t += rtt
            yield from c.send(1, _app_record(w, rng, rng.randrange(40, 300)), 50e6)
        else:
            yield from c.send(0, _app_record(w, rng, rng.randrange(80, 900)), 50e6)
            c.t += rtt
            size = int(min(rng.lognormvariate(9.9, 2.0), 30e6))
            yield from c.send(1, RecordStream(w.rand_pool, rng.randrange(1 << 22), size), _bw(rng))
    yield from c.close(0 if rng.random() < 0.7 else 1)


def http_session(w: World, rng: random.Random, path: FlowPath, t: float, host: str) -> Iterator[Pkt]:
    rtt = rng.lognormvariate(-3.5, 0.6)
    c = Tcp(path, rng, t, rtt)
    yield from c.handshake()
    ua = rng.choice(_UAS)
    for _ in range(1 + int(rng.expovariate(0.6))):
        c.t += rng.expovariate(3.0)
        pathq = f"/{rng.choice(_WORDS)}/{rng.getrandbits(40):x}"
        req = (f"GET {pathq} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
               f"Accept: */*\r\nAccept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n").encode()
        yield from c.send(0, Bytes(req), 50e6)
        c.t += rtt
        size = int(min(rng.lognormvariate(9.0, 1.8), 10e6))
        text = rng.random() < 0.5
        ctype = "text/html; charset=utf-8" if text else rng.choice(["image/jpeg", "application/octet-stream"])
        hdr = (f"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: {ctype}\r\n"
               f"Content-Length: {size}\r\nConnection: keep-alive\r\n\r\n").encode()
        pool = w.text_pool if text else w.rand_pool
        yield from c.send(1, Concat(Bytes(hdr), PoolStream(pool, rng.randrange(1 << 20), size)), _bw(rng))
    yield from c.close(0)


def _dns_name(host: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in host.split(".")) + b"\0"


def dns_session(w: World, rng: random.Random, path: FlowPath, t: float, host: str) -> Iterator[Pkt]:
    """A query and its answer per type (RFC 1035 §4.1), from one client port."""
    qtypes = [1] if rng.random() < 0.5 else [1, 28]
    for qt in qtypes:
        qid = rng.getrandbits(16)
        q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _dns_name(host) + struct.pack("!HH", qt, 1)
        yield t, path.udp(0, q)
        t += rng.lognormvariate(-4.5, 0.8)
        addrs = w.host_v4[host] if qt == 1 else w.host_v6[host]
        ans = b"".join(struct.pack("!HHHIH", 0xC00C, qt, 1, 300, len(a)) + a for a in addrs)
        r = struct.pack("!HHHHHH", qid, 0x8180, 1, len(addrs), 0, 0) + q[12:] + ans
        yield t, path.udp(1, r)
        t += 0.0005


def quic_session(w: World, rng: random.Random, path: FlowPath, t: float) -> Iterator[Pkt]:
    """QUIC-shaped UDP/443 (RFC 9000 §17): long-header Initials, then short-header data."""
    dcid, scid = rng.randbytes(8), rng.randbytes(8)
    rtt = rng.lognormvariate(-3.5, 0.6)
    pool = w.rand_pool

    def initial(first: int, a: bytes, b: bytes, size: int) -> bytes:
        # Initial (RFC 9000 §17.2.2): flags, version 1, DCID, SCID, token
        # length 0, a 2-byte varint Length, then a protected packet number
        # and payload that look random to anyone without the keys.
        h = bytes([first]) + b"\x00\x00\x00\x01\x08" + a + b"\x08" + b + b"\x00"
        rest = size - len(h) - 2
        return h + struct.pack("!H", 0x4000 | rest) + pool.take(rng.randrange(1 << 22), rest)

    yield t, path.udp(0, initial(0xC3, dcid, scid, 1252))
    t += rtt
    for _ in range(3):
        yield t, path.udp(1, initial(0xC1, scid, dcid, 1200))
        t += 0.0003
    npk = int(min(rng.lognormvariate(4.5, 1.2), 20000))
    gap = 1300 * 8 / _bw(rng)
    for i in range(npk):
        t += gap * (0.8 + 0.4 * rng.random())
        yield t, path.udp(1, bytes([0x41]) + scid + pool.take(rng.randrange(1 << 22), rng.randrange(1100, 1243)))
        if i % 4 == 3:
            t += 0.0001
            yield t, path.udp(0, bytes([0x40]) + dcid + pool.take(rng.randrange(1 << 22), rng.randrange(25, 45)))


def rtp_session(w: World, rng: random.Random, path: FlowPath, t: float) -> Iterator[Pkt]:
    """RTP (RFC 3550 §5.1), 20 ms G.711 frames both ways."""
    ssrc = [rng.getrandbits(32), rng.getrandbits(32)]
    seq = [rng.getrandbits(16), rng.getrandbits(16)]
    ts_ = [rng.getrandbits(32), rng.getrandbits(32)]
    base = rng.randrange(1 << 20)
    for i in range(int(rng.uniform(10, 90) * 50)):
        for d in (0, 1):
            hdr = struct.pack("!BBHII", 0x80, 0, seq[d] & 0xFFFF, ts_[d] & 0xFFFFFFFF, ssrc[d])
            yield t + d * 0.003, path.udp(d, hdr + w.rand_pool.take(base + i * 160, 160))
            seq[d] += 1
            ts_[d] += 160
        t += 0.02 + rng.uniform(-0.001, 0.001)


def ntp_session(w: World, rng: random.Random, path: FlowPath, t: float) -> Iterator[Pkt]:
    """One SNTP exchange (RFC 4330 §4): mode 3 request, mode 4 reply."""
    yield t, path.udp(0, bytes([0x23]) + bytes(39) + rng.randbytes(8))
    t += rng.lognormvariate(-3.5, 0.5)
    yield t, path.udp(1, bytes([0x24, 2, 0, 0xE9]) + rng.randbytes(44))


def icmp_session(w: World, rng: random.Random, path: FlowPath, t: float) -> Iterator[Pkt]:
    ident = rng.getrandbits(16)
    rtt = rng.lognormvariate(-3.5, 0.5)
    payload = bytes(range(48))
    for s in range(1, 5):
        yield t, path.icmp_echo(0, ident, s, payload)
        yield t + rtt, path.icmp_echo(1, ident, s, payload)
        t += 1.0


def failed_tcp(w: World, rng: random.Random, path: FlowPath, t: float) -> Iterator[Pkt]:
    seq = rng.getrandbits(32)
    opts = _SYN_OPTS6 if path.v6 else _SYN_OPTS4
    if rng.random() < 0.6:  # closed port: RST/ACK (RFC 9293 §3.10.7.1)
        yield t, path.tcp(0, seq, 0, TCP_SYN, win=64240, opts=opts)
        yield t + rng.lognormvariate(-3.5, 0.5), path.tcp(1, 0, seq + 1, TCP_RST | TCP_ACK, win=0)
    else:  # filtered: SYN retransmitted with exponential backoff, never answered
        for k in range(3):
            yield t, path.tcp(0, seq, 0, TCP_SYN, win=64240, opts=opts)
            t += 1.0 * (2 ** k)


# kind, share of sessions, rough packets per session (for planning only)
# (measured means over a few hundred sessions each)
KINDS = [("dns", 0.36, 3), ("tls", 0.30, 318), ("http", 0.08, 110), ("tls_up", 0.03, 555),
         ("quic", 0.02, 222), ("rtp", 0.0015, 5400), ("ntp", 0.05, 2), ("fail", 0.08, 2.4),
         ("icmp", 0.01, 8)]


def plan_and_run(w: World, seed: int, sid0: int, t_start: float, span: float,
                 budget: int) -> tuple[list[Iterator[tuple[float, int, bytes]]], dict[int, str], int]:
    """Create lazy sessions whose estimated packets exceed ``budget``."""
    rng = random.Random(f"plan:{seed}:{sid0}")
    kinds = [k for k, _, _ in KINDS]
    weights = [s for _, s, _ in KINDS]
    est = {k: e for k, _, e in KINDS}
    gens: list[Iterator[tuple[float, int, bytes]]] = []
    protos: dict[int, str] = {}
    total = 0.0
    sid = sid0
    while total < budget:
        kind = rng.choices(kinds, weights)[0]
        total += est[kind]
        srng = random.Random(seed * 1_000_003 + sid)
        t = t_start + rng.random() * span
        cli = rng.choice(w.clients)
        v6 = rng.random() < 0.2
        mac, ip4, ip6, vl, _ = cli
        cip = ip6 if v6 else ip4
        host = rng.choice(w.hosts)
        sip = (w.host_v6 if v6 else w.host_v4)[host][0 if v6 else rng.randrange(2)]
        proto = 17
        if kind in ("tls", "tls_up"):
            hs = w.tls[rng.randrange(len(w.tls))]
            host = hs.sni
            sip = (w.host_v6 if v6 else w.host_v4)[host][0]
            path = FlowPath(Endpoint(mac, cip, w.next_port(cli)), Endpoint(GW_MAC, sip, 443), 6, vl, srng)
            g = tls_session(w, srng, path, t, hs, kind == "tls_up")
            proto = 6
        elif kind == "http":
            path = FlowPath(Endpoint(mac, cip, w.next_port(cli)), Endpoint(GW_MAC, sip, 80), 6, vl, srng)
            g = http_session(w, srng, path, t, host)
            proto = 6
        elif kind == "fail":
            port = rng.choice([22, 25, 8080, 8443, 5228, 3389, 445, 993])
            path = FlowPath(Endpoint(mac, cip, w.next_port(cli)), Endpoint(GW_MAC, sip, port), 6, vl, srng)
            g = failed_tcp(w, srng, path, t)
            proto = 6
        elif kind == "dns":
            res = (bytes.fromhex("20010db8") + bytes(10) + b"\x00\x01") if v6 else bytes([10, ip4[1], 0, 1])
            path = FlowPath(Endpoint(mac, cip, w.next_port(cli)), Endpoint(GW_MAC, res, 53), 17, vl, srng)
            g = dns_session(w, srng, path, t, host)
        elif kind == "quic":
            path = FlowPath(Endpoint(mac, cip, w.next_port(cli)), Endpoint(GW_MAC, sip, 443), 17, vl, srng)
            g = quic_session(w, srng, path, t)
        elif kind == "rtp":
            path = FlowPath(Endpoint(mac, cip, w.next_port(cli)), Endpoint(GW_MAC, sip, 16384 + 2 * rng.randrange(4000)),
                            17, vl, srng)
            g = rtp_session(w, srng, path, t)
        elif kind == "ntp":
            path = FlowPath(Endpoint(mac, cip, w.next_port(cli)), Endpoint(GW_MAC, sip, 123), 17, vl, srng)
            g = ntp_session(w, srng, path, t)
        else:
            # One ICMP flow per address pair: flow tools key ICMP by addresses.
            if (cip, sip) in w.icmp_pairs:
                continue
            w.icmp_pairs.add((cip, sip))
            path = FlowPath(Endpoint(mac, cip, 0), Endpoint(GW_MAC, sip, 0), 1, vl, srng)
            g = icmp_session(w, srng, path, t)
            proto = 1
        protos[sid] = {6: "tcp", 17: "udp", 1: "icmp"}[proto]
        gens.append(_tag(g, sid))
        sid += 1
    return gens, protos, sid


def _tag(g: Iterator[Pkt], sid: int) -> Iterator[tuple[float, int, bytes]]:
    for ts, fr in g:
        yield ts, sid, fr


def generate(out: Path, packets: int, seed: int, span: float) -> dict:
    t_wall = time.perf_counter()
    n_clients = max(20, min(400, packets // 2500))
    w = World(seed, n_clients)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    seen: dict[int, str] = {}
    protos_all: dict[int, str] = {}
    sid = 0
    t_start = T0
    last_ts = T0
    with tmp.open("wb") as fh:
        wr = PcapWriter(fh)
        while wr.packets < packets:
            gens, protos, sid = plan_and_run(w, seed, sid, t_start, span, int((packets - wr.packets) * 1.05) + 50)
            protos_all.update(protos)
            for ts, s, fr in heapq.merge(*gens):
                wr.write(ts, fr)
                last_ts = ts
                if s not in seen:
                    seen[s] = protos_all[s]
                if wr.packets >= packets:
                    break
            t_start = last_ts
        wr.flush()
    tmp.replace(out)
    counts = {"tcp": 0, "udp": 0, "icmp": 0}
    for p in seen.values():
        counts[p] += 1
    manifest = {
        "generator": "gen_capture", "version": GENERATOR_VERSION, "seed": seed,
        "packets": wr.packets, "frame_bytes": wr.bytes, "file_bytes": out.stat().st_size,
        "flows": {"total": len(seen), **counts},
        "ts_first": T0, "ts_last": last_ts, "span_s": round(last_ts - T0, 6),
        "sha256": wr.sha.hexdigest(), "linktype": "ethernet",
    }
    write_manifest(out, manifest)
    log.info("wrote %s: %d packets, %d flows, %.1f MB in %.1f s", out, wr.packets, len(seen),
             out.stat().st_size / 1e6, time.perf_counter() - t_wall)
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--span", type=float, default=300.0, help="seconds over which sessions start")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if a.packets < 1:
        ap.error("--packets must be positive")
    m = generate(a.out, a.packets, a.seed, a.span)
    print(json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
