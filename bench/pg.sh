#!/usr/bin/env bash
# PostgreSQL gateway benchmark, one run on this machine:
#   bench/pg.sh [SECONDS]        (ROUNDS=3 by default)
# Compares direct PostgreSQL, PgBouncer (session mode, client TLS) and
# Latchkey (TLS, token verification, policy, statement audit on and off) with
#   (a) pgbench -S, 8 clients, 2 threads: TPS
#   (b) pgbench -S -C: new connections per second (and connect-storm, a
#       lighter rustls client, for the gateway's own capacity)
# and reports Latchkey's memory per idle connection. For scale, (a) also
# runs through HAProxy in TCP mode: a relay that neither terminates TLS nor
# reads the protocol, so it shows what one proxy hop costs on this machine.
# Needs PostgreSQL, pgbench, pgbouncer, haproxy and the AWS CLI
# (apt: postgresql pgbouncer haproxy; pip: awscli). Honours PGBOUNCER for
# PgBouncer's binary (Debian's by default), and CARGO_TARGET_DIR
# for the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
# (a) runs every target once per round, interleaved, so that the machine's
# drift (±20% from one minute to the next here) hits them alike.
rounds=${ROUNDS:-3}
# LATCHKEY_BASELINE=/path/to/an/older/latchkey: (a) also runs that build's
# gateway, on the same store, in the same interleaved rounds, so that a
# change is compared with the build before it in one run.
baseline=${LATCHKEY_BASELINE:-}
clients=8
threads=2

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# shellcheck source=bench/common.sh
. bench/common.sh

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || { echo "haproxy is required (apt-get install haproxy)" >&2; exit 1; }
pgbouncer=${PGBOUNCER:-$(command -v pgbouncer || echo /usr/sbin/pgbouncer)}
[ -x "$pgbouncer" ] || { echo "pgbouncer is required (apt-get install pgbouncer, or PGBOUNCER=path)" >&2; exit 1; }
cargo build --release --quiet -p latchkey -p latchkey-loadgen
latchkey=${CARGO_TARGET_DIR:-$PWD/target}/release/latchkey
storm_bin=${CARGO_TARGET_DIR:-$PWD/target}/release/connect-storm

work=$(mktemp -d)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown postgres "$work"
pg_port=$(free_port); pgb_port=$(free_port); relay_port=$(free_port)
cleanup() {
    [ -n "${relay_pid:-}" ] && kill "$relay_pid" 2>/dev/null || true
    [ -n "${pid_audit:-}" ] && kill "$pid_audit" 2>/dev/null || true
    [ -n "${pid_noaudit:-}" ] && kill "$pid_noaudit" 2>/dev/null || true
    [ -n "${pid_connrate:-}" ] && kill "$pid_connrate" 2>/dev/null || true
    [ -n "${pid_baseline:-}" ] && kill "$pid_baseline" 2>/dev/null || true
    # pgb_pid is runuser's; PgBouncer itself is its child.
    pkill -f "pgbouncer $work/pgbouncer.ini" 2>/dev/null || true
    as_pg "$bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== starting PostgreSQL on $pg_port"
echo superuser-secret > "$work/pw"; [ "$(id -u)" -eq 0 ] && chown postgres "$work/pw"
as_pg "$bin/initdb" -D "$work/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$work/pw" >/dev/null
as_pg "$bin/pg_ctl" -D "$work/pg" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=300" -l "$work/pg.log" -w start >/dev/null
as_pg psql -h "$work" -p "$pg_port" -U postgres -q -c "CREATE ROLE app LOGIN PASSWORD 'app-secret'" -c "CREATE DATABASE bench OWNER app"
PGPASSWORD=app-secret pgbench -h 127.0.0.1 -p "$pg_port" -U app -i -s 10 -q bench >/dev/null 2>&1

data=$work/latchkey
"$latchkey" init --data-dir "$data" --listen "127.0.0.1:$(free_port)" >/dev/null
"$latchkey" db register --data-dir "$data" --name bench --endpoint localhost --upstream "127.0.0.1:$pg_port" --upstream-tls disable >/dev/null
# The same server through its Unix socket, for clients that name 127.0.0.1.
"$latchkey" db register --data-dir "$data" --name bench-unix --endpoint 127.0.0.1 --upstream "$work/.s.PGSQL.$pg_port" >/dev/null
echo app-secret | "$latchkey" db set-password --data-dir "$data" --name bench --user app
for v in $(env | grep -o '^AWS_[A-Z_]*'); do unset "$v"; done
# start_latchkey NAME [serve flags...]: a gateway on a free port; sets
# port_NAME, pid_NAME and token_NAME (tokens are signed for the port).
start_latchkey() {
    local name=$1; shift
    local api port
    api=$(free_port); port=$(free_port)
    LATCHKEY_LOG=warn "${serve_bin:-$latchkey}" serve --data-dir "$data" --listen "127.0.0.1:$api" --pg-listen "127.0.0.1:$port" --mysql-listen "127.0.0.1:$(free_port)" \
        --audit-dir "$work/audit-$name" "$@" >/dev/null 2>"$work/latchkey-$name.log" &
    printf -v "pid_$name" %s $!
    printf -v "port_$name" %s "$port"
    wait_port "$port"
    printf -v "token_$name" %s "$(AWS_SHARED_CREDENTIALS_FILE=$data/admin.credentials AWS_CONFIG_FILE=/dev/null \
        aws rds generate-db-auth-token --hostname localhost --port "$port" --username app --region us-east-1)"
    printf -v "unixtoken_$name" %s "$(AWS_SHARED_CREDENTIALS_FILE=$data/admin.credentials AWS_CONFIG_FILE=/dev/null \
        aws rds generate-db-auth-token --hostname 127.0.0.1 --port "$port" --username app --region us-east-1)"
    echo "== started Latchkey $name on $port ($*)"
}
start_latchkey audit
start_latchkey noaudit --no-statement-audit
[ -n "$baseline" ] && serve_bin=$baseline start_latchkey baseline
# For (b''): the per-address and per-principal limiter (2,000/s) off.
start_latchkey connrate --pg-connection-rate-per-ip 0 --pg-connection-rate-per-principal 0
lk_pid=$pid_audit

echo "== starting PgBouncer $("$pgbouncer" --version | awk 'NR == 1 {print $2}') on $pgb_port (session mode, client TLS)"
cat > "$work/pgbouncer.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$pg_port dbname=bench
bench_unix = host=$work port=$pg_port dbname=bench
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $work/userlist.txt
pool_mode = session
max_client_conn = 2000
default_pool_size = 100
client_tls_sslmode = require
client_tls_key_file = $work/pgbouncer.key
client_tls_cert_file = $work/pgbouncer.pem
logfile = $work/pgbouncer.log
EOF
echo '"app" "app-secret"' > "$work/userlist.txt"
# The same certificate as Latchkey's, readable by the postgres user.
cp "$data/server.pem" "$work/pgbouncer.pem"; cp "$data/server.key" "$work/pgbouncer.key"
[ "$(id -u)" -eq 0 ] && chown postgres "$work"/pgbouncer.* "$work/userlist.txt"
ulimit -n 4096 2>/dev/null || true
as_pg "$pgbouncer" "$work/pgbouncer.ini" >/dev/null 2>&1 &
pgb_pid=$!
wait_port "$pgb_port"

echo "== starting HAProxy on $relay_port (mode tcp, no TLS: the cost of a bare relay)"
start_relay "$work" "$relay_port" "127.0.0.1:$pg_port"

tps() { grep -oE 'tps = [0-9.]+' | head -1 | awk '{print $3}'; }
run() { # name, connection string, password, extra pgbench flags, threads
    PGPASSWORD=$3 pgbench "$2" -S -n -c "$clients" -j "${5:-$threads}" -T "$seconds" ${4:-} 2>/dev/null | tps
}
direct="host=127.0.0.1 port=$pg_port user=app dbname=bench sslmode=disable"
bouncer="host=localhost port=$pgb_port user=app dbname=bench sslmode=require"
gateway() { echo "host=localhost port=$1 user=app dbname=bench sslmode=verify-full sslrootcert=$data/ca.pem"; }

echo "== (a) pgbench -S, $clients clients, $threads threads, ${seconds}s, $rounds interleaved rounds"
runs_direct=""; runs_bouncer=""; runs_latchkey=""; runs_noaudit=""; runs_relay=""; runs_baseline=""
# Where each transaction's CPU goes, summed over the rounds: pgbench,
# PostgreSQL (every backend, and those reaped by the postmaster), the
# proxy's process, the kernel's softirq work (TCP on loopback), and how
# much of the machine stayed idle.
postmaster=$(head -1 "$work/pg/postmaster.pid")
# Anchored: the runuser wrapper around it names the same file.
pgbouncer_pid=$(pgrep -f "^$pgbouncer $work/pgbouncer.ini" | head -1 || true)
declare -A cpu
postgres_ticks() { echo $(( $(ticks "$postmaster" $(pgrep -P "$postmaster")) + $(awk '{print $16 + $17}' "/proc/$postmaster/stat") )); }
measured() { # target, then run's arguments; the proxy's pid in $proxy; sets t (TPS)
    local target=$1 c0 c1 pg0 pg1 px0 px1 out; shift
    read -r -a c0 < /proc/stat; pg0=$(postgres_ticks); px0=$(ticks $proxy)
    out=$(TIMEFORMAT='%U %S'; { time run "$@"; } 2>&1)
    read -r -a c1 < /proc/stat; pg1=$(postgres_ticks); px1=$(ticks $proxy)
    t=$(echo "$out" | head -1)
    # transactions, pgbench seconds, then ticks: postgres, proxy, softirq, idle, all
    cpu[$target]+="$(python3 -c "print(round($t * $seconds))") $(echo "$out" | tail -1 | awk '{print $1 + $2}') $((pg1 - pg0)) $((px1 - px0)) $((c1[7] - c0[7])) $((c1[4] - c0[4])) $(( (c1[1]+c1[2]+c1[3]+c1[4]+c1[5]+c1[6]+c1[7]+c1[8]) - (c0[1]+c0[2]+c0[3]+c0[4]+c0[5]+c0[6]+c0[7]+c0[8]) ));"
}
for round in $(seq "$rounds"); do
    proxy=""
    measured direct direct "$direct" app-secret; runs_direct+="$t "; echo "   round $round direct $t"
    proxy=$pgbouncer_pid
    measured pgbouncer pgbouncer "$bouncer" app-secret; runs_bouncer+="$t "; echo "   round $round pgbouncer $t"
    proxy=$pid_audit
    measured latchkey latchkey "$(gateway "$port_audit")" "$token_audit"; runs_latchkey+="$t "; echo "   round $round latchkey (statement audit on) $t"
    proxy=$pid_noaudit
    measured noaudit latchkey "$(gateway "$port_noaudit")" "$token_noaudit"; runs_noaudit+="$t "; echo "   round $round latchkey (statement audit off) $t"
    proxy=$relay_pid
    measured relay relay "host=127.0.0.1 port=$relay_port user=app dbname=bench sslmode=disable" app-secret; runs_relay+="$t "; echo "   round $round haproxy (mode tcp, no TLS) $t"
    if [ -n "$baseline" ]; then
        proxy=$pid_baseline
        measured baseline latchkey "$(gateway "$port_baseline")" "$token_baseline"; runs_baseline+="$t "; echo "   round $round baseline latchkey ($baseline) $t"
    fi
done
cpu_table() {
    python3 - "$(getconf CLK_TCK)" "${cpu[direct]}" "${cpu[pgbouncer]}" "${cpu[latchkey]}" "${cpu[noaudit]}" "${cpu[relay]}" ${baseline:+"${cpu[baseline]}"} <<'PY'
import sys
hz = float(sys.argv[1])
names = ["direct", "pgbouncer", "latchkey", "latchkey, audit off", "bare relay", "baseline latchkey"]
print("             CPU per transaction, us (all rounds): pgbench  postgres  proxy  softirq  all | machine idle")
for name, runs in zip(names, sys.argv[2:]):
    rows = [list(map(float, r.split())) for r in runs.split(";") if r.strip()]
    tx, pgbench, pg, proxy, soft, idle, total = (sum(col) for col in zip(*rows))
    us = lambda ticks: ticks / hz / tx * 1e6
    print(f"             {name:20} {pgbench / tx * 1e6:7.1f} {us(pg):9.1f} {us(proxy):6.1f} {us(soft):8.1f} {us(total - idle):5.1f} | {100 * idle / total:4.1f}%")
PY
}
median() { python3 -c 'import statistics, sys; print(f"{statistics.median(map(float, sys.argv[1:])):.0f}")' $1; }
a_direct=$(median "$runs_direct"); a_bouncer=$(median "$runs_bouncer"); a_latchkey=$(median "$runs_latchkey")
a_noaudit=$(median "$runs_noaudit"); a_relay=$(median "$runs_relay")
# spread A B: the lowest and highest of the rounds' own ratios A/B.
spread() { python3 -c 'import sys; a, b = (list(map(float, x.split())) for x in sys.argv[1:]); r = [x / y for x, y in zip(a, b)]; print(f"{min(r):.2f}-{max(r):.2f}")' "$1" "$2"; }
# Both proxies on the database's machine, talking to it over its Unix socket.
echo "== (a, Unix-socket upstreams) the same, both proxies reaching PostgreSQL through its socket"
u_bouncer=$(run pgbouncer "host=localhost port=$pgb_port user=app dbname=bench_unix sslmode=require" app-secret); echo "   pgbouncer $u_bouncer"
u_latchkey=$(run latchkey "host=127.0.0.1 port=$port_audit user=app dbname=bench sslmode=verify-full sslrootcert=$data/ca.pem" "$unixtoken_audit"); echo "   latchkey $u_latchkey"
echo "== (b) pgbench -S -C (a new connection per transaction), ${seconds}s"
b_bouncer=$(run pgbouncer "$bouncer" app-secret -C); echo "   pgbouncer $b_bouncer"
b_latchkey=$(run latchkey "$(gateway "$port_audit")" "$token_audit" -C); echo "   latchkey $b_latchkey"
# pgbench connects synchronously within a thread, so with 2 threads (b)
# measures handshake latency; one thread per client measures capacity.
echo "== (b') pgbench -S -C with $clients threads, ${seconds}s"
b8_bouncer=$(run pgbouncer "$bouncer" app-secret -C "$clients"); echo "   pgbouncer $b8_bouncer"
b8_latchkey=$(run latchkey "$(gateway "$port_audit")" "$token_audit" -C "$clients"); echo "   latchkey $b8_latchkey"
# pgbench's OpenSSL set-up costs more per connection than the gateway's
# whole login; a rustls client shows the gateway's own capacity.
echo "== (b'') connect-storm (rustls, full handshakes, 8 at once), ${seconds}s"
storm_pid=$pid_connrate
storm postgres "$port_connrate" "$token_connrate" --database bench; b_storm=$storm_rate
echo "   latchkey $b_storm"; echo "      $storm_detail"

echo "== memory per idle connection (200 idle psql sessions)"
rss() { awk '/VmRSS/ {print $2}' "/proc/$lk_pid/status"; }
before=$(rss)
sessions=()
for _ in $(seq 200); do PGPASSWORD=$token_audit psql "$(gateway "$port_audit")" -X -q -c "select pg_sleep(15)" >/dev/null 2>&1 & sessions+=($!); done
sleep 5
after=$(rss)
wait "${sessions[@]}" || true
per_conn=$(( (after - before) / 200 ))

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
cat <<EOF

results ($(date -u +%Y-%m-%d), ${seconds}s runs; (a) medians of $rounds rounds, [each round's own ratio, lowest-highest])
(a) TPS      direct $a_direct   pgbouncer $a_bouncer   latchkey $a_latchkey
             latchkey/pgbouncer $(ratio "$a_latchkey" "$a_bouncer") [$(spread "$runs_latchkey" "$runs_bouncer")]   latchkey/direct $(ratio "$a_latchkey" "$a_direct") [$(spread "$runs_latchkey" "$runs_direct")]
             statement audit off $a_noaudit: audit on/off $(ratio "$a_latchkey" "$a_noaudit") [$(spread "$runs_latchkey" "$runs_noaudit")]   latchkey/direct $(ratio "$a_noaudit" "$a_direct") [$(spread "$runs_noaudit" "$runs_direct")]   latchkey/pgbouncer $(ratio "$a_noaudit" "$a_bouncer") [$(spread "$runs_noaudit" "$runs_bouncer")]
             bare relay (haproxy mode tcp, no TLS) $a_relay: relay/direct $(ratio "$a_relay" "$a_direct") [$(spread "$runs_relay" "$runs_direct")]
$(cpu_table)
$([ -n "$baseline" ] && echo "             baseline latchkey $(median "$runs_baseline"): latchkey/baseline $(ratio "$a_latchkey" "$(median "$runs_baseline")") [$(spread "$runs_latchkey" "$runs_baseline")]")
(a, unix)    pgbouncer $u_bouncer   latchkey $u_latchkey   latchkey/pgbouncer $(ratio "$u_latchkey" "$u_bouncer")   latchkey/direct $(ratio "$u_latchkey" "$a_direct")
(b) conn/s   pgbouncer(TLS) $b_bouncer   latchkey(TLS+token+policy) $b_latchkey
             latchkey/pgbouncer $(ratio "$b_latchkey" "$b_bouncer")
(b') conn/s  $clients threads: pgbouncer(TLS) $b8_bouncer   latchkey $b8_latchkey   latchkey/pgbouncer $(ratio "$b8_latchkey" "$b8_bouncer")
(b'') conn/s connect-storm (rustls client): latchkey $b_storm (target >= 1000)
memory       latchkey RSS $before kB idle, $after kB with 200 sessions: ~${per_conn} kB per connection
EOF
