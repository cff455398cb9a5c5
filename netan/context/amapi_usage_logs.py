"""Android Management API ``BatchUsageLogEvents`` -> typed context events (sans-IO).

Input is one decoded JSON value (the loader streams a file into values): a
``BatchUsageLogEvents``, a list of them, a bare ``UsageLogEvent``, a Pub/Sub
``PubsubMessage`` or its push envelope ``{"message": {...}, "subscription": ...}``
whose base64 ``data`` holds the batch. Output is events and ``Reject``s, never an
exception. Schema: androidmanagement v1 discovery doc (rev 20240531), summarised
in ../shared/formats/android-context.md section 1.

Proto3 JSON omits fields at their default value, so a missing ``success`` is
``false`` and a missing ``applicationUid`` is 0 (protobuf JSON mapping spec).
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Iterator

from netan.context._util import TimeError, norm_ip, parse_rfc3339, to_int
from netan.context.model import (
    CertEvent,
    ConnectEvent,
    DeviceStateEvent,
    DnsEvent,
    Event,
    KeyEvent,
    ProcessStart,
    Reject,
    SecurityEvent,
    UnknownEvent,
)

__all__ = ["FORMAT", "parse_value", "looks_like", "event_family", "PAYLOAD_FIELD"]

FORMAT = "amapi_usage_logs"

#: eventType -> payload field (UsageLogEvent in the discovery doc).
PAYLOAD_FIELD: dict[str, str] = {
    "ADB_SHELL_COMMAND": "adbShellCommandEvent",
    "ADB_SHELL_INTERACTIVE": "adbShellInteractiveEvent",
    "APP_PROCESS_START": "appProcessStartEvent",
    "KEYGUARD_DISMISSED": "keyguardDismissedEvent",
    "KEYGUARD_DISMISS_AUTH_ATTEMPT": "keyguardDismissAuthAttemptEvent",
    "KEYGUARD_SECURED": "keyguardSecuredEvent",
    "FILE_PULLED": "filePulledEvent",
    "FILE_PUSHED": "filePushedEvent",
    "CERT_AUTHORITY_INSTALLED": "certAuthorityInstalledEvent",
    "CERT_AUTHORITY_REMOVED": "certAuthorityRemovedEvent",
    "CERT_VALIDATION_FAILURE": "certValidationFailureEvent",
    "CRYPTO_SELF_TEST_COMPLETED": "cryptoSelfTestCompletedEvent",
    "KEY_DESTRUCTION": "keyDestructionEvent",
    "KEY_GENERATED": "keyGeneratedEvent",
    "KEY_IMPORT": "keyImportEvent",
    "KEY_INTEGRITY_VIOLATION": "keyIntegrityViolationEvent",
    "LOGGING_STARTED": "loggingStartedEvent",
    "LOGGING_STOPPED": "loggingStoppedEvent",
    "LOG_BUFFER_SIZE_CRITICAL": "logBufferSizeCriticalEvent",
    "MEDIA_MOUNT": "mediaMountEvent",
    "MEDIA_UNMOUNT": "mediaUnmountEvent",
    "OS_SHUTDOWN": "osShutdownEvent",
    "OS_STARTUP": "osStartupEvent",
    "REMOTE_LOCK": "remoteLockEvent",
    "WIPE_FAILURE": "wipeFailureEvent",
    "CONNECT": "connectEvent",
    "DNS": "dnsEvent",
    "STOP_LOST_MODE_USER_ATTEMPT": "stopLostModeUserAttemptEvent",
    "LOST_MODE_OUTGOING_PHONE_CALL": "lostModeOutgoingPhoneCallEvent",
    "LOST_MODE_LOCATION": "lostModeLocationEvent",
    "ENROLLMENT_COMPLETE": "enrollmentCompleteEvent",
}

_KEY_OPS = {
    "KEY_GENERATED": "generate",
    "KEY_IMPORT": "import",
    "KEY_DESTRUCTION": "destroy",
    "KEY_INTEGRITY_VIOLATION": "integrity_violation",
}
_CERT_OPS = {
    "CERT_AUTHORITY_INSTALLED": "installed",
    "CERT_AUTHORITY_REMOVED": "removed",
    "CERT_VALIDATION_FAILURE": "validation_failure",
}
# Payloads that must carry data; the others may legitimately be {} or absent.
_REQUIRED_PAYLOAD = {"APP_PROCESS_START", "CONNECT", "DNS"} | set(_KEY_OPS)


def event_family(event: Event) -> str:
    """``network`` or ``security``: the framework numbers each family separately (1.3)."""
    return "network" if isinstance(event, (ConnectEvent, DnsEvent)) else "security"


def looks_like(value: Any) -> bool:
    """True when a decoded JSON value is (a list of) something this module parses."""
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, dict) for v in value[:3]) and looks_like(value[0])
    if not isinstance(value, dict):
        return False
    if "usageLogEvents" in value:
        return True
    msg = value.get("message") if isinstance(value.get("message"), dict) else value
    attrs = msg.get("attributes")
    if isinstance(attrs, dict) and "notificationType" in attrs and "data" in msg:
        return True  # USAGE_LOGS, or a STATUS_REPORT whose Device is delegated
    if isinstance(msg.get("data"), str) and ("messageId" in msg or "attributes" in msg):
        batch = _decode_data(msg["data"])
        return isinstance(batch, dict) and "usageLogEvents" in batch
    return "eventType" in value and "eventTime" in value and "eventId" in value


def parse_value(value: Any, line: int) -> Iterator[Event | Reject]:
    """Events from one JSON value; the Device of a STATUS_REPORT is delegated to amapi_devices."""
    if isinstance(value, list):
        for item in value:
            yield from parse_value(item, line)
        return
    if not isinstance(value, dict):
        yield Reject(line, f"expected a JSON object, got {type(value).__name__}")
        return
    msg = value.get("message")
    if isinstance(msg, dict) or ("data" in value and ("attributes" in value or "messageId" in value)):
        yield from _parse_pubsub(msg if isinstance(msg, dict) else value, line)
        return
    if "usageLogEvents" in value:
        yield from _parse_batch(value, line)
        return
    if "eventType" in value or "eventTime" in value:
        yield from _parse_event(value, None, line, "")
        return
    from netan.context import amapi_devices  # a Pub/Sub dump may mix in Device resources

    if amapi_devices.looks_like(value):
        yield from amapi_devices.parse_value(value, line)
        return
    yield Reject(line, "object is neither a BatchUsageLogEvents nor a Pub/Sub message")


def _decode_data(data: Any) -> Any:
    if not isinstance(data, str):
        return None
    text = data.strip()
    try:
        # PubsubMessage.data is standard base64 (RFC 4648 section 4); accept the
        # URL-safe alphabet too, strictly validated either way.
        alt = "-_" if ("-" in text or "_" in text) else None
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=alt, validate=True)
        return json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        return None


def _parse_pubsub(msg: dict[str, Any], line: int) -> Iterator[Event | Reject]:
    attrs = msg.get("attributes") if isinstance(msg.get("attributes"), dict) else {}
    ntype = attrs.get("notificationType")
    data = msg.get("data")
    if isinstance(data, dict):
        payload: Any = data  # some sinks store the message with data already decoded
    elif not isinstance(data, str):
        yield Reject(line, "Pub/Sub message without base64 data")
        return
    else:
        text = data.strip()
        try:
            alt = "-_" if ("-" in text or "_" in text) else None
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=alt, validate=True)
        except (binascii.Error, ValueError):
            yield Reject(line, "Pub/Sub data is not valid base64")
            return
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            yield Reject(line, "Pub/Sub data does not decode to UTF-8 JSON")
            return
    if ntype in ("STATUS_REPORT", "ENROLLMENT") or (
        isinstance(payload, dict) and "usageLogEvents" not in payload and "hardwareInfo" in payload
    ):
        from netan.context import amapi_devices  # the Device resource importer

        yield from amapi_devices.parse_value(payload, line)
        return
    if ntype not in (None, "USAGE_LOGS"):
        yield Reject(line, f"Pub/Sub notificationType {str(ntype)[:40]!r} carries no usage logs")
        return
    if not isinstance(payload, dict) or "usageLogEvents" not in payload:
        yield Reject(line, "Pub/Sub data is not a BatchUsageLogEvents")
        return
    yield from _parse_batch(payload, line)


def _parse_batch(batch: dict[str, Any], line: int) -> Iterator[Event | Reject]:
    device = batch.get("device")
    if not isinstance(device, str) or not device:
        device = None
    events = batch.get("usageLogEvents")
    if not isinstance(events, list):
        yield Reject(line, "usageLogEvents is not a list")
        return
    for i, ev in enumerate(events):
        yield from _parse_event(ev, device, line, f"usageLogEvents[{i}]: ")


def _parse_event(ev: Any, device: str | None, line: int, where: str) -> Iterator[Event | Reject]:
    if not isinstance(ev, dict):
        yield Reject(line, f"{where}event is not an object")
        return
    if device is None and isinstance(ev.get("device"), str):
        device = ev["device"] or None
    try:
        ts = parse_rfc3339(ev.get("eventTime"))
    except TimeError as exc:
        yield Reject(line, f"{where}eventTime: {exc}")
        return
    etype = ev.get("eventType")
    eid_raw = ev.get("eventId", "")
    eid = str(eid_raw) if isinstance(eid_raw, (str, int)) and not isinstance(eid_raw, bool) else ""
    if not isinstance(etype, str) or etype not in PAYLOAD_FIELD:
        # Newer API revisions add types (e.g. backupServiceToggledEvent): count, never fail.
        yield UnknownEvent(device, ts, str(etype)[:60] if etype is not None else "", eid, line)
        return
    payload = ev.get(PAYLOAD_FIELD[etype])
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        yield Reject(line, f"{where}{PAYLOAD_FIELD[etype]} is not an object")
        return
    if etype in _REQUIRED_PAYLOAD and not payload:
        yield Reject(line, f"{where}{etype} without {PAYLOAD_FIELD[etype]}")
        return
    out = _build(etype, payload, device, ts, eid, line)
    if isinstance(out, str):
        yield Reject(line, f"{where}{out}")
    else:
        yield out


def _build(etype: str, p: dict[str, Any], device: str | None, ts: float, eid: str, line: int) -> Event | str:
    if etype in _KEY_OPS:
        alias = p.get("keyAlias", "")
        uid = to_int(p.get("applicationUid", 0))
        if not isinstance(alias, str) or uid is None:
            return f"{etype}: bad keyAlias or applicationUid"
        success = None if etype == "KEY_INTEGRITY_VIOLATION" else bool(p.get("success", False))
        return KeyEvent(device, ts, _KEY_OPS[etype], alias, uid, success, eid, line)
    if etype == "APP_PROCESS_START":
        info = p.get("processInfo")
        if not isinstance(info, dict):
            return "APP_PROCESS_START without processInfo"
        uid = to_int(info.get("uid", 0))
        pid = to_int(info.get("pid", 0))
        pkgs = info.get("packageNames", [])
        if uid is None or pid is None or not isinstance(pkgs, list):
            return "APP_PROCESS_START: bad uid, pid or packageNames"
        packages = tuple(x for x in pkgs if isinstance(x, str) and x)
        name = info.get("processName", "")
        name = name if isinstance(name, str) else ""
        if not packages and name:
            # processName is "<package>[:<suffix>]" for app processes
            packages = (name.split(":", 1)[0],)
        return ProcessStart(
            device, ts, uid, pid, name, packages,
            str(info.get("apkSha256Hash", "")), str(info.get("seinfo", "")), eid, line,
        )
    if etype == "CONNECT":
        ip = norm_ip(p.get("destinationIpAddress"))
        port = to_int(p.get("destinationPort", 0))
        pkg = p.get("packageName", "")
        if not ip:
            return "CONNECT: bad destinationIpAddress"
        if port is None or not 0 <= port <= 65535:
            return "CONNECT: bad destinationPort"
        return ConnectEvent(device, ts, pkg if isinstance(pkg, str) else "", ip, port, eid, line)
    if etype == "DNS":
        host = p.get("hostname", "")
        ips = p.get("ipAddresses", [])
        pkg = p.get("packageName", "")
        if not isinstance(host, str) or not isinstance(ips, list):
            return "DNS: bad hostname or ipAddresses"
        addrs = tuple(a for a in (norm_ip(x) for x in ips) if a)
        total = to_int(p.get("totalIpAddressesReturned", len(addrs)), len(addrs))
        return DnsEvent(device, ts, pkg if isinstance(pkg, str) else "", host.rstrip(".").lower(),
                        addrs, total if total is not None else len(addrs), eid, line)
    if etype == "KEYGUARD_SECURED":
        return DeviceStateEvent(device, ts, "keyguard", "shown", None, eid, line, "amapi")
    if etype == "KEYGUARD_DISMISSED":
        return DeviceStateEvent(device, ts, "keyguard", "hidden", None, eid, line, "amapi")
    if etype == "KEYGUARD_DISMISS_AUTH_ATTEMPT":
        value = "success" if p.get("success") else "failure"
        return DeviceStateEvent(device, ts, "keyguard_auth", value, bool(p.get("strongAuthMethodUsed")),
                                eid, line, "amapi")
    if etype in _CERT_OPS:
        subject = p.get("certificate", p.get("failureReason", ""))
        success = None if etype == "CERT_VALIDATION_FAILURE" else bool(p.get("success", False))
        return CertEvent(device, ts, _CERT_OPS[etype], str(subject)[:512], success, eid, line)
    fields = tuple(
        sorted((k, str(v)[:256]) for k, v in p.items() if isinstance(v, (str, int, float, bool)))
    )
    return SecurityEvent(device, ts, etype, fields, eid, line)
