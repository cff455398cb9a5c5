"""Raw DevicePolicyManager exports from a custom DPC (sans-IO).

AMAPI is a JSON rendering of the same framework objects; a DPC of another EMM
may export them directly (formats doc sections 2.1-2.2, 8.1):

* ``SecurityLog.SecurityEvent`` as JSON lines: ``{"id", "timeNanos", "tag",
  "level", "data": [...]}`` (+ optional ``"device"``), payload layouts per
  ``SecurityLogTags.logtags`` (e.g. tag 210024 ``[success, alias, uid]``).
* ``NetworkEvent.toString()`` lines: ``ConnectEvent(<ip>, <port>, <ts ms>, <pkg>)``
  and ``DnsEvent(<host>, <ip ip ... | NONE>, <count>, <ts ms>, <pkg>)`` (AOSP
  ConnectEvent.java / DnsEvent.java). These name no device.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from netan.context._util import MAX_TS, MIN_TS, norm_ip, to_int
from netan.context.model import (
    CertEvent,
    ConnectEvent,
    DeviceStateEvent,
    DnsEvent,
    KeyEvent,
    ProcessStart,
    Reject,
    SecurityEvent,
    UnknownEvent,
)

__all__ = ["FORMAT_SECURITY", "FORMAT_NETWORK", "looks_like", "parse_value", "looks_like_text", "parse_lines",
           "TAGS"]

FORMAT_SECURITY = "dpm_security_log"
FORMAT_NETWORK = "dpm_network_log"

#: SecurityLog tag -> name (SecurityLog.java / SecurityLogTags.logtags)
TAGS = {
    210001: "ADB_SHELL_INTERACTIVE", 210002: "ADB_SHELL_CMD", 210003: "SYNC_RECV_FILE",
    210004: "SYNC_SEND_FILE", 210005: "APP_PROCESS_START", 210006: "KEYGUARD_DISMISSED",
    210007: "KEYGUARD_DISMISS_AUTH_ATTEMPT", 210008: "KEYGUARD_SECURED", 210009: "OS_STARTUP",
    210010: "OS_SHUTDOWN", 210011: "LOGGING_STARTED", 210012: "LOGGING_STOPPED", 210013: "MEDIA_MOUNT",
    210014: "MEDIA_UNMOUNT", 210015: "LOG_BUFFER_SIZE_CRITICAL", 210022: "REMOTE_LOCK",
    210023: "WIPE_FAILURE", 210024: "KEY_GENERATED", 210025: "KEY_IMPORT", 210026: "KEY_DESTRUCTION",
    210027: "USER_RESTRICTION_ADDED", 210028: "USER_RESTRICTION_REMOVED", 210029: "CERT_AUTHORITY_INSTALLED",
    210030: "CERT_AUTHORITY_REMOVED", 210031: "CRYPTO_SELF_TEST_COMPLETED", 210032: "KEY_INTEGRITY_VIOLATION",
    210033: "CERT_VALIDATION_FAILURE", 210037: "WIFI_CONNECTION", 210038: "WIFI_DISCONNECTION",
    210039: "BLUETOOTH_CONNECTION", 210040: "BLUETOOTH_DISCONNECTION",
}
_KEY_TAGS = {210024: "generate", 210025: "import", 210026: "destroy"}


def looks_like(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("tag"), int) and "data" in value and (
        "timeNanos" in value or "id" in value)


def _ts(value: dict[str, Any]) -> float | None:
    ns = to_int(value.get("timeNanos"))
    if ns is not None:
        ts = ns / 1e9
    else:
        ms = to_int(value.get("timeMillis"))
        ts = ms / 1e3 if ms is not None else None
    return ts if ts is not None and MIN_TS <= ts <= MAX_TS else None


def parse_value(value: Any, line: int) -> Iterator[Any]:
    if not looks_like(value):
        yield Reject(line, "not a SecurityEvent export (needs tag, data, timeNanos)")
        return
    ts = _ts(value)
    if ts is None:
        yield Reject(line, "timeNanos missing or outside 2000..2100")
        return
    tag = value["tag"]
    eid = str(value.get("id", ""))
    dev = value.get("device") if isinstance(value.get("device"), str) and value.get("device") else None
    data = value["data"]
    items = data if isinstance(data, list) else [data]
    name = TAGS.get(tag)
    try:
        if tag in _KEY_TAGS:
            ok, alias, uid = items[0], items[1], to_int(items[2])
            if uid is None or not isinstance(alias, str):
                raise ValueError
            yield KeyEvent(dev, ts, _KEY_TAGS[tag], alias, uid, bool(to_int(ok, 0)), eid, line, "dpm")
        elif tag == 210032:
            alias, uid = items[0], to_int(items[1])
            if uid is None or not isinstance(alias, str):
                raise ValueError
            yield KeyEvent(dev, ts, "integrity_violation", alias, uid, None, eid, line, "dpm")
        elif tag == 210005:
            proc, uid, pid = items[0], to_int(items[2]), to_int(items[3])
            if not isinstance(proc, str) or uid is None or pid is None:
                raise ValueError
            yield ProcessStart(dev, ts, uid, pid, proc, (proc.split(":", 1)[0],),
                               str(items[5]) if len(items) > 5 else "", str(items[4]) if len(items) > 4 else "",
                               eid, line, "dpm")
        elif tag in (210006, 210008):
            yield DeviceStateEvent(dev, ts, "keyguard", "hidden" if tag == 210006 else "shown", None, eid, line, "dpm")
        elif tag == 210007:
            yield DeviceStateEvent(dev, ts, "keyguard_auth", "success" if to_int(items[0], 0) else "failure",
                                   bool(to_int(items[1], 0)) if len(items) > 1 else None, eid, line, "dpm")
        elif tag in (210029, 210030):
            yield CertEvent(dev, ts, "installed" if tag == 210029 else "removed", str(items[1])[:512],
                            bool(to_int(items[0], 0)), eid, line, "dpm")
        elif tag == 210033:
            yield CertEvent(dev, ts, "validation_failure", str(items[0])[:512], None, eid, line, "dpm")
        elif name is not None:
            fields = tuple((str(i), str(v)[:256]) for i, v in enumerate(items) if isinstance(v, (str, int, float)))
            yield SecurityEvent(dev, ts, name, fields, eid, line, "dpm")
        else:
            yield UnknownEvent(dev, ts, f"TAG_{tag}", eid, line, "dpm")
    except (IndexError, ValueError, TypeError):
        yield Reject(line, f"tag {tag}: data does not have the SecurityLogTags layout")


_CONNECT = re.compile(r"^\s*ConnectEvent\((?P<ip>[^,]+), (?P<port>-?\d+), (?P<ts>\d+), (?P<pkg>[^)]*)\)\s*$")
_DNS = re.compile(r"^\s*DnsEvent\((?P<host>[^,]*), (?P<ips>[^,]*), (?P<n>\d+), (?P<ts>\d+), (?P<pkg>[^)]*)\)\s*$")


def looks_like_text(head: str) -> bool:
    lines = [ln for ln in head.splitlines()[:50] if ln.strip()]
    return bool(lines) and sum(1 for ln in lines if ln.lstrip().startswith(("ConnectEvent(", "DnsEvent("))) * 2 > len(lines)


def parse_lines(lines: Iterable[str]) -> Iterator[Any]:
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        m = _CONNECT.match(line)
        if m:
            ip, port, ts = norm_ip(m["ip"].split("/")[-1]), int(m["port"]), int(m["ts"]) / 1e3
            if not ip or not 0 <= port <= 65535 or not MIN_TS <= ts <= MAX_TS:
                yield Reject(n, "ConnectEvent with a bad address, port or timestamp")
                continue
            yield ConnectEvent(None, ts, m["pkg"].strip(), ip, port, "", n, "dpm")
            continue
        m = _DNS.match(line)
        if m:
            ts = int(m["ts"]) / 1e3
            if not MIN_TS <= ts <= MAX_TS:
                yield Reject(n, "DnsEvent with a bad timestamp")
                continue
            ips = () if m["ips"].strip() == "NONE" else tuple(
                a for a in (norm_ip(x.split("/")[-1]) for x in m["ips"].split()) if a)
            yield DnsEvent(None, ts, m["pkg"].strip(), m["host"].strip().rstrip(".").lower(), ips,
                           int(m["n"]), "", n, "dpm")
            continue
        yield Reject(n, "neither ConnectEvent(...) nor DnsEvent(...)")
