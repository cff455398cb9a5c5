"""The typed context event model: what every importer yields and every timeline keeps.

All events are frozen dataclasses. ``device`` is the device identifier *as the
source names it* (an AMAPI name, a serial, an Intune id, or ``None`` when the
source does not say); the loader resolves it to the inventory's canonical id.
``ts`` is epoch seconds on the **device clock** for device-side events and on the
gateway clock for address bindings (see docs/context.md, "Time").
``line`` is the 1-based line of the source record, for reports.

The shapes follow ../shared/formats/android-context.md section 8.2, trimmed to
what the join and the chains stage query.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = [
    "KeyEvent",
    "ProcessStart",
    "ConnectEvent",
    "DnsEvent",
    "AppStateEvent",
    "DeviceStateEvent",
    "CertEvent",
    "SecurityEvent",
    "UnknownEvent",
    "InventoryDevice",
    "AddressBinding",
    "PcapdroidConnection",
    "Reject",
    "Event",
    "KEY_OPS",
]

#: key operations logged by keystore2 (audit_log.rs); *use* of a key is never logged.
KEY_OPS = ("generate", "import", "destroy", "integrity_violation")


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """KEY_GENERATED / KEY_IMPORT / KEY_DESTRUCTION / KEY_INTEGRITY_VIOLATION.

    Carries only alias, owner uid and success (AMAPI KeyGeneratedEvent; keystore2
    audit_log.rs writes ``(success, alias, owner)`` and nothing else).
    ``success`` is None for integrity violations, which have no such field.
    """

    device: str | None
    ts: float
    op: str
    alias: str
    uid: int
    success: bool | None
    event_id: str = ""
    line: int = 0
    source: str = "amapi"

    @property
    def owner_is_system(self) -> bool:
        # keystore2 writes (nspace | 0x80000000) as i32 for SELinux namespaces: negative.
        return self.uid < 0 or (0 <= self.uid < 10000)


@dataclass(frozen=True, slots=True)
class ProcessStart:
    """APP_PROCESS_START: the only event that carries both uid and package names."""

    device: str | None
    ts: float
    uid: int
    pid: int
    process_name: str
    packages: tuple[str, ...]
    apk_sha256: str = ""
    seinfo: str = ""
    event_id: str = ""
    line: int = 0
    source: str = "amapi"


@dataclass(frozen=True, slots=True)
class ConnectEvent:
    """CONNECT: a TCP connect() by ``package`` (no source port, no bytes, no UDP)."""

    device: str | None
    ts: float
    package: str
    dst_ip: str
    dst_port: int
    event_id: str = ""
    line: int = 0
    source: str = "amapi"


@dataclass(frozen=True, slots=True)
class DnsEvent:
    """DNS: a system-resolver lookup by ``package``; ``addresses`` max 10 (may be truncated)."""

    device: str | None
    ts: float
    package: str
    hostname: str
    addresses: tuple[str, ...]
    total_addresses: int
    event_id: str = ""
    line: int = 0
    source: str = "amapi"


@dataclass(frozen=True, slots=True)
class AppStateEvent:
    """One UsageEvents.Event about a package (type code per UsageEvents.java)."""

    device: str | None
    ts: float
    package: str
    event_type: int
    class_name: str = ""
    instance_id: int | None = None
    line: int = 0
    source: str = "usagestats"


@dataclass(frozen=True, slots=True)
class DeviceStateEvent:
    """Screen or keyguard state change.

    ``kind`` is ``screen`` (value ``interactive``/``non_interactive``) or ``keyguard``
    (value ``shown``/``hidden``; AMAPI KEYGUARD_SECURED -> shown, KEYGUARD_DISMISSED
    -> hidden), or ``keyguard_auth`` (value ``success``/``failure``, not a state).
    """

    device: str | None
    ts: float
    kind: str
    value: str
    strong_auth: bool | None = None
    event_id: str = ""
    line: int = 0
    source: str = "usagestats"


@dataclass(frozen=True, slots=True)
class CertEvent:
    """CERT_AUTHORITY_INSTALLED / _REMOVED / CERT_VALIDATION_FAILURE."""

    device: str | None
    ts: float
    op: str  # installed | removed | validation_failure
    subject: str
    success: bool | None
    event_id: str = ""
    line: int = 0
    source: str = "amapi"


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """A known AMAPI event type netan does not interpret (adb, media, OS start, ...).

    ``fields`` keeps the payload's scalar fields as sorted (name, str(value)) pairs.
    """

    device: str | None
    ts: float
    event_type: str
    fields: tuple[tuple[str, str], ...] = ()
    event_id: str = ""
    line: int = 0
    source: str = "amapi"


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event type this version does not know: counted, never an error."""

    device: str | None
    ts: float
    event_type: str
    event_id: str = ""
    line: int = 0
    source: str = "amapi"


@dataclass(frozen=True, slots=True)
class InventoryDevice:
    """One device as an MDM inventory describes it.

    ``device_id`` is the source's own id (AMAPI ``name``, Intune ``id``, WS1 ``Udid``);
    ``aliases`` are the other *unique* identifiers of the same device (serial, IMEI,
    MEID, enterprise-specific id, other ids): records sharing one are merged.
    ``names`` are friendly names (Intune ``deviceName``, WS1 ``DeviceFriendlyName``),
    which many devices may share: they resolve a device only when unique and
    never merge records. MACs are normalised
    ``aa:bb:cc:dd:ee:ff``; the inventory MAC is the *factory* Wi-Fi MAC, which is
    on air only when randomisation is off (formats doc section 6.1).
    """

    device_id: str
    source: str
    serial: str = ""
    imeis: tuple[str, ...] = ()
    macs: tuple[str, ...] = ()
    name: str = ""
    model: str = ""
    aliases: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    line: int = 0
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AddressBinding:
    """IP <-> MAC (<-> hostname) valid over [start, end] on the gateway clock.

    ``start``/``end`` may be ``-inf``/``inf`` when the source does not say
    (a dnsmasq lease has only its expiry).
    """

    ip: str
    mac: str
    start: float
    end: float
    hostname: str = ""
    source: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class PcapdroidConnection:
    """One connection as PCAPdroid saw it on the device (device clock).

    From the CSV export or aggregated from a capture with PCAPdroid extensions.
    In VPN (non-root) mode ``src_ip``/``src_port`` are the tun side and mean nothing
    at the gateway: join on destination, port, protocol, time and bytes.
    ``bytes_unit`` says whether byte counts are IP-packet bytes (CSV) or transport
    payload bytes (computed from a capture).
    """

    ts_start: float
    ts_end: float
    proto: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    uid: int
    app: str = ""
    package: str = ""
    bytes_out: int = 0
    bytes_in: int = 0
    pkts_out: int = 0
    pkts_in: int = 0
    info: str = ""
    bytes_unit: str = "ip"
    syn: bool = False
    device: str | None = None
    line: int = 0
    source: str = "pcapdroid"


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that could not be used: where and why."""

    line: int
    reason: str


Event = Union[
    KeyEvent,
    ProcessStart,
    ConnectEvent,
    DnsEvent,
    AppStateEvent,
    DeviceStateEvent,
    CertEvent,
    SecurityEvent,
    UnknownEvent,
    InventoryDevice,
    AddressBinding,
    PcapdroidConnection,
]
