"""Evidence items from one flow record (network) and from the device timeline (context).

Pure functions: a record (and, for context, a ``DeviceTimeline``) in, a list of
items out. An item is ``{"kind", "source", "weight", "detail"}`` with the kind's
weight from ``analytics.KINDS``; details say what was seen, in plain words,
and never carry payload bytes.
"""
from __future__ import annotations

from typing import Any

from netan.chains.analytics import KINDS
from netan.chains.baseline import Baseline

__all__ = ["item", "network_evidence", "context_evidence", "ENCRYPTED_L7"]

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
    out: list[dict[str, Any]] = []
    p_out = (r.get("payload") or {}).get("out") or {}
    l7 = r.get("l7", "unknown")
    where = _where(r)
    if p_out.get("observable") is False:
        out.append(item("payload_not_observable", f"no payload visible for {where}"))
    transport = r.get("proto") in ("tcp", "udp", "sctp")  # ICMP quotes other packets; its bytes say nothing
    uploads = [u for u in ((r.get("http") or {}).get("uploads") or []) if isinstance(u, dict)]
    enc_bodies = [u for u in uploads if u.get("body_class") == "encrypted"]
    if enc_bodies:
        size = sum(int(u.get("size") or 0) for u in enc_bodies)
        out.append(item("non_tls_encrypted_egress",
                        f"{len(enc_bodies)} cleartext-HTTP {enc_bodies[0].get('method', 'POST')} bod"
                        f"{'y' if len(enc_bodies) == 1 else 'ies'} ({size} bytes) of random-looking data to {where}"))
    elif p_out.get("class") == "encrypted" and l7 not in ENCRYPTED_L7 and r.get("bytes_out", 0) >= 16 and transport:
        ent = p_out.get("entropy")
        ent_txt = f", entropy {ent:.2f} bits/byte over {p_out.get('n', 0)} bytes" if isinstance(ent, (int, float)) else ""
        out.append(item("non_tls_encrypted_egress",
                        f"{r.get('bytes_out', 0)} bytes of random-looking {l7 if l7 != 'unknown' else 'unidentified'}"
                        f" payload to {where}{ent_txt}"))
    decoded = p_out.get("decoded") or {}
    framing = set(r.get("framing") or [])
    if p_out.get("class") == "encoded" and decoded.get("class") == "encrypted":
        framing.add("encoded_ciphertext")
    for finding in sorted(framing):
        kind = FRAMING_KINDS.get(finding)
        if kind:
            out.append(item(kind, f"{finding.replace('_', ' ')} in the flow to {where}"))
    b_out, b_in = r.get("bytes_out", 0), r.get("bytes_in", 0)
    if b_out >= 1024 and b_out >= 4 * max(b_in, 1):
        out.append(item("upload_dominant", f"{b_out} bytes out vs {b_in} in to {where}"))
    if not dns_named and not (r.get("tls") or {}).get("sni") and r.get("proto") in ("tcp", "udp") \
            and r.get("bytes_out", 0) > 0 and l7 != "dns" and r.get("dst_port") not in DNS_PORTS:
        out.append(item("direct_ip", f"{r['dst_ip']} was contacted without a DNS answer naming it"))
    tls = r.get("tls") or {}
    if l7 == "tls":
        cert = tls.get("cert") or {}
        if cert.get("self_signed"):
            out.append(item("self_signed_certificate", f"self-signed certificate '{cert.get('subject', '')}' at {where}"))
        if r.get("dst_port") not in STANDARD_TLS_PORTS:
            out.append(item("tls_on_odd_port", f"TLS on port {r.get('dst_port')} to {where}"))
        if tls.get("client_cert"):
            out.append(item("client_certificate", f"client certificate presented to {where}"))
        if str(tls.get("version", "")).endswith("1.3") and not cert:
            out.append(item("tls13_certificate_hidden", f"TLS 1.3 to {where}: server certificate not visible"))
        sni, name = tls.get("sni"), r.get("dst_name")
        if sni and name and sni.lower() == str(name).lower() and r.get("dst_port") in STANDARD_TLS_PORTS:
            out.append(item("standard_tls_matching_name", f"TLS to {sni}, the name DNS gave for {r['dst_ip']}"))
    elif r.get("dst_port") == 443 and r.get("proto") == "tcp" and l7 not in ENCRYPTED_L7 \
            and r.get("bytes_out", 0) > 0 and (l7 != "unknown" or p_out.get("observable") is not False):
        out.append(item("non_tls_on_443", f"{l7} (not TLS) on port 443 to {where}"))
    if baseline is not None and baseline.knows_subject(subject):
        if baseline.destination_known(subject, r):
            out.append(item("baseline_destination", f"{where} is in the baseline of {subject}"))
        else:
            out.append(item("new_destination", f"{where} is not in the baseline of {subject}"))
        if baseline.fingerprint_known(subject, r):
            out.append(item("baseline_fingerprint", f"TLS fingerprint {tls.get('ja4')} is in the baseline of {subject}"))
    elif baseline is not None:
        out.append(item("new_destination", f"{subject} has no baseline; {where} is new"))
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
