"""Zeek log records -> netan flow records, joined by ``uid`` (x509 by fingerprint).

Contract: ``Joiner`` first absorbs the small logs (x509, ssl, dns, http, files)
into dicts keyed by ``uid`` (certificates by fingerprint / file id), then
``conn_flow`` turns each streamed conn.log record into one flow record,
*popping* its uid's entries, and ``leftover_flows`` finally turns ssl/dns/http
entries that never met a conn line into flows of their own (partial log sets
are normal).  Memory is therefore bounded by the side logs still waiting for
their conn line plus the certificate and DNS-answer tables, never by the size
of conn.log.  Records are built exactly like ``netan.schema.new_flow_record``
(same keys, same order, then netan's Zeek extras).

What Zeek logs cannot show is marked, never guessed: payload entropy is
``{"n": 0, "entropy": None, "class": "unknown", "observable": False}`` unless
files.log carries ``entropy`` (Zeek's ``policy/frameworks/files/entropy-test-
all-files``), and ``framing`` is listed in ``not_observable``.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import logging
import re
import socket
import struct
from collections import deque
from typing import Any, Iterable

from netan.schema import SCHEMA, new_flow_record

__all__ = [
    "Joiner",
    "tls_version",
    "community_id",
    "l7_from_service",
    "CONN_FIELDS",
    "SIDE_FIELDS",
    "not_observable_side",
]

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- field specs
#: conn.log columns netan reads, in the order of the tuple handed to ``conn_flow``.
#: (name, kind) -- kind says how a JSON value is normalised; TSV uses #types.
CONN_FIELDS: tuple[tuple[str, str], ...] = (
    ("ts", "time"),
    ("uid", "str"),
    ("id.orig_h", "str"),
    ("id.orig_p", "int"),
    ("id.resp_h", "str"),
    ("id.resp_p", "int"),
    ("proto", "str"),
    ("service", "str"),
    ("duration", "interval"),
    ("orig_bytes", "int"),
    ("resp_bytes", "int"),
    ("conn_state", "str"),
    ("missed_bytes", "int"),
    ("history", "str"),
    ("orig_pkts", "int"),
    ("resp_pkts", "int"),
    ("orig_l2_addr", "str"),  # policy/protocols/conn/mac-logging
    ("community_id", "str"),  # policy/protocols/conn/community-id-logging
    ("ip_proto", "int"),  # Zeek >= 6.1
)

_ID = (("ts", "time"), ("uid", "str"), ("id.orig_h", "str"), ("id.orig_p", "int"), ("id.resp_h", "str"), ("id.resp_p", "int"))

#: Columns read from the other logs (JSON normalisation kinds as above).
SIDE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "ssl": _ID
    + (
        ("version", "str"),
        ("cipher", "str"),
        ("curve", "str"),
        ("server_name", "str"),
        ("resumed", "bool"),
        ("established", "bool"),
        ("next_protocol", "str"),
        ("cert_chain_fps", "list"),  # Zeek >= 4.2 (x509 joined by fingerprint)
        ("cert_chain_fuids", "list"),  # older Zeek (x509 joined by file id)
        ("subject", "str"),  # Zeek < 2.6 logged the host cert in ssl.log
        ("issuer", "str"),
        ("validation_status", "str"),
        ("ja4", "str"),  # FoxIO JA4 package
        ("ja4s", "str"),
        ("ja3", "str"),  # salesforce ja3 package
        ("ja3s", "str"),
    ),
    "x509": (
        ("ts", "time"),
        ("fingerprint", "str"),
        ("id", "str"),
        ("certificate.serial", "str"),
        ("certificate.subject", "str"),
        ("certificate.issuer", "str"),
        ("certificate.not_valid_before", "time"),
        ("certificate.not_valid_after", "time"),
        ("certificate.key_alg", "str"),
        ("certificate.sig_alg", "str"),
        ("certificate.key_type", "str"),
        ("certificate.key_length", "int"),
        ("certificate.curve", "str"),
        ("san.dns", "list"),
        ("basic_constraints.ca", "bool"),
        ("host_cert", "bool"),
        ("client_cert", "bool"),
        ("ja4x", "str"),
    ),
    "dns": _ID + (("proto", "str"), ("rtt", "interval"), ("query", "str"), ("answers", "list"), ("TTLs", "list_interval")),
    "http": _ID
    + (
        ("trans_depth", "int"),
        ("method", "str"),
        ("host", "str"),
        ("user_agent", "str"),
        ("status_code", "int"),
        ("request_body_len", "int"),
        ("response_body_len", "int"),
        ("ja4h", "str"),
    ),
    "files": (
        ("ts", "time"),
        ("fuid", "str"),
        ("uid", "str"),  # Zeek >= 5
        ("conn_uids", "list"),  # older Zeek
        ("tx_hosts", "list"),
        ("is_orig", "bool"),
        ("seen_bytes", "int"),
        ("entropy", "float"),
    ),
}

# ---------------------------------------------------------------- normalisers

_TLS_VERSION = re.compile(r"(D?TLS)v(\d)(\d)(.*)")


def tls_version(v: str | None) -> str | None:
    """Zeek's ``TLSv12`` / ``DTLSv10`` / ``TLSv13-draft23`` as ``TLSv1.2`` / ``DTLSv1.0`` / ``TLSv1.3-draft23``.

    Zeek's names come from ``base/protocols/ssl/consts.zeek`` (``version_strings``);
    ``SSLv2``/``SSLv3`` and ``unknown-NNNN`` pass through unchanged.
    """
    if not v:
        return None
    m = _TLS_VERSION.fullmatch(v)
    if m is None:
        return v
    return f"{m.group(1)}v{m.group(2)}.{m.group(3)}{m.group(4)}"


# Zeek's analyzer names (``Analyzer::ANALYZER_*`` lower-cased, as conn.log's
# ``service`` shows them) mapped to netan's l7 vocabulary where they differ.
_SERVICE_L7 = {"ssl": "tls", "krb_tcp": "krb", "spicy_quic": "quic", "gquic": "quic"}


def l7_from_service(service: str | None, proto: str) -> str:
    """``l7`` from conn.log's ``service``: the first analyzer of the list, in netan's names.

    Zeek prefixes a service it later rejected with ``-`` (Zeek 7
    ``DPD::track_removed_services_in_connection``); those are skipped.  TLS over
    UDP is DTLS.
    """
    if not service:
        return "unknown"
    for name in service.split(","):
        name = name.strip().lower()
        if not name or name.startswith("-"):
            continue
        if name == "ssl" and proto == "udp":
            return "dtls"
        return _SERVICE_L7.get(name, name)
    return "unknown"


def not_observable_side() -> dict[str, Any]:
    """A payload side Zeek logs cannot show (CONTRACT.md: ``unknown`` = cannot say)."""
    return {"n": 0, "entropy": None, "class": "unknown", "observable": False}


def _canon_list(v: Any) -> list | None:
    if v is None:
        return None
    if not isinstance(v, list):
        v = [v]
    return v


def normalise(kind: str, v: Any) -> Any:
    """A JSON (or untyped TSV) value as the Python value the typed TSV reader gives."""
    if v is None:
        return None
    if kind == "str":
        if isinstance(v, str):
            return _canon(v)
        if isinstance(v, list):  # e.g. a set logged as a JSON array
            return ",".join(str(x) for x in v)
        return str(v)
    if kind == "time":
        from netan.sources.zeek.jsonlog import json_time

        return json_time(v)
    if kind == "interval":
        return round(float(v), 6) if not isinstance(v, bool) else None
    if kind == "float":
        return float(v) if not isinstance(v, bool) else None
    if kind == "int":
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            return v
        if isinstance(v, str) and "/" in v:  # "443/tcp"
            v = v.split("/", 1)[0]
        return int(v)
    if kind == "bool":
        if isinstance(v, bool):
            return v
        if v in ("T", "true", "True"):
            return True
        if v in ("F", "false", "False"):
            return False
        raise ValueError(f"not a bool: {v!r}")
    if kind == "list":
        lst = v if isinstance(v, list) else str(v).split(",")
        return [_canon(x) if isinstance(x, str) else x for x in lst]
    if kind == "list_interval":
        lst = v if isinstance(v, list) else str(v).split(",")
        return [None if x is None else round(float(x), 6) for x in lst]
    return v


def _canon(s: str) -> str:
    from netan.sources.zeek.tsv import canon_text

    return canon_text(s)


# ---------------------------------------------------------------- Community ID

# IANA protocol numbers (https://www.iana.org/assignments/protocol-numbers).
_PROTO_NUM = {"icmp": 1, "tcp": 6, "udp": 17, "icmp6": 58, "sctp": 132}
_PROTO_NAME = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp", 2: "igmp", 47: "gre", 50: "esp", 51: "ah", 89: "ospf", 112: "vrrp"}
_PACK_CACHE: dict[str, bytes] = {}
_PACK_CACHE_MAX = 1 << 16
_PORTS = struct.Struct("!HH")
_SEED0 = b"\x00\x00"


def _packed(ip: str) -> bytes:
    b = _PACK_CACHE.get(ip)
    if b is None:
        b = socket.inet_pton(socket.AF_INET6 if ":" in ip else socket.AF_INET, ip)
        if len(_PACK_CACHE) >= _PACK_CACHE_MAX:
            _PACK_CACHE.clear()  # bounded: an address scan must not grow it forever
        _PACK_CACHE[ip] = b
    return b


# Community ID spec, "ICMP and ICMPv6": message types that have a reply type
# are hashed as (type, counterpart) and ordered like ports; every other type
# is one-way, hashed as (type, code) without ordering.  Zeek itself puts the
# counterpart (or, for one-way types, the code) in conn.log's id.resp_p.
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_PAIRS = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130,
                139: 140, 140: 139, 144: 145, 145: 144}


def community_id(proto: int, saddr: str, daddr: str, sport: int, dport: int) -> str:
    """Community ID v1, seed 0 (https://github.com/corelight/community-id-spec).

    sha1 over the seed, the two addresses (network order) with the smaller
    (address, port) endpoint first, the protocol, a zero pad byte and, for
    protocols with ports, the two ports; base64, prefixed ``1:``.  For ICMP
    ``sport``/``dport`` are Zeek's id.orig_p/id.resp_p (type and counterpart
    or code).  Written out here because the reference ``communityid`` package
    costs ~30 us per flow (~170 us for ICMP); tests check this against it.
    """
    a, b = _packed(saddr), _packed(daddr)
    if proto == 6 or proto == 17 or proto == 132:
        if (a, sport) > (b, dport):
            a, b, sport, dport = b, a, dport, sport
        tail = _PORTS.pack(sport, dport)
    elif proto == 1 or proto == 58:
        pairs = _ICMP4_PAIRS if proto == 1 else _ICMP6_PAIRS
        other = pairs.get(sport)
        if other is not None:
            dport = other
            if (a, sport) > (b, dport):
                a, b, sport, dport = b, a, dport, sport
        tail = _PORTS.pack(sport & 0xFFFF, dport & 0xFFFF)
    else:
        if a > b:
            a, b = b, a
        tail = b""
    digest = hashlib.sha1(_SEED0 + a + b + bytes((proto & 0xFF, 0)) + tail).digest()
    return "1:" + base64.b64encode(digest).decode("ascii")


# ---------------------------------------------------------------- the joiner

#: The contract keys ``conn_flow`` writes itself (``new_flow_record``'s, in its order).
_BUILT_KEYS = frozenset((
    "schema", "flow_id", "community_id", "ts", "ts_end", "proto", "src_ip", "src_port", "dst_ip", "dst_port",
    "src_mac", "bytes_out", "bytes_in", "pkts_out", "pkts_in", "l7", "payload", "framing", "tls", "device",
    "app", "attribution", "app_state",
))
_NAMES_PER_IP = 16  # newest DNS answers kept per address
_RECENT_UIDS = 1 << 17  # window for making repeated uids unique (concatenated logs)


def _is_ip(s: str) -> bool:
    if ":" in s:
        return True
    return s[:1].isdigit() and s.count(".") == 3 and s.replace(".", "").isdigit()


class Joiner:
    """Side-log tables keyed by uid, and the flows built from them and conn.log."""

    def __init__(self) -> None:
        self.certs: dict[str, dict[str, Any]] = {}
        self.ssl: dict[str, dict[str, Any]] = {}
        self.dns: dict[str, list[Any]] = {}
        self.http: dict[str, dict[str, Any]] = {}
        self.files: dict[str, list[tuple[Any, ...]]] = {}
        self.names: dict[str, list[tuple[float, str, str]]] = {}
        self._recent: set[str] = set()
        self._recent_q: deque[str] = deque()
        self._repeats: dict[str, int] = {}
        self._l7_cache: dict[tuple[Any, str], str] = {}
        self._template = new_flow_record()
        self._schema_extra = {k: v for k, v in self._template.items() if k not in _BUILT_KEYS}
        self.counts = {"conn": 0, "ssl_only": 0, "dns_only": 0, "http_only": 0}

    # ---- side logs
    def add(self, kind: str, r: dict[str, Any]) -> None:
        """Absorb one normalised record of a side log (``SIDE_FIELDS[kind]`` names)."""
        if kind == "x509":
            self._add_x509(r)
        elif kind == "ssl":
            uid = r.get("uid")
            if uid and uid not in self.ssl:  # repeated lines (seen in real logs) keep the first
                self.ssl[uid] = r
        elif kind == "dns":
            self._add_dns(r)
        elif kind == "http":
            uid = r.get("uid")
            if uid:
                prev = self.http.get(uid)
                if prev is None:
                    r["transactions"] = 1
                    self.http[uid] = r
                else:
                    prev["transactions"] += 1
        elif kind == "files":
            self._add_files(r)

    def _add_x509(self, r: dict[str, Any]) -> None:
        subject = r.get("certificate.subject")
        issuer = r.get("certificate.issuer")
        nva = r.get("certificate.not_valid_after")
        nvb = r.get("certificate.not_valid_before")
        cert = {
            "subject": subject,
            "issuer": issuer,
            # Zeek does not log self-signedness; subject == issuer is the
            # observable proxy (a signature check needs the certificate bytes).
            "self_signed": (subject == issuer) if subject is not None and issuer is not None else None,
            "key_type": r.get("certificate.key_type"),
            "key_bits": r.get("certificate.key_length"),
            "not_after": nva,
            "not_before": nvb,
            "serial": r.get("certificate.serial"),
            "sig_alg": r.get("certificate.sig_alg"),
            "curve": r.get("certificate.curve"),
            "san_dns": r.get("san.dns") or [],
            "ca": r.get("basic_constraints.ca"),
            "fingerprint": r.get("fingerprint"),
            "ja4x": r.get("ja4x"),
        }
        # 6.x+ layout: keyed by SHA-256 fingerprint (ssl.log cert_chain_fps);
        # the older layout: keyed by the file id (ssl.log cert_chain_fuids).
        for key in (r.get("fingerprint"), r.get("id")):
            if key and key not in self.certs:
                self.certs[key] = cert

    def _add_dns(self, r: dict[str, Any]) -> None:
        uid = r.get("uid")
        ts = r.get("ts")
        if uid and ts is not None:
            end = ts + (r.get("rtt") or 0.0)
            entry = self.dns.get(uid)
            if entry is None:
                self.dns[uid] = [ts, end, r]
            else:
                entry[0] = min(entry[0], ts)
                entry[1] = max(entry[1], end)
        query, answers = r.get("query"), r.get("answers")
        if not query or not answers or ts is None:
            return
        name = query.lower().rstrip(".")
        client = r.get("id.orig_h") or ""
        for a in answers:
            if isinstance(a, str) and _is_ip(a):
                lst = self.names.setdefault(a, [])
                item = (ts, client, name)
                if item not in lst:
                    lst.append(item)
                    if len(lst) > _NAMES_PER_IP:
                        lst.sort()
                        del lst[0]

    def _add_files(self, r: dict[str, Any]) -> None:
        ent = r.get("entropy")
        if ent is None:
            return
        uids = [r["uid"]] if r.get("uid") else (r.get("conn_uids") or [])
        for uid in uids:
            if uid:
                self.files.setdefault(uid, []).append((r.get("is_orig"), r.get("tx_hosts") or [], r.get("seen_bytes") or 0, ent))

    # ---- lookups
    def dst_name(self, client: str, ip: str, ts: float) -> str | None:
        """The DNS name the client most recently resolved to ``ip`` (any client as fallback)."""
        lst = self.names.get(ip)
        if not lst:
            return None
        best = None
        for pool in ([x for x in lst if x[1] == client], lst):
            if not pool:
                continue
            before = [x for x in pool if x[0] <= ts]
            pick = max(before) if before else min(pool)
            best = pick[2]
            break
        return best

    def tls(self, s: dict[str, Any]) -> dict[str, Any]:
        """The flow's ``tls`` object from its ssl.log record and the host certificate."""
        cert = None
        chain = s.get("cert_chain_fps") or s.get("cert_chain_fuids") or []
        if chain:
            c = self.certs.get(chain[0])
            if c is not None:
                cert = dict(c)
        if cert is None and (s.get("subject") or s.get("issuer")):
            subj, iss = s.get("subject"), s.get("issuer")
            cert = {
                "subject": subj, "issuer": iss,
                "self_signed": (subj == iss) if subj is not None and iss is not None else None,
                "key_type": None, "key_bits": None, "not_after": None, "not_before": None, "serial": None,
                "sig_alg": None, "curve": None, "san_dns": [], "ca": None, "fingerprint": None, "ja4x": None,
            }
        return {
            "version": tls_version(s.get("version")),
            "sni": s.get("server_name"),
            "alpn": s.get("next_protocol"),
            "cipher": s.get("cipher"),
            "ja4": s.get("ja4"),
            "ja3": s.get("ja3"),
            "ja3s": s.get("ja3s"),
            "ja4s": s.get("ja4s"),
            "cert": cert,
            "curve": s.get("curve"),
            "resumed": s.get("resumed"),
            "established": s.get("established"),
            "validation_status": s.get("validation_status"),
            "cert_chain_len": len(chain) if chain else 0,
        }

    def _payload(self, uid: str, orig_h: str) -> tuple[dict[str, Any], bool]:
        entries = self.files.pop(uid, None)
        if not entries:
            return {"out": not_observable_side(), "in": not_observable_side()}, False
        sides = {"out": [0, 0.0], "in": [0, 0.0]}
        for is_orig, tx_hosts, seen, ent in entries:
            if is_orig is None:
                is_orig = orig_h in tx_hosts
            acc = sides["out" if is_orig else "in"]
            acc[0] += seen
            acc[1] += ent * seen
        payload: dict[str, Any] = {}
        for d, (n, wsum) in sides.items():
            if n:
                # files.log entropy is of file bodies only (HTTP, SMTP, ...), so it
                # is a lower bound on what the direction carried; class stays
                # "unknown": entropy alone cannot tell compressed from encrypted.
                payload[d] = {"n": n, "entropy": round(min(8.0, max(0.0, wsum / n)), 6), "class": "unknown",
                              "observable": True, "source": "zeek_files_entropy"}
            else:
                payload[d] = not_observable_side()
        return payload, True

    def _flow_id(self, uid: str | None, ts: float, key: tuple[Any, ...]) -> str:
        if not uid:
            # No uid (a custom log without one): a digest of what identifies the line.
            uid = "z" + hashlib.sha1(repr((ts,) + key).encode()).hexdigest()[:16]
        if uid in self._recent:
            return self._repeat_id(uid)
        self._remember(uid)
        return uid

    def _remember(self, uid: str) -> None:
        # A FIFO window (deque + set: O(1) both ends) bounds memory on huge logs.
        self._recent.add(uid)
        self._recent_q.append(uid)
        if len(self._recent_q) > _RECENT_UIDS:
            old = self._recent_q.popleft()
            self._recent.discard(old)
            self._repeats.pop(old, None)

    # ---- flows
    def conn_flow(self, c: tuple[Any, ...]) -> dict[str, Any]:
        """One flow record from a conn.log tuple ordered as ``CONN_FIELDS``.

        This is the per-line hot path of Zeek mode, hence the flat code: one
        dict literal in ``new_flow_record``'s key order (a test holds the two
        together), lookups cached, side tables touched only when not empty.
        """
        (ts, uid, oh, op, rh, rp, proto, service, duration, ob, rb, state, missed, history,
         opk, rpk, mac, cid, ip_proto) = c
        if proto == "tcp":
            pnum = 6
        elif proto == "udp":
            pnum = 17
        elif proto == "icmp":
            if ":" in oh:
                pnum, proto = 58, "icmp6"
            else:
                pnum = 1
        elif ip_proto is not None:
            pnum = ip_proto
            proto = _PROTO_NAME.get(pnum, str(pnum))
        else:
            pnum = _PROTO_NUM.get(proto or "", 0)
            proto = proto or "unknown"
        if op is None:
            op = 0
        if rp is None:
            rp = 0
        if not cid:
            cid = community_id(pnum, oh, rh, op, rp) if pnum else ""
        if not (pnum == 6 or pnum == 17 or pnum == 132):
            op = rp = 0  # CONTRACT.md: ports are 0 for protocols without ports
        key = (service, proto)
        l7 = self._l7_cache.get(key)
        if l7 is None:
            l7 = self._l7_cache[key] = l7_from_service(service, proto)
            if len(self._l7_cache) > 4096:
                self._l7_cache.clear()
        tls = http = None
        entropy_seen = False
        if uid and (self.ssl or self.dns or self.http or self.files):
            logs = ["conn"]
            s = self.ssl.pop(uid, None)
            if s is not None:
                logs.append("ssl")
                tls = self.tls(s)
                if l7 == "unknown":
                    l7 = "dtls" if proto == "udp" and (tls["version"] or "").startswith("DTLS") else "tls"
            if self.dns.pop(uid, None) is not None:
                logs.append("dns")
                if l7 == "unknown":
                    l7 = "dns"
            http = self.http.pop(uid, None)
            if http is not None:
                logs.append("http")
                if l7 == "unknown":
                    l7 = "http"
            payload, entropy_seen = self._payload(uid, oh)
            if entropy_seen:
                logs.append("files")
        else:
            logs = ["conn"]
            payload = {"out": {"n": 0, "entropy": None, "class": "unknown", "observable": False},
                       "in": {"n": 0, "entropy": None, "class": "unknown", "observable": False}}
        # flow_id: Zeek's uid itself, so Zeek-aware tools join on it directly.
        if uid:
            if uid in self._recent:
                flow_id = self._repeat_id(uid)
            else:
                self._remember(uid)
                flow_id = uid
        else:
            flow_id = self._flow_id(uid, ts, (oh, op, rh, rp, proto))
        rec = {
            "schema": SCHEMA,
            "flow_id": flow_id,
            "community_id": cid,
            "ts": ts,
            "ts_end": round(ts + duration, 6) if duration else ts,
            "proto": proto,
            "src_ip": oh,
            "src_port": op,
            "dst_ip": rh,
            "dst_port": rp,
            "src_mac": mac,
            "bytes_out": ob or 0,
            "bytes_in": rb or 0,
            "pkts_out": opk or 0,
            "pkts_in": rpk or 0,
            "l7": l7,
            "payload": payload,
            "framing": [],
            "tls": tls,
            "device": None,
            "app": None,
            "attribution": None,
            "app_state": "unknown",
            "zeek_uid": uid,
            "conn_state": state,
            "history": history,
            "missed_bytes": missed,
            "dst_name": self.dst_name(oh, rh, ts) if self.names else None,
            "http": _http_facts(http) if http is not None else None,
            "zeek_logs": logs,
            "not_observable": ["framing"] if entropy_seen else ["framing", "payload"],
        }
        if self._schema_extra:
            # Contract fields added to netan.schema after this was written keep their defaults.
            for k, v in self._schema_extra.items():
                rec.setdefault(k, copy.deepcopy(v))
        self.counts["conn"] += 1
        return rec

    def _repeat_id(self, uid: str) -> str:
        # The same uid twice only happens in concatenated logs of separate runs
        # (Zeek's test baselines); keep flow ids unique within the run.
        n = self._repeats.get(uid, 1) + 1
        self._repeats[uid] = n
        return f"{uid}-{n}"

    def leftover_flows(self) -> Iterable[dict[str, Any]]:
        """Flows for ssl/dns/http records whose conn.log line was never seen, by (ts, uid)."""
        uids = set(self.ssl) | set(self.dns) | set(self.http)
        pending = []
        for uid in uids:
            s, d, h = self.ssl.get(uid), self.dns.get(uid), self.http.get(uid)
            base = s or h or (d[2] if d else None)
            if base is None or base.get("ts") is None or not base.get("id.orig_h") or not base.get("id.resp_h"):
                continue
            pending.append((base["ts"], uid))
        pending.sort()
        for _, uid in pending:
            s = self.ssl.pop(uid, None)
            d = self.dns.pop(uid, None)
            h = self.http.pop(uid, None)
            yield self._side_flow(uid, s, d, h)
        self.ssl.clear()
        self.dns.clear()
        self.http.clear()

    def _side_flow(self, uid: str, s: dict | None, d: list | None, h: dict | None) -> dict[str, Any]:
        base = s or h or d[2]  # type: ignore[index]
        ts = base["ts"]
        ts_end = ts
        logs = []
        tls = None
        if s is not None:
            logs.append("ssl")
            tls = self.tls(s)
            version = tls["version"] or ""
            # Without conn.log the transport is inferred from the log alone:
            # DTLS runs over UDP; TLS (and QUIC's TLS, which ssl.log also
            # records) is taken as TCP unless a DTLS version says otherwise.
            proto, l7 = ("udp", "dtls") if version.startswith("DTLS") else ("tcp", "tls")
            self.counts["ssl_only"] += 1
        elif h is not None:
            proto, l7 = "tcp", "http"
            self.counts["http_only"] += 1
        else:
            proto, l7 = (base.get("proto") or "udp"), "dns"
            self.counts["dns_only"] += 1
        if d is not None:
            logs.append("dns")
            ts, ts_end = min(ts, d[0]), max(ts_end, d[1])
        if h is not None:
            logs.append("http")
        oh, op, rh, rp = base["id.orig_h"], base.get("id.orig_p") or 0, base["id.resp_h"], base.get("id.resp_p") or 0
        pnum = _PROTO_NUM.get(proto, 0)
        try:
            cid = community_id(pnum, oh, rh, op, rp)
        except (OSError, ValueError):
            cid = ""
        payload, entropy_seen = self._payload(uid, oh)
        if entropy_seen:
            logs.append("files")
        rec = self._template.copy()
        rec.update(
            flow_id=self._flow_id(uid, ts, (oh, op, rh, rp, proto)),
            community_id=cid,
            ts=ts,
            ts_end=round(ts_end, 6),
            proto=proto,
            src_ip=oh,
            src_port=op,
            dst_ip=rh,
            dst_port=rp,
            l7=l7,
            payload=payload,
            framing=[],
            tls=tls,
        )
        rec["zeek_uid"] = uid
        rec["conn_state"] = None
        rec["history"] = None
        rec["missed_bytes"] = None
        rec["dst_name"] = self.dst_name(oh, rh, ts) if self.names else None
        rec["http"] = _http_facts(h)
        rec["zeek_logs"] = logs
        # No conn.log line: byte and packet counts are unknown, not zero.
        rec["not_observable"] = (["counts", "framing"] if entropy_seen else ["counts", "framing", "payload"])
        return rec


def _http_facts(h: dict[str, Any] | None) -> dict[str, Any] | None:
    """HTTP metadata without payload: no URI, no bodies (privacy: URIs carry data)."""
    if h is None:
        return None
    return {
        "host": h.get("host"),
        "method": h.get("method"),
        "status_code": h.get("status_code"),
        "user_agent": h.get("user_agent"),
        "request_body_len": h.get("request_body_len"),
        "response_body_len": h.get("response_body_len"),
        "transactions": h.get("transactions", 1),
        "ja4h": h.get("ja4h"),
    }
