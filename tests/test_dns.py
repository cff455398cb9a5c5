"""DNS parsing: dnslib as an independent oracle, malformed input, structure-only detection, Zeek's dns.log."""
from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest
from conftest import zeek_rows
from dnslib import AAAA, CNAME, MX, QTYPE, RR, SRV, TXT, A, DNSRecord
from framing_pcap import sample_from_messages, samples_from_pcap
from hypothesis import given, settings
from hypothesis import strategies as st

from netan.analyzers import dns
from netan.sample import IN, OUT

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def _reply(name: str = "api.example.com") -> DNSRecord:
    q = DNSRecord.question(name, "A")
    r = q.reply()
    r.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME("edge.cdn.example.net"), ttl=300))
    r.add_answer(RR("edge.cdn.example.net", QTYPE.A, rdata=A("203.0.113.7"), ttl=60))
    r.add_answer(RR("edge.cdn.example.net", QTYPE.AAAA, rdata=AAAA("2001:db8::7"), ttl=60))
    r.add_answer(RR(name, QTYPE.MX, rdata=MX("mail.example.com", 10), ttl=600))
    r.add_answer(RR(name, QTYPE.TXT, rdata=TXT(["v=spf1 -all", "second"]), ttl=5))
    r.add_answer(RR("_sip._tcp." + name, QTYPE.SRV, rdata=SRV(10, 5, 5060, "sip.example.com"), ttl=7))
    return r


def test_parse_matches_dnslib() -> None:
    wire = _reply().pack()
    ours = dns.parse_message(wire)
    ref = DNSRecord.parse(wire)
    assert ours is not None and not ours.anomalies and ours.consumed == len(wire)
    assert [q.name for q in ours.questions] == [str(q.qname).rstrip(".") for q in ref.questions]
    assert [(r.name, r.rtype, r.ttl) for r in ours.answers] == [(str(r.rname).rstrip("."), r.rtype, r.ttl) for r in ref.rr]
    data = [r.data for r in ours.answers]
    assert data[:3] == ["edge.cdn.example.net", "203.0.113.7", "2001:db8::7"]
    assert data[3] == "mail.example.com" and data[4] == "v=spf1 -all second" and data[5] == "5060 sip.example.com"


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)


@settings(max_examples=100, deadline=None)
@given(st.lists(_label, min_size=1, max_size=5), st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**31 - 1)), max_size=6))
def test_differential_against_dnslib(labels: list[str], answers: list[tuple[int, int]]) -> None:
    name = ".".join(labels)
    r = DNSRecord.question(name, "A").reply()
    for addr, ttl in answers:
        r.add_answer(RR(name, QTYPE.A, rdata=A(".".join(str(b) for b in addr.to_bytes(4, "big"))), ttl=ttl))
    wire = r.pack()
    ours = dns.parse_message(wire)
    ref = DNSRecord.parse(wire)
    assert ours is not None and not ours.anomalies
    assert [(x.name, x.ttl, x.data) for x in ours.answers] == [(str(y.rname).rstrip("."), y.ttl, str(y.rdata)) for y in ref.rr]


def _header(qd: int = 1, an: int = 0, flags: int = 0x0100) -> bytes:
    return struct.pack(">HHHHHH", 0x1234, flags, qd, an, 0, 0)


@pytest.mark.parametrize(
    "wire,flag",
    [
        (_header() + b"\xc0\x0c" + b"\x00\x01\x00\x01", "compression_loop"),  # pointer to itself
        (_header() + b"\x01a\xc0\x0e\x00\x01\x00\x01", "compression_loop"),  # pointer forward into itself
        (_header(qd=65535), "count_past_end"),
        (_header() + b"\x3fabc", "name_past_end"),
        (_header() + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01", "name_too_long"),
        (_header() + b"\x41abc\x00\x00\x01\x00\x01", "bad_label_type"),
        (_header(an=1, flags=0x8180) + b"\x00\x00\x01\x00\x01" + b"\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x10\x01\x02", "rdata_past_end"),
        (_header(an=40000, flags=0x8180) + b"\x00\x00\x01\x00\x01", "count_past_end"),
        (_header() + b"\x00\x00\x01\x00\x01" + b"junk", "trailing_bytes"),
    ],
    ids=["self-pointer", "forward-pointer", "qdcount", "label-past-end", "name-too-long", "label-type", "rdata", "ancount", "trailing"],
)
def test_malformed_flagged(wire: bytes, flag: str) -> None:
    msg = dns.parse_message(wire)
    assert msg is not None and flag in msg.anomalies


def test_pointer_chain_is_bounded() -> None:
    # 2000 pointers each to the previous one: followed at most MAX_POINTER_JUMPS times.
    body = b"\x01a\x00"
    for i in range(2000):
        body += struct.pack(">H", 0xC000 | (12 + len(body) - 2))
    wire = _header() + body + b"\x00\x01\x00\x01"
    t = time.perf_counter()
    dns.parse_message(wire)
    assert time.perf_counter() - t < 0.5


def test_absurd_counts_cost_little() -> None:
    wire = struct.pack(">HHHHHH", 1, 0x8180, 1, 65535, 65535, 65535) + b"\x00\x00\x01\x00\x01" + (b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04\x01\x02\x03\x04" * 500)
    t = time.perf_counter()
    msg = dns.parse_message(wire)
    assert time.perf_counter() - t < 0.5
    assert msg is not None and len(msg.answers) <= dns.MAX_RRS and "too_many_records" in msg.anomalies


def test_hostile_label_escaped() -> None:
    wire = _header() + b"\x06ev\x1b[il\x05a.b\\c\x00\x00\x01\x00\x01"
    msg = dns.parse_message(wire)
    assert msg is not None and msg.questions[0].name == "ev\\027[il.a\\.b\\\\c"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_parse_never_crashes(data: bytes) -> None:
    dns.parse_message(data)
    dns.looks_like_dns(data)
    dns.looks_like_dns(data, port_hint=True)


def test_random_datagrams_are_not_dns_without_port() -> None:
    claimed = sum(dns.looks_like_dns(os.urandom(n)) is not None for n in range(12, 512) for _ in range(10))
    assert claimed == 0


def test_summarize_udp_and_tcp_and_resolved() -> None:
    q = DNSRecord.question("api.example.com", "A")
    r = _reply()
    r.header.id = q.header.id
    udp = dns.summarize(sample_from_messages([(OUT, q.pack()), (IN, r.pack())], proto="udp", dst=("192.0.2.53", 53)))
    assert udp is not None
    assert udp["queries"][0]["name"] == "api.example.com" and udp["rcode"] == "NOERROR"
    assert {"address": "203.0.113.7", "name": "api.example.com", "ttl": 60} in udp["resolved"]
    tcp_wire = [(OUT, struct.pack(">H", len(q.pack())) + q.pack()), (IN, struct.pack(">H", len(r.pack())) + r.pack())]
    tcp = dns.summarize(sample_from_messages(tcp_wire, dst=("192.0.2.53", 5300)))
    assert tcp is not None and tcp["resolved"] == udp["resolved"]


_zeek_rows = zeek_rows


ZEEK_DNS = [
    ("scripts.base.protocols.dns.flip", "dns53.pcap"),
    ("scripts.base.protocols.dns.multiple-txt-strings", "dns-txt-multiple.pcap"),
    ("scripts.base.protocols.dns.spf", "dns-spf.pcap"),
    ("scripts.base.protocols.dns.duplicate-reponses", "dns-two-responses.pcap"),
    ("scripts.base.protocols.dns.notify", "dns/dns_notify2.pcap"),
    ("scripts.base.protocols.dns.rrsig", "dnssec/rrsig.pcap"),
    ("scripts.base.protocols.dns.nsec", "dnssec/nsec.pcap"),
    ("scripts.base.protocols.dns.loc", "dns/loc-29-trunc.pcap"),
    ("scripts.base.protocols.dns.sshfp", "dns/sshfp-trunc.pcap"),
    ("scripts.base.protocols.dns.zero-responses", "dns-zero-RRs.pcap"),
    ("scripts.policy.protocols.dns.original_case", "dns_original_case.pcap"),
]


@pytest.mark.parametrize("baseline,trace", ZEEK_DNS)
def test_against_zeek_dns_log(baseline: str, trace: str) -> None:
    """Zeek's query names, and every A/AAAA/CNAME/PTR/NS answer we report, in Zeek's answers."""
    zeek = CORPUS / "zeek"
    if not zeek.is_dir():
        pytest.skip(f"shared corpus not at {CORPUS}")
    # The same 5-tuple can be several flows (an idle gap ends one, as Zeek's own timeout
    # does) and baseline times are canonicalised: a row matches one of its tuple's flows.
    samples: dict[tuple, list] = {}
    for s in samples_from_pcap(zeek / "Traces" / trace):
        samples.setdefault((s.src_ip, s.src_port, s.dst_ip, s.dst_port), []).append(s)
        samples.setdefault((s.dst_ip, s.dst_port, s.src_ip, s.src_port), []).append(s)
    compared = 0
    for r in _zeek_rows(zeek / "Baseline" / baseline / "dns.log"):
        if r["opcode"] not in ("0", "-"):
            continue
        infos = [dns.summarize(s) for s in samples[(r["id.orig_h"], int(r["id.orig_p"]), r["id.resp_h"],
                                                      int(r["id.resp_p"]))]]
        infos = [i for i in infos if i is not None]
        assert infos
        if r["query"] != "-":
            infos = [i for i in infos if r["query"].lower() in {q["name"] for q in i["queries"]}]
            assert infos, r["query"]
            compared += 1
        info = infos[0]
        zeek_answers = {a.lower() for a in r["answers"].split(",")} if r["answers"] not in ("-", "(empty)") else set()
        ours = {a["data"] for a in info["answers"] if a["type"] in ("A", "AAAA", "CNAME", "PTR", "NS")}
        assert ours <= zeek_answers, (ours - zeek_answers, r)
        compared += len(ours)
    assert compared >= 1


def test_random_udp_flow_on_dns_port_is_not_dns() -> None:
    claimed = 0
    for _ in range(200):
        grams = [(OUT if i % 2 == 0 else IN, os.urandom(40 + i * 7)) for i in range(20)]
        claimed += dns.summarize(sample_from_messages(grams, proto="udp", dst=("192.0.2.53", 53))) is not None
    assert claimed <= 2
