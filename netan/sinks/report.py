"""The HTML report: one self-contained file (no network, no CDN) from an output directory.

Everything from traffic or logs (SNI, host names, HTTP fields, certificate
subjects, key aliases, package names) is attacker-controlled: the template
autoescapes every value, plots draw text as paths, and a Content-Security-
Policy with a per-report nonce lets only the report's own script run.
"""
from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from netan.sinks.atomic import atomic_open

__all__ = ["write_report", "MAX_ROWS"]

#: the flow table's size bound: a report must open in a browser whatever the capture size
MAX_ROWS = 5000


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _fmt_time(ts: float | None) -> str:
    if ts is None:
        return "?"
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _span(flows: list[dict[str, Any]]) -> str:
    if not flows:
        return "empty"
    lo, hi = min(r["ts"] for r in flows), max(r["ts_end"] for r in flows)
    return f"{hi - lo:.1f} s"


def write_report(out_dir: str, path: str | None = None) -> str:
    out = Path(out_dir)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8")) if (out / "summary.json").exists() else {}
    flows = _read_jsonl(out / "flows.jsonl")
    chains = _read_jsonl(out / "chains.jsonl")
    timelines_doc = json.loads((out / "timelines.json").read_text(encoding="utf-8")) if (
        out / "timelines.json").exists() else {"devices": {}}
    chain_of: dict[str, str] = {}
    for c in chains:
        for f in c.get("flows", []):
            chain_of.setdefault(f, c["chain_id"])
        c["when"] = f"{_fmt_time(c.get('ts_start'))} to {_fmt_time(c.get('ts_end'))}"
    ordered = sorted(flows, key=lambda r: (r["flow_id"] not in chain_of, r["ts"]))
    rows = [{
        "flow_id": r["flow_id"], "ts": f"{r['ts']:.3f}", "proto": r.get("proto"), "l7": r.get("l7"),
        "src": f"{r['src_ip']}:{r['src_port']}", "dst": f"{r['dst_ip']}:{r['dst_port']}",
        "name": r.get("dst_name") or (r.get("tls") or {}).get("sni") or "", "bytes_out": r.get("bytes_out", 0),
        "bytes_in": r.get("bytes_in", 0), "cls": ((r.get("payload") or {}).get("out") or {}).get("class", ""),
        "entropy": _num(((r.get("payload") or {}).get("out") or {}).get("entropy")),
        "framing": " ".join(r.get("framing") or []), "app": r.get("app") or "", "state": r.get("app_state", ""),
        "chain": chain_of.get(r["flow_id"], ""),
    } for r in ordered[:MAX_ROWS]]
    from netan.sinks import plots

    chain_flows = set(chain_of)
    timelines = []
    for name, dev in sorted(timelines_doc.get("devices", {}).items()):
        dev_flows = [r for r in flows if r.get("device") == name]
        timelines.append({"name": name, "skew": _skew_text(dev.get("skew")),
                          "svg": plots.device_timeline(dev, dev_flows, chain_flows)})
    env = Environment(loader=PackageLoader("netan.sinks", "templates"), autoescape=select_autoescape(["html", "j2"]))
    skipped = summary.get("skipped", {})
    attributed = sum(1 for r in flows if r.get("app"))
    html = env.get_template("report.html.j2").render(
        nonce=secrets.token_urlsafe(16), summary=summary, generated=_fmt_time(datetime.now(timezone.utc).timestamp()),
        span=_span(flows), counts=summary.get("counts", {}), n_flows=len(flows),
        devices=sorted({r["device"] for r in flows if r.get("device")}),
        apps=sorted({r["app"] for r in flows if r.get("app")}), chains=chains,
        alerts=sum(1 for c in chains if c.get("score", 0) >= 70), skipped=skipped.get("total", 0),
        attributed=f"{attributed / len(flows):.0%}" if flows else "n/a", timelines=timelines, rows=rows,
        truncated=len(flows) > MAX_ROWS, entropy_svg=plots.entropy_histogram(flows),
        size_svg=plots.size_histogram(flows), skipped_by_reason=sorted(skipped.get("by_reason", {}).items()),
    )
    target = path or os.path.join(out_dir, "report.html")
    with atomic_open(target) as fh:
        fh.write(html)
    return target


def _skew_text(skew: Any) -> str:
    if not isinstance(skew, dict) or not isinstance(skew.get("offset_s"), (int, float)):
        return "not estimated"
    spread = skew.get("spread_s")
    spread_txt = f", spread {spread * 1000:.1f} ms" if isinstance(spread, (int, float)) else ""
    return f"{skew['offset_s']:+.3f} s{spread_txt}, from {skew.get('matches', 0)} matched connections ({skew.get('status')})"


def _num(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, (int, float)) else ""
