#!/usr/bin/env bash
# Run N Streamlit processes of Quorum on one database and one artifact store, on ports
# BASE..BASE+N-1, for a load balancer with sticky sessions in front.
#
#   N=2 BASE=8501 scripts/run_cluster.sh
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
BASE="${BASE:-8501}"
ADDRESS="${ADDRESS:-127.0.0.1}"
BIN="${BIN:-.venv/bin}"
LOGS="${LOGS:-var/cluster}"

if ! [[ "$N" =~ ^[1-9][0-9]*$ ]]; then
  echo "N must be a positive whole number, not '$N'." >&2
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

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait || true
}
trap stop EXIT INT TERM

for ((i = 0; i < N; i++)); do
  port=$((BASE + i))
  "$BIN/streamlit" run app.py \
    --server.port="$port" --server.address="$ADDRESS" --server.headless=true \
    --browser.gatherUsageStats=false \
    "${SECRETS_ARG[@]}" >"$LOGS/quorum-$port.log" 2>&1 &
  pids+=("$!")
  echo "Quorum process $((i + 1))/$N at http://$ADDRESS:$port  (log: $LOGS/quorum-$port.log)"
done
echo "Put a load balancer with sticky sessions in front of these ports. Ctrl+C stops them all."
wait -n "${pids[@]}"
echo "A Quorum process stopped; stopping the others (see $LOGS)." >&2
exit 1
