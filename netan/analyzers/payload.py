"""Payload class of a flow's sampled bytes: encrypted, compressed, encoded, text, binary, empty, unknown.

Contract:
  ``classify(data) -> PayloadVerdict`` classifies any byte string (a direction's
  sample, one packet, an HTTP body).  ``analyze(sample) -> {"payload": {"out": P,
  "in": P}}`` fills the flow record's ``payload`` field (shared/CONTRACT.md) with,
  per direction, the class, a confidence, the entropy with its expectation for
  random bytes of the same length, ent's battery, the Wu et al. 2023 features,
  the recognised format/encoding and the first data packet's own verdict.
  P never carries payload bytes; every value is JSON-serialisable and finite.

Method (docs/payload.md): cheap checks first, each an early exit -- empty,
constant fill, a recognised container (magic + structure), text (with encoded
blobs decoded and re-measured), a body after a text header, then randomness:
the plug-in entropy compared with the exact expectation and spread of the
entropy of ``n`` uniform random bytes (netan.analyzers.entropy) plus delta and
bit/nibble tests, bounded trial decodes of the formats that carry no magic (raw
deflate, brotli), ciphertext inside TLS-record/length-prefix framing or behind
a short header, ECB-style repeated ciphertext blocks and protobuf structure.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from netan.analyzers import encodings, magic
from netan.analyzers.entropy import (
    byte_counts,
    deficit_z_exceeds,
    entropy_deficit_z,
    expected_random_entropy,
    shannon_entropy,
    strip_gaps,
)
from netan.analyzers.framing import sample_messages
from netan.analyzers.randomness import POPCOUNT, chi2_sf, ent_battery, fet_features
from netan.sample import IN, OUT, FlowSample

__all__ = [
    "PayloadVerdict",
    "classify",
    "analyze",
    "direction_payload",
    "CLASSES",
    "MIN_BYTES",
]

log = logging.getLogger(__name__)

ENCRYPTED = "encrypted"
COMPRESSED = "compressed"
ENCODED = "encoded"
TEXT = "text"
BINARY = "binary"
EMPTY = "empty"
UNKNOWN = "unknown"
CLASSES = (ENCRYPTED, COMPRESSED, ENCODED, TEXT, BINARY, EMPTY, UNKNOWN)

# Below this many bytes only text and constant fills are called; anything else
# is "unknown" (16 random bytes and 16 bytes of machine code look alike).
MIN_BYTES = 16
# Randomness decision on the entropy deficit z = (E[H_random(n)] - H) / sd(n).
# For uniform random bytes z is ~N(0,1) but right-skewed at small n (n=16: a
# 1e-4 tail at z=6.8, n=64: 4.2, n>=256: 3.9, by simulation), so the limit is
# Z_RANDOM + Z_SMALL_N / n, which keeps false "not random" calls near 1e-4.
Z_RANDOM = 4.0
Z_SMALL_N = 40.0
# "High entropy but measurably not uniform": the entropy is within this many
# bits of the random expectation.  Compressed streams (Huffman/range coded)
# land here; machine code, tables and structured binary sit far below.
NEAR_RANDOM_BITS = 0.35
# False-alarm budget of the extra bit/nibble bias tests on true random data.
MARGINAL_ALPHA = 1e-4
# Framed ciphertext (record/length headers around random bodies) costs the
# whole sample at most this much entropy below random before we look for it.
FRAMED_BITS = 1.0
# Text: share of bytes that are printable ASCII or whitespace (or valid UTF-8).
TEXT_FRACTION = 0.95
_MAX_DEPTH = 2  # encoded -> decoded -> decoded again, no further

_PRINT = np.zeros(256, dtype=bool)
_PRINT[0x20:0x7F] = True
_PRINT[[0x09, 0x0A, 0x0D]] = True
_HIGH = np.zeros(256, dtype=bool)
_HIGH[0x80:] = True
# Columns: printable-or-whitespace, high (0x80..0xFF): both counts from one product.
_PRINT_HIGH_W = np.stack((_PRINT, _HIGH), axis=1).astype(np.int64)
# Rows: set bits per byte value; indicator of high nibble 0..15; of low nibble 0..15.
# Float, so the product with a histogram runs in BLAS: its integer sums are exact.
_PROJ = np.vstack(
    [POPCOUNT[None, :]]
    + [(np.arange(256) >> 4 == i)[None, :].astype(np.int64) for i in range(16)]
    + [(np.arange(256) & 15 == i)[None, :].astype(np.int64) for i in range(16)]
).astype(np.float64)


@dataclass(frozen=True, slots=True)
class PayloadVerdict:
    """What a byte string is.  ``decoded`` is the verdict on the decoded bytes
    when an encoding was found (``encoding``), ``format`` a recognised container."""

    cls: str
    confidence: float
    n: int
    entropy: float | None
    expected_random_entropy: float | None = None
    entropy_z: float | None = None
    printable_frac: float | None = None
    reason: str = ""
    format: str | None = None
    encoding: str | None = None
    encoded_span: int | None = None
    decoded: PayloadVerdict | None = None
    extra: tuple[tuple[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "n": self.n,
            "entropy": _r(self.entropy, 4),
            "class": self.cls,
            "confidence": _r(self.confidence, 3),
            "reason": self.reason,
        }
        if self.expected_random_entropy is not None:
            d["expected_random_entropy"] = _r(self.expected_random_entropy, 4)
        if self.entropy_z is not None:
            d["entropy_z"] = _r(self.entropy_z, 2)
        if self.printable_frac is not None:
            d["printable_frac"] = _r(self.printable_frac, 4)
        if self.format is not None:
            d["format"] = self.format
        if self.encoding is not None:
            d["encoding"] = self.encoding
            d["encoded_span"] = self.encoded_span
        if self.decoded is not None:
            d["decoded"] = self.decoded.to_dict()
        for k, v in self.extra:
            d[k] = v
        return d


def _r(x: float | None, digits: int) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(float(x), digits)


def _confidence(n: int, floor: float = 0.5) -> float:
    # Grows with sample size: 0.6 at 16 B, 0.8 at 64, 0.9 at 256, 0.95 at 1 KiB.
    return max(floor, min(0.99, 1.0 - 0.4 * math.sqrt(16.0 / max(n, 1))))


def _looks_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        # the sample may cut a multi-byte character at its end
        return exc.start >= len(data) - 3 and exc.reason in ("unexpected end of data",)


def _distinct_blocks(data: bytes, offset: int = 0) -> bytes | None:
    """The distinct aligned 8-byte blocks of ``data[offset:]``, if ciphertext blocks repeat.

    ECB (and any deterministic block-cipher use) maps equal plaintext blocks to
    equal ciphertext blocks; random data repeats an 8-byte block with
    probability ~k^2/2^65.  A repeated *ciphertext* block is itself random (at
    least 6 of its 8 bytes distinct; random blocks average 7.9), which tells
    it apart from repeated padding or zero runs in structured binary.  What
    remains after removing repeats is the ciphertext of the distinct blocks,
    which is random again.  Each block is one uint64; only when some repeat
    does a Counter (in stream order) say which.
    """
    k = (len(data) - offset) // 8
    if k < 3:
        return None
    blocks = np.frombuffer(data, dtype="<u8", count=k, offset=offset)
    if not _any_repeat(blocks):
        return None
    times = Counter(blocks.tolist())
    for word, seen in times.items():
        if seen > 1 and len(set(word.to_bytes(8, "little"))) < 6:
            return None
    return np.fromiter(times, dtype="<u8", count=len(times)).tobytes()


def _any_repeat(words: np.ndarray) -> bool:
    """Does any value occur twice?  A set of Python ints is quickest for a few
    dozen words; past that, sorting the array (no Python objects) is."""
    if words.size <= 128:
        return len(set(words.tolist())) < words.size
    ordered = np.sort(words)
    return bool((ordered[1:] == ordered[:-1]).any())


def _random_like(
    data: bytes, counts: np.ndarray | None = None, h: float | None = None, *, with_z: bool = False
) -> tuple[bool, float | None, bool]:
    """Is ``data`` consistent with uniform random bytes?  Returns (verdict, z, deltas_near_random).

    Two tests, each at Z_RANDOM standard deviations: the byte entropy, and the
    entropy of successive differences (mod 256), which catches ramps, counters
    and periodic tables whose byte histogram alone is flat.  The tests only
    compare deficits with limits (entropy.deficit_z_exceeds), so the byte
    entropy's z itself is computed only ``with_z`` (else None).
    ``deltas_near_random`` says the differences are within 10 * Z_RANDOM of
    random; it is False when the first test already failed by a wide margin.
    """
    n = len(data)
    if n < 2:
        return False, 0.0 if with_z else None, False
    if counts is None:
        counts = byte_counts(data)
    if h is None:
        h = shannon_entropy(counts, n) or 0.0
    limit = Z_RANDOM + Z_SMALL_N / n
    z = entropy_deficit_z(h, n) if with_z else None
    far = z > limit if z is not None else deficit_z_exceeds(h, n, limit)
    if far and h < expected_random_entropy(n) - NEAR_RANDOM_BITS:
        return False, z, False
    arr = np.frombuffer(data, dtype=np.uint8)
    dcounts = np.bincount(arr[1:] - arr[:-1], minlength=256)
    hd = shannon_entropy(dcounts, n - 1) or 0.0
    is_random = not far and not deficit_z_exceeds(hd, n - 1, limit) and not _marginal_bias(counts, n)
    return is_random, z, not deficit_z_exceeds(hd, n - 1, 10 * Z_RANDOM)


@lru_cache(maxsize=8)
def _chi2_critical(df: int, alpha: float) -> float:
    """x with P(chi2_df >= x) = alpha, by bisection on chi2_sf (memoised pure function)."""
    lo, hi = 0.0, float(df) + 40.0 * math.sqrt(2.0 * df) + 100.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if chi2_sf(mid, df) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def _marginal_bias(counts: np.ndarray, n: int) -> bool:
    """Bit and nibble bias read off the byte histogram (no extra pass over the data).

    Huffman-coded streams (deflate, bzip2, zstd literals, PNG/GIF) show small
    biases in the share of set bits and in the high/low nibble distributions
    that the 255-dof byte test dilutes; testing these 1- and 15-dof projections
    separately (NIST SP 800-22 §2.1 frequency test, applied per nibble) finds
    them with fewer bytes.  Each test runs at alpha = MARGINAL_ALPHA / 3 so
    ciphertext is called non-random with probability ~MARGINAL_ALPHA.
    (Good's serial test on nibble pairs was tried as a fourth: on the dev
    half it flagged only samples these three already flag, so it is not run.)
    """
    if n < 64:
        return False
    a = MARGINAL_ALPHA / 3.0
    # one matrix product gives set-bit total, high-nibble and low-nibble counts
    proj = _PROJ @ counts
    d = proj[1:] - n / 16.0
    hi, lo = d[:16], d[16:]
    e = n / 16.0
    crit15 = _chi2_critical(15, a) * e
    return bool(
        (proj[0] - 4.0 * n) ** 2 / (2.0 * n) > _chi2_critical(1, a)
        or float(np.dot(hi, hi)) > crit15
        or float(np.dot(lo, lo)) > crit15
    )


_PRINTABLE_TABLE = bytes(1 if (0x20 <= c < 0x7F or c in (9, 10, 13)) else 0 for c in range(256))


def _split_text_header(data: bytes) -> int | None:
    """Offset of a body after a printable header block ending in a blank line.

    HTTP/1.x (RFC 9112 §2.1), SMTP DATA, and many home-grown protocols send a
    text header, an empty line, then the body; the body's class is the
    payload's class (an encrypted POST body is exfiltration, its headers are
    not).  Returns None unless the header is all printable and >= 32 body bytes follow.
    """
    if data[:4].translate(_PRINTABLE_TABLE) != b"\x01\x01\x01\x01":
        return None  # cheap exit: a text header starts with printable bytes
    head = data[:8192]
    end = head.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end = head.find(b"\n\n")
        sep = 2
    if end < 8 or len(data) - (end + sep) < 32:
        return None
    if b"\x00" in data[:end].translate(_PRINTABLE_TABLE):
        return None
    return end + sep


def _walk(
    data: bytes, hdr: int, length_at: Callable[[bytes, int], int | None], max_len: int
) -> tuple[int, list[bytes]] | None:
    """Walk length-prefixed units; returns (complete units, bodies) if they tile the sample."""
    pos, units, bodies = 0, 0, []
    n = len(data)
    while pos + hdr <= n and units < 4096:
        ln = length_at(data, pos)
        if ln is None or ln < 1 or ln > max_len:
            return None
        bodies.append(data[pos + hdr : pos + hdr + ln])
        pos += hdr + ln
        units += pos <= n
    if pos < n:  # leftover shorter than a header: only fine if it is the sample's cut
        return None
    return units, bodies


def _tls_len(data: bytes, pos: int) -> int | None:
    # RFC 8446 §5.1 TLSPlaintext/TLSCiphertext header: type 20..23, legacy_version 3.x, uint16 length
    if not (20 <= data[pos] <= 23) or data[pos + 1] != 3 or data[pos + 2] > 4:
        return None
    return int.from_bytes(data[pos + 3 : pos + 5], "big")


_FRAMINGS: tuple[tuple[str, int, Callable[[bytes, int], int | None], int], ...] = (
    ("tls_records", 5, _tls_len, (1 << 14) + 2048),
    ("length_prefixed_u32be", 4, lambda d, p: int.from_bytes(d[p : p + 4], "big"), 1 << 24),
    ("length_prefixed_u16be", 2, lambda d, p: int.from_bytes(d[p : p + 2], "big"), 1 << 16),
    ("length_prefixed_u32le", 4, lambda d, p: int.from_bytes(d[p : p + 4], "little"), 1 << 24),
)


def _framed_ciphertext(data: bytes, h: float) -> tuple[str, int] | None:
    """Random bodies inside record or length-prefix framing, or after a short fixed header.

    The framing analyzer (netan.analyzers.framing) names the framing; here we
    only need to see past it to call the bytes encrypted.  TLS records count
    their application_data (type 23) bodies only.  Needs >= 2 complete units
    (or one that ends exactly at the sample end) and >= 32 body bytes.
    ``h`` is the entropy of all of ``data``.
    """
    for kind, hdr, length_at, max_len in _FRAMINGS:
        walked = _walk(data, hdr, length_at, max_len)
        if walked is None:
            continue
        units, bodies = walked
        if units < 2 and not (units == 1 and len(bodies) == 1):
            continue
        if kind == "tls_records":
            bodies = [b for b, start in zip(bodies, _tls_types(data, bodies)) if start == 23]
        blob = b"".join(bodies)
        if len(blob) >= 32 and _random_like(blob)[0]:
            return kind, len(blob)
    # one unit behind a short fixed header (IV/nonce length, version, message type)
    # (at most 1/8 of the sample, so short samples are not judged on a sliver).
    # Only a header that looks like one is peeled -- it holds a zero byte
    # (length/version/type fields) or is mostly printable (a tag, a key id) --
    # so nine tries do not become nine chances to call compressed data random.
    for skip in (2, 4, 5, 8, 12, 13, 16, 24, 32):
        if skip * 8 > len(data) or len(data) - skip < 48:
            break
        head = data[:skip]
        if 0 not in head and sum(head.translate(_PRINTABLE_TABLE)) * 2 < skip:
            continue
        if _suffix_not_random(h, len(data), skip):
            continue
        if _random_like(data[skip:])[0]:
            return f"random_after_{skip}_byte_header", len(data) - skip
    return None


def _suffix_not_random(h: float, n: int, skip: int) -> bool:
    """Does ``data[skip:]`` certainly fail _random_like's first test, given ``data``'s entropy ``h``?

    The whole sample's byte distribution mixes the suffix's with the header's
    (weight skip / n); entropy is concave, so the suffix's entropy is at most
    h * n / (n - skip).  When even that bound is far from random (the early
    exit of _random_like), the suffix need not be counted and measured.
    """
    m = n - skip
    upper = h * n / m + 1e-9  # above any rounding of either entropy
    return upper < expected_random_entropy(m) - NEAR_RANDOM_BITS and deficit_z_exceeds(upper, m, Z_RANDOM + Z_SMALL_N / m)


def _tls_application_data(data: bytes) -> bytes | None:
    """Concatenated application_data (type 23) bodies of a TLS record stream, or None."""
    walked = _walk(data, 5, _tls_len, (1 << 14) + 2048)
    if walked is None:
        return None
    _, bodies = walked
    return b"".join(b for b, t in zip(bodies, _tls_types(data, bodies)) if t == 23)


def _tls_types(data: bytes, bodies: list[bytes]) -> list[int]:
    types, pos = [], 0
    for b in bodies:
        types.append(data[pos])
        pos += 5 + int.from_bytes(data[pos + 3 : pos + 5], "big")
    return types


def classify(data: bytes, *, _depth: int = 0) -> PayloadVerdict:
    """Classify an arbitrary byte string.  Bounded time and memory for any input."""
    if not isinstance(data, bytes):
        data = bytes(data)  # bytearray / memoryview from other analyzers
    return _classify(data, byte_counts(data), _depth)


def _classify(data: bytes, counts: np.ndarray, _depth: int, exact_z: bool = True) -> PayloadVerdict:
    """``classify`` given the byte histogram (callers that need it too compute it once).

    With ``exact_z`` False the verdict's own ``entropy_z`` is left None: the
    class never depends on it (only on comparisons, see _random_like), and
    verdicts whose class alone is read (a first packet, a unit, a body behind a
    header) need not pay for the exact deviation of a new length.
    """
    n = len(data)
    if n == 0:
        return PayloadVerdict(EMPTY, 1.0, 0, None, reason="empty")
    h = shannon_entropy(counts, n)
    exp_h = expected_random_entropy(n)
    distinct = int(np.count_nonzero(counts))
    printable, high = (counts @ _PRINT_HIGH_W).tolist()
    pfrac = printable / n
    base = dict(n=n, entropy=h, expected_random_entropy=exp_h, printable_frac=pfrac)

    if distinct == 1 and n >= 4:
        return PayloadVerdict(BINARY, 0.99, reason="constant_fill", **base)

    fmt = magic.identify(data)
    if fmt is not None:
        return PayloadVerdict(
            COMPRESSED,
            0.97 if fmt.verified else 0.7,
            reason=f"{fmt.kind}:{fmt.reason}",
            format=fmt.format,
            **base,
        )

    textish = pfrac >= TEXT_FRACTION or (
        high and (printable + high) / n >= TEXT_FRACTION and _looks_utf8(data)
    )
    if textish:
        return _classify_text(data, counts, base, _depth)

    if n < MIN_BYTES:
        return PayloadVerdict(UNKNOWN, 0.5, reason="too_short", **base)

    if n >= 48 and _depth < _MAX_DEPTH:
        split = _split_text_header(data)
        if split is not None:
            body_bytes = data[split:]
            body = _classify(body_bytes, byte_counts(body_bytes), _depth + 1, exact_z=False)
            if body.cls in (ENCRYPTED, COMPRESSED, ENCODED):
                return PayloadVerdict(
                    body.cls,
                    body.confidence,
                    reason="body_after_text_header",
                    format=body.format,
                    encoding=body.encoding,
                    encoded_span=body.encoded_span,
                    decoded=body.decoded,
                    extra=(
                        ("header_bytes", split),
                        ("body", {"class": body.cls, "reason": body.reason, "n": body.n,
                                  "entropy": _r(body.entropy, 4)}),
                    ),
                    **base,
                )

    is_random, z, deltas_near_random = _random_like(data, counts, h, with_z=exact_z)
    if exact_z:
        base["entropy_z"] = z
    if is_random:
        hl = magic.probe_headerless(data)
        if hl is not None:
            return PayloadVerdict(COMPRESSED, 0.9, reason=f"{hl.kind}:{hl.reason}", format=hl.format, **base)
        return PayloadVerdict(ENCRYPTED, _confidence(n), reason="random", **base)

    if n >= 64 and 20 <= data[0] <= 23 and data[1] == 3:
        # a TLS record stream whose handshake (cleartext ClientHello, certificates)
        # pulls the whole sample far from random: judge the application_data alone
        tls = _tls_application_data(data)
        if tls is not None and len(tls) * 2 >= n and _random_like(tls)[0]:
            return PayloadVerdict(
                ENCRYPTED, _confidence(len(tls)) * 0.95, reason="tls_records",
                extra=(("ciphertext_bytes", len(tls)),), **base,
            )

    if h is not None and h >= exp_h - FRAMED_BITS:
        # formats without magic first: their own headers make them "framed-looking"
        headerless = magic.probe_headerless(data)
        if headerless is not None:
            return PayloadVerdict(
                COMPRESSED, 0.9, reason=f"{headerless.kind}:{headerless.reason}", format=headerless.format, **base
            )
        framed = _framed_ciphertext(data, h)
        if framed is not None:
            kind, nbytes = framed
            return PayloadVerdict(
                ENCRYPTED, _confidence(nbytes) * 0.95, reason=kind, extra=(("ciphertext_bytes", nbytes),), **base
            )

    # 8-byte blocks cover both 64-bit (3DES, Blowfish) and 128-bit (AES) block
    # ciphers: equal aligned 16-byte blocks have equal 8-byte halves.  The
    # sample usually starts on the block grid; when it is already within
    # FRAMED_BITS of random (ECB of varied plaintext) the other 7 offsets are
    # tried too, for ciphertext behind a header or a sample cut mid-stream.
    near = h is not None and h >= exp_h - FRAMED_BITS
    for shift in range(8) if near else (0,):
        novel = _distinct_blocks(data, shift)
        if novel is not None and len(novel) >= 16 and _random_like(novel)[0]:
            return PayloadVerdict(
                ENCRYPTED, _confidence(len(novel)), reason="repeated_blocks", extra=(("block_offset", shift),), **base
            )

    pb = magic.parse_protobuf(data)
    if pb is not None:
        extra: tuple[tuple[str, Any], ...] = ()
        off, ln = pb.largest_bytes_field
        if ln >= 32 and _depth < _MAX_DEPTH:
            field_bytes = data[off : off + ln]
            inner = _classify(field_bytes, byte_counts(field_bytes), _depth + 1, exact_z=False)
            extra = (("embedded", {"class": inner.cls, "confidence": round(inner.confidence, 3), "n": ln}),)
        return PayloadVerdict(BINARY, 0.8, reason="protobuf_wire_format", format="protobuf", extra=extra, **base)

    # near-random bytes whose successive differences are also near-random:
    # entropy-coded data.  A flat histogram with structured deltas is a table.
    # (probe_headerless already ran above: FRAMED_BITS > NEAR_RANDOM_BITS)
    if h is not None and h >= exp_h - NEAR_RANDOM_BITS and deltas_near_random:
        return PayloadVerdict(COMPRESSED, 0.6, reason="near_random", **base)
    return PayloadVerdict(BINARY, _confidence(n), reason="structured", **base)


def _decoded_verdict(found: Any, where: str, dominant: bool, conf: float, base: dict[str, Any],
                     depth: int) -> PayloadVerdict:
    """Text carrying an encoding (``found``: its data, encoding and span): ENCODED when the
    encoded part dominates and decodes to ciphertext-like bytes, else TEXT."""
    sub = classify(found.data, _depth=depth + 1)
    cls = ENCODED if dominant and sub.cls in (ENCRYPTED, COMPRESSED, ENCODED) else TEXT
    return PayloadVerdict(cls, sub.confidence if cls == ENCODED else conf, reason=f"{found.encoding}_{where}",
                          encoding=found.encoding, encoded_span=found.span, decoded=sub, **base)


def _classify_text(data: bytes, counts: np.ndarray, base: dict[str, Any], depth: int) -> PayloadVerdict:
    n = len(data)
    conf = _confidence(n, floor=0.6)
    if depth < _MAX_DEPTH:
        whole = encodings.detect_whole(data, counts)
        if whole is not None and len(whole.data) >= 8:
            return _decoded_verdict(whole, "whole", True, conf, base, depth)
        if n >= encodings.MIN_EMBEDDED:
            emb = encodings.find_embedded(data)
            if emb is not None and len(emb.data) >= 32:
                return _decoded_verdict(emb, "embedded", emb.span * 2 >= n, conf, base, depth)
    if n < 4:
        return PayloadVerdict(UNKNOWN, 0.5, reason="too_short", **base)
    return PayloadVerdict(TEXT, conf, reason="printable", **base)


# --- flow-level analysis --------------------------------------------------------


def _packet_bytes(sample: FlowSample, direction: int) -> bytes | None:
    """The first data packet of ``direction`` with zero-filled holes removed."""
    gaps = sample.gaps(direction)
    for mark in sample.packets:
        if mark.direction != direction or mark.length <= 0:
            continue
        raw = sample.datagram(mark)
        if not raw:
            return None
        local = [
            (o - mark.offset, ln)
            for o, ln in gaps
            if o < mark.offset + len(raw) and o + ln > mark.offset
        ]
        if local:
            local = [(max(0, o), ln + min(0, o)) for o, ln in local]
            raw = strip_gaps(raw, local)
        return raw
    return None


# Per-unit second look: at most this many datagrams/messages per direction.
MAX_UNITS = 16


def _units(sample: FlowSample, direction: int) -> list[bytes]:
    """Application units of one direction, those clear of capture holes.

    UDP: each datagram (QUIC, DTLS, WireGuard and home-grown protocols put a
    cleartext header on every one).  TCP: each run of same-direction segments
    (netan.sample.Message), i.e. one application write.
    """
    gaps = sample.gaps(direction)
    if sample.proto == "udp":
        spans = [(m.offset, d) for m, d in sample.datagrams(direction)]
    else:
        spans = [(m.offset, m.data) for m in sample_messages(sample) if m.direction == direction]
    out = []
    for off, data in spans:
        if data and not any(o < off + len(data) and o + ln > off for o, ln in gaps):
            out.append(data)
        if len(out) >= MAX_UNITS:
            break
    return out


#: Verdicts already reached for one direction, by byte string: the first packet
#: is often the whole sample, and the first unit the first packet.
_Seen = dict[bytes, tuple[np.ndarray, PayloadVerdict]]


def _measure(seen: _Seen, data: bytes) -> tuple[np.ndarray, PayloadVerdict]:
    """(byte histogram, verdict) of ``data``, from ``seen`` when the same bytes were judged."""
    got = seen.get(data)
    if got is None:
        counts = byte_counts(data)
        got = seen[data] = (counts, _classify(data, counts, 0, exact_z=False))
    return got


def _units_encrypted(units: list[bytes], seen: _Seen | None = None) -> dict[str, Any] | None:
    """Most unit bytes (>= 60%, and >= 64) classify as encrypted on their own.

    A unit shorter than MIN_BYTES never classifies as encrypted, and once the
    units still to judge cannot reach the thresholds the answer is no: those
    units are not classified at all.
    """
    if len(units) < 2:
        return None
    seen = {} if seen is None else seen
    total = sum(len(u) for u in units)
    need = max(64, 0.6 * total)
    left = sum(len(u) for u in units if len(u) >= MIN_BYTES)
    enc = 0
    conf = 0.0
    for u in units:
        if enc + left < need:
            return None
        if len(u) < MIN_BYTES:
            continue
        left -= len(u)
        v = _measure(seen, u)[1]
        if v.cls == ENCRYPTED:
            enc += len(u)
            conf += v.confidence * len(u)
    if enc < need:
        return None
    return {"units": len(units), "encrypted_bytes": enc, "unit_bytes": total, "confidence": conf / enc}


def direction_payload(
    data: bytes, first_packet: bytes | None = None, gap_bytes: int = 0, units: list[bytes] | None = None
) -> dict[str, Any]:
    """The contract's P object for one direction's (gap-free) sampled bytes.

    ``units`` (datagrams or messages) give a second look when the stream as a
    whole is only near-random or structured: per-unit cleartext headers
    (QUIC, DTLS, custom framing) hide ciphertext from whole-stream statistics.
    """
    return _direction_payload(data, first_packet, gap_bytes, lambda: units or [])


def _direction_payload(
    data: bytes, first_packet: bytes | None, gap_bytes: int, units: Callable[[], list[bytes]]
) -> dict[str, Any]:
    """``direction_payload`` with the units fetched only when the verdict asks for them.

    Every byte string is measured once: the histogram of the sample feeds the
    classifier and ent's battery, and equal strings (first packet, units)
    reuse the verdict already reached.
    """
    counts = byte_counts(data)
    verdict = _classify(data, counts, 0)
    seen: _Seen = {data: (counts, verdict)}
    p = verdict.to_dict()
    if verdict.reason in ("near_random", "structured"):
        found = _units_encrypted(units(), seen)
        if found is not None:
            p["class"] = ENCRYPTED
            p["confidence"] = _r(found.pop("confidence") * 0.95, 3)
            p["reason"] = "units_encrypted"
            p["units"] = found
    if data:
        battery = ent_battery(data, counts, entropy=verdict.entropy).to_dict()
        battery.pop("n", None)
        battery.pop("entropy", None)
        p.update(battery)
        fet_bytes = data[:1460] if first_packet is None else first_packet
        fet_counts = seen[fet_bytes][0] if fet_bytes in seen else None
        p["fet"] = fet_features(fet_bytes, fet_counts).to_dict()
    if gap_bytes:
        p["gap_bytes"] = gap_bytes
    if first_packet is not None and len(first_packet) > 0:
        fv = _measure(seen, first_packet)[1]
        p["first_packet"] = {"class": fv.cls, "confidence": _r(fv.confidence, 3), "n": fv.n}
        if fv.format:
            p["first_packet"]["format"] = fv.format
    return p


def analyze(sample: FlowSample) -> dict[str, Any]:
    """``{"payload": {"out": P, "in": P}}`` for one flow's sample."""
    result: dict[str, Any] = {}
    for name, direction in (("out", OUT), ("in", IN)):
        raw = sample.stream(direction)
        gaps = sample.gaps(direction)
        data = strip_gaps(raw, gaps) if gaps else raw
        try:
            first = _packet_bytes(sample, direction)
            result[name] = _direction_payload(
                data, first, len(raw) - len(data), lambda d=direction: _units(sample, d)
            )
        except Exception:  # an analyzer bug must not lose the flow record
            log.exception("payload analysis failed for %s direction", name)
            result[name] = {"n": len(data), "entropy": None, "class": UNKNOWN, "reason": "analyzer_error"}
    return {"payload": result}
