#!/usr/bin/env bash
# A throwaway PostgreSQL for tests (the PostgreSQL store, issue 18): initdb into a fresh
# folder under /tmp (not TEST_TMPDIR: a unix socket path must stay under 107 bytes), a free
# TCP port on loopback, trust authentication, no systemd. Runs as the postgres user
# (initdb refuses root). The first start keeps a template data folder, copied for later starts.
#
# usage: scripts/postgres_test_server.sh start DIR   prints "postgresql://postgres@127.0.0.1:PORT/postgres"
#        scripts/postgres_test_server.sh stop DIR
# Tests run it with fsync off (nothing they write must survive a power cut);
# APQ_POSTGRES_DURABLE=1 keeps PostgreSQL's durable defaults, for benchmarks.
set -euo pipefail

readonly bin=/usr/lib/postgresql/15/bin
readonly template=/tmp/apq-postgres-template-15

as_postgres() {
  if [[ $(id -un) == postgres ]]; then "$@"; else runuser -u postgres -- "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-}" in
  start)
    dir="${2:?usage: start DIR}"
    [[ -x "${bin}/initdb" ]] || { echo "postgresql-15 is not installed: run scripts/setup.sh" >&2; exit 1; }
    mkdir -p "${dir}"
    chown postgres "${dir}" 2>/dev/null || true
    if [[ ! -f "${template}/PG_VERSION" ]]; then
      rm -rf "${template}.partial"
      mkdir -p "${template}.partial"
      chown postgres "${template}.partial" 2>/dev/null || true
      as_postgres "${bin}/initdb" -D "${template}.partial" -U postgres --auth=trust \
        --no-sync >"${dir}/initdb.log" 2>&1 || { cat "${dir}/initdb.log" >&2; exit 1; }
      mv "${template}.partial" "${template}"
    fi
    cp -a "${template}" "${dir}/data"
    port="$(free_port)"
    fsync_option="-c fsync=off"
    [[ "${APQ_POSTGRES_DURABLE:-0}" == 1 ]] && fsync_option=""
    as_postgres "${bin}/pg_ctl" -D "${dir}/data" -l "${dir}/server.log" -w -t 30 \
      -o "-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 ${fsync_option}" start >/dev/null ||
      { cat "${dir}/server.log" >&2; exit 1; }
    echo "${port}" >"${dir}/port"
    echo "postgresql://postgres@127.0.0.1:${port}/postgres"
    ;;
  stop)
    dir="${2:?usage: stop DIR}"
    [[ -d "${dir}/data" ]] || exit 0
    as_postgres "${bin}/pg_ctl" -D "${dir}/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    ;;
  *)
    echo "usage: $0 start DIR | stop DIR" >&2
    exit 2
    ;;
esac
