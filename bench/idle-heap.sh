#!/usr/bin/env bash
# Where an idle client's memory goes: heaptrack on the gateway while it
# holds N (default 3000) idle transaction-pooled TLS clients; writes
# heaptrack's peak consumers to $OUT (/tmp/idle-heap.txt). Needs heaptrack,
# PostgreSQL and the AWS CLI; build first with
#   cargo build --release -p latchkey -p latchkey-loadgen
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/common.sh
N=${N:-3000}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
rel=${CARGO_TARGET_DIR:-$PWD/target}/release
work=$(mktemp -d); chmod 755 $work; chown postgres $work
trap 'runuser -u postgres -- $bin/pg_ctl -D $work/pg -m immediate stop >/dev/null 2>&1 || true; rm -rf $work' EXIT
pg_port=$(free_port); lk_port=$(free_port); api_port=$(free_port)
echo pw > $work/pw; chown postgres $work/pw
runuser -u postgres -- $bin/initdb -D $work/pg -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile=$work/pw >/dev/null
runuser -u postgres -- $bin/pg_ctl -D $work/pg -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" -l $work/pg.log -w start >/dev/null
runuser -u postgres -- psql -h $work -p $pg_port -U postgres -q -c "CREATE ROLE app LOGIN PASSWORD 'app-secret'" -c "CREATE DATABASE bench OWNER app"
data=$work/lk
$rel/latchkey init --data-dir $data --listen 127.0.0.1:$api_port >/dev/null
$rel/latchkey db register --data-dir $data --name bench --endpoint localhost --upstream 127.0.0.1:$pg_port --upstream-tls disable --pool-mode transaction --pool-size 20 >/dev/null
echo app-secret | $rel/latchkey db set-password --data-dir $data --name bench --user app
for v in $(env | grep -o '^AWS_[A-Z_]*'); do unset "$v"; done
ulimit -n 20000
LATCHKEY_LOG=warn heaptrack -o $work/heap $rel/latchkey serve --data-dir $data --listen 127.0.0.1:$api_port --pg-listen 127.0.0.1:$lk_port \
  --mysql-listen 127.0.0.1:$(free_port) --audit-dir $work/audit --pg-connection-rate-per-ip 0 --pg-connection-rate-per-principal 0 \
  --gateway-max-connections 20000 --gateway-max-connections-per-ip 20000 --gateway-max-connections-per-principal 20000 >/dev/null 2>$work/lk.log &
hpid=$!
wait_port $lk_port
token=$(AWS_SHARED_CREDENTIALS_FILE=$data/admin.credentials AWS_CONFIG_FILE=/dev/null aws rds generate-db-auth-token --hostname localhost --port $lk_port --username app --region us-east-1)
LATCHKEY_STORM_PASSWORD=$token $rel/connect-storm --engine postgres --port $lk_port --ca $data/ca.pem --user app --database bench --clients $N --threads 1 --hold --duration 3600 > $work/hold.out 2>&1 &
spid=$!
for _ in $(seq 600); do grep -q '^held' $work/hold.out && break; sleep 0.5; done
cat $work/hold.out
sleep 2
kill $spid; sleep 2
pkill -INT -f "latchkey serve --data-dir $data" || true
wait $hpid || true
runuser -u postgres -- $bin/pg_ctl -D $work/pg -m immediate stop >/dev/null
heaptrack_print -f $work/heap*.zst --print-peaks 1 --print-allocators 0 --print-temporary 0 --print-leaks 0 --peak-limit 40 2>/dev/null > "${OUT:-/tmp/idle-heap.txt}" || heaptrack_print -f $work/heap* > "${OUT:-/tmp/idle-heap.txt}"
echo "peak consumers in ${OUT:-/tmp/idle-heap.txt}"
