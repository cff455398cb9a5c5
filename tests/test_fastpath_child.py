"""Reading and decoding in a child process (netan.fastpath_child) changes nothing.

For real, damaged and unusual captures, the chunks, decode results, capture
infos and unreadable inputs that come back from the child equal what
read_chunks + decode_chunk give in one process; an error in the child is
raised in the parent; the engine's flows are the same either way.
"""
from __future__ import annotations

import gzip
import random
import struct
from pathlib import Path

import numpy as np
import pytest

import netan.fastpath_child as child
from netan.fastpath import BatchEngine
from netan.flows import FlowConfig
from netan.problems import Problems

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"
DEMO = REPO / "captures" / "demo.pcap"


def _inputs(tmp_path: Path) -> list[Path]:
    files = [DEMO]
    if CORPUS.is_dir():
        files += sorted((CORPUS / "foxio-ja4" / "pcap").glob("*.pcapng"))[:2]
        files += sorted((CORPUS / "pcapdroid" / "pcap").glob("*.pcap"))[:2]
    data = DEMO.read_bytes()
    rnd = random.Random(5)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: rnd.randrange(1000, len(data))])
    corrupt = bytearray(data)
    corrupt[5000:5004] = struct.pack("<I", 0xFFFFFF)
    (tmp_path / "corrupt.pcap").write_bytes(bytes(corrupt))
    (tmp_path / "demo.pcap.gz").write_bytes(gzip.compress(data))
    (tmp_path / "empty.pcap").write_bytes(b"")
    return files + [cut, tmp_path / "corrupt.pcap", tmp_path / "demo.pcap.gz", tmp_path / "empty.pcap",
                    tmp_path / "missing.pcap"]


def _collect(path: Path, monkeypatch, how: str) -> tuple[list, list, list]:
    monkeypatch.setenv("NETAN_READER", how)
    infos: list = []
    unreadable: list = []
    out = []
    for chunk, dv in child.decoded_chunks([str(path)], infos, unreadable):
        packets = [chunk.raw(i) for i in range(len(chunk))]
        arrays = None if dv is None else {k: v for k, v in vars(dv).items() if isinstance(v, np.ndarray)}
        slow = None if dv is None else {k: repr(v) for k, v in dv.slow.items()}
        out.append((packets, [(i, p) for i, p in chunk.events], arrays, slow))
    return out, [vars(i) for i in infos], [str(e) for e in unreadable]


def test_child_gives_what_one_process_reads(tmp_path: Path, monkeypatch) -> None:
    for path in _inputs(tmp_path):
        got = _collect(path, monkeypatch, "child")
        want = _collect(path, monkeypatch, "inline")
        assert len(got[0]) == len(want[0]), path
        for g, w in zip(got[0], want[0]):
            assert g[0] == w[0] and g[1] == w[1] and g[3] == w[3], path
            assert (g[2] is None) == (w[2] is None), path
            if g[2] is not None:
                assert g[2].keys() == w[2].keys()
                assert all(np.array_equal(g[2][k], w[2][k]) for k in g[2]), path
        assert got[1:] == want[1:], path


def test_an_error_in_the_child_is_raised_in_the_parent(monkeypatch) -> None:
    def broken(chunk):
        raise ValueError("decoder exploded")

    monkeypatch.setattr(child, "decode_chunk", broken)  # the forked child inherits it
    monkeypatch.setenv("NETAN_READER", "child")
    with pytest.raises(ValueError, match="decoder exploded"):
        list(child.decoded_chunks([str(DEMO)], [], []))


def test_engine_flows_equal_with_and_without_the_child(monkeypatch) -> None:
    def run(how: str) -> list:
        monkeypatch.setenv("NETAN_READER", how)
        eng = BatchEngine(FlowConfig(), Problems())
        out: list = []
        eng.run([str(DEMO)], [], [], lambda chunk: out.extend(eng.pop_finished()))
        eng.finish()
        out += eng.pop_finished()
        return [(fs.to_record(), fs.to_sample()) for fs in out]

    assert run("child") == run("inline")


def test_a_child_that_dies_is_replaced_by_reading_in_line(monkeypatch, caplog, tmp_path: Path) -> None:
    """Killed mid-run (say by the OOM killer): the parent reads on itself, nothing lost or doubled."""
    import os

    import netan.fastpath_read as fastpath_read

    monkeypatch.setattr(fastpath_read, "CHUNK_BYTES", 5_000)  # the demo capture in many chunks
    parent = os.getpid()
    real = child.decode_chunk
    calls = {"n": 0}

    def dying(chunk):
        calls["n"] += 1
        if os.getpid() != parent and calls["n"] == 3:
            os._exit(9)
        return real(chunk)

    monkeypatch.setattr(child, "decode_chunk", dying)
    got = _collect(DEMO, monkeypatch, "child")
    assert "ended (exit status 9); reading on in this process" in caplog.text
    monkeypatch.setattr(child, "decode_chunk", real)
    want = _collect(DEMO, monkeypatch, "inline")
    assert [c[0] for c in got[0]] == [c[0] for c in want[0]] and len(want[0]) > 3
    assert got[1:] == want[1:]
