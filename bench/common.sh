# Shared by the bench scripts (sourced, not run).

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

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
