#!/usr/bin/env python3
"""Scores bench/scan.sh's runs against the corpus manifest: throughput,
recall on the planted secrets, false positives on the decoys and
elsewhere. Prints a Markdown table for BENCHMARKS.md.

    bench/scan_score.py DIR TREE_BYTES HISTORY_BYTES
"""

import json
import os
import re
import sys


def load(path):
    with open(path) as f:
        return f.read()


def latchkey_hits(text):
    try:
        return [(f["path"], f["line"]) for f in json.loads(text)["findings"]]
    except (ValueError, KeyError):
        return []


def detect_secrets_hits(text):
    try:
        results = json.loads(text)["results"]
    except (ValueError, KeyError):
        return []
    return [(path, r["line_number"]) for path, rs in results.items() for r in rs]


def git_secrets_hits(text):
    hits = []
    for line in text.splitlines():
        # `path:line:text`, or `commit:path:line:text` from --scan-history.
        m = re.match(r"^(?:[0-9a-f]{40}:)?([^:\s][^:]*):(\d+):", line)
        if m:
            hits.append((m.group(1), int(m.group(2))))
    return hits


def score(manifest, hits, history):
    """(found planted, planted, decoy hits, other hits). A planted secret
    is found by a hit on a line of its block, in its file."""
    planted = manifest["history"] if history else manifest["planted"]
    hit_set = set(hits)
    found = sum(1 for p in planted if any((p["path"], l) in hit_set for l in p["lines"]))
    if history:
        on_planted = {(p, l) for p, l in hits if p.startswith("history/") or p.startswith("config/")}
    else:
        on_planted = {(p["path"], l) for p in planted for l in p["lines"]} & hit_set
    decoy_lines = {(d["path"], d["line"]) for d in manifest["decoys"]}
    unique = set(hits)
    decoy_hits = len(unique & decoy_lines)
    other = len(unique - decoy_lines - on_planted)
    if history:
        # History runs see every version of every file: only the tree's
        # decoy lines are known, so the rest is counted as "other".
        other = len({(p, l) for p, l in unique if not (p.startswith("history/") or p.startswith("config/"))})
        decoy_hits = 0
    return found, len(planted), decoy_hits, other


def relative(hits, repo):
    """Paths relative to the repository (a scan given its path reports them under it)."""
    prefix = repo.rstrip("/") + "/"
    return [(p[len(prefix):] if p.startswith(prefix) else p, l) for p, l in hits]


def sweep(d):
    """The generic-secret entropy threshold against the corpus: recall of
    the planted generic secrets (random and human-made) and findings on
    decoy lines, per threshold."""
    repo = os.path.join(d, "repo")
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    generic = [p for p in manifest["planted"] if p["kind"] == "generic-secret"]
    decoy_lines = {(x["path"], x["line"]) for x in manifest["decoys"]}
    out = os.path.join(d, "out")
    print("| bits | generic recall (random) | generic recall (human) | findings on decoys | all findings |")
    print("|---|---|---|---|---|")
    for name in sorted(f for f in os.listdir(out) if f.startswith("sweep-") and f.endswith(".out")):
        bits = name[len("sweep-"):-len(".out")]
        hits = set(relative(latchkey_hits(load(os.path.join(out, name))), repo))
        cells = []
        for variant in ["random", "human"]:
            ps = [p for p in generic if p.get("variant") == variant]
            ok = sum(1 for p in ps if any((p["path"], l) in hits for l in p["lines"]))
            cells.append(f"{ok}/{len(ps)}")
        print(f"| {bits} | {cells[0]} | {cells[1]} | {len(hits & decoy_lines)} | {len(hits)} |")


def main():
    if sys.argv[1] == "--sweep":
        sweep(sys.argv[2])
        return
    d, tree_bytes, history_bytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    repo = os.path.join(d, "repo")
    manifest = json.load(open(os.path.join(d, "manifest.json")))
    out = os.path.join(d, "out")
    rows = []
    for name, parse, history, size in [
        ("latchkey", latchkey_hits, False, tree_bytes),
        ("detect-secrets", detect_secrets_hits, False, tree_bytes),
        ("git-secrets", git_secrets_hits, False, tree_bytes),
        ("latchkey-history", latchkey_hits, True, history_bytes),
        ("git-secrets-history", git_secrets_hits, True, history_bytes),
    ]:
        path = os.path.join(out, name + ".out")
        if not os.path.exists(path):
            continue
        seconds = float(load(os.path.join(out, name + ".seconds")))
        found, planted, decoys, other = score(manifest, relative(parse(load(path)), repo), history)
        rows.append((name, seconds, size / 1e6 / max(seconds, 1e-9), found, planted, decoys, other))
    print("| run | seconds | MB/s | recall | false positives on decoys | other false positives |")
    print("|---|---|---|---|---|---|")
    for name, seconds, mbs, found, planted, decoys, other in rows:
        print(f"| {name} | {seconds:.2f} | {mbs:.1f} | {found}/{planted} ({100 * found / max(planted, 1):.0f}%) "
              f"| {decoys} | {other} |")
    base = {r[0]: r for r in rows}
    if "latchkey" in base and "detect-secrets" in base:
        print(f"\nlatchkey / detect-secrets throughput on the tree: {base['latchkey'][2] / base['detect-secrets'][2]:.1f}x")
    if "latchkey-history" in base and "git-secrets-history" in base:
        print(f"latchkey / git-secrets throughput on history: "
              f"{base['latchkey-history'][2] / base['git-secrets-history'][2]:.1f}x")
    # Recall per detector, for latchkey on the tree.
    if "latchkey" in base:
        hits = set(relative(latchkey_hits(load(os.path.join(out, "latchkey.out"))), repo))
        kinds = {}
        for p in manifest["planted"]:
            ok = any((p["path"], l) in hits for l in p["lines"])
            k = kinds.setdefault(f"{p['kind']}/{p.get('variant', '')}", [0, 0])
            k[0] += ok
            k[1] += 1
        print("\nlatchkey recall by detector/variant: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(kinds.items())))
        missed = [p for p in manifest["planted"] if not any((p["path"], l) in hits for l in p["lines"])]
        for p in missed[:10]:
            print(f"  missed: {p['path']}:{p['line']} ({p['kind']}/{p.get('variant')})")
    if "latchkey-history" in base:
        hits = set(relative(latchkey_hits(load(os.path.join(out, "latchkey-history.out"))), repo))
        for p in manifest["history"]:
            if not any((p["path"], l) in hits for l in p["lines"]):
                print(f"  missed in history: {p['path']}:{p['line']} ({p['kind']}/{p.get('variant')})")


if __name__ == "__main__":
    main()
