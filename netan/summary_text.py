"""The short terminal summary printed at the end of a run (plain text, no payload)."""
from __future__ import annotations

from typing import Any

__all__ = ["render_summary"]


def _clean(text: Any) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))


def render_summary(summary: dict[str, Any], out_dir: str) -> str:
    counts = summary.get("counts", {})
    skipped = summary.get("skipped", {})
    unit = ("records", counts.get("records", 0)) if "records" in counts else ("packets", counts.get("packets", 0))
    lines = [
        f"netan {summary.get('command', '')}: {unit[1]} {unit[0]}, "
        f"{counts.get('flows', 0)} flows, {counts.get('chains', 0)} chains, {skipped.get('total', 0)} skipped records",
    ]
    ctx = summary.get("context") or {}
    share = ctx.get("share_attributed")
    if isinstance(share, (int, float)):
        lines.append(f"  flows attributed to an app: {share:.0%}")
    top = summary.get("top_chains") or []
    if top:
        lines.append("  top chains:")
        lines.append(f"    {'score':>5}  {'severity':<8}  {'analytics':<20}  {'who':<32}  to")
        for c in top:
            who = _clean(c.get("app") or c.get("subject") or "?")[:32]
            lines.append(f"    {c['score']:>5}  {c['severity']:<8}  {','.join(c.get('analytics') or []) or '-':<20}  "
                         f"{who:<32}  {_clean(', '.join(c.get('destinations') or []))[:40]}")
    for reason, n in list((skipped.get("by_reason") or {}).items())[:5]:
        lines.append(f"  skipped {n}: {_clean(reason)}")
    t = summary.get("timings", {}).get("total_s")
    if t is not None:
        lines.append(f"  took {t:.2f} s")
    lines.append(f"  outputs in {out_dir}")
    return "\n".join(lines)
