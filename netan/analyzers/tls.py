"""TLS over TCP: record layer, handshake, certificates and fingerprints of one flow.

Contract: ``analyze(sample)`` returns ``None`` when neither direction of the
flow's sample is TLS (judged by structure, never by port), else
``{"l7": "tls", "tls": {...}, "tls_records": [...]}``. ``tls`` always has the
contract keys ``version, sni, alpn, cipher, ja4, ja3, ja3s, cert`` (``None``
where not visible) plus extras; ``tls_records`` lists the first records per
direction like Joy's ``srlt`` (direction, time, content type, version, length).
Wire strings are escaped and bounded; malformed input is parsed as far as it is
valid and named in ``anomalies``. All work is bounded by the MAX_* caps below.

The hello parsers (``parse_client_hello``, ``parse_server_hello``,
``split_handshake``) are shared with the QUIC and DTLS analyzers.
"""
from __future__ import annotations

import bisect
import ipaddress
import logging
import re
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from operator import itemgetter
from typing import Any, Iterable

from netan.analyzers import fingerprints as fp
from netan.analyzers.x509info import safe_text, summarize
from netan.sample import IN, OUT, FlowSample, PacketMark

__all__ = [
    "analyze",
    "ContentType",
    "HandshakeType",
    "Record",
    "ClientHello",
    "ServerHello",
    "HandshakeMessage",
    "parse_records",
    "parse_client_hello",
    "parse_server_hello",
    "server_hello_fields",
    "flag_anomaly",
    "split_handshake",
    "find_tls_start",
    "version_name",
    "cipher_name",
    "hello_summary",
    "client_hellos",
    "MAX_RECORDS",
]

log = logging.getLogger(__name__)

# ---- bounds: every loop below is capped by one of these ----------------------
#: Records parsed per direction (the handshake is in the first few).
MAX_RECORDS = 256
#: Records reported per direction in ``tls_records`` (Joy's srlt keeps 50 in all).
MAX_RECORDS_REPORTED = 32
#: RFC 5246 §6.2.3: TLSCiphertext.length <= 2^14 + 2048.
MAX_RECORD_LEN = 2**14 + 2048
#: Handshake bytes reassembled per direction (a cert chain is a few KB).
MAX_HANDSHAKE_BYTES = 65536
MAX_HANDSHAKE_MESSAGES = 64
#: Extensions parsed per hello; real clients send about 20.
MAX_EXTENSIONS = 128
#: Items kept per list (cipher suites, groups, ...); the count stays exact.
MAX_LIST_ITEMS = 512
MAX_ALPN = 16
MAX_ALPN_CHARS = 64
MAX_SNI_CHARS = 255
MAX_CERTS = 10
MAX_ALERTS = 16
MAX_ANOMALIES = 32
#: How far into a stream a hello may start after a cleartext preamble
#: (HTTP CONNECT, SOCKS, STARTTLS).
PREAMBLE_SCAN = 4096


class ContentType(IntEnum):
    """TLS record content types (RFC 8446 §5.1, RFC 6520 heartbeat)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24


class HandshakeType(IntEnum):
    """Handshake message types (RFC 8446 §4, RFC 5246 §7.4, RFC 6066 §8)."""

    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    HELLO_VERIFY_REQUEST = 3
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    ENCRYPTED_EXTENSIONS = 8
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    CERTIFICATE_STATUS = 22
    KEY_UPDATE = 24


class Ext(IntEnum):
    """Extension types used here (IANA TLS ExtensionType Values)."""

    SERVER_NAME = 0
    SUPPORTED_GROUPS = 10
    EC_POINT_FORMATS = 11
    SIGNATURE_ALGORITHMS = 13
    ALPN = 16
    SESSION_TICKET = 35
    PRE_SHARED_KEY = 41
    EARLY_DATA = 42
    SUPPORTED_VERSIONS = 43
    KEY_SHARE = 51
    ENCRYPTED_CLIENT_HELLO = 0xFE0D


#: RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest.
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

_VERSION_NAMES = {
    0x0002: "SSLv2",
    0x0300: "SSLv3",
    0x0301: "TLSv1.0",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
    0xFEFF: "DTLSv1.0",
    0xFEFD: "DTLSv1.2",
    0xFEFC: "DTLSv1.3",
}


def version_name(v: int | None) -> str | None:
    """``TLSv1.2``-style name of a protocol version; drafts as ``TLSv1.3-draft28``."""
    if v is None:
        return None
    if v in _VERSION_NAMES:
        return _VERSION_NAMES[v]
    if v >> 8 == 0x7F:  # draft-ietf-tls-tls13-NN used 0x7fNN
        return f"TLSv1.3-draft{v & 0xFF}"
    return f"unknown-{v}"  # Zeek's spelling for versions it does not know


def cipher_name(cs: int | None) -> str | None:
    """IANA name of a cipher suite (TLS Cipher Suites registry)."""
    if cs is None:
        return None
    name = CIPHER_SUITES.get(cs)
    if name:
        return name
    if fp.is_grease(cs):
        return f"GREASE_0x{cs:04X}"
    return f"unknown_0x{cs:04X}"


#: IANA TLS Supported Groups (RFC 8446 §4.2.7, RFC 7919, draft-kwiatkowski-tls-ecdhe-mlkem).
GROUP_NAMES = {
    1: "sect163k1", 2: "sect163r1", 3: "sect163r2", 4: "sect193r1", 5: "sect193r2",
    6: "sect233k1", 7: "sect233r1", 8: "sect239k1", 9: "sect283k1", 10: "sect283r1",
    11: "sect409k1", 12: "sect409r1", 13: "sect571k1", 14: "sect571r1", 15: "secp160k1",
    16: "secp160r1", 17: "secp160r2", 18: "secp192k1", 19: "secp192r1", 20: "secp224k1",
    21: "secp224r1", 22: "secp256k1", 23: "secp256r1", 24: "secp384r1", 25: "secp521r1",
    26: "brainpoolP256r1", 27: "brainpoolP384r1", 28: "brainpoolP512r1", 29: "x25519",
    30: "x448", 256: "ffdhe2048", 257: "ffdhe3072", 258: "ffdhe4096", 259: "ffdhe6144",
    260: "ffdhe8192", 0x11EC: "X25519MLKEM768", 0x11EB: "SecP256r1MLKEM768",
    0x11ED: "SecP384r1MLKEM1024", 0x6399: "X25519Kyber768Draft00",
}

#: RFC 8446 §6 AlertDescription.
ALERT_NAMES = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
    21: "decryption_failed", 22: "record_overflow", 30: "decompression_failure",
    40: "handshake_failure", 41: "no_certificate", 42: "bad_certificate",
    43: "unsupported_certificate", 44: "certificate_revoked", 45: "certificate_expired",
    46: "certificate_unknown", 47: "illegal_parameter", 48: "unknown_ca",
    49: "access_denied", 50: "decode_error", 51: "decrypt_error",
    60: "export_restriction", 70: "protocol_version", 71: "insufficient_security",
    80: "internal_error", 86: "inappropriate_fallback", 90: "user_canceled",
    100: "no_renegotiation", 109: "missing_extension", 110: "unsupported_extension",
    111: "certificate_unobtainable", 112: "unrecognized_name",
    113: "bad_certificate_status_response", 114: "bad_certificate_hash_value",
    115: "unknown_psk_identity", 116: "certificate_required",
    120: "no_application_protocol", 121: "ech_required",
}


# ---- bounded byte reader ------------------------------------------------------
class _Reader:
    """A cursor over bytes whose reads return ``None`` instead of running past the end."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def uint(self, n: int) -> int | None:
        pos = self.pos
        if pos + n > self.end:
            self.pos = self.end
            return None
        self.pos = pos + n
        return int.from_bytes(self.data[pos : pos + n], "big")

    def take(self, n: int) -> bytes | None:
        pos = self.pos
        if pos + n > self.end:
            self.pos = self.end
            return None
        self.pos = pos + n
        return self.data[pos : pos + n]

    def vector(self, len_bytes: int) -> tuple[bytes, bool] | None:
        """A length-prefixed vector: (bytes, complete). Short data gives what is there."""
        n = self.uint(len_bytes)
        if n is None:
            return None
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk, len(chunk) == n


def _u16_list(data: bytes, anomalies: list[str], what: str) -> tuple[int, ...]:
    if len(data) % 2:
        flag_anomaly(anomalies, f"{what}_odd_length")
    count = len(data) // 2
    if count > MAX_LIST_ITEMS:
        flag_anomaly(anomalies, f"{what}_too_many")
        count = MAX_LIST_ITEMS
    return struct.unpack_from(f">{count}H", data)


def server_hello_fields(sh: "ServerHello", ske_curve: int | None, anomalies: list[str]) -> dict[str, Any]:
    """What a (non-retry) ServerHello settles, for TLS and DTLS alike: version, cipher,
    JA3S, the negotiated ALPN, and the key-exchange group (the key share, else the
    TLS 1.2 ServerKeyExchange curve)."""
    out: dict[str, Any] = {"version": "TLSv1.3-draft<16" if sh.pre_draft16 else version_name(sh.version),
                           "cipher": cipher_name(sh.cipher_suite), "ja3s": fp.ja3s(sh)}
    if sh.alpn is not None:
        out["alpn_negotiated"] = alpn_text(sh.alpn, anomalies)
    group = sh.key_share_group if sh.key_share_group is not None else ske_curve
    if group is not None:
        out["curve"] = GROUP_NAMES.get(group, f"0x{group:04x}")
    return out


def flag_anomaly(anomalies: list[str], name: str) -> None:
    if name not in anomalies and len(anomalies) < MAX_ANOMALIES:
        anomalies.append(name)


# ---- hellos -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClientHello:
    """A parsed ClientHello (TLS, DTLS or the CRYPTO stream of QUIC).

    Satisfies ``fingerprints.ClientHelloLike``. ``sni`` is already made safe;
    ``alpn`` keeps the raw protocol ids (JA4 needs their bytes).
    """

    legacy_version: int
    session_id: bytes = b""
    cipher_suites: tuple[int, ...] = ()
    compression_methods: tuple[int, ...] = ()
    extensions: tuple[int, ...] = ()
    has_sni: bool = False
    sni: str | None = None
    alpn: tuple[bytes, ...] = ()
    supported_versions: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    supported_groups: tuple[int, ...] = ()
    ec_point_formats: tuple[int, ...] = ()
    key_share_groups: tuple[int, ...] = ()
    session_ticket: bool = False
    psk: bool = False
    early_data: bool = False
    ech: bool = False
    cookie: bytes | None = None  # DTLS only (RFC 6347 §4.2.1)
    complete: bool = True
    anomalies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServerHello:
    """A parsed ServerHello (or HelloRetryRequest); satisfies ``ServerHelloLike``."""

    legacy_version: int
    cipher_suite: int = 0
    session_id: bytes = b""
    compression_method: int = 0
    extensions: tuple[int, ...] = ()
    selected_version: int | None = None
    alpn: bytes | None = None
    key_share_group: int | None = None
    psk: bool = False
    is_hrr: bool = False
    pre_draft16: bool = False  # TLS 1.3 draft < 16: server_version 0x0304, old layout
    complete: bool = True
    anomalies: tuple[str, ...] = ()

    @property
    def version(self) -> int:
        """Negotiated version: supported_versions wins (RFC 8446 §4.2.1)."""
        return self.selected_version if self.selected_version is not None else self.legacy_version


def _parse_extension_block(r: _Reader, anomalies: list[str]) -> list[tuple[int, bytes]]:
    """RFC 8446 §4.2 extension list; stops at the first inconsistency."""
    if r.remaining == 0:
        return []  # extensions are optional before TLS 1.3 (RFC 5246 §7.4.1.2)
    vec = r.vector(2)
    if vec is None:
        flag_anomaly(anomalies, "extensions_length_truncated")
        return []
    block, complete = vec
    if not complete:
        flag_anomaly(anomalies, "extensions_length_past_end")
    if r.remaining:
        flag_anomaly(anomalies, "trailing_bytes_after_extensions")
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos + 4 <= len(block):
        if len(out) >= MAX_EXTENSIONS:
            flag_anomaly(anomalies, "too_many_extensions")
            break
        etype = int.from_bytes(block[pos : pos + 2], "big")
        elen = int.from_bytes(block[pos + 2 : pos + 4], "big")
        data = block[pos + 4 : pos + 4 + elen]
        if len(data) < elen:
            flag_anomaly(anomalies, "extension_length_past_end" if complete else "extensions_truncated")
            out.append((etype, data))
            break
        out.append((etype, data))
        pos += 4 + elen
    else:
        if pos != len(block):
            flag_anomaly(anomalies, "extension_header_truncated")
    seen: set[int] = set()
    for etype, _ in out:
        if etype in seen:
            # RFC 8446 §4.2: at most one extension of each type.
            flag_anomaly(anomalies, "duplicate_extension")
        seen.add(etype)
    return out


#: What a host name may hold: ASCII letters, digits and "-._*" (wildcards seen in the wild).
_SNI_CHARS = re.compile(r"[A-Za-z0-9._*-]+")


@lru_cache(maxsize=4096)
def _is_ip_literal(text: str) -> bool:
    """Memoised: clients name the same hosts again and again, and a failed
    ipaddress parse (the usual case) costs an exception."""
    try:
        ipaddress.ip_address(text.strip("[]"))
        return True
    except ValueError:
        return False


def _decode_sni(ext: bytes, anomalies: list[str]) -> str | None:
    """RFC 6066 §3 ServerNameList; returns the first host_name, made safe."""
    r = _Reader(ext)
    vec = r.vector(2)
    if vec is None:
        flag_anomaly(anomalies, "sni_malformed")
        return None
    names, complete = vec
    if not complete or r.remaining:
        flag_anomaly(anomalies, "sni_length_mismatch")
    nr = _Reader(names)
    host: str | None = None
    entries = 0
    while nr.remaining >= 3 and entries < 8:
        entries += 1
        name_type = nr.uint(1)
        item = nr.vector(2)
        if item is None:
            break
        raw, ok = item
        if not ok:
            flag_anomaly(anomalies, "sni_length_mismatch")
        if name_type != 0 or host is not None:
            continue
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            # RFC 6066: host names are ASCII (A-labels); anything else is suspect.
            flag_anomaly(anomalies, "sni_not_ascii")
            text = raw.decode("utf-8", "backslashreplace")
        host, flags = safe_text(text, MAX_SNI_CHARS)
        for f in flags:
            flag_anomaly(anomalies, f"sni_{f}")
        if len(raw) > 253:
            flag_anomaly(anomalies, "sni_too_long")
        if text and not _SNI_CHARS.fullmatch(text):
            flag_anomaly(anomalies, "sni_invalid_chars")
        if text and _is_ip_literal(text):
            flag_anomaly(anomalies, "sni_ip_literal")  # RFC 6066 §3 forbids literal IPs
        if not raw:
            flag_anomaly(anomalies, "sni_empty")
    return host


def _decode_alpn_list(ext: bytes, anomalies: list[str]) -> tuple[bytes, ...]:
    """RFC 7301 §3.1 ProtocolNameList."""
    r = _Reader(ext)
    vec = r.vector(2)
    if vec is None:
        flag_anomaly(anomalies, "alpn_malformed")
        return ()
    names, complete = vec
    if not complete or r.remaining:
        flag_anomaly(anomalies, "alpn_length_mismatch")
    out: list[bytes] = []
    nr = _Reader(names)
    while nr.remaining:
        item = nr.vector(1)
        if item is None:
            break
        raw, ok = item
        if not ok:
            flag_anomaly(anomalies, "alpn_length_mismatch")
        if len(out) >= MAX_ALPN:
            flag_anomaly(anomalies, "alpn_too_many")
            break
        out.append(raw)
    return tuple(out)


def alpn_text(raw: bytes, anomalies: list[str] | None = None) -> str:
    """An ALPN protocol id as safe text: printable ASCII kept, other bytes as \\xNN."""
    out = []
    for b in raw[:MAX_ALPN_CHARS]:
        if 0x20 < b < 0x7F and b != 0x5C:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
            if anomalies is not None:
                flag_anomaly(anomalies, "alpn_non_printable")
    if len(raw) > MAX_ALPN_CHARS and anomalies is not None:
        flag_anomaly(anomalies, "alpn_truncated")
    return "".join(out)


def parse_client_hello(body: bytes, *, dtls: bool = False, complete: bool = True) -> ClientHello:
    """Parse a ClientHello body (after the handshake header) as far as it is valid.

    RFC 8446 §4.1.2 (TLS), RFC 6347 §4.2.1 / RFC 9147 §5.3 (DTLS adds a cookie).
    ``complete`` says whether the whole message was available; when it was not,
    running short is reported as truncation rather than as a malformation.
    """
    anomalies: list[str] = []
    if not complete:
        flag_anomaly(anomalies, "client_hello_truncated")
    r = _Reader(body)
    legacy_version = r.uint(2)
    if legacy_version is None:
        flag_anomaly(anomalies, "client_hello_too_short")
        return ClientHello(legacy_version=0, complete=False, anomalies=tuple(anomalies))
    fields: dict[str, Any] = {"legacy_version": legacy_version}
    if r.take(32) is None:
        flag_anomaly(anomalies, "client_hello_too_short")
        return ClientHello(complete=False, anomalies=tuple(anomalies), **fields)
    sid = r.vector(1)
    if sid is None or not sid[1]:
        flag_anomaly(anomalies, "session_id_past_end")
        return ClientHello(complete=False, anomalies=tuple(anomalies), **fields)
    fields["session_id"] = sid[0]
    if len(sid[0]) > 32:
        flag_anomaly(anomalies, "session_id_too_long")
    if dtls:
        cookie = r.vector(1)
        if cookie is None or not cookie[1]:
            flag_anomaly(anomalies, "cookie_past_end")
            return ClientHello(complete=False, anomalies=tuple(anomalies), **fields)
        fields["cookie"] = cookie[0]
    suites = r.vector(2)
    if suites is None:
        flag_anomaly(anomalies, "cipher_suites_missing")
        return ClientHello(complete=False, anomalies=tuple(anomalies), **fields)
    fields["cipher_suites"] = _u16_list(suites[0], anomalies, "cipher_suites")
    if not suites[1]:
        flag_anomaly(anomalies, "cipher_suites_past_end" if complete else "client_hello_truncated")
        return ClientHello(complete=False, anomalies=tuple(anomalies), **fields)
    comp = r.vector(1)
    if comp is None or not comp[1]:
        flag_anomaly(anomalies, "compression_methods_past_end" if complete else "client_hello_truncated")
        return ClientHello(complete=False, anomalies=tuple(anomalies), **fields)
    fields["compression_methods"] = tuple(comp[0])
    exts = _parse_extension_block(r, anomalies)
    fields["extensions"] = tuple(t for t, _ in exts)
    for etype, data in exts:
        if etype == Ext.SERVER_NAME:
            fields["has_sni"] = True
            if "sni" not in fields:
                fields["sni"] = _decode_sni(data, anomalies)
        elif etype == Ext.ALPN and "alpn" not in fields:
            fields["alpn"] = _decode_alpn_list(data, anomalies)
        elif etype == Ext.SUPPORTED_VERSIONS and "supported_versions" not in fields:
            vr = _Reader(data)
            vec = vr.vector(1)
            if vec is None or not vec[1]:
                flag_anomaly(anomalies, "supported_versions_malformed")
            if vec is not None:
                fields["supported_versions"] = _u16_list(vec[0], anomalies, "supported_versions")
        elif etype == Ext.SIGNATURE_ALGORITHMS and "signature_algorithms" not in fields:
            vec = _Reader(data).vector(2)
            if vec is None or not vec[1]:
                flag_anomaly(anomalies, "signature_algorithms_malformed")
            if vec is not None:
                fields["signature_algorithms"] = _u16_list(vec[0], anomalies, "signature_algorithms")
        elif etype == Ext.SUPPORTED_GROUPS and "supported_groups" not in fields:
            vec = _Reader(data).vector(2)
            if vec is None or not vec[1]:
                flag_anomaly(anomalies, "supported_groups_malformed")
            if vec is not None:
                fields["supported_groups"] = _u16_list(vec[0], anomalies, "supported_groups")
        elif etype == Ext.EC_POINT_FORMATS and "ec_point_formats" not in fields:
            vec = _Reader(data).vector(1)
            if vec is None or not vec[1]:
                flag_anomaly(anomalies, "ec_point_formats_malformed")
            if vec is not None:
                fields["ec_point_formats"] = tuple(vec[0][:MAX_LIST_ITEMS])
        elif etype == Ext.KEY_SHARE and "key_share_groups" not in fields:
            vec = _Reader(data).vector(2)
            groups: list[int] = []
            if vec is not None:
                kr = _Reader(vec[0])
                while kr.remaining >= 4 and len(groups) < 16:
                    group = kr.uint(2)
                    if kr.vector(2) is None or group is None:
                        break
                    groups.append(group)
            fields["key_share_groups"] = tuple(groups)
        elif etype == Ext.SESSION_TICKET:
            fields["session_ticket"] = len(data) > 0
        elif etype == Ext.PRE_SHARED_KEY:
            fields["psk"] = True
        elif etype == Ext.EARLY_DATA:
            fields["early_data"] = True
        elif etype == Ext.ENCRYPTED_CLIENT_HELLO:
            fields["ech"] = True
    return ClientHello(complete=complete and not any(a.endswith("past_end") for a in anomalies),
                       anomalies=tuple(anomalies), **fields)


def parse_server_hello(body: bytes, *, dtls: bool = False, complete: bool = True) -> ServerHello:
    """Parse a ServerHello/HelloRetryRequest body (RFC 8446 §4.1.3) as far as valid."""
    anomalies: list[str] = []
    if not complete:
        flag_anomaly(anomalies, "server_hello_truncated")
    r = _Reader(body)
    legacy_version = r.uint(2)
    random = r.take(32)
    if legacy_version is None or random is None:
        flag_anomaly(anomalies, "server_hello_too_short")
        return ServerHello(legacy_version=legacy_version or 0, complete=False, anomalies=tuple(anomalies))
    fields: dict[str, Any] = {"legacy_version": legacy_version, "is_hrr": random == HRR_RANDOM}
    if (legacy_version >> 8 == 0x7F and (legacy_version & 0xFF) < 22) or legacy_version == 0x0304:
        # draft-ietf-tls-tls13 before -22: no legacy_session_id_echo and no
        # compression method; the draft version is server_version itself
        # (0x0304 itself before draft-16 introduced supported_versions; the
        # final RFC 8446 §4.1.3 fixes legacy_version at 0x0303).
        if legacy_version == 0x0304:
            fields["pre_draft16"] = True
        cs = r.uint(2)
        if cs is None:
            flag_anomaly(anomalies, "server_hello_too_short")
            return ServerHello(complete=False, anomalies=tuple(anomalies), **fields)
        fields["cipher_suite"] = cs
        exts = _parse_extension_block(r, anomalies)
        fields["extensions"] = tuple(t for t, _ in exts)
        for etype, data in exts:
            if etype in (Ext.KEY_SHARE, 40) and len(data) >= 2:  # 40: key_share before draft-23
                fields["key_share_group"] = int.from_bytes(data[:2], "big")
            elif etype == Ext.PRE_SHARED_KEY:
                fields["psk"] = True
        return ServerHello(complete=complete, anomalies=tuple(anomalies), **fields)
    sid = r.vector(1)
    cs = r.uint(2) if sid is not None and sid[1] else None
    comp = r.uint(1) if cs is not None else None
    if sid is None or cs is None or comp is None:
        flag_anomaly(anomalies, "server_hello_too_short")
        return ServerHello(complete=False, anomalies=tuple(anomalies), **fields)
    fields.update(session_id=sid[0], cipher_suite=cs, compression_method=comp)
    exts = _parse_extension_block(r, anomalies)
    fields["extensions"] = tuple(t for t, _ in exts)
    for etype, data in exts:
        if etype == Ext.SUPPORTED_VERSIONS and len(data) >= 2:
            fields["selected_version"] = int.from_bytes(data[:2], "big")
        elif etype == Ext.ALPN:
            names = _decode_alpn_list(data, anomalies)
            if names:
                fields["alpn"] = names[0]
            if len(names) != 1:
                flag_anomaly(anomalies, "server_alpn_not_single")  # RFC 7301 §3.1
        elif etype in (Ext.KEY_SHARE, 40) and len(data) >= 2:  # 40: key_share before draft-23
            fields["key_share_group"] = int.from_bytes(data[:2], "big")
        elif etype == Ext.PRE_SHARED_KEY:
            fields["psk"] = True
    return ServerHello(complete=complete, anomalies=tuple(anomalies), **fields)


# ---- record layer ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Record:
    """One TLS record header found in a direction's stream (RFC 8446 §5.1)."""

    offset: int  # of the 5-byte header within the direction's sample
    content_type: int
    version: int
    length: int  # declared fragment length
    available: int  # fragment bytes present in the sample

    @property
    def complete(self) -> bool:
        return self.available == self.length


def _valid_record_header(data: bytes, pos: int) -> bool:
    if pos + 5 > len(data):
        return False
    ct, major, minor = data[pos], data[pos + 1], data[pos + 2]
    length = int.from_bytes(data[pos + 3 : pos + 5], "big")
    return 20 <= ct <= 24 and major == 3 and minor <= 4 and length <= MAX_RECORD_LEN


def _in_gap(gaps: Iterable[tuple[int, int]], start: int, end: int) -> bool:
    return any(g_off < end and start < g_off + g_len for g_off, g_len in gaps)


def parse_records(
    data: bytes, start: int = 0, gaps: Iterable[tuple[int, int]] = (), anomalies: list[str] | None = None
) -> list[Record]:
    """Walk the record headers of one direction from ``start``; bounded by MAX_RECORDS.

    Stops (and flags) at an invalid header, a sample hole, or the sample end.
    """
    anomalies = anomalies if anomalies is not None else []
    gaps = tuple(gaps)
    out: list[Record] = []
    pos = start
    n = len(data)
    while pos < n and len(out) < MAX_RECORDS:
        if pos + 5 > n:
            break  # header cut by the sample cap
        if gaps and _in_gap(gaps, pos, pos + 5):
            flag_anomaly(anomalies, "sample_gap")
            break
        ct, version = data[pos], int.from_bytes(data[pos + 1 : pos + 3], "big")
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if not (20 <= ct <= 24 and (version >> 8) == 3 and (version & 0xFF) <= 4):
            flag_anomaly(anomalies, "invalid_record_header")
            break
        if length > MAX_RECORD_LEN:
            flag_anomaly(anomalies, "record_too_long")
            break
        if length == 0 and ct in (ContentType.HANDSHAKE, ContentType.ALERT, ContentType.CHANGE_CIPHER_SPEC):
            flag_anomaly(anomalies, "empty_record")  # RFC 8446 §5.1 forbids these
        available = min(length, n - pos - 5)
        out.append(Record(pos, ct, version, length, available))
        if gaps and _in_gap(gaps, pos + 5, pos + 5 + available):
            flag_anomaly(anomalies, "sample_gap")
            break
        pos += 5 + length
    else:
        if len(out) >= MAX_RECORDS:
            flag_anomaly(anomalies, "record_cap_reached")
    return out


def _hello_at(data: bytes, pos: int, hs_type: int) -> bool:
    """Is there a handshake record carrying a hello of ``hs_type`` at ``pos``?"""
    if not _valid_record_header(data, pos) or data[pos] != ContentType.HANDSHAKE:
        return False
    if pos + 11 > len(data) or data[pos + 5] != hs_type:
        return False
    rec_len = int.from_bytes(data[pos + 3 : pos + 5], "big")
    hs_len = int.from_bytes(data[pos + 6 : pos + 9], "big")
    # The hello's own version field must look like a TLS version, and a
    # hello is at least 38 bytes (version + random + session id length + ...).
    return rec_len >= 4 and hs_len >= 38 and data[pos + 9] == 3 and data[pos + 10] <= 4


def _sslv2_hello_at(data: bytes, pos: int, msg_type: int) -> bool:
    """SSL 2.0 record with a 2-byte header (RFC 6101 App. E.1 / SSL 2.0 draft)."""
    if pos + 5 > len(data) or not data[pos] & 0x80:
        return False
    length = ((data[pos] & 0x7F) << 8) | data[pos + 1]
    if data[pos + 2] != msg_type or length < 9:
        return False
    if msg_type == 1:
        version = int.from_bytes(data[pos + 3 : pos + 5], "big")
        return version in (0x0002, 0x0300, 0x0301, 0x0302, 0x0303)
    return pos + 7 <= len(data) and int.from_bytes(data[pos + 5 : pos + 7], "big") in (0x0002, 0x0300)


def find_tls_start(data: bytes, hello_type: int) -> tuple[int, str] | None:
    """Where TLS starts in a direction's stream, and how it was recognised.

    ``"hello"``: a hello record at offset 0; ``"preamble"``: a hello after a
    cleartext prefix (HTTP CONNECT, SOCKS, STARTTLS), searched for in the first
    PREAMBLE_SCAN bytes; ``"sslv2"``: an SSL 2.0 hello; ``"records"``: at least
    two well-formed records tiling the stream from offset 0 (capture started
    mid-connection).
    """
    if not data:
        return None
    if _hello_at(data, 0, hello_type):
        return 0, "hello"
    if _sslv2_hello_at(data, 0, 1 if hello_type == HandshakeType.CLIENT_HELLO else 4):
        return 0, "sslv2"
    if _valid_record_header(data, 0):
        pos, n = 0, 0
        while n < 4 and _valid_record_header(data, pos):
            pos += 5 + int.from_bytes(data[pos + 3 : pos + 5], "big")
            n += 1
        if n >= 2 and (pos <= len(data)):
            return 0, "records"
    limit = min(len(data) - 11, PREAMBLE_SCAN)
    pos = data.find(b"\x16\x03", 1, limit + 2)
    while 0 <= pos <= limit:
        if _hello_at(data, pos, hello_type):
            return pos, "preamble"
        pos = data.find(b"\x16\x03", pos + 1, limit + 2)
    return None


@dataclass(frozen=True, slots=True)
class HandshakeMessage:
    msg_type: int
    body: bytes
    complete: bool
    offset: int  # position of the message header in the reassembled handshake bytes


def split_handshake(buf: bytes, *, dtls: bool = False) -> list[HandshakeMessage]:
    """Split reassembled handshake bytes into messages (4-byte header; 12 for DTLS)."""
    header = 12 if dtls else 4
    out: list[HandshakeMessage] = []
    pos = 0
    while pos + header <= len(buf) and len(out) < MAX_HANDSHAKE_MESSAGES:
        mtype = buf[pos]
        mlen = int.from_bytes(buf[pos + 1 : pos + 4], "big")
        body = buf[pos + header : pos + header + mlen]
        out.append(HandshakeMessage(mtype, body, len(body) == mlen, pos))
        pos += header + mlen
    return out


# ---- the analyzer ---------------------------------------------------------------
@dataclass
class _Direction:
    """Per-direction facts gathered while walking records."""

    data: bytes
    start: int
    how: str
    records: list[Record] = field(default_factory=list)
    hs_buf: bytearray = field(default_factory=bytearray)
    hs_record_spans: list[tuple[int, int, int]] = field(default_factory=list)  # (record idx, buf start, buf end)
    ccs_index: int | None = None  # index of first ChangeCipherSpec record
    messages: list[HandshakeMessage] = field(default_factory=list)
    app_data: int = 0


def _collect_handshake(d: _Direction, after_ccs: bool) -> None:
    """Concatenate plaintext handshake fragments (RFC 8446 §5.1 allows splitting).

    Handshake records after this direction's ChangeCipherSpec are encrypted
    (TLS <= 1.2 Finished) and skipped, unless a HelloRetryRequest made the
    peer send a second plaintext hello after a compatibility CCS (RFC 8446 D.4).
    """
    d.hs_buf.clear()
    d.hs_record_spans.clear()
    seen_ccs = False
    for i, rec in enumerate(d.records):
        if rec.content_type == ContentType.CHANGE_CIPHER_SPEC:
            if d.ccs_index is None:
                d.ccs_index = i
            seen_ccs = True
            continue
        if rec.content_type == ContentType.APPLICATION_DATA:
            if not after_ccs:
                break
            continue
        if rec.content_type != ContentType.HANDSHAKE or (seen_ccs and not after_ccs):
            continue
        if len(d.hs_buf) + rec.available > MAX_HANDSHAKE_BYTES:
            break
        begin = len(d.hs_buf)
        d.hs_buf += d.data[rec.offset + 5 : rec.offset + 5 + rec.available]
        d.hs_record_spans.append((i, begin, len(d.hs_buf)))
        if not rec.complete:
            break
    d.messages = split_handshake(bytes(d.hs_buf))


def _record_times(sample: FlowSample, direction: int) -> tuple[list[int], list[float]]:
    """Offsets and times of payload packets of one direction, sorted by offset."""
    marks = sorted(
        ((m.offset, m.ts) for m in sample.packets if m.direction == direction and m.length > 0),
        key=itemgetter(0),
    )
    return [o for o, _ in marks], [t for _, t in marks]


def _ts_at(index: tuple[list[int], list[float]], offset: int) -> float | None:
    offsets, times = index
    i = bisect.bisect_right(offsets, offset) - 1
    return times[i] if i >= 0 else None


def hello_summary(ch: ClientHello, transport: str, anomalies: list[str]) -> dict[str, Any]:
    """The client-side facts every TLS-carrying analyzer reports."""
    alpn = [alpn_text(a, anomalies) for a in ch.alpn]
    offered = [v for v in ch.supported_versions if not fp.is_grease(v)] or [ch.legacy_version]
    out: dict[str, Any] = {
        "sni": ch.sni,
        "alpn": alpn,
        "client_versions": [version_name(v) for v in offered],
        "client_ciphers": len([c for c in ch.cipher_suites if not fp.is_grease(c)]),
        "client_extensions": len([e for e in ch.extensions if not fp.is_grease(e)]),
        "ja4": fp.ja4(ch, transport),
        "ja3": fp.ja3(ch),
    }
    if ch.ech:
        out["ech"] = True
    return out


def _cert_chain(body: bytes, complete: bool, anomalies: list[str], what: str) -> tuple[list[bytes], bool]:
    """RFC 5246 §7.4.2 certificate_list: ASN.1Cert<1..2^24-1> entries."""
    r = _Reader(body)
    vec = r.vector(3)
    if vec is None:
        flag_anomaly(anomalies, f"{what}_malformed")
        return [], False
    lst, full = vec
    if not full and complete:
        flag_anomaly(anomalies, f"{what}_length_mismatch")
    certs: list[bytes] = []
    cr = _Reader(lst)
    while cr.remaining >= 3 and len(certs) < MAX_CERTS:
        item = cr.vector(3)
        if item is None:
            break
        der, ok = item
        if not ok:
            if complete:
                flag_anomaly(anomalies, f"{what}_length_mismatch")
            return certs, False
        certs.append(der)
    return certs, full


def _swapped(sample: FlowSample) -> FlowSample:
    """The same flow seen from the other end (packet directions flipped)."""
    marks = tuple(
        PacketMark(IN if m.direction == OUT else OUT, m.ts, m.offset, m.length) for m in sample.packets
    )
    return FlowSample(sample.proto, sample.dst_ip, sample.dst_port, sample.src_ip, sample.src_port,
                      sample.inb, sample.out, sample.gaps_in, sample.gaps_out, marks)


def _says_hello(data: bytes, hello_type: int) -> bool:
    found = find_tls_start(data, hello_type)
    return found is not None and found[1] in ("hello", "preamble")


def analyze(sample: FlowSample) -> dict[str, Any] | None:
    """TLS facts of one TCP flow, or ``None`` if it does not carry TLS."""
    if sample.proto.lower() == "udp":
        return None
    if (
        not _says_hello(sample.out, HandshakeType.CLIENT_HELLO)
        and _says_hello(sample.inb, HandshakeType.CLIENT_HELLO)
    ):
        # The flow's originator sent no ClientHello but the responder did: a
        # capture that missed the SYN got the roles backwards. Read it the
        # right way round and say so ("dir" values stay the flow's own).
        result = _analyze(_swapped(sample))
        if result is not None:
            result["tls"]["client_is_responder"] = True
            for row in result["tls_records"]:
                row["dir"] = "in" if row["dir"] == "out" else "out"
            for alert in result["tls"].get("alerts", []):
                alert["dir"] = "in" if alert["dir"] == "out" else "out"
        return result
    return _analyze(sample)


def _analyze(sample: FlowSample) -> dict[str, Any] | None:
    found_out = find_tls_start(sample.out, HandshakeType.CLIENT_HELLO)
    found_in = find_tls_start(sample.inb, HandshakeType.SERVER_HELLO)
    if found_out is None and found_in is None:
        return None
    # Once one side said hello, a single well-formed record is enough for the
    # other side (a server that answers a ClientHello with just an alert).
    if found_in is None and found_out[1] != "records" and _valid_record_header(sample.inb, 0):
        found_in = (0, "records")
    if found_out is None and found_in[1] != "records" and _valid_record_header(sample.out, 0):
        found_out = (0, "records")
    anomalies: list[str] = []
    tls: dict[str, Any] = {
        "version": None, "sni": None, "alpn": [], "cipher": None,
        "ja4": None, "ja3": None, "ja3s": None, "cert": None,
    }
    dirs: dict[int, _Direction | None] = {}
    for direction, found in ((OUT, found_out), (IN, found_in)):
        if found is None:
            dirs[direction] = None
            continue
        start, how = found
        d = _Direction(sample.stream(direction), start, how)
        if how != "sslv2":
            d.records = parse_records(d.data, start, sample.gaps(direction), anomalies)
        dirs[direction] = d
    cl, sv = dirs[OUT], dirs[IN]
    if (cl and cl.how == "preamble") or (sv and sv.how == "preamble"):
        tls["preamble"] = {"out": cl.start if cl else None, "in": sv.start if sv else None}
    if (cl and cl.how == "sslv2") or (sv and sv.how == "sslv2"):
        _sslv2(cl, sv, tls, anomalies)

    # Server first: a HelloRetryRequest changes how the client side is read.
    hrr = False
    ch: ClientHello | None = None
    sh: ServerHello | None = None
    first: HandshakeMessage | None = None
    first_hello: ServerHello | None = None  # parsed once, reused below unless an HRR re-reads
    if sv and sv.how != "sslv2":
        _collect_handshake(sv, after_ccs=False)
        first = next((m for m in sv.messages if m.msg_type == HandshakeType.SERVER_HELLO), None)
        if first is not None:
            first_hello = parse_server_hello(first.body, complete=first.complete)
            if first_hello.is_hrr:
                hrr = True
                _collect_handshake(sv, after_ccs=True)
    if cl and cl.records:  # after an SSLv2-format hello, the TLS records that follow
        _collect_handshake(cl, after_ccs=hrr)

    # ---- client side
    client_hellos: list[ClientHello] = []
    client_certs: list[bytes] = []
    if cl:
        for m in cl.messages:
            if m.msg_type == HandshakeType.CLIENT_HELLO and len(client_hellos) < 2:
                client_hellos.append(parse_client_hello(m.body, complete=m.complete))
            elif m.msg_type == HandshakeType.CERTIFICATE and not client_certs:
                client_certs, _ = _cert_chain(m.body, m.complete, anomalies, "client_certificate")
        cl.app_data = sum(1 for r in cl.records if r.content_type == ContentType.APPLICATION_DATA)
    if client_hellos:
        ch = client_hellos[0]
        for a in ch.anomalies:
            flag_anomaly(anomalies, a)
        tls.update(hello_summary(ch, "t", anomalies))
        tls["sni"] = ch.sni
        if len(client_hellos) > 1:
            tls["ja4_second"] = fp.ja4(client_hellos[1], "t")

    # ---- server side
    server_certs: list[bytes] = []
    chain_complete = False
    cert_request = False
    ske_curve: int | None = None
    if sv:
        for m in sv.messages:
            if m.msg_type == HandshakeType.SERVER_HELLO:
                parsed = first_hello if m is first else parse_server_hello(m.body, complete=m.complete)
                if sh is None or sh.is_hrr:
                    sh = parsed
            elif m.msg_type == HandshakeType.CERTIFICATE and not server_certs:
                server_certs, chain_complete = _cert_chain(m.body, m.complete, anomalies, "certificate")
                if not m.complete:
                    chain_complete = False
            elif m.msg_type == HandshakeType.SERVER_KEY_EXCHANGE and len(m.body) >= 3 and m.body[0] == 3:
                ske_curve = int.from_bytes(m.body[1:3], "big")  # RFC 8422 §5.4 named_curve
            elif m.msg_type == HandshakeType.CERTIFICATE_REQUEST:
                cert_request = True
        sv.app_data = sum(1 for r in sv.records if r.content_type == ContentType.APPLICATION_DATA)
    if sh is not None:
        for a in sh.anomalies:
            flag_anomaly(anomalies, a)
        if sh.is_hrr:
            tls["hello_retry"] = True
        else:
            tls.update(server_hello_fields(sh, ske_curve, anomalies))
        if hrr:
            tls["hello_retry"] = True

    # ---- certificates (TLS <= 1.2 only: RFC 8446 §2 encrypts them in 1.3)
    tls13 = sh is not None and not sh.is_hrr and (sh.version == 0x0304 or sh.version >> 8 == 0x7F)
    if server_certs:
        leaf = summarize(server_certs[0])
        for a in leaf.pop("anomalies", []):
            flag_anomaly(anomalies, f"cert_{a}")
        tls["cert"] = leaf
        tls["cert_chain"] = [summarize_fp(c) for c in server_certs[1:]]
        tls["cert_visibility"] = "visible" if chain_complete else "partial"
    elif tls13:
        tls["cert_visibility"] = "encrypted"
    elif sv and sv.messages and any(not m.complete for m in sv.messages):
        tls["cert_visibility"] = "truncated"
    else:
        tls["cert_visibility"] = "absent"
    if cert_request:
        tls["client_cert_requested"] = True
    if client_certs:
        cc = summarize(client_certs[0])
        for a in cc.pop("anomalies", []):
            flag_anomaly(anomalies, f"client_cert_{a}")
        tls["client_cert"] = cc
    else:
        tls["client_cert"] = None
    # Say what could not be seen: in TLS 1.3 the client's Certificate is
    # encrypted (RFC 8446 §4.4.2), so "no client_cert" proves nothing there.
    tls["client_cert_visibility"] = "visible" if client_certs else ("encrypted" if tls13 else "absent")

    # ---- resumption (Zeek's notion: reused key material)
    resumed = False
    if sh is not None and not sh.is_hrr:
        if tls13:
            resumed = sh.psk  # RFC 8446 §4.2.11: server selected a PSK
        elif sh.session_id and ch is not None and sh.session_id == ch.session_id:
            resumed = True  # RFC 5246 §7.4.1.3: echoed session id = abbreviated handshake
        elif sv and not server_certs and sv.ccs_index is not None and not any(
            m.msg_type in (HandshakeType.CERTIFICATE, HandshakeType.SERVER_KEY_EXCHANGE) for m in sv.messages
        ):
            resumed = True  # RFC 5077 §3.1: ticket resumption, CCS straight after SH
    tls["resumed"] = resumed

    # ---- alerts and establishment
    alerts: list[dict[str, Any]] = []
    fatal = False
    for direction, d in ((OUT, cl), (IN, sv)):
        if d is None:
            continue
        for i, rec in enumerate(d.records):
            if rec.content_type != ContentType.ALERT or len(alerts) >= MAX_ALERTS:
                continue
            encrypted = (d.ccs_index is not None and i > d.ccs_index) or rec.length != 2 or (
                direction == IN and tls13 and i > 0
            )
            entry: dict[str, Any] = {"dir": "out" if direction == OUT else "in"}
            if encrypted or rec.available < 2:
                entry["encrypted"] = True
            else:
                level, desc = d.data[rec.offset + 5], d.data[rec.offset + 6]
                entry["level"] = {1: "warning", 2: "fatal"}.get(level, str(level))
                entry["description"] = ALERT_NAMES.get(desc, str(desc))
                fatal = fatal or level == 2
            alerts.append(entry)
    tls["alerts"] = alerts
    if tls13:
        established = bool(cl and sv and cl.app_data and sv.app_data) and not fatal
    else:
        established = bool(
            sh is not None and cl and sv and cl.ccs_index is not None and sv.ccs_index is not None
        ) and not fatal
    if sv and sv.how == "records" and cl and cl.how == "records":
        established = True  # mid-stream: both sides already exchanging records
        tls["handshake_seen"] = False
    if not established and not fatal and (_sample_cut(sample, OUT) or _sample_cut(sample, IN)):
        # The sample ended before the handshake could be seen to finish (a
        # long certificate chain fills the engine's first KiB): not observable.
        tls["established"] = None
    else:
        tls["established"] = established

    records_out = _records_report(sample, dirs)
    tls["anomalies"] = anomalies
    return {"l7": "tls", "tls": tls, "tls_records": records_out}


def client_hellos(stream: bytes, gaps: Iterable[tuple[int, int]] = (), limit: int = 4) -> list[ClientHello]:
    """Every plaintext ClientHello in a client stream, in order (at most ``limit``).

    A second ClientHello follows a HelloRetryRequest (RFC 8446 §4.1.4); FoxIO's
    Python JA4 reports each one, so the conformance tests use this.
    """
    found = find_tls_start(stream, HandshakeType.CLIENT_HELLO)
    if found is None or found[1] == "sslv2":
        return []
    d = _Direction(stream, found[0], found[1])
    d.records = parse_records(stream, found[0], gaps, [])
    _collect_handshake(d, after_ccs=True)
    return [
        parse_client_hello(m.body, complete=m.complete)
        for m in d.messages
        if m.msg_type == HandshakeType.CLIENT_HELLO
    ][:limit]


def _sample_cut(sample: FlowSample, direction: int) -> bool:
    """Did this direction carry more payload on the wire than its sample holds?"""
    wire_end = max((m.offset + m.length for m in sample.packets if m.direction == direction), default=0)
    return wire_end > len(sample.stream(direction))


def summarize_fp(der: bytes) -> dict[str, Any]:
    """Intermediate certificates: subject/issuer and fingerprint only (cheap)."""
    info = summarize(der)
    return {k: info.get(k) for k in ("subject", "issuer", "sha1", "self_signed", "not_after")}


def _records_report(sample: FlowSample, dirs: dict[int, _Direction | None]) -> list[dict[str, Any]]:
    rows: list[tuple[float, int, int, dict[str, Any]]] = []
    for direction, d in dirs.items():
        if d is None:
            continue
        times = _record_times(sample, direction)
        # Message types that start inside each plaintext handshake record.
        starts: dict[int, list[int]] = {}
        for rec_idx, begin, end in d.hs_record_spans:
            starts[rec_idx] = [m.msg_type for m in d.messages if begin <= m.offset < end]
        for i, rec in enumerate(d.records[:MAX_RECORDS_REPORTED]):
            ts = _ts_at(times, rec.offset)
            row: dict[str, Any] = {
                "dir": "out" if direction == OUT else "in",
                "ts": ts,
                "content_type": rec.content_type,
                "version": f"0x{rec.version:04x}",
                "length": rec.length,
            }
            if i in starts:
                row["handshake"] = starts[i]
            rows.append((ts if ts is not None else 0.0, direction, rec.offset, row))
    rows.sort(key=lambda x: (x[0], x[2], x[1]))
    return [r for _, _, _, r in rows]


def _sslv2(cl: _Direction | None, sv: _Direction | None, tls: dict[str, Any], anomalies: list[str]) -> None:
    """SSL 2.0 CLIENT-HELLO / SERVER-HELLO (two-byte record header), minimal.

    An SSLv2-format ClientHello may still offer SSLv3/TLS (RFC 5246 App. E.2);
    the server then answers with an ordinary TLS record.
    """
    if cl is not None and cl.how == "sslv2":
        data = cl.data
        version = int.from_bytes(data[3:5], "big")
        spec_len = int.from_bytes(data[5:7], "big") if len(data) >= 7 else 0
        tls["client_versions"] = [version_name(version)]
        tls["client_ciphers"] = spec_len // 3
        tls["sslv2_client_hello"] = True
        length = ((data[0] & 0x7F) << 8) | data[1]
        # The rest of the client stream is TLS records once a v3+ server answers.
        nxt = 2 + length
        if sv is not None and sv.how != "sslv2" and nxt < len(data):
            cl.records = parse_records(data, nxt, (), anomalies)
    if sv is not None and sv.how == "sslv2":
        tls["version"] = "SSLv2"
        tls["established"] = False


# IANA TLS Cipher Suites registry (tls-parameters-4), plus legacy SSL_ names;
# GREASE values (RFC 8701) are recognised by rule, not listed. The pre-RFC 7905
# ChaCha20 code points 0xCC13-0xCC15 carry Zeek's "_OLD" suffix so that every
# name maps back to one code point.
CIPHER_SUITES: dict[int, str] = {
    0x0000: "TLS_NULL_WITH_NULL_NULL",
    0x0001: "TLS_RSA_WITH_NULL_MD5",
    0x0002: "TLS_RSA_WITH_NULL_SHA",
    0x0003: "TLS_RSA_EXPORT_WITH_RC4_40_MD5",
    0x0004: "TLS_RSA_WITH_RC4_128_MD5",
    0x0005: "TLS_RSA_WITH_RC4_128_SHA",
    0x0006: "TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5",
    0x0007: "TLS_RSA_WITH_IDEA_CBC_SHA",
    0x0008: "TLS_RSA_EXPORT_WITH_DES40_CBC_SHA",
    0x0009: "TLS_RSA_WITH_DES_CBC_SHA",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0x000B: "TLS_DH_DSS_EXPORT_WITH_DES40_CBC_SHA",
    0x000C: "TLS_DH_DSS_WITH_DES_CBC_SHA",
    0x000D: "TLS_DH_DSS_WITH_3DES_EDE_CBC_SHA",
    0x000E: "TLS_DH_RSA_EXPORT_WITH_DES40_CBC_SHA",
    0x000F: "TLS_DH_RSA_WITH_DES_CBC_SHA",
    0x0010: "TLS_DH_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0011: "TLS_DHE_DSS_EXPORT_WITH_DES40_CBC_SHA",
    0x0012: "TLS_DHE_DSS_WITH_DES_CBC_SHA",
    0x0013: "TLS_DHE_DSS_WITH_3DES_EDE_CBC_SHA",
    0x0014: "TLS_DHE_RSA_EXPORT_WITH_DES40_CBC_SHA",
    0x0015: "TLS_DHE_RSA_WITH_DES_CBC_SHA",
    0x0016: "TLS_DHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0x0017: "TLS_DH_anon_EXPORT_WITH_RC4_40_MD5",
    0x0018: "TLS_DH_anon_WITH_RC4_128_MD5",
    0x0019: "TLS_DH_anon_EXPORT_WITH_DES40_CBC_SHA",
    0x001A: "TLS_DH_anon_WITH_DES_CBC_SHA",
    0x001B: "TLS_DH_anon_WITH_3DES_EDE_CBC_SHA",
    0x001C: "SSL_FORTEZZA_KEA_WITH_NULL_SHA",
    0x001D: "SSL_FORTEZZA_KEA_WITH_FORTEZZA_CBC_SHA",
    0x001E: "TLS_KRB5_WITH_DES_CBC_SHA",
    0x001F: "TLS_KRB5_WITH_3DES_EDE_CBC_SHA",
    0x0020: "TLS_KRB5_WITH_RC4_128_SHA",
    0x0021: "TLS_KRB5_WITH_IDEA_CBC_SHA",
    0x0022: "TLS_KRB5_WITH_DES_CBC_MD5",
    0x0023: "TLS_KRB5_WITH_3DES_EDE_CBC_MD5",
    0x0024: "TLS_KRB5_WITH_RC4_128_MD5",
    0x0025: "TLS_KRB5_WITH_IDEA_CBC_MD5",
    0x0026: "TLS_KRB5_EXPORT_WITH_DES_CBC_40_SHA",
    0x0027: "TLS_KRB5_EXPORT_WITH_RC2_CBC_40_SHA",
    0x0028: "TLS_KRB5_EXPORT_WITH_RC4_40_SHA",
    0x0029: "TLS_KRB5_EXPORT_WITH_DES_CBC_40_MD5",
    0x002A: "TLS_KRB5_EXPORT_WITH_RC2_CBC_40_MD5",
    0x002B: "TLS_KRB5_EXPORT_WITH_RC4_40_MD5",
    0x002C: "TLS_PSK_WITH_NULL_SHA",
    0x002D: "TLS_DHE_PSK_WITH_NULL_SHA",
    0x002E: "TLS_RSA_PSK_WITH_NULL_SHA",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0030: "TLS_DH_DSS_WITH_AES_128_CBC_SHA",
    0x0031: "TLS_DH_RSA_WITH_AES_128_CBC_SHA",
    0x0032: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    0x0034: "TLS_DH_anon_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x0036: "TLS_DH_DSS_WITH_AES_256_CBC_SHA",
    0x0037: "TLS_DH_RSA_WITH_AES_256_CBC_SHA",
    0x0038: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA",
    0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x003A: "TLS_DH_anon_WITH_AES_256_CBC_SHA",
    0x003B: "TLS_RSA_WITH_NULL_SHA256",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x003E: "TLS_DH_DSS_WITH_AES_128_CBC_SHA256",
    0x003F: "TLS_DH_RSA_WITH_AES_128_CBC_SHA256",
    0x0040: "TLS_DHE_DSS_WITH_AES_128_CBC_SHA256",
    0x0041: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA",
    0x0042: "TLS_DH_DSS_WITH_CAMELLIA_128_CBC_SHA",
    0x0043: "TLS_DH_RSA_WITH_CAMELLIA_128_CBC_SHA",
    0x0044: "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA",
    0x0045: "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA",
    0x0046: "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA",
    0x0060: "TLS_RSA_EXPORT1024_WITH_RC4_56_MD5",
    0x0061: "TLS_RSA_EXPORT1024_WITH_RC2_CBC_56_MD5",
    0x0062: "TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA",
    0x0063: "TLS_DHE_DSS_EXPORT1024_WITH_DES_CBC_SHA",
    0x0064: "TLS_RSA_EXPORT1024_WITH_RC4_56_SHA",
    0x0065: "TLS_DHE_DSS_EXPORT1024_WITH_RC4_56_SHA",
    0x0066: "TLS_DHE_DSS_WITH_RC4_128_SHA",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    0x0068: "TLS_DH_DSS_WITH_AES_256_CBC_SHA256",
    0x0069: "TLS_DH_RSA_WITH_AES_256_CBC_SHA256",
    0x006A: "TLS_DHE_DSS_WITH_AES_256_CBC_SHA256",
    0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0x006C: "TLS_DH_anon_WITH_AES_128_CBC_SHA256",
    0x006D: "TLS_DH_anon_WITH_AES_256_CBC_SHA256",
    0x0080: "TLS_GOSTR341094_WITH_28147_CNT_IMIT",
    0x0081: "TLS_GOSTR341001_WITH_28147_CNT_IMIT",
    0x0082: "TLS_GOSTR341094_WITH_NULL_GOSTR3411",
    0x0083: "TLS_GOSTR341001_WITH_NULL_GOSTR3411",
    0x0084: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA",
    0x0085: "TLS_DH_DSS_WITH_CAMELLIA_256_CBC_SHA",
    0x0086: "TLS_DH_RSA_WITH_CAMELLIA_256_CBC_SHA",
    0x0087: "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA",
    0x0088: "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA",
    0x0089: "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA",
    0x008A: "TLS_PSK_WITH_RC4_128_SHA",
    0x008B: "TLS_PSK_WITH_3DES_EDE_CBC_SHA",
    0x008C: "TLS_PSK_WITH_AES_128_CBC_SHA",
    0x008D: "TLS_PSK_WITH_AES_256_CBC_SHA",
    0x008E: "TLS_DHE_PSK_WITH_RC4_128_SHA",
    0x008F: "TLS_DHE_PSK_WITH_3DES_EDE_CBC_SHA",
    0x0090: "TLS_DHE_PSK_WITH_AES_128_CBC_SHA",
    0x0091: "TLS_DHE_PSK_WITH_AES_256_CBC_SHA",
    0x0092: "TLS_RSA_PSK_WITH_RC4_128_SHA",
    0x0093: "TLS_RSA_PSK_WITH_3DES_EDE_CBC_SHA",
    0x0094: "TLS_RSA_PSK_WITH_AES_128_CBC_SHA",
    0x0095: "TLS_RSA_PSK_WITH_AES_256_CBC_SHA",
    0x0096: "TLS_RSA_WITH_SEED_CBC_SHA",
    0x0097: "TLS_DH_DSS_WITH_SEED_CBC_SHA",
    0x0098: "TLS_DH_RSA_WITH_SEED_CBC_SHA",
    0x0099: "TLS_DHE_DSS_WITH_SEED_CBC_SHA",
    0x009A: "TLS_DHE_RSA_WITH_SEED_CBC_SHA",
    0x009B: "TLS_DH_anon_WITH_SEED_CBC_SHA",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x00A0: "TLS_DH_RSA_WITH_AES_128_GCM_SHA256",
    0x00A1: "TLS_DH_RSA_WITH_AES_256_GCM_SHA384",
    0x00A2: "TLS_DHE_DSS_WITH_AES_128_GCM_SHA256",
    0x00A3: "TLS_DHE_DSS_WITH_AES_256_GCM_SHA384",
    0x00A4: "TLS_DH_DSS_WITH_AES_128_GCM_SHA256",
    0x00A5: "TLS_DH_DSS_WITH_AES_256_GCM_SHA384",
    0x00A6: "TLS_DH_anon_WITH_AES_128_GCM_SHA256",
    0x00A7: "TLS_DH_anon_WITH_AES_256_GCM_SHA384",
    0x00A8: "TLS_PSK_WITH_AES_128_GCM_SHA256",
    0x00A9: "TLS_PSK_WITH_AES_256_GCM_SHA384",
    0x00AA: "TLS_DHE_PSK_WITH_AES_128_GCM_SHA256",
    0x00AB: "TLS_DHE_PSK_WITH_AES_256_GCM_SHA384",
    0x00AC: "TLS_RSA_PSK_WITH_AES_128_GCM_SHA256",
    0x00AD: "TLS_RSA_PSK_WITH_AES_256_GCM_SHA384",
    0x00AE: "TLS_PSK_WITH_AES_128_CBC_SHA256",
    0x00AF: "TLS_PSK_WITH_AES_256_CBC_SHA384",
    0x00B0: "TLS_PSK_WITH_NULL_SHA256",
    0x00B1: "TLS_PSK_WITH_NULL_SHA384",
    0x00B2: "TLS_DHE_PSK_WITH_AES_128_CBC_SHA256",
    0x00B3: "TLS_DHE_PSK_WITH_AES_256_CBC_SHA384",
    0x00B4: "TLS_DHE_PSK_WITH_NULL_SHA256",
    0x00B5: "TLS_DHE_PSK_WITH_NULL_SHA384",
    0x00B6: "TLS_RSA_PSK_WITH_AES_128_CBC_SHA256",
    0x00B7: "TLS_RSA_PSK_WITH_AES_256_CBC_SHA384",
    0x00B8: "TLS_RSA_PSK_WITH_NULL_SHA256",
    0x00B9: "TLS_RSA_PSK_WITH_NULL_SHA384",
    0x00BA: "TLS_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0x00BB: "TLS_DH_DSS_WITH_CAMELLIA_128_CBC_SHA256",
    0x00BC: "TLS_DH_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0x00BD: "TLS_DHE_DSS_WITH_CAMELLIA_128_CBC_SHA256",
    0x00BE: "TLS_DHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0x00BF: "TLS_DH_anon_WITH_CAMELLIA_128_CBC_SHA256",
    0x00C0: "TLS_RSA_WITH_CAMELLIA_256_CBC_SHA256",
    0x00C1: "TLS_DH_DSS_WITH_CAMELLIA_256_CBC_SHA256",
    0x00C2: "TLS_DH_RSA_WITH_CAMELLIA_256_CBC_SHA256",
    0x00C3: "TLS_DHE_DSS_WITH_CAMELLIA_256_CBC_SHA256",
    0x00C4: "TLS_DHE_RSA_WITH_CAMELLIA_256_CBC_SHA256",
    0x00C5: "TLS_DH_anon_WITH_CAMELLIA_256_CBC_SHA256",
    0x00C6: "TLS_SM4_GCM_SM3",
    0x00C7: "TLS_SM4_CCM_SM3",
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    0x5600: "TLS_FALLBACK_SCSV",
    0xC001: "TLS_ECDH_ECDSA_WITH_NULL_SHA",
    0xC002: "TLS_ECDH_ECDSA_WITH_RC4_128_SHA",
    0xC003: "TLS_ECDH_ECDSA_WITH_3DES_EDE_CBC_SHA",
    0xC004: "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA",
    0xC005: "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA",
    0xC006: "TLS_ECDHE_ECDSA_WITH_NULL_SHA",
    0xC007: "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    0xC008: "TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC00B: "TLS_ECDH_RSA_WITH_NULL_SHA",
    0xC00C: "TLS_ECDH_RSA_WITH_RC4_128_SHA",
    0xC00D: "TLS_ECDH_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC00E: "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA",
    0xC00F: "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA",
    0xC010: "TLS_ECDHE_RSA_WITH_NULL_SHA",
    0xC011: "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC015: "TLS_ECDH_anon_WITH_NULL_SHA",
    0xC016: "TLS_ECDH_anon_WITH_RC4_128_SHA",
    0xC017: "TLS_ECDH_anon_WITH_3DES_EDE_CBC_SHA",
    0xC018: "TLS_ECDH_anon_WITH_AES_128_CBC_SHA",
    0xC019: "TLS_ECDH_anon_WITH_AES_256_CBC_SHA",
    0xC01A: "TLS_SRP_SHA_WITH_3DES_EDE_CBC_SHA",
    0xC01B: "TLS_SRP_SHA_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC01C: "TLS_SRP_SHA_DSS_WITH_3DES_EDE_CBC_SHA",
    0xC01D: "TLS_SRP_SHA_WITH_AES_128_CBC_SHA",
    0xC01E: "TLS_SRP_SHA_RSA_WITH_AES_128_CBC_SHA",
    0xC01F: "TLS_SRP_SHA_DSS_WITH_AES_128_CBC_SHA",
    0xC020: "TLS_SRP_SHA_WITH_AES_256_CBC_SHA",
    0xC021: "TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA",
    0xC022: "TLS_SRP_SHA_DSS_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC025: "TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC026: "TLS_ECDH_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0xC029: "TLS_ECDH_RSA_WITH_AES_128_CBC_SHA256",
    0xC02A: "TLS_ECDH_RSA_WITH_AES_256_CBC_SHA384",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02D: "TLS_ECDH_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02E: "TLS_ECDH_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xC031: "TLS_ECDH_RSA_WITH_AES_128_GCM_SHA256",
    0xC032: "TLS_ECDH_RSA_WITH_AES_256_GCM_SHA384",
    0xC033: "TLS_ECDHE_PSK_WITH_RC4_128_SHA",
    0xC034: "TLS_ECDHE_PSK_WITH_3DES_EDE_CBC_SHA",
    0xC035: "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA",
    0xC036: "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA",
    0xC037: "TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256",
    0xC038: "TLS_ECDHE_PSK_WITH_AES_256_CBC_SHA384",
    0xC039: "TLS_ECDHE_PSK_WITH_NULL_SHA",
    0xC03A: "TLS_ECDHE_PSK_WITH_NULL_SHA256",
    0xC03B: "TLS_ECDHE_PSK_WITH_NULL_SHA384",
    0xC03C: "TLS_RSA_WITH_ARIA_128_CBC_SHA256",
    0xC03D: "TLS_RSA_WITH_ARIA_256_CBC_SHA384",
    0xC03E: "TLS_DH_DSS_WITH_ARIA_128_CBC_SHA256",
    0xC03F: "TLS_DH_DSS_WITH_ARIA_256_CBC_SHA384",
    0xC040: "TLS_DH_RSA_WITH_ARIA_128_CBC_SHA256",
    0xC041: "TLS_DH_RSA_WITH_ARIA_256_CBC_SHA384",
    0xC042: "TLS_DHE_DSS_WITH_ARIA_128_CBC_SHA256",
    0xC043: "TLS_DHE_DSS_WITH_ARIA_256_CBC_SHA384",
    0xC044: "TLS_DHE_RSA_WITH_ARIA_128_CBC_SHA256",
    0xC045: "TLS_DHE_RSA_WITH_ARIA_256_CBC_SHA384",
    0xC046: "TLS_DH_anon_WITH_ARIA_128_CBC_SHA256",
    0xC047: "TLS_DH_anon_WITH_ARIA_256_CBC_SHA384",
    0xC048: "TLS_ECDHE_ECDSA_WITH_ARIA_128_CBC_SHA256",
    0xC049: "TLS_ECDHE_ECDSA_WITH_ARIA_256_CBC_SHA384",
    0xC04A: "TLS_ECDH_ECDSA_WITH_ARIA_128_CBC_SHA256",
    0xC04B: "TLS_ECDH_ECDSA_WITH_ARIA_256_CBC_SHA384",
    0xC04C: "TLS_ECDHE_RSA_WITH_ARIA_128_CBC_SHA256",
    0xC04D: "TLS_ECDHE_RSA_WITH_ARIA_256_CBC_SHA384",
    0xC04E: "TLS_ECDH_RSA_WITH_ARIA_128_CBC_SHA256",
    0xC04F: "TLS_ECDH_RSA_WITH_ARIA_256_CBC_SHA384",
    0xC050: "TLS_RSA_WITH_ARIA_128_GCM_SHA256",
    0xC051: "TLS_RSA_WITH_ARIA_256_GCM_SHA384",
    0xC052: "TLS_DHE_RSA_WITH_ARIA_128_GCM_SHA256",
    0xC053: "TLS_DHE_RSA_WITH_ARIA_256_GCM_SHA384",
    0xC054: "TLS_DH_RSA_WITH_ARIA_128_GCM_SHA256",
    0xC055: "TLS_DH_RSA_WITH_ARIA_256_GCM_SHA384",
    0xC056: "TLS_DHE_DSS_WITH_ARIA_128_GCM_SHA256",
    0xC057: "TLS_DHE_DSS_WITH_ARIA_256_GCM_SHA384",
    0xC058: "TLS_DH_DSS_WITH_ARIA_128_GCM_SHA256",
    0xC059: "TLS_DH_DSS_WITH_ARIA_256_GCM_SHA384",
    0xC05A: "TLS_DH_anon_WITH_ARIA_128_GCM_SHA256",
    0xC05B: "TLS_DH_anon_WITH_ARIA_256_GCM_SHA384",
    0xC05C: "TLS_ECDHE_ECDSA_WITH_ARIA_128_GCM_SHA256",
    0xC05D: "TLS_ECDHE_ECDSA_WITH_ARIA_256_GCM_SHA384",
    0xC05E: "TLS_ECDH_ECDSA_WITH_ARIA_128_GCM_SHA256",
    0xC05F: "TLS_ECDH_ECDSA_WITH_ARIA_256_GCM_SHA384",
    0xC060: "TLS_ECDHE_RSA_WITH_ARIA_128_GCM_SHA256",
    0xC061: "TLS_ECDHE_RSA_WITH_ARIA_256_GCM_SHA384",
    0xC062: "TLS_ECDH_RSA_WITH_ARIA_128_GCM_SHA256",
    0xC063: "TLS_ECDH_RSA_WITH_ARIA_256_GCM_SHA384",
    0xC064: "TLS_PSK_WITH_ARIA_128_CBC_SHA256",
    0xC065: "TLS_PSK_WITH_ARIA_256_CBC_SHA384",
    0xC066: "TLS_DHE_PSK_WITH_ARIA_128_CBC_SHA256",
    0xC067: "TLS_DHE_PSK_WITH_ARIA_256_CBC_SHA384",
    0xC068: "TLS_RSA_PSK_WITH_ARIA_128_CBC_SHA256",
    0xC069: "TLS_RSA_PSK_WITH_ARIA_256_CBC_SHA384",
    0xC06A: "TLS_PSK_WITH_ARIA_128_GCM_SHA256",
    0xC06B: "TLS_PSK_WITH_ARIA_256_GCM_SHA384",
    0xC06C: "TLS_DHE_PSK_WITH_ARIA_128_GCM_SHA256",
    0xC06D: "TLS_DHE_PSK_WITH_ARIA_256_GCM_SHA384",
    0xC06E: "TLS_RSA_PSK_WITH_ARIA_128_GCM_SHA256",
    0xC06F: "TLS_RSA_PSK_WITH_ARIA_256_GCM_SHA384",
    0xC070: "TLS_ECDHE_PSK_WITH_ARIA_128_CBC_SHA256",
    0xC071: "TLS_ECDHE_PSK_WITH_ARIA_256_CBC_SHA384",
    0xC072: "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_CBC_SHA256",
    0xC073: "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_CBC_SHA384",
    0xC074: "TLS_ECDH_ECDSA_WITH_CAMELLIA_128_CBC_SHA256",
    0xC075: "TLS_ECDH_ECDSA_WITH_CAMELLIA_256_CBC_SHA384",
    0xC076: "TLS_ECDHE_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0xC077: "TLS_ECDHE_RSA_WITH_CAMELLIA_256_CBC_SHA384",
    0xC078: "TLS_ECDH_RSA_WITH_CAMELLIA_128_CBC_SHA256",
    0xC079: "TLS_ECDH_RSA_WITH_CAMELLIA_256_CBC_SHA384",
    0xC07A: "TLS_RSA_WITH_CAMELLIA_128_GCM_SHA256",
    0xC07B: "TLS_RSA_WITH_CAMELLIA_256_GCM_SHA384",
    0xC07C: "TLS_DHE_RSA_WITH_CAMELLIA_128_GCM_SHA256",
    0xC07D: "TLS_DHE_RSA_WITH_CAMELLIA_256_GCM_SHA384",
    0xC07E: "TLS_DH_RSA_WITH_CAMELLIA_128_GCM_SHA256",
    0xC07F: "TLS_DH_RSA_WITH_CAMELLIA_256_GCM_SHA384",
    0xC080: "TLS_DHE_DSS_WITH_CAMELLIA_128_GCM_SHA256",
    0xC081: "TLS_DHE_DSS_WITH_CAMELLIA_256_GCM_SHA384",
    0xC082: "TLS_DH_DSS_WITH_CAMELLIA_128_GCM_SHA256",
    0xC083: "TLS_DH_DSS_WITH_CAMELLIA_256_GCM_SHA384",
    0xC084: "TLS_DH_anon_WITH_CAMELLIA_128_GCM_SHA256",
    0xC085: "TLS_DH_anon_WITH_CAMELLIA_256_GCM_SHA384",
    0xC086: "TLS_ECDHE_ECDSA_WITH_CAMELLIA_128_GCM_SHA256",
    0xC087: "TLS_ECDHE_ECDSA_WITH_CAMELLIA_256_GCM_SHA384",
    0xC088: "TLS_ECDH_ECDSA_WITH_CAMELLIA_128_GCM_SHA256",
    0xC089: "TLS_ECDH_ECDSA_WITH_CAMELLIA_256_GCM_SHA384",
    0xC08A: "TLS_ECDHE_RSA_WITH_CAMELLIA_128_GCM_SHA256",
    0xC08B: "TLS_ECDHE_RSA_WITH_CAMELLIA_256_GCM_SHA384",
    0xC08C: "TLS_ECDH_RSA_WITH_CAMELLIA_128_GCM_SHA256",
    0xC08D: "TLS_ECDH_RSA_WITH_CAMELLIA_256_GCM_SHA384",
    0xC08E: "TLS_PSK_WITH_CAMELLIA_128_GCM_SHA256",
    0xC08F: "TLS_PSK_WITH_CAMELLIA_256_GCM_SHA384",
    0xC090: "TLS_DHE_PSK_WITH_CAMELLIA_128_GCM_SHA256",
    0xC091: "TLS_DHE_PSK_WITH_CAMELLIA_256_GCM_SHA384",
    0xC092: "TLS_RSA_PSK_WITH_CAMELLIA_128_GCM_SHA256",
    0xC093: "TLS_RSA_PSK_WITH_CAMELLIA_256_GCM_SHA384",
    0xC094: "TLS_PSK_WITH_CAMELLIA_128_CBC_SHA256",
    0xC095: "TLS_PSK_WITH_CAMELLIA_256_CBC_SHA384",
    0xC096: "TLS_DHE_PSK_WITH_CAMELLIA_128_CBC_SHA256",
    0xC097: "TLS_DHE_PSK_WITH_CAMELLIA_256_CBC_SHA384",
    0xC098: "TLS_RSA_PSK_WITH_CAMELLIA_128_CBC_SHA256",
    0xC099: "TLS_RSA_PSK_WITH_CAMELLIA_256_CBC_SHA384",
    0xC09A: "TLS_ECDHE_PSK_WITH_CAMELLIA_128_CBC_SHA256",
    0xC09B: "TLS_ECDHE_PSK_WITH_CAMELLIA_256_CBC_SHA384",
    0xC09C: "TLS_RSA_WITH_AES_128_CCM",
    0xC09D: "TLS_RSA_WITH_AES_256_CCM",
    0xC09E: "TLS_DHE_RSA_WITH_AES_128_CCM",
    0xC09F: "TLS_DHE_RSA_WITH_AES_256_CCM",
    0xC0A0: "TLS_RSA_WITH_AES_128_CCM_8",
    0xC0A1: "TLS_RSA_WITH_AES_256_CCM_8",
    0xC0A2: "TLS_DHE_RSA_WITH_AES_128_CCM_8",
    0xC0A3: "TLS_DHE_RSA_WITH_AES_256_CCM_8",
    0xC0A4: "TLS_PSK_WITH_AES_128_CCM",
    0xC0A5: "TLS_PSK_WITH_AES_256_CCM",
    0xC0A6: "TLS_DHE_PSK_WITH_AES_128_CCM",
    0xC0A7: "TLS_DHE_PSK_WITH_AES_256_CCM",
    0xC0A8: "TLS_PSK_WITH_AES_128_CCM_8",
    0xC0A9: "TLS_PSK_WITH_AES_256_CCM_8",
    0xC0AA: "TLS_PSK_DHE_WITH_AES_128_CCM_8",
    0xC0AB: "TLS_PSK_DHE_WITH_AES_256_CCM_8",
    0xC0AC: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    0xC0AD: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    0xC0AE: "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
    0xC0AF: "TLS_ECDHE_ECDSA_WITH_AES_256_CCM_8",
    0xC0B0: "TLS_ECCPWD_WITH_AES_128_GCM_SHA256",
    0xC0B1: "TLS_ECCPWD_WITH_AES_256_GCM_SHA384",
    0xC0B2: "TLS_ECCPWD_WITH_AES_128_CCM_SHA256",
    0xC0B3: "TLS_ECCPWD_WITH_AES_256_CCM_SHA384",
    0xC0B4: "TLS_SHA256_SHA256",
    0xC0B5: "TLS_SHA384_SHA384",
    0xC0FF: "TLS_ECJPAKE_WITH_AES_128_CCM_8",
    0xC100: "TLS_GOSTR341112_256_WITH_KUZNYECHIK_CTR_OMAC",
    0xC101: "TLS_GOSTR341112_256_WITH_MAGMA_CTR_OMAC",
    0xC102: "TLS_GOSTR341112_256_WITH_28147_CNT_IMIT",
    0xC103: "TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_L",
    0xC104: "TLS_GOSTR341112_256_WITH_MAGMA_MGM_L",
    0xC105: "TLS_GOSTR341112_256_WITH_KUZNYECHIK_MGM_S",
    0xC106: "TLS_GOSTR341112_256_WITH_MAGMA_MGM_S",
    0xCC13: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
    0xCC14: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
    0xCC15: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256_OLD",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAB: "TLS_PSK_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAC: "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAD: "TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAE: "TLS_RSA_PSK_WITH_CHACHA20_POLY1305_SHA256",
    0xD001: "TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256",
    0xD002: "TLS_ECDHE_PSK_WITH_AES_256_GCM_SHA384",
    0xD003: "TLS_ECDHE_PSK_WITH_AES_128_CCM_8_SHA256",
    0xD005: "TLS_ECDHE_PSK_WITH_AES_128_CCM_SHA256",
    0xE410: "TLS_RSA_WITH_ESTREAM_SALSA20_SHA1",
    0xE411: "TLS_RSA_WITH_SALSA20_SHA1",
    0xE412: "TLS_ECDHE_RSA_WITH_ESTREAM_SALSA20_SHA1",
    0xE413: "TLS_ECDHE_RSA_WITH_SALSA20_SHA1",
    0xE414: "TLS_ECDHE_ECDSA_WITH_ESTREAM_SALSA20_SHA1",
    0xE415: "TLS_ECDHE_ECDSA_WITH_SALSA20_SHA1",
    0xE416: "TLS_PSK_WITH_ESTREAM_SALSA20_SHA1",
    0xE417: "TLS_PSK_WITH_SALSA20_SHA1",
    0xE418: "TLS_ECDHE_PSK_WITH_ESTREAM_SALSA20_SHA1",
    0xE419: "TLS_ECDHE_PSK_WITH_SALSA20_SHA1",
    0xE41A: "TLS_RSA_PSK_WITH_ESTREAM_SALSA20_SHA1",
    0xE41B: "TLS_RSA_PSK_WITH_SALSA20_SHA1",
    0xE41C: "TLS_DHE_PSK_WITH_ESTREAM_SALSA20_SHA1",
    0xE41D: "TLS_DHE_PSK_WITH_SALSA20_SHA1",
    0xE41E: "TLS_DHE_RSA_WITH_ESTREAM_SALSA20_SHA1",
    0xE41F: "TLS_DHE_RSA_WITH_SALSA20_SHA1",
    0xFEFE: "SSL_RSA_FIPS_WITH_DES_CBC_SHA",
    0xFEFF: "SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA",
    0xFFE0: "SSL_RSA_FIPS_WITH_3DES_EDE_CBC_SHA",
    0xFFE1: "SSL_RSA_FIPS_WITH_DES_CBC_SHA",
}
