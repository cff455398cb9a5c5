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

import collections
import copy
import hashlib
from array import array
import logging
import re
import struct
from binascii import b2a_base64
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from netan import fastlane
from netan.schema import new_flow_record
from netan.sources.zeek.jsonlog import json_time
from netan.sources.zeek.tsv import canon_text

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
    # quic.log (Zeek >= 6.1): tells QUIC's TLS (UDP) from TCP TLS when conn.log is missing.
    "quic": _ID + (("version", "str"), ("server_name", "str"), ("client_protocol", "str"), ("history", "str")),
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


def normalise(kind: str, v: Any) -> Any:
    """A JSON (or untyped TSV) value as the Python value the typed TSV reader gives."""
    if v is None:
        return None
    if kind == "str":
        if isinstance(v, str):
            return canon_text(v)
        if isinstance(v, list):  # e.g. a set logged as a JSON array
            return ",".join(str(x) for x in v)
        return str(v)
    if kind == "time":
        return json_time(v)
    if kind == "interval" or kind == "float":
        if isinstance(v, bool):
            return None
        f = float(v)
        if f - f != 0.0:  # NaN, inf: Zeek never writes them; JSON output could not carry them
            raise ValueError(f"not a finite number: {v!r}")
        return round(f, 6) if kind == "interval" else f
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
        return [canon_text(x) if isinstance(x, str) else x for x in lst]
    if kind == "list_interval":
        lst = v if isinstance(v, list) else str(v).split(",")
        return [None if x is None else round(float(x), 6) for x in lst]
    return v


# ---------------------------------------------------------------- Community ID

# IANA protocol numbers (https://www.iana.org/assignments/protocol-numbers).
_PROTO_NUM = {"icmp": 1, "tcp": 6, "udp": 17, "icmp6": 58, "sctp": 132}
_PROTO_NAME = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "icmp6", 89: "ospf",
               112: "vrrp", 132: "sctp"}
from netan.community import (  # noqa: E402 - one Community ID implementation for every source
    _PACK_CACHE, _SEED0, _TAIL, _packed, _sha1, community_id_text as community_id)

_conn_record = fastlane.C.conn_record if fastlane.C is not None else None


# ---------------------------------------------------------------- the joiner

#: The contract keys ``conn_flow`` writes itself (``new_flow_record``'s, in its order).
_BUILT_KEYS = frozenset((
    "schema", "flow_id", "community_id", "ts", "ts_end", "proto", "src_ip", "src_port", "dst_ip", "dst_port",
    "src_mac", "bytes_out", "bytes_in", "pkts_out", "pkts_in", "l7", "payload", "framing", "tls", "device",
    "app", "attribution", "app_state",
))
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

#: What a joiner's conn lines took in one segment: side-entry uids, flow-id hashes (bytes),
#: the last flow ids, repeated uids, conn records.
SegmentState = tuple[set[str], "bytes | str", list[str], int, int]

# Shared immutable values (tuples, so no record can change another's).
_CONN_ONLY = ("conn",)
_NOBS_DEFAULT = ("framing", "payload")
_NOBS_FRAMING = ("framing",)
_NAMES_PER_IP = 16  # newest DNS answers kept per address
_NAMES_MAX_IPS = 1 << 20  # addresses with DNS names kept (memory bound on huge dns.logs)
_DNS_FLOW_KEYS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto")
_RECENT_UIDS = 1 << 14  # window for making repeated uids unique (concatenated logs)


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
        self.quic: dict[str, dict[str, Any]] = {}
        self.files: dict[str, list[tuple[Any, ...]]] = {}
        self.names: dict[str, list[tuple[float, str, str]]] = {}
        self._recent: set[str] = set()
        self._repeats: dict[str, int] = {}
        self._l7_cache: dict[Any, tuple[str, str]] = {}
        self.conn_count = 0
        # Whether any side table has entries; set by ``start_conn`` so the
        # per-line path tests one flag instead of four dicts.
        self._side = True
        self._names = True
        self._template = new_flow_record()
        # new_flow_record's keys and defaults, in its order, then the Zeek extras.
        self._conn_template = dict(self._template)
        self._conn_template.update(zeek_uid=None, conn_state=None, history=None, missed_bytes=None, dst_name=None,
                                   http=None, zeek_logs=_CONN_ONLY, not_observable=_NOBS_DEFAULT)
        self._mutable_defaults = tuple(k for k, v in self._conn_template.items()
                                       if k not in _BUILT_KEYS and isinstance(v, (list, dict, set)))
        self.counts = {"ssl_only": 0, "dns_only": 0, "http_only": 0, "side_without_uid": 0,
                       "side_without_ts_or_id": 0, "side_bad_id": 0, "dns_names_dropped": 0}
        self.repeats = 0
        # Set by ``track``: what this joiner's conn lines took, for a run read in segments:
        # uids whose side entries they took, the hash of each flow id (8 bytes a flow; forked
        # processes share the hash seed) and the last flow ids themselves.
        self._taken: set[str] | None = None
        self._window: array | None = None
        self._tail: collections.deque[str] | None = None
        self._fast: tuple | None = None  # conn_record's context (``_fast_context``)
        #: while a pass runs: the C lane that takes plain lines whole (``netan.sources.zeek.lane``)
        self.lane: Any = None

    def track(self) -> None:
        """Remember what the conn lines read from now on take (side entries, flow ids): ``segment_state``."""
        self._taken, self._window, self.repeats, self.conn_count = set(), array("q"), 0, 0
        self._tail = collections.deque(maxlen=_RECENT_UIDS + 1)
        self._fast_context()

    def segment_state(self, spill: str | None = None) -> SegmentState:
        """What the conn lines took since ``track`` (for ``absorb``); with ``spill``, the flow-id hashes
        are written to that file rather than held as bytes (a path in the state instead)."""
        window = self._window or array("q")
        if spill is not None:
            with open(spill, "wb") as fh:
                window.tofile(fh)
        return (self._taken or set(), spill if spill is not None else window.tobytes(), list(self._tail or ()),
                self.repeats, self.conn_count)

    def absorb(self, states: list[SegmentState]) -> bool:
        """Become the joiner that read every segment itself, in order (``states`` from ``segment_state``).

        Exact only when no uid repeats (flow ids would then depend on what an
        earlier segment saw) and no side entry was taken twice; otherwise
        returns False and the run must be read in one piece. Repeats are found
        by the hashes of the flow ids within each stretch of the window
        (``_RECENT_UIDS + 1`` new uids, then it is cleared): two ids with one
        hash only cost a second read, never a wrong flow id.
        """
        import numpy as np

        taken = [st[0] for st in states]
        if any(st[3] for st in states) or len(set().union(*taken)) != sum(len(t) for t in taken):
            return False
        hashes = np.concatenate([np.fromfile(st[1], dtype=np.int64) if isinstance(st[1], str)
                                 else np.frombuffer(st[1], dtype=np.int64) for st in states])
        span = _RECENT_UIDS + 1
        for at in range(0, len(hashes), span):
            part = hashes[at:at + span]
            if len(np.unique(part)) != len(part):
                return False
        tail: list[str] = [fid for st in states for fid in st[2]][-span:]
        keep = len(hashes) % span  # the flow ids since the window was last cleared
        self._recent = set(tail[len(tail) - keep:]) if keep else set()
        self._repeats = {}
        for t in taken:
            for uid in t:
                for table in (self.ssl, self.dns, self.http, self.quic, self.files):
                    table.pop(uid, None)
        self.conn_count = sum(st[4] for st in states)
        self._taken = self._window = self._tail = None
        self._fast_context()
        return True

    def start_conn(self) -> None:
        """Call once the side logs are loaded, before streaming conn.log (a speed hint only)."""
        self._side = bool(self.ssl or self.dns or self.http or self.files or self.quic)
        self._names = bool(self.names)
        self._fast_context()

    def plain_context(self) -> tuple | None:
        """``conn_record``'s context when it alone makes a plain line's record (no DNS names to
        add), else None."""
        return self._fast if not self._names else None

    def lane_context(self) -> tuple[tuple, Callable[[str, str, float], str | None] | None] | None:
        """For the C lane: ``conn_record``'s context and the DNS-name lookup it must call per record
        (``dst_name``, None when no DNS answers were read), or None without a C context."""
        if self._fast is None:
            return None
        return self._fast, (self.dst_name if self._names else None)

    def _fast_context(self) -> None:
        """What ``netan.fastlane``'s ``conn_record`` reads and updates: the plain case of
        ``conn_flow`` (no side-log entry for the uid, a new uid, TCP/UDP/ICMP, every count set)."""
        if fastlane.C is None or self._mutable_defaults:
            self._fast = None
            return
        sides = (self.ssl, self.dns, self.http, self.quic, self.files) if self._side else ()
        self._fast = (self._conn_template, fastlane.RECORD_KEYS, self._recent, _RECENT_UIDS, sides,
                      self._l7_cache, self._window.append if self._window is not None else None,
                      self._tail.append if self._tail is not None else None, not_observable_side())

    # ---- side logs
    def add(self, kind: str, r: dict[str, Any]) -> None:
        """Absorb one normalised record of a side log (``SIDE_FIELDS[kind]`` names)."""
        if kind == "x509":
            self._add_x509(r)
        elif kind == "ssl":
            uid = r.get("uid")
            if not uid:
                self.counts["side_without_uid"] += 1
            elif uid not in self.ssl:  # repeated lines (seen in real logs) keep the first
                self.ssl[uid] = r
        elif kind == "dns":
            self._add_dns(r)
        elif kind == "http":
            uid = r.get("uid")
            if not uid:
                self.counts["side_without_uid"] += 1
            else:
                prev = self.http.get(uid)
                if prev is None:
                    r["transactions"] = 1
                    self.http[uid] = r
                else:
                    prev["transactions"] += 1
        elif kind == "files":
            self._add_files(r)
        elif kind == "quic":
            uid = r.get("uid")
            if not uid:
                self.counts["side_without_uid"] += 1
            elif uid not in self.quic:
                self.quic[uid] = r

    def _add_x509(self, r: dict[str, Any]) -> None:
        fp = r.get("fingerprint")
        cert = _cert_facts(
            r.get("certificate.subject"),
            r.get("certificate.issuer"),
            key_type=r.get("certificate.key_type"),
            key_bits=r.get("certificate.key_length"),
            not_after=_iso(r.get("certificate.not_valid_after")),
            not_before=_iso(r.get("certificate.not_valid_before")),
            serial=r.get("certificate.serial"),
            sig_alg=r.get("certificate.sig_alg"),
            sans=[x for x in (r.get("san.dns") or []) if x is not None],
            fingerprint=fp,
            curve=r.get("certificate.curve"),
            ca=r.get("basic_constraints.ca"),
            ja4x=r.get("ja4x"),
        )
        # 6.x+ layout: keyed by SHA-256 fingerprint (ssl.log cert_chain_fps);
        # the older layout: keyed by the file id (ssl.log cert_chain_fuids).
        for key in (fp, r.get("id")):
            if key and key not in self.certs:
                self.certs[key] = cert

    def _add_dns(self, r: dict[str, Any]) -> None:
        uid = r.get("uid")
        ts = r.get("ts")
        if uid and ts is not None:
            end = ts + (r.get("rtt") or 0.0)
            entry = self.dns.get(uid)
            if entry is None:
                # Only what a DNS-only flow needs: dns.log can be large.
                base = {k: r.get(k) for k in _DNS_FLOW_KEYS}
                self.dns[uid] = [ts, end, base]
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
                lst = self.names.get(a)
                if lst is None:
                    if len(self.names) >= _NAMES_MAX_IPS:
                        self.counts["dns_names_dropped"] += 1  # bounded: answers past the cap are not used
                        continue
                    lst = self.names[a] = []
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
        if len(lst) == 1:  # one answer for the address (the usual case): it is the pick either way
            return lst[0][2]
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
            cert = _cert_facts(s.get("subject"), s.get("issuer"))
        return {
            "version": tls_version(s.get("version")),
            "sni": s.get("server_name"),
            # A list, as in pcap mode (netan.analyzers.tls); ssl.log has the
            # server's choice only.
            "alpn": [s["next_protocol"]] if s.get("next_protocol") else [],
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
        self._recent.add(uid)
        if len(self._recent) > _RECENT_UIDS:
            # Bounded: repeats are only ever near each other (concatenated runs).
            self._recent.clear()
            self._repeats.clear()

    # ---- flows
    def conn_flow(self, c: tuple[Any, ...]) -> dict[str, Any]:
        """One flow record from a conn.log tuple ordered as ``CONN_FIELDS``.

        This is the per-line hot path of Zeek mode, hence the flat code: one
        dict literal in ``new_flow_record``'s key order (a test holds the two
        together), lookups cached, side tables touched only when not empty.
        """
        if self._fast is not None:
            rec = _conn_record(c, self._fast)
            if rec is not None:
                self.conn_count += 1
                if self._names:
                    rec["dst_name"] = self.dst_name(rec["src_ip"], rec["dst_ip"], rec["ts"])
                return rec
        (ts, uid, oh, op, rh, rp, proto, service, duration, ob, rb, state, missed, history,
         opk, rpk, mac, cid, ip_proto) = c
        if ts - ts != 0.0:
            raise ValueError(f"ts {ts!r} is not a finite time")  # NaN or inf ("nan" parses as float)
        if duration is not None and not 0.0 < duration < 1e12:
            duration = None
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
        if pnum == 6 or pnum == 17:
            if not cid:
                # community_id() inlined for the common case (one call per conn line).
                a = _PACK_CACHE.get(oh) or _packed(oh)
                b = _PACK_CACHE.get(rh) or _packed(rh)
                if a < b or (a == b and op <= rp):
                    cid = "1:" + b2a_base64(_sha1(_SEED0 + a + b + _TAIL.pack(pnum, op, rp)).digest(),
                                            newline=False).decode()
                else:
                    cid = "1:" + b2a_base64(_sha1(_SEED0 + b + a + _TAIL.pack(pnum, rp, op)).digest(),
                                            newline=False).decode()
        else:
            if not pnum:
                # "unknown_transport" without Zeek >= 6.1's ip_proto: no protocol
                # number, so no Community ID (CONTRACT.md requires one).
                raise ValueError(f"conn.log proto {proto!r} has no IP protocol number")
            if not cid:
                cid = community_id(pnum, oh, rh, op, rp)
            if pnum != 132:
                op = rp = 0  # CONTRACT.md: ports are 0 for protocols without ports
        # l7 depends on the transport only for "ssl" (DTLS over UDP): cache both.
        pair = self._l7_cache.get(service)
        if pair is None:
            if len(self._l7_cache) > 4096:
                self._l7_cache.clear()
            pair = self._l7_cache[service] = (l7_from_service(service, "tcp"), l7_from_service(service, "udp"))
        l7 = pair[pnum == 17]
        tls = http = None
        entropy_seen = False
        if uid and self._side:
            logs: Any = ["conn"]
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
            q = self.quic.pop(uid, None)
            if q is not None:
                logs.append("quic")
                if l7 in ("unknown", "tls", "dtls"):
                    l7 = "quic"
                if tls is None:
                    tls = _quic_tls(q)
            payload, entropy_seen = self._payload(uid, oh)
            if entropy_seen:
                logs.append("files")
            if self._taken is not None and len(logs) > 1:
                self._taken.add(uid)
            logs = tuple(logs)
        else:
            logs = _CONN_ONLY
            payload = {"out": {"n": 0, "entropy": None, "class": "unknown", "observable": False},
                       "in": {"n": 0, "entropy": None, "class": "unknown", "observable": False}}
        # flow_id: Zeek's uid itself, so Zeek-aware tools join on it directly.
        if uid:
            recent = self._recent
            if uid in recent:
                flow_id = self._repeat_id(uid)
            else:
                recent.add(uid)
                if len(recent) > _RECENT_UIDS:
                    self._remember(uid)
                flow_id = uid
        else:
            flow_id = self._flow_id(uid, ts, (oh, op, rh, rp, proto))
        if self._window is not None:
            self._window.append(hash(flow_id))
            self._tail.append(flow_id)  # type: ignore[union-attr]
        # A copy of a ready-made record plus stores is ~30 % cheaper than a
        # 31-key dict display (which grows its table several times while filling).
        rec = self._conn_template.copy()
        rec["flow_id"] = flow_id
        rec["community_id"] = cid
        rec["ts"] = ts
        rec["ts_end"] = ts + duration if duration else ts
        rec["proto"] = proto
        rec["src_ip"] = oh
        rec["src_port"] = op
        rec["dst_ip"] = rh
        rec["dst_port"] = rp
        rec["src_mac"] = mac
        rec["bytes_out"] = ob or 0
        rec["bytes_in"] = rb or 0
        rec["pkts_out"] = opk or 0
        rec["pkts_in"] = rpk or 0
        rec["l7"] = l7
        rec["payload"] = payload
        rec["framing"] = []
        rec["tls"] = tls
        rec["zeek_uid"] = uid
        rec["conn_state"] = state
        rec["history"] = history
        rec["missed_bytes"] = missed
        if self._names:
            rec["dst_name"] = self.dst_name(oh, rh, ts)
        if http is not None:
            rec["http"] = _http_facts(http)
        rec["zeek_logs"] = logs
        if entropy_seen:
            rec["not_observable"] = _NOBS_FRAMING
        if ob is None or rb is None or opk is None or rpk is None:
            # conn.log leaves sizes unset ("-") when Zeek could not measure them
            # (one-packet UDP, ConnSize not loaded): 0 in the record, flagged here.
            rec["not_observable"] += _unset_counts(ob, rb, opk, rpk)
        for k in self._mutable_defaults:
            # A mutable default a later schema adds must not be shared between records.
            rec[k] = copy.deepcopy(rec[k])
        self.conn_count += 1
        return rec

    def lane_not_observable(self) -> tuple:
        """A plain conn record's not_observable by which sizes were unset (bits 1, 2, 4, 8: orig_bytes,
        resp_bytes, orig_pkts, resp_pkts), as ``conn_flow`` extends it: for the C lane."""
        base = self._conn_template["not_observable"]
        return tuple(base + _unset_counts(*(None if mask >> i & 1 else 0 for i in range(4))) for mask in range(16))

    def _repeat_id(self, uid: str) -> str:
        # The same uid twice only happens in concatenated logs of separate runs
        # (Zeek's test baselines); keep flow ids unique within the run.
        n = self._repeats.get(uid, 1) + 1
        self._repeats[uid] = n
        self.repeats += 1
        return f"{uid}-{n}"

    def leftover_flows(self) -> Iterable[dict[str, Any]]:
        """Flows for ssl/dns/http records whose conn.log line was never seen, by (ts, uid)."""
        uids = set(self.ssl) | set(self.dns) | set(self.http) | set(self.quic)
        pending = []
        for uid in uids:
            s, d, h, q = self.ssl.get(uid), self.dns.get(uid), self.http.get(uid), self.quic.get(uid)
            base = s or q or h or (d[2] if d else None)
            if base is None or base.get("ts") is None or not base.get("id.orig_h") or not base.get("id.resp_h"):
                self.counts["side_without_ts_or_id"] += 1
                continue
            pending.append((base["ts"], uid))
        pending.sort()
        for _, uid in pending:
            s = self.ssl.pop(uid, None)
            d = self.dns.pop(uid, None)
            h = self.http.pop(uid, None)
            q = self.quic.pop(uid, None)
            try:
                yield self._side_flow(uid, s, d, h, q)
            except (OSError, ValueError, TypeError, struct.error):
                # An id.* value that is not an address or port: no flow to make.
                self.counts["side_bad_id"] += 1
        self.ssl.clear()
        self.dns.clear()
        self.http.clear()
        self.quic.clear()

    def _side_flow(self, uid: str, s: dict | None, d: list | None, h: dict | None,
                   q: dict | None = None) -> dict[str, Any]:
        base = s or q or h or d[2]  # type: ignore[index]
        ts = base["ts"]
        ts_end = ts
        logs = []
        tls = None
        if s is not None or q is not None:
            if s is not None:
                logs.append("ssl")
                tls = self.tls(s)
            else:
                tls = _quic_tls(q)  # type: ignore[arg-type]
            version = tls["version"] or ""
            # Without conn.log the transport is inferred from the logs alone:
            # a quic.log record means QUIC (UDP); DTLS runs over UDP; other
            # TLS is taken as TCP.
            if q is not None:
                logs.append("quic")
                proto, l7 = "udp", "quic"
            else:
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
        if pnum not in (6, 17):
            raise ValueError(f"side-log proto {proto!r}")
        cid = community_id(pnum, oh, rh, op, rp)
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
        rec["zeek_logs"] = tuple(logs)
        # No conn.log line: byte and packet counts are unknown, not zero.
        rec["not_observable"] = ("framing", "bytes", "packets") if entropy_seen else (
            "framing", "payload", "bytes", "packets")
        return rec


_CN = re.compile(r"(?:^|,)CN=((?:[^,\\]|\\.)*)")


def _cn(dn: str | None) -> str | None:
    """The first CN of a Zeek (OpenSSL one-line, RFC 2253 order) distinguished name."""
    if not dn:
        return None
    m = _CN.search(dn)
    return m.group(1).replace("\\,", ",") if m else None


def _iso(t: float | None) -> str | None:
    """Certificate validity as ISO-8601 UTC, the spelling pcap mode uses for ``not_after``."""
    if t is None:
        return None
    try:
        return (_EPOCH + timedelta(seconds=int(t))).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError):
        return None


def _cert_facts(subject: str | None, issuer: str | None, **facts: Any) -> dict[str, Any]:
    """``tls.cert`` with pcap mode's field names (netan.analyzers.x509info) where Zeek has them."""
    fp = facts.pop("fingerprint", None)
    cert: dict[str, Any] = {
        "subject": subject,
        "issuer": issuer,
        "subject_cn": _cn(subject),
        "issuer_cn": _cn(issuer),
        # Zeek does not log self-signedness; subject == issuer is the
        # observable proxy (a signature check needs the certificate bytes).
        "self_signed": (subject == issuer) if subject is not None and issuer is not None else None,
        "key_type": None,
        "key_bits": None,
        "not_after": None,
        "not_before": None,
        "serial": None,
        "sig_alg": None,
        "sans": [],
        # x509.log's fingerprint is SHA-256 by default (X509::fingerprint_algorithm).
        "sha256": fp if fp and len(fp) == 64 else None,
        "sha1": fp if fp and len(fp) == 40 else None,
        "curve": None,
        "ca": None,
        "ja4x": None,
    }
    cert.update(facts)
    return cert


def _unset_counts(ob: Any, rb: Any, opk: Any, rpk: Any) -> tuple[str, ...]:
    out: tuple[str, ...] = ()
    if ob is None or rb is None:
        out += ("bytes",)
    if opk is None or rpk is None:
        out += ("packets",)
    return out


def _quic_tls(q: dict[str, Any]) -> dict[str, Any]:
    """The ``tls`` object from quic.log alone (no ssl.log record): SNI and ALPN, nothing guessed."""
    alpn = q.get("client_protocol")
    return {"version": None, "sni": q.get("server_name"), "alpn": [alpn] if alpn else [], "cipher": None,
            "ja4": None, "ja3": None, "ja3s": None, "ja4s": None, "cert": None, "curve": None, "resumed": None,
            "established": None, "validation_status": None, "cert_chain_len": 0,
            "quic_version": q.get("version")}


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
