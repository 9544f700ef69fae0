#!/usr/bin/env bash
# Makes a private CA and a broker certificate for 127.0.0.1/localhost (or $HOST: a name, or an IP address) in DIR.
# Usage: deploy/make_certs.sh DIR [HOST]
# A DIR that already holds a CA or a certificate is refused: made again, the boxes that trust the old CA would no
# longer trust the broker. The files are made aside and moved in once all four are whole.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
  echo "usage: $0 DIR [HOST]" >&2; exit 2
fi
dir="$1"; host="${2:-localhost}"
case "$host" in
  *[!A-Za-z0-9.:-]*|"") echo "error: HOST '$host': a host name or an IP address (letters, digits, '.', '-', ':')" >&2; exit 2;;
esac
for f in ca.key ca.crt server.key server.crt; do
  if [ -e "$dir/$f" ]; then
    echo "error: $dir/$f exists: name a new folder (made again, what trusts this CA would not trust the broker)" >&2
    exit 2
  fi
done
mkdir -p -- "$dir" || { echo "error: $dir: cannot be made" >&2; exit 2; }
work=$(mktemp -d "$(cd -- "$dir" && pwd)/.make_certs.XXXXXX") || { echo "error: $dir: cannot be written" >&2; exit 2; }
trap 'rm -rf -- "$work"' EXIT
if [[ "$host" == *:* || "$host" =~ ^[0-9.]+$ ]]; then san="IP:$host"; else san="DNS:$host"; fi
run() { "$@" 2>"$work/log" || { echo "error: $dir: $(tail -n 3 "$work/log" | tr '\n' ' ')" >&2; exit 2; }; }
cd "$work"
run openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=xueliang test CA" -keyout ca.key -out ca.crt
run openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" -keyout server.key -out server.csr
printf "subjectAltName=DNS:localhost,%s,IP:127.0.0.1\n" "$san" > san.ext || { echo "error: $dir: cannot be written" >&2; exit 2; }
run openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile san.ext -out server.crt
mv ca.key ca.crt server.key server.crt ..
