#!/usr/bin/env bash
# Makes a private CA and a broker certificate for 127.0.0.1/localhost (or $HOST: a name, or an IP address) in DIR.
# Usage: deploy/make_certs.sh DIR [HOST]
# It makes what DIR lacks and keeps what it holds, never writing over a file. A new CA only in a DIR with none of
# the four files: made again, the boxes that trust the old CA would no longer trust the broker. Where DIR holds the
# CA (ca.key and ca.crt), the broker's certificate it lacks is issued by that CA, from the broker's key where DIR
# holds it (server.key), so the boxes go on trusting the broker: remove server.crt to issue it again (another HOST,
# or one that expired). The files are made aside, checked against the CA, and moved in once whole. Run as root, the
# broker's key is the mosquitto group's to read (0640), as Mosquitto 2.0 reads it once it dropped root.
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then
  echo "usage: $0 DIR [HOST]" >&2; exit 2
fi
dir="$1"; host="${2:-localhost}"
case "$host" in
  *[!A-Za-z0-9.:-]*|"") echo "error: HOST '$host': a host name or an IP address (letters, digits, '.', '-', ':')" >&2; exit 2;;
esac
has() { [ -e "$dir/$1" ]; }
refuse() { echo "error: $dir: $1" >&2; exit 2; }
if has ca.key && has ca.crt; then
  has server.crt && refuse "holds the CA and the broker's certificate: nothing to make (to issue the broker's again, \
for another HOST or one expired, remove server.crt, and server.key for a new key)"
  has server.key && make="server.crt" || make="server.key server.crt"
elif has ca.key || has ca.crt; then
  has ca.key && lone=ca.key || lone=ca.crt
  refuse "holds $lone without its pair: the broker's certificate needs both (keep them together, or name a new folder)"
elif has server.key || has server.crt; then
  refuse "holds the broker's files without the CA that signed them: name a new folder (a new CA here would not be \
trusted by what trusts the old one)"
else
  make="ca.key ca.crt server.key server.crt"
fi
mkdir -p -- "$dir" || { echo "error: $dir: cannot be made" >&2; exit 2; }
abs=$(cd -- "$dir" && pwd)
work=$(mktemp -d "$abs/.make_certs.XXXXXX") || { echo "error: $dir: cannot be written" >&2; exit 2; }
trap 'rm -rf -- "$work"' EXIT
if [[ "$host" == *:* || "$host" =~ ^[0-9.]+$ ]]; then san="IP:$host"; else san="DNS:$host"; fi
run() { "$@" 2>"$work/log" || { echo "error: $dir: $(tail -n 3 "$work/log" | tr '\n' ' ')" >&2; exit 2; }; }
# what DIR holds is read where it is, by its path: nothing is written through to it but the files moved in below
making() { [[ " $make " == *" $1 "* ]]; }
at() { if making "$1"; then echo "$work/$1"; else echo "$abs/$1"; fi; }
cd "$work"
if making ca.key; then
  run openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=xueliang test CA" -keyout ca.key -out ca.crt
fi
if making server.key; then
  run openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out server.key
  # Mosquitto 2.0 reads it as the mosquitto user, after it drops root: made 0600 root's, the broker did not start
  # ("Unable to load server key file ... Permission denied"). The group's where there is one (Debian's package)
  if [ "$(id -u)" = 0 ] && getent group mosquitto >/dev/null; then
    run chgrp mosquitto server.key
    run chmod 0640 server.key
  fi
fi
run openssl req -new -key "$(at server.key)" -subj "/CN=$host" -out server.csr
printf "subjectAltName=DNS:localhost,%s,IP:127.0.0.1\n" "$san" > san.ext || { echo "error: $dir: cannot be written" >&2; exit 2; }
run openssl x509 -req -in server.csr -CA "$(at ca.crt)" -CAkey "$(at ca.key)" -CAserial ca.srl -CAcreateserial \
  -days 3650 -extfile san.ext -out server.crt
run openssl verify -CAfile "$(at ca.crt)" server.crt >/dev/null  # a ca.key not ca.crt's signs one no box would take
for f in $make; do
  mv -n -- "$f" "$abs/$f"
  [ ! -e "$f" ] || refuse "$f appeared while it was made; kept as it is"
done
echo "$dir: made $make${2:+ for $host}"
