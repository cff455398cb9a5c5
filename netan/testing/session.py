"""A recording session: lab hosts, services, apps and scripted device state, with truth.

Contract: a :class:`Session` wraps an entered :class:`~netan.testing.netns.Lab`.
Callers add devices (with their MDM identity and clock skew) and a server
namespace with services, then, inside ``with session.recording(pcap):``, run
apps (``run`` in the foreground, ``spawn`` in the background) and script the
device state (``start_app``, ``foreground``, ``background``, ``screen_off``,
``screen_on``, ``key_generated``) at the moments it really happens. Every
record lands in ``session.truth`` (capture clock); ``write_context`` renders
the matching MDM logs and ``truth.write_json`` the machine-readable truth.
Scenario scripts (the demo, the evaluation suite) are sequences of these calls.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from netan.testing import apps
from netan.testing.context_writer import write_context
from netan.testing.netns import CaptureStats, Host, Lab, Task
from netan.testing.truth import AppEventTruth, DeviceTruth, DhcpTruth, SessionTruth

__all__ = ["Session", "luhn_imei"]

log = logging.getLogger(__name__)


def luhn_imei(seed: str, tac: str = "35290611") -> str:
    """A 15-digit IMEI with a valid Luhn check digit, derived from ``seed``."""
    body = tac + f"{int(hashlib.sha256(seed.encode()).hexdigest(), 16) % 10**6:06d}"
    total = 0
    for i, ch in enumerate(body):
        d = int(ch)
        if i % 2 == 1:  # every second digit from the left, doubled (Luhn over 14 digits)
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


class Session:
    """Records one scenario; see the module docstring."""

    def __init__(self, lab: Lab, *, enterprise: str = "LC0netanlab") -> None:
        self.lab = lab
        self.enterprise = enterprise
        self.truth = SessionTruth()
        self.pki = apps.LabPKI()
        self.zone: dict[str, list[str]] = {}
        self.dns_ip: str | None = None
        self.server_records: list[dict[str, Any]] = []
        self.capture_stats: CaptureStats | None = None
        self.dhcp_leases_text: str | None = None  #: dnsmasq's real lease file, when DHCP was used
        self._servers: list[Task] = []
        self._tasks: list[Task] = []
        self._t0: float | None = None

    # ---- hosts ------------------------------------------------------------------
    def add_device(self, name: str, *, skew: float = 0.0, mac: str | None = None, ipv4: str | None = None,
                   model: str = "Pixel 7", serial: str | None = None, imei: str | None = None,
                   hostname: str | None = None, device_id: str | None = None, dhcp: bool = False) -> Host:
        """A device namespace and its MDM identity; ``skew`` = device clock - capture clock (s).

        ``dhcp=True``: the device has no address until :meth:`join_network`
        (a real DHCP exchange with the lab's dnsmasq, sending ``hostname``).
        """
        host = self.lab.add_device(name, mac=mac, ipv4=ipv4, dhcp=dhcp, dhcp_hostname=hostname)
        h = hashlib.sha256(name.encode()).hexdigest()
        self.truth.devices[name] = DeviceTruth(
            name=name, mac=host.mac, ipv4=host.ipv4, ipv6=host.ipv6,
            amapi_name=f"enterprises/{self.enterprise}/devices/{device_id or h[:16]}",
            serial=serial or h[16:26].upper(), imei=imei or luhn_imei(name), model=model, skew=float(skew),
            hostname=hostname)
        return host

    def add_server(self, name: str, addresses: Sequence[str], services: Sequence[apps.Service], *,
                   zone: dict[str, Sequence[str]] | None = None, self_signed: Sequence[str] = (),
                   rsa_hosts: Sequence[str] = ()) -> Host:
        """A server namespace holding ``addresses`` and running ``services`` (started now).

        ``zone`` maps names to addresses for the DNS service; ``self_signed``
        hosts get a self-signed certificate (clients pin it), the others one
        from the lab CA; ``rsa_hosts`` get RSA-2048 keys instead of P-256.
        """
        host = self.lab.add_server(name, addresses)
        for hn in self_signed:
            self.pki.leaf(hn, self_signed=True, key_type="rsa" if hn in rsa_hosts else "ec")
        for svc in services:
            for hn in svc.options.get("hostnames", []):
                self.pki.leaf(hn, key_type="rsa" if hn in rsa_hosts else "ec")
            if svc.kind == "dns" and self.dns_ip is None:
                self.dns_ip = svc.ip
        self.zone.update({k: list(v) for k, v in (zone or {}).items()})
        task = self.lab.spawn(host, apps.serve, list(services), pki=self.pki, zone=dict(self.zone), wait_ready=True)
        self._servers.append(task)
        return host

    def join_network(self, device: str, *, lease_time: int = 3600) -> DhcpTruth:
        """The device joins the Wi-Fi: DHCP DISCOVER/OFFER/REQUEST/ACK with the gateway's dnsmasq."""
        self.lab.dhcp_server(lease_time=lease_time)
        t = self.lab.dhcp_client(device)
        d = self.truth.devices[device]
        rec = DhcpTruth(device, d.mac, d.ipv4, t, lease_time, d.hostname)
        self.truth.add(rec)
        return rec

    def ctx(self, device: str, package: str, *, system_resolver: bool = True, ipv6: bool = False) -> apps.AppContext:
        """Who talks: ``system_resolver=False`` lookups are not logged as DnsEvents (direct DNS)."""
        return apps.AppContext(device, package, self.dns_ip, system_resolver, ipv6)

    # ---- time -------------------------------------------------------------------
    @property
    def t0(self) -> float:
        """The scenario's time origin (set when recording starts)."""
        if self._t0 is None:
            raise RuntimeError("not recording")
        return self._t0

    def at(self, offset: float) -> float:
        """Epoch time of ``offset`` seconds into the scenario."""
        return self.t0 + offset

    def sleep_until(self, offset: float) -> None:
        delay = self.at(offset) - time.time()
        if delay > 0:
            time.sleep(delay)

    # ---- scripted device state ----------------------------------------------------
    def event(self, device: str, package: str | None, kind: str, **detail: Any) -> AppEventTruth:
        ev = AppEventTruth(device, package, kind, time.time(), detail)
        self.truth.add(ev)
        return ev

    def usage(self, device: str, package: str, event_type: str) -> AppEventTruth:
        return self.event(device, package, "usage", eventType=event_type)

    def start_app(self, device: str, package: str, **detail: Any) -> AppEventTruth:
        """The app's process starts (AMAPI APP_PROCESS_START: the uid <-> package bridge)."""
        return self.event(device, package, "process_start", **detail)

    def key_generated(self, device: str, package: str, alias: str, **detail: Any) -> AppEventTruth:
        return self.event(device, package, "key_generated", alias=alias, **detail)

    def foreground(self, device: str, package: str) -> None:
        """The user opens the app: its activity resumes and the user interacts."""
        self.usage(device, package, "ACTIVITY_RESUMED")
        self.usage(device, package, "USER_INTERACTION")

    def interact(self, device: str, package: str) -> None:
        self.usage(device, package, "USER_INTERACTION")

    def background(self, device: str, package: str) -> None:
        """The user leaves the app (home button): paused, then stopped."""
        self.usage(device, package, "ACTIVITY_PAUSED")
        self.usage(device, package, "ACTIVITY_STOPPED")

    def screen_off(self, device: str) -> None:
        self.usage(device, "android", "SCREEN_NON_INTERACTIVE")
        self.usage(device, "android", "KEYGUARD_SHOWN")
        self.event(device, None, "keyguard_secured")

    def screen_on(self, device: str) -> None:
        self.usage(device, "android", "SCREEN_INTERACTIVE")
        self.usage(device, "android", "KEYGUARD_HIDDEN")
        self.event(device, None, "keyguard_dismissed")

    # ---- apps -----------------------------------------------------------------------
    def run(self, device: str, fn: Callable[..., list], *args: Any, timeout: float = 60.0, **kwargs: Any) -> list:
        """Run an app function in the device namespace now (blocking); add its truth."""
        records = self.lab.call(device, fn, *args, timeout=timeout, **kwargs)
        self.truth.add(records)
        return records

    def spawn(self, device: str, fn: Callable[..., list], *args: Any, start_at: float | None = None,
              **kwargs: Any) -> Task:
        """Run an app function in the background (optionally at scenario offset ``start_at``)."""
        when = self.at(start_at) if start_at is not None else None
        task = self.lab.spawn(device, apps.as_task, fn, *args, start_at=when, wait_ready=True, **kwargs)
        self._tasks.append(task)
        return task

    def join(self, timeout: float = 120.0) -> None:
        """Wait for every background app and add its truth."""
        for task in self._tasks:
            self.truth.add(task.result(timeout))
        self._tasks.clear()

    # ---- recording --------------------------------------------------------------------
    @contextlib.contextmanager
    def recording(self, pcap: str | Path, *, lead_in: float = 0.2) -> Iterator[Session]:
        """Capture on the gateway while the body runs; then join apps, stop servers and capture."""
        cap = self.lab.capture(pcap)
        cap.start()
        self.truth.start = time.time()
        self._t0 = self.truth.start + lead_in
        try:
            yield self
            self.join()
        finally:
            for srv in self._servers:
                try:
                    self.server_records.extend(srv.stop(timeout=15))
                except Exception:  # noqa: BLE001 - keep stopping the rest; the capture still matters
                    log.exception("server task failed")
            self._servers.clear()
            self.capture_stats = cap.stop()
            self.truth.end = time.time()
            self.truth.sorted()
            real = self.lab.dhcp_lease_file
            # dnsmasq's own lease file lives in the lab's temporary directory: keep its text.
            self.dhcp_leases_text = real.read_text() if real is not None and real.exists() else None

    def write_context(self, outdir: str | Path, **kwargs: Any) -> list[Path]:
        """The context files; the lease file is dnsmasq's own when the session used DHCP."""
        paths = write_context(self.truth, outdir, enterprise=self.enterprise, **kwargs)
        if self.dhcp_leases_text and self.dhcp_leases_text.strip():
            (Path(outdir) / "dnsmasq.leases").write_text(self.dhcp_leases_text)
        return paths
