#!/usr/bin/env bash
# Regenerates everything under pkg/generated/ and every zz_generated.*.go file
# with code-generator's kube_codegen.sh, at the version pinned in go.mod.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
MODULE="$(go list -m)"
# `go list -m -f {{.Dir}}` is empty until the module is in the cache (a fresh
# machine); `go mod download -json` fetches it first and names its folder.
CODEGEN_VERSION="$(go list -m -f '{{.Version}}' k8s.io/code-generator)"
CODEGEN_PKG="$(go mod download -json "k8s.io/code-generator@${CODEGEN_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "${CODEGEN_PKG}" || ! -f "${CODEGEN_PKG}/kube_codegen.sh" ]]; then
    echo "update-codegen: could not download k8s.io/code-generator@${CODEGEN_VERSION}" >&2
    exit 1
fi
BOILERPLATE="${ROOT}/hack/boilerplate.go.txt"

# Protobuf first: go-to-protobuf writes the protobuf struct tags into
# types.go, which the generators below read.
"${ROOT}/hack/update-protobuf.sh"

# shellcheck source=/dev/null
source "${CODEGEN_PKG}/kube_codegen.sh"

kube::codegen::gen_helpers \
    --boilerplate "${BOILERPLATE}" \
    "${ROOT}/pkg/apis"

# Rules that our Kruise-compatible names break on purpose (HttpRouteMatch,
# json tags that differ from Go names) are listed in the report, not failed on.
kube::codegen::gen_openapi \
    --output-dir "${ROOT}/pkg/generated/openapi" \
    --output-pkg "${MODULE}/pkg/generated/openapi" \
    --report-filename "${ROOT}/hack/api-rules-violations.list" \
    --update-report \
    --output-model-name-file zz_generated.model_name.go \
    --extra-pkgs k8s.io/apimachinery/pkg/util/intstr \
    --boilerplate "${BOILERPLATE}" \
    "${ROOT}/pkg/apis"

# The clientset asks for protobuf (falling back to JSON) unless its
# rest.Config names a content type: the server serves protobuf for Rollouts
# and the action kinds (hack/update-protobuf.sh).
kube::codegen::gen_client \
    --with-watch \
    --with-applyconfig \
    --prefers-protobuf \
    --output-dir "${ROOT}/pkg/generated" \
    --output-pkg "${MODULE}/pkg/generated" \
    --boilerplate "${BOILERPLATE}" \
    "${ROOT}/pkg/apis"
