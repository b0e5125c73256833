#!/usr/bin/env bash
# MySQL gateway benchmark, one run on this machine:
#   bench/mysql.sh [SECONDS]        (default 10: seconds per measurement)
# Compares direct MariaDB (plain TCP and TLS, mysql_native_password) and
# Latchkey's MySQL gateway (client TLS, IAM token as the password, policy,
# statement audit on and off) with mysqlslap, which has no duration flag:
# each run is sized from a short probe to last about SECONDS.
#   (a) mysqlslap, 8 clients, a primary-key SELECT: queries per second
#       (the gateway's upstream over TCP and over MariaDB's Unix socket)
#   (b) mysqlslap --detach=1 (a new connection per query), 8 clients:
#       new authenticated connections per second (and connect-storm, a
#       lighter rustls client, for the gateway's own capacity)
# and reports Latchkey's memory per idle connection. For scale, (a) also
# runs through HAProxy in TCP mode: a relay that neither terminates TLS nor
# reads the protocol, so it shows what one proxy hop costs on this machine.
# Needs the MariaDB server and client (apt: mariadb-server mariadb-client,
# for mysqlslap), haproxy and the AWS CLI (pip: awscli). Honours
# CARGO_TARGET_DIR for the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
clients=8
probe_queries=4000
# LATCHKEY_BASELINE=/path/to/an/older/latchkey: (a) also runs that build's
# gateway on the same store, before and after this build's (ABBA), so that
# a change is compared with the build before it in one run.
baseline=${LATCHKEY_BASELINE:-}

# shellcheck source=bench/common.sh
. bench/common.sh

for tool in mariadb-install-db mariadbd mysqlslap mariadb haproxy aws; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "$tool is required (apt-get install mariadb-server mariadb-client haproxy; pip install awscli)" >&2; exit 1; }
done
mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)
cargo build --release --quiet -p latchkey -p latchkey-loadgen
latchkey=${CARGO_TARGET_DIR:-$PWD/target}/release/latchkey
storm_bin=${CARGO_TARGET_DIR:-$PWD/target}/release/connect-storm

work=$(mktemp -d)
my_port=$(free_port)
cleanup() {
    for p in "${pid_audit:-}" "${pid_noaudit:-}" "${pid_connrate:-}" "${pid_idle:-}" "${pid_baseline:-}" "${relay_pid:-}" "${pid_db:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    [ -n "${pid_db:-}" ] && wait "$pid_db" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Latchkey first: MariaDB serves direct TLS with the same certificate.
data=$work/latchkey
"$latchkey" init --data-dir "$data" --listen "127.0.0.1:$(free_port)" >/dev/null

echo "== starting MariaDB on $my_port"
mariadb-install-db --no-defaults --datadir="$work/db" --user=root --auth-root-authentication-method=normal --skip-test-db >/dev/null 2>&1
"$mariadbd" --no-defaults --datadir="$work/db" --socket="$work/sock" --port="$my_port" --bind-address=127.0.0.1 \
    --pid-file="$work/db.pid" --log-error="$work/db.err" --user=root --max-connections=1000 \
    --innodb-buffer-pool-size=128M --ssl-cert="$data/server.pem" --ssl-key="$data/server.key" >/dev/null 2>&1 &
pid_db=$!
for _ in $(seq 600); do [ -S "$work/sock" ] && break; sleep 0.1; done
[ -S "$work/sock" ] || { echo "mariadbd did not start:" >&2; tail "$work/db.err" >&2; exit 1; }
mariadb --socket="$work/sock" -uroot -e "
    CREATE DATABASE bench;
    CREATE USER app@'%' IDENTIFIED BY 'app-secret';
    GRANT ALL ON bench.* TO app@'%';
    USE bench;
    CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(64)) ENGINE=InnoDB;
    INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_10000;"

"$latchkey" db register --data-dir "$data" --name bench --engine mysql --endpoint localhost \
    --upstream "127.0.0.1:$my_port" --upstream-tls disable >/dev/null
echo app-secret | "$latchkey" db set-password --data-dir "$data" --name bench --user app
# The same server through its Unix socket, for clients that name 127.0.0.1.
"$latchkey" db register --data-dir "$data" --name bench-unix --engine mysql --endpoint 127.0.0.1 \
    --upstream "$work/sock" --upstream-tls disable >/dev/null
echo app-secret | "$latchkey" db set-password --data-dir "$data" --name bench-unix --user app
for v in $(env | grep -o '^AWS_[A-Z_]*'); do unset "$v"; done
# start_latchkey NAME [serve flags...]: a gateway whose MySQL listener is on
# a free port; sets port_NAME, pid_NAME and token_NAME (tokens are signed
# for the port and last 15 minutes).
start_latchkey() {
    local name=$1; shift
    local port
    port=$(free_port)
    LATCHKEY_LOG=warn "${serve_bin:-$latchkey}" serve --data-dir "$data" --listen "127.0.0.1:$(free_port)" --pg-listen "127.0.0.1:$(free_port)" \
        --mysql-listen "127.0.0.1:$port" --audit-dir "$work/audit-$name" "$@" >/dev/null 2>"$work/latchkey-$name.log" &
    printf -v "pid_$name" %s $!
    printf -v "port_$name" %s "$port"
    wait_port "$port"
    printf -v "token_$name" %s "$(AWS_SHARED_CREDENTIALS_FILE=$data/admin.credentials AWS_CONFIG_FILE=/dev/null \
        aws rds generate-db-auth-token --hostname localhost --port "$port" --username app --region us-east-1)"
    printf -v "unixtoken_$name" %s "$(AWS_SHARED_CREDENTIALS_FILE=$data/admin.credentials AWS_CONFIG_FILE=/dev/null \
        aws rds generate-db-auth-token --hostname 127.0.0.1 --port "$port" --username app --region us-east-1)"
    echo "== started Latchkey $name on $port (${*:-defaults})"
}
start_latchkey audit
start_latchkey noaudit --no-statement-audit
# The connection-rate run: the per-IP/principal limiter (2,000/s by default) off.
start_latchkey connrate --pg-connection-rate-per-ip 0 --pg-connection-rate-per-principal 0
# A gateway that serves nothing but the idle sessions of the memory probe.
start_latchkey idle
[ -n "$baseline" ] && serve_bin=$baseline start_latchkey baseline

ulimit -n 8192 2>/dev/null || true
relay_port=$(free_port)
start_relay "$work" "$relay_port" "127.0.0.1:$my_port"
query="SELECT v FROM bench.t WHERE id = 4242"
direct=(--protocol=TCP --host=127.0.0.1 --port="$my_port" --user=app --skip-ssl)
relay=(--protocol=TCP --host=127.0.0.1 --port="$relay_port" --user=app --skip-ssl)
direct_tls=(--protocol=TCP --host=localhost --port="$my_port" --user=app --ssl --ssl-ca="$data/ca.pem" --ssl-verify-server-cert)
gateway() { echo "--protocol=TCP --host=localhost --port=$1 --user=app --ssl --ssl-ca=$data/ca.pem --ssl-verify-server-cert"; }
# To the registration whose upstream is MariaDB's Unix socket.
gateway_unix() { echo "--protocol=TCP --host=127.0.0.1 --port=$1 --user=app --ssl --ssl-ca=$data/ca.pem --ssl-verify-server-cert"; }

# Check every path once with the mariadb CLI before measuring.
check() { # password, client flags...
    local pw=$1; shift
    [ "$(MYSQL_PWD=$pw mariadb "$@" -N -B -e "$query")" = "$(mariadb --socket="$work/sock" -uroot -N -B -e "$query")" ] \
        || { echo "query through $* failed" >&2; exit 1; }
}
check app-secret "${direct[@]}"
check app-secret "${direct_tls[@]}"
check app-secret "${relay[@]}"
# shellcheck disable=SC2046
for name in audit noaudit connrate idle; do pw=token_$name; port=port_$name; check "${!pw}" $(gateway "${!port}"); done
# shellcheck disable=SC2046
check "$unixtoken_audit" $(gateway_unix "$port_audit")

# slap_seconds PASSWORD QUERIES [mysqlslap flags...]: wall seconds for all
# queries; leaves the CPU split (client, the proxy $lk, mariadbd) in $work/cpu.
slap_seconds() {
    local pw=$1 n=$2; shift 2
    local out db0 lk0 db1 lk1 t
    db0=$(ticks "$pid_db"); lk0=$(ticks "${lk:-}")
    out=$(MYSQL_PWD=$pw /usr/bin/time -f '%U %S' -o "$work/time" mysqlslap "$@" --concurrency="$clients" --number-of-queries="$n" \
        --iterations=1 --create-schema=bench --no-drop --query="$query" 2>&1) || { echo "mysqlslap failed: $out" >&2; exit 1; }
    db1=$(ticks "$pid_db"); lk1=$(ticks "${lk:-}")
    t=$(awk '/Average number of seconds to run all queries/ {print $(NF-1)}' <<<"$out")
    read -r cu cs < "$work/time"
    python3 -c "w=max($t, 0.001); print(f'cpu (of {$(nproc)*100}%): mysqlslap {($cu+$cs)/w*100:.0f}%  ${lk_name:-latchkey} {($lk1-$lk0)/$(getconf CLK_TCK)/w*100:.0f}%  mariadbd {($db1-$db0)/$(getconf CLK_TCK)/w*100:.0f}%')" > "$work/cpu"
    echo "$t"
}
# rate PASSWORD [mysqlslap flags...]: a probe sizes a run of ~$seconds s;
# prints queries (or, with --detach=1, connections) per second.
rate() {
    local pw=$1; shift
    local t n
    t=$(slap_seconds "$pw" "$probe_queries" "$@")
    n=$(python3 -c "print(max($probe_queries, int($probe_queries / max($t, 0.001) * $seconds) // $clients * $clients))")
    t=$(slap_seconds "$pw" "$n" "$@")
    python3 -c "print(round($n / $t))"
}
cpu() { echo "      $(cat "$work/cpu")"; }

echo "== (a) mysqlslap, $clients clients, \"$query\", ~${seconds}s each"
# shellcheck disable=SC2046
{
lk=; a_direct=$(rate app-secret "${direct[@]}"); echo "   direct (plain TCP) $a_direct q/s"; cpu
a_direct_tls=$(rate app-secret "${direct_tls[@]}"); echo "   direct (TLS) $a_direct_tls q/s"; cpu
lk=$relay_pid; lk_name=haproxy; a_relay=$(rate app-secret "${relay[@]}"); echo "   haproxy (mode tcp, no TLS) $a_relay q/s"; cpu
lk_name=
lk=$pid_audit; a_audit=$(rate "$token_audit" $(gateway "$port_audit")); echo "   latchkey (statement audit on) $a_audit q/s"; cpu
a_unix=$(rate "$unixtoken_audit" $(gateway_unix "$port_audit")); echo "   latchkey (audit on, upstream by Unix socket) $a_unix q/s"; cpu
lk=$pid_noaudit; a_noaudit=$(rate "$token_noaudit" $(gateway "$port_noaudit")); echo "   latchkey (statement audit off) $a_noaudit q/s"; cpu
if [ -n "$baseline" ]; then
    lk=$pid_baseline; a_base1=$(rate "$token_baseline" $(gateway "$port_baseline")); echo "   baseline latchkey ($baseline, audit on) $a_base1 q/s"; cpu
    a_base2=$(rate "$token_baseline" $(gateway "$port_baseline")); echo "   baseline latchkey again $a_base2 q/s"; cpu
    lk=$pid_audit; a_audit2=$(rate "$token_audit" $(gateway "$port_audit")); echo "   latchkey (statement audit on) again $a_audit2 q/s"; cpu
fi
}
echo "== (b) mysqlslap --detach=1 (a new connection per query), $clients clients, ~${seconds}s each"
# shellcheck disable=SC2046
{
lk=; b_direct=$(rate app-secret "${direct[@]}" --detach=1); echo "   direct (plain TCP) $b_direct conn/s"; cpu
b_direct_tls=$(rate app-secret "${direct_tls[@]}" --detach=1); echo "   direct (TLS) $b_direct_tls conn/s"; cpu
lk=$pid_connrate; b_latchkey=$(rate "$token_connrate" $(gateway "$port_connrate") --detach=1); echo "   latchkey (TLS+token+policy, audit on, no rate limit) $b_latchkey conn/s"; cpu
# mysqlslap's OpenSSL set-up costs more per connection than the gateway's
# whole login; a rustls client shows the gateway's own capacity.
storm_pid=$pid_connrate
storm mysql "$port_connrate" "$token_connrate" --database bench; b_storm=$storm_rate
echo "   latchkey, connect-storm (rustls client, full handshakes) $b_storm conn/s"; echo "      $storm_detail"
}

echo "== memory per idle connection (200 idle mariadb sessions)"
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid_idle/status"; }
before=$(rss)
sessions=()
# shellcheck disable=SC2046
for _ in $(seq 200); do MYSQL_PWD=$token_idle mariadb $(gateway "$port_idle") -N -B -e "SELECT SLEEP(15)" >/dev/null 2>&1 & sessions+=($!); done
sleep 5
after=$(rss)
upstream=$(mariadb --socket="$work/sock" -uroot -N -B -e "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP%'")
wait "${sessions[@]}" || true
per_conn=$(( (after - before) / 200 ))

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
cat <<EOF

results ($(date -u +%Y-%m-%d), ~${seconds}s runs, $(nproc) cores, mysqlslap $clients clients)
(a) q/s      direct $a_direct   latchkey $a_audit   latchkey/direct $(ratio "$a_audit" "$a_direct") (target >= 0.75)
             statement audit off $a_noaudit: latchkey/direct $(ratio "$a_noaudit" "$a_direct")   audit on/off $(ratio "$a_audit" "$a_noaudit")
             upstream by Unix socket $a_unix: latchkey/direct $(ratio "$a_unix" "$a_direct")
             direct(TLS) $a_direct_tls: latchkey/direct(TLS) $(ratio "$a_audit" "$a_direct_tls")
             bare relay (haproxy mode tcp, no TLS) $a_relay: relay/direct $(ratio "$a_relay" "$a_direct")
$([ -n "$baseline" ] && echo "             baseline latchkey $a_base1, $a_base2 (this build $a_audit, $a_audit2; ABBA): latchkey/baseline $(ratio "$((a_audit + a_audit2))" "$((a_base1 + a_base2))")")
(b) conn/s   direct(plain) $b_direct   direct(TLS) $b_direct_tls   latchkey(TLS+token+policy) $b_latchkey (target >= 1000)
             latchkey/direct(plain) $(ratio "$b_latchkey" "$b_direct")   latchkey/direct(TLS) $(ratio "$b_latchkey" "$b_direct_tls")
             connect-storm (rustls client): latchkey $b_storm (target >= 1000)
memory       latchkey RSS $before kB idle, $after kB with 200 sessions ($upstream reached MariaDB): ~${per_conn} kB per connection
EOF
