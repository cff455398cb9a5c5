"""UsageStats event export (JSON lines) -> app-state and screen/keyguard events (sans-IO).

One JSON object per line: ``{"device", "package", "eventType", "timeStamp"}``
(CONTRACT.md) with ``eventType`` a ``UsageEvents.Event`` name or integer code and
``timeStamp`` epoch milliseconds; the companion-app spelling of the formats doc
section 3 (``ts``, ``type``, ``type_name``, ``class``, ``instanceId``) is accepted
too. Codes per AOSP ``core/java/android/app/usage/UsageEvents.java``.
"""
from __future__ import annotations

from typing import Any, Iterator

from netan.context._util import TimeError, parse_epoch_ms, to_int
from netan.context.model import AppStateEvent, DeviceStateEvent, Reject, UnknownEvent

__all__ = ["FORMAT", "EVENT_CODES", "EVENT_NAMES", "parse_value", "looks_like", "event_from_code"]

FORMAT = "usagestats"

#: UsageEvents.Event type names -> codes (UsageEvents.java; 12+ checked against SDK stubs).
EVENT_CODES: dict[str, int] = {
    "NONE": 0, "ACTIVITY_RESUMED": 1, "MOVE_TO_FOREGROUND": 1, "ACTIVITY_PAUSED": 2,
    "MOVE_TO_BACKGROUND": 2, "END_OF_DAY": 3, "CONTINUE_PREVIOUS_DAY": 4,
    "CONFIGURATION_CHANGE": 5, "SYSTEM_INTERACTION": 6, "USER_INTERACTION": 7,
    "SHORTCUT_INVOCATION": 8, "CHOOSER_ACTION": 9, "NOTIFICATION_SEEN": 10,
    "STANDBY_BUCKET_CHANGED": 11, "NOTIFICATION_INTERRUPTION": 12, "SLICE_PINNED_PRIV": 13,
    "SLICE_PINNED": 14, "SCREEN_INTERACTIVE": 15, "SCREEN_NON_INTERACTIVE": 16,
    "KEYGUARD_SHOWN": 17, "KEYGUARD_HIDDEN": 18, "FOREGROUND_SERVICE_START": 19,
    "FOREGROUND_SERVICE_STOP": 20, "CONTINUING_FOREGROUND_SERVICE": 21,
    "ROLLOVER_FOREGROUND_SERVICE": 22, "ACTIVITY_STOPPED": 23, "ACTIVITY_DESTROYED": 24,
    "FLUSH_TO_DISK": 25, "DEVICE_SHUTDOWN": 26, "DEVICE_STARTUP": 27, "USER_UNLOCKED": 28,
    "USER_STOPPED": 29, "LOCUS_ID_SET": 30, "APP_COMPONENT_USED": 31,
}
EVENT_NAMES: dict[int, str] = {}
for _name, _code in EVENT_CODES.items():
    EVENT_NAMES.setdefault(_code, _name)

_DEVICE_STATE = {15: ("screen", "interactive"), 16: ("screen", "non_interactive"),
                 17: ("keyguard", "shown"), 18: ("keyguard", "hidden")}


def resolve_type(raw: Any) -> int | str | None:
    """The event code; a str when the name is unknown (kept as an unknown event); None if unusable."""
    code = to_int(raw)
    if code is not None:
        return code if code >= 0 else None
    if isinstance(raw, str):
        name = raw.strip().upper()
        if name in EVENT_CODES:
            return EVENT_CODES[name]
        if name.startswith("UNKNOWN_TYPE_") and name[13:].isdigit():
            return int(name[13:])
        return name[:60] if name else None
    return None


def event_from_code(device: str | None, ts: float, package: str, code: int, class_name: str,
                    instance_id: int | None, line: int, source: str):
    """The model event for one UsageEvents.Event (shared with the dumpsys parser)."""
    if code in _DEVICE_STATE:
        kind, value = _DEVICE_STATE[code]
        return DeviceStateEvent(device, ts, kind, value, None, "", line, source)
    return AppStateEvent(device, ts, package, code, class_name, instance_id, line, source)


# Accepted spellings, first match wins: CONTRACT.md's, the formats doc's companion
# export (section 3), and the obvious snake_case variants of exporters in the wild.
_TYPE_KEYS = ("eventType", "type", "type_name", "event_type")
_TS_KEYS = ("timeStamp", "ts", "timestamp", "time_ms")
_PKG_KEYS = ("package", "packageName", "package_name")
_DEV_KEYS = ("device", "deviceId", "device_id", "serial")


def _first(value: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        if k in value:
            return value[k]
    return None


def looks_like(value: Any) -> bool:
    if not isinstance(value, dict) or "usageLogEvents" in value or "tag" in value:
        return False
    return (any(k in value for k in _TYPE_KEYS) and any(k in value for k in _TS_KEYS)
            and any(k in value for k in _PKG_KEYS))


def parse_value(value: Any, line: int) -> Iterator[Any]:
    if not isinstance(value, dict):
        yield Reject(line, "UsageStats line is not a JSON object")
        return
    raw_type = _first(value, _TYPE_KEYS)
    etype = resolve_type(raw_type)
    if etype is None:
        yield Reject(line, f"bad eventType {str(raw_type)[:40]!r}")
        return
    try:
        ts = parse_epoch_ms(_first(value, _TS_KEYS))
    except TimeError as exc:
        yield Reject(line, f"timeStamp: {exc}")
        return
    device = _first(value, _DEV_KEYS)
    device = device if isinstance(device, str) and device else None
    package = _first(value, _PKG_KEYS)
    package = "" if package is None else package
    if not isinstance(package, str):
        yield Reject(line, "package is not a string")
        return
    if isinstance(etype, str):
        yield UnknownEvent(device, ts, etype, "", line, FORMAT)
        return
    if not package and etype not in _DEVICE_STATE:
        yield Reject(line, "app event without package")
        return
    cls = value.get("className", value.get("class", ""))
    inst = to_int(value.get("instanceId"))
    yield event_from_code(device, ts, package, etype, cls if isinstance(cls, str) else "", inst, line, FORMAT)
