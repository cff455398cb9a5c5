"""The three MITRE ATT&CK mobile analytics as data, and the score they give.

Every evidence kind has one row: its source (network or context), its weight,
the analytics it supports, and whether it is *core* for an analytic (an
analytic only matches when at least one of its core kinds is present: AN1716
needs encrypted structured egress, AN1731 symmetric-cipher traces, AN1762
public-key traces), or when one of its ``CORE_COMBOS`` is complete. Mitigating kinds have negative weights and count for every
analytic; gaps ("not observable") weigh 0 and are shown, never hidden.

The score (DESIGN.md principle 5, documented in docs/chains.md):

    score(A)  = clamp(sum of the weights of the chain's evidence that counts for A, 0, 100)
    score     = max score(A) over the analytics A that match
    no match  = min(sum of all weights, 39)   -- at most "info"

so the evidence list alone explains the number.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = ["EvidenceKind", "KINDS", "ANALYTICS", "score_chain", "score_of_kinds", "severity"]

AN1716, AN1731, AN1762 = "AN1716", "AN1731", "AN1762"
ANALYTICS = (AN1716, AN1731, AN1762)
ALL = frozenset(ANALYTICS)


@dataclass(frozen=True)
class EvidenceKind:
    """One row of the tables: what a kind weighs and which analytics it supports."""

    name: str
    source: str  # "network" | "context"
    weight: float
    analytics: frozenset[str]
    core_for: frozenset[str] = frozenset()
    why: str = ""


def _k(name, source, weight, analytics, core=(), why=""):
    return EvidenceKind(name, source, weight, frozenset(analytics), frozenset(core), why)


#: The tables, one row per evidence kind. Weights are points on the 0..100 scale.
KINDS: dict[str, EvidenceKind] = {k.name: k for k in (
    # ---- network: encrypted, structured egress (AN1716) --------------------------------
    _k("non_tls_encrypted_egress", "network", 30, (AN1716, AN1731, AN1762), (AN1716,),
       "random-looking payload sent outside any standard encrypted protocol"),
    _k("encoded_ciphertext", "network", 25, (AN1716, AN1731), (AN1716,),
       "ciphertext wrapped in base64/hex inside a cleartext protocol"),
    _k("length_prefixed", "network", 10, (AN1716, AN1731, AN1762), (),
       "messages carry their own length field: a custom framed protocol"),
    _k("upload_dominant", "network", 10, (AN1716,), (), "the app sends far more than it receives"),
    _k("beaconing", "network", 10, (AN1716,), (), "regular connections in time and size (RITA score)"),
    _k("new_destination", "network", 10, ALL, (), "destination absent from the app's baseline"),
    _k("direct_ip", "network", 5, (AN1716,), (), "connection to an address no DNS answer named"),
    _k("self_signed_certificate", "network", 15, (AN1716, AN1762), (AN1716,),
       "TLS to a server with a self-signed certificate"),
    _k("tls_on_odd_port", "network", 5, (AN1716,), (), "TLS on a port other than the usual ones"),
    _k("non_tls_on_443", "network", 10, (AN1716,), (), "a non-TLS protocol on the HTTPS port"),
    # ---- network: symmetric cipher traces (AN1731) ------------------------------------
    _k("block_aligned", "network", 15, (AN1731,), (AN1731,),
       "message lengths are multiples of a cipher block after a constant header"),
    _k("random_prefix", "network", 5, (AN1731,), (), "a fresh IV/nonce-sized random prefix on every message"),
    _k("repeated_blocks", "network", 25, (AN1731,), (AN1731,),
       "identical 16-byte ciphertext blocks: ECB mode or a static IV with a reused key"),
    _k("keystream_reuse", "network", 30, (AN1731,), (AN1731,),
       "two ciphertexts XOR to plaintext-like bytes: a stream cipher key reused"),
    # ---- network: public-key traces (AN1762) -------------------------------------------
    _k("rsa_blob", "network", 25, (AN1762,), (AN1762,), "an RSA-sized random blob (hybrid envelope)"),
    _k("ec_point", "network", 15, (AN1762,), (AN1762,), "an elliptic-curve public key on the wire"),
    _k("client_certificate", "network", 10, (AN1762,), (), "mutual TLS: the app presents a client certificate"),
    _k("public_key_upload", "network", 15, (AN1762,), (), "a public key (DER/PEM) sent out in cleartext"),
    # ---- network: staging -------------------------------------------------------------
    _k("upload_after_silence", "network", 10, (AN1716,), (), "a burst of upload after a long silence"),
    _k("accumulating_uploads", "network", 10, (AN1716,), (),
       "upload sizes grow with the time since the previous upload (data was staged)"),
    # ---- context ----------------------------------------------------------------------
    _k("key_generated_before_egress", "context", 20, ALL, (),
       "the app's uid generated or imported a keystore key before the egress"),
    _k("key_integrity_violation", "context", 15, ALL, (), "keystore reported an integrity violation"),
    _k("same_key_many_egress", "context", 10, (AN1731,), (), "one key alias precedes many egress flows"),
    _k("background_state", "context", 10, ALL, (), "the app was in the background at the egress"),
    _k("no_user_interaction", "context", 10, ALL, (), "no user interaction with the app before the egress"),
    _k("screen_off_or_locked", "context", 10, ALL, (), "screen off or keyguard shown during the egress"),
    _k("upload_while_screen_off", "context", 15, (AN1716,), (),
       "a batch uploaded while the screen was off (staging)"),
    _k("foreground_service", "context", 5, ALL, (), "the app ran a foreground service"),
    # ---- mitigating -------------------------------------------------------------------
    _k("baseline_destination", "network", -25, ALL, (), "destination is in the app's baseline"),
    _k("baseline_fingerprint", "network", -10, ALL, (), "TLS fingerprint is in the app's baseline"),
    _k("foreground_with_interaction", "context", -20, ALL, (), "the user was using the app"),
    _k("standard_tls_matching_name", "network", -10, ALL, (), "standard TLS whose SNI matches the DNS name"),
    # ---- gaps: weight 0, said out loud --------------------------------------------------
    _k("key_use_not_observable", "context", 0, ALL, (), "Android never logs the use of a key"),
    _k("tls13_certificate_hidden", "network", 0, ALL, (), "TLS 1.3 encrypts the server certificate"),
    _k("udp_no_connect_events", "context", 0, ALL, (), "Android's network logs do not cover UDP"),
    _k("no_context", "context", 0, ALL, (), "no device context covers this traffic"),
    _k("payload_not_observable", "network", 0, ALL, (), "the input carries no payload (e.g. Zeek logs)"),
)}

#: An analytic also matches when every kind of one of its combinations is present:
#: the chain of MITRE's analytic, seen through context, when the egress itself is
#: standard TLS (AN1716: key event -> app out of sight -> upload).
CORE_COMBOS: dict[str, tuple[frozenset[str], ...]] = {
    AN1716: (frozenset({"key_generated_before_egress", "background_state", "upload_dominant"}),
             frozenset({"key_generated_before_egress", "upload_while_screen_off"})),
    AN1762: (frozenset({"client_certificate", "new_destination"}),
             frozenset({"key_generated_before_egress", "public_key_upload"})),
}

SEVERITY = ((40, "info"), (55, "low"), (70, "medium"), (85, "high"), (101, "critical"))


def severity(score: int) -> str:
    return next(name for bound, name in SEVERITY if score < bound)


def score_chain(evidence: list[dict]) -> tuple[int, list[str], dict[str, int]]:
    """(score, matched analytics sorted by score, per-analytic score) from evidence items.

    Each item's kind is looked up in ``KINDS``; an item's own ``weight`` is what
    counts (it equals the table's unless scaled and said so in its detail).
    """
    kinds = {e["kind"] for e in evidence}
    per: dict[str, int] = {}
    for a in ANALYTICS:
        total = sum(e["weight"] for e in evidence if a in KINDS[e["kind"]].analytics)
        per[a] = int(max(0, min(100, round(total))))
    matched = [a for a in ANALYTICS if any(a in KINDS[k].core_for for k in kinds)
               or any(combo <= kinds for combo in CORE_COMBOS.get(a, ()))]
    matched.sort(key=lambda a: -per[a])
    if matched:
        return per[matched[0]], matched, per
    total = sum(e["weight"] for e in evidence)
    return int(max(0, min(39, round(total)))), [], per


@lru_cache(maxsize=4096)
def score_of_kinds(kinds: frozenset[str]) -> int:
    """The score ``score_chain`` gives a chain whose evidence has exactly these kinds.

    A chain keeps one item per kind, and every item weighs what its kind does in ``KINDS``
    (``evidence.item`` is never given another weight), so the kinds alone fix the score:
    the chain builder decides a candidate on its kinds before it words any detail. The
    items are summed in the order a chain lists them. Few distinct sets occur: cached.
    """
    items = sorted(({"kind": k, "weight": KINDS[k].weight} for k in kinds),
                   key=lambda e: (-abs(e["weight"]), e["kind"]))
    return score_chain(items)[0]
