"""Per-app (or per-client) expected behaviour, learned from captures known to be normal.

The file is JSON, documented in docs/chains.md, and meant to be edited by hand:
an analyst can add an allowed destination name, prefix, port or fingerprint.

    {"schema": "netan-baseline/1",
     "subjects": {"com.example.app": {"names": ["api.example.com"], "prefixes": ["203.0.113.0/24"],
                                      "ports": [443], "l7": ["tls"], "ja4": ["t13d..."],
                                      "bytes_out_p95": 40960, "flows": 120}}}

A subject is the Android package name, or ``client:<ip>`` without context.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from netan.problems import InputError
from netan.sinks.atomic import write_json

__all__ = ["Baseline", "subject_of", "learn_baseline", "BASELINE_SCHEMA"]

BASELINE_SCHEMA = "netan-baseline/1"


def subject_of(record: dict[str, Any]) -> str:
    app = record.get("app")
    return app if app else f"client:{record.get('src_ip')}"


def _prefix(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    return str(ipaddress.ip_network(f"{ip}/{24 if addr.version == 4 else 48}", strict=False))


@dataclass
class Baseline:
    subjects: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str | None = None

    @classmethod
    def load(cls, path: str) -> "Baseline":
        """Read a baseline; any problem is an InputError naming the file (exit status 1)."""
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError as e:
            raise InputError(path, e.strerror or str(e)) from None
        except ValueError as e:
            raise InputError(path, f"baseline is not valid JSON ({e})") from None
        if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
            raise InputError(path, f"not a netan baseline (schema {BASELINE_SCHEMA!r} expected)")
        subjects = data.get("subjects")
        if not isinstance(subjects, dict) or not all(isinstance(v, dict) for v in subjects.values()):
            raise InputError(path, "'subjects' must be an object of objects")
        return cls(subjects, path)

    def save(self, path: str) -> None:
        write_json(path, {"schema": BASELINE_SCHEMA, "subjects": self.subjects})

    def knows_subject(self, subject: str) -> bool:
        return subject in self.subjects

    def destination_known(self, subject: str, record: dict[str, Any]) -> bool:
        entry = self.subjects.get(subject)
        if not entry:
            return False
        name = record.get("dst_name") or ((record.get("tls") or {}).get("sni"))
        names = set(entry.get("names", []))
        if name and (name in names or any(name.endswith("." + n) for n in names)):
            return True
        try:
            addr = ipaddress.ip_address(record["dst_ip"])
            in_prefix = any(addr in ipaddress.ip_network(p, strict=False) for p in entry.get("prefixes", []))
        except (ValueError, KeyError, TypeError):
            in_prefix = False
        ports = entry.get("ports")
        return in_prefix and (not ports or record.get("dst_port") in ports)

    def fingerprint_known(self, subject: str, record: dict[str, Any]) -> bool:
        ja4 = (record.get("tls") or {}).get("ja4")
        return bool(ja4) and ja4 in self.subjects.get(subject, {}).get("ja4", [])


def learn_baseline(records: Iterable[dict[str, Any]]) -> Baseline:
    """Destinations, ports, protocols, fingerprints and volumes per subject."""
    acc: dict[str, dict[str, Any]] = {}
    for r in records:
        s = acc.setdefault(subject_of(r), {"names": set(), "prefixes": set(), "ports": set(), "l7": set(),
                                           "ja4": set(), "sizes": [], "flows": 0})
        name = r.get("dst_name") or ((r.get("tls") or {}).get("sni"))
        if name:
            s["names"].add(name)
        try:
            s["prefixes"].add(_prefix(r["dst_ip"]))
        except (ValueError, KeyError):
            pass
        s["ports"].add(r.get("dst_port"))
        s["l7"].add(r.get("l7", "unknown"))
        ja4 = (r.get("tls") or {}).get("ja4")
        if ja4:
            s["ja4"].add(ja4)
        s["sizes"].append(r.get("bytes_out", 0))
        s["flows"] += 1
    out: dict[str, dict[str, Any]] = {}
    for subject, s in sorted(acc.items()):
        sizes = sorted(s["sizes"])
        out[subject] = {
            "names": sorted(s["names"]), "prefixes": sorted(s["prefixes"]),
            "ports": sorted(p for p in s["ports"] if isinstance(p, int)), "l7": sorted(s["l7"]),
            "ja4": sorted(s["ja4"]), "bytes_out_p95": sizes[int(0.95 * (len(sizes) - 1))] if sizes else 0,
            "flows": s["flows"],
        }
    return Baseline(out)
