#!/usr/bin/env bash
# Installs protoc, which go-to-protobuf runs, from the distribution's packages
# when it is missing: hack/update-codegen.sh and so `make verify` need it on a
# fresh machine. The generated code was made with protoc 3.21 (Debian 12's
# protobuf-compiler); another 3.x gives the same output for our messages.
set -euo pipefail

if command -v protoc >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-protoc: protoc is missing and there is no apt-get; install protoc 3.x (protobuf-compiler) by hand" >&2
    exit 1
fi
SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    SUDO="sudo"
fi
echo "install-protoc: installing protobuf-compiler" >&2
${SUDO} apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive ${SUDO} apt-get install -y -qq protobuf-compiler >&2
protoc --version >&2
