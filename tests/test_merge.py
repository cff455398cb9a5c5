"""DESIGN.md principle 3: partial flow states merge into what one pass builds.

Each corpus capture is split in two at several points; both halves run through
separate engines; ``continue_flows`` joins them; every record and sample must
equal the single pass's.
"""
from __future__ import annotations

import pytest

from netan.engine import Engine
from netan.flows import FlowConfig, continue_flows
from netan.problems import Problems
from netan.sources.pcap import read_packets

CAPTURES = ["foxio-ja4/pcap/tls-handshake.pcapng", "foxio-ja4/pcap/latest.pcapng",
            "pcapdroid/pcap/metadata.pcap", "foxio-ja4/pcap/ssh2.pcapng", "foxio-ja4/pcap/http1.pcapng",
            "foxio-ja4/pcap/ipv6.pcapng", "foxio-ja4/pcap/quic-with-several-tls-frames.pcapng"]


def engine_over(packets, cfg):
    eng = Engine(cfg, Problems())
    for p in packets:
        eng.feed(p)
    return eng


def comparable(states):
    out = []
    for fs in states:
        rec, smp = fs.to_record(), fs.to_sample()
        out.append((rec["community_id"], rec["ts"], rec, smp))
    return sorted(out, key=lambda x: (x[0], x[1]))


@pytest.mark.parametrize("name", CAPTURES)
@pytest.mark.parametrize("cut", [0.25, 0.5, 0.8])
def test_split_capture_merges_to_single_pass(corpus, name, cut):
    cfg = FlowConfig(sample_bytes=1024, max_sizes=16, max_marks=24)
    packets = list(read_packets(str(corpus / name), Problems()))
    whole = engine_over(packets, cfg)
    whole.decoder.flush_fragments()
    whole.table.flush()
    single = whole.table.pop_finished()
    k = int(len(packets) * cut)
    first, second = engine_over(packets[:k], cfg), engine_over(packets[k:], cfg)
    merged = continue_flows(first.table, second.table)
    a, b = comparable(single), comparable(merged)
    assert [x[:2] for x in a] == [x[:2] for x in b]
    for (cid, ts, rec1, smp1), (_, _, rec2, smp2) in zip(a, b):
        assert rec1 == rec2, cid
        assert smp1 == smp2, cid
