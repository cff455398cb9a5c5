"""Recognise and decode text encodings of binary data: base64, base32, hex, percent-encoding.

Contract: ``detect_whole(data)`` says whether all of ``data`` (ignoring line
breaks and surrounding whitespace) is one encoding and returns the decoded
bytes; ``find_embedded(data)`` finds the longest encoded run inside text (a
base64 blob in a JSON body or a form field).  Decoding is bounded to
``MAX_DECODE`` input characters and tolerant of a truncated tail (the sample
may cut the encoding mid-quantum).  The decoded bytes are returned for the
caller to re-measure and must never be written to any output.  No I/O, no state.

Alphabets: RFC 4648 §4 (base64), §5 (base64url), §6 (base32), §8 (base16);
percent-encoding RFC 3986 §2.1.
"""
from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from dataclasses import dataclass

import numpy as np

__all__ = ["Decoded", "detect_whole", "find_embedded", "MAX_DECODE", "MIN_EMBEDDED"]

MAX_DECODE = 16384  # characters of encoded text we are willing to decode
MIN_EMBEDDED = 64  # shortest run inside text worth decoding (48 decoded bytes of base64)


def _mask(chars: bytes) -> np.ndarray:
    m = np.zeros(256, dtype=bool)
    m[list(chars)] = True
    return m


_DIGITS = b"0123456789"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = _UPPER.lower()
_WS = b" \t\r\n"
_M_WS = _mask(_WS)
_M_HEX_LO = _mask(_DIGITS + b"abcdef")
_M_HEX_UP = _mask(_DIGITS + b"ABCDEF")
_M_B32 = _mask(_UPPER + b"234567=")
_M_B32_LO = _mask(_LOWER + b"234567=")
_M_B64 = _mask(_UPPER + _LOWER + _DIGITS + b"+/=")
_M_B64URL = _mask(_UPPER + _LOWER + _DIGITS + b"-_=")
_M_DIGIT = _mask(_DIGITS)
_M_UPPER = _mask(_UPPER)
_M_LOWER = _mask(_LOWER)


@dataclass(frozen=True, slots=True)
class Decoded:
    """An encoding found in a byte string.  ``data`` is internal: never serialise it."""

    encoding: str  # base64 | base64url | base32 | hex | percent
    start: int  # span of the encoded text inside the input
    end: int
    data: bytes

    @property
    def span(self) -> int:
        return self.end - self.start


def _only(counts: np.ndarray, allowed: np.ndarray) -> bool:
    return not counts[~allowed].any()


def _mixed_enough(counts: np.ndarray, n: int) -> bool:
    """Base64 of high-entropy bytes uses digits and both cases.

    For 32+ characters of base64 of random bytes the chance of missing a whole
    class is below (54/64)^32 ~ 0.4%; a long run of letters only (an English
    identifier, a CamelCase word) is not base64 of anything interesting.
    """
    if n < 32:
        return True
    return bool(counts[_M_DIGIT].any() and counts[_M_UPPER].any() and counts[_M_LOWER].any())


def _b64decode(s: bytes, urlsafe: bool) -> bytes | None:
    s = s.rstrip(b"=")
    if b"=" in s:
        return None
    s = s[: len(s) - (len(s) % 4 == 1)]  # a lone trailing char carries < 8 bits: the sample cut it
    s = s + b"=" * (-len(s) % 4)
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(s)
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        return None


def _b32decode(s: bytes) -> bytes | None:
    s = s.rstrip(b"=").upper()
    if b"=" in s:
        return None
    # 8 chars -> 5 bytes; only some tail lengths (2,4,5,7) are valid, trim others.
    tail = len(s) % 8
    keep = {0: 0, 1: 0, 2: 2, 3: 2, 4: 4, 5: 5, 6: 5, 7: 7}[tail]
    s = s[: len(s) - tail + keep]
    s = s + b"=" * (-len(s) % 8)
    try:
        return base64.b32decode(s)
    except (binascii.Error, ValueError):
        return None


def _hexdecode(s: bytes) -> bytes | None:
    s = s[: len(s) - (len(s) % 2)]
    try:
        return binascii.unhexlify(s)
    except (binascii.Error, ValueError):
        return None


_PCT = re.compile(rb"%[0-9A-Fa-f]{2}")
_PCT_ALLOWED = _mask(_UPPER + _LOWER + _DIGITS + b"-._~%+=&!$'()*,;:@/?")


def _percent(data: bytes, counts: np.ndarray) -> bytes | None:
    # Percent-encoded binary is mostly %XX triplets; require >= 1/3 of the
    # characters to be inside triplets so a URL with one %20 stays text.
    if not _only(counts, _PCT_ALLOWED):
        return None
    # the sample may end inside a triplet ("...%4" or "...%")
    cut = data.rfind(b"%", max(0, len(data) - 2))
    if cut >= 0:
        data = data[:cut]
    triplets = len(_PCT.findall(data))
    if triplets * 9 < len(data) or data.count(b"%") != triplets:
        return None  # too few triplets, or a "%" that starts no valid one
    # "+" is a space in form encoding (WHATWG URL, application/x-www-form-urlencoded)
    return urllib.parse.unquote_to_bytes(data.replace(b"+", b" "))


def detect_whole(data: bytes, counts: np.ndarray | None = None) -> Decoded | None:
    """Is all of ``data`` (bar whitespace) one encoding?  Decodes at most MAX_DECODE chars."""
    if len(data) < 8:
        return None
    if counts is None:
        counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    core = data.strip()
    if counts[_M_WS].any():
        # MIME base64 and hex dumps wrap lines; interior spaces in other text mean prose.
        if counts[ord(" ")] or counts[ord("\t")]:
            inner = core.replace(b"\r", b"").replace(b"\n", b"")
            if b" " in inner or b"\t" in inner:
                return None
        core = core.replace(b"\r", b"").replace(b"\n", b"")
        counts = np.bincount(np.frombuffer(core, dtype=np.uint8), minlength=256)
    n = len(core)
    if n < 8:
        return None
    core = core[:MAX_DECODE]
    start = len(data) - len(data.lstrip())
    end = len(data.rstrip())
    if _only(counts, _M_HEX_LO) or _only(counts, _M_HEX_UP):
        if n < 16 or (counts[_M_DIGIT].any() and counts[~_M_DIGIT].any()):
            dec = _hexdecode(core)
            if dec:
                return Decoded("hex", start, end, dec)
    if (_only(counts, _M_B32) or _only(counts, _M_B32_LO)) and n >= 16:
        dec = _b32decode(core)
        if dec:
            return Decoded("base32", start, end, dec)
    if _only(counts, _M_B64) and _mixed_enough(counts, n):
        dec = _b64decode(core, urlsafe=False)
        if dec:
            return Decoded("base64", start, end, dec)
    if _only(counts, _M_B64URL) and _mixed_enough(counts, n):
        dec = _b64decode(core, urlsafe=True)
        if dec:
            return Decoded("base64url", start, end, dec)
    dec = _percent(core, counts)
    if dec:
        return Decoded("percent", start, end, dec)
    return None


# Candidate runs use either base64 alphabet (hex and base32 are subsets) plus
# line breaks, because MIME wraps base64 at 76 characters (RFC 2045 §6.8).
# Runs are found with a table lookup and np.diff: linear, no regex backtracking.
_RUN_TABLE = bytes(1 if c in (_UPPER + _LOWER + _DIGITS + b"+/_-\r\n") else 0 for c in range(256))


def find_embedded(data: bytes, min_len: int = MIN_EMBEDDED) -> Decoded | None:
    """The longest encoded run of at least ``min_len`` characters inside ``data``."""
    if len(data) < min_len:
        return None
    # bytes.translate is a C loop (~1 us for 4 KiB); the substring test then
    # rejects the common case, text with no long run, before any numpy work.
    marks = data.translate(_RUN_TABLE)
    if b"\x01" * min_len not in marks:
        return None
    inside = np.frombuffer(marks, dtype=np.int8)
    edges = np.diff(np.concatenate(([0], inside, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    if starts.size == 0:
        return None
    longest = int(np.argmax(ends - starts))
    s0, e0 = int(starts[longest]), int(ends[longest])
    if e0 - s0 < min_len:
        return None
    while e0 < len(data) and data[e0] == 0x3D and e0 - int(ends[longest]) < 2:  # "=" padding
        e0 += 1
    best = (s0, e0)
    run = data[s0:e0]
    found = detect_whole(run)
    if found is None:
        return None
    return Decoded(found.encoding, best[0], best[1], found.data)
