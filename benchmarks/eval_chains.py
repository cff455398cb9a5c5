#!/usr/bin/env python3
"""Chain evaluation: recall, false alarms and ROC AUC per analytic, with and without
baseline and context, on scenarios recorded for real (netan.testing.scenarios).

usage: python benchmarks/eval_chains.py [--data DIR] [--record] [--json OUT]

--record records the scenarios first (root and `ip netns` needed, ~30 s); DIR
defaults to benchmarks/data/eval. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def netan(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "netan.cli", "-q", *args], check=True)


def app_scores(out: Path, labels: dict, period: str = "eval") -> dict[str, tuple[int, list[str]]]:
    """Best chain score (and its analytics) per app, tying chain flows to apps by 5-tuple."""
    owner = {(f[1], f[2], f[3], f[4], f[5]): f[0] for f in labels["flows"][period]}
    flows = {}
    for line in (out / "flows.jsonl").read_text().splitlines():
        r = json.loads(line)
        flows[r["flow_id"]] = owner.get((r["proto"], r["src_ip"], r["src_port"], r["dst_ip"], r["dst_port"]))
    best: dict[str, tuple[int, list[str]]] = {a["package"]: (0, []) for a in labels["apps"]}
    chains_path = out / "chains.jsonl"
    for line in chains_path.read_text().splitlines() if chains_path.exists() else []:
        c = json.loads(line)
        for pkg in {flows.get(f) for f in c["flows"]} - {None}:
            if pkg in best and c["score"] > best[pkg][0]:
                best[pkg] = (c["score"], c["analytics"])
    return best


def auc(pos: list[float], neg: list[float]) -> float:
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def evaluate(data: Path) -> dict:
    labels = json.loads((data / "labels.json").read_text())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        baseline = tmp_p / "baseline.json"
        netan("baseline", str(data / "normal.pcap"), "--context", str(data / "context_normal"), "--out", str(baseline))
        baseline_nc = tmp_p / "baseline_nc.json"
        netan("baseline", str(data / "normal.pcap"), "--out", str(baseline_nc))
        for ctx in (True, False):
            for bl in (True, False):
                out = tmp_p / f"out_{ctx}_{bl}"
                args = ["analyze", str(data / "eval.pcap"), "--out", str(out)]
                if ctx:
                    args += ["--context", str(data / "context_eval")]
                if bl:
                    args += ["--baseline", str(baseline if ctx else baseline_nc)]
                netan(*args)
                scores = app_scores(out, labels)
                results[(ctx, bl)] = scores
    table = {}
    for (ctx, bl), scores in results.items():
        row = {}
        for analytic in ("AN1716", "AN1731", "AN1762"):
            mal = [a for a in labels["apps"] if a["malicious"] and a["analytic"] == analytic]
            hit = [a for a in mal if scores[a["package"]][0] >= 70 and analytic in scores[a["package"]][1]]
            benign_scores = [scores[a["package"]][0] for a in labels["apps"] if not a["malicious"]]
            row[analytic] = {"recall": len(hit) / len(mal) if mal else None, "detected": len(hit), "of": len(mal),
                             "auc": auc([scores[a["package"]][0] for a in mal], benign_scores)}
        benign = [a for a in labels["apps"] if not a["malicious"]]
        row["false_alarms"] = sum(1 for a in benign if scores[a["package"]][0] >= 70)
        row["benign"] = len(benign)
        row["auc"] = auc([scores[a["package"]][0] for a in labels["apps"] if a["malicious"]],
                         [scores[a["package"]][0] for a in benign])
        row["custom_crypto_min_score"] = min(scores[a["package"]][0] for a in labels["apps"]
                                             if a["malicious"] and "TCP" in a["what"] or "RC4" in a["what"]
                                             or "static IV" in a["what"])
        row["scores"] = {pkg: s for pkg, (s, _) in scores.items()}
        row["analytics"] = {pkg: an for pkg, (_, an) in scores.items()}
        table[f"context={'yes' if ctx else 'no'} baseline={'yes' if bl else 'no'}"] = row
    return table


def render(table: dict) -> str:
    lines = ["| setting | AN1716 recall (AUC) | AN1731 recall (AUC) | AN1762 recall (AUC) | false alarms (benign >= 70) "
             "| ROC AUC, all |", "|---|---|---|---|---|---|"]
    for name, row in table.items():
        cells = [f"{row[a]['detected']}/{row[a]['of']} ({row[a]['auc']:.2f})" for a in ("AN1716", "AN1731", "AN1762")]
        lines.append(f"| {name} | {' | '.join(cells)} | {row['false_alarms']}/{row['benign']} | {row['auc']:.2f} |")
    lines.append("")
    names = list(table)
    lines.append("| app | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for pkg in table[names[0]]["scores"]:
        lines.append(f"| {pkg} | " + " | ".join(
            f"{table[n]['scores'][pkg]} {','.join(table[n]['analytics'][pkg])}" for n in names) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE / "data" / "eval")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.record or not (args.data / "labels.json").exists():
        from netan.testing.scenarios import record_scenarios

        record_scenarios(args.data)
    table = evaluate(args.data)
    print(render(table))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
