"""The record walk (C and Python) and the live pipe reader (netan.fastpath_read.pipe_chunks).

The pipe reader must give exactly the packets, record offsets and problems
that the per-packet reader gives for the same bytes read from a file, however
the bytes arrive (many small writes, pauses, one big write), for whole,
damaged, pcapng and non-capture streams.
"""
from __future__ import annotations

import gzip
import os
import random
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import netan.walk as walk
from netan.fastpath import BatchEngine
from netan.fastpath_read import pipe_chunks, read_chunks
from netan.flows import FlowConfig
from netan.problems import Problems
from netan.sources.pcap import CaptureInfo, read_packets

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
DEMO = REPO / "captures" / "demo.pcap"


def _pcapng_sample() -> Path | None:
    found = sorted((CORPUS / "foxio-ja4" / "pcap").glob("*.pcapng")) if CORPUS.is_dir() else []
    return found[0] if found else None


# ---- the walk ----------------------------------------------------------------------------


def _random_records(rnd: random.Random, n: int, big_endian: bool, hdr_len: int) -> bytes:
    fmt = (">" if big_endian else "<") + "IIII"
    out = bytearray(b"\0" * 24)
    for _ in range(n):
        incl = rnd.choice([0, 1, 14, 60, 1514, rnd.randrange(0, 3000)])
        out += struct.pack(fmt, 1, 2, incl, incl) + b"\0" * (hdr_len - 16) + bytes(incl)
    return bytes(out)


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("hdr_len", [16, 24])
def test_walk_c_equals_python(big_endian: bool, hdr_len: int) -> None:
    if not walk.HAVE_C_WALK:
        pytest.skip("the C walk is not built here (no compiler at install time)")
    rnd = random.Random(hdr_len * 2 + big_endian)
    buf = _random_records(rnd, 400, big_endian, hdr_len)
    cases = [(buf, 24, len(buf))]
    for _ in range(200):  # cut anywhere, start anywhere, windows of any size, garbage lengths
        b = bytearray(buf[: rnd.randrange(0, len(buf) + 1)])
        if b and rnd.random() < 0.3:
            i = rnd.randrange(0, len(b))
            b[i] ^= 0xFF
        start = rnd.randrange(0, max(1, len(b)))
        cases.append((bytes(b), start, start + rnd.randrange(0, 5000)))
    for b, start, end in cases:
        got = walk.walk_pcap(b, start, end, hdr_len, big_endian)
        want = walk.walk_pcap_python(b, start, end, hdr_len, big_endian)
        assert np.array_equal(got[0], want[0]) and got[1:] == want[1:], (start, end, len(b))


def test_walk_finds_every_record_of_a_real_capture() -> None:
    data = DEMO.read_bytes()
    offsets, pos, cut = walk.walk_pcap(data, 24, len(data), 16, False)
    want = [p.offset for p in read_packets(str(DEMO), Problems(), CaptureInfo(str(DEMO)))]
    assert offsets.tolist() == want and pos == len(data) and not cut


# ---- the pipe reader ----------------------------------------------------------------------


def _through_pipe(data: bytes, pieces: str, name: str = "live:test") -> list:
    """pipe_chunks over ``data`` written into a real pipe by another thread."""
    r, w = os.pipe()
    rnd = random.Random(len(data))

    def writer() -> None:
        try:
            if pieces == "whole":
                os.write(w, data) if len(data) < 65536 else _write_all(w, data)
                return
            i = 0
            while i < len(data):
                n = rnd.choice([1, 7, 16, 24, 100, 1500, 9000]) if pieces == "small" else rnd.randrange(1, 200_000)
                _write_all(w, data[i : i + n])
                i += n
                if rnd.random() < 0.02:
                    time.sleep(0.01)  # a quiet moment: the reader must hand on what it has
        finally:
            os.close(w)

    t = threading.Thread(target=writer)
    t.start()
    try:
        chunks = list(pipe_chunks(r, name))
    finally:
        t.join()
        os.close(r)
    return chunks


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _packets_and_problems(chunks: list) -> tuple[list, list]:
    packets = [(c.raw(i).ts, c.raw(i).data, c.raw(i).wirelen, c.raw(i).linktype, c.raw(i).offset)
               for c in chunks for i in range(len(c))]
    problems = [(p.where, p.reason) for c in chunks for _, p in c.events]
    return packets, problems


def _from_file(path: Path) -> tuple[list, list]:
    problems = Problems()
    packets = [(p.ts, p.data, p.wirelen, p.linktype, p.offset)
               for p in read_packets(str(path), problems, CaptureInfo(str(path)))]
    return packets, [(e["where"], e["reason"]) for e in problems.as_dict().get("examples", [])]


def _damaged(src: bytes, k: int) -> bytes:
    """Cut anywhere, a corrupt record length somewhere inside, or an impossible first one."""
    rnd = random.Random(k)
    b = bytearray(src)
    if k % 3 == 0:
        return bytes(b[: rnd.randrange(24, len(b))])
    offsets, _, _ = walk.walk_pcap_python(src, 24, len(src), 16, False)
    at = 24 if k % 3 == 2 else int(offsets[rnd.randrange(1, len(offsets) - 3)])
    b[at + 8 : at + 12] = struct.pack("<I", rnd.choice([0xFFFFFF, 70000]))
    return bytes(b)


@pytest.mark.parametrize("pieces", ["whole", "small", "large"])
def test_pipe_gives_the_file_readers_packets(pieces: str) -> None:
    data = DEMO.read_bytes()
    chunks = _through_pipe(data, pieces)
    got, problems = _packets_and_problems(chunks)
    want, want_problems = _from_file(DEMO)
    assert got == want and problems == want_problems == []


@pytest.mark.parametrize("k", range(9))
def test_pipe_damaged_streams_lose_only_what_the_file_reader_loses(k: int, tmp_path: Path) -> None:
    data = _damaged(DEMO.read_bytes(), k)
    path = tmp_path / "damaged.pcap"
    path.write_bytes(data)
    got, problems = _packets_and_problems(_through_pipe(data, "small" if k % 2 else "large"))
    want, want_problems = _from_file(path)
    assert want_problems, "the damage must be one the readers notice"
    assert got == want
    assert problems == want_problems


def test_pipe_pcapng_stream() -> None:
    sample = _pcapng_sample()
    if sample is None:
        pytest.skip("no pcapng capture in the shared corpus")
    got, problems = _packets_and_problems(_through_pipe(sample.read_bytes(), "small"))
    want, want_problems = _from_file(sample)
    assert got == want and problems == want_problems


def test_pipe_not_a_capture_is_one_problem() -> None:
    chunks = _through_pipe(gzip.compress(b"hello") + b"\0" * 100, "whole")
    got, problems = _packets_and_problems(chunks)
    assert got == [] and len(problems) == 1 and "not pcap or pcapng" in problems[0][1]


def test_pipe_empty_stream() -> None:
    assert _packets_and_problems(_through_pipe(b"", "whole")) == ([], [])


def test_engine_on_pipe_chunks_equals_file_chunks() -> None:
    """The flows live mode builds from a pipe are the ones replay builds from the file."""
    data = DEMO.read_bytes()

    def flows(chunks) -> list:
        eng = BatchEngine(FlowConfig(), Problems())
        out = []
        for c in chunks:
            eng.feed_chunk(c)
            out += eng.pop_finished()
        eng.finish()
        out += eng.pop_finished()
        return [(fs.to_record(), fs.to_sample()) for fs in out]

    assert flows(_through_pipe(data, "small")) == flows(read_chunks([str(DEMO)], [], []))
