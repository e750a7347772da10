#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Starts a real Kubernetes control plane on this machine, everything on 127.0.0.1 with free
# ports: etcd, kube-apiserver (RBAC, aggregation layer), kube-controller-manager,
# kube-scheduler and kwok running KWOK_NODES fake nodes. Then (unless ROLLOUT_SERVER=0) starts
# bin/rollout-apiserver and registers it through hack/local-register.sh. `make run` runs this;
# `make down` (hack/local-down.sh) stops it.
#
# Environment:
#   LOCAL_RUN_DIR   run folder: certs, kubeconfigs, etcd data, pids, logs (default _output/local)
#   ROLLOUT_SERVER  0 = control plane only (the e2e tests start our server themselves)
#   KWOK_NODES      number of fake nodes (default 5)
#   KCM_EXTRA_ARGS  extra kube-controller-manager flags, space separated (the controller
#                   benchmark raises its client QPS, as large clusters do)
#   ETCD_FSYNC      1 = etcd fsyncs every commit, as in production (default 0: --unsafe-no-fsync;
#                   the API benchmark sets 1 so that both sides of its write comparison fsync)
#   KEEP_ON_FAILURE 1 = leave what started running when a later step fails (for debugging)
#
# Everything is written to LOCAL_RUN_DIR/env as shell assignments, for the other scripts
# and the e2e framework.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "${ROOT_DIR}/hack/lib/pki.sh"

RUN_DIR="$(mkdir -p "${LOCAL_RUN_DIR:-${ROOT_DIR}/_output/local}" && cd "${LOCAL_RUN_DIR:-${ROOT_DIR}/_output/local}" && pwd)"
ROLLOUT_SERVER="${ROLLOUT_SERVER:-1}"
KWOK_NODES="${KWOK_NODES:-5}"
KWOK_NODE_ANNOTATION="kwok.x-k8s.io/node=fake"
SERVICE_CIDR="10.96.0.0/16"   # ClusterIPs; kubernetes.default gets 10.96.0.1
POD_CIDR="10.244.0.0/16"      # fake pod IPs that kwok hands out

need_cmd openssl "to make the local CA and certificates"
need_cmd curl "to poll health endpoints"
need_cmd go "to locate kwok's Stage files in the module cache"
require_binaries "${CONTROL_PLANE_BINARIES[@]}"
KUBECTL="${BIN_DIR}/kubectl"

# --- refuse to clobber a running instance ---------------------------------------------------
live="$(live_pids)"
if [[ -n "${live}" ]]; then
  die "${RUN_DIR} has processes of a previous run still running:
${live}
stop them first: LOCAL_RUN_DIR=${RUN_DIR} hack/local-down.sh"
fi

# Fresh state every time: a cluster restarted with new certs/keys over old etcd data would
# carry ServiceAccount tokens it can't verify. Only our own sub-paths are removed, so a
# LOCAL_RUN_DIR pointing at a folder with other files in it is safe.
rm -rf "${RUN_DIR}"/{pki,etcd-data,pids,rollout,kwok,logs.prev}
[[ -d "${RUN_DIR}/logs" ]] && mv "${RUN_DIR}/logs" "${RUN_DIR}/logs.prev"
rm -f "${RUN_DIR}"/{env,*.kubeconfig,admission-config.yaml}
mkdir -p "${RUN_DIR}"/{pki,logs,pids,kwok}
PKI="${RUN_DIR}/pki"

STARTED=()
on_exit() {
  local rc=$?
  ((rc == 0)) && return
  log "local-up failed (exit ${rc}); logs in ${RUN_DIR}/logs/"
  local name
  for name in "${STARTED[@]}"; do # show how the components that died ended
    pid_alive "${name}" && continue
    echo "----- ${name} exited; last lines of ${RUN_DIR}/logs/${name}.log:" >&2
    tail -n 15 "${RUN_DIR}/logs/${name}.log" >&2 || true
  done
  if [[ "${KEEP_ON_FAILURE:-0}" == 1 ]]; then
    log "KEEP_ON_FAILURE=1: leaving processes running; stop them with LOCAL_RUN_DIR=${RUN_DIR} hack/local-down.sh"
  else
    "${ROOT_DIR}/hack/local-down.sh" >&2 || true
  fi
}
trap on_exit EXIT
export LOCAL_RUN_DIR="${RUN_DIR}" # for local-down.sh / local-register.sh called from here

launch() { # launch NAME ARGS...: start bin/NAME as a daemon and remember it for cleanup
  local name=$1; shift
  start_daemon "${name}" "${BIN_DIR}/${name}" "$@"
  STARTED+=("${name}")
}

t0=$(now_ms)

# --- ports --------------------------------------------------------------------------------
free_port ETCD_PORT
free_port ETCD_PEER_PORT
free_port APISERVER_PORT
free_port KCM_PORT
free_port SCHEDULER_PORT
free_port KWOK_PORT
# rollout-apiserver's port is chosen now, not when it is registered: kube-apiserver's
# admission configuration names the webhook's host:port to present its client
# certificate to, and it reads that only at start.
free_port ROLLOUT_PORT
log "run folder ${RUN_DIR}; ports: etcd ${ETCD_PORT}, kube-apiserver ${APISERVER_PORT}, kube-controller-manager ${KCM_PORT}, kube-scheduler ${SCHEDULER_PORT}, kwok ${KWOK_PORT}, rollout-apiserver ${ROLLOUT_PORT}"

# --- certificates -------------------------------------------------------------------------
# ca: cluster CA (apiserver serving cert, all client certs, kcm's CSR signer).
# front-proxy-ca: a separate CA for the aggregator's client cert, as kubeadm does, so a
# client cert from the cluster CA can never pass as the front proxy.
pki_ca "${PKI}" ca local-kubernetes-ca
pki_cert "${PKI}" apiserver ca server "/CN=kube-apiserver" \
  "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
pki_cert "${PKI}" admin ca client "/O=system:masters/CN=kubernetes-admin"
pki_cert "${PKI}" controller-manager ca client "/CN=system:kube-controller-manager"
pki_cert "${PKI}" scheduler ca client "/CN=system:kube-scheduler"
pki_cert "${PKI}" kwok ca client "/O=system:masters/CN=kwok-controller" # kwok edits nodes/pods of any node
# kube-apiserver's identity towards rollout-apiserver's workload webhook (see
# docs/install.md, "How the webhook is protected"): a client cert of the cluster CA,
# which rollout-apiserver trusts through kube-system/extension-apiserver-authentication,
# with the user name that artifacts/deploy/20-rbac-server.yaml allows to call it.
pki_cert "${PKI}" webhook-caller ca client "/CN=rollout-apiserver:webhook-caller"
pki_ca "${PKI}" front-proxy-ca local-front-proxy-ca
pki_cert "${PKI}" front-proxy-client front-proxy-ca client "/CN=front-proxy-client"
pki_key "${PKI}/sa.key"
openssl pkey -in "${PKI}/sa.key" -pubout -out "${PKI}/sa.pub" 2>/dev/null

SERVER="https://127.0.0.1:${APISERVER_PORT}"
KUBECONFIG_ADMIN="${RUN_DIR}/admin.kubeconfig"
write_kubeconfig "${KUBECONFIG_ADMIN}" "${SERVER}" "${PKI}/ca.crt" "${PKI}/admin.crt" "${PKI}/admin.key"
write_kubeconfig "${RUN_DIR}/controller-manager.kubeconfig" "${SERVER}" "${PKI}/ca.crt" "${PKI}/controller-manager.crt" "${PKI}/controller-manager.key"
write_kubeconfig "${RUN_DIR}/scheduler.kubeconfig" "${SERVER}" "${PKI}/ca.crt" "${PKI}/scheduler.crt" "${PKI}/scheduler.key"
write_kubeconfig "${RUN_DIR}/kwok.kubeconfig" "${SERVER}" "${PKI}/ca.crt" "${PKI}/kwok.crt" "${PKI}/kwok.key"

# kube-apiserver calls admission webhooks with the credentials that this kubeconfig gives
# their host:port; the local webhook is https://127.0.0.1:ROLLOUT_PORT/webhooks/workloads
# (artifacts/local/webhook.yaml.tmpl). An install names the Service instead.
cat >"${RUN_DIR}/webhook-client.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
users:
- name: "127.0.0.1:${ROLLOUT_PORT}"
  user:
    client-certificate: ${PKI}/webhook-caller.crt
    client-key: ${PKI}/webhook-caller.key
KUBECONFIG
chmod 600 "${RUN_DIR}/webhook-client.kubeconfig"
cat >"${RUN_DIR}/admission-config.yaml" <<ADMISSION
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: MutatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: ${RUN_DIR}/webhook-client.kubeconfig
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: ${RUN_DIR}/webhook-client.kubeconfig
ADMISSION

cat >"${RUN_DIR}/env" <<ENV
# Written by hack/local-up.sh; sourced by hack/local-*.sh and read by test/e2e/framework.
RUN_DIR=${RUN_DIR}
BIN_DIR=${BIN_DIR}
KUBECONFIG=${KUBECONFIG_ADMIN}
KUBECTL=${KUBECTL}
APISERVER_URL=${SERVER}
ETCD_URL=http://127.0.0.1:${ETCD_PORT}
ETCD_PORT=${ETCD_PORT}
APISERVER_PORT=${APISERVER_PORT}
KCM_PORT=${KCM_PORT}
SCHEDULER_PORT=${SCHEDULER_PORT}
KWOK_PORT=${KWOK_PORT}
PKI_DIR=${PKI}
ROLLOUT_PORT=${ROLLOUT_PORT}
ENV

# --- etcd ---------------------------------------------------------------------------------
# --unsafe-no-fsync: data still survives process restarts (only a machine crash loses it),
# and it keeps disk latency out of test timings.
etcd_fsync_args=(--unsafe-no-fsync)
if [[ "${ETCD_FSYNC:-0}" == 1 ]]; then
  etcd_fsync_args=()
fi
launch etcd \
  --name=local \
  --data-dir="${RUN_DIR}/etcd-data" \
  --listen-client-urls="http://127.0.0.1:${ETCD_PORT}" \
  --advertise-client-urls="http://127.0.0.1:${ETCD_PORT}" \
  --listen-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-advertise-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster="local=http://127.0.0.1:${ETCD_PEER_PORT}" \
  "${etcd_fsync_args[@]}" \
  --log-level=warn
wait_for "etcd health" 30 curl -fsS "http://127.0.0.1:${ETCD_PORT}/health"
log "etcd ready ($(elapsed "${t0}"))"

# --- kube-apiserver -----------------------------------------------------------------------
# --advertise-address=127.0.0.1 and --endpoint-reconciler-type=none: the `kubernetes`
# Service must not get a loopback Endpoint (refused) nor the machine's real IP.
# --enable-aggregator-routing=false: the aggregator dials the APIService's Service by name,
# which is what lets an ExternalName Service point at localhost (see local-register.sh).
launch kube-apiserver \
  --bind-address=127.0.0.1 \
  --secure-port="${APISERVER_PORT}" \
  --advertise-address=127.0.0.1 \
  --endpoint-reconciler-type=none \
  --cert-dir="${RUN_DIR}/pki/apiserver-generated" \
  --tls-cert-file="${PKI}/apiserver.crt" \
  --tls-private-key-file="${PKI}/apiserver.key" \
  --client-ca-file="${PKI}/ca.crt" \
  --etcd-servers="http://127.0.0.1:${ETCD_PORT}" \
  --service-cluster-ip-range="${SERVICE_CIDR}" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="${PKI}/sa.pub" \
  --service-account-signing-key-file="${PKI}/sa.key" \
  --authorization-mode=Node,RBAC \
  --allow-privileged=true \
  --requestheader-client-ca-file="${PKI}/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="${PKI}/front-proxy-client.crt" \
  --proxy-client-key-file="${PKI}/front-proxy-client.key" \
  --enable-aggregator-routing=false \
  --admission-control-config-file="${RUN_DIR}/admission-config.yaml"
curl_admin() { curl -fsS --cacert "${PKI}/ca.crt" --cert "${PKI}/admin.crt" --key "${PKI}/admin.key" "$@"; }
wait_for "kube-apiserver /readyz" 90 curl_admin "${SERVER}/readyz"
log "kube-apiserver ready ($(elapsed "${t0}"))"

# --- kube-controller-manager, kube-scheduler, kwok (in parallel) --------------------------
# --leader-elect=false: one instance; skips waiting for a Lease at start.
# --use-service-account-credentials: each controller runs as its own ServiceAccount, as in a
# real cluster, so RBAC problems show up here and not only in production.
# --kube-api-content-type: protobuf, its default, named so that the namespace controller's
# discovery and metadata LISTs of rollout.kruise.io are known to run in protobuf (the e2e
# namespace deletion test relies on it).
read -r -a kcm_extra_args <<<"${KCM_EXTRA_ARGS:-}"
launch kube-controller-manager \
  --kube-api-content-type=application/vnd.kubernetes.protobuf \
  --bind-address=127.0.0.1 \
  --secure-port="${KCM_PORT}" \
  --cert-dir="${RUN_DIR}/pki/controller-manager-generated" \
  --kubeconfig="${RUN_DIR}/controller-manager.kubeconfig" \
  --authentication-kubeconfig="${RUN_DIR}/controller-manager.kubeconfig" \
  --authorization-kubeconfig="${RUN_DIR}/controller-manager.kubeconfig" \
  --service-account-private-key-file="${PKI}/sa.key" \
  --root-ca-file="${PKI}/ca.crt" \
  --cluster-signing-cert-file="${PKI}/ca.crt" \
  --cluster-signing-key-file="${PKI}/ca.key" \
  --service-cluster-ip-range="${SERVICE_CIDR}" \
  --use-service-account-credentials=true \
  --leader-elect=false "${kcm_extra_args[@]}"
launch kube-scheduler \
  --bind-address=127.0.0.1 \
  --secure-port="${SCHEDULER_PORT}" \
  --cert-dir="${RUN_DIR}/pki/scheduler-generated" \
  --kubeconfig="${RUN_DIR}/scheduler.kubeconfig" \
  --authentication-kubeconfig="${RUN_DIR}/scheduler.kubeconfig" \
  --authorization-kubeconfig="${RUN_DIR}/scheduler.kubeconfig" \
  --leader-elect=false

# kwok has no built-in Stages: without them nodes never turn Ready and pods never run.
# Use the ones shipped in the kwok module of the same version as bin/kwok, from the module
# cache (downloaded by `go install` in build-tools.sh, so this works offline).
KWOK_MOD_VERSION="$(go version -m "${BIN_DIR}/kwok" | awk '$1=="mod" && $2=="sigs.k8s.io/kwok" {print $3}')"
# (from / so that no go.mod is involved)
KWOK_MOD_DIR="$(cd / && go mod download -json "sigs.k8s.io/kwok@${KWOK_MOD_VERSION:-${KWOK_VERSION}}" | awk -F'"' '$2=="Dir" {print $4}')"
[[ -d "${KWOK_MOD_DIR}/kustomize/stage" ]] || die "kwok Stage files not found (module dir '${KWOK_MOD_DIR}')"
kwok_stage_args=()
for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
  pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
  f="${KWOK_MOD_DIR}/kustomize/stage/${stage}.yaml"
  [[ -f "${f}" ]] || die "kwok Stage file missing: ${f}"
  kwok_stage_args+=("--config=${f}")
done
# HOME points into the run folder: kwok also reads ~/.kwok/kwok.yaml when it exists, and a
# stray one there must not change the local run.
HOME="${RUN_DIR}/kwok" launch kwok \
  "${kwok_stage_args[@]}" \
  --kubeconfig="${RUN_DIR}/kwok.kubeconfig" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector="${KWOK_NODE_ANNOTATION}" \
  --cidr="${POD_CIDR}" \
  --node-ip=127.0.0.1 \
  --server-address="127.0.0.1:${KWOK_PORT}" \
  --node-lease-duration-seconds=40

for i in $(seq 0 $((KWOK_NODES - 1))); do
  NODE_NAME="kwok-node-${i}" NODE_ZONE="zone-$((i % 3))" RENDER_VARS="NODE_NAME NODE_ZONE" \
    render "${ROOT_DIR}/artifacts/local/kwok-node.yaml.tmpl"
  echo "---"
done >"${RUN_DIR}/kwok/nodes.yaml"
KUBECONFIG="${KUBECONFIG_ADMIN}" "${KUBECTL}" apply -f "${RUN_DIR}/kwok/nodes.yaml" >/dev/null

wait_for "kube-controller-manager /healthz" 60 curl -fsSk "https://127.0.0.1:${KCM_PORT}/healthz"
log "kube-controller-manager healthy ($(elapsed "${t0}"))"
wait_for "kube-scheduler /healthz" 60 curl -fsSk "https://127.0.0.1:${SCHEDULER_PORT}/healthz"
log "kube-scheduler healthy ($(elapsed "${t0}"))"
wait_for "kwok /healthz" 60 curl -fsS "http://127.0.0.1:${KWOK_PORT}/healthz"
export KUBECONFIG="${KUBECONFIG_ADMIN}"
wait_for "${KWOK_NODES} Ready kwok nodes" 60 \
  "${KUBECTL}" wait node -l type=kwok --for=condition=Ready --timeout=1s
log "kwok healthy, ${KWOK_NODES} nodes Ready ($(elapsed "${t0}"))"
# Pods can't be created in a namespace before its `default` ServiceAccount exists
# (ServiceAccount admission); the controller-manager makes it a few seconds after start.
wait_for "ServiceAccount default/default" 60 "${KUBECTL}" -n default get serviceaccount default
KUBECTL="${KUBECTL}" "${ROOT_DIR}/hack/install-crds.sh"
log "control plane ready in $(elapsed "${t0}") (kubeconfig ${KUBECONFIG_ADMIN})"

# --- our server ---------------------------------------------------------------------------
if [[ "${ROLLOUT_SERVER}" != 0 ]]; then
  "${ROOT_DIR}/hack/local-register.sh"
  # The roles users get (view/edit/admin aggregation, rollout-promoter), so the
  # RBAC story of the docs can be tried with --as.
  log "applying the user roles (artifacts/deploy/30-rbac-users.yaml)"
  "${KUBECTL}" apply -f "${ROOT_DIR}/artifacts/deploy/30-rbac-users.yaml" >/dev/null
  if [[ -d "${ROOT_DIR}/artifacts/examples" ]]; then
    log "applying artifacts/examples/"
    "${KUBECTL}" apply -R -f "${ROOT_DIR}/artifacts/examples/"
  fi
  log "everything ready in $(elapsed "${t0}")"
  cat <<EOF

Try:
  export KUBECONFIG=${KUBECONFIG_ADMIN}
  alias kubectl=${KUBECTL}
  kubectl get apiservices | grep rollout
  kubectl get ro -A
  kubectl explain rollouts.spec
  kubectl create --raw /apis/rollout.kruise.io/v1beta1/namespaces/NS/rollouts/NAME/promote -f - <<<'{"apiVersion":"rollout.kruise.io/v1beta1","kind":"RolloutPromote","full":false}'
As another user (the user roles are applied; view can list, rollout-promoter can promote):
  kubectl create rolebinding alice-promotes -n NS --clusterrole=rollout-promoter --user=alice
  kubectl get ro -n NS --as=alice
  kubectl create --as=alice --raw /apis/rollout.kruise.io/v1beta1/namespaces/NS/rollouts/NAME/promote -f - <<<'{}'
Logs: ${RUN_DIR}/logs/   Stop: make down (or LOCAL_RUN_DIR=${RUN_DIR} hack/local-down.sh)
EOF
fi
