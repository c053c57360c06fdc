# Sourced by shell tests that need a real apqd with authentication on. Defines
# start_apqd_with_token.
#
# start_apqd_with_token DIR [APQD_FLAGS...]
#   Starts server/apqd (a runfile) on a free loopback port with the database DIR/apq.db and the
#   embedded data, authentication on and its first admin token written to DIR/token; stops it
#   when the calling shell exits (an EXIT trap). Waits until it serves and sets APQD_ADDRESS
#   and APQD_TOKEN; exits the test with apqd's log when it fails to start.
start_apqd_with_token() {
  local dir="$1"
  shift
  server/apqd --listen 127.0.0.1:0 --db "${dir}/apq.db" --data_dir data --port_file "${dir}/port" \
    --bootstrap_token_file "${dir}/token" "$@" >"${dir}/apqd.log" 2>&1 &
  APQD_PID=$!
  trap 'kill -TERM "${APQD_PID}" 2>/dev/null || true; wait "${APQD_PID}" 2>/dev/null || true' EXIT
  for _ in $(seq 1 600); do
    [[ -s "${dir}/port" && -s "${dir}/token" ]] && break
    kill -0 "${APQD_PID}" 2>/dev/null || { cat "${dir}/apqd.log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -s "${dir}/port" && -s "${dir}/token" ]] ||
    { echo "apqd did not start" >&2; cat "${dir}/apqd.log" >&2; exit 1; }
  APQD_ADDRESS="127.0.0.1:$(cat "${dir}/port")"
  APQD_TOKEN="$(cat "${dir}/token")"
}
