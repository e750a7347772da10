#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Builds into bin/ the control-plane binaries that hack/local-up.sh and the e2e tests run:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (hack/tools/kubernetes),
# etcd (hack/tools/etcd) and kwok (KWOK_VERSION). Only what is missing or built from another
# version than the pinned one is (re)built, so a second run takes about a second.
# Needs only Go. A cold build takes several minutes and up to ~3 GB of memory; the k8s
# binaries are built by one `go build` so shared packages compile once, on all cores.
# FORCE=1 rebuilds everything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

need_cmd go "https://go.dev/doc/install"
mkdir -p "${BIN_DIR}"

# built_version BINARY MODULE: the version of MODULE that bin/BINARY was built from
# (Go records it in the binary), or nothing if the binary is missing/not a Go binary.
built_version() {
  [[ -x "${BIN_DIR}/$1" ]] || return 0
  go version -m "${BIN_DIR}/$1" 2>/dev/null | awk -v m="$2" '($1=="mod"||$1=="dep") && $2==m {print $3; exit}'
}

# pinned_version TOOLS_DIR MODULE: the version hack/tools/TOOLS_DIR/go.mod requires.
pinned_version() {
  (cd "${ROOT_DIR}/hack/tools/$1" && go list -m -f '{{.Version}}' "$2")
}

# go_build_progress LABEL TOTAL CMD...: run a `go build -v`-style command, counting the
# packages it compiles and printing a progress line at least every 15 s (a cold k8s build
# is silent for minutes otherwise, and its final link steps print nothing at all).
go_build_progress() {
  local label=$1 total=$2; shift 2
  local start=${SECONDS} last=${SECONDS} count=0 line rc
  exec 4< <("$@" 2>&1; echo "__exit__ $?")
  while true; do
    if IFS= read -r -t 15 line <&4; then
      case "${line}" in
        "__exit__ "*) rc=${line#__exit__ }; break ;;
        *[[:space:]:]* | '#'*) printf '%s\n' "${line}" >&2 ;; # compiler/linker diagnostics
        *) count=$((count + 1)) ;;                                # a package path
      esac
    elif (($? <= 128)); then # EOF without exit marker
      rc=1; break
    fi
    if ((SECONDS - last >= 15)); then
      log "  ${label}: ${count}/${total} packages compiled, $((SECONDS - start))s"
      last=${SECONDS}
    fi
  done
  exec 4<&-
  return "${rc}"
}

K8S_LDFLAGS=""
build_kubernetes() {
  local want missing=() b v
  want="$(pinned_version kubernetes k8s.io/kubernetes)"
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    v="$(built_version "${b}" k8s.io/kubernetes)"
    if [[ "${FORCE:-0}" == 1 || "${v}" != "${want}" ]]; then
      missing+=("${b}")
      if [[ -n "${v}" ]]; then log "bin/${b} is from k8s.io/kubernetes ${v}, want ${want}: rebuilding"; fi
    elif ! go version -m "${BIN_DIR}/${b}" | grep -q "component-base/version.gitVersion=${want}"; then
      # Built without the version stamp (v0.0.0-master): kubectl can't even parse that.
      missing+=("${b}")
      log "bin/${b} has no ${want} version stamp: relinking (compiled packages come from the Go build cache)"
    fi
  done
  if ((${#missing[@]} == 0)); then
    log "kubernetes ${want}: kube-apiserver kube-controller-manager kube-scheduler kubectl up to date"
    return
  fi
  local pkgs=() start total
  for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${b}"); done
  # Stamp the release into the binaries like upstream's hack/lib/version.sh does, so
  # `kubectl version` and /version say v1.37.x instead of v0.0.0-master.
  local minor=${want#v*.}; minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    K8S_LDFLAGS+=" -X ${p}.gitVersion=${want} -X ${p}.gitMajor=${want:1:1} -X ${p}.gitMinor=${minor} -X ${p}.gitTreeState=clean"
  done
  start=$(now_ms)
  log "building ${missing[*]} (k8s.io/kubernetes ${want}); a cold build takes ~7-9 min"
  cd "${ROOT_DIR}/hack/tools/kubernetes"
  log "  downloading modules (first time only: ~1.3 GB into the module cache)"
  go mod download
  log "  modules ready ($(elapsed "${start}")); compiling"
  total=$(go list -deps "${pkgs[@]}" | wc -l)
  # Build next to bin/ and rename into place: writing over a running binary fails
  # (text file busy), a rename doesn't, so this works while a local cluster runs.
  local tmp="${BIN_DIR}/.build-kubernetes"
  rm -rf "${tmp}" && mkdir -p "${tmp}"
  go_build_progress kubernetes "${total}" \
    go build -v -buildvcs=false -ldflags "-s -w ${K8S_LDFLAGS}" -o "${tmp}/" "${pkgs[@]}"
  mv -f "${tmp}"/* "${BIN_DIR}/" && rmdir "${tmp}"
  log "built ${missing[*]} in $(elapsed "${start}")"
}

build_etcd() {
  local want v start total
  want="$(pinned_version etcd go.etcd.io/etcd/server/v3)"
  v="$(built_version etcd go.etcd.io/etcd/server/v3)"
  if [[ "${FORCE:-0}" != 1 && "${v}" == "${want}" ]]; then
    log "etcd ${want}: up to date"
    return
  fi
  start=$(now_ms)
  log "building etcd ${want} (a cold build takes ~1 min)"
  cd "${ROOT_DIR}/hack/tools/etcd"
  go mod download
  # `go install go.etcd.io/etcd/server/v3@version` is refused (its go.mod has replace
  # directives), hence the pinning module; its root package is etcd's main.
  total=$(go list -deps go.etcd.io/etcd/server/v3 | wc -l)
  go_build_progress etcd "${total}" \
    go build -v -buildvcs=false -ldflags "-s -w" -o "${BIN_DIR}/.etcd.tmp" go.etcd.io/etcd/server/v3
  mv -f "${BIN_DIR}/.etcd.tmp" "${BIN_DIR}/etcd"
  log "built etcd in $(elapsed "${start}")"
}

build_kwok() {
  local v start
  v="$(built_version kwok sigs.k8s.io/kwok)"
  if [[ "${FORCE:-0}" != 1 && "${v}" == "${KWOK_VERSION}" ]]; then
    log "kwok ${KWOK_VERSION}: up to date"
    return
  fi
  start=$(now_ms)
  log "installing kwok ${KWOK_VERSION} (a cold build takes ~1-2 min)"
  cd "${ROOT_DIR}"
  # pkg@version ignores the project's go.mod; kwok's own go.mod pins its dependencies.
  local tmp="${BIN_DIR}/.build-kwok"
  rm -rf "${tmp}" && mkdir -p "${tmp}"
  go_build_progress kwok "?" \
    env GOBIN="${tmp}" go install -v -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  mv -f "${tmp}/kwok" "${BIN_DIR}/kwok" && rmdir "${tmp}"
  log "installed kwok in $(elapsed "${start}")"
}

total_start=$(now_ms)
build_etcd
build_kwok
build_kubernetes
"${ROOT_DIR}/hack/install-crds.sh" --download
"${ROOT_DIR}/hack/build-prometheus.sh"
"${ROOT_DIR}/hack/install-browser-tools.sh" || log "WARNING: the kubectl plugin's e2e tests will fail until chromium and tmux are installed (see above)"
log "tools ready in ${BIN_DIR} ($(elapsed "${total_start}")): $(cd "${BIN_DIR}" && echo *)"
