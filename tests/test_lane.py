"""The lane of ``netan zeek`` (``netan.sources.zeek.lane``, ``_fastlane.Lane``) against the Python pass.

Every comparison runs ``netan zeek`` twice on the same logs, with the lane and
without it (``open_lane`` answering None, so every record goes through
``pipeline._Pass2`` in Python), and asks for identical outputs: flows.jsonl,
chains.jsonl, netan_flows.log, netan_chains.log and summary.json. The inputs
are Zeek's own logs in ../shared/corpus and generated logs full of the values
the lane must leave to Python. The lane's own rules (times written without
dtoa, the chain flags of a conn-only record) are held to Python's on grids and
random values, and its templates must refuse an output that is not simply the
values put in place.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import random
from pathlib import Path

import pytest

from netan import fastlane, pipeline
from netan.chains.builder import _STRONG, ChainBuilder
from netan.chains.evidence import network_kinds
from netan.pipeline import RunOptions, analyze_zeek_logs
from netan.sinks.atomic import dumps_line
from netan.sources.zeek import lane as lane_mod
from netan.sources.zeek.convert import Joiner
from test_fastlane import _conn_log

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
C_MODULE = fastlane.C

pytestmark = pytest.mark.skipif(C_MODULE is None, reason="netan._fastlane was not built (no C compiler)")

OUTPUTS = ("flows.jsonl", "chains.jsonl", "netan_flows.log", "netan_chains.log")


def _run(paths: list[str], out: Path, use_lane: bool, monkeypatch: pytest.MonkeyPatch, workers: int = 1,
         taken: list[int] | None = None, zeek_json: bool = False, **kw) -> dict[str, bytes]:
    """The outputs of one `netan zeek` run in this process, with or without the lane."""
    with monkeypatch.context() as m:
        if not use_lane:
            m.setattr(lane_mod, "open_lane", lambda *a, **k: None)
        elif taken is not None:
            real = pipeline._Pass2._settle

            def counting(self) -> None:
                before = self.count
                real(self)
                taken.append(self.count - before)

            m.setattr(pipeline._Pass2, "_settle", counting)
        opts = RunOptions(out_dir=str(out), command="zeek", **kw)
        analyze_zeek_logs(paths, opts, zeek_json=zeek_json, workers=workers)
    files = {}
    for name in OUTPUTS:
        files[name] = b"\n".join(x for x in (out / name).read_bytes().split(b"\n")
                                 if not x.startswith((b"#open", b"#close")))
    summary = json.loads((out / "summary.json").read_text())
    summary.pop("timings")
    files["summary"] = json.dumps(summary, sort_keys=True).encode()
    return files


def assert_same_with_and_without_lane(paths: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      workers: int = 1, zeek_json: bool = False, **kw) -> dict[str, bytes]:
    with_lane = _run(paths, tmp_path / "lane", True, monkeypatch, workers, zeek_json=zeek_json, **kw)
    without = _run(paths, tmp_path / "python", False, monkeypatch, workers, zeek_json=zeek_json, **kw)
    for name in with_lane:
        assert with_lane[name] == without[name], name
    return with_lane


# ---- whole runs -------------------------------------------------------------------------------

@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not found")
@pytest.mark.parametrize("root", ["stratosphere-security-datasets-for-testing", "foxio-ja4/zeek",
                                  "zeek-logs-wrccdc-brimdata/zeek-default", "zeek-logs-wrccdc-brimdata/zeek-json",
                                  "zeek/Baseline"])
def test_corpus_runs_equal_the_python_pass(root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (CORPUS / root).exists():
        pytest.skip(f"{root} not in the corpus")
    out = assert_same_with_and_without_lane([str(CORPUS / root)], tmp_path, monkeypatch,
                                            zeek_json=root.endswith(("zeek-json", "foxio-ja4/zeek")))
    assert out["flows.jsonl"]


@pytest.mark.parametrize("seed", range(4))
def test_hostile_logs_equal_the_python_pass(seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Escapes, non-ASCII text, unset counts, repeated uids, bad addresses, other protocols, IPv6, ICMP;
    netan_flows.log as Zeek TSV, and as Zeek JSON for odd seeds."""
    rng = random.Random(seed)
    path = tmp_path / "conn.log"
    path.write_text(_conn_log(rng, 3000, odd_rate=0.3, crlf=seed == 2), encoding="utf-8")
    out = assert_same_with_and_without_lane([str(path)], tmp_path, monkeypatch, zeek_json=seed % 2 == 1)
    assert out["flows.jsonl"].count(b"\n") > 1500


def test_json_logs_and_shared_out_runs_equal_the_python_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from test_zeek_fanout import _bench

    tsv, js = _bench().generate(str(tmp_path / "gen"), 8000)
    for fmt, path in (("tsv", tsv), ("json", js)):
        for workers in (1, 2):
            assert_same_with_and_without_lane([path], tmp_path / f"{fmt}{workers}", monkeypatch, workers,
                                              zeek_json=fmt == "json")


def test_the_lane_takes_plain_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A guard: were the lane to turn itself off (a template that no longer cuts), everything would
    still be right, only slow; so require it to write nearly every line of a plain log."""
    from test_zeek_fanout import _bench

    tsv, js = _bench().generate(str(tmp_path / "gen"), 6000)
    for path, zeek_json in ((tsv, False), (js, False), (tsv, True)):
        taken: list[int] = []
        _run([path], tmp_path / f"{Path(path).suffix}{zeek_json}", True, monkeypatch, taken=taken, zeek_json=zeek_json)
        assert sum(taken) > 0.9 * 6000, (path, zeek_json)


def test_runs_the_lane_cannot_serve_go_the_python_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A baseline, or rows not written as bytes: the lane stays out (nothing taken), and a baseline
    run's outputs are those of the Python pass."""
    from netan.chains.baseline import learn_baseline
    from test_zeek_fanout import _bench

    tsv, _ = _bench().generate(str(tmp_path / "gen"), 1500)
    baseline = tmp_path / "baseline.json"
    learn_baseline(iter(())).save(str(baseline))
    taken: list[int] = []
    served = _run([tsv], tmp_path / "counted", True, monkeypatch, taken=taken, baseline=str(baseline))
    assert sum(taken) == 0
    assert served == _run([tsv], tmp_path / "python", False, monkeypatch, baseline=str(baseline))
    joiner = Joiner()
    joiner.start_conn()
    assert lane_mod.open_lane(joiner, _NoBytes(), None, lambda b: None, 0) is None


class _NoBytes:
    """A FlowRows whose rows are not written as bytes (a text file in another encoding)."""

    def lane_outputs(self):
        return None


# ---- the lane's own rules ---------------------------------------------------------------------

def test_times_are_written_as_repr_writes_them() -> None:
    rng = random.Random(7)
    values = [rng.uniform(2 ** 29, 2 ** 33) for _ in range(200_000)]
    values += [round(rng.uniform(1e9, 2e9), 6) for _ in range(200_000)]
    values += [round(rng.uniform(1e9, 2e9), 6) + round(rng.uniform(0, 1e5), 6) for _ in range(200_000)]
    values += [1700000000 + j / 256 for j in range(256)]  # exact ties at the seventh decimal
    values += [2.0 ** 29, 2.0 ** 33 - 2 ** -20, 1e9, 1e9 - 1e-6, 1700000000.0, -1700000000.5, 8589934591.999999]
    written = 0
    for v in values:
        got = C_MODULE.time_repr(v)
        if got is not None:
            written += 1
            assert got == repr(v), v
    assert written > 0.99 * (len(values) - 256)
    assert C_MODULE.time_repr(1e-3) is None and C_MODULE.time_repr(2.0 ** 33) is None


def test_floats_in_lines_equal_orjson(tmp_path: Path) -> None:
    """Any float the lane writes into flows.jsonl (repr, or time_repr) is what dumps_line writes."""
    plan = ((b"[", b"]\n"), (lane_mod.fastlane.LANE_NAMES.index("ts"),))
    row = ((b"\n",), ())
    probe = C_MODULE.Lane(plan, row, None, None, None, None, {}, (("x",),) * 16, 0)
    rng = random.Random(3)
    names = lane_mod.fastlane.LANE_NAMES
    for _ in range(100_000):
        v = rng.choice([rng.uniform(-1e17, 1e17), 10 ** rng.uniform(-6, 17), rng.uniform(1e9, 2e9), 0.0, -0.0,
                        float(rng.randrange(10 ** 9)), rng.uniform(-1, 1) * 10 ** rng.uniform(-4, 16)])
        values = tuple(v if n == "ts" else None for n in names)
        got = probe.render(values)
        if got is not None:
            assert got[0] == dumps_line([v]), v


def _python_flags(r: dict) -> int:
    """ChainBuilder.observe's flags for a record (no baseline, no DNS name)."""
    kinds = network_kinds(r, None, "client:x", False)
    flags = 0 if _STRONG.isdisjoint(kinds) else 1
    if r.get("bytes_out", 0) >= 1024 and r.get("l7") != "dns":
        flags |= 2
    return flags


def test_chain_flags_equal_the_python_rules() -> None:
    joiner = Joiner()
    joiner.start_conn()
    builder = ChainBuilder(with_graph=False)
    probe = lane_mod.open_lane(joiner, _BytesRows(), builder, lambda b: None, 0)
    assert probe is not None
    services = [None, "ssl", "dns", "http", "quic,ssl", "ssh", "smtp", "dtls", "krb", "ssl,http"]
    sizes = [0, 1, 15, 16, 255, 256, 1023, 1024, 1025, 4096, 10 ** 9]
    ports = [0, 22, 53, 80, 443, 853, 993, 5353, 8443, 8883, 65535]
    n = 0
    for i, (proto, svc, port, b_out, b_in) in enumerate(itertools.product(
            ["tcp", "udp", "icmp"], services, ports, sizes, sizes)):
        c = (1700000000.5, f"C{i}", "10.0.0.1", 40000, "10.9.9.9", port, proto, svc, 1.0, b_out, b_in, "SF", 0, "D",
             3, 4, None, None, None)
        record = joiner.conn_flow(c)  # the Python path fills the l7 cache; the record is the oracle
        joiner._recent.clear()
        got = probe.c.flags_of(c, joiner.plain_context())
        if got is None:
            continue
        assert got == _python_flags(record), (proto, svc, port, b_out, b_in, record["l7"])
        n += 1
    assert n > 0.9 * (3 * len(services) * len(ports) * len(sizes) ** 2)


class _BytesRows:
    """A FlowRows writing bytes, for a lane built outside a run."""

    uid_differs: dict = {}
    json = False

    def lane_outputs(self):
        from netan.sinks.zeek import FlowRows
        import io

        return FlowRows(io.TextIOWrapper(io.BytesIO(), encoding="utf-8")).lane_outputs()


def test_templates_refuse_outputs_that_are_not_the_values_in_place() -> None:
    joiner = Joiner()
    joiner.start_conn()
    record = lane_mod._sample_record(joiner.plain_context())
    nobs = joiner.lane_not_observable()
    write, row = _BytesRows().lane_outputs()
    assert fastlane.lane_plan(record, dumps_line, row, nobs) is not None
    import io

    from netan.sinks.zeek import FlowRows

    _, json_row = FlowRows(io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), True).lane_outputs()
    assert fastlane.lane_plan(record, dumps_line, json_row, nobs, json_rows=True) is not None

    def null_kept(r: dict) -> bytes:  # an unset column written as null rather than left out
        line = json_row(r)
        return line if r.get("src_mac") is not None else line.replace(b',"bytes_out"', b',"orig_l2_addr":null,"bytes_out"')

    assert fastlane.lane_plan(record, dumps_line, null_kept, nobs, json_rows=True) is None

    def derived(r: dict) -> bytes:  # a column computed from a value, not the value itself
        return row(r)[:-1] + f"\t{len(r['flow_id'] or '')}\n".encode()

    def upper(r: dict) -> bytes:
        return dumps_line({**r, "history": (r["history"] or "").upper() or None})

    def skipped_none(r: dict) -> bytes:  # None written otherwise than "-"
        return row(r).replace(b"\t-\t", b"\t(none)\t")

    assert fastlane.lane_plan(record, dumps_line, derived, nobs) is None
    assert fastlane.lane_plan(record, upper, row, nobs) is None
    assert fastlane.lane_plan(record, dumps_line, skipped_none, nobs) is None


# ---- JSON lines read without a JSON parser ---------------------------------------------------

def _hostile_json_lines(rng: random.Random, n: int) -> list[str]:
    """JSON conn lines as Zeek writes them, then respelled: whitespace, escapes, nesting, other number
    spellings, repeated keys, wrong types, broken syntax."""
    from test_fastlane import json_records

    base = [json.dumps({"_path": "conn", **obj}, separators=(",", ":")) for obj in json_records(rng, n, 0.2)]
    out = []
    for line in base:
        r = rng.random()
        if r < 0.05:
            line = line.replace(",", ", ").replace(":", " : ")
        elif r < 0.08:
            line = line.replace('"proto":', '"proto":"x","proto":', 1)  # repeated key: the last one counts
        elif r < 0.10:
            line = line.replace('"history":"', '"history":"\\u0041', 1)
        elif r < 0.12:
            line = line.replace('"id.orig_p":', '"id.orig_p":1e0,"x":', 1)
        elif r < 0.14:
            line = line.replace('{"_path":"conn"', '{"_path":"conn","id":{"orig_h":"10.9.9.9"}', 1)
        elif r < 0.16:
            line = line.replace('"duration":', '"duration":-0.0e+1,"d2":', 1)
        elif r < 0.18:
            line = line[: rng.randrange(len(line))]  # cut
        elif r < 0.20:
            line = line + rng.choice([" x", ",", "}", " \t"])
        elif r < 0.22:
            line = line.replace('"missed_bytes":0', '"missed_bytes":123456789012345678901', 1)
        elif r < 0.24:
            line = line.replace('"tunnel_parents":[]', '"tunnel_parents":["a", "b\\"c"]', 1)
        elif r < 0.26:
            line = line.replace('"orig_bytes":', '"orig_bytes":null,"o2":', 1)
        out.append(line)
    return out


def test_json_lines_read_as_the_parser_reads_them() -> None:
    """json_line answers None (the line goes to read_json) or exactly what json_conn gives the parsed object."""
    import orjson

    from netan.sources.zeek.jsonlog import NESTED_HINTS, json_time
    from netan.sources.zeek.reader import _CONN_NAMES, _ISO_SECONDS

    rng = random.Random(9)
    lines = _hostile_json_lines(rng, 4000)
    taken = 0
    for line in lines:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("ts"), str):
            with contextlib.suppress(ValueError):
                json_time(obj["ts"])  # the memo of whole seconds, as the Python path fills it
        got = C_MODULE.json_line(line, _CONN_NAMES, _ISO_SECONDS)
        if got is None:
            continue
        assert isinstance(obj, dict) and not any(type(obj.get(h)) is dict for h in NESTED_HINTS), line
        want = C_MODULE.json_conn(obj, _CONN_NAMES, _ISO_SECONDS)
        assert got == want and [type(x) for x in got] == [type(x) for x in want], line
        taken += 1
    assert taken > len(lines) // 2


def test_hostile_json_logs_equal_the_python_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conn.json"
    path.write_text("\n".join(_hostile_json_lines(random.Random(4), 3000)) + "\n", encoding="utf-8")
    out = assert_same_with_and_without_lane([str(path)], tmp_path, monkeypatch)
    assert out["flows.jsonl"].count(b"\n") > 1500


def test_chain_ids_equal_the_python_pass_with_many_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """More sources, ports and destinations than the lane's id caches hold (collisions, evictions,
    repeats): every flow gets the chain key the Python observe gives it."""
    rng = random.Random(21)
    sources = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(30000)]
    dests = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
             for _ in range(70000)] + [f"2001:db8::{i:x}" for i in range(2000)]
    lines = ["#separator \\x09", "#unset_field\t-", "#path\tconn",
             "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\t"
             "resp_bytes\tconn_state\tmissed_bytes\thistory\torig_pkts\tresp_pkts",
             "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tcount\tstring\t"
             "count\tcount"]
    for i in range(70000):
        dst = rng.choice(dests)
        src = f"fd00::{rng.randrange(1, 4000):x}" if ":" in dst else rng.choice(sources)
        lines.append(f"{1700000000 + i * 0.01:.6f}\tC{i:012d}\t{src}\t{rng.randrange(1024, 65536)}\t{dst}\t"
                     f"{rng.choice([443, 80, 53, 8443, 22, 5222])}\t{rng.choice(['tcp', 'udp'])}\t-\t1.5\t"
                     f"{rng.choice([0, 500, 5000, 50000])}\t{rng.choice([0, 100, 1000])}\tSF\t0\tShADadFf\t3\t4")
    path = tmp_path / "conn.log"
    path.write_text("\n".join(lines) + "\n")
    lane, python = _same_chain_state([str(path)], tmp_path, monkeypatch)
    assert len(lane._key) == 70000
    assert len(lane._sides) > 32768 and len(lane._dests) > 32768  # more than the caches have slots


def _same_chain_state(paths: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """Runs with and without the lane (identical outputs), then the same chain builder state: every
    flow's key, flags, times, size and offset, the sides and destinations in the order met."""
    seen: dict[str, ChainBuilder] = {}
    real = pipeline._write_results

    def keep(opts, stages, *a, **k):
        seen[opts.out_dir] = stages.chains
        return real(opts, stages, *a, **k)

    monkeypatch.setattr(pipeline, "_write_results", keep)
    assert_same_with_and_without_lane(paths, tmp_path, monkeypatch)
    lane, python = seen[str(tmp_path / "lane")], seen[str(tmp_path / "python")]
    for name in ("_key", "_flags", "_ts", "_ts_end", "_bytes_out", "_handle"):
        assert getattr(lane, name) == getattr(python, name), name
    assert list(lane._sides) == list(python._sides) and list(lane._dests) == list(python._dests)
    return lane, python


def test_a_lane_not_initialised_refuses_work() -> None:
    lane = C_MODULE.Lane.__new__(C_MODULE.Lane)
    for call in (lane.flush, lambda: lane.line("x", (), ()), lambda: lane.json_line("{}", (), {}, ()),
                 lambda: lane.conn((), ()), lambda: lane.render(()), lambda: lane.flags_of((), ())):
        with pytest.raises(ValueError, match="__init__"):
            call()


def test_destinations_named_by_dns_equal_the_python_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With dns.log answers (the usual Zeek log set), the lane asks the joiner for each destination's
    name and keys the chains by it, as observe does; ssl.log entries leave their lines to Python."""
    rng = random.Random(8)
    logs = tmp_path / "logs"
    logs.mkdir()
    conn = _conn_log(rng, 3000, odd_rate=0.05)
    (logs / "conn.log").write_text(conn, encoding="utf-8")
    rows = [line.split("\t") for line in conn.splitlines() if not line.startswith("#") and line.count("\t") > 20]
    dns = ["#separator \\x09", "#path\tdns",
           "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tquery\tanswers",
           "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tvector[string]"]
    for k, r in enumerate(rows[::2]):
        try:
            ts = float(r[0])
        except ValueError:
            continue
        client = r[2] if k % 3 else "10.250.0.1"  # some names only another client asked for
        when = ts - 1 if k % 5 else ts + 30  # some answers only after the flow
        dns.append("\t".join([f"{when:.6f}", f"D{k}", client, "5353", "10.9.9.9", "53", "udp",
                              f"n{k}.example", r[4]]))
    (logs / "dns.log").write_text("\n".join(dns) + "\n", encoding="utf-8")
    ssl = ["#separator \\x09", "#path\tssl", "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tversion",
           "#types\ttime\tstring\taddr\tport\taddr\tport\tstring"]
    ssl += ["\t".join(r[:6] + ["TLSv12"]) for r in rows[1::7]]
    (logs / "ssl.log").write_text("\n".join(ssl) + "\n", encoding="utf-8")
    taken: list[int] = []
    out = _run([str(logs)], tmp_path / "count", True, monkeypatch, taken=taken)
    assert out["flows.jsonl"].count(b'"dst_name":"n') > 500
    assert sum(taken) > 0.6 * len(rows)
    lane, _ = _same_chain_state([str(logs)], tmp_path, monkeypatch)
    assert sum(str(d).startswith("n") for d in lane._dests) > 300  # chains keyed by the DNS name


def _mutated(rng: random.Random, line: str) -> str:
    """A line with a few characters replaced, inserted or deleted (separators, quotes, digits, escapes)."""
    alphabet = '\t\r\\"{}[],:.-+eE0123456789abcdef xyz#é\x00\x7f'
    chars = list(line.rstrip("\n"))
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(len(chars) + 1)
        op = rng.random()
        if op < 0.4 and chars:
            chars[min(i, len(chars) - 1)] = rng.choice(alphabet)
        elif op < 0.7:
            chars.insert(i, rng.choice(alphabet))
        elif chars:
            del chars[min(i, len(chars) - 1)]
    return "".join(chars) + "\n"


def test_mutated_lines_equal_the_python_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines damaged a character at a time, TSV and JSON (a third of them): whatever the lane takes
    or leaves, the outputs are the Python pass's."""
    from test_zeek_fanout import _bench

    rng = random.Random(13)
    tsv, js = _bench().generate(str(tmp_path / "gen"), 4000)
    for name, path in (("tsv", tsv), ("json", js)):
        lines = Path(path).read_text().splitlines(True)
        body = [x for x in lines if not x.startswith("#")]
        head = [x for x in lines if x.startswith("#") and not x.startswith("#close")]
        out = head + [_mutated(rng, x) if rng.random() < 0.33 else x for x in body]
        damaged = tmp_path / name / f"conn.{'log' if name == 'tsv' else 'json'}"
        damaged.parent.mkdir()
        damaged.write_text("".join(out), encoding="utf-8", errors="surrogateescape")
        assert_same_with_and_without_lane([str(damaged)], tmp_path / f"{name}-out", monkeypatch)
