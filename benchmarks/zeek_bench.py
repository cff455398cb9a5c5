"""Benchmark: Zeek conn.log -> netan flow records, next to a plain pandas read.

Generates a conn.log of N lines (default 1,000,000) in Zeek's TSV and JSON
formats (the TSV header and value spellings are Zeek 6's; addresses, ports,
services, states and counts drawn from a seeded RNG so every run sees the
same file), then, in the same run, times:

* ``netan``: ``netan.sources.zeek.read_zeek`` over the file, every record
  consumed (the full read + convert path: sniffing, header parsing, typed
  values, Community ID, record building);
* ``pandas``: ``pandas.read_csv`` (TSV) / ``pandas.read_json(lines=True)``
  (JSON) of the same file, the "load it into a DataFrame" baseline that
  zat-style readers use.

Memory: each measurement runs in a fresh subprocess and reports its peak RSS;
``--mem-check`` also runs netan on a file a quarter the size, so that the two
peaks show whether memory grows with the file (it must not: conn.log is
streamed and no flow is kept by this consumer).

usage: python benchmarks/zeek_bench.py [--lines N] [--dir DIR] [--mem-check] [--json-out FILE]
                                      [--formats tsv,json] [--parallel auto|on|off|both]
pandas is in the ``bench`` extra (pip install -e '.[bench]').
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

log = logging.getLogger("zeek_bench")

FIELDS = (
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes "
    "conn_state local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts "
    "resp_ip_bytes tunnel_parents ip_proto"
).split()
TYPES = (
    "time string addr port addr port enum string interval count count string bool bool count string "
    "count count count count set[string] count"
).split()

_UID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def _rows(n: int, seed: int = 7):
    rng = random.Random(seed)
    clients = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(2000)]
    clients += [f"fd00::{rng.randrange(1 << 16):x}:{rng.randrange(1 << 16):x}" for _ in range(200)]
    servers = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(20000)]
    servers6 = [f"2001:db8::{rng.randrange(1 << 16):x}" for _ in range(500)]
    kinds = [
        ("tcp", 443, "ssl", 6), ("tcp", 80, "http", 6), ("udp", 53, "dns", 17), ("udp", 443, "quic,ssl", 17),
        ("tcp", 22, "ssh", 6), ("tcp", 8883, None, 6), ("udp", 123, "ntp", 17), ("icmp", 8, None, 1),
    ]
    states = ["SF", "SF", "SF", "S0", "S1", "RSTO", "RSTR", "SH", "OTH", "REJ"]
    ts = 1_700_000_000.0
    for i in range(n):
        ts += rng.random() * 0.002
        proto, port, service, ipp = kinds[rng.randrange(len(kinds))]
        client = clients[rng.randrange(len(clients))]
        server = servers6[rng.randrange(len(servers6))] if ":" in client else servers[rng.randrange(len(servers))]
        sport = rng.randrange(1024, 65536) if proto != "icmp" else 8
        dport = port if proto != "icmp" else 0
        uid = "C" + "".join(rng.choice(_UID_CHARS) for _ in range(17))
        unset = rng.random() < 0.1
        dur = None if unset else rng.random() * 30
        ob = None if unset else rng.randrange(0, 200000)
        rb = None if unset else rng.randrange(0, 2000000)
        opk, rpk = rng.randrange(1, 500), rng.randrange(0, 1500)
        yield {
            "ts": round(ts, 6), "uid": uid, "id.orig_h": client, "id.orig_p": sport, "id.resp_h": server,
            "id.resp_p": dport, "proto": proto, "service": service, "duration": dur, "orig_bytes": ob,
            "resp_bytes": rb, "conn_state": states[rng.randrange(len(states))], "local_orig": True,
            "local_resp": False, "missed_bytes": 0, "history": "ShADadFf" if proto == "tcp" else "Dd",
            "orig_pkts": opk, "orig_ip_bytes": opk * 52 + (ob or 0), "resp_pkts": rpk,
            "resp_ip_bytes": rpk * 52 + (rb or 0), "tunnel_parents": [], "ip_proto": ipp,
        }


def _tsv_value(v, ztype: str) -> str:
    if v is None:
        return "-"
    if ztype == "time" or ztype == "interval":
        return f"{v:.6f}"
    if ztype == "bool":
        return "T" if v else "F"
    if ztype.startswith("set["):
        return ",".join(v) if v else "(empty)"
    return str(v)


def generate(directory: str, n: int) -> tuple[str, str]:
    """Write conn.log (TSV) and conn.json (JSON lines, ISO timestamps) with ``n`` records."""
    os.makedirs(directory, exist_ok=True)
    tsv_path = os.path.join(directory, f"conn-{n}.log")
    json_path = os.path.join(directory, f"conn-{n}.json")
    if os.path.exists(tsv_path) and os.path.exists(json_path):
        return tsv_path, json_path
    opened = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")
    with open(tsv_path + ".tmp", "w") as t, open(json_path + ".tmp", "w") as j:
        t.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n")
        t.write(f"#open\t{opened}\n#fields\t" + "\t".join(FIELDS) + "\n#types\t" + "\t".join(TYPES) + "\n")
        for r in _rows(n):
            t.write("\t".join(_tsv_value(r[f], ty) for f, ty in zip(FIELDS, TYPES)) + "\n")
            obj = {"_path": "conn"}
            for f in FIELDS:
                v = r[f]
                if v is None:
                    continue  # Zeek JSON omits unset fields
                if f == "ts":
                    dt = datetime.fromtimestamp(v, tz=timezone.utc)
                    v = dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                obj[f] = v
            j.write(json.dumps(obj, separators=(",", ":")) + "\n")
        t.write(f"#close\t{opened}\n")
    os.replace(tsv_path + ".tmp", tsv_path)
    os.replace(json_path + ".tmp", json_path)
    return tsv_path, json_path


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _run_netan(path: str, parallel: bool | None) -> dict:
    from netan.problems import Problems
    from netan.sources.zeek import read_zeek

    problems = Problems()
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    for _ in read_zeek([path], problems, parallel=parallel):
        n += 1
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"records": n, "seconds": dt, "rate": n / dt, "cpu_seconds": cpu, "rate_cpu": n / cpu,
            "child_cpu_seconds": child.ru_utime + child.ru_stime, "parallel": parallel,
            "peak_rss_mb": _peak_rss_mb(), "problems": problems.count}


def _run_pandas(path: str) -> dict:
    import pandas as pd

    t0, c0 = time.perf_counter(), time.process_time()
    if path.endswith(".json"):
        df = pd.read_json(path, lines=True)
    else:
        df = pd.read_csv(path, sep="\t", comment="#", names=FIELDS, header=None, na_values=["-"], low_memory=False)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(df)
    return {"records": n, "seconds": dt, "rate": n / dt, "cpu_seconds": cpu, "rate_cpu": n / cpu,
            "peak_rss_mb": _peak_rss_mb()}


def _subprocess(which: str, path: str, parallel: str = "auto") -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--_worker", which, path, "--parallel", parallel], check=True,
        capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "netan-zeek-bench"))
    ap.add_argument("--mem-check", action="store_true")
    ap.add_argument("--json-out")
    ap.add_argument("--formats", default="tsv,json", help="which of tsv,json to measure")
    ap.add_argument("--parallel", choices=("auto", "on", "off", "both"), default="both",
                    help="netan's conn.log child process: auto (big file and an idle core), on, off, or both")
    ap.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        which, path = args._worker
        par = {"auto": None, "on": True, "off": False}[args.parallel]
        res = _run_netan(path, par) if which == "netan" else _run_pandas(path)
        print(json.dumps(res))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    tsv, js = generate(args.dir, args.lines)
    log.info("data: %s (%.0f MB), %s (%.0f MB), made in %.1fs", tsv, os.path.getsize(tsv) / 1e6, js,
             os.path.getsize(js) / 1e6, time.perf_counter() - t0)
    results: dict = {"lines": args.lines, "python": sys.version.split()[0], "cpu_count": os.cpu_count()}
    modes = ["off", "on"] if args.parallel == "both" else [args.parallel]
    runs = [(f"netan-{m}" if len(modes) > 1 else "netan", "netan", m) for m in modes] + [("pandas", "pandas", "off")]
    wanted = set(args.formats.split(","))
    for fmt, path in (("tsv", tsv), ("json", js)):
        if fmt not in wanted:
            continue
        for label, which, mode in runs:
            try:
                res = _subprocess(which, path, mode)
            except subprocess.CalledProcessError as e:
                log.warning("%s %s failed: %s", label, fmt, e.stderr.strip().splitlines()[-1:] or e)
                continue
            results[f"{label}_{fmt}"] = res
            log.info("%-9s %-4s %9d records %7.2fs wall %9.0f records/s  (CPU %6.2fs + child %5.2fs, %8.0f records"
                     "/CPU-s in the main process)  peak RSS %5.0f MB", label, fmt, res["records"], res["seconds"],
                     res["rate"], res["cpu_seconds"], res.get("child_cpu_seconds", 0.0), res["rate_cpu"],
                     res["peak_rss_mb"])
    if args.mem_check:
        small_tsv, _ = generate(args.dir, max(1, args.lines // 4))
        res = _subprocess("netan", small_tsv, "off")
        results["netan_tsv_quarter"] = res
        log.info("netan-off tsv  %9d records %7.2fs wall %9.0f records/s  (CPU %6.2fs, %8.0f records/CPU-s)"
                 "  peak RSS %5.0f MB (quarter-size file)", res["records"], res["seconds"], res["rate"],
                 res["cpu_seconds"], res["rate_cpu"], res["peak_rss_mb"])
    results["load_average"] = os.getloadavg()
    log.info("load average during the run: %.2f %.2f %.2f (2 cores: above 2 means other work shared them)",
             *results["load_average"])
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
