"""HTTP/1.x parsing: real-world shapes, malformed input, hostile strings, and Zeek's http.log as oracle."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import zeek_rows
from framing_pcap import sample_from_messages, samples_from_pcap

from netan.analyzers import http
from netan.sample import IN, OUT

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def _summary(out: bytes, inb: bytes = b"") -> dict:
    convo = [(OUT, out)] + ([(IN, inb)] if inb else [])
    return http.summarize(sample_from_messages(convo))[0]


def test_request_and_response_fields() -> None:
    req = b"POST /api/v1/upload?x=1 HTTP/1.1\r\nHost: collector.example\r\nUser-Agent: okhttp/4.12.0\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"a\": \"text\"}"
    resp = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    info = _summary(req, resp)
    assert (info["method"], info["host"], info["path"], info["status"]) == ("POST", "collector.example", "/api/v1/upload?x=1", 201)
    assert info["user_agent"] == "okhttp/4.12.0"
    assert info["request_content_type"] == "application/json" and info["request_content_length"] == 13
    assert info["content_type"] == "application/json" and info["content_length"] == 2
    assert info["uploads"] == [{"method": "POST", "path": "/api/v1/upload?x=1", "content_type": "application/json", "size": 13, "sampled": 13, "body_class": "text", "format": None}]
    assert info["anomalies"] == []


def test_keep_alive_chunked_and_head() -> None:
    reqs = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nHEAD /b HTTP/1.1\r\nHost: h\r\n\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n"
    resps = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n"  # HEAD: no body despite the length
        b"HTTP/1.1 304 Not Modified\r\n\r\n"
    )
    msgs, anomalies = http.parse_stream(resps, False, request_methods=["GET", "HEAD", "GET"])
    assert [m.status for m in msgs] == [200, 200, 304]
    assert msgs[0].body == b"hello world" and msgs[0].chunked
    reqs_parsed, _ = http.parse_stream(reqs, True)
    assert [m.method for m in reqs_parsed] == ["GET", "HEAD", "GET"]


def test_head_reply_with_content_length_has_no_body() -> None:
    # RFC 9112 §6.3: a reply to HEAD never has a body, whatever Content-Length says.
    msgs, _ = http.parse_stream(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", False, request_methods=["HEAD", "GET"])
    assert len(msgs) >= 1


@pytest.mark.parametrize(
    "data,flag",
    [
        (b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\nshort", "body_past_sample"),
        (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", "bad_content_length"),
        (b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", "bad_content_length"),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 500 + b"\r\n", "too_many_headers"),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", "bad_header_line"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", "truncated_headers"),
        (b"GET / HTTP/1.1\r\n" + b"A" * 20000, "header_block_too_long"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad_chunk_size"),
        (b"GET / HTTP/1.1\r\n\r\nGARBAGE\r\n\r\n", "bad_request_line"),
    ],
)
def test_malformed_is_flagged(data: bytes, flag: str) -> None:
    _, anomalies = http.parse_stream(data, True)
    assert flag in anomalies


def test_hostile_strings_escaped_and_bounded() -> None:
    ua = b"\x1b[31mevil\x00" + b"A" * 5000
    info = _summary(b"GET /\x1b]0;x\x07 HTTP/1.1\r\nHost: h\x7f\r\nUser-Agent: " + ua + b"\r\n\r\n")
    assert "\x1b" not in info["user_agent"] and "\\x1b" in info["user_agent"] and len(info["user_agent"]) <= 256
    assert "\x7f" not in info["host"]
    assert "\x07" not in (info["path"] or "")


def test_many_chunks_bounded() -> None:
    body = b"1\r\na\r\n" * 10000 + b"0\r\n\r\n"
    msgs, anomalies = http.parse_stream(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body, True)
    assert "too_many_chunks" in anomalies and len(msgs[0].body) <= 256


def test_upload_body_classes() -> None:
    import gzip

    cases = {
        b"application/octet-stream": (os.urandom(500), "encrypted"),
        b"application/gzip": (gzip.compress(b"hello " * 200), "compressed"),
        b"image/png": (b"\x89PNG\r\n\x1a\n" + os.urandom(300), "binary"),
        b"text/plain": (b"hello world " * 20, "text"),
    }
    for ctype, (body, cls) in cases.items():
        info = _summary(b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Type: " + ctype + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert info["uploads"][0]["body_class"] == cls, ctype


def test_is_http_by_structure() -> None:
    assert http.is_http_request_start(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert not http.is_http_request_start(b"GETX /x HTTP/1.1\r\n")
    assert not http.is_http_request_start(b"GET /x\r\n")  # HTTP/0.9 is not claimed
    assert http.is_http_response_start(b"HTTP/1.1 200 OK\r\n")


_zeek_rows = zeek_rows


@pytest.mark.parametrize(
    "baseline,trace,least",
    [("core.tcp.reassembly-known-ports", "http/get.pcap", 5), ("scripts.policy.protocols.http.header-names", "wikipedia.pcap", 30)],
)
def test_against_zeek_http_log(baseline: str, trace: str, least: int) -> None:
    zeek = CORPUS / "zeek"
    if not zeek.is_dir():
        pytest.skip(f"shared corpus not at {CORPUS}")
    rows = [r for r in _zeek_rows(zeek / "Baseline" / baseline / "http.log") if r["trans_depth"] == "1"]
    samples = {(s.src_ip, s.src_port, s.dst_ip, s.dst_port): s for s in samples_from_pcap(zeek / "Traces" / trace)}
    compared = 0
    for r in rows:
        s = samples.get((r["id.orig_h"], int(r["id.orig_p"]), r["id.resp_h"], int(r["id.resp_p"])))
        assert s is not None, r
        info = http.summarize(s)[0]
        ours = {"method": info["method"], "host": info["host"], "uri": info["path"], "user_agent": info["user_agent"], "status_code": str(info["status"])}
        for field, value in ours.items():
            if r[field] != "-":
                assert value == r[field], (field, r)
                compared += 1
    assert compared >= least


def test_same_keys_for_every_flow() -> None:
    keys = set(http.empty_info())
    assert set(_summary(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")) == keys
    assert set(_summary(b"garbage")) == keys


def ws_frame(payload: bytes, opcode: int = 1, masked: bool = True) -> bytes:
    """A WebSocket frame per RFC 6455 §5.2 (clients mask, servers do not)."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mask_bit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


UPGRADE = b"GET /ws HTTP/1.1\r\nHost: c2.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"


def test_websocket_frames_unmasked_and_scanned() -> None:
    import base64

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from netan.analyzers import protocols

    g = AESGCM(AESGCM.generate_key(bit_length=128))
    convo = [(OUT, UPGRADE), (IN, SWITCH)]
    for i in range(3):
        n = os.urandom(12)
        msg = json.dumps({"t": "report", "d": base64.b64encode(n + g.encrypt(n, b"contacts and sms " * (i + 3), None)).decode()}).encode()
        convo += [(OUT, ws_frame(msg)), (IN, ws_frame(b'{"ok":true}', masked=False))]
    r = protocols.analyze(sample_from_messages(convo))
    assert r["l7"] == "http" and r["http"]["websocket"]["frames"] == {"out": 3, "in": 3}
    assert "bad_request_line" not in r["http"]["anomalies"]
    assert "encoded_ciphertext" in r["framing"]


def test_websocket_plain_chat_claims_nothing() -> None:
    from netan.analyzers import protocols

    convo = [(OUT, UPGRADE), (IN, SWITCH)]
    for i in range(5):
        convo += [(OUT, ws_frame(json.dumps({"msg": f"hello {i}", "room": "general"}).encode())), (IN, ws_frame(b'{"ack":%d}' % i, masked=False))]
    r = protocols.analyze(sample_from_messages(convo))
    assert r["http"]["websocket"]["frames"]["out"] == 5 and r["framing"] == []


def test_websocket_bad_frames_flagged() -> None:
    info = _summary(UPGRADE + ws_frame(b"x", masked=False), SWITCH)
    assert "websocket_bad_frame" in info["websocket"]["anomalies"]
    msgs, _ = http.parse_stream(UPGRADE + b"\x81\x85garbage", True)
    assert len(msgs) == 1  # parsing stops at the upgrade


def test_absurd_field_counts_do_not_raise() -> None:
    from netan.analyzers import protocols

    query = b"&".join(b"k%d=v" % i for i in range(1000))  # > 200 fields, < 8 KiB
    body = b"&".join(b"f%d=1" % i for i in range(5000))
    req = b"POST /x?" + query + b" HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    r = protocols.analyze(sample_from_messages([(OUT, req)]))
    assert r["l7"] == "http" and r["framing"] == []


def test_overlong_request_line_is_http_and_flagged() -> None:
    info = _summary(b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert "request_line_too_long" in info["anomalies"] or "header_block_too_long" in info["anomalies"]
    from netan.analyzers import protocols

    assert protocols.analyze(sample_from_messages([(OUT, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")]))["l7"] == "http"
