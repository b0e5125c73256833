# Shared by the bench scripts (sourced, not run).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

# start_postgres [-c name=value...]: a throwaway PostgreSQL in $work/pg on
# 127.0.0.1:$pg_port (the caller sets work, pg_port, bin and as_pg), with
# a role app (password app-secret) owning a database bench.
start_postgres() {
    echo superuser-secret > "$work/pw"; [ "$(id -u)" -eq 0 ] && chown postgres "$work/pw"
    as_pg "$bin/initdb" -D "$work/pg" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile="$work/pw" >/dev/null
    as_pg "$bin/pg_ctl" -D "$work/pg" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 $*" -l "$work/pg.log" -w start >/dev/null
    as_pg psql -h "$work" -p "$pg_port" -U postgres -q -c "CREATE ROLE app LOGIN PASSWORD 'app-secret'" -c "CREATE DATABASE bench OWNER app"
}

# start_relay DIR PORT UPSTREAM: HAProxy in TCP mode on 127.0.0.1:PORT,
# relaying to UPSTREAM (host:port) without TLS or reading the protocol;
# sets relay_pid. The bare cost of one proxy hop, for scale.
start_relay() {
    cat > "$1/haproxy.cfg" <<CFG
global
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend clients
    bind 127.0.0.1:$2
    default_backend database
backend database
    server db $3
CFG
    "$(command -v haproxy || echo /usr/sbin/haproxy)" -db -f "$1/haproxy.cfg" >/dev/null 2>&1 &
    relay_pid=$!
    wait_port "$2"
}

# ticks PID...: the CPU (user + system, in clock ticks) the processes have
# used; those gone (or not given: an empty PID) are skipped.
ticks() { local t=0 p; for p in "$@"; do [ -n "$p" ] && [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }

# storm ENGINE PORT PASSWORD [connect-storm flags...]: new TLS connections
# per second from connect-storm (crates/loadgen), a rustls client whose own
# cost per connection is small. Sets storm_rate, and storm_detail: failures
# and the CPU that the gateway $storm_pid used.
storm() {
    local engine=$1 port=$2 pw=$3; shift 3
    local t0 t1 out
    t0=$(ticks "$storm_pid")
    out=$(LATCHKEY_STORM_PASSWORD=$pw "$storm_bin" --engine "$engine" --port "$port" --ca "$data/ca.pem" \
        --user app --clients 8 --duration "$seconds" --output json "$@")
    t1=$(ticks "$storm_pid")
    storm_rate=$(python3 -c "import json,sys; print(round(json.loads(sys.argv[1])['connectionsPerSecond']))" "$out")
    storm_detail=$(python3 -c "import json,sys; r=json.loads(sys.argv[1]); cpu=($t1-$t0)/$(getconf CLK_TCK); \
print(f\"{r['failed']} failed; latchkey cpu {cpu/r['seconds']*100:.0f}% (of $(nproc)00%), {cpu/max(r['connections'],1)*1e6:.0f} us per connection\")" "$out")
}
