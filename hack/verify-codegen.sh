#!/usr/bin/env bash
# Fails when generated code is stale: regenerates into a copy of the tree and
# compares.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP="$(mktemp -d)"
trap 'rm -rf "${TMP}"' EXIT

# Copy the sources (not bin/ or _output/) and generate there.
tar -C "${ROOT}" --exclude=./bin --exclude=./_output --exclude=./.git -cf - . | tar -C "${TMP}" -xf -
(cd "${TMP}" && PROTO_TOOLS_BIN="${ROOT}/_output/bin" ./hack/update-codegen.sh >/dev/null)

status=0
for path in pkg hack/api-rules-violations.list; do
  if ! diff -Nru "${ROOT}/${path}" "${TMP}/${path}" >"${TMP}/diff.txt"; then
    echo "Generated code under ${path} is stale; run hack/update-codegen.sh:" >&2
    head -50 "${TMP}/diff.txt" >&2
    status=1
  fi
done
exit "${status}"
