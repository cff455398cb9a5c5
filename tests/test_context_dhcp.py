"""DHCP lease importers (dnsmasq, ISC dhcpd.leases, Kea CSV) and the binding index."""
from __future__ import annotations

import math

from netan.context import dhcp_leases
from netan.context.detect import detect
from netan.context.loader import load_context
from netan.context.model import AddressBinding, Reject
from netan.context.timeline import BindingIndex

DNSMASQ = """\
1717430400 7c:11:11:11:11:11 192.168.1.23 pixel-8 01:7c:11:11:11:11:11
0 02:aa:bb:cc:dd:ee 192.168.1.24 * *
duid 00:01:00:01:2b:3c:4d:5e:7c:11:11:11:11:11
1717430400 1234567 2001:db8::23 pixel-8 00:01:00:01:2b:3c
1717430400 zz:11:11:11:11:11 192.168.1.25 bad *
garbage line
"""

ISC = """\
# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3
authoring-byte-order little-endian;
server-duid "\\000\\001\\000\\001";

lease 192.168.1.23 {
  starts 1 2024/06/03 09:00:00;
  ends 1 2024/06/03 21:00:00;
  cltt 1 2024/06/03 09:00:00;
  binding state active;
  next binding state free;
  rewind binding state free;
  hardware ethernet 7c:11:11:11:11:11;
  uid "\\001|\\021\\021\\021\\021\\021";
  client-hostname "pixel-8";
}
lease 192.168.1.30 {
  starts epoch 1717405200; # Mon Jun 03 09:00:00 2024
  ends epoch 1717448400; # Mon Jun 03 21:00:00 2024
  binding state active;
  hardware ethernet 02:00:00:00:00:30;
}
lease 192.168.1.31 {
  starts 1 2024/06/03 09:00:00;
  ends 1 2024/06/03 10:00:00;
  binding state free;
  hardware ethernet 02:00:00:00:00:31;
}
lease 192.168.1.32 {
  starts 1 2024/06/03 09:00:00;
  binding state active;
}
lease 192.168.1.33 {
  starts 1 yesterday;
  hardware ethernet 02:00:00:00:00:33;
}
lease 192.168.1.34 {
  starts 1 2024/06/03 09:00:00;
"""

KEA = """\
address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id
192.168.1.23,7c:11:11:11:11:11,01:7c:11:11:11:11:11,3600,1717408800,1,0,0,pixel-8,0,,0
192.168.1.40,,,3600,1717408800,1,0,0,,1,,0
192.168.1.41,02:00:00:00:00:41,,4294967295,4294967295,1,0,0,host&#x2cwith comma,0,,0
192.168.1.42,02:00:00:00:00:42,,3600,notanumber,1,0,0,,0,,0
192.168.1.43,02:00:00:00:00:43
"""


def test_dnsmasq():
    out = list(dhcp_leases.parse_dnsmasq(DNSMASQ.splitlines()))
    good = [b for b in out if isinstance(b, AddressBinding)]
    bad = [r for r in out if isinstance(r, Reject)]
    assert [(b.ip, b.mac, b.hostname, b.end) for b in good] == [
        ("192.168.1.23", "7c:11:11:11:11:11", "pixel-8", 1717430400.0),
        ("192.168.1.24", "02:aa:bb:cc:dd:ee", "", math.inf),
    ]
    assert good[0].start == -math.inf
    assert [r.line for r in bad] == [5, 6]


def test_isc():
    out = list(dhcp_leases.parse_isc(ISC.splitlines()))
    good = [b for b in out if isinstance(b, AddressBinding)]
    bad = [r for r in out if isinstance(r, Reject)]
    assert [(b.ip, b.mac, b.start, b.end, b.hostname) for b in good] == [
        ("192.168.1.23", "7c:11:11:11:11:11", 1717405200.0, 1717448400.0, "pixel-8"),
        ("192.168.1.30", "02:00:00:00:00:30", 1717405200.0, 1717448400.0, ""),
    ]
    assert sorted(r.line for r in bad) == [29, 33, 37]  # no MAC, bad time, not closed


def test_kea():
    out = list(dhcp_leases.parse_kea(KEA.splitlines()))
    good = [b for b in out if isinstance(b, AddressBinding)]
    bad = [r for r in out if isinstance(r, Reject)]
    assert [(b.ip, b.mac, b.start, b.end, b.hostname) for b in good] == [
        ("192.168.1.23", "7c:11:11:11:11:11", 1717405200.0, 1717408800.0, "pixel-8"),
        ("192.168.1.41", "02:00:00:00:00:41", -math.inf, math.inf, "host,with comma"),
    ]
    assert [r.line for r in bad] == [5, 6]


def test_detection(tmp_path):
    assert detect(DNSMASQ.encode())[0] == "dnsmasq_leases"
    assert detect(ISC.encode())[0] == "isc_dhcpd_leases"
    assert detect(KEA.encode())[0] == "kea_leases4"
    files = []
    for name, text in (("leases", DNSMASQ), ("dhcpd.leases", ISC), ("kea.csv", KEA)):
        p = tmp_path / name
        p.write_text(text)
        files.append(str(p))
    ctx = load_context(files)
    assert [r["format"] for r in ctx.report] == ["dnsmasq_leases", "isc_dhcpd_leases", "kea_leases4"]
    assert [r["rejected_total"] for r in ctx.report] == [2, 3, 2]


def test_binding_index_latest_start_wins_and_capture_bindings():
    idx = BindingIndex()
    idx.add(AddressBinding("10.0.0.5", "02:00:00:00:00:01", -math.inf, 2000.0, "", "dnsmasq"))
    idx.add_many([(1500.0, "02:00:00:00:00:02", "10.0.0.5", "phone-b"),
                  {"ts": 3000.0, "mac": "02-00-00-00-00-03", "ip": "10.0.0.5", "lease_s": 100},
                  ("bad", "nomac", "10.0.0.5")])
    assert idx.lookup("10.0.0.5", 1000).mac == "02:00:00:00:00:01"
    assert idx.lookup("10.0.0.5", 1600).mac == "02:00:00:00:00:02"    # capture DHCP supersedes
    assert idx.lookup("10.0.0.5", 3050).mac == "02:00:00:00:00:03"
    assert idx.lookup("10.0.0.5", 3200).mac == "02:00:00:00:00:02"    # lease of :03 ended
    assert idx.lookup("10.0.0.6", 1000) is None
    idx.add(AddressBinding("10.0.0.7", "02:00:00:00:00:07", 100.0, 200.0))
    idx.add(AddressBinding("10.0.0.7", "02:00:00:00:00:08", 100.0, 200.0))
    assert idx.lookup("10.0.0.7", 150) is None  # two clients from the same moment: not guessed
