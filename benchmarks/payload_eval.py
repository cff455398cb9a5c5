"""Labeled evaluation of netan's payload classifier, built from real producers only.

Every sample is produced on this machine by a real program or library from real
files found on it -- nothing is synthesised to look like a class:

* text       Python sources of the standard library, man pages (roff, after
             gunzip), /usr/share/doc copyright/README files
* binary     ELF shared libraries and executables, CPython .pyc files
* compressed gzip/zlib/raw deflate (zlib), bzip2 (bz2), xz and lzma-alone
             (lzma), zstd (zstandard), brotli (brotli) over text and binary
             files; PNG/JPEG/GIF files found on disk (media is "compressed")
* encrypted  `cryptography`: AES-128/256-GCM, AES-CBC (PKCS7), AES-CTR, AES-ECB,
             ChaCha20-Poly1305, RSA-2048-OAEP(SHA-256), each over real files
             (random-looking and structured plaintexts) and over repeated
             plaintexts (one short message repeated), IV/nonce prepended as apps
             send it
* encoded    base64 (std/url, padded/unpadded), base32 and hex of ciphertext

Files are split into disjoint "dev" and "test" halves by a hash of their path;
thresholds in netan.analyzers.payload were chosen looking at dev only, the
table in docs/payload.md is the test half.  Samples are cut at sizes 16, 64,
256, 1024 and 4096 either from the start of each object ("prefix": what a
flow's first bytes look like) or at a random offset ("interior": a packet in
the middle of a stream, the setting of HEDGE).

Usage:
  python benchmarks/payload_eval.py [--split test] [--mode prefix|interior|both]
      [--per-producer 40] [--markdown] [--json FILE] [--timing]
"""
from __future__ import annotations

import argparse
import base64
import bz2
import glob
import gzip
import hashlib
import json
import logging
import lzma
import os
import random
import sys
import time
import timeit
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import brotli
import zstandard
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as apadding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from netan.analyzers.payload import classify  # noqa: E402
from netan.analyzers.randomness import fet_features  # noqa: E402

log = logging.getLogger("payload_eval")

SIZES = (16, 64, 256, 1024, 4096)
MAX_FILE = 256 * 1024
LABELS = ("encrypted", "compressed", "encoded", "text", "binary")
PAIRS = (
    ("encrypted", "text"),
    ("encrypted", "binary"),
    ("encrypted", "compressed"),
    ("encrypted", "encoded"),
    ("compressed", "text"),
    ("compressed", "binary"),
    ("encoded", "text"),
    ("text", "binary"),
)


@dataclass(frozen=True)
class Obj:
    label: str
    producer: str
    data: bytes


def _split_of(path: str) -> str:
    return "dev" if hashlib.sha256(path.encode()).digest()[0] < 128 else "test"


def _pick(pattern: str | list[str], split: str, k: int, rng: random.Random, min_size: int = 4096) -> list[str]:
    paths = sorted(set(pattern if isinstance(pattern, list) else glob.glob(pattern, recursive=True)))
    paths = [p for p in paths if split == "all" or _split_of(p) == split]
    rng.shuffle(paths)
    out = []
    for p in paths:
        try:
            if os.path.isfile(p) and not os.path.islink(p) and os.path.getsize(p) >= min_size:
                out.append(p)
        except OSError:
            continue
        if len(out) >= k:
            break
    return out


def _read(p: str) -> bytes:
    with open(p, "rb") as fh:
        return fh.read(MAX_FILE)


def _is_elf(p: str) -> bool:
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def text_files(split: str, k: int, rng: random.Random) -> list[bytes]:
    py = _pick("/usr/lib/python3*/**/*.py", split, k, rng)
    man = _pick("/usr/share/man/man[1-8]/*.gz", split, k, rng, min_size=2048)
    doc = _pick("/usr/share/doc/*/copyright", split, k, rng, min_size=4096)
    out = [_read(p) for p in py + doc]
    for p in man:
        try:
            out.append(gzip.decompress(_read(p))[:MAX_FILE])
        except (OSError, EOFError):
            continue
    return [d for d in out if len(d) >= 64]


def binary_files(split: str, k: int, rng: random.Random) -> list[bytes]:
    libs = [p for p in _pick("/usr/lib/x86_64-linux-gnu/*.so*", split, 3 * k, rng) if _is_elf(p)][:k]
    bins = [p for p in _pick("/usr/bin/*", split, 3 * k, rng) if _is_elf(p)][:k]
    pyc = _pick("/usr/lib/python3*/**/__pycache__/*.pyc", split, k, rng)
    return [_read(p) for p in libs + bins + pyc]


def media_files(split: str, k: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """PNG/JPEG/GIF files under a few data roots (one directory walk, no recursion limit issues)."""
    exts = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".gif": "gif"}
    found: dict[str, list[str]] = defaultdict(list)
    for root in ("/usr/share", "/usr/lib/google-cloud-sdk", "/root/.rustup/toolchains"):
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                ext = os.path.splitext(f)[1].lower()
                if ext in exts:
                    found[exts[ext]].append(os.path.join(dirpath, f))
    out = []
    for fmt, paths in sorted(found.items()):
        for p in _pick(paths, split, k, rng, min_size=4096):
            out.append((fmt, _read(p)))
    return out


def _raw_deflate(d: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(d) + c.flush()


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda d: gzip.compress(d, mtime=0),
    "zlib": zlib.compress,
    "deflate": _raw_deflate,
    "bzip2": bz2.compress,
    "xz": lambda d: lzma.compress(d, format=lzma.FORMAT_XZ),
    "lzma": lambda d: lzma.compress(d, format=lzma.FORMAT_ALONE),
    "zstd": lambda d: zstandard.ZstdCompressor(level=3).compress(d),
    "brotli": lambda d: brotli.compress(d, quality=5),
}


def ciphers(rng: random.Random) -> dict[str, Callable[[bytes], bytes]]:
    rb = rng.randbytes
    key16, key32 = rb(16), rb(32)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    oaep = apadding.OAEP(mgf=apadding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)

    def gcm(d: bytes) -> bytes:
        nonce = rb(12)
        return nonce + AESGCM(key16).encrypt(nonce, d, None)

    def chacha(d: bytes) -> bytes:
        nonce = rb(12)
        return nonce + ChaCha20Poly1305(key32).encrypt(nonce, d, None)

    def cbc(d: bytes) -> bytes:
        iv = rb(16)
        p = padding.PKCS7(128).padder()
        e = Cipher(algorithms.AES(key32), modes.CBC(iv)).encryptor()
        return iv + e.update(p.update(d) + p.finalize()) + e.finalize()

    def ctr(d: bytes) -> bytes:
        iv = rb(16)
        e = Cipher(algorithms.AES(key16), modes.CTR(iv)).encryptor()
        return iv + e.update(d) + e.finalize()

    def ecb(d: bytes) -> bytes:
        p = padding.PKCS7(128).padder()
        e = Cipher(algorithms.AES(key16), modes.ECB()).encryptor()
        return e.update(p.update(d) + p.finalize()) + e.finalize()

    def rsa_oaep(d: bytes) -> bytes:
        # hybrid-less RSA as some malware does: one OAEP block per 190-byte chunk
        chunks = [d[i : i + 190] for i in range(0, min(len(d), 190 * 24), 190)]
        return b"".join(rsa_key.encrypt(c, oaep) for c in chunks)

    return {"aes-gcm": gcm, "chacha20-poly1305": chacha, "aes-cbc": cbc, "aes-ctr": ctr, "aes-ecb": ecb, "rsa-oaep": rsa_oaep}


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "base64": base64.b64encode,
    "base64-nopad": lambda d: base64.b64encode(d).rstrip(b"="),
    "base64url": lambda d: base64.urlsafe_b64encode(d).rstrip(b"="),
    "base64-mime": base64.encodebytes,
    "base32": base64.b32encode,
    "hex": lambda d: d.hex().encode(),
}


def build(split: str, per_producer: int, seed: int = 7) -> list[Obj]:
    rng = random.Random(seed)
    texts = text_files(split, per_producer, rng)
    bins = binary_files(split, per_producer, rng)
    objs: list[Obj] = []
    objs += [Obj("text", "text-file", d) for d in texts]
    objs += [Obj("binary", "binary-file", d) for d in bins]
    plain = texts[:per_producer] + bins[:per_producer]
    for name, fn in COMPRESSORS.items():
        for d in rng.sample(plain, min(per_producer, len(plain))):
            objs.append(Obj("compressed", name, fn(d)))
    objs += [Obj("compressed", ext, d) for ext, d in media_files(split, per_producer, rng)]
    repeated = [
        b"user=alice&lat=52.5200&lon=13.4050&imei=356938035643809\n" * 200,
        b"\x00" * 8192,
        b"The same 32-byte record, again." * 256,
        bytes(range(256)) * 32,
    ]
    enc_objs: list[Obj] = []
    for name, fn in ciphers(rng).items():
        for d in rng.sample(plain, min(per_producer, len(plain))):
            enc_objs.append(Obj("encrypted", name, fn(d[: 8192])))
        for d in repeated:
            enc_objs.append(Obj("encrypted", f"{name}/repeated", fn(d)))
    objs += enc_objs
    for name, fn in ENCODERS.items():
        for o in rng.sample(enc_objs, min(per_producer, len(enc_objs))):
            objs.append(Obj("encoded", name, fn(o.data[:6144])))
    return objs


def cut(objs: list[Obj], sizes: tuple[int, ...], mode: str, seed: int = 11) -> Iterator[tuple[Obj, int, bytes]]:
    rng = random.Random(seed)
    for o in objs:
        for n in sizes:
            if len(o.data) < n:
                continue
            if mode == "prefix":
                yield o, n, o.data[:n]
            else:
                if len(o.data) < 2 * n:
                    continue
                off = rng.randrange(n // 2, len(o.data) - n + 1)
                yield o, n, o.data[off : off + n]


def evaluate(objs: list[Obj], sizes: tuple[int, ...], mode: str) -> dict:
    conf: dict[int, Counter] = defaultdict(Counter)  # size -> (truth, pred) -> count
    by_prod: dict[tuple[str, int], Counter] = defaultdict(Counter)
    # "called encrypted" rate per true class: netan vs the Wu et al. 2023 GFW rule
    flagged: dict[tuple[str, int], Counter] = defaultdict(Counter)
    for o, n, s in cut(objs, sizes, mode):
        pred = classify(s).cls
        conf[n][(o.label, pred)] += 1
        by_prod[(o.producer, n)][pred == o.label] += 1
        f = flagged[(o.label, n)]
        f["total"] += 1
        f["netan"] += pred == "encrypted"
        f["gfw"] += fet_features(s).fully_encrypted
    pairs = {}
    for a, b in PAIRS:
        row = {}
        for n in sizes:
            recs = []
            for lab in (a, b):
                tot = sum(v for (t, _), v in conf[n].items() if t == lab)
                ok = conf[n][(lab, lab)]
                if tot:
                    recs.append(ok / tot)
            row[n] = round(100 * sum(recs) / len(recs), 1) if len(recs) == 2 else None
        pairs[f"{a} vs {b}"] = row
    per_class = {}
    for lab in LABELS:
        row = {}
        for n in sizes:
            tot = sum(v for (t, _), v in conf[n].items() if t == lab)
            row[n] = (round(100 * conf[n][(lab, lab)] / tot, 1), tot) if tot else None
        per_class[lab] = row
    producers = {
        f"{p}@{n}": round(100 * c[True] / (c[True] + c[False]), 1) for (p, n), c in sorted(by_prod.items())
    }
    confusion = {n: {f"{t}->{p}": v for (t, p), v in sorted(conf[n].items())} for n in sizes}
    called = {
        lab: {n: (round(100 * flagged[(lab, n)]["netan"] / flagged[(lab, n)]["total"], 1),
                  round(100 * flagged[(lab, n)]["gfw"] / flagged[(lab, n)]["total"], 1))
              for n in sizes if flagged[(lab, n)]["total"]}
        for lab in LABELS
    }
    return {"mode": mode, "pairs": pairs, "per_class": per_class, "producers": producers,
            "confusion": confusion, "called_encrypted": called}


def timing(objs: list[Obj]) -> dict[str, float]:
    """Median microseconds per classify() call on 4 KiB samples of each class.

    Process CPU time (time.process_time), best of 5 batches of 200 calls:
    on a shared machine wall-clock time mostly measures the other jobs.
    """
    res = {}
    for lab in LABELS:
        xs = [o.data[:4096] for o in objs if o.label == lab and len(o.data) >= 4096][:30]
        if not xs:
            continue
        per = []
        for x in xs:
            classify(x)  # warm the per-n memo
            t = timeit.Timer(lambda: classify(x), timer=time.process_time)
            loops = 200
            per.append(min(t.repeat(repeat=5, number=loops)) / loops * 1e6)
        per.sort()
        res[lab] = round(per[len(per) // 2], 1)
        res[lab + "_p90"] = round(per[int(len(per) * 0.9)], 1)
    return res


def markdown(res: dict, sizes: tuple[int, ...]) -> str:
    head = "| pair | " + " | ".join(f"{n} B" for n in sizes) + " |\n|---|" + "---|" * len(sizes) + "\n"
    lines = [f"**mode: {res['mode']}** (balanced accuracy %, a sample is right only if its exact class is predicted)\n", head]
    for k, row in res["pairs"].items():
        lines.append(f"| {k} | " + " | ".join("–" if row[n] is None else f"{row[n]}" for n in sizes) + " |\n")
    lines.append("\n| class (recall %, samples) | " + " | ".join(f"{n} B" for n in sizes) + " |\n|---|" + "---|" * len(sizes) + "\n")
    for k, row in res["per_class"].items():
        lines.append(f"| {k} | " + " | ".join("–" if row[n] is None else f"{row[n][0]} ({row[n][1]})" for n in sizes) + " |\n")
    lines.append("\n| called encrypted %: netan / GFW rule | " + " | ".join(f"{n} B" for n in sizes) + " |\n|---|" + "---|" * len(sizes) + "\n")
    for k, row in res["called_encrypted"].items():
        lines.append(f"| {k} | " + " | ".join(f"{row[n][0]} / {row[n][1]}" if n in row else "–" for n in sizes) + " |\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="test", choices=("dev", "test", "all"))
    ap.add_argument("--mode", default="both", choices=("prefix", "interior", "both"))
    ap.add_argument("--per-producer", type=int, default=40)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--producers", action="store_true", help="also print per-producer accuracy")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--timing", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    t0 = time.perf_counter()
    objs = build(args.split, args.per_producer)
    counts = Counter(o.label for o in objs)
    log.info("built %d objects %s in %.1fs", len(objs), dict(counts), time.perf_counter() - t0)
    out = {"split": args.split, "objects": dict(counts), "results": []}
    for mode in ("prefix", "interior") if args.mode == "both" else (args.mode,):
        res = evaluate(objs, sizes, mode)
        out["results"].append(res)
        sys.stdout.write(markdown(res, sizes) + "\n")
        if args.producers:
            for k, v in res["producers"].items():
                if v < 100:
                    sys.stdout.write(f"  {k}: {v}\n")
    if args.timing:
        out["timing_us"] = timing(objs)
        sys.stdout.write("classify() on 4 KiB, median us: " + json.dumps(out["timing_us"]) + "\n")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
