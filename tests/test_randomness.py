"""The ent battery against Debian's /usr/bin/ent, and the Wu et al. 2023 features."""
from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from netan.analyzers.randomness import chi2_sf, ent_battery, fet_features

ENT = shutil.which("ent")


def _keystream(n: int, iv: int = 0) -> bytes:
    enc = Cipher(algorithms.AES(bytes(range(16))), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return enc.update(b"\x00" * n) + enc.finalize()


INPUTS = {
    "random_4k": _keystream(4096),
    "random_100k": _keystream(100_000),
    "random_odd": _keystream(1001),
    "text": Path(__file__).read_bytes(),
    "python_source": Path(np.__file__).read_bytes(),
    "elf": Path("/usr/bin/ls").read_bytes()[:20000] if Path("/usr/bin/ls").exists() else b"\x7fELF" * 100,
    "zeros": b"\x00" * 5000,
    "ff": b"\xff" * 777,
    "two_values": b"\x00\xff" * 300,
    "one_byte": b"A",
    "five_bytes": b"hello",
    "six_bytes": b"hello!",
    "seven_bytes": b"\x01\x02\x03\x04\x05\x06\x07",
}


def _run_ent(data: bytes, tmp_path: Path) -> tuple[list[str], str]:
    f = tmp_path / "sample.bin"
    f.write_bytes(data)
    terse = subprocess.run([ENT, "-t", str(f)], capture_output=True, text=True, check=True).stdout
    human = subprocess.run([ENT, str(f)], capture_output=True, text=True, check=True).stdout
    return terse.strip().splitlines()[1].split(","), human


@pytest.mark.skipif(ENT is None, reason="Debian's ent is not installed (scripts/install-system-deps.sh)")
@pytest.mark.parametrize("name", sorted(INPUTS))
def test_battery_matches_ent(name: str, tmp_path: Path) -> None:
    data = INPUTS[name]
    fields, human = _run_ent(data, tmp_path)
    _, nbytes, ent_h, ent_chi, ent_mean, ent_pi, ent_scc = fields
    b = ent_battery(data)
    assert b.n == int(nbytes)
    assert b.entropy == pytest.approx(float(ent_h), abs=2e-6)
    assert b.chi_square == pytest.approx(float(ent_chi), rel=1e-6, abs=1e-4)
    assert b.mean == pytest.approx(float(ent_mean), abs=1e-4)
    if len(data) < 6:
        assert b.monte_carlo_pi is None and b.pi_error is None  # ent prints nan
    else:
        assert b.monte_carlo_pi == pytest.approx(float(ent_pi), abs=2e-6)
        err = re.search(r"error ([\d.]+) percent", human)
        assert err and b.pi_error == pytest.approx(float(err.group(1)), abs=0.006)
    if "undefined" in human:
        assert b.serial_corr is None
    else:
        assert b.serial_corr == pytest.approx(float(ent_scc), abs=2e-6)
    # ent: "would exceed this value 53.91 percent" / "less than 0.01 percent" / "more than 99.99"
    m = re.search(r"would exceed this value (less than |more than )?([\d.]+) percent", human)
    assert m is not None
    pct = 100.0 * b.chi_p
    if m.group(1) == "less than ":
        assert pct < 0.01
    elif m.group(1) == "more than ":
        assert pct > 99.99
    else:
        assert pct == pytest.approx(float(m.group(2)), abs=0.011)


def test_battery_empty_and_json_safe() -> None:
    b = ent_battery(b"")
    assert b.n == 0 and all(v is None for k, v in b.to_dict().items() if k != "n")
    for data in INPUTS.values():
        for v in ent_battery(data).to_dict().values():
            assert v is None or (isinstance(v, (int, float)) and math.isfinite(v))


@pytest.mark.parametrize("x", [0.1, 1.0, 3.841458820694124, 10.0, 50.0])
def test_chi2_sf_closed_forms(x: float) -> None:
    assert chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-12)
    assert chi2_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-12)
    assert chi2_sf(x, 4) == pytest.approx(math.exp(-x / 2) * (1 + x / 2), rel=1e-12)


def test_chi2_sf_df255_shape() -> None:
    # median of chi2(255) is ~ 254.33; tails behave; huge statistics underflow cleanly
    assert chi2_sf(254.3346, 255) == pytest.approx(0.5, abs=1e-4)
    assert chi2_sf(310.457, 255) == pytest.approx(0.01, rel=0.02)  # 99th percentile
    assert chi2_sf(1e7, 255) == 0.0
    assert chi2_sf(0.0, 255) == 1.0
    assert chi2_sf(float("inf"), 255) == 0.0
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)


def test_chi_p_is_uniform_on_random_data() -> None:
    # independent keystreams (distinct IVs far apart), not prefixes of one another
    ps = np.array([ent_battery(_keystream(4096, iv=i << 64)).chi_p for i in range(1, 401)])
    # a p-value of truly random data is U(0,1): mean 0.5, 10% below 0.1
    assert abs(ps.mean() - 0.5) < 0.06
    assert 0.05 < (ps < 0.1).mean() < 0.16


def test_fet_features_wu_2023() -> None:
    rnd = fet_features(_keystream(600))
    assert 3.4 < rnd.popcount < 4.6 and rnd.fully_encrypted and rnd.exempt == ()
    http = fet_features(b"GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert not http.fully_encrypted and {"ex2_first6_printable", "ex5_tls_http"} <= set(http.exempt)
    tls = fet_features(b"\x16\x03\x01\x02\x00" + _keystream(512))
    assert "ex5_tls_http" in tls.exempt
    zeros = fet_features(b"\x00" * 100)
    assert zeros.popcount == 0.0 and "ex1_popcount" in zeros.exempt
    # 21 printable bytes hidden in random data: Ex4 fires, not Ex3
    mixed = fet_features(_keystream(100) + b"A" * 21 + _keystream(100))
    assert "ex4_printable_run" in mixed.exempt and "ex3_half_printable" not in mixed.exempt
    assert fet_features(b"").fully_encrypted is False
    assert set(fet_features(b"x" * 30).to_dict()) >= {"popcount", "exempt", "fully_encrypted"}
