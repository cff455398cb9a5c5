#!/usr/bin/env python3
"""`netan live` throughput: replay a capture into a veth at increasing rates.

Two network namespaces joined by a veth pair; tcpreplay sends the benchmark
capture (benchmarks/gen_capture.py) out of one end at a fixed packet rate,
`netan live` captures on the other end. After each rate netan is stopped with
SIGTERM and its own summary says how many packets it read and how many the
kernel dropped. Reports the highest rate with zero drops and netan's CPU and
peak memory there.

usage: python benchmarks/live_rate.py [--packets 200000] [--rates 20000,50000,100000,150000]
needs root, ip netns, tcpreplay, tcpdump.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=200_000)
    ap.add_argument("--rates", default="20000,50000,100000,150000")
    ap.add_argument("--netan-args", default="", help="extra `netan live` options, e.g. '--analyzers none'")
    args = ap.parse_args()
    tag = f"nlr{os.getpid() % 100000}"
    a, b = f"{tag}a", f"{tag}b"
    tmp = Path(tempfile.mkdtemp(prefix="netan-live-rate-"))
    pcap = tmp / "replay.pcap"
    subprocess.run([sys.executable, str(HERE / "gen_capture.py"), "--packets", str(args.packets), str(pcap)],
                   check=True, capture_output=True)
    rows = []
    try:
        sh("ip", "netns", "add", a)
        sh("ip", "netns", "add", b)
        sh("ip", "link", "add", "rp0", "netns", a, "type", "veth", "peer", "name", "rp1", "netns", b)
        for ns, dev in ((a, "rp0"), (b, "rp1")):
            sh("ip", "netns", "exec", ns, "ip", "link", "set", dev, "up", "mtu", "9000")
        for rate in [int(r) for r in args.rates.split(",")]:
            out = tmp / f"out{rate}"
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.Popen(["ip", "netns", "exec", b, sys.executable, "-m", "netan.cli", "-q", "live",
                                     "-i", "rp1", "--out", str(out), *args.netan_args.split()],
                                    stderr=subprocess.PIPE, text=True)
            while not (out / "metrics.prom").exists():
                time.sleep(0.1)
            time.sleep(0.5)
            t0 = time.time()
            subprocess.run(["ip", "netns", "exec", a, "tcpreplay", "-q", "-i", "rp0", f"--pps={rate}",
                            str(pcap)], check=True, capture_output=True)
            sent_s = time.time() - t0
            time.sleep(1.0)
            t_stop = time.time()
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=600)
            stop_s = time.time() - t_stop  # 1.2 s of last reads, then the backlog and the flush
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            s = json.loads((out / "summary.json").read_text())
            drops = s["capture"]["dropped_by_kernel"] + s["capture"]["dropped_by_interface"]
            row = {"rate_pps": rate, "sent": args.packets, "send_s": round(sent_s, 2),
                   "netan_packets": s["counts"]["packets"], "kernel_drops": drops,
                   "max_backlog_chunks": s["capture"].get("max_backlog_chunks"), "stop_s": round(stop_s, 2),
                   "cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 2),
                   "peak_rss_mb": round(after.ru_maxrss / 1024, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        subprocess.run(["ip", "netns", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", b], capture_output=True)
    ok = [r for r in rows if r["kernel_drops"] == 0 and r["netan_packets"] >= r["sent"]]
    print("\n| rate (pkt/s) | sent | read by netan | drops | max backlog (chunks of 64) | SIGTERM to exit s "
          "| CPU s (netan + its tcpdump) | peak RSS MB (largest process) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['rate_pps']} | {r['sent']} | {r['netan_packets']} | {r['kernel_drops']} | "
              f"{r['max_backlog_chunks']} | {r['stop_s']} | {r['cpu_s']} | {r['peak_rss_mb']} |")
    print(f"\nhighest rate with zero drops: {max((r['rate_pps'] for r in ok), default='none')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
