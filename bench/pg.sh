#!/usr/bin/env bash
# PostgreSQL gateway benchmark, one run on this machine:
#   bench/pg.sh [SECONDS]
# Compares direct PostgreSQL, PgBouncer (session mode, client TLS) and
# Latchkey (TLS, token verification, policy, statement audit on and off) with
#   (a) pgbench -S, 8 clients, 2 threads: TPS
#   (b) pgbench -S -C: new connections per second (and connect-storm, a
#       lighter rustls client, for the gateway's own capacity)
# and reports Latchkey's memory per idle connection. For scale, (a) also
# runs through HAProxy in TCP mode: a relay that neither terminates TLS nor
# reads the protocol, so it shows what one proxy hop costs on this machine.
# Needs PostgreSQL, pgbench, pgbouncer, haproxy and the AWS CLI
# (apt: postgresql pgbouncer haproxy; pip: awscli). Honours CARGO_TARGET_DIR
# for the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
clients=8
threads=2

as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# shellcheck source=bench/common.sh
. bench/common.sh

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
for tool in pgbouncer haproxy; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "$tool is required (apt-get install $tool)" >&2; exit 1; }
done
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
    LATCHKEY_LOG=warn "$latchkey" serve --data-dir "$data" --listen "127.0.0.1:$api" --pg-listen "127.0.0.1:$port" --mysql-listen "127.0.0.1:$(free_port)" \
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
# For (b''): the per-address and per-principal limiter (2,000/s) off.
start_latchkey connrate --pg-connection-rate-per-ip 0 --pg-connection-rate-per-principal 0
lk_pid=$pid_audit

echo "== starting PgBouncer on $pgb_port (session mode, client TLS)"
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
as_pg pgbouncer "$work/pgbouncer.ini" >/dev/null 2>&1 &
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

echo "== (a) pgbench -S, $clients clients, $threads threads, ${seconds}s"
a_direct=$(run direct "$direct" app-secret); echo "   direct $a_direct"
a_bouncer=$(run pgbouncer "$bouncer" app-secret); echo "   pgbouncer $a_bouncer"
a_latchkey=$(run latchkey "$(gateway "$port_audit")" "$token_audit"); echo "   latchkey (statement audit on) $a_latchkey"
a_noaudit=$(run latchkey "$(gateway "$port_noaudit")" "$token_noaudit"); echo "   latchkey (statement audit off) $a_noaudit"
a_relay=$(run relay "host=127.0.0.1 port=$relay_port user=app dbname=bench sslmode=disable" app-secret); echo "   haproxy (mode tcp, no TLS) $a_relay"
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

results ($(date -u +%Y-%m-%d), ${seconds}s runs)
(a) TPS      direct $a_direct   pgbouncer $a_bouncer   latchkey $a_latchkey
             latchkey/pgbouncer $(ratio "$a_latchkey" "$a_bouncer")   latchkey/direct $(ratio "$a_latchkey" "$a_direct")
             statement audit off $a_noaudit: audit on/off $(ratio "$a_latchkey" "$a_noaudit")   latchkey/direct $(ratio "$a_noaudit" "$a_direct")   latchkey/pgbouncer $(ratio "$a_noaudit" "$a_bouncer")
             bare relay (haproxy mode tcp, no TLS) $a_relay: relay/direct $(ratio "$a_relay" "$a_direct")
(a, unix)    pgbouncer $u_bouncer   latchkey $u_latchkey   latchkey/pgbouncer $(ratio "$u_latchkey" "$u_bouncer")   latchkey/direct $(ratio "$u_latchkey" "$a_direct")
(b) conn/s   pgbouncer(TLS) $b_bouncer   latchkey(TLS+token+policy) $b_latchkey
             latchkey/pgbouncer $(ratio "$b_latchkey" "$b_bouncer")
(b') conn/s  $clients threads: pgbouncer(TLS) $b8_bouncer   latchkey $b8_latchkey   latchkey/pgbouncer $(ratio "$b8_latchkey" "$b8_bouncer")
(b'') conn/s connect-storm (rustls client): latchkey $b_storm (target >= 1000)
memory       latchkey RSS $before kB idle, $after kB with 200 sessions: ~${per_conn} kB per connection
EOF
