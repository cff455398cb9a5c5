"""Non-TLS ciphertext framing: what the shape of a flow's messages says about encryption.

Contract: pure functions over byte *units* (a TCP message = one run of
same-direction payload between direction changes, a UDP datagram, a
length-prefixed frame, an HTTP body, a decoded text value). ``analyze_units``
returns the framing findings (stable names in ``FINDINGS``, documented in
docs/framing.md) with evidence made only of lengths, offsets, counts and
statistics: never payload bytes. No I/O, no clocks; the only state between
calls is bounded memos of pure functions (the last sample's messages and
units, the formats of recent units).

Every detector is written so that chance alone almost never fires it on
random-looking data that has no such structure (each one states the odds it
accepts), and so that cleartext (text, protobuf, media, compressed formats with
a magic number) never reaches the ciphertext tests at all.
"""
from __future__ import annotations

import base64
import binascii
import functools
import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from netan.analyzers import entropy as _entropy
from netan.sample import IN, OUT, FlowSample, Message

__all__ = [
    "FINDINGS",
    "Unit",
    "Evidence",
    "FramingResult",
    "analyze",
    "analyze_units",
    "units_from_sample",
    "first_units",
    "sample_messages",
    "tls_record_walk",
    "dtls_record_walk",
    "tls_findings",
    "pooled_findings",
    "scan_encoded",
    "looks_random",
    "shannon_entropy",
    "expected_random_entropy",
    "known_format",
    "explained_format",
    "keystream_test",
    "shared_prefix_run",
    "distinct_enough",
    "direction_name",
]

#: Stable finding names (CONTRACT.md `framing`); meaning in docs/framing.md.
FINDINGS: tuple[str, ...] = (
    "tls_records",
    "length_prefixed",
    "block_aligned_8",
    "block_aligned_16",
    "random_prefix",
    "rsa_blob",
    "ec_point",
    "repeated_blocks",
    "keystream_reuse",
    "encoded_ciphertext",
)

# Work bounds: every loop below is capped by one of these.
MAX_UNITS = 64  # units judged per direction
MAX_SCAN = 4096  # bytes of one unit used for statistics
MAX_FRAMES_PER_UNIT = 256
MAX_PAIRS = 64  # unit pairs tried for keystream reuse
RSA_SIZES = (128, 256, 384, 512)  # RSA-1024/2048/3072/4096 ciphertext sizes (RFC 8017 §7.1)


def direction_name(direction: int) -> str:
    return "out" if direction == OUT else "in"


# --------------------------------------------------------------------------
# Randomness (local until netan.analyzers.payload settles; see docs/notes/framing.md)


def shannon_entropy(data: bytes) -> float:
    """Plug-in Shannon entropy in bits per byte."""
    n = len(data)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


@functools.lru_cache(maxsize=4096)
def expected_random_entropy(n: int) -> float:
    """Exact expectation of the plug-in entropy of n uniform random bytes.

    The plug-in estimator is biased low for small n (16 random bytes give about
    3.94 bits, not 8), so thresholds must be relative to this, not to 8.
    E[H] = -sum_c E[#values seen c times] * (c/n) log2(c/n), and
    E[#values seen c times] = 256 * Binomial(n, 1/256)(c).
    """
    if n <= 1:
        return 0.0
    p = 1.0 / 256
    total = 0.0
    pmf = (1 - p) ** n  # c = 0
    for c in range(1, n + 1):
        pmf = pmf * (n - c + 1) / c * p / (1 - p)
        if pmf < 1e-16 and c > 8:
            break
        total += 256 * pmf * (c / n) * math.log2(c / n)
    return -total


_PRINTABLE = bytes(range(32, 127)) + b"\t\n\r"


def _printable_fraction(data: bytes) -> float:
    if not data:
        return 0.0
    return 1.0 - len(data.translate(None, _PRINTABLE)) / len(data)


def looks_random(data: bytes, *, min_len: int = 24) -> bool:
    """True when ``data`` is statistically indistinguishable from random bytes.

    Threshold: 4.5 standard deviations of the random-data entropy below its
    expectation (sd is about 0.08 bit up to 64 bytes and shrinks as 1/sqrt(n)),
    never tighter than 0.15 bit so a small cleartext header still passes.
    Random bytes are about 37% printable; text is over 90%.
    """
    d = data[:MAX_SCAN]
    n = len(d)
    if n < min_len:
        return False
    if _printable_fraction(d) > 0.75:
        return False
    margin = max(0.15, 0.36 * min(1.0, math.sqrt(64.0 / n)))
    return _entropy_at_least(d, expected_random_entropy(n) - margin)


# A vectorised entropy (netan.analyzers.entropy) agrees with shannon_entropy,
# which sums in another order, to about 1e-12 bits; it settles any comparison
# with a threshold farther away than this, and shannon_entropy the rest.
_ESTIMATE_SLACK = 1e-9


def _entropy_at_least(d: bytes, threshold: float) -> bool:
    """``shannon_entropy(d) >= threshold``, exactly, without a Python loop over the bytes."""
    estimate = _entropy.shannon_entropy(_entropy.byte_counts(d), len(d)) or 0.0
    if abs(estimate - threshold) > _ESTIMATE_SLACK:
        return estimate > threshold
    return shannon_entropy(d) >= threshold


# Magic numbers of formats whose high entropy is explained (not ciphertext).
# Sources: each format's spec (JPEG ITU T.81 SOI, PNG §5.2, RFC 1952 gzip,
# RFC 1950 zlib, RFC 8878 zstd, PKWARE APPNOTE, ISO 14496-12 ftyp ...).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"%PDF", "pdf"),
    (b"OggS", "ogg"),
    (b"ID3", "mp3"),
    (b"fLaC", "flac"),
    (b"\x1a\x45\xdf\xa3", "webm"),
    (b"wOF2", "woff2"),
    (b"wOFF", "woff"),
    (b"dex\n", "dex"),
)


def known_format(data: bytes) -> str | None:
    """The name of a compressed or media format that starts ``data``, if any."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return "riff"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "isobmff"  # mp4, heic, avif
    # zlib (RFC 1950 §2.2): CM=8, CINFO<=7, FCHECK makes the 16-bit header a
    # multiple of 31. One random byte pair in ~1000 passes that, so the stream
    # after it must also inflate (bounded) before the unit counts as explained.
    if len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and ((data[0] << 8) | data[1]) % 31 == 0:
        if _inflates(data):
            return "zlib"
    return None


def _inflates(data: bytes) -> bool:
    """The first KiB of a zlib stream decodes without error (into at most 4 KiB)."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data[:1024], 4096)
    except zlib.error:
        return False
    return bool(out) or d.eof or len(data) <= 16


def explained_format(data: bytes) -> str | None:
    """A known format at the start of the unit or just after a short header.

    Formats without magic (raw deflate, brotli) are recognised by a bounded
    trial decode in netan.analyzers.magic (the payload analyzer's probe), so
    that both analyzers agree on what is compressed.  Only the first MAX_SCAN
    bytes count; the answer is memoised by them, as the framing tests and the
    cross-flow stage ask it about the same units several times.
    """
    return _explained_format(bytes(data[:MAX_SCAN]))


@functools.lru_cache(maxsize=256)
def _explained_format(data: bytes) -> str | None:
    head = data[:64]
    fmt = known_format(head)
    if fmt and fmt != "zlib":
        return fmt
    for magic, name in _MAGIC[:4] + _MAGIC[5:7]:  # jpeg, png, gif, zstd, zip anywhere in the head
        if len(magic) >= 3 and magic in head:
            return name
    if fmt:
        return fmt
    return _headerless(data)


def _headerless(data: bytes) -> str | None:
    try:
        from netan.analyzers.magic import probe_headerless
    except ImportError:  # the payload analyzer's module is optional here
        return None
    match = probe_headerless(data[:MAX_SCAN])
    return match.format if match is not None else None


# --------------------------------------------------------------------------
# Units and evidence


@dataclass(frozen=True, slots=True)
class Unit:
    """One application message judged for framing.

    ``length`` is the length on the wire; ``data`` the sampled part (may be
    shorter); ``complete`` says ``data`` is the whole unit with no capture gap.
    ``offset`` locates the unit in its direction's stream (for alignment of
    keystreams that run across the whole connection).
    """

    direction: int
    index: int
    length: int
    data: bytes
    complete: bool = True
    offset: int = 0
    source: str = "message"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One finding with its numbers; ``to_dict`` is what goes into the record."""

    finding: str
    direction: str
    detail: str
    numbers: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"finding": self.finding, "direction": self.direction, "detail": self.detail}
        for k, v in self.numbers:
            out[k] = v
        return out


@dataclass(frozen=True, slots=True)
class FramingResult:
    evidence: tuple[Evidence, ...] = ()

    @property
    def findings(self) -> list[str]:
        seen = {e.finding for e in self.evidence}
        return [f for f in FINDINGS if f in seen]

    def to_dict(self) -> dict[str, Any]:
        return {"framing": self.findings, "framing_evidence": [e.to_dict() for e in self.evidence]}


def _overlaps_gap(start: int, end: int, gaps: Iterable[tuple[int, int]]) -> bool:
    return any(g_off < end and start < g_off + g_len for g_off, g_len in gaps)


_T = TypeVar("_T")


def _for_last_sample(fn: Callable[[FlowSample], _T]) -> Callable[[FlowSample], _T]:
    """Remember ``fn(sample)`` for the most recent sample only.

    The payload, protocol and cross-flow analyzers of one flow ask for the
    same messages and units in turn; samples are immutable, so one entry keyed
    by identity is a complete (and bounded) memo of the pure function.
    """
    last: list[tuple[FlowSample | None, Any]] = [(None, None)]

    @functools.wraps(fn)
    def remembered(sample: FlowSample) -> _T:
        held, value = last[0]
        if held is not sample:
            value = fn(sample)
            last[0] = (sample, value)
        return value

    return remembered


@_for_last_sample
def sample_messages(sample: FlowSample) -> list[Message]:
    """``sample.messages()``, shared by the analyzers of one flow: do not modify."""
    return sample.messages()


def units_from_sample(sample: FlowSample) -> list[Unit]:
    """TCP (and other streams): messages; UDP: datagrams. Bounded per direction."""
    return list(_units_from_sample(sample))


def first_units(sample: FlowSample) -> list[Unit]:
    """The first unit of each direction (index 0), in stream order: what tls_findings reads."""
    firsts: list[Unit] = []
    for u in _iter_units(sample):
        if u.index == 0:
            firsts.append(u)
            if len(firsts) == 2:
                break
    return firsts


@_for_last_sample
def _units_from_sample(sample: FlowSample) -> list[Unit]:
    return list(_iter_units(sample))


def _iter_units(sample: FlowSample) -> Iterator[Unit]:
    counts = {OUT: 0, IN: 0}
    if sample.proto == "udp":
        for mark, data in sample.datagrams():
            if counts[mark.direction] >= MAX_UNITS:
                continue
            complete = len(data) == mark.length and not _overlaps_gap(
                mark.offset, mark.offset + len(data), sample.gaps(mark.direction)
            )
            yield Unit(mark.direction, counts[mark.direction], mark.length, data, complete, mark.offset, "datagram")
            counts[mark.direction] += 1
        return
    for msg in sample_messages(sample):
        if counts[msg.direction] >= MAX_UNITS:
            continue
        complete = len(msg.data) == msg.length and not _overlaps_gap(
            msg.offset, msg.offset + len(msg.data), sample.gaps(msg.direction)
        )
        yield Unit(msg.direction, counts[msg.direction], msg.length, msg.data, complete, msg.offset, "message")
        counts[msg.direction] += 1


# --------------------------------------------------------------------------
# TLS records (RFC 8446 §5.1, RFC 5246 §6.2.1)

_TLS_TYPES = frozenset((20, 21, 22, 23, 24))


def tls_record_walk(data: bytes, *, max_records: int = 512) -> tuple[int, int]:
    """(records parsed, bytes covered) walking TLS records from offset 0.

    A record is type 20..24, version 0x0300..0x0304 (0x0301 in many
    ClientHellos), length at most 2^14 + 2048 (RFC 5246 §6.2.3 ciphertext bound).
    The walk stops at the first byte that is not a plausible header.
    """
    pos = 0
    count = 0
    while count < max_records and pos + 5 <= len(data):
        ctype, major, minor = data[pos], data[pos + 1], data[pos + 2]
        length = (data[pos + 3] << 8) | data[pos + 4]
        if ctype not in _TLS_TYPES or major != 3 or minor > 4 or length == 0 or length > 18432:
            break
        pos += 5 + length
        count += 1
    return count, min(pos, len(data))


def dtls_record_walk(data: bytes, *, max_records: int = 64) -> tuple[int, int]:
    """(records, bytes covered) of DTLS 1.0/1.2 records (RFC 6347 §4.1) in one datagram.

    Header: type 20..25, version 0xfeff/0xfefd (0xfefc for DTLS 1.3 plaintext
    records), 2-byte epoch, 6-byte sequence number, 2-byte length.
    """
    pos = 0
    count = 0
    while count < max_records and pos + 13 <= len(data):
        ctype, major, minor = data[pos], data[pos + 1], data[pos + 2]
        length = (data[pos + 11] << 8) | data[pos + 12]
        if ctype not in (20, 21, 22, 23, 24, 25) or major != 0xFE or minor not in (0xFF, 0xFD, 0xFC) or length == 0 or length > 18432:
            break
        pos += 13 + length
        count += 1
    return count, min(pos, len(data))


def tls_findings(units: Sequence[Unit]) -> list[Evidence]:
    """`tls_records` evidence from the first message (TLS) or datagram (DTLS) per direction."""
    out: list[Evidence] = []
    for direction in (OUT, IN):
        first = next((u for u in units if u.direction == direction and u.source in ("message", "datagram")), None)
        if first is None:
            continue
        if first.source == "datagram":
            # A datagram holds whole records, so the walk must end exactly at its end.
            n, covered = dtls_record_walk(first.data)
            if n >= 1 and covered == len(first.data) == first.length:
                out.append(Evidence("tls_records", direction_name(direction), f"{n} DTLS records fill the first datagram", (("records", n), ("bytes", covered))))
            continue
        n, covered = tls_record_walk(first.data)
        # Two records, or one that exactly fills the message: 5 header bytes matching
        # by chance twice is below 1e-6 for random data.
        if n >= 2 or (n == 1 and covered == len(first.data) and first.complete):
            out.append(
                Evidence("tls_records", direction_name(direction), f"{n} TLS records parse back to back from the first message", (("records", n), ("bytes", covered)))
            )
    return out


# --------------------------------------------------------------------------
# Length-prefixed frames


@dataclass(frozen=True, slots=True)
class _LenHyp:
    offset: int
    width: int
    big: bool
    adjust: int  # frame length = field value + adjust

    @property
    def header(self) -> int:
        return self.offset + self.width

    def describe(self) -> str:
        endian = "" if self.width == 1 else (" big-endian" if self.big else " little-endian")
        return f"{self.width}-byte{endian} length at offset {self.offset}, frame = value + {self.adjust}"


def _read_uint(data: bytes, pos: int, width: int, big: bool) -> int | None:
    if pos + width > len(data):
        return None
    return int.from_bytes(data[pos : pos + width], "big" if big else "little")


_UNKNOWN = object()
_UNIT_BITS = {1: 7, 2: 15, 4: 30}  # -log2 P(random chain lands on the unit end), see _length_prefix


def _walk(unit: Unit, hyp: _LenHyp) -> list[tuple[int, int]] | None | object:
    """Frames (start, length) if the length chain ends exactly at the unit's end.

    None: the chain contradicts the unit. _UNKNOWN: it runs past the sampled
    bytes before it can be checked.
    """
    frames: list[tuple[int, int]] = []
    pos = 0
    total = unit.length
    for _ in range(MAX_FRAMES_PER_UNIT):
        if pos == total:
            return frames
        value = _read_uint(unit.data, pos + hyp.offset, hyp.width, hyp.big)
        if value is None:
            return _UNKNOWN if pos + hyp.header > len(unit.data) and pos + hyp.header <= total else None
        flen = value + hyp.adjust
        if flen <= hyp.header:
            return None
        if pos + flen > total:
            return None
        frames.append((pos, flen))
        pos += flen
    return None


def _length_prefix(units: Sequence[Unit]) -> tuple[_LenHyp, dict[int, list[tuple[int, int]]], int] | None:
    """Best length-prefix hypothesis over one direction's units, or None.

    Evidence is counted in bits per *unit*, not per frame: on random bytes
    any value is a frame length, so the only test a chain passes by chance is
    landing exactly on the unit's end, which a 1-byte field does with
    probability about 1/128 (7 bits), a 2-byte one about 2^-15 and a 4-byte
    one about 2^-30 (values beyond the unit overshoot). Each unit whose chain
    lands (and was not used to learn the adjustment) counts; 30 bits are
    needed (at most 125 < 2^7 hypotheses are tried), plus two distinct frame
    lengths so that a constant field in fixed-size messages cannot pass.
    Measured on random data: docs/framing.md.
    """
    # Only whole units: a truncated or gap-filled one cannot confirm a chain.
    usable = [u for u in units if u.length >= 2 and u.complete]
    if len(usable) < 2:
        return None
    best: tuple[float, _LenHyp, dict[int, list[tuple[int, int]]], int] | None = None
    for offset in range(0, 5):
        for width, big in ((1, True), (2, True), (2, False), (4, True), (4, False)):
            adjusts = {0, offset + width}
            learned_from = [u for u in usable if u.complete][:3]
            for u in learned_from:
                v = _read_uint(u.data, offset, width, big)
                if v is not None and -16 <= u.length - v <= 64:
                    adjusts.add(u.length - v)
            for adjust in adjusts:
                hyp = _LenHyp(offset, width, big, adjust)
                frames_by_unit: dict[int, list[tuple[int, int]]] = {}
                bad = 0
                for u in usable:
                    res = _walk(u, hyp)
                    if res is _UNKNOWN:
                        continue
                    if res is None:
                        bad += 1
                        if bad > 1:
                            break
                        continue
                    frames_by_unit[u.index] = res  # type: ignore[assignment]
                nframes = sum(len(f) for f in frames_by_unit.values())
                if bad > (1 if nframes >= 6 else 0) or nframes < 2:
                    continue
                lengths = {flen for fl in frames_by_unit.values() for _, flen in fl}
                if len(lengths) < 2:
                    continue
                learned = 0 if adjust in (0, offset + width) else 1
                bits = (len(frames_by_unit) - learned) * _UNIT_BITS[width]
                if bits < 30:
                    continue
                score = bits - offset * 0.5 - learned
                if best is None or score > best[0]:
                    best = (score, hyp, frames_by_unit, nframes)
    if best is None:
        return None
    return best[1], best[2], best[3]


# --------------------------------------------------------------------------
# Elliptic-curve points (SEC 1 v2 §2.3.3; curve constants from SEC 2 / FIPS 186-4 D.1.2)


@dataclass(frozen=True, slots=True)
class _Curve:
    name: str
    p: int
    a: int
    b: int
    size: int  # field element bytes


_CURVES: tuple[_Curve, ...] = (
    _Curve(
        "P-256",
        0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        -3,
        0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        32,
    ),
    _Curve("secp256k1", 2**256 - 2**32 - 977, 0, 7, 32),
    _Curve(
        "P-384",
        2**384 - 2**128 - 2**96 + 2**32 - 1,
        -3,
        0xB3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF,
        48,
    ),
    _Curve(
        "P-521",
        2**521 - 1,
        -3,
        0x0051953EB9618E1C9A1F929A21A0B68540EEA2DA725B99B315F3B8B489918EF109E156193951EC7E937B1652C0BD3BB1BF073573DF883D2C34F1EF451FD46B503F00,
        66,
    ),
)


def _on_curve(curve: _Curve, x: int, y: int) -> bool:
    if x >= curve.p or y >= curve.p or (x == 0 and y == 0):
        return False
    return (y * y - (x * x * x + curve.a * x + curve.b)) % curve.p == 0


def _uncompressed_point_at(data: bytes, pos: int) -> str | None:
    """Name of the curve whose uncompressed point 04||X||Y starts at ``pos``."""
    if data[pos] != 0x04:
        return None
    for curve in _CURVES:
        end = pos + 1 + 2 * curve.size
        if end > len(data):
            continue
        x = int.from_bytes(data[pos + 1 : pos + 1 + curve.size], "big")
        y = int.from_bytes(data[pos + 1 + curve.size : end], "big")
        # A random (x, y) lies on the curve with probability about 1/p: never by chance.
        if _on_curve(curve, x, y):
            return curve.name
    return None


def _compressed_point(data: bytes) -> str | None:
    """Curve of a whole-unit compressed point 02/03||X (x must give a square)."""
    if len(data) not in (33, 49) or data[0] not in (2, 3):
        return None
    for curve in _CURVES:
        if 1 + curve.size != len(data):
            continue
        x = int.from_bytes(data[1:], "big")
        if x >= curve.p:
            continue
        rhs = (x * x * x + curve.a * x + curve.b) % curve.p
        # Euler's criterion: rhs is a square mod p (half of all x qualify).
        if rhs == 0 or pow(rhs, (curve.p - 1) // 2, curve.p) == 1:
            return curve.name
    return None


# --------------------------------------------------------------------------
# Repeated blocks and keystream reuse


def _diverse_block(block: bytes) -> bool:
    """A block that could be ciphertext: many distinct values and not all text.

    Random 16-byte blocks have 15.5 distinct values on average and are all
    printable with probability about 1e-7; padding, runs and text fail this.
    """
    return len(set(block)) >= 12 and _printable_fraction(block) < 1.0


def _repeats_within(data: bytes) -> tuple[int, int] | None:
    """(repeated 16-byte blocks, alignment) inside one unit, ECB-style.

    Looks at every 16-byte window; a repeat counts when two equal diverse
    windows sit a multiple of 8 bytes apart (64- and 128-bit block ciphers).
    Two random windows are equal with probability 2^-128.
    """
    d = data[:MAX_SCAN]
    if len(d) < 16 or not _may_repeat_diverse(d):
        return None
    seen: dict[bytes, int] = {}
    diverse: dict[bytes, bool] = {}
    by_alignment: Counter[int] = Counter()
    repeats = 0
    for pos in range(0, len(d) - 15):
        w = d[pos : pos + 16]
        first = seen.get(w)
        if first is None:
            seen[w] = pos
            continue
        if (pos - first) % 8 == 0:
            ok = diverse.get(w)
            if ok is None:
                ok = diverse[w] = _diverse_block(w)
            if ok:
                by_alignment[pos % 16] += 1
                repeats += 1
                if repeats >= 256:  # plenty of evidence; stop paying for more
                    break
    if not by_alignment:
        return None
    alignment, count = by_alignment.most_common(1)[0]
    # ECB ciphertext of repetitive plaintext is still random-looking once the
    # repeats are removed; a cleartext structure with a repeated id is not.
    unique = b"".join(dict.fromkeys(d[i : i + 16] for i in range(alignment, len(d) - 15, 16)))
    if not looks_random(unique, min_len=32):
        return None
    return count, alignment


def _may_repeat_diverse(d: bytes) -> bool:
    """Could ``d`` hold two equal diverse 16-byte windows a multiple of 8 bytes apart?

    Both 8-byte halves of such a window repeat as well, at offsets with the
    same residue mod 8; each half holds at least 4 distinct values (the window
    has 12) and one of them a non-printable byte.  Text has no such word at
    all; otherwise the words at every offset, one row per residue, are sorted
    and compared with their neighbours (the zero words padding the last row
    never pass the test), so the per-offset scan in _repeats_within runs only
    when it can find something.
    """
    if not d.translate(None, _PRINTABLE):
        return False
    n = len(d) - 7
    rows = -(-n // 8)
    grid = np.zeros(rows * 8, dtype=np.uint64)
    grid[:n] = np.ndarray((n,), dtype="<u8", buffer=d, strides=(1,))  # the word at every offset
    by_residue = grid.reshape(rows, 8).T.copy()
    by_residue.sort(axis=1)
    repeated = by_residue[:, 1:][by_residue[:, 1:] == by_residue[:, :-1]]
    for word in set(repeated.tolist()):
        half = word.to_bytes(8, "little")
        if len(set(half)) >= 4 and half.translate(None, _PRINTABLE):
            return True
    return False


def _same_offset_blocks(a: bytes, b: bytes, start: int) -> tuple[int, int] | None:
    """(first offset, blocks) of equal diverse 16-byte runs at equal offsets past ``start``.

    The two units must differ after the first equal run (else it is one
    shared header, not two ciphertexts that agree block by block).
    """
    n = min(len(a), len(b), 2048)
    if n - start < 16:
        return None
    x = (int.from_bytes(a[start:n], "big") ^ int.from_bytes(b[start:n], "big")).to_bytes(n - start, "big")
    first = -1
    blocks = 0
    for m in re.finditer(b"\x00{16,}", x):
        s0 = start + m.start()
        if not _diverse_block(a[s0 : s0 + 16]):
            continue
        if first < 0:
            first = s0
        blocks += (m.end() - m.start()) // 16
    if first < 0 or a[first:n] == b[first:n]:
        return None
    return first, blocks


def shared_prefix_run(a: bytes, b: bytes) -> int:
    """Length of the common prefix of ``a`` and ``b``."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    # XOR as big integers: the leading zero bytes are the common prefix (C speed, O(n)).
    x = int.from_bytes(a[:n], "big") ^ int.from_bytes(b[:n], "big")
    return n - (x.bit_length() + 7) // 8


def _xor_stats(x: bytes) -> tuple[float, float]:
    """(z of top-bit-clear excess, z of zero-byte excess) against random bytes."""
    n = len(x)
    if n == 0:
        return 0.0, 0.0
    high = sum(1 for b in x if b >= 0x80)
    z_high = (0.5 - high / n) / (0.5 / math.sqrt(n))
    expected_zeros = n / 256
    z_zero = (x.count(0) - expected_zeros) / math.sqrt(expected_zeros)
    return z_high, z_zero


def _drop_zero_runs(x: bytes, run: int = 8) -> bytes:
    """XOR bytes without runs of >= ``run`` zeros (whole equal blocks).

    Equal ciphertext blocks (ECB, static-IV CBC) XOR to zero blocks between
    random ones; a reused keystream XORs to plaintext XOR plaintext
    everywhere. Removing the zero runs keeps only what tells them apart.
    """
    return re.sub(b"\x00{%d,}" % run, b"", x)


def keystream_test(a: bytes, b: bytes, *, skip: int = 0) -> dict[str, float] | None:
    """Statistics when ``a`` XOR ``b`` looks like plaintext XOR plaintext, else None.

    Two ciphertexts under the same keystream XOR to P1 XOR P2: text and most
    binary formats leave the top bit clear and many zero bytes where the
    plaintexts agree. Random XOR random shows neither. The common prefix is
    skipped (identical headers say nothing), and the second half of the window
    must show structure too, because similar deflate streams agree only in
    their first bytes (measured: docs/framing.md).
    """
    # Ciphertext under a keystream is random-looking as a whole, shared prefix
    # included; judging only what follows the prefix let the random-looking
    # tail of two similar protobuf messages through (h2c control, re-recorded).
    if not (looks_random(a[skip : skip + 512]) and looks_random(b[skip : skip + 512])):
        return None
    start = skip + shared_prefix_run(a[skip:], b[skip:])
    n = min(len(a), len(b), start + 512) - start
    if n < 32:
        return None
    a2, b2 = a[start : start + n], b[start : start + n]
    if not (looks_random(a2) and looks_random(b2)):
        return None
    raw = bytes(p ^ q for p, q in zip(a2, b2))
    x = _drop_zero_runs(raw)
    n = len(x)
    if n >= 32:
        z_high, z_zero = _xor_stats(x)
        h2, z2 = _xor_stats(x[n // 2 :])
        whole = z_high >= 5.0 or z_zero >= 10.0
        tail = h2 >= 3.0 or z2 >= 5.0
        if whole and tail:
            return {"xor_bytes": n, "z_top_bit": round(z_high, 1), "z_zero": round(z_zero, 1), "skipped": start}
        return None
    # Nearly identical plaintexts under one keystream: the ciphertexts differ
    # only in short stretches between long equal runs, because a byte-wise
    # XOR does not spread a change. Block modes do: ECB changes whole 16-byte
    # blocks, CBC everything after the first change. The differing bytes, when
    # there are enough to judge, XOR to small values (text XOR text).
    equal = sum(m.end() - m.start() for m in re.finditer(b"\x00{8,}", raw))
    segments = [seg for seg in re.split(b"\x00{8,}", raw) if seg.strip(b"\x00")]
    differing = bytes(c for c in x if c)
    if equal >= 24 and segments and all(len(seg.strip(b"\x00")) <= 8 for seg in segments):
        high = sum(1 for c in differing if c >= 0x80)
        if len(differing) < 12 or high <= 0.15 * len(differing):
            return {"xor_bytes": len(raw), "equal_bytes": equal, "differing": len(differing), "skipped": start}
    return None


# --------------------------------------------------------------------------
# Encoded ciphertext in text (HTTP bodies, JSON values, URL parameters, headers)

# One class for both alphabets (RFC 4648 §4 and §5): an alternation would cut a
# base64url token at its first '-' or '_'. Mixed alphabets are rejected when decoding.
_B64_RE = re.compile(rb"[A-Za-z0-9+/_\-]{32,}={0,2}")
_HEX_RE = re.compile(rb"(?<![0-9A-Za-z])[0-9a-fA-F]{64,}(?![0-9A-Za-z])")
# Anchored at the start of a run and possessive: on a long run without dots an
# unanchored pattern backtracks from every position (quadratic time).
_JOSE_RE = re.compile(rb"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{8,}+(?:\.[A-Za-z0-9_\-]*+){2,4}+")
# Digest, id and signature sizes that random-looking tokens commonly have
# (MD5/UUID 16, SHA-1 20, SHA-224 28, SHA-256/HMAC 32, SHA-384 48, SHA-512/Ed25519 sig 64).
_TOKEN_SIZES = frozenset((16, 20, 28, 32, 48, 64))
# Necessary conditions checked before the regexes, as substrings of marks
# (bytes.translate, C speed): a JOSE token opens with 8 token characters and
# a dot; a base64 or hex token is a run of 32+ characters of _B64_RE's class.
_TOKEN_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_JOSE_MARKS = bytes(1 if c in _TOKEN_CHARS else 2 if c == 0x2E else 0 for c in range(256))
_JOSE_HEAD = b"\x01" * 8 + b"\x02"
_B64_MARKS = bytes(1 if c in _TOKEN_CHARS or c in b"+/" else 0 for c in range(256))
_B64_RUN = b"\x01" * 32
MIN_ENCODED_BYTES = 40
MAX_TOKENS = 64
MAX_TEXT = 65536


def _b64decode(token: bytes) -> bytes | None:
    t = token.rstrip(b"=")
    if (b"-" in t or b"_" in t) and (b"+" in t or b"/" in t):
        return None
    if len(t) % 4 == 1:
        return None
    pad = b"=" * (-len(t) % 4)
    try:
        if b"-" in t or b"_" in t:
            return base64.urlsafe_b64decode(t + pad)
        return base64.b64decode(t + pad, validate=True)
    except (binascii.Error, ValueError):
        return None


def _mixed_alphabet(token: bytes) -> bool:
    """Base64 of random bytes mixes upper case, lower case and digits."""
    return (
        any(65 <= c <= 90 for c in token)
        and any(97 <= c <= 122 for c in token)
        and any(48 <= c <= 57 for c in token)
    )


@dataclass(frozen=True, slots=True)
class EncodedValue:
    """A decoded high-entropy value found in text: its encoding and size only."""

    encoding: str
    where: str
    decoded: bytes


def scan_encoded(text: bytes, where: str, *, min_bytes: int = MIN_ENCODED_BYTES) -> list[EncodedValue]:
    """High-entropy binary values carried in base64/base64url/hex inside ``text``.

    Tokens are ignored when they decode to less than MIN_ENCODED_BYTES or to a
    usual digest/id/signature size, or to non-random bytes; JWS (signed, not
    encrypted) tokens are ignored, JWE ciphertext parts are kept.
    """
    found: list[EncodedValue] = []
    t = text[:MAX_TEXT]
    spans: list[tuple[int, int]] = []
    jose = _JOSE_RE.finditer(t) if _JOSE_HEAD in t.translate(_JOSE_MARKS) else ()
    for m in jose:
        if len(found) >= MAX_TOKENS:
            break
        parts = m.group(0).split(b".")
        header = _b64decode(parts[0])
        if not header or not header.lstrip().startswith(b"{"):
            continue
        spans.append(m.span())
        if len(parts) == 5 and b'"enc"' in header:  # RFC 7516 §7.1 compact JWE
            for label, part in (("jwe_encrypted_key", parts[1]), ("jwe_ciphertext", parts[3])):
                raw = _b64decode(part)
                if raw and len(raw) >= 16:
                    found.append(EncodedValue("base64url", f"{where}:{label}", raw))
    tokens = 0
    if _B64_RUN not in t.translate(_B64_MARKS):
        return found  # no 32-character run: neither token regex can match
    for regex, kind in ((_B64_RE, "base64"), (_HEX_RE, "hex")):
        for m in regex.finditer(t):
            if tokens >= MAX_TOKENS:
                break
            if any(s <= m.start() < e for s, e in spans):
                continue
            tokens += 1
            token = m.group(0)
            if kind == "hex":
                if len(token) % 2 or not any(c > 57 for c in token):
                    continue
                raw = bytes.fromhex(token.decode("ascii"))
            else:
                if not _mixed_alphabet(token):
                    continue
                decoded = _b64decode(token)
                if decoded is None:
                    continue
                raw = decoded
                kind = "base64url" if (b"-" in token or b"_" in token) else "base64"
            if len(raw) < min_bytes or len(raw) in _TOKEN_SIZES or known_format(raw):
                continue
            if looks_random(raw) or (len(raw) < 64 and _short_random(raw)):
                found.append(EncodedValue(kind, where, raw))
            spans.append(m.span())
    return found


def _short_random(raw: bytes) -> bool:
    # 40-63 random bytes: nearly all values distinct (birthday: about 3-7 repeats).
    return len(set(raw)) >= len(raw) - 8 and _printable_fraction(raw) < 0.75


def distinct_enough(raw: bytes) -> bool:
    """Short random-looking bytes (20-63): few repeated values, mostly not text.

    n random bytes repeat about n^2/512 values (birthday bound), so at most
    n/8 + 2 repeats are allowed.
    """
    return 20 <= len(raw) < 64 and len(set(raw)) >= len(raw) - (len(raw) // 8 + 2) and _printable_fraction(raw) < 0.75


# --------------------------------------------------------------------------
# The analysis over units


def _by_direction(units: Sequence[Unit]) -> dict[int, list[Unit]]:
    out: dict[int, list[Unit]] = {OUT: [], IN: []}
    for u in units:
        if u.direction in out and len(out[u.direction]) < MAX_UNITS:
            out[u.direction].append(u)
    return out


def _block_alignment(direction: int, lengths: list[int], framed: bool, *, need16: int | None = None, need8: int | None = None) -> Evidence | None:
    """Lengths minus a constant header are multiples of 16 (or 8).

    With d distinct lengths a common residue mod 16 happens by chance with
    probability 16^-(d-1); we ask for 4 distinct lengths (3 when a length
    prefix already delimits the frames), i.e. at most 2^-12 (2^-8).
    """
    distinct = sorted(set(lengths))
    need16 = need16 if need16 is not None else (3 if framed else 4)
    need8 = need8 if need8 is not None else need16 + 1
    for block, need in ((16, need16), (8, need8)):
        if len(distinct) < need:
            continue
        residues = {n % block for n in distinct}
        if len(residues) == 1:
            header = residues.pop()
            return Evidence(
                f"block_aligned_{block}",
                direction_name(direction),
                f"{len(lengths)} ciphertext-like units, {len(distinct)} distinct lengths, all {header} mod {block}",
                (("units", len(lengths)), ("distinct_lengths", len(distinct)), ("header", header), ("block", block)),
            )
    return None


def pooled_findings(units: Sequence[Unit]) -> list[Evidence]:
    """``length_prefixed`` and block alignment over ciphertext-like units pooled from several flows.

    A beacon-like sender opens one connection per message, so no single flow
    has enough messages; the same tests (same odds) then run over the first
    messages of recent flows from one client to one destination. Callers pass
    only random-looking units of one direction, with unique indexes; the data
    may be just the unit's head (a single-frame chain needs only its header).
    """
    if len(units) < 2:
        return []
    direction = units[0].direction
    dname = direction_name(direction)
    ev: list[Evidence] = []
    lengths = [u.length for u in units]
    framed = False
    lp = _length_prefix(units)
    if lp is not None:
        hyp, frames_by_unit, nframes = lp
        framed = True
        ev.append(
            Evidence(
                "length_prefixed",
                dname,
                f"{nframes} frames in {len(frames_by_unit)} messages of separate flows: {hyp.describe()}",
                (("frames", nframes), ("field_offset", hyp.offset), ("field_width", hyp.width), ("big_endian", hyp.big), ("adjust", hyp.adjust)),
            )
        )
        lengths = [flen - hyp.header for fl in frames_by_unit.values() for _, flen in fl]
    # The pool is re-judged as flows arrive (repeated tests), so it asks for
    # more: 4 distinct lengths for 16 (2^-12), 6 for 8 (2^-15).
    aligned = _block_alignment(direction, lengths, framed, need16=4, need8=6)
    if aligned is not None:
        ev.append(aligned)
    sizes = {u.length for u in units}
    if len(sizes) == 1 and next(iter(sizes)) in RSA_SIZES:
        size = next(iter(sizes))
        ev.append(Evidence("rsa_blob", dname, f"{len(units)} messages of separate flows are each exactly {size} random-looking bytes (RSA-{size * 8} sized)", (("bytes", size), ("units", len(units)))))
    return ev


def _common_prefix_all(datas: list[bytes], cap: int = 64) -> int:
    if not datas:
        return 0
    n = min(cap, *(len(d) for d in datas))
    i = 0
    while i < n and all(d[i] == datas[0][i] for d in datas):
        i += 1
    return i


def analyze_units(units: Sequence[Unit], *, text_values: Sequence[EncodedValue] = ()) -> FramingResult:
    """All framing findings over ``units`` (plus decoded values found in text)."""
    evidence: list[Evidence] = []
    evidence.extend(tls_findings(units))
    for direction, dunits in _by_direction(units).items():
        evidence.extend(_direction_findings(direction, dunits))
    evidence.extend(_cross_direction(units))
    evidence.extend(_encoded_findings(text_values))
    return FramingResult(tuple(_dedupe(evidence)))


def _dedupe(items: list[Evidence]) -> list[Evidence]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for e in items:
        key = (e.finding, e.direction, e.detail)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _direction_findings(direction: int, dunits: list[Unit]) -> list[Evidence]:
    ev: list[Evidence] = []
    dname = direction_name(direction)
    # Units whose content is a known compressed or media format are explained.
    candidates = [u for u in dunits if u.data and explained_format(u.data) is None]
    if not candidates:
        return ev

    # 1. Length prefixes delimiting ciphertext-like frames.
    frames: list[Unit] = []
    framed = False
    lp = _length_prefix(candidates)
    if lp is not None:
        hyp, frames_by_unit, nframes = lp
        by_index = {u.index: u for u in candidates}
        for idx, fl in frames_by_unit.items():
            u = by_index[idx]
            for start, flen in fl:
                payload = u.data[start + hyp.header : start + flen]
                frames.append(Unit(direction, len(frames), flen - hyp.header, payload, u.complete and len(payload) == flen - hyp.header, u.offset + start, "frame"))
        # Frames that hold a compressed or media format (zlib after a length
        # field is common) are explained, not ciphertext.
        payload_sample = b"".join(f.data for f in frames if known_format(f.data) is None)[:MAX_SCAN]
        if looks_random(payload_sample):
            framed = True
            ev.append(
                Evidence(
                    "length_prefixed",
                    dname,
                    f"{nframes} frames: {hyp.describe()}; payloads look random",
                    (("frames", nframes), ("field_offset", hyp.offset), ("field_width", hyp.width), ("big_endian", hyp.big), ("adjust", hyp.adjust)),
                )
            )
        else:
            explained = {f.offset for f in frames if known_format(f.data) is not None}
            if explained and len(explained) * 2 >= len(frames):
                return ev  # length-prefixed compressed/media frames: explained
            frames = []
    work = frames if framed else candidates
    random_units = [u for u in work if looks_random(u.data)]

    # 2. Block alignment (lengths on the wire, so truncated samples still count).
    aligned = _block_alignment(direction, [u.length for u in random_units], framed)
    if aligned is not None:
        ev.append(aligned)

    # 3. RSA-sized and EC-point-shaped units.
    ev.extend(_asymmetric(dname, work, candidates, random_units, aligned is not None))

    # 4. Repeated blocks within a unit and across units.
    reuse = _repeated(dname, work)
    # 5. Keystream reuse between units of this direction (per-message static nonce).
    reuse += _keystream_within(dname, random_units if framed else candidates)
    ev.extend(reuse)

    # 6. A fresh IV/nonce in front of each ciphertext; contradicted by any reuse.
    if not reuse:
        rp = _random_prefix(dname, random_units, aligned, framed)
        if rp is not None:
            ev.append(rp)
    return ev


def _random_prefix(dname: str, random_units: list[Unit], aligned: Evidence | None, framed: bool) -> Evidence | None:
    """An IV/nonce-sized field that never repeats, at a place structure points to.

    Only claimed where something anchors it: CBC-style block alignment (the IV
    is the first block after the header) or a length prefix / constant header
    (the nonce follows it). Random data with no such anchor is not claimed.
    """
    if len(random_units) < 3:
        return None
    datas = [u.data for u in random_units]
    if aligned is not None and aligned.finding == "block_aligned_16":
        start = dict(aligned.numbers)["header"]
        size = 16
        if any(u.length - start < 32 for u in random_units):
            return None
        anchor = "block-aligned units (IV + blocks)"
    else:
        start = _common_prefix_all(datas, cap=16)
        size = 12
        if not framed and start < 2:
            return None
        anchor = "length-prefixed frames" if framed else f"a {start}-byte constant header"
    prefixes = [d[start : start + size] for d in datas if len(d) >= start + size]
    if len(prefixes) < 3 or len(set(prefixes)) != len(prefixes):
        return None
    if not all(len(set(p)) >= size - 4 for p in prefixes):
        return None
    return Evidence(
        "random_prefix",
        dname,
        f"{size}-byte field at offset {start} differs in all {len(prefixes)} units after {anchor}",
        (("units", len(prefixes)), ("offset", start), ("size", size)),
    )


def _asymmetric(dname: str, work: list[Unit], candidates: list[Unit], random_units: list[Unit], aligned: bool) -> list[Evidence]:
    ev: list[Evidence] = []
    random_ids = {id(u) for u in random_units}
    lengths = {u.length for u in random_units}
    for u in work[:16]:
        # RSA ciphertext (or signature) is exactly the modulus size. Among
        # ciphertexts of varying lengths an RSA size is a coincidence (about
        # 4 lengths in a thousand), so only the unit that opens the direction
        # *and is followed by more ciphertext* (the wrapped key goes first,
        # the data after it) or a series where every unit has that size (RSA
        # applied chunk by chunk) counts.
        same_size_series = len(random_units) >= 2 and lengths == {u.length}
        opens_hybrid = u is work[0] and any(v is not u for v in random_units)
        if not (same_size_series or opens_hybrid):
            continue
        if u.length in RSA_SIZES and u.complete and id(u) in random_ids:
            ev.append(Evidence("rsa_blob", dname, f"{u.source} {u.index} is exactly {u.length} bytes of random-looking data (RSA-{u.length * 8} sized)", (("bytes", u.length), ("unit", u.index))))
    # The hybrid envelope: a length field announcing an RSA-sized block followed
    # by more ciphertext. Random bytes match one of the 8 (width, value) pairs
    # with p ~ 1.2e-4, so it must open the direction or recur in 2+ units.
    envelopes: dict[tuple[int, bool, int], list[Unit]] = {}
    for u in candidates[:16]:
        for width, big in ((2, True), (2, False), (4, True), (4, False)):
            v = _read_uint(u.data, 0, width, big)
            if v in RSA_SIZES and u.length > width + v + 16 and looks_random(u.data[width : width + v]):
                envelopes.setdefault((width, big, v), []).append(u)
                break
    for (width, big, v), us in envelopes.items():
        if us[0] is candidates[0] or len(us) >= 2:
            u = us[0]
            ev.append(
                Evidence("rsa_blob", dname, f"{len(us)} message(s) open with a {width}-byte length {v} and {v} random-looking bytes, then more ciphertext (hybrid envelope)", (("bytes", v), ("unit", u.index), ("prefix_of", u.length), ("units", len(us))))
            )
    for u in (work + [c for c in candidates if c not in work])[:32]:
        head = u.data[:200]
        for pos in range(0, min(len(head), 80)):
            if head[pos] == 0x04:
                curve = _uncompressed_point_at(u.data, pos)
                if curve:
                    ev.append(Evidence("ec_point", dname, f"uncompressed {curve} point on the curve at offset {pos} of {u.source} {u.index}", (("curve", curve), ("offset", pos), ("unit", u.index))))
                    break
        if u.complete and u.length in (33, 49):
            curve = _compressed_point(u.data)
            if curve:
                ev.append(Evidence("ec_point", dname, f"{u.source} {u.index} is a {u.length}-byte compressed {curve} point (x on the curve)", (("curve", curve), ("offset", 0), ("unit", u.index))))
    # X25519 (RFC 7748 §5): a 32-byte public value whose top bit is clear,
    # opening the direction and followed by more ciphertext-like data.
    first = work[0] if work else None
    if first is not None and first.complete and first.length == 32 and first.data[31] & 0x80 == 0 and len(set(first.data)) >= 24:
        if any(looks_random(u.data) for u in work[1:]):
            ev.append(Evidence("ec_point", dname, f"{first.source} 0 is 32 random-looking bytes with the top bit clear (X25519 public key shape), then ciphertext", (("curve", "X25519?"), ("offset", 0), ("unit", 0))))
    return ev


def _repeated(dname: str, work: list[Unit]) -> list[Evidence]:
    ev: list[Evidence] = []
    for u in work:
        if not u.data or explained_format(u.data):
            continue
        r = _repeats_within(u.data)
        if r:
            count, alignment = r
            ev.append(Evidence("repeated_blocks", dname, f"{count} repeated 16-byte blocks inside {u.source} {u.index} (ECB-like), alignment {alignment}", (("repeats", count), ("unit", u.index), ("alignment", alignment), ("scope", "unit"))))
            break
    # Across units: the same random-looking run at the same offset. A run that
    # every unit shares is a header or session token, unless it is two blocks long.
    heads = [u for u in work if len(u.data) >= 32 and looks_random(u.data)]
    all_common = _common_prefix_all([u.data for u in heads]) if len(heads) >= 3 else 0
    pairs = 0
    for i in range(len(heads)):
        for j in range(i + 1, len(heads)):
            if pairs >= MAX_PAIRS:
                break
            pairs += 1
            a, b = heads[i].data, heads[j].data
            run = shared_prefix_run(a, b)
            if run >= 16 and _diverse_block(a[run - 16 : run]) and not (run <= all_common and run < 32):
                ev.append(Evidence("repeated_blocks", dname, f"units {heads[i].index} and {heads[j].index} open with the same {run} random-looking bytes (static IV or deterministic encryption)", (("shared_bytes", run), ("offset", 0), ("scope", "units"))))
                return ev
            same = _same_offset_blocks(a, b, max(run, all_common))
            if same:
                offset, count = same
                field = a[offset : offset + 16]
                # The same block at the same place in every unit is a header field
                # (session id, token) unless the equal run is long.
                if count < 3 and len(heads) >= 3 and all(h.data[offset : offset + 16] == field for h in heads):
                    continue
                ev.append(Evidence("repeated_blocks", dname, f"units {heads[i].index} and {heads[j].index} carry {count} equal random-looking 16-byte blocks at the same offsets from {offset} (ECB or a static IV)", (("shared_blocks", count), ("offset", offset), ("scope", "units"))))
                return ev
    return ev


def _keystream_within(dname: str, units: list[Unit]) -> list[Evidence]:
    pairs = 0
    us = [u for u in units if len(u.data) >= 32][:12]
    for i in range(len(us)):
        for j in range(i + 1, len(us)):
            if pairs >= MAX_PAIRS:
                return []
            pairs += 1
            st = keystream_test(us[i].data, us[j].data)
            if st:
                return [Evidence("keystream_reuse", dname, f"units {us[i].index} and {us[j].index} XOR to plaintext-like bytes (same keystream at message start)", tuple(st.items()) + (("scope", "units"),))]
    return []


def _cross_direction(units: Sequence[Unit]) -> list[Evidence]:
    """Both directions starting the same keystream (one key, one nonce, two senders)."""
    first_out = next((u for u in units if u.direction == OUT and u.data and not explained_format(u.data)), None)
    first_in = next((u for u in units if u.direction == IN and u.data and not explained_format(u.data)), None)
    if first_out is None or first_in is None:
        return []
    st = keystream_test(first_out.data, first_in.data)
    if st:
        return [Evidence("keystream_reuse", "out", "first messages of both directions XOR to plaintext-like bytes (same key and nonce both ways)", tuple(st.items()) + (("scope", "directions"),))]
    return []


def _encoded_findings(values: Sequence[EncodedValue]) -> list[Evidence]:
    ev: list[Evidence] = []
    if values:
        by_where: Counter[str] = Counter(v.where.split(":")[0] for v in values)
        sizes = sorted({len(v.decoded) for v in values})[:8]
        ev.append(
            Evidence(
                "encoded_ciphertext",
                "out" if any(v.where.startswith("out") for v in values) else "in",
                f"{len(values)} encoded random-looking values ({', '.join(sorted({v.encoding for v in values}))}) in {', '.join(sorted(by_where))}",
                (("values", len(values)), ("decoded_sizes", sizes)),
            )
        )
    for v in values[:16]:
        d = "out" if v.where.startswith("out") else "in"
        if len(v.decoded) in RSA_SIZES:
            ev.append(Evidence("rsa_blob", d, f"encoded value in {v.where} decodes to exactly {len(v.decoded)} random-looking bytes", (("bytes", len(v.decoded)), ("scope", "encoded"))))
        for pos in range(0, min(len(v.decoded), 16)):
            if v.decoded[pos] == 0x04:
                curve = _uncompressed_point_at(v.decoded, pos)
                if curve:
                    ev.append(Evidence("ec_point", d, f"encoded value in {v.where} carries an uncompressed {curve} point at offset {pos}", (("curve", curve), ("offset", pos), ("scope", "encoded"))))
                    break
    return ev


def analyze(sample: FlowSample, *, units: Sequence[Unit] | None = None, text_values: Sequence[EncodedValue] = ()) -> dict[str, Any]:
    """Framing findings for a flow whose protocol is not otherwise understood."""
    us = list(units) if units is not None else units_from_sample(sample)
    return analyze_units(us, text_values=text_values).to_dict()
