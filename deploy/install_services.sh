#!/usr/bin/env bash
# deploy/install_services.sh [--enable edge|gateway|backup ...]: as root, this checkout installed to run as services
# (README "Running as a service"): a system user xueliang; a venv in /opt/xueliang/.venv with the project installed
# from here (not linked: the checkout may move, or be root's alone, as under /root), readable by all, written by
# root; deploy/backup_gateway.sh beside it; /etc/xueliang (root's, the user reads) with xueliang.env if it has none;
# the units in /etc/systemd/system. Nothing is enabled or started but what --enable names. Safe to run again: an
# upgrade is this, then `systemctl restart` the units; a site's xueliang.env and configs are never written over.
# XUELIANG_EXTRAS=edge (a box) or gateway (the centre) installs one side's stack alone (default edge,gateway).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=/opt/xueliang etc=/etc/xueliang units=/etc/systemd/system
extras=${XUELIANG_EXTRAS:-edge,gateway}

enable=()
while [ $# -gt 0 ]; do
  case "$1" in
    --enable) [ $# -ge 2 ] || { echo "error: --enable: name edge, gateway or backup" >&2; exit 2; }
              case "$2" in
                edge|gateway) enable+=("xueliang-$2.service") ;;
                backup) enable+=("xueliang-gateway-backup.timer") ;;
                *) echo "error: --enable $2: not a unit here; name edge, gateway or backup" >&2; exit 2 ;;
              esac
              shift 2 ;;
    *) echo "usage: $0 [--enable edge|gateway|backup ...]" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "error: run as root (it makes a system user and writes /opt, /etc)" >&2
  exit 2
fi

if ! id -u xueliang >/dev/null 2>&1; then
  echo "install: making the system user xueliang"
  useradd --system --user-group --home-dir /var/lib/xueliang --no-create-home --shell /usr/sbin/nologin xueliang
fi

install -d -m 0755 "$prefix" "$prefix/deploy"
# pip, not python: a venv made without ensurepip has its python and no pip, and is made again
if [ ! -x "$prefix/.venv/bin/pip" ]; then
  # Debian's python3 makes a venv only with python3-venv (ensurepip), which a fresh Debian 12 lacks
  if ! /usr/bin/python3 -c "import ensurepip" 2>/dev/null; then
    echo "install: installing the Debian package python3-venv"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  fi
  echo "install: creating $prefix/.venv"
  # the system's python: one under /root (pyenv's) cannot be run by the user
  /usr/bin/python3 -m venv --clear "$prefix/.venv"
fi
echo "install: installing xueliang[$extras] from $src into $prefix/.venv"
# setuptools builds in the checkout's build/ and adds what is there to the package: a file the new code no longer
# has (a module removed, a model renamed) was installed again from the last install's copy
rm -rf -- "$src/build"
"$prefix/.venv/bin/pip" install -q --disable-pip-version-check --upgrade "$src[$extras]"
# the same version number again: pip would keep the files it has; this checkout's are what is meant
"$prefix/.venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$src"
install -m 0755 "$src/deploy/backup_gateway.sh" "$prefix/deploy/backup_gateway.sh"

# configs hold passwords (the broker's, a database's): root writes them, the user reads them, nobody else
install -d -m 0750 -o root -g xueliang "$etc"
if [ ! -e "$etc/xueliang.env" ]; then
  install -m 0640 -o root -g xueliang "$src/deploy/systemd/xueliang.env" "$etc/xueliang.env"
  echo "install: wrote $etc/xueliang.env (the configs' paths, the backups' folder and count)"
fi
# the units' WorkingDirectory (systemd makes it at their start too; here for commands run by hand as the user)
install -d -m 0750 -o xueliang -g xueliang /var/lib/xueliang
for unit in xueliang-edge.service xueliang-gateway.service xueliang-gateway-backup.service \
            xueliang-gateway-backup.timer; do
  install -m 0644 "$src/deploy/systemd/$unit" "$units/$unit"
done
echo "install: units in $units; configs go in $etc (edge.yaml, gateway.yaml, as $etc/xueliang.env names them)"

if [ -d /run/systemd/system ]; then
  # an upgrade: a unit running since before it keeps the code it started with (and --enable starts no running one)
  for unit in xueliang-edge.service xueliang-gateway.service; do
    if systemctl is-active --quiet "$unit"; then
      echo "install: $unit runs the code it started with: systemctl restart $unit"
    fi
  done
  systemctl daemon-reload
  if [ ${#enable[@]} -gt 0 ]; then
    systemctl enable --now "${enable[@]}"
  fi
elif [ ${#enable[@]} -gt 0 ]; then
  echo "error: --enable ${enable[*]}: systemd is not running here; the units are installed, nothing enabled" >&2
  exit 1
fi
