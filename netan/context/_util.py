"""Small shared parsers for the importers: timestamps, addresses, streamed JSON values.

Everything here is pure (no files, no clocks) except ``iter_json_values``, which
reads from a text stream the caller opened and never holds more than one JSON
value (bounded by ``max_value_chars``) in memory.
"""
from __future__ import annotations

import ipaddress
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, TextIO

from netan.context.model import Reject

__all__ = [
    "parse_rfc3339",
    "parse_epoch_ms",
    "norm_mac",
    "norm_ip",
    "to_int",
    "iter_json_values",
    "bounded_lines",
    "MAX_LINE_CHARS",
    "TimeError",
    "MIN_TS",
    "MAX_TS",
]

#: plausibility window for device timestamps: 2000-01-01 .. 2100-01-01 UTC.
MIN_TS = 946684800.0
MAX_TS = 4102444800.0


class TimeError(ValueError):
    """A timestamp that cannot be used; the message is the reject reason."""


# RFC 3339 section 5.6 date-time; a zone (Z or +hh:mm) is mandatory: a time
# without one is ambiguous and is rejected rather than guessed.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_rfc3339(value: Any, *, require_zone: bool = True) -> float:
    """Epoch seconds of an RFC 3339 / google-datetime string (up to ns fraction)."""
    if not isinstance(value, str):
        raise TimeError(f"timestamp is {type(value).__name__}, expected RFC 3339 string")
    m = _RFC3339.match(value.strip())
    if not m:
        raise TimeError(f"timestamp {value[:40]!r} is not RFC 3339")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    if zone is None:
        if require_zone:
            raise TimeError(f"timestamp {value[:40]!r} has no time zone")
        tz = timezone.utc
    elif zone in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        hh, mm = int(digits[:2]), int(digits[2:])
        if hh > 23 or mm > 59:
            raise TimeError(f"timestamp {value[:40]!r} has an invalid zone offset")
        tz = timezone(sign * timedelta(hours=hh, minutes=mm))
    try:
        # leap second 60 is legal in RFC 3339; fold it onto :59.
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), min(int(s), 59), tzinfo=tz)
    except ValueError as exc:
        raise TimeError(f"timestamp {value[:40]!r}: {exc}") from None
    ts = dt.timestamp() + (int(frac.ljust(9, "0")) / 1e9 if frac else 0.0)
    if not MIN_TS <= ts <= MAX_TS:
        raise TimeError(f"timestamp {value[:40]!r} outside 2000..2100")
    return ts


def parse_epoch_ms(value: Any) -> float:
    """Epoch seconds from an epoch-milliseconds number (UsageEvents.Event.getTimeStamp)."""
    if isinstance(value, bool):
        raise TimeError("timestamp is a boolean")
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,16}(\.\d+)?", value.strip()):
        value = float(value)
    if not isinstance(value, (int, float)):
        raise TimeError(f"timestamp {str(value)[:40]!r} is not epoch milliseconds")
    ts = float(value) / 1000.0
    if not MIN_TS <= ts <= MAX_TS:
        # A seconds value read as ms lands in January 1970: say so, do not guess.
        hint = " (looks like seconds)" if MIN_TS <= float(value) <= MAX_TS else ""
        raise TimeError(f"timestamp {value!r} out of range for epoch ms{hint}")
    return ts


_HEX12 = re.compile(r"^[0-9a-f]{12}$")


def norm_mac(value: Any) -> str:
    """``aa:bb:cc:dd:ee:ff`` from any common MAC spelling, or "" when it is not one."""
    if not isinstance(value, str):
        return ""
    raw = re.sub(r"[\s:.\-]", "", value.strip().lower())
    # 02:00:00:00:00:00 is what Android reports to callers without permission
    # (since Android 6): a placeholder shared by every device, not an address.
    if not _HEX12.match(raw) or raw in ("000000000000", "020000000000", "ffffffffffff"):
        return ""
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def norm_ip(value: Any) -> str:
    """Canonical text of an IP address (IPv4-mapped IPv6 folded to IPv4), or ""."""
    if not isinstance(value, str):
        return ""
    text = value.strip().strip("[]")
    if "%" in text:  # scoped IPv6 (fe80::1%wlan0)
        text = text.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return ""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def to_int(value: Any, default: int | None = None) -> int | None:
    """int from a JSON number or a decimal string (proto3 JSON renders int64 as strings)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,19}\s*", value):
        return int(value)
    return default


#: longest text line kept whole; longer lines are cut (and then fail to parse)
MAX_LINE_CHARS = 1 << 20


def bounded_lines(stream: TextIO, max_chars: int = MAX_LINE_CHARS) -> Iterator[str]:
    """Lines of a text stream, each at most ``max_chars`` long: a file without
    newlines cannot make one line fill memory. The rest of an overlong line is
    read and dropped."""
    while True:
        line = stream.readline(max_chars)
        if not line:
            return
        if len(line) >= max_chars and not line.endswith("\n"):
            while True:
                rest = stream.readline(max_chars)
                if not rest or rest.endswith("\n"):
                    break
        yield line


_DECODER = json.JSONDecoder()
_WS = " \t\r\n\ufeff"


def _first_line_is_value(line: str) -> bool:
    text = line.strip(_WS)
    if not text:
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def iter_json_values(
    stream: TextIO, *, max_value_chars: int = 32 * 1024 * 1024, chunk: int = 1 << 16
) -> Iterator[tuple[int, Any] | Reject]:
    """Yield ``(line, value)`` for each top-level JSON value, or ``Reject``.

    Accepts one value, a top-level array (yields its elements), JSON lines, and
    concatenated / pretty-printed values. Memory is bounded by the largest single
    value (``max_value_chars``), never by the file size.
    """
    first = stream.readline(max_value_chars)
    skipped = 0
    while first and not first.strip(_WS):
        skipped += 1
        first = stream.readline(max_value_chars)
    if not first:
        return
    head = first.lstrip(_WS)
    if not head.startswith("[") and _first_line_is_value(first):
        yield from _iter_lines(stream, first, skipped, max_value_chars)
        return
    yield from _iter_stream(stream, first, skipped, max_value_chars, chunk)


def _iter_lines(stream: TextIO, first: str, skipped: int, max_chars: int) -> Iterator[tuple[int, Any] | Reject]:
    """JSON lines: every line stands alone, so a bad line costs only itself."""
    for line_no, line in enumerate(_chain_first(first, bounded_lines(stream, max_chars)), start=1 + skipped):
        if len(line) >= max_chars and not line.endswith("\n"):
            yield Reject(line_no, f"line longer than {max_chars} characters")
            continue
        text = line.strip(_WS)
        if not text:
            continue
        try:
            yield line_no, json.loads(text)
        except ValueError as exc:
            yield Reject(line_no, f"malformed JSON line: {_short(exc)}")


def _chain_first(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _short(exc: Exception) -> str:
    return str(exc).split(":")[0][:80]


def _iter_stream(
    stream: TextIO, first: str, skipped: int, max_value_chars: int, chunk: int
) -> Iterator[tuple[int, Any] | Reject]:
    buf = first
    pos = 0
    line = 1 + skipped
    eof = False
    in_array = buf.lstrip(_WS).startswith("[")

    def skip_ws() -> None:
        nonlocal pos, line
        n = len(buf)
        while pos < n and buf[pos] in _WS:
            if buf[pos] == "\n":
                line += 1
            pos += 1

    def refill(need_more: bool) -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        # drop what was consumed; read at least as much again as is pending so a
        # value that keeps failing to decode costs amortised linear time.
        buf = buf[pos:]
        pos = 0
        want = max(chunk, len(buf)) if need_more else chunk
        data = stream.read(want)
        if not data:
            eof = True
            return False
        buf += data
        return True

    if in_array:
        skip_ws()
        pos += 1  # '['
    while True:
        skip_ws()
        while pos >= len(buf) and refill(False):
            skip_ws()
        if pos >= len(buf):
            if in_array:
                yield Reject(line, "JSON array not closed")
            return
        if in_array:
            if buf[pos] == "]":
                return
            if buf[pos] == ",":
                pos += 1
                continue
        start_line = line
        while True:
            try:
                value, end = _DECODER.raw_decode(buf, pos)
            except ValueError as exc:
                if len(buf) - pos > max_value_chars:
                    yield Reject(start_line, f"JSON value larger than {max_value_chars} characters")
                    return
                if refill(True):
                    continue
                yield Reject(start_line, f"malformed JSON: {_short(exc)}; rest of file skipped")
                return
            if end == len(buf) and not isinstance(value, (dict, list)) and refill(True):
                continue  # a bare number may continue in the next chunk
            break
        line += buf.count("\n", pos, end)
        pos = end
        yield start_line, value
