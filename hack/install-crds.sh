#!/usr/bin/env bash
# Installs the real routing CRDs that traffic providers write to, so the cluster validates
# every object the controller writes exactly as a real cluster would:
#   - the Gateway API's standard channel (config/crd/standard of the Go module
#     sigs.k8s.io/gateway-api, at the version in go.mod);
#   - Istio's CRDs (kubernetes/customresourcedefinitions.gen.yaml of the Go module
#     istio.io/api at ISTIO_API_VERSION; the project needs no Istio Go code, so the version
#     is pinned here).
# The modules come through the Go module cache (`go mod download -json`), nothing else is
# downloaded. Ingress (networking.k8s.io/v1) is built in and needs nothing.
#   hack/install-crds.sh             apply to the cluster of $KUBECONFIG with bin/kubectl
#   hack/install-crds.sh --download  only fetch the modules (build-tools.sh)
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT_DIR}"
GATEWAY_MODULE=sigs.k8s.io/gateway-api
GATEWAY_VERSION="$(go list -m -f '{{.Version}}' "${GATEWAY_MODULE}")"
ISTIO_MODULE=istio.io/api
ISTIO_API_VERSION="${ISTIO_API_VERSION:-v1.32.0}"
ISTIO_CRDS=kubernetes/customresourcedefinitions.gen.yaml

# module_dir MODULE VERSION: the module's folder in the Go module cache.
module_dir() {
  go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

echo "[crds] Gateway API ${GATEWAY_VERSION} and Istio ${ISTIO_API_VERSION} CRDs from the Go module cache (about 4 MB, seconds when cached)" >&2
gateway_dir="$(module_dir "${GATEWAY_MODULE}" "${GATEWAY_VERSION}")"
if [[ -z "${gateway_dir}" || ! -d "${gateway_dir}/config/crd/standard" ]]; then
  echo "[crds] could not locate ${GATEWAY_MODULE}@${GATEWAY_VERSION} in the module cache" >&2
  exit 1
fi
istio_dir="$(module_dir "${ISTIO_MODULE}" "${ISTIO_API_VERSION}")"
if [[ -z "${istio_dir}" || ! -f "${istio_dir}/${ISTIO_CRDS}" ]]; then
  echo "[crds] could not locate ${ISTIO_MODULE}@${ISTIO_API_VERSION} in the module cache" >&2
  exit 1
fi
[[ "${1:-}" == "--download" ]] && exit 0

KUBECTL="${KUBECTL:-${ROOT_DIR}/bin/kubectl}"
# Server-side apply: the CRDs are too large for the last-applied annotation.
for f in "${gateway_dir}"/config/crd/standard/*.yaml; do
  "${KUBECTL}" apply --server-side --force-conflicts -f "${f}" >/dev/null
done
"${KUBECTL}" apply --server-side --force-conflicts -f "${istio_dir}/${ISTIO_CRDS}" >/dev/null
"${KUBECTL}" wait --for=condition=Established --timeout=60s \
  crd/httproutes.gateway.networking.k8s.io \
  crd/virtualservices.networking.istio.io \
  crd/destinationrules.networking.istio.io >/dev/null
echo "[crds] Gateway API ${GATEWAY_VERSION} and Istio ${ISTIO_API_VERSION} CRDs installed" >&2
