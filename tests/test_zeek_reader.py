"""Zeek log reader: header directives, escapes, JSON spellings, the uid join, bad input.

Logs here are written by the tests in Zeek's exact formats (ASCII writer
header block, JSON writer spellings); the corpus tests (test_zeek_corpus.py)
run the same code on logs Zeek itself wrote.
"""
from __future__ import annotations

import gzip
import os
import json
import random
import tracemalloc
from pathlib import Path

import pytest

from netan.problems import Problems
from netan.schema import new_flow_record
from netan.sources.zeek import read_zeek
from netan.sources.zeek.convert import Joiner, community_id, l7_from_service, tls_version
from netan.sources.zeek.jsonlog import json_time
from netan.sources.zeek.tsv import TsvHeader, canon_text, unescape

CONN_FIELDS = (
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes "
    "conn_state local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes "
    "tunnel_parents"
).split()
CONN_TYPES = (
    "time string addr port addr port enum string interval count count string bool bool count string count "
    "count count count set[string]"
).split()
SSL_FIELDS = (
    "ts uid id.orig_h id.orig_p id.resp_h id.resp_p version cipher curve server_name resumed last_alert "
    "next_protocol established ssl_history cert_chain_fps client_cert_chain_fps sni_matches_cert"
).split()
SSL_TYPES = (
    "time string addr port addr port string string string string bool string string bool string "
    "vector[string] vector[string] bool"
).split()
X509_FIELDS = (
    "ts fingerprint certificate.version certificate.serial certificate.subject certificate.issuer "
    "certificate.not_valid_before certificate.not_valid_after certificate.key_alg certificate.sig_alg "
    "certificate.key_type certificate.key_length certificate.exponent certificate.curve san.dns san.uri "
    "san.email san.ip basic_constraints.ca basic_constraints.path_len host_cert client_cert"
).split()
X509_TYPES = (
    "time string count string string string time time string string string count string string "
    "vector[string] vector[string] vector[string] vector[addr] bool count bool bool"
).split()
DNS_FIELDS = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt query answers TTLs".split()
DNS_TYPES = "time string addr port addr port enum count interval string vector[string] vector[interval]".split()


def tsv_log(path: str, fields: list[str], types: list[str], rows: list[list[str]], sep: str = "\t",
            set_sep: str = ",", empty: str = "(empty)", unset: str = "-", close: bool = True) -> str:
    """Text of a log as Zeek's ASCII writer lays it out."""
    esc_sep = "".join("\\x%02x" % ord(c) for c in sep)
    lines = [
        f"#separator {esc_sep}",
        f"#set_separator{sep}{set_sep}",
        f"#empty_field{sep}{empty}",
        f"#unset_field{sep}{unset}",
        f"#path{sep}{path}",
        f"#open{sep}2024-01-01-00-00-00",
        f"#fields{sep}" + sep.join(fields),
        f"#types{sep}" + sep.join(types),
    ]
    lines += [sep.join(r) for r in rows]
    if close:
        lines.append(f"#close{sep}2024-01-01-01-00-00")
    return "\n".join(lines) + "\n"


def conn_row(ts="1700000000.000001", uid="CAbc1", oh="10.0.0.2", op="51000", rh="93.184.216.34", rp="443",
             proto="tcp", service="ssl", dur="1.500000", ob="517", rb="4000", state="SF", hist="ShADadFf",
             opk="10", rpk="9") -> list[str]:
    return [ts, uid, oh, op, rh, rp, proto, service, dur, ob, rb, state, "T", "F", "0", hist, opk, "900", rpk,
            "4400", "(empty)"]


def ssl_row(ts="1700000000.100000", uid="CAbc1", oh="10.0.0.2", op="51000", rh="93.184.216.34", rp="443",
            version="TLSv12", sni="example.com", fps="fp1") -> list[str]:
    return [ts, uid, oh, op, rh, rp, version, "TLS_AES_128_GCM_SHA256", "x25519", sni, "F", "-", "h2", "T",
            "CsxknGIi", fps, "(empty)", "T"]


def x509_row(fp="fp1", subject="CN=example.com", issuer="CN=Some CA") -> list[str]:
    return ["1700000000.100000", fp, "3", "0A", subject, issuer, "1600000000.000000", "1800000000.000000",
            "rsaEncryption", "sha256WithRSAEncryption", "rsa", "2048", "65537", "-", "example.com", "-", "-",
            "-", "F", "-", "T", "F"]


def read(paths, problems=None) -> tuple[list[dict], Problems]:
    p = problems or Problems()
    return list(read_zeek([str(x) for x in paths], p)), p


# ------------------------------------------------------------------ primitives


@pytest.mark.parametrize(
    "raw, want",
    [
        ("plain", "plain"),
        ("a\\x2cb", "a,b"),  # escaped set separator comes back as the character
        ("\\x2d", "-"),  # a string that is literally the unset marker
        ("tab\\x09here", "tab\\x09here"),  # non-printable stays as Zeek's JSON writer shows it
        ("\\\\x07", "\\x07"),  # a literal backslash-x07 ...
        ("\\x07", "\\x07"),  # ... and a BEL byte: JSON renders both alike, so do we
        ("\\xff\\xfe", "\\xff\\xfe"),  # invalid UTF-8 bytes
        ("back\\\\slash", "back\\slash"),
        ("üñí😄", "üñí😄"),  # valid UTF-8 passes through unescaped
    ],
)
def test_unescape_canon(raw: str, want: str) -> None:
    assert unescape(raw) == want


def test_canon_text_escapes_controls_like_zeek() -> None:
    assert canon_text("a\x07b\tc") == "a\\x07b\\x09c"
    assert canon_text("nothing") == "nothing"


def test_header_absorbs_each_directive() -> None:
    h = TsvHeader()
    for line in ["#separator \\x7c", "#set_separator|;", "#empty_field|EMPTY", "#unset_field|NONE",
                 "#path|conn", "#open|2024-01-01-00-00-00", "#fields|ts|uid", "#types|time|string"]:
        h = h.absorb(line)
        assert h is not None, line
    assert (h.separator, h.set_separator, h.empty_field, h.unset_field) == ("|", ";", "EMPTY", "NONE")
    assert h.path == "conn" and h.fields == ("ts", "uid") and h.types == ("time", "string")
    assert h.absorb("### BTest baseline data generated by btest-diff") is None


@pytest.mark.parametrize(
    "zeek, want",
    [("TLSv10", "TLSv1.0"), ("TLSv12", "TLSv1.2"), ("TLSv13", "TLSv1.3"), ("DTLSv10", "DTLSv1.0"),
     ("DTLSv12", "DTLSv1.2"), ("SSLv3", "SSLv3"), ("TLSv13-draft23", "TLSv1.3-draft23"),
     ("unknown-64282", "unknown-64282"), (None, None)],
)
def test_tls_version_names(zeek, want) -> None:
    assert tls_version(zeek) == want


@pytest.mark.parametrize(
    "service, proto, want",
    [("ssl", "tcp", "tls"), ("ssl", "udp", "dtls"), ("quic,ssl", "udp", "quic"), ("http", "tcp", "http"),
     ("-ssl,http", "tcp", "http"), (None, "tcp", "unknown"), ("dns", "udp", "dns"), ("krb_tcp", "tcp", "krb")],
)
def test_l7_from_service(service, proto, want) -> None:
    assert l7_from_service(service, proto) == want


@pytest.mark.parametrize(
    "value, want",
    [
        ("2018-03-24T17:15:20.615923Z", float("1521911720.615923")),
        ("2018-03-24T17:15:20Z", 1521911720.0),
        ("2018-03-24T17:15:20.6159+00:00", float("1521911720.615900")),
        (1521911720.615923, float("1521911720.615923")),
        (1521911720615, 1521911720.615),  # JSON::TS_MILLIS
        ("1969-12-31T23:59:59.500000Z", -0.5),
    ],
)
def test_json_time_spellings(value, want) -> None:
    assert json_time(value) == want


def test_community_id_matches_reference_package() -> None:
    """Differential: our inlined Community ID against the spec's reference implementation."""
    communityid = pytest.importorskip("communityid")
    ref = communityid.CommunityID(seed=0)
    rng = random.Random(5)
    pairs4 = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
    pairs6 = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130, 139: 140,
              140: 139, 144: 145, 145: 144}
    for _ in range(3000):
        v6 = rng.random() < 0.4
        addr = (lambda: f"2001:db8::{rng.randrange(3):x}") if v6 else (lambda: f"192.0.2.{rng.randrange(3)}")
        s, d = addr(), addr()
        proto = rng.choice([6, 17, 132, 58 if v6 else 1, 47])
        if proto in (1, 58):
            t, code = rng.choice([0, 3, 5, 8, 11, 13, 14, 128, 129, 133, 134, 135, 136, 139, 144]), rng.randrange(3)
            resp_p = (pairs4 if proto == 1 else pairs6).get(t, code)  # what Zeek logs as id.resp_p
            make = communityid.FlowTuple.make_icmp if proto == 1 else communityid.FlowTuple.make_icmp6
            assert community_id(proto, s, d, t, resp_p) == ref.calc(make(s, d, t, code))
        elif proto == 47:
            assert community_id(47, s, d, 0, 0) == ref.calc(communityid.FlowTuple(47, s, d))
        else:
            sp, dp = rng.choice([1, 53, 443, 65535]), rng.choice([1, 53, 443, 65535])
            assert community_id(proto, s, d, sp, dp) == ref.calc(communityid.FlowTuple(proto, s, d, sp, dp))


def test_community_id_matches_netan_pcap_mode() -> None:
    """Zeek-mode and pcap-mode flows must join on the same string (netan.community)."""
    community = pytest.importorskip("netan.community")
    for proto, s, d, sp, dp in [(6, "10.0.0.2", "93.184.216.34", 51000, 443), (17, "2001:db8::1", "2001:db8::2", 53, 53),
                                (6, "192.0.2.9", "192.0.2.1", 80, 40000), (1, "192.0.2.1", "192.0.2.9", 8, 0),
                                (58, "2001:db8::1", "2001:db8::2", 128, 129)]:
        assert community_id(proto, s, d, sp, dp) == community.community_id_v1(proto, s, sp, d, dp)


# ------------------------------------------------------------------ records and the join


def test_record_shape_is_new_flow_record(tmp_path: Path) -> None:
    (tmp_path / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row()]))
    (flow,), problems = read([tmp_path])
    assert problems.count == 0
    template = list(new_flow_record())
    assert list(flow)[: len(template)] == template
    assert set(flow) - set(template) == {"zeek_uid", "conn_state", "history", "missed_bytes", "dst_name", "http",
                                         "zeek_logs", "not_observable"}
    assert flow["flow_id"] == flow["zeek_uid"] == "CAbc1"
    assert (flow["src_ip"], flow["src_port"], flow["dst_ip"], flow["dst_port"], flow["proto"]) == (
        "10.0.0.2", 51000, "93.184.216.34", 443, "tcp")
    assert (flow["bytes_out"], flow["bytes_in"], flow["pkts_out"], flow["pkts_in"]) == (517, 4000, 10, 9)
    assert flow["ts"] == 1700000000.000001 and flow["ts_end"] == 1700000001.500001
    assert flow["conn_state"] == "SF" and flow["history"] == "ShADadFf" and flow["missed_bytes"] == 0
    assert flow["l7"] == "tls"
    unknown = {"n": 0, "entropy": None, "class": "unknown", "observable": False}
    assert flow["payload"] == {"out": unknown, "in": unknown}
    assert "framing" in flow["not_observable"] and "payload" in flow["not_observable"]


def test_ssl_x509_dns_join_tsv(tmp_path: Path) -> None:
    (tmp_path / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row()]))
    (tmp_path / "ssl.log").write_text(tsv_log("ssl", SSL_FIELDS, SSL_TYPES, [ssl_row(fps="fp1,fp2")]))
    (tmp_path / "x509.log").write_text(tsv_log("x509", X509_FIELDS, X509_TYPES, [
        x509_row("fp1", "CN=example.com", "CN=Some CA"), x509_row("fp2", "CN=Some CA", "CN=Root")]))
    (tmp_path / "dns.log").write_text(tsv_log("dns", DNS_FIELDS, DNS_TYPES, [
        ["1699999999.900000", "CDns1", "10.0.0.2", "40000", "10.0.0.1", "53", "udp", "7", "0.010000",
         "Example.COM", "cdn.example.net,93.184.216.34", "60.000000,60.000000"]]))
    flows, problems = read([tmp_path])
    assert problems.count == 0
    by_uid = {f["zeek_uid"]: f for f in flows}
    tls_flow = by_uid["CAbc1"]
    assert tls_flow["zeek_logs"] == ("conn", "ssl")
    tls = tls_flow["tls"]
    assert (tls["version"], tls["sni"], tls["cipher"], tls["alpn"]) == ("TLSv1.2", "example.com",
                                                                        "TLS_AES_128_GCM_SHA256", ["h2"])
    cert = tls["cert"]
    assert (cert["subject"], cert["issuer"], cert["self_signed"], cert["key_type"], cert["key_bits"]) == (
        "CN=example.com", "CN=Some CA", False, "rsa", 2048)
    # Field names and spellings as pcap mode's certificate facts (netan.analyzers.x509info).
    assert (cert["not_after"], cert["not_before"]) == ("2027-01-15T08:00:00Z", "2020-09-13T12:26:40Z")
    assert (cert["subject_cn"], cert["issuer_cn"], cert["sans"]) == ("example.com", "Some CA", ["example.com"])
    assert tls_flow["dst_name"] == "example.com"
    # The DNS query had no conn.log line: it still becomes a flow from its id.* fields.
    dns_flow = by_uid["CDns1"]
    assert (dns_flow["proto"], dns_flow["l7"], dns_flow["dst_port"]) == ("udp", "dns", 53)
    assert {"bytes", "packets"} <= set(dns_flow["not_observable"])


def test_ssl_without_conn_becomes_flow_and_json_equals_tsv(tmp_path: Path) -> None:
    tdir, jdir = tmp_path / "tsv", tmp_path / "json"
    tdir.mkdir(), jdir.mkdir()
    (tdir / "ssl.log").write_text(tsv_log("ssl", SSL_FIELDS, SSL_TYPES, [ssl_row(sni="-", version="TLSv13")]))
    obj = {"_path": "ssl", "_write_ts": "2023-11-14T22:13:20.100000Z", "ts": "2023-11-14T22:13:20.100000Z",
           "uid": "CAbc1", "id.orig_h": "10.0.0.2", "id.orig_p": 51000, "id.resp_h": "93.184.216.34",
           "id.resp_p": 443, "version": "TLSv13", "cipher": "TLS_AES_128_GCM_SHA256", "curve": "x25519",
           "resumed": False, "next_protocol": "h2", "established": True, "ssl_history": "CsxknGIi",
           "cert_chain_fps": ["fp1"], "client_cert_chain_fps": [], "sni_matches_cert": True}
    (jdir / "whatever.txt").write_text(json.dumps(obj) + "\n")
    a, pa = read([tdir])
    b, pb = read([jdir])
    assert pa.count == pb.count == 0
    assert a == b
    (flow,) = a
    assert flow["tls"]["version"] == "TLSv1.3" and flow["tls"]["sni"] is None
    assert flow["bytes_out"] == 0 and "bytes" in flow["not_observable"]
    assert flow["community_id"] == community_id(6, "10.0.0.2", "93.184.216.34", 51000, 443)


def test_x509_older_layout_by_file_id(tmp_path: Path) -> None:
    """Zeek < 4.2: ssl.log cert_chain_fuids, x509.log keyed by the file ``id``."""
    ssl_f = [f if f != "cert_chain_fps" else "cert_chain_fuids" for f in SSL_FIELDS]
    ssl_f = [f if f != "client_cert_chain_fps" else "client_cert_chain_fuids" for f in ssl_f]
    x_f = ["id" if f == "fingerprint" else f for f in X509_FIELDS]
    (tmp_path / "ssl.log").write_text(tsv_log("ssl", ssl_f, SSL_TYPES, [ssl_row(fps="FvX1,FvX2")]))
    (tmp_path / "x509.log").write_text(tsv_log("x509", x_f, X509_TYPES, [x509_row("FvX1", "CN=a", "CN=a")]))
    (flow,), problems = read([tmp_path])
    assert problems.count == 0
    assert flow["tls"]["cert"]["subject"] == "CN=a" and flow["tls"]["cert"]["self_signed"] is True


def test_files_entropy_makes_payload_observable(tmp_path: Path) -> None:
    fields = "ts fuid uid id.orig_h id.orig_p id.resp_h id.resp_p source is_orig seen_bytes entropy".split()
    types = "time string string addr port addr port string bool count double".split()
    (tmp_path / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row(service="http", rp="80")]))
    (tmp_path / "files.log").write_text(tsv_log("files", fields, types, [
        ["1700000000.2", "F1", "CAbc1", "10.0.0.2", "51000", "93.184.216.34", "80", "HTTP", "T", "1000", "7.9"],
        ["1700000000.3", "F2", "CAbc1", "10.0.0.2", "51000", "93.184.216.34", "80", "HTTP", "T", "3000", "7.5"],
        ["1700000000.4", "F3", "CAbc1", "10.0.0.2", "51000", "93.184.216.34", "80", "HTTP", "F", "10", "-"],
    ]))
    (flow,), problems = read([tmp_path])
    assert problems.count == 0
    out = flow["payload"]["out"]
    assert out["observable"] is True and out["n"] == 4000 and out["entropy"] == pytest.approx(7.6)
    assert flow["payload"]["in"]["observable"] is False
    assert "payload" not in flow["not_observable"]


def test_quic_log_joins_and_stands_alone(tmp_path: Path) -> None:
    fields = ("ts uid id.orig_h id.orig_p id.resp_h id.resp_p version client_initial_dcid client_scid server_scid "
              "server_name client_protocol history").split()
    types = ["time", "string", "addr", "port", "addr", "port"] + ["string"] * 7
    (tmp_path / "quic.log").write_text(tsv_log("quic", fields, types, [
        ["1700000000.1", "CQ1", "10.0.0.2", "50000", "142.250.1.1", "443", "1", "aa", "(empty)", "bb", "www.example",
         "h3", "ISishIhH"],
        ["1700000000.2", "CQ2", "10.0.0.2", "50001", "142.250.1.1", "443", "1", "cc", "(empty)", "dd", "alone.example",
         "h3", "IsiIh"]]))
    (tmp_path / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [
        conn_row(uid="CQ1", proto="udp", op="50000", rh="142.250.1.1", service="ssl")]))
    flows, problems = read([tmp_path])
    assert problems.count == 0
    joined, alone = flows
    assert (joined["l7"], joined["zeek_logs"], joined["tls"]["sni"]) == ("quic", ("conn", "quic"), "www.example")
    assert (alone["proto"], alone["l7"], alone["tls"]["sni"], alone["tls"]["alpn"]) == (
        "udp", "quic", "alone.example", ["h3"])
    assert alone["tls"]["version"] is None  # quic.log does not say which TLS; nothing is guessed


def test_http_facts_without_uri(tmp_path: Path) -> None:
    fields = ("ts uid id.orig_h id.orig_p id.resp_h id.resp_p trans_depth method host uri user_agent "
              "request_body_len response_body_len status_code").split()
    types = "time string addr port addr port count string string string string count count count".split()
    (tmp_path / "http.log").write_text(tsv_log("http", fields, types, [
        ["1700000000.2", "CH1", "10.0.0.2", "51000", "198.51.100.7", "80", "1", "POST", "upload.example",
         "/secret?token=abc", "okhttp/4.9", "2048", "10", "200"],
        ["1700000000.3", "CH1", "10.0.0.2", "51000", "198.51.100.7", "80", "2", "POST", "upload.example",
         "/x", "okhttp/4.9", "10", "10", "200"]]))
    (flow,), problems = read([tmp_path])
    assert flow["l7"] == "http" and flow["http"]["transactions"] == 2
    assert flow["http"]["host"] == "upload.example" and flow["http"]["user_agent"] == "okhttp/4.9"
    assert "secret" not in json.dumps(flow)  # URIs carry data: never copied


def test_icmp_and_ipv6(tmp_path: Path) -> None:
    rows = [conn_row(uid="C1", proto="icmp", op="8", rp="0", service="-", oh="192.0.2.1", rh="192.0.2.9"),
            conn_row(uid="C2", proto="icmp", op="128", rp="129", service="-", oh="2001:db8::1", rh="2001:db8::2"),
            conn_row(uid="C3", proto="udp", op="5353", rp="5353", service="dns", oh="fe80::1", rh="ff02::fb")]
    (tmp_path / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, rows))
    flows, problems = read([tmp_path])
    assert problems.count == 0
    f1, f2, f3 = flows
    assert (f1["proto"], f1["src_port"], f1["dst_port"]) == ("icmp", 0, 0)
    assert f1["community_id"] == community_id(1, "192.0.2.1", "192.0.2.9", 8, 0)
    assert f2["proto"] == "icmp6" and f2["community_id"] == community_id(58, "2001:db8::1", "2001:db8::2", 128, 129)
    assert (f3["src_port"], f3["dst_port"], f3["l7"]) == (5353, 5353, "dns")


def test_unset_sizes_are_flagged_not_observable(tmp_path: Path) -> None:
    # Zeek writes "-" for sizes it could not measure (a one-packet UDP flow).
    (tmp_path / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [
        conn_row(proto="udp", service="-", dur="-", ob="-", rb="-", state="S0", hist="D", rpk="0")]))
    (flow,), _ = read([tmp_path])
    assert flow["bytes_out"] == 0 and flow["ts_end"] == flow["ts"]
    assert flow["not_observable"] == ("framing", "payload", "bytes")


def test_logged_community_id_is_kept(tmp_path: Path) -> None:
    fields = CONN_FIELDS + ["community_id"]
    types = CONN_TYPES + ["string"]
    (tmp_path / "conn.log").write_text(tsv_log("conn", fields, types, [conn_row() + ["1:fromzeek="]]))
    (flow,), _ = read([tmp_path])
    assert flow["community_id"] == "1:fromzeek="


# ------------------------------------------------------------------ TSV and JSON variants


def test_custom_separators_and_markers(tmp_path: Path) -> None:
    rows = [conn_row(service="NONE", dur="NONE")]
    rows[0][-1] = "EMPTY"
    text = tsv_log("conn", CONN_FIELDS, CONN_TYPES, [[v.replace(",", ";") for v in r] for r in rows],
                   sep="|", set_sep=";", empty="EMPTY", unset="NONE")
    (tmp_path / "c").write_text(text)
    (flow,), problems = read([tmp_path / "c"])
    assert problems.count == 0
    assert flow["l7"] == "unknown" and flow["ts_end"] == flow["ts"]


def test_fields_in_new_order_and_unknown_fields_and_types(tmp_path: Path) -> None:
    order = list(reversed(CONN_FIELDS)) + ["brand_new"]
    types = list(reversed(CONN_TYPES)) + ["table[string,count]"]
    row = list(reversed(conn_row())) + ["x"]
    (tmp_path / "conn.log").write_text(tsv_log("conn", order, types, [row]))
    (flow,), problems = read([tmp_path])
    (ref,), _ = read_one_conn(tmp_path / "ref", conn_row())
    assert problems.count == 0
    assert flow == ref


def read_one_conn(d: Path, row: list[str]):
    d.mkdir()
    (d / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [row]))
    return read([d])


def test_header_repeated_mid_file_with_other_fields(tmp_path: Path) -> None:
    first = tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row(uid="C1")], close=True)
    fields2 = CONN_FIELDS[:8]  # a restart with fewer columns
    second = tsv_log("conn", fields2, CONN_TYPES[:8], [conn_row(uid="C2")[:8]], close=False)
    (tmp_path / "conn.log").write_text(first + second)
    flows, problems = read([tmp_path])
    assert problems.count == 0
    assert [f["flow_id"] for f in flows] == ["C1", "C2"]
    assert flows[1]["bytes_out"] == 0 and flows[1]["conn_state"] is None


def test_json_conn_equals_tsv_conn(tmp_path: Path) -> None:
    rows = [conn_row(uid=f"C{i}", ts=f"17000000{i:02d}.123456", dur="0.000870", ob="-" if i % 3 else "10")
            for i in range(20)]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, rows))
    jl = []
    for r in rows:
        obj = {"ts": float(r[0]) if int(r[1][1:]) % 2 else
               __import__("datetime").datetime.fromtimestamp(float(r[0]), tz=__import__("datetime").timezone.utc)
               .strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
               "uid": r[1], "id": {"orig_h": r[2], "orig_p": int(r[3]), "resp_h": r[4], "resp_p": int(r[5])},
               "proto": r[6], "service": r[7], "duration": 0.0008699893951416016, "resp_bytes": int(r[10]),
               "conn_state": r[11], "local_orig": True, "missed_bytes": 0, "history": r[15], "orig_pkts": int(r[16]),
               "resp_pkts": int(r[18]), "tunnel_parents": []}
        if r[9] != "-":
            obj["orig_bytes"] = int(r[9])
        jl.append(json.dumps(obj))
    (tmp_path / "j").mkdir()
    with gzip.open(tmp_path / "j" / "conn.log", "wt") as fh:  # gzip'd, named like plain text
        fh.write("\n".join(jl) + "\n")
    a, pa = read([tmp_path / "t"])
    b, pb = read([tmp_path / "j"])
    assert pa.count == pb.count == 0
    assert a == b


def test_rotated_directory_layout(tmp_path: Path) -> None:
    day = tmp_path / "2024-03-01"
    day.mkdir()
    for hour, uid in ((0, "C0"), (1, "C1")):
        name = f"conn.{hour:02d}:00:00-{hour + 1:02d}:00:00.log.gz"
        with gzip.open(day / name, "wt") as fh:
            fh.write(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row(uid=uid, ts=f"17000{hour}0000.0")]))
    with gzip.open(day / "ssl.00:00:00-01:00:00.log.gz", "wt") as fh:
        fh.write(tsv_log("ssl", SSL_FIELDS, SSL_TYPES, [ssl_row(uid="C1")]))
    (day / "stats.00:00:00-01:00:00.log").write_text(tsv_log("stats", ["ts", "peer"], ["time", "string"], [["1", "x"]]))
    (tmp_path / "README").write_text("not a log\n")
    flows, problems = read([tmp_path])
    assert [f["flow_id"] for f in flows] == ["C0", "C1"]
    assert flows[1]["tls"]["sni"] == "example.com"
    reasons = problems.as_dict()["by_reason"]
    assert reasons == {"zeek_log_not_used:stats": 1, "not_a_zeek_log": 1}


# ------------------------------------------------------------------ bad input


def test_truncated_and_wrong_lines_are_counted_rest_kept(tmp_path: Path) -> None:
    good = "\t".join(conn_row(uid="C1"))
    text = tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row(uid="C0")], close=False)
    text += "\t".join(conn_row(uid="Cx")[:7]) + "\n"  # truncated line
    text += good.replace("517", "five-hundred") + "\n"  # a bad count: value dropped, line kept
    text += good.replace("10.0.0.2", "not-an-ip").replace("C1", "C9") + "\n"
    text += "\t".join(conn_row(uid="C2"))  # last line without newline
    (tmp_path / "conn.log").write_text(text)
    flows, problems = read([tmp_path])
    assert [f["flow_id"] for f in flows] == ["C0", "C1", "C2"]
    assert flows[1]["bytes_out"] == 0
    d = problems.as_dict()
    assert d["by_reason"] == {"tsv_wrong_column_count": 1, "bad_value": 1, "conn_bad_record": 1}
    wheres = {(p["reason"], p["where"]) for p in d["examples"]}
    assert ("tsv_wrong_column_count", "line 10") in wheres
    assert ("bad_value", "line 11 field orig_bytes") in wheres
    assert ("conn_bad_record", "line 12") in wheres


def test_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    rows = [conn_row(uid="C0", ts="nan"), conn_row(uid="C1", dur="inf"), conn_row(uid="C2", ts="-inf"),
            conn_row(uid="C3", proto="unknown_transport", op="0", rp="0")]
    (tmp_path / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, rows))
    flows, problems = read([tmp_path])
    assert [f["flow_id"] for f in flows] == ["C1"] and flows[0]["ts_end"] == flows[0]["ts"]
    # A NaN/inf ts makes the line unusable; an inf duration is reported and dropped.
    assert problems.as_dict()["by_reason"] == {"conn_bad_record": 3, "bad_value": 1}
    json.dumps(flows, allow_nan=False)


def test_missing_header_lines_are_counted(tmp_path: Path) -> None:
    body = "\n".join("\t".join(conn_row(uid=f"C{i}")) for i in range(3)) + "\n"
    (tmp_path / "conn.log").write_text("#path\tconn\n" + body)
    flows, problems = read([tmp_path])
    assert flows == []
    assert problems.as_dict()["by_reason"] == {"tsv_no_header": 3}


def test_types_line_of_wrong_length_falls_back_to_text(tmp_path: Path) -> None:
    text = tsv_log("conn", CONN_FIELDS, CONN_TYPES[:5], [conn_row()])
    (tmp_path / "conn.log").write_text(text)
    (flow,), problems = read([tmp_path])
    assert problems.as_dict()["by_reason"] == {"tsv_types_mismatch": 1}
    (ref,), _ = read_one_conn(tmp_path / "ref", conn_row())
    assert flow == ref


def test_non_utf8_bytes_become_escapes(tmp_path: Path) -> None:
    text = tsv_log("ssl", SSL_FIELDS, SSL_TYPES, [ssl_row(sni="SNI_SNI")]).encode()
    text = text.replace(b"SNI_SNI", b"bad\xff\xfe.example")
    (tmp_path / "ssl.log").write_bytes(text)
    (flow,), problems = read([tmp_path])
    assert problems.count == 0
    assert flow["tls"]["sni"] == "bad\\xff\\xfe.example"


def test_mixed_tsv_json_and_garbage_in_one_directory(tmp_path: Path) -> None:
    (tmp_path / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row(uid="C1")]))
    ssl_obj = {"_path": "ssl", "ts": 1700000000.1, "uid": "C1", "id.orig_h": "10.0.0.2", "id.orig_p": 51000,
               "id.resp_h": "93.184.216.34", "id.resp_p": 443, "version": "TLSv12", "cipher": "X",
               "server_name": "mixed.example", "established": True}
    (tmp_path / "ssl.json").write_text(json.dumps(ssl_obj) + "\n{not json\n[1,2]\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    flows, problems = read([tmp_path])
    assert [f["tls"]["sni"] for f in flows] == ["mixed.example"]
    assert problems.as_dict()["by_reason"] == {"json_invalid": 1, "json_not_object": 1, "not_a_zeek_log": 1}


def test_corrupted_gzip_keeps_what_came_before(tmp_path: Path) -> None:
    rows = [conn_row(uid=f"C{i}", ts=f"{1700000000 + i}.0") for i in range(2000)]
    blob = gzip.compress(tsv_log("conn", CONN_FIELDS, CONN_TYPES, rows).encode())
    (tmp_path / "trunc.gz").write_bytes(blob[: len(blob) * 2 // 3])  # cut short
    bad = bytearray(blob)
    for i in range(len(bad) // 2, len(bad) // 2 + 64):  # flipped bytes mid-stream
        bad[i] ^= 0x5A
    (tmp_path / "flipped.gz").write_bytes(bytes(bad))
    flows, problems = read([tmp_path / "trunc.gz"])
    assert 0 < len(flows) < 2000
    assert [f["flow_id"] for f in flows] == [f"C{i}" for i in range(len(flows))]
    reasons = problems.as_dict()["by_reason"]
    assert reasons.get("gzip_corrupt") == 1 and sum(reasons.values()) <= 2  # plus at most the cut line
    # Flipped bytes: deflate only notices at the CRC check, after some garbage
    # came out; the lines before the damage are all there and the file is flagged.
    flows, problems = read([tmp_path / "flipped.gz"])
    ids = [f["flow_id"] for f in flows]
    assert ids[:900] == [f"C{i}" for i in range(900)]
    assert problems.as_dict()["by_reason"].get("gzip_corrupt") == 1


def test_missing_path_and_empty_file_are_reported(tmp_path: Path) -> None:
    (tmp_path / "empty.log").write_text("")
    flows, problems = read([tmp_path, tmp_path / "nope"])
    assert flows == []
    assert problems.as_dict()["by_reason"] == {"empty_file": 1, "not_found": 1}


def test_repeated_uid_gets_unique_flow_ids(tmp_path: Path) -> None:
    (tmp_path / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row(), conn_row()]))
    flows, _ = read([tmp_path])
    assert [f["flow_id"] for f in flows] == ["CAbc1", "CAbc1-2"]


# ------------------------------------------------------------------ memory


def _peak_for(tmp_path: Path, n: int) -> int:
    d = tmp_path / f"m{n}"
    d.mkdir()
    with open(d / "conn.log", "w") as fh:
        fh.write(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [], close=False))
        for i in range(n):
            fh.write("\t".join(conn_row(uid=f"C{i}", op=str(1024 + i % 60000))) + "\n")
    # Side logs for a few of them, so the join tables are exercised too.
    (d / "ssl.log").write_text(tsv_log("ssl", SSL_FIELDS, SSL_TYPES, [ssl_row(uid=f"C{i}") for i in range(0, 3000, 97)]))
    tracemalloc.start()
    count = 0
    for _ in read_zeek([str(d)], Problems()):
        count += 1
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == n
    return peak


@pytest.mark.slow
def test_memory_does_not_grow_with_conn_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The repeated-uid window is the only structure that grows with conn.log at
    # all, and it is bounded; shrink it so both sizes here are past it.
    from netan.sources.zeek import convert

    monkeypatch.setattr(convert, "_RECENT_UIDS", 500)
    small, big = _peak_for(tmp_path, 3000), _peak_for(tmp_path, 12000)
    assert big < small * 1.15, (small, big)


def test_joiner_pops_side_entries() -> None:
    j = Joiner()
    j.add("ssl", {"ts": 1.0, "uid": "C1", "id.orig_h": "10.0.0.1", "id.orig_p": 1, "id.resp_h": "10.0.0.2",
                  "id.resp_p": 443, "version": "TLSv12"})
    flow = j.conn_flow((1.0, "C1", "10.0.0.1", 1, "10.0.0.2", 443, "tcp", None, 1.0, 1, 2, "SF", 0, "ShAF", 1, 1,
                        None, None, None))
    assert flow["l7"] == "tls" and not j.ssl
    assert list(j.leftover_flows()) == []


def test_side_records_that_cannot_be_flows_are_counted(tmp_path: Path) -> None:
    rows = [ssl_row(uid="C1"), ssl_row(uid="C2", oh="not-an-address"), ssl_row(uid="-"),
            ssl_row(uid="C4", ts="-")]
    (tmp_path / "ssl.log").write_text(tsv_log("ssl", SSL_FIELDS, SSL_TYPES, rows))
    flows, problems = read([tmp_path])
    assert [f["flow_id"] for f in flows] == ["C1"]
    assert problems.as_dict()["by_reason"] == {"side_bad_id": 1, "side_without_uid": 1,
                                               "side_without_ts_or_id": 1}


def test_file_vanishing_after_discovery_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from netan.sources.zeek import reader

    (tmp_path / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row()]))
    (tmp_path / "ssl.log").write_text(tsv_log("ssl", SSL_FIELDS, SSL_TYPES, [ssl_row()]))
    real = reader.discover

    def discover_then_delete(paths, problems):
        found = real(paths, problems)
        for lf in found:
            os.unlink(lf.path)
        return found

    monkeypatch.setattr(reader, "discover", discover_then_delete)
    flows, problems = read([tmp_path])
    assert flows == []
    assert set(problems.as_dict()["by_reason"]) == {"unreadable: No such file or directory"}


# ------------------------------------------------------------------ fuzz: never raise, always account


def _mutations():
    from hypothesis import strategies as st

    good_conn = tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row(uid=f"C{i}") for i in range(3)])
    good_ssl = tsv_log("ssl", SSL_FIELDS, SSL_TYPES, [ssl_row(uid="C1")])
    good_json = json.dumps({"_path": "conn", "ts": "2023-11-14T22:13:20.5Z", "uid": "CJ", "id.orig_h": "10.0.0.1",
                            "id.orig_p": 1, "id.resp_h": "10.0.0.2", "id.resp_p": 2, "proto": "tcp"}) + "\n"
    base = st.sampled_from([good_conn, good_ssl, good_json * 3]).map(str.encode)
    return st.tuples(base, st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=8)), max_size=6))


def _mutate(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for pos, ins in edits:
        if not buf:
            break
        p = pos % len(buf)
        buf[p : p + len(ins)] = ins  # overwrite a few bytes (may cut lines, tabs, digits, braces)
    return bytes(buf)


def test_fuzzed_logs_never_raise(tmp_path: Path) -> None:
    from hypothesis import HealthCheck, given, settings

    counter = iter(range(10**9))

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(_mutations(), __import__("hypothesis").strategies.booleans())
    def run(case, gz) -> None:
        data, edits = case
        blob = _mutate(data, edits)
        d = tmp_path / f"f{next(counter)}"
        d.mkdir()
        if gz:
            blob = gzip.compress(blob)
            blob = blob[: max(10, len(blob) - (len(edits) * 7))]  # sometimes truncated
        (d / "log").write_bytes(blob)
        flows, problems = read([d])
        for f in flows:
            assert f["community_id"].startswith("1:")
            assert f["ts_end"] >= f["ts"]
            assert 0 <= f["src_port"] <= 65535 and 0 <= f["dst_port"] <= 65535
        json.dumps(flows)  # every record serialises

    run()


def test_overlong_line_is_skipped_not_loaded(tmp_path: Path) -> None:
    huge = "x" * (5 * (1 << 20) // 2)  # 2.5 MiB without a newline inside
    for kind, fields, types, row in (("conn", CONN_FIELDS, CONN_TYPES, conn_row), ("ssl", SSL_FIELDS, SSL_TYPES, ssl_row)):
        d = tmp_path / kind
        d.mkdir()
        text = tsv_log(kind, fields, types, [row(uid="C1")], close=False) + huge + "\n" + "\t".join(row(uid="C2")) + "\n"
        (d / "log").write_text(text)
        flows, problems = read([d])
        assert [f["flow_id"] for f in flows] == ["C1", "C2"]
        assert problems.as_dict()["by_reason"] == {"line_too_long": 1}
        assert problems.as_dict()["examples"][0]["where"] == "line 10"


def test_benchmark_data_tsv_and_json_read_alike(tmp_path: Path) -> None:
    """The benchmark's generator (Zeek 6 spellings: ISO ts, omitted unset fields, ICMP, IPv6) in both formats."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "zeek_bench", Path(__file__).resolve().parents[1] / "benchmarks" / "zeek_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    tsv, js = bench.generate(str(tmp_path), 3000)
    a, pa = read([tsv])
    b, pb = read([js])
    assert pa.count == pb.count == 0
    assert len(a) == 3000 and a == b
    assert {f["proto"] for f in a} == {"tcp", "udp", "icmp", "icmp6"}
    assert any("bytes" in f["not_observable"] for f in a)


# ------------------------------------------------------------------ the conn.log child process


def _messy_conn_dir(tmp_path: Path) -> Path:
    d = tmp_path / "messy"
    d.mkdir()
    rows = [conn_row(uid=f"C{i}", ts=f"{1700000000 + i}.25", op=str(1024 + i)) for i in range(9000)]
    rows[10] = rows[10][:5]  # truncated
    rows[20][3] = "port?"  # bad value
    rows[30][2] = "not-an-ip"  # bad record
    text = tsv_log("conn", CONN_FIELDS, CONN_TYPES, rows)
    (d / "conn.log").write_text(text)
    blob = gzip.compress(text.encode())
    (d / "cut.gz").write_bytes(blob[: len(blob) * 3 // 4])
    (d / "ssl.log").write_text(tsv_log("ssl", SSL_FIELDS, SSL_TYPES, [ssl_row(uid="C5")]))
    return d


@pytest.mark.parametrize("fmt", ["tsv", "json"])
def test_child_process_gives_the_same_records_and_problems(tmp_path: Path, fmt: str) -> None:
    d = _messy_conn_dir(tmp_path)
    if fmt == "json":
        (d / "conn.log").unlink()
        (d / "cut.gz").unlink()
        lines = [json.dumps({"ts": 1700000000 + i, "uid": f"J{i}", "id.orig_h": "10.0.0.1", "id.orig_p": i,
                             "id.resp_h": "10.0.0.2", "id.resp_p": 443, "proto": "tcp", "conn_state": "SF"})
                 for i in range(6000)]
        lines[7] = "{broken"
        (d / "conn.json").write_text("\n".join(lines) + "\n")
    results = []
    for parallel in (False, True):
        p = Problems()
        flows = list(read_zeek([str(d)], p, parallel=parallel))
        results.append((flows, p.as_dict()["by_reason"], sorted((e["file"], e["where"], e["reason"])
                                                               for e in p.as_dict()["examples"])))
    assert results[0] == results[1]
    assert len(results[0][0]) > 5000


def test_child_process_failure_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _messy_conn_dir(tmp_path)
    (d / "cut.gz").unlink()
    monkeypatch.setattr("sys.executable", "/bin/false")  # a child that dies at once
    flows, problems = [], Problems()
    flows = list(read_zeek([str(d)], problems, parallel=True))
    assert [f["flow_id"] for f in flows] == ["C5"]  # only the ssl-only flow
    assert any(r.startswith("conn_worker_died") for r in problems.as_dict()["by_reason"])
    monkeypatch.setattr("sys.executable", str(tmp_path / "no-such-python"))  # cannot start: done in-process
    problems = Problems()
    flows = list(read_zeek([str(d)], problems, parallel=True))
    assert len(flows) == 9000 - 2


def _workers_for(path: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"netan.sources.zeek.worker" in args and str(path).encode() in args:
            found.append(cmdline.parent.name)
    return found


def test_child_process_is_stopped_when_the_consumer_stops(tmp_path: Path) -> None:
    import itertools

    d = _messy_conn_dir(tmp_path)
    gen = read_zeek([str(d / "conn.log")], Problems(), parallel=True)
    assert len(list(itertools.islice(gen, 5))) == 5
    gen.close()
    assert _workers_for(d / "conn.log") == []  # killed and reaped once the reader is closed


def test_json_conn_with_unusual_spellings(tmp_path: Path) -> None:
    """Shippers re-type fields: numbers as strings, ports as "443/tcp", a set as a list; same flow."""
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "conn.log").write_text(tsv_log("conn", CONN_FIELDS, CONN_TYPES, [conn_row()]))
    obj = {"ts": "1700000000.000001", "uid": "CAbc1", "id": {"orig_h": "10.0.0.2", "orig_p": "51000",
                                                             "resp_h": "93.184.216.34", "resp_p": "443/tcp"},
           "proto": "tcp", "service": ["ssl"], "duration": "1.5", "orig_bytes": "517", "resp_bytes": 4000,
           "conn_state": "SF", "missed_bytes": 0, "history": "ShADadFf", "orig_pkts": "10", "resp_pkts": 9}
    bad = dict(obj, uid="CBad", orig_bytes="lots")
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "conn.json").write_text(json.dumps(obj) + "\n" + json.dumps(bad) + "\n")
    (a,), _ = read([tmp_path / "t"])
    (b, c), problems = read([tmp_path / "j"])
    assert a == b
    assert c["bytes_out"] == 0 and "bytes" in c["not_observable"]
    assert problems.as_dict()["by_reason"] == {"bad_value": 1}
