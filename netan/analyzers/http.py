"""HTTP/1.x requests and responses from a flow's sampled streams (RFC 9112).

Contract: ``parse_stream(data, is_request)`` walks the messages of one
direction as far as they are valid and returns frozen ``HttpMessage`` records
(start line, a bounded set of headers, where the body is) plus anomaly flags;
``summarize(sample)`` gives the flow's ``http`` field (method, host, path,
status, content type and length, user agent, upload body class and size) and
the bodies for framing. Body bytes stay inside the process: outputs carry
their class, format and size, never the bytes. Strings are escaped and bounded.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from netan.analyzers.framing import (
    EncodedValue,
    Unit,
    known_format,
    looks_random,
    scan_encoded,
)
from netan.analyzers.protocols import escape_text
from netan.sample import IN, OUT, FlowSample

__all__ = ["HttpMessage", "parse_stream", "is_http_request_start", "is_http_response_start", "summarize", "body_units", "empty_info", "body_class", "METHODS"]

log = logging.getLogger(__name__)

#: RFC 9110 §9 methods plus WebDAV (RFC 4918) and PATCH (RFC 5789).
METHODS: frozenset[bytes] = frozenset(
    b"GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH PROPFIND PROPPATCH MKCOL COPY MOVE LOCK UNLOCK REPORT SEARCH".split()
)
MAX_MESSAGES = 16  # per direction
MAX_HEADERS = 100
MAX_HEADER_BLOCK = 16384
MAX_CHUNKS = 256
MAX_STR = 256
# URL parameters and headers carry ids, nonces and signatures of up to 64
# random bytes by design; ciphertext there must be longer to count.
MIN_HEADER_VALUE = 65
# Headers that carry session credentials by design: a random token there is
# normal, so they are not scanned for encoded ciphertext (docs/framing.md).
_CREDENTIAL_HEADERS = frozenset((b"cookie", b"set-cookie", b"authorization", b"proxy-authorization"))

_REQUEST_LINE = re.compile(rb"^([A-Z]{3,10}) (\S{1,8192}) HTTP/(1\.[01])$")
_STATUS_LINE = re.compile(rb"^HTTP/(1\.[01]) ([0-9]{3})(?: (.*))?$")


def is_http_request_start(data: bytes) -> bool:
    """A request line's method and a space: enough to claim HTTP/1.x by structure."""
    eol = data.find(b"\r\n", 0, 8300)
    if eol < 0:
        # An overlong request line is still HTTP (flagged when parsed): a method,
        # a space and a target that starts like one (RFC 9112 §3.2).
        sp = data.find(b" ", 0, 12)
        return len(data) >= 8300 and sp > 0 and data[:sp] in METHODS and data[sp + 1 : sp + 2] in (b"/", b"h", b"*")
    return _REQUEST_LINE.match(data[:eol]) is not None and data[: data.find(b" ")] in METHODS


def is_http_response_start(data: bytes) -> bool:
    return data.startswith((b"HTTP/1.0 ", b"HTTP/1.1 "))


@dataclass(frozen=True, slots=True)
class HttpMessage:
    """One request or response; ``body`` is the sampled part of the decoded body."""

    is_request: bool
    method: str | None
    target: str | None
    raw_target: bytes
    status: int | None
    version: str
    headers: tuple[tuple[bytes, bytes], ...]
    body_length: int | None  # declared (Content-Length) or, for chunked, decoded so far
    body: bytes
    body_complete: bool
    chunked: bool
    end: int = 0  # stream offset just after this message (may exceed the sample)

    @property
    def upgrades_to_websocket(self) -> bool:
        """RFC 6455 §4: an Upgrade request, or its 101 Switching Protocols answer."""
        up = (self.header(b"upgrade") or b"").lower()
        return b"websocket" in up and (self.is_request or self.status == 101)

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


def _parse_headers(block: bytes, anomalies: list[str]) -> tuple[tuple[bytes, bytes], ...]:
    headers: list[tuple[bytes, bytes]] = []
    for line in block.split(b"\r\n"):
        if not line:
            continue
        if len(headers) >= MAX_HEADERS:
            anomalies.append("too_many_headers")
            break
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b" " in name:
            anomalies.append("bad_header_line")
            continue
        headers.append((name.lower(), value.strip()))
    return tuple(headers)


def _dechunk(data: bytes, pos: int, anomalies: list[str]) -> tuple[bytes, int, bool]:
    """(decoded body, position after it, complete) per RFC 9112 §7.1, bounded."""
    out = bytearray()
    for _ in range(MAX_CHUNKS):
        eol = data.find(b"\r\n", pos, pos + 1024)
        if eol < 0:
            return bytes(out), len(data), False
        size_txt = data[pos:eol].split(b";", 1)[0].strip()
        try:
            size = int(size_txt, 16)
        except ValueError:
            anomalies.append("bad_chunk_size")
            return bytes(out), len(data), False
        pos = eol + 2
        if size == 0:
            end = data.find(b"\r\n\r\n", pos - 2)  # trailers (usually none)
            return bytes(out), (end + 4 if end >= 0 else len(data)), True
        if len(out) < 1 << 20:
            out += data[pos : pos + size]
        if pos + size + 2 > len(data):
            return bytes(out), len(data), False
        pos += size + 2
    anomalies.append("too_many_chunks")
    return bytes(out), len(data), False


def parse_stream(data: bytes, is_request: bool, *, request_methods: list[str | None] | None = None) -> tuple[list[HttpMessage], list[str]]:
    """The messages of one direction, as far as they parse; anomaly flags."""
    messages: list[HttpMessage] = []
    anomalies: list[str] = []
    pos = 0
    while pos < len(data) and len(messages) < MAX_MESSAGES:
        end = data.find(b"\r\n\r\n", pos, pos + MAX_HEADER_BLOCK)
        if end < 0:
            if len(data) - pos >= MAX_HEADER_BLOCK:
                anomalies.append("header_block_too_long")
            elif messages or pos == 0:
                anomalies.append("truncated_headers")
            break
        head = data[pos:end]
        first, _, rest = head.partition(b"\r\n")
        method = target = None
        status = None
        if is_request:
            m = _REQUEST_LINE.match(first)
            if not m or m.group(1) not in METHODS:
                anomalies.append("request_line_too_long" if len(first) > 8192 else "bad_request_line")
                break
            method = m.group(1).decode("ascii")
            raw_target = m.group(2)
            target = escape_text(raw_target, MAX_STR)
            version = m.group(3).decode("ascii")
        else:
            m = _STATUS_LINE.match(first)
            if not m:
                anomalies.append("bad_status_line")
                break
            version = m.group(1).decode("ascii")
            status = int(m.group(2))
            raw_target = b""
        headers = _parse_headers(rest, anomalies)
        pos = end + 4
        hdict = dict(headers)
        chunked = b"chunked" in hdict.get(b"transfer-encoding", b"").lower()
        body_length: int | None = None
        body = b""
        complete = True
        req_method = None
        if not is_request and request_methods and len(messages) < len(request_methods):
            req_method = request_methods[len(messages)]
        if not is_request and (req_method == "HEAD" or status is not None and (status < 200 or status in (204, 304))):
            pass  # RFC 9112 §6.3 rule 1: these responses never carry a body, whatever the headers say
        elif chunked:
            body, pos, complete = _dechunk(data, pos, anomalies)
            body_length = len(body)
        elif b"content-length" in hdict:
            try:
                body_length = int(hdict[b"content-length"].split(b",")[0].strip())
                if body_length < 0:
                    raise ValueError
            except ValueError:
                anomalies.append("bad_content_length")
                body_length = None
            if body_length is not None:
                body = data[pos : pos + body_length]
                complete = len(body) == body_length
                pos += body_length
        elif not is_request:
            # RFC 9112 §6.3 rule 8: no length and no chunking: the body runs to the close.
            body = data[pos:]
            body_length = None
            complete = False
            pos = len(data)
        msg = HttpMessage(is_request, method, target, raw_target, status, version, headers, body_length, body, complete, chunked, pos)
        messages.append(msg)
        if msg.upgrades_to_websocket:
            break  # what follows is WebSocket frames, not HTTP (RFC 6455 §4.1)
    if pos > len(data):
        anomalies.append("body_past_sample")
    return messages, sorted(set(anomalies))


def body_class(body: bytes, content_type: bytes | None, content_encoding: bytes | None) -> tuple[str, str | None]:
    """(payload class, format) of a body: what its bytes are, not what it says."""
    if not body:
        return "empty", None
    fmt = known_format(body)
    if fmt in ("gzip", "zlib", "zstd", "zip", "xz", "bzip2", "7z"):
        return "compressed", fmt
    if fmt:
        return "binary", fmt  # media and documents: high entropy explained by the format
    enc = (content_encoding or b"").lower()
    if enc and enc != b"identity":
        return "compressed", enc.decode("ascii", "replace")[:16]
    printable = _printable_ratio(body)
    if printable > 0.95:
        if scan_encoded(body[:4096], "body"):
            return "encoded", None
        return "text", None
    if len(body) < 24:
        return "unknown", None
    if looks_random(body):
        return "encrypted", None
    return "binary", None


MAX_WS_FRAMES = 128
_WS_OPCODES = frozenset((0, 1, 2, 8, 9, 10))


@dataclass(frozen=True, slots=True)
class WsFrame:
    """One WebSocket frame (RFC 6455 §5.2), payload unmasked and sampled."""

    opcode: int
    fin: bool
    compressed: bool  # RSV1: permessage-deflate (RFC 7692 §6)
    length: int
    payload: bytes
    complete: bool


def parse_ws_frames(data: bytes, *, from_client: bool, anomalies: list[str]) -> list[WsFrame]:
    """WebSocket frames from ``data`` as far as they are valid (bounded).

    Clients must mask every frame and servers must not (§5.1); a frame that
    breaks that, uses a reserved opcode or RSV2/RSV3, stops the walk.
    """
    frames: list[WsFrame] = []
    pos = 0
    while pos + 2 <= len(data) and len(frames) < MAX_WS_FRAMES:
        b0, b1 = data[pos], data[pos + 1]
        opcode, masked, length = b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if opcode not in _WS_OPCODES or b0 & 0x30 or masked != from_client:
            anomalies.append("websocket_bad_frame")
            break
        head = 2
        if length == 126:
            if pos + 4 > len(data):
                break
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            head = 4
        elif length == 127:
            if pos + 10 > len(data):
                break
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            head = 10
        key = b""
        if masked:
            key = data[pos + head : pos + head + 4]
            head += 4
            if len(key) < 4:
                break
        start = pos + head
        raw = data[start : start + min(length, 1 << 16)]
        if key:
            # XOR with the 4-byte key repeated (§5.3), done as one big-integer XOR.
            stream = (key * (len(raw) // 4 + 1))[: len(raw)]
            raw = (int.from_bytes(raw, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(raw), "big") if raw else b""
        frames.append(WsFrame(opcode, bool(b0 & 0x80), bool(b0 & 0x40), length, raw, len(raw) == length))
        pos = start + length
    return frames


def _websocket(sample: FlowSample, req_dir: int, request: HttpMessage, response: HttpMessage) -> tuple[dict[str, Any], list[Unit], list[EncodedValue]]:
    """After the upgrade: data frames become framing units, text frames are scanned."""
    anomalies: list[str] = []
    units: list[Unit] = []
    values: list[EncodedValue] = []
    counts = {"out": 0, "in": 0}
    resp_dir = IN if req_dir == OUT else OUT
    for direction, start, from_client in ((req_dir, request.end, True), (resp_dir, response.end, False)):
        dname = "out" if direction == OUT else "in"
        for f in parse_ws_frames(sample.stream(direction)[start:], from_client=from_client, anomalies=anomalies):
            counts[dname] += 1
            if f.opcode not in (0, 1, 2) or not f.payload or f.compressed:
                continue  # control frames; compressed messages are explained
            if f.opcode == 1 or (f.opcode == 0 and _printable_ratio(f.payload) > 0.95):
                values += scan_encoded(f.payload, f"{dname}:websocket")
            units.append(Unit(direction, len(units), f.length, f.payload, f.complete, 0, "ws_frame"))
    return {"frames": counts, "anomalies": sorted(set(anomalies))}, units, values


_PRINTABLE = bytes(range(32, 127)) + b"\t\n\r"


def _printable_ratio(data: bytes) -> float:
    """Share of printable ASCII and whitespace in the first 4 KiB (counted in C by translate)."""
    sample = data[:4096]
    return (len(sample) - len(sample.translate(None, _PRINTABLE))) / len(sample) if sample else 0.0


def _text_values(msg: HttpMessage, direction: str) -> list[EncodedValue]:
    """Encoded ciphertext candidates in the URL, headers and a textual body."""
    found: list[EncodedValue] = []
    if msg.is_request and b"?" in msg.raw_target:
        query = msg.raw_target.split(b"?", 1)[1]
        try:
            params = parse_qsl(query.decode("latin-1"), keep_blank_values=True, max_num_fields=200, encoding="latin-1")
        except ValueError:  # more than 200 fields: judge the raw query instead
            params = [("", unquote_to_bytes(query[:MAX_STR * 64]).decode("latin-1"))]
        for _, v in params:
            found += scan_encoded(v.encode("latin-1"), f"{direction}:url", min_bytes=MIN_HEADER_VALUE)
    if msg.is_request:
        # Response headers carry server request ids and signatures (x-amz-id-2 ...):
        # only what the client sends is judged.
        for name, value in msg.headers[:MAX_HEADERS]:
            if name not in _CREDENTIAL_HEADERS:
                found += scan_encoded(value, f"{direction}:header", min_bytes=MIN_HEADER_VALUE)
    body = msg.body[:65536]
    if not body or known_format(body):
        return found
    ctype = (msg.header(b"content-type") or b"").lower()
    if b"x-www-form-urlencoded" in ctype:
        try:
            pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, max_num_fields=500, encoding="latin-1")
        except ValueError:  # more than 500 fields: judge the decoded body as a whole
            pairs = [("", unquote_to_bytes(body).decode("latin-1"))]
        for _, v in pairs:
            found += scan_encoded(v.encode("latin-1"), f"{direction}:form")
        return found
    stripped = body.lstrip()
    if stripped[:1] in (b"{", b"["):
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        if doc is not None:
            for s in _json_strings(doc):
                found += scan_encoded(s.encode("utf-8", "replace"), f"{direction}:json")
            return found
    found += scan_encoded(unquote_to_bytes(body) if b"%" in body[:4096] else body, f"{direction}:body")
    return found


def _json_strings(doc: Any, limit: int = 2000) -> list[str]:
    """String values and keys of a JSON document, iteratively and bounded."""
    out: list[str] = []
    stack = [doc]
    while stack and len(out) < limit:
        node = stack.pop()
        if isinstance(node, str):
            if len(node) >= 32:
                out.append(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node[:limit])
    return out


def _multipart_parts(body: bytes, ctype: bytes) -> list[tuple[bytes, bytes]]:
    """(part content type, part bytes) of a multipart body (RFC 7578), bounded."""
    m = re.search(rb'boundary="?([^";]{1,70})', ctype)
    if not m:
        return []
    delim = b"--" + m.group(1)
    parts = []
    for chunk in body.split(delim)[1:33]:
        head, sep, content = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        pct = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-type:"):
                pct = line.split(b":", 1)[1].strip().lower()
        parts.append((pct, content[:-2] if content.endswith(b"\r\n") else content))
    return parts


def empty_info(version: str | None = None) -> dict[str, Any]:
    """The ``http`` field with every key present and nothing claimed (h2c uses it too)."""
    return {
        "method": None, "host": None, "path": None, "version": version, "status": None,
        "content_type": None, "content_length": None, "user_agent": None,
        "request_content_type": None, "request_content_length": None,
        "requests": 0, "responses": 0, "uploads": [], "websocket": None, "anomalies": [],
    }


# The framing units of the last summarize() call: the cross-flow stage asks for
# the same flow's units right after the protocol analyzer built them.
_last_bodies: list[tuple[FlowSample | None, tuple[Unit, ...]]] = [(None, ())]


def body_units(sample: FlowSample) -> list[Unit]:
    """``summarize(sample)[1]``, without redoing the work when it was just done for ``sample``."""
    held, units = _last_bodies[0]
    if held is not sample:
        return summarize(sample)[1]
    return list(units)


def summarize(sample: FlowSample) -> tuple[dict[str, Any], list[Unit], list[EncodedValue]]:
    """The flow's ``http`` field, the bodies as framing units, and encoded values."""
    req_dir, resp_dir = OUT, IN
    if not is_http_request_start(sample.out) and (is_http_request_start(sample.inb) or is_http_response_start(sample.out)):
        req_dir, resp_dir = IN, OUT  # a flow joined mid-connection: roles from content, not order
    requests, req_anom = parse_stream(sample.stream(req_dir), True)
    responses, resp_anom = parse_stream(sample.stream(resp_dir), False, request_methods=[r.method for r in requests])
    first_req = requests[0] if requests else None
    first_resp = responses[0] if responses else None

    def hdr(msg: HttpMessage | None, name: bytes, limit: int = MAX_STR) -> str | None:
        if msg is None:
            return None
        v = msg.header(name)
        return None if v is None else escape_text(v, limit)

    units: list[Unit] = []
    values: list[EncodedValue] = []
    uploads: list[dict[str, Any]] = []
    for direction, msgs in ((req_dir, requests), (resp_dir, responses)):
        dname = "out" if direction == OUT else "in"
        for i, msg in enumerate(msgs):
            values += _text_values(msg, dname)
            ctype = msg.header(b"content-type")
            cls, fmt = body_class(msg.body, ctype, msg.header(b"content-encoding"))
            bodies = [msg.body]
            if ctype and b"multipart/" in ctype.lower():
                bodies = [p for _, p in _multipart_parts(msg.body, ctype)] or bodies
            if cls in ("encrypted", "binary", "unknown") or len(bodies) > 1:
                for b in bodies:
                    if b and not known_format(b):
                        units.append(Unit(direction, len(units), msg.body_length if len(bodies) == 1 and msg.body_length else len(b), b, msg.body_complete or len(bodies) > 1, 0, "body"))
            if msg.is_request and (msg.body or msg.body_length):
                uploads.append(
                    {
                        "method": msg.method,
                        "path": msg.target,
                        "content_type": hdr(msg, b"content-type", 128),
                        "size": msg.body_length if msg.body_length is not None else len(msg.body),
                        "sampled": len(msg.body),
                        "body_class": cls,
                        "format": fmt,
                    }
                )
    websocket = None
    for i, resp in enumerate(responses):
        if resp.upgrades_to_websocket and i < len(requests) and requests[i].upgrades_to_websocket:
            websocket, ws_units, ws_values = _websocket(sample, req_dir, requests[i], resp)
            units += ws_units
            values += ws_values
            break
    _last_bodies[0] = (sample, tuple(units))
    host = hdr(first_req, b"host", 255)
    path = first_req.target if first_req else None
    info: dict[str, Any] = {
        "method": first_req.method if first_req else None,
        "host": host,
        "path": path,
        "version": (first_req or first_resp).version if (first_req or first_resp) else None,
        "status": first_resp.status if first_resp else None,
        "content_type": hdr(first_resp, b"content-type", 128) if first_resp else None,
        "content_length": first_resp.body_length if first_resp else None,
        "user_agent": hdr(first_req, b"user-agent"),
        "request_content_type": hdr(first_req, b"content-type", 128),
        "request_content_length": first_req.body_length if first_req else None,
        "requests": len(requests),
        "responses": len(responses),
        "uploads": uploads[:8],
        "websocket": websocket,
        "anomalies": sorted(set(req_anom) | {f"response:{a}" for a in resp_anom}),
    }
    return info, units, values
