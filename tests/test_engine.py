"""Flow engine on exact packets crafted with scapy: link types, VLANs, IPv6
extension headers, fragments, TCP retransmission and reordering, timeouts."""
from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting, fragment6)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import CookedLinux, Dot1AD, Dot1Q, Ether, GRE
from scapy.packet import Raw

from crafted import write_pcap, write_pcapng
from netan.engine import flow_samples
from netan.flows import FlowConfig

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


def eth(pkt, src=MAC_A, dst=MAC_B):
    return bytes(Ether(src=src, dst=dst) / pkt)


def tcp_session(c="10.0.0.1", s="10.0.0.2", cport=40000, sport=443, data_out=b"hello", data_in=b"world!",
                v6=False):
    """A complete TCP session as IP packets: handshake, one exchange, FIN both ways."""
    ipc = (lambda: IPv6(src=c, dst=s)) if v6 else (lambda: IP(src=c, dst=s))
    ips = (lambda: IPv6(src=s, dst=c)) if v6 else (lambda: IP(src=s, dst=c))
    return [
        ipc() / TCP(sport=cport, dport=sport, flags="S", seq=1000),
        ips() / TCP(sport=sport, dport=cport, flags="SA", seq=5000, ack=1001),
        ipc() / TCP(sport=cport, dport=sport, flags="A", seq=1001, ack=5001),
        ipc() / TCP(sport=cport, dport=sport, flags="PA", seq=1001, ack=5001) / Raw(data_out),
        ips() / TCP(sport=sport, dport=cport, flags="PA", seq=5001, ack=1001 + len(data_out)) / Raw(data_in),
        ipc() / TCP(sport=cport, dport=sport, flags="FA", seq=1001 + len(data_out), ack=5001 + len(data_in)),
        ips() / TCP(sport=sport, dport=cport, flags="FA", seq=5001 + len(data_in), ack=1002 + len(data_out)),
        ipc() / TCP(sport=cport, dport=sport, flags="A", seq=1002 + len(data_out), ack=5002 + len(data_in)),
    ]


def timed(pkts, t0=1_700_000_000.0, step=0.01, wrap=eth):
    return [(t0 + i * step, wrap(p)) for i, p in enumerate(pkts)]


def only_flow(path, cfg=None):
    flows = flow_samples([str(path)], cfg)
    assert len(flows) == 1, [r["community_id"] for r, _ in flows]
    return flows[0]


def check_session(rec, sample, c="10.0.0.1", s="10.0.0.2"):
    assert (rec["src_ip"], rec["dst_ip"], rec["proto"]) == (c, s, "tcp")
    assert (rec["src_port"], rec["dst_port"]) == (40000, 443)
    assert (rec["pkts_out"], rec["pkts_in"]) == (5, 3)
    assert (rec["bytes_out"], rec["bytes_in"]) == (5, 6)
    assert sample.out == b"hello" and sample.inb == b"world!"
    assert rec["tcp"]["state"] == "SF" and rec["tcp"]["handshake"]
    assert rec["end_reason"] == "fin"


@pytest.mark.parametrize("nanos,big", [(False, False), (True, False), (False, True), (True, True)])
def test_ethernet_pcap_variants(tmp_path, nanos, big):
    path = write_pcap(tmp_path / "s.pcap", timed(tcp_session()), nanos=nanos, big_endian=big)
    rec, sample = only_flow(path)
    check_session(rec, sample)
    assert rec["src_mac"] == MAC_A
    assert rec["ts"] == pytest.approx(1_700_000_000.0) and rec["ts_end"] == pytest.approx(1_700_000_000.07)


@pytest.mark.parametrize("wrap,linktype", [
    (lambda p: bytes(p), 101),  # raw IP
    (lambda p: bytes(p), 228),  # LINKTYPE_IPV4
    (lambda p: bytes(CookedLinux(pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x02\0\0\0\0\x0a\0\0",
                                 proto=0x0800) / p), 113),
    (lambda p: bytes(Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=7) / p), 1),
    (lambda p: bytes(Ether(src=MAC_A, dst=MAC_B) / Dot1AD(vlan=100) / Dot1Q(vlan=7) / p), 1),  # QinQ
    (lambda p: b"\x02\0\0\0" + bytes(p), 0),  # BSD loopback, little-endian host
    (lambda p: b"\xff\x03\x00\x21" + bytes(p), 9),  # PPP with address/control
    (lambda p: b"\x21" + bytes(p), 9),  # PPP, protocol field compressed
])
def test_link_types(tmp_path, wrap, linktype):
    path = write_pcap(tmp_path / "l.pcap", timed(tcp_session(), wrap=wrap), linktype=linktype)
    rec, sample = only_flow(path)
    check_session(rec, sample)


def test_vlan_ids_reported(tmp_path):
    wrap = lambda p: bytes(Ether(src=MAC_A, dst=MAC_B) / Dot1AD(vlan=100) / Dot1Q(vlan=7) / p)  # noqa: E731
    rec, _ = only_flow(write_pcap(tmp_path / "q.pcap", timed(tcp_session(), wrap=wrap)))
    assert rec["vlan"] == [100, 7]


def test_linux_cooked_v2(tmp_path):
    def sll2(p):
        # SLL2: proto(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
        return (b"\x08\x00" + b"\0\0" + b"\0\0\0\x02" + b"\0\x01" + b"\x04" + b"\x06"
                + bytes.fromhex("02000000000a") + b"\0\0" + bytes(p))
    rec, sample = only_flow(write_pcap(tmp_path / "c2.pcap", timed(tcp_session(), wrap=sll2), linktype=276))
    check_session(rec, sample)


def test_ipv6_and_extension_headers(tmp_path):
    pkts = tcp_session("2001:db8::1", "2001:db8::2", v6=True)
    pkts = [p.__class__(bytes(p)) for p in pkts]
    ext = []
    for i, p in enumerate(pkts):
        ip = p[IPv6]
        payload = ip.payload
        ip.remove_payload()
        chain = [IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt(), IPv6ExtHdrRouting(addresses=[]),
                 AH(nh=6, payloadlen=4, spi=1, seq=i, icv=b"\0" * 12)][i % 4]
        ext.append(IPv6(src=ip.src, dst=ip.dst) / chain / payload)
    rec, sample = only_flow(write_pcap(tmp_path / "v6.pcap", timed(ext)))
    check_session(rec, sample, "2001:db8::1", "2001:db8::2")


def test_ipv4_fragments_reassembled_as_one_packet(tmp_path):
    big = IP(src="10.0.0.1", dst="10.0.0.2", id=77) / UDP(sport=5353, dport=9999) / Raw(bytes(range(256)) * 12)
    frags = fragment(big, fragsize=512)
    assert len(frags) > 3
    reply = IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=9999, dport=5353) / Raw(b"ok")
    frames = [frags[0], frags[2], frags[1]] + frags[3:] + [reply]  # out of order
    rec, sample = only_flow(write_pcap(tmp_path / "f.pcap", timed(frames)))
    assert (rec["pkts_out"], rec["pkts_in"]) == (1, 1)
    assert rec["bytes_out"] == 256 * 12 and rec["bytes_in"] == 2
    assert sample.out == (bytes(range(256)) * 12)[:4096]


def test_ipv6_fragments(tmp_path):
    big = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=5) / UDP(sport=1, dport=2) / Raw(
        b"x" * 3000)
    frames = fragment6(big, 1280)
    rec, sample = only_flow(write_pcap(tmp_path / "f6.pcap", timed(frames)))
    assert rec["pkts_out"] == 1 and rec["bytes_out"] == 3000 and sample.out == b"x" * 3000


def test_incomplete_fragments_are_kept_not_lost(tmp_path):
    big = IP(src="10.0.0.1", dst="10.0.0.2", id=9) / UDP(sport=1, dport=2) / Raw(b"y" * 2000)
    frags = fragment(big, fragsize=800)
    path = write_pcap(tmp_path / "lost.pcap", timed(frags[:-1]))
    rec, _ = only_flow(path)
    assert rec["pkts_out"] == 1 and rec["src_port"] == 1 and rec["dst_port"] == 2


def test_tcp_retransmission_and_reordering(tmp_path):
    c, s = "10.0.0.1", "10.0.0.2"
    seg = lambda seq, data: IP(src=c, dst=s) / TCP(sport=40000, dport=80, flags="PA", seq=seq, ack=1) / Raw(data)  # noqa
    frames = [
        IP(src=c, dst=s) / TCP(sport=40000, dport=80, flags="S", seq=99),
        IP(src=s, dst=c) / TCP(sport=80, dport=40000, flags="SA", seq=0, ack=100),
        seg(100, b"AAAA"),
        seg(108, b"CCCC"),  # out of order: 104..108 missing for now
        seg(100, b"AAAA"),  # retransmission
        seg(104, b"BBBB"),  # fills the hole
        seg(106, b"BBCC"),  # overlaps both sides: nothing new
    ]
    rec, sample = only_flow(write_pcap(tmp_path / "r.pcap", timed(frames)))
    assert rec["pkts_out"] == 6 and rec["bytes_out"] == 12
    assert sample.out == b"AAAABBBBCCCC" and sample.gaps_out == ()
    assert [m.offset for m in sample.packets] == [0, 8, 4]


def test_sample_gap_is_marked(tmp_path):
    c, s = "10.0.0.1", "10.0.0.2"
    frames = [IP(src=c, dst=s) / TCP(sport=1, dport=2, flags="S", seq=0),
              IP(src=c, dst=s) / TCP(sport=1, dport=2, flags="PA", seq=1) / Raw(b"a" * 10),
              IP(src=c, dst=s) / TCP(sport=1, dport=2, flags="PA", seq=21) / Raw(b"b" * 10)]
    rec, sample = only_flow(write_pcap(tmp_path / "g.pcap", timed(frames)))
    assert sample.gaps_out == ((10, 20),) and rec["sample"]["out"]["gaps"] == [[10, 20]]
    assert rec["tcp"]["missed_bytes"] == 10 and rec["bytes_out"] == 20


def test_originator_is_syn_sender_even_if_synack_first(tmp_path):
    frames = tcp_session()
    frames = [frames[1], frames[0]] + frames[2:]
    rec, _ = only_flow(write_pcap(tmp_path / "o.pcap", timed(frames)))
    assert rec["src_ip"] == "10.0.0.1" and rec["src_port"] == 40000


def test_other_ip_protocols_are_flows_by_address_pair(tmp_path):
    frames = [IP(src="10.0.0.1", dst="10.0.0.2") / GRE() / Raw(b"x" * 20),
              IP(src="10.0.0.2", dst="10.0.0.1") / GRE() / Raw(b"y" * 20),
              IP(src="10.0.0.1", dst="10.0.0.2", proto=50) / Raw(b"\0\0\0\1" + b"e" * 40),  # ESP
              IP(src="10.0.0.1", dst="10.0.0.3", proto=89) / Raw(b"o" * 30),  # OSPF
              IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8) / Raw(b"ping"),
              IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=0) / Raw(b"ping")]
    flows = {r["proto"]: r for r, _ in flow_samples([str(write_pcap(tmp_path / "p.pcap", timed(frames)))])}
    assert set(flows) == {"gre", "esp", "ospf", "icmp"}
    assert (flows["gre"]["pkts_out"], flows["gre"]["pkts_in"]) == (1, 1)
    assert flows["esp"]["src_port"] == 0 and flows["ospf"]["dst_ip"] == "10.0.0.3"
    assert flows["icmp"]["pkts_out"] == 1 and flows["icmp"]["pkts_in"] == 1


def test_idle_and_active_timeouts(tmp_path):
    udp = lambda: IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / Raw(b"z")  # noqa: E731
    frames = [(0.0, eth(udp())), (5.0, eth(udp())), (200.0, eth(udp()))]
    flows = flow_samples([str(write_pcap(tmp_path / "t.pcap", frames))], FlowConfig(idle_timeout=60))
    assert [r["pkts_out"] for r, _ in flows] == [2, 1]
    assert flows[0][0]["end_reason"] == "idle_timeout"
    frames = [(float(t), eth(udp())) for t in range(0, 100, 10)]
    flows = flow_samples([str(write_pcap(tmp_path / "a.pcap", frames))], FlowConfig(active_timeout=35))
    assert [r["pkts_out"] for r, _ in flows] == [4, 4, 2]
    assert {r["end_reason"] for r, _ in flows[:2]} == {"active_timeout"}


def test_flow_limit_expires_oldest_and_counts(tmp_path):
    frames = [(float(i), eth(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + i, dport=53)))
              for i in range(10)]
    flows = flow_samples([str(write_pcap(tmp_path / "m.pcap", frames))], FlowConfig(max_flows=3))
    assert len(flows) == 10
    assert sum(r["end_reason"] == "flow_limit" for r, _ in flows) == 7


def test_port_reuse_after_close_is_a_new_flow(tmp_path):
    frames = tcp_session() + tcp_session()
    flows = flow_samples([str(write_pcap(tmp_path / "reuse.pcap", timed(frames)))])
    assert len(flows) == 2 and all(r["pkts_out"] == 5 for r, _ in flows)


def test_pcapng_interfaces_and_spb(tmp_path):
    a = timed(tcp_session())
    b = timed(tcp_session("10.0.0.5", "10.0.0.6"), wrap=bytes)
    pkts = [(ts, d, 0) for ts, d in a] + [(ts + 0.001, d, 1) for ts, d in b]
    pkts.sort()
    flows = flow_samples([str(write_pcapng(tmp_path / "i.pcapng", pkts, [1, 101]))])
    assert sorted(r["src_ip"] for r, _ in flows) == ["10.0.0.1", "10.0.0.5"]
    spb = write_pcapng(tmp_path / "s.pcapng", [(0, d, 0) for _, d in a], [1], simple=True)
    rec, sample = only_flow(spb)
    assert rec["pkts_out"] == 5 and sample.out == b"hello"


def test_gzip_capture(tmp_path):
    import gzip

    raw = write_pcap(tmp_path / "z.pcap", timed(tcp_session())).read_bytes()
    (tmp_path / "z.pcap.gz").write_bytes(gzip.compress(raw))
    rec, sample = only_flow(tmp_path / "z.pcap.gz")
    check_session(rec, sample)


def test_several_files_are_one_capture(tmp_path):
    frames = timed(tcp_session())
    a = write_pcap(tmp_path / "a.pcap", frames[:4])
    b = write_pcap(tmp_path / "b.pcap", frames[4:])
    flows = flow_samples([str(b), str(a)])  # given out of order: merged by time
    assert len(flows) == 1
    check_session(*flows[0])
