#!/usr/bin/env bash
# Transaction pooling benchmark (issue 23), one run on this machine:
#   bench/txpool.sh [SECONDS]        (ROUNDS=3 by default)
# pgbench -S with many clients (CLIENTS=500, 2 threads) on a server pool of
# POOL=20, every client over TLS:
#   - Latchkey, transaction mode (token login, policy, statement audit on)
#   - PgBouncer, transaction mode (client TLS, the same certificate)
#   - direct PostgreSQL with one backend per client, for reference
# run in interleaved rounds, so that the machine's drift hits them alike,
# then the same with the extended protocol, and TPC-B-like.
# Needs PostgreSQL, pgbench, pgbouncer and the AWS CLI. Honours
# CARGO_TARGET_DIR for the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
rounds=${ROUNDS:-3}
clients=${CLIENTS:-500}
pool=${POOL:-20}
threads=2

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# shellcheck source=bench/common.sh
. bench/common.sh

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || { echo "pgbouncer is required (apt-get install pgbouncer)" >&2; exit 1; }
cargo build --release --quiet -p latchkey
latchkey=${CARGO_TARGET_DIR:-$PWD/target}/release/latchkey

work=$(mktemp -d)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown postgres "$work"
pg_port=$(free_port); pgb_port=$(free_port); lk_port=$(free_port); api_port=$(free_port)
cleanup() {
    [ -n "${lk_pid:-}" ] && kill "$lk_pid" 2>/dev/null || true
    pkill -f "pgbouncer $work/pgbouncer.ini" 2>/dev/null || true
    as_pg "$bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true

echo "== starting PostgreSQL on $pg_port (max_connections $((clients + 50)))"
echo superuser-secret > "$work/pw"; [ "$(id -u)" -eq 0 ] && chown postgres "$work/pw"
as_pg "$bin/initdb" -D "$work/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$work/pw" >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=$((clients + 50))" -l "$work/pg.log" -w start >/dev/null
as_pg psql -h "$work" -p "$pg_port" -U postgres -q -c "CREATE ROLE app LOGIN PASSWORD 'app-secret'" -c "CREATE DATABASE bench OWNER app"
PGPASSWORD=app-secret pgbench -h 127.0.0.1 -p "$pg_port" -U app -i -s 10 -q bench >/dev/null 2>&1

data=$work/latchkey
"$latchkey" init --data-dir "$data" --listen "127.0.0.1:$api_port" >/dev/null
"$latchkey" db register --data-dir "$data" --name bench --endpoint localhost --upstream "127.0.0.1:$pg_port" \
    --upstream-tls disable --pool-mode transaction --pool-size "$pool" >/dev/null
echo app-secret | "$latchkey" db set-password --data-dir "$data" --name bench --user app
for v in $(env | grep -o '^AWS_[A-Z_]*'); do unset "$v"; done
LATCHKEY_LOG=warn "$latchkey" serve --data-dir "$data" --listen "127.0.0.1:$api_port" --pg-listen "127.0.0.1:$lk_port" \
    --mysql-listen "127.0.0.1:$(free_port)" --audit-dir "$work/audit" \
    --pg-connection-rate-per-ip 0 --pg-connection-rate-per-principal 0 >/dev/null 2>"$work/latchkey.log" &
lk_pid=$!
wait_port "$lk_port"
token=$(AWS_SHARED_CREDENTIALS_FILE=$data/admin.credentials AWS_CONFIG_FILE=/dev/null \
    aws rds generate-db-auth-token --hostname localhost --port "$lk_port" --username app --region us-east-1)

echo "== starting PgBouncer on $pgb_port (transaction mode, pool $pool, client TLS)"
cat > "$work/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$pg_port dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $work/userlist.txt
pool_mode = transaction
max_client_conn = $((clients * 2 + 100))
default_pool_size = $pool
client_tls_sslmode = require
client_tls_key_file = $work/pgbouncer.key
client_tls_cert_file = $work/pgbouncer.pem
logfile = $work/pgbouncer.log
EOF
echo '"app" "app-secret"' > "$work/userlist.txt"
cp "$data/server.pem" "$work/pgbouncer.pem"; cp "$data/server.key" "$work/pgbouncer.key"
[ "$(id -u)" -eq 0 ] && chown postgres "$work"/pgbouncer.* "$work/userlist.txt"
as_pg pgbouncer "$work/pgbouncer.ini" >/dev/null 2>&1 &
wait_port "$pgb_port"
pgbouncer_pid=$(pgrep -f "^pgbouncer $work/pgbouncer.ini" | head -1 || true)

# run CONNINFO PASSWORD [pgbench flags...]: "TPS FAILED"
run() {
    local out
    out=$(PGPASSWORD=$2 pgbench "$1" -n -c "$clients" -j "$threads" -T "$seconds" "${@:3}" 2>&1 || true)
    echo "$(echo "$out" | grep -oE 'tps = [0-9.]+' | head -1 | awk '{print $3}') $(echo "$out" | grep -oE 'number of failed transactions: [0-9]+' | awk '{print $5}')"
}
direct="host=127.0.0.1 port=$pg_port user=app dbname=bench sslmode=disable"
bouncer="host=localhost port=$pgb_port user=app dbname=bench sslmode=require"
gateway="host=localhost port=$lk_port user=app dbname=bench sslmode=verify-full sslrootcert=$data/ca.pem"

declare -A tps failed cpu
measure() { # key target conninfo password flags...
    local key=$1 pid=$2 t0 t1 r; shift 2
    t0=$(ticks $pid)
    r=$(run "$@")
    t1=$(ticks $pid)
    tps[$key]+="${r% *} "; failed[$key]+="${r#* } "
    cpu[$key]+="$(python3 -c "print(round(($t1-$t0)/$(getconf CLK_TCK)/max(float('${r% *}' or 0)*$seconds,1)*1e6,1))") "
    echo "   $key: tps ${r% *}, failed ${r#* }"
}
for mode in "simple -S" "extended -S -M extended" "tpcb-like"; do
    name=${mode%% *}; flags=${mode#* }; [ "$name" = "$flags" ] && flags=""
    echo "== $name: pgbench ${flags:-(TPC-B-like)} -c $clients -j $threads -T $seconds, $rounds rounds"
    for round in $(seq "$rounds"); do
        # shellcheck disable=SC2086
        measure "$name/pgbouncer" "$pgbouncer_pid" "$bouncer" app-secret $flags
        # shellcheck disable=SC2086
        measure "$name/latchkey" "$lk_pid" "$gateway" "$token" $flags
        if [ "$name" = simple ]; then
            # shellcheck disable=SC2086
            measure "$name/direct" "" "$direct" app-secret $flags
        fi
    done
done
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.0f}")' $1; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
spread() { python3 -c 'import sys; a, b = (list(map(float, x.split())) for x in sys.argv[1:]); r = [x / y for x, y in zip(a, b)]; print(f"{min(r):.2f}-{max(r):.2f}")' "$1" "$2"; }
sum() { python3 -c 'import sys; print(sum(int(x) for x in sys.argv[1:] if x.isdigit()))' $1; }
echo
echo "results ($(date -u +%Y-%m-%d), $clients clients, $threads threads, pool $pool, ${seconds}s runs, medians of $rounds rounds [each round's own ratio])"
for name in simple extended tpcb-like; do
    l=$(median "${tps[$name/latchkey]}"); b=$(median "${tps[$name/pgbouncer]}")
    echo "$name: latchkey $l (failed $(sum "${failed[$name/latchkey]}"), cpu/tx $(median "${cpu[$name/latchkey]}") us)  pgbouncer $b (failed $(sum "${failed[$name/pgbouncer]}"), cpu/tx $(median "${cpu[$name/pgbouncer]}") us)  latchkey/pgbouncer $(ratio "$l" "$b") [$(spread "${tps[$name/latchkey]}" "${tps[$name/pgbouncer]}")]"
done
d=$(median "${tps[simple/direct]}")
echo "direct PostgreSQL, $clients backends, no TLS: $d (failed $(sum "${failed[simple/direct]}"))  latchkey/direct $(ratio "$(median "${tps[simple/latchkey]}")" "$d")"
