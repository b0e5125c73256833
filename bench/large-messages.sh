#!/usr/bin/env bash
# The gateway's memory when many sessions send large statements at once.
#
#   bench/large-messages.sh [SESSIONS] [MIB]
#
# SESSIONS (6) sessions of a principal allowed only rds-db:connect (so the
# SQL guard reads its SQL: an administrator's is mostly let through
# unread) each send one MIB (24) MiB statement at once:
# `SELECT 1 WHERE 'user' <> '' AND 1 IN (1,1,…)`, the guard's worst case
# (a token per two bytes). PostgreSQL refuses a list that long itself
# (`XX000`), after the gateway has read and checked it; what is measured
# is the gateway's peak memory (VmHWM) and the time until every session
# has its answer. LATCHKEY_BIN: the build to measure (a release build of
# this tree by default); LATCHKEY_SERVE_FLAGS: more serve flags
# (--gateway-large-message-memory N).
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-6}
mib=${2:-24}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
# shellcheck source=bench/common.sh
source bench/common.sh
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
if [ -z "${LATCHKEY_BIN:-}" ]; then
    cargo build --release --quiet -p latchkey
fi
latchkey=${LATCHKEY_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/latchkey}

work=$(mktemp -d)
chmod 755 "$work"
[ "$(id -u)" -eq 0 ] && chown postgres "$work"
pg_port=$(free_port); lk_port=$(free_port); api_port=$(free_port)
cleanup() {
    [ -n "${lk_pid:-}" ] && kill "$lk_pid" 2>/dev/null || true
    as_pg "$bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

start_postgres

data=$work/latchkey
"$latchkey" init --data-dir "$data" --listen "127.0.0.1:$api_port" >/dev/null
"$latchkey" db register --data-dir "$data" --name bench --endpoint localhost --upstream "127.0.0.1:$pg_port" --upstream-tls disable >/dev/null
echo app-secret | "$latchkey" db set-password --data-dir "$data" --name bench --user app
for v in $(env | grep -o '^AWS_[A-Z_]*'); do unset "$v"; done
# shellcheck disable=SC2086
LATCHKEY_LOG=warn "$latchkey" serve --data-dir "$data" --listen "127.0.0.1:$api_port" --pg-listen "127.0.0.1:$lk_port" \
    --mysql-listen "127.0.0.1:$(free_port)" --audit-dir "$work/audit" ${LATCHKEY_SERVE_FLAGS:-} >/dev/null 2>"$work/latchkey.log" &
lk_pid=$!
wait_port "$lk_port"
admin() { AWS_SHARED_CREDENTIALS_FILE=$data/admin.credentials AWS_CONFIG_FILE=$data/aws.config AWS_CA_BUNDLE=$data/ca.pem aws "$@"; }
admin iam create-user --user-name loader >/dev/null
admin iam put-user-policy --user-name loader --policy-name db --policy-document \
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"rds-db:connect","Resource":"*"}]}'
read -r key secret < <(admin iam create-access-key --user-name loader --query 'AccessKey.[AccessKeyId,SecretAccessKey]' --output text)
sleep 1
token=$(AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_CONFIG_FILE=/dev/null \
    aws rds generate-db-auth-token --hostname localhost --port "$lk_port" --username app --region us-east-1)

echo "== $sessions sessions, one ${mib} MiB statement each, at once ($("$latchkey" --version 2>/dev/null | head -1); serve ${LATCHKEY_SERVE_FLAGS:-with defaults})"
LK_CONNINFO="host=localhost port=$lk_port user=app dbname=bench sslmode=verify-full sslrootcert=$data/ca.pem" \
LK_TOKEN=$token LK_PID=$lk_pid SESSIONS=$sessions MIB=$mib python3 - <<'PY'
import os, threading, time
import psycopg
sessions, size = int(os.environ["SESSIONS"]), int(os.environ["MIB"]) << 20
head = "SELECT 1 WHERE 'user' <> '' AND 1 IN (1"
sql = head + ",1" * ((size - len(head) - 2) // 2) + ")"
conns = [psycopg.connect(os.environ["LK_CONNINFO"], password=os.environ["LK_TOKEN"], autocommit=True)
         for _ in range(sessions)]
def hwm():
    for line in open(f"/proc/{os.environ['LK_PID']}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1])
before = hwm()
outcomes = [None] * sessions
def run(i):
    try:
        conns[i].execute(sql)
        outcomes[i] = "ok"
    except psycopg.Error as e:
        outcomes[i] = e.sqlstate or type(e).__name__
started = time.time()
threads = [threading.Thread(target=run, args=(i,)) for i in range(sessions)]
for t in threads: t.start()
for t in threads: t.join()
print(f"   answered: {sorted(set(outcomes))} in {time.time() - started:.1f} s; "
      f"gateway VmHWM {before / 1024:.0f} MB before, {hwm() / 1024:.0f} MB after")
PY
