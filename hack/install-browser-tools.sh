#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Installs the programs the kubectl plugin's end-to-end tests drive: headless Chromium (the
# dashboard test, through chromedp) and tmux (the `get -w` test, a real terminal). Both come
# from Debian packages. As root a missing one is installed with apt-get; otherwise the script
# fails and prints the command to run. Nothing is done when both are present.
# A cold install downloads about 100 MB and takes 1-3 minutes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# chromium_path prints the Chromium binary to use, if any.
chromium_path() {
  local c
  for c in chromium chromium-browser google-chrome chrome; do
    if command -v "${c}" >/dev/null 2>&1; then command -v "${c}"; return 0; fi
  done
  return 1
}

missing=()
chromium_path >/dev/null || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if ((${#missing[@]} == 0)); then
  log "browser tools: chromium ($(chromium_path)) and tmux present"
  exit 0
fi

cmd="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if [[ "$(id -u)" != 0 ]]; then
  die "missing ${missing[*]} (needed by the kubectl plugin's e2e tests); install with: sudo sh -c '${cmd}'"
fi
command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get here; install them with your package manager"
start=$(now_ms)
log "installing ${missing[*]} with apt-get (about 100 MB, 1-3 min)"
export DEBIAN_FRONTEND=noninteractive
# apt's own progress is long; it goes to a log that is shown only when the install fails.
apt_log="$(mktemp)"
trap 'rm -f "${apt_log}"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"${apt_log}" 2>&1; then
  tail -n 30 "${apt_log}" >&2
  die "apt-get install ${missing[*]} failed; try by hand: ${cmd}"
fi
chromium_path >/dev/null || die "chromium still missing after apt-get install"
command -v tmux >/dev/null 2>&1 || die "tmux still missing after apt-get install"
log "installed ${missing[*]} in $(elapsed "${start}")"
