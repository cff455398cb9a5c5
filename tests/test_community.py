"""netan's Community ID against the maintained reference implementation (``communityid``)."""
from __future__ import annotations

import ipaddress
import random

import communityid
import pytest

from netan.community import community_id_v1


def reference(proto, src, sport, dst, dport):
    cid = communityid.CommunityID(seed=0)
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    if proto in (6, 17, 132):
        return cid.calc(communityid.FlowTuple(proto, s, d, sport, dport))
    if proto == 1:
        return cid.calc(communityid.FlowTuple.make_icmp(s, d, sport, dport))
    if proto == 58:
        return cid.calc(communityid.FlowTuple.make_icmp6(s, d, sport, dport))
    return cid.calc(communityid.FlowTuple.make_ip(s, d, proto))


def test_spec_example():
    assert community_id_v1(6, "128.232.110.120", 34855, "66.35.250.204", 80) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="


@pytest.mark.parametrize("proto", [6, 17, 132, 1, 58, 47, 50, 89])
def test_equals_reference_on_random_tuples(proto):
    rng = random.Random(proto)
    for i in range(400):
        v6 = i % 2 == 1 or proto == 58
        bits = 128 if v6 else 32
        src = str(ipaddress.ip_address(rng.getrandbits(bits)) if not v6 else ipaddress.IPv6Address(rng.getrandbits(128)))
        dst = src if i % 37 == 0 else str(ipaddress.IPv6Address(rng.getrandbits(128)) if v6
                                         else ipaddress.IPv4Address(rng.getrandbits(32)))
        if proto in (1, 58):
            sport = rng.choice([0, 3, 8, 11, 128, 129, 133, 135, 136, 255, rng.randrange(256)])
            dport = rng.randrange(16)
        else:
            sport, dport = rng.randrange(65536), rng.randrange(65536)
            if i % 23 == 0:
                dport = sport
        ours = community_id_v1(proto, src, sport, dst, dport)
        assert ours == reference(proto, src, sport, dst, dport), (proto, src, sport, dst, dport)
        assert ours == community_id_v1(proto, ipaddress.ip_address(src).packed, sport,
                                       ipaddress.ip_address(dst).packed, dport)
