#!/usr/bin/env bash
# Fails when git tracks what must never be committed: a private key, an etcd
# data directory, or a file over 1 MiB outside testdata/. Run from `make
# verify`; an optional argument names the repository to check (for its test).
set -euo pipefail

ROOT="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
MAX_BYTES=$((1024 * 1024))
status=0

fail() {
  echo "tracked file not allowed: $1 ($2)" >&2
  status=1
}

while IFS= read -r -d '' path; do
  file="${ROOT}/${path}"
  [[ -f "${file}" ]] || continue
  case "${path}" in
    *.etcd/* | */member/snap/* | */member/wal/* | member/snap/* | member/wal/*)
      fail "${path}" "etcd data directory"
      continue
      ;;
  esac
  if grep -Eq -- '-----BEGIN ([A-Z]+ )?PRIVATE KEY-----' "${file}" 2>/dev/null; then
    fail "${path}" "private key"
  fi
  case "${path}" in
    testdata/* | */testdata/*) ;;
    *)
      size=$(stat -c %s "${file}")
      if ((size > MAX_BYTES)); then
        fail "${path}" "${size} bytes, over 1 MiB outside testdata/"
      fi
      ;;
  esac
done < <(git -C "${ROOT}" ls-files -z)

exit "${status}"
