"""Recognise formats that explain high entropy benignly: compression, archives, media, protobuf.

Contract: ``identify(data)`` looks at the start of a byte string and returns a
``FormatMatch`` (format name, kind, whether the structure was verified) or
None.  Recognition is by magic number *and* structure (header fields, CRCs,
or a bounded trial decode), never by magic alone where the magic is short.
Trial decodes are bounded on both sides: at most ``PROBE_IN`` input bytes and
``PROBE_OUT`` output bytes, so a decompression bomb costs the same as any other
sample.  ``probe_headerless(data)`` tries the formats that have no magic
(raw deflate, brotli); callers run it only on data that already looks random.
No I/O, no state.
"""
from __future__ import annotations

import logging
import lzma
import struct
import zlib
from dataclasses import dataclass
from typing import Callable

import brotli

__all__ = [
    "FormatMatch",
    "identify",
    "probe_headerless",
    "parse_protobuf",
    "PROBE_IN",
    "PROBE_OUT",
]

log = logging.getLogger(__name__)

PROBE_IN = 1024  # never feed a decoder more than this many sample bytes
PROBE_OUT = 8192  # never let a decoder produce more than this many bytes

COMPRESSION = "compression"
ARCHIVE = "archive"
MEDIA = "media"
SERIALIZATION = "serialization"


@dataclass(frozen=True, slots=True)
class FormatMatch:
    """A recognised format.  ``verified`` means structure beyond the magic checked out."""

    format: str
    kind: str  # compression | archive | media | serialization
    verified: bool
    reason: str


def _bounded_inflate(data: bytes, wbits: int) -> tuple[bool, int, int, bool]:
    """Trial-inflate at most PROBE_IN bytes into at most PROBE_OUT bytes.

    Returns (ok, input bytes consumed, output bytes, reached end of stream).
    Hitting the output cap counts as consuming everything: the stream was
    valid as far as we were willing to go (a decompression bomb stops here).
    """
    d = zlib.decompressobj(wbits)
    chunk = data[:PROBE_IN]
    try:
        out = d.decompress(chunk, PROBE_OUT)
    except zlib.error:
        return False, 0, 0, False
    consumed = len(chunk) - len(d.unconsumed_tail) - len(d.unused_data)
    if len(out) >= PROBE_OUT:
        consumed = len(chunk)
    return True, consumed, len(out), d.eof


# --- compression -----------------------------------------------------------


def _gzip(data: bytes) -> FormatMatch | None:
    # RFC 1952 §2.3.1: ID1=0x1f ID2=0x8b CM=8 (deflate), FLG bits 5-7 reserved (zero).
    if len(data) < 3 or data[2] != 8:
        return None
    if len(data) >= 4 and data[3] & 0xE0:
        return None
    if len(data) < 18:
        return FormatMatch("gzip", COMPRESSION, False, "magic")
    ok, _, _, _ = _bounded_inflate(data, 31)
    return FormatMatch("gzip", COMPRESSION, True, "magic+inflate") if ok else None


def _zlib(data: bytes) -> FormatMatch | None:
    # RFC 1950 §2.2: CM=8, CINFO<=7, (CMF*256+FLG) % 31 == 0.  Two bytes match
    # ~1/1000 random strings, so a zlib header is only believed after inflating.
    if len(data) < 2:
        return None
    cmf, flg = data[0], data[1]
    if cmf & 0x0F != 8 or cmf >> 4 > 7 or ((cmf << 8) | flg) % 31:
        return None
    if flg & 0x20:
        # FDICT: a preset dictionary we do not have.  Inflate the raw stream after
        # the 4-byte DICTID against a zero-filled 32 KiB window, so distances into
        # the dictionary are legal and only the Huffman structure is checked.
        if len(data) < 64:
            return None
        d = zlib.decompressobj(-15, zdict=bytes(32768))
        try:
            out = d.decompress(data[6:PROBE_IN], PROBE_OUT)
        except zlib.error:
            return None
        if len(out) * 2 < len(data[6:PROBE_IN]) - len(d.unconsumed_tail) - len(d.unused_data):
            return None
        return FormatMatch("zlib", COMPRESSION, True, "header+fdict+inflate")
    if len(data) < 8:
        return None
    ok, consumed, out, eof = _bounded_inflate(data, 15)
    ended = eof and consumed >= min(len(data) // 2, 256)
    # as for raw deflate, a short prefix may still be inside the Huffman tables
    if ok and (ended or consumed >= min(len(data), PROBE_IN)) and (out > 0 or len(data) <= 320):
        return FormatMatch("zlib", COMPRESSION, True, "header+inflate")
    return None


_BZ_BLOCK = b"\x31\x41\x59\x26\x53\x59"  # pi: compressed block magic
_BZ_EOS = b"\x17\x72\x45\x38\x50\x90"  # sqrt(pi): end-of-stream magic


def _bzip2(data: bytes) -> FormatMatch | None:
    # bzip2 stream: "BZh" + block size '1'..'9', then a block or EOS 48-bit magic.
    if len(data) < 4 or not (0x31 <= data[3] <= 0x39):
        return None
    if len(data) < 10:
        return FormatMatch("bzip2", COMPRESSION, False, "magic")
    if data[4:10] in (_BZ_BLOCK, _BZ_EOS):
        return FormatMatch("bzip2", COMPRESSION, True, "magic+block")
    return None


def _xz(data: bytes) -> FormatMatch | None:
    # xz file format 1.0.4 §2.1.1: magic FD 37 7A 58 5A 00, stream flags (00, check id),
    # then CRC32 of the two flag bytes, little endian.
    if not data.startswith(b"\xfd7zXZ\x00"):
        return None
    if len(data) < 12:
        return FormatMatch("xz", COMPRESSION, False, "magic")
    flags = data[6:8]
    if flags[0] != 0 or flags[1] & 0xF0:
        return None
    (crc,) = struct.unpack_from("<I", data, 8)
    if crc != zlib.crc32(flags):
        return None
    return FormatMatch("xz", COMPRESSION, True, "magic+flags_crc")


def _lzma_alone(data: bytes) -> FormatMatch | None:
    # .lzma (LZMA_Alone): props byte (lc/lp/pb, < 225), dict size u32le, size u64le,
    # then the range coder whose first byte is always 0.  Weak magic: trial decode.
    if len(data) < 14 or data[0] >= 225 or data[13] != 0:
        return None
    (dict_size,) = struct.unpack_from("<I", data, 1)
    (usize,) = struct.unpack_from("<Q", data, 5)
    if dict_size < 4096 or (usize != 0xFFFFFFFFFFFFFFFF and usize > 1 << 40):
        return None
    try:
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
        dec.decompress(data[:PROBE_IN], max_length=PROBE_OUT)
    except lzma.LZMAError:
        return None
    return FormatMatch("lzma", COMPRESSION, True, "header+decode")


def _zstd(data: bytes) -> FormatMatch | None:
    # RFC 8878 §3.1.1: magic 0xFD2FB528 (LE), frame header descriptor bit 3 reserved = 0;
    # Window_Descriptor exponent: window = 2^(10+exp) <= 2^41 (exp <= 31 always; check sanity).
    if len(data) < 5:
        return FormatMatch("zstd", COMPRESSION, False, "magic") if len(data) == 4 else None
    fhd = data[4]
    if fhd & 0x08:
        return None
    single_segment = bool(fhd & 0x20)
    if not single_segment and len(data) >= 6 and (data[5] >> 3) > 21:
        # windows beyond 2 GiB (10+21) are never produced by real encoders
        return None
    return FormatMatch("zstd", COMPRESSION, True, "magic+frame_header")


def _zstd_skippable(data: bytes) -> FormatMatch | None:
    # RFC 8878 §3.1.2: skippable frame magic 0x184D2A5? (LE), then a u32 length.
    if len(data) >= 4 and data[1:4] == b"\x2a\x4d\x18" and data[0] & 0xF0 == 0x50:
        return FormatMatch("zstd", COMPRESSION, len(data) >= 8, "skippable_frame")
    return None


# --- archives --------------------------------------------------------------

_ZIP_METHODS = frozenset({0, 1, 6, 8, 9, 12, 14, 19, 93, 95, 96, 97, 98, 99})


def _zip(data: bytes) -> FormatMatch | None:
    # PKWARE APPNOTE 6.3.10 §4.3.7 local file header: PK\3\4, version needed,
    # flags, compression method (known set); §4.3.16 EOCD PK\5\6; PK\7\8 spanning.
    if data.startswith(b"PK\x05\x06") or data.startswith(b"PK\x07\x08"):
        return FormatMatch("zip", ARCHIVE, len(data) >= 8, "magic")
    if not data.startswith(b"PK\x03\x04"):
        return None
    if len(data) < 10:
        return FormatMatch("zip", ARCHIVE, False, "magic")
    version, _flags, method = struct.unpack_from("<HHH", data, 4)
    if (version & 0xFF) > 63 or method not in _ZIP_METHODS:
        return None
    return FormatMatch("zip", ARCHIVE, True, "local_header")


# --- media -----------------------------------------------------------------


def _jpeg(data: bytes) -> FormatMatch | None:
    # ITU T.81 Annex B: SOI FF D8, then a marker segment FF xx with length >= 2.
    if len(data) < 4 or data[2] != 0xFF:
        return None
    marker = data[3]
    if not (0xC0 <= marker <= 0xFE) or marker in (0xD8, 0xD9):
        return None
    if len(data) >= 6 and struct.unpack_from(">H", data, 4)[0] < 2:
        return None
    return FormatMatch("jpeg", MEDIA, len(data) >= 6, "soi+segment")


def _png(data: bytes) -> FormatMatch | None:
    # PNG spec §5.2 signature, §11.2.2 IHDR first with length 13 and a CRC.
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    if len(data) < 33:
        return FormatMatch("png", MEDIA, False, "signature")
    if data[8:16] != b"\x00\x00\x00\x0dIHDR":
        return None
    (crc,) = struct.unpack_from(">I", data, 29)
    ok = crc == zlib.crc32(data[12:29])
    return FormatMatch("png", MEDIA, ok, "signature+ihdr_crc") if ok else None


def _gif(data: bytes) -> FormatMatch | None:
    if data.startswith((b"GIF87a", b"GIF89a")):
        return FormatMatch("gif", MEDIA, len(data) >= 13, "signature")
    return None


def _riff(data: bytes) -> FormatMatch | None:
    # RIFF container: "RIFF" size "WEBP" + VP8 /VP8L/VP8X chunk (WebP container spec).
    if len(data) < 12 or data[8:12] != b"WEBP":
        return None
    ok = len(data) >= 16 and data[12:16] in (b"VP8 ", b"VP8L", b"VP8X")
    return FormatMatch("webp", MEDIA, ok, "riff+webp")


_BMFF_TYPES = frozenset({b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"sidx", b"free", b"skip", b"wide", b"emsg"})


def _isobmff(data: bytes) -> FormatMatch | None:
    # ISO/IEC 14496-12 §4.2: box = u32 size (1 = 64-bit size follows, >= 8 otherwise) + type.
    if len(data) < 8 or data[4:8] not in _BMFF_TYPES:
        return None
    (size,) = struct.unpack_from(">I", data, 0)
    if size != 1 and size < 8:
        return None
    if size >= 1 << 24 and data[4:8] not in (b"mdat",):
        # header boxes are small; "1234free..." as ASCII would read as a ~1 GB box
        return None
    if data[4:8] == b"mdat" and data[0] >= 0x20:
        return None  # a printable size byte: more likely text than a > 512 MiB mdat
    if data[4:8] in (b"ftyp", b"styp"):
        if size < 16 or len(data) < 12:
            return FormatMatch("mp4", MEDIA, False, "box") if size >= 16 else None
        brand = data[8:12]
        ok = all(0x20 <= b <= 0x7E for b in brand)
        return FormatMatch("mp4", MEDIA, True, "ftyp_brand") if ok else None
    return FormatMatch("mp4", MEDIA, False, "box")


def _ogg(data: bytes) -> FormatMatch | None:
    # RFC 3533 §6: "OggS", stream_structure_version 0, header_type_flag uses 3 bits.
    if len(data) < 6 or data[4] != 0 or data[5] & 0xF8:
        return None
    return FormatMatch("ogg", MEDIA, True, "capture_pattern")


def _matroska(data: bytes) -> FormatMatch | None:
    # EBML header element ID 0x1A45DFA3 (RFC 8794 §8), used by Matroska/WebM.
    return FormatMatch("matroska", MEDIA, len(data) >= 8, "ebml")


def _id3(data: bytes) -> FormatMatch | None:
    # ID3v2 tag (MP3): "ID3", major version 2..4, flags low nibble zero, syncsafe size.
    if len(data) < 10 or not (2 <= data[3] <= 4) or data[5] & 0x0F:
        return None
    if any(b & 0x80 for b in data[6:10]):
        return None
    return FormatMatch("mp3", MEDIA, True, "id3v2")


def _flac(data: bytes) -> FormatMatch | None:
    return FormatMatch("flac", MEDIA, len(data) >= 8, "signature")


# Explicit dispatch on the leading bytes: each entry is (prefix, recogniser).
_PREFIXES: tuple[tuple[bytes, Callable[[bytes], FormatMatch | None]], ...] = (
    (b"\x1f\x8b", _gzip),
    (b"BZh", _bzip2),
    (b"\xfd7zXZ\x00", _xz),
    (b"\x28\xb5\x2f\xfd", _zstd),
    (b"PK", _zip),
    (b"\xff\xd8", _jpeg),
    (b"\x89PNG", _png),
    (b"GIF8", _gif),
    (b"RIFF", _riff),
    (b"OggS", _ogg),
    (b"\x1a\x45\xdf\xa3", _matroska),
    (b"ID3", _id3),
    (b"fLaC", _flac),
)
_BY_FIRST: dict[int, tuple[tuple[bytes, Callable[[bytes], FormatMatch | None]], ...]] = {}
for _p, _f in _PREFIXES:
    _BY_FIRST[_p[0]] = _BY_FIRST.get(_p[0], ()) + ((_p, _f),)
del _p, _f


def identify(data: bytes) -> FormatMatch | None:
    """The format whose header starts ``data``, or None.  Bounded work."""
    if len(data) < 2:
        return None
    for prefix, fn in _BY_FIRST.get(data[0], ()):
        if data.startswith(prefix) or (len(data) < len(prefix) and prefix.startswith(data)):
            m = fn(data)
            if m is not None:
                return m
    m = _isobmff(data) or _zstd_skippable(data) or _zlib(data) or _lzma_alone(data)
    if m is not None:
        return m
    return None


# --- headerless formats -------------------------------------------------------


def probe_headerless(data: bytes) -> FormatMatch | None:
    """Try raw deflate (RFC 1951) and brotli (RFC 7932), which have no magic.

    A random byte string almost never survives a few hundred bytes of either
    decoder (invalid Huffman codes, distances beyond the window, bad block
    types), so surviving the whole bounded probe *and* producing at least as
    many bytes as it consumed (real compressors expand) is taken as evidence.
    Only meaningful for samples of at least ~48 bytes; shorter ones are skipped.
    """
    n = len(data)
    if n < 48:
        return None
    ok, consumed, out, eof = _bounded_inflate(data, -15)
    # A dynamic-Huffman block header can take ~300 bytes before the first output
    # byte, so a short prefix that inflates cleanly but yields nothing still counts.
    # A stream that ends must have used most of the sample: random bytes often
    # "end" after a two-byte empty fixed-Huffman block.
    ended = eof and consumed >= min(n // 2, 256)
    # Output of at least half the input consumed: compressors shrink data and
    # random survivors stop after a few bytes.
    if ok and (ended or consumed >= min(n, PROBE_IN)) and (2 * out >= consumed or (out == 0 and n <= 320)):
        return FormatMatch("deflate", COMPRESSION, True, "raw_inflate")
    chunk = data[: min(n, PROBE_IN)]
    header = _brotli_first_metablock(chunk)
    if header is None:
        return None
    try:
        dec = brotli.Decompressor()
        out_b = dec.process(chunk, output_buffer_limit=PROBE_OUT)
    except brotli.error:
        return None
    # Random bytes that survive the brotli decoder do so as "uncompressed"
    # meta-blocks (a copy of the input) or metadata blocks (no output); both
    # are excluded by the header parse.  The decoder flushes its ring buffer
    # only at the end of a meta-block, so a sample inside a large first
    # meta-block legitimately yields nothing yet.
    mlen = header
    if out_b and out_b[:32] not in chunk:
        return FormatMatch("brotli", COMPRESSION, True, "brotli_decode")
    if not out_b and mlen > len(chunk) and len(chunk) >= 128:
        return FormatMatch("brotli", COMPRESSION, True, "brotli_metablock")
    return None


def _brotli_first_metablock(data: bytes) -> int | None:
    """MLEN of the first meta-block if it is a regular compressed one (RFC 7932 §9.1-9.2).

    Returns None for invalid window sizes, empty last blocks, metadata blocks
    (MNIBBLES = 0) and uncompressed blocks, which real encoders emit only for
    incompressible input.
    """
    if len(data) < 8:
        return None
    bits = int.from_bytes(data[:8], "little")
    # WBITS, §9.1: 1 bit; if set, 3 more; if those are 0, 3 more (value 1 = large window).
    if bits & 1:
        if (bits >> 1) & 7:
            pos = 4
        elif (bits >> 4) & 7 == 1:
            return None
        else:
            pos = 7
    else:
        pos = 1
    islast = (bits >> pos) & 1
    pos += 1
    if islast:
        if (bits >> pos) & 1:  # ISLASTEMPTY
            return None
        pos += 1
    mnibbles = (bits >> pos) & 3
    pos += 2
    if mnibbles == 3:  # metadata block
        return None
    nib = mnibbles + 4
    mlen = ((bits >> pos) & ((1 << (4 * nib)) - 1)) + 1
    pos += 4 * nib
    if nib > 4 and (mlen - 1) >> (4 * (nib - 1)) == 0:
        return None  # §9.2: the last nibble of a 5/6-nibble MLEN-1 must not be zero
    if not islast and (bits >> pos) & 1:  # ISUNCOMPRESSED
        return None
    return mlen


# --- protobuf ------------------------------------------------------------------

_MAX_FIELDS = 512
_MAX_FIELD_NUMBER = 1 << 16  # real schemas stay far below; random varints do not


@dataclass(frozen=True, slots=True)
class ProtobufShape:
    fields: int
    largest_bytes_field: tuple[int, int]  # (offset, length) of the largest length-delimited value
    truncated: bool


def _varint(data: bytes, pos: int, limit: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < limit and shift < 70:
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    return None


def parse_protobuf(data: bytes) -> ProtobufShape | None:
    """Parse ``data`` as one protobuf message's top level (wire format, no schema).

    Accepts wire types 0, 1, 2 and 5 (groups are deprecated and rare), field
    numbers 1..65535 outside the reserved 19000-19999 in non-decreasing order,
    and a truncated last field (the sample may cut a message).  Needs at least
    3 complete fields, or exactly 2 that cover all of >= 16 bytes, so random
    strings rarely qualify.
    """
    n = len(data)
    pos = fields = last_number = 0
    largest = (0, 0)
    truncated = False
    while pos < n:
        if fields >= _MAX_FIELDS:
            truncated = True
            break
        tag = _varint(data, pos, min(n, pos + 5))
        if tag is None:
            return None
        key, pos = tag
        wire, number = key & 7, key >> 3
        if number == 0 or number > _MAX_FIELD_NUMBER or 19000 <= number <= 19999:
            return None
        # Serializers emit known fields in field-number order (protobuf encoding
        # guide, "Field Order"); random bytes rarely produce a sorted tag sequence.
        if number < last_number:
            return None
        last_number = number
        if wire == 0:
            v = _varint(data, pos, min(n, pos + 10))
            if v is None:
                if n - pos < 10 and all(b & 0x80 for b in data[pos:n]):
                    truncated = True
                    pos = n
                    fields += 1
                    break
                return None
            pos = v[1]
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if pos + size > n:
                truncated = True
                pos = n
            else:
                pos += size
        elif wire == 2:
            ln = _varint(data, pos, min(n, pos + 5))
            if ln is None:
                return None
            length, pos = ln
            if length > (1 << 26):
                return None
            if length > largest[1]:
                largest = (pos, min(length, n - pos))
            if pos + length > n:
                truncated = True
                pos = n
            else:
                pos += length
        else:
            return None
        fields += 1
    complete = fields - 1 if truncated else fields
    if complete >= 3 or (complete == 2 and not truncated and n >= 16):
        return ProtobufShape(fields, largest, truncated)
    return None
