#!/usr/bin/env bash
# The PostgreSQL store against the embedded SQLite one, one run on this machine:
#   bench/store.sh [SECONDS]       (ROUNDS=3 by default)
# Two `latchkey serve` (release) with the same account, keys and database: one
# on its embedded store, one on a throwaway PostgreSQL store (moved there with
# `latchkey store migrate`), measured in interleaved rounds for
#   (1) GetCallerIdentity/s over HTTPS keep-alive (latchkey-loadgen, 32 connections)
#   (2) new TLS token logins/s through the PostgreSQL gateway (connect-storm:
#       a full TLS handshake, a token verified, rds-db:connect decided, a pooled
#       upstream login, per connection)
# then (3) propagation: a second node on the PostgreSQL store; an access key is
# deactivated through one node and the time until the other refuses it is
# measured (boto3, polling every 2 ms), 40 times; p50 and p99; and
# (4) statements: pgbench -S (8 clients, 2 threads) through each node's
# gateway, every statement an audit record, which node b also ships to the
# store; TPS b / a, and b's shipping lag at the end of each run and the
# time it takes to reach 0.
# Needs PostgreSQL and the AWS CLI with boto3 (scripts/test installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${ROUNDS:-3}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# shellcheck source=bench/common.sh
. bench/common.sh

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
cargo build --release --quiet -p latchkey -p latchkey-loadgen
target=${CARGO_TARGET_DIR:-$PWD/target}/release
latchkey=$target/latchkey
storm_bin=$target/connect-storm

work=$(mktemp -d)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown postgres "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    as_pg "$bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

pg_port=$(free_port)
echo superuser-secret > "$work/pw"; [ "$(id -u)" -eq 0 ] && chown postgres "$work/pw"
as_pg "$bin/initdb" -D "$work/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$work/pw" >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=300" -l "$work/pg.log" -w start >/dev/null
psql_su() { as_pg psql -h "$work" -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 -qc "$1"; }
psql_su "CREATE ROLE app LOGIN PASSWORD 'app-secret'"
psql_su "CREATE DATABASE orders OWNER app"
psql_su "CREATE ROLE latchkey LOGIN PASSWORD 'store-secret'"
psql_su "CREATE DATABASE latchkey OWNER latchkey"
PGPASSWORD=app-secret pgbench -h 127.0.0.1 -p "$pg_port" -U app -i -s 1 -q orders >/dev/null 2>&1
export LATCHKEY_STORE_URL="postgres://latchkey:store-secret@127.0.0.1:$pg_port/latchkey?sslmode=disable"

# One installation, embedded; then a copy of its data directory on PostgreSQL.
api_a=$(free_port); api_b=$(free_port); api_c=$(free_port)
"$latchkey" init --data-dir "$work/a" --listen "127.0.0.1:$api_a" >/dev/null
"$latchkey" db register --data-dir "$work/a" --name orders --endpoint localhost --upstream "127.0.0.1:$pg_port" >/dev/null
echo app-secret | "$latchkey" db set-password --data-dir "$work/a" --name orders --user app >/dev/null
for d in b c; do
    mkdir -m 700 "$work/$d"
    for f in master.key ca.pem ca.key server.pem server.key admin.credentials; do cp -p "$work/a/$f" "$work/$d/"; done
done
"$latchkey" store migrate --from "$work/a" --to "$LATCHKEY_STORE_URL" >/dev/null

serve() { # NAME API_PORT [store url]
    local name=$1 api=$2 pgp mysqlp metricsp
    pgp=$(free_port); mysqlp=$(free_port); metricsp=$(free_port)
    if [ -n "${3:-}" ]; then export LATCHKEY_STORE=$3; else unset LATCHKEY_STORE; fi
    "$latchkey" serve --data-dir "$work/$name" --listen "127.0.0.1:$api" --pg-listen "127.0.0.1:$pgp" \
        --mysql-listen "127.0.0.1:$mysqlp" --metrics-listen "127.0.0.1:$metricsp" >"$work/$name.out" 2>"$work/$name.log" &
    pids+=($!)
    eval "pid_$name=$!; pg_$name=$pgp; metrics_$name=$metricsp"
    wait_port "$api"; wait_port "$pgp"
    unset LATCHKEY_STORE
}
serve a "$api_a"
serve b "$api_b" "$LATCHKEY_STORE_URL"

for v in $(env | grep -o '^AWS_[A-Z_]*'); do unset "$v"; done
export AWS_SHARED_CREDENTIALS_FILE=$work/a/admin.credentials AWS_CA_BUNDLE=$work/a/ca.pem
export AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1
token() { aws rds generate-db-auth-token --hostname localhost --port "$1" --username app --region us-east-1; }
declare -A gci storm_rates
for r in $(seq "$rounds"); do
    for name in a b; do
        api_var=api_$name; pg_var=pg_$name; pid_var=pid_$name
        rate=$("$target/latchkey-loadgen" --endpoint "https://localhost:${!api_var}" --ca-bundle "$AWS_CA_BUNDLE" \
            --duration "$seconds" --connections 32 --call get-caller-identity \
            | python3 -c "import json,sys; print(round(json.load(sys.stdin)['requestsPerSecond']))")
        gci[$name]+="$rate "
        data=$work/$name storm_pid=${!pid_var}
        storm postgres "${!pg_var}" "$(token "${!pg_var}")" --database orders
        storm_rates[$name]+="$storm_rate "
        echo "round $r $name: GetCallerIdentity/s $rate; logins/s $storm_rate ($storm_detail)"
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for name in a b; do
    echo "$name: GetCallerIdentity/s median $(echo "${gci[$name]}" | median) of ${gci[$name]}; logins/s median $(echo "${storm_rates[$name]}" | median) of ${storm_rates[$name]}"
done

echo "== propagation between two nodes on the PostgreSQL store"
serve c "$api_c" "$LATCHKEY_STORE_URL"
python3 - "$api_b" "$api_c" <<'PY'
import sys, time, boto3, botocore
b, c = (f"https://localhost:{p}" for p in sys.argv[1:3])
admin = boto3.client("iam", endpoint_url=b)
admin.create_user(UserName="probe")
admin.put_user_policy(UserName="probe", PolicyName="me", PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}')
key = admin.create_access_key(UserName="probe")["AccessKey"]
sts = boto3.client("sts", endpoint_url=c, aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                   config=botocore.config.Config(retries={"max_attempts": 0}))
def works():
    try:
        sts.get_caller_identity(); return True
    except botocore.exceptions.ClientError:
        return False
times = []
for _ in range(40):
    while not works(): time.sleep(0.002)
    t0 = time.monotonic()
    admin.update_access_key(UserName="probe", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    t1 = time.monotonic()
    while works(): time.sleep(0.002)
    times.append((time.monotonic() - t1) * 1000)
    admin.update_access_key(UserName="probe", AccessKeyId=key["AccessKeyId"], Status="Active")
times.sort()
print(f"deactivation through node b refused on node c after: p50 {times[len(times)//2]:.1f} ms, p99 {times[int(len(times)*0.99)]:.1f} ms, max {times[-1]:.1f} ms (n={len(times)}; from the UpdateAccessKey answer)")
PY

echo "== statements: pgbench -S through each node (b ships every record to the store)"
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
declare -A tps
for r in $(seq "$rounds"); do
    for name in a b; do
        pg_var=pg_$name
        rate=$(PGPASSWORD=$(token "${!pg_var}") PGSSLMODE=verify-full PGSSLROOTCERT=$work/a/ca.pem \
            pgbench -h localhost -p "${!pg_var}" -U app -S -c 8 -j 2 -T "$seconds" -n orders 2>/dev/null \
            | awk '/^tps = / {print int($3)}')
        tps[$name]+="$rate "
        line="round $r $name: pgbench -S tps $rate"
        if [ "$name" = b ]; then
            lag=$(metric "$metrics_b" latchkey_audit_ship_lag_records)
            written=$(metric "$metrics_b" latchkey_audit_records_total)
            t0=$(date +%s.%N)
            # Caught up: every record written by the run's end is in the store.
            while [ "$(metric "$metrics_b" latchkey_audit_shipped_records_total)" -lt "$written" ]; do sleep 0.02; done
            drained=$(python3 -c "import sys; print(f'{(float(sys.argv[2]) - float(sys.argv[1])) * 1000:.0f}')" "$t0" "$(date +%s.%N)")
            line+="; ship lag at the end ${lag} records; all ${written} records in the store ${drained} ms later"
        fi
        echo "$line"
    done
done
for name in a b; do
    echo "$name: pgbench -S tps median $(echo "${tps[$name]}" | median) of ${tps[$name]}"
done
