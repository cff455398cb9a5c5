"""The chain builder's fast paths equal the plain computations they replace.

Each fast path (kinds without wording, numpy staging and Spearman, one sort for all keys,
packed stable argsort, side ids by what observe reads, candidates decided on their evidence
kinds) is checked against the plain computation on seeded random inputs, ties, NaNs and odd
values included.
"""
from __future__ import annotations

import math
import random
from types import SimpleNamespace

import numpy as np
import pytest

import netan.chains.builder as builder_mod
from netan.chains.analytics import KINDS, score_chain, score_of_kinds
from netan.chains.baseline import Baseline, subject_of
from netan.chains.builder import (
    ChainBuilder,
    _spearman,
    _spearman_exact,
    _stable_argsort,
    _staging,
    _staging_columns,
)
from netan.chains.evidence import FRAMING_KINDS, item, network_evidence, network_kinds
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


# ---- candidates decided on their evidence kinds ----------------------------------------------

def test_score_of_kinds_is_the_score_of_one_item_per_kind():
    rng = random.Random(11)
    names = sorted(KINDS)
    for _ in range(3000):
        kinds = rng.sample(names, rng.randrange(len(names) + 1))
        items = [item(k, "x") for k in kinds]
        items.sort(key=lambda e: (-abs(e["weight"]), e["kind"]))
        assert score_of_kinds(frozenset(kinds)) == score_chain(items)[0]


class _Timeline:
    """A device timeline whose every answer is drawn from the question (app, time): asked twice,
    it answers the same, as the real one does."""

    def key_events(self, app, t0, t1):
        rng = random.Random(f"k|{app}|{t1!r}")
        return [SimpleNamespace(op=rng.choice(["generate", "import", "integrity_violation", "use"]),
                                success=rng.choice([None, True, False]), alias=rng.choice(["k1", "k2", "k3"]),
                                uid=10_001, ts=t1 - rng.randrange(100)) for _ in range(rng.randrange(4))]

    def to_capture(self, ts):
        return ts

    def app_state(self, app, t):
        return random.Random(f"s|{app}|{t!r}").choice(["foreground", "visible", "background",
                                                        "foreground_service", "unknown"])

    def last_user_interaction(self, app, t):
        return random.Random(f"u|{app}|{t!r}").choice([None, t - 100.0, t - 5000.0])

    def screen_state(self, t):
        return random.Random(f"sc|{t!r}").choice(["interactive", "non_interactive"])

    def keyguard_state(self, t):
        return random.Random(f"kg|{t!r}").choice(["shown", "hidden"])


_JOIN = SimpleNamespace(ctx=SimpleNamespace(timeline=lambda device: _Timeline() if device == "d1" else None))


class _ListStore:
    def __init__(self, records):
        self.records = records

    def get(self, handles):
        return [self.records[h] for h in handles]


def _chain_records(seed: int) -> list[dict]:
    """Flows of many keys: beaconing ones (some with no other evidence), staged uploads, random ones,
    on devices with and without a timeline, so candidates land on both sides of every threshold."""
    rng = random.Random(seed)
    out = []
    for k in range(70):
        device, app = rng.choice([None, "d1", "d2"]), rng.choice([None, "com.example.app", "com.other"])
        src = f"10.0.0.{rng.randrange(3)}"
        dst_ip, port = rng.choice(["203.0.113.9", "198.51.100.7"]), rng.choice([443, 9999, 8443])
        name, tls = rng.choice([None, "api.example.com", f"h{k}.example.org"]), _random_record(rng)["tls"]
        pattern, plain = rng.choice(["beacon", "staging", "random"]), rng.random() < 0.5
        t = 10_000.0 + rng.randrange(6) * 3600.0
        for i in range(rng.randrange(24, 40) if pattern == "beacon" else rng.randrange(1, 16)):
            r = _random_record(rng)
            if pattern == "beacon":
                t, b_out = t + 60.0, 1500
            elif pattern == "staging":
                gap = rng.choice([60.0, 2000.0, 4000.0, 9000.0])
                t, b_out = t + gap, int(gap * 8)
            else:
                t, b_out = t + rng.uniform(1.0, 30_000.0), rng.choice([0, 10, 1024, 5000, 100_000])
            if plain:  # nothing but what the conn log says: such a key makes a chain by beaconing alone
                r.update(payload={"out": {"observable": False}}, framing=[], http=None, l7="unknown",
                         bytes_in=rng.choice([2000, 10**6]))
                tls, port = None, 9999
            r.update(flow_id=f"F{k}.{i}", ts=t, ts_end=t + rng.choice([0.5, 5.0]), device=device, app=app,
                     src_ip=src, dst_ip=dst_ip, dst_port=port, dst_name=name, tls=tls, bytes_out=b_out)
            out.append(r)
    rng.shuffle(out)
    return out


def _finalized(records, baseline, min_score, with_graph=True):
    cb = ChainBuilder(join=_JOIN, baseline=baseline, min_score=min_score, with_graph=with_graph,
                      store=_ListStore(records))
    for i, r in enumerate(records):
        cb.observe(r, i)
    return cb, cb.finalize()


@pytest.mark.parametrize("baseline", [None, BASELINE])
@pytest.mark.parametrize("seed", [1, 2])
def test_evidence_kinds_are_the_kinds_of_the_full_chain(baseline, seed, monkeypatch):
    """With ``min_score=0`` every candidate is built in full: what ``evidence_kinds`` said of each
    is what its chain lists, and ``score_of_kinds`` of that is its score."""
    decided, evidence_kinds = [], builder_mod.evidence_kinds

    def spy(*args):
        decided.append(evidence_kinds(*args))
        return decided[-1]

    monkeypatch.setattr(builder_mod, "evidence_kinds", spy)
    cb, chains = _finalized(_chain_records(seed), baseline, 0)
    built = [chain for chain, _ in cb.graph._chains]
    assert len(decided) == len(built) == len(chains) and cb.below_threshold == 0
    seen = set()
    for (kinds, keys), chain in zip(decided, built):
        assert kinds == {e["kind"] for e in chain["evidence"]}
        assert sorted(keys) == chain["keys"]
        assert score_of_kinds(kinds) == chain["score"]
        seen |= kinds
    # every source of kinds shows up, so the comparison means something
    assert {"beaconing", "upload_after_silence", "accumulating_uploads", "same_key_many_egress",
            "key_generated_before_egress", "no_context", "background_state", "upload_dominant"} <= seen


@pytest.mark.parametrize("baseline", [None, BASELINE])
def test_a_threshold_drops_exactly_the_chains_below_it(baseline, tmp_path):
    """Any ``min_score`` writes the chains of the full run at or above it, counts the rest, and the
    graph (drawn from the few fields it reads) is the full run's byte for byte."""
    records = _chain_records(3)
    full_cb, full = _finalized(records, baseline, 0)
    full_cb.write_graphml(str(tmp_path / "full.graphml"))
    scores = sorted({c["score"] for c in full})
    assert len(scores) >= 6  # chains on both sides of each threshold below
    for m in scores[1::max(1, len(scores) // 6)] + [101]:
        cb, chains = _finalized(records, baseline, m)
        assert chains == [c for c in full if c["score"] >= m]
        assert cb.below_threshold == len(full) - len(chains) > 0
        cb.write_graphml(str(tmp_path / "g.graphml"))
        assert (tmp_path / "g.graphml").read_bytes() == (tmp_path / "full.graphml").read_bytes()
        plain, no_graph = _finalized(records, baseline, m, with_graph=False)
        assert no_graph == chains and plain.below_threshold == cb.below_threshold and not plain.graph._chains
        with pytest.raises(ValueError):
            plain.write_graphml(str(tmp_path / "none.graphml"))


@pytest.mark.parametrize("baseline", [None, BASELINE])
def test_c_observe_notes_what_the_python_observe_notes(baseline, monkeypatch):
    """``chain_observe`` (netan.fastlane) against the Python bookkeeping: the same columns, sides,
    destinations and odd values, over records of every shape the rules read, odd types included."""
    from netan.chains import builder as builder_module

    if builder_module._C_OBSERVE is None:
        pytest.skip("netan._fastlane was not built")
    rng = random.Random(19)
    records = []
    for i in range(4000):
        r = _random_record(rng)
        r["device"] = rng.choice([None, None, "aa:bb:cc:dd:ee:ff"])
        if rng.random() < 0.05:
            r["ts"] = int(r["ts"])  # an int time
        if rng.random() < 0.05:
            r["bytes_out"] = rng.choice([2 ** 70, 12.5, True, None])
        if rng.random() < 0.03:
            del r["dst_port"]
        if rng.random() < 0.03:
            r["tls"] = rng.choice(["not a dict", {"sni": ""}, {"sni": "x.example"}])
        records.append(r)

    def noted(c_observe) -> dict:
        monkeypatch.setattr(builder_module, "_C_OBSERVE", c_observe)
        cb = ChainBuilder(baseline=baseline, store=object())
        for i, r in enumerate(records):
            try:
                cb.observe(r, i)
            except (TypeError, AttributeError):  # a size or TLS record no rule can read: both lanes refuse it alike
                pass
        return {"columns": {n: getattr(cb, f"_{n}").tobytes() for n in builder_module._NAMES},
                "sides": list(cb._sides), "dests": list(cb._dests), "odd": dict(cb._odd),
                "who": dict(cb._who), "subjects": list(cb._subjects)}

    calls = []
    fast = builder_module._C_OBSERVE

    def counting(state, r, handle):
        done = fast(state, r, handle)
        calls.append(done)
        return done

    with_c = noted(counting)
    assert calls.count(True) > 2000  # the C lane did most of the work
    assert with_c == noted(None)


def test_finalize_in_batches_equals_finalize_at_once(monkeypatch):
    """``finalize`` turns the columns of a batch of keys at a time into Python values (memory stays
    flat); the chains do not depend on the batch size."""
    from netan.chains import builder as builder_module

    rng = random.Random(8)
    records = []
    for i in range(6000):
        client, server = rng.randrange(12), rng.randrange(9)
        t = 1000.0 + (i // 9) * 60.0 + rng.random()  # regular contact per pair: beaconing candidates
        records.append({"flow_id": f"F{i}", "app": None, "device": None, "src_ip": f"10.0.0.{client}",
                        "dst_ip": f"192.0.2.{server}", "dst_port": rng.choice([443, 8443]), "proto": "tcp",
                        "l7": rng.choice(["tls", "unknown"]), "ts": t, "ts_end": t + 1.0,
                        "bytes_out": rng.choice([100, 2000, 50_000]), "bytes_in": rng.choice([10, 100_000]),
                        "payload": {"out": {"observable": False}}, "tls": None, "framing": []})

    class Store:
        def get(self, handles):
            return [dict(records[h]) for h in handles]

    def chains(batch: int) -> list:
        monkeypatch.setattr(builder_module, "_BATCH_FLOWS", batch)
        cb = ChainBuilder(store=Store(), with_graph=False, min_score=0)
        for i, r in enumerate(records):
            cb.observe(r, i)
        return cb.finalize()

    whole = chains(1 << 20)
    assert whole and whole == chains(7) == chains(1)


def test_jsonl_at_reads_lines_of_any_length_from_an_open_file(tmp_path):
    """``JsonlAt`` (records read back from flows.jsonl while it is still open, a stretch of it still
    in a part file another process is copying in) gives each record, short or far longer than its
    first read, the last one without a newline too, and leaves the writer's position alone."""
    import os

    from netan.chains.store import JsonlAt
    from netan.sinks.atomic import dumps_line

    records = [{"flow_id": f"F{i}", "pad": "x" * n} for i, n in enumerate([0, 10, 2040, 2047, 2048, 9000, 300_000, 5])]
    lines = [dumps_line(r) for r in records]
    lines[-1] = lines[-1][:-1]  # the last line without its newline
    handles = [sum(len(x) for x in lines[:i]) for i in range(len(lines))]
    in_part = (3, 6)  # records 3, 4, 5 are still in the part file: a gap of zeros in the main file
    part = tmp_path / ".part-1.flows.jsonl"
    part.write_bytes(b"".join(lines[in_part[0]:in_part[1]]))
    with open(tmp_path / "flows.jsonl", "w+b") as fh:
        for i, line in enumerate(lines):
            fh.write(b"\0" * len(line) if in_part[0] <= i < in_part[1] else line)
        fh.flush()
        store = JsonlAt(fh.fileno(), [(handles[in_part[0]], part.stat().st_size, str(part))])
        assert store.get(reversed(handles)) == list(reversed(records))
        assert os.lseek(fh.fileno(), 0, os.SEEK_CUR) == fh.tell()  # the writer's position did not move
