"""X.509 certificate summary for TLS (<= 1.2, where certificates travel in clear).

``summarize(der)`` turns one DER certificate into a small, JSON-ready dict
(subject, issuer, self_signed, key_type, key_bits, validity, SANs, SHA-1
fingerprint) with every wire string made safe by ``safe_text``. It never
raises: a certificate ``cryptography`` cannot load gives ``{"error": ...}``.
TLS 1.3 encrypts the Certificate message (RFC 8446 §2), so callers say
"not observable" there instead of calling this.
"""
from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from functools import lru_cache
from typing import Any

__all__ = ["summarize", "safe_text", "MAX_CERT_BYTES", "MAX_SANS"]

log = logging.getLogger(__name__)

#: Bigger DER blobs are not handed to the ASN.1 parser (real leaf certificates
#: are a few KB; 64 KiB bounds the work on hostile input).
MAX_CERT_BYTES = 65536
#: SAN entries reported; the count is always exact.
MAX_SANS = 64
#: Length bound for distinguished names and SAN values in the output.
MAX_NAME_CHARS = 512


# What safe_text changes in ASCII text: control characters and DEL (and backslashes).
_ASCII_CONTROL = re.compile("[\x00-\x1f\x7f\\\\]")
_ASCII_CONTROL_ONLY = re.compile("[\x00-\x1f\x7f]")


def safe_text(value: str, limit: int, *, escape_backslash: bool = True) -> tuple[str, list[str]]:
    """Escape control/format characters and bound the length of a wire string.

    Returns the safe string and the reasons it was changed ("control_chars",
    "truncated"). Backslashes are escaped too, so the escaping is unambiguous;
    ``escape_backslash=False`` is for text that is already backslash-escaped
    (RFC 4514 distinguished names), where doubling would only garble it.
    Unicode format characters (bidi overrides, zero-width) are escaped because
    they make a log line read differently from what it contains.
    """
    if len(value) <= limit and value.isascii() and not (_ASCII_CONTROL if escape_backslash else _ASCII_CONTROL_ONLY).search(value):
        return value, []  # plain ASCII within the limit: nothing to escape (host names, most DNs)
    flags: list[str] = []
    out: list[str] = []
    size = 0
    truncated = False
    for ch in value:
        code = ord(ch)
        if ch == "\\":
            piece = "\\\\" if escape_backslash else ch
        elif code < 0x20 or 0x7F <= code < 0xA0:
            piece = f"\\x{code:02x}"
        elif code > 0x7F and unicodedata.category(ch) in ("Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            piece = f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
        else:
            piece = ch
        if len(piece) > 1 and ch != "\\" and "control_chars" not in flags:
            flags.append("control_chars")
        if size + len(piece) > limit:
            truncated = True
            break
        out.append(piece)
        size += len(piece)
    if truncated:
        flags.append("truncated")
    return "".join(out), flags


def _key_info(public_key: Any) -> tuple[str, int | None, str | None]:
    from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, ed448, ed25519, rsa, x448, x25519

    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa", public_key.key_size, None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ec", public_key.key_size, public_key.curve.name
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519", 256, None
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "ed448", 456, None
    if isinstance(public_key, dsa.DSAPublicKey):
        return "dsa", public_key.key_size, None
    if isinstance(public_key, dh.DHPublicKey):
        return "dh", public_key.key_size, None
    if isinstance(public_key, (x25519.X25519PublicKey, x448.X448PublicKey)):
        return type(public_key).__name__.replace("PublicKey", "").lower(), None, None
    return "unknown", None, None


def _name_overrides() -> dict[Any, str]:
    """OpenSSL's short names for attributes RFC 4514 has no keyword for.

    Zeek and ``openssl x509 -nameopt RFC2253`` print these; without them
    cryptography prints dotted OIDs (``1.2.840.113549.1.9.1=...``).
    """
    from cryptography.x509.oid import NameOID as N

    return {
        N.EMAIL_ADDRESS: "emailAddress", N.STREET_ADDRESS: "street", N.POSTAL_CODE: "postalCode",
        N.SERIAL_NUMBER: "serialNumber", N.BUSINESS_CATEGORY: "businessCategory",
        N.JURISDICTION_COUNTRY_NAME: "jurisdictionC", N.JURISDICTION_STATE_OR_PROVINCE_NAME: "jurisdictionST",
        N.JURISDICTION_LOCALITY_NAME: "jurisdictionL", N.GIVEN_NAME: "GN", N.SURNAME: "SN", N.TITLE: "title",
        N.INITIALS: "initials", N.PSEUDONYM: "pseudonym", N.GENERATION_QUALIFIER: "generationQualifier",
        N.DN_QUALIFIER: "dnQualifier", N.ORGANIZATION_IDENTIFIER: "organizationIdentifier",
        N.UNSTRUCTURED_NAME: "unstructuredName", N.POSTAL_ADDRESS: "postalAddress",
        N.X500_UNIQUE_IDENTIFIER: "x500UniqueIdentifier",
    }


def _name(cert: Any, anomalies: list[str], what: str) -> str:
    try:
        # cryptography parses fields lazily: the attribute access itself can raise.
        raw = getattr(cert, what).rfc4514_string(_name_overrides())
    except Exception as exc:  # noqa: BLE001 - malformed RDNs must not stop the summary
        anomalies.append(f"{what}_unparsable")
        log.debug("cannot render %s: %s", what, exc)
        return ""
    # rfc4514_string already escapes ',', '+', '"', '\\', '<', '>', ';' (RFC 4514 §2.4).
    text, flags = safe_text(raw, MAX_NAME_CHARS, escape_backslash=False)
    anomalies.extend(f"{what}_{f}" for f in flags)
    return text


def _common_name(cert: Any, what: str) -> str | None:
    from cryptography.x509.oid import NameOID

    try:
        attrs = getattr(cert, what).get_attributes_for_oid(NameOID.COMMON_NAME)
    except Exception:  # noqa: BLE001
        return None
    if not attrs:
        return None
    value = attrs[0].value
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    return safe_text(str(value), MAX_NAME_CHARS)[0]


def _verify_self_signature(cert: Any) -> bool | None:
    """Does the certificate's signature verify with its own key? None: cannot tell."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

    try:
        cert.verify_directly_issued_by(cert)
        return True
    except InvalidSignature:
        return False
    except Exception:  # noqa: BLE001 - e.g. SHA-1 refused by the high-level API
        pass
    try:
        key = cert.public_key()
        algo = cert.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and algo is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algo)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey) and algo is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algo))
            return True
        if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
            return True
    except InvalidSignature:
        return False
    except Exception:  # noqa: BLE001 - unsupported hash (MD5 in FIPS builds, ...)
        return None
    return None


#: Public-key algorithms ``cryptography`` may not load (FIPS 204 ML-DSA, RFC 9881).
_SPKI_NAMES = {
    "2.16.840.1.101.3.4.3.17": "ML-DSA-44",
    "2.16.840.1.101.3.4.3.18": "ML-DSA-65",
    "2.16.840.1.101.3.4.3.19": "ML-DSA-87",
}


def _der_tlv(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(tag, content start, content end) of one DER TLV (X.690 §8.1), bounded."""
    if pos + 2 > len(data):
        return None
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            return None
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        return None
    return tag, pos, pos + length


def _spki_fallback(cert: Any) -> tuple[str, int | None, str | None]:
    """Key name and size read from the SubjectPublicKeyInfo when no key class exists."""
    try:
        oid = cert.public_key_algorithm_oid.dotted_string
    except Exception:  # noqa: BLE001
        return "unknown", None, None
    name = _SPKI_NAMES.get(oid, "unknown")
    # TBSCertificate (RFC 5280 §4.1): [0] version (optional), serial,
    # signature, issuer, validity, subject, then subjectPublicKeyInfo.
    tbs = cert.tbs_certificate_bytes
    top = _der_tlv(tbs, 0)
    if top is None:
        return name, None, None
    pos = top[1]
    first = _der_tlv(tbs, pos)
    if first is not None and first[0] == 0xA0:  # explicit version present
        pos = first[2]
    for _field in range(5):  # serial, signature, issuer, validity, subject
        tlv = _der_tlv(tbs, pos)
        if tlv is None:
            return name, None, None
        pos = tlv[2]
    spki = _der_tlv(tbs, pos)
    if spki is None or tbs[pos] != 0x30:
        return name, None, None
    alg = _der_tlv(tbs, spki[1])
    bits = _der_tlv(tbs, alg[2]) if alg else None
    if bits is None or bits[0] != 0x03:
        return name, None, None
    return name, (bits[2] - bits[1] - 1) * 8, None  # minus the unused-bits octet


#: Distinct certificates whose summaries are kept (a server's certificate
#: recurs in every flow to it; parsing and signature checks dominate the cost).
SUMMARY_CACHE = 128


def summarize(der: bytes) -> dict[str, Any]:
    """Summarise one DER certificate; never raises.

    Summaries are memoised by the DER bytes (a pure function of them, bounded
    LRU); every call returns its own copy, so callers may edit it.
    """
    return {k: list(v) if isinstance(v, list) else v for k, v in _summary(bytes(der)).items()}


@lru_cache(maxsize=SUMMARY_CACHE)
def _summary(der: bytes) -> dict[str, Any]:
    """The summary of ``summarize``, shared between calls: never modify it."""
    sha1 = hashlib.sha1(der, usedforsecurity=False).hexdigest()
    sha256 = hashlib.sha256(der).hexdigest()  # Zeek's x509.log fingerprint
    if len(der) > MAX_CERT_BYTES:
        return {"error": "certificate too large", "sha1": sha1, "anomalies": ["too_large"]}
    try:
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
    except Exception as exc:  # noqa: BLE001 - hostile DER: report, do not crash
        return {"error": f"unparsable certificate: {type(exc).__name__}", "sha1": sha1, "anomalies": ["unparsable"]}

    anomalies: list[str] = []
    info: dict[str, Any] = {"sha1": sha1, "sha256": sha256}
    try:
        _fill(cert, info, anomalies)
    except Exception as exc:  # noqa: BLE001 - a lazily parsed field we did not guard
        info["error"] = f"partly unparsable certificate: {type(exc).__name__}"
        anomalies.append("partly_unparsable")
    if anomalies:
        info["anomalies"] = sorted(set(anomalies))
    return info


def _fill(cert: Any, info: dict[str, Any], anomalies: list[str]) -> None:
    """Every summary field, each read under its own guard where it can fail alone."""
    from cryptography import x509

    info["subject"] = _name(cert, anomalies, "subject")
    info["issuer"] = _name(cert, anomalies, "issuer")
    info["subject_cn"] = _common_name(cert, "subject")
    info["issuer_cn"] = _common_name(cert, "issuer")
    try:
        n = cert.serial_number
        # The DER INTEGER's content octets (X.690 §8.3), as Suricata and
        # OpenSSL print them: a leading 00 when the high bit is set.
        info["serial"] = n.to_bytes(n.bit_length() // 8 + 1, "big", signed=n < 0).hex().upper()
        if n <= 0:
            anomalies.append("serial_not_positive")  # RFC 5280 §4.1.2.2
    except Exception:  # noqa: BLE001
        info["serial"] = None
        anomalies.append("serial_unparsable")
    try:
        info["not_before"] = cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        info["not_after"] = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    except Exception:  # noqa: BLE001
        info["not_before"] = info["not_after"] = None
        anomalies.append("validity_unparsable")
    try:
        key_type, key_bits, curve = _key_info(cert.public_key())
    except Exception:  # noqa: BLE001 - unsupported or corrupt key
        key_type, key_bits, curve = "unknown", None, None
    if key_type == "unknown":
        # A key class we do not map (ML-DSA, ...): name it from the SPKI OID.
        key_type, key_bits, curve = _spki_fallback(cert)
        if key_type == "unknown":
            anomalies.append("public_key_unparsable")
    info["key_type"], info["key_bits"] = key_type, key_bits
    if curve:
        info["curve"] = curve
    try:
        info["sig_alg"] = cert.signature_algorithm_oid._name  # noqa: SLF001 - the only readable name
    except Exception:  # noqa: BLE001
        info["sig_alg"] = None

    # Self-signed: issuer == subject *and* the signature verifies with the
    # certificate's own key (a name match alone is what attackers forge).
    self_signed = False
    try:
        self_issued = cert.issuer == cert.subject
    except Exception:  # noqa: BLE001
        self_issued = False
    if self_issued:
        verdict = _verify_self_signature(cert)
        if verdict is None:
            # Signature algorithm we cannot check (e.g. MD5/SHA-1 on DSA):
            # fall back to the name match, and say so.
            self_signed = True
            anomalies.append("self_signature_unverified")
        elif verdict:
            self_signed = True
        else:
            anomalies.append("self_issued_signature_invalid")
    info["self_signed"] = self_signed

    sans: list[str] = []
    san_count = 0
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        for general_name in ext.value:
            san_count += 1
            if len(sans) >= MAX_SANS:
                continue
            value = general_name.value
            text = str(value) if not isinstance(value, bytes) else value.hex()
            safe, flags = safe_text(text, 255)
            anomalies.extend(f"san_{f}" for f in flags)
            sans.append(safe)
    except x509.ExtensionNotFound:
        pass
    except Exception:  # noqa: BLE001 - malformed extension
        anomalies.append("san_unparsable")
    info["sans"] = sans
    if san_count > len(sans):
        info["san_count"] = san_count
        anomalies.append("sans_truncated")
