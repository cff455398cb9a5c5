"""The analyzers' speed shortcuts give exactly what the plain computation gives.

Each shortcut (a bound that settles a comparison, a cheap necessary condition
checked first, a memo) stands in for a computation whose result reaches the
flow record; these tests hold it to the plain computation, bit for bit.
"""
from __future__ import annotations

import datetime
import math
import os
import random
from collections import Counter

import numpy as np
import pytest

from netan.analyzers import (
    dns,
    fingerprints,
    framing,
    http,
    payload,
    randomness,
    x509info,
)
from netan.analyzers.entropy import (
    _lgamma1,
    _sd_bounds,
    byte_counts,
    deficit_z_exceeds,
    entropy_deficit_z,
    expected_random_entropy,
    random_entropy_sd,
)
from netan.analyzers.tls import ClientHello
from netan.sample import IN, OUT, FlowSample, PacketMark

RNG = random.Random(7)


def test_log_factorial_memo_is_math_lgamma() -> None:
    k = np.arange(0, 65537, dtype=np.float64)
    assert _lgamma1(k).tolist() == [math.lgamma(v + 1.0) for v in k.tolist()]
    assert _lgamma1(k[::-7]).tolist() == [math.lgamma(v + 1.0) for v in k[::-7].tolist()]


def test_sd_bounds_hold_for_every_length() -> None:
    # Exhaustive to 4 KiB (the default sample size), sampled up to the exact-sum limit.
    for n in list(range(2, 4097)) + list(range(4099, 65537, 997)) + [65536, 65537, 10**6]:
        lower, upper = _sd_bounds(n)
        assert lower < random_entropy_sd(n) < upper, n


@pytest.mark.parametrize("n", [2, 3, 16, 47, 255, 256, 1000, 4096, 65536, 70000])
def test_deficit_z_exceeds_is_the_exact_comparison(n: int) -> None:
    e, sd = expected_random_entropy(n), random_entropy_sd(n)
    for limit in (4.0 + 40.0 / n, 40.0):
        edge = e - limit * sd
        for h in (e + 0.1, e, e - 0.5 * limit * sd, np.nextafter(edge, 9.0), edge,
                  np.nextafter(edge, -1.0), e - 0.9 * limit * sd, e - 1.1 * limit * sd, e - 3 * limit * sd, 0.0):
            assert deficit_z_exceeds(float(h), n, limit) == (entropy_deficit_z(float(h), n) > limit), (n, limit, h)


def _distinct_blocks_plain(data: bytes, offset: int) -> bytes | None:
    blocks = [data[i : i + 8] for i in range(offset, offset + (len(data) - offset) // 8 * 8, 8)]
    if len(blocks) < 3 or len(set(blocks)) == len(blocks):
        return None
    times = Counter(blocks)
    if any(c > 1 and len(set(b)) < 6 for b, c in times.items()):
        return None
    return b"".join(dict.fromkeys(blocks))


def test_distinct_blocks_match_the_plain_definition() -> None:
    for _ in range(400):
        pool = [os.urandom(8) for _ in range(RNG.randint(1, 6))] + [bytes(8), b"\xff" * 8, b"AAAAAAAB"]
        data = os.urandom(RNG.randint(0, 9)) + b"".join(RNG.choice(pool) for _ in range(RNG.randint(0, 60)))
        for offset in range(8):
            assert payload._distinct_blocks(data, offset) == _distinct_blocks_plain(data, offset)


def test_units_encrypted_skips_only_what_cannot_change_the_answer() -> None:
    kinds = [lambda n: os.urandom(n), lambda n: bytes(n), lambda n: b"GET / HTTP/1.1\r\n"[:n].ljust(n, b"x")]

    def plain(units: list[bytes]) -> dict | None:
        if len(units) < 2:
            return None
        total = enc = 0
        conf = 0.0
        for u in units:
            v = payload.classify(u)
            total += len(u)
            if v.cls == payload.ENCRYPTED:
                enc += len(u)
                conf += v.confidence * len(u)
        if enc < 64 or enc < 0.6 * total:
            return None
        return {"units": len(units), "encrypted_bytes": enc, "unit_bytes": total, "confidence": conf / enc}

    for _ in range(300):
        units = [RNG.choice(kinds)(RNG.choice([3, 15, 16, 40, 90, 300])) for _ in range(RNG.randint(0, 8))]
        assert payload._units_encrypted(units) == plain(units)


def test_suffix_bound_never_skips_a_random_suffix() -> None:
    # Whenever _suffix_not_random says so, _random_like agrees (it is a proof, not a guess).
    for _ in range(300):
        n = RNG.randint(48, 600)
        data = os.urandom(RNG.randint(0, 40)) + bytes(RNG.randint(0, 8)) + os.urandom(n)
        counts = byte_counts(data)
        h = payload.shannon_entropy(counts, len(data))
        for skip in (2, 4, 5, 8, 12, 13, 16, 24, 32):
            if len(data) - skip >= 2 and payload._suffix_not_random(h, len(data), skip):
                assert not payload._random_like(data[skip:])[0]


def _repeats_within_plain(data: bytes) -> tuple[int, int] | None:
    d = data[: framing.MAX_SCAN]
    seen: dict[bytes, int] = {}
    by_alignment: Counter[int] = Counter()
    repeats = 0
    for pos in range(len(d) - 15):
        w = d[pos : pos + 16]
        first = seen.setdefault(w, pos)
        if first != pos and (pos - first) % 8 == 0 and framing._diverse_block(w):
            by_alignment[pos % 16] += 1
            repeats += 1
            if repeats >= 256:
                break
    if not by_alignment:
        return None
    alignment, count = by_alignment.most_common(1)[0]
    unique = b"".join(dict.fromkeys(d[i : i + 16] for i in range(alignment, len(d) - 15, 16)))
    return (count, alignment) if framing.looks_random(unique, min_len=32) else None


def test_repeats_within_prefilter_is_sound() -> None:
    block = os.urandom(16)
    for _ in range(300):
        parts = [RNG.choice([os.urandom(RNG.randint(1, 40)), block, bytes(16), b"header: value\r\n", block[:8]])
                 for _ in range(RNG.randint(0, 30))]
        data = b"".join(parts)
        assert framing._repeats_within(data) == _repeats_within_plain(data)


def test_looks_random_threshold_is_exact() -> None:
    for _ in range(300):
        d = os.urandom(RNG.randint(24, 300)) + bytes(RNG.randint(0, 30))
        h = framing.shannon_entropy(d)
        for t in (h, np.nextafter(h, 9.0), np.nextafter(h, -1.0), h + 1e-12, h - 1e-12, h + 0.1, h - 0.1):
            assert framing._entropy_at_least(d, float(t)) == (h >= t)


def test_token_prefilters_are_necessary_conditions() -> None:
    alphabet = b"abcXYZ019+/_-.= \n{}\"%"
    for _ in range(3000):
        text = bytes(RNG.choice(alphabet) for _ in range(RNG.randint(0, 120)))
        if framing._JOSE_RE.search(text):
            assert framing._JOSE_HEAD in text.translate(framing._JOSE_MARKS)
        if framing._B64_RE.search(text) or framing._HEX_RE.search(text):
            assert framing._B64_RUN in text.translate(framing._B64_MARKS)


def test_negligible_chi2_tail_rounds_to_zero() -> None:
    # ent's battery reports chi_p to 6 decimals; where the bound says "negligible" it is 0.0.
    hits = 0
    for _ in range(20000):
        x = 255 * 10 ** RNG.uniform(0, 3)
        if randomness._tail_below(x, 255, -28.0):
            hits += 1
            assert round(randomness.chi2_sf(x, 255), 6) == 0.0
    assert hits > 10000
    assert not randomness._tail_below(255.0, 255, -28.0)


def _escape_plain(value: str, limit: int) -> str:
    out, size = [], 0
    for ch in value:
        o = ord(ch)
        piece = f"\\x{o:02x}" if (o < 0x20 or 0x7F <= o < 0xA0) else ch
        if size + len(piece) > limit - 1:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def _safe_plain(value: str, limit: int, escape_backslash: bool) -> tuple[str, list[str]]:
    import unicodedata

    flags: list[str] = []
    out, size, truncated = [], 0, False
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


def test_text_escaping_fast_paths() -> None:
    from netan.analyzers.protocols import escape_text

    alphabet = ["a", "Z", ".", "\\", "\x00", "\x1f", "\x7f", "\x9f", "\xa0", "é", "\u200b", "\u202e", "\U0001F600"]
    for _ in range(5000):
        value = "".join(RNG.choice(alphabet) for _ in range(RNG.randint(0, 10)))
        limit = RNG.randint(1, 12)
        assert escape_text(value, limit) == _escape_plain(value, limit)
        for eb in (True, False):
            assert x509info.safe_text(value, limit, escape_backslash=eb) == _safe_plain(value, limit, eb)


def test_dns_label_fast_path_matches_escaping() -> None:
    for b in range(256):
        label = bytes([b, 0x61])
        slow = "".join("\\" + chr(c) if c == 0x5C or c == 0x2E else chr(c) if 0x21 <= c <= 0x7E else f"\\{c:03d}" for c in label)
        assert dns._label_text(label) == slow
    assert dns._ipv6_text(bytes(15) + b"\x01") == "::1"


def test_certificate_summaries_are_private_copies() -> None:
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, "example.test")])
    now = datetime.datetime(2024, 1, 1)
    cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=9))
            .add_extension(cx509.SubjectAlternativeName([cx509.DNSName("a.example.test")]), critical=False)
            .sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    first = x509info.summarize(der)
    first["sans"].append("mutated")
    first.pop("sha1")
    again = x509info.summarize(der)
    assert again["sans"] == ["a.example.test"] and "sha1" in again and again["self_signed"] is True


def test_fingerprints_depend_only_on_their_fields() -> None:
    base = {"legacy_version": 0x0303, "cipher_suites": (0x1301, 0x0A0A, 0xC02F), "extensions": (0, 16, 43, 0x1A1A),
            "has_sni": True, "sni": "x.test", "alpn": (b"h2",), "supported_versions": (0x0304, 0x0303),
            "signature_algorithms": (0x0403,), "supported_groups": (29,), "ec_point_formats": (0,)}
    a = ClientHello(session_id=b"\x01" * 32, **base)
    b = ClientHello(session_id=b"\x02" * 32, **base)
    c = ClientHello(session_id=b"\x01" * 32, **{**base, "cipher_suites": (0x1302,)})
    assert fingerprints.ja4(a) == fingerprints.ja4(b) != fingerprints.ja4(c)
    assert fingerprints.ja3(a) == fingerprints.ja3(b) != fingerprints.ja3(c)
    assert fingerprints.ja4(a, raw=True) == fingerprints.ja4_parts(a)[0] + "_" + "_".join(fingerprints.ja4_parts(a)[1:])


def test_shared_units_are_per_sample() -> None:
    def sample(out: bytes, inb: bytes) -> FlowSample:
        marks = (PacketMark(OUT, 0.0, 0, len(out)), PacketMark(IN, 0.1, 0, len(inb)))
        return FlowSample("tcp", "10.0.0.1", 1000, "10.0.0.2", 80, out, inb, packets=marks)

    one = sample(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + os.urandom(40))
    two = sample(b"GET /x HTTP/1.1\r\nHost: b\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n" + os.urandom(50))
    for s in (one, two, one):
        assert framing.units_from_sample(s) == list(framing._iter_units(s))
        assert framing.first_units(s) == [u for u in framing.units_from_sample(s) if u.index == 0]
        assert http.body_units(s) == http.summarize(s)[1]
    units = framing.units_from_sample(one)
    units.clear()
    assert framing.units_from_sample(one)
