"""Text of ``adb shell dumpsys usagestats`` -> app-state and screen/keyguard events (sans-IO).

Event lines come from AOSP ``UserUsageStatsService.printEvent``:
``time="yyyy-MM-dd HH:mm:ss" type=<NAME> package=<pkg> [class=..] [instanceId=..] ... flags=0x..``
(or ``time=<epoch ms>`` when not in pretty mode). The pretty time is device
*local* time with one-second resolution and no zone: the caller passes the
device's zone; without it UTC is assumed and the report says so. The dump names
no device, so events are unbound (``device=None``). Lines that are not events
(stats tables, headers) are ignored; event lines that do not parse are rejected.
The same event may be printed in several interval sections; the loader drops
exact duplicates.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone, tzinfo
from typing import Iterable, Iterator

from netan.context._util import MAX_TS, MIN_TS, TimeError, parse_epoch_ms, to_int
from netan.context.model import Reject, UnknownEvent
from netan.context.usagestats import event_from_code, resolve_type

__all__ = ["FORMAT", "parse_lines", "looks_like_text"]

FORMAT = "dumpsys_usagestats"

_PAIR = re.compile(r'(\w+)=("(?:[^"]*)"|\S*)')
_EVENT_LINE = re.compile(r'^\s*time=("[^"]*"|\d+)\s+type=\S+')
_PRETTY = "%Y-%m-%d %H:%M:%S"


def looks_like_text(head: str) -> bool:
    lines = head.splitlines()[:4000]
    hits = sum(1 for ln in lines if _EVENT_LINE.match(ln) and "package=" in ln)
    markers = ("Last 24 hour events", "In-memory daily stats", "user=", "AppIdleHistory")
    return hits >= 1 and (hits >= 3 or any(m in head for m in markers))


def _local_ts(text: str, tz: tzinfo | None) -> float:
    try:
        naive = datetime.strptime(text, _PRETTY)
    except ValueError:
        raise TimeError(f"time {text[:40]!r} is not yyyy-MM-dd HH:mm:ss") from None
    ts = naive.replace(tzinfo=tz or timezone.utc).timestamp()
    if not MIN_TS <= ts <= MAX_TS:
        raise TimeError(f"time {text[:40]!r} outside 2000..2100")
    return ts


def parse_lines(lines: Iterable[str], tz: tzinfo | None = None) -> Iterator[object]:
    """Events and Rejects from the dump's lines (1-based line numbers)."""
    for line_no, line in enumerate(lines, start=1):
        if "time=" not in line or "type=" not in line:
            continue
        if not _EVENT_LINE.match(line):
            continue
        fields = {k: v.strip('"') for k, v in _PAIR.findall(line)}
        raw_time = fields.get("time", "")
        try:
            ts = parse_epoch_ms(raw_time) if raw_time.isdigit() else _local_ts(raw_time, tz)
        except TimeError as exc:
            yield Reject(line_no, str(exc))
            continue
        etype = resolve_type(fields.get("type", ""))
        package = fields.get("package", "")
        if etype is None:
            yield Reject(line_no, "event line without type")
            continue
        if isinstance(etype, str):
            yield UnknownEvent(None, ts, etype, "", line_no, FORMAT)
            continue
        if not package and etype not in (15, 16, 17, 18):
            yield Reject(line_no, "event line without package")
            continue
        yield event_from_code(None, ts, package, etype, fields.get("class", ""),
                              to_int(fields.get("instanceId")), line_no, FORMAT)
