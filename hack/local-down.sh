#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Stops what hack/local-up.sh (and local-register.sh / the e2e framework) started in the run
# folder: exactly the processes named by its pid files, newest layer first, and waits until
# they have exited. Logs, certs and etcd data stay (local-up.sh starts fresh anyway).
#   LOCAL_RUN_DIR  run folder (default _output/local)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

RUN_DIR="${LOCAL_RUN_DIR:-${ROOT_DIR}/_output/local}"
if [[ ! -d "${RUN_DIR}/pids" ]]; then
  log "nothing to stop in ${RUN_DIR}"
  exit 0
fi
RUN_DIR="$(cd "${RUN_DIR}" && pwd)"

# Clients before servers, etcd last, so nothing logs errors about a vanished apiserver
# longer than needed and etcd gets a clean shutdown.
for name in rollout-apiserver kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  stop_daemon "${name}"
done
# Anything else that recorded a pid here (e.g. extra servers started by tests).
for f in "${RUN_DIR}"/pids/*.pid; do
  if [[ -e "${f}" ]]; then stop_daemon "$(basename "${f}" .pid)"; fi
done
log "stopped; logs in ${RUN_DIR}/logs"
