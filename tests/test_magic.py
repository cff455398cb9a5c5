"""Format recognition on the output of real compressors, archivers and encoders, and bounded probing."""
from __future__ import annotations

import bz2
import glob
import gzip
import io
import lzma
import os
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import brotli
import numpy as np
import pytest
import zstandard

from netan.analyzers import magic

SOURCE = Path(np.__file__).read_bytes() + Path(zipfile.__file__).read_bytes()
ELF = Path("/usr/bin/ls").read_bytes() if Path("/usr/bin/ls").exists() else SOURCE[::-1]


def _raw_deflate(d: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(d) + c.flush()


def _zip(d: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.bin", d)
    return buf.getvalue()


PRODUCERS = {
    "gzip": lambda d: gzip.compress(d),
    "zlib": zlib.compress,
    "bzip2": bz2.compress,
    "xz": lambda d: lzma.compress(d, format=lzma.FORMAT_XZ),
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
    "zip": _zip,
}


@pytest.mark.parametrize("fmt", sorted(PRODUCERS))
@pytest.mark.parametrize("plain", ["source", "elf"])
@pytest.mark.parametrize("n", [64, 256, 4096, None])
def test_identify_real_compressors(fmt: str, plain: str, n: int | None) -> None:
    data = PRODUCERS[fmt](SOURCE if plain == "source" else ELF)
    m = magic.identify(data[:n] if n else data)
    assert m is not None and m.format == fmt and m.verified


@pytest.mark.parametrize("fmt, produce", [("deflate", _raw_deflate), ("brotli", lambda d: brotli.compress(d, quality=5))])
@pytest.mark.parametrize("plain", ["source", "elf"])
@pytest.mark.parametrize("n", [256, 1024, 4096])
def test_headerless_real_compressors(fmt: str, produce, plain: str, n: int) -> None:
    data = produce(SOURCE if plain == "source" else ELF)[:n]
    assert magic.identify(data) is None
    m = magic.probe_headerless(data)
    assert m is not None and m.format == fmt


def _first(pattern: str) -> bytes | None:
    for p in sorted(glob.glob(pattern, recursive=True)):
        if os.path.getsize(p) >= 1024:
            return Path(p).read_bytes()
    return None


@pytest.mark.parametrize("fmt, pattern", [
    ("png", "/usr/share/doc/**/*.png"),
    ("jpeg", "/usr/share/doc/**/*.jpg"),
    ("gif", "/usr/share/doc/**/*.gif"),
])
def test_real_media_files(fmt: str, pattern: str) -> None:
    data = _first(pattern)
    if data is None:
        pytest.skip(f"no {fmt} file on this machine under {pattern}")
    m = magic.identify(data[:256])
    assert m is not None and m.format == fmt and m.kind == "media"


# Container headers laid out per their specs (no producer for these on the test machine).
@pytest.mark.parametrize("fmt, header", [
    ("mp4", b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00\x00\x00\x08free"),
    ("mp4", b"\x00\x00\x00\x18stypmsdh\x00\x00\x00\x00msdhmsix"),
    ("ogg", b"OggS\x00\x02" + b"\x00" * 20),
    ("webp", b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00"),
    ("matroska", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01"),
    ("mp3", b"ID3\x04\x00\x00\x00\x00\x0f\x76" + b"\x00" * 10),
])
def test_container_headers(fmt: str, header: bytes) -> None:
    m = magic.identify(header + os.urandom(200))
    assert m is not None and m.format == fmt


@pytest.mark.parametrize("n", [16, 64, 256, 1024])
def test_random_bytes_are_not_recognised(n: int) -> None:
    # Chance matches of short magics must be confirmed by structure.  Budget: 0.5%.
    hits = 0
    for _ in range(1500):
        d = os.urandom(n)
        if magic.identify(d) or magic.probe_headerless(d):
            hits += 1
    assert hits <= 7


@pytest.mark.parametrize("data", [
    b"", b"\x1f", b"\x1f\x8b", b"\x1f\x8b\x08", b"BZh", b"BZh9", b"\xfd7zXZ\x00", b"PK\x03\x04",
    b"\x28\xb5\x2f\xfd", b"\x89PNG", b"\xff\xd8\xff", b"OggS", b"\x78\x9c", b"\x78\x9c\x00\x00\x00\x00\x00\x00",
    b"\x1f\x8b\x08\x00" + b"\xff" * 100, b"BZh9" + b"\x00" * 20, b"\xfd7zXZ\x00\x00\x01" + b"\x00" * 8,
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
])
def test_truncated_and_corrupt_headers_do_not_crash(data: bytes) -> None:
    m = magic.identify(data)
    assert m is None or isinstance(m.format, str)
    magic.probe_headerless(data)


@pytest.mark.parametrize("fmt", ["gzip", "zlib", "deflate"])
def test_decompression_bomb_is_bounded(fmt: str) -> None:
    plain_len = 64 * 1024 * 1024
    comp = zlib.compressobj(9, zlib.DEFLATED, {"gzip": 31, "zlib": 15, "deflate": -15}[fmt])
    chunk = b"\x00" * (1 << 20)
    bomb = b"".join(comp.compress(chunk) for _ in range(plain_len >> 20)) + comp.flush()
    assert len(bomb) < 100_000
    tracemalloc.start()
    t0 = time.perf_counter()
    m = magic.identify(bomb) or magic.probe_headerless(bomb)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert m is not None and m.format == fmt
    assert peak < 1_000_000  # at most PROBE_OUT bytes of output were ever materialised
    assert elapsed < 0.05


def test_protobuf_real_messages() -> None:
    from google.protobuf import descriptor_pb2, struct_pb2, timestamp_pb2

    fdp = descriptor_pb2.FileDescriptorProto.FromString(descriptor_pb2.DESCRIPTOR.serialized_pb)
    blob = fdp.SerializeToString()
    for data in (blob, blob[:1000], blob[:333]):
        shape = magic.parse_protobuf(data)
        assert shape is not None and shape.fields >= 3
    s = struct_pb2.Struct()
    s.update({"device": "pixel-7", "lat": 52.52, "lon": 13.405, "apps": ["a", "b"], "ok": True})
    assert magic.parse_protobuf(s.SerializeToString()) is not None
    ts = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123)
    # 8 bytes, 2 fields: below the 16-byte floor for two-field messages, by design
    assert magic.parse_protobuf(ts.SerializeToString()) is None
    two = descriptor_pb2.FieldDescriptorProto(name="payload_ciphertext", number=7).SerializeToString()
    assert len(two) >= 16 and magic.parse_protobuf(two) is not None  # 2 fields, all consumed


def test_protobuf_rejects_text_and_random() -> None:
    assert magic.parse_protobuf(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n") is None
    assert magic.parse_protobuf(b"{\"hello\": \"world\", \"n\": 1}") is None
    hits = sum(magic.parse_protobuf(os.urandom(256)) is not None for _ in range(2000))
    assert hits <= 6
