#!/usr/bin/env bash
# Statement policy under pgbench -S, one run on this machine:
#   bench/statement-policy.sh [SECONDS]     (ROUNDS=3 by default)
# One PostgreSQL, one Latchkey, the same database registered twice (same
# upstream): `bench` with statement policy off, `bench-enforce` with it on
# (enforce), reached by their own endpoint names. pgbench -S, 8 clients, 2
# threads, through each in interleaved rounds (off, enforce, enforce, off
# ...), as a user whose policy has the shapes of a real one (table and
# function grants, a Deny on restricted data, a Deny on WHERE-less
# writes). Reports TPS and the gateway's CPU per transaction for each.
# Needs PostgreSQL, pgbench and the AWS CLI. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
rounds=${ROUNDS:-3}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# shellcheck source=bench/common.sh
. bench/common.sh

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release --quiet -p latchkey
latchkey=${CARGO_TARGET_DIR:-$PWD/target}/release/latchkey
work=$(mktemp -d)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown postgres "$work"
pg_port=$(free_port)
cleanup() {
    [ -n "${lk_pid:-}" ] && kill "$lk_pid" 2>/dev/null || true
    as_pg "$bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

start_postgres
PGPASSWORD=app-secret pgbench -h 127.0.0.1 -p "$pg_port" -U app -i -s 10 -q bench >/dev/null 2>&1

data=$work/latchkey
api=$(free_port); port=$(free_port)
"$latchkey" init --data-dir "$data" --listen "127.0.0.1:$api" --server-name off.bench.local --server-name enforce.bench.local >/dev/null
"$latchkey" db register --data-dir "$data" --name bench --endpoint off.bench.local --upstream "127.0.0.1:$pg_port" --upstream-tls disable >/dev/null
"$latchkey" db register --data-dir "$data" --name bench-enforce --endpoint enforce.bench.local --upstream "127.0.0.1:$pg_port" --upstream-tls disable --statement-policy enforce >/dev/null
for name in bench bench-enforce; do echo app-secret | "$latchkey" db set-password --data-dir "$data" --name "$name" --user app; done
"$latchkey" db classify --data-dir "$data" --db bench-enforce --object public.pgbench_history --tag classification=restricted >/dev/null
for v in $(env | grep -o '^AWS_[A-Z_]*'); do unset "$v"; done
LATCHKEY_LOG=warn "$latchkey" serve --data-dir "$data" --listen "127.0.0.1:$api" --pg-listen "127.0.0.1:$port" \
    --mysql-listen "127.0.0.1:$(free_port)" --audit-dir "$work/audit" >/dev/null 2>"$work/latchkey.log" &
lk_pid=$!
wait_port "$port"; wait_port "$api"
admin() { AWS_SHARED_CREDENTIALS_FILE=$data/admin.credentials AWS_CONFIG_FILE=$data/aws.config AWS_CA_BUNDLE=$data/ca.pem aws "$@"; }
admin iam create-user --user-name bencher >/dev/null
admin iam put-user-policy --user-name bencher --policy-name sql --policy-document '{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"rds-db:connect","Resource":"*"},
  {"Effect":"Allow","Action":["sql:Select","sql:Insert","sql:Update","sql:Delete"],"Resource":"arn:aws:sql:*:*:table/*/bench/public/*"},
  {"Effect":"Allow","Action":"sql:Execute","Resource":"arn:aws:sql:*:*:function/*/*/pg_catalog/*"},
  {"Effect":"Deny","Action":"sql:*","Resource":"*","Condition":{"StringEquals":{"sql:ObjectTag/classification":"restricted"}}},
  {"Effect":"Deny","Action":["sql:Update","sql:Delete"],"Resource":"*","Condition":{"Bool":{"sql:WhereClausePresent":"false"}}}]}'
read -r akid secret < <(admin iam create-access-key --user-name bencher --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text)
token() { AWS_ACCESS_KEY_ID=$akid AWS_SECRET_ACCESS_KEY=$secret aws rds generate-db-auth-token --hostname "$1" --port "$port" --username app --region us-east-1; }
token_off=$(token off.bench.local); token_enforce=$(token enforce.bench.local)
# The endpoint names resolve to the gateway through libpq's hostaddr.
conn() { echo "host=$1 hostaddr=127.0.0.1 port=$port user=app dbname=bench sslmode=verify-full sslrootcert=$data/ca.pem"; }
# A refused statement would show here: pgbench stops on errors.
PGPASSWORD=$token_enforce psql "$(conn enforce.bench.local)" -X -A -t -c "SELECT count(*) FROM pgbench_branches" >/dev/null
if PGPASSWORD=$token_enforce psql "$(conn enforce.bench.local)" -X -A -t -c "SELECT count(*) FROM pgbench_history" >/dev/null 2>&1; then
    echo "statement policy is not enforcing" >&2; exit 1
fi

tps() { grep -oE 'tps = [0-9.]+' | head -1 | awk '{print $3}'; }
run() { # connection string, password; sets t (TPS) and c (gateway CPU us per transaction)
    local t0 t1
    t0=$(ticks "$lk_pid")
    t=$(PGPASSWORD=$2 pgbench "$1" -S -n -c 8 -j 2 -T "$seconds" 2>/dev/null | tps)
    t1=$(ticks "$lk_pid")
    c=$(python3 -c "print(f'{($t1 - $t0) / $(getconf CLK_TCK) / ($t * $seconds) * 1e6:.1f}')")
}
runs_off=""; runs_enforce=""; cpu_off=""; cpu_enforce=""
echo "== pgbench -S, 8 clients, 2 threads, ${seconds}s, $rounds rounds (off and enforce interleaved)"
for round in $(seq "$rounds"); do
    for mode in $( ((round % 2)) && echo "off enforce" || echo "enforce off"); do
        if [ "$mode" = off ]; then run "$(conn off.bench.local)" "$token_off"; runs_off+="$t "; cpu_off+="$c "
        else run "$(conn enforce.bench.local)" "$token_enforce"; runs_enforce+="$t "; cpu_enforce+="$c "; fi
        echo "   round $round $mode: $t tps, gateway $c us CPU per transaction"
    done
done
python3 - "$runs_off" "$runs_enforce" "$cpu_off" "$cpu_enforce" <<'PY'
import statistics, sys
off, enf, coff, cenf = ([float(x) for x in a.split()] for a in sys.argv[1:])
ratios = [e / o for e, o in zip(enf, off)]
print(f"median tps: off {statistics.median(off):.0f}, enforce {statistics.median(enf):.0f}; "
      f"enforce/off {statistics.median(enf) / statistics.median(off):.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})")
print(f"gateway CPU per transaction: off {statistics.median(coff):.1f} us, enforce {statistics.median(cenf):.1f} us")
PY
