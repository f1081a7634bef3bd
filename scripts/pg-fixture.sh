#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for one test run (the CTest fixture `postgres`).
#
#   scripts/pg-fixture.sh start STATE_DIR   initdb into a fresh temp dir, start the server on a
#                                            free 127.0.0.1 port (no unix socket), and write
#                                            STATE_DIR/url, STATE_DIR/password, STATE_DIR/datadir
#   scripts/pg-fixture.sh stop STATE_DIR    stop that server and delete its temp dir
#   scripts/pg-fixture.sh pause|resume STATE_DIR   stop / restart the server, data kept (outage
#                                            tests)
#
# The server refuses to run as root, so as root (CI) it runs as the unprivileged `postgres`
# system user (created by the postgresql-15 package). The binaries come from
# /usr/lib/postgresql/15/bin (override with PG_BIN). Tests read STATE_DIR/url and create a
# database of their own in it.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
state=${2:-}
if [[ -z "$cmd" || -z "$state" ]]; then
  echo "usage: $0 start|stop STATE_DIR" >&2
  exit 2
fi

as_server_user() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

stop() {
  [[ -f "$state/datadir" ]] || return 0
  local datadir
  datadir=$(cat "$state/datadir")
  if [[ -f "$datadir/postmaster.pid" ]]; then
    as_server_user "$PG_BIN/pg_ctl" -D "$datadir" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$(dirname "$datadir")"
  rm -f "$state/url" "$state/password" "$state/datadir" "$state/port"
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  if [[ ! -x "$PG_BIN/initdb" ]]; then
    echo "PostgreSQL 15 server binaries not found in $PG_BIN: run scripts/install-deps.sh" >&2
    exit 1
  fi
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    echo "running as root needs the 'postgres' system user (apt-get install postgresql-15)" >&2
    exit 1
  fi
  mkdir -p "$state"
  stop  # a cluster left over by an interrupted run
  local top datadir pwfile password
  top=$(mktemp -d /tmp/opensense-pgtest.XXXXXX)
  chmod 755 "$top"
  datadir="$top/data"
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  pwfile="$top/pwfile"
  printf '%s\n' "$password" >"$pwfile"
  if [[ $(id -u) -eq 0 ]]; then chown -R postgres: "$top"; fi
  echo "$datadir" >"$state/datadir"
  as_server_user "$PG_BIN/initdb" -D "$datadir" -U opensense --pwfile="$pwfile" \
    --auth=scram-sha-256 --locale=C --encoding=UTF8 >"$top/initdb.log" 2>&1 || {
    cat "$top/initdb.log" >&2
    exit 1
  }
  rm -f "$pwfile"
  cat >>"$datadir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = on
synchronous_commit = on
shared_buffers = 128MB
max_connections = 200
jit = off
logging_collector = off
EOF
  local port tries=0
  while true; do
    port=$((20000 + RANDOM % 30000))
    if port_free "$port"; then
      if as_server_user "$PG_BIN/pg_ctl" -D "$datadir" -l "$top/server.log" -o "-p $port" \
        -w -t 60 start >/dev/null 2>&1; then
        break
      fi
    fi
    tries=$((tries + 1))
    if [[ $tries -ge 10 ]]; then
      echo "could not start PostgreSQL (last log below)" >&2
      tail -n 30 "$top/server.log" >&2 || true
      exit 1
    fi
  done
  echo "$port" >"$state/port"
  printf '%s' "$password" >"$state/password"
  chmod 600 "$state/password"
  echo "postgres://opensense@127.0.0.1:$port/postgres" >"$state/url"
  echo "PostgreSQL 15 test cluster on 127.0.0.1:$port ($datadir)"
}

pause() {
  as_server_user "$PG_BIN/pg_ctl" -D "$(cat "$state/datadir")" -m fast -w stop >/dev/null
}

resume() {
  local datadir
  datadir=$(cat "$state/datadir")
  as_server_user "$PG_BIN/pg_ctl" -D "$datadir" -l "$(dirname "$datadir")/server.log" \
    -o "-p $(cat "$state/port")" -w -t 60 start >/dev/null
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  pause) pause ;;
  resume) resume ;;
  *) echo "usage: $0 start|stop|pause|resume STATE_DIR" >&2; exit 2 ;;
esac
