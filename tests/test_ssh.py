"""SSH banners and KEXINIT: Zeek's ssh.log and FoxIO's HASSH values as oracles, malformed input."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
import yaml
from conftest import zeek_rows
from framing_pcap import sample_from_messages, samples_from_pcap
from hypothesis import given, settings
from hypothesis import strategies as st

from netan.analyzers import ssh
from netan.sample import IN, OUT

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def name_list(names: list[str]) -> bytes:
    raw = ",".join(names).encode()
    return struct.pack(">I", len(raw)) + raw


def kexinit(lists: list[list[str]]) -> bytes:
    payload = bytes([20]) + os.urandom(16) + b"".join(name_list(x) for x in lists) + b"\x00" + b"\x00\x00\x00\x00"
    pad = 8 - (len(payload) + 5) % 8 + 8
    return struct.pack(">IB", len(payload) + pad + 1, pad) + payload + os.urandom(pad)


CLIENT = [["curve25519-sha256", "ecdh-sha2-nistp256"], ["ssh-ed25519", "rsa-sha2-256"], ["chacha20-poly1305@openssh.com", "aes128-ctr"], ["chacha20-poly1305@openssh.com", "aes128-ctr"], ["hmac-sha2-256"], ["hmac-sha2-256"], ["none", "zlib@openssh.com"], ["none"], [], []]
SERVER = [["ecdh-sha2-nistp256", "curve25519-sha256"], ["rsa-sha2-256"], ["aes128-ctr"], ["aes128-ctr", "chacha20-poly1305@openssh.com"], ["hmac-sha2-256"], ["hmac-sha2-256"], ["none"], ["none"], [], []]


def test_banners_kexinit_and_negotiation() -> None:
    s = sample_from_messages([(IN, b"SSH-2.0-OpenSSH_9.6\r\n"), (OUT, b"SSH-2.0-Client_1.0\r\n" + kexinit(CLIENT)), (IN, kexinit(SERVER))])
    info = ssh.summarize(s)
    assert info is not None
    assert (info["client"], info["server"]) == ("SSH-2.0-Client_1.0", "SSH-2.0-OpenSSH_9.6")
    # RFC 4253 §7.1: the client's first choice that the server supports.
    assert info["kex_alg"] == "curve25519-sha256" and info["host_key_alg"] == "rsa-sha2-256"
    assert info["cipher_c2s"] == "aes128-ctr" and info["cipher_s2c"] == "chacha20-poly1305@openssh.com"
    assert info["client_kex"] == CLIENT[0] and info["anomalies"] == []
    import hashlib

    expect = hashlib.md5(b"curve25519-sha256,ecdh-sha2-nistp256;chacha20-poly1305@openssh.com,aes128-ctr;hmac-sha2-256;none,zlib@openssh.com").hexdigest()
    assert info["hassh"] == expect


def test_pre_banner_lines_only_from_server() -> None:
    assert ssh.parse_banner(b"Welcome\r\nSSH-2.0-x\r\n", server=True)[0] == "SSH-2.0-x"
    assert ssh.parse_banner(b"Welcome\r\nSSH-2.0-x\r\n", server=False)[0] is None


@pytest.mark.parametrize(
    "packet,flag",
    [
        (struct.pack(">IB", 1 << 30, 4) + b"\x14", "bad_packet_length"),
        (struct.pack(">IB", 100, 4) + bytes([20]) + os.urandom(16) + struct.pack(">I", 1 << 31) + b"x", "name_list_past_end"),
        (struct.pack(">IB", 30, 4) + bytes([20]) + os.urandom(16) + struct.pack(">I", 2) + b"a,", "kexinit_truncated"),
    ],
    ids=["huge-packet", "list-past-end", "truncated"],
)
def test_malformed_kexinit(packet: bytes, flag: str) -> None:
    info = ssh.summarize(sample_from_messages([(OUT, b"SSH-2.0-x\r\n" + packet), (IN, b"SSH-2.0-y\r\n")]))
    assert info is not None and any(flag in a for a in info["anomalies"])


def test_hostile_banner_escaped() -> None:
    info = ssh.summarize(sample_from_messages([(OUT, b"SSH-2.0-\x1b[2J" + b"A" * 2000 + b"\r\n")]))
    assert info is not None and "\x1b" not in info["client"] and len(info["client"]) <= 255
    assert "client:banner_too_long" in info["anomalies"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.binary(max_size=400))
def test_fuzz_never_crashes(a: bytes, b: bytes) -> None:
    ssh.summarize(sample_from_messages([(OUT, b"SSH-2.0-x\r\n" + a), (IN, b"SSH-2.0-y\r\n" + b)]))


_zeek_rows = zeek_rows


ZEEK_SSH = [
    ("scripts.base.protocols.ssh.basic", "ssh/ssh.pcap"),
    ("scripts.base.protocols.ssh.curve25519_kex", "ssh/ssh_kex_curve25519.pcap"),
    ("scripts.base.protocols.ssh.mlkem_kex", "ssh/ssh_kex_mlkem.pcap"),
    ("scripts.base.protocols.ssh.pre-banner", "ssh/server-pre-banner-data.pcap"),
    ("scripts.base.protocols.ssh.ssh_version_199", "ssh/ssh_version_199.pcap"),
    ("scripts.base.protocols.ssh.half-duplex-client", "ssh/ssh.client-side-half-duplex.pcap"),
    ("scripts.base.protocols.ssh.half-duplex-server", "ssh/ssh.server-side-half-duplex.pcap"),
]


@pytest.mark.parametrize("baseline,trace", ZEEK_SSH)
def test_against_zeek_ssh_log(baseline: str, trace: str) -> None:
    zeek = CORPUS / "zeek"
    if not zeek.is_dir():
        pytest.skip(f"shared corpus not at {CORPUS}")
    samples = {(s.src_ip, s.src_port, s.dst_ip, s.dst_port): s for s in samples_from_pcap(zeek / "Traces" / trace)}
    compared = 0
    for r in _zeek_rows(zeek / "Baseline" / baseline / "ssh.log"):
        info = ssh.summarize(samples[(r["id.orig_h"], int(r["id.orig_p"]), r["id.resp_h"], int(r["id.resp_p"]))]) or {}
        ours = {
            "client": info.get("client"), "server": info.get("server"), "kex_alg": info.get("kex_alg"),
            "host_key_alg": info.get("host_key_alg"), "compression_alg": info.get("compression_c2s"),
            # Zeek logs one name when both directions agree (else "to server: ..., to client: ...").
            "cipher_alg": info.get("cipher_c2s") if info.get("cipher_c2s") == info.get("cipher_s2c") else None,
            "mac_alg": info.get("mac_c2s") if info.get("mac_c2s") == info.get("mac_s2c") else None,
        }
        for field, value in ours.items():
            if r[field] != "-" and value is not None:
                assert value == r[field], (field, r)
                compared += 1
    assert compared >= 1


@pytest.mark.parametrize("pcap", ["ssh-r.pcap", "ssh-scp-1050.pcap", "ssh.pcapng", "ssh2.pcapng"])
def test_hassh_against_foxio(pcap: str) -> None:
    """HASSH/HASSHServer equal to FoxIO's Rust ja4 output (ssh_extras) for every SSH stream."""
    base = CORPUS / "foxio-ja4"
    if not base.is_dir():
        pytest.skip(f"shared corpus not at {CORPUS}")
    text = (base / "rust" / "ja4" / "src" / "snapshots" / f"ja4__insta@{pcap}.snap").read_text()
    records = yaml.safe_load(text.split("---", 2)[2])
    samples = {}
    for s in samples_from_pcap(base / "pcap" / pcap):  # first-packet order: keep a tuple's first flow
        samples.setdefault((s.src_ip, s.src_port, s.dst_ip, s.dst_port), s)
    compared = 0
    for rec in records:
        extras = rec.get("ssh_extras")
        if not extras:
            continue
        s = samples.get((rec["src"], rec["src_port"], rec["dst"], rec["dst_port"]))
        assert s is not None, rec
        info = ssh.summarize(s)
        assert info is not None
        assert info["client"] == extras["ssh_protocol_client"] and info["server"] == extras["ssh_protocol_server"]
        assert info["hassh"] == extras["hassh"] and info["hassh_server"] == extras["hassh_server"]
        compared += 1
    assert compared >= 1
