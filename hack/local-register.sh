#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Registers rollout-apiserver with the control plane of a run folder started by
# hack/local-up.sh, and (unless ROLLOUT_START=0) (re)starts bin/rollout-apiserver on
# 127.0.0.1 and waits until both APIServices are Available.
#
#   LOCAL_RUN_DIR       run folder (default _output/local)
#   ROLLOUT_START       0 = only prepare certs/args and apply the manifests; the caller runs
#                       the server itself (the e2e framework does, to kill -9 and restart it)
#   ROLLOUT_EXTRA_ARGS  extra flags for rollout-apiserver, space separated
#   ROLLOUT_HOST_IDENTITY  serviceaccount (default): the server reaches the host cluster as
#                       its ServiceAccount rollout-system/rollout-apiserver, bound to exactly
#                       the shipped artifacts/deploy/20-rbac-server.yaml and fenced by
#                       25-admission-policy.yaml, as in an install; admin: as the local admin
#                       (system:masters), to tell an RBAC problem from another one
#
# Writes RUN_DIR/rollout/: ca.{crt,key}, serving.{crt,key}, host.kubeconfig (the
# ServiceAccount's token), args (one flag per line: the
# exact command line, for whoever starts the server), env (ROLLOUT_PORT=... etc.),
# etcd-data/ (embedded etcd). The port, CA and data survive re-runs, so a restart keeps
# the registration and the stored rollouts.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "${ROOT_DIR}/hack/lib/pki.sh"

RUN_DIR="${LOCAL_RUN_DIR:-${ROOT_DIR}/_output/local}"
[[ -f "${RUN_DIR}/env" ]] || die "${RUN_DIR}/env not found: start the control plane first (ROLLOUT_SERVER=0 hack/local-up.sh)"
# shellcheck disable=SC1091 # written by local-up.sh
source "${RUN_DIR}/env"
export KUBECONFIG
need_cmd openssl
need_cmd curl
ROLLOUT_START="${ROLLOUT_START:-1}"
DIR="${RUN_DIR}/rollout"
mkdir -p "${DIR}"

# --- serving certificate from a CA of our own (the APIService's caBundle) -----------------
# The aggregator checks the name <service>.<namespace>.svc; localhost/127.0.0.1 are for
# clients that talk to us directly (health checks, kubectl --server).
if [[ ! -f "${DIR}/serving.crt" ]]; then
  pki_ca "${DIR}" ca local-rollout-apiserver-ca
  pki_cert "${DIR}" serving ca server "/CN=rollout-apiserver" \
    "DNS:rollout-apiserver.rollout-system.svc,DNS:rollout-apiserver.rollout-system.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
fi

# --- port ---------------------------------------------------------------------------------
# local-up.sh chose it (RUN_DIR/env), because kube-apiserver's admission configuration names
# it: only calls to 127.0.0.1:ROLLOUT_PORT carry kube-apiserver's webhook client cert.
if [[ -z "${ROLLOUT_PORT:-}" ]]; then
  log "WARNING: ${RUN_DIR}/env has no ROLLOUT_PORT (a control plane from an older local-up.sh): kube-apiserver presents no client certificate to the workload webhook, which refuses it; restart the control plane"
  if [[ -f "${DIR}/env" ]]; then
    # shellcheck disable=SC1091 # written below on the first run
    ROLLOUT_PORT="$(source "${DIR}/env" && echo "${ROLLOUT_PORT}")"
  else
    free_port ROLLOUT_PORT
  fi
fi

# --- the server's identity in the host cluster --------------------------------------------
# The shipped namespace, ServiceAccount, RBAC (server role, delegated auth, webhook caller)
# and admission policy, applied as an install applies them.
"${KUBECTL}" apply -f "${ROOT_DIR}/artifacts/deploy/00-namespace.yaml" \
  -f "${ROOT_DIR}/artifacts/deploy/10-serviceaccount.yaml" \
  -f "${ROOT_DIR}/artifacts/deploy/20-rbac-server.yaml" \
  -f "${ROOT_DIR}/artifacts/deploy/25-admission-policy.yaml" >/dev/null
case "${ROLLOUT_HOST_IDENTITY:-serviceaccount}" in
  serviceaccount)
    # A bound token of the ServiceAccount, as a pod would mount (a week: long enough for a
    # local run; each registration mints a new one).
    token="$("${KUBECTL}" -n rollout-system create token rollout-apiserver --duration=168h)"
    HOST_KUBECONFIG="${DIR}/host.kubeconfig"
    cat >"${HOST_KUBECONFIG}" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: ${APISERVER_URL}
    certificate-authority: ${PKI_DIR}/ca.crt
users:
- name: rollout-apiserver
  user:
    token: ${token}
contexts:
- name: local
  context:
    cluster: local
    user: rollout-apiserver
current-context: local
KUBECONFIG
    chmod 600 "${HOST_KUBECONFIG}"
    ;;
  admin) HOST_KUBECONFIG="${KUBECONFIG}" ;;
  *) die "ROLLOUT_HOST_IDENTITY must be serviceaccount or admin, got '${ROLLOUT_HOST_IDENTITY}'" ;;
esac

# --- command line -------------------------------------------------------------------------
# Host cluster access (workloads, TokenReview/SubjectAccessReview, the authentication
# ConfigMap) with that identity.
args=(
  --bind-address=127.0.0.1
  --secure-port="${ROLLOUT_PORT}"
  --tls-cert-file="${DIR}/serving.crt"
  --tls-private-key-file="${DIR}/serving.key"
  --kubeconfig="${HOST_KUBECONFIG}"
  --authentication-kubeconfig="${HOST_KUBECONFIG}"
  --authorization-kubeconfig="${HOST_KUBECONFIG}"
  --etcd-data-dir="${DIR}/etcd-data"
)
# shellcheck disable=SC2206 # word splitting is the point
[[ -n "${ROLLOUT_EXTRA_ARGS:-}" ]] && args+=(${ROLLOUT_EXTRA_ARGS})
printf '%s\n' "${args[@]}" >"${DIR}/args"
cat >"${DIR}/env" <<ENV
ROLLOUT_PORT=${ROLLOUT_PORT}
ROLLOUT_URL=https://127.0.0.1:${ROLLOUT_PORT}
ROLLOUT_CA=${DIR}/ca.crt
ROLLOUT_BINARY=${BIN_DIR}/rollout-apiserver
ROLLOUT_ARGS_FILE=${DIR}/args
ROLLOUT_LOG=${RUN_DIR}/logs/rollout-apiserver.log
ROLLOUT_PID_FILE=${RUN_DIR}/pids/rollout-apiserver.pid
ROLLOUT_HOST_KUBECONFIG=${HOST_KUBECONFIG}
ENV

# --- registration -------------------------------------------------------------------------
# shellcheck disable=SC2034 # used by render via RENDER_VARS
ROLLOUT_CA_BUNDLE="$(base64 -w0 <"${DIR}/ca.crt")"
# The webhook's template is generated from pkg/webhook (go test ./pkg/webhook -run TestWebhookManifests -update).
{
  RENDER_VARS="ROLLOUT_PORT ROLLOUT_CA_BUNDLE" render "${ROOT_DIR}/artifacts/local/rollout-apiserver.yaml.tmpl"
  echo "---"
  RENDER_VARS="ROLLOUT_PORT ROLLOUT_CA_BUNDLE" render "${ROOT_DIR}/artifacts/local/webhook.yaml.tmpl"
} >"${DIR}/registration.yaml"
"${KUBECTL}" apply -f "${DIR}/registration.yaml" >/dev/null
log "applied ${DIR}/registration.yaml (APIServices v1beta1/v1alpha1.rollout.kruise.io -> localhost:${ROLLOUT_PORT})"

if [[ "${ROLLOUT_START}" == 0 ]]; then
  # The caller starts its own instance on this port; one left by `make run` would hold it.
  stop_daemon rollout-apiserver
  exit 0
fi

# --- (re)start the server -----------------------------------------------------------------
[[ -x "${BIN_DIR}/rollout-apiserver" ]] ||
  die "${BIN_DIR}/rollout-apiserver not found: go build -o bin/rollout-apiserver ./cmd/apiserver (make build)"
if pid_alive rollout-apiserver; then
  log "restarting rollout-apiserver"
  stop_daemon rollout-apiserver
fi
t0=$(now_ms)
start_daemon rollout-apiserver "${BIN_DIR}/rollout-apiserver" "${args[@]}"
# /readyz answers once our storage and post-start hooks are up; the admin client cert is
# trusted through the client CA our server reads from kube-system/extension-apiserver-authentication.
exec 3>&2 # wait_for silences its command; a crash report must still reach the terminal
ready() {
  if ! pid_alive rollout-apiserver; then
    echo "rollout-apiserver exited; last lines of ${RUN_DIR}/logs/rollout-apiserver.log:" >&3
    tail -n 20 "${RUN_DIR}/logs/rollout-apiserver.log" >&3
    exit 1
  fi
  curl -fsS --cacert "${DIR}/ca.crt" --cert "${PKI_DIR}/admin.crt" --key "${PKI_DIR}/admin.key" \
    "https://127.0.0.1:${ROLLOUT_PORT}/readyz"
}
wait_for "rollout-apiserver /readyz" 60 ready || die "rollout-apiserver not ready; see ${RUN_DIR}/logs/rollout-apiserver.log"
log "rollout-apiserver ready on 127.0.0.1:${ROLLOUT_PORT} ($(elapsed "${t0}"))"
"${KUBECTL}" wait --for=condition=Available --timeout=60s \
  apiservice/v1beta1.rollout.kruise.io apiservice/v1alpha1.rollout.kruise.io >/dev/null ||
  die "APIServices not Available: $("${KUBECTL}" get apiservice v1beta1.rollout.kruise.io -o jsonpath='{.status.conditions}')"
log "APIServices v1beta1.rollout.kruise.io and v1alpha1.rollout.kruise.io Available ($(elapsed "${t0}"))"
