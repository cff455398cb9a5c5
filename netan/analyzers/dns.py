"""DNS messages (RFC 1035, with RFC 3596 AAAA, RFC 2782 SRV, RFC 9460 SVCB/HTTPS).

Contract: ``parse_message(data)`` parses one DNS message as far as it is valid
and flags what is not (counts past the end, compression loops, labels or names
too long, RDATA past the end), with bounded work whatever the input;
``summarize(sample)`` gives the flow's ``dns`` field: queries, answers and the
address -> name pairs that feed the passive-DNS map. Works over UDP datagrams
and DNS-over-TCP (RFC 7766 §8: 2-byte length prefix). Names are escaped.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from netan.sample import IN, OUT, FlowSample

__all__ = [
    "DnsQuestion", "DnsRecord", "DnsMessage", "parse_message", "read_name", "looks_like_dns",
    "summarize", "encoded_subdomain", "parent_domain", "TYPE_NAMES", "DNS_PORTS",
]

#: IANA DNS RR TYPEs we name (the rest are reported by number).
TYPE_NAMES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS",
    44: "SSHFP", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 52: "TLSA",
    64: "SVCB", 65: "HTTPS", 99: "SPF", 249: "TKEY", 250: "TSIG", 251: "IXFR",
    252: "AXFR", 255: "ANY", 257: "CAA",
}
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
#: DNS, mDNS (RFC 6762), LLMNR (RFC 4795): same message format.
DNS_PORTS = frozenset((53, 5353, 5355))
MAX_RRS = 64  # records parsed per section
MAX_POINTER_JUMPS = 16
MAX_NAME = 255  # RFC 1035 §2.3.4, in wire octets
MAX_TEXT = 256


@dataclass(frozen=True, slots=True)
class DnsQuestion:
    name: str
    qtype: int
    qclass: int


@dataclass(frozen=True, slots=True)
class DnsRecord:
    name: str
    rtype: int
    rclass: int
    ttl: int
    data: str  # escaped text form; addresses as text


@dataclass(frozen=True, slots=True)
class DnsMessage:
    id: int
    qr: bool
    opcode: int
    rcode: int
    flags: int
    counts: tuple[int, int, int, int]
    questions: tuple[DnsQuestion, ...]
    answers: tuple[DnsRecord, ...]
    authority: tuple[DnsRecord, ...]
    additional: tuple[DnsRecord, ...]
    consumed: int
    anomalies: tuple[str, ...] = field(default_factory=tuple)


# Octets that stand for themselves in the presentation format (see _label_text).
_NAME_PLAIN = bytes(range(0x21, 0x7F)).replace(b".", b"").replace(b"\\", b"")
_TXT_PLAIN = bytes(range(0x20, 0x7F)).replace(b"\\", b"")


def _label_text(label: bytes, *, txt: bool = False) -> str:
    # Presentation format (RFC 1035 §5.1): non-printable octets as \DDD, dots and
    # backslashes escaped in names; TXT strings keep spaces and dots.
    if not label.translate(None, _TXT_PLAIN if txt else _NAME_PLAIN):
        return label.decode("ascii")  # nothing to escape: the common case, at C speed
    out = []
    for b in label:
        if b == 0x5C or (b == 0x2E and not txt):
            out.append("\\" + chr(b))
        elif 0x21 <= b <= 0x7E or (txt and b in (0x20, 0x2E)):
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def read_name(data: bytes, pos: int, anomalies: list[str]) -> tuple[str, int] | None:
    """(name, position after it in the original sequence) or None if unreadable.

    Compression pointers (RFC 1035 §4.1.4) must point strictly backwards; at
    most MAX_POINTER_JUMPS are followed, so pointer loops cost O(1).
    """
    labels: list[str] = []
    wire = 0
    end: int | None = None
    jumps = 0
    cur = pos
    lowest = pos  # pointers must go below every place we have already read
    size = len(data)
    while True:
        if cur >= size:
            anomalies.append("name_past_end")
            return None
        length = data[cur]
        if length & 0xC0 == 0xC0:
            if cur + 1 >= size:
                anomalies.append("name_past_end")
                return None
            target = ((length & 0x3F) << 8) | data[cur + 1]
            if end is None:
                end = cur + 2
            jumps += 1
            if target >= lowest or jumps > MAX_POINTER_JUMPS:
                anomalies.append("compression_loop")
                return None
            lowest = target
            cur = target
            continue
        if length & 0xC0:
            anomalies.append("bad_label_type")  # 0x40 / 0x80: extended/reserved (RFC 6891 §5)
            return None
        if length == 0:
            if end is None:
                end = cur + 1
            break
        if cur + 1 + length > size:
            anomalies.append("name_past_end")
            return None
        wire += length + 1
        if wire > MAX_NAME:
            anomalies.append("name_too_long")
            return None
        # Names compare case-insensitively (RFC 4343); lower case makes the passive-DNS join exact.
        labels.append(_label_text(data[cur + 1 : cur + 1 + length].lower()))
        cur += 1 + length
    return (".".join(labels) if labels else "."), end


# RFC 1035 §4.1: the header (id, flags, four counts), a question's type and
# class, a record's type, class, TTL and RDATA length, all big-endian.
_HEADER = struct.Struct(">6H")
_QUESTION_FIXED = struct.Struct(">2H")
_RR_FIXED = struct.Struct(">HHIH")


def _u16(data: bytes, pos: int) -> int:
    return (data[pos] << 8) | data[pos + 1]


@lru_cache(maxsize=1024)
def _ipv6_text(packed: bytes) -> str:
    """``str(IPv6Address(packed))``, memoised: answers keep naming the same
    addresses, and RFC 5952 formatting is pure Python in ipaddress."""
    return str(ipaddress.IPv6Address(packed))


def _rdata_text(data: bytes, rtype: int, start: int, rdlen: int, anomalies: list[str]) -> str:
    rd = data[start : start + rdlen]
    if rtype == 1 and rdlen == 4:
        return f"{rd[0]}.{rd[1]}.{rd[2]}.{rd[3]}"  # str(IPv4Address(rd)), without building one
    if rtype == 28 and rdlen == 16:
        return _ipv6_text(rd)
    if rtype in (1, 28):
        anomalies.append("bad_address_length")
        return f"<{rdlen} bytes>"
    if rtype in (2, 5, 12, 39):
        got = read_name(data, start, anomalies)
        return got[0] if got else "<bad name>"
    if rtype == 15 and rdlen >= 3:
        got = read_name(data, start + 2, anomalies)
        return got[0] if got else "<bad name>"
    if rtype == 33 and rdlen >= 7:
        got = read_name(data, start + 6, anomalies)
        return f"{_u16(data, start + 4)} {got[0]}" if got else "<bad name>"
    if rtype in (64, 65) and rdlen >= 3:
        got = read_name(data, start + 2, anomalies)
        return f"{_u16(data, start)} {got[0]}" if got else "<bad name>"
    if rtype == 6:
        got = read_name(data, start, anomalies)
        return got[0] if got else "<bad name>"
    if rtype in (16, 99):
        parts = []
        p = 0
        while p < rdlen and len(parts) < 16:
            ln = rd[p]
            if p + 1 + ln > rdlen:
                anomalies.append("txt_past_rdata")
                break
            parts.append(_label_text(rd[p + 1 : p + 1 + ln], txt=True))
            p += 1 + ln
        text = " ".join(parts)
        return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
    return f"<{rdlen} bytes>"


def _section(data: bytes, pos: int, count: int, anomalies: list[str]) -> tuple[list[DnsRecord], int, bool]:
    out: list[DnsRecord] = []
    for i in range(count):
        if i >= MAX_RRS:
            anomalies.append("too_many_records")
            return out, pos, False
        if pos >= len(data):
            anomalies.append("count_past_end")  # the header promised more records than the message holds
            return out, pos, False
        got = read_name(data, pos, anomalies)
        if got is None:
            return out, pos, False
        name, pos = got
        if pos + 10 > len(data):
            anomalies.append("count_past_end")
            return out, pos, False
        rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, pos)
        pos += 10
        if pos + rdlen > len(data):
            anomalies.append("rdata_past_end")
            return out, pos, False
        out.append(DnsRecord(name, rtype, rclass, ttl, _rdata_text(data, rtype, pos, rdlen, anomalies)))
        pos += rdlen
    return out, pos, True


def parse_message(data: bytes) -> DnsMessage | None:
    """One DNS message, parsed as far as valid; None below the 12-byte header."""
    data = bytes(data)  # bytearray/memoryview in, immutable bytes for slicing and ipaddress
    if len(data) < 12:
        return None
    anomalies: list[str] = []
    header = _HEADER.unpack_from(data)
    ident, flags, counts = header[0], header[1], header[2:]
    pos = 12
    questions: list[DnsQuestion] = []
    ok = True
    for i in range(counts[0]):
        if i >= MAX_RRS:
            anomalies.append("too_many_records")
            ok = False
            break
        if pos >= len(data):
            anomalies.append("count_past_end")
            ok = False
            break
        got = read_name(data, pos, anomalies)
        if got is None or got[1] + 4 > len(data):
            if got is not None:
                anomalies.append("count_past_end")
            ok = False
            break
        name, pos = got
        questions.append(DnsQuestion(name, *_QUESTION_FIXED.unpack_from(data, pos)))
        pos += 4
    sections: list[list[DnsRecord]] = [[], [], []]
    for s in range(3):
        if not ok:
            break
        sections[s], pos, ok = _section(data, pos, counts[s + 1], anomalies)
    if ok and pos < len(data):
        anomalies.append("trailing_bytes")
    return DnsMessage(
        ident, bool(flags & 0x8000), (flags >> 11) & 0xF, flags & 0xF, flags, counts,
        tuple(questions), tuple(sections[0]), tuple(sections[1]), tuple(sections[2]),
        pos, tuple(dict.fromkeys(anomalies)),
    )


def looks_like_dns(data: bytes, *, port_hint: bool = False) -> DnsMessage | None:
    """A DNS message by structure: a sane header and sections that parse exactly.

    Without a DNS port, everything must parse with no anomaly and 1..4
    questions (a random datagram passes with negligible probability); on a
    DNS port, a header and one parsed question are enough.
    """
    msg = parse_message(data)
    return msg if msg is not None and _dns_shaped(msg, port_hint) else None


def _dns_shaped(msg: DnsMessage, port_hint: bool) -> bool:
    """The structural test of ``looks_like_dns`` on a parsed message."""
    if msg.opcode not in (0, 1, 2, 4, 5, 6):
        return False
    if port_hint:
        # On a DNS port a sane header is enough: a truncated question or an
        # mDNS answer without questions (RFC 6762 §6) is still DNS, flagged.
        plausible = 1 <= msg.counts[0] <= 4 or (msg.qr and msg.counts[0] == 0 and bool(msg.answers))
        return bool(msg.questions) or plausible
    if msg.anomalies or not 1 <= msg.counts[0] <= 4 or len(msg.questions) != msg.counts[0]:
        return False
    if msg.flags & 0x0040:  # the Z bit must be zero (RFC 1035 §4.1.1)
        return False
    return not any(q.qclass not in (1, 3, 4, 254, 255) and q.qclass & 0x7FFF not in (1, 255) for q in msg.questions)


# Second-level labels under which registrations happen (co.uk, com.au, ...):
# a small, explicit stand-in for the public-suffix list.
_SLD = frozenset(("co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go"))
_HEX = frozenset("0123456789abcdef")
_B32 = frozenset("abcdefghijklmnopqrstuvwxyz234567")
#: Digest sizes a hash lookup carries (MD5, SHA-1, SHA-224, SHA-256, SHA-384, SHA-512):
#: antivirus and reputation services query them by DNS by design.
_DIGEST_SIZES = frozenset((16, 20, 28, 32, 48, 64))


def parent_domain(name: str) -> str:
    """The registered domain a query sits under (two labels, three for co.uk-style names)."""
    labels = name.rstrip(".").split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SLD:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def _b32_bytes(text: str) -> bytes:
    """RFC 4648 §6 base32 decoding of a lower-case run, partial final quantum dropped."""
    acc = bits = 0
    out = bytearray()
    for ch in text:
        acc = (acc << 5) | "abcdefghijklmnopqrstuvwxyz234567".index(ch)
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    return bytes(out)


def encoded_subdomain(name: str) -> tuple[str, str, bytes] | None:
    """(parent, encoding, decoded bytes) when the labels below the parent carry encoded data.

    DNS tunnels and exfiltration put hex or base32 of their payload in the
    query name (one name per chunk). Only runs of at least 20 decoded bytes
    that mix letters and digits count, digests are ignored, and the caller
    judges randomness and repetition across queries.
    """
    parent = parent_domain(name)
    sub = name[: -len(parent)].rstrip(".") if name.endswith(parent) else ""
    if len(sub) < 32 or "\\" in sub:
        return None
    best: tuple[str, str, bytes] | None = None
    for encoding, alphabet in (("hex", _HEX), ("base32", _B32)):
        # The payload is the longest run of consecutive labels in one alphabet
        # (tunnels split it over labels of at most 63 octets; a fixed word
        # label such as a session tag may sit beside it).
        run: list[str] = []
        runs: list[str] = []
        for label in sub.split("."):
            if label and set(label) <= alphabet:
                run.append(label)
            else:
                runs.append("".join(run))
                run = []
        runs.append("".join(run))
        text = max(runs, key=len)
        if len(text) < 32 or not any(c.isdigit() for c in text) or not any(c.isalpha() for c in text):
            continue
        raw = bytes.fromhex(text[: len(text) // 2 * 2]) if encoding == "hex" else _b32_bytes(text)
        if len(raw) >= 20 and len(raw) not in _DIGEST_SIZES and (best is None or len(raw) > len(best[2])):
            best = (parent, encoding, raw)
    return best


def _tcp_messages(stream: bytes, anomalies: list[str]) -> list[bytes]:
    out = []
    pos = 0
    while pos + 2 <= len(stream) and len(out) < 64:
        ln = _u16(stream, pos)
        if ln == 0:
            anomalies.append("tcp_zero_length")
            break
        if pos + 2 + ln > len(stream):
            break  # beyond the sample: nothing to say
        out.append(stream[pos + 2 : pos + 2 + ln])
        pos += 2 + ln
    return out


def messages_of(sample: FlowSample) -> list[tuple[int, DnsMessage]]:
    """(direction, message) for every parseable DNS message of the flow."""
    port_hint = sample.dst_port in DNS_PORTS or sample.src_port in DNS_PORTS
    anomalies: list[str] = []
    raw: list[tuple[int, bytes]] = []
    if sample.proto == "udp":
        raw = [(m.direction, d) for m, d in sample.datagrams()[:128]]
    else:
        for direction in (OUT, IN):
            raw += [(direction, d) for d in _tcp_messages(sample.stream(direction), anomalies)]
    out = []
    strict = 0
    for direction, data in raw:
        msg = parse_message(data)  # once, for both the lenient and the strict test
        if msg is not None and _dns_shaped(msg, port_hint):
            out.append((direction, msg))
            strict += _dns_shaped(msg, False)
    # On a DNS port the lenient test lets ~0.3% of random datagrams through:
    # unless one message is DNS beyond doubt, most of the flow must parse.
    if not strict and len(out) * 2 < len(raw):
        return []
    return out


def summarize(sample: FlowSample) -> dict[str, Any] | None:
    """The flow's ``dns`` field, or None when nothing in it parses as DNS."""
    msgs = messages_of(sample)
    if not msgs:
        return None
    queries: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    resolved: list[dict[str, Any]] = []
    anomalies: set[str] = set()
    rcode = None
    for direction, msg in msgs:
        anomalies.update(msg.anomalies)
        if not msg.qr:
            for q in msg.questions[:4]:
                if len(queries) < 16:
                    queries.append({"name": q.name, "qtype": TYPE_NAMES.get(q.qtype, str(q.qtype)), "id": msg.id})
            continue
        if rcode is None:
            rcode = RCODE_NAMES.get(msg.rcode, str(msg.rcode))
        qname = msg.questions[0].name if msg.questions else None
        if not any(q["id"] == msg.id for q in queries) and qname and len(queries) < 16:
            # The query was not captured (or answered over another path): still name it.
            queries.append({"name": qname, "qtype": TYPE_NAMES.get(msg.questions[0].qtype, str(msg.questions[0].qtype)), "id": msg.id})
        for rr in msg.answers:
            if len(answers) < 32:
                answers.append({"name": rr.name, "type": TYPE_NAMES.get(rr.rtype, str(rr.rtype)), "ttl": rr.ttl, "data": rr.data})
            if rr.rtype in (1, 28) and not rr.data.startswith("<") and len(resolved) < 32:
                resolved.append({"address": rr.data, "name": qname or rr.name, "ttl": rr.ttl})
    return {
        "queries": queries,
        "answers": answers,
        "rcode": rcode,
        "resolved": resolved,
        "messages": len(msgs),
        "anomalies": sorted(anomalies),
    }
