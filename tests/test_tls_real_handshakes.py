"""netan's passive TLS view of real handshakes vs. the endpoints' own view and tshark's.

The captures in tests/data/tls/ were recorded on loopback by
scripts/record_tls_fixtures.py (Python ``ssl`` and ``openssl s_server`` /
``s_client``; TLS 1.2 and 1.3; with and without client certificates; session
resumption; a HelloRetryRequest; a client that rejects the server's CA). Each
has a JSON sidecar with what the libraries reported (negotiated version,
cipher, ALPN, session reuse). ``test_fresh_recording`` records new ones.
"""
from __future__ import annotations

import json
import os
import shutil
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest

from netan.analyzers import tls
from pcap_samples import flow_samples

DATA = Path(__file__).resolve().parent / "data" / "tls"
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _openssl_cipher_ids() -> dict[str, int]:
    """OpenSSL's own cipher name -> IANA code point table (an independent oracle)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return {c["name"]: c["id"] & 0xFFFF for c in ctx.get_ciphers()}


OPENSSL_IDS = _openssl_cipher_ids()


def _iana(openssl_name: str) -> str | None:
    if openssl_name.startswith("TLS_"):
        return openssl_name  # TLS 1.3 suites already carry their IANA names
    return tls.cipher_name(OPENSSL_IDS[openssl_name])


def _results(pcap: Path) -> list[tuple[Any, dict[str, Any]]]:
    out = []
    for s in flow_samples(pcap):
        r = tls.analyze(s)
        if r is not None:
            out.append((s, r))
    return out


def check_against_sidecar(pcap: Path, side: dict[str, Any]) -> None:
    """Every fact netan derives passively must equal what the endpoints reported."""
    results = _results(pcap)
    pki = side["pki"]
    sessions = side.get("sessions") or [side]
    assert len(results) == len(sessions), "one TLS flow per recorded session"
    for (sample, r), sess in zip(sorted(results, key=lambda x: x[0].src_port), sorted(
        sessions, key=lambda x: x.get("client_port", 0)
    )):
        t = r["tls"]
        assert r["l7"] == "tls"
        assert t["sni"] == side["sni"]
        assert t["ja4"].startswith("t1") and t["ja3"] and len(t["ja3"]) == 32
        if "error" in sess:
            continue
        assert t["version"] == sess["version"]
        assert t["cipher"] == _iana(sess["cipher"])
        if sess.get("alpn"):
            assert sess["alpn"] in t["alpn"]
            if t["version"] == "TLSv1.3":
                # The choice travels in EncryptedExtensions (RFC 8446 §4.3.1).
                assert "alpn_negotiated" not in t
            else:
                assert t["alpn_negotiated"] == sess["alpn"]
        assert t["established"] is True
        if "session_reused" in sess:
            assert t["resumed"] is sess["session_reused"]
        if t["version"] == "TLSv1.3":
            # RFC 8446: certificates are encrypted; say so instead of "none".
            assert t["cert"] is None and t["cert_visibility"] == "encrypted"
            assert t["client_cert"] is None and t["client_cert_visibility"] == "encrypted"
        elif not t["resumed"]:
            assert t["cert"]["subject"] == pki["server_subject"]
            assert t["cert"]["issuer"] == pki["server_issuer"]
            assert t["cert"]["sha1"] == pki["server_sha1"]
            assert t["cert"]["not_after"] == pki["server_not_after"]
            assert (t["cert"]["key_type"], t["cert"]["key_bits"], t["cert"]["self_signed"]) == ("rsa", 2048, False)
            assert "tls12.netan.test" in t["cert"]["sans"]
        # Records: the first one each way is a handshake record carrying the hello.
        first_out = next(x for x in r["tls_records"] if x["dir"] == "out")
        first_in = next(x for x in r["tls_records"] if x["dir"] == "in")
        assert first_out["content_type"] == 22 and first_out["handshake"][0] == 1
        assert first_in["content_type"] == 22 and first_in["handshake"][0] == 2
        assert all(x["ts"] is not None for x in r["tls_records"])
        assert t["anomalies"] == []


def _fixtures() -> list[Path]:
    return sorted(DATA.glob("*.pcap"))


@pytest.mark.parametrize("pcap", _fixtures(), ids=lambda p: p.stem)
def test_fixture_matches_endpoints(pcap: Path) -> None:
    side = json.loads(pcap.with_suffix(".json").read_text())
    check_against_sidecar(pcap, side)


def test_mutual_tls_12_client_certificate_is_seen() -> None:
    for name in ("py-tls12-mtls", "openssl-tls12-mtls"):
        side = json.loads((DATA / f"{name}.json").read_text())
        ((_, r),) = _results(DATA / f"{name}.pcap")
        t = r["tls"]
        assert t["client_cert_requested"] is True
        assert t["client_cert"]["subject"] == side["pki"]["client_subject"]
        assert t["client_cert"]["sha1"] == side["pki"]["client_sha1"]
        assert (t["client_cert"]["key_type"], t["client_cert"]["key_bits"]) == ("ec", 256)


def test_no_client_certificate_without_mtls() -> None:
    ((_, r),) = _results(DATA / "py-tls12.pcap")
    assert r["tls"]["client_cert"] is None and r["tls"]["client_cert_visibility"] == "absent"
    assert "client_cert_requested" not in r["tls"]


def test_resumption_second_connection_only() -> None:
    results = sorted(_results(DATA / "py-tls12-resume.pcap"), key=lambda x: x[0].src_port)
    assert [r["tls"]["resumed"] for _, r in results] == [False, True]
    # An abbreviated handshake carries no certificate at all.
    assert results[1][1]["tls"]["cert"] is None


def test_hello_retry_request() -> None:
    ((sample, r),) = _results(DATA / "openssl-tls13-hrr.pcap")
    t = r["tls"]
    assert t["hello_retry"] is True and t["curve"] == "secp384r1"
    assert len(tls.client_hellos(sample.out)) == 2
    assert t["version"] == "TLSv1.3" and t["established"]


def test_rejected_certificate_alert() -> None:
    ((_, r),) = _results(DATA / "py-tls12-badca.pcap")
    t = r["tls"]
    assert t["alerts"] == [{"dir": "out", "level": "fatal", "description": "unknown_ca"}]
    assert t["established"] is False


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("pcap", _fixtures(), ids=lambda p: p.stem)
def test_fixture_matches_tshark(pcap: Path) -> None:
    from test_tls_conformance import assert_matches_tshark

    assert assert_matches_tshark(pcap) >= 1


@pytest.mark.skipif(
    not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("tcpdump") and shutil.which("openssl")),
    reason="needs root, tcpdump and openssl to capture on lo",
)
def test_fresh_recording(tmp_path: Path) -> None:
    """Record new handshakes now (not the stored fixtures) and check them the same way."""
    sys.path.insert(0, str(SCRIPTS))
    try:
        import record_tls_fixtures as rec
    finally:
        sys.path.remove(str(SCRIPTS))
    names = ["py-tls13", "py-tls12-mtls", "openssl-tls13"]
    sidecars = rec.record(tmp_path, names)
    assert set(sidecars) == set(names)
    for name in names:
        check_against_sidecar(tmp_path / f"{name}.pcap", sidecars[name])
