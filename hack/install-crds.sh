#!/usr/bin/env bash
# Installs the real routing CRDs that traffic providers write to: the Gateway API's
# standard channel (config/crd/standard of the Go module sigs.k8s.io/gateway-api, at the
# version in go.mod), so the cluster validates every HTTPRoute the controller writes
# exactly as a real cluster would. The module comes through the Go module cache
# (`go mod download -json`), nothing else is downloaded.
#   hack/install-crds.sh             apply to the cluster of $KUBECONFIG with bin/kubectl
#   hack/install-crds.sh --download  only fetch the module (build-tools.sh)
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT_DIR}"
GATEWAY_MODULE=sigs.k8s.io/gateway-api
GATEWAY_VERSION="$(go list -m -f '{{.Version}}' "${GATEWAY_MODULE}")"

echo "[crds] Gateway API ${GATEWAY_VERSION} CRDs from the Go module cache (about 2 MB, seconds when cached)" >&2
dir="$(go mod download -json "${GATEWAY_MODULE}@${GATEWAY_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "${dir}" || ! -d "${dir}/config/crd/standard" ]]; then
  echo "[crds] could not locate ${GATEWAY_MODULE}@${GATEWAY_VERSION} in the module cache" >&2
  exit 1
fi
[[ "${1:-}" == "--download" ]] && exit 0

KUBECTL="${KUBECTL:-${ROOT_DIR}/bin/kubectl}"
for f in "${dir}"/config/crd/standard/*.yaml; do
  # Server-side apply: the CRDs are too large for the last-applied annotation.
  "${KUBECTL}" apply --server-side --force-conflicts -f "${f}" >/dev/null
done
"${KUBECTL}" wait --for=condition=Established --timeout=60s crd/httproutes.gateway.networking.k8s.io >/dev/null
echo "[crds] Gateway API ${GATEWAY_VERSION} CRDs installed" >&2
