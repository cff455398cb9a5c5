"""JA4 (client, BSD-licensed part of JA4+), JA3 and JA3S as pure functions."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from netan.analyzers import fingerprints as fp
from netan.analyzers.tls import ClientHello, ServerHello

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def ch(**kw) -> ClientHello:
    base = dict(
        legacy_version=0x0303,
        cipher_suites=(0x1301, 0x1302, 0xC02F),
        extensions=(0x0000, 0x000A, 0x000D, 0x0010, 0x002B),
        has_sni=True,
        alpn=(b"h2",),
        supported_versions=(0x0304, 0x0303),
        signature_algorithms=(0x0403, 0x0804),
        supported_groups=(0x001D, 0x0017),
        ec_point_formats=(0,),
    )
    base.update(kw)
    return ClientHello(**base)


@pytest.mark.parametrize("value,grease", [
    (0x0A0A, True), (0x1A1A, True), (0xFAFA, True), (0x0A1A, False), (0x1301, False), (0x0000, False),
])
def test_is_grease(value: int, grease: bool) -> None:
    assert fp.is_grease(value) is grease


def test_ja4_layout_and_hashes() -> None:
    hello = ch()
    raw = fp.ja4(hello, "t", raw=True)
    assert raw == "t13d0305h2_1301,1302,c02f_000a,000d,002b_0403,0804"
    a, b, c = raw.split("_", 2)
    want = f"{a}_{hashlib.sha256(b.encode()).hexdigest()[:12]}_{hashlib.sha256(c.encode()).hexdigest()[:12]}"
    assert fp.ja4(hello, "t") == want
    # Original order keeps SNI/ALPN and the wire order.
    assert fp.ja4(hello, "t", raw=True, original_order=True) == (
        "t13d0305h2_1301,1302,c02f_0000,000a,000d,0010,002b_0403,0804")


def test_ja4_ignores_grease_everywhere() -> None:
    plain = ch()
    greasy = ch(cipher_suites=(0x2A2A, 0x1301, 0x1302, 0xC02F), extensions=(0x0A0A, 0x0000, 0x000A, 0x000D, 0x0010,
                0x002B, 0xFAFA), supported_versions=(0x5A5A, 0x0304, 0x0303))
    assert fp.ja4(greasy) == fp.ja4(plain)


@pytest.mark.parametrize("alpn,code", [
    ((), "00"), ((b"",), "00"), ((b"h2",), "h2"), ((b"http/1.1",), "h1"), ((b"x",), "xx"),
    ((b"\xba\xad",), "bd"), ((b"h\xff",), "6f"), ((b"/x",), "28"), ((b"h2", b"http/1.1"), "h2"),
])
def test_ja4_alpn_rule(alpn: tuple[bytes, ...], code: str) -> None:
    assert fp.ja4(ch(alpn=alpn))[8:10] == code


@pytest.mark.parametrize("transport,legacy,versions,code", [
    ("t", 0x0303, (0x0304, 0x0303), "t13"),
    ("t", 0x0303, (), "t12"),
    ("t", 0x0301, (), "t10"),
    ("t", 0x0300, (), "ts3"),
    ("t", 0x0303, (0x7F1C,), "t00"),  # a draft version is not in the JA4 table
    ("q", 0x0303, (0x0304,), "q13"),
    ("d", 0xFEFD, (), "dd2"),
    ("d", 0xFEFD, (0xFEFC, 0xFEFD), "dd3"),  # DTLS 1.3 is the numerically smallest
    ("d", 0xFEFF, (), "dd1"),
])
def test_ja4_version(transport: str, legacy: int, versions: tuple[int, ...], code: str) -> None:
    assert fp.ja4(ch(legacy_version=legacy, supported_versions=versions), transport)[:3] == code


def test_ja4_counts_cap_at_99_and_sni_flag() -> None:
    many = ch(cipher_suites=tuple(range(0x0100, 0x0100 + 150)), extensions=tuple(range(0x0100, 0x0100 + 120)),
              has_sni=False)
    assert fp.ja4(many)[3:8] == "i9999"


def test_ja4_empty_lists_hash_to_zeros() -> None:
    assert fp.ja4(ch(cipher_suites=(), extensions=(), signature_algorithms=())).endswith("_000000000000_000000000000")
    # Only SNI and ALPN: nothing left to hash in either order (FoxIO's JA4_o agrees).
    only = ch(extensions=(0x0000, 0x0010), signature_algorithms=())
    assert fp.ja4(only).endswith("_000000000000")
    assert fp.ja4(only, original_order=True).endswith("_000000000000")
    # No signature algorithms: no trailing underscore in the hashed string (JA4 spec).
    no_sig = ch(signature_algorithms=())
    assert fp.ja4(no_sig, raw=True).endswith("_000a,000d,002b")
    assert fp.ja4(no_sig)[-12:] == hashlib.sha256(b"000a,000d,002b").hexdigest()[:12]


def test_ja4_rejects_unknown_transport() -> None:
    with pytest.raises(ValueError):
        fp.ja4(ch(), "x")


def test_ja3_string_and_grease() -> None:
    hello = ch(cipher_suites=(0x2A2A, 0x1301, 0xC02F), supported_groups=(0x3A3A, 0x001D), extensions=(0xDADA, 0, 10))
    assert fp.ja3_string(hello) == "771,4865-49199,0-10,29,0"
    assert fp.ja3(hello) == hashlib.md5(b"771,4865-49199,0-10,29,0").hexdigest()


def _parse_ja3(s: str) -> ClientHello:
    parts = [([int(x) for x in p.split("-")] if p else []) for p in s.split(",")]
    return ClientHello(legacy_version=parts[0][0], cipher_suites=tuple(parts[1]), extensions=tuple(parts[2]),
                       supported_groups=tuple(parts[3]), ec_point_formats=tuple(parts[4]))


# Values stated by suricata-verify tests (tls13-draft28, tls13-draft14, tls-ja3s).
SURICATA_JA3 = [
    ("d00857e0c8e7a7f35e446508c6233460",
     "771,4866-4867-4865-4868-49196-52393-49325-49162-49195-49324-49161-49200-52392-49172-49199-49171-157-49309-53"
     "-156-49308-47-159-52394-49311-57-158-49310-51,5-10-11-13-22-23-35-51-43-65281-0-45-41,23,0"),
    ("65825469c473e48f3ee2571129256ab0",
     "772,49195-49199-52393-52392-49196-49200-49162-49161-49171-49172-51-57-47-53-10,0-23-65281-10-11-35-13172-16-5"
     "-65282-40-13,23-24-25-256-257-258-259-260,0"),
]


@pytest.mark.parametrize("digest,string", SURICATA_JA3)
def test_ja3_matches_suricata_values(digest: str, string: str) -> None:
    hello = _parse_ja3(string)
    assert fp.ja3_string(hello) == string
    assert fp.ja3(hello) == digest


def test_ja3s_matches_suricata_value() -> None:
    sh = ServerHello(legacy_version=771, cipher_suite=49199, extensions=(65281, 0, 11, 16, 23))
    assert fp.ja3s_string(sh) == "771,49199,65281-0-11-16-23"
    assert fp.ja3s(sh) == "5d79edf64e03689ff559a54e9d9487bc"


def _foxio_raw_pairs() -> list[tuple[str, str]]:
    pairs = []
    for js in sorted((CORPUS / "foxio-ja4" / "python" / "test" / "testdata").glob("*.json")):
        for e in json.loads(js.read_text()):
            for k, v in e.items():
                if k.startswith("JA4_r."):
                    n = k.split(".")[1]
                    pairs.append((v, e[f"JA4.{n}"]))
                if k.startswith("JA4_ro."):
                    n = k.split(".")[1]
                    pairs.append((v, e[f"JA4_o.{n}"]))
    return pairs


@pytest.mark.skipif(not (CORPUS / "foxio-ja4").is_dir(), reason="shared corpus not present")
def test_hashing_of_foxio_raw_strings() -> None:
    """FoxIO's raw JA4 strings hash to FoxIO's JA4 with our hashing rule."""
    pairs = _foxio_raw_pairs()
    assert len(pairs) > 100
    for raw, hashed in pairs:
        a, b, c = raw.split("_", 2)
        hb = hashlib.sha256(b.encode()).hexdigest()[:12] if b else "000000000000"
        hc = hashlib.sha256(c.encode()).hexdigest()[:12]
        got = f"{a}_{hb}_{hc}"
        if hashed.endswith("_000000000000") and c in ("0000", "0010", "0000,0010", "0010,0000", ""):
            continue  # the empty-after-SNI/ALPN rule, checked in test_ja4_empty_lists_hash_to_zeros
        assert got[10:] == hashed[10:], raw
