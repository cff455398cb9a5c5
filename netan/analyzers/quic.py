"""QUIC v1/v2 Initial packets: decrypt, reassemble CRYPTO, read the TLS hellos.

Contract: ``analyze(sample)`` returns ``None`` unless the UDP flow's first
client datagram is a QUIC long-header Initial packet of a version whose
Initial keys are public (v1 RFC 9000/9001, v2 RFC 9369, drafts 23-34); else
``{"l7": "quic", "tls": {...}}`` with ``version`` ("quic-v1", "quic-v2",
"quic-draft29", ...), ``sni``, ``alpn``, ``ja4`` (``q`` prefix), ``ja3``,
``cipher`` and ``alpn_negotiated`` from the server's Initial when seen, and
``anomalies``. Initial keys are derived from the client's first Destination
Connection ID (RFC 9001 §5.2), so anyone on path can read these packets: that
is the point of this analyzer, not a weakness it exploits.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.hmac import HMAC

from netan.analyzers import fingerprints as fp
from netan.analyzers.tls import (
    GROUP_NAMES,
    HandshakeType,
    alpn_text,
    cipher_name,
    hello_summary,
    parse_client_hello,
    parse_server_hello,
    split_handshake,
    version_name,
)
from netan.analyzers.x509info import safe_text
from netan.sample import IN, OUT, FlowSample

__all__ = ["analyze", "initial_keys", "decrypt_initials", "QuicVersion", "VERSIONS"]

log = logging.getLogger(__name__)

#: Datagrams examined per direction; a ClientHello fits in a handful.
MAX_DATAGRAMS = 16
#: Packets examined per datagram (coalescing, RFC 9000 §12.2).
MAX_PACKETS_PER_DATAGRAM = 8
#: CRYPTO frames kept and bytes reassembled per direction.
MAX_CRYPTO_FRAMES = 256
MAX_CRYPTO_BYTES = 65536
#: Candidate Destination Connection IDs tried for key derivation.
MAX_DCIDS = 4
MAX_ANOMALIES = 32


@dataclass(frozen=True, slots=True)
class QuicVersion:
    """What differs between QUIC versions for Initial packets."""

    name: str
    salt: bytes
    label_prefix: str  # "quic" (v1, drafts) or "quicv2" (RFC 9369 §3.3.2)
    initial_type: int  # long-header packet type of Initial (v2 changed it: RFC 9369 §3.2)


_V1 = QuicVersion("quic-v1", bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"), "quic", 0)
_V2 = QuicVersion("quic-v2", bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"), "quicv2", 1)
# draft-ietf-quic-tls-29..32 salt, and draft-23..28 salt.
_SALT_D29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")
_SALT_D23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")

VERSIONS: dict[int, QuicVersion] = {0x00000001: _V1, 0x6B3343CF: _V2}
for _d in range(29, 35):
    VERSIONS[0xFF000000 | _d] = QuicVersion(f"quic-draft{_d}", _SALT_D29, "quic", 0)
for _d in range(23, 29):
    VERSIONS[0xFF000000 | _d] = QuicVersion(f"quic-draft{_d}", _SALT_D23, "quic", 0)


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    h = HMAC(salt, hashes.SHA256())
    h.update(ikm)
    return h.finalize()


def _expand_label(secret: bytes, label: str, length: int) -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1) with an empty context."""
    full = b"tls13 " + label.encode("ascii")
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


@dataclass(frozen=True, slots=True)
class InitialKeys:
    key: bytes
    iv: bytes
    hp: bytes


def initial_keys(dcid: bytes, version: QuicVersion, server: bool) -> InitialKeys:
    """RFC 9001 §5.2 (RFC 9369 §3.3 for v2): Initial secrets from the client's DCID."""
    initial_secret = _hkdf_extract(version.salt, dcid)
    secret = _expand_label(initial_secret, "server in" if server else "client in", 32)
    p = version.label_prefix
    return InitialKeys(
        _expand_label(secret, f"{p} key", 16),
        _expand_label(secret, f"{p} iv", 12),
        _expand_label(secret, f"{p} hp", 16),
    )


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """RFC 9000 §16 variable-length integer: (value, next position)."""
    if pos >= len(data):
        return None
    first = data[pos]
    n = 1 << (first >> 6)
    if pos + n > len(data):
        return None
    value = first & 0x3F
    for b in data[pos + 1 : pos + n]:
        value = (value << 8) | b
    return value, pos + n


@dataclass(frozen=True, slots=True)
class _LongHeader:
    first: int
    version: int
    dcid: bytes
    scid: bytes
    pn_offset: int  # where the protected packet number starts
    end: int  # end of this packet within the datagram
    ptype: int


def _parse_long_header(dgram: bytes, pos: int) -> _LongHeader | None:
    """RFC 9000 §17.2 long header of an Initial packet (token and Length read)."""
    if pos + 7 > len(dgram) or not dgram[pos] & 0x80:
        return None
    first = dgram[pos]
    version = int.from_bytes(dgram[pos + 1 : pos + 5], "big")
    p = pos + 5
    dcid_len = dgram[p]
    if dcid_len > 20 or p + 1 + dcid_len >= len(dgram):  # RFC 9000 §17.2: at most 20 bytes
        return None
    dcid = dgram[p + 1 : p + 1 + dcid_len]
    p += 1 + dcid_len
    scid_len = dgram[p]
    if scid_len > 20 or p + 1 + scid_len > len(dgram):
        return None
    scid = dgram[p + 1 : p + 1 + scid_len]
    p += 1 + scid_len
    ptype = (first >> 4) & 0x03
    qv = VERSIONS.get(version)
    if qv is None or ptype != qv.initial_type:
        # Another packet type (0-RTT, Handshake, Retry): skip it if it has a Length.
        if qv is None or ptype == (3 if qv.initial_type == 0 else 0):  # Retry has no Length
            return _LongHeader(first, version, dcid, scid, -1, len(dgram), ptype)
        ln = _varint(dgram, p)
        if ln is None:
            return None
        return _LongHeader(first, version, dcid, scid, -1, min(len(dgram), ln[1] + ln[0]), ptype)
    tok = _varint(dgram, p)
    if tok is None or tok[1] + tok[0] > len(dgram):
        return None
    p = tok[1] + tok[0]
    ln = _varint(dgram, p)
    if ln is None:
        return None
    length, p = ln
    return _LongHeader(first, version, dcid, scid, p, p + length, ptype)


def _crypto_frames(payload: bytes, anomalies: list[str]) -> list[tuple[int, bytes]]:
    """CRYPTO frames (RFC 9000 §19.6) of a decrypted Initial payload.

    Initial packets may only carry PADDING, PING, ACK, CRYPTO and
    CONNECTION_CLOSE (RFC 9000 §17.2.2); anything else ends the walk.
    """
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(payload) and len(out) < MAX_CRYPTO_FRAMES:
        ftype = payload[pos]
        if ftype == 0x00:  # PADDING: skip the run
            while pos < len(payload) and payload[pos] == 0:
                pos += 1
            continue
        if ftype == 0x01:
            pos += 1
            continue
        if ftype in (0x02, 0x03):  # ACK (RFC 9000 §19.3)
            vals = []
            p = pos + 1
            for _ in range(4):
                v = _varint(payload, p)
                if v is None:
                    return out
                vals.append(v[0])
                p = v[1]
            ranges = vals[2]
            if ranges > 256:
                _flag(anomalies, "ack_ranges_absurd")
                return out
            for _ in range(2 * ranges + (3 if ftype == 0x03 else 0)):
                v = _varint(payload, p)
                if v is None:
                    return out
                p = v[1]
            pos = p
            continue
        if ftype == 0x06:
            off = _varint(payload, pos + 1)
            ln = _varint(payload, off[1]) if off else None
            if off is None or ln is None or ln[1] + ln[0] > len(payload):
                _flag(anomalies, "crypto_frame_truncated")
                return out
            out.append((off[0], payload[ln[1] : ln[1] + ln[0]]))
            pos = ln[1] + ln[0]
            continue
        if ftype in (0x1C, 0x1D):  # CONNECTION_CLOSE
            _flag(anomalies, "connection_close")
            return out
        _flag(anomalies, "unexpected_frame_in_initial")
        return out
    return out


def _flag(anomalies: list[str], name: str) -> None:
    if name not in anomalies and len(anomalies) < MAX_ANOMALIES:
        anomalies.append(name)


def _reassemble(frames: list[tuple[int, bytes]]) -> bytes:
    """Contiguous CRYPTO stream from offset 0 (frames may arrive in any order)."""
    buf = bytearray()
    pending = sorted(frames, key=lambda f: f[0])
    progress = True
    while progress:
        progress = False
        for off, data in pending:
            if off <= len(buf) < off + len(data) and off + len(data) <= MAX_CRYPTO_BYTES:
                buf += data[len(buf) - off :]
                progress = True
    return bytes(buf)


def decrypt_initials(
    datagrams: list[bytes], dcids: list[bytes], server: bool, anomalies: list[str],
    used_dcids: list[bytes] | None = None,
) -> tuple[QuicVersion | None, list[tuple[int, bytes]], list[bytes]]:
    """Decrypt every Initial packet in ``datagrams`` with keys from ``dcids``.

    Returns the version, the CRYPTO frames, and the DCIDs seen in headers (so
    the caller can retry with them after a Retry changed the connection ID).
    ``used_dcids``, when given, receives the DCIDs whose keys opened a packet.
    """
    frames: list[tuple[int, bytes]] = []
    version: QuicVersion | None = None
    seen_dcids: list[bytes] = []
    used = used_dcids if used_dcids is not None else []
    key_cache: dict[tuple[bytes, int], InitialKeys] = {}
    for dgram in datagrams[:MAX_DATAGRAMS]:
        pos = 0
        for _ in range(MAX_PACKETS_PER_DATAGRAM):
            if pos >= len(dgram) or not dgram[pos] & 0x80:
                break  # short header or padding: nothing more for us
            h = _parse_long_header(dgram, pos)
            if h is None:
                _flag(anomalies, "malformed_long_header")
                break
            if h.dcid not in seen_dcids and len(seen_dcids) < MAX_DCIDS:
                seen_dcids.append(h.dcid)
            qv = VERSIONS.get(h.version)
            if h.pn_offset >= 0 and qv is not None:
                version = version or qv
                payload = None
                # After a Retry the client re-derives keys from the DCID it now
                # sends (RFC 9001 §5.2), so the client's own DCIDs are candidates.
                candidates = list(dcids[:MAX_DCIDS])
                if not server:
                    candidates += [c for c in seen_dcids if c not in candidates]
                for dcid in candidates:
                    ck = (dcid, h.version)
                    if ck not in key_cache:
                        key_cache[ck] = initial_keys(dcid, qv, server)
                    payload = _decrypt(dgram, pos, h, key_cache[ck])
                    if payload is not None:
                        break
                if payload is None:
                    _flag(anomalies, "initial_decrypt_failed")
                else:
                    frames.extend(_crypto_frames(payload, anomalies))
                    if dcid in used:
                        used.remove(dcid)
                    used.append(dcid)  # last one that worked is last in the list
            if h.end <= pos:
                break
            pos = h.end
    return version, frames, seen_dcids


def _decrypt(dgram: bytes, start: int, h: _LongHeader, keys: InitialKeys) -> bytes | None:
    """Remove header protection (RFC 9001 §5.4.1) and open AES-128-GCM (§5.3)."""
    end = min(h.end, len(dgram))
    sample_at = h.pn_offset + 4
    if sample_at + 16 > end:
        return None
    enc = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = enc.update(dgram[sample_at : sample_at + 16]) + enc.finalize()
    first = dgram[start] ^ (mask[0] & 0x0F)  # long header: low 4 bits protected
    pn_len = (first & 0x03) + 1
    if h.pn_offset + pn_len > end:
        return None
    pn_bytes = bytes(b ^ m for b, m in zip(dgram[h.pn_offset : h.pn_offset + pn_len], mask[1 : 1 + pn_len]))
    header = bytes([first]) + dgram[start + 1 : h.pn_offset] + pn_bytes
    # RFC 9001 §5.3: nonce = IV xor packet number (left-padded).
    nonce = (int.from_bytes(keys.iv, "big") ^ int.from_bytes(pn_bytes, "big")).to_bytes(12, "big")
    try:
        return AESGCM(keys.key).decrypt(nonce, dgram[h.pn_offset + pn_len : end], header)
    except Exception:  # noqa: BLE001 - InvalidTag: wrong keys, corrupt or not QUIC
        return None


def _looks_like_initial(dgram: bytes) -> bool:
    if len(dgram) < 7 or (dgram[0] & 0xC0) != 0xC0:
        return False
    qv = VERSIONS.get(int.from_bytes(dgram[1:5], "big"))
    return qv is not None and ((dgram[0] >> 4) & 0x03) == qv.initial_type


def _is_long_header_of_known_version(dgram: bytes) -> bool:
    return len(dgram) >= 7 and (dgram[0] & 0xC0) == 0xC0 and int.from_bytes(dgram[1:5], "big") in VERSIONS


def _first_initial(datagrams: list[bytes]) -> _LongHeader | None:
    """The header of the client's first Initial packet (its DCID keys everything)."""
    for dgram in datagrams[:MAX_DATAGRAMS]:
        pos = 0
        for _ in range(MAX_PACKETS_PER_DATAGRAM):
            if pos >= len(dgram) or not dgram[pos] & 0x80:
                break
            h = _parse_long_header(dgram, pos)
            if h is None:
                break
            if h.pn_offset >= 0:
                return h
            if h.end <= pos:
                break
            pos = h.end
    return None


def _gquic_version(dgram: bytes) -> str | None:
    """Google QUIC version tag ("Q046", ...) of a client packet, if it carries one.

    Q046 uses an IETF-style long header (version at offset 1); Q043 and older
    use public flags with the version flag 0x01 and an 8-byte connection ID
    (version at offset 9).
    """
    for at in (1, 9):
        tag = dgram[at : at + 4]
        if len(tag) == 4 and tag[:2] == b"Q0" and tag[2:].isdigit():
            if at == 1 and not dgram[0] & 0x80:  # Q046: long header form
                continue
            if at == 9 and not (dgram[0] & 0x01 and dgram[0] & 0x08):  # version + 8-byte CID
                continue
            return tag.decode("ascii")
    return None


#: CHLO tags examined; real ones carry about 25.
MAX_CHLO_TAGS = 64


def _gquic_chlo(dgram: bytes, anomalies: list[str]) -> list[tuple[str, bytes]] | None:
    """Tag/value pairs of a plaintext gQUIC CHLO (QUIC Crypto handshake message).

    Message layout: "CHLO", u16 LE tag count, 2 bytes padding, then per tag a
    4-byte tag and a u32 LE end offset, then the values laid end to end. Found
    by searching the datagram, so the header and frame variants of Q039-Q046
    need no decoding; Q050 and later encrypt it like IETF QUIC and are not read.
    """
    at = dgram.find(b"CHLO")
    if at < 0 or at + 8 > len(dgram):
        return None
    count = int.from_bytes(dgram[at + 4 : at + 6], "little")
    if count > MAX_CHLO_TAGS:
        _flag(anomalies, "gquic_too_many_tags")
        count = MAX_CHLO_TAGS
    index = at + 8
    values = index + 8 * count
    out: list[tuple[str, bytes]] = []
    prev = 0
    for i in range(count):
        entry = dgram[index + 8 * i : index + 8 * i + 8]
        if len(entry) < 8:
            _flag(anomalies, "gquic_chlo_truncated")
            break
        tag = entry[:4].rstrip(b"\x00").decode("ascii", "replace")
        end = int.from_bytes(entry[4:], "little")
        if end < prev or values + end > len(dgram):
            _flag(anomalies, "gquic_chlo_offsets_inconsistent")
            break
        out.append((tag, dgram[values + prev : values + end]))
        prev = end
    return out


def _analyze_gquic(version: str, client: list[bytes]) -> dict[str, Any] | None:
    anomalies: list[str] = []
    tls: dict[str, Any] = {
        "version": f"gquic-{version}", "sni": None, "alpn": [], "cipher": None,
        "ja4": None, "ja3": None, "ja3s": None, "cert": None, "cert_visibility": "encrypted",
    }
    # Each CHLO (the inchoate one, then the full one after the server's REJ)
    # gives a CYU; the first one is ``cyu``, all of them ``cyu_all``.
    hellos = [t for t in (_gquic_chlo(d, anomalies) for d in client[:MAX_DATAGRAMS]) if t is not None][:4]
    if not hellos:
        return None  # a version-looking tag alone is too little to call it gQUIC
    cyus = []
    for tags in hellos:
        cyu = f"{int(version[1:])},{'-'.join(t for t, _ in tags)}"
        cyus.append({"hash": hashlib.md5(cyu.encode("ascii", "replace"), usedforsecurity=False).hexdigest(),
                     "string": safe_text(cyu, 1024)[0]})
    values = dict(hellos[0])
    if "SNI" in values:
        sni, flags = safe_text(values["SNI"].decode("utf-8", "backslashreplace"), 255)
        tls["sni"] = sni
        for f in flags:
            _flag(anomalies, f"sni_{f}")
    if "UAID" in values:
        tls["user_agent"], flags = safe_text(values["UAID"].decode("utf-8", "backslashreplace"), 256)
        for f in flags:
            _flag(anomalies, f"user_agent_{f}")
    # CYU (Salesforce): MD5 of "<version digits>,<CHLO tags in order joined by ->".
    tls["cyu"], tls["cyu_string"] = cyus[0]["hash"], cyus[0]["string"]
    tls["cyu_all"] = cyus
    tls["anomalies"] = anomalies
    return {"l7": "quic", "tls": tls}


def analyze(sample: FlowSample) -> dict[str, Any] | None:
    """QUIC facts of one UDP flow, or ``None`` if it does not start with a QUIC Initial."""
    if sample.proto.lower() != "udp":
        return None
    client = [d for _, d in sample.datagrams(OUT)[:MAX_DATAGRAMS]]
    server = [d for _, d in sample.datagrams(IN)[:MAX_DATAGRAMS]]
    if not client:
        return None
    gquic = _gquic_version(client[0])
    if gquic is not None:
        return _analyze_gquic(gquic, client)
    if not _is_long_header_of_known_version(client[0]):
        return None
    anomalies: list[str] = []
    first = _first_initial(client)
    if first is None:
        return None
    if not _looks_like_initial(client[0]):
        _flag(anomalies, "first_packet_not_initial")  # reordered, or 0-RTT first
    # RFC 9001 §5.2: both directions' Initial keys come from the DCID of the
    # client's first Initial; after a Retry, from the new DCID (tried next).
    used: list[bytes] = []
    version, frames, seen = decrypt_initials(client, [first.dcid], False, anomalies, used)
    tls: dict[str, Any] = {
        "version": version.name if version else f"quic-0x{first.version:08x}",
        "sni": None, "alpn": [], "cipher": None, "ja4": None, "ja3": None, "ja3s": None,
        "cert": None, "cert_visibility": "encrypted",
        "client_initial_dcid": first.dcid.hex(),
    }
    if used and used[-1] != first.dcid:
        # After a Retry the client keys its Initials from the Retry's SCID
        # (RFC 9001 §5.2); Zeek logs a second quic.log row with it.
        tls["retry"] = True
        tls["retry_dcid"] = used[-1].hex()
    crypto = _reassemble(frames)
    ch = None
    for m in split_handshake(crypto):
        if m.msg_type == HandshakeType.CLIENT_HELLO:
            ch = parse_client_hello(m.body, complete=m.complete)
            break
    if ch is not None:
        for a in ch.anomalies:
            _flag(anomalies, a)
        tls.update(hello_summary(ch, "q", anomalies))
    elif frames:
        _flag(anomalies, "client_hello_incomplete")
    if server:
        _, sframes, _ = decrypt_initials(server, [first.dcid, *seen[1:]], True, anomalies)
        for m in split_handshake(_reassemble(sframes)):
            if m.msg_type == HandshakeType.SERVER_HELLO:
                sh = parse_server_hello(m.body, complete=m.complete)
                tls["tls_version"] = version_name(sh.version)
                tls["cipher"] = cipher_name(sh.cipher_suite)
                tls["ja3s"] = fp.ja3s(sh)
                if sh.key_share_group is not None:
                    tls["curve"] = GROUP_NAMES.get(sh.key_share_group, f"0x{sh.key_share_group:04x}")
                tls["resumed"] = sh.psk  # RFC 8446 §4.2.11: the server accepted a PSK
                if sh.alpn is not None:
                    tls["alpn_negotiated"] = alpn_text(sh.alpn, anomalies)
                break
    tls["anomalies"] = anomalies
    return {"l7": "quic", "tls": tls}
