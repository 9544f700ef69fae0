#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine (as root) lacks for the demo and the tests:
# Debian packages (Mosquitto, GStreamer RTSP server, ffmpeg), a virtual environment in .venv,
# and the project with its edge, gateway and test extras. Safe to run again; it only adds.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="python3-venv mosquitto mosquitto-clients python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
gstreamer1.0-plugins-good gstreamer1.0-plugins-bad ffmpeg openssl util-linux
postgresql chromium chromium-driver fonts-wqy-zenhei"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "setup: installing Debian packages:$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.xueliang-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -e '.[edge,gateway,test]'
  touch "$stamp"
fi
