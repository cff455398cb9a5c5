"""The C lane of ``netan zeek`` (``netan.fastlane``) against the Python code it accelerates.

Every comparison runs the same input twice, with the C module and with
``fastlane.C = None`` (the Python definitions alone), and asks for identical
records, rows and problems: on Zeek's own logs in ../shared/corpus, on
generated conn logs full of the values the C lane must refuse (escapes,
non-ASCII text, odd number spellings, unset counts, repeated uids, bad
addresses, other protocols), and on random values for each formatting rule.
"""
from __future__ import annotations

import importlib.util
import ipaddress
import math
import tempfile
import random
import struct
from pathlib import Path

import pytest

from netan import fastlane
from netan.community import community_id_text
from netan.problems import Problems
from netan.sinks import zeek as zeek_sink
from netan.sinks.atomic import dumps_line
from netan.sources.zeek import read_zeek
from netan.sources.zeek.convert import Joiner

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
C_MODULE = fastlane.C

pytestmark = pytest.mark.skipif(C_MODULE is None, reason="netan._fastlane was not built (no C compiler)")


def _read(paths: list[str], use_c: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], list[str], dict]:
    """(flows.jsonl lines, netan_flows.log rows, problems) of one read, with or without the C lane."""
    with monkeypatch.context() as m:
        m.setattr(fastlane, "C", C_MODULE if use_c else None)
        problems = Problems()
        records = list(read_zeek(paths, problems, parallel=False))
        with tempfile.TemporaryFile("w+", encoding="utf-8") as text:  # a real file: the C rows go in as bytes
            text.write("#header\n")
            rows = zeek_sink.FlowRows(text)
            for r in records:
                rows.flow(r)
            text.write("#close\n")
            text.flush()
            text.seek(0)
            written = text.read().splitlines(True)
    return [dumps_line(r) for r in records], written, problems.as_dict()


def assert_lanes_agree(paths: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    fast = _read(paths, True, monkeypatch)
    plain = _read(paths, False, monkeypatch)
    assert fast[0] == plain[0]
    assert fast[1] == plain[1]
    assert fast[2] == plain[2]
    return len(fast[0])


# ---- Zeek's own logs -----------------------------------------------------------------------

_CORPUS_ROOTS = ("stratosphere-security-datasets-for-testing", "foxio-ja4/zeek")


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not found")
@pytest.mark.parametrize("root", _CORPUS_ROOTS)
def test_corpus_logs_read_identically(root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert assert_lanes_agree([str(CORPUS / root)], monkeypatch) > 50


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not found")
def test_zeek_baselines_read_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every baseline of Zeek's test suite at once (their times made numeric, as test_zeek_corpus does):
    uids repeat across directories, which the C lane must leave to Python."""
    spec = importlib.util.spec_from_file_location("zeek_corpus_tests", Path(__file__).with_name("test_zeek_corpus.py"))
    corpus_tests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus_tests)  # type: ignore[union-attr]
    for src in (CORPUS / "zeek" / "Baseline").rglob("*"):
        if src.is_file() and corpus_tests.zeek_kind(src) in ("conn", "ssl", "x509", "dns", "http", "files", "quic"):
            dst = tmp_path / src.relative_to(CORPUS / "zeek" / "Baseline")
            dst.parent.mkdir(parents=True, exist_ok=True)
            corpus_tests.decanonicalise(src, dst)
    assert assert_lanes_agree([str(tmp_path)], monkeypatch) > 1000


@pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not found")
@pytest.mark.parametrize("layout", ["zeek-default", "zeek-json"])
def test_brim_logs_read_identically(layout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = CORPUS / "zeek-logs-wrccdc-brimdata" / layout
    for f in sorted(src.iterdir()):
        if f.is_file() and f.name.split(".")[0] in ("conn", "ssl", "x509", "dns", "http", "files"):
            with open(f, "rb") as fh:
                head = b"".join(fh.readline() for _ in range(4000))
            (tmp_path / f.name).write_bytes(head)
    assert assert_lanes_agree([str(tmp_path)], monkeypatch) > 1000


# ---- generated conn logs, plain and hostile -------------------------------------------------

FIELDS = ("ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes conn_state "
          "local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents "
          "ip_proto community_id").split()
TYPES = ("time string addr port addr port enum string interval count count string bool bool count string count "
         "count count count set[string] count string").split()

# Values each column may take: mostly plain, plus every spelling the C lane must refuse.
ODD = {
    "ts": ["1700000000.5", "-", "nan", "inf", "1e9", "+1700000000", " 1700000000", "1_700_000_000", "17000\\x30", ""],
    "uid": ["-", "", "Crepeat1", "Crepeat1", "C\\x09tab", "Cé"],
    "id.orig_h": ["-", "", "10.0.0", "fe80::1%eth0", "::ffff:10.0.0.1", "2001:db8::1", "10.0.0.1\\x00", "1.2.3.4 "],
    "id.orig_p": ["-", "70000", "-1", "+80", "0x50", "99999999999999999999", "٣"],
    "id.resp_h": ["-", "", "300.1.1.1", "2001:db8::2", "10.0.0.2"],
    "id.resp_p": ["-", "65536", "0", "65535"],
    "proto": ["-", "unknown_transport", "sctp", "icmp", "icmp", "TCP", ""],
    "service": ["-", "ssl", "http,ssl", "quic,ssl", "x\\x2cy", "dns", "(empty)", "", "ümlaut", "ssl\\x09"],
    "duration": ["-", "0", "0.000000", "-1.5", "1e3", "nan", "1e12", "999999999999.0", "3."],
    "orig_bytes": ["-", "0", "-3", "1.0", "18446744073709551616"],
    "resp_bytes": ["-", "0", "5"],
    "conn_state": ["-", "SF", "", "S\\x01"],
    "missed_bytes": ["-", "7", "x"],
    "history": ["-", "ShADadFf", "\\\\", "Dd"],
    "orig_pkts": ["-", "3", "x", "2.5"],
    "resp_pkts": ["-", "4"],
    "ip_proto": ["-", "6", "17", "132", "1", "58", "47", "x"],
    "community_id": ["-", "1:abc=", "", "\\x2d"],
}


def _plain_row(rng: random.Random, i: int) -> list[str]:
    proto, port, ipp = rng.choice([("tcp", 443, 6), ("udp", 53, 17), ("icmp", 8, 1), ("tcp", 80, 6)])
    v6 = rng.random() < 0.2
    oh = f"fd00::{rng.randrange(1, 1 << 16):x}" if v6 else f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    rh = f"2001:db8::{rng.randrange(1, 1 << 16):x}" if v6 else f"{rng.randrange(1, 224)}.{rng.randrange(256)}.1.{rng.randrange(1, 255)}"
    if proto == "icmp" and rng.random() < 0.5:
        port = rng.choice([0, 3, 11, 13, 128, 135])
    return [f"{1700000000 + i * 0.37 + rng.random():.6f}", f"C{i:08d}{rng.randrange(10**6):06d}", oh,
            str(rng.randrange(1, 65536)), rh, str(port), proto, rng.choice(["-", "ssl", "dns", "http", "quic,ssl"]),
            rng.choice(["-", f"{rng.random() * 100:.6f}", "0.000001"]), str(rng.randrange(10**7)),
            str(rng.randrange(10**7)), rng.choice(["SF", "S0", "REJ"]), "T", "F", "0", "ShADadFf",
            str(rng.randrange(1, 9999)), str(rng.randrange(10**6)), str(rng.randrange(9999)), str(rng.randrange(10**6)),
            "(empty)", str(ipp), "-"]


def _conn_log(rng: random.Random, n: int, odd_rate: float, fields: list[str] = FIELDS, sep: str = "\t",
              unset: str = "-", crlf: bool = False) -> str:
    order = [FIELDS.index(f) for f in fields]
    head = [f"#separator \\x{ord(sep):02x}", f"#set_separator{sep},", f"#empty_field{sep}(empty)",
            f"#unset_field{sep}{unset}", f"#path{sep}conn", f"#fields{sep}" + sep.join(fields),
            f"#types{sep}" + sep.join(TYPES[i] for i in order)]
    lines = list(head)
    for i in range(n):
        row = _plain_row(rng, i)
        if rng.random() < odd_rate:
            for _ in range(rng.randrange(1, 3)):
                name = rng.choice(list(ODD))
                row[FIELDS.index(name)] = rng.choice(ODD[name])
        row = [unset if v == "-" else v for v in row]
        cells = [row[k] for k in order]
        if rng.random() < odd_rate / 4:
            cells = cells[:-1] if rng.random() < 0.5 else cells + ["extra"]
        lines.append(sep.join(cells))
    end = "\r\n" if crlf else "\n"
    return end.join(lines) + end


@pytest.mark.parametrize("seed", range(6))
def test_hostile_tsv_lines_read_identically(seed: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    path = tmp_path / "conn.log"
    path.write_text(_conn_log(rng, 3000, odd_rate=0.4, crlf=seed == 3), encoding="utf-8")
    assert assert_lanes_agree([str(path)], monkeypatch) > 1000


def test_other_header_layouts_read_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    shuffled = FIELDS[:]
    rng.shuffle(shuffled)
    layouts = {
        "shuffled.log": _conn_log(rng, 500, 0.2, fields=shuffled),
        "fewer.log": _conn_log(rng, 500, 0.2, fields=[f for f in FIELDS if f not in ("service", "ip_proto", "missed_bytes")]),
        "bare.log": _conn_log(rng, 500, 0.2, fields=FIELDS[:8]),
        "pipe.log": _conn_log(rng, 500, 0.2, sep="|"),
        "unset.log": _conn_log(rng, 500, 0.2, unset="NONE"),
    }
    for name, text in layouts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    # a repeated header mid-file with other columns, and non-UTF-8 bytes (read back as \xNN)
    mixed = _conn_log(rng, 200, 0.1) + _conn_log(rng, 200, 0.1, fields=shuffled)
    (tmp_path / "mixed.log").write_bytes(mixed.encode() + b"1700000001.0\tCbin\t10.0.0.1\t1\t10.0.0.2\t2\ttcp\t\xff\xfe\n")
    assert assert_lanes_agree([str(tmp_path)], monkeypatch) > 2000


def _iso(t: float, rng: random.Random) -> str:
    """Zeek's ISO 8601 spelling of a time (JSON::TS_ISO8601), now and then spelled otherwise."""
    import datetime

    whole = datetime.datetime.fromtimestamp(math.floor(t), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{t - math.floor(t):.9f}"[2:]
    return rng.choice([f"{whole}.{frac[:6]}Z"] * 6 + [f"{whole}.{frac}Z", f"{whole}.{frac[:3]}Z", f"{whole}Z",
                                                       f"{whole}.{frac[:6]}z", f"{whole}.{frac[:6]}+00:00",
                                                       f"1969-12-31T23:59:59.{frac[:6]}Z", f"{whole}.12a456Z"])


def json_records(rng: random.Random, n: int, odd_rate: float) -> list[dict]:
    """The usable lines of a generated TSV conn log (``_conn_log``) as Zeek JSON writes records:
    numbers, booleans and sets typed, unset columns left out, most times spelled ISO 8601."""
    out = []
    for line in _conn_log(rng, n, odd_rate).splitlines():
        cells = line.split("\t")
        if line.startswith("#") or len(cells) != len(FIELDS):
            continue
        obj: dict = {}
        for name, ztype, v in zip(FIELDS, TYPES, cells):
            if v == "-":
                continue
            if ztype in ("count", "port") and v.isdigit():
                obj[name] = int(v)
            elif ztype in ("time", "interval"):
                try:
                    obj[name] = float(v) if math.isfinite(float(v)) else v
                except ValueError:
                    obj[name] = v
            elif ztype == "bool":
                obj[name] = v == "T"
            elif ztype.startswith("set["):
                obj[name] = [] if v == "(empty)" else v.split(",")
            else:
                obj[name] = v
        if isinstance(obj.get("ts"), float) and rng.random() < 0.6:
            obj["ts"] = _iso(obj["ts"], rng)
        out.append(obj)
    return out


def test_hostile_json_lines_read_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """JSON conn logs reach the C lane as tuples (``conn_record`` alone)."""
    import json

    out = [json.dumps(obj) for obj in json_records(random.Random(5), 2000, odd_rate=0.3)]
    out.append('{"ts": 1700000000.0, "uid": "Cj", "id.orig_h": "10.0.0.1", "id.orig_p": true, '
               '"id.resp_h": "10.0.0.2", "id.resp_p": 80, "proto": "tcp"}')
    (tmp_path / "conn.json").write_text("\n".join(out) + "\n", encoding="utf-8")
    assert assert_lanes_agree([str(tmp_path / "conn.json")], monkeypatch) > 1000


def test_side_logs_and_dns_names_leave_their_lines_to_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines whose uid has ssl/dns/http entries, and destinations named by DNS, come out as Python makes them."""
    rng = random.Random(3)
    conn = _conn_log(rng, 400, odd_rate=0.0)
    (tmp_path / "conn.log").write_text(conn, encoding="utf-8")
    rows = [line.split("\t") for line in conn.splitlines() if not line.startswith("#")]
    ssl = ["#separator \\x09", "#path\tssl", "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tversion\tserver_name",
           "#types\ttime\tstring\taddr\tport\taddr\tport\tstring\tstring"]
    ssl += ["\t".join(r[:6] + ["TLSv13", f"host{k}.example"]) for k, r in enumerate(rows[::3])]
    dns = ["#separator \\x09", "#path\tdns", "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tquery\tanswers",
           "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tvector[string]"]
    dns += ["\t".join([str(float(r[0]) - 1), f"D{k}", r[2], "5353", "10.9.9.9", "53", "udp", f"n{k}.example", r[4]])
            for k, r in enumerate(rows[1::4])]
    (tmp_path / "ssl.log").write_text("\n".join(ssl) + "\n", encoding="utf-8")
    (tmp_path / "dns.log").write_text("\n".join(dns) + "\n", encoding="utf-8")
    lines, _, _ = _read([str(tmp_path)], True, monkeypatch)
    assert any(b'"tls":{' in line for line in lines) and any(b'"dst_name":"n' in line for line in lines)
    assert assert_lanes_agree([str(tmp_path)], monkeypatch) >= 400


def test_the_c_lane_takes_plain_lines() -> None:
    """Guard against a lane that silently refuses everything (the comparisons above would still pass)."""
    from netan.sources.zeek.reader import _CONN_NAMES

    text = _conn_log(random.Random(1), 300, odd_rate=0.0)
    header = [line.split("\t", 1)[1] for line in text.splitlines() if line.startswith("#fields")][0].split("\t")
    layout = fastlane.conn_plan("\t", "-", tuple(header), _CONN_NAMES)
    joiner = Joiner()
    joiner.start_conn()
    lines = text.splitlines(True)[7:]
    for line in lines[:60]:
        joiner.conn_flow(C_MODULE.tsv_conn(line, layout))  # the Python lane fills the service -> l7 cache
    made = [C_MODULE.tsv_record(line, layout, joiner.plain_context()) for line in lines[60:]]
    assert sum(type(m) is dict for m in made) == len(made)

    from netan.sources.zeek.jsonlog import _SECONDS, json_interval, json_time

    iso = "2023-11-14T22:13:20.0005209Z"
    want = json_time(iso)  # fills the memo of whole seconds
    obj = {"ts": iso, "uid": "Cx", "id.orig_h": "10.0.0.1", "id.orig_p": 5, "id.resp_h": "10.0.0.2",
           "id.resp_p": 443, "proto": "tcp", "duration": 1.23456789, "orig_bytes": 10}
    c = C_MODULE.json_conn(obj, _CONN_NAMES, _SECONDS)
    assert c is not None and c[0] == want and c[8] == json_interval(1.23456789) and c[9] == 10


# ---- Community ID ------------------------------------------------------------------------------

def test_community_ids_equal_the_python_and_reference_implementations() -> None:
    rng = random.Random(9)
    joiner = Joiner()
    joiner.start_conn()
    joiner.conn_flow((1.0, "Cwarm", "10.0.0.1", 1, "10.0.0.2", 2, "tcp", None, None, 1, 1, None, 0, None, 1, 1,
                      None, None, None))
    for i in range(4000):
        v6 = rng.random() < 0.4
        same = rng.random() < 0.05

        def addr() -> str:
            if v6:
                return str(ipaddress.IPv6Address(rng.getrandbits(128)))
            return ".".join(str(rng.randrange(256)) for _ in range(4))

        oh = addr()
        rh = oh if same else addr()
        proto = rng.choice(["tcp", "udp", "icmp"])
        op, rp = rng.randrange(65536), rng.randrange(65536)
        if proto == "icmp":
            op, rp = rng.choice([0, 3, 8, 11, 13, 128, 129, 133, 135, 200]), rng.randrange(4)
        c = (1700000000.0 + i, f"Cid{i}", oh, op, rh, rp, proto, None, 1.0, 1, 2, "SF", 0, "S", 1, 1, None, None, None)
        rec = C_MODULE.conn_record(c, joiner.plain_context())
        assert rec is not None
        pnum = {"tcp": 6, "udp": 17}.get(proto) or (58 if ":" in oh else 1)
        assert rec["community_id"] == community_id_text(pnum, oh, rh, op, rp)
        if i % 8 == 0:  # and against the maintained reference implementation, independent of netan
            assert rec["community_id"] == _reference_community_id(pnum, oh, op, rh, rp)


def _reference_community_id(proto: int, src: str, sport: int, dst: str, dport: int) -> str:
    import communityid

    cid = communityid.CommunityID(seed=0)
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    if proto in (6, 17):
        return cid.calc(communityid.FlowTuple(proto, s, d, sport, dport))
    make = communityid.FlowTuple.make_icmp if proto == 1 else communityid.FlowTuple.make_icmp6
    return cid.calc(make(s, d, sport, dport))


# ---- netan_flows.log rows --------------------------------------------------------------------

def _random_value(rng: random.Random):
    return rng.choice([
        None, 0, 1, -5, 2**63, -(2**70), True, False, 0.0, -0.0, 1.5, 1e-7, 5e-7, -5e-7, 1e16, 2.0**53 + 2, 1e300,
        float("nan"), float("inf"), 1 / 128, 3 / 128, 1700000000.0000005, rng.random() * 1e10, rng.random(),
        rng.randrange(-10**9, 10**9) / 2**rng.randrange(0, 30), "", "-", "(empty)", "plain", "tab\there", "back\\slash",
        "é", "\x7f", "日本", "a,b", [], ["x"], ["a,b", "-", ""], (), ("y", None), {"k": 1}, {"sni": "x"},
        {"cert": {"subject": "CN=x", "not_after": "2030-01-01T00:00:00Z", "key_bits": 2048, "self_signed": True}},
        {"alpn": ["h2", "http/1.1"], "version": "TLSv1.3"}, {"out": {"n": 3, "entropy": 7.99999951, "class": "x"}},
    ])


def test_rows_equal_the_compiled_python_rows() -> None:
    rng = random.Random(17)
    c_row = zeek_sink._flow_row(False)
    careful = zeek_sink._compile_row(zeek_sink.FLOW_COLUMNS, False, "netan_flows", quick=False)
    quick = zeek_sink._compile_row(zeek_sink.FLOW_COLUMNS, False, "netan_flows")
    keys = ["ts", "zeek_uid", "flow_id", "src_ip", "src_port", "dst_ip", "dst_port", "proto", "community_id",
            "ts_end", "src_mac", "bytes_out", "bytes_in", "pkts_out", "pkts_in", "l7", "dst_name", "payload",
            "framing", "tls", "device", "app", "attribution", "app_state"]
    for _ in range(20000):
        r = {k: _random_value(rng) for k in keys if rng.random() < 0.9}
        if rng.random() < 0.3:
            r["tls"] = {"version": _random_value(rng), "sni": _random_value(rng), "alpn": _random_value(rng),
                        "cert": {"subject": _random_value(rng), "self_signed": _random_value(rng),
                                 "key_bits": _random_value(rng), "not_after": _random_value(rng)}}
        if rng.random() < 0.3:
            r["payload"] = {"out": {"n": _random_value(rng), "entropy": _random_value(rng), "class": _random_value(rng)},
                            "in": _random_value(rng)}
        try:
            want = careful(r)
        except (TypeError, ValueError, OverflowError, AttributeError):
            # a value no record holds: both refuse it (maybe at another column first, so with another error)
            with pytest.raises((TypeError, ValueError, OverflowError, AttributeError)):
                c_row(r)
            continue
        assert c_row(r) == want == quick(r), r
        assert C_MODULE.tsv_row_bytes(zeek_sink._flow_plan(), r) == want.encode(), r


def test_fixed_point_times_equal_python_formatting() -> None:
    """``%.6f`` in C (integer arithmetic, ties to even) against Python's own, and ``_fmt_double``."""
    rng = random.Random(23)
    values = [k / 128 for k in range(-300, 300)] + [k / 2**20 for k in range(0, 5000, 7)]
    values += [2.0**53 - 1, 2.0**53, 2.0**53 + 2, 2.0**60, 1e20, 5e-7, 4.999999e-7, 1e-300, -1e-300, 0.0, -0.0]
    for _ in range(50000):
        values.append(rng.uniform(-2e9, 2e9))
        values.append(1_600_000_000 + rng.random() * 2e8)
        values.append(struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0])
    plan = ((0, ("v",), None, lambda v: "?", "-"), (1, ("v",), None, lambda v: "?", "-"))
    for v in values:
        if not math.isfinite(v):
            continue
        assert C_MODULE.tsv_row(plan, {"v": v}) == f"{'%.6f' % v}\t{zeek_sink._fmt_double(v)}\n", v


def test_row_plan_errors_are_raised_not_hidden() -> None:
    with pytest.raises(TypeError):
        C_MODULE.tsv_row((), [1])
    with pytest.raises(ValueError):
        C_MODULE.tsv_row(((1, 2),), {})
    plan = ((4, ("v",), None, lambda v: 1 / 0, "-"),)
    with pytest.raises(ZeroDivisionError):
        C_MODULE.tsv_row(plan, {"v": "\x01"})
