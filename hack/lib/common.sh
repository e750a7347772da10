# shellcheck shell=bash
# Helpers shared by hack/build-tools.sh, hack/local-*.sh. Source, don't execute.

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="${ROOT_DIR}/bin"

# kwok is installed straight from its module (no tools go.mod), so its version lives here.
# local-up.sh reads the Stage YAMLs from the same module version in the module cache.
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"

# The control-plane binaries that local-up.sh runs, in the order it starts them.
# shellcheck disable=SC2034 # used by the scripts that source this
CONTROL_PLANE_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl)

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '%s ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not installed${2:+ ($2)}"
}

# Milliseconds since the epoch; used to print time-to-ready.
now_ms() { date +%s%3N; }
elapsed() { # elapsed START_MS -> "12.3s"
  local d=$(( $(now_ms) - $1 ))
  printf '%d.%ds' $((d / 1000)) $(((d % 1000) / 100))
}

# Ports handed out by free_port in this shell, so two calls never return the same one.
_USED_PORTS=" "

# free_port VAR: set VAR to a TCP port on 127.0.0.1 that nothing listens on. (Sets a variable
# instead of printing: a $(free_port) subshell could not remember the ports it handed out.)
# Picks from 20000-32767: below Linux's ephemeral range (32768-60999), so outgoing
# connections made meanwhile can't grab it. Bash's /dev/tcp connect tells whether it's taken.
free_port() {
  local port i
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + RANDOM % 12768))
    [[ "${_USED_PORTS}" == *" ${port} "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
      _USED_PORTS+="${port} "
      printf -v "$1" '%s' "${port}"
      return 0
    fi
  done
  die "no free port found"
}

# wait_for DESCRIPTION TIMEOUT_S COMMAND...: retry COMMAND every 0.2 s until it succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for ${what}"
      return 1
    fi
    sleep 0.2
  done
}

# render TEMPLATE: print TEMPLATE with every ${NAME} replaced by the value of the shell
# variable NAME. Only names listed in RENDER_VARS are replaced, so other '$' text survives.
render() {
  local text name
  text="$(<"$1")"
  for name in ${RENDER_VARS}; do
    [[ -v "${name}" ]] || die "render $1: variable ${name} is not set"
    text="${text//"\${${name}}"/${!name}}"
  done
  printf '%s\n' "${text}"
}

# --- process bookkeeping -------------------------------------------------------------
# Every process we start gets RUN_DIR/pids/NAME.pid. A pid only counts as ours while
# /proc/PID/exe is still the binary we started, so a recycled pid is never signalled. A
# binary rebuilt while it runs (go build replaces the file) shows as "PATH (deleted)": still
# ours, or the next start would find the port taken by a server nobody tracks.

pid_alive() { # pid_alive NAME -> 0 if NAME's recorded process is running
  local pidfile="${RUN_DIR}/pids/$1.pid" pid exe
  [[ -f "${pidfile}" ]] || return 1
  read -r pid exe <"${pidfile}" || true
  [[ -n "${pid}" ]] && proc_running "${pid}" || return 1
  # exe recorded at start; compare so a reused pid isn't mistaken for ours.
  local running
  running="$(readlink "/proc/${pid}/exe" 2>/dev/null)" || return 1
  [[ -z "${exe}" || "${running}" == "${exe}" || "${running}" == "${exe} (deleted)" ]]
}

# proc_running PID: true while PID exists and is not a zombie (a zombie has exited;
# kill -0 would still succeed on it until its parent reaps it).
proc_running() {
  local stat
  # (not $(<file): under set -e, bash 5.2 exits on its open error even after ||)
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }" # drop "pid (comm) ", comm may contain spaces
  [[ "${stat:0:1}" != Z ]]
}

live_pids() { # prints NAME PID for every live recorded process in RUN_DIR
  local f name
  for f in "${RUN_DIR}"/pids/*.pid; do
    [[ -e "${f}" ]] || continue
    name="$(basename "${f}" .pid)"
    if pid_alive "${name}"; then echo "${name} $(awk '{print $1}' "${f}")"; fi
  done
}

# start_daemon NAME BINARY ARGS...: run BINARY in its own session (so Ctrl-C in the calling
# terminal doesn't reach it and it outlives this script), output to RUN_DIR/logs/NAME.log,
# stdin from /dev/null (callers like `go test` wait for inherited pipes to close otherwise).
start_daemon() {
  local name=$1 bin=$2; shift 2
  mkdir -p "${RUN_DIR}/pids" "${RUN_DIR}/logs"
  setsid "${bin}" "$@" </dev/null >>"${RUN_DIR}/logs/${name}.log" 2>&1 &
  local pid=$! exe i
  exe="$(readlink -f "${bin}")"
  echo "${pid} ${exe}" >"${RUN_DIR}/pids/${name}.pid"
  # Until setsid has exec'd the binary, /proc/PID/exe is setsid and pid_alive would call the
  # process gone; wait for the exec so callers can poll pid_alive right away.
  for ((i = 0; i < 100; i++)); do
    [[ "$(readlink "/proc/${pid}/exe" 2>/dev/null)" == "${exe}" ]] && break
    proc_running "${pid}" || die "${name} exited at once; see ${RUN_DIR}/logs/${name}.log: $(tail -n 5 "${RUN_DIR}/logs/${name}.log")"
    sleep 0.05
  done
  ((i < 100)) || die "${name} (pid ${pid}): ${bin} not running after 5s (is setsid forking?)"
  log "started ${name} (pid ${pid}, log ${RUN_DIR}/logs/${name}.log)"
}

# stop_daemon NAME [TIMEOUT_S]: SIGTERM NAME's recorded process, SIGKILL after TIMEOUT_S,
# wait until it is gone. Leaves the log; removes the pid file.
stop_daemon() {
  local name=$1 timeout=${2:-20} pidfile="${RUN_DIR}/pids/$1.pid" pid
  [[ -f "${pidfile}" ]] || return 0
  if pid_alive "${name}"; then
    read -r pid _ <"${pidfile}"
    kill -TERM "${pid}" 2>/dev/null || true
    local deadline=$((SECONDS + timeout))
    while proc_running "${pid}"; do
      if ((SECONDS >= deadline)); then
        log "${name} (pid ${pid}) ignored SIGTERM for ${timeout}s; sending SIGKILL"
        kill -KILL "${pid}" 2>/dev/null || true
        deadline=$((SECONDS + 10))
      fi
      sleep 0.1
    done
    log "stopped ${name} (pid ${pid})"
  fi
  rm -f "${pidfile}"
}

# Fail early, with the fix, when a binary is missing.
require_binaries() {
  local b missing=()
  for b in "$@"; do [[ -x "${BIN_DIR}/${b}" ]] || missing+=("${b}"); done
  ((${#missing[@]} == 0)) || die "missing in ${BIN_DIR}: ${missing[*]} -- run 'make tools' (hack/build-tools.sh)"
}
