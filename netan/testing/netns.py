"""A small network-namespace lab: devices and servers joined through a gateway.

Contract: ``with Lab() as lab:`` creates uniquely named namespaces (so parallel
test runs never collide), lets callers add "device" namespaces (own MAC and
IPv4, optionally IPv6) on a LAN bridge and "server" namespaces (any number of
addresses) on a WAN bridge, both inside one "gateway" namespace that routes
between them; runs commands (``ip netns exec``) and Python callables (a
forked child that ``setns``-es into the namespace) there; records real
captures with tcpdump on the gateway's LAN bridge; and removes everything it
created on exit, on exceptions too. A lab is only available to root with
``ip netns``; :func:`unavailable_reason` says why not, and
:func:`lab_or_skip` turns that into ``pytest.skip``.

Topology (addresses are only ever configured inside namespaces we create)::

    device ns (wlan0, 10.77.1.x) ─veth─┐               ┌─veth─ server ns (eth0, 10.77.2.x ...)
    device ns (wlan0, 10.77.1.y) ─veth─┤ br0  gateway  br1 ├─veth─ ...
                                       └ 10.77.1.1    10.77.2.1 ┘
                                        (tcpdump here: the device-facing side)

Capturing on ``br0`` sees every device frame with the device's own MAC as the
Ethernet source, as a home router or access-point gateway would.
"""
from __future__ import annotations

import atexit
import ctypes
import hashlib
import ipaddress
import logging
import os
import pickle
import re
import secrets
import select
import shutil
import signal
import subprocess
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "Lab",
    "Host",
    "Capture",
    "CaptureStats",
    "Task",
    "Control",
    "LabError",
    "LabUnavailable",
    "LabTaskError",
    "unavailable_reason",
    "lab_or_skip",
    "sweep_stale",
    "list_lab_namespaces",
]

log = logging.getLogger(__name__)

NETNS_DIR = Path("/run/netns")
#: setns(2) flag for a network namespace (linux/sched.h).
CLONE_NEWNET = 0x40000000
#: Name layout: <prefix>-<owner pid>-<random token>-<role>; the pid lets
#: :func:`sweep_stale` remove namespaces of dead runs without touching live ones.
_NAME_RE = re.compile(r"^(?P<prefix>[a-z0-9]+)-(?P<pid>\d+)-(?P<token>[0-9a-f]{6})-(?P<role>[a-z0-9]+)$")

#: Offloads that make a veth capture unlike a real wire: GSO/TSO hand tcpdump
#: 64 KB "super-segments", GRO merges received ones, tx-checksum leaves
#: checksums unfilled. Turned off so the pcap holds MTU-sized, checksummed frames.
_OFFLOADS_OFF = ("tso", "off", "gso", "off", "gro", "off", "tx", "off")


class LabError(RuntimeError):
    """A lab operation failed (a command exited non-zero, a child misbehaved)."""


class LabUnavailable(LabError):
    """This machine cannot host a lab (not root, no ``ip netns``); tests skip."""


class LabTaskError(LabError):
    """A callable run inside a namespace raised; carries the child's traceback."""


def unavailable_reason() -> str | None:
    """Why a lab cannot run here, or None when it can.

    Beyond the cheap checks it really creates and deletes one namespace (once
    per process), so a root user without CAP_SYS_ADMIN, a read-only /run or a
    seccomp filter is reported here instead of failing a test half-way.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "network-namespace lab needs root (ip netns add)"
    if shutil.which("ip") is None:
        return "iproute2 'ip' command not found"
    if not Path("/proc/self/ns/net").exists():
        return "kernel without network namespaces (/proc/self/ns/net missing)"
    try:
        ctypes.CDLL(None, use_errno=True).setns  # noqa: B018 - probe the symbol
    except (OSError, AttributeError):
        return "libc without setns(2)"
    return _probe_netns()


_PROBE: list[str | None] = []


def _probe_netns() -> str | None:
    if not _PROBE:
        name = f"netanprobe-{os.getpid()}-{secrets.token_hex(3)}-p"
        proc = _run(["ip", "netns", "add", name], check=False)
        if proc.returncode != 0:
            _PROBE.append(f"cannot create a network namespace: {proc.stderr.strip() or proc.returncode}")
        else:
            _run(["ip", "netns", "del", name], check=False)
            _PROBE.append(None)
    return _PROBE[0]


def lab_or_skip(**kwargs: Any) -> Lab:
    """A (not yet entered) :class:`Lab`, or ``pytest.skip`` with the reason."""
    reason = unavailable_reason()
    if reason is not None:
        import pytest  # only tests call this; pytest is not a runtime dependency

        pytest.skip(reason)
    return Lab(**kwargs)


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def list_lab_namespaces(prefix: str = "netan") -> list[str]:
    """Names of namespaces that follow the lab naming scheme for ``prefix``."""
    try:
        names = [p.name for p in NETNS_DIR.iterdir()]
    except OSError:
        return []
    return sorted(n for n in names if (m := _NAME_RE.match(n)) and m["prefix"] == prefix)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_netns_pids(ns: str) -> None:
    """SIGKILL the processes still inside one of *our* namespaces (by pid)."""
    proc = _run(["ip", "netns", "pids", ns], check=False)
    for tok in proc.stdout.split():
        if tok.isdigit() and int(tok) != os.getpid():
            try:
                os.kill(int(tok), signal.SIGKILL)
            except ProcessLookupError:
                pass


def sweep_stale(prefix: str = "netan") -> list[str]:
    """Delete lab namespaces whose owning process is dead (crashed earlier runs)."""
    removed = []
    for name in list_lab_namespaces(prefix):
        m = _NAME_RE.match(name)
        assert m is not None
        if _pid_alive(int(m["pid"])):
            continue
        _kill_netns_pids(name)
        if _run(["ip", "netns", "del", name], check=False).returncode == 0:
            removed.append(name)
        shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
    if removed:
        log.info("removed %d stale lab namespaces: %s", len(removed), ", ".join(removed))
    return removed


def _setns(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "setns"):  # Python 3.12+
            os.setns(fd, CLONE_NEWNET)
        else:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def _mac_for(name: str) -> str:
    """A stable, locally administered unicast MAC derived from a host name."""
    h = hashlib.sha256(name.encode()).digest()
    return "02:77:" + ":".join(f"{b:02x}" for b in h[:4])


@dataclass(frozen=True)
class Host:
    """One namespace of the lab, as callers see it."""

    name: str  #: lab-level name ("pixel-7", "server", "gateway")
    role: str  #: "device", "server" or "gateway"
    netns: str  #: the unique kernel namespace name
    ifname: str  #: the interface facing the gateway ("wlan0", "eth0"; "br0" for the gateway)
    mac: str
    ipv4: str  #: primary IPv4 address
    ipv6: str | None = None
    addresses: tuple[str, ...] = ()  #: every address configured on ifname (primary first)


@dataclass(frozen=True)
class CaptureStats:
    """tcpdump's own end-of-capture counters, and the file it wrote."""

    path: Path
    captured: int
    received: int
    dropped: int
    file_bytes: int


class Control:
    """Handed to a background callable (``Lab.spawn``): signal readiness, poll for stop."""

    def __init__(self, ready_fd: int, stop_fd: int) -> None:
        self._ready_fd = ready_fd
        self.stop_fd = stop_fd

    def ready(self, info: Any = None) -> None:
        """Tell the parent the task is ready (servers: after every socket is bound)."""
        if self._ready_fd < 0:
            return
        data = pickle.dumps(info)
        os.write(self._ready_fd, len(data).to_bytes(4, "big") + data)
        os.close(self._ready_fd)
        self._ready_fd = -1

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as a stop was requested."""
        r, _, _ = select.select([self.stop_fd], [], [], max(0.0, timeout))
        return bool(r)

    def stopped(self) -> bool:
        return self.wait(0.0)


def _read_all(fd: int, deadline: float | None) -> bytes | None:
    """Read a pipe to EOF; None when the deadline passes first."""
    chunks = []
    while True:
        timeout = None if deadline is None else deadline - time.monotonic()
        if timeout is not None and timeout <= 0:
            return None
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return None
        data = os.read(fd, 1 << 16)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _child_main(ns_path: Path, result_w: int, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    """Body of a forked child: enter the namespace, run, report, and _exit."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _setns(ns_path)
        value = fn(*args, **kwargs)
        payload = pickle.dumps(("ok", value))
    except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
        code = 1
        try:
            payload = pickle.dumps(("err", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        except Exception:  # noqa: BLE001
            payload = pickle.dumps(("err", repr(exc), ""))
    try:
        view = memoryview(payload)
        while view:
            n = os.write(result_w, view)
            view = view[n:]
    finally:
        os._exit(code)


class Task:
    """A callable running in the background inside a namespace (a forked child)."""

    def __init__(self, name: str, pid: int, result_r: int, ready_r: int, stop_w: int) -> None:
        self.name = name
        self.pid = pid
        self._result_r = result_r
        self._ready_r = ready_r
        self._stop_w = stop_w
        self._done = False
        self._value: Any = None

    def wait_ready(self, timeout: float = 10.0) -> Any:
        """Block until the child called ``ctl.ready(info)``; return ``info``."""
        deadline = time.monotonic() + timeout
        header = b""
        while len(header) < 4:
            remaining = deadline - time.monotonic()
            r, _, _ = select.select([self._ready_r], [], [], max(0.0, remaining))
            if not r:
                self.kill()
                raise LabError(f"task {self.name} not ready after {timeout}s")
            chunk = os.read(self._ready_r, 4 - len(header))
            if not chunk:
                # The child exited before it was ready: surface its error.
                self.result(timeout=max(0.1, deadline - time.monotonic()))
                raise LabError(f"task {self.name} exited before it was ready")
            header += chunk
        size = int.from_bytes(header, "big")
        data = b""
        while len(data) < size:
            chunk = os.read(self._ready_r, size - len(data))
            if not chunk:
                raise LabError(f"task {self.name}: truncated ready message")
            data += chunk
        return pickle.loads(data)

    def stop(self, timeout: float = 10.0) -> Any:
        """Ask the task to stop (``ctl.wait``/``ctl.stopped`` see it) and return its result."""
        if not self._done and self._stop_w >= 0:
            try:
                os.write(self._stop_w, b"x")
            except OSError:
                pass
        return self.result(timeout)

    def result(self, timeout: float | None = 60.0) -> Any:
        """Wait for the task to finish; its return value, or LabTaskError."""
        if self._done:
            return self._value
        deadline = None if timeout is None else time.monotonic() + timeout
        data = _read_all(self._result_r, deadline)
        if data is None:
            self.kill()
            raise LabError(f"task {self.name} did not finish within {timeout}s (killed)")
        self._reap()
        if not data:
            raise LabTaskError(f"task {self.name} died without a result")
        status, *rest = pickle.loads(data)
        if status == "ok":
            self._value = rest[0]
            return self._value
        raise LabTaskError(f"task {self.name} failed: {rest[0]}\n--- child traceback ---\n{rest[1]}")

    def kill(self) -> None:
        """SIGKILL the child (our own pid) and release its pipes."""
        if self._done:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._reap()

    def _reap(self) -> None:
        if self._done:
            return
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        for fd in (self._result_r, self._ready_r, self._stop_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._result_r = self._ready_r = self._stop_w = -1
        self._done = True

    @property
    def done(self) -> bool:
        return self._done


class Capture:
    """A tcpdump process writing a pcap inside a namespace.

    ``start`` returns only once tcpdump reports "listening on" (the socket is
    bound and the filter set, so every later frame is captured); ``stop`` waits
    until the file stops growing, sends SIGINT (tcpdump flushes and prints its
    counters), and fails loudly if the kernel dropped anything.
    """

    def __init__(self, host: Host, path: Path, iface: str, *, snaplen: int = 65535, buffer_kib: int = 32768,
                 bpf: str | None = None) -> None:
        self.host = host
        self.path = Path(path)
        self.iface = iface
        self.snaplen = snaplen
        self.buffer_kib = buffer_kib
        self.bpf = bpf
        self.proc: subprocess.Popen[bytes] | None = None
        self.stats: CaptureStats | None = None
        self._stderr = b""

    def start(self, timeout: float = 10.0) -> Capture:
        if shutil.which("tcpdump") is None:
            raise LabUnavailable("tcpdump not installed")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        argv = ["ip", "netns", "exec", self.host.netns, "tcpdump", "-i", self.iface, "-w", str(self.path),
                # -U: write each packet as it arrives; --immediate-mode: no TPACKET_V3
                # block batching (a block can sit in the kernel for the 1 s timeout and be
                # lost when we stop). libpcap then uses a ring of snaplen-sized slots, so
                # the ring (-B, KiB) must be large against the snaplen or bursts drop.
                "-U", "--immediate-mode", "-n", "-s", str(self.snaplen), "-B", str(self.buffer_kib),
                "-Z", "root"]
        if self.bpf:
            argv.append(self.bpf)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        deadline = time.monotonic() + timeout
        while b"listening on" not in self._stderr:
            remaining = deadline - time.monotonic()
            r, _, _ = select.select([fd], [], [], max(0.0, remaining))
            if not r:
                self._abort()
                raise LabError(f"tcpdump did not start capturing on {self.iface} within {timeout}s")
            chunk = os.read(fd, 4096)
            if not chunk:
                self.proc.wait()
                err = self._stderr.decode(errors="replace").strip()
                raise LabError(f"tcpdump exited ({self.proc.returncode}): {err}")
            self._stderr += chunk
        log.debug("capturing on %s:%s into %s", self.host.netns, self.iface, self.path)
        return self

    def _abort(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, settle: float = 0.25, timeout: float = 10.0, *, require_no_drops: bool = True) -> CaptureStats:
        if self.stats is not None:
            return self.stats
        if self.proc is None:
            raise LabError("capture was never started")
        # Wait for the last frames (FIN/ACKs, late retransmissions) to land.
        deadline = time.monotonic() + timeout
        last, stable_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size != last:
                last, stable_since = size, time.monotonic()
            elif time.monotonic() - stable_since >= settle:
                break
            time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._abort()
            raise LabError("tcpdump did not exit after SIGINT") from None
        text = (self._stderr + (err or b"")).decode(errors="replace")

        def count(what: str) -> int:
            m = re.search(rf"(\d+) packets? {what}", text)
            return int(m.group(1)) if m else -1

        self.stats = CaptureStats(self.path, count("captured"), count("received by filter"),
                                  count("dropped by kernel"), self.path.stat().st_size if self.path.exists() else 0)
        if self.stats.captured < 0:
            raise LabError(f"tcpdump did not report its counters: {text.strip()}")
        if self.stats.received - self.stats.dropped > self.stats.captured:
            log.warning("tcpdump received %d packets but wrote %d", self.stats.received - self.stats.dropped,
                        self.stats.captured)
        if require_no_drops and self.stats.dropped > 0:
            raise LabError(f"tcpdump dropped {self.stats.dropped} packets: the capture is incomplete"
                           f" ({text.strip()!r})")
        log.info("capture %s: %d packets, %d bytes", self.path, self.stats.captured, self.stats.file_bytes)
        return self.stats

    def __enter__(self) -> Capture:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.stop()
        else:
            self._abort()


_OPEN_LABS: weakref.WeakSet[Lab] = weakref.WeakSet()


@atexit.register
def _close_open_labs() -> None:
    for lab in list(_OPEN_LABS):
        lab.close()


@dataclass
class _Net:
    lan4: ipaddress.IPv4Network
    wan4: ipaddress.IPv4Network
    lan6: ipaddress.IPv6Network
    wan6: ipaddress.IPv6Network


class Lab:
    """Namespaces, links, captures and child processes, all removed on exit.

    ``lan``/``wan`` are the device and server subnets (they exist only inside
    the lab's namespaces, so parallel labs may reuse them). ``ipv6=False``
    disables IPv6 in every namespace so the capture carries no router
    solicitations or MLD reports that the recorded truth does not mention;
    ``multicast=False`` likewise silences the IGMP reports interfaces send when
    they come up. The capture then holds only ARP besides the apps' traffic.
    """

    def __init__(self, *, prefix: str = "netan", lan: str = "10.77.1.0/24", wan: str = "10.77.2.0/24",
                 ipv6: bool = False, lan6: str = "fd00:77:1::/64", wan6: str = "fd00:77:2::/64",
                 disable_offloads: bool = True, multicast: bool = False) -> None:
        if not re.fullmatch(r"[a-z0-9]{1,12}", prefix):
            raise ValueError("prefix must be 1-12 lowercase letters/digits")
        self.prefix = prefix
        self.token = secrets.token_hex(3)
        self.ipv6 = ipv6
        self.multicast = multicast
        self.disable_offloads = disable_offloads and shutil.which("ethtool") is not None
        if disable_offloads and not self.disable_offloads:
            log.warning("ethtool not found: veth offloads stay on (captures may hold GSO super-frames)")
        self.net = _Net(ipaddress.ip_network(lan), ipaddress.ip_network(wan),  # type: ignore[arg-type]
                        ipaddress.ip_network(lan6), ipaddress.ip_network(wan6))  # type: ignore[arg-type]
        self.hosts: dict[str, Host] = {}
        self.gateway: Host | None = None
        self._namespaces: list[str] = []
        self._tasks: list[Task] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._captures: list[Capture] = []
        self._port_index = 0
        self._closed = False
        self._tmpdir: Path | None = None
        self._dhcp: subprocess.Popen[Any] | None = None
        self._dhcp_hosts: Path | None = None
        self.dhcp_lease_file: Path | None = None
        self._dhcp_reserved: dict[str, tuple[str, str | None]] = {}  # mac -> (ip, hostname)

    # ---- lifecycle -------------------------------------------------------------
    def __enter__(self) -> Lab:
        reason = unavailable_reason()
        if reason is not None:
            raise LabUnavailable(reason)
        sweep_stale(self.prefix)
        _OPEN_LABS.add(self)
        try:
            self._make_gateway()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def namespaces(self) -> list[str]:
        """The kernel namespaces this lab created (and will delete)."""
        return list(self._namespaces)

    def ns_name(self, role: str) -> str:
        return f"{self.prefix}-{os.getpid()}-{self.token}-{role}"

    def _new_ns(self, role: str) -> str:
        name = self.ns_name(role)
        _run(["ip", "netns", "add", name])
        self._namespaces.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])
        if not self.ipv6:
            self.sysctl(name, {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"})
        else:
            # No duplicate address detection (link-local addresses would stay tentative
            # for ~1 s and stall the first neighbour discovery) and no router solicitations.
            self.sysctl(name, {f"net.ipv6.conf.{c}.{k}": "0" for c in ("all", "default")
                               for k in ("accept_dad", "dad_transmits", "router_solicitations")})
        return name

    def sysctl(self, ns: str, values: dict[str, str]) -> None:
        """Set sysctls inside a namespace (net.* keys are per namespace)."""
        _run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", *(f"{k}={v}" for k, v in values.items())])

    def _offloads_off(self, ns: str, ifname: str) -> None:
        if self.disable_offloads:
            _run(["ip", "netns", "exec", ns, "ethtool", "-K", ifname, *_OFFLOADS_OFF], check=False)

    def _make_gateway(self) -> None:
        ns = self._new_ns("gw")
        gw4_lan = str(self.net.lan4.network_address + 1)
        gw4_wan = str(self.net.wan4.network_address + 1)
        for br, addr4, net4, net6 in (("br0", gw4_lan, self.net.lan4, self.net.lan6),
                                      ("br1", gw4_wan, self.net.wan4, self.net.wan6)):
            mac = "02:77:00:00:00:01" if br == "br0" else "02:77:00:00:00:02"
            # No STP and no forwarding delay: ports forward as soon as they are up. Without
            # multicast snooping the bridge does not join 224.0.0.106 (RFC 4286 all-snoopers)
            # and so sends no IGMP reports into the capture.
            _run(["ip", "-n", ns, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0",
                  *([] if self.multicast else ["mcast_snooping", "0"])])
            _run(["ip", "-n", ns, "link", "set", br, "address", mac])
            _run(["ip", "-n", ns, "addr", "add", f"{addr4}/{net4.prefixlen}", "dev", br])
            if self.ipv6:
                gw6 = f"{net6.network_address + 1}/{net6.prefixlen}"
                _run(["ip", "-n", ns, "addr", "add", gw6, "dev", br, "nodad"])
            if not self.multicast:
                _run(["ip", "-n", ns, "link", "set", br, "multicast", "off"])
            _run(["ip", "-n", ns, "link", "set", br, "up"])
        values = {"net.ipv4.ip_forward": "1"}
        if self.ipv6:
            values["net.ipv6.conf.all.forwarding"] = "1"
        self.sysctl(ns, values)
        self.gateway = Host("gateway", "gateway", ns, "br0", "02:77:00:00:00:01", gw4_lan,
                            str(self.net.lan6.network_address + 1) if self.ipv6 else None, (gw4_lan, gw4_wan))
        self.hosts["gateway"] = self.gateway

    def close(self) -> None:
        """Stop captures and children, delete every namespace. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        _OPEN_LABS.discard(self)
        for cap in self._captures:
            if cap.stats is None:
                cap._abort()
        for task in self._tasks:
            task.kill()
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        for ns in reversed(self._namespaces):
            _kill_netns_pids(ns)
            _run(["ip", "netns", "del", ns], check=False)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        self._namespaces.clear()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    # ---- hosts -----------------------------------------------------------------
    def _check_name(self, name: str) -> None:
        if name in self.hosts:
            raise ValueError(f"host {name!r} already exists")
        if self.gateway is None or self._closed:
            raise LabError("use the lab inside 'with Lab() as lab:'")

    def _attach(self, role: str, name: str, bridge: str, ifname: str, mac: str,
                addrs4: Sequence[str], net4: ipaddress.IPv4Network, addr6: str | None,
                net6: ipaddress.IPv6Network, gw4: str, gw6: str, *, dhcp: bool = False) -> Host:
        assert self.gateway is not None
        self._port_index += 1
        short = f"{role[0]}{self._port_index}"
        ns = self._new_ns(short)
        gw_if = f"v{short}"
        # Create the pair inside the gateway namespace and push the peer into the
        # host namespace: nothing ever appears in the root namespace.
        _run(["ip", "-n", self.gateway.netns, "link", "add", gw_if, "type", "veth", "peer", "name", ifname,
              "netns", ns])
        _run(["ip", "-n", ns, "link", "set", ifname, "address", mac])
        _run(["ip", "-n", self.gateway.netns, "link", "set", gw_if, "master", bridge])
        for a in ([] if dhcp else addrs4):
            _run(["ip", "-n", ns, "addr", "add", f"{a}/{net4.prefixlen}", "dev", ifname])
        if addr6:
            _run(["ip", "-n", ns, "addr", "add", f"{addr6}/{net6.prefixlen}", "dev", ifname, "nodad"])
        self._offloads_off(ns, ifname)
        self._offloads_off(self.gateway.netns, gw_if)
        if not self.multicast:
            _run(["ip", "-n", ns, "link", "set", ifname, "multicast", "off"])
            _run(["ip", "-n", self.gateway.netns, "link", "set", gw_if, "multicast", "off"])
        _run(["ip", "-n", self.gateway.netns, "link", "set", gw_if, "up"])
        _run(["ip", "-n", ns, "link", "set", ifname, "up"])
        if not dhcp:
            _run(["ip", "-n", ns, "route", "add", "default", "via", gw4])
        if addr6:
            _run(["ip", "-n", ns, "-6", "route", "add", "default", "via", gw6])
        host = Host(name, role, ns, ifname, mac, addrs4[0], addr6, tuple(addrs4) + ((addr6,) if addr6 else ()))
        self.hosts[name] = host
        return host

    def add_device(self, name: str, *, mac: str | None = None, ipv4: str | None = None,
                   ipv6: str | None = None, ifname: str = "wlan0", dhcp: bool = False,
                   dhcp_hostname: str | None = None) -> Host:
        """A device namespace on the LAN bridge (its own MAC and address).

        ``dhcp=True``: the interface comes up without an address; ``ipv4`` is
        reserved for its MAC at the lab's dnsmasq and :meth:`dhcp_client`
        obtains it with a real DHCP exchange (which the capture then holds).
        """
        self._check_name(name)
        n = sum(1 for h in self.hosts.values() if h.role == "device")
        ipv4 = ipv4 or str(self.net.lan4.network_address + 10 + n)
        if ipaddress.ip_address(ipv4) not in self.net.lan4:
            raise ValueError(f"{ipv4} is outside the LAN {self.net.lan4}")
        if self.ipv6 and ipv6 is None:
            ipv6 = str(self.net.lan6.network_address + 0x10 + n)
        mac = (mac or _mac_for(name)).lower()
        host = self._attach("device", name, "br0", ifname, mac, [ipv4], self.net.lan4,
                            ipv6 if self.ipv6 else None, self.net.lan6, str(self.net.lan4.network_address + 1),
                            str(self.net.lan6.network_address + 1), dhcp=dhcp)
        if dhcp:
            self._dhcp_reserved[mac] = (ipv4, dhcp_hostname)
            if self._dhcp is not None:
                self._write_dhcp_hosts()
                self._dhcp.send_signal(signal.SIGHUP)  # dnsmasq re-reads --dhcp-hostsfile on SIGHUP
        return host

    def add_server(self, name: str = "server", addresses: Sequence[str] = (), *, mac: str | None = None,
                   ipv6: str | None = None, ifname: str = "eth0") -> Host:
        """A server namespace on the WAN bridge holding every address in ``addresses``."""
        self._check_name(name)
        n = sum(1 for h in self.hosts.values() if h.role == "server")
        addrs = list(addresses) or [str(self.net.wan4.network_address + 10 + n)]
        for a in addrs:
            if ipaddress.ip_address(a) not in self.net.wan4:
                raise ValueError(f"{a} is outside the WAN {self.net.wan4}")
        if self.ipv6 and ipv6 is None:
            ipv6 = str(self.net.wan6.network_address + 0x10 + n)
        return self._attach("server", name, "br1", ifname, (mac or _mac_for(name)).lower(), addrs, self.net.wan4,
                            ipv6 if self.ipv6 else None, self.net.wan6, str(self.net.wan4.network_address + 1),
                            str(self.net.wan6.network_address + 1))

    def host(self, name: str | Host) -> Host:
        return name if isinstance(name, Host) else self.hosts[name]

    def set_resolver(self, host: str | Host, nameserver: str) -> None:
        """/etc/netns/<ns>/resolv.conf, which ``ip netns exec`` bind-mounts for commands run there."""
        h = self.host(host)
        d = Path("/etc/netns") / h.netns
        d.mkdir(parents=True, exist_ok=True)
        (d / "resolv.conf").write_text(f"nameserver {nameserver}\n")

    # ---- DHCP (real dnsmasq and udhcpc) ------------------------------------------
    def _tmp(self) -> Path:
        if self._tmpdir is None:
            import tempfile

            self._tmpdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-lab-"))
        return self._tmpdir

    def _write_dhcp_hosts(self) -> None:
        assert self._dhcp_hosts is not None
        lines = [",".join([mac, ip, *([hn] if hn else [])]) for mac, (ip, hn) in self._dhcp_reserved.items()]
        self._dhcp_hosts.write_text("\n".join(lines) + "\n")

    def dhcp_server(self, lease_file: str | Path | None = None, *, lease_time: int = 3600,
                    timeout: float = 10.0) -> Path:
        """Run dnsmasq (DHCP only, static reservations) on the gateway's LAN bridge; its lease file path.

        The lease file is written by dnsmasq itself, so it is a real one.
        """
        if self._dhcp is not None:
            assert self.dhcp_lease_file is not None
            return self.dhcp_lease_file
        if shutil.which("dnsmasq") is None:
            raise LabUnavailable("dnsmasq not installed (Debian: dnsmasq-base)")
        assert self.gateway is not None
        tmp = self._tmp()
        self.dhcp_lease_file = Path(lease_file) if lease_file else tmp / "dnsmasq.leases"
        self.dhcp_lease_file.touch()
        self._dhcp_hosts = tmp / "dhcp-hosts"
        self._write_dhcp_hosts()
        log_path = tmp / "dnsmasq.log"
        net = self.net.lan4
        argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--interface=br0",
                "--bind-interfaces", f"--dhcp-range={net.network_address},static,{net.netmask},{lease_time}",
                f"--dhcp-hostsfile={self._dhcp_hosts}", f"--dhcp-leasefile={self.dhcp_lease_file}",
                "--dhcp-authoritative",
                # no ICMP echo probe of the address before offering it: it would sit in the capture
                "--no-ping", f"--pid-file={tmp / 'dnsmasq.pid'}", "--user=root", "--group=root",
                "--log-facility=-", "--log-dhcp"]
        with open(log_path, "wb") as log_fh:
            self._dhcp = self.popen(self.gateway, argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=log_fh)
        deadline = time.monotonic() + timeout
        while "DHCP, " not in log_path.read_text(errors="replace"):
            if self._dhcp.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"dnsmasq did not start: {log_path.read_text(errors='replace').strip()}")
            time.sleep(0.02)
        return self.dhcp_lease_file

    def dhcp_client(self, host: str | Host, *, vendor_class: str | None = "android-dhcp-14",
                    timeout: float = 15.0) -> float:
        """Obtain the device's address with udhcpc (DISCOVER/OFFER/REQUEST/ACK); epoch time of the ACK.

        Sends the reserved host name (option 12) when one was given, and
        Android's vendor class (option 60). Configures address and default route.
        """
        h = self.host(host)
        if shutil.which("udhcpc") is None:
            raise LabUnavailable("udhcpc not installed (Debian: udhcpc)")
        if self._dhcp is None:
            self.dhcp_server()
        script = self._tmp() / "udhcpc.script"
        if not script.exists():
            # udhcpc calls this with "bound": configure what the server handed out.
            script.write_text('#!/bin/sh\ncase "$1" in bound|renew)\n'
                              '  ip addr replace "$ip/${mask:-24}" dev "$interface"\n'
                              '  [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"\n'
                              '  date +%s.%N > "$UDHCPC_STAMP";;\nesac\nexit 0\n')
            script.chmod(0o755)
        stamp = self._tmp() / f"stamp-{h.netns}"
        _ip, hostname = self._dhcp_reserved.get(h.mac, (h.ipv4, None))
        argv = ["env", f"UDHCPC_STAMP={stamp}", "udhcpc", "-i", h.ifname, "-f", "-q", "-n", "-t", "5", "-T", "1",
                "-s", str(script)]
        if hostname:
            argv += ["-x", f"hostname:{hostname}"]
        if vendor_class:
            argv += ["-V", vendor_class]
        self.run(h, argv, timeout=timeout)
        if not stamp.exists():
            raise LabError(f"udhcpc on {h.name} got no lease")
        got = self.run(h, ["ip", "-4", "-o", "addr", "show", "dev", h.ifname]).stdout
        if f" {h.ipv4}/" not in got:
            raise LabError(f"{h.name} did not get its reserved address {h.ipv4}: {got.strip()}")
        return float(stamp.read_text().strip())

    # ---- running things --------------------------------------------------------
    def run(self, host: str | Host, argv: Sequence[str], *, check: bool = True,
            timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run a command inside a namespace and wait for it."""
        return _run(["ip", "netns", "exec", self.host(host).netns, *argv], check=check, timeout=timeout)

    def popen(self, host: str | Host, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a command inside a namespace; it is killed at cleanup if still running."""
        proc = subprocess.Popen(["ip", "netns", "exec", self.host(host).netns, *argv], **kwargs)
        self._procs.append(proc)
        return proc

    def _fork(self, host: Host, name: str, fn: Callable[..., Any], args: tuple, kwargs: dict,
              background: bool) -> Task:
        if self._closed:
            raise LabError("lab is closed")
        ns_path = NETNS_DIR / host.netns
        result_r, result_w = os.pipe()
        ready_r, ready_w = os.pipe() if background else (-1, -1)
        stop_r, stop_w = os.pipe() if background else (-1, -1)
        if background:
            kwargs = {**kwargs, "ctl": Control(ready_w, stop_r)}
        pid = os.fork()
        if pid == 0:  # child
            for fd in (result_r, ready_r, stop_w):
                if fd >= 0:
                    os.close(fd)
            _child_main(ns_path, result_w, fn, args, kwargs)
        os.close(result_w)
        for fd in (ready_w, stop_r):
            if fd >= 0:
                os.close(fd)
        task = Task(name, pid, result_r, ready_r, stop_w)
        self._tasks.append(task)
        return task

    def call(self, host: str | Host, fn: Callable[..., Any], *args: Any, timeout: float = 60.0,
             **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` inside the host's namespace and return its result.

        The callable runs in a forked child that entered the namespace with
        setns(2), so closures work; the result must pickle.
        """
        h = self.host(host)
        task = self._fork(h, f"{getattr(fn, '__name__', 'call')}@{h.name}", fn, args, kwargs, background=False)
        try:
            return task.result(timeout)
        finally:
            self._tasks.remove(task)

    def spawn(self, host: str | Host, fn: Callable[..., Any], *args: Any, wait_ready: bool = False,
              ready_timeout: float = 10.0, **kwargs: Any) -> Task:
        """Run ``fn(*args, ctl=Control, **kwargs)`` in the background inside a namespace.

        With ``wait_ready`` the call returns only after the child called
        ``ctl.ready()`` (the ready info is in ``task.ready_info``).
        """
        h = self.host(host)
        task = self._fork(h, f"{getattr(fn, '__name__', 'task')}@{h.name}", fn, args, kwargs, background=True)
        task.ready_info = task.wait_ready(ready_timeout) if wait_ready else None  # type: ignore[attr-defined]
        return task

    def capture(self, path: str | Path, *, iface: str = "br0", host: str | Host | None = None,
                snaplen: int = 65535, buffer_kib: int = 32768, bpf: str | None = None) -> Capture:
        """A tcpdump capture (not yet started; use ``with`` or ``.start()``), on the gateway's LAN bridge by default."""
        h = self.host(host) if host is not None else self.gateway
        assert h is not None
        cap = Capture(h, Path(path), iface, snaplen=snaplen, buffer_kib=buffer_kib, bpf=bpf)
        self._captures.append(cap)
        return cap
