#!/usr/bin/env bash
# Secret-scanning benchmark, one run on this machine:
#   bench/scan.sh [DIR]        (COMMITS=5000 SIZE_MB=220 by default)
# Builds (once) a generated git repository (bench/scan_corpus.py: planted
# secrets of every detector, decoys that are not secrets) and runs on its
# working tree `latchkey scan`, detect-secrets (PyPI) and git-secrets
# (Debian; --register-aws), then on its history `latchkey scan --git` and
# `git secrets --scan-history`: MB/s, recall on the planted secrets, false
# positives on the decoys and elsewhere (bench/scan_score.py).
# Needs: pip install detect-secrets; apt install git-secrets. Uses
# LATCHKEY_BIN, else target/release/latchkey (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/tmp/latchkey-scan-bench}
commits=${COMMITS:-5000}
size_mb=${SIZE_MB:-220}
rounds=${ROUNDS:-3}
bin=${LATCHKEY_BIN:-${CARGO_TARGET_DIR:-target}/release/latchkey}
[ -x "$bin" ] || cargo build --release -p latchkey
command -v detect-secrets >/dev/null || { echo "pip install detect-secrets" >&2; exit 1; }
command -v git-secrets >/dev/null || { echo "apt install git-secrets" >&2; exit 1; }

mkdir -p "$dir"
if [ ! -f "$dir/manifest.json" ]; then
    echo "== building the corpus ($commits commits, ~$size_mb MB)" >&2
    python3 bench/scan_corpus.py "$dir" --commits "$commits" --size-mb "$size_mb"
fi
repo=$dir/repo
out=$dir/out
mkdir -p "$out"
tree_bytes=$(git -C "$repo" ls-files -z | (cd "$repo" && xargs -0 cat) | wc -c)
history_bytes=$(git -C "$repo" rev-list --objects --all | cut -d' ' -f1 | git -C "$repo" cat-file --batch-check='%(objecttype) %(objectsize)' | awk '$1 == "blob" { s += $2 } END { print s }')
echo "== tree: $tree_bytes bytes; history: $history_bytes bytes of blobs, $(git -C "$repo" rev-list --all | wc -l) commits" >&2

now() { date +%s.%N; }
# best SECONDS of ROUNDS runs of a command (its output kept from the last).
best() {
    local name=$1; shift
    local b="" t0 t1 t
    for _ in $(seq "$rounds"); do
        t0=$(now); "$@" > "$out/$name.out" 2> "$out/$name.err" || true; t1=$(now)
        t=$(echo "$t1 - $t0" | bc)
        if [ -z "$b" ] || [ "$(echo "$t < $b" | bc)" = 1 ]; then b=$t; fi
    done
    echo "$b" > "$out/$name.seconds"
}

echo "== working tree" >&2
best latchkey "$bin" scan "$repo" --no-verify --output json
# The peers get as many rounds as latchkey on the tree (PEER_ROUNDS), one
# on history (git-secrets takes ten minutes there).
rounds=${PEER_ROUNDS:-$rounds} best detect-secrets sh -c "cd '$repo' && detect-secrets scan"
git -C "$repo" secrets --register-aws >/dev/null 2>&1 || true
rounds=${PEER_ROUNDS:-$rounds} best git-secrets sh -c "cd '$repo' && git secrets --scan 2>&1"

echo "== history" >&2
best latchkey-history "$bin" scan --git "$repo" --no-verify --output json
rounds=1 best git-secrets-history sh -c "cd '$repo' && timeout ${HISTORY_TIMEOUT:-1800} git secrets --scan-history 2>&1"

python3 bench/scan_score.py "$dir" "$tree_bytes" "$history_bytes"

echo "== generic-secret entropy threshold sweep (tree)" >&2
for bits in 2.50 2.75 3.00 3.25 3.50 3.75 4.00; do
    "$bin" scan "$repo" --no-verify --output json --generic-entropy "$bits" > "$out/sweep-$bits.out" 2>/dev/null || true
done
echo
python3 bench/scan_score.py --sweep "$dir"
