#!/usr/bin/env bash
# Run N Streamlit processes of Quorum on one database and one artifact store, on ports
# BASE..BASE+N-1 (BASE defaults to PORT+1; REPLICA_PORTS="p1 p2 ..." names them instead), with
# HAProxy on PORT in front: cookie-sticky sessions for the pages, round-robin for /api/, health
# checks on /_stcore/health. Its configuration is written from scripts/haproxy.cfg.template to
# $LOGS/haproxy.cfg.
#
#   N=3 PORT=8501 scripts/run_cluster.sh        # what `make cluster N=3` runs
#
# A process that dies is left out by HAProxy (its sessions reconnect to another process); the
# cluster stops when HAProxy stops or no app process is left. Each process's id is written to
# $LOGS/quorum-PORT.pid.
#
# Demo sign-in (QUORUM_AUTH=demo, the default) is refused unless ALLOW_DEMO=1 is set; every page
# then shows the demo banner.
#
# Every process gets the same QUORUM_DATABASE_URL, QUORUM_ARTIFACT_STORE (and
# QUORUM_ARTIFACT_STORE_OPTIONS), QUORUM_SECRET_KEY, QUORUM_COOKIE_SECRET and Streamlit's
# server.cookieSecret (set through STREAMLIT_SERVER_COOKIE_SECRET: Streamlit refuses it as a
# command-line flag), so a cookie signed by one process is valid in all of them.
# Ctrl+C (or SIGTERM) stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-2}"
PORT="${PORT:-8501}"
BASE="${BASE:-$((PORT + 1))}"
HAPROXY="${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}"
ADDRESS="${ADDRESS:-127.0.0.1}"
BIN="${BIN:-.venv/bin}"
LOGS="${LOGS:-var/cluster}"

if ! [[ "$N" =~ ^[1-9][0-9]*$ ]]; then
  echo "N must be a positive whole number, not '$N'." >&2
  exit 2
fi
if [[ ! -x "$HAPROXY" ]]; then
  echo "HAProxy is missing: install Debian's package (apt-get install haproxy) or set HAPROXY." >&2
  exit 2
fi
if [[ -z "${QUORUM_DATABASE_URL:-}" ]]; then
  echo "Set QUORUM_DATABASE_URL to the shared database (PostgreSQL), for example" >&2
  echo "  export QUORUM_DATABASE_URL=postgresql+psycopg://quorum@db-host:5432/quorum" >&2
  exit 2
fi
case "$QUORUM_DATABASE_URL" in
  sqlite:*) echo "warning: SQLite works only when every process runs on this one machine;" \
                 "use PostgreSQL for several machines." >&2 ;;
esac
if [[ -z "${QUORUM_ARTIFACT_STORE:-}" ]]; then
  echo "Set QUORUM_ARTIFACT_STORE to storage every process reaches: a shared directory or" >&2
  echo "an object store URL such as s3://bucket/quorum (with QUORUM_ARTIFACT_STORE_OPTIONS)." >&2
  exit 2
fi
if [[ "${QUORUM_AUTH:-demo}" == "demo" && "${ALLOW_DEMO:-}" != "1" ]]; then
  echo "Refusing to serve demo sign-in (anyone may pick any demo user, the admin included)." >&2
  echo "Set QUORUM_AUTH=oidc with the QUORUM_OIDC_* settings, or ALLOW_DEMO=1 to serve the" >&2
  echo "demo on purpose (every page then says so)." >&2
  exit 2
fi
if [[ -z "${QUORUM_COOKIE_SECRET:-}" ]]; then
  echo "Set QUORUM_COOKIE_SECRET (32+ random characters) so every process accepts the same" >&2
  echo "login cookie:  export QUORUM_COOKIE_SECRET=\$(python3 -c 'import secrets; print(secrets.token_hex(32))')" >&2
  exit 2
fi
export QUORUM_DATABASE_URL QUORUM_ARTIFACT_STORE QUORUM_COOKIE_SECRET
export STREAMLIT_SERVER_COOKIE_SECRET="$QUORUM_COOKIE_SECRET"

"$BIN/quorum" admin config check
"$BIN/quorum" admin db upgrade
mkdir -p "$LOGS"

SECRETS_ARG=()
if [[ "${QUORUM_AUTH:-demo}" == "oidc" ]]; then
  SECRETS_ARG=(--secrets.files=var/secrets.toml)
fi

if [[ -n "${REPLICA_PORTS:-}" ]]; then
  read -r -a ports <<<"$REPLICA_PORTS"
  N="${#ports[@]}"
else
  ports=()
  for ((i = 0; i < N; i++)); do ports+=($((BASE + i))); done
fi
replicas=()
for port in "${ports[@]}"; do replicas+=("$ADDRESS:$port"); done
"$BIN/python" scripts/haproxy_config.py --address "$ADDRESS" --port "$PORT" \
  --out "$LOGS/haproxy.cfg" "${replicas[@]}"
"$HAPROXY" -q -c -f "$LOGS/haproxy.cfg"

pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

declare -A port_of
for ((i = 0; i < N; i++)); do
  port="${ports[$i]}"
  "$BIN/streamlit" run app.py \
    --server.port="$port" --server.address="$ADDRESS" --server.headless=true \
    --browser.gatherUsageStats=false --server.fileWatcherType=none --server.runOnSave=false \
    "${SECRETS_ARG[@]}" >"$LOGS/quorum-$port.log" 2>&1 &
  pids+=("$!")
  port_of[$!]="$port"
  echo "$!" >"$LOGS/quorum-$port.pid"
  echo "Quorum process $((i + 1))/$N at http://$ADDRESS:$port  (log: $LOGS/quorum-$port.log)"
done
"$HAPROXY" -db -f "$LOGS/haproxy.cfg" >"$LOGS/haproxy.log" 2>&1 &
haproxy_pid=$!
pids+=("$haproxy_pid")
echo "$haproxy_pid" >"$LOGS/haproxy.pid"
echo "Quorum is at http://$ADDRESS:$PORT  (HAProxy in front of $N processes; Ctrl+C stops all)"

left=$N
while true; do
  stopped=""
  wait -n -p stopped "${pids[@]}" || true
  if [[ -z "$stopped" || "$stopped" == "$haproxy_pid" ]]; then
    echo "HAProxy stopped (see $LOGS/haproxy.log); stopping the app processes." >&2
    exit 1
  fi
  left=$((left - 1))
  echo "The Quorum process on port ${port_of[$stopped]} stopped (see $LOGS/quorum-${port_of[$stopped]}.log);" \
       "HAProxy sends its users to the other $left." >&2
  if ((left == 0)); then
    echo "No Quorum process is left; stopping HAProxy." >&2
    exit 1
  fi
  remaining=()
  for pid in "${pids[@]}"; do [[ "$pid" != "$stopped" ]] && remaining+=("$pid"); done
  pids=("${remaining[@]}")
done
