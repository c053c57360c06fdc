# Sourced by scripts that drive a local apqd. Defines start_apqd, stop_apqd and
# run_search_job.
#
# start_apqd APQD DB DATA_DIR PORT_FILE LOG_FILE
#   (APQD_EXTRA_FLAGS, when set, is split into more flags, e.g. "--workers 2".)
#   Starts APQD on a free loopback port with the database DB and the embedded data of
#   DATA_DIR, stops it when the calling shell exits (an EXIT trap), waits until it serves
#   (the first start imports the shipped data: up to 60 s) and sets APQD_ADDRESS. Exits the
#   script with apqd's log when it fails to start.
start_apqd() {
  local binary="$1" database="$2" data_dir="$3" port_file="$4" log_file="$5"
  rm -f "${port_file}"
  # A local server on loopback: without authentication (the quick start's default).
  local extra=()
  read -r -a extra <<<"${APQD_EXTRA_FLAGS:-}"
  "${binary}" --listen 127.0.0.1:0 --db "${database}" --data_dir "${data_dir}" --auth=off \
    --port_file "${port_file}" "${extra[@]}" >"${log_file}" 2>&1 &
  APQD_PID=$!
  trap 'kill -TERM "${APQD_PID}" 2>/dev/null || true; wait "${APQD_PID}" 2>/dev/null || true' EXIT
  for _ in $(seq 1 600); do
    [[ -s "${port_file}" ]] && break
    if ! kill -0 "${APQD_PID}" 2>/dev/null; then
      echo "apqd failed to start:" >&2
      cat "${log_file}" >&2
      exit 1
    fi
    sleep 0.1
  done
  [[ -s "${port_file}" ]] || { echo "apqd did not start within 60 s" >&2; exit 1; }
  APQD_ADDRESS="127.0.0.1:$(cat "${port_file}")"
}

# stop_apqd: stops the server start_apqd started and drops its EXIT trap (before
# measurements that need the cores).
stop_apqd() {
  kill -TERM "${APQD_PID}" 2>/dev/null || true
  wait "${APQD_PID}" 2>/dev/null || true
  trap - EXIT
}

# run_search_job APQ FILE ARGS...
#   Runs `APQ search ARGS... --wait --json` into FILE (FILE.part until the client exits, its
#   stderr in FILE without .json plus .err), unless FILE already holds a SUCCEEDED job: a
#   resumed experiment does not search again. A failed search leaves its job JSON (or nothing)
#   in FILE.
run_search_job() {
  local apq="$1" file="$2"
  shift 2
  if [[ -s "${file}" ]] && python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])).get("state") != "SUCCEEDED")' "${file}" 2>/dev/null; then
    return 0
  fi
  echo "search $(basename "${file}" .json)" >&2
  "${apq}" search "$@" --wait --json >"${file}.part" 2>"${file%.json}.err" || true
  mv "${file}.part" "${file}"
}
