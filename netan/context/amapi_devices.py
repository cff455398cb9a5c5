"""Android Management API ``Device`` resources -> ``InventoryDevice`` (sans-IO).

Accepts one ``Device``, a list of them, or an ``enterprises.devices.list``
response ``{"devices": [...], "nextPageToken": ...}``. Fields per the
androidmanagement v1 discovery doc (formats doc section 1.4): ``name``,
``hardwareInfo.serialNumber``, ``networkInfo.{wifiMacAddress, imei, meid}``,
``applicationReports[].packageName``. There is no IP address field.
"""
from __future__ import annotations

from typing import Any, Iterator

from netan.context._util import norm_mac
from netan.context.model import InventoryDevice, Reject

__all__ = ["FORMAT", "parse_value", "looks_like"]

FORMAT = "amapi_devices"


def _is_device(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and "/devices/" in value["name"]
        and any(k in value for k in ("hardwareInfo", "networkInfo", "managementMode", "state",
                                      "appliedState", "policyName", "enrollmentTime", "ownership"))
    )


def looks_like(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and _is_device(value[0])
    if isinstance(value, dict) and isinstance(value.get("devices"), list):
        return not value["devices"] or _is_device(value["devices"][0])
    return _is_device(value)


def parse_value(value: Any, line: int) -> Iterator[InventoryDevice | Reject]:
    if isinstance(value, dict) and isinstance(value.get("devices"), list):
        value = value["devices"]
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not _is_device(item):
            yield Reject(line, "not an AMAPI Device resource (needs name enterprises/*/devices/*)")
            continue
        hw = item.get("hardwareInfo") if isinstance(item.get("hardwareInfo"), dict) else {}
        net = item.get("networkInfo") if isinstance(item.get("networkInfo"), dict) else {}
        serial = str(hw.get("serialNumber", "") or "")
        imeis = tuple(str(net[k]) for k in ("imei", "meid") if isinstance(net.get(k), str) and net[k])
        mac = norm_mac(net.get("wifiMacAddress"))
        aliases = [a for a in (serial, str(hw.get("enterpriseSpecificId", "") or ""), *imeis) if a]
        # the AMAPI device id alone (last path element) is what other exporters often write
        aliases.append(item["name"].rsplit("/", 1)[-1])
        reports = item.get("applicationReports")
        packages = tuple(
            r["packageName"] for r in reports if isinstance(r, dict) and isinstance(r.get("packageName"), str)
        ) if isinstance(reports, list) else ()
        model = " ".join(str(hw.get(k, "")) for k in ("brand", "model") if hw.get(k)).strip()
        yield InventoryDevice(
            device_id=item["name"], source=FORMAT, serial=serial, imeis=imeis,
            macs=(mac,) if mac else (), name=str(item.get("userName", "") or ""), model=model,
            aliases=tuple(dict.fromkeys(aliases)), packages=packages, line=line,
        )
