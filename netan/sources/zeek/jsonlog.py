"""Zeek's JSON log format (``LogAscii::use_json=T`` / json-streaming-logs): one object per line.

Contract: ``read_json(lines, file, problems)`` yields ``(line number, record)``
for each line that is a JSON object, with nested records flattened to Zeek's
dotted names (``{"id": {"orig_h": ...}}`` -> ``"id.orig_h"``, as some
shippers re-nest them).  Other lines are reported and skipped.  The value
helpers turn JSON's spellings of Zeek types into the same Python values the
TSV reader produces: unset fields are simply absent in Zeek JSON (-> None),
``time`` is epoch seconds, epoch milliseconds (``JSON::TS_MILLIS``) or
ISO-8601 (``JSON::TS_ISO8601``), ``interval`` is full-precision seconds that we
round to the microseconds the TSV writer prints.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Iterator

from netan.problems import Problems

__all__ = ["read_json", "flatten", "json_time", "json_interval", "NESTED_HINTS"]

#: Zeek record-typed columns that shippers nest; seeing one as a dict means flatten.
NESTED_HINTS = ("id", "certificate", "san", "basic_constraints")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_SECOND = timedelta(seconds=1)


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects to Zeek's dotted column names (bounded by the input's own depth)."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def json_time(v: Any) -> float | None:
    """A Zeek ``time`` from JSON as epoch seconds rounded to microseconds.

    ISO strings are converted through their integer seconds and the fraction
    as written, so ``2018-03-24T17:15:20.615923Z`` gives exactly the float
    that the TSV text ``1521911720.615923`` gives.
    """
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v)
        if f - f != 0.0:
            raise ValueError(f"not a finite time: {v!r}")
        # JSON::TS_MILLIS writes integer milliseconds; seconds since 1970 stay
        # below 1e11 until the year 5138.
        if abs(f) >= 1e11:
            f = f / 1000.0
        return round(f, 6)
    if isinstance(v, str):
        # Fast path for Zeek's own spelling, 2018-03-24T17:15:20.615923Z: the
        # whole seconds repeat from line to line, so they are memoised.
        if len(v) > 21 and v[19] == "." and v[-1] == "Z" and v[4] == "-" and v[10] == "T":
            frac = v[20:-1]
            if frac.isdigit():
                secs = _SECONDS.get(v[:19])
                if secs is None:
                    secs = _iso_seconds(v[:19])
                if secs >= 0:
                    return float(f"{secs}.{(frac + '000000')[:6]}")
        s = v.strip()
        try:
            f = float(s)
        except ValueError:
            pass
        else:
            if f - f != 0.0:
                raise ValueError(f"not a finite time: {v!r}")
            return round(f, 6)
        frac = ""
        main = s
        dot = s.find(".")
        if dot >= 0:
            end = dot + 1
            while end < len(s) and s[end].isdigit():
                end += 1
            frac = s[dot + 1 : end]
            main = s[:dot] + s[end:]
        if main.endswith(("Z", "z")):
            main = main[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(main)
        except ValueError:
            raise ValueError(f"not a Zeek time: {v!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)  # Zeek writes UTC
        secs = (dt - _EPOCH) // _ONE_SECOND
        frac = (frac + "000000")[:6]
        if secs < 0 and int(frac):
            # float("-12.5") means -12 - 0.5; keep the sign arithmetic exact.
            return round(secs + int(frac) / 1e6, 6)
        return float(f"{secs}.{frac}")
    raise ValueError(f"not a Zeek time: {v!r}")


_SECONDS: dict[str, int] = {}


def _iso_seconds(prefix: str) -> int:
    dt = datetime.fromisoformat(prefix + "+00:00")
    secs = (dt - _EPOCH) // _ONE_SECOND
    if len(_SECONDS) > 4096:
        _SECONDS.clear()
    _SECONDS[prefix] = secs
    return secs


def json_interval(v: Any) -> float | None:
    """A Zeek ``interval`` (seconds) rounded to the microseconds TSV prints."""
    if v is None or isinstance(v, bool):
        return None
    f = float(v)
    if f - f != 0.0:
        raise ValueError(f"not a finite interval: {v!r}")
    return round(f, 6)


def _loader() -> Callable[[str], Any]:
    """orjson when installed (about 3x faster on conn.log lines), else the standard library."""
    try:
        import orjson
    except ImportError:
        return json.loads

    def loads(line: str) -> Any:
        try:
            return orjson.loads(line)
        except ValueError:
            # What orjson refuses but Python's json accepts (NaN, integers past
            # 64 bits) still gets its chance before the line is called invalid.
            return json.loads(line)

    return loads


def read_json(lines: Iterable[str], file: str, problems: Problems, first_line: int = 1) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, flat record)`` for each JSON-object line."""
    loads = _loader()
    for lineno, line in enumerate(lines, first_line):
        if not line or line.isspace():
            continue
        try:
            obj = loads(line)
        except (ValueError, RecursionError):
            problems.skip(file, f"line {lineno}", "json_invalid")
            continue
        if type(obj) is not dict:
            problems.skip(file, f"line {lineno}", "json_not_object")
            continue
        for hint in NESTED_HINTS:
            if type(obj.get(hint)) is dict:
                try:
                    obj = flatten(obj)
                except RecursionError:
                    obj = None
                break
        if obj is None:
            problems.skip(file, f"line {lineno}", "json_too_deep")
            continue
        yield lineno, obj
