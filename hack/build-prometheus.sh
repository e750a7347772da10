#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds bin/prometheus, the real Prometheus that the metric-gating e2e tests and
# `make bench-rollback` start on 127.0.0.1. Built from the Go module like the other
# tools (v0.316.0 has no replace directives, so `go install pkg@version` works) with
# -tags remove_all_sd: static scrape configs need no cloud service discovery, and
# leaving it out roughly halves the cold build. The binary answers /api/v1/query
# without the web UI's assets, which is all the tests use.
# Up to date (same version) in about a second; a cold build takes ~3-6 min.
# FORCE=1 rebuilds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

PROMETHEUS_VERSION="${PROMETHEUS_VERSION:-v0.316.0}"

need_cmd go "https://go.dev/doc/install"
mkdir -p "${BIN_DIR}"

if [[ "${FORCE:-0}" != 1 && -x "${BIN_DIR}/prometheus" ]] &&
  go version -m "${BIN_DIR}/prometheus" 2>/dev/null | grep -q "mod[[:space:]]*github.com/prometheus/prometheus[[:space:]]*${PROMETHEUS_VERSION}"; then
  log "prometheus ${PROMETHEUS_VERSION}: up to date"
  exit 0
fi

start=$(now_ms)
log "building prometheus ${PROMETHEUS_VERSION} with -tags remove_all_sd (a cold build takes ~3-6 min)"
tmp="${BIN_DIR}/.build-prometheus"
rm -rf "${tmp}" && mkdir -p "${tmp}"
# go install -v prints each package it compiles; count them for a progress line
# every 15 s, since the link at the end is silent.
count=0 last=${SECONDS}
exec 4< <(GOBIN="${tmp}" go install -v -tags remove_all_sd -ldflags "-s -w" \
  "github.com/prometheus/prometheus/cmd/prometheus@${PROMETHEUS_VERSION}" 2>&1; echo "__exit__ $?")
rc=1
while true; do
  if IFS= read -r -t 15 line <&4; then
    case "${line}" in
      "__exit__ "*) rc=${line#__exit__ }; break ;;
      *[[:space:]:]* | '#'*) printf '%s\n' "${line}" >&2 ;;
      *) count=$((count + 1)) ;;
    esac
  elif (($? <= 128)); then
    break
  fi
  if ((SECONDS - last >= 15)); then
    log "  prometheus: ${count} packages compiled, $(elapsed "${start}")"
    last=${SECONDS}
  fi
done
exec 4<&-
((rc == 0)) || die "building prometheus failed"
mv -f "${tmp}/prometheus" "${BIN_DIR}/prometheus" && rmdir "${tmp}"
log "built prometheus in $(elapsed "${start}")"
