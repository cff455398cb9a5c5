"""TLS client/server fingerprints: JA4 (client only), JA3 and JA3S.

Pure functions over already-parsed hello fields; no I/O and no parsing here.
``ja4`` follows the FoxIO JA4 technical spec (the BSD-3-licensed part of JA4+);
``ja3``/``ja3s`` follow salesforce/ja3. JA4S/JA4X/JA4T/JA4L/JA4SSH/JA4H are
deliberately absent: their licence (FoxIO License 1.1) restricts use.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, NamedTuple, Protocol, Sequence

__all__ = [
    "ClientHelloLike",
    "ServerHelloLike",
    "is_grease",
    "ja4",
    "ja4_parts",
    "ja3",
    "ja3_string",
    "ja3s",
    "ja3s_string",
    "JA4_VERSION_CODES",
]


class ClientHelloLike(Protocol):
    """What the fingerprints need from a parsed ClientHello (TLS, DTLS or QUIC)."""

    legacy_version: int
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]  # extension types in wire order
    has_sni: bool
    alpn: tuple[bytes, ...]
    supported_versions: tuple[int, ...]
    signature_algorithms: tuple[int, ...]
    supported_groups: tuple[int, ...]
    ec_point_formats: tuple[int, ...]


class ServerHelloLike(Protocol):
    legacy_version: int
    cipher_suite: int
    extensions: tuple[int, ...]


#: The sixteen GREASE values (RFC 8701 §2: 0x?A?A with both bytes equal); the
#: fingerprints below filter long lists with a set lookup, not a call per item.
GREASE: frozenset[int] = frozenset(0x0A0A | (i << 12) | (i << 4) for i in range(16))


def is_grease(value: int) -> bool:
    """GREASE values (RFC 8701 §2): 0x?A?A with both bytes equal."""
    return value in GREASE


#: JA4 spec, "TLS and DTLS Version": two characters per protocol version.
JA4_VERSION_CODES: dict[int, str] = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}

# Ordering used to pick the "highest" version from supported_versions: DTLS
# version numbers run backwards (RFC 9147 §5.3: 1.3 is 0xfefc), so rank them.
_VERSION_RANK: dict[int, int] = {
    0x0002: 1, 0x0300: 2, 0x0301: 3, 0x0302: 4, 0x0303: 5, 0x0304: 6,
    0xFEFF: 3, 0xFEFD: 5, 0xFEFC: 6,
}


def _ja4_version(ch: ClientHelloLike) -> str:
    # JA4 spec: if supported_versions (0x002b) exists, use its highest
    # non-GREASE value, else the ClientHello's legacy_version.
    versions = [v for v in ch.supported_versions if v not in GREASE]
    if versions:
        best = max(versions, key=lambda v: (_VERSION_RANK.get(v, 0), v))
        return JA4_VERSION_CODES.get(best, "00")
    return JA4_VERSION_CODES.get(ch.legacy_version, "00")


def _is_alnum(b: int) -> bool:
    return 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A


def _ja4_alpn(alpn: Sequence[bytes]) -> str:
    # JA4 spec "ALPN Extension Value": first and last character of the first
    # ALPN value; "00" when absent or empty; when either byte is not ASCII
    # alphanumeric, the first and last characters of its hex form instead.
    if not alpn or not alpn[0]:
        return "00"
    first = alpn[0]
    a, z = first[0], first[-1]
    if _is_alnum(a) and _is_alnum(z):
        return chr(a) + chr(z)
    h = first.hex()
    return h[0] + h[-1]


def _hash12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def _hex4(values: Iterable[int]) -> list[str]:
    return [f"{v:04x}" for v in values]


def ja4_parts(ch: ClientHelloLike, transport: str = "t", *, original_order: bool = False) -> tuple[str, str, str]:
    """JA4's three parts in raw form: (a, cipher list, extension/sigalg list)."""
    if transport not in ("t", "q", "d"):
        raise ValueError(f"JA4 transport must be 't', 'q' or 'd', not {transport!r}")
    ciphers = [c for c in ch.cipher_suites if c not in GREASE]
    exts = [e for e in ch.extensions if e not in GREASE]
    sigalgs = [s for s in ch.signature_algorithms if s not in GREASE]
    part_a = (
        f"{transport}{_ja4_version(ch)}{'d' if ch.has_sni else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{_ja4_alpn(ch.alpn)}"
    )
    if original_order:
        cipher_list = _hex4(ciphers)
        ext_list = _hex4(exts)  # the _o variants keep SNI and ALPN
    else:
        cipher_list = sorted(_hex4(ciphers))
        # SNI (0x0000) and ALPN (0x0010) already appear in part a.
        ext_list = sorted(_hex4(e for e in exts if e not in (0x0000, 0x0010)))
    part_b = ",".join(cipher_list)
    part_c = ",".join(ext_list)
    if sigalgs:
        part_c += "_" + ",".join(_hex4(sigalgs))
    return part_a, part_b, part_c


class _Hello(NamedTuple("_HelloFields", [(name, tuple) for name in ClientHelloLike.__annotations__])):
    """Just the ClientHelloLike fields (lists as tuples), hashable: the fingerprints are
    memoised by them.

    One client stack offers the same lists in every connection (the random,
    session id and key shares that differ are no input), so a fingerprint is
    computed once per stack rather than once per flow.
    """

    __slots__ = ()

    @classmethod
    def of(cls, ch: ClientHelloLike) -> _Hello:
        return cls(*(_frozen(getattr(ch, name)) for name in cls._fields))


def _frozen(value: Any) -> Any:
    """A list-like field as a tuple, a scalar as it is: hashable either way."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


#: Distinct client stacks whose fingerprints are kept.
FINGERPRINT_CACHE = 1024


def ja4(ch: ClientHelloLike, transport: str = "t", *, raw: bool = False, original_order: bool = False) -> str:
    """The JA4 fingerprint of a ClientHello (``transport``: t=TCP, q=QUIC, d=DTLS).

    ``raw`` gives JA4_r (lists instead of hashes), ``original_order`` JA4_o.
    """
    return _ja4(_Hello.of(ch), transport, raw, original_order)


@lru_cache(maxsize=FINGERPRINT_CACHE)
def _ja4(ch: _Hello, transport: str, raw: bool, original_order: bool) -> str:
    a, b, c = ja4_parts(ch, transport, original_order=original_order)
    if raw:
        return f"{a}_{b}_{c}"
    hb = _hash12(b) if b else "000000000000"
    # Spec: an empty extension list (SNI and ALPN do not count) gives twelve
    # zeros; FoxIO's JA4_o applies the same test, so a hello whose only
    # extension is SNI hashes to zeros in both orders.
    _, _, sorted_c = (a, b, c) if not original_order else ja4_parts(ch, "t")
    hc = _hash12(c) if sorted_c and not sorted_c.startswith("_") else "000000000000"
    return f"{a}_{hb}_{hc}"


def _dash(values: Iterable[int]) -> str:
    return "-".join(str(v) for v in values)


def ja3_string(ch: ClientHelloLike) -> str:
    """salesforce/ja3: SSLVersion,Ciphers,Extensions,EllipticCurves,ECPointFormats (decimal, GREASE removed)."""
    return ",".join(
        (
            str(ch.legacy_version),
            _dash(c for c in ch.cipher_suites if c not in GREASE),
            _dash(e for e in ch.extensions if e not in GREASE),
            _dash(g for g in ch.supported_groups if g not in GREASE),
            _dash(ch.ec_point_formats),
        )
    )


def ja3(ch: ClientHelloLike) -> str:
    """MD5 of ``ja3_string`` (JA3 is MD5 by definition; not a security use)."""
    return _ja3(_Hello.of(ch))


@lru_cache(maxsize=FINGERPRINT_CACHE)
def _ja3(ch: _Hello) -> str:
    return hashlib.md5(ja3_string(ch).encode("ascii"), usedforsecurity=False).hexdigest()


def ja3s_string(sh: ServerHelloLike) -> str:
    """salesforce/ja3 JA3S: SSLVersion,Cipher,Extensions (decimal, GREASE removed)."""
    return ",".join(
        (
            str(sh.legacy_version),
            str(sh.cipher_suite),
            _dash(e for e in sh.extensions if e not in GREASE),
        )
    )


def ja3s(sh: ServerHelloLike) -> str:
    """MD5 of ``ja3s_string``, memoised like the client fingerprints (one server stack, one answer)."""
    return _ja3s(_ServerHello(sh.legacy_version, sh.cipher_suite, tuple(sh.extensions)))


@dataclass(frozen=True, slots=True)
class _ServerHello:
    """Just the ServerHelloLike fields, hashable (see _Hello)."""

    legacy_version: int
    cipher_suite: int
    extensions: tuple[int, ...]


@lru_cache(maxsize=FINGERPRINT_CACHE)
def _ja3s(sh: _ServerHello) -> str:
    return hashlib.md5(ja3s_string(sh).encode("ascii"), usedforsecurity=False).hexdigest()
