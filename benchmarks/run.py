#!/usr/bin/env python3
"""Benchmark harness: netan against nfstream, nDPI, tshark and a dpkt loop.

Contract: on one capture, in one run, each tool reads the whole file as its
own subprocess (so CPU time and peak RSS are that tool's alone) in
round-robin order, ``--repeat`` times after ``--warmup`` untimed rounds;
the reported figure is the median (or ``--stat best``) of the timed runs.
Prints markdown tables to stdout and writes every raw measurement to
``--json``. A tool that is missing or fails is reported as such, never
fatal. The memory run reads a capture of many distinct flows and reports
peak RSS per flow. See benchmarks/README.md for what each tool measures.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gen_capture  # the generators' versions decide whether a stored capture is stale
import gen_flows_capture
from _pcapgen import manifest_path

log = logging.getLogger("bench")

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RUNNERS = HERE / "_runners.py"
ALL_TOOLS = ["netan", "netan_flows", "nfstream", "nfstream_dpi", "ndpi", "tshark", "dpkt"]
MEMORY_TOOLS = ["netan", "netan_flows", "nfstream", "ndpi"]
#: Issue 2's target is stated for "netan (flows + payload sampling)": the netan_flows row
#: (--analyzers none). The full netan row (every analyzer) is reported next to it.
TARGET_TOOL = "netan_flows"
#: Issue 2's targets.
TARGET_SPEEDUP_VS_NFSTREAM = 1.5
TARGET_BYTES_PER_FLOW = 1536


@dataclass
class Tool:
    """How to run one tool on a file and read what it found."""

    name: str
    what: str
    cmd: Callable[[Path, Path, dict], list[str]]
    parse: Callable[[str, Path], dict]
    check: Callable[[], str | None]  # None when available, else the reason


@dataclass
class Run:
    tool: str
    ok: bool
    rc: int | None
    wall_s: float
    cpu_s: float
    user_s: float
    sys_s: float
    maxrss_kb: int  # getrusage: largest single process of the tree
    tree_rss_peak_kb: int  # sampled: sum over the live process tree
    tree_cpu_s: float = 0.0  # sampled: CPU of every process seen, reaped or not
    procs: int = 1
    load1: float = 0.0  # 1-minute load average when the run ended: other work on the machine
    rss_timeline: list = field(default_factory=list)  # [(s, KB)]: when the memory peaks
    found: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def peak_rss_kb(self) -> int:
        return max(self.maxrss_kb, self.tree_rss_peak_kb)


# ---------------------------------------------------------------- tools


def _netan_bin(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    cand = Path(sys.executable).parent / "netan"
    if cand.exists():
        return cand
    w = shutil.which("netan")
    return Path(w) if w else None


def _check_cmd(cmd: list[str], what: str) -> str | None:
    try:
        r = subprocess.run(cmd, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{what}: {e}"
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).decode(errors="replace").strip().splitlines()[-1:]
        return f"{what}: exit {r.returncode} {' '.join(tail)}"
    return None


def _parse_netan(out: str, tmp: Path) -> dict:
    res: dict[str, Any] = {}
    try:
        s = json.loads((tmp / "out" / "summary.json").read_text())
        c = s.get("counts", {})
        res["flows"] = c.get("flows")
        res["packets"] = c.get("packets")
        res["flow_ends"] = c.get("flow_ends")
    except (OSError, ValueError) as e:
        res["error"] = f"summary.json: {e}"
    per: dict[str, int] = {}
    fl = tmp / "out" / "flows.jsonl"
    if fl.exists():
        with fl.open("rb") as fh:
            for line in fh:
                m = re.search(rb'"proto":\s*"([a-z0-9_-]+)"', line)
                k = m.group(1).decode() if m else "?"
                per[k] = per.get(k, 0) + 1
        res["tcp_flows"] = per.get("tcp", 0)
        res["udp_flows"] = per.get("udp", 0)
        if res.get("flows") is None:
            res["flows"] = sum(per.values())
    return res


def _parse_json_line(out: str, tmp: Path) -> dict:
    lines = [ln for ln in out.strip().splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": "no result line"}


def _parse_ndpi(out: str, tmp: Path) -> dict:
    res: dict[str, Any] = {}
    m = re.search(r"Unique flows:\s+(\d+)", out)
    if m:
        res["flows"] = int(m.group(1))
    m = re.search(r"IP packets:\s+(\d+)\s+of\s+(\d+)", out)
    if m:
        res["packets"] = int(m.group(2))
        res["ip_packets"] = int(m.group(1))
    return res


def _parse_tshark(out: str, tmp: Path) -> dict:
    n = sum(1 for ln in out.splitlines() if "<->" in ln)
    return {"flows": n, "tcp_flows": n, "note": "TCP conversations only (-z conv,tcp)"}


def make_tools(netan: Path | None, py: str) -> dict[str, Tool]:
    def netan_cmd(f: Path, tmp: Path, o: dict, extra: tuple[str, ...] = ()) -> list[str]:
        cmd = [str(netan), "analyze", str(f), "--out", str(tmp / "out"), *extra]
        if o.get("max_flows"):
            cmd += ["--max-flows", str(o["max_flows"])]
        return cmd

    def netan_check() -> str | None:
        if netan is None or not netan.exists():
            return "netan console script not found (pip install -e . in the venv)"
        return _check_cmd([str(netan), "analyze", "--help"], "netan analyze --help")

    def py_import(mod: str) -> Callable[[], str | None]:
        return lambda: _check_cmd([py, "-c", f"import {mod}"], f"import {mod}")

    def exe(name: str) -> Callable[[], str | None]:
        return lambda: None if shutil.which(name) else f"{name} not on PATH"

    return {
        "netan": Tool("netan", "netan analyze: flows + payload sampling + every analyzer, writes flows.jsonl",
                      netan_cmd, _parse_netan, netan_check),
        "netan_flows": Tool("netan_flows", "netan analyze --analyzers none: flows + payload sampling (issue 2's "
                            "target), writes flows.jsonl", lambda f, t, o: netan_cmd(f, t, o, ("--analyzers", "none")),
                            _parse_netan, netan_check),
        "nfstream": Tool("nfstream", "NFStreamer(statistical_analysis=False, n_dissections=0): flow extraction",
                         lambda f, t, o: [py, str(RUNNERS), "nfstream", str(f)], _parse_json_line,
                         py_import("nfstream")),
        "nfstream_dpi": Tool("nfstream_dpi", "NFStreamer with its default nDPI dissection (n_dissections=20)",
                             lambda f, t, o: [py, str(RUNNERS), "nfstream", str(f), "--dpi"],
                             _parse_json_line, py_import("nfstream")),
        "ndpi": Tool("ndpi", "ndpiReader -i FILE (nDPI C reference: flows + DPI)",
                     lambda f, t, o: ["ndpiReader", "-i", str(f)], _parse_ndpi, exe("ndpiReader")),
        "tshark": Tool("tshark", "tshark -q -z conv,tcp -r FILE (full dissection, TCP conversations)",
                       lambda f, t, o: ["tshark", "-q", "-z", "conv,tcp", "-r", str(f)], _parse_tshark,
                       exe("tshark")),
        "dpkt": Tool("dpkt", "dpkt loop: Ethernet/IP/TCP/UDP objects per packet, dict per 5-tuple",
                     lambda f, t, o: [py, str(RUNNERS), "dpkt", str(f)], _parse_json_line, py_import("dpkt")),
    }


# ---------------------------------------------------------------- measuring


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and its descendants (nfstream forks meters)."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_kb = 0
        self.max_procs = 0
        self.cpu: dict[int, float] = {}  # last seen user+system seconds per pid
        self.timeline: list[tuple[float, int]] = []  # (seconds since start, tree RSS KB), ~1/s
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        t0 = time.perf_counter()
        last = -1.0
        while not self.stop.is_set():
            try:
                procs = [root] + root.children(recursive=True)
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                        ct = p.cpu_times()
                        self.cpu[p.pid] = ct.user + ct.system
                    except psutil.Error:
                        pass
                self.peak_kb = max(self.peak_kb, total // 1024)
                self.max_procs = max(self.max_procs, len(procs))
                now = time.perf_counter() - t0
                if now - last >= 1.0:
                    self.timeline.append((round(now, 1), total // 1024))
                    last = now
            except psutil.Error:
                return
            self.stop.wait(self.interval)


def measure(tool: Tool, f: Path, opts: dict, timeout: float) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"netan-bench-{tool.name}-") as td:
        tmp = Path(td)
        cmd = tool.cmd(f, tmp, opts)
        so_p, se_p = tmp / "stdout", tmp / "stderr"
        log.info("run %s: %s", tool.name, " ".join(cmd))
        with so_p.open("wb") as so, se_p.open("wb") as se:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL)
            sampler = TreeSampler(p.pid, opts.get("sample_interval", 0.05))
            sampler.start()
            killer = threading.Timer(timeout, p.kill)
            killer.start()
            # wait4 gives this child's rusage, which includes its reaped
            # descendants (nfstream's meter processes).
            _, status, ru = os.wait4(p.pid, 0)
            wall = time.perf_counter() - t0
            killer.cancel()
            sampler.stop.set()
            sampler.join()
            rc = os.waitstatus_to_exitcode(status)
            p.returncode = rc
        out = so_p.read_text(errors="replace")
        err = se_p.read_text(errors="replace")
        # Children that their parent never waited for (nfstream's meters are
        # terminated, not joined) are missing from rusage: the sampled tree
        # CPU catches them, up to the last sample.
        cpu = max(ru.ru_utime + ru.ru_stime, sum(sampler.cpu.values()))
        run = Run(tool.name, rc == 0, rc, wall, cpu, ru.ru_utime, ru.ru_stime,
                  ru.ru_maxrss, sampler.peak_kb, sum(sampler.cpu.values()), max(1, sampler.max_procs),
                  os.getloadavg()[0], sampler.timeline)
        if rc != 0:
            run.error = f"exit {rc}: " + " | ".join(err.strip().splitlines()[-3:])
            return run
        try:
            run.found = tool.parse(out, tmp)
        except (OSError, ValueError) as e:
            run.found = {"error": f"could not read the tool's output: {e}"}
        return run


def warm_page_cache(f: Path) -> float:
    t0 = time.perf_counter()
    with f.open("rb", buffering=0) as fh:
        while fh.read(8 << 20):
            pass
    return time.perf_counter() - t0


def ensure_capture(path: Path, gen: str, size_arg: list[str], py: str, want: dict) -> dict:
    """Generate ``path`` with ``gen`` unless it exists with a matching manifest."""
    man = manifest_path(path)
    if path.exists() and man.exists():
        m = json.loads(man.read_text())
        if all(m.get(k) == v for k, v in want.items()) and m.get("file_bytes") == path.stat().st_size:
            return m
    log.info("generating %s (%s)", path, " ".join(size_arg))
    subprocess.run([py, str(HERE / gen), str(path), *size_arg], check=True, stdout=subprocess.DEVNULL)
    return json.loads(man.read_text())


def versions(py: str, netan: Path | None) -> dict:
    v: dict[str, str | None] = {}

    def out(cmd: list[str]) -> str | None:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return (r.stdout + r.stderr).strip() or None

    v["python"] = sys.version.split()[0]
    t = out(["tshark", "-v"])
    v["tshark"] = t.splitlines()[0] if t else None
    n = out(["ndpiReader", "-h"])
    m = re.search(r"nDPI \(?([\d.]+)", n or "")
    v["ndpi"] = m.group(1) if m else None
    v["nfstream"] = out([py, "-c", "import nfstream; print(nfstream.__version__)"])
    v["dpkt"] = out([py, "-c", "import dpkt; print(dpkt.__version__)"])
    v["netan"] = out([py, "-c", "import netan; print(netan.__version__)"]) if netan else None
    return v


def machine() -> dict:
    cpu = None
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem = int(m.group(1)) // 1024 if m else None
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_mb": mem, "kernel": platform.release(),
            "platform": platform.platform()}


# ---------------------------------------------------------------- summarising


def summarise(runs: list[Run], stat: str, packets: int, file_bytes: int) -> dict:
    ok = [r for r in runs if r.ok]
    if not ok:
        return {"ok": False, "error": runs[-1].error if runs else "not run"}
    pick = min if stat == "best" else statistics.median
    wall = pick([r.wall_s for r in ok])
    flows = {r.found.get("flows") for r in ok}
    return {
        "ok": True, "runs": len(ok), "stat": stat,
        "wall_s": wall,
        "cpu_s": pick([r.cpu_s for r in ok]),
        "pps": packets / wall,
        "pps_cpu": packets / max(1e-9, pick([r.cpu_s for r in ok])),
        "load1": [r.load1 for r in ok],
        "procs": max(r.procs for r in ok),
        "mb_s": file_bytes / 1e6 / wall,
        "peak_rss_mb": pick([r.peak_rss_kb for r in ok]) / 1024,
        "maxrss_single_process_mb": pick([r.maxrss_kb for r in ok]) / 1024,
        "flows": ok[-1].found.get("flows"),
        "flows_consistent": len(flows) == 1,
        "found": ok[-1].found,
    }


def _fmt(x: float | None, nd: int = 2) -> str:
    if x is None:
        return "–"
    if x >= 1e6:
        return f"{x / 1e6:.{nd}f} M"
    if x >= 1e4:
        return f"{x / 1e3:.1f} k"
    if x >= 100:
        return f"{x:.0f}"
    return f"{x:.{nd}f}"


def speed_table(summ: dict[str, dict], manifest: dict) -> str:
    """Markdown table; flows get their difference to the generator's count when known."""
    base = summ.get("netan", {})
    mflows = manifest.get("flows") or {}
    rows = ["| tool | wall s | CPU s | packets/s | packets/CPU-s | MB/s | peak RSS MB | flows | "
            "packets/s ÷ netan | packets/CPU-s ÷ netan | RSS ÷ netan |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in summ.items():
        if not s.get("ok"):
            rows.append(f"| {name} | {s.get('error', 'unavailable')} | | | | | | | | | |")
            continue
        r_pps = f"{s['pps'] / base['pps']:.2f}" if base.get("ok") else "–"
        r_cpu = f"{s['pps_cpu'] / base['pps_cpu']:.2f}" if base.get("ok") else "–"
        r_rss = f"{s['peak_rss_mb'] / base['peak_rss_mb']:.2f}" if base.get("ok") else "–"
        fl = s["flows"] if s["flows"] is not None else "–"
        want = mflows.get("tcp") if name == "tshark" else mflows.get("total")
        if isinstance(fl, int) and want is not None and fl != want:
            fl = f"{fl} ({fl - want:+d})"
        if name == "tshark":
            fl = f"{fl} (TCP only)"
        procs = f" ({s['procs']} processes)" if s.get("procs", 1) > 1 else ""
        rows.append(f"| {name}{procs} | {s['wall_s']:.2f} | {s['cpu_s']:.2f} | {_fmt(s['pps'])} | "
                    f"{_fmt(s['pps_cpu'])} | {s['mb_s']:.1f} | {s['peak_rss_mb']:.0f} | {fl} | {r_pps} | "
                    f"{r_cpu} | {r_rss} |")
    return "\n".join(rows)


def memory_table(mem: dict[str, dict]) -> str:
    rows = ["| tool | flows in capture | flows found | peak RSS MB | baseline RSS MB | bytes/flow (gross) | "
            "bytes/flow (net of baseline) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, m in mem.items():
        if not m.get("ok"):
            rows.append(f"| {name} | {m.get('error', 'unavailable')} | | | | | |")
            continue
        rows.append(f"| {name} | {m['flows_in_capture']} | {m['flows_found']} | {m['peak_rss_mb']:.0f} | "
                    f"{m['baseline_rss_mb']:.0f} | {m['bytes_per_flow_gross']:.0f} | {m['bytes_per_flow_net']:.0f} |")
    return "\n".join(rows)


def render_speed(result: dict) -> str:
    """The speed section from a result dict; summaries are recomputed from the raw runs."""
    sp = result["speed"]
    man = sp.get("manifest") or {}
    stat = result.get("stat", "median")
    fields_ = set(Run.__dataclass_fields__)
    summ: dict[str, dict] = {}
    for t, old in sp["summary"].items():
        rs = [Run(**{k: v for k, v in r.items() if k in fields_}) for r in sp["runs"].get(t, [])]
        summ[t] = summarise(rs, stat, sp["packets"], sp["file_bytes"]) if rs else old
    lines = [f"## Speed: {Path(sp['capture']).name}, {sp['packets']:,} packets, {sp['file_bytes'] / 1e6:.0f} MB, "
             f"{(man.get('flows') or {}).get('total', '?')} flows ({stat} of {result.get('repeat')} run(s), "
             f"{result.get('warmup')} warm-up, page cache warm)", "", speed_table(summ, man)]
    f = summ.get("nfstream", {})
    for name in ("netan_flows", "netan"):
        n = summ.get(name, {})
        if n.get("ok") and f.get("ok"):
            target = f" (issue 2's target ≥ {TARGET_SPEEDUP_VS_NFSTREAM})" if name == TARGET_TOOL else ""
            lines += ["", f"{name} packets/s ÷ nfstream packets/s = {n['pps'] / f['pps']:.2f} wall-clock, "
                      f"{n['pps_cpu'] / f['pps_cpu']:.2f} per CPU-second{target}"]
    loads = [r.get("load1") for rs in sp["runs"].values() for r in rs if r.get("load1")]
    if loads:
        cores = (result.get("machine") or {}).get("cores")
        busy = " (above the core count: wall times include waiting for a CPU)" if cores and max(loads) > cores else ""
        lines += ["", f"1-minute load average after each run: {min(loads):.1f}–{max(loads):.1f} on {cores} cores"
                  + busy]
    return "\n".join(lines)


def render_memory(result: dict) -> str:
    m = result["memory"]
    mem = m["summary"]
    fm = m.get("manifest") or {}
    lines = [f"## Memory: {Path(m['capture']).name}, {(fm.get('flows') or {}).get('total', 0):,} distinct flows, "
             f"{fm.get('packets', 0):,} packets (baseline: the same generator at 1,000 flows)", "",
             memory_table(mem)]
    for name in ("netan", "netan_flows"):
        if mem.get(name, {}).get("ok"):
            lines += ["", f"{name} bytes/flow net of baseline = {mem[name]['bytes_per_flow_net']:.0f} "
                      f"(target ≤ {TARGET_BYTES_PER_FLOW})"]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="netan speed and memory benchmark (issue 2)")
    ap.add_argument("--quick", action="store_true", help="small captures, one round: a smoke run")
    ap.add_argument("--capture", type=Path, help="speed capture (default data/bench.pcap, generated if missing)")
    ap.add_argument("--packets", type=int, help="packets in the generated speed capture (default 1,000,000)")
    ap.add_argument("--flows-capture", type=Path, help="memory capture (default data/flows1m.pcap)")
    ap.add_argument("--flows", type=int, help="flows in the generated memory capture (default 1,000,000)")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS), help=f"comma list of {','.join(ALL_TOOLS)}")
    ap.add_argument("--memory-tools", default=",".join(MEMORY_TOOLS))
    ap.add_argument("--repeat", type=int, help="timed rounds (default 3; 1 with --quick)")
    ap.add_argument("--warmup", type=int, default=0, help="untimed rounds before the timed ones")
    ap.add_argument("--stat", choices=["median", "best"], default="median")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--netan", help="path of the netan console script")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool run")
    ap.add_argument("--json", type=Path, help="result file (default data/results[-quick].json)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--render", type=Path, metavar="JSON", help="only print the tables of a saved result")
    a = ap.parse_args(argv)
    if a.render:
        res = json.loads(a.render.read_text())
        for sec, fn in (("speed", render_speed), ("memory", render_memory)):
            if sec in res:
                print(fn(res) + "\n")
        return 0
    logging.basicConfig(level=logging.WARNING if a.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    py = sys.executable
    tools_wanted = [t.strip() for t in a.tools.split(",") if t.strip()]
    mem_wanted = [t.strip() for t in a.memory_tools.split(",") if t.strip()]
    bad = [t for t in tools_wanted + mem_wanted if t not in ALL_TOOLS]
    if bad:
        ap.error(f"unknown tool(s): {', '.join(bad)}; choose from {', '.join(ALL_TOOLS)}")
    packets = a.packets or (100_000 if a.quick else 1_000_000)
    nflows = a.flows or (50_000 if a.quick else 1_000_000)
    repeat = a.repeat or (1 if a.quick else 3)
    suffix = "-quick" if a.quick else ""
    cap = a.capture or DATA / (f"bench{suffix}.pcap")
    fcap = a.flows_capture or DATA / (f"flows{suffix or '1m'}.pcap")
    out_json = a.json or DATA / f"results{suffix}.json"
    netan = _netan_bin(a.netan)
    tools = make_tools(netan, py)

    result: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "argv": sys.argv, "machine": machine(), "versions": versions(py, netan),
                              "stat": a.stat, "repeat": repeat, "warmup": a.warmup}
    avail = {}
    for name in dict.fromkeys(tools_wanted + mem_wanted):
        avail[name] = tools[name].check()
        if avail[name]:
            log.warning("%s unavailable: %s", name, avail[name])
    result["unavailable"] = {k: v for k, v in avail.items() if v}

    if not a.no_speed:
        if a.capture and a.capture.exists():  # any capture the user brings
            mpath = manifest_path(a.capture)
            man = json.loads(mpath.read_text()) if mpath.exists() else {}
        else:
            man = ensure_capture(cap, "gen_capture.py", ["--packets", str(packets)], py,
                                 {"generator": "gen_capture", "packets": packets, "seed": 1,
                                  "version": gen_capture.GENERATOR_VERSION})
        fbytes = cap.stat().st_size
        npk = man.get("packets") or _count_records(cap)
        log.info("warming the page cache: %.1f s", warm_page_cache(cap))
        names = [t for t in tools_wanted if not avail[t]]
        runs: dict[str, list[Run]] = {t: [] for t in names}
        for rnd in range(a.warmup + repeat):
            for t in names:
                r = measure(tools[t], cap, {}, a.timeout)
                log.info("%s round %d: %.2f s wall, %.2f s CPU, %d MB, flows %s%s", t, rnd, r.wall_s, r.cpu_s,
                         r.peak_rss_kb // 1024, r.found.get("flows"), f" ERROR {r.error}" if r.error else "")
                if rnd >= a.warmup:
                    runs[t].append(r)
        summ = {t: summarise(runs[t], a.stat, npk, fbytes) for t in names}
        for t in tools_wanted:
            if avail[t]:
                summ[t] = {"ok": False, "error": f"unavailable: {avail[t]}"}
        summ = {t: summ[t] for t in tools_wanted}
        result["speed"] = {
            "capture": str(cap), "packets": npk, "file_bytes": fbytes, "manifest": man,
            "summary": summ, "runs": {t: [r.__dict__ | {"peak_rss_kb": r.peak_rss_kb} for r in rs]
                                       for t, rs in runs.items()},
        }
        f = summ.get("nfstream", {})
        for name in ("netan", "netan_flows"):
            n = summ.get(name, {})
            if n.get("ok") and f.get("ok"):
                result["speed"][f"{name}_vs_nfstream_pps"] = n["pps"] / f["pps"]
                result["speed"][f"{name}_vs_nfstream_pps_cpu"] = n["pps_cpu"] / f["pps_cpu"]
        loads = [r.load1 for rs in runs.values() for r in rs]
        result["speed"]["load1_max"] = max(loads) if loads else None
        print("\n" + render_speed(result))

    if not a.no_memory:
        fman = ensure_capture(fcap, "gen_flows_capture.py", ["--flows", str(nflows)], py,
                              {"generator": "gen_flows_capture", "flows": _flows_split(nflows), "seed": 1,
                               "version": gen_flows_capture.GENERATOR_VERSION})
        base_cap = DATA / "flows-baseline.pcap"
        ensure_capture(base_cap, "gen_flows_capture.py", ["--flows", "1000"], py,
                       {"generator": "gen_flows_capture", "flows": _flows_split(1000), "seed": 1,
                        "version": gen_flows_capture.GENERATOR_VERSION})
        warm_page_cache(fcap)
        mem: dict[str, dict] = {}
        total = fman["flows"]["total"]
        for t in mem_wanted:
            if avail[t]:
                mem[t] = {"ok": False, "error": f"unavailable: {avail[t]}"}
                continue
            opts = {"max_flows": max(2_000_000, 2 * total)} if t.startswith("netan") else {}
            base = measure(tools[t], base_cap, opts, a.timeout)
            r = measure(tools[t], fcap, opts, a.timeout)
            if not (r.ok and base.ok):
                mem[t] = {"ok": False, "error": r.error or base.error}
                continue
            peak = r.peak_rss_kb * 1024
            b = base.peak_rss_kb * 1024
            mem[t] = {"ok": True, "flows_in_capture": total, "flows_found": r.found.get("flows"),
                      "peak_rss_mb": peak / 2**20, "baseline_rss_mb": b / 2**20,
                      "bytes_per_flow_gross": peak / total, "bytes_per_flow_net": (peak - b) / total,
                      "wall_s": r.wall_s, "cpu_s": r.cpu_s, "found": r.found,
                      "rss_timeline_kb": r.rss_timeline,
                      "cmd": tools[t].cmd(fcap, Path("TMP"), opts)}
        result["memory"] = {"capture": str(fcap), "manifest": fman, "baseline_capture": str(base_cap),
                            "summary": mem}
        print("\n" + render_memory(result))

    out_json.parent.mkdir(parents=True, exist_ok=True)
    tmpj = out_json.with_name(out_json.name + ".part")
    tmpj.write_text(json.dumps(result, indent=2, default=str) + "\n")
    tmpj.replace(out_json)
    print(f"\nresults: {out_json}")
    return 0


def _flows_split(n: int) -> dict:
    t = n * 3 // 4
    return {"total": n, "tcp": t, "udp": n - t, "icmp": 0}


def _count_records(f: Path) -> int:
    """Packets in a capture without a manifest: walk classic pcap records, else ask capinfos."""
    import struct

    n = 0
    with f.open("rb") as fh:
        hdr = fh.read(24)
        magic = hdr[:4]
        if magic not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            r = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(f)], capture_output=True, text=True)
            m = re.search(r"\t(\d+)\s*$", r.stdout.strip())
            return int(m.group(1)) if m else 0
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        rec = struct.Struct(endian + "IIII")
        while True:
            h = fh.read(16)
            if len(h) < 16:
                break
            caplen = rec.unpack(h)[2]
            fh.seek(caplen, 1)
            n += 1
    return n


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # `run.py --render F | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
