"""Context that lives inside the capture: PCAPdroid trailers name the app of each
packet; DHCP exchanges bind addresses to MACs. Both reach the join without flags."""
from __future__ import annotations

import json

from click.testing import CliRunner
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from crafted import write_pcap
from netan.cli import main
from test_context_pcapdroid import trailer_frame
from test_engine import tcp_session


def run(args):
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def test_pcapdroid_capture_attributes_its_own_flows(tmp_path):
    frames = [(1_700_000_000 + i * 0.01, trailer_frame(bytes(p), 10123, "Exfil App"))
              for i, p in enumerate(tcp_session(c="10.215.173.1", s="203.0.113.5", data_out=b"x" * 300))]
    pcap = write_pcap(tmp_path / "droid.pcap", frames)
    out = tmp_path / "o"
    run(["analyze", str(pcap), "--out", str(out)])
    (flow,) = [json.loads(x) for x in (out / "flows.jsonl").read_text().splitlines()]
    # PCAPdroid's trailer carries the uid and the app's label, not its package name: the
    # uid is reported, and the package stays unknown until context ties the uid to one
    assert flow["app_uid"] == 10123 and "PCAPdroid uid 10123" in flow["attribution_detail"]
    assert flow["app"] is None and flow["bytes_out"] == 300


def dhcp_exchange(mac: str, ip: str, host: str, t0: float):
    base = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
    chaddr = bytes.fromhex(mac.replace(":", "")) + b"\0" * 10
    req = base / BOOTP(op=1, xid=77, chaddr=chaddr) / DHCP(options=[("message-type", "request"),
                                                                    ("requested_addr", ip), ("hostname", host), "end"])
    ack = (Ether(src="02:00:00:00:00:01", dst=mac) / IP(src="10.9.0.1", dst=ip) / UDP(sport=67, dport=68)
           / BOOTP(op=2, xid=77, yiaddr=ip, chaddr=chaddr)
           / DHCP(options=[("message-type", "ack"), ("lease_time", 3600), "end"]))
    return [(t0, bytes(req)), (t0 + 0.01, bytes(ack))]


def test_dhcp_in_capture_binds_address_to_device(tmp_path):
    phone_mac, router_mac = "3c:28:6d:aa:bb:cc", "02:00:00:00:00:fe"
    frames = dhcp_exchange(phone_mac, "10.9.0.23", "pixel-7", 1_700_000_000.0)
    # the later flow is seen behind a router: its frames carry the router's MAC, not the phone's
    for i, p in enumerate(tcp_session(c="10.9.0.23", s="198.51.100.9")):
        frames.append((1_700_000_010.0 + i * 0.01, bytes(Ether(src=router_mac, dst="02:00:00:00:00:01") / p)))
    pcap = write_pcap(tmp_path / "dhcp.pcap", frames)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "devices.json").write_text(json.dumps({"devices": [{
        "name": "enterprises/LC0/devices/abc", "hardwareInfo": {"serialNumber": "S1"},
        "networkInfo": {"wifiMacAddress": phone_mac}}]}))
    out = tmp_path / "o"
    run(["analyze", str(pcap), "--context", str(ctx), "--out", str(out)])
    flows = [json.loads(x) for x in (out / "flows.jsonl").read_text().splitlines()]
    tcp = [f for f in flows if f["proto"] == "tcp"]
    assert tcp and tcp[0]["device"] == "enterprises/LC0/devices/abc"
    assert tcp[0]["src_mac"] == router_mac
