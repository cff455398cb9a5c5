"""timelines.json: what the device logs said, per device, in capture time.

The HTML report draws its per-device timelines from this file, so `netan report
OUTDIR` needs nothing but the output directory. Only the apps that appear in
flows are exported, with their state intervals, interaction times, key events
(alias, operation, owning packages), and screen/keyguard changes.
"""
from __future__ import annotations

from typing import Any, Iterable

from netan.sinks.atomic import write_json

__all__ = ["export_timelines"]


def export_timelines(path: str, join: Any, apps_by_device: dict[str, set[str]],
                     span: tuple[float, float] | None) -> None:
    devices: dict[str, Any] = {}
    skew = {}
    try:
        skew = {d: v.get("skew") for d, v in join.summary().get("devices", {}).items()}
    except Exception:  # the summary is informative here, never required
        skew = {}
    for device, apps in sorted(apps_by_device.items()):
        tl = join.ctx.timeline(device)
        if tl is None:
            continue
        lo, hi = span if span else (float("-inf"), float("inf"))
        keys = []
        for e in tl.key_events(None, lo - 6 * 3600, hi):
            keys.append({"ts": round(tl.to_capture(e.ts), 6), "op": e.op, "alias": e.alias, "uid": e.uid,
                         "packages": sorted(tl.packages_for_uid(e.uid))})
        devices[device] = {
            "skew": skew.get(device),
            "apps": {a: [[round(s, 6), round(e, 6), st] for s, e, st in tl.app_intervals(a)] for a in sorted(apps)},
            "interactions": {a: [round(t, 6) for t in tl.interactions(a)] for a in sorted(apps)},
            "screen": [[round(t, 6), v] for t, v in tl.screen_changes()],
            "keyguard": [[round(t, 6), v] for t, v in tl.keyguard_changes()],
            "keys": keys,
        }
    write_json(path, {"schema": "netan/1", "devices": devices})


def apps_by_device(records: Iterable[dict[str, Any]]) -> tuple[dict[str, set[str]], tuple[float, float] | None]:
    out: dict[str, set[str]] = {}
    lo = hi = None
    for r in records:
        if r.get("device"):
            out.setdefault(r["device"], set())
            if r.get("app"):
                out[r["device"]].add(r["app"])
        lo = r["ts"] if lo is None else min(lo, r["ts"])
        hi = r["ts_end"] if hi is None else max(hi, r["ts_end"])
    return out, (lo, hi) if lo is not None else None
