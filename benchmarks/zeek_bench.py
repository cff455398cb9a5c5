"""Benchmark: ``netan zeek`` end to end on a big conn.log, next to a plain pandas read.

Issue 7 asks for records/s of the whole job, so the main measurement runs
``netan zeek FILE --out DIR`` as a subprocess (read, records, chains,
flows.jsonl, chains.jsonl, summary.json, netan_flows.log / netan_chains.log,
atomic writes with fsync) and reports its wall time, CPU time (user + system
of netan and every process it started), peak RSS and records/s, for a TSV
and a JSON conn.log of N lines (default 1,000,000), next to
``pandas.read_csv`` / ``pandas.read_json(lines=True)`` of the same file in the
same run (the "load it into a DataFrame" baseline zat-style readers use, which
does far less: no records, no outputs).

The files are generated once per size and reused (Zeek 6 spellings; addresses,
ports, services, states and counts from a seeded RNG, so every run sees the
same bytes). Every measurement runs in a fresh process; ``--repeat`` runs each
netan measurement several times and keeps the fastest wall time (the machine
is shared: its load average is printed with the table).

Memory (``--mem-check``, on by default): ``netan zeek`` also runs on a file a
quarter the size; the growth of peak RSS per added flow is compared with what
netan honestly keeps per flow (the chain builder's compact per-flow columns,
``netan.chains.builder.BYTES_PER_FLOW``: start and end time, bytes out, interned
key ids, a flag and the flow's offset in flows.jsonl, because beaconing needs
the times and sizes of every flow to a destination). Everything else is
streamed.

``--reader`` adds the old measurement: ``read_zeek`` alone (records built,
nothing written), in-process and with its parsing child (``--parallel``).

usage: python benchmarks/zeek_bench.py [--lines N] [--dir DIR] [--formats tsv,json] [--repeat R]
                                      [--no-mem-check] [--no-pandas] [--reader] [--parallel auto|on|off|both]
                                      [--workers auto|1|2] [--json-out FILE] [--keep-out]
pandas is in the ``bench`` extra (pip install -e '.[bench]'); psutil (same extra) samples
the RSS of the whole process tree.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
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


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Issue 7's target: conn records per second through the whole ``netan zeek`` job.
TARGET_RATE = 200_000


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _TreeRss:
    """Samples the summed RSS of a process and all its descendants (psutil), every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        try:
            import psutil
        except ImportError:
            self._thread = None
            return
        self._proc = psutil.Process(pid)
        self._psutil = psutil
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._proc] + self._proc.children(recursive=True)
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except self._psutil.Error:
                        pass
                self.peak_mb = max(self.peak_mb, total / 1048576.0)
            except self._psutil.Error:
                return
            self._stop.wait(0.02)

    def stop(self) -> float | None:
        self._stop.set()
        if self._thread is None:
            return None
        self._thread.join()
        return self.peak_mb


def run_netan_zeek(path: str, out_dir: str, workers: str | None) -> dict:
    """``netan zeek PATH --out OUT_DIR`` in a fresh process: wall, CPU of the whole tree, peak RSS, records/s."""
    shutil.rmtree(out_dir, ignore_errors=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if workers is not None:
        env["NETAN_ZEEK_WORKERS"] = workers
    cmd = [sys.executable, "-m", "netan.cli", "-q", "zeek", path, "--out", out_dir]
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
        tree = _TreeRss(proc.pid)
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        tree_peak = tree.stop()
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"netan zeek exited {proc.returncode}: {err.read()[-2000:].decode(errors='replace')}")
    with open(os.path.join(out_dir, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    n = summary["counts"]["flows"]
    cpu = ru.ru_utime + ru.ru_stime
    return {"records": n, "seconds": wall, "rate": n / wall, "cpu_seconds": cpu, "user_seconds": ru.ru_utime,
            "system_seconds": ru.ru_stime, "rate_cpu": n / cpu, "peak_rss_mb": ru.ru_maxrss / 1024.0,
            "tree_peak_rss_mb": tree_peak, "chains": summary["counts"]["chains"],
            "skipped": summary["skipped"]["total"], "timings": summary.get("timings", {}), "workers": workers}


def _run_reader(path: str, parallel: bool | None) -> dict:
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


def _best(runs: list[dict]) -> dict:
    """The fastest of repeated runs (least disturbed by other work), with every wall time kept."""
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["all_seconds"] = [round(r["seconds"], 3) for r in runs]
    return best


def _row(label: str, fmt: str, r: dict) -> str:
    tree = r.get("tree_peak_rss_mb")
    return (f"{label:<24} {fmt:<4} {r['records']:>9,} {r['seconds']:>7.2f} {r['rate']:>10,.0f} "
            f"{r['cpu_seconds']:>7.2f} {r['rate_cpu']:>10,.0f} {r['peak_rss_mb']:>8.0f} "
            f"{(f'{tree:.0f}' if tree else '-'):>8}")


def _kept_bytes_per_flow() -> float | None:
    try:
        from netan.chains.builder import BYTES_PER_FLOW
    except ImportError:
        return None
    return float(BYTES_PER_FLOW)


def memory_verdict(small: dict, big: dict, kept: float | None) -> dict:
    """Peak-RSS growth per added flow, against what netan keeps per flow (plus allocator slack)."""
    dn = big["records"] - small["records"]
    grow = (big.get("tree_peak_rss_mb") or big["peak_rss_mb"]) - (small.get("tree_peak_rss_mb") or small["peak_rss_mb"])
    per_flow = grow * 1048576.0 / dn if dn > 0 else 0.0
    # array growth doubles capacity, and the kernel's page cache is not counted: 2x the kept bytes + 16 B.
    bound = None if kept is None else 2.0 * kept + 16.0
    return {"growth_mb": grow, "bytes_per_added_flow": per_flow, "kept_bytes_per_flow": kept,
            "bound_bytes_per_flow": bound, "ok": None if bound is None else per_flow <= bound}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "netan-zeek-bench"))
    ap.add_argument("--formats", default="tsv,json", help="which of tsv,json to measure")
    ap.add_argument("--repeat", type=int, default=1, help="runs per netan measurement; the fastest is reported")
    ap.add_argument("--mem-check", dest="mem_check", action="store_true", default=True,
                    help="also run netan zeek on a quarter-size file and compare peak RSS (default)")
    ap.add_argument("--no-mem-check", dest="mem_check", action="store_false")
    ap.add_argument("--no-pandas", action="store_true", help="skip the pandas comparison")
    ap.add_argument("--reader", action="store_true", help="also time read_zeek alone (no outputs)")
    ap.add_argument("--parallel", choices=("auto", "on", "off", "both"), default="both",
                    help="with --reader: read_zeek's parsing child: auto, on, off, or both")
    ap.add_argument("--workers", default=None,
                    help="NETAN_ZEEK_WORKERS for netan zeek (processes for a big conn.log; default: netan's choice)")
    ap.add_argument("--json-out")
    ap.add_argument("--keep-out", action="store_true", help="keep netan's output directories under --dir")
    ap.add_argument("--_worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._worker:
        which, path = args._worker
        par = {"auto": None, "on": True, "off": False}[args.parallel]
        res = _run_reader(path, par) if which == "netan" else _run_pandas(path)
        print(json.dumps(res))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    tsv, js = generate(args.dir, args.lines)
    log.info("data: %s (%.0f MB), %s (%.0f MB), ready in %.1fs", tsv, os.path.getsize(tsv) / 1e6, js,
             os.path.getsize(js) / 1e6, time.perf_counter() - t0)
    results: dict = {"lines": args.lines, "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
                     "load_average_before": os.getloadavg(), "target_records_per_s": TARGET_RATE}
    log.info("load average before: %.2f %.2f %.2f (%d cores)", *results["load_average_before"], os.cpu_count())
    wanted = [f for f in ("tsv", "json") if f in args.formats.split(",")]
    rows: list[tuple[str, str, dict]] = []

    def netan(path: str, fmt: str, n: int) -> dict:
        out = os.path.join(args.dir, f"out-{fmt}-{n}")
        runs = [run_netan_zeek(path, out, args.workers) for _ in range(max(1, args.repeat))]
        if not args.keep_out:
            shutil.rmtree(out, ignore_errors=True)
        return _best(runs)

    for fmt in wanted:
        path = tsv if fmt == "tsv" else js
        res = netan(path, fmt, args.lines)
        results[f"netan_zeek_{fmt}"] = res
        rows.append(("netan zeek (end to end)", fmt, res))
        if args.reader:
            modes = ["off", "on"] if args.parallel == "both" else [args.parallel]
            for m in modes:
                r = _subprocess("netan", path, m)
                results[f"read_zeek_{m}_{fmt}"] = r
                rows.append((f"read_zeek only ({m})", fmt, r))
        if not args.no_pandas:
            try:
                r = _subprocess("pandas", path)
            except subprocess.CalledProcessError as e:
                log.warning("pandas %s failed: %s", fmt, (e.stderr or "").strip().splitlines()[-1:])
            else:
                results[f"pandas_{fmt}"] = r
                rows.append(("pandas.read_csv" if fmt == "tsv" else "pandas.read_json", fmt, r))
    if args.mem_check and "tsv" in wanted:
        small_n = max(1, args.lines // 4)
        small_tsv, _ = generate(args.dir, small_n)
        small = netan(small_tsv, "tsv", small_n)
        results["netan_zeek_tsv_quarter"] = small
        rows.append(("netan zeek, 1/4 size", "tsv", small))
        results["memory"] = memory_verdict(small, results["netan_zeek_tsv"], _kept_bytes_per_flow())
    results["load_average_after"] = os.getloadavg()

    print(f"\n{'run':<24} {'fmt':<4} {'records':>9} {'wall s':>7} {'records/s':>10} {'CPU s':>7} "
          f"{'rec/CPU-s':>10} {'RSS MB':>8} {'tree MB':>8}")
    for label, fmt, r in rows:
        print(_row(label, fmt, r))
    print("\nCPU s: user + system of the process and every process it started; RSS MB: the largest process;"
          "\ntree MB: the summed RSS of the process tree, sampled every 20 ms.")
    print("load average before %.2f %.2f %.2f, after %.2f %.2f %.2f (%d cores; above the core count, other work"
          " shared them)" % (*results["load_average_before"], *results["load_average_after"], os.cpu_count() or 0))
    verdicts = {}
    for fmt in wanted:
        r = results[f"netan_zeek_{fmt}"]
        met = r["rate"] >= TARGET_RATE
        verdicts[fmt] = met
        print(f"target {TARGET_RATE:,} conn records/s end to end, {fmt.upper()}: {'MET' if met else 'NOT MET'} "
              f"({r['rate']:,.0f}/s wall, {r['seconds']:.2f} s for {r['records']:,}; {r['rate_cpu']:,.0f} per CPU-s)")
    mem = results.get("memory")
    if mem:
        kept = mem["kept_bytes_per_flow"]
        print(f"memory: peak RSS grows {mem['growth_mb']:.0f} MB from {args.lines // 4:,} to {args.lines:,} lines = "
              f"{mem['bytes_per_added_flow']:.0f} bytes per added flow; netan keeps "
              f"{'?' if kept is None else f'{kept:.0f}'} bytes per flow (chain state) -> "
              f"{'OK' if mem['ok'] else 'NOT OK' if mem['ok'] is not None else 'unknown'}"
              f" (bound {mem['bound_bytes_per_flow'] or 0:.0f} bytes per flow)")
    results["verdict"] = {"speed": verdicts, "memory": mem.get("ok") if mem else None}
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
