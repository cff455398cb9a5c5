"""Recognise a context file by its content, never its name.

``detect(head)`` looks at the first bytes of a file (already decompressed when
the file is gzip) and returns ``(format, why)``; ``format`` is None when no
importer claims the file, and ``why`` then says what the content looked like,
so the loader can report the file by name with a reason.
"""
from __future__ import annotations

import io
import re
from typing import Any

from netan.context import (
    amapi_devices,
    amapi_usage_logs,
    dhcp_leases,
    dpm_logs,
    dumpsys_usagestats,
    intune,
    pcapdroid,
    usagestats,
    workspaceone,
)
from netan.context._util import iter_json_values
from netan.context.model import Reject

__all__ = ["detect", "text_encoding", "FORMATS", "HEAD_BYTES"]

HEAD_BYTES = 1 << 16

#: every format name the loader can return, in detection order
FORMATS = (
    pcapdroid.FORMAT_PCAP,
    pcapdroid.FORMAT_PCAPNG,
    pcapdroid.FORMAT_CSV,
    dhcp_leases.KEA,
    dhcp_leases.ISC,
    dhcp_leases.DNSMASQ,
    dumpsys_usagestats.FORMAT,
    amapi_usage_logs.FORMAT,
    amapi_devices.FORMAT,
    intune.FORMAT,
    workspaceone.FORMAT,
    usagestats.FORMAT,
    dpm_logs.FORMAT_SECURITY,
    dpm_logs.FORMAT_NETWORK,
)

_JSON_CHECKS = (
    (amapi_usage_logs.FORMAT, amapi_usage_logs.looks_like),
    (amapi_devices.FORMAT, amapi_devices.looks_like),
    (intune.FORMAT, intune.looks_like),
    (workspaceone.FORMAT, workspaceone.looks_like),
    (dpm_logs.FORMAT_SECURITY, dpm_logs.looks_like),
    (usagestats.FORMAT, usagestats.looks_like),
)

# Used only when the first JSON value does not fit in the head: distinctive keys.
_KEY_HINTS = (
    (amapi_usage_logs.FORMAT, ('"usageLogEvents"', '"USAGE_LOGS"')),
    (amapi_devices.FORMAT, ('"hardwareInfo"', '"networkInfo"', '"appliedPolicyName"')),
    (intune.FORMAT, ("managedDevices", '"azureADDeviceId"', '"managedDeviceOwnerType"')),
    (workspaceone.FORMAT, ('"DeviceFriendlyName"', '"Udid"')),
    (usagestats.FORMAT, ('"timeStamp"',)),
    (dpm_logs.FORMAT_SECURITY, ('"timeNanos"',)),
)


def _classify(value: Any) -> str | None:
    for name, check in _JSON_CHECKS:
        try:
            if check(value):
                return name
        except (TypeError, AttributeError, KeyError, IndexError):
            continue
    return None


def text_encoding(head: bytes) -> str:
    """``utf-16`` when the file starts with a UTF-16 byte-order mark (Windows
    PowerShell 5.1 ``Out-File`` writes MDM exports so), else ``utf-8``."""
    return "utf-16" if head[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8"


def detect(head: bytes) -> tuple[str | None, str]:
    """(format, reason) for a file whose first bytes are ``head``."""
    if not head:
        return None, "empty file"
    if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"):
        if pcapdroid.sniff_pcap(head):
            return pcapdroid.FORMAT_PCAP, "pcap frames carry the PCAPdroid trailer (magic 0x01072021)"
        return None, "a pcap capture without PCAPdroid extensions (give captures as inputs, not context)"
    if head[:4] == b"\x0a\x0d\x0d\x0a":
        if pcapdroid.sniff_pcapng(head):
            return pcapdroid.FORMAT_PCAPNG, "pcapng with PCAPdroid custom blocks or u-<uid> comments"
        return None, "a pcapng capture without PCAPdroid extensions (give captures as inputs, not context)"
    encoding = text_encoding(head)
    if encoding == "utf-8" and (b"\x00" in head[:16] or head.count(b"\x00") * 100 > len(head)):
        # text formats may carry a stray NUL in a corrupt line, not many
        return None, "binary content of no known context format"
    text = head.decode(encoding, "replace").lstrip("\ufeff")
    stripped = text.lstrip()
    if stripped.startswith("IPProto,SrcIP,SrcPort,DstIp,DstPort"):
        return pcapdroid.FORMAT_CSV, "PCAPdroid connections CSV header"
    lease = dhcp_leases.sniff_text(text)
    if lease:
        return lease, "DHCP lease file syntax"
    if stripped[:1] in ("{", "["):
        return _detect_json(text)
    if dpm_logs.looks_like_text(text):
        return dpm_logs.FORMAT_NETWORK, "NetworkEvent toString lines (ConnectEvent/DnsEvent)"
    if dumpsys_usagestats.looks_like_text(text):
        return dumpsys_usagestats.FORMAT, "dumpsys usagestats event lines"
    return None, "text of no known context format"


def _detect_json(text: str) -> tuple[str | None, str]:
    first: Any = None
    for item in iter_json_values(io.StringIO(text), max_value_chars=len(text) + 1):
        if not isinstance(item, Reject):
            first = item[1]
            break
        # a malformed first value: keep looking a little (JSON lines with a bad first line)
    if first is not None:
        name = _classify(first)
        if name:
            return name, "JSON structure"
        return None, f"JSON of no known context format (keys: {_keys(first)})"
    for name, hints in _KEY_HINTS:
        if any(h in text for h in hints):
            return name, "JSON keys in the first 64 KiB (first value larger than that)"
    return None, "JSON that could not be parsed in its first 64 KiB"


def _keys(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else {}
    if isinstance(value, dict):
        keys = sorted(value)[:6]
        return ", ".join(re.sub(r"[^\w@.$-]", "", k)[:30] for k in keys) or "none"
    return type(value).__name__
