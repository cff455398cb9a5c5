"""`netan explain`: one chain's story in plain words, from the output files alone."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

__all__ = ["explain_chain"]


def _t(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clean(text: Any) -> str:
    """Terminal-safe: control characters from traffic or logs are shown, not obeyed."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in str(text))


def explain_chain(chain: dict[str, Any], flows: dict[str, dict[str, Any]]) -> str:
    who = _clean(chain.get("app") or f"an unattributed client ({chain.get('subject', '?')})")
    where = _clean(", ".join(chain.get("destinations", [])))
    lines = [
        f"Chain {chain['chain_id']}: score {chain['score']} ({chain['severity']}), "
        f"analytics: {', '.join(chain.get('analytics') or []) or 'none matched'}.",
        "",
        f"What: {who}" + (f" on device {_clean(chain['device'])}" if chain.get("device") else "")
        + f" sent data to {where}.",
        f"When: {_t(chain['ts_start'])} to {_t(chain['ts_end'])}, in {len(chain.get('flows', []))} flow(s).",
    ]
    if chain.get("keys"):
        lines.append(f"Keys: {_clean(', '.join(chain['keys']))}.")
    based = chain.get("based_on") or {}
    lines.append("Based on: " + ", ".join(k for k in ("network", "context", "baseline") if based.get(k))
                 + ("" if based.get("context") else " (no device context: app, state and keys unknown)") + ".")
    lines += ["", "Why it scored so (the score is the sum of these weights for the best-matching analytic,",
              "clamped to 0..100; see docs/chains.md):"]
    for e in chain.get("evidence", []):
        w = e["weight"]
        sign = "+" if w > 0 else ""
        lines.append(f"  {sign}{w:>5g}  {e['kind']:<30} [{e['source']}] {_clean(e['detail'])}")
    per = chain.get("analytic_scores") or {}
    if per:
        lines.append("")
        lines.append("Per analytic: " + ", ".join(f"{a} {s}" for a, s in sorted(per.items())))
    known = [flows[f] for f in chain.get("flows", []) if f in flows]
    if known:
        lines += ["", "Flows:"]
        for r in known[:20]:
            p = ((r.get("payload") or {}).get("out") or {})
            lines.append(f"  {r['flow_id']}  {_t(r['ts'])}  {r['proto']} {r['src_ip']}:{r['src_port']} -> "
                         f"{r['dst_ip']}:{r['dst_port']}  {r.get('l7')}  out {r.get('bytes_out')} B "
                         f"({p.get('class', '?')}), in {r.get('bytes_in')} B, app state {r.get('app_state')}")
        if len(known) > 20:
            lines.append(f"  ... and {len(known) - 20} more")
    return "\n".join(lines)
