"""Microsoft Intune ``managedDevice`` JSON -> ``InventoryDevice`` (sans-IO).

Accepts one ``managedDevice``, a list, or a Graph collection response
``{"@odata.context": ..., "value": [...]}`` (GET /deviceManagement/managedDevices).
Fields per microsoft-graph-docs ``intune-devices-manageddevice.md``: ``id``,
``serialNumber``, ``imei``, ``meid``, ``wiFiMacAddress``, ``ethernetMacAddress``
(null in list responses unless $select'ed), ``deviceName``, ``azureADDeviceId``.
"""
from __future__ import annotations

from typing import Any, Iterator

from netan.context._util import norm_mac
from netan.context.model import InventoryDevice, Reject

__all__ = ["FORMAT", "parse_value", "looks_like"]

FORMAT = "intune"
_MARKERS = ("managedDeviceOwnerType", "azureADDeviceId", "wiFiMacAddress", "managementAgent",
            "managedDeviceName", "userPrincipalName", "deviceEnrollmentType")


def _is_device(value: Any) -> bool:
    return isinstance(value, dict) and "id" in value and sum(k in value for k in _MARKERS) >= 2


def looks_like(value: Any) -> bool:
    if isinstance(value, dict) and isinstance(value.get("value"), list):
        ctx = str(value.get("@odata.context", ""))
        return "managedDevices" in ctx or (bool(value["value"]) and _is_device(value["value"][0]))
    if isinstance(value, list):
        return bool(value) and _is_device(value[0])
    return _is_device(value)


def parse_value(value: Any, line: int) -> Iterator[InventoryDevice | Reject]:
    if isinstance(value, dict) and isinstance(value.get("value"), list):
        value = value["value"]
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            yield Reject(line, "not an Intune managedDevice (no id)")
            continue
        macs = tuple(m for m in (norm_mac(item.get("wiFiMacAddress")),
                                 norm_mac(item.get("ethernetMacAddress"))) if m)
        imeis = tuple(str(item[k]) for k in ("imei", "meid") if isinstance(item.get(k), str) and item[k])
        serial = str(item.get("serialNumber") or "")
        aliases = [a for a in (serial, str(item.get("azureADDeviceId") or ""), *imeis)
                   if a and a != "00000000-0000-0000-0000-000000000000"]
        names = [n for n in (str(item.get("deviceName") or ""), str(item.get("managedDeviceName") or "")) if n]
        yield InventoryDevice(
            device_id=item["id"], source=FORMAT, serial=serial, imeis=imeis, macs=macs,
            name=str(item.get("deviceName") or ""),
            model=" ".join(str(item.get(k) or "") for k in ("manufacturer", "model")).strip(),
            aliases=tuple(dict.fromkeys(aliases)), line=line, names=tuple(dict.fromkeys(names)),
        )
