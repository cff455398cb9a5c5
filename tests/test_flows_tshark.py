"""Differential test: netan's flows against tshark's on real captures.

Same 5-tuples, same packet counts per direction, same payload bytes per
direction. Where tshark flags a retransmission or keep-alive it cannot say how
many of those bytes were new, so there netan's count must lie between
tshark's count without them and with them.

Legitimate differences, excluded with their reason:
- tunnels (GRE, ERSPAN, VXLAN, Geneve): tshark decapsulates and reports the
  inner flows; netan reports the outer flow (by address pair and protocol);
- pcapdroid/invalid_or_unsupported.pcap: a UDP length field larger than its IP
  datagram; tshark trusts the UDP field, netan bounds it by the IP length.
"""
from __future__ import annotations

import pytest

from netan.engine import flow_samples
from tshark_oracle import have_tshark, netan_flows, tshark_flows

pytestmark = pytest.mark.skipif(not have_tshark(), reason="tshark is not installed (make setup installs it)")

TUNNELS = {"gre-erspan-vxlan.pcap", "gre-sample.pcap", "tcpdump-geneve.pcap"}
MALFORMED = {"invalid_or_unsupported.pcap"}


def corpus_captures():
    from conftest import CORPUS

    if not CORPUS.is_dir():
        return []
    names = sorted(CORPUS.glob("foxio-ja4/pcap/*")) + sorted(CORPUS.glob("pcapdroid/pcap/*.pcap"))
    names += sorted(CORPUS.glob("illustrated-*/captures/*.pcap"))
    names += sorted(CORPUS.glob("zeek/Traces/tls/*.pcap"))[:25]
    return [p for p in names if p.name not in TUNNELS | MALFORMED]


@pytest.mark.parametrize("path", corpus_captures(), ids=lambda p: p.name)
def test_flows_match_tshark(path):
    ours = netan_flows([r for r, _ in flow_samples([str(path)])])
    theirs = tshark_flows(str(path))
    assert set(ours) == set(theirs)
    for key, t in theirs.items():
        n = ours[key]
        for ep in set(t["pkts"]) | set(n["pkts"]):
            assert n["pkts"].get(ep, 0) == t["pkts"].get(ep, 0), (key, ep, "packets")
            lo = t["bytes"].get(ep, 0)
            hi = lo + t["resent"].get(ep, 0)
            assert lo <= n["bytes"].get(ep, 0) <= hi, (key, ep, "bytes", lo, hi, n["bytes"].get(ep, 0))
