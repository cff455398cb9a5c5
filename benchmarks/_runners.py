#!/usr/bin/env python3
"""Comparison tools that are Python libraries, wrapped as one-shot processes.

``_runners.py nfstream FILE [--dpi]`` and ``_runners.py dpkt FILE`` each read
the whole capture once and print one JSON line: flows found, packets seen,
and flows per transport. The harness starts each as its own subprocess so
peak RSS and CPU time belong to that tool alone (interpreter start-up and
imports included, as for ``netan``).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter


def run_nfstream(path: str, dpi: bool) -> dict:
    from nfstream import NFStreamer

    # Defaults (idle 120 s, active 1800 s, n_meters=0: one meter process per
    # core) except DPI: n_dissections=0 is pure flow extraction, the closest
    # match to netan's per-packet work; --dpi keeps nfstream's default 20.
    s = NFStreamer(source=path, statistical_analysis=False, n_dissections=20 if dpi else 0)
    flows = 0
    packets = 0
    per: Counter[int] = Counter()
    for f in s:
        flows += 1
        packets += f.bidirectional_packets
        per[f.protocol] += 1
    return {"flows": flows, "packets": packets, "tcp_flows": per[6], "udp_flows": per[17]}


def run_dpkt(path: str) -> dict:
    """The straightforward loop: dpkt objects per packet, a dict per 5-tuple."""
    import dpkt

    counts: dict[tuple, int] = {}
    packets = 0
    tcp = dpkt.tcp.TCP
    udp = dpkt.udp.UDP
    with open(path, "rb") as fh:
        for _ts, buf in dpkt.pcap.UniversalReader(fh):
            packets += 1
            try:
                ip = dpkt.ethernet.Ethernet(buf).data
            except (dpkt.UnpackError, ValueError):
                continue
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            l4 = ip.data
            if isinstance(l4, (tcp, udp)):
                a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
                key = (getattr(ip, "p", 0), *(a + b if a <= b else b + a))
            else:
                a2, b2 = ip.src, ip.dst
                key = (getattr(ip, "p", 0), *((a2, b2) if a2 <= b2 else (b2, a2)))
            counts[key] = counts.get(key, 0) + 1
    per = Counter(k[0] for k in counts)
    return {"flows": len(counts), "packets": packets, "tcp_flows": per[6], "udp_flows": per[17]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tool", choices=["nfstream", "dpkt"])
    ap.add_argument("file")
    ap.add_argument("--dpi", action="store_true")
    a = ap.parse_args(argv)
    res = run_nfstream(a.file, a.dpi) if a.tool == "nfstream" else run_dpkt(a.file)
    sys.stdout.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
