"""DHCP lease files -> time-bounded ``AddressBinding``s (sans-IO, line by line).

Three formats, all on the gateway clock:

* dnsmasq: ``<expiry epoch> <mac> <ip> <hostname|*> <client-id|*>`` per line
  (expiry 0 = infinite; the start is not recorded, so bindings are open-ended
  into the past and later bindings of the same address supersede them).
* ISC dhcpd ``dhcpd.leases``: ``lease <ip> { starts W YYYY/MM/DD HH:MM:SS; ends ...;
  binding state ...; hardware ethernet <mac>; client-hostname "..."; }``; times are
  UTC, or ``epoch N;`` with ``db-time-format local`` (dhcpd.leases(5)). The file
  is an append-only journal: every block with a client and a start is history.
* Kea memfile ``kea-leases4.csv``: ``address,hwaddr,client_id,valid_lifetime,expire,
  subnet_id,fqdn_fwd,fqdn_rev,hostname,state,...`` with ``expire`` epoch seconds;
  state 1 (declined) carries no client and is skipped.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Iterable, Iterator

from netan.context._util import norm_ip, norm_mac, to_int
from netan.context.model import AddressBinding, Reject

__all__ = ["DNSMASQ", "ISC", "KEA", "parse_dnsmasq", "parse_isc", "parse_kea", "sniff_text"]

DNSMASQ = "dnsmasq_leases"
ISC = "isc_dhcpd_leases"
KEA = "kea_leases4"

_DNSMASQ_LINE = re.compile(r"^\d+\s+\S+\s+\S+\s+\S+(\s+\S+)?\s*$")
_KEA_HEADER = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id"
_ISC_LEASE = re.compile(r"^\s*lease\s+\d{1,3}(\.\d{1,3}){3}\s*\{", re.M)
# Kea writes 0xffffffff for an infinite lifetime (RFC 2131 section 3.3 "infinity").
_INFINITE = 0xFFFFFFFF


def sniff_text(head: str) -> str | None:
    """Which lease format ``head`` (the first KBs of a file) is in, or None."""
    first = next((ln for ln in head.splitlines() if ln.strip()), "")
    if first.strip().lower().startswith(_KEA_HEADER):
        return KEA
    if _ISC_LEASE.search(head):
        return ISC
    lines = [ln for ln in head.splitlines()[:50] if ln.strip() and not ln.startswith("duid ")]
    if lines and all(_DNSMASQ_LINE.match(ln) for ln in lines[:-1] or lines):
        good = [ln for ln in lines if _DNSMASQ_LINE.match(ln)]
        if any(norm_mac(ln.split()[1]) and norm_ip(ln.split()[2]) for ln in good):
            return DNSMASQ
    return None


def parse_dnsmasq(lines: Iterable[str]) -> Iterator[AddressBinding | Reject]:
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("duid "):
            continue
        parts = text.split()
        if len(parts) < 4:
            yield Reject(n, "dnsmasq lease line has fewer than 4 fields")
            continue
        expiry = to_int(parts[0])
        ip = norm_ip(parts[2])
        if expiry is None or not ip:
            yield Reject(n, "dnsmasq lease line: bad expiry or address")
            continue
        mac = norm_mac(parts[1])
        if not mac:
            if ":" in ip:  # DHCPv6 lines carry an IAID, not a MAC: nothing to bind
                continue
            yield Reject(n, f"dnsmasq lease line: bad MAC {parts[1][:40]!r}")
            continue
        end = math.inf if expiry == 0 else float(expiry)
        host = "" if parts[3] == "*" else parts[3]
        yield AddressBinding(ip, mac, -math.inf, end, host, DNSMASQ, n)


def _isc_time(value: str) -> float | None:
    value = value.strip()
    if value == "never":
        return math.inf
    if value.startswith("epoch "):
        words = value[6:].split()
        epoch = to_int(words[0]) if words else None
        return float(epoch) if epoch is not None and epoch >= 0 else None
    parts = value.split()
    if len(parts) == 3:  # weekday digit, date, time; always UTC (dhcpd.leases(5))
        parts = parts[1:]
    try:
        dt = datetime.strptime(" ".join(parts), "%Y/%m/%d %H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return dt.timestamp()


def parse_isc(lines: Iterable[str], max_block_lines: int = 500) -> Iterator[AddressBinding | Reject]:
    block: list[str] | None = None
    ip = ""
    start_line = 0
    for n, raw in enumerate(lines, start=1):
        line = raw.split("#", 1)[0].strip() if '"' not in raw else raw.strip()
        if block is None:
            m = re.match(r"^lease\s+(\S+)\s*\{", line)
            if m:
                ip = norm_ip(m.group(1))
                block, start_line = [], n
                rest = line[m.end():].strip()
                if rest:
                    block.append(rest)
                    if rest.endswith("}"):
                        yield from _isc_block(ip, block, start_line)
                        block = None
            continue
        if line.startswith("}"):
            yield from _isc_block(ip, block, start_line)
            block = None
            continue
        block.append(line)
        if len(block) > max_block_lines:
            yield Reject(start_line, "ISC lease block not closed")
            block = None
    if block is not None:
        yield Reject(start_line, "ISC lease block not closed at end of file")


def _isc_block(ip: str, block: list[str], line: int) -> Iterator[AddressBinding | Reject]:
    if not ip:
        yield Reject(line, "ISC lease with a bad address")
        return
    stmts: dict[str, str] = {}
    for stmt in " ".join(block).rstrip("}").split(";"):
        stmt = stmt.strip()
        if not stmt:
            continue
        for key in ("starts", "ends", "binding state", "hardware ethernet", "client-hostname"):
            if stmt.startswith(key + " "):
                stmts[key] = stmt[len(key) + 1:].strip()
    state = stmts.get("binding state", "active")
    if state in ("free", "backup", "abandoned"):
        return  # no client holds the address in these states
    mac = norm_mac(stmts.get("hardware ethernet", ""))
    if not mac:
        yield Reject(line, "ISC lease without a usable hardware ethernet")
        return
    start = _isc_time(stmts.get("starts", "")) if "starts" in stmts else -math.inf
    end = _isc_time(stmts.get("ends", "")) if "ends" in stmts else math.inf
    if start is None or end is None:
        yield Reject(line, "ISC lease with unparsable starts/ends")
        return
    host = stmts.get("client-hostname", "").strip('"')
    yield AddressBinding(ip, mac, start, end, host, ISC, line)


def parse_kea(lines: Iterable[str]) -> Iterator[AddressBinding | Reject]:
    header: list[str] | None = None
    for n, line in enumerate(lines, start=1):
        text = line.rstrip("\r\n")
        if not text.strip():
            continue
        if text.startswith("address,"):
            header = text.split(",")  # Kea re-writes the header on every file rotation
            continue
        if header is None:
            yield Reject(n, "Kea lease line before the CSV header")
            continue
        cols = text.split(",")
        if len(cols) < 10:
            yield Reject(n, f"Kea lease line has {len(cols)} columns, expected at least 10")
            continue
        row = dict(zip(header, cols))
        ip = norm_ip(row.get("address", ""))
        expire = to_int(row.get("expire", ""))
        life = to_int(row.get("valid_lifetime", ""))
        state = to_int(row.get("state", "0"), -1)
        if not ip or expire is None or life is None:
            yield Reject(n, "Kea lease line: bad address, expire or valid_lifetime")
            continue
        if state == 1:
            continue  # declined: no client
        mac = norm_mac(row.get("hwaddr", ""))
        if not mac:
            yield Reject(n, "Kea lease line without a usable hwaddr")
            continue
        if life == _INFINITE:
            start, end = -math.inf, math.inf
        else:
            start, end = float(expire - life), float(expire)
        # Kea escapes commas in hostnames as "&#x2c"
        host = row.get("hostname", "").replace("&#x2c", ",").rstrip(".")
        yield AddressBinding(ip, mac, start, end, host, KEA, n)
