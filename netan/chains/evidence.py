"""Evidence items from one flow record (network) and from the device timeline (context).

Pure functions: a record (and, for context, a ``DeviceTimeline``) in, a list of
items out. An item is ``{"kind", "source", "weight", "detail"}`` with the kind's
weight from ``analytics.KINDS``; details say what was seen, in plain words,
and never carry payload bytes.
"""
from __future__ import annotations

from typing import Any, Callable

from netan.chains.analytics import KINDS
from netan.chains.baseline import Baseline

__all__ = ["item", "network_evidence", "network_kinds", "context_evidence", "ENCRYPTED_L7"]

ENCRYPTED_L7 = {"tls", "quic", "dtls", "ssh"}
STANDARD_TLS_PORTS = {443, 853, 993, 995, 465, 636, 8443, 5223, 5228, 4433}
FRAMING_KINDS = {
    "length_prefixed": "length_prefixed", "block_aligned_8": "block_aligned", "block_aligned_16": "block_aligned",
    "random_prefix": "random_prefix", "repeated_blocks": "repeated_blocks", "keystream_reuse": "keystream_reuse",
    "rsa_blob": "rsa_blob", "ec_point": "ec_point", "encoded_ciphertext": "encoded_ciphertext",
    "public_key": "public_key_upload",
}
#: how long before an egress a key event still counts: MDM batches arrive late, keys live long.
KEY_WINDOW_S = 6 * 3600.0
INTERACTION_WINDOW_S = 600.0
DNS_PORTS = {53, 853, 5353, 5355}


def item(kind: str, detail: str, weight: float | None = None) -> dict[str, Any]:
    k = KINDS[kind]
    return {"kind": kind, "source": k.source, "weight": k.weight if weight is None else weight, "detail": detail}


def _where(r: dict[str, Any]) -> str:
    name = r.get("dst_name") or (r.get("tls") or {}).get("sni")
    dst = f"{r['dst_ip']}:{r['dst_port']}"
    return f"{name} ({dst})" if name else dst


def network_evidence(r: dict[str, Any], baseline: Baseline | None, subject: str,
                     dns_named: bool) -> list[dict[str, Any]]:
    """What the wire alone says about one flow."""
    found = iter(_network_findings(r, baseline, subject, dns_named))
    return [item(kind, word(r, *facts)) for kind, word, facts in zip(found, found, found)]


def network_kinds(r: dict[str, Any], baseline: Baseline | None, subject: str, dns_named: bool) -> list[str]:
    """The kinds ``network_evidence`` would give, without writing their details (cheap: once per flow)."""
    return _network_findings(r, baseline, subject, dns_named)[::3]


#: How a finding is worded: ``word(record, *facts)``. The words are module-level functions, so
#: asking for kinds only (once per flow) builds no closure and no string.
Wording = Callable[..., str]
#: (kind, its wording, the facts the wording needs beyond the record)
Finding = tuple[str, Wording, tuple]
#: Findings laid end to end: kind, wording, facts, kind, wording, facts, ... (``[::3]`` is the kinds)
Findings = list[Any]


def _w_no_payload(r: dict[str, Any]) -> str:
    return f"no payload visible for {_where(r)}"


def _w_encrypted_bodies(r: dict[str, Any], enc_bodies: list[dict[str, Any]]) -> str:
    size = sum(int(u.get("size") or 0) for u in enc_bodies)
    return (f"{len(enc_bodies)} cleartext-HTTP {enc_bodies[0].get('method', 'POST')} bod"
            f"{'y' if len(enc_bodies) == 1 else 'ies'} ({size} bytes) of random-looking data to {_where(r)}")


def _w_encrypted_payload(r: dict[str, Any], p_out: dict[str, Any], b_out: int, l7: str) -> str:
    ent = p_out.get("entropy")
    ent_txt = f", entropy {ent:.2f} bits/byte over {p_out.get('n', 0)} bytes" if isinstance(ent, (int, float)) else ""
    return f"{b_out} bytes of random-looking {l7 if l7 != 'unknown' else 'unidentified'} payload to {_where(r)}{ent_txt}"


def _w_framing(r: dict[str, Any], finding: str) -> str:
    return f"{finding.replace('_', ' ')} in the flow to {_where(r)}"


def _w_upload_dominant(r: dict[str, Any], b_out: int, b_in: int) -> str:
    return f"{b_out} bytes out vs {b_in} in to {_where(r)}"


def _w_direct_ip(r: dict[str, Any]) -> str:
    return f"{r['dst_ip']} was contacted without a DNS answer naming it"


def _w_self_signed(r: dict[str, Any], cert: dict[str, Any]) -> str:
    return f"self-signed certificate '{cert.get('subject', '')}' at {_where(r)}"


def _w_tls_odd_port(r: dict[str, Any]) -> str:
    return f"TLS on port {r.get('dst_port')} to {_where(r)}"


def _w_client_cert(r: dict[str, Any]) -> str:
    return f"client certificate presented to {_where(r)}"


def _w_tls13(r: dict[str, Any]) -> str:
    return f"TLS 1.3 to {_where(r)}: server certificate not visible"


def _w_matching_name(r: dict[str, Any], sni: str) -> str:
    return f"TLS to {sni}, the name DNS gave for {r['dst_ip']}"


def _w_non_tls_443(r: dict[str, Any], l7: str) -> str:
    return f"{l7} (not TLS) on port 443 to {_where(r)}"


def _w_in_baseline(r: dict[str, Any], subject: str) -> str:
    return f"{_where(r)} is in the baseline of {subject}"


def _w_not_in_baseline(r: dict[str, Any], subject: str) -> str:
    return f"{_where(r)} is not in the baseline of {subject}"


def _w_fingerprint(r: dict[str, Any], ja4: Any, subject: str) -> str:
    return f"TLS fingerprint {ja4} is in the baseline of {subject}"


def _w_no_baseline(r: dict[str, Any], subject: str) -> str:
    return f"{subject} has no baseline; {_where(r)} is new"


# the findings that need no facts beyond the record, built once
_NO_PAYLOAD: Finding = ("payload_not_observable", _w_no_payload, ())
_DIRECT_IP: Finding = ("direct_ip", _w_direct_ip, ())
_TLS_ODD_PORT: Finding = ("tls_on_odd_port", _w_tls_odd_port, ())
_CLIENT_CERT: Finding = ("client_certificate", _w_client_cert, ())
_TLS13_HIDDEN: Finding = ("tls13_certificate_hidden", _w_tls13, ())
_NOTHING: dict[str, Any] = {}  # an absent sub-record, read only (one dict, not a new one per flow)
_TRANSPORTS = ("tcp", "udp", "sctp")  # ICMP quotes other packets; its bytes say nothing
_DIRECT_PROTOS = ("tcp", "udp")


def _network_findings(r: dict[str, Any], baseline: Baseline | None, subject: str,
                      dns_named: bool) -> Findings:
    """The network rules, once: each finding is its kind, how to word it and the facts the words need.

    The wording is deferred (a module-level function and a tuple of facts, not a closure)
    because the chain builder asks every flow for its kinds but only the flows of a chain
    for their details. The common Zeek conn-only record (no payload seen, no TLS, HTTP or
    framing) skips the rules about those fields on one test each.

    For that record `netan zeek`'s C lane applies these rules itself (``_fastlane.c``,
    ``plain_flags``); tests/test_lane.py holds the two to the same flags over every
    protocol, service, port and size boundary, so a change here fails there until the C
    side follows.
    """
    out: Findings = []
    get = r.get
    proto, port = get("proto"), get("dst_port")
    p_out = (get("payload") or _NOTHING).get("out") or _NOTHING
    l7 = get("l7", "unknown")
    p_observable = p_out.get("observable")
    if p_observable is False:
        out += _NO_PAYLOAD
    p_class = p_out.get("class")
    http = get("http")
    b_out, b_in = get("bytes_out", 0), get("bytes_in", 0)
    enc_bodies = [u for u in ((http or {}).get("uploads") or [])
                  if isinstance(u, dict) and u.get("body_class") == "encrypted"] if http else None
    if enc_bodies:
        out += ("non_tls_encrypted_egress", _w_encrypted_bodies, (enc_bodies,))
    elif p_class == "encrypted" and l7 not in ENCRYPTED_L7 and b_out >= 16 and proto in _TRANSPORTS:
        out += ("non_tls_encrypted_egress", _w_encrypted_payload, (p_out, b_out, l7))
    framing = get("framing")
    encoded = p_class == "encoded" and (p_out.get("decoded") or {}).get("class") == "encrypted"
    if framing or encoded:
        found = set(framing or [])
        if encoded:
            found.add("encoded_ciphertext")
        for finding in sorted(found):
            kind = FRAMING_KINDS.get(finding)
            if kind:
                out += (kind, _w_framing, (finding,))
    if b_out >= 1024 and b_out >= 4 * max(b_in, 1):
        out += ("upload_dominant", _w_upload_dominant, (b_out, b_in))
    tls = get("tls") or _NOTHING
    if not dns_named and not tls.get("sni") and proto in _DIRECT_PROTOS \
            and b_out > 0 and l7 != "dns" and port not in DNS_PORTS:
        out += _DIRECT_IP
    if l7 == "tls":
        cert = tls.get("cert") or {}
        if cert.get("self_signed"):
            out += ("self_signed_certificate", _w_self_signed, (cert,))
        if port not in STANDARD_TLS_PORTS:
            out += _TLS_ODD_PORT
        if tls.get("client_cert"):
            out += _CLIENT_CERT
        if str(tls.get("version", "")).endswith("1.3") and not cert:
            out += _TLS13_HIDDEN
        sni, name = tls.get("sni"), get("dst_name")
        if sni and name and sni.lower() == str(name).lower() and port in STANDARD_TLS_PORTS:
            out += ("standard_tls_matching_name", _w_matching_name, (sni,))
    elif port == 443 and proto == "tcp" and l7 not in ENCRYPTED_L7 \
            and b_out > 0 and (l7 != "unknown" or p_observable is not False):
        out += ("non_tls_on_443", _w_non_tls_443, (l7,))
    if baseline is not None:
        if baseline.knows_subject(subject):
            if baseline.destination_known(subject, r):
                out += ("baseline_destination", _w_in_baseline, (subject,))
            else:
                out += ("new_destination", _w_not_in_baseline, (subject,))
            if baseline.fingerprint_known(subject, r):
                out += ("baseline_fingerprint", _w_fingerprint, (tls.get("ja4"), subject))
        else:
            out += ("new_destination", _w_no_baseline, (subject,))
    return out


def context_evidence(r: dict[str, Any], timeline: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """What the device's logs say around one flow; returns (items, key aliases)."""
    out: list[dict[str, Any]] = []
    keys: list[str] = []
    app, t = r.get("app"), float(r["ts"])
    if timeline is None:
        out.append(item("no_context", "no device context covers this flow"))
        return out, keys
    if r.get("proto") == "udp":
        out.append(item("udp_no_connect_events", "UDP: Android's connect events cannot attribute or confirm it"))
    if app:
        events = timeline.key_events(app, t - KEY_WINDOW_S, t)
        made = [e for e in events if e.op in ("generate", "import") and e.success is not False]
        if made:
            last = made[-1]
            ago = t - timeline.to_capture(last.ts)
            keys.extend(sorted({e.alias for e in made}))
            out.append(item("key_generated_before_egress",
                            f"uid {last.uid} ({app}) {last.op}d key '{last.alias}' {ago:.0f} s before the egress"))
        bad = [e for e in events if e.op == "integrity_violation"]
        if bad:
            keys.extend(sorted({e.alias for e in bad}))
            out.append(item("key_integrity_violation", f"key integrity violation for '{bad[-1].alias}'"))
        out.append(item("key_use_not_observable", "whether a key encrypted this data is never logged by Android"))
        state = timeline.app_state(app, t)
        last_touch = timeline.last_user_interaction(app, t)
        recent = last_touch is not None and t - last_touch <= INTERACTION_WINDOW_S
        if state in ("foreground", "visible") and recent:
            out.append(item("foreground_with_interaction", f"{app} was in the foreground and in use"))
        else:
            if state in ("background", "foreground_service"):
                out.append(item("background_state", f"{app} was in the background ({state})"))
            if state == "foreground_service":
                out.append(item("foreground_service", f"{app} ran a foreground service"))
            if state != "unknown" and not recent:
                since = "never seen" if last_touch is None else f"last {t - last_touch:.0f} s before"
                out.append(item("no_user_interaction", f"no user interaction with {app} ({since})"))
    if timeline.screen_state(t) == "non_interactive" or timeline.keyguard_state(t) == "shown":
        out.append(item("screen_off_or_locked", "the screen was off or the keyguard shown"))
        b_out = r.get("bytes_out", 0)
        if b_out >= 1024 and b_out >= 4 * max(r.get("bytes_in", 0), 1):
            out.append(item("upload_while_screen_off", f"{b_out} bytes uploaded while the screen was off"))
    return out, keys
