"""Record offsets of a classic pcap buffer: the one sequential loop of the batch reader.

Each record's length is only known once its header is read, so the walk is a
loop; it runs in C (``netan._walk``, built when netan is installed) and falls
back to the same loop in Python when the extension is missing (a platform
without a compiler). Both give identical results; tests run both.
"""
from __future__ import annotations

import struct

import numpy as np

try:
    from netan import _walk as _c_walk
except ImportError:  # pragma: no cover - exercised by forcing the fallback in tests
    _c_walk = None

__all__ = ["walk_pcap", "walk_pcap_python", "HAVE_C_WALK"]

HAVE_C_WALK = _c_walk is not None


def walk_pcap_python(buf, pos: int, end: int, hdr_len: int, big_endian: bool) -> tuple[np.ndarray, int, bool]:
    """Offsets of the records starting in ``buf[pos:end]``.

    Returns ``(offsets, pos, cut)``: the int64 offsets of every record that
    starts before ``end`` (the last may reach past it); ``pos`` the offset
    after the last header read (the next record); ``cut`` when the last
    record's length field lies past the end of ``buf`` (its offset is listed
    and ``pos`` is that offset).
    """
    incl_at = struct.Struct((">" if big_endian else "<") + "I").unpack_from
    end = min(end, len(buf))
    offs: list[int] = []
    app = offs.append
    cut = False
    try:
        while pos < end:
            app(pos)
            pos += incl_at(buf, pos + 8)[0] + hdr_len
    except struct.error:
        cut = True
    return np.array(offs, np.int64), pos, cut


def walk_pcap(buf, pos: int, end: int, hdr_len: int, big_endian: bool) -> tuple[np.ndarray, int, bool]:
    """:func:`walk_pcap_python`'s result, from the C loop when it is built."""
    if _c_walk is None:
        return walk_pcap_python(buf, pos, end, hdr_len, big_endian)
    raw, pos, cut = _c_walk.walk_pcap(buf, pos, end, hdr_len, int(big_endian))
    return np.frombuffer(raw, np.int64), pos, bool(cut)
