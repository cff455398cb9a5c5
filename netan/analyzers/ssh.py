"""SSH identification strings and KEXINIT (RFC 4253 §4.2, §6, §7.1).

Contract: ``summarize(sample)`` returns the flow's ``ssh`` field (client and
server banners, each side's KEXINIT name-lists in bounded form, the
negotiated algorithms per RFC 4253 §7.1, HASSH/HASSHServer) or None when the
flow does not start with an SSH identification string. Parsing stops at the
first invalid length and flags it; strings are escaped and bounded.

HASSH (Salesforce, BSD-3-Clause) is MD5 of "kex;ciphers;macs;compression"
from the client's KEXINIT (HASSHServer: the server's, server-to-client lists).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from netan.analyzers.protocols import escape_text
from netan.sample import FlowSample

__all__ = ["KexInit", "parse_banner", "parse_kexinit", "find_kexinit", "summarize", "is_ssh_start"]

MAX_BANNER = 255  # RFC 4253 §4.2: the identification string is at most 255 characters
MAX_PRE_BANNER_LINES = 256  # the server may send other lines first (§4.2); bounded
MAX_PACKET = 35000  # §6.1: implementations must handle 35000-byte packets
MAX_NAMES = 64  # names kept per list
MAX_LIST_BYTES = 4096
SSH_MSG_KEXINIT = 20

_LISTS = (
    "kex_algorithms",
    "server_host_key_algorithms",
    "encryption_client_to_server",
    "encryption_server_to_client",
    "mac_client_to_server",
    "mac_server_to_client",
    "compression_client_to_server",
    "compression_server_to_client",
    "languages_client_to_server",
    "languages_server_to_client",
)


def is_ssh_start(data: bytes) -> bool:
    """An SSH identification string opens the stream (or follows pre-banner lines)."""
    return parse_banner(data, server=True)[0] is not None


def parse_banner(data: bytes, *, server: bool = False) -> tuple[str | None, int, list[str]]:
    """(escaped banner, offset after its line, anomalies).

    Only the server may send other lines before its identification (§4.2).
    """
    anomalies: list[str] = []
    pos = 0
    for _ in range(MAX_PRE_BANNER_LINES + 1 if server else 1):
        eol = data.find(b"\n", pos, pos + 1024)
        line_end = eol if eol >= 0 else min(len(data), pos + 1024)
        line = data[pos:line_end].rstrip(b"\r")
        if line.startswith(b"SSH-"):
            if eol < 0 and len(data) - pos < 8:
                return None, 0, anomalies
            if len(line) > MAX_BANNER:
                anomalies.append("banner_too_long")
            if not (line.startswith(b"SSH-2.0-") or line.startswith(b"SSH-1.99-") or line.startswith(b"SSH-1.")):
                anomalies.append("unknown_protocol_version")
            return escape_text(line, MAX_BANNER), (eol + 1 if eol >= 0 else len(data)), anomalies
        if eol < 0 or pos > 0 and b"\x00" in line:
            return None, 0, anomalies
        if pos == 0 and not line[:1].isascii():
            return None, 0, anomalies
        pos = eol + 1
        if pos >= len(data):
            return None, 0, anomalies
    return None, 0, anomalies


@dataclass(frozen=True, slots=True)
class KexInit:
    lists: tuple[tuple[str, tuple[str, ...]], ...]
    raw_lists: tuple[bytes, ...]  # for HASSH, bounded
    first_kex_follows: bool

    def get(self, name: str) -> tuple[str, ...]:
        return dict(self.lists).get(name, ())


def parse_kexinit(payload: bytes, anomalies: list[str]) -> KexInit | None:
    """KEXINIT payload (starting at the message type byte), RFC 4253 §7.1."""
    if len(payload) < 17 or payload[0] != SSH_MSG_KEXINIT:
        return None
    pos = 17  # type + 16-byte cookie
    lists: list[tuple[str, tuple[str, ...]]] = []
    raws: list[bytes] = []
    for name in _LISTS:
        if pos + 4 > len(payload):
            anomalies.append("kexinit_truncated")
            return None
        ln = int.from_bytes(payload[pos : pos + 4], "big")
        pos += 4
        if ln > len(payload) - pos:
            anomalies.append("name_list_past_end")
            return None
        raw = payload[pos : pos + ln]
        pos += ln
        if ln > MAX_LIST_BYTES:
            anomalies.append("name_list_too_long")
        raws.append(raw[:MAX_LIST_BYTES])
        names = tuple(escape_text(n, 64) for n in raw[:MAX_LIST_BYTES].split(b",")[:MAX_NAMES] if n)
        lists.append((name, names))
    follows = bool(payload[pos]) if pos < len(payload) else False
    return KexInit(tuple(lists), tuple(raws), follows)


def find_kexinit(data: bytes, start: int, anomalies: list[str]) -> KexInit | None:
    """Walk binary packets (§6: uint32 length, byte padding, payload) to the KEXINIT."""
    pos = start
    for _ in range(4):
        if pos + 5 > len(data):
            return None
        plen = int.from_bytes(data[pos : pos + 4], "big")
        pad = data[pos + 4]
        if plen < 5 or plen > MAX_PACKET or pad >= plen:
            anomalies.append("bad_packet_length")
            return None
        payload = data[pos + 5 : pos + 4 + plen - pad]
        if payload[:1] == bytes([SSH_MSG_KEXINIT]):
            if pos + 4 + plen > len(data):
                anomalies.append("kexinit_past_sample")
            return parse_kexinit(payload, anomalies)
        pos += 4 + plen
    return None


def _negotiate(client: tuple[str, ...], server: tuple[str, ...]) -> str | None:
    """RFC 4253 §7.1: the first client algorithm the server also supports."""
    sset = set(server)
    return next((a for a in client if a in sset), None)


def _hassh(k: KexInit, server: bool) -> str:
    idx = (0, 3, 5, 7) if server else (0, 2, 4, 6)
    text = ";".join(k.raw_lists[i].decode("ascii", "replace") for i in idx)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def summarize(sample: FlowSample) -> dict[str, Any] | None:
    """The flow's ``ssh`` field, or None when neither side opens with SSH-."""
    anomalies: list[str] = []
    cb, c_end, a1 = parse_banner(sample.out)
    sb, s_end, a2 = parse_banner(sample.inb, server=True)
    if cb is None and sb is None:
        return None
    anomalies += [f"client:{a}" for a in a1] + [f"server:{a}" for a in a2]
    ck = find_kexinit(sample.out, c_end, anomalies) if cb is not None else None
    sk = find_kexinit(sample.inb, s_end, anomalies) if sb is not None else None
    info: dict[str, Any] = {
        "client": cb,
        "server": sb,
        "kex_alg": None,
        "host_key_alg": None,
        "cipher_c2s": None,
        "cipher_s2c": None,
        "mac_c2s": None,
        "mac_s2c": None,
        "compression_c2s": None,
        "client_kex": list(ck.get("kex_algorithms")[:16]) if ck else None,
        "server_kex": list(sk.get("kex_algorithms")[:16]) if sk else None,
        "hassh": _hassh(ck, False) if ck else None,
        "hassh_server": _hassh(sk, True) if sk else None,
        "anomalies": sorted(set(anomalies)),
    }
    if ck and sk:
        info["kex_alg"] = _negotiate(ck.get("kex_algorithms"), sk.get("kex_algorithms"))
        info["host_key_alg"] = _negotiate(ck.get("server_host_key_algorithms"), sk.get("server_host_key_algorithms"))
        info["cipher_c2s"] = _negotiate(ck.get("encryption_client_to_server"), sk.get("encryption_client_to_server"))
        info["cipher_s2c"] = _negotiate(ck.get("encryption_server_to_client"), sk.get("encryption_server_to_client"))
        info["mac_c2s"] = _negotiate(ck.get("mac_client_to_server"), sk.get("mac_client_to_server"))
        info["mac_s2c"] = _negotiate(ck.get("mac_server_to_client"), sk.get("mac_server_to_client"))
        info["compression_c2s"] = _negotiate(ck.get("compression_client_to_server"), sk.get("compression_client_to_server"))
    return info
