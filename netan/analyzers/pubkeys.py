"""Public keys sent in the clear: DER SubjectPublicKeyInfo, PEM, or their base64.

An app that makes a keypair and posts its public key (to receive data
encrypted to it, or to register for a hybrid scheme) leaves the key on the wire
before any ciphertext: AN1762's keypair lifecycle, seen from the network. A
candidate is only reported once ``cryptography`` loads it as a key, so random
bytes that happen to start like DER are not keys.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

__all__ = ["PublicKeyFinding", "find_public_keys"]

#: DER SEQUENCE headers of an SPKI: 30 81 xx / 30 82 xx xx, then the AlgorithmIdentifier SEQUENCE
_DER = re.compile(rb"\x30(?:\x81.|\x82..)\x30[\x05-\x20]\x06[\x03-\x09]", re.S)
_DER_SHORT = re.compile(rb"\x30[\x2a-\x7f]\x30[\x05-\x20]\x06[\x03-\x09]", re.S)  # X25519/Ed25519/P-256
_PEM = re.compile(rb"-----BEGIN (?:RSA )?PUBLIC KEY-----[A-Za-z0-9+/=\s\\n]{40,8000}?-----END (?:RSA )?PUBLIC KEY-----")
#: base64 of an SPKI starts with "MI" (30 8x ..) or "MF"/"MC"/"MH" (short forms)
_B64 = re.compile(rb"M[IFCH][A-Za-z0-9+/_-]{40,1400}={0,2}")
MAX_SCAN = 16384
MAX_CANDIDATES = 32


@dataclass(frozen=True)
class PublicKeyFinding:
    offset: int
    encoding: str  # der | pem | base64
    key_type: str  # rsa | ec | ed25519 | x25519 | dsa | ...
    key_bits: int | None


def _load(der: bytes) -> tuple[str, int | None] | None:
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa, x25519
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        key = load_der_public_key(der)
    except (ValueError, TypeError):
        return None
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ec", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519", 256
    if isinstance(key, x25519.X25519PublicKey):
        return "x25519", 256
    if isinstance(key, dsa.DSAPublicKey):
        return "dsa", key.key_size
    return type(key).__name__, None


def _der_length(data: bytes, at: int) -> int | None:
    """Total length of the DER SEQUENCE at ``at``, from its own header."""
    if at + 2 > len(data):
        return None
    first = data[at + 1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n not in (1, 2) or at + 2 + n > len(data):
        return None
    return 2 + n + int.from_bytes(data[at + 2 : at + 2 + n], "big")


def find_public_keys(data: bytes) -> list[PublicKeyFinding]:
    """Every public key found in the first MAX_SCAN bytes (bounded work)."""
    data = data[:MAX_SCAN]
    out: list[PublicKeyFinding] = []
    seen: set[int] = set()
    tried = 0
    for rx in (_DER, _DER_SHORT):
        for m in rx.finditer(data):
            tried += 1
            if tried > MAX_CANDIDATES:
                break
            total = _der_length(data, m.start())
            if total is None or m.start() + total > len(data) or m.start() in seen:
                continue
            got = _load(data[m.start() : m.start() + total])
            if got:
                seen.add(m.start())
                out.append(PublicKeyFinding(m.start(), "der", got[0], got[1]))
    pem_spans: list[tuple[int, int]] = []
    for m in _PEM.finditer(data):
        pem_spans.append(m.span())
        body = b"".join(m.group(0).split(b"-----")[2].replace(b"\\n", b"").split())
        try:
            got = _load(base64.b64decode(body))
        except (binascii.Error, ValueError):
            got = None
        if got:
            out.append(PublicKeyFinding(m.start(), "pem", got[0], got[1]))
    for m in _B64.finditer(data):
        if any(lo <= m.start() < hi for lo, hi in pem_spans):
            continue  # the body of a PEM block already reported
        tried += 1
        if tried > 2 * MAX_CANDIDATES:
            break
        text = m.group(0)
        try:
            raw = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4)) if (b"-" in text or b"_" in text) \
                else base64.b64decode(text + b"=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            continue
        total = _der_length(raw, 0)
        if total is None or total > len(raw):
            continue
        got = _load(raw[:total])
        if got:
            out.append(PublicKeyFinding(m.start(), "base64", got[0], got[1]))
    return out
