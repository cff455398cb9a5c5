"""Framing on real captures: ciphertext sent over loopback sockets and recorded with tcpdump.

The captures and their expectations (tests/data/framing/expected.json) come
from scripts/record_framing_fixtures.py. Each flow goes through the protocol
dispatcher and then the cross-flow pass, the way the engine runs them.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from framing_pcap import sample_from_messages, samples_from_pcap
from netan.analyzers import protocols
from netan.analyzers.crossflow import CrossFlowAnalyzer, CrossFlowConfig
from netan.sample import IN, OUT, FlowSample

DATA = Path(__file__).resolve().parent / "data" / "framing"
EXPECTED = json.loads((DATA / "expected.json").read_text())


def run(samples: list[FlowSample], cf: CrossFlowAnalyzer | None = None, t0: float = 1_700_000_000.0) -> list[dict]:
    """Both passes over flows: dispatcher + observe, then finalize."""
    cf = cf or CrossFlowAnalyzer()
    records = []
    for i, s in enumerate(samples):
        r = protocols.analyze(s)
        r.update(flow_id=f"F{i}", ts=t0 + i, src_ip=s.src_ip, dst_ip=s.dst_ip, dst_port=s.dst_port, proto=s.proto)
        cf.observe(r, s)
        records.append(r)
    for r in records:
        r.update(cf.finalize(r))
    return records


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture(name: str) -> None:
    exp = EXPECTED[name]
    records = run(samples_from_pcap(DATA / exp["pcap"]))
    assert records, "the capture holds no flow"
    found: set[str] = set()
    for r in records:
        found |= set(r["framing"])
        json.dumps(r)
        for ev in r["framing_evidence"]:
            assert ev["finding"] in r["framing"] and ev["direction"] in ("out", "in")
    for must in exp["must"]:
        finding, _, scope = must.partition("@")
        assert finding in found, (name, must, found)
        if scope == "crossflow":
            assert any(ev.get("scope") == "flows" for r in records for ev in r["framing_evidence"] if ev["finding"] == finding)
    assert not found & set(exp["must_not"]), (name, found)


def test_benign_captures_identified() -> None:
    l7 = {name: {r["l7"] for r in run(samples_from_pcap(DATA / e["pcap"]))} for name, e in EXPECTED.items() if name.startswith("benign_")}
    assert l7["benign_dns"] == {"dns"} and l7["benign_dns_tcp"] == {"dns"}
    assert l7["benign_h2c_protobuf"] == {"http2"}
    assert l7["benign_http_gzip"] == l7["benign_jpeg_upload"] == l7["benign_json_api"] == {"http"}


def test_jpeg_upload_classified_as_media() -> None:
    rec = next(r for r in run(samples_from_pcap(DATA / "benign_jpeg_upload.pcap")) if r["l7"] == "http")
    assert {u["format"] for u in rec["http"]["uploads"]} >= {"jpeg"}


# ---------------------------------------------------------------- cross-flow unit tests


def _rc4_flows(n: int, key: bytes, rng: random.Random) -> list[FlowSample]:
    flows = []
    for i in range(n):
        pt = json.dumps({"seq": i, "imei": "356938035643809", "sms": "code 4471 " * rng.randrange(1, 6)}).encode()
        ct = Cipher(ARC4(key), mode=None).encryptor().update(pt)
        flows.append(sample_from_messages([(OUT, ct), (IN, b"OK")], src=("10.0.0.2", 40000 + i), dst=("192.0.2.9", 7000)))
    return flows


def test_crossflow_keystream_reuse_rc4() -> None:
    records = run(_rc4_flows(3, random.Random(101).randbytes(16), random.Random(1)))
    assert all("keystream_reuse" in r["framing"] for r in records)
    ev = [e for r in records for e in r["framing_evidence"] if e["scope"] == "flows"]
    assert {e["other_flow"] for e in ev} == {"F0", "F1", "F2"}


def test_crossflow_fresh_keys_claim_nothing() -> None:
    rng = random.Random(2)
    flows = []
    for i in range(5):
        k = rng.randbytes(16)
        n = rng.randbytes(12)
        flows.append(sample_from_messages([(OUT, n + AESGCM(k).encrypt(n, b"x" * rng.randrange(50, 400), None)), (IN, b"OK")], src=("10.0.0.2", 40000 + i)))
    assert all(not r["framing"] for r in run(flows))


def test_crossflow_different_clients_not_compared() -> None:
    key = random.Random(103).randbytes(16)
    flows = _rc4_flows(2, key, random.Random(3))
    other = flows[1]
    flows[1] = FlowSample(other.proto, "10.0.0.99", other.src_port, other.dst_ip, other.dst_port, other.out, other.inb, packets=other.packets)
    assert all("keystream_reuse" not in r["framing"] for r in run(flows))


def test_passive_dns_names_destinations() -> None:
    from dnslib import RR, A, DNSRecord, QTYPE

    q = DNSRecord.question("collector.example", "A")
    rep = q.reply()
    rep.add_answer(RR("collector.example", QTYPE.A, rdata=A("192.0.2.9"), ttl=60))
    dns_flow = sample_from_messages([(OUT, q.pack()), (IN, rep.pack())], proto="udp", dst=("192.0.2.53", 53))
    app_flow = sample_from_messages([(OUT, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")], dst=("192.0.2.9", 80))
    unnamed = sample_from_messages([(OUT, b"hello")], dst=("192.0.2.77", 80))
    records = run([dns_flow, app_flow, unnamed])
    assert records[1]["dst_name"] == "collector.example"
    assert records[2]["dst_name"] is None


def test_passive_dns_picks_the_name_current_at_flow_time() -> None:
    cf = CrossFlowAnalyzer()
    for ts, name in ((100.0, "old.example"), (200.0, "new.example")):
        cf.observe({"flow_id": name, "ts": ts, "l7": "dns", "dns": {"resolved": [{"address": "192.0.2.5", "name": name, "ttl": 30}]}}, sample_from_messages([]))
    assert cf.finalize({"flow_id": "a", "ts": 150.0, "dst_ip": "192.0.2.5"})["dst_name"] == "old.example"
    assert cf.finalize({"flow_id": "b", "ts": 250.0, "dst_ip": "192.0.2.5"})["dst_name"] == "new.example"
    assert cf.finalize({"flow_id": "c", "ts": 50.0, "dst_ip": "192.0.2.5"})["dst_name"] == "old.example"


def test_crossflow_memory_is_bounded() -> None:
    cfg = CrossFlowConfig(max_destinations=50, max_addresses=100, max_flagged_flows=20)
    cf = CrossFlowAnalyzer(cfg)
    rng = random.Random(4)
    key = rng.randbytes(16)
    for i in range(600):
        s = _rc4_flows(1, key, rng)[0]
        s = FlowSample("tcp", "10.0.0.2", 40000 + i, f"198.51.{i % 200}.{i % 7}", 7000, s.out, s.inb, packets=s.packets)
        rec = protocols.analyze(s)
        rec.update(flow_id=f"F{i}", ts=float(i), src_ip=s.src_ip, dst_ip=s.dst_ip, dst_port=7000, proto="tcp",
                   dns={"resolved": [{"address": f"203.0.{i // 256}.{i % 256}", "name": f"n{i}.example", "ttl": 1}]})
        cf.observe(rec, s)
    assert len(cf._heads) <= 50 and len(cf._names) <= 100 and len(cf._flagged) <= 20
    assert all(len(d) <= cfg.heads_per_destination * 2 for d in cf._heads.values())
    assert cf.evicted["destinations"] > 0 and cf.evicted["addresses"] > 0


def _dns_query_flow(name: str, i: int, client: str = "10.0.0.2") -> FlowSample:
    from dnslib import DNSRecord

    return sample_from_messages([(OUT, bytes(DNSRecord.question(name, "TXT").pack()))], proto="udp", src=(client, 50000 + i), dst=("192.0.2.53", 53))


def test_dns_tunnel_in_query_names() -> None:
    import base64

    # A fixed key: with a random one, about 1 run in 1,000 one of the four 48-character
    # labels happens to look too regular, and the test would flake.
    data = Cipher(ARC4(random.Random(11).randbytes(16)), mode=None).encryptor().update(
        b"contacts: alice +4917000000, bob +4917111111; sms: code 4471" * 3)
    names = [base64.b32encode(data[i * 30 : i * 30 + 30]).decode().rstrip("=").lower() + f".s{i}.t.exfil.example" for i in range(4)]
    records = run([_dns_query_flow(n, i) for i, n in enumerate(names)])
    assert all(r["l7"] == "dns" for r in records)
    assert all("encoded_ciphertext" in r["framing"] for r in records)
    ev = next(e for e in records[-1]["framing_evidence"] if e["finding"] == "encoded_ciphertext")
    assert ev["parent_domain"] == "exfil.example" and ev["scope"] == "flows"


def test_dns_hash_lookups_and_cdn_names_not_tunnels() -> None:
    import hashlib

    names = [hashlib.md5(bytes([i])).hexdigest() + ".clo.footprintdns.com" for i in range(6)]
    names += [hashlib.sha1(bytes([i])).hexdigest() + ".avqs.mcafee.com" for i in range(6)]
    names += [(lambda h: h[:32] + "." + h[32:])(hashlib.sha256(bytes([i])).hexdigest()) + ".hash.example.org" for i in range(6)]
    names += ["a21ed24aedde648804e7-228765c84088fef4ff5e70f2710398e9.r17.cf1.rackcdn.com", "thequickbrownfoxjumpsoverthelazydog.example.com"] * 3
    records = run([_dns_query_flow(n, i) for i, n in enumerate(names)])
    assert not any(r["framing"] for r in records)


def test_dns_tunnel_needs_several_names_from_one_client() -> None:
    rng = random.Random(105)
    names = [rng.randbytes(24).hex() + ".t.exfil.example" for _ in range(4)]
    records = run([_dns_query_flow(n, i, client=f"10.0.0.{i + 10}") for i, n in enumerate(names)])
    assert not any(r["framing"] for r in records)


def test_real_query_names_are_not_tunnels() -> None:
    """53k real queries (WRCCDC, Zeek JSON dns.log): none claimed as tunnelling."""
    import gzip

    log = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "zeek-logs-wrccdc-brimdata" / "zeek-json" / "dns.json.gz"
    if not log.is_file():
        pytest.skip(f"shared corpus log not at {log}")
    cf = CrossFlowAnalyzer()
    records = []
    with gzip.open(log, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            d = json.loads(line)
            if not isinstance(d.get("query"), str):
                continue
            r = {"flow_id": f"D{i}", "ts": 0.0, "src_ip": d["id.orig_h"], "l7": "dns", "dns": {"queries": [{"name": d["query"].lower()}], "resolved": []}}
            cf.observe(r, sample_from_messages([]))
            records.append(r)
    assert len(records) > 10000
    assert not [r for r in records if cf.finalize(r).get("framing")]


def test_beacon_one_message_per_connection_pooled() -> None:
    """[u32 len][AES-CBC static IV] sent once per connection: only the pool over flows shows it."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import algorithms, modes

    rng = random.Random(106)
    key, iv = rng.randbytes(16), rng.randbytes(16)
    flows = []
    for i, n in enumerate((1200, 800, 1600, 1000, 700)):
        p = padding.PKCS7(128).padder()
        pt = p.update(json.dumps({"seq": i, "blob": "x" * n}).encode()) + p.finalize()
        ct = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor().update(pt)
        flows.append(sample_from_messages([(OUT, len(ct).to_bytes(4, "big") + ct), (IN, b"\x00" * 8)], src=("10.0.0.2", 41000 + i), dst=("192.0.2.5", 5222)))
    records = run(flows)
    for r in records:
        assert {"length_prefixed", "block_aligned_16"} <= set(r["framing"]), r["framing_evidence"]
        assert all(e["scope"] == "flows" for e in r["framing_evidence"] if e["finding"] == "block_aligned_16")


def test_pool_verdict_survives_eviction() -> None:
    cf = CrossFlowAnalyzer(CrossFlowConfig(pooled_units=3))
    flows = []
    rng = random.Random(107)
    for i in range(6):
        ct = rng.randbytes(16) + rng.randbytes(16 * (5 + i))
        flows.append(sample_from_messages([(OUT, len(ct).to_bytes(2, "big") + ct), (IN, b"ok")], src=("10.0.0.2", 42000 + i)))
    records = run(flows, cf)
    assert all("length_prefixed" in r["framing"] for r in records)


def test_pool_random_lengths_claim_nothing() -> None:
    rng = random.Random(9)
    flows = [sample_from_messages([(OUT, rng.randbytes(rng.randrange(60, 1500))), (IN, b"ok")], src=("10.0.0.2", 43000 + i)) for i in range(40)]
    assert not any(r["framing"] for r in run(flows))
