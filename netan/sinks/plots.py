"""Plots for the HTML report, as inline SVG made with matplotlib.

Text is drawn as paths (``svg.fonttype = 'path'``), so no string from traffic
or logs ever reaches the SVG as markup: nothing to escape, nothing to inject.
"""
from __future__ import annotations

import io
import math
from typing import Any

__all__ = ["entropy_histogram", "size_histogram", "device_timeline", "CLASS_COLOURS"]

CLASS_COLOURS = {"encrypted": "#c0392b", "compressed": "#e67e22", "encoded": "#8e44ad", "text": "#27ae60",
                 "binary": "#2980b9", "empty": "#bdc3c7", "unknown": "#7f8c8d"}
STATE_COLOURS = {"foreground": "#2ecc71", "visible": "#a9dfbf", "foreground_service": "#f5b041",
                 "background": "#d5d8dc", "unknown": "#f2f3f4"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "path"
    plt.rcParams["font.size"] = 8
    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    _plt().close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    start, end = text.find("<metadata>"), text.find("</metadata>")
    if start >= 0 and end > start:  # matplotlib's RDF block: a date and namespaces, nothing to show
        text = text[:start] + text[end + len("</metadata>"):]
    return text


def entropy_histogram(flows: list[dict[str, Any]]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 2.4))
    by_class: dict[str, list[float]] = {}
    for r in flows:
        p = (r.get("payload") or {}).get("out") or {}
        if isinstance(p.get("entropy"), (int, float)):
            by_class.setdefault(str(p.get("class")), []).append(float(p["entropy"]))
    for cls, values in sorted(by_class.items()):
        ax.hist(values, bins=32, range=(0, 8), alpha=0.7, label=cls, color=CLASS_COLOURS.get(cls, "#999"))
    ax.set_xlabel("payload entropy, originator to responder (bits/byte)")
    ax.set_ylabel("flows")
    if by_class:
        ax.legend(loc="upper left", frameon=False)
    return _svg(fig)


def size_histogram(flows: list[dict[str, Any]]) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 2.4))
    out = [math.log10(r["bytes_out"]) for r in flows if r.get("bytes_out", 0) > 0]
    inb = [math.log10(r["bytes_in"]) for r in flows if r.get("bytes_in", 0) > 0]
    ax.hist([out, inb], bins=30, label=["bytes out", "bytes in"], color=["#c0392b", "#2980b9"])
    ax.set_xlabel("log10(payload bytes per flow)")
    ax.set_ylabel("flows")
    ax.legend(loc="upper right", frameon=False)
    return _svg(fig)


def device_timeline(device: dict[str, Any], flows: list[dict[str, Any]], chain_flows: set[str]) -> str:
    """Rows per app: state bands, interaction ticks, key events, egress flows sized by bytes."""
    plt = _plt()
    apps = sorted(set(device.get("apps", {})) | {r["app"] for r in flows if r.get("app")})
    rows = {a: i for i, a in enumerate(apps)}
    unknown_row = len(apps)
    fig, ax = plt.subplots(figsize=(9, 0.45 * (len(apps) + 1) + 1.0))
    starts = [r["ts"] for r in flows] + [iv[0] for ivs in device.get("apps", {}).values() for iv in ivs]
    t0 = min(starts) if starts else 0.0  # plot seconds since the first event: readable ticks
    for app, intervals in device.get("apps", {}).items():
        y = rows[app]
        for start, end, state in intervals:
            ax.broken_barh([(start - t0, max(end - start, 0.01))], (y - 0.4, 0.8),
                           color=STATE_COLOURS.get(state, "#eee"), zorder=1)
    for app, times in device.get("interactions", {}).items():
        if app in rows:
            ax.scatter([t - t0 for t in times], [rows[app] + 0.3] * len(times), marker="|", color="#1e8449", s=60,
                       zorder=3)
    for r in flows:
        y = rows.get(r.get("app"), unknown_row)
        size = 10 + 60 * math.log10(1 + r.get("bytes_out", 0)) / 6
        cls = ((r.get("payload") or {}).get("out") or {}).get("class", "unknown")
        edge = "#000" if r["flow_id"] in chain_flows else "none"
        ax.scatter([r["ts"] - t0], [y], s=size, color=CLASS_COLOURS.get(cls, "#999"), edgecolors=edge,
                   linewidths=1.2, zorder=5)
    for k in device.get("keys", []):
        for app in k.get("packages") or []:
            if app in rows:
                ax.scatter([k["ts"] - t0], [rows[app] + 0.25], marker="^", color="#6c3483", s=60, zorder=6)
    for t, state in device.get("screen", []):
        if state == "non_interactive":
            ax.axvline(t - t0, color="#34495e", linestyle=":", linewidth=0.8)
    labels = [a if len(a) <= 40 else a[:37] + "..." for a in apps] + ["(no app)"]
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    from datetime import datetime, timezone

    start = datetime.fromtimestamp(t0, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if starts else "?"
    ax.set_xlabel(f"seconds since {start} (capture clock); bars: app state (green foreground, grey background, "
                  "amber foreground service);\nticks: user interaction; triangles: key events; dots: flows "
                  "(colour: payload class, black ring: in a chain); dotted: screen off")
    return _svg(fig)
