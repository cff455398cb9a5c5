"""`netan zeek` fast path: conn lines cut into segments read by several processes, the compiled
Zeek rows and the compact chain state give exactly the outputs of one process reading everything."""
from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from netan.chains.builder import BYTES_PER_FLOW, ChainBuilder
from netan.chains.store import JsonlLines
from netan.cli import main
from netan.problems import Problems
from netan.sinks.zeek import CHAIN_COLUMNS, FLOW_COLUMNS, _compile_row, _json_value, escape_value
from netan.sinks.atomic import dumps
from netan.sources.zeek.discover import discover
from netan.sources.zeek.reader import conn_lines
from netan.sources.zeek.split import plan

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("zeek_bench", REPO / "benchmarks" / "zeek_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _messy(tmp_path: Path, n: int = 6000) -> Path:
    """Generated TSV and JSON conn logs with bad lines, a header change mid-file, an over-long line, gzip."""
    d = tmp_path / "logs"
    d.mkdir()
    tsv, js = _bench().generate(str(tmp_path / "gen"), n)
    rng = random.Random(3)
    lines = Path(tsv).read_bytes().split(b"\n")
    head = [x for x in lines if x.startswith(b"#") and not x.startswith(b"#close")]
    out = []
    for i, line in enumerate(x for x in lines if x and not x.startswith(b"#")):
        r = rng.random()
        out.append(line[: len(line) // 2] if r < 0.01 else line.replace(b"tcp", b"t\xffcp") if r < 0.02 else line)
        if i == n // 3:  # Zeek restarted: a new header, the columns in another order
            fields, types = head[6].split(b"\t")[1:], head[7].split(b"\t")[1:]
            order = list(range(len(fields)))
            rng.shuffle(order)
            out += [b"#close\t2024-01-01-00-00-00", *head[:6], b"#fields\t" + b"\t".join(fields[k] for k in order),
                    b"#types\t" + b"\t".join(types[k] for k in order)]
            perm = order
        elif i > n // 3 and len(out[-1].split(b"\t")) == len(perm):
            cols = out[-1].split(b"\t")
            out[-1] = b"\t".join(cols[k] for k in perm)
        if i == 2 * n // 3:
            out.append(b"x" * (1 << 20) + b"y")  # over-long: the file is not cut before it
    (d / "conn.log").write_bytes(b"\n".join(head + out) + b"\n")
    jl = Path(js).read_bytes().split(b"\n")
    jl[50] = b"{broken"
    jl[90] = b"[1]"
    (d / "conn.json").write_bytes(b"\n".join(jl))
    (d / "more.log.gz").write_bytes(gzip.compress(Path(tsv).read_bytes()[:200_000]))
    return d


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_segments_read_apart_give_the_lines_and_problems_of_one_read(tmp_path: Path, parts: int) -> None:
    d = _messy(tmp_path)
    files = [lf for lf in discover([str(d)], Problems()) if lf.kind == "conn"]
    whole, pw = [], Problems()
    for lf in files:
        whole += list(conn_lines(lf, pw, None))
    segments = plan(files, parts)
    assert 1 < len(segments) <= parts
    got, ps = [], Problems()
    for seg in segments:
        p = Problems()
        for lf, span in seg:
            got += list(conn_lines(lf, p, None, span))
        ps.merge(p)
    assert got == whole
    assert ps.as_dict() == pw.as_dict() and pw.count > 50


def _run(args: list[str], out: Path, monkeypatch: pytest.MonkeyPatch, workers: int) -> dict[str, bytes]:
    monkeypatch.setenv("NETAN_ZEEK_WORKERS", str(workers))
    res = CliRunner().invoke(main, ["-q", "zeek", *args, "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    files = {}
    for name in ("flows.jsonl", "chains.jsonl", "netan_flows.log", "netan_chains.log"):
        files[name] = b"\n".join(x for x in (out / name).read_bytes().split(b"\n")
                                 if not x.startswith((b"#open", b"#close")))
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("timings")
    files["summary"] = json.dumps(summary, sort_keys=True).encode()
    assert not list(out.glob(".part-*"))
    return files


@pytest.mark.parametrize("workers", [2, 4])
def test_netan_zeek_shared_out_equals_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   workers: int) -> None:
    d = _messy(tmp_path)
    one = _run([str(d)], tmp_path / "one", monkeypatch, 1)
    many = _run([str(d)], tmp_path / "many", monkeypatch, workers)
    assert one == many


@pytest.mark.parametrize("workers", [2, 4])
def test_one_big_log_shared_out_equals_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture, workers: int) -> None:
    """One conn.log cut into segments (every uid once, so nothing is read again): the first child writes
    its part straight into flows.jsonl and netan_flows.log, the other parts are copied into place."""
    tsv, _ = _bench().generate(str(tmp_path / "gen"), 20000)
    one = _run([tsv], tmp_path / "one", monkeypatch, 1)
    with caplog.at_level("INFO", logger="netan.sources.zeek.fanout"):
        many = _run([tsv], tmp_path / "many", monkeypatch, workers)
    assert not [r for r in caplog.records if "reading again" in r.getMessage()]
    assert one == many and one["chains.jsonl"].count(b"\n") >= 1


def test_chains_and_side_logs_shared_out_equal_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           corpus: Path) -> None:
    """Stratosphere logs: ssl/dns entries taken by conn lines in different processes; beaconing chains."""
    logs = corpus / "stratosphere-security-datasets-for-testing"
    one = _run([str(logs)], tmp_path / "one", monkeypatch, 1)
    many = _run([str(logs)], tmp_path / "many", monkeypatch, 3)
    assert one == many and one["chains.jsonl"]


def test_a_child_that_dies_before_its_result_costs_a_second_read_not_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A child that ends without sending its result (killed, out of memory), after writing some of
    its part straight into the outputs (child 0), or after saying where its part is (child 1): the
    run reads everything again in one process, and the outputs are exactly those of one process."""
    import os

    from netan.sources.zeek import fanout

    def write_then_die(zr, seg, k, part, conn) -> None:
        records = zr.segment(seg, Problems())
        if k == 0:
            part(itertools.islice(records, 500), k)  # some of it written into the outputs, then gone
        else:
            head, _ = part(records, k)
            conn.send(("head", head, None, None))  # its part is placed, its state never comes
        os._exit(3)

    tsv, _ = _bench().generate(str(tmp_path / "gen"), 6000)  # one file, every uid once
    one = _run([tsv], tmp_path / "one", monkeypatch, 1)
    monkeypatch.setattr(fanout, "_child", write_then_die)
    with caplog.at_level("WARNING", logger="netan.sources.zeek.fanout"):
        many = _run([tsv], tmp_path / "many", monkeypatch, 3)
    assert sum("ended without a result" in r.getMessage() for r in caplog.records) == 1  # the first one
    assert one == many


def test_repeated_uids_across_segments_are_read_again_in_one_process(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    tsv, _ = _bench().generate(str(tmp_path / "gen"), 4000)
    text = Path(tsv).read_text()
    (tmp_path / "twice.log").write_text(text + text)  # a concatenated log: every uid twice
    one = _run([str(tmp_path / "twice.log")], tmp_path / "one", monkeypatch, 1)
    many = _run([str(tmp_path / "twice.log")], tmp_path / "many", monkeypatch, 2)
    assert one == many and b'"flow_id":"' in one["flows.jsonl"] and b"-2\t" in one["netan_flows.log"]


def _outcome(fn):
    """The value, or the kind of error (a value no column type takes fails the same way)."""
    try:
        return fn()
    except (TypeError, ValueError, AttributeError) as e:
        return type(e)


def test_compiled_rows_equal_the_column_by_column_values() -> None:
    rng = random.Random(5)
    odd = [None, "", "-", "(empty)", "a\tb", "x\\y", "\x85", "é", 3, 2.5, True, [], (), ["a", "-", ""],
           {"cert": None}, {"cert": {"subject": "-", "not_after": "2030-01-01T00:00:00Z", "self_signed": True}}]
    base = {"ts": 1.5, "flow_id": "F", "src_ip": "10.0.0.1", "src_port": 1, "dst_ip": "10.0.0.2", "dst_port": 443,
            "proto": "tcp", "payload": {"out": {"n": 3, "entropy": 7.25, "class": "encrypted"}, "in": None},
            "tls": {"sni": "a.example", "alpn": ["h2", "http/1.1"], "cert": {"key_bits": 2048}}, "framing": ["x"]}
    for columns, path in ((FLOW_COLUMNS, "netan_flows"), (CHAIN_COLUMNS, "netan_chains")):
        tsv, js = _compile_row(columns, False, path), _compile_row(columns, True, path)
        for _ in range(2000):
            r = json.loads(json.dumps(base))
            for key in rng.sample(sorted(set(r) | {"device", "app", "evidence", "_uids", "tls"}), 3):
                r[key] = rng.choice(odd)
            def want_json(r=r) -> str:
                obj = {"_path": path}
                for name, t, g in columns:
                    v = _json_value(g(r), t)
                    if v is not None:
                        obj[name] = v
                return dumps(obj) + "\n"

            assert _outcome(lambda: tsv(r)) == _outcome(lambda: "\t".join(escape_value(g(r), t)
                                                                           for _, t, g in columns) + "\n")
            assert _outcome(lambda: js(r)) == _outcome(want_json)


def test_chain_state_absorbed_equals_one_builder(tmp_path: Path) -> None:
    rng = random.Random(9)
    records = []
    for i in range(3000):
        dst = f"198.51.100.{rng.randrange(4)}"
        t = 1_700_000_000.0 + i * 60 + rng.random()
        regular = dst.endswith(".0")  # a beacon: every minute, the same size
        records.append({"flow_id": f"F{i}", "ts": t if i % 7 else int(t), "ts_end": t + 1, "proto": "tcp",
                        "src_ip": "10.0.0.5", "src_port": 1000 + i, "dst_ip": dst, "dst_port": 443,
                        "bytes_out": 5000 if regular else rng.choice([600, 5000, 20000]), "bytes_in": 100,
                        "l7": "unknown", "payload": {"out": {"observable": False}}})
    path = tmp_path / "flows.jsonl"
    offsets, at = [], 0
    with path.open("wb") as fh:
        for r in records:
            line = (json.dumps(r, separators=(",", ":")) + "\n").encode()
            offsets.append(at)
            at += len(line)
            fh.write(line)
    one = ChainBuilder(store=JsonlLines(str(path)))
    for r, o in zip(records, offsets):
        one.observe(r, o)
    first, second = ChainBuilder(store=JsonlLines(str(path))), ChainBuilder()
    for r, o in zip(records[:1234], offsets):
        first.observe(r, o)
    for r, o in zip(records[1234:], offsets[1234:]):
        second.observe(r, o - offsets[1234])
    first.absorb(second.state(), offsets[1234])
    chains = one.finalize()
    assert chains and chains == first.finalize()
    spooled = ChainBuilder()  # no store: the builder spools what it sees
    for r in records:
        spooled.observe(json.loads(json.dumps(r)))
    assert spooled.finalize() == chains
    assert BYTES_PER_FLOW == 41
