# shellcheck shell=bash
# Small openssl wrappers for the local run's certificates. Source after common.sh.
# EC P-256 keys: generated in milliseconds, accepted by every k8s component.

# pki_key FILE: a new private key (PKCS#8 PEM), unless FILE exists.
pki_key() {
  [[ -f "$1" ]] || openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
  chmod 600 "$1"
}

# pki_ca DIR NAME CN: self-signed CA DIR/NAME.crt + DIR/NAME.key (10 years).
pki_ca() {
  local dir=$1 name=$2 cn=$3
  pki_key "${dir}/${name}.key"
  openssl req -x509 -new -key "${dir}/${name}.key" -out "${dir}/${name}.crt" -days 3650 \
    -subj "/CN=${cn}" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" 2>/dev/null
}

# pki_cert DIR NAME CA USAGE SUBJECT [SAN]: DIR/NAME.crt + .key signed by DIR/CA.crt.
#   USAGE: server | client | both.  SUBJECT: e.g. "/O=system:masters/CN=kubernetes-admin".
#   SAN: e.g. "DNS:localhost,IP:127.0.0.1" (server certs).
pki_cert() {
  local dir=$1 name=$2 ca=$3 usage=$4 subject=$5 san=${6:-}
  local eku ext
  case "${usage}" in
    server) eku=serverAuth ;;
    client) eku=clientAuth ;;
    both) eku=serverAuth,clientAuth ;;
    *) die "pki_cert: bad usage ${usage}" ;;
  esac
  ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=${eku}"
  [[ -n "${san}" ]] && ext+=$'\n'"subjectAltName=${san}"
  pki_key "${dir}/${name}.key"
  openssl req -new -key "${dir}/${name}.key" -subj "${subject}" -out "${dir}/${name}.csr" 2>/dev/null
  openssl x509 -req -in "${dir}/${name}.csr" -CA "${dir}/${ca}.crt" -CAkey "${dir}/${ca}.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 \
    -extfile <(printf '%s\n' "${ext}") -out "${dir}/${name}.crt" 2>/dev/null
  rm -f "${dir}/${name}.csr"
}

# write_kubeconfig FILE SERVER CA_FILE CERT_FILE KEY_FILE: a kubeconfig that refers to
# the files by absolute path (they live next to it in the run folder).
write_kubeconfig() {
  local file=$1 server=$2 ca=$3 cert=$4 key=$5
  cat >"${file}" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: ${server}
    certificate-authority: ${ca}
users:
- name: user
  user:
    client-certificate: ${cert}
    client-key: ${key}
contexts:
- name: local
  context:
    cluster: local
    user: user
current-context: local
KUBECONFIG
  chmod 600 "${file}"
}
