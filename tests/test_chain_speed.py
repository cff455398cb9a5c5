"""The chain builder's fast paths equal the plain computations they replace.

Each fast path (kinds without wording, numpy staging and Spearman, one sort for all keys,
packed stable argsort, side ids by what observe reads) is checked against the plain
computation on seeded random inputs, ties, NaNs and odd values included.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from netan.chains.baseline import Baseline, subject_of
from netan.chains.builder import (
    ChainBuilder,
    _spearman,
    _spearman_exact,
    _stable_argsort,
    _staging,
    _staging_columns,
)
from netan.chains.evidence import FRAMING_KINDS, network_evidence, network_kinds
from netan.schema import new_flow_record


def _random_record(rng: random.Random) -> dict:
    """A flow record drawn over every field the network rules read."""
    l7 = rng.choice(["tls", "http", "dns", "quic", "ssh", "unknown", "ntp", None])
    r = new_flow_record(
        flow_id=f"F{rng.randrange(10**6)}", ts=1000.0 + rng.random(), ts_end=1001.0,
        proto=rng.choice(["tcp", "udp", "icmp", "sctp"]), src_ip=rng.choice(["10.0.0.1", "10.0.0.2"]),
        dst_ip=rng.choice(["203.0.113.9", "198.51.100.7"]), dst_port=rng.choice([443, 53, 8443, 9999, 853, 80]),
        bytes_out=rng.choice([0, 10, 16, 1024, 5000, 100_000]), bytes_in=rng.choice([0, 1, 500, 2000, 10**6]))
    r["l7"] = l7
    r["dst_name"] = rng.choice([None, "", "api.example.com", "API.example.com"])
    r["app"] = rng.choice([None, "com.example.app", "com.other"])
    r["payload"] = rng.choice([None, {}, {"out": None}, {"out": {"observable": False}},
                               {"out": {"class": "encrypted", "entropy": 7.9, "n": 4096}},
                               {"out": {"class": "encrypted", "entropy": None}},
                               {"out": {"class": "encoded", "decoded": {"class": "encrypted"}}},
                               {"out": {"class": "encoded", "decoded": None, "observable": True}}])
    r["framing"] = rng.sample(sorted(FRAMING_KINDS) + ["unknown_thing"], rng.randrange(3)) if rng.random() < .3 \
        else rng.choice([[], None])
    r["tls"] = rng.choice([None, {}, {"sni": "api.example.com", "version": "TLSv1.3", "ja4": "t13d_known"},
                           {"sni": None, "version": "1.2", "cert": {"self_signed": True, "subject": "CN=x"},
                            "client_cert": True},
                           {"sni": "other.example.org", "cert": {"self_signed": False}, "ja4": "t13d_other"}])
    r["http"] = rng.choice([None, {}, {"uploads": [{"body_class": "encrypted", "size": 300, "method": "PUT"},
                                                   "not a dict", {"body_class": "text"}]},
                            {"uploads": [{"body_class": "encrypted"}, {"body_class": "encrypted", "size": "7"}]}])
    return r


BASELINE = Baseline({"com.example.app": {"names": ["example.com"], "prefixes": ["203.0.113.0/24"], "ports": [443],
                                         "ja4": ["t13d_known"]}})


@pytest.mark.parametrize("baseline", [None, BASELINE])
def test_kinds_only_are_the_kinds_of_the_full_evidence(baseline):
    rng = random.Random(7)
    seen: set[str] = set()
    for _ in range(4000):
        r = _random_record(rng)
        subject, named = subject_of(r), bool(r.get("dst_name"))
        kinds = network_kinds(r, baseline, subject, named)
        evidence = network_evidence(r, baseline, subject, named)
        assert kinds == [e["kind"] for e in evidence]
        assert all(isinstance(e["detail"], str) and e["detail"] for e in evidence)
        seen.update(kinds)
    # the random records reach (nearly) every network rule, so the comparison means something
    assert len(seen) >= 18


def test_evidence_wording_of_a_conn_only_record():
    r = new_flow_record(flow_id="F", ts=1.0, ts_end=2.0, proto="tcp", src_ip="10.0.0.1", dst_ip="203.0.113.9",
                        dst_port=443, bytes_out=5000, bytes_in=10)
    r.update(l7="unknown", payload={"out": {"observable": False}}, framing=[], tls=None, http=None, dst_name=None)
    got = [(e["kind"], e["detail"]) for e in network_evidence(r, None, "client:10.0.0.1", False)]
    assert got == [("payload_not_observable", "no payload visible for 203.0.113.9:443"),
                   ("upload_dominant", "5000 bytes out vs 10 in to 203.0.113.9:443"),
                   ("direct_ip", "203.0.113.9 was contacted without a DNS answer naming it")]


def test_spearman_exact_equals_spearman():
    rng = np.random.default_rng(3)
    for trial in range(2000):
        n = int(rng.integers(2, 80))
        x = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.uniform(0, 1e4, n)
        y = rng.integers(0, 6, n) if trial % 3 else rng.integers(0, 10**9, n)
        assert _spearman_exact(x, y) == _spearman(x.tolist(), y.tolist())
    x = np.arange(50, dtype=float)
    assert _spearman_exact(x, np.arange(50) * 3) == _spearman(x.tolist(), list(range(0, 150, 3))) == 1.0


def _uploads(rng: np.random.Generator, trial: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(0, 70))
    if trial % 4 == 0:  # coarse times: ties, out of order
        ts = np.round(rng.uniform(0, 30_000, n), -3)
    else:
        ts = np.sort(rng.uniform(1.7e9, 1.7e9 + 3 * 86400, n))
    gaps = np.diff(ts, prepend=ts[0] if n else 0.0)
    if trial % 3 == 0:  # sizes that grow with the gap: accumulating uploads
        sizes = (gaps * 10).astype(np.int64) + 10_240
    else:
        sizes = rng.integers(0, 60_000, n)
    if trial % 7 == 0:
        sizes = sizes // 20_000 * 20_000
    return ts, sizes


def test_staging_columns_equal_staging():
    rng = np.random.default_rng(5)
    kinds: set[str] = set()
    for trial in range(3000):
        ts, sizes = _uploads(rng, trial)
        fast = _staging_columns(ts, sizes)
        plain = _staging(list(zip(ts.tolist(), sizes.tolist())))
        assert list(fast.items()) == list(plain.items())
        kinds.update(e["kind"] for items in plain.values() for e in items)
    assert kinds == {"upload_after_silence", "accumulating_uploads"}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_staging_columns_hand_non_finite_times_to_staging(bad):
    ts = np.array([0.0, 4000.0, bad, 9000.0, 20000.0, 40000.0])
    sizes = np.array([20_000, 30_000, 10, 50_000, 60_000, 90_000])
    fast, plain = _staging_columns(ts, sizes), _staging(list(zip(ts.tolist(), sizes.tolist())))
    assert [(repr(t), v) for t, v in fast.items()] == [(repr(t), v) for t, v in plain.items()]


def test_stable_argsort_equals_numpy_stable_argsort():
    rng = np.random.default_rng(11)
    for trial in range(300):
        n = int(rng.integers(0, 3000))
        nmaj, nmin = int(rng.integers(1, 50)), int(rng.integers(1, 70))
        major = rng.integers(0, nmaj, n).astype(np.uint64)
        minor = rng.integers(0, nmin, n).astype(np.uint64)
        if trial % 5 == 0:  # bounds too wide to pack: the plain stable argsort
            nmaj, nmin = 1 << 31, 1 << 31
        order, sorted_keys = _stable_argsort(major, nmaj, minor, nmin)
        reference = np.argsort(major * np.uint64(1 << 32) + minor, kind="stable")
        assert order.tolist() == reference.tolist()
        pairs = list(zip(major[reference].tolist(), minor[reference].tolist()))
        same = [a == b for a, b in zip(pairs, pairs[1:])]
        assert (sorted_keys[1:] == sorted_keys[:-1]).tolist() == same
        only, _ = _stable_argsort(major, nmaj)
        assert only.tolist() == np.argsort(major, kind="stable").tolist()


def _random_builder(rng: random.Random, odd: bool = False) -> ChainBuilder:
    cb = ChainBuilder(store=object())
    for i in range(3000):
        ts = float(rng.randrange(40)) * 60.0 + rng.choice([0.0, 0.5, math.nan if i % 97 == 0 else 0.0])
        r = {"app": None, "src_ip": f"10.0.0.{rng.randrange(4)}", "dst_ip": f"192.0.2.{rng.randrange(6)}",
             "dst_port": 443, "proto": "tcp", "ts": ts, "ts_end": ts + 1.0, "bytes_out": rng.randrange(3000)}
        if odd and i % 50 == 0:
            r["ts"] = ts if math.isnan(ts) else int(ts)  # an int time: kept as the record had it
        cb.observe(r, i)
    return cb


@pytest.mark.parametrize("odd", [False, True])
def test_one_sort_orders_each_key_like_a_stable_sort_per_key(odd):
    cb = _random_builder(random.Random(2), odd)
    assert bool(cb._odd) is odd
    keys = np.frombuffer(cb._key, dtype=np.uint64)
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], sk[1:] != sk[:-1])))
    ends = np.append(starts[1:], len(keys))
    flows, bounds = cb._in_time_order(order, starts, ends)
    for g, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        idx = order[starts[g]:ends[g]]
        ts_of = np.array([float(cb._value("ts", cb._ts, i)) for i in idx.tolist()])
        assert flows[lo:hi].tolist() == idx[np.argsort(ts_of, kind="stable")].tolist()
    for name in ("ts", "ts_end", "bytes_out"):
        col = getattr(cb, f"_{name}")
        got = cb._values(name, flows)
        want = [cb._value(name, col, i) for i in flows.tolist()]
        assert [(type(v), repr(v)) for v in got] == [(type(v), repr(v)) for v in want]


def test_side_ids_follow_subject_of_and_survive_absorb():
    rng = random.Random(4)
    records = [{"device": rng.choice([None, "d1"]), "app": rng.choice([None, "", "com.a", "com.b"]),
                "src_ip": rng.choice(["10.0.0.1", "10.0.0.2"]), "dst_ip": "192.0.2.1", "dst_port": rng.choice([1, 443]),
                "ts": 1.0, "ts_end": 2.0, "bytes_out": 1} for _ in range(400)]
    a, b = ChainBuilder(store=object()), ChainBuilder(store=object())
    for i, r in enumerate(records[:200]):
        a.observe(r, i)
    for i, r in enumerate(records[200:300]):
        b.observe(r, i)
    a.absorb(b.state(), 200)
    for i, r in enumerate(records[300:]):
        a.observe(r, 300 + i)
    sides = list(a._sides)
    assert a._subjects == [s[2] for s in sides]
    for r, key in zip(records, np.frombuffer(a._key, dtype=np.uint64).tolist()):
        assert sides[key >> 32] == (r["device"], r["app"], subject_of(r), r["dst_port"])
