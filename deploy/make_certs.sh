#!/usr/bin/env bash
# Makes a private CA and a broker certificate for 127.0.0.1/localhost (or $HOST) in DIR.
# Usage: deploy/make_certs.sh DIR [HOST]
set -euo pipefail
dir="$1"; host="${2:-localhost}"
mkdir -p "$dir"; cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=xueliang test CA" \
  -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" -keyout server.key -out server.csr 2>/dev/null
printf "subjectAltName=DNS:localhost,DNS:%s,IP:127.0.0.1\n" "$host" > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
  -extfile san.ext -out server.crt 2>/dev/null
rm -f server.csr san.ext ca.srl
