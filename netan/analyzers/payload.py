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
blobs decoded and re-measured), then randomness: the plug-in entropy compared
with the exact expectation and spread of the entropy of ``n`` uniform random
bytes (netan.analyzers.entropy), plus bounded trial decodes of the formats that
carry no magic (raw deflate, brotli), ECB-style repeated ciphertext blocks and
protobuf wire-format structure.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from netan.analyzers import encodings, magic
from netan.analyzers.entropy import (
    byte_counts,
    expected_random_entropy,
    random_entropy_sd,
    shannon_entropy,
    strip_gaps,
)
from netan.analyzers.randomness import ent_battery, fet_features
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
# For uniform random bytes z is ~N(0,1) (slightly right-skewed), so 4 keeps the
# false "not random" rate near 1e-4 at every length.
Z_RANDOM = 4.0
# "High entropy but measurably not uniform": the entropy is within this many
# bits of the random expectation.  Compressed streams (Huffman/range coded)
# land here; machine code, tables and structured binary sit far below.
NEAR_RANDOM_BITS = 0.35
# Text: share of bytes that are printable ASCII or whitespace (or valid UTF-8).
TEXT_FRACTION = 0.95
_MAX_DEPTH = 2  # encoded -> decoded -> decoded again, no further

_PRINT = np.zeros(256, dtype=bool)
_PRINT[0x20:0x7F] = True
_PRINT[[0x09, 0x0A, 0x0D]] = True
_HIGH = np.zeros(256, dtype=bool)
_HIGH[0x80:] = True


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


def _periodic_novel(arr: np.ndarray, period: int) -> np.ndarray | None:
    """Bytes not repeated from ``period`` bytes earlier, if repetition is substantial.

    ECB (and any deterministic block cipher mode) maps repeated plaintext
    blocks to repeated ciphertext blocks; what remains after removing the
    repeats is the ciphertext of the distinct blocks, which is random.
    """
    if arr.size < 3 * period:
        return None
    same = arr[period:] == arr[:-period]
    if np.count_nonzero(same) < 0.25 * same.size:
        return None
    return np.concatenate((arr[:period], arr[period:][~same]))


def _random_like(h: float | None, n: int) -> tuple[bool, float]:
    if h is None or n < 2:
        return False, 0.0
    sd = random_entropy_sd(n)
    z = (expected_random_entropy(n) - h) / sd if sd > 0 else 0.0
    return z <= Z_RANDOM, z


def classify(data: bytes, *, _depth: int = 0) -> PayloadVerdict:
    """Classify an arbitrary byte string.  Bounded time and memory for any input."""
    n = len(data)
    if n == 0:
        return PayloadVerdict(EMPTY, 1.0, 0, None, reason="empty")
    counts = byte_counts(data)
    h = shannon_entropy(counts)
    exp_h = expected_random_entropy(n)
    distinct = int(np.count_nonzero(counts))
    printable = int(counts[_PRINT].sum())
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

    high = int(counts[_HIGH].sum())
    textish = pfrac >= TEXT_FRACTION or (
        high and (printable + high) / n >= TEXT_FRACTION and _looks_utf8(data)
    )
    if textish:
        return _classify_text(data, counts, base, _depth)

    if n < MIN_BYTES:
        return PayloadVerdict(UNKNOWN, 0.5, reason="too_short", **base)

    is_random, z = _random_like(h, n)
    base["entropy_z"] = z
    if is_random:
        hl = magic.probe_headerless(data)
        if hl is not None:
            return PayloadVerdict(COMPRESSED, 0.9, reason=f"{hl.kind}:{hl.reason}", format=hl.format, **base)
        return PayloadVerdict(ENCRYPTED, _confidence(n), reason="random", **base)

    arr = np.frombuffer(data, dtype=np.uint8)
    for period in (16, 8):
        novel = _periodic_novel(arr, period)
        if novel is not None and novel.size >= 16:
            nb = novel.tobytes()
            ok, _ = _random_like(shannon_entropy(byte_counts(nb)), len(nb))
            if ok:
                return PayloadVerdict(
                    ENCRYPTED, _confidence(len(nb)), reason=f"repeated_blocks_{period}", **base
                )

    pb = magic.parse_protobuf(data)
    if pb is not None:
        extra: tuple[tuple[str, Any], ...] = ()
        off, ln = pb.largest_bytes_field
        if ln >= 32 and _depth < _MAX_DEPTH:
            inner = classify(data[off : off + ln], _depth=_depth + 1)
            extra = (("embedded", {"class": inner.cls, "confidence": round(inner.confidence, 3), "n": ln}),)
        return PayloadVerdict(BINARY, 0.8, reason="protobuf_wire_format", format="protobuf", extra=extra, **base)

    if h is not None and h >= exp_h - NEAR_RANDOM_BITS:
        hl = magic.probe_headerless(data)
        if hl is not None:
            return PayloadVerdict(COMPRESSED, 0.9, reason=f"{hl.kind}:{hl.reason}", format=hl.format, **base)
        return PayloadVerdict(COMPRESSED, 0.6, reason="near_random", **base)
    return PayloadVerdict(BINARY, _confidence(n), reason="structured", **base)


def _classify_text(data: bytes, counts: np.ndarray, base: dict[str, Any], depth: int) -> PayloadVerdict:
    n = len(data)
    conf = _confidence(n, floor=0.6)
    if depth < _MAX_DEPTH:
        whole = encodings.detect_whole(data, counts)
        if whole is not None and len(whole.data) >= 8:
            sub = classify(whole.data, _depth=depth + 1)
            cls = ENCODED if sub.cls in (ENCRYPTED, COMPRESSED, ENCODED) else TEXT
            return PayloadVerdict(
                cls,
                sub.confidence if cls == ENCODED else conf,
                reason=f"{whole.encoding}_whole",
                encoding=whole.encoding,
                encoded_span=whole.span,
                decoded=sub,
                **base,
            )
        if n >= encodings.MIN_EMBEDDED:
            emb = encodings.find_embedded(data)
            if emb is not None and len(emb.data) >= 32:
                sub = classify(emb.data, _depth=depth + 1)
                dominant = emb.span * 2 >= n
                cls = ENCODED if dominant and sub.cls in (ENCRYPTED, COMPRESSED, ENCODED) else TEXT
                return PayloadVerdict(
                    cls,
                    sub.confidence if cls == ENCODED else conf,
                    reason=f"{emb.encoding}_embedded",
                    encoding=emb.encoding,
                    encoded_span=emb.span,
                    decoded=sub,
                    **base,
                )
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


def direction_payload(data: bytes, first_packet: bytes | None = None, gap_bytes: int = 0) -> dict[str, Any]:
    """The contract's P object for one direction's (gap-free) sampled bytes."""
    verdict = classify(data)
    p = verdict.to_dict()
    if data:
        counts = byte_counts(data)
        battery = ent_battery(data, counts).to_dict()
        battery.pop("n", None)
        battery.pop("entropy", None)
        p.update(battery)
        p["fet"] = fet_features(data[:1460] if first_packet is None else first_packet).to_dict()
    if gap_bytes:
        p["gap_bytes"] = gap_bytes
    if first_packet is not None and len(first_packet) > 0:
        fv = classify(first_packet)
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
            result[name] = direction_payload(data, first, len(raw) - len(data))
        except Exception:  # an analyzer bug must not lose the flow record
            log.exception("payload analysis failed for %s direction", name)
            result[name] = {"n": len(data), "entropy": None, "class": UNKNOWN, "reason": "analyzer_error"}
    return {"payload": result}
