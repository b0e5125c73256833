#!/usr/bin/env bash
# Transaction pooling benchmark (issue 23), one run on this machine:
#   bench/txpool.sh [SECONDS]        (ROUNDS=3 by default)
# pgbench -S with many clients (CLIENTS=500, 2 threads) on a server pool of
# POOL=20, every client over TLS:
#   - Latchkey, transaction mode (token login, policy, statement audit on)
#   - PgBouncer, transaction mode (client TLS, the same certificate)
#   - direct PostgreSQL with one backend per client, for reference
# run in interleaved rounds, so that the machine's drift hits them alike,
# then the same with the extended protocol, with prepared statements
# (-M prepared, select-only and TPC-B-like), and TPC-B-like. Prepared
# TPC-B-like runs PREPARED_CLIENTS=50 clients with one thread each: pgbench
# prepares each command synchronously when a client first needs it, so a
# thread serving several clients would block on one client's PREPARE while
# its others hold the pool's connections inside transactions.
# Then (PHASES="throughput idle" by default) IDLE=10000 idle TLS clients
# held by each pooler at once (connect-storm --hold: each logs in, runs
# SELECT 1 and stays idle): the pooler's memory per idle client (its RSS
# before and while they are held), and the p99 latency of one active
# client's SELECT 1 before and while they are held. PHASES=profile shows
# where the gateway's CPU goes instead (perf).
# Needs PostgreSQL, pgbench, pgbouncer and the AWS CLI. Honours
# CARGO_TARGET_DIR for the binary, and PGBOUNCER for PgBouncer's (Debian 12
# ships 1.18; prepared statements in transaction mode need 1.21 or later,
# and with an older one the prepared runs measure Latchkey alone).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
rounds=${ROUNDS:-3}
clients=${CLIENTS:-500}
pool=${POOL:-20}
idle=${IDLE:-10000}
phases=${PHASES:-throughput idle}
# POOL_MODE=session runs both poolers in session mode (with CLIENTS=8,
# the shape of bench/pg.sh), for PHASES=profile.
pool_mode=${POOL_MODE:-transaction}
most=$((idle + clients * 2 + 100))
threads=2

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# shellcheck source=bench/common.sh
. bench/common.sh

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgbouncer=${PGBOUNCER:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
[ -x "$pgbouncer" ] || { echo "pgbouncer is required (apt-get install pgbouncer, or PGBOUNCER=path)" >&2; exit 1; }
pgbouncer_version=$("$pgbouncer" --version | awk 'NR == 1 {print $2}')
# max_prepared_statements (1.21): PgBouncer tracks protocol-level prepared
# statements in transaction mode, as Latchkey does.
if printf '1.21\n%s\n' "$pgbouncer_version" | sort -V -C; then pgbouncer_prepares=yes; else pgbouncer_prepares=no; fi
prepared_clients=${PREPARED_CLIENTS:-50}
cargo build --release --quiet -p latchkey -p latchkey-loadgen
storm_bin=${CARGO_TARGET_DIR:-$PWD/target}/release/connect-storm
# LATCHKEY_BIN: another build's binary (an older commit's, to compare).
# LATCHKEY_SERVE_FLAGS: more flags for its serve (--no-statement-audit).
latchkey=${LATCHKEY_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/latchkey}

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
# Every pooler and the idle-client holder need a descriptor per client.
fds=$((most + 1000))
ulimit -Hn "$fds" 2>/dev/null || true
ulimit -n "$fds" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [[ " $phases " == *" idle "* ]] && [ "$(ulimit -n)" -lt "$fds" ]; then
    echo "holding $idle clients needs $fds open files; the limit here is $(ulimit -Hn) (raise it, or set IDLE lower)" >&2
    exit 1
fi

echo "== starting PostgreSQL on $pg_port (max_connections $((clients + 50)))"
echo superuser-secret > "$work/pw"; [ "$(id -u)" -eq 0 ] && chown postgres "$work/pw"
as_pg "$bin/initdb" -D "$work/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$work/pw" >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=$((clients + 50))" -l "$work/pg.log" -w start >/dev/null
as_pg psql -h "$work" -p "$pg_port" -U postgres -q -c "CREATE ROLE app LOGIN PASSWORD 'app-secret'" -c "CREATE DATABASE bench OWNER app"
PGPASSWORD=app-secret pgbench -h 127.0.0.1 -p "$pg_port" -U app -i -s 10 -q bench >/dev/null 2>&1

data=$work/latchkey
"$latchkey" init --data-dir "$data" --listen "127.0.0.1:$api_port" >/dev/null
"$latchkey" db register --data-dir "$data" --name bench --endpoint localhost --upstream "127.0.0.1:$pg_port" \
    --upstream-tls disable --pool-mode "$pool_mode" --pool-size "$pool" >/dev/null
echo app-secret | "$latchkey" db set-password --data-dir "$data" --name bench --user app
for v in $(env | grep -o '^AWS_[A-Z_]*'); do unset "$v"; done
LATCHKEY_LOG=warn "$latchkey" serve --data-dir "$data" --listen "127.0.0.1:$api_port" --pg-listen "127.0.0.1:$lk_port" \
    --mysql-listen "127.0.0.1:$(free_port)" --audit-dir "$work/audit" \
    --pg-connection-rate-per-ip 0 --pg-connection-rate-per-principal 0 --gateway-max-connections "$most" \
    --gateway-max-connections-per-ip "$most" --gateway-max-connections-per-principal "$most" ${LATCHKEY_SERVE_FLAGS:-} >/dev/null 2>"$work/latchkey.log" &
lk_pid=$!
wait_port "$lk_port"
token=$(AWS_SHARED_CREDENTIALS_FILE=$data/admin.credentials AWS_CONFIG_FILE=/dev/null \
    aws rds generate-db-auth-token --hostname localhost --port "$lk_port" --username app --region us-east-1)

echo "== starting PgBouncer $pgbouncer_version on $pgb_port ($pool_mode mode, pool $pool, client TLS, prepared statements tracked: $pgbouncer_prepares)"
cat > "$work/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$pg_port dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
unix_socket_dir =
auth_type = plain
auth_file = $work/userlist.txt
pool_mode = $pool_mode
max_client_conn = $most
default_pool_size = $pool
client_tls_sslmode = require
client_tls_key_file = $work/pgbouncer.key
client_tls_cert_file = $work/pgbouncer.pem
logfile = $work/pgbouncer.log
EOF
[ "$pgbouncer_prepares" = yes ] && echo "max_prepared_statements = 200" >> "$work/pgbouncer.ini"
echo '"app" "app-secret"' > "$work/userlist.txt"
cp "$data/server.pem" "$work/pgbouncer.pem"; cp "$data/server.key" "$work/pgbouncer.key"
[ "$(id -u)" -eq 0 ] && chown postgres "$work"/pgbouncer.* "$work/userlist.txt"
# Not runuser: its PAM session would cut the open-file limit to 1024.
if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid=postgres --regid=postgres --clear-groups "$pgbouncer" "$work/pgbouncer.ini" >/dev/null 2>&1 &
else
    "$pgbouncer" "$work/pgbouncer.ini" >/dev/null 2>&1 &
fi
wait_port "$pgb_port"
pgbouncer_pid=$(pgrep -f "^$pgbouncer $work/pgbouncer.ini" | head -1 || true)

# run CONNINFO PASSWORD [pgbench flags...]: "TPS FAILED" (RUN_CLIENTS and
# RUN_THREADS, when set, override the clients and threads)
run() {
    local out
    out=$(PGPASSWORD=$2 pgbench "$1" -n -c "${RUN_CLIENTS:-$clients}" -j "${RUN_THREADS:-$threads}" -T "$seconds" "${@:3}" 2>&1 || true)
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
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.0f}")' $1; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
spread() { python3 -c 'import sys; a, b = (list(map(float, x.split())) for x in sys.argv[1:]); r = [x / y for x, y in zip(a, b)]; print(f"{min(r):.2f}-{max(r):.2f}")' "$1" "$2"; }
sum() { python3 -c 'import sys; print(sum(int(x) for x in sys.argv[1:] if x.isdigit()))' $1; }
throughput() {
# MODES picks some of them (by name).
local names=${MODES:-simple extended prepared tpcb-like prepared-tpcb}
for mode in "simple -S" "extended -S -M extended" "prepared -S -M prepared" "tpcb-like" "prepared-tpcb -M prepared"; do
    name=${mode%% *}; flags=${mode#* }; [ "$name" = "$flags" ] && flags=""
    [[ " $names " == *" $name "* ]] || continue
    local run_clients=$clients run_threads=$threads bouncer_too=yes
    if [ "$name" = prepared-tpcb ]; then run_clients=$prepared_clients; run_threads=$prepared_clients; fi
    [[ "$name" == prepared* && "$pgbouncer_prepares" = no ]] && bouncer_too=no
    echo "== $name: pgbench ${flags:-(TPC-B-like)} -c $run_clients -j $run_threads -T $seconds, $rounds rounds"
    for round in $(seq "$rounds"); do
        if [ "$bouncer_too" = yes ]; then
            # shellcheck disable=SC2086
            RUN_CLIENTS=$run_clients RUN_THREADS=$run_threads measure "$name/pgbouncer" "$pgbouncer_pid" "$bouncer" app-secret $flags
        fi
        # shellcheck disable=SC2086
        RUN_CLIENTS=$run_clients RUN_THREADS=$run_threads measure "$name/latchkey" "$lk_pid" "$gateway" "$token" $flags
        if [ "$name" = simple ]; then
            # shellcheck disable=SC2086
            measure "$name/direct" "" "$direct" app-secret $flags
        fi
    done
done
echo
echo "results ($(date -u +%Y-%m-%d), $clients clients ($prepared_clients, one thread each, for prepared-tpcb), $threads threads, pool $pool, ${seconds}s runs, medians of $rounds rounds [each round's own ratio]; PgBouncer $pgbouncer_version)"
for name in $names; do
    l=$(median "${tps[$name/latchkey]}")
    if [ -z "${tps[$name/pgbouncer]:-}" ]; then
        echo "$name: latchkey $l (failed $(sum "${failed[$name/latchkey]}"), cpu/tx $(median "${cpu[$name/latchkey]}") us)  pgbouncer $pgbouncer_version cannot run it"
        continue
    fi
    b=$(median "${tps[$name/pgbouncer]}")
    echo "$name: latchkey $l (failed $(sum "${failed[$name/latchkey]}"), cpu/tx $(median "${cpu[$name/latchkey]}") us)  pgbouncer $b (failed $(sum "${failed[$name/pgbouncer]}"), cpu/tx $(median "${cpu[$name/pgbouncer]}") us)  latchkey/pgbouncer $(ratio "$l" "$b") [$(spread "${tps[$name/latchkey]}" "${tps[$name/pgbouncer]}")]"
done
[ -n "${tps[simple/direct]:-}" ] || return 0
d=$(median "${tps[simple/direct]}")
echo "direct PostgreSQL, $clients backends, no TLS: $d (failed $(sum "${failed[simple/direct]}"))  latchkey/direct $(ratio "$(median "${tps[simple/latchkey]}")" "$d")"
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# p99 CONNINFO PASSWORD: one active client's SELECT 1 for $seconds, the 99th
# percentile of its latencies in microseconds (pgbench's per-transaction log).
p99() {
    local dir; dir=$(mktemp -d)
    echo 'SELECT 1;' > "$dir/select1.sql"
    (cd "$dir" && PGPASSWORD=$2 pgbench "$1" -n -c 1 -j 1 -T "$seconds" -f select1.sql -l --log-prefix=lat >/dev/null 2>&1 || true)
    cat "$dir"/lat* | python3 -c 'import sys; v = sorted(int(l.split()[2]) for l in sys.stdin); print(v[len(v) * 99 // 100] if v else "none")'
    rm -rf "$dir"
}
declare -A per_client p99_before p99_held
idle_phase() { # key pid conninfo password port
    local key=$1 pid=$2 before held out; shift 2
    local lat_before lat_held
    lat_before=$(p99 "$1" "$2")
    p99_before[$key]+="$lat_before "
    before=$(rss_kib "$pid")
    out=$work/hold-$key.out
    LATCHKEY_STORM_PASSWORD=$2 "$storm_bin" --engine postgres --port "$3" --ca "$data/ca.pem" --user app \
        --database bench --clients "$idle" --threads 1 --hold --duration 3600 >"$out" 2>&1 &
    local hold_pid=$!
    for _ in $(seq 600); do grep -q '^held' "$out" && break; kill -0 $hold_pid 2>/dev/null || break; sleep 0.5; done
    grep -q '^held' "$out" || { echo "holding $idle clients on $key failed: $(cat "$out")" >&2; kill $hold_pid 2>/dev/null; return 1; }
    sleep 2
    held=$(rss_kib "$pid")
    local bytes=$(( (held - before) * 1024 / idle ))
    per_client[$key]+="$bytes "
    lat_held=$(p99 "$1" "$2")
    p99_held[$key]+="$lat_held "
    echo "   $key: $(cat "$out"); RSS $before -> $held KiB, $bytes bytes per idle client; p99 SELECT 1 $lat_before -> $lat_held us"
    kill $hold_pid 2>/dev/null; wait $hold_pid 2>/dev/null || true
    sleep 3
}
idle() {
    # One round: neither pooler gives freed memory back to the system, so
    # a second round would fill the first's pages and measure nothing.
    # For the same reason, run it alone (PHASES=idle) for figures to
    # compare: memory freed by the throughput runs would be reused too.
    echo "== $idle idle TLS clients held, pool $pool"
    idle_phase pgbouncer "$pgbouncer_pid" "$bouncer" app-secret "$pgb_port"
    idle_phase latchkey "$lk_pid" "$gateway" "$token" "$lk_port"
    echo
    echo "idle results ($(date -u +%Y-%m-%d), $idle idle TLS clients, pool $pool, one round)"
    for key in pgbouncer latchkey; do
        echo "$key: $(median "${per_client[$key]}") bytes per idle client; p99 SELECT 1 $(median "${p99_before[$key]}") us before, $(median "${p99_held[$key]}") us held ($(ratio "$(median "${p99_held[$key]}")" "$(median "${p99_before[$key]}")")x)"
    done
}
# PHASES=profile: where the gateway's CPU goes while it serves pgbench
# (PROFILE_FLAGS, -S by default): perf's flat profile of its process.
profile() {
    command -v perf >/dev/null || { echo "perf is required (apt-get install linux-perf)" >&2; return 1; }
    echo "== profile: perf record -F 1999 on the gateway during pgbench ${PROFILE_FLAGS:--S}, ${seconds}s"
    perf record -q -F 1999 ${PROFILE_GRAPH:+-g} -o "$work/perf.data" -p "$lk_pid" -- sleep "$seconds" 2>/dev/null &
    local perf_pid=$!
    # shellcheck disable=SC2086
    measure profile/latchkey "$lk_pid" "$gateway" "$token" ${PROFILE_FLAGS:--S}
    wait "$perf_pid" || true
    # System calls per transaction, each pooler.
    local events=syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_readv,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,context-switches
    for target in "pgbouncer $pgbouncer_pid $bouncer app-secret" "latchkey $lk_pid $gateway $token"; do
        # shellcheck disable=SC2086
        set -- $target
        local key=$1 pid=$2 password=${*: -1} conninfo="${*:3:$#-3}"
        perf stat -x, -e "$events" -o "$work/stat-$key" -p "$pid" -- sleep "$seconds" 2>/dev/null &
        local stat_pid=$!
        # shellcheck disable=SC2086
        measure "stat/$key" "$pid" "$conninfo" "$password" ${PROFILE_FLAGS:--S}
        wait "$stat_pid" || true
        local tx; tx=$(python3 -c "print(round(float('${tps[stat/$key]% }') * $seconds))")
        echo "   $key, per transaction: $(awk -F, -v tx="$tx" '$1 ~ /^[0-9]+$/ {sub(/syscalls:sys_enter_/, "", $3); printf "%s %.2f  ", $3, $1 / tx}' "$work/stat-$key")"
    done
    if [ -n "${PROFILE_GRAPH:-}" ]; then
        # The callers of the hottest symbols (kernel stacks are whole;
        # user stacks without frame pointers are not).
        perf report -q -i "$work/perf.data" --no-children --sort symbol --percent-limit 3 -G --stdio 2>/dev/null | head -${PROFILE_LINES:-300}
    else
        # By thread first: sessions, the audit's writer and its followers.
        perf report -q -i "$work/perf.data" --no-children --sort comm --stdio 2>/dev/null | head -12
        perf report -q -i "$work/perf.data" --no-children --sort dso,symbol --percent-limit 0.4 --stdio 2>/dev/null | head -80
    fi
}
for phase in $phases; do "$phase"; done
