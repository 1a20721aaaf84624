#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Makes the certificates the TLS tests use, with the openssl command only, into
# the folder given as $1 (created; must not exist yet):
#   ca.pem / ca.key            the test CA (the only trust anchor the tests load)
#   localhost.pem / .key       CN localhost, SAN DNS:localhost + IP:127.0.0.1
#   other.pem / .key           SAN DNS:other.test, for the SNI callback test
#   wronghost.pem / .key       SAN DNS:wrong.example only (hostname mismatch)
#   expired.pem / .key         localhost, valid 2020-01-01 to 2020-01-02
#   rogue_ca.pem, rogue.pem/.key  a second CA and a localhost certificate it
#                              signed (unknown CA for anyone trusting ca.pem)
# Expired validity comes from `openssl ca -startdate/-enddate`, which takes
# any date in OpenSSL 3.0 (x509 -days cannot go into the past there).
set -eu
out=$1
mkdir "$out"
cd "$out"

make_ca() {  # name
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$1.key" -out "$1.pem" -days 3650 -subj "/O=pysock tests/CN=$1" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
  mkdir "$1.db"
  : > "$1.db/index.txt"
  echo 1000 > "$1.db/serial"
  cat > "$1.cnf" <<CNF
[ca]
default_ca = this_ca
[this_ca]
dir = $out/$1.db
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $out/$1.pem
private_key = $out/$1.key
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
x509_extensions = leaf
[any]
commonName = supplied
organizationName = optional
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
CNF
}

make_leaf() {  # ca name cn san [ca date options...]
  ca=$1 name=$2 cn=$3 san=$4
  shift 4
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$name.key" -out "$name.csr" -subj "/O=pysock tests/CN=$cn" \
    -addext "subjectAltName=$san" 2>/dev/null
  openssl ca -batch -notext -config "$ca.cnf" -in "$name.csr" -out "$name.pem" "$@" 2>/dev/null
  rm "$name.csr"
}

make_ca ca
make_ca rogue_ca
make_leaf ca localhost localhost "DNS:localhost,IP:127.0.0.1" -days 3650
make_leaf ca other other.test "DNS:other.test" -days 3650
make_leaf ca wronghost wrong.example "DNS:wrong.example" -days 3650
make_leaf ca expired localhost "DNS:localhost,IP:127.0.0.1" \
  -startdate 20200101000000Z -enddate 20200102000000Z
make_leaf rogue_ca rogue localhost "DNS:localhost,IP:127.0.0.1" -days 3650
