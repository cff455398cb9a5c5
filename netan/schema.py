"""The flow record: one definition that every source fills and every sink renders.

CONTRACT.md is the public face of these fields; ``FLOW_FIELDS`` is the source of
truth inside the code (Zeek's log records are the model: each field with its
type and a doc line). Sources (pcap, live, Zeek logs) build records with
``new_flow_record``; analyzers and the context join only *add* to them, in
order, like Zeek's ``redef record ... += {}`` enrichment.
"""
from __future__ import annotations

from typing import Any

from netan import SCHEMA

__all__ = ["FLOW_FIELDS", "new_flow_record", "empty_payload_side", "SCHEMA"]

#: (name, JSON type, meaning) -- contract fields first, then netan's own extras.
FLOW_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("schema", "str", "always 'netan/1'"),
    ("flow_id", "str", "unique within the run, stable for the same input"),
    ("community_id", "str", "Community ID v1 (seed 0) of the 5-tuple"),
    ("ts", "float", "epoch seconds of the first packet (capture clock)"),
    ("ts_end", "float", "epoch seconds of the last packet (capture clock)"),
    ("proto", "str", "tcp, udp, icmp, icmp6, or the IP protocol name/number"),
    ("src_ip", "str", "originator address (TCP: SYN sender, else first packet's sender)"),
    ("src_port", "int", "originator port; 0 without ports (ICMP: 0)"),
    ("dst_ip", "str", "responder address"),
    ("dst_port", "int", "responder port; 0 without ports"),
    ("src_mac", "str|null", "originator's L2 address when the link type has one"),
    ("bytes_out", "int", "transport payload bytes originator->responder, retransmissions once"),
    ("bytes_in", "int", "transport payload bytes responder->originator, retransmissions once"),
    ("pkts_out", "int", "packets originator->responder (after IP reassembly)"),
    ("pkts_in", "int", "packets responder->originator (after IP reassembly)"),
    ("l7", "str", "tls, quic, dtls, http, dns, ssh, ... or unknown"),
    ("payload", "object", "{'out': P, 'in': P}: sampled payload science per direction"),
    ("framing", "list[str]", "ciphertext framing findings"),
    ("tls", "object|null", "TLS handshake facts where visible"),
    ("device", "str|null", "device id from context"),
    ("app", "str|null", "Android package name"),
    ("attribution", "str|null", "how app was found: connect_event, dns_event, pcapdroid, ..."),
    ("app_state", "str", "foreground, background or unknown at the flow's start"),
    # ---- netan extras (may be added to freely; see CONTRACT.md) ----
    ("end_reason", "str", "why the flow ended: fin, rst, idle_timeout, active_timeout, flow_limit, end_of_capture"),
    ("tcp", "object|null", "TCP facts: flags seen per direction, handshake, state, missed bytes"),
    ("sizes", "list[int]", "first N payload-packet sizes, signed (+ out, - in)"),
    ("iats", "list[float]", "first N inter-arrival times in seconds (packet i minus packet i-1)"),
    ("vlan", "list[int]", "802.1Q VLAN ids, outermost first"),
    ("sample", "object", "how much of each direction was sampled, and the holes in it"),
    ("icmp", "object", "ICMP/ICMPv6 type and code of the flow's first message"),
    ("dst_name", "str|null", "the responder's host name from passive DNS (or SNI/HTTP Host)"),
    ("framing_evidence", "list[object]", "each framing finding with its direction and numbers"),
    ("http", "object|null", "HTTP/1.x request/response facts (never body bytes)"),
    ("dns", "object|null", "DNS queries and answers"),
    ("ssh", "object|null", "SSH banners and key exchange algorithms"),
    ("zeek_uid", "str|null", "Zeek's connection uid when the flow came from Zeek logs"),
    ("conn_state", "str|null", "Zeek's conn_state (Zeek input)"),
    ("history", "str|null", "Zeek's connection history letters (Zeek input)"),
    ("missed_bytes", "int|null", "bytes Zeek saw missing from the stream (Zeek input)"),
    ("zeek_logs", "list[str]", "which Zeek logs contributed to the record"),
    ("not_observable", "list[str]", "record parts the input cannot show (Zeek: payload, framing)"),
    ("app_uid", "int|null", "Android uid of the app, when context names it"),
    ("attribution_detail", "str|null", "how the app was found, in words"),
    ("context_version", "str|null", "live mode: the version of context the record was joined with"),
)


_FLOW_FIELD_NAMES = frozenset(name for name, _, _ in FLOW_FIELDS)


def empty_payload_side(n: int = 0) -> dict[str, Any]:
    """A payload side before (or without) payload analysis: nothing is claimed."""
    return {"n": n, "entropy": None, "class": "empty" if n == 0 else "unknown"}


def new_flow_record(**fields: Any) -> dict[str, Any]:
    """A flow record with every contract field present; later stages fill the rest."""
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "flow_id": "",
        "community_id": "",
        "ts": 0.0,
        "ts_end": 0.0,
        "proto": "",
        "src_ip": "",
        "src_port": 0,
        "dst_ip": "",
        "dst_port": 0,
        "src_mac": None,
        "bytes_out": 0,
        "bytes_in": 0,
        "pkts_out": 0,
        "pkts_in": 0,
        "l7": "unknown",
        "payload": {"out": empty_payload_side(), "in": empty_payload_side()},
        "framing": [],
        "tls": None,
        "device": None,
        "app": None,
        "attribution": None,
        "app_state": "unknown",
    }
    unknown = fields.keys() - _FLOW_FIELD_NAMES
    if unknown:
        raise KeyError(f"not flow record fields: {sorted(unknown)}")
    record.update(fields)
    return record
