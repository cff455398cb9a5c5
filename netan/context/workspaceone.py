"""Workspace ONE UEM device search JSON -> ``InventoryDevice`` (sans-IO).

Accepts ``GET /api/mdm/devices/search`` responses ``{"Devices": [...], "Page": ..,
"Total": ..}``, a list of devices, or one device (v2 ``/devices/{uuid}``).
Fields per the formats doc section 6.1: ``Udid``, ``Uuid``, ``Id.Value``,
``SerialNumber``, ``Imei``, ``MacAddress`` (``"ABABABABABAB"``, no separators),
``DeviceFriendlyName``.
"""
from __future__ import annotations

from typing import Any, Iterator

from netan.context._util import norm_mac
from netan.context.model import InventoryDevice, Reject

__all__ = ["FORMAT", "parse_value", "looks_like"]

FORMAT = "workspaceone"
_MARKERS = ("Udid", "SerialNumber", "DeviceFriendlyName", "MacAddress", "Imei", "Uuid", "EnrollmentStatus")


def _is_device(value: Any) -> bool:
    return isinstance(value, dict) and sum(k in value for k in _MARKERS) >= 2


def looks_like(value: Any) -> bool:
    if isinstance(value, dict) and isinstance(value.get("Devices"), list):
        return not value["Devices"] or _is_device(value["Devices"][0])
    if isinstance(value, list):
        return bool(value) and _is_device(value[0])
    return _is_device(value)


def _ident(item: dict[str, Any]) -> str:
    for key in ("Udid", "Uuid"):
        if isinstance(item.get(key), str) and item[key]:
            return item[key]
    ident = item.get("Id")
    if isinstance(ident, dict) and isinstance(ident.get("Value"), (int, str)):
        return f"ws1:{ident['Value']}"
    return ""


def parse_value(value: Any, line: int) -> Iterator[InventoryDevice | Reject]:
    if isinstance(value, dict) and isinstance(value.get("Devices"), list):
        value = value["Devices"]
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict) or not _ident(item):
            yield Reject(line, "not a Workspace ONE device (no Udid, Uuid or Id.Value)")
            continue
        ident = _ident(item)
        mac = norm_mac(item.get("MacAddress"))
        imei = str(item.get("Imei") or "")
        serial = str(item.get("SerialNumber") or "")
        other = [str(item.get(k) or "") for k in ("Udid", "Uuid")]
        id_obj = item.get("Id")
        if isinstance(id_obj, dict) and id_obj.get("Value") is not None:
            other.append(f"ws1:{id_obj['Value']}")
        aliases = [a for a in (serial, imei, *other) if a and a != ident]
        yield InventoryDevice(
            device_id=ident, source=FORMAT, serial=serial, imeis=(imei,) if imei else (),
            macs=(mac,) if mac else (), name=str(item.get("DeviceFriendlyName") or ""),
            model=str(item.get("Model") or ""), aliases=tuple(dict.fromkeys(aliases)), line=line,
            names=(str(item["DeviceFriendlyName"]),) if item.get("DeviceFriendlyName") else (),
        )
