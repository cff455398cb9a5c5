"""Zeek's ASCII (TSV) log format: header directives, value escapes, typed values.

Contract: ``read_tsv(lines, file, problems)`` takes an iterator of text lines
(no I/O of its own) and yields ``(path, fields, row)`` per data line, where
``row`` is the list of column values converted to Python by the column's Zeek
type (``time``/``interval``/``double`` -> float, ``count``/``int``/``port`` ->
int, ``bool`` -> bool, ``set``/``vector`` -> list, everything else -> str;
the unset field -> None, the empty field -> ``""`` or ``[]``).  Lines that do
not fit the header are reported to ``problems`` with their line number and
skipped; everything else is kept.

The format is Zeek's ``Log::WRITER_ASCII`` (``base/frameworks/logging/writers/
ascii.zeek`` and ``src/threading/formatters/Ascii.cc``): a header block of
``#``-directives (``#separator`` written with a *space* and its value escaped
as ``\\xNN``; every later directive separated by the separator itself), data
lines, an optional ``#close``.  Headers may repeat mid-file (log rotation by
``cat``, or a writer restart); every directive takes effect from its line on.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Iterator

from netan.problems import Problems

__all__ = ["TsvHeader", "header_line", "read_tsv", "decoder", "decode_lenient", "unescape", "canon_text", "convert_for"]

log = logging.getLogger(__name__)

# Zeek escapes a byte as \xNN when it is not printable, is not valid UTF-8, or
# collides with a separator; a literal backslash is written as "\\".
_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _unescape_one(m: re.Match[str]) -> str:
    tok = m.group(1)
    if tok == "\\":
        return "\\"
    code = int(tok[1:], 16)
    # A printable ASCII byte is only escaped when it collides with a separator
    # (",", "\t", "-" of the unset field, ...): give back the character.  Any
    # other byte stays as the four characters "\xNN", which is also exactly how
    # Zeek's JSON writer renders such a byte (Zeek baseline
    # scripts.base.frameworks.logging.json-non-printable-escaping), so a TSV log
    # and a JSON log of the same traffic give the same string.
    if 0x20 <= code <= 0x7E:
        return chr(code)
    return "\\" + tok.lower()


def unescape(value: str) -> str:
    """Undo Zeek's ASCII escapes in one value (see ``_unescape_one`` for the canon)."""
    if "\\" not in value:
        return value
    return _ESCAPE.sub(_unescape_one, value)


def canon_text(value: str) -> str:
    """Control characters as ``\\xNN``: the canonical form shared by TSV and JSON input."""
    if _CONTROL.search(value) is None:
        return value
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group(0)), value)


def _decode_separator(raw: str) -> str:
    """``#separator`` values are written escaped (``\\x09``); decode them fully."""
    out = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), raw)
    return out


@dataclass(frozen=True, slots=True)
class TsvHeader:
    """The directives seen so far; Zeek's defaults until a directive says otherwise."""

    separator: str = "\t"
    set_separator: str = ","
    empty_field: str = "(empty)"
    unset_field: str = "-"
    path: str | None = None
    fields: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    open: str | None = None

    def absorb(self, line: str) -> "TsvHeader | None":
        """The header after one ``#`` line; None if the line is not a directive."""
        if line.startswith("#separator"):
            rest = line[len("#separator"):]
            # Zeek writes "#separator \x09"; accept a tab or any single char too.
            value = rest[1:] if rest[:1] in (" ", "\t") else rest
            sep = _decode_separator(value)
            if not sep:
                return None
            return replace(self, separator=sep)
        name, _, value = line[1:].partition(self.separator)
        if name == "set_separator":
            return replace(self, set_separator=_decode_separator(value) or ",")
        if name == "empty_field":
            return replace(self, empty_field=value)
        if name == "unset_field":
            return replace(self, unset_field=value)
        if name == "path":
            return replace(self, path=value or None)
        if name == "open":
            # A new #open starts a new log: types from the previous one no longer apply.
            return replace(self, open=value, fields=(), types=())
        if name == "fields":
            return replace(self, fields=tuple(value.split(self.separator)), types=())
        if name == "types":
            return replace(self, types=tuple(value.split(self.separator)))
        if name == "close":
            return self
        return None


Converter = Callable[[str], Any]


def _to_bool(v: str) -> bool:
    if v == "T":
        return True
    if v == "F":
        return False
    raise ValueError(f"not a Zeek bool: {v!r}")


def _to_float(v: str) -> float:
    f = float(v)
    if f - f != 0.0:  # NaN or +-inf: not a time, interval or measurement Zeek writes
        raise ValueError(f"not a finite number: {v!r}")
    return f


def _to_count(v: str) -> int:
    return int(v)


def _to_port(v: str) -> int:
    # Zeek >= 2.0 writes ports as bare numbers; tolerate "80/tcp" from old writers.
    if "/" in v:
        v = v.split("/", 1)[0]
    return int(v)


def _scalar(ztype: str) -> Converter:
    if ztype in ("time", "interval", "double"):
        return _to_float
    if ztype in ("count", "int"):
        return _to_count
    if ztype == "port":
        return _to_port
    if ztype == "bool":
        return _to_bool
    # string, enum, addr, subnet, pattern, func and unknown types: text.
    return unescape


def convert_for(ztype: str, header: TsvHeader) -> Converter:
    """Converter for one column of Zeek type ``ztype`` (unknown types stay text)."""
    unset, empty = header.unset_field, header.empty_field
    if ztype.startswith(("set[", "vector[")) and ztype.endswith("]"):
        inner = _scalar(ztype[ztype.index("[") + 1 : -1])
        sep = header.set_separator

        def container(v: str) -> Any:
            if v == unset:
                return None
            if v == empty:
                return []
            out = []
            for el in v.split(sep):
                # A container element equal to the unset field is an unset element.
                out.append(None if el == unset else inner(el))
            return out

        return container
    scalar = _scalar(ztype)
    if scalar is unescape:

        def text(v: str) -> Any:
            if v == unset:
                return None
            if v == empty:
                return ""
            return unescape(v) if "\\" in v else v

        return text

    def value(v: str) -> Any:
        if v == unset or v == "":
            return None
        return scalar(v)

    return value


def header_line(header: TsvHeader, line: str, file: str, lineno: int, problems: Problems) -> TsvHeader:
    """The header after a ``#`` line (comments such as "### BTest ..." leave it unchanged)."""
    new = header.absorb(line)
    if new is None:
        return header
    if new.types and len(new.types) != len(new.fields):
        problems.skip(file, f"line {lineno}", "tsv_types_mismatch")
        new = replace(new, types=())
    return new


def read_tsv(
    lines: Iterable[str],
    file: str,
    problems: Problems,
    first_line: int = 1,
) -> Iterator[tuple[TsvHeader, int, list[str]]]:
    """Yield ``(header, line number, columns)`` per data line of a Zeek TSV log.

    Columns are raw text (convert them with ``decoder``).  A line with the
    wrong number of columns (truncated, or written under another header), or
    data before any ``#fields``, is skipped and reported.
    """
    header = TsvHeader()
    nfields = 0
    sep = header.separator
    for lineno, line in enumerate(lines, first_line):
        if line[-1:] == "\n":
            line = line[:-1]
            if line[-1:] == "\r":
                line = line[:-1]
        if not line:
            continue
        if line[0] == "#":
            header = header_line(header, line, file, lineno, problems)
            sep = header.separator
            nfields = len(header.fields)
            continue
        if not nfields:
            problems.skip(file, f"line {lineno}", "tsv_no_header")
            continue
        parts = line.split(sep)
        if len(parts) != nfields:
            problems.skip(file, f"line {lineno}", "tsv_wrong_column_count")
            continue
        yield header, lineno, parts


def decoder(header: TsvHeader, names: Iterable[str]) -> Callable[[list[str]], dict[str, Any]]:
    """A function turning one line's columns into ``{name: value}`` for ``names``.

    Only the named columns are converted (by their ``#types``; a column
    without a type is text); names the header lacks are absent from the dict.
    Raises ValueError when a value does not convert (``decode_lenient`` then
    keeps the rest of the line).
    """
    types = header.types or ("string",) * len(header.fields)
    index = {name: i for i, name in enumerate(header.fields)}
    plan = [(name, index[name], convert_for(types[index[name]], header)) for name in names if name in index]

    def decode(parts: list[str]) -> dict[str, Any]:
        return {name: conv(parts[i]) for name, i, conv in plan}

    decode.plan = plan  # type: ignore[attr-defined]
    return decode


def decode_lenient(
    decode: Callable[[list[str]], dict[str, Any]], parts: list[str], file: str, where: str, problems: Problems
) -> dict[str, Any]:
    """``decode(parts)``, but a value that does not convert becomes None (reported as ``bad_value``)."""
    try:
        return decode(parts)
    except ValueError:
        out: dict[str, Any] = {}
        for name, i, conv in decode.plan:  # type: ignore[attr-defined]
            try:
                out[name] = conv(parts[i])
            except ValueError:
                problems.skip(file, f"{where} field {name}", "bad_value")
                out[name] = None
        return out
