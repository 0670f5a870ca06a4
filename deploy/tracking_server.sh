#!/usr/bin/env bash
# An MLflow tracking server on a local PostgreSQL, in the foreground (`make tracking-server`; Ctrl-C stops
# both). PostgreSQL lives in $DLOPS_PG_DIR (default .mlflow-server/postgres; created on first start, reused after),
# listens on 127.0.0.1:$DLOPS_PG_PORT only, with its unix socket in that directory; database `mlflow`.
# Artifacts are proxied by the server to $DLOPS_ARTIFACTS (default .mlflow-server/artifacts).
#   PORT=5000 DLOPS_PG_PORT=5433 MLFLOW_WORKERS=2 DLOPS_PG_PASSWORD=... deploy/tracking_server.sh
# Local development only: without DLOPS_PG_PASSWORD, anyone on this machine may connect to PostgreSQL over
# loopback (trust); with it, TCP needs the password (scram-sha-256). The socket directory is private (0700).
# PostgreSQL refuses to run as root: under root it runs as the `postgres` user, which must own the directory.
set -euo pipefail

PORT=${PORT:-5000}
PG_DIR=$(realpath -m "${DLOPS_PG_DIR:-.mlflow-server/postgres}")
PG_PORT=${DLOPS_PG_PORT:-5433}  # not 5432: leave a system cluster's port alone
ARTIFACTS=$(realpath -m "${DLOPS_ARTIFACTS:-.mlflow-server/artifacts}")
MLFLOW=${MLFLOW:-$(command -v mlflow || echo .venv/bin/mlflow)}
PG_USER=mlflow  # the cluster's only role (superuser): it is this server's private cluster
DATA=$PG_DIR/data

pg_bin=${DLOPS_PG_BIN:-$(find /usr/lib/postgresql -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)}
pg_bin=${pg_bin%/initdb}
[ -n "$pg_bin" ] || pg_bin=$(dirname "$(command -v initdb || echo /missing/initdb)")
if [ ! -x "$pg_bin/initdb" ]; then
  echo "PostgreSQL server binaries not found (apt-get install postgresql, or set DLOPS_PG_BIN)" >&2
  exit 1
fi

as_pg=()
mkdir -p "$PG_DIR"
chmod 700 "$PG_DIR"
if [ "$(id -u)" = 0 ]; then
  as_pg=(runuser -u postgres --)
  chown postgres: "$PG_DIR"
  if ! "${as_pg[@]}" test -w "$PG_DIR"; then
    echo "user postgres cannot reach $PG_DIR (a parent directory is closed); set DLOPS_PG_DIR" >&2
    exit 1
  fi
fi
pg_ctl() { "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$DATA" "$@"; }
psql() { "${as_pg[@]}" "$pg_bin/psql" -h "$PG_DIR" -p "$PG_PORT" -U "$PG_USER" -d postgres -qtAX "$@"; }

if [ ! -f "$DATA/PG_VERSION" ]; then
  "${as_pg[@]}" "$pg_bin/initdb" -D "$DATA" -U "$PG_USER" -A trust -E UTF8 --no-locale >/dev/null
fi
# Rewritten at every start, so the rule follows DLOPS_PG_PASSWORD (the file keeps its owner).
host_auth=$([ -n "${DLOPS_PG_PASSWORD:-}" ] && echo scram-sha-256 || echo trust)
printf 'local all all trust\nhost all all 127.0.0.1/32 %s\n' "$host_auth" >"$DATA/pg_hba.conf"

server_pid='' started_pg=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$started_pg" = 1 ]; then
    pg_ctl -m fast -w stop >/dev/null && echo "PostgreSQL stopped ($DATA)" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if pg_ctl status >/dev/null; then  # already up (another shell): use it, leave it running
  PG_PORT=$(sed -n 4p "$DATA/postmaster.pid")
  pg_ctl reload >/dev/null
else
  pg_ctl -l "$PG_DIR/postgres.log" -w -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k '$PG_DIR'" start \
    >/dev/null
  started_pg=1
fi
if [ -n "${DLOPS_PG_PASSWORD:-}" ]; then  # psql reads it from the environment: never on a command line
  export DLOPS_PG_PASSWORD
  psql <<<"\\getenv pw DLOPS_PG_PASSWORD
ALTER ROLE $PG_USER PASSWORD :'pw'"
  export PGPASSWORD=$DLOPS_PG_PASSWORD  # libpq (psycopg2, in the server) reads it
fi
if [ -z "$(psql -c "SELECT 1 FROM pg_database WHERE datname = 'mlflow'")" ]; then
  psql -c "CREATE DATABASE mlflow"
fi

# Opt-in authentication: DLOPS_MLFLOW_AUTH=1 runs MLflow's basic-auth app (users, passwords, permissions
# per experiment and registered model); it needs Flask-WTF (pip install 'mlflow[auth]'). Users live in
# $DLOPS_MLFLOW_AUTH_DIR/basic_auth.db (default .mlflow-server/auth); the first start creates the admin
# from MLFLOW_AUTH_ADMIN_PASSWORD (user MLFLOW_AUTH_ADMIN_USERNAME, default admin). Passwords travel in
# clear over HTTP: beyond loopback, put a TLS reverse proxy in front.
app_args=()
if [ "${DLOPS_MLFLOW_AUTH:-0}" = 1 ]; then
  py=$(dirname "$MLFLOW")/python
  if [ -x "$py" ] && ! "$py" -c 'import flask_wtf' 2>/dev/null; then
    echo "DLOPS_MLFLOW_AUTH=1 needs Flask-WTF: pip install 'mlflow[auth]'" >&2
    exit 1
  fi
  AUTH_DIR=$(realpath -m "${DLOPS_MLFLOW_AUTH_DIR:-.mlflow-server/auth}")
  mkdir -p "$AUTH_DIR"
  chmod 700 "$AUTH_DIR"
  if [ -z "${MLFLOW_AUTH_CONFIG_PATH:-}" ]; then
    if [ ! -f "$AUTH_DIR/basic_auth.db" ] && [ -z "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" ]; then
      echo "DLOPS_MLFLOW_AUTH=1: the first start needs MLFLOW_AUTH_ADMIN_PASSWORD (it creates the admin)" >&2
      exit 1
    fi
    printf '[mlflow]\ndefault_permission = %s\ndatabase_uri = sqlite:///%s\nadmin_username = admin\n' \
      "${DLOPS_MLFLOW_DEFAULT_PERMISSION:-READ}" "$AUTH_DIR/basic_auth.db" >"$AUTH_DIR/basic_auth.ini"
    export MLFLOW_AUTH_CONFIG_PATH=$AUTH_DIR/basic_auth.ini
  fi
  if [ -z "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" ]; then  # CSRF key: the same in every worker and restart
    [ -s "$AUTH_DIR/secret_key" ] || (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$AUTH_DIR/secret_key")
    MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$AUTH_DIR/secret_key")
    export MLFLOW_FLASK_SERVER_SECRET_KEY
  fi
  app_args=(--app-name basic-auth)
fi

export MLFLOW_DISABLE_TELEMETRY=${MLFLOW_DISABLE_TELEMETRY:-true}
# The job runner (7 huey consumers) serves GenAI jobs, which the pipeline does not use.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
"$MLFLOW" server \
  --backend-store-uri "postgresql+psycopg2://$PG_USER@127.0.0.1:$PG_PORT/mlflow" \
  --artifacts-destination "$ARTIFACTS" \
  --host 127.0.0.1 --port "$PORT" --workers "${MLFLOW_WORKERS:-2}" "${app_args[@]}" &
server_pid=$!
wait "$server_pid"
