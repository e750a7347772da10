#!/usr/bin/env bash
# Regenerates generated.proto and generated.pb.go of each served version of
# rollout.kruise.io with code-generator's go-to-protobuf (the version pinned in
# go.mod), the way Kubernetes generates k8s.io/api: the Go types are the
# source, the .proto is derived from them, and go-to-protobuf also writes the
# `protobuf:"..."` struct tags back into types.go. Called by
# hack/update-codegen.sh before the other generators, since it edits types.go.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"
MODULE="$(go list -m)"
CODEGEN_VERSION="$(go list -m -f '{{.Version}}' k8s.io/code-generator)"
TOOLS_VERSION="$(go list -m -f '{{.Version}}' golang.org/x/tools)"
APIMACHINERY_DIR="$(go mod download -json k8s.io/apimachinery | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
API_DIR="$(go mod download -json k8s.io/api | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
CODEGEN_DIR="$(go mod download -json "k8s.io/code-generator@${CODEGEN_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
# gogo.proto (the options the intermediate .proto uses) at the version
# code-generator itself builds protoc-gen-gogo with.
GOGO_VERSION="$(sed -n 's/^[[:space:]]*github.com\/gogo\/protobuf \(v[^ ]*\).*$/\1/p' "${CODEGEN_DIR}/go.mod")"
GOGO_DIR="$(go mod download -json "github.com/gogo/protobuf@${GOGO_VERSION}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"

"${ROOT}/hack/install-protoc.sh"

# The generators live in the project's own bin folder, at the pinned versions,
# so that a fresh machine needs nothing installed by hand.
# hack/verify-codegen.sh runs this in a copy of the tree and points
# PROTO_TOOLS_BIN at the checkout's folder, so the tools are built once.
TOOLS_BIN="${PROTO_TOOLS_BIN:-${ROOT}/_output/bin}"
mkdir -p "${TOOLS_BIN}"
GOBIN="${TOOLS_BIN}" go install \
    "k8s.io/code-generator/cmd/go-to-protobuf@${CODEGEN_VERSION}" \
    "k8s.io/code-generator/cmd/go-to-protobuf/protoc-gen-gogo@${CODEGEN_VERSION}"
GOBIN="${TOOLS_BIN}" go install "golang.org/x/tools/cmd/goimports@${TOOLS_VERSION}"
export PATH="${TOOLS_BIN}:${PATH}"

# go-to-protobuf and protoc resolve .proto imports by Go import path under one
# GOPATH-like folder: ours and the apimachinery/api protos linked into it.
SRC="$(mktemp -d)"
trap 'rm -rf "${SRC}"' EXIT
mkdir -p "${SRC}/$(dirname "${MODULE}")" "${SRC}/k8s.io" "${SRC}/github.com/gogo"
ln -s "${GOGO_DIR}" "${SRC}/github.com/gogo/protobuf"
ln -s "${ROOT}" "${SRC}/${MODULE}"
ln -s "${APIMACHINERY_DIR}" "${SRC}/k8s.io/apimachinery"
ln -s "${API_DIR}" "${SRC}/k8s.io/api"

APIS=(
    "${MODULE}/pkg/apis/rollout/v1alpha1"
    "${MODULE}/pkg/apis/rollout/v1beta1"
)
# Packages prefixed with "-" are read for their types but not written.
APIMACHINERY_PKGS=(
    -k8s.io/apimachinery/pkg/util/intstr
    -k8s.io/apimachinery/pkg/api/resource
    -k8s.io/apimachinery/pkg/runtime/schema
    -k8s.io/apimachinery/pkg/runtime
    -k8s.io/apimachinery/pkg/apis/meta/v1
    -k8s.io/api/core/v1
)

go-to-protobuf \
    --go-header-file "${ROOT}/hack/boilerplate.go.txt" \
    --output-dir "${SRC}" \
    --proto-import "${SRC}" \
    --apimachinery-packages "$(IFS=,; echo "${APIMACHINERY_PKGS[*]}")" \
    --packages "$(IFS=,; echo "${APIS[*]}")"
