"""The short terminal summary printed at the end of a run (plain text, no payload)."""
from __future__ import annotations

from typing import Any

__all__ = ["render_summary"]


def render_summary(summary: dict[str, Any], out_dir: str) -> str:
    counts = summary.get("counts", {})
    skipped = summary.get("skipped", {}).get("total", 0)
    lines = [
        f"netan {summary.get('command', '')}: {counts.get('packets', 0)} packets, "
        f"{counts.get('flows', 0)} flows, {counts.get('chains', 0)} chains, {skipped} skipped records",
    ]
    ctx = summary.get("context") or {}
    if "attributed_share" in ctx:
        lines.append(f"  flows attributed to an app: {ctx['attributed_share']:.0%}")
    t = summary.get("timings", {}).get("total_s")
    if t is not None:
        lines.append(f"  took {t:.2f} s")
    lines.append(f"  outputs in {out_dir}")
    return "\n".join(lines)
