"""Raw DPM exports: SecurityEvent JSON lines (tag + data) and NetworkEvent toString lines."""
from __future__ import annotations

from netan.context import dpm_logs
from netan.context.detect import detect
from netan.context.loader import load_context
from netan.context.model import ConnectEvent, DnsEvent, KeyEvent, ProcessStart, Reject, UnknownEvent

# formats doc section 2.1 example lines, plus malformed ones
SECURITY = """\
{"id":5121,"timeNanos":1717405332950000000,"tag":210024,"level":1,"data":[1,"_androidx_security_master_key_",10213]}
{"id":5122,"timeNanos":1717405331180000000,"tag":210005,"level":1,"data":["com.example.notes:sync",1717405331180,10213,23451,"default:targetSdkVersion=34:complete","9f2ce1"]}
{"id":5123,"timeNanos":1717405333000000000,"tag":210032,"level":3,"data":["k2",-2147483640]}
{"id":5124,"timeNanos":1717405334000000000,"tag":210099,"level":1,"data":[]}
{"id":5125,"timeNanos":1717405335000000000,"tag":210024,"level":2,"data":[0,"k3"]}
{"id":5126,"timeNanos":17174053,"tag":210008,"level":1,"data":[]}
{"id":5121,"timeNanos":1717405332950000000,"tag":210024,"level":1,"data":[1,"_androidx_security_master_key_",10213]}
"""

NETWORK = """\
DnsEvent(upload.example-cdn.net, 203.0.113.45 2001:db8::45, 2, 1717405480017, com.example.notes)
ConnectEvent(203.0.113.45, 443, 1717405480311, com.example.notes)
DnsEvent(nothing.example, NONE, 0, 1717405480400, com.example.notes)
ConnectEvent(203.0.113.45, 99999, 1717405480311, com.example.notes)
garbage
"""


def test_security_lines(tmp_path):
    p = tmp_path / "sec.jsonl"
    p.write_text(SECURITY)
    assert detect(SECURITY.encode())[0] == "dpm_security_log"
    ctx = load_context([str(p)])
    rep = ctx.report[0]
    assert rep["format"] == "dpm_security_log"
    assert [r["line"] for r in rep["rejected"]] == [5, 6]
    assert rep["duplicates"] == 1 and rep["events_read"] == 4 and rep["unknown_event_types"] == {"TAG_210099": 1}
    # no device named and none known: kept unbound, and the report says so
    assert ctx.timelines == {} and any("kept unbound" in w for w in rep["warnings"])
    tl = ctx.unbound
    (k,) = tl.key_events(None, 0, 2e9, uid=10213)
    assert (k.op, k.alias, k.success, k.source) == ("generate", "_androidx_security_master_key_", True, "dpm")
    assert tl.uids_for_package("com.example.notes") == {10213}


def test_security_parse_value():
    evs = list(dpm_logs.parse_value({"id": 1, "timeNanos": 1717405333000000000, "tag": 210032,
                                     "data": ["k2", -2147483640], "device": "SER1"}, 3))
    (viol,) = evs
    assert isinstance(viol, KeyEvent) and viol.op == "integrity_violation" and viol.owner_is_system
    assert viol.device == "SER1"
    (proc,) = dpm_logs.parse_value({"id": 2, "timeNanos": 1717405331180000000, "tag": 210005,
                                    "data": ["com.x:remote", 1, 10300, 5, "s", "h"]}, 1)
    assert isinstance(proc, ProcessStart) and proc.packages == ("com.x",)
    (unk,) = dpm_logs.parse_value({"id": 3, "timeNanos": 1717405331180000000, "tag": 1, "data": []}, 1)
    assert isinstance(unk, UnknownEvent)


def test_network_lines():
    assert detect(NETWORK.encode())[0] == "dpm_network_log"
    out = list(dpm_logs.parse_lines(NETWORK.splitlines()))
    dns, conn, none, bad1, bad2 = out
    assert isinstance(dns, DnsEvent) and dns.addresses == ("203.0.113.45", "2001:db8::45") and dns.total_addresses == 2
    assert isinstance(conn, ConnectEvent) and (conn.dst_ip, conn.dst_port, conn.ts) == ("203.0.113.45", 443, 1717405480.311)
    assert isinstance(none, DnsEvent) and none.addresses == ()
    assert isinstance(bad1, Reject) and bad1.line == 4 and isinstance(bad2, Reject) and bad2.line == 5
