"""Ground truth of a recorded lab session: what really happened, on the capture clock.

Contract: traffic generators (:mod:`netan.testing.apps`) return
:class:`FlowTruth` and :class:`DnsTruth` records; the session script adds
:class:`AppEventTruth` records (process starts, keys generated, app state,
screen and keyguard changes) at the moment it makes them happen. All times are
epoch seconds on the host clock, which is the clock tcpdump stamps packets
with, so truth and capture agree without any conversion. Device clocks (and
their skew) only appear when :mod:`netan.testing.context_writer` renders logs.
:class:`SessionTruth` collects everything and round-trips through JSON.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FlowTruth", "DnsTruth", "DhcpTruth", "AppEventTruth", "DeviceTruth", "SessionTruth", "APP_EVENT_KINDS"]


@dataclass(frozen=True)
class FlowTruth:
    """One transport conversation an app made, as the app saw it.

    ``bytes_out``/``bytes_in`` are transport payload bytes (every byte the
    client's socket sent/received: for TLS the records, handshake included),
    which is what a flow meter must count; ``app_bytes_*`` are the
    application-level bytes (HTTP messages, plaintext frames, DNS messages).
    ``start`` is taken just before connect()/the first send, ``end`` after the
    socket is closed. ``connect_time`` is when TCP connect() returned (Android
    logs a ConnectEvent then); None for UDP.
    """

    device: str
    package: str | None
    kind: str  #: "tls", "http", "dns", "udp", "exfil", "hybrid_http", "keepalive", ...
    proto: str  #: "tcp" or "udp"
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    start: float
    end: float
    bytes_out: int
    bytes_in: int
    app_bytes_out: int
    app_bytes_in: int
    connect_time: float | None = None
    hostname: str | None = None  #: SNI, HTTP Host or DNS query name
    via_dns: bool = False  #: the destination came from a DNS answer (else a hard-coded address)
    #: logged as an AMAPI ConnectEvent? (TCP connects through the system stack are; UDP never)
    connect_logged: bool = False
    details: dict[str, Any] = field(default_factory=dict)  #: tls version/alpn, cipher mode, framing, ...

    @property
    def five_tuple(self) -> tuple[str, str, int, str, int]:
        return (self.proto, self.src_ip, self.src_port, self.dst_ip, self.dst_port)


@dataclass(frozen=True)
class DnsTruth:
    """One name lookup. ``system_resolver`` lookups are what Android logs as DnsEvents."""

    device: str
    package: str | None
    hostname: str
    addresses: tuple[str, ...]
    time: float
    system_resolver: bool = True
    server: str = ""


@dataclass(frozen=True)
class DhcpTruth:
    """A DHCP lease a device obtained (real DISCOVER/OFFER/REQUEST/ACK with the lab's dnsmasq)."""

    device: str
    mac: str
    ip: str
    time: float  #: when the ACK arrived (capture clock)
    lease_time: int
    hostname: str | None = None  #: option 12 the client sent


#: AppEventTruth.kind values and what the context writer renders them as.
APP_EVENT_KINDS = {
    "process_start": "AMAPI APP_PROCESS_START",
    "key_generated": "AMAPI KEY_GENERATED",
    "key_imported": "AMAPI KEY_IMPORT",
    "key_destroyed": "AMAPI KEY_DESTRUCTION",
    "usage": "UsageStats event (detail['eventType'] is the UsageEvents.Event name)",
    "keyguard_secured": "AMAPI KEYGUARD_SECURED",
    "keyguard_dismissed": "AMAPI KEYGUARD_DISMISSED",
}


@dataclass(frozen=True)
class AppEventTruth:
    """Something that happened on a device at ``time`` (capture clock)."""

    device: str
    package: str | None  #: "android" for device-wide events (screen, keyguard)
    kind: str  #: one of APP_EVENT_KINDS
    time: float
    detail: dict[str, Any] = field(default_factory=dict)  #: alias, uid, pid, eventType, ...


@dataclass(frozen=True)
class DeviceTruth:
    """A lab device and the identity the context logs give it."""

    name: str  #: lab host name
    mac: str
    ipv4: str
    ipv6: str | None
    amapi_name: str  #: enterprises/{e}/devices/{d}
    serial: str
    imei: str
    model: str
    skew: float  #: device clock minus capture clock, seconds
    hostname: str | None = None  #: DHCP host name (None: Android often sends none)


@dataclass
class SessionTruth:
    """Everything recorded in one session; ``to_json``/``from_json`` round-trip."""

    devices: dict[str, DeviceTruth] = field(default_factory=dict)
    flows: list[FlowTruth] = field(default_factory=list)
    dns: list[DnsTruth] = field(default_factory=list)
    events: list[AppEventTruth] = field(default_factory=list)
    dhcp: list[DhcpTruth] = field(default_factory=list)
    uids: dict[str, dict[str, int]] = field(default_factory=dict)  #: device -> package -> uid
    start: float = 0.0
    end: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, *items: Any) -> None:
        """Add truth records (or lists of them) of any kind."""
        for item in items:
            if isinstance(item, (list, tuple)):
                self.add(*item)
            elif isinstance(item, FlowTruth):
                self.flows.append(item)
            elif isinstance(item, DnsTruth):
                self.dns.append(item)
            elif isinstance(item, AppEventTruth):
                self.events.append(item)
            elif isinstance(item, DhcpTruth):
                self.dhcp.append(item)
            elif item is None:
                continue
            else:
                raise TypeError(f"not a truth record: {type(item).__name__}")

    def sorted(self) -> SessionTruth:
        self.flows.sort(key=lambda f: (f.start, f.src_port))
        self.dns.sort(key=lambda d: d.time)
        self.events.sort(key=lambda e: e.time)
        self.dhcp.sort(key=lambda d: d.time)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "end": self.end,
            "meta": self.meta,
            "devices": {k: asdict(v) for k, v in self.devices.items()},
            "uids": self.uids,
            "flows": [asdict(f) for f in self.flows],
            "dns": [asdict(d) for d in self.dns],
            "events": [asdict(e) for e in self.events],
            "dhcp": [asdict(x) for x in self.dhcp],
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionTruth:
        return cls(
            devices={k: DeviceTruth(**v) for k, v in d.get("devices", {}).items()},
            flows=[FlowTruth(**f) for f in d.get("flows", [])],
            dns=[DnsTruth(**{**x, "addresses": tuple(x["addresses"])}) for x in d.get("dns", [])],
            events=[AppEventTruth(**e) for e in d.get("events", [])],
            dhcp=[DhcpTruth(**x) for x in d.get("dhcp", [])],
            uids={k: dict(v) for k, v in d.get("uids", {}).items()},
            start=d.get("start", 0.0),
            end=d.get("end", 0.0),
            meta=d.get("meta", {}),
        )

    @classmethod
    def read_json(cls, path: str | Path) -> SessionTruth:
        return cls.from_dict(json.loads(Path(path).read_text()))
